"""Tags derived from the catalogue (docker-stacks style taggers)."""

from __future__ import annotations

from f7tbuild.catalogue import load
from f7tbuild.tags import Revision, current_revision, local_refs, registry_ref, tags

REV = Revision(sha="abcdef0123456789" * 2 + "abcdef01", created="2026-01-01T00:00:00Z", source="")


def test_chp_tags() -> None:
    chp = load().select(["chp"])[0]
    assert tags(chp, REV, standin=False) == ["5.3.0", "5.3.0-abcdef0", "latest"]


def test_standin_suffix_on_every_tag() -> None:
    chp = load().select(["chp"])[0]
    assert tags(chp, REV, standin=True) == [
        "5.3.0-standin",
        "5.3.0-abcdef0-standin",
        "latest-standin",
    ]


def test_hub_tags_use_its_jupyterhub_version() -> None:
    cat = load()
    hub = cat.select(["hub"])[0]
    version = cat.stacks["current"]["jupyterhub"]
    assert tags(hub, REV, standin=False) == [version, f"{version}-abcdef0", "latest"]


def test_variant_tags() -> None:
    cat = load()
    su = cat.select(["pytorch-25.10"])[0]
    lab = cat.stacks["current"]["jupyterlab"]
    assert tags(su, REV, standin=False) == [
        "pytorch-25.10",
        "pytorch-25.10-abcdef0",
        f"pytorch-25.10-lab-{lab}",
    ]


def test_local_and_registry_names() -> None:
    cat = load()
    chp = cat.select(["chp"])[0]
    assert local_refs(chp, REV, standin=True)[0] == "f7t4jhub/chp:5.3.0-standin"
    assert registry_ref(cat.registry + "/", chp, "5.3.0") == f"{cat.registry}/chp:5.3.0"


def test_current_revision_is_this_checkout() -> None:
    rev = current_revision()
    assert len(rev.sha) == 40
    assert rev.short == rev.sha[:7]
