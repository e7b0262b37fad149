"""Batched polling through JupyterHub: one job listing per poll interval serves every server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from firecrest_double import FirecrestDouble
from firecrestspawner import batchpoll

from .conftest import login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

LIST = "GET /compute/{system_name}/jobs"
JOB = "GET /compute/{system_name}/jobs/{job_id}"
SERVERS = 8


async def hub_with_servers(make_hub: Any, double: FirecrestDouble, n: int = SERVERS,
                           **overrides: Any) -> tuple[Any, list[Any]]:
    """A hub with a service account and ``n`` users' servers running (started through
    the REST API at once); returns the hub and the ready spawners."""
    client = double.idp.register_client("jhub-poller")
    settings = {"poll_cache_seconds": 0, "service_client_id": client.client_id,
                "service_client_secret": client.secret, **overrides}
    app = await make_hub(**settings)
    users = [await login(app, double, name=f"user{i}") for i in range(n)]
    events = await asyncio.gather(*(start_server(c, name=u.name) for u, c, _ in users))
    assert all(e[-1].get("ready") for e in events), events
    return app, [u.spawner for u, _, _ in users]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The listings' clock: ``clock[0] += seconds`` moves it on (no sleeping)."""
    now = [1000.0]
    monkeypatch.setattr(batchpoll, "_clock", lambda: now[0])
    return now


def next_interval(clock: list[float], spawners: list[Any]) -> None:
    """One poll_interval later: the shared listing has expired."""
    clock[0] += spawners[0].poll_interval


async def poll_round(spawners: list[Any]) -> list[Any]:
    """What JupyterHub's periodic callbacks do, every server at once."""
    return list(await asyncio.gather(*(sp.poll_and_notify() for sp in spawners)))


async def test_one_listing_polls_every_server(make_hub: Any, double: FirecrestDouble,
                                              compute: FakeCompute, clock: list[float]) -> None:
    _, spawners = await hub_with_servers(make_hub, double)
    next_interval(clock, spawners)
    double.reset_counters()

    assert await poll_round(spawners) == [None] * SERVERS
    assert double.count(LIST) == 1 and double.count(JOB) == 0, dict(double.route_counts)
    (listing,) = [r for r in double.requests if r.route == LIST]
    assert listing.user == "service-account-jhub-poller"
    assert await poll_round(spawners) == [None] * SERVERS
    assert double.count() == 1, "within the interval the listing is shared, not repeated"

    next_interval(clock, spawners)
    assert await poll_round(spawners) == [None] * SERVERS
    assert double.count(LIST) == 2 and double.count() == 2


async def test_job_killed_behind_the_hubs_back_is_detected(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute, clock: list[float]) -> None:
    app, spawners = await hub_with_servers(make_hub, double)
    victim = spawners[3]
    job_id = victim.job_id
    await double.scheduler.cancel("root", job_id)  # an admin's scancel
    next_interval(clock, spawners)
    double.reset_counters()

    results = await poll_round(spawners)
    assert results[3] is not None and results[:3] + results[4:] == [None] * (SERVERS - 1)
    # the listing shows the job CANCELLED; its own request confirms before the server ends
    assert double.count(LIST) == 1, dict(double.route_counts)
    assert double.count(JOB) == 1 and double.count(JOB, job_id) == 1, dict(double.route_counts)
    user = app.users[victim.user.name]
    await wait_for(lambda: not user.spawner.active, 10, what="the hub to stop the server")
    assert double.scheduler.jobs_by_id[job_id].state.startswith("CANCELLED by ")
    assert all(sp.active for sp in spawners if sp is not victim)


async def test_job_absent_from_the_listing_needs_two_not_found(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute, clock: list[float]) -> None:
    _, spawners = await hub_with_servers(make_hub, double, n=3, not_found_grace=0.0,
                                         not_found_recheck=0.1)
    gone = spawners[1]
    job_id = gone.job_id
    del double.scheduler.jobs_by_id[job_id]  # past Slurm's MinJobAge: nobody knows it
    next_interval(clock, spawners)
    double.reset_counters()

    assert await poll_round(spawners) == [None, 0, None]
    assert double.count(LIST) == 1
    assert double.count(JOB, job_id) == 2, "absent from the listing: asked for, twice"
    assert double.count(JOB) == 2


async def test_listing_failure_falls_back_to_per_job_polls(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute, clock: list[float]) -> None:
    _, spawners = await hub_with_servers(make_hub, double, n=4)
    next_interval(clock, spawners)
    double.reset_counters()
    double.faults.add(LIST, count=1, status=503)

    assert await poll_round(spawners) == [None] * 4
    assert double.count(LIST) == 1 and double.count(JOB) == 4, dict(double.route_counts)
    assert await poll_round(spawners) == [None] * 4
    assert double.count(LIST) == 1, "a failed listing is not retried within the interval"
    assert double.count(JOB) == 8

    next_interval(clock, spawners)  # the listing works again
    assert await poll_round(spawners) == [None] * 4
    assert double.count(LIST) == 2 and double.count(JOB) == 8
    assert all(sp.active for sp in spawners)
