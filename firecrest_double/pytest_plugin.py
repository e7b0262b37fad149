"""Pytest fixtures for the FirecREST double.

Import them into a conftest (``from firecrest_double.pytest_plugin import
firecrest_double, firecrest_auth``) or use ``FirecrestDouble`` directly. The
``firecrest_double`` fixture serves in the test's event loop and fails the test at
teardown if any request or response violated the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from .idp import IdentityProvider
from .server import FirecrestDouble
from .simulated import SimulatedScheduler


class MintingAuth:
    """A pyfirecrest authorization object that mints a fresh token per request.

    ``get_access_token()`` is what pyfirecrest calls synchronously before every request."""

    def __init__(self, idp: IdentityProvider, username: str, lifetime_s: float = 300.0) -> None:
        self.idp, self.username, self.lifetime_s = idp, username, lifetime_s

    def get_access_token(self) -> str:
        """A token for ``username`` valid for ``lifetime_s`` seconds."""
        return self.idp.mint(self.username, self.lifetime_s)


@pytest_asyncio.fixture
async def firecrest_double() -> AsyncIterator[FirecrestDouble]:
    """A running double (system ``cluster``, 0.2 s queue delay); no violations allowed."""
    async with FirecrestDouble(SimulatedScheduler("cluster", queue_delay=0.2)) as fc:
        yield fc
        fc.assert_no_violations()


@pytest_asyncio.fixture
def firecrest_auth(firecrest_double: FirecrestDouble) -> Callable[[str], MintingAuth]:
    """Factory: ``firecrest_auth("alice")`` → authorization object for pyfirecrest."""
    return lambda username: MintingAuth(firecrest_double.idp, username)


@pytest.fixture
def firecrest_double_thread() -> Iterator[FirecrestDouble]:
    """A double served from its own thread (for hubs or benchmarks in the test's loop);
    no violations allowed."""
    fc = FirecrestDouble(SimulatedScheduler("cluster", queue_delay=0.2)).start_in_thread()
    try:
        yield fc
        fc.assert_no_violations()
    finally:
        fc.stop_thread()
