"""Run Stackinator's own recipe loader and ``stack-config`` on a recipe folder.

Stackinator (PyPI ``stackinator``) is what a site runs on its build node:
``stack-config -r <recipe> -s <cluster config> -b <build dir> [-m <mount>]`` validates
the recipe against its JSON schemas (``stackinator.recipe.Recipe``) and writes the
build tree (``stackinator.builder.Builder``): Makefiles, Spack environments, the
post-install hook rendered from the recipe's Jinja template into
``<build>/store/post-install-hook``, and a copy of the recipe in
``<build>/store/meta/recipe``. These helpers call exactly that code.

The one thing this machine cannot do is clone Spack from GitHub, so
:func:`local_spack_checkout` makes a local git repository with the branch the recipe
names; Stackinator then only runs ``git checkout`` in it (nothing is built here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

#: Stackinator refuses build paths under /tmp and $HOME (its sandbox rebinds them).
BUILD_PARENT = Path("/var/tmp")


def recipe_args(
    recipe: Path, system: Path, build: Path, mount: Path | str | None = None
) -> argparse.Namespace:
    """The arguments ``stack-config`` would parse, through Stackinator's own parser."""
    from stackinator.main import make_argparser

    argv = ["-r", str(recipe), "-s", str(system), "-b", str(build)]
    if mount is not None:
        argv += ["-m", str(mount)]
    return make_argparser().parse_args(argv)


def load_recipe(recipe: Path, system: Path, build: Path, mount: Path | str | None = None):  # type: ignore[no-untyped-def]
    """``stackinator.recipe.Recipe`` of a folder: raises what Stackinator raises."""
    from stackinator.recipe import Recipe

    return Recipe(recipe_args(recipe, system, build, mount))


def spack_commit(recipe: Path) -> str:
    """The Spack branch or commit a recipe's config.yaml asks for."""
    config = yaml.safe_load((recipe / "config.yaml").read_text(encoding="utf-8"))
    return str(config["spack"]["commit"])


def local_spack_checkout(build: Path, commit: str) -> Path:
    """A local git repository at ``<build>/spack`` with branch ``commit``.

    Stands in for Stackinator's clone of github.com/spack/spack (not reachable from
    this machine); Stackinator skips the clone when ``spack/.git`` exists and then
    checks ``commit`` out, as it would in a real build.
    """
    spack = build / "spack"
    spack.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="f7t4jhub tests",
        GIT_AUTHOR_EMAIL="tests@localhost",
        GIT_COMMITTER_NAME="f7t4jhub tests",
        GIT_COMMITTER_EMAIL="tests@localhost",
    )
    for cmd in (
        ["git", "init", "-q", "-b", "develop", str(spack)],
        ["git", "-C", str(spack), "commit", "-q", "--allow-empty", "-m", "local stand-in"],
        ["git", "-C", str(spack), "branch", commit],
    ):
        subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=60)
    return spack


def make_build_dir(prefix: str) -> Path:
    """A fresh directory where Stackinator accepts a build path (not /tmp, not $HOME)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=BUILD_PARENT))


def stack_config(
    recipe: Path, system: Path, build: Path, mount: Path | str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``stack-config`` command line (Stackinator's ``main``) in a subprocess.

    The log file Stackinator writes to its working directory lands in ``build``'s
    parent directory.
    """
    argv = ["-r", str(recipe), "-s", str(system), "-b", str(build)]
    if mount is not None:
        argv += ["-m", str(mount)]
    code = "import sys; from stackinator.main import main; sys.argv[0] = 'stack-config'; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=build.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
