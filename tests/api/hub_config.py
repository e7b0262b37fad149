"""jupyterhub_config.py for the callback API tests: a real hub, a tiny spawner, no proxy.

Run as ``jupyterhub -f tests/api/hub_config.py`` with:
``F7T_HUB_DIR`` (state: database, cookie secret, spawner records), ``F7T_HUB_PORT``
(the hub's own HTTP port), ``F7T_PROXY_PORT`` (public port, unused) and
``F7T_ADMIN_TOKEN`` (token of the ``tester`` service, which may start servers and
make user tokens).

:class:`CallbackSpawner` writes its API token to ``<user>.token`` when it starts, then
waits for :meth:`receive_callback`, which records ``<user>.callbacks`` (one JSON line
per accepted call) and completes the start with ``http://host:port`` two seconds later.
Ports below 1024 are refused with ValueError, as a real spawner may refuse values it
cannot use; a second callback for the same start gets RuntimeError (like
FirecRESTSpawner).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import ClassVar

from jupyterhub.proxy import Proxy
from jupyterhub.spawner import Spawner

import firecrestspawner.api  # noqa: F401  (registers the callback handler)
from firecrestspawner.gcfreeze import freeze_after_start

STATE = Path(os.environ["F7T_HUB_DIR"])


class CallbackSpawner(Spawner):
    """Starts nothing; the 'job' is the test, which posts the callback itself."""

    _future: asyncio.Future[tuple[str, int]] | None = None

    def _file(self, suffix: str) -> Path:
        return STATE / f"{self.user.name}{('-' + self.name) if self.name else ''}.{suffix}"

    async def start(self) -> str:
        self._future = asyncio.get_running_loop().create_future()
        path = self._file("token")
        path.write_text(self.api_token)
        path.chmod(0o600)
        host, port = await self._future
        # stay pending a moment, as a real spawner does while it records the job's state
        await asyncio.sleep(2)
        return f"http://{host}:{port}"

    def receive_callback(self, host: str, port: int) -> None:
        if port < 1024:
            raise ValueError(f"port {port} is privileged; the job cannot listen there")
        if self._future is None or self._future.done():
            raise RuntimeError(f"{self._log_name} is not waiting for a callback")
        with open(self._file("callbacks"), "a") as fh:
            fh.write(json.dumps({"host": host, "port": port}) + "\n")
        self._future.set_result((host, port))

    async def poll(self) -> int | None:
        return None if self._future is not None else 0

    async def stop(self, now: bool = False) -> None:
        if self._future is not None and not self._future.done():
            self._future.cancel()
        self._future = None


class NullProxy(Proxy):
    """No proxy process: routes are kept in memory (the tests talk to the hub directly)."""

    should_start = False
    _routes: ClassVar[dict[str, dict]] = {}

    async def add_route(self, routespec: str, target: str, data: dict) -> None:
        self._routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec: str) -> None:
        self._routes.pop(routespec, None)

    async def get_all_routes(self) -> dict[str, dict]:
        return dict(self._routes)


c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by jupyterhub)

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["F7T_PROXY_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["F7T_HUB_PORT"])
c.JupyterHub.proxy_class = NullProxy
c.JupyterHub.spawner_class = CallbackSpawner
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {"alice", "bob"}
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.JupyterHub.services = [{"name": "tester", "api_token": os.environ["F7T_ADMIN_TOKEN"]}]
c.JupyterHub.load_roles = [
    {"name": "tester", "scopes": ["admin:users", "admin:servers", "tokens"], "services": ["tester"]}
]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 30
# As the hub image's jupyterhub_config.py: freeze the start-up heap once started.
freeze_after_start()
