"""Housekeeping of local builds (f7tbuild.housekeeping), against the real Docker engine.

The engine tests build tiny images (``FROM scratch`` plus one small file) labelled like
f7tbuild's builds, under repositories ``f7t4jhub-test-<run>/...`` and with a label of
their own run, and only ever ask housekeeping about those: no real image is looked at or
touched. Everything they made is removed at the end, whatever happened.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import docker
import docker.errors
import pytest

from f7tbuild import engine
from f7tbuild.housekeeping import (
    Removed,
    Result,
    Skipped,
    created_key,
    current_refs,
    describe,
    housekeep,
    is_standin_base,
    our_repositories,
)
from f7tbuild.labels import IMAGE_LABEL
from f7tbuild.standin import STANDIN_LABEL
from tests.support.require import unavailable

RUN_LABEL = "org.f7t4jhub.test-run"

# --- pure parts ---------------------------------------------------------------------


def test_our_repositories_are_native_and_emulated_per_family() -> None:
    repos = our_repositories(["chp", "hub"])
    assert repos[0] == "f7t4jhub/chp"
    assert "f7t4jhub/hub" in repos
    assert "f7t4jhub/arm64/hub" in repos and "f7t4jhub/arm64/chp" in repos
    assert not any("standin" in r for r in repos)


def test_created_key_orders_fractions_of_a_second() -> None:
    # The engine trims trailing zeros: text order is not time order.
    earlier = created_key("2026-12-01T10:00:00.123456789Z")
    later = created_key("2026-12-01T10:00:00.2Z")
    assert earlier < later
    assert created_key("2026-12-01T10:00:01Z") > later
    assert created_key("2026-12-01T12:00:00+02:00") == created_key("2026-12-01T10:00:00Z")
    assert created_key("garbage", fallback=7) == (7, 0)


def test_standin_base_versus_a_build_on_one() -> None:
    assert is_standin_base({STANDIN_LABEL: "true", "org.f7t4jhub.standin.kind": "node"})
    # A build on a stand-in base inherits the base's labels but names its image.
    assert not is_standin_base(
        {STANDIN_LABEL: "true", "org.f7t4jhub.standin.kind": "node", IMAGE_LABEL: "chp"}
    )
    assert not is_standin_base({STANDIN_LABEL: "false", IMAGE_LABEL: "hub"})


def test_summary_line() -> None:
    result = Result(keep=2, bytes_freed=3_140_000_000)
    result.removed = [Removed("sha256:" + "a" * 64, ("f7t4jhub/hub:x",), "hub", 1)] * 3
    assert result.summary() == "housekeeping: removed 3 earlier builds (3.1 GB); kept 2 per image"
    result.removed.append(Removed("sha256:" + "b" * 64, (), "hub", 1))
    result.skipped = [Skipped("sha256:" + "c" * 64, ("f7t4jhub/hub:y",), "used by container")]
    assert result.summary() == (
        "housekeeping: removed 4 earlier builds (1 untagged) (3.1 GB); kept 2 per image; "
        "left 1 (in use or tagged elsewhere)"
    )
    assert describe(result.removed[-1]) == "untagged image (" + "b" * 12 + ")"
    assert Result(keep=1, dry_run=True).summary() == (
        "housekeeping (dry run): would remove 0 earlier builds; kept 1 per image"
    )


def test_keep_zero_does_nothing_and_negative_is_refused() -> None:
    assert housekeep(["f7t4jhub/hub"], 0).summary().startswith("housekeeping: off")
    with pytest.raises(ValueError, match="keep"):
        housekeep(["f7t4jhub/hub"], -1)


def test_build_and_clean_images_options() -> None:
    from f7tbuild.cli import parser

    assert parser().parse_args(["build"]).keep_builds == 2
    assert parser().parse_args(["build", "--keep-builds", "0"]).keep_builds == 0
    assert parser().parse_args(["clean-images"]).keep == 1
    assert parser().parse_args(["clean-images", "--keep", "3", "--dry-run"]).dry_run
    with pytest.raises(SystemExit):
        parser().parse_args(["clean-images", "--keep", "-1"])


def test_current_refs_are_the_version_tag_every_build_moves() -> None:
    """The version tag f7tbuild.tags puts first on every build, for each target, native and
    emulated, real and stand-in: housekeeping keeps what it names."""
    from f7tbuild.catalogue import load
    from f7tbuild.tags import Revision, local_refs

    targets = load().targets
    current = current_refs(targets)
    for rev in (Revision("a5f5111" + "0" * 33, "2026-11-30T23:00:00Z", "x"),
                Revision("d2a59d0" + "1" * 33, "2026-12-01T01:00:00Z", "x")):
        for target in targets:
            for standin in (False, True):
                for arch in (None, "arm64"):
                    assert local_refs(target, rev, standin, arch)[0] in current
    assert not any(rev_tag in ref for ref in current for rev_tag in ("a5f5111", "20261130"))


def test_a_failing_housekeeping_warns_and_does_not_fail_the_build(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from f7tbuild import build, housekeeping
    from f7tbuild.catalogue import load

    calls: list[tuple[int, list[str]]] = []

    def broken(repos: list[str], keep: int, *, protect: list[str]) -> Result:
        calls.append((keep, list(protect)))
        raise housekeeping.HousekeepingError("cannot list the engine's images: boom")

    monkeypatch.setattr(housekeeping, "housekeep", broken)
    cat = load()
    build.clean_up(cat, 2, ["f7t4jhub/chp:5.3.0-standin"])
    out = capsys.readouterr().out
    assert calls == [(2, ["f7t4jhub/chp:5.3.0-standin", *current_refs(cat.targets)])]
    assert "WARNING: housekeeping failed (HousekeepingError: cannot list" in out
    assert "nox -s clean-images" in out


# --- against the engine -------------------------------------------------------------


@dataclass
class Scene:
    """The test's images: name -> image id, and the repositories housekeeping is given."""

    prefix: str
    run: str
    cli: docker.DockerClient
    ids: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)

    def labels(self, **extra: str) -> dict[str, str]:
        return {RUN_LABEL: self.run, **extra}

    def build(self, name: str, refs: list[str], labels: dict[str, str]) -> str:
        """A FROM scratch image holding one small file unique to ``name``."""
        dockerfile = b"FROM scratch\nCOPY f /f\n"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, data in (("Dockerfile", dockerfile), ("f", f"{self.run} {name}\n".encode())):
                info = tarfile.TarInfo(path)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        image, _ = self.cli.images.build(
            fileobj=buf,
            custom_context=True,
            tag=refs[0],
            labels=labels,
            nocache=True,
            rm=True,
            forcerm=True,
        )
        for ref in refs[1:]:
            repo, tag = engine.split_ref(ref)
            assert image.tag(repo, tag)
        self.ids[name] = str(image.id)
        return str(image.id)

    def exists(self, name: str) -> bool:
        try:
            self.cli.api.inspect_image(self.ids[name])
        except docker.errors.ImageNotFound:
            return False
        return True

    def tags(self, name: str) -> list[str]:
        return list(self.cli.api.inspect_image(self.ids[name]).get("RepoTags") or [])

    def cleanup(self) -> None:
        for cid in self.containers:
            try:
                self.cli.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
        left = self.cli.api.images(all=True, filters={"label": f"{RUN_LABEL}={self.run}"})
        for entry in left:
            try:
                self.cli.api.remove_image(entry["Id"], force=True)
            except docker.errors.ImageNotFound:
                pass
        for entry in self.cli.api.images(name=f"{self.prefix}*"):
            for ref in entry.get("RepoTags") or []:
                if ref.startswith(self.prefix):
                    self.cli.api.remove_image(ref, force=True)


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    try:
        engine.require_engine()
    except engine.EngineError as exc:
        unavailable("docker", str(exc))
    run = uuid.uuid4().hex[:10]
    made = Scene(prefix=f"f7t4jhub-test-{run}", run=run, cli=engine.client())
    try:
        yield made
    finally:
        made.cleanup()
        assert not made.cli.api.images(all=True, filters={"label": f"{RUN_LABEL}={run}"})


@dataclass
class Outcome:
    scene: Scene
    dry: Result
    protected: Result
    real: Result
    repos: list[str]


@pytest.fixture(scope="module")
def outcome(scene: Scene) -> Outcome:
    """The scene built oldest first, housekept once as a dry run, once with a protected
    image (dry run), then for real with keep 2."""
    p = scene.prefix
    build_on_standin = {STANDIN_LABEL: "true", "org.f7t4jhub.standin.kind": "node"}
    standin_base = scene.labels(**{STANDIN_LABEL: "true", "org.f7t4jhub.standin.kind": "node"})
    # A stand-in base tagged in our repository (oldest of all): never touched.
    scene.build("base-in-repo", [f"{p}/hub:base"], standin_base)
    # A stand-in base, rebuilt: the first one is left dangling and stays.
    scene.build("base-old", [f"{p}/standin-node:latest"], standin_base)
    scene.build("base", [f"{p}/standin-node:latest"], standin_base)
    # Another variant, one build, older than the others: untouched.
    scene.build(
        "su2407",
        [f"{p}/singleuser:pytorch-24.07-lab-4.6.6-0000001", f"{p}/singleuser:pytorch-24.07"],
        scene.labels(**{IMAGE_LABEL: "singleuser-pytorch-24.07", STANDIN_LABEL: "false"}),
    )
    # hub: four builds on a stand-in base; the second oldest is used by a container.
    for i in range(1, 5):
        refs = [f"{p}/hub:6.1.1-000000{i}-standin", f"{p}/hub:6.1.1-2026120{i}-standin"]
        if i == 4:
            refs += [f"{p}/hub:6.1.1-standin", f"{p}/hub:latest-standin"]
        scene.build(f"hub{i}", refs, scene.labels(**build_on_standin, **{IMAGE_LABEL: "hub"}))
    container = scene.cli.api.create_container(
        scene.ids["hub2"], command=["/f"], name=f"{p}-user", labels={RUN_LABEL: scene.run}
    )
    scene.containers.append(container["Id"])
    # singleuser pytorch-25.10: the oldest is also tagged elsewhere (as publish leaves it).
    for i in range(4):
        refs = [f"{p}/singleuser:pytorch-25.10-lab-4.6.6-000010{i}"]
        if i == 0:
            refs.append(f"{p}-registry/singleuser:pytorch-25.10-lab-4.6.6-0000100")
        scene.build(
            f"su2510-{i}",
            refs,
            scene.labels(**{IMAGE_LABEL: "singleuser-pytorch-25.10", STANDIN_LABEL: "false"}),
        )
    # chp: three builds, and an image in its repository that f7tbuild did not build (no
    # image label: never ours to remove); one emulated build.
    for i in range(1, 4):
        scene.build(f"chp{i}", [f"{p}/chp:5.3.0-000020{i}"],
                    scene.labels(**{IMAGE_LABEL: "chp", STANDIN_LABEL: "false"}))
    for i in range(1, 4):  # three, so that grouping them would remove one
        scene.build(f"chp-foreign{i}", [f"{p}/chp:someone-elses-{i}"], scene.labels())
    scene.build(
        "arm-hub",
        [f"{p}/arm64/hub:6.1.1-0000001-standin"],
        scene.labels(**build_on_standin, **{IMAGE_LABEL: "hub"}),
    )
    # A rebuild outside our repositories: the first is dangling and labelled, so it goes;
    # the tagged one is not ours.
    labelled = scene.labels(**{IMAGE_LABEL: "hub", STANDIN_LABEL: "false"})
    scene.build("dangling", [f"{p}/elsewhere:rebuilt"], labelled)
    scene.build("elsewhere", [f"{p}/elsewhere:rebuilt"], labelled)

    repos = [f"{p}/{name}" for name in ("hub", "singleuser", "chp", "arm64/hub", "standin-node")]
    only = {RUN_LABEL: scene.run}
    dry = housekeep(repos, 2, only_labels=only, dry_run=True)
    protected = housekeep(
        repos, 2, only_labels=only, dry_run=True, protect=[f"{p}/hub:6.1.1-0000001-standin"]
    )
    real = housekeep(repos, 2, only_labels=only)
    return Outcome(scene, dry, protected, real, repos)


def removed_names(scene: Scene, result: Result) -> set[str]:
    by_id = {v: k for k, v in scene.ids.items()}
    return {by_id[r.image_id] for r in result.removed}


def test_the_two_newest_per_target_stay_and_older_ones_go(outcome: Outcome) -> None:
    scene = outcome.scene
    assert removed_names(scene, outcome.real) == {"hub1", "su2510-1", "chp1", "dangling"}
    for name in ("hub3", "hub4", "su2510-2", "su2510-3", "chp2", "chp3", "arm-hub",
                 "chp-foreign1", "chp-foreign2", "chp-foreign3"):
        assert scene.exists(name), name
    for name in ("hub1", "su2510-1", "chp1", "dangling"):
        assert not scene.exists(name), name
    assert f"{scene.prefix}/hub:latest-standin" in scene.tags("hub4")


def test_all_tags_of_a_removed_build_are_listed(outcome: Outcome) -> None:
    p = outcome.scene.prefix
    hub1 = next(r for r in outcome.real.removed if r.target == "hub")
    assert set(hub1.refs) == {f"{p}/hub:6.1.1-0000001-standin", f"{p}/hub:6.1.1-20261201-standin"}
    dangling = next(r for r in outcome.real.removed if not r.refs)
    assert dangling.image_id == outcome.scene.ids["dangling"]
    assert any(r.target == "chp" for r in outcome.real.removed)


def test_another_variant_and_an_emulated_build_are_untouched(outcome: Outcome) -> None:
    scene = outcome.scene
    assert scene.exists("su2407") and scene.exists("arm-hub") and scene.exists("elsewhere")
    assert len(scene.tags("su2407")) == 2


def test_an_image_in_use_is_skipped_and_reported(outcome: Outcome) -> None:
    scene = outcome.scene
    assert scene.exists("hub2")
    (in_use,) = [s for s in outcome.real.skipped if s.image_id == scene.ids["hub2"]]
    assert f"{scene.prefix}-user (created)" in in_use.reason
    assert "used by container" in in_use.reason
    assert len(scene.tags("hub2")) == 2  # no tag taken off either


def test_an_image_tagged_elsewhere_is_skipped_and_reported(outcome: Outcome) -> None:
    scene = outcome.scene
    assert scene.exists("su2510-0")
    (other,) = [s for s in outcome.real.skipped if s.image_id == scene.ids["su2510-0"]]
    assert f"{scene.prefix}-registry/singleuser" in other.reason
    assert len(outcome.real.skipped) == 2


def test_standin_bases_are_untouched(outcome: Outcome) -> None:
    scene = outcome.scene
    for name in ("base-in-repo", "base-old", "base"):
        assert scene.exists(name), name
    assert scene.tags("base") == [f"{scene.prefix}/standin-node:latest"]
    assert scene.tags("base-old") == []  # dangling, left alone


def test_dry_run_decides_the_same_and_removes_nothing(outcome: Outcome) -> None:
    scene = outcome.scene
    assert removed_names(scene, outcome.dry) == removed_names(scene, outcome.real)
    assert outcome.dry.bytes_freed is None
    assert outcome.dry.summary().startswith("housekeeping (dry run): would remove 4 earlier")
    assert outcome.real.bytes_freed is not None and outcome.real.bytes_freed >= 0
    assert outcome.real.summary().startswith("housekeeping: removed 4 earlier builds (1 untagged)")


def test_a_protected_build_is_one_of_those_kept_whatever_its_age(outcome: Outcome) -> None:
    """The oldest hub build protected (the current build, named by the moving version tag,
    can have the oldest or the same creation time): it is kept as one of the two, with the
    newest, and the next newest goes instead."""
    names = removed_names(outcome.scene, outcome.protected)
    assert names == {"hub3", "su2510-1", "chp1", "dangling"}


def test_a_second_run_finds_nothing_more(outcome: Outcome) -> None:
    again = housekeep(outcome.repos, 2, only_labels={RUN_LABEL: outcome.scene.run})
    assert again.removed == []
    assert {s.image_id for s in again.skipped} == {
        outcome.scene.ids["hub2"],
        outcome.scene.ids["su2510-0"],
    }
