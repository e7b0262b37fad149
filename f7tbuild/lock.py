"""Hashed requirement locks: one reusable ``compile_lock`` plus the hub's lock recipe.

``compile_lock(requirements, python_version, out_path)`` resolves a list of
requirement strings into a pip requirements file where every line is pinned
(``==``) and carries ``--hash`` entries, so ``pip install --require-hashes``
installs exactly that set. It prefers ``uv pip compile --universal`` (the result
holds for every platform the images are built for, amd64 and arm64) and falls
back to pip-tools' ``pip-compile`` when uv is missing and the wanted Python is
the one running.

``hub_requirements()`` derives the hub image's input from the two places that
own the versions: the hub's stack in ``catalogue.toml`` and the ``hub`` extra
(plus base dependencies) of ``pyproject.toml``. ``write_locks()`` writes
``images/hub/requirements.lock`` and ``images/hub/build-requirements.lock`` (the
wheel build backend used by the hub and singleuser Dockerfiles' wheel stages).
Run it as ``python -m f7tbuild lock`` (or ``python -m f7tbuild.lock``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The command that regenerates the locks, written into their headers.
REGENERATE_COMMAND = "nox -s lock"

#: Stack packages that only run on compute nodes: never installed in the hub image.
COMPUTE_ONLY = frozenset({"jupyterlab"})

#: Python of the hub image (its base is python:3.13-slim-trixie).
HUB_PYTHON = "3.13"

#: Oldest Python a singleuser base may have (NGC 24.07 ships 3.10): the build-backend
#: lock must hold for it and every newer one.
BUILD_BACKEND_PYTHON = "3.10"

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class LockError(RuntimeError):
    """A lock could not be produced; the message names the cause and the fix."""


def normalise(name: str) -> str:
    """PEP 503 normalised project name (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The project name at the start of a PEP 508 requirement string."""
    match = _NAME_RE.match(requirement)
    if not match:
        raise LockError(f"cannot read a project name from requirement {requirement!r}")
    return normalise(match.group(1))


def _find_tool(name: str) -> str | None:
    """Path of ``name`` beside the running interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def _compile_command(
    input_file: Path, python_version: str, out_path: Path, tool: str,
    constraints: Path | None = None,
) -> list[str]:
    extra = ["--constraint", str(constraints)] if constraints is not None else []
    if tool == "uv":
        uv = _find_tool("uv")
        if uv is None:
            raise LockError("uv is not installed: `pip install uv` (or pass tool='pip-compile')")
        return [
            uv, "pip", "compile", str(input_file),
            "--generate-hashes", "--universal",
            "--python-version", python_version,
            "--custom-compile-command", REGENERATE_COMMAND,
            "--no-emit-index-url",
            "--quiet",
            "--output-file", str(out_path),
            *extra,
        ]
    if tool == "pip-compile":
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        if running != python_version:
            raise LockError(
                f"pip-compile resolves for the running Python ({running}), not {python_version}: "
                "install uv (`pip install uv`), which can target another Python version"
            )
        pip_compile = _find_tool("pip-compile")
        if pip_compile is None:
            raise LockError("neither uv nor pip-compile found: `pip install uv` (or pip-tools)")
        return [
            pip_compile, str(input_file),
            "--generate-hashes", "--allow-unsafe", "--strip-extras",
            "--no-emit-index-url", "--quiet",
            "--output-file", str(out_path),
            *extra,
        ]
    raise LockError(f"unknown lock tool {tool!r}: use 'uv' or 'pip-compile'")


def check_lock(path: Path) -> list[str]:
    """Validate a hashed lock; return its ``name==version`` pins (normalised names).

    Every requirement must be pinned with ``==`` and carry at least one sha256 hash,
    which is what ``pip install --require-hashes`` demands.
    """
    pins: list[str] = []
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current.strip():
        logical.append(current)
    for entry in logical:
        parts = entry.split()
        requirement = parts[0]
        if "==" not in requirement:
            raise LockError(f"{path}: {requirement!r} is not pinned with '=='; regenerate the lock")
        hashes = [p for p in parts[1:] if p.startswith("--hash=sha256:")]
        if not hashes:
            raise LockError(f"{path}: {requirement!r} has no sha256 hash; regenerate the lock")
        name, version = requirement.split(";")[0].split("==", 1)
        pins.append(f"{normalise(name)}=={version.strip()}")
    if not pins:
        raise LockError(f"{path} holds no requirements")
    return pins


def compile_lock(
    requirements: Sequence[str],
    python_version: str,
    out_path: Path | str,
    *,
    tool: str | None = None,
    constraints: Path | None = None,
) -> Path:
    """Resolve ``requirements`` into a hashed, fully pinned lock file at ``out_path``.

    ``python_version`` ("3.13") is the lowest Python the lock must work for;
    ``constraints``: a pip constraint file the resolution must obey. ``tool``
    is "uv" (default when installed) or "pip-compile". The file is written
    atomically: a failed resolution leaves an existing lock untouched. Raises
    :class:`LockError` with the resolver's message when resolution fails.
    """
    if not requirements:
        raise LockError("compile_lock needs at least one requirement")
    if not re.fullmatch(r"3\.\d+", python_version):
        raise LockError(f"python_version must look like '3.13', got {python_version!r}")
    out = Path(out_path)
    chosen = tool or ("uv" if _find_tool("uv") else "pip-compile")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="f7t-lock-") as tmp:
        input_file = Path(tmp) / "requirements.in"
        input_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        staged = Path(tmp) / out.name
        env = dict(os.environ, CUSTOM_COMPILE_COMMAND=REGENERATE_COMMAND)
        proc = subprocess.run(
            _compile_command(input_file, python_version, staged, chosen, constraints),
            capture_output=True, text=True, env=env, cwd=tmp, timeout=600, check=False,
        )
        if proc.returncode != 0 or not staged.exists():
            raise LockError(
                f"resolving {list(requirements)} for Python {python_version} failed "
                f"({chosen}, exit {proc.returncode}):\n{proc.stderr.strip()}\n"
                "Fix the conflicting pins in catalogue.toml / pyproject.toml, or check that "
                "the package index is reachable (SSL_CERT_FILE for an intercepting proxy)."
            )
        text = staged.read_text(encoding="utf-8").replace(str(input_file), "requirements.in")
        staged.write_text(text, encoding="utf-8")
        check_lock(staged)
        shutil.move(str(staged), out)
    return out


def _load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def stack_pins(catalogue: dict[str, Any], stack: str) -> dict[str, str]:
    """``{normalised name: version}`` of one stack of the catalogue."""
    try:
        table = catalogue["stacks"][stack]
    except KeyError:
        raise LockError(f"catalogue.toml has no [stacks.{stack}] table") from None
    return {normalise(k): str(v) for k, v in table.items() if k != "description"}


def hub_requirements(root: Path = REPO_ROOT) -> list[str]:
    """Input of the hub lock: hub stack pins + this package's base and ``hub`` dependencies.

    ``[images.hub] stack_packages`` selects the stack's packages when present;
    otherwise the stack's compute-only packages (:data:`COMPUTE_ONLY`) are left out. The
    package's own ranges are kept too, so a stack pin outside them fails to resolve
    instead of producing an image whose spawner cannot import.
    """
    catalogue = _load_toml(root / "catalogue.toml")
    pyproject = _load_toml(root / "pyproject.toml")
    try:
        hub = catalogue["images"]["hub"]
        stack = hub["stack"]
    except KeyError:
        raise LockError("catalogue.toml: [images.hub] needs a 'stack' key") from None
    pins = stack_pins(catalogue, stack)
    project = pyproject["project"]
    ranges = list(project.get("dependencies", []))
    ranges += list(project.get("optional-dependencies", {}).get("hub", []))
    selected = hub.get("stack_packages")
    if selected is not None:
        wanted = {normalise(n) for n in selected}
        unknown = sorted(wanted - set(pins))
        if unknown:
            raise LockError(f"[images.hub] stack_packages {unknown} are not in stack {stack!r}")
    else:
        wanted = set(pins) - COMPUTE_ONLY
    reqs = [f"{name}=={version}" for name, version in sorted(pins.items()) if name in wanted]
    # the image's own pins (hub-only services such as the idle culler)
    reqs += [f"{normalise(name)}=={version}"
             for name, version in sorted(hub.get("versions", {}).items())]
    reqs += ranges
    return reqs


def build_backend_requirements(root: Path = REPO_ROOT) -> list[str]:
    """``[build-system] requires`` of pyproject.toml (what builds this repo's wheel)."""
    pyproject = _load_toml(root / "pyproject.toml")
    requires = list(pyproject.get("build-system", {}).get("requires", []))
    if not requires:
        raise LockError("pyproject.toml has no [build-system] requires")
    return requires


def hub_lock_path(root: Path = REPO_ROOT) -> Path:
    """Where the catalogue says the hub lock lives (``images.hub.lock``)."""
    catalogue = _load_toml(root / "catalogue.toml")
    rel = catalogue.get("images", {}).get("hub", {}).get("lock", "images/hub/requirements.lock")
    return root / rel


#: The lock of the tools used inside image builds (catalogue ``[build_tools]``).
BUILD_TOOLS_LOCK = Path("images") / "common" / "uv-requirements.lock"


def build_tools_requirements(root: Path = REPO_ROOT) -> list[str]:
    """``[build_tools]`` of the catalogue as pins (uv, which installs the hashed locks)."""
    tools = _load_toml(root / "catalogue.toml").get("build_tools", {})
    if "uv" not in tools:
        raise LockError("catalogue.toml: [build_tools] needs uv = \"<version>\"")
    return [f"{name}=={version}" for name, version in sorted(tools.items())]


def write_locks(root: Path = REPO_ROOT, *, tool: str | None = None) -> list[Path]:
    """Regenerate the hub lock, the wheel build-backend lock and the build-tools lock."""
    hub = compile_lock(hub_requirements(root), HUB_PYTHON, hub_lock_path(root), tool=tool)
    backend = compile_lock(
        build_backend_requirements(root), BUILD_BACKEND_PYTHON,
        root / "images" / "hub" / "build-requirements.lock", tool=tool,
    )
    tools = compile_lock(
        build_tools_requirements(root), BUILD_BACKEND_PYTHON, root / BUILD_TOOLS_LOCK, tool=tool
    )
    return [hub, backend, tools]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m f7tbuild lock [--tool uv|pip-compile]``."""
    parser = argparse.ArgumentParser(prog="f7tbuild lock", description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=["uv", "pip-compile"], default=None,
                        help="resolver (default: uv when installed)")
    parser.add_argument("--only", choices=["hub", "singleuser"], default=None,
                        help="regenerate only the hub locks or only the singleuser variants'")
    args = parser.parse_args(argv)
    try:
        paths = [] if args.only == "singleuser" else write_locks(tool=args.tool)
        if args.only != "hub":
            from f7tbuild import catalogue, engine
            from f7tbuild.singleuser_lock import write_locks as write_singleuser_locks

            try:
                engine.require_engine()
            except engine.EngineError as exc:
                raise LockError(
                    f"the singleuser locks read each base's packages from the Docker engine: {exc}"
                ) from None
            paths += write_singleuser_locks(catalogue.load(REPO_ROOT / "catalogue.toml"))
    except LockError as exc:
        print(f"lock: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        pins = check_lock(path)
        print(f"lock: wrote {path.relative_to(REPO_ROOT)} ({len(pins)} pinned, hashed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
