"""Batched polling and walltime on the real Slurm cluster, through JupyterHub.

The job listing (``GET /compute/{system}/jobs?allusers=true``) is answered by the
double's real-Slurm backend (``sacct --allusers`` merged with ``squeue``, as FirecREST
does) and the time limit and start come from Slurm itself. The job user also plays the
service account (the local cluster has one job user; Slurm's PrivateData is not set,
so its listing shows every user's jobs).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from firecrest_double import FirecrestDouble
from firecrestspawner import batchpoll
from tests.slurm.test_lifecycle_faults import (  # noqa: F401  (fixtures used by name)
    SHORT_TOKEN,
    Kit,
    _run,
    double,
    kit,
    make_hub,
    poll_until_ended,
    until,
    wait_slurm,
)
from tests.spawner.conftest import login, start_server

LIST = "GET /compute/{system_name}/jobs"
JOB = "GET /compute/{system_name}/jobs/{job_id}"


@pytest.mark.timeout(240)
async def test_one_listing_polls_the_server_and_sees_an_admin_scancel(
        make_hub: Any, double: FirecrestDouble, kit: Kit,  # noqa: F811  (fixtures)
        monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        await _batched_polling_on_slurm(make_hub, double, kit, monkeypatch)
    finally:
        await batchpoll.close_all()  # the hub's shared listing belongs to this test's loop


async def _batched_polling_on_slurm(
        make_hub: Any, double: FirecrestDouble, kit: Kit,  # noqa: F811  (fixtures' names)
        monkeypatch: pytest.MonkeyPatch) -> None:
    account = double.idp.register_client("jhub-poller", username=kit.user)
    app = await make_hub(service_client_id=account.client_id,
                         service_client_secret=account.secret)
    user, client, _ = await login(app, double, kit.user, access_lifetime=SHORT_TOKEN)
    events = await start_server(client, kit.user)
    assert events[-1].get("ready"), events
    spawner = user.spawner
    job_id = spawner.job_id
    assert await wait_slurm(job_id, ("RUNNING",), "started server", kit=kit) == "RUNNING"
    # walltime: default_time 00:10:00, as Slurm reports it
    assert any("time limit 10 min" in e.get("message", "") for e in events), events
    offset = [0.0]  # the listing's clock: advanced one poll_interval where needed
    monkeypatch.setattr(batchpoll, "_clock", lambda: time.monotonic() + offset[0])

    def next_interval() -> None:
        offset[0] += spawner.poll_interval

    # Right after the start the listing may still show the job PENDING (sacct
    # --allusers knows a new job seconds after sacct -j does): that alone would read as
    # a requeue. Such a record is confirmed by the job's own request: the server stays.
    double.reset_counters()
    assert await spawner.poll_and_notify() is None
    assert double.count(LIST) == 1 and double.count(JOB) <= 1, dict(double.route_counts)

    async def listed_running() -> bool:
        jobs = await double.scheduler.jobs(kit.user, None, True)
        return any(j["jobId"] == job_id and j["status"]["state"] == "RUNNING" for j in jobs)

    await until(listed_running, "the listing to show the job RUNNING")
    next_interval()
    double.reset_counters()
    assert await spawner.poll_and_notify() is None
    assert double.count(LIST) == 1 and double.count(JOB) == 0, dict(double.route_counts)
    assert spawner.job_time_limit == 600
    assert 0 < spawner.job_end - time.time() <= 600, "start + limit, from Slurm's record"

    await asyncio.to_thread(_run, "scancel", job_id)  # an admin, behind the hub's back
    await wait_slurm(job_id, ("CANCELLED",), "scancel", kit=kit)

    await poll_until_ended(spawner, "cancelled job", arm=next_interval)
    assert double.count(LIST) >= 2, dict(double.route_counts)
    # a listed state other than RUNNING is confirmed by the job's own request
    assert double.count(JOB, job_id) >= 1, dict(double.route_counts)
