"""The uenv recipe's post-install, as Stackinator renders it, makes a view that launches JupyterLab.

What a site's build node does, step by step, with Spack itself left out:

1. put the firecrestspawner wheel into the recipe's ``wheels/`` (built here from this
   checkout with the recipe's Python, in the uenv stand-in container);
2. ``stack-config`` (Stackinator) renders the post-install hook for ``/user-environment``
   and copies the recipe (lock and wheel) into ``store/meta/recipe``;
3. Spack would now install python and py-pip into the view ``env/default``: simulated by
   a venv of the stand-in's Python 3.11 (the recipe's version) at that path;
4. the hook runs with the store bound at ``/user-environment`` (as Stackinator's sandbox
   binds it), in the stand-in container, with network for pip.

Then the store is mounted read-only (as the squashfs image is) and the shared launch
check starts ``firecrestspawner-singleuser`` from the view as an unprivileged user.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import firecrestspawner
from f7tbuild import ca
from f7tbuild import catalogue as f7t_catalogue
from tests.recipes.lockcheck import expected_pins, installed_pins
from tests.recipes.stackconfig import (
    local_spack_checkout,
    make_build_dir,
    spack_commit,
    stack_config,
)
from tests.support.launch import LaunchCheck
from tests.support.require import unavailable

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "uenv"
MOUNT = Path("/user-environment")
VIEW = MOUNT / "env" / "default"
NOBODY = "65534:65534"
CA_IN_CONTAINER = "/etc/ssl/certs/f7t-extra-ca.pem"


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    proc = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    return proc.returncode == 0


@pytest.fixture(scope="module")
def image() -> str:
    """The uenv stand-in (Debian bookworm + Python 3.11), made by f7tbuild if missing."""
    if not _docker_ok():
        unavailable(
            "docker",
            "no usable Docker engine (docker info failed): the uenv check runs in containers",
        )
    ref = f7t_catalogue.load().standin("uenv").ref
    present = subprocess.run(
        ["docker", "image", "inspect", ref], capture_output=True, timeout=60, check=False
    )
    if present.returncode != 0:
        build = subprocess.run(
            [sys.executable, "-m", "f7tbuild", "standins", "uenv"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=2400,
            check=False,
        )
        assert build.returncode == 0, (
            f"could not make {ref} ('python -m f7tbuild standins uenv'):\n"
            f"{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
        )
    return ref


def _pip_env_args() -> list[str]:
    """docker run arguments giving pip in the container the host's index and CA bundle."""
    args: list[str] = []
    bundle = ca.choose_bundle(None, False).path
    if bundle is not None:
        args += [
            "-v",
            f"{bundle}:{CA_IN_CONTAINER}:ro",
            "-e",
            f"PIP_CERT={CA_IN_CONTAINER}",
            "-e",
            f"SSL_CERT_FILE={CA_IN_CONTAINER}",
        ]
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "PIP_TRUSTED_HOST"):
        if os.environ.get(name):
            args += ["-e", f"{name}={os.environ[name]}"]
    return args


def _docker_run(
    image: str, *args: str, script: str, timeout: float = 1800, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "host", *args, image, "bash", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def mount_point() -> Iterator[Path]:
    """Stackinator requires the mount point to exist where stack-config runs.

    On a uenv build node /user-environment exists; here it is created for the duration
    of the module (and removed again if this fixture made it).
    """
    created = False
    if not MOUNT.is_dir():
        if os.geteuid() != 0:
            unavailable(
                "root", f"stack-config needs {MOUNT} to exist: create it (as root) to run this check"
            )
        MOUNT.mkdir()
        created = True
    try:
        yield MOUNT
    finally:
        if created:
            try:
                MOUNT.rmdir()
            except OSError:
                pass


def _configure(root: Path, image: str, mount_point: Path, with_wheel: bool) -> Path:
    """Steps 1-2: recipe copy (plus wheel), stack-config; returns the build's store."""
    recipe = root / "recipe"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("wheels", "__pycache__"))
    if with_wheel:
        wheels = recipe / "wheels"
        wheels.mkdir()
        built = _docker_run(
            image,
            "-v",
            f"{REPO}:/src:ro",
            "-v",
            f"{wheels}:/out",
            *_pip_env_args(),
            script="python3 -m venv /tmp/wheelbuild && "
            "/tmp/wheelbuild/bin/python -m pip wheel --no-deps -w /out /src",
        )
        assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
        assert len(list(wheels.glob("firecrestspawner-*.whl"))) == 1
    system = root / "system"
    system.mkdir()
    build = root / "build"
    local_spack_checkout(build, spack_commit(recipe))
    proc = stack_config(recipe, system, build)  # default mount point: the recipe's store
    assert proc.returncode == 0, f"stack-config failed:\n{proc.stdout}\n{proc.stderr}"
    store = build / "store"
    assert (store / "post-install-hook").is_file()
    return store


def _post_install(
    image: str, store: Path, make_view: bool = True
) -> subprocess.CompletedProcess[str]:
    """Steps 3-4: the view (a venv of the recipe's Python) and the rendered hook."""
    view = f"python3 -m venv {VIEW} && " if make_view else ""
    return _docker_run(
        image,
        "-v",
        f"{store}:{MOUNT}",
        *_pip_env_args(),
        script=f"set -e; {view}{MOUNT}/post-install-hook",
    )


@contextmanager
def _build_root(image: str, prefix: str) -> Iterator[Path]:
    """A fresh Stackinator build directory, removed afterwards.

    Files made in the container belong to root; they are removed from a container first
    so an unprivileged test runner can clean up too.
    """
    root = make_build_dir(prefix)
    try:
        yield root
    finally:
        subprocess.run(
            ["docker", "run", "--rm", "-v", f"{root}:/w", image, "rm", "-rf", "/w/build"],
            capture_output=True,
            timeout=300,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def store(image: str, mount_point: Path) -> Iterator[Path]:
    """A uenv store after the post-install, as squashfs would pack it."""
    with _build_root(image, "f7t-uenv-") as root:
        built = _configure(root, image, mount_point, with_wheel=True)
        proc = _post_install(image, built)
        assert proc.returncode == 0, (
            f"post-install failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
        yield built


def test_hook_is_rendered_for_user_environment(store: Path) -> None:
    text = (store / "post-install-hook").read_text(encoding="utf-8")
    assert f'mount="{MOUNT}"' in text
    assert "{{" not in text


def test_view_holds_exactly_the_locked_stack(image: str, store: Path) -> None:
    python = f"{VIEW}/bin/python"
    freeze = _docker_run(
        image,
        "-v",
        f"{store}:{MOUNT}:ro",
        "--user",
        NOBODY,
        script=f"{python} -m pip list --format=freeze",
        timeout=300,
    )
    assert freeze.returncode == 0, freeze.stderr
    installed = installed_pins(freeze.stdout)
    assert installed.pop("firecrestspawner") == firecrestspawner.__version__
    in_container = [
        "docker",
        "run",
        "--rm",
        "-i",
        "-v",
        f"{store}:{MOUNT}:ro",
        "--user",
        NOBODY,
        image,
        python,
    ]
    assert installed == expected_pins(RECIPE / "requirements.lock", in_container)
    assert (store / "env" / "default" / "bin" / "firecrestspawner-singleuser").is_file()


def test_uenv_view_launches_jupyterlab(image: str, store: Path) -> None:
    name = f"f7t-uenv-launch-{secrets.token_hex(4)}"
    try:
        with LaunchCheck(user="alice") as lc:
            lc.start(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--name",
                    name,
                    "--network",
                    "host",
                    "--user",
                    NOBODY,
                    "-e",
                    "HOME=/tmp",
                    "-w",
                    "/tmp",
                    "-v",
                    f"{store}:{MOUNT}:ro",
                    *lc.docker_env_args(),
                    image,
                    f"{VIEW}/bin/firecrestspawner-singleuser",
                ]
            )
            host, port = lc.wait_callback(timeout=180)
            assert host == "127.0.0.1" and 0 < port < 65536
            status = lc.assert_lab_serves(timeout=180)
            assert "started" in status
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def test_post_install_without_wheel_says_how_to_make_one(image: str, mount_point: Path) -> None:
    with _build_root(image, "f7t-uenv-nowheel-") as root:
        store = _configure(root, image, mount_point, with_wheel=False)
        proc = _post_install(image, store)
        assert proc.returncode == 1
        assert "firecrestspawner-*.whl" in proc.stderr and "pip wheel" in proc.stderr
        assert not (store / "env" / "default" / "bin" / "jupyter-lab").exists()


def test_post_install_without_view_python_names_the_recipe_fix(
    image: str, mount_point: Path
) -> None:
    with _build_root(image, "f7t-uenv-noview-") as root:
        store = _configure(root, image, mount_point, with_wheel=False)
        proc = _post_install(image, store, make_view=False)
        assert proc.returncode == 1
        assert "environments.yaml" in proc.stderr and "default" in proc.stderr
