"""Failure diagnostics through JupyterHub: a start that fails at launch and a server whose
job ends on its own show Slurm's state and reason and the job's last output lines, read
through FirecREST's tail; no token ever appears in them; the output lives in the hidden
log folder the batch script creates."""

from __future__ import annotations

import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from firecrest_double import FileSystemConfig, FirecrestDouble, SimulatedScheduler
from firecrestspawner.compute.envcodec import ENV_VAR, decode_env

from .conftest import login, start_server
from .fakecompute import FakeCompute, script_env

TAIL = "GET /filesystem/{system_name}/ops/tail"
#: Looks like a credential in a program's output (never shown).
LEAKED = "Authorization: Bearer 0a1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest_asyncio.fixture
async def double(tmp_path: Path) -> AsyncIterator[FirecrestDouble]:
    """Scripts really run (``execute``) with a PATH that has no launcher; the test's
    directory is the cluster's file system (FirecREST's tail reads it)."""
    scheduler = SimulatedScheduler(
        "cluster", queue_delay=0.2, reason_after=0.1, nodes=["localhost"],
        execute=True, login_env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    async with FirecrestDouble(scheduler, filesystems=[FileSystemConfig(str(tmp_path))]) as fc:
        yield fc
        fc.assert_no_violations()


def job_secrets(double: FirecrestDouble, job_id: str) -> list[str]:
    """The job's encoded environment and its API token (as the script carries them)."""
    encoded = script_env(double.scheduler.jobs_by_id[job_id].script)[ENV_VAR]
    return [encoded, decode_env(encoded)["JUPYTERHUB_API_TOKEN"]]


async def test_launch_failure_shows_state_reason_and_last_lines_without_secrets(
        make_hub: Any, double: FirecrestDouble, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # a venv that does not exist, and a setup that prints the job's secrets
    app = await make_hub(allowed_venvs=["/opt/missing-venv"], script_setup=(
        f'echo "environment: $FIRECRESTSPAWNER_ENV"\necho "{LEAKED}"'))
    _, client, _ = await login(app, double)
    caplog.set_level(logging.WARNING)

    events = await start_server(client)

    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    job_id = next(iter(double.scheduler.jobs_by_id))
    log = tmp_path / ".jupyterhub-logs" / f"jupyterhub-{job_id}.log"
    assert f"Job {job_id} ended before JupyterLab started: FAILED (NonZeroExitCode), " \
           "exit code 127" in message
    assert f"Its output is {log} on cluster. Its last lines:\n" in message
    assert "/opt/missing-venv/bin/activate: No such file or directory" in message
    assert "firecrestspawner-singleuser: not found" in message
    assert "environment: [redacted]" in message and "Authorization: Bearer [redacted]" in message
    hub_log = caplog.text
    assert f"job {job_id}: start failed" in hub_log and "missing-venv" in hub_log
    for secret in [*job_secrets(double, job_id), LEAKED]:
        assert secret not in message and secret not in hub_log
    # the output lives in the hidden log folder (mode 700), not in the working directory
    assert LEAKED in log.read_text()
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert not list(tmp_path.glob("jupyterhub-*.log"))
    assert double.count(TAIL) == 1


async def test_unexpected_end_gives_the_stop_reason_with_the_last_lines(
        make_hub: Any, double: FirecrestDouble, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # a fake lab answers for the job; its output file is written as the job's would be
    double.scheduler.execute = False
    compute = FakeCompute(double.scheduler)  # type: ignore[arg-type]
    try:
        app = await make_hub(poll_cache_seconds=0)
        user, client, _ = await login(app, double)
        assert (await start_server(client))[-1].get("ready")
        spawner = user.spawner
        job_id = spawner.job_id
        token = job_secrets(double, job_id)[1]
        log = tmp_path / ".jupyterhub-logs" / f"jupyterhub-{job_id}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text("".join(f"step {i}\n" for i in range(40)) + f"token={token}\n"
                       f"slurmstepd: error: *** JOB {job_id} ON localhost CANCELLED AT "
                       "2026-11-30T17:00:00 DUE TO TIME LIMIT ***\n")
        caplog.set_level(logging.WARNING)

        await double.scheduler.end_job(job_id, "TIMEOUT", reason="TimeLimit")
        await spawner.poll_and_notify()

        reason = spawner.end_reason
        assert reason.startswith(f"job {job_id} is TIMEOUT (TimeLimit). Last lines of {log}:")
        assert "DUE TO TIME LIMIT" in reason and "token=[redacted]" in reason
        assert "step 39" in reason and "step 21" not in reason  # the last 20 lines
        assert token not in reason and token not in caplog.text
        assert f"job {job_id} is TIMEOUT (TimeLimit). Last lines" in caplog.text
        assert not spawner.active
        # the user reads it on the options form of the next start
        assert "Your last server ended: job" in await spawner.get_options_form()
    finally:
        await compute.close()
