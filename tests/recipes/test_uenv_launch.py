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
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import firecrestspawner
from f7tbuild import ca, engine
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


@pytest.fixture(scope="module")
def image() -> str:
    """The uenv stand-in (Debian bookworm + Python 3.11), made by f7tbuild if missing."""
    try:
        engine.require_engine()
    except engine.EngineError as exc:
        unavailable("docker", f"{exc}: the uenv check runs in containers")
    ref = f7t_catalogue.load().standin("uenv").ref
    if not engine.image_exists(ref):
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


def _pip_env() -> tuple[list[str], dict[str, str]]:
    """Volumes and environment giving pip in the container the host's index and CA bundle."""
    volumes: list[str] = []
    env: dict[str, str] = {}
    bundle = ca.choose_bundle(None, False).path
    if bundle is not None:
        volumes.append(f"{bundle}:{CA_IN_CONTAINER}:ro")
        env.update(PIP_CERT=CA_IN_CONTAINER, SSL_CERT_FILE=CA_IN_CONTAINER)
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "PIP_TRUSTED_HOST"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return volumes, env


def _docker_run(
    image: str,
    script: str,
    volumes: list[str] | None = None,
    env: dict[str, str] | None = None,
    user: str = "",
    timeout: float = 1800,
    pip: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``bash -c script`` in a throw-away container (Docker SDK, host network).

    ``volumes``: ``host:container[:ro]``; ``pip``: with the host's index and CA bundle.
    """
    volumes, env = list(volumes or []), dict(env or {})
    if pip:
        pip_volumes, pip_env = _pip_env()
        volumes += pip_volumes
        env.update(pip_env)
    cmd = ["bash", "-c", script]
    code, out, err = engine.run(
        image, cmd, timeout, network_mode="host", volumes=volumes, environment=env, user=user
    )
    return subprocess.CompletedProcess(cmd, code, out, err)


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
            "python3 -m venv /tmp/wheelbuild && "
            "/tmp/wheelbuild/bin/python -m pip wheel --no-deps -w /out /src",
            volumes=[f"{REPO}:/src:ro", f"{wheels}:/out"],
            pip=True,
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
        image, f"set -e; {view}{MOUNT}/post-install-hook", volumes=[f"{store}:{MOUNT}"], pip=True
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
        try:
            engine.run(image, ["rm", "-rf", "/w/build"], 300, volumes=[f"{root}:/w"])
        except engine.EngineError:
            pass  # rmtree below removes what it can
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
    view_ro = [f"{store}:{MOUNT}:ro"]
    freeze = _docker_run(
        image, f"{python} -m pip list --format=freeze", view_ro, user=NOBODY, timeout=300
    )
    assert freeze.returncode == 0, freeze.stderr
    installed = installed_pins(freeze.stdout)
    assert installed.pop("firecrestspawner") == firecrestspawner.__version__

    def in_container(argv: list[str]) -> str:
        try:
            return engine.run_output(image, argv, 120, volumes=view_ro, user=NOBODY)
        except engine.EngineError as exc:
            raise AssertionError(f"evaluating the lock's markers failed: {exc}") from None

    assert installed == expected_pins(RECIPE / "requirements.lock", [python], run=in_container)
    assert (store / "env" / "default" / "bin" / "firecrestspawner-singleuser").is_file()


def test_uenv_view_launches_jupyterlab(image: str, store: Path) -> None:
    with LaunchCheck(user="alice") as lc:
        lc.start_container(
            image,
            [f"{VIEW}/bin/firecrestspawner-singleuser"],
            env={"HOME": "/tmp"},
            user=NOBODY,
            working_dir="/tmp",
            volumes=[f"{store}:{MOUNT}:ro"],
        )
        host, port = lc.wait_callback(timeout=180)
        assert host == "127.0.0.1" and 0 < port < 65536
        status = lc.assert_lab_serves(timeout=180)
        assert "started" in status


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
