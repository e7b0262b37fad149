"""f7tbuild.projectwheel: the repository's wheel is rebuilt exactly when its sources change.

(The build itself, ``uv build`` with the hashed backend, runs in every ``nox -s build``:
the hub and singleuser images install that wheel and their checks import it.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from f7tbuild import projectwheel


def _tree(root: Path) -> Path:
    (root / "firecrestspawner" / "__pycache__").mkdir(parents=True)
    (root / "firecrestspawner" / "__init__.py").write_text("x = 1\n")
    (root / "firecrestspawner" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (root / "pyproject.toml").write_text("[project]\nname = 'firecrestspawner'\n")
    (root / "README.md").write_text("readme\n")
    (root / "docs").mkdir()
    (root / "docs" / "other.md").write_text("not in the wheel\n")
    constraints = root / projectwheel.BUILD_CONSTRAINTS
    constraints.parent.mkdir(parents=True)
    constraints.write_text("hatchling==1 --hash=sha256:00\n")
    return root


def test_fingerprint_covers_exactly_the_wheel_sources(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    names = [str(p.relative_to(root)) for p in projectwheel.source_files(root)]
    assert names == ["README.md", "firecrestspawner/__init__.py", "pyproject.toml"]
    first = projectwheel.fingerprint(root)
    (root / "docs" / "other.md").write_text("changed\n")
    (root / "firecrestspawner" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"other")
    assert projectwheel.fingerprint(root) == first
    (root / "firecrestspawner" / "__init__.py").write_text("x = 2\n")
    assert projectwheel.fingerprint(root) != first
    (root / "firecrestspawner" / "__init__.py").write_text("x = 1\n")
    (root / projectwheel.BUILD_CONSTRAINTS).write_text("hatchling==2 --hash=sha256:01\n")
    assert projectwheel.fingerprint(root) != first


def test_an_unchanged_tree_is_not_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    out = root / projectwheel.WHEEL_DIR
    out.mkdir(parents=True)
    (out / "firecrestspawner-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    out.with_name("wheel.fingerprint").write_text(projectwheel.fingerprint(root) + "\n")

    def no_uv() -> str:
        raise projectwheel.WheelError("uv asked for")

    monkeypatch.setattr(projectwheel, "_uv", no_uv)
    assert projectwheel.ensure_wheel(root) == out
    (root / "firecrestspawner" / "__init__.py").write_text("x = 3\n")
    with pytest.raises(projectwheel.WheelError, match="uv asked for"):
        projectwheel.ensure_wheel(root)
