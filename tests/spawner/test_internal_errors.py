"""Bugs are errors, never FirecREST outages: a ``KeyError``/``TypeError`` raised inside the
spawner while starting, polling or stopping is logged with its traceback, reaches the
user as a sentence (start), never counts as an outage, and never loses the job.

The bug is injected by replacing one internal function (the requeue judgement, the
gateway's cancel-and-confirm); everything else is JupyterHub's own code path (REST API,
poll_and_notify, User.stop) against the FirecREST double.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from firecrest_double import FirecrestDouble
from firecrestspawner import gateway, pollflow, startflow

from .conftest import USER, login, running_server, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for
from .test_lifecycle import FAST


def _state(double: FirecrestDouble, job_id: str) -> str:
    return double.scheduler.jobs_by_id[job_id].state  # type: ignore[attr-defined]


def _tracebacks(caplog: pytest.LogCaptureFixture, kind: type[BaseException]) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.exc_info and isinstance(r.exc_info[1], kind)]


def _bug(kind: type[Exception]) -> Any:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise kind("injected bug")
    return broken


async def test_a_bug_in_start_reaches_the_rest_api_as_a_sentence(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    double.scheduler.queue_delay = 3600  # the job waits in the queue; the bug hits there
    monkeypatch.setattr(startflow, "requeued", _bug(KeyError))
    # the POST waits for the start's outcome: its JSON body is what an API client sees
    app = await make_hub(hub={"tornado_settings": {"slow_spawn_timeout": 30}}, **FAST)
    user, client, _ = await login(app, double)

    status, body = await client.request("POST", f"/users/{USER}/server")

    assert status == 500, body
    message = body["message"]
    assert "internal error in the hub's FirecRESTSpawner (KeyError)" in message, body
    assert "Internal Server Error" not in message
    assert any("internal error while starting" in m for m in _tracebacks(caplog, KeyError))
    (job_id,) = list(double.scheduler.jobs_by_id)
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 15,
                   what="the submitted job cancelled after the failed start")
    assert user.spawner._outages == 0


async def test_a_bug_in_poll_is_an_error_not_an_outage(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = await make_hub(**FAST)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    spawner = user.spawner
    job_id = spawner.job_id
    monkeypatch.setattr(pollflow, "requeued", _bug(TypeError))

    assert await spawner.poll_and_notify() is None  # JupyterHub's periodic poll
    assert await spawner.poll_and_notify() is None

    assert spawner.internal_errors == 2 and spawner._outages == 0
    assert len([m for m in _tracebacks(caplog, TypeError) if "internal error while polling"
                in m]) == 2
    assert spawner.active and _state(double, job_id) == "RUNNING", "the server is kept"

    # the user stops it through the REST API (the bug still there): User.stop polls
    # (None), then stop() cancels and confirms
    status, _ = await client.request("DELETE", f"/users/{USER}/server")
    assert status in (202, 204), status
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 15,
                   what="job cancelled by the stop")


async def test_a_bug_in_stop_leaves_the_job_to_the_reconciler(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = await make_hub(**FAST)
    spawner = await running_server(app, double)
    job_id = spawner.job_id
    real = gateway.JobGateway.cancel_and_confirm
    calls = []

    async def once_broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise TypeError("injected bug")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(gateway.JobGateway, "cancel_and_confirm", once_broken)

    await app.users[USER].stop("")  # what the REST API's DELETE runs

    assert not spawner.active
    assert any("internal error while stopping" in m for m in _tracebacks(caplog, TypeError))
    assert spawner.internal_errors == 1 and spawner._outages == 0
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 15,
                   what="job cancelled by the reconciler after the failed stop")
