"""A minimal JupyterHub API on loopback: just enough for jupyterhub-singleuser and the launcher.

:class:`HubStub` serves, on ``127.0.0.1:<free port>`` from a background thread, what
``jupyterhub-singleuser`` 4.1, 5.x and 6.x ask their hub for, plus our callback:

- ``GET  /hub/api`` and ``/hub/api/`` — version check (``X-JupyterHub-Version`` header);
- ``GET  /hub/api/user`` — "who am I" for a token: the server's token resolves to its
  owner with the scopes of JupyterHub's ``server`` role (``access:servers!server=u/``,
  ``users:activity!user=u``), which is how the single-user server authorizes requests
  carrying ``Authorization: token <api token>``; any other token gets 403;
- ``POST /hub/api/users/<name>/activity`` — activity reports (recorded);
- ``POST /hub/api/firecrestspawner/callback`` — checks the token and the body exactly like
  :mod:`firecrestspawner.api` (only ``host`` and ``port``), records them.

Every request is recorded (method, path, status) for diagnostics; nothing else on the
machine is contacted.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from firecrestspawner.compute.hosts import HostError, check_host

if TYPE_CHECKING:
    from typing_extensions import Self

_TOKEN_RE = re.compile(r"\A(?:token|bearer)\s+(\S+)\Z", re.IGNORECASE)


@dataclass
class RequestRecord:
    """One request the stub answered."""

    method: str
    path: str
    status: int
    body: str = ""


@dataclass
class HubStub:
    """A hub API stub for one user's server.

    ``refuse_callback=(status, message)`` makes the callback endpoint answer with that
    error instead of accepting (to test the launcher's handling of a refusing hub);
    ``transient_failures=n`` makes the first ``n`` callbacks answer 503 (a hub restarting);
    ``accept_status=202`` answers an accepted callback as the hub does when it records the
    host and verifies it while JupyterLab starts (default 200: verified at once).
    """

    user: str
    api_token: str
    server_name: str = ""
    version: str = "6.1.1"
    refuse_callback: tuple[int, str] | None = None
    transient_failures: int = 0
    accept_status: int = 200
    requests: list[RequestRecord] = field(default_factory=list)
    callbacks: list[tuple[str, int]] = field(default_factory=list)
    activity: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.callback_event = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------
    def start(self) -> Self:
        """Listen on a free loopback port and serve from a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"hubstub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(
                "HubStub is not started; call start() or use it as a context manager"
            )
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the hub, e.g. ``http://127.0.0.1:PORT/``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """``JUPYTERHUB_API_URL`` as a spawner would set it."""
        return f"http://127.0.0.1:{self.port}/hub/api"

    # -- state --------------------------------------------------------------
    @property
    def server_path(self) -> str:
        """The server's URL prefix, ``/user/<name>/[<server>/]``."""
        return f"/user/{self.user}/" + (f"{self.server_name}/" if self.server_name else "")

    def scopes(self) -> list[str]:
        """Scopes of the server token (JupyterHub's ``server`` role, resolved)."""
        return sorted(
            {
                f"access:servers!server={self.user}/{self.server_name}",
                f"users:activity!user={self.user}",
                f"read:users:name!user={self.user}",
            }
        )

    def user_model(self) -> dict[str, Any]:
        """The ``GET /hub/api/user`` answer (fields of 4.x, plus ``token_id`` from 5.0)."""
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        return {
            "kind": "user",
            "name": self.user,
            "admin": False,
            "groups": [],
            "roles": ["user"],
            "server": None,
            "pending": "spawn",
            "created": now,
            "last_activity": now,
            "scopes": self.scopes(),
            "session_id": None,
            "token_id": "a1",
        }

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def add_callback(self, host: str, port: int) -> None:
        with self._lock:
            self.callbacks.append((host, port))
        self.callback_event.set()

    def describe(self) -> str:
        """The request log, one line per request, for failure messages."""
        with self._lock:
            lines = [f"  {r.method} {r.path} -> {r.status} {r.body[:200]}" for r in self.requests]
        return "hub stub requests:\n" + ("\n".join(lines) if lines else "  (none)")


def _make_handler(stub: HubStub) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``stub``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "f7t4jhub-hubstub"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log (requests are recorded instead)."""

        # -- helpers --------------------------------------------------------
        def _send(self, status: int, payload: Any, note: str = "") -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-JupyterHub-Version", stub.version)
            self.end_headers()
            self.wfile.write(body)
            stub.record(RequestRecord(self.command, self.path, status, note))

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"status": status, "message": message}, message)

        def _authorized(self) -> bool:
            match = _TOKEN_RE.match(self.headers.get("Authorization", "").strip())
            return match is not None and match.group(1) == stub.api_token

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _path(self) -> str:
            return self.path.split("?", 1)[0]

        # -- routes ---------------------------------------------------------
        def do_GET(self) -> None:
            path = self._path()
            if path in ("/hub/api", "/hub/api/"):
                self._send(200, {"version": stub.version})
            elif path == "/hub/api/user":
                if not self._authorized():
                    self._error(403, "Missing or invalid credentials")
                else:
                    self._send(200, stub.user_model())
            else:
                self._error(404, f"hub stub has no GET {path}")

        def do_POST(self) -> None:
            path = self._path()
            body = self._body()
            if path == f"/hub/api/users/{stub.user}/activity":
                if not self._authorized():
                    self._error(403, "Missing or invalid credentials")
                    return
                try:
                    data = json.loads(body or b"{}")
                except json.JSONDecodeError:
                    self._error(400, "activity body is not JSON")
                    return
                with stub._lock:
                    stub.activity.append(data)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                stub.record(RequestRecord(self.command, path, 204))
            elif path == "/hub/api/firecrestspawner/callback":
                self._callback(body)
            else:
                self._error(404, f"hub stub has no POST {path}")

        def _callback(self, body: bytes) -> None:
            if not self._authorized():
                self._error(403, "Missing or invalid credentials")
                return
            if stub.refuse_callback is not None:
                self._error(*stub.refuse_callback)
                return
            with stub._lock:
                transient = stub.transient_failures > 0
                stub.transient_failures -= int(transient)
            if transient:
                self._error(503, "hub stub: temporarily unavailable (transient_failures)")
                return
            problem, host, port = check_callback_body(body)
            if problem:
                self._error(400, problem)
                return
            stub.add_callback(host, port)
            self._send(stub.accept_status, {"message": f"callback received: {host}:{port}"},
                       f"{host}:{port}")

    return Handler


def check_callback_body(body: bytes) -> tuple[str, str, int]:
    """Validate a callback body as the hub does; return (problem or "", host, port)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "body is not JSON", "", 0
    if not isinstance(data, dict) or set(data) != {"host", "port"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        return f"body must be exactly {{'host', 'port'}}, got {keys}", "", 0
    host, port = data["host"], data["port"]
    try:
        check_host(host)  # the same validator as the hub's handler (firecrestspawner.api)
    except HostError as exc:
        return f"invalid host: {exc}", "", 0
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"invalid port {port!r}", "", 0
    return "", host, port
