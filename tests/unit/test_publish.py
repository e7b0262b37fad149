"""publish refuses stand-in builds and unbuilt images (pure planning logic)."""

from __future__ import annotations

import pytest

from f7tbuild.catalogue import load
from f7tbuild.publish import PublishRefused, is_standin, plan
from f7tbuild.tags import Revision

REV = Revision(sha="1234567" + "0" * 33, created="2026-01-01T00:00:00Z", source="")
REAL = {"org.f7t4jhub.standin": "false"}
STANDIN = {"org.f7t4jhub.standin": "true"}


def test_is_standin_by_tag_or_label() -> None:
    assert is_standin("f7t4jhub/chp:5.3.0-standin", {})
    assert is_standin("f7t4jhub/chp:5.3.0", STANDIN)
    assert not is_standin("f7t4jhub/chp:5.3.0", REAL)
    assert not is_standin("localhost:5000/chp", {})


def test_plan_pushes_every_real_tag() -> None:
    cat = load()
    chp = cat.select(["chp"])[0]
    labels = {
        "f7t4jhub/chp:5.3.0": REAL,
        "f7t4jhub/chp:5.3.0-1234567": REAL,
        "f7t4jhub/chp:latest": REAL,
    }
    pushes = plan(cat.registry, chp, REV, labels)
    assert [p.remote for p in pushes] == [
        f"{cat.registry}/chp:5.3.0",
        f"{cat.registry}/chp:5.3.0-1234567",
        f"{cat.registry}/chp:latest",
    ]


def test_plan_refuses_only_standin_builds() -> None:
    cat = load()
    chp = cat.select(["chp"])[0]
    labels = {"f7t4jhub/chp:5.3.0": None, "f7t4jhub/chp:5.3.0-standin": STANDIN}
    with pytest.raises(PublishRefused, match="only stand-in builds exist"):
        plan(cat.registry, chp, REV, labels)


def test_plan_refuses_a_standin_label_under_a_real_tag() -> None:
    cat = load()
    chp = cat.select(["chp"])[0]
    with pytest.raises(PublishRefused, match="stand-in builds are never published"):
        plan(cat.registry, chp, REV, {"f7t4jhub/chp:5.3.0": STANDIN})


def test_plan_refuses_unbuilt_image_and_names_the_fix() -> None:
    cat = load()
    hub = cat.select(["hub"])[0]
    with pytest.raises(PublishRefused, match="nox -s build-hub"):
        plan(cat.registry, hub, REV, {})
