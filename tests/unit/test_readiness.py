"""firecrestspawner.readiness against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import ClassVar

import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from firecrestspawner.readiness import check_url, wait_until_answering


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api(web.RequestHandler):
    codes: ClassVar[list[int]] = []

    def get(self) -> None:
        self.set_status(self.codes.pop(0) if self.codes else 200)
        self.finish("{}")


async def serve(port: int, codes: list[int]) -> HTTPServer:
    Api.codes = codes
    server = HTTPServer(web.Application([(r"/user/ana/api", Api)]))
    server.listen(port, "127.0.0.1")
    return server


@pytest.fixture
def port() -> int:
    return free_port()


def test_check_url_is_the_url_jupyterhub_checks() -> None:
    assert check_url("nid001", 8888, "/user/ana/") == "http://nid001:8888/user/ana/api"
    assert check_url("nid001", 8888, "/user/ana") == "http://nid001:8888/user/ana/api"
    assert check_url("::1", 9000, "/user/ana/") == "http://[::1]:9000/user/ana/api"


async def test_a_server_that_starts_late_is_seen_within_one_interval(port: int) -> None:
    url = check_url("127.0.0.1", port, "/user/ana/")
    waiter = asyncio.ensure_future(wait_until_answering(url, timeout=20, interval=0.05))
    await asyncio.sleep(0.5)
    assert not waiter.done(), "answered before any server listened"
    started = time.monotonic()
    server = await serve(port, [])
    try:
        assert await asyncio.wait_for(waiter, 10) is True
        # The point of the module: no back-off. Generous bound for a loaded machine.
        assert time.monotonic() - started < 2.0
    finally:
        server.stop()


async def test_5xx_means_not_yet_and_4xx_means_up(port: int) -> None:
    server = await serve(port, [502, 503, 404])
    try:
        url = check_url("127.0.0.1", port, "/user/ana/")
        assert await wait_until_answering(url, timeout=10, interval=0.05) is True
        assert Api.codes == [], "stopped before the 404 (any answer below 500 is up)"
    finally:
        server.stop()


async def test_gives_up_after_the_timeout_without_raising(port: int) -> None:
    url = check_url("127.0.0.1", port, "/user/ana/")  # nobody listens
    started = time.monotonic()
    assert await wait_until_answering(url, timeout=0.6, interval=0.1) is False
    assert 0.4 < time.monotonic() - started < 5


async def test_a_server_that_never_answers_does_not_hold_the_wait(port: int) -> None:
    # Accepts connections and never replies: each request is bounded.
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    try:
        url = check_url("127.0.0.1", port, "/user/ana/")
        started = time.monotonic()
        assert await wait_until_answering(url, timeout=1.0, interval=0.1) is False
        assert time.monotonic() - started < 6
    finally:
        listener.close()
