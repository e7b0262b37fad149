"""Fault injection on the HTTP layer, request counters and the thread runner."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import requests

from firecrest_double import FirecrestDouble, SimulatedScheduler

from .conftest import bearer

JOB_ROUTE = "GET /compute/{system_name}/jobs/{job_id}"
SUBMIT = "POST /compute/{system_name}/jobs"
BODY = {"job": {"workingDirectory": "/w", "script": "#!/bin/bash\nsleep 9\n"}}


async def test_status_fault_then_recovery(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    fc.faults.add(SUBMIT, count=2, status=503)
    statuses = []
    for _ in range(3):
        async with http.post(fc.url + "/compute/cluster/jobs", json=BODY,
                             headers=bearer(fc)) as r:
            statuses.append(r.status)
            assert r.headers["f7t-appversion"] == "2.5.6"
            body = await r.json()
    assert statuses == [503, 503, 201] and body["jobId"] == "1"
    assert fc.faults.pending == [] and fc.faults.spent[0].hits == 2
    assert [r.fault for r in fc.requests] == ["status 503", "status 503", None]


async def test_delay_fault(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    fc.faults.add("GET /status/systems", delay=0.5)
    t = time.monotonic()
    async with http.get(fc.url + "/status/systems", headers=bearer(fc)) as r:
        assert r.status == 200
    assert time.monotonic() - t >= 0.5


async def test_connection_reset_fault(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    # count=2: aiohttp's client retries an idempotent request once on a dropped connection
    fc.faults.add("*", count=2, reset=True)
    with pytest.raises(aiohttp.ClientError):
        async with http.get(fc.url + "/status/systems", headers=bearer(fc)) as r:
            await r.read()
    async with http.get(fc.url + "/status/systems", headers=bearer(fc)) as r:
        assert r.status == 200
    assert [r.fault for r in fc.requests] == ["reset", "reset", None]


async def test_closed_port_refuses_connections_and_keeps_the_jobs(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.post(fc.url + "/compute/cluster/jobs", json=BODY, headers=bearer(fc)) as r:
        job_id = (await r.json())["jobId"]
    url = fc.url

    await fc.close_port()
    with pytest.raises(aiohttp.ClientConnectorError):  # refused, also on a kept-alive pool
        async with http.get(url + "/status/systems", headers=bearer(fc)) as r:
            await r.read()
    await fc.open_port()

    assert fc.url == url
    async with http.get(f"{url}/compute/cluster/jobs/{job_id}", headers=bearer(fc)) as r:
        assert r.status == 200
        assert (await r.json())["jobs"][0]["jobId"] == job_id  # the job outlived the outage


def test_fault_arguments_are_checked() -> None:
    from firecrest_double import Faults

    with pytest.raises(ValueError):
        Faults().add("*")
    with pytest.raises(ValueError):
        Faults().add("*", status=200)


async def test_counters_per_route_and_job(fc: FirecrestDouble,
                                          http: aiohttp.ClientSession) -> None:
    async with http.post(fc.url + "/compute/cluster/jobs", json=BODY, headers=bearer(fc)) as r:
        jid = (await r.json())["jobId"]
    for _ in range(3):
        async with http.get(f"{fc.url}/compute/cluster/jobs/{jid}", headers=bearer(fc)) as r:
            assert r.status == 200
    assert fc.count(JOB_ROUTE) == 3 and fc.count(SUBMIT) == 1
    assert fc.count(job_id=jid) == 4 and fc.count(JOB_ROUTE, jid) == 3
    assert fc.count() == 4
    assert all(r.user == "alice" for r in fc.requests)
    fc.reset_counters()
    assert fc.count() == 0 and fc.requests == []


def test_thread_runner_serves_sync_clients() -> None:
    fc = FirecrestDouble(SimulatedScheduler("cluster", queue_delay=0.05)).start_in_thread()
    try:
        assert fc._thread is not None and fc._thread.is_alive()
        h = {"Authorization": f"Bearer {fc.idp.mint('alice')}"}
        r = requests.post(fc.url + "/compute/cluster/jobs", json=BODY, headers=h, timeout=10)
        assert r.status_code == 201 and r.headers["f7t-appversion"] == "2.5.6"
        jid = r.json()["jobId"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = requests.get(f"{fc.url}/compute/cluster/jobs/{jid}", headers=h,
                                 timeout=10).json()["jobs"][0]["status"]["state"]
            if state == "RUNNING":
                break
            time.sleep(0.02)
        assert state == "RUNNING"
        fc.call(fc.scheduler.end_job, jid, "NODE_FAIL")  # type: ignore[attr-defined]
        job = requests.get(f"{fc.url}/compute/cluster/jobs/{jid}", headers=h, timeout=10).json()
        assert job["jobs"][0]["status"]["state"] == "NODE_FAIL"
        fc.assert_no_violations()
    finally:
        fc.stop_thread()
    assert fc._thread is None
    with pytest.raises(requests.ConnectionError):
        requests.get(fc.url + "/status/liveness/", timeout=2)


async def test_state_change_hook(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    seen: list[tuple[str, str]] = []
    fc.scheduler.on_state_change.append(  # type: ignore[attr-defined]
        lambda job, state: seen.append((job.job_id, state)))
    async with http.post(fc.url + "/compute/cluster/jobs", json=BODY, headers=bearer(fc)) as r:
        jid = (await r.json())["jobId"]
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.02)
    assert seen == [(jid, "RUNNING")]
