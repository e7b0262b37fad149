"""Behaviours of the real server (firecrest-v2-notes.md) reproduced by the double."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from firecrest_double import FirecrestDouble, Outcome

from .conftest import bearer

JOBS = "/compute/cluster/jobs"
SCRIPT = "#!/bin/bash\n#SBATCH --time=00:10:00\nsleep 100\n"


async def submit(fc: FirecrestDouble, http: aiohttp.ClientSession, script: str = SCRIPT,
                 **job: object) -> tuple[int, dict]:
    body = {"job": {"workingDirectory": "/home/alice", "script": script, **job}}
    async with http.post(fc.url + JOBS, json=body, headers=bearer(fc)) as r:
        return r.status, await r.json()


async def job_info(fc: FirecrestDouble, http: aiohttp.ClientSession, job_id: str) -> dict:
    async with http.get(f"{fc.url}{JOBS}/{job_id}", headers=bearer(fc)) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["jobs"][0]


async def wait_state(fc: FirecrestDouble, http: aiohttp.ClientSession, job_id: str,
                     prefix: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await job_info(fc, http, job_id)
        if job["status"]["state"].startswith(prefix):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {prefix}: {job['status']}")


async def test_submit_returns_string_id_and_pending_shape(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    status, body = await submit(fc, http, name="jupyterhub")
    assert status == 201 and isinstance(body["jobId"], str) and body["jobId"].isdigit()
    job = await job_info(fc, http, body["jobId"])
    assert job["status"] == {"state": "PENDING", "stateReason": "None", "exitCode": None,
                             "interruptSignal": None}
    assert job["tasks"] == [] and job["nodes"] == ""
    assert job["name"] == "jupyterhub" and job["user"] == "alice"
    assert job["time"]["limit"] == 10
    assert isinstance(job["time"]["start"], int)


@pytest.mark.scheduler_kwargs(queue_delay=0.8, reason_after=0.2)
async def test_state_reason_moves_from_none_to_priority_then_runs(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    _, body = await submit(fc, http)
    await asyncio.sleep(0.4)
    job = await job_info(fc, http, body["jobId"])
    assert job["status"]["state"] == "PENDING" and job["status"]["stateReason"] == "Priority"
    job = await wait_state(fc, http, body["jobId"], "RUNNING")
    assert job["nodes"].startswith("nid") and job["tasks"][0]["id"] == body["jobId"] + ".batch"
    assert job["status"]["exitCode"] == 0


@pytest.mark.scheduler_kwargs(queue_delay=0.05, completing_s=0.3)
async def test_scripted_outcomes(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    fc.scheduler.script(  # type: ignore[attr-defined]
        Outcome.fail(exit_code=3, after=0.1), Outcome.timeout(after=0.1),
        Outcome.node_fail(after=0.1), Outcome.cancelled(after=0.1, uid=0),
        Outcome.complete(after=0.1), Outcome.never_start("Resources"))
    ids = [(await submit(fc, http))[1]["jobId"] for _ in range(6)]
    completing = await wait_state(fc, http, ids[0], "COMPLETING")
    assert completing["status"]["state"] == "COMPLETING"
    failed = await wait_state(fc, http, ids[0], "FAILED")
    assert failed["status"]["exitCode"] == 3
    assert (await wait_state(fc, http, ids[1], "TIMEOUT"))["status"]["state"] == "TIMEOUT"
    assert (await wait_state(fc, http, ids[2], "NODE_FAIL"))["status"]["state"] == "NODE_FAIL"
    cancelled = await wait_state(fc, http, ids[3], "CANCELLED")
    assert cancelled["status"]["state"] == "CANCELLED by 0"
    assert (await wait_state(fc, http, ids[4], "COMPLETED"))["status"]["exitCode"] == 0
    pending = await job_info(fc, http, ids[5])
    assert pending["status"]["state"] == "PENDING"
    assert pending["status"]["stateReason"] == "Resources"


async def test_cancel_semantics(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    _, body = await submit(fc, http)
    jid = body["jobId"]
    async with http.delete(f"{fc.url}{JOBS}/{jid}", headers=bearer(fc)) as r:
        assert r.status == 204 and await r.read() == b""
        assert r.headers["f7t-appversion"] == "2.5.6"
    job = await job_info(fc, http, jid)
    uid = fc.scheduler.userinfo("alice").uid
    assert job["status"]["state"] == f"CANCELLED by {uid}"
    assert job["killRequestUser"] is None  # always null: the state string names the uid
    # cancelling a finished job, and an unknown job: 500, not 404, with scancel's words
    for target, words in ((jid, "already completing or completed"),
                          ("987654", "Invalid job id specified")):
        async with http.delete(f"{fc.url}{JOBS}/{target}", headers=bearer(fc)) as r:
            assert r.status == 500
            err = await r.json()
        assert set(err) == {"errorType", "message", "causedBy", "data", "user"}
        assert err["errorType"] == "error" and "Kill job error" in err["message"]
        assert words in err["message"], err["message"]
        assert err["user"] == "alice" and err["data"] is None


async def test_unknown_job_and_unknown_system_404(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{fc.url}{JOBS}/424242", headers=bearer(fc)) as r:
        assert r.status == 404 and (await r.json())["message"] == "Job not found."
    async with http.get(f"{fc.url}{JOBS}/424242/metadata", headers=bearer(fc)) as r:
        assert r.status == 404
    # an unknown system is a different 404: a client must not read it as "job gone"
    async with http.get(f"{fc.url}/compute/nosuch/jobs", headers=bearer(fc)) as r:
        assert r.status == 404 and (await r.json())["message"] == "System not found"
    async with http.get(f"{fc.url}/compute/nosuch/jobs/1", headers=bearer(fc)) as r:
        assert r.status == 404 and (await r.json())["message"] == "System not found"


@pytest.mark.parametrize("script, job, needle", [
    ("echo no shebang\n", {}, "does not look like a batch script"),
    (SCRIPT, {"partition": "gpu-nowhere"}, "invalid partition specified: gpu-nowhere"),
    ("#!/bin/bash\n#SBATCH -p nowhere\nhostname\n", {}, "invalid partition specified: nowhere"),
    (SCRIPT, {"account": "not-mine"}, "Invalid account"),
    ("#!/bin/bash\n#SBATCH --mem=900G\nhostname\n", {}, "Requested node configuration"),
])
async def test_sbatch_rejections_are_500_with_stderr(
        fc: FirecrestDouble, http: aiohttp.ClientSession, script: str, job: dict,
        needle: str) -> None:
    status, body = await submit(fc, http, script, **job)
    assert status == 500
    assert needle in body["message"] and "sbatch: error" in body["message"]


async def test_metadata_expands_job_id(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    _, body = await submit(fc, http, standardOutput="lab-%j.log")
    jid = body["jobId"]
    async with http.get(f"{fc.url}{JOBS}/{jid}/metadata", headers=bearer(fc)) as r:
        meta = (await r.json())["jobs"][0]
    assert meta["jobId"] == jid and meta["script"] == SCRIPT
    assert meta["standardOutput"] == f"/home/alice/lab-{jid}.log"
    assert meta["standardError"] == meta["standardOutput"]


async def test_job_list_is_per_user(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    await submit(fc, http)
    body = {"job": {"workingDirectory": "/home/bob", "script": SCRIPT}}
    async with http.post(fc.url + JOBS, json=body, headers=bearer(fc, "bob")) as r:
        assert r.status == 201
    async with http.get(fc.url + JOBS, headers=bearer(fc)) as r:
        assert [j["user"] for j in (await r.json())["jobs"]] == ["alice"]
    async with http.get(fc.url + JOBS, params={"allusers": "true"}, headers=bearer(fc)) as r:
        assert sorted(j["user"] for j in (await r.json())["jobs"]) == ["alice", "bob"]


async def test_status_routes_and_header_everywhere(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(fc.url + "/status/systems", headers=bearer(fc)) as r:
        assert r.headers["f7t-appversion"] == "2.5.6"
        system = (await r.json())["systems"][0]
    assert system["name"] == "cluster" and system["scheduler"]["type"] == "slurm"
    assert {s["serviceType"] for s in system["servicesHealth"]} >= {"scheduler", "ssh"}
    assert system["fileSystems"][0]["defaultWorkDir"] is True
    async with http.get(fc.url + "/status/cluster/userinfo", headers=bearer(fc, "carol")) as r:
        info = await r.json()
    assert info["user"]["name"] == "carol" and info["accounts"][0]["default"] is True
    async with http.get(fc.url + "/status/systems") as r:  # no token
        assert r.status == 401 and r.headers["f7t-appversion"] == "2.5.6"
    async with http.get(fc.url + "/status/liveness/") as r:  # unsecured route
        assert r.status == 200 and "lastUpdate" in await r.json()
