"""Tags derived from the catalogue, docker-stacks style: small taggers composed.

chp -> ``5.3.0``, ``5.3.0-<sha>``, ``latest``; hub -> its JupyterHub version likewise;
a singleuser variant -> ``pytorch-25.10``, ``pytorch-25.10-<sha>``,
``pytorch-25.10-lab-4.6.6``. Stand-in builds get ``-standin`` on every tag.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from f7tbuild.catalogue import REPO_ROOT, Target

STANDIN_SUFFIX = "-standin"


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


def version_of(target: Target) -> str:
    """The version an image is known by: its first pinned version, else the stack's hub."""
    if target.versions:
        return next(iter(target.versions.values()))
    if "jupyterhub" in target.stack:
        return target.stack["jupyterhub"]
    raise ValueError(f"image {target.name} has no versions and no stack: cannot derive a tag")


def base_tag(target: Target) -> str:
    """The main tag: the variant name, else the version."""
    return target.variant if target.variant is not None else version_of(target)


def sha_tag(target: Target, rev: Revision) -> str:
    """Main tag plus the short commit id."""
    return f"{base_tag(target)}-{rev.short}"


def lab_tag(target: Target) -> str | None:
    """Variants: main tag plus the JupyterLab version of their stack."""
    lab = target.stack.get("jupyterlab")
    return f"{target.variant}-lab-{lab}" if target.variant is not None and lab else None


def latest_tag(target: Target) -> str | None:
    """``latest`` for images without variants."""
    return "latest" if target.variant is None else None


TAGGERS: tuple[Callable[..., str | None], ...] = (base_tag, sha_tag, lab_tag, latest_tag)


def tags(target: Target, rev: Revision, standin: bool) -> list[str]:
    """All tags of one build, main tag first (``-standin`` appended for stand-in builds)."""
    out: list[str] = []
    for tagger in TAGGERS:
        tag = tagger(target, rev) if tagger is sha_tag else tagger(target)
        if tag and tag not in out:
            out.append(tag)
    return [t + STANDIN_SUFFIX for t in out] if standin else out


def local_refs(target: Target, rev: Revision, standin: bool) -> list[str]:
    """Local references ``f7t4jhub/<image>:<tag>``."""
    return [f"{target.repository}:{t}" for t in tags(target, rev, standin)]


def registry_ref(registry: str, target: Target, tag: str) -> str:
    """Reference in the catalogue's registry."""
    return f"{registry.rstrip('/')}/{target.family}:{tag}"


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def current_revision() -> Revision:
    """The repository's HEAD (``0000000`` when not a git checkout)."""
    return Revision(
        sha=_git("rev-parse", "HEAD") or "0" * 40,
        created=_git("log", "-1", "--format=%cI") or "1970-01-01T00:00:00Z",
        source=_git("config", "--get", "remote.origin.url"),
    )
