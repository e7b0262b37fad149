"""Provision what the end-to-end test needs outside the test's own venv.

* A **job venv**: the Slurm job runs as an unprivileged user (``f7tuser``), who can read
  neither ``/root`` (where pyenv and the test venv usually live) nor a developer's
  checkout. So the job gets its own venv, made from the system Python
  (``/usr/bin/python3``) under a world-readable cache directory, with JupyterLab and
  JupyterHub pinned from ``catalogue.toml`` (stack ``current``) and this repository's
  wheel (``firecrestspawner-singleuser``) installed fresh on every run.
* **configurable-http-proxy**, installed with npm at the version pinned in
  ``catalogue.toml`` (``[images.chp.versions]``) into the same cache directory.

Both are cached (keyed by their pins) and built under a file lock, so concurrent test
runs share them. The cache root is ``$F7T_E2E_CACHE`` or ``/var/cache/f7t4jhub/e2e``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "catalogue.toml"
CACHE_ROOT = Path(os.environ.get("F7T_E2E_CACHE", "/var/cache/f7t4jhub/e2e"))
#: The interpreter the job venv is made from: must be readable by the job user.
SYSTEM_PYTHON = Path(os.environ.get("F7T_E2E_SYSTEM_PYTHON", "/usr/bin/python3"))


class ProvisionError(RuntimeError):
    """A prerequisite of the end-to-end test could not be installed."""


def catalogue() -> dict:
    """Parse ``catalogue.toml``."""
    with CATALOGUE.open("rb") as f:
        return tomllib.load(f)


def stack_pins(stack: str = "current") -> dict[str, str]:
    """The package pins of one software stack (e.g. ``{"jupyterlab": "4.6.6", ...}``)."""
    data = catalogue()["stacks"][stack]
    return {k: v for k, v in data.items() if k != "description"}


def chp_version() -> str:
    """configurable-http-proxy's npm version from ``[images.chp.versions]``."""
    return catalogue()["images"]["chp"]["versions"]["configurable-http-proxy"]


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    _make_world_readable_path(CACHE_ROOT)
    with open(CACHE_ROOT / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _make_world_readable_path(path: Path) -> None:
    """Make ``path`` and its parents traversable by other users."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if mode & 0o005 != 0o005:
            if p == Path("/") or p.stat().st_uid != os.getuid():
                raise ProvisionError(
                    f"{p} is not traversable by other users and not ours to change; "
                    f"set F7T_E2E_CACHE to a world-readable directory"
                )
            p.chmod(mode | 0o005)


def _run(cmd: list[str], what: str, timeout: float, **kwargs) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        raise ProvisionError(f"{what}: timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise ProvisionError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )


def _chmod_world_readable(root: Path) -> None:
    """``chmod -R o+rX`` (the job user must read and execute the venv)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath, name)
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            extra = stat.S_IROTH | (stat.S_IXOTH if mode & (stat.S_IXUSR | stat.S_IFDIR) else 0)
            if mode & extra != extra:
                p.chmod(mode | extra)
    root.chmod(root.stat().st_mode | 0o005)


def job_venv(stack: str = "current") -> Path:
    """A venv the job user can run: pinned JupyterLab/JupyterHub + this repo's wheel.

    Returns the venv directory; its ``bin/firecrestspawner-singleuser`` is the launcher.
    """
    if not SYSTEM_PYTHON.exists():
        raise ProvisionError(
            f"{SYSTEM_PYTHON} not found: the job venv needs a system Python the job user can "
            f"read (apt-get install python3 python3-venv, or set F7T_E2E_SYSTEM_PYTHON)"
        )
    pins = stack_pins(stack)
    reqs = [f"jupyterhub=={pins['jupyterhub']}", f"jupyterlab=={pins['jupyterlab']}"]
    key = hashlib.sha256(f"{SYSTEM_PYTHON}|{'|'.join(reqs)}".encode()).hexdigest()[:12]
    venv = CACHE_ROOT / f"job-venv-{stack}-{key}"
    with _locked("job-venv"):
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], "creating the job venv", 120)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            _run([*pip, "install", "-q", *reqs], f"pip install {' '.join(reqs)}", 900)
            (venv / ".complete").write_text("\n".join(reqs) + "\n")
        # This repository's launcher, always fresh: build the wheel, install it, no deps.
        wheels = CACHE_ROOT / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        _run(
            [*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
            "building the firecrestspawner wheel",
            300,
        )
        wheel = sorted(wheels.glob("firecrestspawner-*.whl"))
        if not wheel:
            raise ProvisionError(f"no firecrestspawner wheel was built in {wheels}")
        _run(
            [*pip, "install", "-q", "--no-deps", "--force-reinstall", str(wheel[-1])],
            "installing the firecrestspawner wheel into the job venv",
            300,
        )
        _chmod_world_readable(venv)
    launcher = venv / "bin" / "firecrestspawner-singleuser"
    if not launcher.exists():
        raise ProvisionError(f"{launcher} missing after install: check [project.scripts]")
    return venv


def configurable_http_proxy() -> Path:
    """Path of the ``configurable-http-proxy`` executable at the catalogue's version."""
    version = chp_version()
    prefix = CACHE_ROOT / f"chp-{version}"
    exe = prefix / "node_modules" / ".bin" / "configurable-http-proxy"
    npm = shutil.which("npm")
    with _locked("chp"):
        if not exe.exists():
            if npm is None:
                raise ProvisionError(
                    "npm not found: install Node.js and npm (apt-get install nodejs npm) to "
                    "run configurable-http-proxy for the end-to-end test"
                )
            prefix.mkdir(parents=True, exist_ok=True)
            _run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(prefix),
                    f"configurable-http-proxy@{version}",
                ],
                f"npm install configurable-http-proxy@{version}",
                600,
            )
    if not exe.exists():
        raise ProvisionError(f"{exe} missing after npm install")
    return exe


if __name__ == "__main__":  # pragma: no cover - manual warm-up: python tests/e2e/e2e_provision.py
    print("job venv:", job_venv())
    print("configurable-http-proxy:", configurable_http_proxy())
    sys.exit(0)
