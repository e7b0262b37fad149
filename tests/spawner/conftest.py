"""Fixtures: the FirecREST double, a real JupyterHub (MockHub) using FirecRESTSpawner,
a user with OAuth tokens in auth_state, and the simulated compute side."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from firecrest_double import FirecrestDouble, SimulatedScheduler
from firecrestspawner import batchpoll, reconciler

from .fakecompute import FakeCompute
from .hubtools import HubClient, hub_config, new_crypt_key, start_hub, stop_hub

# auth_state encryption needs a key before the hub's CryptKeeper is created.
os.environ.setdefault("JUPYTERHUB_CRYPT_KEY", new_crypt_key())

USER = "alice"


@pytest_asyncio.fixture
async def double() -> AsyncIterator[FirecrestDouble]:
    """The FirecREST double (system ``cluster``, 0.3 s queue), checked for violations."""
    # one node, "localhost": the fake labs listen on 127.0.0.1, which the hub's callback
    # check accepts because the job's node name resolves to it
    scheduler = SimulatedScheduler("cluster", queue_delay=0.3, reason_after=0.1,
                                   nodes=["localhost"])
    async with FirecrestDouble(scheduler) as fc:
        yield fc
        fc.assert_no_violations()


@pytest_asyncio.fixture
async def compute(double: FirecrestDouble) -> AsyncIterator[FakeCompute]:
    """Simulated launchers: call back and serve a fake lab when a job runs."""
    fake = FakeCompute(double.scheduler)  # type: ignore[arg-type]
    yield fake
    await fake.close()


@pytest.fixture
def spawner_settings(double: FirecrestDouble, tmp_path: Path) -> dict[str, Any]:
    """FirecRESTSpawner settings pointing at the double, with short test timings."""
    return {
        "firecrest_url": double.url,
        "system": "cluster",
        "workdir": str(tmp_path),
        "token_url": double.idp.url + "/token",
        "token_client_id": "f7t4jhub",
        "start_timeout": 20,
        "http_timeout": 10,
        "start_poll_interval": 0.1,
        "poll_interval": 3600,  # tests call poll() themselves
        "firecrest_timeout": 3.0,
        "poll_retry_backoff": 0.05,
        "stop_timeout": 5.0,
        "allowed_partitions": ["normal", "debug"],
        "default_partition": "normal",
        "max_nodes": 2,
        "max_gpus": 4,
    }


HubFactory = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture
async def make_hub(spawner_settings: dict[str, Any]) -> AsyncIterator[HubFactory]:
    """``await make_hub(hub={JupyterHub settings}, **FirecRESTSpawner overrides)`` → a
    started hub; its servers and the hub are stopped at teardown."""
    apps: list[Any] = []

    async def make(clean_db: bool = True, hub: dict[str, Any] | None = None,
                   **overrides: Any) -> Any:
        config = hub_config({**spawner_settings, **overrides})
        for key, value in (hub or {}).items():
            setattr(config.JupyterHub, key, value)
        app = await start_hub(config, clean_db)
        apps.append(app)
        return app

    yield make
    for app in apps:
        # stop servers still running so that no job outlives the test
        for user in list(app.users.values()):
            for name, spawner in list(user.spawners.items()):
                if spawner.active:
                    with contextlib.suppress(Exception):  # teardown: go on regardless
                        await user.stop(name)
        if not getattr(app, "_stop_called", False):
            await stop_hub(app)
    await reconciler.stop_all()
    await batchpoll.close_all()


async def login(app: Any, double: FirecrestDouble, name: str = USER,
                access_lifetime: float = 300.0) -> tuple[Any, HubClient, str]:
    """Create ``name`` with auth_state as GenericOAuthenticator stores it.

    Returns (hub User, API client with the user's own token, refresh token).
    """
    from jupyterhub.tests.utils import add_user

    user = add_user(app.db, app, name=name)
    refresh = double.idp.issue_refresh_token(name)
    await user.save_auth_state({
        "access_token": double.idp.mint(name, access_lifetime),
        "refresh_token": refresh,
        "id_token": None,
        "scope": ["openid", "profile", "firecrest-v2"],
        "token_response": {"token_type": "Bearer", "expires_in": int(access_lifetime)},
        "oauth_user": {"preferred_username": name},
    })
    token = user.new_api_token()
    return user, HubClient(app, token), refresh


async def start_server(client: HubClient, name: str = USER, server: str = "",
                       options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Start a server through the hub's REST API; returns its progress events."""
    path = f"/users/{name}/servers/{server}" if server else f"/users/{name}/server"
    status, body = await client.request("POST", path, options)
    if status >= 400:  # refused before the spawn was pending (hub slow_spawn_timeout > 0)
        message = body.get("message", "") if isinstance(body, dict) else str(body)
        return [{"failed": True, "message": message, "status": status}]
    assert status in (201, 202), (status, body)
    return [event async for event in client.progress(name, server)]


async def running_server(app: Any, double: FirecrestDouble, **login_kw: Any) -> Any:
    """Log alice in and start her default server; returns her ready spawner."""
    user, client, _ = await login(app, double, **login_kw)
    events = await start_server(client)
    assert events[-1].get("ready"), events
    return user.spawner
