"""The recipe locks are in sync with catalogue.toml (drift is caught here, not on a cluster)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from f7tbuild.lock import check_lock
from recipes import locks

REPO = Path(__file__).resolve().parents[2]


def _names() -> list[str]:
    return [r.name for r in locks.recipe_locks(REPO)]


def test_every_catalogue_recipe_has_a_lock() -> None:
    names = _names()
    assert {"uenv", "native"} <= set(names)
    for recipe in locks.recipe_locks(REPO):
        assert recipe.path == REPO / "recipes" / recipe.name / "requirements.lock"
        assert recipe.path.is_file(), f"{recipe.path} missing: run 'nox -s lock'"


@pytest.mark.parametrize("name", _names())
def test_lock_pins_equal_the_stack(name: str) -> None:
    recipe = next(r for r in locks.recipe_locks(REPO) if r.name == name)
    assert locks.drift(recipe) == []
    pinned = dict(p.split("==", 1) for p in check_lock(recipe.path))
    for package, version in recipe.pins.items():
        assert pinned[package] == version
    # The launcher's own dependency is resolved into the lock too.
    assert "jupyterhub" in pinned


def test_uenv_lock_targets_the_recipe_python() -> None:
    uenv = next(r for r in locks.recipe_locks(REPO) if r.name == "uenv")
    assert uenv.python == locks.spack_python(REPO / "recipes" / "uenv")
    first = uenv.path.read_text(encoding="utf-8").splitlines()[0]
    assert f"for python {uenv.python} and newer" in first


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A copy of the inputs the locks are made from, to break on purpose."""
    for rel in ("catalogue.toml", "pyproject.toml"):
        shutil.copy2(REPO / rel, tmp_path / rel)
    shutil.copytree(
        REPO / "recipes",
        tmp_path / "recipes",
        ignore=shutil.ignore_patterns("__pycache__", "wheels"),
    )
    return tmp_path


def test_drift_is_reported_when_the_stack_moves(fake_root: Path) -> None:
    catalogue = fake_root / "catalogue.toml"
    recipe = next(r for r in locks.recipe_locks(fake_root) if r.name == "uenv")
    old = recipe.pins["jupyterlab"]
    text = catalogue.read_text(encoding="utf-8")
    assert f'jupyterlab = "{old}"' in text
    catalogue.write_text(
        text.replace(f'jupyterlab = "{old}"', 'jupyterlab = "0.0.1"'), encoding="utf-8"
    )

    for moved in locks.recipe_locks(fake_root):
        problems = locks.drift(moved)
        assert any("jupyterlab" in p and "nox -s lock" in p for p in problems), problems


def test_missing_lock_is_drift(fake_root: Path) -> None:
    (fake_root / "recipes" / "native" / "requirements.lock").unlink()
    native = next(r for r in locks.recipe_locks(fake_root) if r.name == "native")
    assert locks.drift(native) == [f"{native.path} is missing: run 'nox -s lock'"]


def test_spack_python_must_equal_the_catalogue(fake_root: Path) -> None:
    env = fake_root / "recipes" / "uenv" / "environments.yaml"
    text = env.read_text(encoding="utf-8")
    uenv = next(r for r in locks.recipe_locks(fake_root) if r.name == "uenv")
    env.write_text(text.replace(f"python@{uenv.python}", "python@3.9"), encoding="utf-8")
    with pytest.raises(locks.RecipeLockError, match="python@3.9"):
        locks.recipe_locks(fake_root)


def test_unknown_stack_is_refused(fake_root: Path) -> None:
    catalogue = fake_root / "catalogue.toml"
    text = catalogue.read_text(encoding="utf-8")
    catalogue.write_text(text + '\n[recipes.other]\nstack = "nope"\n', encoding="utf-8")
    with pytest.raises(locks.RecipeLockError, match="nope"):
        locks.recipe_locks(fake_root)


def test_check_cli_passes_on_the_repo() -> None:
    assert locks.main(["--check"]) == 0


def test_a_copied_site_recipe_gets_its_own_lock_target(fake_root: Path) -> None:
    """docs/recipes.md: copy the folder, add a [recipes.<site>] table, run nox -s lock."""
    shutil.copytree(fake_root / "recipes" / "uenv", fake_root / "recipes" / "mysite")
    (fake_root / "recipes" / "mysite" / "requirements.lock").unlink()
    catalogue = fake_root / "catalogue.toml"
    python = locks.spack_python(fake_root / "recipes" / "mysite")
    catalogue.write_text(
        catalogue.read_text(encoding="utf-8")
        + f'\n[recipes.mysite]\nstack = "current"\npython = "{python}"\n',
        encoding="utf-8",
    )
    site = next(r for r in locks.recipe_locks(fake_root) if r.name == "mysite")
    assert site.path == fake_root / "recipes" / "mysite" / "requirements.lock"
    assert site.python == python
    assert locks.drift(site) == [f"{site.path} is missing: run 'nox -s lock'"]
