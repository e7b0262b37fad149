"""The poll flow: what the job's state means for a server that runs (or was restored).

:class:`PollFlow` (a base of FirecRESTSpawner) answers ``poll()``
(:meth:`PollFlow._poll_job`): one FirecREST status request per poll interval, shared
by concurrent callers and reused for ``poll_cache_seconds`` — or, with a service
account, the job's record in the hub's shared job listing (:mod:`.batchpoll`); failed
requests are retried ``poll_retries`` times with backoff. The status is then judged
(:meth:`PollFlow._judge`):

* queued or running: None (the server is kept);
* a terminal state, or "Job not found" seen twice: the exit status (the job ended);
* COMPLETING, a requeue (:mod:`.requeue`), or a restored job that never called back:
  the job is cancelled and confirmed ended (or handed to the reconciler), then the
  exit status;
* an outage (5xx, timeout, a 404 that is not "Job not found" for this job, a token
  endpoint in trouble): None, counted in ``_outages`` and logged.
"""

from __future__ import annotations

import asyncio
import time

from . import batchpoll, diagnostics, walltime
from .ending import JobEnding
from .gateway import Failure, GatewayError
from .lifecycle import State
from .requeue import requeue_message, requeued
from .slurm import JobStatus, Phase


class PollFlow(JobEnding):
    """Poll a server's job and judge its state (see the module text)."""

    async def _poll_job(self) -> int | None:
        """The answer behind :meth:`~.spawner.FirecRESTSpawner.poll`."""
        if not self.job_id:
            if (getattr(self, "server", None) is not None and not self._starting
                    and not self._started_here):
                # a server without a job, found by a restarted hub: the hub died between
                # submit and saving state
                self._sweep_in_background("a server without a recorded job")
            return self._exit_code if self.lifecycle.state is not State.IDLE else 0
        if self.lifecycle.state in (State.ENDED, State.HANDED_OVER):
            return self._exit_code
        if self._starting:
            return None
        cached = self._cached_status
        if cached is not None and time.monotonic() - cached[0] < self._cache_ttl():
            return cached[1]
        if self._poll_task is None or self._poll_task.done():
            self._poll_task = asyncio.ensure_future(self._poll_now())
        return await asyncio.shield(self._poll_task)

    def _cache_ttl(self) -> float:
        if self.poll_cache_seconds >= 0:
            return self.poll_cache_seconds
        return max(0.0, self.poll_interval / 2)


    async def _poll_now(self) -> int | None:
        self.reconciler()  # registered: a restarted hub resumes saved work
        if not self.job_host and self.lifecycle.state in (State.IDLE, State.QUEUED):
            # restored (load_state) with a job that never called back: the start that
            # waited for it died with the hub. Nobody waits for this job: end it.
            return await self._gone_and_end(
                f"job {self.job_id} was still starting when the hub stopped; nothing waits "
                "for its callback any more", 1)
        if self.reconcile_interval and time.monotonic() - self._last_sweep > self.reconcile_interval:
            self._last_sweep = time.monotonic()
            self._sweep_in_background("periodic orphan sweep")
        gw = self.poll_gateway()
        delay = self.poll_retry_backoff
        failure: GatewayError | None = None
        for attempt in range(self.poll_retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                status = await batchpoll.job_status(self, gw)  # shared listing or per job
            except GatewayError as exc:
                failure = exc
                if exc.failure is Failure.JOB_NOT_FOUND:
                    self.lifecycle.to(State.ENDED, "job not found (twice)")
                    return self._gone(f"FirecREST no longer knows job {self.job_id} "
                                      f"({exc.detail}, seen twice)", 0)
                if exc.failure is not Failure.OUTAGE:
                    break
                continue
            self._outages = 0
            return await self._judge(status)
        assert failure is not None
        self._outages += 1
        self.log.warning(
            "%s: poll of job %s failed (%d in a row): %s [%s]; keeping the server",
            self._log_name, self.job_id, self._outages, failure.detail, failure.failure.value)
        return None

    async def _judge(self, status: JobStatus) -> int | None:
        """What a job state means for a running server."""
        walltime.observe(self, status)
        if status.phase is Phase.RUNNING:
            self._seen_running = True
        if not self.allow_requeue and requeued(status, self._seen_running):
            message = requeue_message(self.job_id, status)
            if status.phase is Phase.TERMINAL:
                self.lifecycle.to(State.ENDED, message)
                return self._gone(message, status.exit_code or 1)
            return await self._gone_and_end(message, 1)
        if status.phase is Phase.TERMINAL:
            self.lifecycle.to(State.ENDED, status.describe())
            code = status.exit_code if status.exit_code is not None else 0
            why = f"job {self.job_id} is {status.describe()}"
            if diagnostics.unexpected(status):  # Slurm's words and the job's last lines
                why = await diagnostics.explain(self, why, None)
            return self._gone(why, code)
        if status.phase is Phase.ENDING:
            return await self._gone_and_end(f"job {self.job_id} is ending ({status.state})", 0)
        self._cached_status = (time.monotonic(), None)
        return None
