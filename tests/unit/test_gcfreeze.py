"""firecrestspawner.gcfreeze: the heap is frozen once JupyterHub's start() is done, once."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from firecrestspawner import gcfreeze


class FakeHub:
    """The two things freeze_after_start uses of a JupyterHub: its start future, its log."""

    def __init__(self) -> None:
        self._start_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lines: list[str] = []
        self.log = self

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_frozen_when_started_not_before() -> None:
    hub = FakeHub()
    assert gcfreeze.freeze_after_start(hub, environ={})
    kept = [object() for _ in range(3)], {"a": [1]}  # tracked objects alive at start-up
    await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0 and hub.lines == []
    hub._start_future.set_result(None)
    await asyncio.sleep(0)
    assert gc.get_freeze_count() > 1000
    assert len(hub.lines) == 1 and "gc.freeze() moved" in hub.lines[0]
    assert kept


async def test_configuration_loaded_twice_freezes_once() -> None:
    hub = FakeHub()
    assert gcfreeze.freeze_after_start(hub, environ={})
    assert gcfreeze.freeze_after_start(hub, environ={})
    hub._start_future.set_result(None)
    await asyncio.sleep(0)
    assert len(hub.lines) == 1


@pytest.mark.parametrize("value", ["0", "false", "off", "No"])
async def test_turned_off_by_the_environment(value: str) -> None:
    hub = FakeHub()
    assert not gcfreeze.freeze_after_start(hub, environ={gcfreeze.ENV: value})
    hub._start_future.set_result(None)
    await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0 and hub.lines == []


async def test_failed_start_freezes_nothing() -> None:
    hub = FakeHub()
    assert gcfreeze.freeze_after_start(hub, environ={})
    hub._start_future.set_exception(RuntimeError("the proxy did not start"))
    await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0 and hub.lines == []
    hub._start_future.exception()  # retrieved: no "never retrieved" warning


def test_no_start_future_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert not gcfreeze.freeze_after_start(object(), environ={})
    assert "JupyterHub 5.x or 6.x expected" in caplog.text


def test_outside_a_hub_does_nothing() -> None:
    pytest.importorskip("jupyterhub.app", reason="needs the hub extra")
    assert not gcfreeze.freeze_after_start(environ={})
