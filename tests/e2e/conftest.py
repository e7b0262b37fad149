"""Fixtures of the end-to-end test: Slurm check, job venv, proxy, and failure reports.

Tests here are marked ``slurm`` and skipped, with the reason, when the local cluster
(``scripts/slurm-up.sh``) is not usable. When a test fails, everything registered with
the ``diagnostics`` fixture (hub and proxy logs, the job's output, the double's request
log) is printed in the test's report.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firecrest_double.slurm import slurm_unavailable_reason

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the e2e helper modules, also imported by the hub's config
    sys.path.insert(0, str(HERE))

import e2e_provision

JOB_USER = os.environ.get("F7T_SLURM_USER", "f7tuser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``slurm``."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slurm)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Remember each phase's report on the item (for ``diagnostics``)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def e2e_user() -> str:
    """The job user, once the Slurm cluster answers and we may act as that user."""
    reason = slurm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"local Slurm cluster not usable: {reason}")
    try:
        pwd.getpwnam(JOB_USER)
    except KeyError:
        pytest.skip(f"job user {JOB_USER!r} missing: run scripts/slurm-up.sh (creates it)")
    if os.geteuid() != 0:
        pytest.skip(f"the end-to-end test runs as root (it submits as {JOB_USER!r} via runuser)")
    return JOB_USER


@pytest.fixture(scope="session")
def job_venv(e2e_user: str) -> Path:
    """The world-readable venv the job runs JupyterLab from (slow the first time)."""
    try:
        return e2e_provision.job_venv()
    except e2e_provision.ProvisionError as exc:
        pytest.fail(f"could not provision the job venv: {exc}")


@pytest.fixture(scope="session")
def chp_exe(e2e_user: str) -> Path:
    """configurable-http-proxy at the catalogue's version."""
    try:
        return e2e_provision.configurable_http_proxy()
    except e2e_provision.ProvisionError as exc:
        pytest.fail(f"could not install configurable-http-proxy: {exc}")


@pytest.fixture
def hub_dir() -> Iterator[Path]:
    """A private directory for the hub's database, config and logs."""
    path = Path(tempfile.mkdtemp(prefix="f7t-e2e-hub-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def job_workdir(e2e_user: str) -> Iterator[Path]:
    """The job's working directory, in the job user's home and owned by that user."""
    pw = pwd.getpwnam(e2e_user)
    path = Path(tempfile.mkdtemp(prefix="f7t-e2e-job-", dir=pw.pw_dir))
    os.chown(path, pw.pw_uid, pw.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
