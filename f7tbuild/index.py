"""Multi-arch indexes: one index per computed tag over the per-platform digests.

A release builds each platform on its own runner and publishes it with
``publish --platform linux/<arch>``: the image goes to the registry under one
platform-suffixed immutable tag (``5.3.0-<sha7>-amd64``) and ``published.json`` records
its digest and the tags the index must carry. ``assemble`` then reads those files and,
per image, pushes an OCI index of every platform's digest under each computed tag
(crane: the Docker 20.10 engine cannot write indexes), checks that every tag resolves to
one index digest, and returns it for signing.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from f7tbuild import tools
from f7tbuild.output import status


class IndexAssemblyError(RuntimeError):
    """The per-platform results do not make one index (the message says which)."""


@dataclass(frozen=True)
class Index:
    """One pushed multi-arch index."""

    target: str
    repository: str
    digest: str
    tags: list[str]
    platforms: dict[str, str]  # platform -> its image digest
    sboms: dict[str, str]  # platform -> its SBOM file

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


def _crane(*args: str) -> str:
    proc = subprocess.run(
        [tools.find("crane"), *args], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise IndexAssemblyError(f"crane {' '.join(args)} failed: {proc.stderr.strip()[-600:]}")
    return proc.stdout.strip()


def group(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per-platform entries of published.json files, grouped by image; checked for agreement."""
    by_target: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_target.setdefault(entry["target"], []).append(entry)
    for name, items in by_target.items():
        platforms = [e.get("platform") for e in items]
        if None in platforms or len(set(platforms)) != len(platforms):
            raise IndexAssemblyError(
                f"{name}: each platform must appear once with its platform set, got {platforms}"
            )
        if len({e["repository"] for e in items}) != 1:
            raise IndexAssemblyError(f"{name}: platforms were pushed to different repositories")
        if len({tuple(e["index_tags"]) for e in items}) != 1:
            raise IndexAssemblyError(
                f"{name}: platforms computed different tags (built from different commits?)"
            )
    return by_target


def load_entries(paths: list[Path]) -> list[dict[str, Any]]:
    """The entries of several ``published.json`` files (or directories holding one)."""
    out: list[dict[str, Any]] = []
    for path in paths:
        file = path / "published.json" if path.is_dir() else path
        for entry in json.loads(file.read_text()):
            entry["_dir"] = str(file.parent)
            out.append(entry)
    return out


def assemble(paths: list[Path]) -> list[Index]:
    """Push one index per image and tag; return the indexes."""
    done = []
    for name, items in group(load_entries(paths)).items():
        repository = items[0]["repository"]
        platforms = {e["platform"]: e["digest"] for e in items}
        manifests: list[str] = []
        for digest in platforms.values():
            manifests += ["-m", f"{repository}@{digest}"]
        digests = set()
        for tag in items[0]["index_tags"]:
            _crane("index", "append", *manifests, "-t", f"{repository}:{tag}")
            digests.add(_crane("digest", f"{repository}:{tag}"))
        if len(digests) != 1:
            raise IndexAssemblyError(f"{name}: the tags' indexes differ: {sorted(digests)}")
        sboms = {e["platform"]: str(Path(e["_dir"]) / e["files"]["sbom"]) for e in items}
        index = Index(
            name, repository, digests.pop(), list(items[0]["index_tags"]), platforms, sboms
        )
        status(f"[index] {index.ref}: {', '.join(sorted(platforms))} under {', '.join(index.tags)}")
        done.append(index)
    return done


def platforms_of(ref: str) -> list[str]:
    """``os/arch[/variant]`` of each manifest of the index ``ref``."""
    data = json.loads(_crane("manifest", ref))
    out = []
    for m in data.get("manifests", []):
        p = m.get("platform", {})
        out.append("/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x))
    return out


def write_summary(out_dir: Path, indexes: list[Index]) -> Path:
    """``indexes.json``: image, index digest, tags and per-platform digests."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "indexes.json"
    path.write_text(
        json.dumps([i.__dict__ | {"ref": i.ref} for i in indexes], indent=2) + "\n"
    )
    return path
