"""Idle culling: jupyterhub-idle-culler, registered as the hub configuration's culler
section registers it, stops an idle server through the hub and its job is cancelled."""

from __future__ import annotations

from typing import Any

from traitlets.config import Config

from firecrest_double import FirecrestDouble
from firecrestspawner import hubconfig

from .conftest import USER, login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

CANCEL = "DELETE /compute/{system_name}/jobs/{job_id}"


async def test_the_culler_stops_an_idle_server_and_its_job_is_cancelled(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    c = Config()
    hubconfig.apply_culler(c, {"timeout": 1, "every": 1})
    app = await make_hub(hub={"services": c.JupyterHub.services,
                              "load_roles": c.JupyterHub.load_roles})
    user, client, _ = await login(app, double)
    events = await start_server(client)
    assert events[-1].get("ready"), events
    job_id = user.spawner.job_id
    assert double.scheduler.jobs_by_id[job_id].state == "RUNNING"

    # the culler (a separate process, the hub's managed service) finds the server idle
    # for over 1 s and stops it through the hub's API; the spawner cancels the job
    await wait_for(lambda: not user.spawner.active, 40, what="the culler stopped the server")
    await wait_for(lambda: double.scheduler.jobs_by_id[job_id].state.startswith("CANCELLED"),
                   10, what="job cancelled")
    assert double.count(CANCEL, job_id) == 1
    status, model = await client.request("GET", f"/users/{USER}")
    assert status == 200 and model["servers"] == {}
