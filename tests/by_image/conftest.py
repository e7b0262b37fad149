"""Options and fixtures of the per-image testinfra checks (tests/by_image/).

``python -m f7tbuild build <image>`` runs ``pytest tests/by_image/test_<family>.py
--image-ref=<ref> --base-ref=<base> [--image-variant=<v>] [--ca-bundle=<path>]``.
Without ``--image-ref`` (e.g. in ``nox -s tests``) the checks that need a built image
are deselected, and pytest says how many: they belong to the build sessions.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testinfra


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
    if shutil.which("docker") is None:
        pytest.fail("docker CLI missing: install an engine with scripts/install-docker.sh")
    if subprocess.run(
        ["docker", "image", "inspect", ref], check=False, capture_output=True
    ).returncode:
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def run_container() -> Iterator[Callable[..., tuple[str, testinfra.host.Host]]]:
    """Start containers (``--network host``, detached); remove them at teardown.

    Call ``run_container(image, *args, env={...}, docker_args=[...])``; returns the
    container id and a testinfra host on it (docker backend).
    """
    started: list[str] = []

    def start(
        image: str,
        *args: str,
        env: dict[str, str] | None = None,
        docker_args: list[str] | None = None,
    ) -> tuple[str, testinfra.host.Host]:
        name = f"f7t-check-{uuid.uuid4().hex[:10]}"
        cmd = ["docker", "run", "-d", "--rm", "--name", name, "--network", "host"]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        cmd += [*(docker_args or []), image, *args]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"docker run {image} failed: {proc.stderr.strip()}")
        started.append(name)
        return name, testinfra.get_host(f"docker://{name}")

    yield start
    for name in started:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True, timeout=60)


def container_logs(name: str) -> str:
    """stdout+stderr of a container so far (for assertion messages)."""
    proc = subprocess.run(
        ["docker", "logs", name], check=False, capture_output=True, text=True, timeout=30
    )
    return proc.stdout + proc.stderr
