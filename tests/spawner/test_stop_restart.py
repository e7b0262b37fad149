"""stop() cancels and waits, bounded; a hub restart keeps running servers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from firecrest_double import FirecrestDouble

from .conftest import USER, login, running_server, start_server
from .fakecompute import FakeCompute
from .hubtools import HubClient, stop_hub, wait_for

CANCEL = "DELETE /compute/{system_name}/jobs/{job_id}"
JOB = "GET /compute/{system_name}/jobs/{job_id}"


async def test_stop_cancels_the_job_and_waits_for_the_end(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub()
    user, client, _ = await login(app, double)
    events = await start_server(client)
    assert events[-1].get("ready")
    job_id = user.spawner.job_id

    status, _ = await client.request("DELETE", f"/users/{USER}/server")
    assert status in (202, 204)
    await wait_for(lambda: not user.spawner.active, 10, what="server stopped")

    job = double.scheduler.jobs_by_id[job_id]
    assert job.state.startswith("CANCELLED by ")
    assert double.count(CANCEL, job_id) == 1
    assert user.spawner.job_id == "", "state is cleared after a stop"
    assert compute.labs[job_id].runner is None


async def test_stopping_an_already_finished_job_is_fine(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """Real FirecREST answers 500 to cancelling a finished job; the job is then seen
    terminal and stop() returns at once."""
    app = await make_hub(stop_timeout=30)
    spawner = await running_server(app, double)
    job_id = spawner.job_id
    await double.scheduler.end_job(job_id, "COMPLETED")

    began = time.monotonic()
    await spawner.stop()
    assert time.monotonic() - began < 5
    cancels = [r.status for r in double.requests if r.route == CANCEL]
    assert cancels == [500]


async def test_hub_restart_keeps_the_running_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    first = await make_hub()
    user, client, _ = await login(first, double)
    events = await start_server(client)
    assert events[-1].get("ready")
    job_id, port = user.spawner.job_id, user.spawner.server.port
    token = client.headers["Authorization"].split()[1]

    await stop_hub(first)  # cleanup_servers = False: the job keeps running
    assert double.scheduler.jobs_by_id[job_id].state == "RUNNING"
    double.reset_counters()

    second = await make_hub(clean_db=False)
    spawner = second.users[USER].spawner
    assert spawner.ready, "the restarted hub found the server running"
    assert (spawner.job_id, spawner.job_port, spawner.job_system) == (job_id, port, "cluster")
    assert spawner.server.port == port
    assert double.count(JOB, job_id) >= 1, "the restarted hub asked FirecREST"
    assert await spawner.poll() is None

    client2 = HubClient(second, token)
    status, model = await client2.request("GET", f"/users/{USER}")
    assert status == 200 and model["servers"][""]["ready"]
    status, _ = await client2.request("DELETE", f"/users/{USER}/server")
    assert status in (202, 204)
    await wait_for(lambda: double.scheduler.jobs_by_id[job_id].state.startswith("CANCELLED"),
                   10, what="job cancelled by the restarted hub")
