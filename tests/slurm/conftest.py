"""Fixtures for tests against the real local Slurm cluster (``scripts/slurm-up.sh``).

Every test here is marked ``slurm`` and skipped, with the reason, when the cluster
does not answer or this process cannot submit as the job user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from firecrest_double.slurm import SlurmScheduler, slurm_unavailable_reason

#: The unprivileged user jobs run as (created by scripts/slurm-up.sh).
JOB_USER = os.environ.get("F7T_SLURM_USER", "f7tuser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``slurm``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The job user's name, once the cluster answers; otherwise skip with the reason."""
    reason = slurm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"local Slurm cluster not usable: {reason}")
    try:
        pwd.getpwnam(JOB_USER)
    except KeyError:
        pytest.skip(f"job user {JOB_USER!r} missing: run scripts/slurm-up.sh (creates it)")
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != JOB_USER:
        pytest.skip(f"must run as root (to submit as {JOB_USER!r} with runuser) or as {JOB_USER!r}")
    return JOB_USER


@pytest.fixture
def job_dir(slurm_cluster: str) -> Iterator[Path]:
    """A fresh directory in the job user's home, owned by that user; removed afterwards."""
    pw = pwd.getpwnam(slurm_cluster)
    path = Path(tempfile.mkdtemp(prefix="f7t-slurm-test-", dir=pw.pw_dir))
    os.chown(path, pw.pw_uid, pw.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def slurm_scheduler(slurm_cluster: str) -> AsyncIterator[SlurmScheduler]:
    """A started :class:`SlurmScheduler`; cancels its leftover jobs afterwards."""
    scheduler = SlurmScheduler(system_name="cluster")
    await scheduler.start()
    yield scheduler
    await scheduler.stop()
