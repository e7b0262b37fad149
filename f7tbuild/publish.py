"""Push checked builds to a registry; write their digests, package manifests and SBOMs.

``publish(cat, names, registry)`` for every selected image:

1. refuses a dirty work tree (the revision in the tags and labels would lie), a build
   on a stand-in base, a build of another commit, an image whose checks did not pass
   for that exact image id (f7tbuild.checkpass), and an immutable tag that the
   registry already holds for another image;
2. tags and pushes every computed tag (f7tbuild.tags) through the Docker SDK, with the
   registry's per-layer progress, and checks every tag got the same digest;
3. writes ``<out>/<image>/`` : ``digest.txt``, ``packages.json`` (f7tbuild.manifest),
   ``sbom.spdx.json`` (f7tbuild.sbom), and ``<out>/published.json`` for all images;
4. signs each pushed digest with cosign when asked (f7tbuild.sign).

The refusals of stand-in builds and of a dirty tree can be lifted only for a registry on
loopback, and only through :class:`Policy` (no command-line option): the registry test
(tests/publish) proves the whole path on stand-in builds that way.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from f7tbuild import checkpass, engine, manifest, sbom
from f7tbuild.catalogue import REPO_ROOT, Catalogue, Target
from f7tbuild.labels import OCI
from f7tbuild.output import prefixed, status
from f7tbuild.platforms import foreign_arch
from f7tbuild.standin import STANDIN_LABEL
from f7tbuild.tags import (
    STANDIN_SUFFIX,
    Revision,
    current_revision,
    is_dirty,
    local_refs,
    registry_ref,
    tag_set,
)

DEFAULT_OUT = REPO_ROOT / "build" / "publish"


class PublishRefused(RuntimeError):
    """The image must not be published; the message says why and what to do."""


@dataclass(frozen=True)
class Policy:
    """What publish refuses. Only a loopback registry may be given a lenient policy."""

    allow_standin: bool = False
    allow_dirty: bool = False

    @property
    def strict(self) -> bool:
        return not (self.allow_standin or self.allow_dirty)


@dataclass
class Published:
    """One image pushed: its digest under every tag, and the files written for it."""

    target: str
    image_id: str
    repository: str
    digest: str
    tags: list[str]
    platform: str = ""
    index_tags: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``<registry>/<image>@sha256:...``"""
        return f"{self.repository}@{self.digest}"


def registry_host(registry: str) -> str:
    """Host (without port) of ``host[:port]/namespace``."""
    host = registry.split("/", 1)[0]
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(registry: str) -> bool:
    """True for registries on 127.0.0.0/8, ::1 or localhost."""
    host = registry_host(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_policy(registry: str, policy: Policy) -> None:
    """A lenient policy is for a loopback registry only."""
    if not policy.strict and not is_loopback(registry):
        raise PublishRefused(
            f"stand-in builds and dirty trees are only ever pushed to a registry on loopback "
            f"(tests); {registry} is not: publish checked builds of real bases from a clean tree"
        )


def is_standin(ref: str, labels: dict[str, str]) -> bool:
    """True if a tag or the labels say the image was built on a stand-in base."""
    tag = ref.rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else ""
    return tag.endswith(STANDIN_SUFFIX) or labels.get(STANDIN_LABEL, "").lower() == "true"


@dataclass(frozen=True)
class Candidate:
    """The local build chosen for publishing: its refs (version tag first) and labels."""

    refs: list[str]
    labels: dict[str, str]
    standin: bool


def choose(
    target: Target,
    rev: Revision,
    labels_of: Callable[[str], dict[str, str] | None],
    policy: Policy,
    arch: str | None = None,
) -> Candidate:
    """The local build of ``target`` at ``rev`` to publish, or PublishRefused.

    ``labels_of(ref)``: the labels of a local image, None when absent; ``arch``: a
    foreign architecture built under emulation (its builds are f7t4jhub/<arch>/...).
    """
    real = local_refs(target, rev, standin=False, arch=arch)
    labels = labels_of(real[0])
    if labels is not None:
        if is_standin(real[0], labels):
            raise PublishRefused(
                f"{real[0]} was built on a stand-in base (label {STANDIN_LABEL}=true): "
                "stand-in builds are never published; rebuild on the real base"
            )
        return Candidate(real, labels, standin=False)
    fake = local_refs(target, rev, standin=True, arch=arch)
    fake_labels = labels_of(fake[0])
    if fake_labels is not None and policy.allow_standin:
        return Candidate(fake, fake_labels, standin=True)
    hint = f" (only a stand-in build exists: {fake[0]})" if fake_labels is not None else ""
    raise PublishRefused(
        f"{real[0]} is not built{hint}; stand-in builds are never published: build it on "
        f"its real base ({target.base}) with `nox -s build-{target.family}` on a host that "
        "can pull it"
    )


def verify_candidate(
    target: Target,
    rev: Revision,
    cand: Candidate,
    image_ids: dict[str, str | None],
    passed: Callable[[str], dict[str, Any] | None],
) -> str:
    """Check one candidate build; return its image id.

    ``image_ids``: ref -> local image id (None: tag absent); ``passed``: the check-pass
    marker of an image id (f7tbuild.checkpass.lookup).
    """
    built_at = cand.labels.get(OCI + "revision", "")
    if built_at != rev.sha:
        raise PublishRefused(
            f"{cand.refs[0]} was built from commit {built_at[:12] or '(no revision label)'}, "
            f"not HEAD {rev.sha[:12]}: rebuild it (`nox -s build-{target.family}`)"
        )
    image_id = image_ids.get(cand.refs[0])
    if not image_id:
        raise PublishRefused(f"{cand.refs[0]} is not in the local engine")
    stray = sorted(r for r in cand.refs if image_ids.get(r) != image_id)
    if stray:
        raise PublishRefused(
            f"{', '.join(stray)} do not name the same image as {cand.refs[0]} ({image_id[:19]}): "
            f"rebuild with `nox -s build-{target.family}` so that every tag is set"
        )
    if passed(image_id) is None:
        raise PublishRefused(
            f"the checks never passed for {cand.refs[0]} (image {image_id[:19]}): run "
            f"`nox -s build-{target.family}` (it builds, checks, and records the pass for this "
            "exact image id)"
        )
    return image_id


def immutable_conflicts(
    immutable: list[str], remote_digest: Callable[[str], str | None], own: str | None
) -> list[str]:
    """Immutable tags the registry already holds for another image (never overwritten).

    ``remote_digest(tag)``: the digest the registry has for the tag (None: no such tag);
    ``own``: the digest this image already has in that repository (None: never pushed).
    """
    out = []
    for tag in immutable:
        there = remote_digest(tag)
        if there is not None and there != own:
            out.append(f"{tag} ({there[:19]})")
    return out


def _remote_digest(ref: str) -> str | None:
    try:
        data = engine.client().images.get_registry_data(ref)
    except Exception:  # noqa: BLE001 - the SDK raises NotFound/APIError for "no such tag"
        return None
    return str(data.id)


def publish_one(
    cat: Catalogue,
    target: Target,
    registry: str,
    rev: Revision,
    out_dir: Path,
    policy: Policy = Policy(),
    sbom_tool: str | None = None,
    platform: str | None = None,
) -> Published:
    """Publish one image (see the module docstring); returns what was pushed.

    ``platform`` (``linux/arm64``): a release's per-platform push; only the immutable
    sha tag with the architecture appended is pushed, the index (f7tbuild.index) gets
    the computed tags.
    """
    check_policy(registry, policy)
    arch = foreign_arch(platform)
    cand = choose(
        target, rev, lambda r: engine.labels(r) if engine.image_exists(r) else None, policy, arch
    )
    ids = {r: (engine.image_id(r) if engine.image_exists(r) else None) for r in cand.refs}
    image_id = verify_candidate(target, rev, cand, ids, checkpass.lookup)
    ts = tag_set(target, rev, cand.standin)
    info = engine.inspect(cand.refs[0])
    built_for = f"{info.get('Os', 'linux')}/{info.get('Architecture', '')}"
    push_tags = ts.all()
    if platform is not None:
        if platform.split("/")[:2] != built_for.split("/")[:2]:
            raise PublishRefused(
                f"{cand.refs[0]} is a {built_for} image, not {platform}: build it on (or for) "
                f"{platform}"
            )
        push_tags = [f"{ts.immutable[0]}-{platform.split('/')[1]}"]
    repository = registry_ref(registry, target, "x").rsplit(":", 1)[0]
    own = engine.repo_digest(cand.refs[0], repository)
    immutable = list(ts.immutable) if platform is None else push_tags
    conflicts = immutable_conflicts(
        immutable, lambda t: _remote_digest(f"{repository}:{t}"), own
    )
    if conflicts:
        raise PublishRefused(
            f"{repository} already holds the immutable tags {', '.join(conflicts)} for another "
            "image; immutable tags are never moved: publish from a new commit"
        )
    digests: dict[str, str] = {}
    for tag in push_tags:
        remote = f"{repository}:{tag}"
        engine.tag(cand.refs[0], remote)
        status(f"[publish] push {remote}")
        digests[tag] = engine.push(remote, lambda line: prefixed(f"push {target.name}", line))
    if len(set(digests.values())) != 1:
        raise PublishRefused(f"the tags of {target.name} got different digests: {digests}")
    digest = next(iter(digests.values()))
    pub = Published(
        target.name, image_id, repository, digest, push_tags, built_for, ts.all()
    )
    where = out_dir / target.name
    where.mkdir(parents=True, exist_ok=True)
    (where / "digest.txt").write_text(f"{pub.ref}\n")
    packages = manifest.collect(cand.refs[0])
    (where / "packages.json").write_text(
        json.dumps(manifest.to_json(pub.ref, image_id, packages), indent=2) + "\n"
    )
    sbom_path = where / "sbom.spdx.json"
    sbom.generate(cand.refs[0], sbom_path, tool=sbom_tool)
    # Relative to out_dir: the directory travels (a release's artifacts) as a whole.
    pub.files = {
        "digest": f"{target.name}/digest.txt",
        "packages": f"{target.name}/packages.json",
        "sbom": f"{target.name}/sbom.spdx.json",
    }
    status(f"[publish] {target.name}: {pub.ref} ({len(packages)} packages, tags {', '.join(pub.tags)})")
    return pub


def write_summary(out_dir: Path, published: list[Published]) -> Path:
    """``published.json``: image, digest, tags and files of everything pushed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "published.json"
    path.write_text(json.dumps([p.__dict__ | {"ref": p.ref} for p in published], indent=2) + "\n")
    return path


def preflight(dirty: bool, policy: Policy) -> None:
    """Refuse a dirty work tree (unless the loopback-only policy allows it)."""
    if dirty and not policy.allow_dirty:
        raise PublishRefused(
            "the work tree has uncommitted changes: the tags and labels name a commit the "
            "images were not built from; commit (or stash) and rebuild, then publish"
        )


def publish(
    cat: Catalogue,
    names: list[str],
    registry: str | None = None,
    out_dir: Path = DEFAULT_OUT,
    dry_run: bool = False,
    policy: Policy = Policy(),
    sign_key: str | None = None,
    sbom_tool: str | None = None,
    platform: str | None = None,
) -> list[Published]:
    """Publish every selected image to ``registry`` (default: the catalogue's)."""
    registry = (registry or cat.registry).rstrip("/")
    check_policy(registry, policy)
    preflight(is_dirty(), policy)
    rev = current_revision(cat.source)
    targets = cat.select(names)
    if dry_run:
        for target in targets:
            for tag in tag_set(target, rev).all():
                status(f"[publish] would push {registry_ref(registry, target, tag)} (dry run)")
        return []
    done = [
        publish_one(cat, t, registry, rev, out_dir, policy, sbom_tool, platform) for t in targets
    ]
    if sign_key:
        from f7tbuild.sign import attach_sbom, sign

        for pub in done:
            sign(pub.ref, sign_key)
            attach_sbom(pub.ref, out_dir / pub.files["sbom"], sign_key)
            status(f"[publish] signed {pub.ref} and attached its SBOM (cosign)")
    summary = write_summary(out_dir, done)
    status("published:")
    for pub in done:
        status(f"  {pub.ref}  ({', '.join(pub.tags)})")
    status(f"digests, package manifests and SBOMs: {summary.parent}")
    return done
