"""A real JupyterHub (jupyterhub.tests.mocking.MockHub) for spawner tests, minus the proxy.

The hub runs in the test's event loop with its real API, database, auth_state
encryption and the FirecRESTSpawner; only the configurable-http-proxy process is
replaced by :class:`MemoryProxy`, which keeps routes in memory (tests talk to the
hub's own port, so nothing needs proxying).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from jupyterhub.app import JupyterHub
from jupyterhub.proxy import Proxy
from jupyterhub.tests.mocking import MockHub
from traitlets.config import Config


class MemoryProxy(Proxy):
    """A Proxy that stores routes in a dict and proxies nothing."""

    should_start = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routes: dict[str, dict[str, Any]] = {}

    async def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        spec = self.validate_routespec(routespec)
        self.routes[spec] = {"routespec": spec, "target": target, "data": data}

    async def delete_route(self, routespec: str) -> None:
        self.routes.pop(self.validate_routespec(routespec), None)

    async def get_all_routes(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.routes.items()}


class TestHub(MockHub):
    """MockHub that leaves the event loop's other tasks alone when it stops.

    JupyterHub's stop() cancels every task of the loop (a process about to exit);
    here the test, the FirecREST double and a second hub share that loop.
    """

    async def shutdown_cancel_tasks(self, sig: Any = None) -> None:
        return None

    async def stop(self) -> None:  # type: ignore[override]
        """Clean up in this loop (JupyterHub 5's MockHub uses a thread and a new loop)."""
        if self._stop_called:
            return
        self._stop_called = True
        await self.cleanup()
        self._atexit_ran = True
        JupyterHub.stop(self)
        self.db_file.close()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_config(spawner: dict[str, Any]) -> Config:
    """Hub configuration: loopback, memory proxy, auth_state, FirecRESTSpawner settings."""
    c = Config()
    c.JupyterHub.bind_url = f"http://127.0.0.1:{free_port()}/"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = free_port()
    c.JupyterHub.proxy_class = MemoryProxy
    c.JupyterHub.spawner_class = "firecrestspawner.spawner.FirecRESTSpawner"
    c.JupyterHub.cleanup_servers = False
    # nothing written to the working directory (the repository)
    c.JupyterHub.cookie_secret = secrets.token_bytes(32)
    # answer 202 at once, so that tests can follow the progress of every start
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    c.Authenticator.enable_auth_state = True
    c.Authenticator.allow_all = True
    for key, value in spawner.items():
        setattr(c.FirecRESTSpawner, key, value)
    return c


async def start_hub(config: Config, clean_db: bool = True) -> TestHub:
    """Initialise and start a MockHub with ``config``."""
    TestHub.clear_instance()
    app = TestHub.instance(config=config, test_clean_db=clean_db)
    await app.initialize([])
    await app.start()
    return app


async def stop_hub(app: MockHub) -> None:
    """Stop ``app`` (servers keep running: cleanup_servers is False)."""
    app.log.handlers = []
    try:
        await app.stop()
    finally:
        TestHub.clear_instance()


class HubClient:
    """Minimal client of the hub's REST API, authenticated with one user's token."""

    def __init__(self, app: MockHub, token: str) -> None:
        self.base = app.hub.url.rstrip("/") + "/api"
        self.headers = {"Authorization": f"token {token}"}

    async def request(self, method: str, path: str, body: Any = None,
                      timeout: float = 30.0) -> tuple[int, Any]:
        """One API request; returns (status, JSON body or text)."""
        data = None if body is None else json.dumps(body)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
                s.request(method, self.base + path, headers=self.headers, data=data) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text

    async def progress(self, user: str, server: str = "",
                       timeout: float = 60.0) -> AsyncIterator[dict[str, Any]]:
        """The server's progress events until it is ready or failed."""
        path = f"/users/{user}/servers/{server}/progress" if server else \
            f"/users/{user}/server/progress"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
                s.get(self.base + path, headers=self.headers) as r:
            assert r.status == 200, await r.text()
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05,
                   what: str = "condition") -> None:
    """Poll ``predicate()`` (sync or async) until true, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def new_crypt_key() -> str:
    """A JUPYTERHUB_CRYPT_KEY value."""
    return secrets.token_hex(32)
