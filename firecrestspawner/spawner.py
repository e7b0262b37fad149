"""FirecRESTSpawner: JupyterLab as a Slurm job, submitted through the FirecREST v2 API.

This module holds the class JupyterHub loads, with the methods JupyterHub calls. The
work is done by its parts, each in its own module:

* :mod:`.settings` — every setting, checked with ``@validate`` when it is loaded;
* :mod:`.gateway` — the FirecREST calls and what their failures mean (:class:`~.gateway.Failure`);
* :mod:`.lifecycle` — the states of a server and the allowed transitions, in one table;
* :mod:`.core` — the per-server state, the gateways, the progress events;
* :mod:`.startflow` — submit, wait until ready, requeue check, start budget
  (:mod:`.readiness`: until JupyterLab answers; :mod:`.requeue`: which states end it);
* :mod:`.pollflow` — poll the job and judge its state;
* :mod:`.callback` — the callback binding (the reported host must be one of the job's nodes);
* :mod:`.ending` — cancel and confirm, hand over to :mod:`.reconciler`, orphan sweeps
  (:mod:`.jobnames`: job names identify hub, user and server);
* :mod:`.errors` — the exceptions a start fails with: a sentence for the user, always.

The promise: a job is forgotten only once FirecREST confirmed it ended (a terminal
state, or "Job not found" seen twice), or after it was handed to the reconciler,
which keeps cancelling it until FirecREST confirms. JupyterHub's ``User.stop`` calls
``poll()``, then ``stop()`` only if ``poll()`` returned None, and ``clear_state()``
always: ``poll()`` therefore returns an exit status only when one of those holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from jupyterhub.spawner import Spawner
from tornado import web

from . import (
    api,  # noqa: F401  (registers the callback handler with JupyterHub)
    liveform,
    walltime,
)
from .callback import CallbackBinding
from .compute.envcodec import ENV_VAR, encode_env
from .errors import InvalidOptions, JobEnded, LoginRequired, StartFailed, internal_error
from .lifecycle import State
from .options import JobOptions, OptionError, validate_options
from .pollflow import PollFlow
from .reconciler import STATE_KEY
from .script import ScriptContext, packaged_template, render
from .startflow import StartFlow
from .validation import validate_host, validate_port


class FirecRESTSpawner(walltime.WalltimeMixin, StartFlow, PollFlow, CallbackBinding, Spawner):
    """Start JupyterLab as a Slurm job through FirecREST v2 (see docs/spawner.md)."""

    # ================================================================ options
    def template_namespace(self) -> dict[str, Any]:
        """format_string fields: JupyterHub's (username, base_url) plus servername and
        hub_id."""
        namespace = super().template_namespace()
        namespace["servername"] = self.name or ""
        namespace["hub_id"] = self.hub_id
        return namespace

    def job_options(self) -> JobOptions:
        """The validated :class:`~.options.JobOptions` of ``self.user_options``.

        Called at the beginning of :meth:`start`. Refused options raise
        :class:`InvalidOptions` (HTTP 400) naming the field.
        """
        try:
            return validate_options(self.user_options or {}, self.limits())
        except OptionError as exc:
            raise InvalidOptions(f"Invalid server option {exc}") from None

    def render_script(self, options: JobOptions) -> str:
        """The batch script for validated ``options``, with the job's environment
        (secrets included) exported in its body. Raises ValueError when the template
        cannot be filled."""
        template = self.batch_script_template or packaged_template(
            options.environment, self.container_engine)
        context = ScriptContext(
            job_name=self.format_string(self.job_name),
            output=self.job_output,
            log_dir=self.format_string(self.job_log_dir),
            args=list(self.get_args()),
            setup=self.script_setup,
            extra_directives=list(self.extra_directives),
            container_engine=self.container_engine,
            container_args=list(self.container_args),
            requeue=self.allow_requeue,
            env={ENV_VAR: encode_env(self.job_env())},
        )
        return render(template, options, context)

    def job_env(self) -> dict[str, str]:
        """The environment the job gets (inside ``FIRECRESTSPAWNER_ENV``): JupyterHub's
        ``get_env()`` plus the callback URL and port range when set."""
        env = {k: str(v) for k, v in self.get_env().items()}
        if self.callback_url:
            env["FIRECRESTSPAWNER_CALLBACK_URL"] = self.callback_url
        if self.port_range:
            env["FIRECRESTSPAWNER_PORT_RANGE"] = self.port_range
        return env

    # ================================================================ start
    async def start(self) -> tuple[str, int]:
        """Called by JupyterHub's ``User.spawn``: submit the job, wait for its callback.

        Returns ``(host, port)`` of the job's JupyterLab. On failure raises a
        :class:`~.errors.StartFailed` (or subclass) whose message names the cause; a job
        that was submitted is cancelled and confirmed ended first, or handed to the
        reconciler, before the exception leaves (see :mod:`.startflow`). A bug (any
        other exception) is logged with its traceback and raised as an
        :class:`~.errors.InternalError` sentence; JupyterHub then stops the server.
        """
        try:
            options = self.job_options()
            try:
                script = self.render_script(options)
            except ValueError as exc:
                raise StartFailed(f"Cannot write the batch script: {exc}", 500) from None
            return await self._start_job(script, self.format_string(self.workdir),
                                         gate=lambda: liveform.gate(self, options))
        except (web.HTTPError, asyncio.CancelledError):
            raise  # StartFailed (a sentence), JupyterHub's own errors, a cancelled start
        except Exception as exc:
            # a bug (KeyError, TypeError...): the traceback to the log, a sentence to the
            # user (never a bare "500: Internal Server Error"), never an outage
            self.log.exception("%s: internal error while starting (job %s)", self._log_name,
                               self.job_id or "not submitted")
            raise internal_error("Starting your server", exc) from exc

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Called by JupyterHub's progress API while a start is pending; yields the
        start's events (submitted, queued with Slurm's reason, running) and returns when
        the start is over. Never fails."""
        index = 0
        while True:
            while index < len(self._events):
                yield self._events[index]
                index += 1
            if not self._starting:
                return
            if self._events_changed is None:
                self._events_changed = asyncio.Event()
            await self._events_changed.wait()

    async def receive_callback(self, host: str, port: int) -> bool:
        """Called by the callback handler (:mod:`.api`) when the job reports where its
        JupyterLab listens; answers at once, without asking FirecREST.

        Returns True when the host was verified at once (one of the job's nodes the
        start flow already saw), False when the claim is recorded and the start flow
        verifies it while JupyterLab starts: the host must be one of the job's
        allocated nodes as FirecREST reports them (in a form ``node_addresses`` allows,
        or an IP address such a name resolves to; see :mod:`.callback`), else the start
        fails (403, naming host and nodes) and the job is cancelled. A repeated callback
        with the same host and port (a launcher retrying after a lost answer) is
        accepted again. Raises ValueError for a bad host or port; RuntimeError when no
        start waits (or it already got another address).
        """
        return await self._bind_callback(host, port)

    # ================================================================ poll
    async def poll(self) -> int | None:
        """Called by JupyterHub periodically (``poll_and_notify``), at hub start-up and
        first thing in ``User.stop``. Returns None while the job is queued or running;
        an exit status once the job's end is confirmed by FirecREST or the job was handed
        to the reconciler (then JupyterHub clears the state and the reconciler keeps
        cancelling). An outage (5xx, timeout, a 404 that is not "Job not found" for this
        job, a token endpoint in trouble) returns None: the server is kept. Never raises
        (see :mod:`.pollflow`): a bug (``KeyError``, ``TypeError``...) is logged with its
        traceback as an error — not counted as an outage — and the server is kept, since
        nothing is known about the job.
        """
        try:
            return await self._poll_job()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.internal_errors += 1
            self.log.exception("%s: internal error while polling job %s (a bug, not a "
                               "FirecREST outage); the server is kept", self._log_name,
                               self.job_id)
            return None

    # ================================================================ stop
    async def stop(self, now: bool = False) -> None:
        """Called by JupyterHub's ``User.stop`` when ``poll()`` returned None (and to
        abort a pending start). Cancels the job and waits, at most ``stop_timeout`` s
        (10 s with ``now``), for FirecREST to confirm its end; if it cannot, the job is
        handed to the reconciler, which keeps cancelling it. Returns None; never raises
        for FirecREST trouble. A bug (``KeyError``, ``TypeError``...) is logged with its
        traceback and the job is handed to the reconciler (JupyterHub's stop handlers
        swallow a stop's exception and would skip their own clean-up: not raised)."""
        self._stop_requested = True
        if self._callback is not None and not self._callback.done():
            self._callback.cancel()
        if not self.job_id:
            return
        try:
            await self._end_job("stopped by the hub",
                                min(self.stop_timeout, 10.0) if now else self.stop_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.internal_errors += 1
            self.log.exception("%s: internal error while stopping job %s (a bug, not a "
                               "FirecREST outage); the reconciler keeps cancelling it",
                               self._log_name, self.job_id)
            if self.lifecycle.state not in (State.ENDED, State.HANDED_OVER):
                self._hand_over(f"internal error while stopping: {type(exc).__name__}")
        self._exit_code = 0
        self._cached_status = (time.monotonic(), 0)

    # ================================================================ state
    def get_state(self) -> dict[str, Any]:
        """Called by JupyterHub to save the spawner in its database: the job id, system,
        host, port and working directory, and the unconfirmed jobs the reconciler is
        still ending (these survive clear_state)."""
        state = super().get_state()
        if self.job_id and self.lifecycle.state is not State.HANDED_OVER:
            state.update(job_id=self.job_id, job_system=self.job_system,
                         job_host=self.job_host, job_port=self.job_port,
                         job_workdir=self.job_workdir)
        with contextlib.suppress(RuntimeError):  # no running loop: nothing pending here
            pending = self.reconciler().pending_for(self.user.name, self.name or "")
            if pending:
                state[STATE_KEY] = [job.as_state() for job in pending]
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Called by JupyterHub when it creates the spawner (hub start-up included):
        restores what :meth:`get_state` saved; unconfirmed jobs go back to the
        reconciler."""
        super().load_state(state)
        if state.get("job_id"):
            self.job_id = str(state["job_id"])
            self.job_system = str(state.get("job_system") or self.system)
            self.job_host = str(state.get("job_host") or "")
            self.job_port = int(state.get("job_port") or 0)
            self.job_workdir = str(state.get("job_workdir") or "")
            self._submitted_at = None
            self._cached_status = None
            self._seen_running = bool(self.job_host)
            self.lifecycle.state = State.RUNNING if self.job_host else State.QUEUED
        if state.get(STATE_KEY):
            with contextlib.suppress(RuntimeError):  # no loop: restored by the hub's scan
                self.reconciler().restore(self.user.name, self.name or "", state[STATE_KEY])

    def add_poll_callback(self, callback: Any, *args: Any, **kwargs: Any) -> None:
        """JupyterHub registers its poll callback once the server is ready (route in
        the proxy): the end of the start's last phase for the metrics."""
        self.lifecycle.clock.ready()
        super().add_poll_callback(callback, *args, **kwargs)

    def clear_state(self) -> None:
        """Called by JupyterHub after every stop: forget the job. Only reached once the
        job's end was confirmed or the reconciler took it over (see :meth:`poll`)."""
        if self.job_id and self.lifecycle.state not in (State.ENDED, State.HANDED_OVER,
                                                        State.IDLE):
            # JupyterHub cleared a job whose end nobody confirmed: never lose it
            with contextlib.suppress(RuntimeError):
                self._hand_over("state cleared before the job's end was confirmed")
        super().clear_state()
        self.job_id = self.job_system = self.job_host = self.job_workdir = ""
        self.job_port = 0
        self._cached_status = None
        self._submitted_at = None
        self._end_task = None
        self._exit_code = 0
        self.lifecycle.reset()


__all__ = ["FirecRESTSpawner", "InvalidOptions", "JobEnded", "LoginRequired", "OptionError",
           "StartFailed", "validate_host", "validate_port"]
