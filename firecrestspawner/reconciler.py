"""The reconciler: jobs the hub no longer serves are cancelled until FirecREST confirms they ended.

A server can end while its job's end cannot be confirmed: FirecREST is down when the
user stops it, a start fails while FirecREST does not answer, a requeued job must go.
JupyterHub then calls ``clear_state()`` and forgets the job. Before that, the spawner
hands the job to the reconciler (:meth:`Reconciler.adopt`), which

* keeps trying to cancel it and to see it in a terminal state, with bounded
  exponential backoff (``reconcile_backoff`` doubling up to ``reconcile_backoff_max``),
  logging each attempt;
* keeps it in the owning spawner's saved state (``get_state()["unconfirmed_jobs"]``,
  written to JupyterHub's database whenever the list changes), so that a hub that
  restarts picks the work up again (:meth:`Reconciler.resume_from_db` scans the
  database once per hub);
* sweeps users' job lists for **orphans**: active jobs whose name is one of the
  user's server job names but that no running server of this hub owns (a hub killed
  hard between submit and saving its state). They are cancelled the same way.

There is one reconciler per hub (per JupyterHub tornado settings in the running loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .gateway import Failure, GatewayError, JobGateway

log = logging.getLogger(__name__)

STATE_KEY = "unconfirmed_jobs"


@dataclass
class Unconfirmed:
    """A job that must end but whose end FirecREST has not confirmed yet."""

    system: str
    job_id: str
    user: str
    server: str
    reason: str
    attempts: int = 0
    next_try: float = 0.0
    last: str = ""

    def as_state(self) -> dict[str, str]:
        """The part kept in the spawner's state (JSON)."""
        return {"system": self.system, "job_id": self.job_id, "reason": self.reason}


@dataclass
class _Owner:
    """How to reach FirecREST for one (user, server) and where to save its state."""

    gateway: Callable[[], JobGateway]
    save: Callable[[], None]


@dataclass
class Reconciler:
    """Cancels unconfirmed jobs and orphans until FirecREST confirms they ended."""

    backoff: float = 5.0
    backoff_max: float = 300.0
    confirm_bound: float = 30.0
    jobs: dict[tuple[str, str], Unconfirmed] = field(default_factory=dict)
    owners: dict[tuple[str, str], _Owner] = field(default_factory=dict)
    resumed: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    #: Background orphan sweeps of the hub's spawners (cancelled by :meth:`stop`).
    tasks: set[asyncio.Future[None]] = field(default_factory=set)
    #: Jobs confirmed ended, in order (job id, how): for logs and tests.
    confirmed: list[tuple[str, str]] = field(default_factory=list)

    # ---------------------------------------------------------------- owners
    def register(self, user: str, server: str, gateway: Callable[[], JobGateway],
                 save: Callable[[], None]) -> None:
        """Tell the reconciler how to act for ``user``'s ``server`` (latest spawner wins)."""
        self.owners[(user, server)] = _Owner(gateway, save)

    def pending_for(self, user: str, server: str) -> list[Unconfirmed]:
        """The unconfirmed jobs of one server (what its ``get_state()`` saves)."""
        return [j for j in self.jobs.values() if (j.user, j.server) == (user, server)]

    def owns(self, system: str, job_id: str) -> bool:
        """Whether the reconciler is ending this job."""
        return (system, job_id) in self.jobs

    # ---------------------------------------------------------------- work
    def adopt(self, system: str, job_id: str, user: str, server: str, reason: str) -> None:
        """Take over a job that must end: cancel it until FirecREST confirms its end.

        Called by the spawner before it forgets a job it could not confirm ended.
        Returns at once; the work happens in the background.
        """
        key = (system, job_id)
        if key not in self.jobs:
            log.warning("reconciler: job %s on %s of %s/%s must end (%s); cancelling it "
                        "until FirecREST confirms", job_id, system, user, server or "''",
                        reason)
            self.jobs[key] = Unconfirmed(system, job_id, user, server, reason)
            metrics.reconciler_action("adopted")
            self._save(user, server)
        self._ensure_running()
        self._wake.set()

    def _save(self, user: str, server: str) -> None:
        owner = self.owners.get((user, server))
        if owner is not None:
            try:
                owner.save()
            except Exception:
                log.exception("reconciler: could not save the state of %s/%s", user, server)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.jobs:
            now = time.monotonic()
            due = [j for j in list(self.jobs.values()) if j.next_try <= now]
            await asyncio.gather(*(self._attempt(j) for j in due))
            if not self.jobs:
                break
            wait = max(0.05, min(j.next_try for j in self.jobs.values()) - time.monotonic())
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _attempt(self, job: Unconfirmed) -> None:
        owner = self.owners.get((job.user, job.server))
        job.attempts += 1
        if owner is None:
            ended, how = False, "no spawner of this server is loaded yet"
        else:
            try:
                gateway = owner.gateway()
                ended, how = await gateway.cancel_and_confirm(job.system, job.job_id,
                                                              self.confirm_bound)
            except Exception as exc:
                log.exception("reconciler: error while ending job %s", job.job_id)
                ended, how = False, f"{type(exc).__name__}: {exc}"
        if ended:
            log.info("reconciler: job %s of %s/%s confirmed ended: %s", job.job_id, job.user,
                     job.server or "''", how)
            self.jobs.pop((job.system, job.job_id), None)
            self.confirmed.append((job.job_id, how))
            metrics.reconciler_action("confirmed")
            self._save(job.user, job.server)
            return
        delay = min(self.backoff * 2 ** (job.attempts - 1), self.backoff_max)
        job.next_try = time.monotonic() + delay
        job.last = how
        metrics.reconciler_action("retry")
        log.warning("reconciler: job %s of %s/%s not confirmed ended after attempt %d (%s); "
                    "next try in %.1f s", job.job_id, job.user, job.server or "''",
                    job.attempts, how, delay)

    async def sweep(self, user: str, system: str, gateway: JobGateway,
                    names: dict[str, str], active: set[str]) -> list[str]:
        """Find the user's orphan jobs and adopt them; returns their ids.

        ``names`` maps each job name this hub gives the user's servers to the server
        name; ``active`` holds the job ids running servers own. Raises GatewayError when
        the job list cannot be had (the caller decides whether that matters).
        """
        found = []
        for name, status in await gateway.jobs(system):
            server = names.get(name)
            if server is None or status.over or status.job_id in active:
                continue
            if self.owns(system, status.job_id):
                continue
            self.adopt(system, status.job_id, user, server,
                       f"orphan job {name} ({status.describe()}) that no server of this hub owns")
            found.append(status.job_id)
            metrics.reconciler_action("orphan")
        return found

    def restore(self, user: str, server: str, saved: Any) -> None:
        """Take the unconfirmed jobs of a saved spawner state (after a hub restart)."""
        if not isinstance(saved, list):
            return
        for entry in saved:
            if not isinstance(entry, dict) or not entry.get("job_id"):
                continue
            key = (str(entry.get("system", "")), str(entry["job_id"]))
            if key not in self.jobs:
                self.jobs[key] = Unconfirmed(key[0], key[1], user, server,
                                             str(entry.get("reason", "saved before a restart")))
                metrics.reconciler_action("restored")
        if self.jobs:
            self._ensure_running()
            self._wake.set()

    async def stop(self) -> None:
        """Stop working (the unconfirmed jobs stay in the saved states)."""
        for task in list(self.tasks):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None


def failure_is_final(exc: GatewayError) -> bool:
    """Whether a failure cannot heal without someone acting (login, permissions)."""
    return exc.failure in (Failure.LOGIN_REQUIRED, Failure.FORBIDDEN, Failure.REFUSED)


# One reconciler per hub: keyed by the id of the hub's tornado settings, in this loop.
_reconcilers: dict[tuple[int, int], tuple[Any, Reconciler]] = {}


def reconciler_for(settings: Any, **kwargs: Any) -> Reconciler:
    """The hub's reconciler (created on first use with ``kwargs``)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), id(settings))
    entry = _reconcilers.get(key)
    if entry is None or entry[0] is not settings:
        entry = _reconcilers[key] = (settings, Reconciler(**kwargs))
    rec = entry[1]
    for name, value in kwargs.items():
        setattr(rec, name, value)
    return rec


async def stop_all() -> None:
    """Stop every reconciler of this process (tests; a hub exits anyway)."""
    for _, rec in list(_reconcilers.values()):
        await rec.stop()
    _reconcilers.clear()
