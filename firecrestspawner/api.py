"""Hub side of the job callback: ``POST {hub api url}/firecrestspawner/callback``.

``firecrestspawner-singleuser`` (in the Slurm job) reports the host and port JupyterLab
will listen on (docs/contracts.md section 2). This handler authenticates the request
with the server's own API token, resolves the token to the one server it was issued
for, validates the body (exactly ``{"host": str, "port": int}``) and hands it to
``spawner.receive_callback(host, port)``.

Importing this module registers the handler in ``jupyterhub.apihandlers.default_handlers``;
it must therefore be imported before JupyterHub builds its web application (the spawner
module imports it; a ``jupyterhub_config.py`` may also ``import firecrestspawner.api``).

The answer comes at once (no FirecREST request), so that the launcher execs JupyterLab
without waiting: 200 accepted (the host is verified: one of the job's nodes the hub
already saw); 202 recorded (``receive_callback`` returned False: the hub verifies the
host while JupyterLab starts, and a host that is not the job's fails the start, see
:mod:`firecrestspawner.callback`); 400 bad body or a value the spawner rejects (its
ValueError message); 403 missing/invalid token, a token that belongs to no starting
server of a spawner with ``receive_callback``, or a spawner that is no longer waiting
(its RuntimeError message, e.g. a second callback for the same start).
"""

from __future__ import annotations

import hmac
import inspect
import json
from typing import Any

from jupyterhub.apihandlers import APIHandler, default_handlers
from tornado import web

from firecrestspawner.compute.hosts import HostError, check_host

#: Route under the hub's base URL (JupyterHub prefixes ``/hub``).
CALLBACK_ROUTE = r"/api/firecrestspawner/callback"
ALLOWED_KEYS = frozenset({"host", "port"})


def validate_body(raw: bytes) -> tuple[str, int]:
    """Parse and validate a callback body; raise HTTPError(400) naming the problem."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise web.HTTPError(400, f"callback body is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise web.HTTPError(
            400,
            f'callback body must be a JSON object {{"host": ..., "port": ...}}, '
            f"got {type(data).__name__}",
        )
    extra = sorted(set(data) - ALLOWED_KEYS)
    missing = sorted(ALLOWED_KEYS - set(data))
    if extra or missing:
        parts = []
        if extra:
            parts.append(f"unexpected key(s) {', '.join(extra)}")
        if missing:
            parts.append(f"missing key(s) {', '.join(missing)}")
        raise web.HTTPError(
            400, "callback body must have exactly the keys host and port: " + "; ".join(parts)
        )
    host, port = data["host"], data["port"]
    try:
        host = check_host(host)
    except HostError as exc:
        raise web.HTTPError(400, f"invalid host: {exc}") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise web.HTTPError(400, f"invalid port {port!r}: expected an integer 1..65535")
    return host, port


class FirecRESTCallbackHandler(APIHandler):
    """Receive ``{"host", "port"}`` from a starting job and pass it to its spawner."""

    def _spawner_for_token(self, user: Any, token: str) -> Any | None:
        """The user's spawner whose API token is ``token`` (constant-time compare)."""
        for spawner in list(user.spawners.values()):
            candidate = getattr(spawner, "api_token", None) or ""
            if candidate and hmac.compare_digest(candidate.encode(), token.encode()):
                return spawner
        return None

    @web.authenticated
    async def post(self) -> None:
        user = self.current_user
        token = self.get_auth_token()
        if not token or not hasattr(user, "spawners"):
            raise web.HTTPError(
                403,
                "the callback must be authenticated with the server's own API token "
                "(Authorization: token $JUPYTERHUB_API_TOKEN)",
            )
        spawner = self._spawner_for_token(user, token)
        if spawner is None:
            raise web.HTTPError(
                403,
                f"this token belongs to no server of user {user.name}: use the "
                "JUPYTERHUB_API_TOKEN the hub gave the job",
            )
        receive = getattr(spawner, "receive_callback", None)
        if not callable(receive):
            raise web.HTTPError(
                403,
                f"server {spawner._log_name} is not run by FirecRESTSpawner "
                "(its spawner has no receive_callback)",
            )
        if spawner.pending != "spawn":
            state = spawner.pending or ("running" if spawner.ready else "stopped")
            raise web.HTTPError(
                403,
                f"server {spawner._log_name} is not starting (it is {state}); "
                "the callback is accepted only while the hub waits for the job",
            )
        host, port = validate_body(self.request.body)
        try:
            result = receive(host, port)
            if inspect.isawaitable(result):
                result = await result
        except ValueError as exc:
            raise web.HTTPError(400, f"callback rejected by the spawner: {exc}") from None
        except RuntimeError as exc:
            # the spawner is no longer waiting (e.g. a second callback for the same start)
            raise web.HTTPError(403, f"callback refused by the spawner: {exc}") from None
        if result is False:  # recorded; the start flow verifies the host
            status, message = 202, "callback recorded; the hub verifies the host"
        else:
            status, message = 200, "callback accepted"
        self.log.info("firecrestspawner %s for %s: %s:%d", message, spawner._log_name, host,
                      port)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "host": host, "port": port}))


def register() -> None:
    """Add the handler to JupyterHub's API handlers (once)."""
    if not any(route == CALLBACK_ROUTE for route, *_ in default_handlers):
        default_handlers.append((CALLBACK_ROUTE, FirecRESTCallbackHandler))


register()
