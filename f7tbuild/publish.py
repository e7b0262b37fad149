"""Push built images to the catalogue's registry; stand-in builds are refused."""

from __future__ import annotations

from dataclasses import dataclass

from f7tbuild import engine
from f7tbuild.catalogue import Catalogue, Target
from f7tbuild.output import status
from f7tbuild.standin import STANDIN_LABEL
from f7tbuild.tags import STANDIN_SUFFIX, Revision, current_revision, local_refs, registry_ref


class PublishRefused(RuntimeError):
    """The image must not be published (stand-in base, or not built)."""


@dataclass(frozen=True)
class Push:
    """One ``docker tag`` + ``docker push``."""

    local: str
    remote: str


def is_standin(ref: str, labels: dict[str, str]) -> bool:
    """True if a tag or the labels say the image was built on a stand-in base."""
    tag = ref.rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else ""
    return tag.endswith(STANDIN_SUFFIX) or labels.get(STANDIN_LABEL, "").lower() == "true"


def plan(
    registry: str, target: Target, rev: Revision, labels_of: dict[str, dict[str, str] | None]
) -> list[Push]:
    """The pushes for one target; ``labels_of`` maps local refs to labels (None: absent)."""
    refs = local_refs(target, rev, standin=False)
    main = refs[0]
    if labels_of.get(main) is None:
        built = [r for r, lab in labels_of.items() if lab is not None]
        hint = (
            f" (only stand-in builds exist: {', '.join(built)})"
            if built and all(is_standin(r, labels_of[r] or {}) for r in built)
            else ""
        )
        raise PublishRefused(
            f"{main} is not built{hint}; build it on its real base "
            f"({target.base}) with `nox -s build-{target.family}` on a host that can pull it"
        )
    pushes = []
    for ref in refs:
        labels = labels_of.get(ref)
        if labels is None:
            continue
        if is_standin(ref, labels):
            raise PublishRefused(
                f"{ref} was built on a stand-in base (label {STANDIN_LABEL}=true): "
                "stand-in builds are never published; rebuild on the real base"
            )
        pushes.append(Push(ref, registry_ref(registry, target, ref.rsplit(":", 1)[1])))
    return pushes


def publish(cat: Catalogue, names: list[str], dry_run: bool = False) -> int:
    """Push every selected target's tags, refusing stand-in builds."""
    rev = current_revision()
    for target in cat.select(names):
        refs = local_refs(target, rev, standin=False) + local_refs(target, rev, standin=True)
        labels_of = {r: (engine.labels(r) if engine.image_exists(r) else None) for r in refs}
        for push in plan(cat.registry, target, rev, labels_of):
            status(f"push {push.local} -> {push.remote}{' (dry run)' if dry_run else ''}")
            if not dry_run:
                engine.docker("tag", push.local, push.remote)
                engine.docker("push", push.remote, timeout=1800)
    return 0
