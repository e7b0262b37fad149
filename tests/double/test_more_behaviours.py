"""The "More behaviours" of firecrest-v2-notes.md (measured with Slurm accounting through
slurmdbd), reproduced by the double: one test per behaviour."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from firecrest_double import FirecrestDouble, apply_export

from .conftest import bearer
from .test_behaviour import JOBS, job_info, submit, wait_state

NO_LIMIT = "#!/bin/bash\nsleep 100\n"


@pytest.mark.scheduler_kwargs(queue_delay=0.1, running_lag=0.6)
async def test_running_is_reported_after_the_job_really_runs(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    """sacct does not know a new job for ~0.3-0.9 s: a fast job's callback can arrive
    while FirecREST still says PENDING."""
    started: list[float] = []
    fc.scheduler.on_state_change.append(  # type: ignore[attr-defined]
        lambda job, state: started.append(time.monotonic()) if state == "RUNNING" else None)
    _, body = await submit(fc, http)
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert started, "the job never started"
    job = await job_info(fc, http, body["jobId"])  # really running, not yet reported
    assert job["status"]["state"] == "PENDING" and job["nodes"] == "" and job["tasks"] == []
    assert job["status"]["exitCode"] is None and job["allocationNodes"] == 0
    running = await wait_state(fc, http, body["jobId"], "RUNNING")
    seen = time.monotonic()
    assert seen - started[0] >= 0.55, "RUNNING was reported before the lag"
    assert running["nodes"].startswith("nid") and running["allocationNodes"] == 1


@pytest.mark.scheduler_kwargs(queue_delay=0.05, running_lag=0.0)
async def test_running_record_fields(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    """RUNNING: exitCode 0 and interruptSignal 0; no name: 'sbatch'; killRequestUser null;
    no time limit: time.limit null."""
    _, body = await submit(fc, http, script=NO_LIMIT)
    job = await wait_state(fc, http, body["jobId"], "RUNNING")
    assert job["status"]["exitCode"] == 0 and job["status"]["interruptSignal"] == 0
    assert job["name"] == "sbatch" and job["killRequestUser"] is None
    assert job["time"]["limit"] is None


@pytest.mark.scheduler_kwargs(queue_delay=30.0, reason_after=0.05)
async def test_cancelled_while_pending(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    """nodes 'None assigned', allocationNodes 0, the last stateReason kept."""
    _, body = await submit(fc, http)
    jid = body["jobId"]
    await asyncio.sleep(0.2)
    assert (await job_info(fc, http, jid))["status"]["stateReason"] == "Priority"
    async with http.delete(f"{fc.url}{JOBS}/{jid}", headers=bearer(fc)) as r:
        assert r.status == 204
    job = await job_info(fc, http, jid)
    assert job["status"]["state"].startswith("CANCELLED by ")
    assert job["nodes"] == "None assigned" and job["allocationNodes"] == 0
    assert job["status"]["stateReason"] == "Priority"
    assert job["killRequestUser"] is None and job["status"]["exitCode"] is None


@pytest.mark.scheduler_kwargs(queue_delay=0.05, running_lag=0.0)
async def test_cancel_errors_use_scancels_words(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    _, body = await submit(fc, http)
    jid = body["jobId"]
    await wait_state(fc, http, jid, "RUNNING")
    await fc.scheduler.end_job(jid, "COMPLETED")  # type: ignore[attr-defined]
    async with http.delete(f"{fc.url}{JOBS}/{jid}", headers=bearer(fc)) as r:
        assert r.status == 500
        message = (await r.json())["message"]
    assert "Kill job error" in message and "already completing or completed" in message
    async with http.delete(f"{fc.url}{JOBS}/99999", headers=bearer(fc)) as r:
        assert r.status == 500 and "Invalid job id specified" in (await r.json())["message"]


@pytest.mark.scheduler_kwargs(accounting="none")
async def test_without_accounting_job_queries_and_userinfo_answer_500(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    status, body = await submit(fc, http)  # sbatch itself needs no accounting
    assert status == 201
    for path in (f"{JOBS}/{body['jobId']}", JOBS, "/status/cluster/userinfo"):
        async with http.get(fc.url + path, headers=bearer(fc)) as r:
            assert r.status == 500, path
            assert (await r.json())["message"] == "Only 'accounting_storage/slurmdbd' is supported"


async def test_slurmdbd_stopping_makes_job_queries_500_until_it_is_back(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    _, body = await submit(fc, http)
    path = f"{fc.url}{JOBS}/{body['jobId']}"
    fc.scheduler.accounting = "down"  # type: ignore[attr-defined]
    for url in (path, fc.url + JOBS):
        async with http.get(url, headers=bearer(fc)) as r:
            assert r.status == 500
            assert "Problem talking to the database" in (await r.json())["message"]
    async with http.get(f"{fc.url}/status/cluster/userinfo", headers=bearer(fc)) as r:
        assert r.status == 200  # only the job queries go through sacct
    async with http.delete(path, headers=bearer(fc)) as r:
        assert r.status == 204  # scancel works without the database
    fc.scheduler.accounting = "up"  # type: ignore[attr-defined]
    assert (await job_info(fc, http, body["jobId"]))["status"]["state"].startswith("CANCELLED")


def test_accounting_state_is_checked() -> None:
    from firecrest_double import SimulatedScheduler

    with pytest.raises(ValueError, match="accounting must be one of"):
        SimulatedScheduler(accounting="off")


def test_lone_quote_swallows_the_rest_of_the_export_string() -> None:
    env = apply_export({"BEFORE": "1", "V": "it's", "AFTER": "v", "LAST": "3"}, {})
    assert env == {"BEFORE": "1", "V": "it's,AFTER=v,LAST=3"}


async def test_system_404_is_not_job_404(fc: FirecrestDouble,
                                         http: aiohttp.ClientSession) -> None:
    async with http.get(f"{fc.url}/compute/elsewhere/jobs/1", headers=bearer(fc)) as r:
        assert (r.status, (await r.json())["message"]) == (404, "System not found")
    async with http.get(f"{fc.url}{JOBS}/123456", headers=bearer(fc)) as r:
        assert (r.status, (await r.json())["message"]) == (404, "Job not found.")
