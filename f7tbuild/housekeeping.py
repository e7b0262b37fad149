"""Housekeeping of local builds: earlier builds of our images are removed, the newest kept.

Every build tags a new image under the commit's short sha (``f7t4jhub/hub:6.1.1-<sha7>``)
and moves the other tags to it, so each commit built leaves its images behind, and a
rebuild of one commit leaves the previous image untagged (dangling). On a machine that
builds every commit (CI) that is gigabytes per run until the disk is full.

The rule, per local repository of ours (``f7t4jhub/<image>`` and the emulated
``f7t4jhub/<arch>/<image>``) and per *target* (image + variant, the label
``org.f7t4jhub.image`` that f7tbuild.labels has written on every build): the ``keep``
most recently created images stay, the others are removed with all their tags. An image
in our repositories without that label is not a build of ours and is left alone.
Dangling images carrying that label go too. Never touched: stand-in bases (a repository
with ``standin`` in its name, or ``org.f7t4jhub.standin=true`` without
``org.f7t4jhub.image``; builds *on* stand-in bases are ordinary builds), images a
container uses (skipped and reported, never forced) and images also tagged outside our
repositories (a publish's registry tags: skipped and reported).

The *current* build of each target, the one its moving version tag names
(``f7t4jhub/hub:6.1.1-standin``: what tests, the e2e deployment and users run), is always
one of those kept, whatever the creation times say: BuildKit gives a rebuild that only
changed labels (a new commit, same content) the creation time of its cached layers, so
two builds of one target often have the same ``Created``.

``f7tbuild build`` runs it after a successful build (keep 2, ``--keep-builds N``);
``nox -s clean-images`` (``python -m f7tbuild clean-images``) runs it by hand (keep 1).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from f7tbuild import engine
from f7tbuild.catalogue import Target
from f7tbuild.labels import IMAGE_LABEL
from f7tbuild.platforms import ARCHITECTURES, local_repository
from f7tbuild.standin import STANDIN_LABEL
from f7tbuild.tags import STANDIN_SUFFIX, component

#: Builds kept per target after ``f7tbuild build`` (``--keep-builds``).
BUILD_KEEP = 2
#: Builds kept per target by ``nox -s clean-images`` (``--keep``).
CLEAN_KEEP = 1

_NONE_TAG = "<none>:<none>"
_CREATED = re.compile(r"^(?P<secs>[0-9-]+T[0-9:]+)(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-][0-9:]+)$")


class HousekeepingError(RuntimeError):
    """Housekeeping could not look at the engine's images (the message says why)."""


@dataclass(frozen=True)
class Removed:
    """An image removed (or, in a dry run, to be removed)."""

    image_id: str
    #: Its tags (empty for a dangling image).
    refs: tuple[str, ...]
    #: ``org.f7t4jhub.image``.
    target: str
    #: The image's size as the engine reports it (layers shared with others included).
    size: int


@dataclass(frozen=True)
class Skipped:
    """An image that would have been removed but was left, and why."""

    image_id: str
    refs: tuple[str, ...]
    reason: str


@dataclass
class Result:
    """What housekeeping did."""

    keep: int
    dry_run: bool = False
    removed: list[Removed] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Images left as the current or newest of their target (or protected).
    kept: int = 0
    #: Drop of the engine's total layer size (``docker system df``), None when not
    #: measured (dry run, nothing removed, or the engine did not say).
    bytes_freed: int | None = None

    def summary(self) -> str:
        """One line: ``housekeeping: removed N earlier builds (X.Y GB); kept K per image``."""
        if self.keep == 0:
            return "housekeeping: off (keep 0: every build is kept)"
        count = len(self.removed)
        untagged = sum(1 for r in self.removed if not r.refs)
        what = f"{count} earlier build{'' if count == 1 else 's'}"
        if untagged:
            what += f" ({untagged} untagged)"
        if self.dry_run:
            line = f"housekeeping (dry run): would remove {what}"
        else:
            line = f"housekeeping: removed {what}"
            if self.bytes_freed is not None:
                line += f" ({self.bytes_freed / 1e9:.1f} GB)"
        line += f"; kept {self.keep} per image"
        if self.skipped:
            line += f"; left {len(self.skipped)} (in use or tagged elsewhere)"
        return line


def our_repositories(families: Iterable[str]) -> list[str]:
    """Local repositories of the image families: native and each emulated architecture."""
    out: list[str] = []
    for family in families:
        out.append(local_repository(family, None))
        out += [local_repository(family, arch) for arch in ARCHITECTURES]
    return out


def current_refs(targets: Iterable[Target]) -> list[str]:
    """The moving version tag of each target, native and emulated, real and stand-in
    (``f7t4jhub/hub:6.1.1``, ``f7t4jhub/arm64/hub:6.1.1-standin``, ...): every build moves
    it to itself, so it names the current build."""
    out: list[str] = []
    for target in targets:
        for arch in (None, *ARCHITECTURES):
            repo = local_repository(target.family, arch)
            out += [f"{repo}:{component(target)}{suffix}" for suffix in ("", STANDIN_SUFFIX)]
    return out


def is_standin_repository(repository: str) -> bool:
    """True for a stand-in base's repository (``f7t4jhub/standin-node``, ...)."""
    return "standin" in repository


def is_standin_base(labels: Mapping[str, str]) -> bool:
    """True for a stand-in base image: labelled stand-in and not a build of a target.

    (A build on a stand-in base carries ``org.f7t4jhub.standin=true`` too, and inherits
    the base's other labels, but also ``org.f7t4jhub.image``.)
    """
    return labels.get(STANDIN_LABEL) == "true" and IMAGE_LABEL not in labels


def created_key(created: str, fallback: int = 0) -> tuple[int, int]:
    """``(seconds, nanoseconds)`` of the engine's RFC 3339 ``Created`` (sortable).

    ``fallback``: seconds to use when the text cannot be read (the list's ``Created``).
    """
    match = _CREATED.match(created.strip())
    if not match:
        return fallback, 0
    tz = "+00:00" if match["tz"] == "Z" else match["tz"]
    try:
        when = datetime.datetime.fromisoformat(match["secs"] + tz)
    except ValueError:
        return fallback, 0
    frac = (match["frac"] or "")[:9].ljust(9, "0")
    return int(when.timestamp()), int(frac)


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def _tags(entry: Mapping[str, Any]) -> list[str]:
    return [t for t in entry.get("RepoTags") or [] if t and t != _NONE_TAG]


def _containers_by_image(api: Any) -> dict[str, str]:
    """Image id -> the containers using it (``name (state)``, comma-separated)."""
    users: dict[str, list[str]] = {}
    for entry in api.containers(all=True):
        names = [n.lstrip("/") for n in entry.get("Names") or []] or [entry["Id"][:12]]
        users.setdefault(str(entry.get("ImageID", "")), []).append(
            f"{names[0]} ({entry.get('State', '?')})"
        )
    return {image: ", ".join(names) for image, names in users.items()}


def _layers_size(cli: Any) -> int | None:
    try:
        size = cli.df().get("LayersSize")
    except (docker.errors.DockerException, OSError):
        return None
    return int(size) if isinstance(size, int) else None


def _remove(api: Any, names: list[str]) -> str | None:
    """Remove each tag (or the id) without force; the engine's refusal, or None."""
    for done, name in enumerate(names):
        try:
            api.remove_image(name, force=False, noprune=False)
        except docker.errors.ImageNotFound:
            continue  # gone meanwhile
        except docker.errors.APIError as exc:
            why = str(exc.explanation or exc)
            return f"{why} (tags already removed: {', '.join(names[:done])})" if done else why
    return None


@dataclass
class _Candidate:
    entry: dict[str, Any]
    ours: list[str]
    others: list[str]
    target: str
    created: tuple[int, int] = (0, 0)

    @property
    def image_id(self) -> str:
        return str(self.entry["Id"])


def housekeep(
    repositories: Collection[str],
    keep: int = BUILD_KEEP,
    *,
    only_labels: Mapping[str, str] | None = None,
    protect: Iterable[str] = (),
    dry_run: bool = False,
) -> Result:
    """Remove all but the ``keep`` newest images per target in ``repositories`` and the
    dangling images labelled ``org.f7t4jhub.image``; ``keep`` 0 does nothing.

    ``only_labels``: consider only images carrying all these labels (the tests keep to
    their own images so). ``protect``: references or ids never removed (the current
    builds, :func:`current_refs`, and the builds just made); they count first among the
    ``keep`` of their target. ``dry_run``: decide, remove nothing. Raises HousekeepingError when the engine
    cannot be asked; a refused removal is a Skipped entry.
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 (keep all) or more, not {keep}")
    result = Result(keep=keep, dry_run=dry_run)
    if keep == 0:
        return result
    repos = {r for r in repositories if not is_standin_repository(r)}
    wanted = [f"{k}={v}" for k, v in (only_labels or {}).items()]
    try:
        cli = engine.client(timeout=600)
        api = cli.api
        listed = api.images(filters={"label": wanted} if wanted else None)
        dangling = api.images(filters={"dangling": True, "label": [IMAGE_LABEL, *wanted]})
        in_use = _containers_by_image(api)
        protected = set()
        for ref in protect:
            try:
                protected.add(str(api.inspect_image(ref)["Id"]))
            except docker.errors.ImageNotFound:
                continue
        groups: dict[tuple[str, str], list[_Candidate]] = {}
        for entry in listed:
            tags = _tags(entry)
            ours = [t for t in tags if engine.split_ref(t)[0] in repos]
            labels = entry.get("Labels") or {}
            target = labels.get(IMAGE_LABEL)
            if not ours or not target or is_standin_base(labels):
                continue
            repo = engine.split_ref(ours[0])[0]
            cand = _Candidate(dict(entry), ours, [t for t in tags if t not in ours], target)
            try:
                created = str(api.inspect_image(cand.image_id).get("Created", ""))
            except docker.errors.ImageNotFound:
                continue  # removed meanwhile
            cand.created = created_key(created, int(entry.get("Created") or 0))
            groups.setdefault((repo, target), []).append(cand)
    except (docker.errors.DockerException, OSError) as exc:
        raise HousekeepingError(f"cannot list the engine's images: {exc}") from None

    doomed: list[tuple[_Candidate, list[str]]] = []
    for _key, cands in sorted(groups.items()):
        cands.sort(key=lambda c: (c.image_id in protected, c.created), reverse=True)
        result.kept += min(keep, len(cands))
        for cand in cands[keep:]:
            refs = tuple(cand.ours)
            if cand.image_id in protected:
                result.kept += 1
            elif cand.others:
                result.skipped.append(
                    Skipped(cand.image_id, refs, f"also tagged {', '.join(cand.others)}")
                )
            elif cand.image_id in in_use:
                result.skipped.append(
                    Skipped(cand.image_id, refs, f"used by container {in_use[cand.image_id]}")
                )
            else:
                doomed.append((cand, list(cand.ours)))
    for entry in dangling:
        labels = entry.get("Labels") or {}
        image_id = str(entry["Id"])
        if _tags(entry) or is_standin_base(labels) or image_id in protected:
            continue
        cand = _Candidate(dict(entry), [], [], str(labels.get(IMAGE_LABEL, "")))
        if image_id in in_use:
            result.skipped.append(
                Skipped(image_id, (), f"untagged, used by container {in_use[image_id]}")
            )
        else:
            doomed.append((cand, [image_id]))

    before = _layers_size(cli) if doomed and not dry_run else None
    for cand, names in doomed:
        size = int(cand.entry.get("Size") or 0)
        removed = Removed(cand.image_id, tuple(cand.ours), cand.target, size)
        if dry_run:
            result.removed.append(removed)
            continue
        try:
            refused = _remove(api, names)
        except (docker.errors.DockerException, OSError) as exc:
            refused = str(exc)
        if refused:
            result.skipped.append(
                Skipped(cand.image_id, removed.refs, f"the engine refused: {refused}")
            )
        else:
            result.removed.append(removed)
    if before is not None and result.removed:
        after = _layers_size(cli)
        if after is not None:
            result.bytes_freed = max(0, before - after)
    return result


def describe(item: Removed | Skipped) -> str:
    """``f7t4jhub/hub:6.1.1-a5f5111, ... (sha256 1a2b3c4d5e6f)``, or the id alone."""
    names = ", ".join(item.refs) if item.refs else "untagged image"
    return f"{names} ({_short(item.image_id)})"
