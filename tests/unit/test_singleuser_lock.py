"""Singleuser variant locks: the committed locks match the catalogue; the pieces that make them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from f7tbuild import singleuser_lock as sl
from f7tbuild.catalogue import load, parse
from f7tbuild.lock import check_lock
from tests.unit.test_catalogue import minimal

HASH = "--hash=sha256:" + "1" * 64


def variants():
    return [t for t in load().targets if t.variant is not None]


@pytest.mark.parametrize("target", variants(), ids=lambda t: t.name)
def test_committed_lock_matches_the_catalogue(target) -> None:
    path = sl.lock_path(target)
    assert path.is_file(), f"{path} is missing: run `nox -s lock`"
    head = sl.read_header(path)
    fix = f"{path.name} is stale: run `nox -s lock`"
    assert head.get("variant") == target.variant, fix
    assert head.get("stack") == target.stack_name, fix
    assert head.get("pins") == ",".join(sl.stack_pins(target)), fix
    assert head.get("base") == target.base, fix
    pins = set(check_lock(path))
    dropped = set()
    for line in path.read_text().splitlines():
        if line.startswith("# left out, installed in the base:"):
            dropped = set(line.split(":", 1)[1].split())
    for pin in sl.stack_pins(target):
        name, version = pin.split("==")
        assert f"{name.lower()}=={version}" in pins | dropped, f"{pin} not in {path.name}: {fix}"
    base = sl.base_path(target)
    assert base.is_file(), f"{base} is missing: run `nox -s lock`"
    assert sl.read_header(base) == head, f"{base.name} and {path.name} disagree: run `nox -s lock`"


def test_every_variant_gets_its_own_lock_path() -> None:
    paths = [sl.lock_path(t) for t in variants()]
    assert len(set(paths)) == len(paths)
    assert all(p.parent == Path(load().path).parent / "images/singleuser/locks" for p in paths)


def test_variants_without_locks_keep_stack_requirements() -> None:
    data = copy.deepcopy(minimal())
    su = parse(data).select(["singleuser"])[0]
    assert su.lock is None
    data["images"]["singleuser"]["locks"] = "x/locks/"
    assert parse(data).select(["singleuser"])[0].lock == "x/locks/a.lock"


def test_parse_collect() -> None:
    out = (
        "python=3.13\n--- record\n# header\nNumPy==2.2.6\npackaging==25.0\n"
        "--- constraints\nnumpy==2.2.6\n# from /etc/pip/constraint.txt\nnumpy==2.2.6\n"
    )
    python, record, constraints = sl.parse_collect(out)
    assert python == "3.13"
    assert record == {"numpy": "2.2.6", "packaging": "25.0"}
    assert constraints == ["numpy==2.2.6", "# from /etc/pip/constraint.txt", "numpy==2.2.6"]
    with pytest.raises(sl.LockError, match="could not read"):
        sl.parse_collect("nothing")


def test_strip_base_drops_only_what_the_base_has_at_that_version(tmp_path: Path) -> None:
    text = (
        "# header\n"
        f"jupyterlab==4.6.6 \\\n    {HASH}\n    # via -r requirements.in\n"
        f"packaging==25.0 \\\n    {HASH}\n    # via jupyterlab\n"
        f"numpy==2.3.0 ; python_version >= '3.11' \\\n    {HASH}\n"
    )
    out, dropped = sl.strip_base(text, {"packaging": "25.0", "numpy": "2.2.6"})
    assert dropped == ["packaging==25.0"]
    assert "packaging" not in out and "numpy==2.3.0" in out and "jupyterlab==4.6.6" in out
    lock = tmp_path / "x.lock"
    lock.write_text(out)
    assert check_lock(lock) == ["jupyterlab==4.6.6", "numpy==2.3.0"]


def test_build_tools_lock_pins_the_catalogue_uv() -> None:
    from f7tbuild import lock

    pins = check_lock(lock.REPO_ROOT / lock.BUILD_TOOLS_LOCK)
    assert pins == [r.lower() for r in lock.build_tools_requirements()], "run `nox -s lock`"
