"""start() returns once JupyterLab answers, through JupyterHub's REST API and progress."""

from __future__ import annotations

from typing import Any

from firecrest_double import FirecrestDouble

from .conftest import login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

FAST = {"poll_cache_seconds": 0, "reconcile_backoff": 0.2, "reconcile_backoff_max": 0.5,
        "firecrest_timeout": 0.5, "stop_timeout": 1.0, "poll_retries": 0}


def _state(double: FirecrestDouble, job_id: str) -> str:
    return double.scheduler.jobs_by_id[job_id].state  # type: ignore[attr-defined]


async def test_ready_only_once_the_lab_answered(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    user, client, _ = await login(app, double)

    events = await start_server(client)
    assert events[-1].get("ready"), events[-1]
    messages = [e["message"] for e in events]
    starting = [i for i, m in enumerate(messages) if m.startswith("JupyterLab is starting on")]
    up = [i for i, m in enumerate(messages) if m.startswith("JupyterLab is up on")]
    assert starting and up and starting[0] < up[0], messages
    (lab,) = compute.labs.values()
    assert lab.hits >= 1, "the spawner (then the hub) asked the lab itself"
    assert _state(double, user.spawner.job_id) == "RUNNING"


async def test_a_lab_that_never_answers_fails_the_start_and_its_job_is_cancelled(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    compute.lab_status = 503  # listening, called back, never ready
    app = await make_hub(**FAST, http_timeout=2)
    _, client, _ = await login(app, double)

    events = await start_server(client)
    assert events[-1].get("failed"), events[-1]
    message = events[-1]["message"]
    (lab,) = compute.labs.values()
    assert lab.callback_status in (200, 202)  # verified at once, or recorded
    assert "did not answer the hub within 2 s" in message and lab.job_id in message, message
    assert "http_timeout" in message
    await wait_for(lambda: _state(double, lab.job_id).startswith("CANCELLED"), 10,
                   what="job cancelled after its lab never answered")
    status, body = await client.request("GET", "/users/alice")
    assert status == 200 and body["servers"] == {}, body
