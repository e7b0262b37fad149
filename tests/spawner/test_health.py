"""Health gating: a start on a system whose scheduler FirecREST reports unhealthy fails
with a clear message and submits nothing; the check is cached and shared by all starts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from firecrest_double import FirecrestDouble
from firecrestspawner import health

from .conftest import login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

SUBMIT = "POST /compute/{system_name}/jobs"
SYSTEMS = "GET /status/systems"


async def test_unhealthy_scheduler_refuses_the_start_until_it_recovers(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the TTL runs on a clock the test advances: a loaded machine cannot expire it early
    skew = [0.0]
    monkeypatch.setattr(health, "_clock", lambda: time.monotonic() + skew[0])
    double.unhealthy[("cluster", "scheduler")] = "slurmctld not responding"
    # the refusal comes within the POST itself (no progress stream to race: a cached
    # verdict can fail the start before a progress request would find it pending)
    app = await make_hub(health_check_ttl=30,
                         hub={"tornado_settings": {"slow_spawn_timeout": 10}})
    user, client, _ = await login(app, double)

    events = await start_server(client)
    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    assert "scheduler of cluster is reported unhealthy" in message
    assert "slurmctld not responding" in message and "no job was submitted" in message
    assert double.count(SUBMIT) == 0 and not double.scheduler.jobs_by_id

    def settled() -> bool:  # JupyterHub finished cleaning up the failed start
        spawner = user.spawner
        future = spawner._spawn_future  # kept, done, after a failed start
        return not (spawner.active or spawner.pending) and (future is None or future.done())

    await wait_for(settled, 10, what="failed start cleaned up")
    # still unhealthy within the TTL: answered from the cache
    events = await start_server(client)
    assert events[-1].get("failed") and double.count(SYSTEMS) == 1
    assert "unhealthy" in events[-1]["message"]

    del double.unhealthy[("cluster", "scheduler")]
    skew[0] = 31.0  # the cached answer is now older than the TTL
    await wait_for(settled, 10, what="failed start cleaned up")
    events = await start_server(client)
    assert events[-1].get("ready"), events
    assert double.count(SYSTEMS) == 2 and double.count(SUBMIT) == 1


async def test_concurrent_starts_share_one_health_request(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub()
    clients = [(await login(app, double, name=name))[1] for name in ("ann", "bob", "cy")]
    double.faults.add(SYSTEMS, delay=0.5)  # a slow answer: the others wait for the same one

    results = await asyncio.gather(*(start_server(c, name) for c, name in
                                     zip(clients, ("ann", "bob", "cy"), strict=True)))
    assert all(events[-1].get("ready") for events in results), results
    assert double.count(SYSTEMS) == 1 and double.count(SUBMIT) == 3


async def test_a_failing_health_check_does_not_gate(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """FirecREST cannot say: the start goes on (the submission has its own errors)."""
    app = await make_hub()
    _, client, _ = await login(app, double)
    double.faults.add(SYSTEMS, status=500, message="health probe failed")

    events = await start_server(client)
    assert events[-1].get("ready"), events
    assert double.count(SUBMIT) == 1


async def test_no_check_when_disabled(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.unhealthy[("cluster", "scheduler")] = "down"
    app = await make_hub(health_check_ttl=0)
    _, client, _ = await login(app, double)
    events = await start_server(client)
    assert events[-1].get("ready"), events
    assert double.count(SYSTEMS) == 0
