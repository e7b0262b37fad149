"""The uenv recipe is a valid Stackinator recipe (Stackinator's own validation).

Positive: ``stackinator.recipe.Recipe`` loads recipes/uenv, and the ``stack-config``
command line turns it into a build tree whose post-install hook is the recipe's
template rendered for the mount point. Negative: broken copies of the recipe are
rejected by the same code.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.recipes.stackconfig import (
    load_recipe,
    local_spack_checkout,
    make_build_dir,
    spack_commit,
    stack_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "uenv"
#: Every Stackinator recipe folder (a site adds one by copying recipes/uenv).
UENV_RECIPES = sorted(p.parent for p in (REPO / "recipes").glob("*/config.yaml"))

pytest.importorskip(
    "stackinator",
    reason="stackinator is in requirements/test.txt: pip install -r requirements/test.txt",
)


def _catalogue() -> dict:  # type: ignore[type-arg]
    with (REPO / "catalogue.toml").open("rb") as fh:
        return tomllib.load(fh)


@pytest.fixture
def workroot() -> Iterator[Path]:
    """A scratch root outside /tmp and $HOME (Stackinator refuses those for builds)."""
    root = make_build_dir("f7t-stackinator-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def system(workroot: Path) -> Path:
    """An (empty) cluster system configuration folder, what `-s` points at."""
    path = workroot / "system"
    path.mkdir()
    return path


@pytest.fixture
def mount(workroot: Path) -> Path:
    """An existing mount point (Stackinator requires the mount point to exist)."""
    path = workroot / "user-environment"
    path.mkdir()
    return path


@pytest.fixture
def broken(workroot: Path) -> Callable[[str, Callable[[dict], None] | None], Path]:  # type: ignore[type-arg]
    """Copy the recipe and break one file: edit its YAML, or delete it (edit=None)."""

    def make(filename: str, edit: Callable[[dict], None] | None) -> Path:  # type: ignore[type-arg]
        copy = workroot / "broken-recipe"
        shutil.copytree(RECIPE, copy)
        target = copy / filename
        if edit is None:
            target.unlink()
        else:
            data = yaml.safe_load(target.read_text(encoding="utf-8"))
            edit(data)
            target.write_text(yaml.safe_dump(data), encoding="utf-8")
        return copy

    return make


def _catalogue_python(recipe_dir: Path) -> str:
    table = _catalogue().get("recipes", {}).get(recipe_dir.name)
    assert table and "python" in table, (
        f"catalogue.toml needs [recipes.{recipe_dir.name}] with stack and python "
        f"for the recipe folder recipes/{recipe_dir.name} (docs/recipes.md)"
    )
    return str(table["python"])


def test_the_reference_recipe_is_checked() -> None:
    assert RECIPE in UENV_RECIPES


@pytest.mark.parametrize("recipe_dir", UENV_RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_has_python_and_pip_in_the_default_view(
    recipe_dir: Path, system: Path, mount: Path, workroot: Path
) -> None:
    recipe = load_recipe(recipe_dir, system, workroot / "build", mount)
    python = _catalogue_python(recipe_dir)

    assert recipe.config["name"]
    assert recipe.mount == mount
    views = recipe.environment_view_meta
    assert views["default"]["root"] == str(mount / "env" / "default")
    specs = [s for env in recipe.environments.values() for s in env["specs"]]
    assert f"python@{python}" in specs, f"recipe must build python@{python} (catalogue)"
    assert "py-pip" in specs
    assert not any(s.startswith("osu-micro-benchmarks") for s in specs)
    assert recipe.post_install_hook == recipe_dir / "post-install"
    # The Spack release Stackinator 4.0 knows how to drive.
    assert recipe.spack_version in {"0.20", "0.21", "0.22"}
    # modules.yaml is the recipe's (otherwise Stackinator reads Spack's defaults).
    assert recipe.modules == recipe_dir / "modules.yaml"
    assert f"tcl: {mount}/modules" in recipe.modules_yaml


@pytest.mark.parametrize("recipe_dir", UENV_RECIPES, ids=lambda p: p.name)
def test_recipe_python_matches_catalogue(recipe_dir: Path) -> None:
    """environments.yaml builds the Python the catalogue (and the recipe's lock) targets."""
    environments = yaml.safe_load((recipe_dir / "environments.yaml").read_text(encoding="utf-8"))
    python = _catalogue_python(recipe_dir)
    pythons = [s for env in environments.values() for s in env["specs"] if s.startswith("python@")]
    assert pythons == [f"python@{python}"]


@pytest.mark.parametrize("recipe_dir", UENV_RECIPES, ids=lambda p: p.name)
def test_stack_config_renders_the_post_install_for_the_mount_point(
    recipe_dir: Path, system: Path, mount: Path, workroot: Path
) -> None:
    build = workroot / "build"
    local_spack_checkout(build, spack_commit(recipe_dir))

    proc = stack_config(recipe_dir, system, build, mount)
    assert proc.returncode == 0, f"stack-config failed:\n{proc.stdout}\n{proc.stderr}"

    hook = build / "store" / "post-install-hook"
    text = hook.read_text(encoding="utf-8")
    assert f'mount="{mount}"' in text
    assert "{{" not in text and "{%" not in text, "unrendered Jinja left in the hook"
    assert hook.stat().st_mode & stat.S_IXUSR, "Stackinator makes the hook executable"
    # The recipe travels inside the image, lock included: the hook reads it from there.
    meta = build / "store" / "meta" / "recipe"
    assert (meta / "requirements.lock").read_bytes() == (
        recipe_dir / "requirements.lock"
    ).read_bytes()
    # The Makefile runs the hook after the environments are installed.
    makefile = (build / "Makefile").read_text(encoding="utf-8")
    assert "$(STORE)/post-install-hook" in makefile
    assert "post-install" in makefile.split("store.squashfs:")[1].splitlines()[0]
    spack_yamls = [
        p.read_text(encoding="utf-8") for p in (build / "environments").glob("*/spack.yaml")
    ]
    assert any("python@" in y and "py-pip" in y for y in spack_yamls)
    assert any(str(mount / "env" / "default") in y for y in spack_yamls)
    # The hook is valid bash.
    syntax = subprocess.run(
        ["bash", "-n", str(hook)], capture_output=True, text=True, timeout=30, check=False
    )
    assert syntax.returncode == 0, syntax.stderr


@pytest.mark.parametrize(
    ("filename", "edit", "error"),
    [
        pytest.param(
            "config.yaml",
            lambda d: d.pop("name"),
            jsonschema.ValidationError,
            id="config-without-name",
        ),
        pytest.param(
            "config.yaml",
            lambda d: d.update(spack="releases/v0.21"),
            jsonschema.ValidationError,
            id="config-spack-not-a-table",
        ),
        pytest.param(
            "compilers.yaml",
            lambda d: d["gcc"].update(specs=["gcc@twelve"]),
            jsonschema.ValidationError,
            id="compilers-bad-gcc-spec",
        ),
        pytest.param(
            "compilers.yaml",
            lambda d: d.pop("bootstrap"),
            jsonschema.ValidationError,
            id="compilers-without-bootstrap",
        ),
        pytest.param(
            "environments.yaml",
            lambda d: d["jupyter"].update(view={"default": None}),
            jsonschema.ValidationError,
            id="environments-unknown-key",
        ),
        pytest.param(
            "environments.yaml",
            lambda d: d["jupyter"].update(specs="python@3.11"),
            jsonschema.ValidationError,
            id="environments-specs-not-a-list",
        ),
        pytest.param(
            "environments.yaml",
            lambda d: d["jupyter"].pop("compiler"),
            jsonschema.ValidationError,
            id="environments-without-compiler",
        ),
        pytest.param("environments.yaml", None, FileNotFoundError, id="no-environments"),
        pytest.param("compilers.yaml", None, FileNotFoundError, id="no-compilers"),
    ],
)
def test_broken_recipe_is_rejected(
    broken: Callable[..., Path],
    system: Path,
    mount: Path,
    workroot: Path,
    filename: str,
    edit: Callable[[dict], None] | None,  # type: ignore[type-arg]
    error: type[Exception],
) -> None:
    recipe = broken(filename, edit)
    with pytest.raises(error):
        load_recipe(recipe, system, workroot / "build", mount)


def test_stack_config_cli_rejects_a_broken_recipe(
    broken: Callable[..., Path], system: Path, mount: Path, workroot: Path
) -> None:
    recipe = broken("environments.yaml", lambda d: d["jupyter"].update(specs="python@3.11"))
    build = workroot / "build"
    local_spack_checkout(build, spack_commit(RECIPE))

    proc = stack_config(recipe, system, build, mount)
    assert proc.returncode == 1
    assert "is not of type 'array'" in proc.stdout + proc.stderr
    assert not (build / "store" / "post-install-hook").exists()
