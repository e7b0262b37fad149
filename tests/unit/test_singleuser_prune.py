"""images/singleuser/prune.py, run as the singleuser Dockerfile runs it (a script, its own
Python, the base's package record), on a small installed tree: what each rule removes,
what it must keep, and the RECORD files it rewrites."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

PRUNE = Path(__file__).resolve().parents[2] / "images" / "singleuser" / "prune.py"


def install(site: Path, name: str, files: dict[str, str]) -> Path:
    """A distribution in ``site``: its files (paths relative to ``site``) and a RECORD."""
    for rel, text in files.items():
        path = Path(os.path.normpath(site / rel))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    rows = [[rel, "", ""] for rel in files] + [[f"{info.name}/METADATA", "", ""]]
    rows.append([f"{info.name}/RECORD", "", ""])
    with (info / "RECORD").open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return info


def record(info: Path) -> list[str]:
    with (info / "RECORD").open(newline="") as fh:
        return [row[0] for row in csv.reader(fh) if row]


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    prefix = tmp_path / "prefix"
    site = prefix / "lib" / "site-packages"
    site.mkdir(parents=True)
    infos = {
        "stackpkg": install(
            site,
            "stackpkg",
            {
                "stackpkg/__init__.py": '"""stackpkg.sub.tests"""\n',  # a docstring only
                "stackpkg/app.js": "x",
                "stackpkg/app.js.map": "{}",
                "stackpkg/style.css.map": "{}",
                "stackpkg/sub/__init__.py": "",
                "stackpkg/sub/tests/__init__.py": "",
                "stackpkg/sub/tests/test_x.py": "import stackpkg\n",
                "stackpkg/kept/__init__.py": "",
                "stackpkg/kept/user.py": "from .tests import helper\n",
                "stackpkg/kept/tests/__init__.py": "",
                "stackpkg/kept/tests/helper.py": "",
                "stackpkg/named/ext.py": 'EXTENSION = "stackpkg.named.tests.ext"\n',
                "stackpkg/named/tests/ext.py": "",
                "stackpkg/doc/mod.py": 'def f():\n    """stackpkg.doc.tests"""\n',
                "stackpkg/doc/tests/test_mod.py": "",
                "stackpkg/stubs/test/__init__.pyi": "",
                "stackpkg/stubs/test/mod.py": "",
                "stackpkg/_speed.c": "int x;",
                "stackpkg/_speed.cpython-313-x86_64-linux-gnu.so": "ELF",
                "stackpkg/plain.c": "int y;",
            },
        ),
        "basepkg": install(
            site,
            "basepkg",
            {
                "basepkg/__init__.py": "",
                "basepkg/app.js.map": "{}",
                "basepkg/inner/tests/test_y.py": "",
            },
        ),
        "jupyterhub": install(
            site,
            "jupyterhub",
            {
                "jupyterhub/__init__.py": "",
                "../../share/jupyterhub/static/components/lib.js": "x" * 100,
                "../../share/jupyterhub/static/css/style.css": "y",
            },
        ),
        "jupyterlab": install(
            site,
            "jupyterlab",
            {
                "jupyterlab/__init__.py": "",
                "jupyterlab/static/index.js": "same",
                "jupyterlab/static/sub/a.js": "same-a",
                "jupyterlab/galata/ext.js": "g",
                "../../share/jupyter/lab/static/index.js": "same",
                "../../share/jupyter/lab/static/sub/a.js": "same-a",
            },
        ),
    }
    base = tmp_path / "base-packages.txt"
    base.write_text("# the base's packages\nbasepkg==1.0\n")
    return {"site": site, "prefix": prefix, "base": base, **infos}


def run_prune(tree: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    # -S: only the tree (and the standard library) is on the path, as in the image.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tree["site"])}
    return subprocess.run(
        [sys.executable, "-S", str(PRUNE), str(tree["base"])],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_each_rule_removes_what_it_names_and_keeps_the_rest(tree: dict[str, Path]) -> None:
    done = run_prune(tree)
    assert done.returncode == 0, done.stderr
    site, share = tree["site"], tree["prefix"] / "share"
    gone = [
        "stackpkg/app.js.map",
        "stackpkg/style.css.map",
        "stackpkg/sub/tests",
        "stackpkg/doc/tests",  # named in a function's docstring only
        "stackpkg/_speed.c",
        "jupyterlab/galata",
    ]
    for rel in gone:
        assert not (site / rel).exists(), rel
    kept = [
        "stackpkg/app.js",
        "stackpkg/kept/tests/helper.py",  # imported by stackpkg.kept.user
        "stackpkg/named/tests/ext.py",  # named in code (a string, not a docstring)
        "stackpkg/stubs/test/mod.py",  # has type stubs
        "stackpkg/plain.c",  # no extension built from it
        "stackpkg/_speed.cpython-313-x86_64-linux-gnu.so",
        "basepkg/app.js.map",  # the base's files are never touched
        "basepkg/inner/tests/test_y.py",
    ]
    for rel in kept:
        assert (site / rel).exists(), rel
    assert not (share / "jupyterhub/static/components").exists()
    assert (share / "jupyterhub/static/css/style.css").is_file()
    static = site / "jupyterlab" / "static"
    assert static.is_symlink()
    assert static.resolve() == (share / "jupyter/lab/static").resolve()
    assert (static / "sub" / "a.js").read_text() == "same-a"
    assert "keeping" in done.stdout and "stackpkg/kept/tests" in done.stdout
    assert "prune: hub web UI: 0.0 MB" in done.stdout  # 100 bytes
    assert "prune: total" in done.stdout


def test_records_lose_exactly_the_removed_files(tree: dict[str, Path]) -> None:
    before = {name: record(tree[name]) for name in ("stackpkg", "basepkg", "jupyterhub")}
    assert run_prune(tree).returncode == 0
    stack = record(tree["stackpkg"])
    assert set(before["stackpkg"]) - set(stack) == {
        "stackpkg/app.js.map",
        "stackpkg/style.css.map",
        "stackpkg/sub/tests/__init__.py",
        "stackpkg/sub/tests/test_x.py",
        "stackpkg/doc/tests/test_mod.py",
        "stackpkg/_speed.c",
    }
    assert record(tree["basepkg"]) == before["basepkg"]
    assert set(before["jupyterhub"]) - set(record(tree["jupyterhub"])) == {
        "../../share/jupyterhub/static/components/lib.js"
    }


def test_lab_assets_that_differ_are_kept(tree: dict[str, Path]) -> None:
    (tree["prefix"] / "share/jupyter/lab/static/index.js").write_text("other")
    done = run_prune(tree)
    assert done.returncode == 0, done.stderr
    static = tree["site"] / "jupyterlab" / "static"
    assert static.is_dir() and not static.is_symlink()
    assert "differs from" in done.stdout

