"""FirecRESTSpawner: JupyterLab as a Slurm job, submitted through the FirecREST v2 API.

Life of a server:

1. ``start()`` validates the user's options (:mod:`.options`), renders the batch
   script (:mod:`.script`), and submits it with the hub's environment encoded in one
   variable, ``FIRECRESTSPAWNER_ENV`` (:mod:`.envcodec`). It then waits, reporting
   the job's Slurm state through ``progress()``, until the compute-side launcher
   calls back with the host and port it listens on (:meth:`receive_callback`,
   called by :mod:`.api`). A job that ends, or does not come up in time, is
   cancelled and the user is told why.
2. ``poll()`` asks FirecREST for the job's state: one call per poll, cached for
   half a poll interval. Terminal Slurm states end the server; transport errors,
   5xx, 401 and the brief "Job not found" window after submission do not — only
   repeated failures over a grace period do.
3. ``stop()`` cancels the job and waits, bounded, for a terminal state.
4. ``get_state()``/``load_state()`` keep the job id, system, host and port across
   hub restarts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from firecrest.FirecrestException import FirecrestException, UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest
from jupyterhub.spawner import Spawner
from tornado import web

try:  # JupyterHub >= 6: a policy refusal, reported to the user without a traceback
    from jupyterhub.spawner import SpawnException as _RefusalBase
except ImportError:  # JupyterHub 5: an HTTPError is reported without a traceback too
    _RefusalBase = web.HTTPError  # type: ignore[assignment,misc]


class InvalidOptions(_RefusalBase):  # type: ignore[misc,valid-type]
    """User options refused (HTTP 400); the message names the field."""

    def __init__(self, message: str) -> None:
        if _RefusalBase is web.HTTPError:
            super().__init__(400, "%s", message, reason="Invalid server options")
        else:
            super().__init__(message, reason="invalid_options", status_code=400)
        self.text = message

    def __str__(self) -> str:
        return self.text
from traitlets import Bool, Dict, Float, Int, List, Unicode, Union, default

from . import api  # noqa: F401  (registers the callback handler with JupyterHub)
from .compute.envcodec import ENV_VAR, encode_env
from .config import ConfigError
from .options import Limits, OptionError, form_to_options, render_form, validate_options
from .script import (
    ScriptContext,
    check_directive,
    check_template,
    packaged_template,
    render,
    safe_job_name,
)
from .slurm import JobStatus, Phase
from .tls import TLSSettingError, ssl_context
from .tokens import (
    ClientCredentialsAuth,
    TokenEndpoint,
    TokenError,
    TransientTokenError,
    UserTokenAuth,
    user_token_auth,
)

T = TypeVar("T")

_SYSTEM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def validate_host(host: object) -> str:
    """Return ``host`` if it is a DNS host name or an IP address, else raise ValueError."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host {host!r} must be a non-empty string (a host name or an IP)")
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    name = host.removesuffix(".")
    if len(name) > 253 or not all(_LABEL_RE.match(label) for label in name.split(".")):
        raise ValueError(
            f"host {host!r} is neither an IP address nor a valid host name "
            "(letters, digits and '-' in dot-separated labels)"
        )
    return name


def validate_port(port: object) -> int:
    """Return ``port`` if it is an int in 1..65535, else raise ValueError."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} must be an integer between 1 and 65535")
    return port


class JobEnded(RuntimeError):
    """The job reached a terminal Slurm state (or vanished) before JupyterLab came up."""


class _CallFailed(Exception):
    """A FirecREST call failed; ``kind`` is not_found, auth, token, transient or refused."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


def _explain(exc: BaseException) -> _CallFailed:
    """Classify an exception from a FirecREST call (never includes a token)."""
    if isinstance(exc, _CallFailed):
        return exc
    if isinstance(exc, UnexpectedStatusException):
        response = exc.responses[-1] if exc.responses else None
        status = response.status_code if response is not None else None
        message = ""
        if response is not None:
            try:
                body = response.json()
                message = str(body.get("message", "")) if isinstance(body, dict) else ""
            except ValueError:
                message = response.text[:200]
        detail = f"FirecREST answered {status}" + (f": {message}" if message else "")
        if status == 404:
            return _CallFailed("not_found", detail, status)
        if status in (401, 403):
            return _CallFailed("auth", detail, status)
        if status is not None and (status >= 500 or status == 429):
            return _CallFailed("transient", detail, status)
        return _CallFailed("refused", detail, status)
    if isinstance(exc, TransientTokenError):
        return _CallFailed("transient", str(exc))
    if isinstance(exc, TokenError):
        return _CallFailed("token", str(exc))
    if isinstance(exc, (httpx.HTTPError, asyncio.TimeoutError, OSError)):
        return _CallFailed("transient", f"FirecREST unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, FirecrestException):
        return _CallFailed("transient", f"FirecREST error: {exc}")
    if isinstance(exc, (KeyError, ValueError, TypeError)):
        return _CallFailed("transient", f"unexpected FirecREST answer: {type(exc).__name__}: {exc}")
    raise exc


# Service-account clients are shared by all spawners (per event loop and account).
_service_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], tuple[AsyncFirecrest, ClientCredentialsAuth]]] = (
    weakref.WeakKeyDictionary()
)


class FirecRESTSpawner(Spawner):
    """Start JupyterLab as a Slurm job through FirecREST v2 (see docs/spawner.md)."""

    # ---------------------------------------------------------------- FirecREST
    firecrest_url = Unicode(
        "", help="Base URL of the FirecREST v2 API, e.g. https://firecrest.example.org"
    ).tag(config=True)
    system = Unicode(
        "", help="FirecREST system (cluster) name the jobs run on, as in GET /status/systems"
    ).tag(config=True)
    workdir = Unicode(
        "",
        help="Working directory of the job on the cluster (absolute; {username} and other "
        "Spawner.format_string fields are expanded), e.g. /home/{username}",
    ).tag(config=True)
    verify_tls = Union(
        [Bool(), Unicode()], default_value=True,
        help="TLS verification for FirecREST and the token endpoints: True, False, or a CA "
        "bundle path",
    ).tag(config=True)
    firecrest_timeout = Float(
        15.0, help="Seconds one FirecREST request may take before it counts as failed"
    ).tag(config=True)

    # ---------------------------------------------------------------- script
    batch_script_template = Unicode(
        "",
        help="A site batch script template ({{directives}}, {{setup}}, {{launch}}, ... see "
        "firecrestspawner.script). Empty: the packaged template of the chosen environment.",
    ).tag(config=True)
    script_setup = Unicode(
        "", help="Shell lines inserted before the launch (e.g. module loads); trusted as is"
    ).tag(config=True)
    extra_directives = List(
        Unicode(), help="Extra sbatch options, one per item, e.g. ['--constraint=gpu']"
    ).tag(config=True)
    container_args = List(
        Unicode(), help="Extra srun arguments for container jobs, e.g. ['--container-mount-home']"
    ).tag(config=True)
    job_name = Unicode(
        "jupyterhub-{username}-{servername}",
        help="Slurm job name (format_string fields expanded, then reduced to [A-Za-z0-9_.-])",
    ).tag(config=True)
    job_output = Unicode(
        "jupyterhub-%j.log", help="sbatch --output of the job, relative to workdir"
    ).tag(config=True)
    callback_url = Unicode(
        "",
        help="URL the job posts its host and port to. Empty: "
        "{JUPYTERHUB_API_URL}/firecrestspawner/callback (set hub_connect_url so that compute "
        "nodes can reach the hub)",
    ).tag(config=True)
    cancel_stale_jobs = Bool(
        True,
        help="Before submitting, cancel active jobs with this server's job name that the hub "
        "does not know (left by a hub that crashed while starting): one extra job list call",
    ).tag(config=True)
    port_range = Unicode(
        "", help="Port range 'lo-hi' the launcher picks its port from (empty: any free port)"
    ).tag(config=True)

    # ---------------------------------------------------------------- limits
    allowed_partitions = List(Unicode(), help="Partitions users may choose (empty: any)").tag(
        config=True)
    default_partition = Unicode("", help="Partition used when none is chosen").tag(config=True)
    allowed_accounts = List(Unicode(), help="Accounts users may choose (empty: any)").tag(
        config=True)
    default_account = Unicode("", help="Account used when none is chosen").tag(config=True)
    allowed_reservations = List(
        Unicode(), help="Reservations users may choose (empty: any)").tag(config=True)
    max_nodes = Int(1, help="Most nodes a user may request").tag(config=True)
    default_nodes = Int(1, help="Nodes requested by default").tag(config=True)
    max_time = Unicode("24:00:00", help="Longest time limit (HH:MM:SS or D-HH:MM:SS)").tag(
        config=True)
    default_time = Unicode("01:00:00", help="Default time limit").tag(config=True)
    max_gpus = Int(0, help="Most GPUs per node a user may request (0: no GPU field)").tag(
        config=True)
    default_gpus = Int(0, help="GPUs per node requested by default").tag(config=True)
    environments = List(
        Unicode(), default_value=["native"],
        help="Software environment kinds offered: native, uenv, container",
    ).tag(config=True)
    default_environment = Unicode("native", help="Environment kind selected by default").tag(
        config=True)
    allowed_venvs = List(
        Unicode(), help="Native Python environments (absolute venv paths) users may choose; "
        "empty: firecrestspawner-singleuser from PATH",
    ).tag(config=True)
    allowed_uenvs = Dict(
        help="uenv images users may choose, each with its allowed views, e.g. "
        "{'prgenv-gnu/24.11:v1': ['default']}"
    ).tag(config=True)
    allowed_container_images = List(
        Unicode(), help="Container images (EDF names/paths or image references) users may choose"
    ).tag(config=True)
    allow_custom_container_image = Bool(
        False, help="Let users type any container image matching the strict pattern"
    ).tag(config=True)
    container_engine = Unicode(
        "edf", help="Container engine: 'edf' (CSCS Container Engine) or 'pyxis' (enroot/pyxis)"
    ).tag(config=True)

    # ---------------------------------------------------------------- tokens
    token_url = Unicode(
        "", help="OAuth2 token endpoint for refresh_token grants (empty: the authenticator's "
        "token_url, e.g. GenericOAuthenticator's)",
    ).tag(config=True)
    token_client_id = Unicode(
        "", help="Client id for refresh grants (empty: the authenticator's client_id)"
    ).tag(config=True)
    token_client_secret = Unicode(
        "", help="Client secret for refresh grants (empty: the authenticator's client_secret)"
    ).tag(config=True)
    token_refresh_margin = Float(
        60.0, help="Refresh access tokens with fewer seconds left (FirecREST refuses < 30 s)"
    ).tag(config=True)
    service_client_id = Unicode(
        "", help="Service-account client id (client_credentials) used for polling; empty: "
        "poll with the user's token",
    ).tag(config=True)
    service_client_secret = Unicode("", help="Service-account client secret").tag(config=True)
    service_token_url = Unicode(
        "", help="Token endpoint of the service account (empty: token_url)"
    ).tag(config=True)

    # ---------------------------------------------------------------- timing
    start_poll_interval = Float(
        2.0, help="Seconds between job state checks while a server starts"
    ).tag(config=True)
    poll_retries = Int(2, help="Immediate retries of a failed poll request (with backoff)").tag(
        config=True)
    poll_retry_backoff = Float(1.0, help="First retry delay in seconds; doubles each retry").tag(
        config=True)
    poll_max_failures = Int(
        5, help="Consecutive failed polls before a server is considered gone (with the grace)"
    ).tag(config=True)
    poll_failure_grace = Float(
        300.0, help="Seconds polls must keep failing before a server is considered gone"
    ).tag(config=True)
    poll_cache_seconds = Float(
        -1.0, help="Reuse a job state this long (negative: half of poll_interval)"
    ).tag(config=True)
    not_found_grace = Float(
        60.0, help="Seconds after submission during which 'Job not found' is not final"
    ).tag(config=True)
    stop_timeout = Float(
        60.0, help="Seconds stop() waits for the cancelled job to reach a terminal state"
    ).tag(config=True)

    @default("env_keep")
    def _default_env_keep(self) -> list[str]:
        # The hub's PATH, VIRTUAL_ENV, ... would break the job's own environment.
        return []

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 600

    @default("options_form")
    def _default_options_form(self) -> Callable[[FirecRESTSpawner], str]:
        return _options_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Callable[..., dict[str, str]]:
        return _options_from_form

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
        self._callback: asyncio.Future[tuple[str, int]] | None = None
        self._events: list[dict[str, Any]] = []
        self._events_changed: asyncio.Event | None = None
        self._starting = False
        self._stop_requested = False
        self._submitted_at: float | None = None
        self._start_began = time.monotonic()
        self._cached_status: tuple[float, int | None] | None = None
        self._poll_task: asyncio.Future[int | None] | None = None
        self._failures = 0
        self._first_failure: float | None = None
        self._last_error = ""
        #: FirecREST calls made by this spawner (for tests and the benchmark).
        self.firecrest_calls = 0
        self.check_settings()

    # ================================================================ settings
    def limits(self) -> Limits:
        """The site limits from the configuration."""
        return Limits(
            allowed_partitions=list(self.allowed_partitions),
            default_partition=self.default_partition,
            allowed_accounts=list(self.allowed_accounts),
            default_account=self.default_account,
            allowed_reservations=list(self.allowed_reservations),
            max_nodes=self.max_nodes,
            default_nodes=self.default_nodes,
            max_time=self.max_time,
            default_time=self.default_time,
            max_gpus=self.max_gpus,
            default_gpus=self.default_gpus,
            environments=list(self.environments),
            default_environment=self.default_environment,
            allowed_venvs=list(self.allowed_venvs),
            allowed_uenvs={k: list(v) for k, v in self.allowed_uenvs.items()},
            allowed_container_images=list(self.allowed_container_images),
            allow_custom_container_image=self.allow_custom_container_image,
            container_engine=self.container_engine,
        )

    def _authenticator_setting(self, name: str) -> str:
        value = getattr(self.authenticator, name, "") if self.authenticator is not None else ""
        if not value:
            section = self.config.get("GenericOAuthenticator", {})
            value = section.get(name, "") if hasattr(section, "get") else ""
        return value if isinstance(value, str) else ""

    def token_endpoint(self) -> TokenEndpoint | None:
        """Where user tokens are refreshed (None when no token URL is known)."""
        url = self.token_url or self._authenticator_setting("token_url")
        if not url:
            return None
        return TokenEndpoint(
            url=url,
            client_id=self.token_client_id or self._authenticator_setting("client_id"),
            client_secret=self.token_client_secret or self._authenticator_setting("client_secret"),
            timeout=self.firecrest_timeout,
            verify=self.verify_tls,
        )

    def check_settings(self) -> None:
        """Raise :class:`ConfigError` naming the first missing or wrong setting."""
        def fail(setting: str, message: str) -> None:
            raise ConfigError(f"FirecRESTSpawner.{setting}: {message}")

        if not re.match(r"https?://[^\s/?#]+[^\s?#]*\Z", self.firecrest_url):
            fail("firecrest_url", f"{self.firecrest_url!r} must be the http(s) URL of the "
                 "FirecREST v2 API, e.g. 'https://firecrest.example.org'")
        if not _SYSTEM_RE.match(self.system):
            fail("system", f"{self.system!r} must name a FirecREST system (see GET "
                 "/status/systems), e.g. 'daint'")
        if not self.workdir:
            fail("workdir", "is required: the job's working directory, e.g. '/home/{username}'")
        if not self.workdir.startswith("/") or any(c.isspace() for c in self.workdir):
            fail("workdir", f"{self.workdir!r} must be an absolute path without spaces")
        try:
            self.limits().check()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        engines = {"container": self.container_engine}
        try:
            if self.batch_script_template:
                check_template(self.batch_script_template)
            else:
                for env in self.environments:
                    check_template(packaged_template(env, engines.get(env, "edf")),
                                   f"packaged template for {env}")
            for directive in self.extra_directives:
                check_directive(directive, "FirecRESTSpawner.extra_directives")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            ssl_context(self.verify_tls)  # built once here, shared by every client
        except TLSSettingError as exc:
            raise ConfigError(str(exc)) from None
        if self.port_range and not re.match(r"[0-9]{1,5}-[0-9]{1,5}\Z", self.port_range):
            fail("port_range", f"{self.port_range!r} must look like '20000-30000'")
        if self.token_refresh_margin <= 30:
            fail("token_refresh_margin", f"{self.token_refresh_margin} must exceed 30 s: "
                 "FirecREST refuses tokens with less than 30 s left")
        for name in ("firecrest_timeout", "start_poll_interval", "stop_timeout",
                     "poll_retry_backoff"):
            if getattr(self, name) <= 0:
                fail(name, f"{getattr(self, name)} must be positive")
        for name in ("poll_retries", "poll_max_failures"):
            if getattr(self, name) < (0 if name == "poll_retries" else 1):
                fail(name, f"{getattr(self, name)} is too small")
        if bool(self.service_client_id) != bool(self.service_client_secret):
            fail("service_client_secret" if self.service_client_id else "service_client_id",
                 "service_client_id and service_client_secret must be set together")
        if self.service_client_id and not (self.service_token_url or self.token_url
                                           or self._authenticator_setting("token_url")):
            fail("service_token_url", "is required for the service account")
        if self.authenticator is not None and self.token_endpoint() is None:
            fail("token_url", "no OAuth token endpoint is known for refreshing user tokens: "
                 "set FirecRESTSpawner.token_url or GenericOAuthenticator.token_url")

    # ================================================================ clients
    def _user_client(self) -> tuple[AsyncFirecrest, UserTokenAuth]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._auth is None:
            self._auth = user_token_auth(self.user, self.token_endpoint(),
                                         self.token_refresh_margin)
            self._client = self._make_client(self._auth)
            self._client_loop = loop
        return self._client, self._auth

    def _make_client(self, auth: Any) -> AsyncFirecrest:
        client = AsyncFirecrest(self.firecrest_url, authorization=auth,
                                verify=ssl_context(self.verify_tls))
        client.timeout = self.firecrest_timeout
        client.num_retries_rate_limit = 2
        return client

    def _poll_client(self) -> tuple[AsyncFirecrest, Any]:
        if not self.service_client_id:
            return self._user_client()
        loop = asyncio.get_running_loop()
        per_loop = _service_clients.setdefault(loop, {})
        url = self.service_token_url or self.token_url or self._authenticator_setting("token_url")
        key = (self.firecrest_url, url, self.service_client_id)
        if key not in per_loop:
            auth = ClientCredentialsAuth(
                TokenEndpoint(url, self.service_client_id, self.service_client_secret,
                              self.firecrest_timeout, self.verify_tls),
                self.token_refresh_margin,
            )
            per_loop[key] = (self._make_client(auth), auth)
        return per_loop[key]

    async def _call(self, auth: Any, make: Callable[[], Awaitable[T]]) -> T:
        """Run one FirecREST call with a hard time bound; failures become _CallFailed.

        On 401 the cached token is dropped so that the next call gets a fresh one.
        """
        self.firecrest_calls += 1
        try:
            return await asyncio.wait_for(make(), timeout=self.firecrest_timeout * 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (classified by _explain; unknown ones re-raise)
            failure = _explain(exc)
            if failure.kind == "auth" and hasattr(auth, "invalidate"):
                auth.invalidate()
            raise failure from None

    async def _job_status(self, client: AsyncFirecrest, auth: Any) -> JobStatus:
        jobs = await self._call(auth, lambda: client.job_info(self.job_system, self.job_id))
        for record in jobs:
            status = JobStatus.from_firecrest(record)
            if status.job_id == self.job_id:
                return status
        raise _CallFailed("not_found", f"job {self.job_id} missing from FirecREST's answer")

    def template_namespace(self) -> dict[str, Any]:
        """format_string fields: JupyterHub's (username, base_url) plus servername."""
        namespace = super().template_namespace()
        namespace["servername"] = self.name or ""
        return namespace

    # ================================================================ options
    def job_options(self) -> Any:
        """The validated :class:`~.options.JobOptions` of ``self.user_options``.

        Refused options raise :class:`InvalidOptions` (HTTP 400) naming the field.
        """
        try:
            return validate_options(self.user_options or {}, self.limits())
        except OptionError as exc:
            raise InvalidOptions(f"Invalid server option {exc}") from None

    def render_script(self, options: Any) -> str:
        """The batch script for validated ``options``."""
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
        """Yield the start's events: submitted, queued (with Slurm's reason), running."""
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
    def receive_callback(self, host: str, port: int) -> None:
        """Record where the job's JupyterLab listens (called by the callback handler).

        A repeated callback with the same host and port (a launcher retrying after a
        lost answer) is accepted again. Raises ValueError for a bad host or port,
        RuntimeError when no start waits (or it already got another address).
        """
        host = validate_host(host)
        port = validate_port(port)
        future = self._callback
        if (self._starting and future is not None and future.done()
                and not future.cancelled() and future.result() == (host, port)):
            return
        if not self._starting or future is None or future.done():
            raise RuntimeError(
                f"{self._log_name} is not waiting for a callback (job {self.job_id or 'none'});"
                " the server was not starting, or already got its callback"
            )
        future.set_result((host, port))

    # ================================================================ start
    async def start(self) -> tuple[str, int]:
        """Submit the job and wait for its callback; returns (host, port)."""
        options = self.job_options()
        script = self.render_script(options)
        workdir = self.format_string(self.workdir)
        encoded = encode_env(self.job_env())
        client, auth = self._user_client()
        loop = asyncio.get_running_loop()
        self._start_began = time.monotonic()
        self._stop_requested = False
        self._starting = True
        self._events = []
        self._events_changed = asyncio.Event()
        self._callback = loop.create_future()
        self._cached_status = None
        self._failures, self._first_failure = 0, None
        self.job_host, self.job_port = "", 0
        try:
            if self.cancel_stale_jobs:
                await self._cancel_orphans(client, auth, "left by an earlier start of this "
                                           "server that the hub lost track of")
            self._event(5, f"Submitting the JupyterLab job to {self.system}")
            try:
                answer = await self._call(auth, lambda: client.submit(
                    self.system, workdir, script_str=script, env_vars={ENV_VAR: encoded}))
                job_id = str(answer["jobId"])
            except _CallFailed as exc:
                if exc.kind == "token":
                    raise RuntimeError(
                        f"Cannot get a FirecREST access token: {exc.detail}") from None
                if exc.kind == "transient":
                    await self._cancel_orphans(client, auth, "submitted without an answer")
                raise RuntimeError(
                    f"FirecREST did not accept the JupyterLab job for {self.system}: "
                    f"{exc.detail}"
                ) from None
            self.job_id, self.job_system, self.job_workdir = job_id, self.system, workdir
            self._submitted_at = time.monotonic()
            self._event(10, f"Job {job_id} submitted to {self.system}")
            try:
                host, port = await self._wait_until_ready(client, auth)
            except BaseException as exc:
                reason = str(exc) or type(exc).__name__
                self.log.warning("%s: start failed (%s); cancelling job %s",
                                 self._log_name, reason, self.job_id)
                await asyncio.shield(self._cancel_and_wait(min(self.stop_timeout, 30.0)))
                raise
            self.job_host, self.job_port = host, port
            self._event(95, f"JupyterLab is up on {host}:{port}")
            return host, port
        finally:
            self._starting = False
            if self._events_changed is not None:
                self._events_changed.set()

    def _start_budget(self) -> float:
        """Seconds left for the job to come up: start_timeout minus what start() used,
        minus a margin so that this spawner (not JupyterHub's own timeout) reports why."""
        margin = min(5.0, 0.1 * self.start_timeout)
        used = time.monotonic() - self._start_began
        return max(1.0, self.start_timeout - margin - used)

    async def _wait_until_ready(self, client: AsyncFirecrest, auth: Any) -> tuple[str, int]:
        assert self._callback is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_budget()
        last: JobStatus | None = None
        self._last_error = ""
        while True:
            if self._stop_requested:
                raise JobEnded(f"the server was stopped while job {self.job_id} was starting")
            if self._callback.done():
                host, port = self._callback.result()
                if last is None or last.phase is not Phase.RUNNING:
                    last = await self._status_once(client, auth) or last
                if last is not None and last.over:
                    raise JobEnded(self._ended_message(last))
                if last is not None and last.phase is Phase.RUNNING:
                    self._running_event(last)
                return host, port
            status = await self._status_once(client, auth)
            if status is not None:
                last = status
                if status.phase is Phase.TERMINAL:
                    raise JobEnded(self._ended_message(status))
                if status.phase is Phase.ENDING:
                    # wait for the final state: it carries the exit code worth showing
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
                raise TimeoutError(
                    f"JupyterLab did not start within {self.start_timeout} s: job "
                    f"{self.job_id} is {state}. The job was cancelled; try a less busy "
                    "partition or a shorter time limit, or ask your administrator to raise "
                    "FirecRESTSpawner.start_timeout"
                )
            await asyncio.wait({self._callback}, timeout=min(self.start_poll_interval, remaining))

    def _running_event(self, status: JobStatus) -> None:
        where = f" on {status.nodes}" if status.nodes else ""
        self._event(60, f"Job {self.job_id} running{where}; starting JupyterLab")

    async def _status_once(self, client: AsyncFirecrest, auth: Any) -> JobStatus | None:
        """One job state check during start (None after a transient failure, noted in
        ``_last_error``); failures that need the user or a vanished job abort."""
        try:
            return await self._job_status(client, auth)
        except _CallFailed as failure:
            if failure.kind == "token":
                raise RuntimeError(f"cannot check job {self.job_id}: {failure.detail}") from None
            if failure.kind == "not_found" and not self._in_not_found_grace():
                raise JobEnded(
                    f"job {self.job_id} disappeared from {self.job_system} "
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

    async def _cancel_orphans(self, client: AsyncFirecrest, auth: Any, why: str) -> None:
        """Cancel active jobs of this user with this server's job name.

        Used after a submit whose answer was lost, and before a submission (a job left
        by a hub that crashed while starting). Jobs of the user's other servers that
        this hub knows are never touched, even if a site's job_name makes names clash.
        """
        wanted = safe_job_name(self.format_string(self.job_name))
        known = {getattr(s, "job_id", "") for s in self._other_spawners()}
        try:
            jobs = await self._call(auth, lambda: client.job_info(self.system))
        except _CallFailed as failure:
            self.log.warning("%s: could not look for %s: %s", self._log_name, why,
                             failure.detail)
            return
        for record in jobs:
            try:
                status = JobStatus.from_firecrest(record)
            except ValueError:
                continue
            if record.get("name") == wanted and not status.over and status.job_id not in known:
                self.log.warning("%s: cancelling job %s (%s)", self._log_name, status.job_id,
                                 why)
                try:
                    await self._call(auth, lambda job_id=status.job_id: client.cancel_job(
                        self.system, job_id))
                except _CallFailed as failure:
                    self.log.warning("%s: cancelling job %s failed: %s", self._log_name,
                                     status.job_id, failure.detail)

    def _other_spawners(self) -> list[Any]:
        spawners = getattr(self.user, "spawners", None) or {}
        return [s for s in list(spawners.values()) if s is not self]

    # ================================================================ poll
    def _cache_ttl(self) -> float:
        if self.poll_cache_seconds >= 0:
            return self.poll_cache_seconds
        return max(0.0, self.poll_interval / 2)

    async def poll(self) -> int | None:
        """None while the job is queued or running; an exit status once it is gone."""
        if not self.job_id:
            return 0
        if self._starting:
            return None
        cached = self._cached_status
        if cached is not None and time.monotonic() - cached[0] < self._cache_ttl():
            return cached[1]
        if self._poll_task is None or self._poll_task.done():
            self._poll_task = asyncio.ensure_future(self._poll_now())
        return await asyncio.shield(self._poll_task)

    async def _poll_now(self) -> int | None:
        client, auth = self._poll_client()
        delay = self.poll_retry_backoff
        failure: _CallFailed | None = None
        for attempt in range(self.poll_retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                status = await self._job_status(client, auth)
            except _CallFailed as exc:
                failure = exc
                if exc.kind == "not_found" and not self._in_not_found_grace():
                    return self._gone(f"FirecREST no longer knows job {self.job_id} "
                                      f"({exc.detail})", 0)
                if exc.kind in ("token", "refused"):
                    break
                continue
            self._failures, self._first_failure = 0, None
            if status.over:
                code = status.exit_code if status.exit_code is not None else 0
                return self._gone(f"job {self.job_id} is {status.describe()}", code)
            self._cached_status = (time.monotonic(), None)
            return None
        assert failure is not None
        now = time.monotonic()
        self._failures += 1
        if self._first_failure is None:
            self._first_failure = now
        waited = now - self._first_failure
        if self._failures >= self.poll_max_failures and waited >= self.poll_failure_grace:
            return self._gone(
                f"{self._failures} consecutive polls of job {self.job_id} failed over "
                f"{waited:.0f} s (last: {failure.detail}); considering the server gone", 1)
        self.log.warning(
            "%s: poll of job %s failed (%d/%d, %.0f/%.0f s): %s; keeping the server",
            self._log_name, self.job_id, self._failures, self.poll_max_failures, waited,
            self.poll_failure_grace, failure.detail)
        return None

    def _gone(self, why: str, code: int) -> int:
        self.log.warning("%s: server gone: %s", self._log_name, why)
        self._cached_status = (time.monotonic(), code)
        return code

    # ================================================================ stop
    async def stop(self, now: bool = False) -> None:
        """Cancel the job and wait (bounded by stop_timeout) until Slurm ends it."""
        self._stop_requested = True
        if self._callback is not None and not self._callback.done():
            self._callback.cancel()
        if not self.job_id:
            return
        await self._cancel_and_wait(min(self.stop_timeout, 10.0) if now else self.stop_timeout)
        self._cached_status = (time.monotonic(), 0)

    async def _cancel_and_wait(self, bound: float) -> bool:
        """Cancel the job; True once it is seen terminal (or gone) within ``bound`` s."""
        if not self.job_id:
            return True
        client, auth = self._user_client()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        cancel_sent = False
        delay = 0.5
        last = "no answer yet"
        while True:
            if not cancel_sent:
                try:
                    await self._call(auth, lambda: client.cancel_job(self.job_system, self.job_id))
                    cancel_sent = True
                except _CallFailed as failure:
                    # 500 also means "already finished" on real FirecREST: check below.
                    last = failure.detail
            try:
                status = await self._job_status(client, auth)
                if status.phase is Phase.TERMINAL:
                    self.log.info("%s: job %s ended: %s", self._log_name, self.job_id,
                                  status.describe())
                    return True
                last = status.describe()
            except _CallFailed as failure:
                if failure.kind == "not_found":
                    return True
                last = failure.detail
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.log.warning("%s: job %s not ended %.0f s after cancelling (last: %s)",
                                 self._log_name, self.job_id, bound, last)
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)

    # ================================================================ state
    def get_state(self) -> dict[str, Any]:
        """Job id, system, host, port and working directory (for hub restarts)."""
        state = super().get_state()
        if self.job_id:
            state.update(job_id=self.job_id, job_system=self.job_system,
                         job_host=self.job_host, job_port=self.job_port,
                         job_workdir=self.job_workdir)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` saved."""
        super().load_state(state)
        if state.get("job_id"):
            self.job_id = str(state["job_id"])
            self.job_system = str(state.get("job_system") or self.system)
            self.job_host = str(state.get("job_host") or "")
            self.job_port = int(state.get("job_port") or 0)
            self.job_workdir = str(state.get("job_workdir") or "")
            self._submitted_at = None
            self._cached_status = None

    def clear_state(self) -> None:
        """Forget the job (after it stopped)."""
        super().clear_state()
        self.job_id = self.job_system = self.job_host = self.job_workdir = ""
        self.job_port = 0
        self._cached_status = None
        self._submitted_at = None


def _options_form(spawner: FirecRESTSpawner) -> str:
    """Default options_form: the form for the spawner's limits."""
    return render_form(spawner.limits())


def _options_from_form(formdata: dict[str, list[str]],
                       spawner: FirecRESTSpawner | None = None) -> dict[str, Any]:
    """Default options_from_form: flatten and validate (errors show on the form)."""
    options = form_to_options(formdata)
    if spawner is not None:
        return validate_options(options, spawner.limits()).as_user_options()
    return dict(options)


__all__ = ["FirecRESTSpawner", "InvalidOptions", "JobEnded", "OptionError", "validate_host", "validate_port"]
