"""How a server's job ends: cancelled and confirmed, or handed to the reconciler; orphan sweeps.

:class:`JobEnding` (a base of FirecRESTSpawner) binds one server to the hub's
:class:`~.reconciler.Reconciler`:

* :meth:`JobEnding._end_job` cancels the job and waits (bounded) for FirecREST to
  confirm its end; if it cannot, the job is handed to the reconciler, which keeps
  cancelling it (across ``clear_state()`` and hub restarts);
* :meth:`JobEnding._gone` records that the server is over (poll() returns its code);
* :meth:`JobEnding.sweep_orphans` finds the user's jobs that carry one of this hub's
  job names but belong to no server, and gives them to the reconciler.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .core import SpawnerCore
from .gateway import GatewayError
from .jobnames import LEGACY_JOB_NAME
from .lifecycle import State
from .reconciler import STATE_KEY, Reconciler, reconciler_for
from .script import safe_job_name

_NO_HUB = object()


class JobEnding(SpawnerCore):
    """Ending one server's job, with the reconciler behind it (see the module text)."""

    # ---------------------------------------------------------------- reconciler
    def reconciler(self) -> Reconciler:
        """This hub's :class:`~.reconciler.Reconciler`, with this server registered.

        The first spawner of a hub also makes the reconciler resume the unconfirmed
        jobs saved in the database before a restart.
        """
        settings = getattr(self.user, "settings", None)
        rec = reconciler_for(settings if settings is not None else _NO_HUB,
                             backoff=self.reconcile_backoff,
                             backoff_max=self.reconcile_backoff_max,
                             confirm_bound=min(self.stop_timeout, 30.0))
        rec.register(self.user.name, self.name or "", self.gateway, self._save_state)
        if not rec.resumed:
            rec.resumed = True
            asyncio.get_running_loop().call_soon(self._resume_from_db, settings)
        return rec

    def _resume_from_db(self, settings: Any) -> None:
        """Load every spawner whose saved state lists unconfirmed jobs (after a restart):
        its load_state() gives them to the reconciler."""
        users = settings.get("users") if isinstance(settings, dict) else None
        db = getattr(self, "db", None)
        if users is None or db is None:
            return
        from jupyterhub import orm

        try:
            rows = [s for s in db.query(orm.Spawner) if (s.state or {}).get(STATE_KEY)]
            for row in rows:
                user = users[row.user]
                spawner = user.spawners[row.name]
                if hasattr(spawner, "reconciler"):
                    spawner.reconciler().restore(user.name, row.name, row.state[STATE_KEY])
        except Exception:
            self.log.exception("could not resume unconfirmed jobs from the database")


    def _hand_over(self, reason: str) -> None:
        """Give the current job to the reconciler (it cancels until FirecREST confirms)."""
        self.reconciler().adopt(self.job_system or self.system, self.job_id, self.user.name,
                                self.name or "", reason)
        self.lifecycle.to(State.HANDED_OVER, reason)

    def job_names(self) -> dict[str, str]:
        """Job name -> server name for every server of this user this hub knows (names
        carry this hub's id; see :mod:`.jobnames`), except
        other servers that are submitting right now: their new job has no id here yet and
        must not be taken for an orphan (a failed submission sweeps for itself)."""
        names = {}
        servers = set(getattr(getattr(self.user, "orm_user", None), "orm_spawners", {}) or {})
        servers.add(self.name or "")
        spawners = getattr(self.user, "spawners", None) or {}
        for server in servers:
            other = spawners.get(server)
            if (other is not None and other is not self
                    and getattr(getattr(other, "lifecycle", None), "state", None)
                    is State.SUBMITTING):
                continue
            ns = self.template_namespace()
            ns["servername"] = server
            names[safe_job_name(self.job_name.format(**ns))] = server
            if self.legacy_job_names:  # a job submitted before hub ids (an upgrade)
                names[safe_job_name(LEGACY_JOB_NAME.format(**ns))] = server
        return names

    def _active_job_ids(self) -> set[str]:
        spawners = getattr(self.user, "spawners", None) or {}
        ids = {getattr(s, "job_id", "") for s in list(spawners.values())}
        ids.add(self.job_id)
        return {i for i in ids if i}

    async def sweep_orphans(self) -> list[str]:
        """Cancel (through the reconciler) this user's active jobs that carry one of this
        hub's job names but belong to no server; returns their ids. Raises GatewayError
        when FirecREST cannot list the jobs."""
        return await self.reconciler().sweep(self.user.name, self.system, self.gateway(),
                                             self.job_names(), self._active_job_ids())

    def _sweep_in_background(self, why: str) -> None:
        """Sweep for orphans until one sweep succeeds (bounded backoff, logged)."""
        if self._sweep_task is not None and not self._sweep_task.done():
            return

        async def run() -> None:
            delay = self.reconcile_backoff
            while True:
                try:
                    found = await self.sweep_orphans()
                    if found:
                        self.log.warning("%s: %s: orphan job(s) %s are being cancelled",
                                         self._log_name, why, ", ".join(found))
                    return
                except GatewayError as exc:
                    self.log.warning("%s: orphan sweep (%s) failed: %s; again in %.0f s",
                                     self._log_name, why, exc.detail, delay)
                except Exception:  # a bug, not an outage: logged, not retried
                    self.log.exception("%s: internal error in the orphan sweep (%s)",
                                       self._log_name, why)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconcile_backoff_max)

        self._sweep_task = asyncio.ensure_future(run())
        self.reconciler().tasks.add(self._sweep_task)  # stopped with the reconciler
        self._sweep_task.add_done_callback(self.reconciler().tasks.discard)

    # ---------------------------------------------------------------- ending a job
    async def _end_job(self, reason: str, bound: float) -> None:
        """Cancel the job and confirm its end within ``bound`` seconds, else hand it to
        the reconciler. Idempotent: concurrent callers share one attempt."""
        if not self.job_id or self.lifecycle.state in (State.ENDED, State.HANDED_OVER):
            return
        if self._end_task is None or self._end_task.done():
            self._end_task = asyncio.ensure_future(self._end_now(reason, bound))
        await asyncio.shield(self._end_task)

    async def _end_now(self, reason: str, bound: float) -> None:
        self.lifecycle.to(State.STOPPING, reason)
        gw = self.gateway()
        ended, how = await gw.cancel_and_confirm(self.job_system, self.job_id, bound)
        if ended:
            self.log.info("%s: job %s ended: %s", self._log_name, self.job_id, how)
            self.lifecycle.to(State.ENDED, how)
            return
        self.log.warning("%s: job %s not confirmed ended %.0f s after cancelling (last: %s); "
                         "the reconciler keeps cancelling it", self._log_name, self.job_id,
                         bound, how)
        self._hand_over(f"{reason}; not confirmed ended: {how}")

    async def _gone_and_end(self, why: str, code: int) -> int:
        """The server is over but its job may live: cancel it (or hand it over)."""
        await self._end_job(why, min(self.stop_timeout, 10.0))
        return self._gone(why, code)

    def _gone(self, why: str, code: int) -> int:
        self.log.warning("%s: server gone: %s", self._log_name, why)
        self.end_reason = why
        self._exit_code = code
        self._cached_status = (time.monotonic(), code)
        return code
