"""The live form and failure diagnostics on the real Slurm cluster, through JupyterHub.

The FirecREST double runs its real-Slurm backend: the spawn page's partitions, states and
free nodes come from ``scontrol show partitions``/``sinfo --json`` of the local cluster,
and a job that really runs under Slurm as the job user, and fails at launch, shows its
own output (written on the cluster, read back through FirecREST's tail) in the failed
start's message. Hub, launcher kit and cleanup as in ``test_lifecycle_faults.py``.
"""

from __future__ import annotations

import asyncio
import html
import pwd
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from firecrest_double import FileSystemConfig, FirecrestDouble
from firecrest_double.slurm import SlurmScheduler, scontrol_fields
from firecrestspawner.compute.envcodec import ENV_VAR, decode_env
from tests.slurm.test_lifecycle_faults import SYSTEM, Kit, _cancel_prefix, kit, make_hub
from tests.spawner.conftest import login, start_server
from tests.spawner.fakecompute import script_env

__all__ = ["kit", "make_hub"]  # fixtures shared with test_lifecycle_faults.py

TAIL = "GET /filesystem/{system_name}/ops/tail"


@pytest_asyncio.fixture
async def double(kit: Kit) -> AsyncIterator[FirecrestDouble]:
    """The double on the real cluster, serving the job user's home as its file system."""
    home = pwd.getpwnam(kit.user).pw_dir
    fc = FirecrestDouble(SlurmScheduler(SYSTEM), filesystems=[FileSystemConfig(home)])
    try:
        async with fc:
            yield fc
            fc.assert_no_violations()
    finally:
        await asyncio.to_thread(_cancel_prefix, kit.prefix)


async def spawn_page(app: Any, user: Any) -> str:
    """/hub/spawn as the logged-in user's browser sees it (auth_state kept)."""
    hub = app.hub.url.rstrip("/")
    auth_state = await user.get_auth_state()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{hub}/login") as answer:
            assert answer.status == 200
        xsrf = next(c.value for c in jar if c.key == "_xsrf")
        async with session.post(f"{hub}/login?_xsrf={xsrf}",
                                data={"username": user.name, "password": user.name},
                                allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
        await user.save_auth_state(auth_state)
        async with session.get(f"{hub}/spawn") as answer:
            assert answer.status == 200
            return html.unescape(await answer.text())


def slurm_partitions() -> dict[str, str]:
    """Partition -> State, as scontrol shows them."""
    out = subprocess.run(["scontrol", "show", "partitions", "-o"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return {f["PartitionName"]: f["State"] for f in map(scontrol_fields, out.splitlines())}


async def test_spawn_page_lists_the_clusters_partitions(
        make_hub: Any, double: FirecrestDouble, kit: Kit) -> None:
    app = await make_hub(allowed_partitions=[])  # any partition the cluster has
    user, _, _ = await login(app, double, name=kit.user)

    page = await spawn_page(app, user)

    shown = dict(re.findall(r'<option value="([^"]+)"[^>]*>\1 \((\w+), \d+ of (?:\d+) nodes '
                            r'free\)</option>', page))
    assert shown == slurm_partitions(), page[-3000:]
    assert "fs-live-note" not in page


async def test_launch_failure_shows_the_jobs_own_output(
        make_hub: Any, double: FirecrestDouble, kit: Kit) -> None:
    # no launcher on the job user's PATH, and a venv that does not exist
    app = await make_hub(script_setup='echo "starting with $FIRECRESTSPAWNER_ENV"',
                         allowed_venvs=["/opt/missing-venv"])
    _, client, _ = await login(app, double, name=kit.user)

    events = await start_server(client, kit.user)

    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    job_id = next(iter(double.scheduler.submitted))  # type: ignore[attr-defined]
    log = Path(kit.workdir) / ".jupyterhub-logs" / f"jupyterhub-{job_id}.log"
    assert f"Job {job_id} ended before JupyterLab started: FAILED (NonZeroExitCode), " \
           "exit code 127" in message, message
    assert f"Its output is {log} on {SYSTEM}. Its last lines:\n" in message
    assert "/opt/missing-venv/bin/activate: No such file or directory" in message
    assert "firecrestspawner-singleuser: not found" in message
    assert "starting with [redacted]" in message
    script = (await double.scheduler.metadata(kit.user, job_id))[0]["script"]
    encoded = script_env(script)[ENV_VAR]
    for secret in (encoded, decode_env(encoded)["JUPYTERHUB_API_TOKEN"]):
        assert secret not in message
    assert log.stat().st_uid == pwd.getpwnam(kit.user).pw_uid  # written by the job
    assert double.count(TAIL) == 1
