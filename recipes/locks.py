"""Hashed requirement locks of the cluster recipes, generated from catalogue.toml.

Every ``[recipes.<name>]`` table of ``catalogue.toml`` names a software stack
(``stack``) and optionally the Python the install runs on (``python``; default:
the lowest Python ``pyproject.toml`` allows). Its lock is written to
``recipes/<name>/requirements.lock``: the stack's ``name==version`` pins plus this
package's own dependency ranges, resolved for every platform and every Python
from that version up, each line hashed. The uenv post-install and
``recipes/native/install.sh`` install exactly that file with
``pip install --require-hashes``, so both cluster installs run the versions the
images run.

Resolution is :func:`f7tbuild.lock.compile_lock` (uv); this module only decides
what goes in. Regenerate with ``python -m recipes.locks`` (part of ``nox -s lock``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from f7tbuild.lock import LockError, check_lock, compile_lock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "recipes"
LOCK_NAME = "requirements.lock"

_PYTHON_SPEC_RE = re.compile(r"^\s*-\s*python@(\d+\.\d+)\b", re.MULTILINE)
_MIN_PYTHON_RE = re.compile(r">=\s*(\d+\.\d+)")


class RecipeLockError(RuntimeError):
    """A recipe's lock inputs are inconsistent; the message names the cause and the fix."""


@dataclass(frozen=True)
class RecipeLock:
    """What one recipe's lock is made from and where it is written."""

    name: str
    stack: str
    python: str
    pins: dict[str, str]
    ranges: tuple[str, ...]
    path: Path

    def requirements(self) -> list[str]:
        """Input of the resolver: the stack's exact pins, then the package's ranges."""
        return [f"{n}=={v}" for n, v in sorted(self.pins.items())] + list(self.ranges)


def _load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def normalise(name: str) -> str:
    """PEP 503 normalised project name (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def minimum_python(pyproject: dict[str, Any]) -> str:
    """The ``X.Y`` lower bound of ``[project] requires-python``."""
    spec = str(pyproject.get("project", {}).get("requires-python", ""))
    match = _MIN_PYTHON_RE.search(spec)
    if not match:
        raise RecipeLockError(
            f"pyproject.toml requires-python {spec!r} has no '>=X.Y' bound: "
            "add one or set 'python' in the catalogue's [recipes.<name>] table"
        )
    return match.group(1)


def spack_python(recipe_dir: Path) -> str | None:
    """The ``python@X.Y`` version of a Stackinator recipe's environments.yaml, if it has one."""
    env_file = recipe_dir / "environments.yaml"
    if not env_file.is_file():
        return None
    versions = set(_PYTHON_SPEC_RE.findall(env_file.read_text(encoding="utf-8")))
    if len(versions) != 1:
        raise RecipeLockError(
            f"{env_file} must list exactly one 'python@X.Y' spec, found {sorted(versions) or 'none'}"
        )
    return versions.pop()


def recipe_locks(root: Path = REPO_ROOT) -> list[RecipeLock]:
    """One :class:`RecipeLock` per ``[recipes.<name>]`` table of the catalogue.

    Raises :class:`RecipeLockError` when a table names an unknown stack, its folder
    is missing, or a uenv recipe's Spack Python differs from the catalogue's.
    """
    catalogue = _load_toml(root / "catalogue.toml")
    pyproject = _load_toml(root / "pyproject.toml")
    ranges = tuple(pyproject.get("project", {}).get("dependencies", []))
    stacks = catalogue.get("stacks", {})
    locks: list[RecipeLock] = []
    for name, table in catalogue.get("recipes", {}).items():
        stack = table.get("stack")
        if stack not in stacks:
            raise RecipeLockError(
                f"catalogue.toml [recipes.{name}] stack={stack!r} is not a [stacks.*] table; "
                f"known: {', '.join(stacks)}"
            )
        recipe_dir = root / "recipes" / name
        if not recipe_dir.is_dir():
            raise RecipeLockError(
                f"catalogue.toml has [recipes.{name}] but {recipe_dir} does not exist: "
                "copy an existing recipe folder (docs/recipes.md) or remove the table"
            )
        python = str(table.get("python") or minimum_python(pyproject))
        in_spack = spack_python(recipe_dir)
        if in_spack is not None and in_spack != python:
            raise RecipeLockError(
                f"{recipe_dir / 'environments.yaml'} builds python@{in_spack} but catalogue.toml "
                f"[recipes.{name}] python = {python!r}: make them equal"
            )
        pins = {normalise(k): str(v) for k, v in stacks[stack].items() if k != "description"}
        locks.append(RecipeLock(name, stack, python, pins, ranges, recipe_dir / LOCK_NAME))
    return locks


def lock_pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a hashed lock (validated by f7tbuild.lock)."""
    return dict(pin.split("==", 1) for pin in check_lock(path))  # type: ignore[misc]


def drift(recipe: RecipeLock) -> list[str]:
    """Differences between a recipe's lock and its catalogue stack (empty: in sync)."""
    if not recipe.path.is_file():
        return [f"{recipe.path} is missing: run 'nox -s lock'"]
    locked = lock_pins(recipe.path)
    problems = []
    for name, version in sorted(recipe.pins.items()):
        if locked.get(name) != version:
            problems.append(
                f"{recipe.path.name} of recipe {recipe.name!r} has {name}=={locked.get(name)} "
                f"but [stacks.{recipe.stack}] pins {version}: run 'nox -s lock'"
            )
    header = recipe.path.read_text(encoding="utf-8")
    if f"for python {recipe.python} and newer" not in header:
        problems.append(
            f"{recipe.path} was not generated for Python {recipe.python}: run 'nox -s lock'"
        )
    return problems


def write_header(path: Path, recipe: RecipeLock) -> None:
    """Prefix the generated lock with where it comes from and how to regenerate it."""
    body = path.read_text(encoding="utf-8")
    header = (
        f"# Lock of recipe {recipe.name!r}: catalogue.toml [stacks.{recipe.stack}] for python "
        f"{recipe.python} and newer.\n"
        "# Generated by `nox -s lock` (python -m recipes.locks); do not edit.\n"
    )
    path.write_text(header + body, encoding="utf-8")


def write_recipe_locks(root: Path = REPO_ROOT, *, tool: str | None = None) -> list[Path]:
    """Regenerate every recipe's lock; return the paths written."""
    written = []
    for recipe in recipe_locks(root):
        compile_lock(recipe.requirements(), recipe.python, recipe.path, tool=tool)
        write_header(recipe.path, recipe)
        written.append(recipe.path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m recipes.locks [--tool uv|pip-compile] [--check]``."""
    parser = argparse.ArgumentParser(
        prog="python -m recipes.locks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tool", choices=["uv", "pip-compile"], default=None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report locks out of sync with catalogue.toml (exit 1 if any)",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = [p for r in recipe_locks() for p in drift(r)]
            for problem in problems:
                print(f"recipes.locks: {problem}", file=sys.stderr)
            return 1 if problems else 0
        for path in write_recipe_locks(tool=args.tool):
            print(f"recipes.locks: wrote {path.relative_to(REPO_ROOT)}")
    except (RecipeLockError, LockError) as exc:
        print(f"recipes.locks: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
