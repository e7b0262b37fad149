"""Health gating: no job is submitted to a system whose scheduler FirecREST reports unhealthy.

FirecREST v2's ``GET /status/systems`` lists, per system, ``servicesHealth`` entries
``{serviceType, healthy, message, lastChecked}``. Before a submission the spawner asks
:func:`scheduler_health` whether the ``scheduler`` entry of its system is healthy:

* the answer is cached per hub (event loop), FirecREST URL and system for
  ``health_check_ttl`` seconds, and one request at a time is made for all the starts
  that need it (the others wait for the same answer);
* nothing here blocks the event loop: the request is the gateway's bounded async call;
* when FirecREST cannot answer, or does not describe the system, the check does not
  gate: the submission then fails or succeeds on its own, with its own message (a
  user's refused token ends the start at once, as the submission would).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import StartFailed
from .gateway import Failure, GatewayError, JobGateway
from .lifecycle import State

#: The ``servicesHealth`` entry that gates submissions.
SERVICE = "scheduler"


@dataclass(frozen=True)
class Health:
    """The scheduler's health of one system as FirecREST reported it."""

    healthy: bool
    message: str
    checked: str  # FirecREST's lastChecked, as given


@dataclass
class _Entry:
    at: float  # when the answer came (monotonic)
    systems: dict[str, Health] = field(default_factory=dict)
    task: asyncio.Task[dict[str, Health]] | None = None  # the request in flight


_cache: dict[tuple[int, str], _Entry] = {}

#: The clock the TTL is measured with (a test advances its own instead of sleeping).
_clock: Callable[[], float] = time.monotonic


def parse(systems: Any) -> dict[str, Health]:
    """``{system: Health}`` of a ``/status/systems`` answer (systems with a scheduler entry)."""
    out: dict[str, Health] = {}
    for system in systems if isinstance(systems, list) else []:
        if not isinstance(system, dict) or not isinstance(system.get("name"), str):
            continue
        for entry in system.get("servicesHealth") or []:
            if isinstance(entry, dict) and entry.get("serviceType") == SERVICE:
                out[system["name"]] = Health(
                    healthy=entry.get("healthy") is not False,
                    message=str(entry.get("message") or "no message"),
                    checked=str(entry.get("lastChecked") or "unknown"),
                )
    return out


async def scheduler_health(fetch: Callable[[], Awaitable[Any]], firecrest_url: str,
                           system: str, ttl: float) -> Health | None:
    """The scheduler health of ``system`` (cached ``ttl`` s), or None when FirecREST does
    not describe it.

    ``fetch`` returns FirecREST's list of systems (a gateway call). When it fails, the
    caller whose ``fetch`` ran gets its :class:`~.gateway.GatewayError`; callers that
    waited for that same request get None. Failures are not cached.
    """
    loop = asyncio.get_running_loop()
    key = (id(loop), firecrest_url)
    entry = _cache.get(key)
    if entry is not None and entry.task is None and _clock() - entry.at < ttl:
        return entry.systems.get(system)
    created = entry is None or entry.task is None
    if created:
        entry = _cache[key] = _Entry(at=_clock(),
                                     task=loop.create_task(_fetch(fetch)))
    assert entry is not None and entry.task is not None
    task = entry.task
    try:
        systems = await asyncio.shield(task)
    except GatewayError:
        if _cache.get(key) is entry:
            del _cache[key]
        if created:
            raise
        return None
    if entry.task is task:
        entry.task, entry.at, entry.systems = None, _clock(), systems
    return systems.get(system)


async def _fetch(fetch: Callable[[], Awaitable[Any]]) -> dict[str, Health]:
    return parse(await fetch())


async def gate(spawner: Any) -> None:
    """Raise :class:`~.errors.StartFailed` (nothing submitted) when the spawner's system
    has an unhealthy scheduler; called by ``start()`` before it submits.

    Asks with the service account when one is configured, else with the user's token
    (whose refusal ends the start as a submission's would: the user must log in).
    """
    ttl = spawner.health_check_ttl
    if ttl <= 0:
        return
    gw: JobGateway = spawner.poll_gateway()
    try:
        health = await scheduler_health(lambda: gw.call(gw.client.systems),
                                        spawner.firecrest_url, spawner.system, ttl)
    except GatewayError as exc:
        if exc.failure is Failure.LOGIN_REQUIRED and gw is spawner.gateway():
            raise spawner._submit_failed(exc) from None
        spawner.log.warning("%s: cannot read the health of %s from FirecREST (%s); "
                            "submitting anyway", spawner._log_name, spawner.system, exc.detail)
        return
    if health is None or health.healthy:
        return
    spawner.lifecycle.to(State.IDLE, "scheduler unhealthy")
    spawner.log.warning("%s: not submitting: FirecREST reports the scheduler of %s unhealthy "
                        "(%s, checked %s)", spawner._log_name, spawner.system, health.message,
                        health.checked)
    raise StartFailed(
        f"The scheduler of {spawner.system} is reported unhealthy by FirecREST "
        f"({health.message}; checked {health.checked}), so no job was submitted: it could "
        "not start now. Please try again in a few minutes", 503)


def clear() -> None:
    """Forget every cached answer (tests)."""
    _cache.clear()
