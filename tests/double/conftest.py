"""Fixtures for the FirecREST double's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from firecrest_double import FirecrestDouble, SimulatedScheduler


@pytest_asyncio.fixture
async def fc(request: pytest.FixtureRequest) -> AsyncIterator[FirecrestDouble]:
    """A double on system ``cluster`` (queue delay 0.2 s). Unless the test is marked
    ``allow_violations`` it must not have seen any OpenAPI violation."""
    marker = request.node.get_closest_marker("scheduler_kwargs")
    kwargs = {"queue_delay": 0.2, **(marker.kwargs if marker else {})}
    async with FirecrestDouble(SimulatedScheduler("cluster", **kwargs)) as double:
        yield double
        if request.node.get_closest_marker("allow_violations") is None:
            double.assert_no_violations()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for raw requests."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        yield s


def bearer(fc: FirecrestDouble, user: str = "alice", **kw: object) -> dict[str, str]:
    """Authorization header with a freshly minted token."""
    return {"Authorization": f"Bearer {fc.idp.mint(user, **kw)}"}  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_violations: the test provokes spec violations")
    config.addinivalue_line("markers", "scheduler_kwargs(**kw): SimulatedScheduler options")
