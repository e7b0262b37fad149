"""The state one server's spawner keeps, and the FirecREST plumbing every flow shares.

:class:`SpawnerCore` is the bottom of FirecRESTSpawner's parts (see
:mod:`firecrestspawner.spawner`): the job's saved fields (traitlets saved by
``get_state()``), the private per-start and per-poll fields, the FirecREST gateways
(the user's, and the shared service account's for polls), the progress events of a
start and the immediate write of the state to JupyterHub's database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firecrest.v2 import AsyncFirecrest
from traitlets import Int, Unicode

from . import metrics
from .gateway import JobGateway
from .lifecycle import Lifecycle
from .settings import FirecRESTSettings
from .tls import ssl_context
from .tokens import ClientCredentialsAuth, TokenEndpoint, UserTokenAuth, user_token_auth

if TYPE_CHECKING:
    # The parts are typed as JupyterHub Spawners (self.user, self.log, self.name ...);
    # at run time only FirecRESTSpawner derives from Spawner, which requires every
    # subclass to define start, stop and poll.
    from jupyterhub.spawner import Spawner as _SpawnerBase
else:
    _SpawnerBase = object

# Service-account clients are shared by all spawners (per event loop and account).
_service_clients: dict[tuple[int, tuple[str, ...]], tuple[AsyncFirecrest,
                                                           ClientCredentialsAuth]] = {}


@dataclass(frozen=True)
class Claim:
    """What a job's callback reported (host and port as sent) and, once the binding is
    verified, the host the hub connects to (``verified``: the reported name, or the
    address it resolved to; None while not verified)."""

    host: str
    port: int
    verified: str | None = None


class SpawnerCore(FirecRESTSettings, _SpawnerBase):
    """Per-server state, gateways and progress events (a base of FirecRESTSpawner)."""

    # ---------------------------------------------------------------- saved state
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
        # a start (see startflow)
        self._callback: asyncio.Future[Claim] | None = None
        self._events: list[dict[str, Any]] = []
        self._events_changed: asyncio.Event | None = None
        self._starting = False
        self._stop_requested = False
        self._submitted_at: float | None = None
        self._start_began = time.monotonic()
        self._last_error = ""
        self._started_here = False
        #: The job's nodes as the start flow's last RUNNING status showed them.
        self._nodes_seen = ""
        #: Job lookups the callback check made (0 when the start flow's nodes matched).
        self.callback_node_lookups = 0
        #: Bugs (unexpected exceptions) poll() and stop() met: logged, never outages.
        self.internal_errors = 0
        # polls (see pollflow)
        self._cached_status: tuple[float, int | None] | None = None
        self._poll_task: asyncio.Future[int | None] | None = None
        self._outages = 0
        self._seen_running = False
        self._last_sweep = time.monotonic()
        # the end of a job (see ending)
        self._end_task: asyncio.Future[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._exit_code = 0
        #: Why the server ended (shown in logs; kept until clear_state).
        self.end_reason = ""
        self.lifecycle = Lifecycle(self.log, "FirecRESTSpawner")
        self.check_settings()

    @property
    def firecrest_calls(self) -> int:
        """FirecREST calls made by this spawner (tests and the benchmark read it)."""
        return sum(gw.calls for gw in (self._gw, self._poll_gw) if gw is not None)

    # ---------------------------------------------------------------- gateways
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

    # ---------------------------------------------------------------- progress events
    def _event(self, progress: int | None, message: str) -> None:
        """Record one progress event of the current start (and log it)."""
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

    # ---------------------------------------------------------------- database
    def _save_state(self) -> None:
        """Write get_state() to JupyterHub's database now (the reconciler's list, a new
        job id: what must survive a hub killed at any moment)."""
        orm_spawner = getattr(self, "orm_spawner", None)
        db = getattr(self, "db", None)
        if orm_spawner is None or db is None:
            return
        orm_spawner.state = self.get_state()
        db.commit()
