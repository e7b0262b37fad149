"""poll(): terminal states end a server; transient trouble does not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from firecrest_double import FirecrestDouble

from .conftest import running_server
from .fakecompute import FakeCompute

JOB = "GET /compute/{system_name}/jobs/{job_id}"


async def test_poll_is_one_call_per_interval(make_hub: Any, double: FirecrestDouble,
                                             compute: FakeCompute) -> None:
    app = await make_hub(poll_cache_seconds=0.5)
    spawner = await running_server(app, double)
    await asyncio.sleep(0.6)
    double.reset_counters()

    results = await asyncio.gather(*(spawner.poll() for _ in range(10)))
    assert results == [None] * 10
    assert double.count() == 1 and double.count(JOB, spawner.job_id) == 1
    assert await spawner.poll() is None
    assert double.count() == 1, "a second poll within the interval is answered from cache"
    await asyncio.sleep(0.6)
    assert await spawner.poll() is None
    assert double.count() == 2


@pytest.mark.parametrize("state", ["NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "PREEMPTED"])
async def test_terminal_state_ends_the_server(make_hub: Any, double: FirecrestDouble,
                                              compute: FakeCompute, state: str) -> None:
    app = await make_hub(poll_cache_seconds=0)
    spawner = await running_server(app, double)
    await double.scheduler.end_job(spawner.job_id, state)

    assert await spawner.poll() is not None


async def test_cancelled_by_admin_ends_the_server(make_hub: Any, double: FirecrestDouble,
                                                  compute: FakeCompute) -> None:
    app = await make_hub(poll_cache_seconds=0)
    spawner = await running_server(app, double)
    await double.scheduler.cancel("root", spawner.job_id)
    job = double.scheduler.jobs_by_id[spawner.job_id]
    assert job.state.startswith("CANCELLED by ")

    assert await spawner.poll() is not None


async def test_5xx_and_timeouts_keep_a_running_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        caplog: pytest.LogCaptureFixture) -> None:
    app = await make_hub(poll_cache_seconds=0, poll_retries=1, firecrest_timeout=0.5)
    spawner = await running_server(app, double)
    double.faults.add(JOB, count=4, status=503)
    double.faults.add(JOB, count=2, delay=2.0)  # longer than the request timeout
    double.faults.add(JOB, count=2, reset=True)

    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            assert await spawner.poll() is None
    assert not double.faults.pending
    assert "keeping the server" in caplog.text
    assert await spawner.poll() is None
    assert spawner._outages == 0, "a successful poll resets the failure count"
    assert spawner.ready


async def test_job_forgotten_by_slurm_is_gone(make_hub: Any, double: FirecrestDouble,
                                              compute: FakeCompute) -> None:
    app = await make_hub(poll_cache_seconds=0, not_found_grace=0.0, not_found_recheck=0.1)
    spawner = await running_server(app, double)
    del double.scheduler.jobs_by_id[spawner.job_id]  # past Slurm's MinJobAge

    assert await spawner.poll() == 0


async def test_not_found_right_after_submit_is_tolerated(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """FirecREST may not know a job for a moment after submitting it."""
    double.faults.add(JOB, count=3, status=404, message="Job not found.")
    app = await make_hub()
    spawner = await running_server(app, double)
    assert spawner.ready
    assert not double.faults.pending


async def test_401_refreshes_the_token_and_keeps_the_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(poll_cache_seconds=0)
    spawner = await running_server(app, double)
    refreshes = double.idp.refresh_count
    old = double.idp.kid
    double.idp.rotate_key()
    double.idp.retire_key(old)
    # FirecREST loads the JWKS only when it starts: after its restart the spawner's
    # cached token (old key) is answered with 401.
    assert await double.reload_jwks() == 1
    async with httpx.AsyncClient() as http:
        answer = await http.get(double.url + "/status/systems",
                                headers={"Authorization": f"Bearer {double.idp.mint('bob')}"})
    assert answer.status_code == 200

    assert await spawner.poll() is None
    assert double.idp.refresh_count == refreshes + 1
    statuses = [r.status for r in double.requests if r.route == JOB]
    assert 401 in statuses and statuses[-1] == 200


async def test_service_account_polls_for_the_hub(make_hub: Any, double: FirecrestDouble,
                                                 compute: FakeCompute) -> None:
    client = double.idp.register_client("jhub-poller")
    app = await make_hub(poll_cache_seconds=0, service_client_id=client.client_id,
                         service_client_secret=client.secret,
                         batch_poll=False)  # one request per job (test_batchpoll: listing)
    spawner = await running_server(app, double)
    double.reset_counters()

    assert await spawner.poll() is None
    (record,) = [r for r in double.requests if r.route == JOB]
    assert record.user == client.username
    assert double.idp.grant_counts.get("client_credentials") == 1
