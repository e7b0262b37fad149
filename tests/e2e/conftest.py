"""Fixtures of the end-to-end test: Slurm check, job venv, proxy, and failure reports.

Tests here are marked ``slurm`` and skipped, with the reason, when the local cluster
(``scripts/slurm-up.sh``) is not usable (failed instead when ``F7T_REQUIRE`` names
``slurm``, as in CI). When a test fails, everything registered with
the ``diagnostics`` fixture (hub and proxy logs, the job's output, the double's request
log) is printed in the test's report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# The e2e helper modules sit next to this file: pytest puts this directory (no
# __init__.py) on sys.path before importing it; the hub's config adds it itself.
import e2e_provision
import pytest

from tests.support.slurm import job_directory, mark_slurm_below, require_cluster

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``slurm``."""
    mark_slurm_below(HERE, items)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Remember each phase's report on the item (for ``diagnostics``)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def e2e_user() -> str:
    """The job user, once the Slurm cluster answers and we may act as that user (as root)."""
    return require_cluster(root_only=True)


def _provisioned(what: str, provision: Callable[[], Path]) -> Path:
    """``provision()``'s path; a provisioning error fails the test, naming ``what``."""
    try:
        return provision()
    except e2e_provision.ProvisionError as exc:
        pytest.fail(f"could not {what}: {exc}")


@pytest.fixture(scope="session")
def job_venv(e2e_user: str) -> Path:
    """The world-readable venv the job runs JupyterLab from (slow the first time)."""
    return _provisioned("provision the job venv", e2e_provision.job_venv)


@pytest.fixture(scope="session")
def chp_exe(e2e_user: str) -> Path:
    """configurable-http-proxy at the catalogue's version."""
    return _provisioned("install configurable-http-proxy", e2e_provision.configurable_http_proxy)


@pytest.fixture
def hub_dir() -> Iterator[Path]:
    """A private directory for the hub's database, config and logs."""
    path = Path(tempfile.mkdtemp(prefix="f7t-e2e-hub-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def job_workdir(e2e_user: str) -> Iterator[Path]:
    """The job's working directory, in the job user's home and owned by that user."""
    with job_directory(e2e_user, "f7t-e2e-job-") as path:
        yield path


@pytest.fixture
def diagnostics(request: pytest.FixtureRequest) -> Iterator[dict[str, Callable[[], str]]]:
    """Register ``name -> callable returning text``; all are printed if the test fails."""
    sources: dict[str, Callable[[], str]] = {}
    yield sources
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        for name, source in sources.items():
            try:
                text = source()
            except Exception as exc:  # noqa: BLE001  (a diagnostic must never hide the failure)
                text = f"(could not collect: {exc!r})"
            print(f"\n========== {name} ==========\n{text}")
