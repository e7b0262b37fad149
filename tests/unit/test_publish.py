"""What publish refuses and why (its decisions, without an engine or a registry).

The whole path against a real registry is tests/publish/test_registry.py.
"""

from __future__ import annotations

import pytest

from f7tbuild.catalogue import load
from f7tbuild.publish import (
    Candidate,
    Policy,
    PublishRefused,
    check_policy,
    choose,
    immutable_conflicts,
    is_loopback,
    is_standin,
    preflight,
    verify_candidate,
)
from f7tbuild.tags import Revision, local_refs

REV = Revision(sha="1234567" + "0" * 33, created="2026-01-01T00:00:00Z", source="")
REAL = {"org.f7t4jhub.standin": "false", "org.opencontainers.image.revision": REV.sha}
STANDIN = {"org.f7t4jhub.standin": "true", "org.opencontainers.image.revision": REV.sha}
TEST_POLICY = Policy(allow_standin=True, allow_dirty=True)


def chp():
    return load().select(["chp"])[0]


def test_is_standin_by_tag_or_label() -> None:
    assert is_standin("f7t4jhub/chp:5.3.0-standin", {})
    assert is_standin("f7t4jhub/chp:5.3.0", STANDIN)
    assert not is_standin("f7t4jhub/chp:5.3.0", REAL)
    assert not is_standin("localhost:5000/chp", {})


def test_loopback_registries() -> None:
    assert is_loopback("127.0.0.1:5000/f7t")
    assert is_loopback("localhost:5000")
    assert is_loopback("[::1]:5000/x")
    assert not is_loopback("ghcr.io/f7t4jhub")
    assert not is_loopback("registry.example:5000/x")


def test_lenient_policy_only_for_loopback() -> None:
    check_policy("127.0.0.1:5000/x", TEST_POLICY)
    check_policy("ghcr.io/f7t4jhub", Policy())
    with pytest.raises(PublishRefused, match="only ever pushed to a registry on loopback"):
        check_policy("ghcr.io/f7t4jhub", TEST_POLICY)


def test_dirty_tree_refused_and_names_the_fix() -> None:
    preflight(False, Policy())
    with pytest.raises(PublishRefused, match="commit .* and rebuild"):
        preflight(True, Policy())
    preflight(True, TEST_POLICY)


def test_choose_the_real_build() -> None:
    refs = local_refs(chp(), REV, standin=False)
    cand = choose(chp(), REV, lambda r: REAL if r == refs[0] else None, Policy())
    assert cand.refs == refs and not cand.standin


def test_choose_refuses_when_only_a_standin_build_exists() -> None:
    fake = local_refs(chp(), REV, standin=True)[0]
    with pytest.raises(PublishRefused, match="only a stand-in build exists.*nox -s build-chp"):
        choose(chp(), REV, lambda r: STANDIN if r == fake else None, Policy())
    cand = choose(chp(), REV, lambda r: STANDIN if r == fake else None, TEST_POLICY)
    assert cand.standin and cand.refs[0] == fake


def test_choose_refuses_a_standin_label_under_a_real_tag() -> None:
    with pytest.raises(PublishRefused, match="stand-in builds are never published"):
        choose(chp(), REV, lambda r: STANDIN, Policy())


def test_choose_refuses_an_unbuilt_image() -> None:
    with pytest.raises(PublishRefused, match="is not built; .*nox -s build-chp"):
        choose(chp(), REV, lambda r: None, Policy())


def _candidate(labels: dict[str, str] = REAL) -> Candidate:
    return Candidate(local_refs(chp(), REV, standin=False), labels, standin=False)


def test_verify_needs_a_recorded_pass_for_that_image_id() -> None:
    cand = _candidate()
    ids = dict.fromkeys(cand.refs, "sha256:" + "a" * 64)
    marker = {"image_id": "sha256:" + "a" * 64}
    assert verify_candidate(chp(), REV, cand, ids, lambda i: marker) == "sha256:" + "a" * 64
    with pytest.raises(PublishRefused, match="checks never passed .* exact image id"):
        verify_candidate(chp(), REV, cand, ids, lambda i: None)


def test_verify_refuses_another_commit_and_split_tags() -> None:
    other = {**REAL, "org.opencontainers.image.revision": "f" * 40}
    cand = _candidate(other)
    ids = dict.fromkeys(cand.refs, "sha256:" + "a" * 64)
    with pytest.raises(PublishRefused, match="built from commit ffffffffffff, not HEAD"):
        verify_candidate(chp(), REV, cand, ids, lambda i: {})
    cand = _candidate()
    ids[cand.refs[-1]] = "sha256:" + "b" * 64
    with pytest.raises(PublishRefused, match="do not name the same image"):
        verify_candidate(chp(), REV, cand, ids, lambda i: {})


def test_immutable_tags_are_never_moved() -> None:
    there = {"5.3.0-1234567": "sha256:" + "c" * 64}
    assert immutable_conflicts(["5.3.0-1234567", "5.3.0-20260101"], there.get, None) == [
        "5.3.0-1234567 (sha256:cccccccccccc)"
    ]
    assert immutable_conflicts(["5.3.0-1234567"], there.get, "sha256:" + "c" * 64) == []
