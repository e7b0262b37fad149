"""FirecRESTSpawner: JupyterLab as a Slurm job, submitted through the FirecREST v2 API.

The parts, each in its own module:

* :mod:`.settings` — every setting, checked with ``@validate`` when it is loaded;
* :mod:`.gateway` — the FirecREST calls and what their failures mean (:class:`~.gateway.Failure`);
* :mod:`.lifecycle` — the states of a server and the allowed transitions, in one table;
* :mod:`.reconciler` — jobs that must end but whose end is not confirmed yet, and orphans;
* this module — the JupyterHub Spawner methods, which move a server along the table.

The promise: a job is forgotten only once FirecREST confirmed it ended (a terminal
state, or "Job not found" seen twice), or after it was handed to the reconciler,
which keeps cancelling it until FirecREST confirms. JupyterHub's ``User.stop`` calls
``poll()``, then ``stop()`` only if ``poll()`` returned None, and ``clear_state()``
always: ``poll()`` therefore returns an exit status only when one of those holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator
from typing import Any

from firecrest.v2 import AsyncFirecrest
from jupyterhub.spawner import Spawner
from traitlets import Int, Unicode

from . import (
    api,  # noqa: F401  (registers the callback handler with JupyterHub)
    health,
    metrics,
)
from .compute.envcodec import ENV_VAR, encode_env
from .compute.hosts import NO_NODES, expand_hostlist, match_allocated
from .errors import InvalidOptions, JobEnded, LoginRequired, StartFailed, StartTimeout
from .gateway import Failure, GatewayError, JobGateway
from .lifecycle import Lifecycle, State
from .options import OptionError, validate_options
from .reconciler import STATE_KEY, Reconciler, reconciler_for
from .script import ScriptContext, packaged_template, render, safe_job_name
from .settings import FirecRESTSettings, node_addressing
from .slurm import JobStatus, Phase, base_state
from .tls import ssl_context
from .tokens import ClientCredentialsAuth, TokenEndpoint, UserTokenAuth, user_token_auth
from .validation import validate_host, validate_port

#: States that end a server unless the site allows requeueing (the job may come back
#: elsewhere, later, and its callback would then be refused).
REQUEUE_STATES = frozenset({"REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED",
                            "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE"})

# Service-account clients are shared by all spawners (per event loop and account).
_service_clients: dict[tuple[int, tuple[str, ...]], tuple[AsyncFirecrest,
                                                           ClientCredentialsAuth]] = {}
_NO_HUB = object()


class FirecRESTSpawner(FirecRESTSettings, Spawner):
    """Start JupyterLab as a Slurm job through FirecREST v2 (see docs/spawner.md)."""

    # ---------------------------------------------------------------- state
    job_id = Unicode("")
    job_system = Unicode("")
    job_host = Unicode("")
    job_port = Int(0)
    job_workdir = Unicode("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: AsyncFirecrest | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._auth: UserTokenAuth | None = None
        self._gw: JobGateway | None = None
        self._poll_gw: JobGateway | None = None
        self._callback: asyncio.Future[tuple[str, int]] | None = None
        self._events: list[dict[str, Any]] = []
        self._events_changed: asyncio.Event | None = None
        self._starting = False
        self._stop_requested = False
        self._submitted_at: float | None = None
        self._start_began = time.monotonic()
        self._cached_status: tuple[float, int | None] | None = None
        self._poll_task: asyncio.Future[int | None] | None = None
        self._end_task: asyncio.Future[None] | None = None
        self._exit_code = 0
        self._seen_running = False
        self._outages = 0
        self._last_error = ""
        #: Why the server ended (shown in logs; kept until clear_state).
        self.end_reason = ""
        self.lifecycle = Lifecycle(self.log, "FirecRESTSpawner")
        self._sweep_task: asyncio.Task[None] | None = None
        self._last_sweep = time.monotonic()
        self._started_here = False
        self.check_settings()

    @property
    def firecrest_calls(self) -> int:
        """FirecREST calls made by this spawner (tests and the benchmark read it)."""
        return sum(gw.calls for gw in (self._gw, self._poll_gw) if gw is not None)

    # ================================================================ gateways
    def _user_client(self) -> tuple[AsyncFirecrest, UserTokenAuth]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._auth is None:
            self._auth = user_token_auth(self.user, self.token_endpoint(),
                                         self.token_refresh_margin)
            self._client = self._make_client(self._auth)
            self._client_loop = loop
            self._gw = None
        return self._client, self._auth

    def _make_client(self, auth: Any) -> AsyncFirecrest:
        client = AsyncFirecrest(self.firecrest_url, authorization=auth,
                                verify=ssl_context(self.verify_tls))
        client.timeout = self.firecrest_timeout
        client.num_retries_rate_limit = 2
        metrics.count_firecrest_requests(client, self.firecrest_url)
        return client

    def gateway(self) -> JobGateway:
        """The :class:`~.gateway.JobGateway` acting with the user's token (submit,
        cancel, list, and polls without a service account)."""
        client, auth = self._user_client()
        if self._gw is None or self._gw.client is not client:
            self._gw = JobGateway(client, auth, self.firecrest_timeout * 2)
        return self._gw

    def poll_gateway(self) -> JobGateway:
        """The gateway polls use: the service account's when configured, else the user's."""
        if not self.service_client_id:
            return self.gateway()
        loop = asyncio.get_running_loop()
        url = self.service_token_url or self.token_url or self._authenticator_setting("token_url")
        key = (id(loop), (self.firecrest_url, url, self.service_client_id))
        if key not in _service_clients:
            auth = ClientCredentialsAuth(
                TokenEndpoint(url, self.service_client_id, self.service_client_secret,
                              self.token_timeout, self.verify_tls),
                self.token_refresh_margin,
            )
            _service_clients[key] = (self._make_client(auth), auth)
        client, auth = _service_clients[key]
        if self._poll_gw is None or self._poll_gw.client is not client:
            self._poll_gw = JobGateway(client, auth, self.firecrest_timeout * 2)
        return self._poll_gw

    # ================================================================ reconciler
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

    def _save_state(self) -> None:
        """Write get_state() to JupyterHub's database now (the reconciler's list, a new
        job id: what must survive a hub killed at any moment)."""
        orm_spawner = getattr(self, "orm_spawner", None)
        db = getattr(self, "db", None)
        if orm_spawner is None or db is None:
            return
        orm_spawner.state = self.get_state()
        db.commit()

    def _hand_over(self, reason: str) -> None:
        """Give the current job to the reconciler (it cancels until FirecREST confirms)."""
        self.reconciler().adopt(self.job_system or self.system, self.job_id, self.user.name,
                                self.name or "", reason)
        self.lifecycle.to(State.HANDED_OVER, reason)

    def job_names(self) -> dict[str, str]:
        """Job name -> server name for every server of this user this hub knows, except
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
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconcile_backoff_max)

        self._sweep_task = asyncio.ensure_future(run())
        self.reconciler().tasks.add(self._sweep_task)  # stopped with the reconciler
        self._sweep_task.add_done_callback(self.reconciler().tasks.discard)

    # ================================================================ options
    def template_namespace(self) -> dict[str, Any]:
        """format_string fields: JupyterHub's (username, base_url) plus servername."""
        namespace = super().template_namespace()
        namespace["servername"] = self.name or ""
        return namespace

    def job_options(self) -> Any:
        """The validated :class:`~.options.JobOptions` of ``self.user_options``.

        Refused options raise :class:`InvalidOptions` (HTTP 400) naming the field.
        """
        try:
            return validate_options(self.user_options or {}, self.limits())
        except OptionError as exc:
            raise InvalidOptions(f"Invalid server option {exc}") from None

    def render_script(self, options: Any) -> str:
        """The batch script for validated ``options``, with the job's environment
        (secrets included) exported in its body."""
        template = self.batch_script_template or packaged_template(
            options.environment, self.container_engine)
        context = ScriptContext(
            job_name=self.format_string(self.job_name),
            output=self.job_output,
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
        """The environment the job gets (inside ``FIRECRESTSPAWNER_ENV``)."""
        env = {k: str(v) for k, v in self.get_env().items()}
        if self.callback_url:
            env["FIRECRESTSPAWNER_CALLBACK_URL"] = self.callback_url
        if self.port_range:
            env["FIRECRESTSPAWNER_PORT_RANGE"] = self.port_range
        return env

    # ================================================================ progress
    def _event(self, progress: int | None, message: str) -> None:
        event: dict[str, Any] = {"message": message}
        if progress is not None:
            event["progress"] = progress
        if self._events and self._events[-1] == event:
            return
        self._events.append(event)
        self.log.info("%s: %s", self._log_name, message)
        if self._events_changed is not None:
            self._events_changed.set()
            self._events_changed = asyncio.Event()

    @property
    def progress_events(self) -> list[dict[str, Any]]:
        """The events of the current (or last) start, as progress() yields them."""
        return list(self._events)

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

    # ================================================================ callback
    async def receive_callback(self, host: str, port: int) -> None:
        """Called by the callback handler (:mod:`.api`) when the job reports where its
        JupyterLab listens. Returns None once recorded.

        The host must be one of the job's allocated nodes as FirecREST reports them
        (in a form ``node_addresses`` allows, or an IP address such a name resolves
        to). A repeated callback with the same host and port (a launcher retrying after
        a lost answer) is accepted again. Raises ValueError for a bad host or port;
        RuntimeError when no start waits (or it already got another address) and when
        the host is not the job's (403; the start then fails, naming host and nodes).
        """
        host = validate_host(host)
        port = validate_port(port)
        future = self._callback
        if (self._starting and future is not None and future.done()
                and not future.cancelled() and future.exception() is None
                and future.result() == (host, port)):
            return
        if not self._starting or future is None or future.done():
            raise RuntimeError(
                f"{self._log_name} is not waiting for a callback (job {self.job_id or 'none'});"
                " the server was not starting, or already got its callback"
            )
        nodes = await self._job_nodes()
        addressing = node_addressing(self.node_addresses)
        verdict = match_allocated(host, nodes, addressing, await self._resolver(host, nodes))
        if not verdict and self.resolve_node_addresses:
            # a name such as the node's FQDN: accepted when it resolves to an address of
            # one of the job's nodes, and then that address is used (no later re-lookup)
            for address in await self._addresses(host):
                by_ip = match_allocated(address, nodes, addressing,
                                        await self._resolver(address, nodes))
                if by_ip:
                    verdict = by_ip
                    break
        if not verdict:
            why = f"job {self.job_id} reported a host that is not its own: {verdict.reason}"
            if not future.done():
                future.set_exception(StartFailed(f"The callback was refused: {why}", 403))
            raise RuntimeError(why)
        if not future.done():
            future.set_result((verdict.host, port))

    async def _job_nodes(self) -> str:
        """The job's nodes as FirecREST reports them (waits up to callback_node_wait s
        for FirecREST's accounting to show them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.callback_node_wait
        nodes = ""
        while True:
            try:
                status = await self.gateway().status(self.job_system, self.job_id,
                                                     confirm_gone=False)
                nodes = status.nodes
                if nodes and nodes not in NO_NODES:
                    return nodes
            except GatewayError as exc:
                self.log.warning("%s: cannot read job %s's nodes for its callback: %s",
                                 self._log_name, self.job_id, exc.detail)
            if loop.time() >= deadline:
                return nodes
            await asyncio.sleep(0.25)

    @staticmethod
    async def _addresses(name: str) -> list[str]:
        """The addresses ``name`` resolves to (asynchronous; [] for an IP or on error)."""
        try:
            ipaddress.ip_address(name)
            return []
        except ValueError:
            pass
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(name, None), 5.0)
        except (OSError, asyncio.TimeoutError):
            return []
        return sorted({str(info[4][0]) for info in infos})

    async def _resolver(self, host: str, nodes: str) -> Any:
        """A lookup table for :func:`match_allocated` (names -> addresses), filled
        asynchronously so that the hub's loop never blocks on DNS; None when off."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None  # a name: matched against the node names and templates only
        if not self.resolve_node_addresses:
            return None
        try:
            names = expand_hostlist(nodes)[:64]
        except ValueError:
            return None
        addressing = node_addressing(self.node_addresses)
        candidates = {n for n in names} | {t.format(node=n) for n in names
                                           for t in addressing.templates}
        loop = asyncio.get_running_loop()
        table: dict[str, list[str]] = {}
        for name in candidates:
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(name, None), 5.0)
            except (OSError, asyncio.TimeoutError):
                continue
            table[name] = [str(info[4][0]) for info in infos]
        return lambda name: table.get(name, [])

    # ================================================================ start
    async def start(self) -> tuple[str, int]:
        """Called by JupyterHub's ``User.spawn``: submit the job, wait for its callback.

        Returns ``(host, port)`` of the job's JupyterLab. On failure raises a
        :class:`~.errors.StartFailed` (or subclass) whose message names the cause; a job
        that was submitted is cancelled and confirmed ended first, or handed to the
        reconciler, before the exception leaves.
        """
        options = self.job_options()
        try:
            script = self.render_script(options)
        except ValueError as exc:
            raise StartFailed(f"Cannot write the batch script: {exc}", 500) from None
        workdir = self.format_string(self.workdir)
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
        self._outages = 0
        self.end_reason = ""
        self.job_host, self.job_port = "", 0
        self._started_here = True
        self.lifecycle.reset()
        self.lifecycle.to(State.SUBMITTING, "start")
        try:
            gw = self.gateway()
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
            except BaseException as exc:
                reason = str(exc) or type(exc).__name__
                self.log.warning("%s: start failed (%s); ending job %s", self._log_name,
                                 reason, self.job_id)
                await asyncio.shield(self._end_job(f"start failed: {reason}",
                                                   min(self.stop_timeout, 30.0)))
                raise
            self.job_host, self.job_port = host, port
            self.lifecycle.to(State.RUNNING, "callback received")
            self._event(95, f"JupyterLab is up on {host}:{port}")
            return host, port
        finally:
            self._starting = False
            if self._events_changed is not None:
                self._events_changed.set()

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
                host, port = self._callback.result()
                if last is None or last.phase is not Phase.RUNNING:
                    last = await self._status_during_start(gw) or last
                if last is not None and last.over:
                    raise JobEnded(self._ended_message(last))
                if last is not None and last.phase is Phase.RUNNING:
                    self._running_event(last)
                return host, port
            status = await self._status_during_start(gw)
            if status is not None:
                last = status
                self._check_requeue(status)
                if status.phase is Phase.TERMINAL:
                    self.lifecycle.to(State.ENDED, status.describe())
                    raise JobEnded(self._ended_message(status))
                if status.phase is Phase.ENDING:
                    self._event(None, f"Job {self.job_id} is ending ({status.state})")
                elif status.phase is Phase.QUEUED:
                    reason = f" ({status.reason})" if status.has_reason else ""
                    self._event(20, f"Job {self.job_id} queued: {status.state}{reason}")
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
        if self.lifecycle.state is State.QUEUED:
            self.lifecycle.to(State.STARTING, "job running")
        where = f" on {status.nodes}" if status.nodes else ""
        self._event(60, f"Job {self.job_id} running{where}; starting JupyterLab")

    def _check_requeue(self, status: JobStatus) -> None:
        """Raise JobEnded when the job was requeued (or must not come back)."""
        if self.allow_requeue:
            return
        word = base_state(status.state)
        if word in REQUEUE_STATES or (word == "PENDING" and self._seen_running):
            raise JobEnded(self._requeue_message(status))

    def _requeue_message(self, status: JobStatus) -> str:
        word = base_state(status.state)
        why = ("it went back to PENDING after running (requeued by Slurm)"
               if word not in REQUEUE_STATES else f"Slurm reports {status.describe()}")
        return (f"Job {self.job_id} was interrupted: {why}. The job is cancelled; start "
                "the server again")

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
        log_file = self.job_output.replace("%j", status.job_id)
        where = self.job_workdir or "the working directory"
        return (
            f"Job {status.job_id} ended before JupyterLab started: {status.describe()}. "
            f"See {log_file} in {where} on {self.job_system}"
        )

    def _in_not_found_grace(self) -> bool:
        return (self._submitted_at is not None
                and time.monotonic() - self._submitted_at < self.not_found_grace)

    # ================================================================ ending a job
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

    # ================================================================ poll
    def _cache_ttl(self) -> float:
        if self.poll_cache_seconds >= 0:
            return self.poll_cache_seconds
        return max(0.0, self.poll_interval / 2)

    async def poll(self) -> int | None:
        """Called by JupyterHub periodically (``poll_and_notify``), at hub start-up and
        first thing in ``User.stop``. Returns None while the job is queued or running;
        an exit status once the job's end is confirmed by FirecREST or the job was handed
        to the reconciler (then JupyterHub clears the state and the reconciler keeps
        cancelling). An outage (5xx, timeout, a 404 that is not "Job not found" for this
        job, a token endpoint in trouble) returns None: the server is kept.
        """
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
                status = await gw.status(self.job_system, self.job_id,
                                         second_look_delay=self.not_found_recheck)
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
        if status.phase is Phase.RUNNING:
            self._seen_running = True
        word = base_state(status.state)
        # PENDING counts only after FirecREST itself reported RUNNING: its accounting
        # lags, so a job whose launcher already called back may still show PENDING.
        if not self.allow_requeue and (word in REQUEUE_STATES
                                       or (word == "PENDING" and self._seen_running)):
            message = self._requeue_message(status)
            if status.phase is Phase.TERMINAL:
                self.lifecycle.to(State.ENDED, message)
                return self._gone(message, status.exit_code or 1)
            return await self._gone_and_end(message, 1)
        if status.phase is Phase.TERMINAL:
            self.lifecycle.to(State.ENDED, status.describe())
            code = status.exit_code if status.exit_code is not None else 0
            return self._gone(f"job {self.job_id} is {status.describe()}", code)
        if status.phase is Phase.ENDING:
            return await self._gone_and_end(f"job {self.job_id} is ending ({status.state})", 0)
        self._cached_status = (time.monotonic(), None)
        return None

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

    # ================================================================ stop
    async def stop(self, now: bool = False) -> None:
        """Called by JupyterHub's ``User.stop`` when ``poll()`` returned None (and to
        abort a pending start). Cancels the job and waits, at most ``stop_timeout`` s
        (10 s with ``now``), for FirecREST to confirm its end; if it cannot, the job is
        handed to the reconciler, which keeps cancelling it. Returns None; never raises
        for FirecREST trouble."""
        self._stop_requested = True
        if self._callback is not None and not self._callback.done():
            self._callback.cancel()
        if not self.job_id:
            return
        await self._end_job("stopped by the hub",
                            min(self.stop_timeout, 10.0) if now else self.stop_timeout)
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
