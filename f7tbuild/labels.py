"""The labels every image carries (OCI annotations + f7t4jhub's own), computed in one place.

``org.opencontainers.image.*``: source, revision, version, created, base.name, base.digest
(``standin`` for a stand-in build). ``org.f7t4jhub.*``: standin (true/false), image (the
catalogue name), base (the catalogue's base), stack (the stack's name) and one
``org.f7t4jhub.versions.<package>`` per pinned version and stack package of the image.
"""

from __future__ import annotations

from f7tbuild.catalogue import Target
from f7tbuild.lock import COMPUTE_ONLY, normalise
from f7tbuild.standin import STANDIN_LABEL
from f7tbuild.tags import Revision, component

OCI = "org.opencontainers.image."
IMAGE_LABEL = "org.f7t4jhub.image"
VERSIONS_PREFIX = "org.f7t4jhub.versions."
STANDIN_DIGEST = "standin"


class LabelError(RuntimeError):
    """A label cannot be computed (the message names the fix)."""


def pinned_versions(target: Target) -> dict[str, str]:
    """The versions the image is built with: its own pins, then its stack's packages.

    Without ``stack_packages`` (the hub): the stack less its compute-only packages, as
    the hub lock (f7tbuild.lock) has it.
    """
    out = dict(target.versions)
    names = (
        target.stack_packages
        if target.stack_packages is not None
        else tuple(n for n in target.stack if normalise(n) not in COMPUTE_ONLY)
    )
    for name in names:
        if name in target.stack:
            out.setdefault(name, target.stack[name])
    return out


def image_labels(
    target: Target, rev: Revision, base_used: str, base_digest: str | None, standin: bool
) -> dict[str, str]:
    """All labels of one build. ``base_digest``: the real base's ``sha256:...``."""
    if not standin and not base_digest:
        raise LabelError(
            f"{target.name}: a build on the real base {target.base} needs its digest "
            "(docker image inspect: RepoDigests); pull the base by name first"
        )
    labels = {
        OCI + "source": rev.source,
        OCI + "revision": rev.sha,
        OCI + "version": component(target),
        OCI + "created": rev.created,
        OCI + "base.name": base_used,
        OCI + "base.digest": STANDIN_DIGEST if standin else str(base_digest),
        STANDIN_LABEL: "true" if standin else "false",
        IMAGE_LABEL: target.name,
        "org.f7t4jhub.base": target.base,
    }
    if target.stack_name:
        labels["org.f7t4jhub.stack"] = target.stack_name
    for name, version in pinned_versions(target).items():
        labels[VERSIONS_PREFIX + name] = version
    return labels
