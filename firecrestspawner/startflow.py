"""The start flow: submit the job, wait until it is ready, within the start budget.

:class:`StartFlow` (a base of FirecRESTSpawner) runs what ``start()`` does once the
batch script is written (:meth:`StartFlow._start_job`):

1. health gate (:mod:`.health`), then submit; the job id is saved to JupyterHub's
   database at once, and an orphan sweep runs beside the start;
2. wait until ready: check the job's state every ``start_poll_interval`` s (progress
   events: queued with Slurm's reason, running on its nodes) until the launcher's
   callback arrives, the job ends, is requeued (:mod:`.requeue`), the user stops the
   server, or the start budget (``start_timeout`` minus a margin) runs out;
3. after the callback (answered at once, JupyterLab starting meanwhile), verify that the
   reported host is one of the job's nodes (:mod:`.callback`; a host that is not fails
   the start with 403), then wait until JupyterLab answers (:mod:`.readiness`, checked
   every 0.1 s within ``http_timeout``), so that JupyterHub's own check, with its
   back-off, succeeds at once: the hub contacts only a verified host, and ``start()``
   returns (the proxy routes) only once both are done;
4. on any failure the job is cancelled and its end confirmed (or handed to the
   reconciler) before the :class:`~.errors.StartFailed` leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from . import diagnostics, health, readiness, walltime
from .callback import CallbackBinding
from .compute.hosts import NO_NODES
from .ending import JobEnding
from .errors import JobEnded, LoginRequired, StartFailed, StartTimeout
from .gateway import Failure, GatewayError, JobGateway
from .lifecycle import State
from .requeue import requeue_message, requeued
from .slurm import JobStatus, Phase


class StartFlow(JobEnding, CallbackBinding):
    """Submit a server's job and wait for it to come up (see the module text)."""

    async def _start_job(self, script: str, workdir: str,
                         gate: Callable[[], Awaitable[None]] | None = None) -> tuple[str, int]:
        """Submit ``script`` in ``workdir`` and wait for the job's callback; returns
        ``(host, port)`` or raises :class:`~.errors.StartFailed` (job ended first).
        ``gate`` may refuse the start before anything is submitted (the live data)."""
        loop = asyncio.get_running_loop()
        self._start_began = time.monotonic()
        self._stop_requested = False
        self._starting = True
        self._events = []
        self._events_changed = asyncio.Event()
        self._callback = loop.create_future()
        self._cached_status = None
        self._end_task = None
        self._seen_running = False
        self._nodes_seen = ""
        self._outages = 0
        self.end_reason = ""
        self.job_host, self.job_port = "", 0
        self._started_here = True
        self.lifecycle.reset()
        self.lifecycle.to(State.SUBMITTING, "start")
        try:
            gw = self.gateway()
            if gate is not None:
                await gate()  # choices the cluster does not offer now: nothing submitted
            await health.gate(self)  # an unhealthy scheduler: no job, a clear message
            self._event(5, f"Submitting the JupyterLab job to {self.system}")
            try:
                job_id = await gw.submit(self.system, workdir, script)
            except GatewayError as exc:
                raise self._submit_failed(exc) from None
            self.job_id, self.job_system, self.job_workdir = job_id, self.system, workdir
            self._submitted_at = time.monotonic()
            self.lifecycle.to(State.QUEUED, f"job {job_id} submitted")
            self._save_state()  # a hub killed from now on finds the job id
            if self.cancel_stale_jobs:
                # Jobs of this server left by a hub that crashed while starting: looked for
                # once the new job's id is known (so it is never taken for one), beside the
                # start instead of before it (one FirecREST round trip less to wait for).
                self._sweep_in_background("jobs left by an earlier start")
            self._event(10, f"Job {job_id} submitted to {self.system}")
            try:
                host, port = await self._wait_until_ready(gw)
                await self._wait_until_answering(host, port)
            except BaseException as exc:
                reason = str(exc) or type(exc).__name__
                self.log.warning("%s: start failed (%s); ending job %s", self._log_name,
                                 reason, self.job_id)
                await asyncio.shield(self._end_job(f"start failed: {reason}",
                                                   min(self.stop_timeout, 30.0)))
                await diagnostics.annotate(self, exc)  # the job's last output lines
                raise
            self.job_host, self.job_port = host, port
            self.lifecycle.to(State.RUNNING, "callback received")
            self._event(95, f"JupyterLab is up on {host}:{port}")
            return host, port
        finally:
            self._starting = False
            if self._events_changed is not None:
                self._events_changed.set()

    async def _wait_until_answering(self, host: str, port: int) -> None:
        """Return once the server at ``host:port`` answers the URL JupyterHub checks;
        raise :class:`~.errors.StartFailed` when it did not within ``http_timeout`` s
        (JupyterHub would stop the server the same way, with a vaguer message).
        Skipped with internal SSL (JupyterHub's own check then runs alone)."""
        if self.internal_ssl:
            return
        base_url = self.server.base_url if self.server is not None else f"/user/{self.user.name}/"
        self._event(90, f"JupyterLab is starting on {host}")
        timeout = min(float(self.http_timeout), self._start_budget())
        if await readiness.wait_until_answering(
                readiness.check_url(host, port, base_url), timeout,
                stop=lambda: self._stop_requested):
            return
        if self._stop_requested:
            raise StartFailed(f"The server was stopped while job {self.job_id} was "
                              "starting", 400)
        raise StartFailed(
            f"JupyterLab of job {self.job_id} called back from {host}:{port} but did not "
            f"answer the hub within {timeout:.0f} s. The job was cancelled. If this "
            "repeats, the hub cannot reach the compute nodes' ports (firewall) or JupyterLab "
            "starts too slowly: ask your administrator (FirecRESTSpawner.http_timeout)")

    def _submit_failed(self, exc: GatewayError) -> StartFailed:
        """The error a failed submission raises (and what happens to a job it may have
        created)."""
        self.lifecycle.to(State.IDLE, f"submit failed: {exc.failure.value}")
        if exc.failure is Failure.LOGIN_REQUIRED:
            return LoginRequired(f"Cannot get a FirecREST access token, nothing was submitted: "
                                 f"{exc.detail}")
        if exc.failure is Failure.FORBIDDEN:
            return StartFailed(f"FirecREST refused to submit the job on {self.system} (403: "
                               f"not allowed for this user): {exc.detail}", 403)
        if exc.failure is Failure.OUTAGE:
            # the job may exist without us knowing its id: find it by name and cancel it
            self._sweep_in_background("a submission got no answer")
            return StartFailed(
                f"FirecREST did not answer the job submission on {self.system} ({exc.detail}); "
                "a job it may have created is cancelled. Please try again in a few minutes")
        return StartFailed(f"FirecREST did not accept the JupyterLab job for {self.system}: "
                           f"{exc.detail}", 502)

    def _start_budget(self) -> float:
        """Seconds left for the job to come up: start_timeout minus what start() used,
        minus a margin so that this spawner (not JupyterHub's own timeout) reports why."""
        margin = min(5.0, 0.1 * self.start_timeout)
        used = time.monotonic() - self._start_began
        return max(1.0, self.start_timeout - margin - used)

    async def _wait_until_ready(self, gw: JobGateway) -> tuple[str, int]:
        assert self._callback is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_budget()
        last: JobStatus | None = None
        self._last_error = ""
        while True:
            if self._stop_requested:
                raise StartFailed(f"The server was stopped while job {self.job_id} was "
                                  "starting", 400)
            if self._callback.done():
                claim = self._callback.result()
                if last is None or last.phase is not Phase.RUNNING:
                    last = await self._status_during_start(gw) or last
                if last is not None and last.over:
                    raise JobEnded(self._ended_message(last))
                if last is not None and last.phase is Phase.RUNNING:
                    self._running_event(last)
                # JupyterLab starts meanwhile (the callback was answered at once)
                host, looked_up = await self._verify_binding(claim, last)
                if looked_up is not None and looked_up.over:
                    raise JobEnded(self._ended_message(looked_up))
                if (looked_up is not None and looked_up.phase is Phase.RUNNING
                        and (last is None or last.phase is not Phase.RUNNING)):
                    self._running_event(looked_up)
                return host, claim.port
            status = await self._status_during_start(gw)
            if status is not None:
                last = status
                if status.phase is not Phase.RUNNING:
                    self._nodes_seen = ""  # (requeue allowed) it may run elsewhere next
                self._check_requeue(status)
                if status.phase is Phase.TERMINAL:
                    self.lifecycle.to(State.ENDED, status.describe())
                    raise JobEnded(self._ended_message(status))
                if status.phase is Phase.ENDING:
                    self._event(None, f"Job {self.job_id} is ending ({status.state})")
                elif status.phase is Phase.QUEUED:
                    reason = f" ({status.reason})" if status.has_reason else ""
                    self._event(20, f"Job {self.job_id} queued: {status.state}{reason}"
                                    f"{walltime.queued_note(status)}")
                elif status.phase is Phase.RUNNING:
                    self._running_event(status)
            remaining = deadline - loop.time()
            if remaining <= 0:
                state = (last.describe() if last is not None
                         else f"unknown (last error: {self._last_error or 'none'})")
                raise StartTimeout(
                    f"JupyterLab did not start within {self.start_timeout} s: job "
                    f"{self.job_id} is {state}. The job was cancelled; try a less busy "
                    "partition or a shorter time limit, or ask your administrator to raise "
                    "FirecRESTSpawner.start_timeout"
                )
            await asyncio.wait({self._callback}, timeout=min(self.start_poll_interval, remaining))

    def _running_event(self, status: JobStatus) -> None:
        self._seen_running = True
        if status.nodes and status.nodes not in NO_NODES:
            self._nodes_seen = status.nodes  # the callback check reuses them
        if self.lifecycle.state is State.QUEUED:
            self.lifecycle.to(State.STARTING, "job running")
        where = f" on {status.nodes}" if status.nodes else ""
        walltime.observe(self, status)
        self._event(60, f"Job {self.job_id} running{where}; starting JupyterLab"
                        f"{walltime.running_note(status)}")

    def _check_requeue(self, status: JobStatus) -> None:
        """Raise JobEnded when the job was requeued (or must not come back)."""
        if not self.allow_requeue and requeued(status, self._seen_running):
            raise JobEnded(requeue_message(self.job_id, status))

    async def _status_during_start(self, gw: JobGateway) -> JobStatus | None:
        """One job state check during start (None after an outage, noted in
        ``_last_error``); a token that needs a new login or a vanished job abort."""
        try:
            return await gw.status(self.job_system, self.job_id,
                                   confirm_gone=not self._in_not_found_grace(),
                                   second_look_delay=self.not_found_recheck)
        except GatewayError as failure:
            if failure.failure is Failure.LOGIN_REQUIRED:
                raise LoginRequired(f"Cannot check job {self.job_id}: {failure.detail}") from None
            if failure.failure is Failure.JOB_NOT_FOUND and not self._in_not_found_grace():
                self.lifecycle.to(State.ENDED, "job not found")
                raise JobEnded(f"Job {self.job_id} disappeared from {self.job_system} "
                               f"({failure.detail})") from None
            self._last_error = failure.detail
            self.log.debug("%s: job check failed: %s", self._log_name, failure.detail)
            return None

    def _ended_message(self, status: JobStatus) -> str:
        return (
            f"Job {status.job_id} ended before JupyterLab started: {status.describe()}. "
            f"Its output is {diagnostics.output_path(self, status.job_id)} on {self.job_system}"
        )

    def _in_not_found_grace(self) -> bool:
        return (self._submitted_at is not None
                and time.monotonic() - self._submitted_at < self.not_found_grace)
