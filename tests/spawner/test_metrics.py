"""Prometheus metrics on the hub's own /hub/metrics (firecrestspawner.metrics), scraped
from a real hub after real starts against the FirecREST double."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from firecrest_double import FirecrestDouble

from .conftest import login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

SUBMIT = "POST /compute/{system_name}/jobs"
PHASES = ("queued", "job_start_to_callback", "callback_to_ready")
# Prometheus scrapes with a token holding read:metrics; these tests read it openly
OPEN = {"hub": {"authenticate_prometheus": False}}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(app: Any) -> Samples:
    """GET /hub/metrics of ``app``: every sample by (name, labels)."""
    async with aiohttp.ClientSession() as session, \
            session.get(app.hub.url.rstrip("/") + "/metrics") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_a_start_shows_its_phases_and_firecrest_requests_on_hub_metrics(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**OPEN)
    before = await scrape(app)
    for phase in PHASES:  # present before any start (dashboards show zeros, not gaps)
        assert ("f7t4jhub_spawn_phase_duration_seconds_count",
                frozenset({("phase", phase)})) in before
    _, client, _ = await login(app, double)
    events = await start_server(client)
    assert events[-1].get("ready"), events

    after = await scrape(app)
    count, seconds = ("f7t4jhub_spawn_phase_duration_seconds_count",
                      "f7t4jhub_spawn_phase_duration_seconds_sum")
    for phase in PHASES:
        assert value(after, count, phase=phase) - value(before, count, phase=phase) == 1, phase
    # the double queues each job for 0.3 s: the queued phase lasted at least that
    queued = value(after, seconds, phase="queued") - value(before, seconds, phase="queued")
    assert queued >= 0.25, queued
    assert value(after, seconds, phase="callback_to_ready") > value(
        before, seconds, phase="callback_to_ready")

    requests = "f7t4jhub_firecrest_requests_total"
    submitted = total(after, requests, route="POST /compute/{system}/jobs") - total(
        before, requests, route="POST /compute/{system}/jobs")
    assert submitted == double.count(SUBMIT) == 1
    polls = total(after, requests, route="GET /compute/{system}/jobs/{job_id}") - total(
        before, requests, route="GET /compute/{system}/jobs/{job_id}")
    assert polls >= 1
    statuses = {dict(ls)["status"] for (n, ls) in after if n == requests}
    assert statuses and all(s.isdigit() or s == "error" for s in statuses), statuses


async def test_a_refused_token_refresh_is_counted(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**OPEN)
    user, client, _ = await login(app, double, access_lifetime=20)  # inside the margin
    state = await user.get_auth_state()
    await user.save_auth_state(dict(state, refresh_token="rt-revoked"))
    before = await scrape(app)

    events = await start_server(client)
    assert events[-1].get("failed"), events

    after = await scrape(app)
    name = "f7t4jhub_token_refresh_failures_total"
    assert value(after, name, kind="refused") - value(before, name, kind="refused") == 1
    assert value(after, name, kind="transient") == value(before, name, kind="transient")


async def test_reconciler_actions_are_counted(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """A submission whose answer is lost: the job is found by name as an orphan, adopted
    and its end confirmed by the reconciler, each action counted."""
    double.scheduler.queue_delay = 3600
    app = await make_hub(**OPEN, poll_cache_seconds=0, reconcile_backoff=0.2,
                         reconcile_backoff_max=0.5, firecrest_timeout=0.5, stop_timeout=1.0,
                         poll_retries=0)
    _, client, _ = await login(app, double)
    before = await scrape(app)
    double.faults.add(SUBMIT, count=1, delay=2.0, late=True)

    events = await start_server(client)
    assert events[-1].get("failed"), events
    await wait_for(lambda: double.scheduler.jobs_by_id, 10, what="job created late")
    (job_id,) = list(double.scheduler.jobs_by_id)
    await wait_for(
        lambda: double.scheduler.jobs_by_id[job_id].state.startswith("CANCELLED"), 20,
        what="orphan cancelled")
    name = "f7t4jhub_reconciler_actions_total"

    async def confirmed() -> bool:
        after = await scrape(app)
        return value(after, name, action="confirmed") > value(before, name, action="confirmed")

    await wait_for(confirmed, 20, interval=0.2, what="confirmed end counted")
    after = await scrape(app)
    for action in ("orphan", "adopted"):
        assert value(after, name, action=action) - value(before, name, action=action) >= 1
    # the submission that timed out got no HTTP answer: counted with status "error"
    lost = {"route": "POST /compute/{system}/jobs", "status": "error"}
    requests = "f7t4jhub_firecrest_requests_total"
    assert value(after, requests, **lost) - value(before, requests, **lost) == 1
