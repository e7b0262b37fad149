"""Prometheus metrics of the spawner, in JupyterHub's own registry (served on /hub/metrics).

JupyterHub serves ``prometheus_client``'s default ``REGISTRY``; the metrics below are
registered there when this module is first imported (by the spawner), so they appear
next to JupyterHub's own ``jupyterhub_*`` metrics. Names and example queries:
docs/spawner.md#metrics.

``f7t4jhub_spawn_phase_duration_seconds{phase}``
    Histogram of the phases of a start: ``queued`` (job submitted until FirecREST reports
    it running), ``job_start_to_callback`` (running until the launcher's callback reached
    the spawner), ``callback_to_ready`` (callback until JupyterHub has the server's route
    in the proxy and marks it ready).
``f7t4jhub_firecrest_requests_total{route, status}``
    Every HTTP request to FirecREST by route template (``GET /compute/{system}/jobs/{job_id}``)
    and HTTP status; ``status="error"`` when no answer came (timeout, refused connection).
``f7t4jhub_token_refresh_failures_total{kind}``
    Failed access-token grants: ``refused`` (the user must log in again) or ``transient``
    (the identity provider did not answer properly).
``f7t4jhub_reconciler_actions_total{action}``
    What the reconciler did: ``adopted`` (a job handed over to be ended), ``orphan``
    (an orphan job found by a sweep), ``confirmed`` (an end confirmed), ``retry`` (an
    attempt that could not confirm the end), ``restored`` (jobs taken from a saved state
    after a hub restart).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client import Counter, Histogram

PREFIX = "f7t4jhub"

SPAWN_PHASE = Histogram(
    f"{PREFIX}_spawn_phase_duration_seconds",
    "Duration of the phases of a server start",
    ["phase"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf")),
)
FIRECREST_REQUESTS = Counter(
    f"{PREFIX}_firecrest_requests",
    "HTTP requests to FirecREST by route template and status",
    ["route", "status"],
)
TOKEN_REFRESH_FAILURES = Counter(
    f"{PREFIX}_token_refresh_failures",
    "Failed access-token grants (refresh or client credentials) by kind",
    ["kind"],
)
RECONCILER_ACTIONS = Counter(
    f"{PREFIX}_reconciler_actions",
    "Actions of the reconciler that ends jobs the hub no longer serves",
    ["action"],
)

PHASES = ("queued", "job_start_to_callback", "callback_to_ready")
for _phase in PHASES:  # present (as zero) before the first start
    SPAWN_PHASE.labels(phase=_phase)
for _kind in ("refused", "transient"):
    TOKEN_REFRESH_FAILURES.labels(kind=_kind)

#: FirecREST v2 services whose second path segment is a system name.
_SYSTEM_SCOPED = frozenset({"compute", "filesystem", "status", "storage"})
#: Second segments of those services that are not a system name.
_NOT_A_SYSTEM = frozenset({"systems", "liveness"})


def route_template(method: str, path: str, base_path: str = "") -> str:
    """``METHOD /template`` of a FirecREST v2 request path: system names and job ids
    become ``{system}`` and ``{job_id}``, so that the label has few values.

    ``base_path`` (the path of ``firecrest_url``) is removed first. Paths of unknown
    services keep only their first segment (``/other/...``).
    """
    base = base_path.rstrip("/")
    if base and path.startswith(base):
        path = path[len(base):]
    parts = [p for p in path.split("/") if p]
    known = [i for i, p in enumerate(parts) if p in _SYSTEM_SCOPED or p == "userinfo"]
    if known and not base:  # a prefix (e.g. /firecrest/v2) before the service
        parts = parts[known[0]:]
    if not parts:
        return f"{method} /"
    service = parts[0]
    if service not in _SYSTEM_SCOPED and service != "userinfo":
        return f"{method} /{service}/..." if len(parts) > 1 else f"{method} /{service}"
    if service in _SYSTEM_SCOPED and len(parts) > 1 and parts[1] not in _NOT_A_SYSTEM:
        parts[1] = "{system}"
        if service == "compute" and len(parts) > 3 and parts[2] == "jobs":
            parts[3] = "{job_id}"
    if service == "userinfo" and len(parts) > 1:
        parts[1] = "{system}"
    return f"{method} /" + "/".join(parts)


def count_firecrest_requests(client: Any, base_url: str) -> None:
    """Count every request of a pyfirecrest client's httpx session (an event hook)."""
    session = getattr(client, "_session", None)
    if isinstance(session, httpx.AsyncClient):
        count_session_requests(session, base_url)


def count_session_requests(session: httpx.AsyncClient, base_url: str) -> None:
    """Count every request of an httpx client talking to FirecREST (an event hook)."""
    base_path = httpx.URL(base_url).path

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        route = route_template(request.method, request.url.path, base_path)
        FIRECREST_REQUESTS.labels(route=route, status=str(response.status_code)).inc()

    hooks = session.event_hooks
    hooks["response"] = [*hooks.get("response", []), on_response]
    session.event_hooks = hooks


def count_unanswered(exc: BaseException) -> None:
    """Count a FirecREST request that got no HTTP answer (httpx's timeouts, refused or
    reset connections); other failures were counted with their status."""
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:  # an error raised without its request
            return
        route = route_template(request.method, request.url.path)
        FIRECREST_REQUESTS.labels(route=route, status="error").inc()


def token_refresh_failed(kind: str) -> None:
    TOKEN_REFRESH_FAILURES.labels(kind=kind).inc()


def reconciler_action(action: str, count: int = 1) -> None:
    RECONCILER_ACTIONS.labels(action=action).inc(count)


class PhaseClock:
    """The moments of one start; each phase is observed once, when it ends.

    The spawner calls :meth:`mark` on its lifecycle transitions and :meth:`ready`
    when JupyterHub has made the server ready.
    """

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def mark(self, state: str) -> None:
        """Record a lifecycle state entered (``queued``, ``starting``, ``running``)."""
        now = time.monotonic()
        if state == "queued":
            self.marks = {"queued": now}
        elif state == "starting" and "queued" in self.marks and "starting" not in self.marks:
            SPAWN_PHASE.labels(phase="queued").observe(now - self.marks["queued"])
            self.marks["starting"] = now
        elif state == "running" and "running" not in self.marks:
            if "starting" in self.marks:
                SPAWN_PHASE.labels(phase="job_start_to_callback").observe(
                    now - self.marks["starting"])
            if "queued" in self.marks:
                self.marks["running"] = now
        elif state in ("idle", "ended", "stopping", "handed over"):
            self.marks = {}

    def ready(self) -> None:
        """JupyterHub marked the server ready: observe callback to ready (once)."""
        callback = self.marks.pop("running", None)
        if callback is not None:
            SPAWN_PHASE.labels(phase="callback_to_ready").observe(time.monotonic() - callback)
            self.marks = {}
