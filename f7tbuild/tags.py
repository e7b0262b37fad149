"""Tags computed from the catalogue and the source revision: never typed by hand.

Every tag starts with the image's *component* string: the version of its main component
(catalogue ``main``), prefixed for variants by the variant name and a short component
name. Immutable tags add the short commit id or the commit's UTC date; moving tags are the
component string itself, its major.minor, the variant name and ``latest``.

===========  ==========================  ==============================================
image        immutable                   moving
===========  ==========================  ==============================================
chp          5.3.0-<sha7>, 5.3.0-<date>  5.3.0, 5.3, latest
hub          6.1.1-<sha7>, 6.1.1-<date>  6.1.1, 6.1, latest
singleuser   pytorch-25.10-lab-4.6.6-    pytorch-25.10-lab-4.6.6, pytorch-25.10-lab-4.6,
             <sha7>, ...-lab-4.6.6-      pytorch-25.10, latest (the catalogue's latest
             <date>                      variant only)
===========  ==========================  ==============================================

``<date>`` is ``YYYYMMDD`` of the commit (UTC), so a rebuild of one commit computes the
same tags. Stand-in builds get ``-standin`` on every tag.
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass

from f7tbuild.catalogue import REPO_ROOT, Target
from f7tbuild.platforms import local_repository

STANDIN_SUFFIX = "-standin"
# Short names of main components inside variant tags (pytorch-25.10-lab-4.6.6).
SHORT_NAMES = {"jupyterlab": "lab", "jupyterhub": "hub"}


@dataclass(frozen=True)
class Revision:
    """The source revision an image is built from."""

    sha: str
    created: str
    source: str

    @property
    def short(self) -> str:
        """Short commit id used in tags."""
        return self.sha[:7]

    @property
    def date(self) -> str:
        """``YYYYMMDD`` (UTC) of ``created``, for the dated tag."""
        when = datetime.datetime.fromisoformat(self.created.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when.astimezone(datetime.timezone.utc).strftime("%Y%m%d")


@dataclass(frozen=True)
class TagSet:
    """The tags of one build: the version tag first, then immutable, then moving ones."""

    version: str
    immutable: tuple[str, ...]
    moving: tuple[str, ...]

    def all(self) -> list[str]:
        """Every tag once, the version tag first."""
        out = [self.version]
        for tag in (*self.immutable, *self.moving):
            if tag not in out:
                out.append(tag)
        return out


def component(target: Target) -> str:
    """The component string: ``5.3.0``, ``6.1.1``, ``pytorch-25.10-lab-4.6.6``."""
    name, version = target.main_component()
    if target.variant is None:
        return version
    return f"{target.variant}-{SHORT_NAMES.get(name, name)}-{version}"


def major_minor(version: str) -> str | None:
    """``6.1`` of ``6.1.1``; None when the version has fewer than three parts."""
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 and all(parts[:2]) else None


def tag_set(target: Target, rev: Revision, standin: bool = False) -> TagSet:
    """All tags of one build of ``target`` at ``rev``."""
    comp = component(target)
    _, version = target.main_component()
    minor = major_minor(version)
    moving: list[str] = [comp]
    if minor is not None:
        moving.append(comp[: -len(version)] + minor)
    if target.variant is not None:
        moving.append(target.variant)
    if target.latest:
        moving.append("latest")
    immutable = (f"{comp}-{rev.short}", f"{comp}-{rev.date}")
    suffix = STANDIN_SUFFIX if standin else ""
    return TagSet(
        version=comp + suffix,
        immutable=tuple(t + suffix for t in immutable),
        moving=tuple(t + suffix for t in moving),
    )


def tags(target: Target, rev: Revision, standin: bool) -> list[str]:
    """All tags of one build, the version tag first (``-standin`` on each for stand-ins)."""
    return tag_set(target, rev, standin).all()


def local_refs(
    target: Target, rev: Revision, standin: bool, arch: str | None = None
) -> list[str]:
    """Local references ``f7t4jhub/<image>:<tag>``.

    ``arch``: a foreign architecture built under emulation; its builds are
    ``f7t4jhub/<arch>/<image>:<tag>`` (f7tbuild.platforms), with the same tags.
    """
    repo = target.repository if arch is None else local_repository(target.family, arch)
    return [f"{repo}:{t}" for t in tags(target, rev, standin)]


def registry_ref(registry: str, target: Target, tag: str) -> str:
    """Reference in a registry: ``<registry>/<family>:<tag>``."""
    return f"{registry.rstrip('/')}/{target.family}:{tag}"


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def current_revision(source: str = "") -> Revision:
    """The repository's HEAD (``0000000`` when not a git checkout), created = commit time (UTC).

    ``source``: the repository URL for the labels (default: the catalogue's, else git's
    ``remote.origin.url``).
    """
    stamp = _git("log", "-1", "--format=%ct")
    created = (
        datetime.datetime.fromtimestamp(int(stamp), datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        if stamp.isdigit()
        else "1970-01-01T00:00:00Z"
    )
    return Revision(
        sha=_git("rev-parse", "HEAD") or "0" * 40,
        created=created,
        source=source or _git("config", "--get", "remote.origin.url"),
    )


def is_dirty() -> bool:
    """True when the work tree has changes git would commit (untracked files included).

    Also True when git cannot tell (not a checkout): nothing proves the tree is the commit.
    """
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=normal"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    return proc.returncode != 0 or bool(proc.stdout.strip())
