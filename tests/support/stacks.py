"""The software stacks of catalogue.toml, and cached virtual environments that install them.

Versions are never typed in tests: :func:`stack_versions` reads them from
``catalogue.toml``. :func:`stack_venv` makes (once, then reuses) a virtual environment
with a stack's ``jupyterhub`` and ``jupyterlab`` plus this repository's package, so
``firecrestspawner-singleuser`` can be run exactly as on a cluster node.

Venvs live under ``$F7T_STACK_VENVS`` (default ``<repo>/.build/stack-venvs``), keyed by
the pins; pip uses the host's ordinary index configuration.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "catalogue.toml"

#: The packages a node needs to run JupyterLab under the launcher.
NODE_PACKAGES = ("jupyterhub", "jupyterlab")


def catalogue() -> dict:
    """The parsed catalogue.toml."""
    with open(CATALOGUE, "rb") as fh:
        return tomllib.load(fh)


def stack_versions(stack: str) -> dict[str, str]:
    """``{package: version}`` of one stack (e.g. ``seed``, ``current``)."""
    stacks = catalogue().get("stacks", {})
    if stack not in stacks:
        raise KeyError(f"catalogue.toml has no [stacks.{stack}] (have: {', '.join(stacks)})")
    return {k: v for k, v in stacks[stack].items() if k != "description"}


def stack_names() -> list[str]:
    """Every stack in catalogue.toml."""
    return list(catalogue().get("stacks", {}))


def venv_root() -> Path:
    """Where stack venvs are kept."""
    return Path(os.environ.get("F7T_STACK_VENVS", REPO / ".build" / "stack-venvs"))


def stack_requirements(stack: str, packages: tuple[str, ...] = NODE_PACKAGES) -> list[str]:
    """``name==version`` pins of ``packages`` in ``stack``."""
    versions = stack_versions(stack)
    missing = [p for p in packages if p not in versions]
    if missing:
        raise KeyError(f"[stacks.{stack}] in catalogue.toml pins no {', '.join(missing)}")
    return [f"{p}=={versions[p]}" for p in packages]


def _run(cmd: list[str], log: Path, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); log {log}:\n{tail}")


def stack_venv(
    stack: str,
    python: str | None = None,
    packages: tuple[str, ...] = NODE_PACKAGES,
    timeout: float = 1200.0,
) -> Path:
    """A venv with ``stack``'s pins of ``packages`` and this repo's package (editable)."""
    return requirements_venv(stack, stack_requirements(stack, packages), python, timeout)


def requirements_venv(
    label: str,
    reqs: list[str],
    python: str | None = None,
    timeout: float = 1200.0,
) -> Path:
    """A venv with ``reqs`` installed plus this repo's package (editable, no deps).

    Built once (under a file lock, so parallel test runs share it) and reused while the
    requirements and this function's recipe are unchanged. Returns the venv directory.
    """
    py = os.path.realpath(python or sys.executable)
    key = hashlib.sha256("\n".join([*reqs, py, str(REPO), "v1"]).encode()).hexdigest()[:12]
    root = venv_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{label}-{key}"
    done = venv / ".f7t-complete"
    with open(root / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv
        log = root / f"{venv.name}.log"
        log.write_text("")
        if venv.exists():
            _run(["rm", "-rf", str(venv)], log, 120)
        _run([py, "-m", "venv", str(venv)], log, 300)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "install", "-q", *reqs], log, timeout)
        # The launcher itself, from this checkout; its only dependency (jupyterhub) is
        # already pinned above, so nothing else is resolved.
        _run([*pip, "install", "-q", "--no-deps", "-e", str(REPO)], log, timeout)
        done.write_text("\n".join(reqs) + "\n")
        return venv
