"""Tags computed from the catalogue and the revision (immutable and moving ones)."""

from __future__ import annotations

import copy

import pytest

from f7tbuild.catalogue import CatalogueError, load, parse
from f7tbuild.tags import (
    Revision,
    component,
    current_revision,
    local_refs,
    major_minor,
    registry_ref,
    tag_set,
    tags,
)
from tests.unit.test_catalogue import minimal

REV = Revision(sha="abcdef0123456789" * 2 + "abcdef01", created="2026-01-01T23:30:00Z", source="")


def test_chp_tags() -> None:
    chp = load().select(["chp"])[0]
    ts = tag_set(chp, REV)
    assert ts.immutable == ("5.3.0-abcdef0", "5.3.0-20260101")
    assert ts.moving == ("5.3.0", "5.3", "latest")
    assert tags(chp, REV, standin=False) == [
        "5.3.0",
        "5.3.0-abcdef0",
        "5.3.0-20260101",
        "5.3",
        "latest",
    ]


def test_standin_suffix_on_every_tag() -> None:
    chp = load().select(["chp"])[0]
    assert tags(chp, REV, standin=True) == [
        "5.3.0-standin",
        "5.3.0-abcdef0-standin",
        "5.3.0-20260101-standin",
        "5.3-standin",
        "latest-standin",
    ]


def test_hub_tags_follow_its_jupyterhub_version() -> None:
    cat = load()
    hub = cat.select(["hub"])[0]
    version = cat.stacks["current"]["jupyterhub"]
    minor = ".".join(version.split(".")[:2])
    assert tags(hub, REV, standin=False) == [
        version,
        f"{version}-abcdef0",
        f"{version}-20260101",
        minor,
        "latest",
    ]


def test_variant_tags_and_only_the_latest_variant_is_latest() -> None:
    cat = load()
    new, old = cat.select(["pytorch-25.10"])[0], cat.select(["pytorch-24.07"])[0]
    lab = cat.stacks["current"]["jupyterlab"]
    lab_minor = ".".join(lab.split(".")[:2])
    assert tags(new, REV, standin=False) == [
        f"pytorch-25.10-lab-{lab}",
        f"pytorch-25.10-lab-{lab}-abcdef0",
        f"pytorch-25.10-lab-{lab}-20260101",
        f"pytorch-25.10-lab-{lab_minor}",
        "pytorch-25.10",
        "latest",
    ]
    assert "latest" not in tags(old, REV, standin=False)
    assert component(old) == f"pytorch-24.07-lab-{cat.stacks['seed']['jupyterlab']}"


def test_date_tag_is_the_commit_day_in_utc() -> None:
    chp = load().select(["chp"])[0]
    late = Revision(sha=REV.sha, created="2026-01-01T23:30:00-05:00", source="")
    assert "5.3.0-20260102" in tag_set(chp, late).immutable


def test_every_build_of_one_revision_computes_the_same_tags() -> None:
    cat = load()
    for target in cat.targets:
        first, again = tags(target, REV, False), tags(target, REV, False)
        assert first == again and len(first) == len(set(first))


def test_major_minor() -> None:
    assert major_minor("6.1.1") == "6.1"
    assert major_minor("4.6.6rc1") == "4.6"
    assert major_minor("25.10") is None


def test_main_component_must_be_pinned() -> None:
    data = copy.deepcopy(minimal())
    data["images"]["chp"]["main"] = "nodejs"
    chp = parse(data).select(["chp"])[0]
    with pytest.raises(CatalogueError, match="main component 'nodejs' is pinned neither"):
        tag_set(chp, REV)


def test_two_latest_variants_are_refused() -> None:
    data = copy.deepcopy(minimal())
    variants = data["images"]["singleuser"]["variants"]
    variants["a"]["latest"] = True
    variants["b"] = {"base": "nvcr.io/x:2", "stack": "s", "latest": True}
    with pytest.raises(CatalogueError, match="mark only one"):
        parse(data)


def test_local_and_registry_names() -> None:
    cat = load()
    chp = cat.select(["chp"])[0]
    assert local_refs(chp, REV, standin=True)[0] == "f7t4jhub/chp:5.3.0-standin"
    assert registry_ref(cat.registry + "/", chp, "5.3.0") == f"{cat.registry}/chp:5.3.0"
    assert registry_ref("127.0.0.1:5000/x", chp, "5.3") == "127.0.0.1:5000/x/chp:5.3"


def test_current_revision_is_this_checkout() -> None:
    rev = current_revision("https://example.org/src")
    assert len(rev.sha) == 40
    assert rev.short == rev.sha[:7]
    assert rev.created.endswith("Z") and len(rev.date) == 8
    assert rev.source == "https://example.org/src"
