"""Publishing proven against a real registry on loopback (``crane registry serve``).

The chp image built by ``nox -s build`` (in CI before the tests) is published with
``f7tbuild.publish.publish`` exactly as ``nox -s publish`` does, with one difference:
here it is a stand-in build, which publish refuses everywhere except on a loopback
registry through ``Policy(allow_standin=True, ...)`` (no command-line switch exists).
Then, from the registry only: every computed tag resolves to the one digest, the image
pulled back by digest is the image built, its labels are right, the digest, package
manifest and SBOM files exist; cosign verifies the signature and the SBOM attestation
with the test's key, and refuses a wrong key and a tampered image.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from f7tbuild import checkpass, engine, loopreg, tools
from f7tbuild.catalogue import load
from f7tbuild.index import assemble
from f7tbuild.index import platforms_of as index_platforms
from f7tbuild.labels import OCI, STANDIN_DIGEST, VERSIONS_PREFIX
from f7tbuild.publish import Policy, Published, PublishRefused, publish
from f7tbuild.sign import generate_key_pair, verify
from f7tbuild.tags import component, current_revision, local_refs, tag_set
from tests.support.require import unavailable

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

#: Stand-in builds may be pushed only like this, and only to loopback (f7tbuild.publish).
LOOPBACK_ONLY = Policy(allow_standin=True, allow_dirty=True)


def tool(name: str) -> str:
    try:
        return tools.find(name)
    except tools.ToolMissing as exc:
        unavailable("tools", str(exc))


def crane(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [tool("crane"), *args], capture_output=True, text=True, timeout=300, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"crane {' '.join(args)} failed: {proc.stderr.strip()[-600:]}")
    return proc


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on 127.0.0.1 (crane registry serve, blobs on disk); yields host:port/ns."""
    try:
        engine.require_engine()
    except engine.EngineError as exc:
        unavailable("docker", str(exc))
    tool("crane")  # missing: reported as a missing tool, like the other tools here
    with loopreg.serve(tmp_path_factory.mktemp("registry"), namespace="f7t4jhub-test") as reg:
        yield reg


@pytest.fixture(scope="module")
def chp_build():
    """The chp stand-in build of this commit, checked (nox -s build made it)."""
    cat = load()
    target = cat.select(["chp"])[0]
    rev = current_revision(cat.source)
    ref = local_refs(target, rev, standin=True)[0]
    try:
        present = engine.image_exists(ref)
    except engine.EngineError as exc:
        unavailable("docker", str(exc))
    if not present:
        unavailable("docker", f"{ref} is not built at this commit: run `nox -s build-chp` first")
    if checkpass.lookup(engine.image_id(ref)) is None:
        unavailable("docker", f"{ref} has no recorded check pass: run `nox -s build-chp`")
    return cat, target, rev, ref


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A key pair for the test (empty password) and a second, unrelated public key."""
    tool("cosign")
    base = tmp_path_factory.mktemp("keys")
    key, pub = generate_key_pair(base / "signer")
    _, other = generate_key_pair(base / "other")
    return key, pub, other


@pytest.fixture(scope="module")
def published(
    registry: str, chp_build, keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Published, Path]]:
    cat, _, _, _ = chp_build
    tool("syft")
    out = tmp_path_factory.mktemp("publish-out")
    mp = pytest.MonkeyPatch()
    mp.setenv("COSIGN_PASSWORD", "")
    try:
        done = publish(
            cat, ["chp"], registry=registry, out_dir=out, policy=LOOPBACK_ONLY, sign_key=str(keys[0])
        )
    finally:
        mp.undo()
    assert len(done) == 1
    yield done[0], out
    for tag in done[0].tags:
        engine.remove_image(f"{done[0].repository}:{tag}")
    engine.remove_image(done[0].ref)


def test_strict_publish_refuses_the_standin_build(registry: str, chp_build) -> None:
    cat = chp_build[0]
    with pytest.raises(PublishRefused, match="only a stand-in build exists"):
        publish(cat, ["chp"], registry=registry, policy=Policy(allow_dirty=True))
    with pytest.raises(PublishRefused, match="only ever pushed to a registry on loopback"):
        publish(cat, ["chp"], registry="ghcr.io/f7t4jhub", policy=LOOPBACK_ONLY)


def test_every_tag_resolves_to_the_pushed_digest(published, chp_build) -> None:
    pub, out = published
    _, target, rev, _ = chp_build
    expected = tag_set(target, rev, standin=True).all()
    assert pub.tags == expected
    listed = set(crane("ls", pub.repository).stdout.split())
    assert set(expected) <= listed
    for tag in expected:
        assert crane("digest", f"{pub.repository}:{tag}").stdout.strip() == pub.digest, tag
    assert (out / "chp" / "digest.txt").read_text().strip() == pub.ref
    summary = json.loads((out / "published.json").read_text())
    assert [(e["ref"], e["tags"]) for e in summary] == [(pub.ref, expected)]


def test_pulled_back_by_digest_it_is_the_image_built(published, chp_build) -> None:
    pub, _ = published
    _, _, _, ref = chp_build
    crane("validate", "--remote", pub.ref)  # every blob's digest checked
    for tag in pub.tags:  # the pull must come from the registry, not a local tag
        engine.remove_image(f"{pub.repository}:{tag}")
    ok, why = engine.try_pull(pub.ref, timeout=300)
    assert ok, why
    assert engine.image_id(pub.ref) == engine.image_id(ref)


def test_labels_as_the_registry_serves_them(published, chp_build) -> None:
    pub, _ = published
    _, target, rev, _ = chp_build
    labels = json.loads(crane("config", pub.ref).stdout)["config"]["Labels"]
    assert labels[OCI + "revision"] == rev.sha
    assert labels[OCI + "source"] == load().source
    assert labels[OCI + "version"] == component(target)
    assert labels[OCI + "created"] == rev.created
    assert labels[OCI + "base.digest"] == STANDIN_DIGEST
    assert labels["org.f7t4jhub.standin"] == "true"
    assert labels[VERSIONS_PREFIX + "configurable-http-proxy"] == target.versions[
        "configurable-http-proxy"
    ]


def test_package_manifest_and_sbom_name_the_proxy(published, chp_build) -> None:
    pub, out = published
    _, target, _, _ = chp_build
    version = target.versions["configurable-http-proxy"]
    packages = json.loads((out / "chp" / "packages.json").read_text())
    assert packages["image"] == pub.ref
    assert {"kind": "npm", "name": "configurable-http-proxy", "version": version} in [
        {k: p[k] for k in ("kind", "name", "version")} for p in packages["packages"]
    ]
    sbom = json.loads((out / "chp" / "sbom.spdx.json").read_text())
    assert sbom["spdxVersion"].startswith("SPDX-")
    names = {(p.get("name"), p.get("versionInfo")) for p in sbom["packages"]}
    assert ("configurable-http-proxy", version) in names


def test_signature_verifies_with_the_key_only(published, keys) -> None:
    pub, _ = published
    _, pub_key, other = keys
    good = verify(pub.ref, pub_key)
    assert good.returncode == 0, good.stderr
    assert pub.digest in good.stdout
    wrong = verify(pub.ref, other)
    assert wrong.returncode != 0


def test_sbom_attestation_verifies(published, keys) -> None:
    pub, _ = published
    proc = subprocess.run(
        [
            tool("cosign"),
            "verify-attestation",
            "--key",
            str(keys[1]),
            "--type",
            "spdxjson",
            "--insecure-ignore-tlog=true",
            pub.ref,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_tampered_image_fails_verification(published, keys) -> None:
    pub, _ = published
    _, pub_key, _ = keys
    tag = pub.tags[0]
    # The attacker changes the image behind a tag (one label) ...
    crane("mutate", pub.ref, "--label", "tampered=yes", "-t", f"{pub.repository}:{tag}")
    new = crane("digest", f"{pub.repository}:{tag}").stdout.strip()
    assert new != pub.digest
    unsigned = verify(f"{pub.repository}@{new}", pub_key)
    assert unsigned.returncode != 0
    # ... and copies the genuine signature next to it: it names the old digest.
    old_sig = f"{pub.repository}:{pub.digest.replace(':', '-')}.sig"
    crane("copy", old_sig, f"{pub.repository}:{new.replace(':', '-')}.sig")
    copied = verify(f"{pub.repository}@{new}", pub_key)
    assert copied.returncode != 0, copied.stdout
    # The genuine digest still verifies.
    assert verify(pub.ref, pub_key).returncode == 0


def test_immutable_tags_are_never_moved(published, registry: str, chp_build) -> None:
    """Publishing again is refused once an immutable tag names another image."""
    pub, _ = published
    cat, target, rev, _ = chp_build
    immutable = tag_set(target, rev, standin=True).immutable[0]
    crane("mutate", pub.ref, "--label", "other=build", "-t", f"{pub.repository}:{immutable}")
    with pytest.raises(PublishRefused, match="immutable tags are never moved"):
        publish(cat, ["chp"], registry=registry, policy=LOOPBACK_ONLY)
    crane("tag", pub.ref, immutable)  # put it back for the tests after this one


def test_multi_arch_index_per_tag(published, registry: str, chp_build, tmp_path: Path) -> None:
    """A release's per-platform push, then one index per computed tag (f7tbuild.index)."""
    pub, _ = published
    cat, target, rev, _ = chp_build
    out = tmp_path / "publish-amd64"
    mp = pytest.MonkeyPatch()
    mp.setenv("COSIGN_PASSWORD", "")
    try:
        (arch,) = publish(
            cat, ["chp"], registry=registry, out_dir=out, policy=LOOPBACK_ONLY,
            platform="linux/amd64",
        )
    finally:
        mp.undo()
    assert arch.tags == [f"{tag_set(target, rev, standin=True).immutable[0]}-amd64"]
    assert arch.digest == pub.digest  # the same image: the registry already has it
    (index,) = assemble([out])
    assert index_platforms(index.ref) == ["linux/amd64"]
    for tag in arch.index_tags:
        assert crane("digest", f"{index.repository}:{tag}").stdout.strip() == index.digest, tag
    # The index's manifest for linux/amd64 is the signed image.
    manifest = json.loads(crane("manifest", index.ref).stdout)
    assert [m["digest"] for m in manifest["manifests"]] == [pub.digest]
    engine.remove_image(f"{arch.repository}:{arch.tags[0]}")
