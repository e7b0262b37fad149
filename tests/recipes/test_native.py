"""The native install: recipes/native/install.sh makes a venv that launches JupyterLab.

The script runs for real (pip against the configured index, hashes checked), then the
shared launch check starts ``firecrestspawner-singleuser`` from the venv as an
unprivileged user, with only the environment a FirecRESTSpawner job gets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import firecrestspawner
from tests.recipes.lockcheck import expected_pins, installed_pins
from tests.recipes.stackconfig import make_build_dir
from tests.support.launch import LaunchCheck
from tests.support.require import unavailable

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "recipes" / "native" / "install.sh"
LOCK = REPO / "recipes" / "native" / "requirements.lock"
NOBODY = 65534


def _run_install(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def native_venv() -> Iterator[Path]:
    """A venv made by install.sh from this checkout, readable by every user."""
    root = make_build_dir("f7t-native-")
    root.chmod(0o755)
    venv = root / "venv"
    try:
        proc = _run_install("--python", _python_for_jobs(), str(venv))
        assert proc.returncode == 0, (
            f"install.sh failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_install_sh_refuses_without_a_venv() -> None:
    proc = _run_install(timeout=60)
    assert proc.returncode == 1
    assert "no VENV given" in proc.stderr


def test_install_sh_refuses_a_missing_interpreter(tmp_path: Path) -> None:
    proc = _run_install("--python", str(tmp_path / "no-python"), str(tmp_path / "venv"), timeout=60)
    assert proc.returncode == 1
    assert "not found" in proc.stderr and "--python" in proc.stderr
    assert not (tmp_path / "venv").exists()


def _python_for_jobs() -> str:
    """An interpreter for the venv that an unprivileged job user can run.

    As an ordinary user that is the one running the tests. As root (where Jupyter must
    run under another uid) the tests' own Python may live in root's home, out of reach,
    so the first candidate the user ``nobody`` can start (with venv) is used.
    """
    if os.geteuid() != 0:
        return sys.executable
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import venv, ensurepip"],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                cwd="/",
                capture_output=True,
                timeout=60,
                check=False,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    unavailable("tools", "no Python with venv that the user nobody can run (install python3-venv)")


def test_venv_holds_exactly_the_locked_versions(native_venv: Path) -> None:
    python = str(native_venv / "bin" / "python")
    out = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    installed = installed_pins(out)
    assert installed.pop("firecrestspawner") == firecrestspawner.__version__
    assert installed == expected_pins(LOCK, [python])


def test_native_venv_launches_jupyterlab(native_venv: Path, tmp_path: Path) -> None:
    launcher = native_venv / "bin" / "firecrestspawner-singleuser"
    home = tmp_path / "home"
    home.mkdir()
    popen_kwargs: dict[str, int] = {}
    if os.geteuid() == 0:
        # Jupyter refuses to run as root; a job runs as its user anyway.
        tmp_path.chmod(0o755)
        os.chown(home, NOBODY, NOBODY)
        popen_kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}  # type: ignore[dict-item]
    with LaunchCheck(user="alice") as lc:
        base = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
        lc.start([str(launcher)], env=lc.process_env(base), cwd=str(home), **popen_kwargs)
        host, port = lc.wait_callback(timeout=180)
        assert host == "127.0.0.1" and 0 < port < 65536
        status = lc.assert_lab_serves(timeout=180)
        assert "started" in status
