"""The FirecREST double with its real-Slurm backend, driven by the real pyfirecrest client.

pyfirecrest (``firecrest.v2.AsyncFirecrest``) talks HTTP to the double, which validates
every request and response against the FirecREST v2 OpenAPI document and runs real
``sbatch``/``squeue``/``scancel`` as the token's user. The double fails the test at
teardown on any OpenAPI violation.
"""

from __future__ import annotations

import asyncio
import pwd
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from firecrest.FirecrestException import UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest

from firecrest_double.pytest_plugin import MintingAuth
from firecrest_double.server import FileSystemConfig, FirecrestDouble
from firecrest_double.slurm import SlurmScheduler

SYSTEM = "cluster"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


@pytest_asyncio.fixture
async def slurm_double(slurm_cluster: str) -> AsyncIterator[FirecrestDouble]:
    """The double serving system ``cluster`` from the real Slurm cluster."""
    home = pwd.getpwnam(slurm_cluster).pw_dir
    double = FirecrestDouble(
        SlurmScheduler(SYSTEM), filesystems=[FileSystemConfig(home, "users", True)]
    )
    async with double:
        yield double
        double.assert_no_violations()


@pytest.fixture
def client(slurm_double: FirecrestDouble, slurm_cluster: str) -> AsyncFirecrest:
    """pyfirecrest for the job user, with tokens minted by the double's IdP."""
    return AsyncFirecrest(slurm_double.url, MintingAuth(slurm_double.idp, slurm_cluster))


async def wait_state(
    client: AsyncFirecrest, job_id: str, prefixes: tuple[str, ...], timeout: float = 60.0
) -> dict[str, Any]:
    """Poll ``job_info`` until the state starts with one of ``prefixes``."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        [job] = await client.job_info(SYSTEM, job_id)
        if job["status"]["state"].startswith(prefixes):
            return job
        await asyncio.sleep(0.3)
    pytest.fail(f"job {job_id} not in {prefixes} within {timeout}s: {job}")


async def test_submit_info_output(
    client: AsyncFirecrest, slurm_cluster: str, job_dir: Path
) -> None:
    script = '#!/bin/bash\necho "hello from $(id -un) GREETING=$GREETING LIST=$LIST"\n'
    answer = await client.submit(
        SYSTEM,
        working_dir=str(job_dir),
        script_str=script,
        env_vars={"GREETING": "salut tout le monde", "LIST": "a,b"},
    )
    job_id = answer["jobId"]
    assert isinstance(job_id, str) and job_id.isdigit()  # FirecREST's ids are strings

    [first] = await client.job_info(SYSTEM, job_id)
    assert first["jobId"] == job_id
    assert first["status"]["state"] in {"PENDING", "RUNNING", "COMPLETING", "COMPLETED"}

    job = await wait_state(client, job_id, TERMINAL)
    assert job["status"]["state"] == "COMPLETED" and job["status"]["exitCode"] == 0
    assert job["user"] == slurm_cluster and job["workingDirectory"] == str(job_dir)

    [meta] = await client.job_metadata(SYSTEM, job_id)
    assert meta["script"] == script
    out = Path(meta["standardOutput"]).read_text()
    assert out == f"hello from {slurm_cluster} GREETING=salut tout le monde LIST=a\n"


async def test_cancel_running_job(
    client: AsyncFirecrest, slurm_cluster: str, job_dir: Path
) -> None:
    uid = pwd.getpwnam(slurm_cluster).pw_uid
    job_id = (
        await client.submit(SYSTEM, working_dir=str(job_dir), script_str="#!/bin/bash\nsleep 300\n")
    )["jobId"]
    running = await wait_state(client, job_id, ("RUNNING",))
    assert running["nodes"] and running["tasks"]

    assert await client.cancel_job(SYSTEM, job_id) == {}
    job = await wait_state(client, job_id, ("CANCELLED",))
    assert job["status"]["state"] == f"CANCELLED by {uid}"

    with pytest.raises(UnexpectedStatusException) as excinfo:  # already finished → 500
        await client.cancel_job(SYSTEM, job_id)
    assert "500" in str(excinfo.value)


async def test_errors_as_firecrest_reports_them(client: AsyncFirecrest, job_dir: Path) -> None:
    with pytest.raises(UnexpectedStatusException) as excinfo:
        await client.job_info(SYSTEM, "999999999")
    assert "404" in str(excinfo.value) and "Job not found." in str(excinfo.value)

    with pytest.raises(UnexpectedStatusException) as excinfo:
        await client.cancel_job(SYSTEM, "999999999")
    assert "500" in str(excinfo.value)

    with pytest.raises(UnexpectedStatusException) as excinfo:
        await client.submit(
            SYSTEM,
            working_dir=str(job_dir),
            script_str="#!/bin/bash\ntrue\n",
            partition="no-such-partition",
        )
    assert "500" in str(excinfo.value) and "invalid partition" in str(excinfo.value).lower()


async def test_userinfo_is_the_posix_identity(client: AsyncFirecrest, slurm_cluster: str) -> None:
    info = await client.userinfo(SYSTEM)
    pw = pwd.getpwnam(slurm_cluster)
    assert info["user"] == {"id": str(pw.pw_uid), "name": slurm_cluster}
    assert info["group"]["id"] == str(pw.pw_gid)
