"""Options and fixtures of the per-image testinfra checks (tests/by_image/).

``python -m f7tbuild build <image>`` runs ``pytest tests/by_image/test_<family>.py
--image-ref=<ref> --base-ref=<base> [--image-variant=<v>] [--ca-bundle=<path>]``.
Without ``--image-ref`` (e.g. in ``nox -s tests``) the checks that need a built image
are deselected, and pytest says how many: they belong to the build sessions.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import testinfra

from f7tbuild import engine


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("f7t4jhub images")
    group.addoption("--image-ref", help="the image to check (set by f7tbuild build)")
    group.addoption("--base-ref", help="the base it was built on (real or stand-in)")
    group.addoption("--image-variant", help="the variant name, for images with variants")
    group.addoption("--ca-bundle", help="the extra CA bundle the build was given (layer scan)")
    group.addoption("--image-target", help="the catalogue name of the image (chp, singleuser-...)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the checks that need a built image when no --image-ref was given."""
    if config.getoption("--image-ref"):
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        needs_image = "image_ref" in getattr(item, "fixturenames", ())
        (dropped if needs_image else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def image_ref(request: pytest.FixtureRequest) -> str:
    """The image under test; skips when not given."""
    ref = request.config.getoption("--image-ref")
    if not ref:
        pytest.skip("no --image-ref: these checks run after a build (python -m f7tbuild build)")
    try:
        engine.require_engine()
        present = engine.image_exists(ref)
    except engine.EngineError as exc:
        pytest.fail(str(exc))
    if not present:
        pytest.fail(f"image {ref} is not in the local engine: build it first")
    return str(ref)


@pytest.fixture(scope="session")
def base_ref(request: pytest.FixtureRequest) -> str | None:
    """The base the image was built on (None if not given)."""
    return request.config.getoption("--base-ref") or None


@pytest.fixture(scope="session")
def image_variant(request: pytest.FixtureRequest) -> str | None:
    """The variant under test (None for images without variants)."""
    return request.config.getoption("--image-variant") or None


@pytest.fixture(scope="session")
def image_target(request: pytest.FixtureRequest) -> str | None:
    """The catalogue name of the image under test (None if not given)."""
    return request.config.getoption("--image-target") or None


@pytest.fixture(scope="session")
def ca_bundle(request: pytest.FixtureRequest) -> Path | None:
    """The CA bundle given to the build (None: built with --no-ca)."""
    value = request.config.getoption("--ca-bundle")
    return Path(value) if value else None


#: How many times longer a container may take to come up when its image is for another
#: architecture and runs under qemu (``nox -s build-arm64``); waits stay bounded.
EMULATED_SLOWDOWN = 6.0


def slowdown(ref: str) -> float:
    """1 for an image of this host's architecture, EMULATED_SLOWDOWN for an emulated one."""
    from f7tbuild.platforms import foreign_arch

    arch = engine.inspect(ref).get("Architecture") or None
    return EMULATED_SLOWDOWN if foreign_arch(arch) is not None else 1.0


def process_argv(host: Any, pid: int | str) -> list[str]:
    """A process's argv inside a container, as the program itself sees it.

    Under qemu-user through binfmt_misc (emulated images, flags ``PF``) the kernel runs
    the interpreter with ``[interpreter, path of the program, original argv...]``, and
    that is what ``/proc/<pid>/cmdline`` shows: the interpreter's two leading entries
    are dropped here so that checks read the same argv on every architecture.
    """
    raw = host.file(f"/proc/{pid}/cmdline").content_string
    argv = [part for part in raw.split("\0") if part]
    first = argv[0].rsplit("/", 1)[-1] if argv else ""
    if len(argv) >= 3 and (first.startswith("qemu-") or first.endswith("-binfmt-P")):
        return argv[2:]
    return argv


@pytest.fixture(scope="session")
def patience(image_ref: str) -> float:
    """The factor the checks' waits are multiplied by for the image under test (slowdown)."""
    return slowdown(image_ref)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Containers:
    """Containers started through the Docker SDK (host network, detached, removed on exit).

    ``start(image, *args, env={...}, volumes={host: container}, user=..., health_interval_s=...)``
    uses read-only bind mounts and returns the container name and a testinfra host on it
    (testinfra's docker backend); ``remove_all()`` removes every one started.
    """

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cli = engine.client()

    def start(
        self,
        image: str,
        *args: str,
        env: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        user: str | None = None,
        health_interval_s: float | None = None,
    ) -> tuple[str, testinfra.host.Host]:
        name = f"f7t-check-{uuid.uuid4().hex[:10]}"
        extra: dict[str, Any] = {}
        if health_interval_s is not None:
            ns = int(health_interval_s * 1_000_000_000)
            extra["healthcheck"] = {"interval": ns, "start_period": ns}
        try:
            self.cli.containers.run(
                image,
                list(args) or None,
                detach=True,
                auto_remove=True,
                name=name,
                network_mode="host",
                environment=env or {},
                volumes={src: {"bind": dst, "mode": "ro"} for src, dst in (volumes or {}).items()},
                user=user or "",
                **extra,
            )
        except docker.errors.DockerException as exc:
            raise AssertionError(f"starting {image} failed: {exc}") from None
        self.started.append(name)
        return name, testinfra.get_host(f"docker://{name}")

    def remove_all(self) -> None:
        for name in self.started:
            try:
                self.cli.containers.get(name).remove(force=True)
            except docker.errors.DockerException:
                pass  # already gone (auto-remove)
        self.started.clear()


@pytest.fixture
def run_container() -> Iterator[Callable[..., tuple[str, testinfra.host.Host]]]:
    """``Containers.start`` for one test; its containers are removed at teardown."""
    containers = Containers()
    yield containers.start
    containers.remove_all()


@pytest.fixture(scope="module")
def module_containers() -> Iterator[Callable[..., tuple[str, testinfra.host.Host]]]:
    """``Containers.start`` shared by a module's tests (a container several checks read,
    started once: under emulation each start of a hub takes minutes)."""
    containers = Containers()
    yield containers.start
    containers.remove_all()


def container_logs(name: str) -> str:
    """stdout+stderr of a container so far (for assertion messages)."""
    try:
        return engine.client().containers.get(name).logs().decode(errors="replace")
    except docker.errors.DockerException as exc:
        return f"(no logs of {name}: {exc})"
