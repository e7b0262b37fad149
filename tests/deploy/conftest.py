"""The deployment fixture (:func:`tests.deploy.stack.bring_up`) for the tests here.

Needs root, the local Slurm cluster, a Docker engine with the images of ``nox -s build``,
Podman, Chromium and the npm packages of ``node/`` (``scripts/host-setup.sh`` installs
them). A missing piece skips every test here with the reason — or fails them when
``F7T_REQUIRE`` names the service (CI). Teardown (containers, volumes, processes, the
test users' jobs) runs whatever happened; when a test fails, the logs of every piece
are printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import stack
from tests.deploy.stack import Deployment
from tests.support.require import unavailable

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slurm)
            item.add_marker(pytest.mark.docker)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    try:
        stack.check_host()
    except stack.Unavailable as exc:
        unavailable(exc.service, exc.reason)
    with stack.bring_up() as dep:
        yield dep


@pytest.fixture
def deploy(deployment: Deployment, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The deployment for one test; its logs are printed when the test fails, and no job
    of the test's user is left running after it."""
    yield deployment
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        print(deployment.report())
    stack.cancel_all(deployment.user)
