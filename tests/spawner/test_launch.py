"""End to end on this machine: the double runs the real batch script, the real
firecrestspawner-singleuser calls the real hub back and JupyterLab serves the user."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from firecrest_double import FirecrestDouble, SimulatedScheduler
from tests.support.require import unavailable

from .conftest import USER, login, start_server
from .hubtools import wait_for

BIN = Path(sys.executable).parent
NEEDS = ("firecrestspawner-singleuser", "jupyterhub-singleuser")


@pytest.fixture(autouse=True)
def _launcher_installed() -> None:
    """The launcher and jupyterhub-singleuser must be installed; a gap skips the test
    on a laptop and fails it where F7T_REQUIRE names ``tools`` (CI: ``all``)."""
    missing = [name for name in NEEDS if not (BIN / name).exists() and not shutil.which(name)]
    if missing:
        unavailable("tools", f"{missing} not installed next to {sys.executable}: "
                             "pip install -e '.[hub]' jupyterlab")


@pytest_asyncio.fixture
async def double(tmp_path: Path) -> AsyncIterator[FirecrestDouble]:
    """A double that executes batch scripts, with this venv on the login PATH."""
    login_env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    scheduler = SimulatedScheduler("cluster", queue_delay=0.2, execute=True,
                                   login_env=login_env, kill_grace=5.0,
                                   nodes=["localhost"])
    async with FirecrestDouble(scheduler) as fc:
        yield fc
        fc.assert_no_violations()


async def test_real_launcher_and_jupyterlab(make_hub: Any, double: FirecrestDouble,
                                            tmp_path: Path) -> None:
    app = await make_hub(
        start_timeout=120, http_timeout=120,
        args=["--allow-root"] if os.geteuid() == 0 else [],
        environment={"FIRECRESTSPAWNER_HOST": "127.0.0.1", "FIRECRESTSPAWNER_IP": "127.0.0.1",
                     "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
                     "JUPYTERHUB_SINGLEUSER_APP": "jupyter_server.serverapp.ServerApp"})
    user, client, _ = await login(app, double)

    events = await start_server(client)

    log = tmp_path / ".jupyterhub-logs" / f"jupyterhub-{user.spawner.job_id}.log"
    assert events[-1].get("ready"), (events, log.read_text() if log.exists() else "no log")
    spawner = user.spawner
    assert spawner.server.ip == "127.0.0.1" and spawner.server.port > 0
    job = double.scheduler.jobs_by_id[spawner.job_id]
    assert job.state == "RUNNING" and job.process is not None

    token = client.headers["Authorization"]
    url = f"http://127.0.0.1:{spawner.server.port}/user/{USER}/api/status"
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers={"Authorization": token}) as answer:
        assert answer.status == 200, await answer.text()
        assert "started" in await answer.json()

    status, _ = await client.request("DELETE", f"/users/{USER}/server")
    assert status in (202, 204)
    await wait_for(lambda: not spawner.active, 30, what="server stopped")
    assert job.state.startswith("CANCELLED by ")
    # Slurm (the double) reports CANCELLED at once, then signals the job's processes
    await wait_for(lambda: job.process.returncode is not None, 15,
                   what="the job's processes are gone")
