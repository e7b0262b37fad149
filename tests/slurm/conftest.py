"""Fixtures for tests against the real local Slurm cluster (``scripts/slurm-up.sh``).

Every test here is marked ``slurm`` and skipped, with the reason, when the cluster
does not answer or this process cannot submit as the job user (failed instead when
``F7T_REQUIRE`` names ``slurm``, as in CI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from firecrest_double.slurm import SlurmScheduler
from tests.support.slurm import job_directory, mark_slurm_below, require_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``slurm``."""
    mark_slurm_below(Path(__file__).parent, items)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The job user's name, once the cluster answers; otherwise skip (fail in CI)."""
    return require_cluster()


@pytest.fixture
def job_dir(slurm_cluster: str) -> Iterator[Path]:
    """A fresh directory in the job user's home, owned by that user; removed afterwards."""
    with job_directory(slurm_cluster, "f7t-slurm-test-") as path:
        yield path


@pytest.fixture
async def slurm_scheduler(slurm_cluster: str) -> AsyncIterator[SlurmScheduler]:
    """A started :class:`SlurmScheduler`; cancels its leftover jobs afterwards."""
    scheduler = SlurmScheduler(system_name="cluster")
    await scheduler.start()
    yield scheduler
    await scheduler.stop()
