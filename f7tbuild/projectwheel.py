"""This repository's wheel, built once on the host for every image that installs it.

The hub and singleuser images used to build ``firecrestspawner`` in a stage of their own
(pip installing the hashed build backend, then ``pip wheel``): 10-16 s of every cold
build and of every change in ``firecrestspawner/``, per image. It is a pure-Python
wheel, so it is built here instead, with ``uv build`` and the same hashed build backend
(``images/hub/build-requirements.lock`` as build constraints, ``--require-hashes``),
from a copy holding only what the wheel is made of (``pyproject.toml``, ``README.md``,
``firecrestspawner/``), into ``<context>/.f7tbuild/wheel/`` (with ``.f7tbuild/uv``,
f7tbuild.uvbinary, the only paths under ``.f7tbuild`` that .dockerignore lets into the
context); the Dockerfiles bind-mount that directory (BuildKit). The build is
reproducible (same sources, same bytes), so the mount's cache key changes exactly when
the sources do, and an unchanged tree (same fingerprint, kept in
``.f7tbuild/wheel.fingerprint``) is not built again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from f7tbuild.output import status

#: What the wheel is made of (relative to the context root).
SOURCES = ("pyproject.toml", "README.md", "firecrestspawner")
#: Where the wheel goes in the build context (the Dockerfiles COPY this directory).
WHEEL_DIR = Path(".f7tbuild") / "wheel"
BUILD_CONSTRAINTS = Path("images") / "hub" / "build-requirements.lock"


class WheelError(RuntimeError):
    """The project's wheel could not be built."""


def source_files(root: Path) -> list[Path]:
    """The files the wheel is built from (no byte code, no caches), sorted."""
    files: list[Path] = []
    for name in SOURCES:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            ]
    return sorted(files)


def fingerprint(root: Path) -> str:
    """sha256 over the sources' relative paths and contents (and the build constraints)."""
    digest = hashlib.sha256()
    for path in [*source_files(root), root / BUILD_CONSTRAINTS]:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _uv() -> str:
    for candidate in (Path(sys.prefix) / "bin" / "uv", shutil.which("uv")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    raise WheelError(
        "uv not found: it builds this repository's wheel for the images; run through nox "
        "(requirements/build.txt installs it) or `pip install uv`"
    )


def ensure_wheel(root: Path) -> Path:
    """Build (unless already built from the same sources) the wheel under ``root``.

    Returns ``root/.f7tbuild/wheel``, holding exactly one ``firecrestspawner-*.whl``.
    """
    out = root / WHEEL_DIR
    stamp = out.with_name("wheel.fingerprint")
    want = fingerprint(root)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) == 1 and stamp.is_file() and stamp.read_text().strip() == want:
        return out
    with tempfile.TemporaryDirectory(prefix="f7t-wheel-") as tmp:
        src = Path(tmp) / "src"
        for path in source_files(root):
            dest = src / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        built = Path(tmp) / "out"
        cmd = [
            _uv(), "build", "--wheel", "--quiet", "--out-dir", str(built),
            "--build-constraints", str(root / BUILD_CONSTRAINTS), "--require-hashes", str(src),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        made = sorted(built.glob("*.whl"))
        if proc.returncode != 0 or len(made) != 1:
            raise WheelError(
                f"building this repository's wheel failed (uv build exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout)[-1500:]}"
            )
        stamp.unlink(missing_ok=True)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copy2(made[0], out / made[0].name)
    stamp.write_text(want + "\n")
    status(f"built {WHEEL_DIR / made[0].name} (uv build, hashed build backend)")
    return out
