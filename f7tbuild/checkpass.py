"""Pass markers: which exact image ids passed their checks (publish refuses the others).

``f7tbuild build`` writes ``.f7tbuild/checks-passed/<image id>.json`` after an image's
checks pass; ``f7tbuild publish`` looks the image id up there. An image rebuilt (any
layer changed) has a new id, so it needs its own passing run. The directory is git-ignored
and local to this checkout (env ``F7T_STATE_DIR`` moves it).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from f7tbuild.catalogue import REPO_ROOT


def state_dir() -> Path:
    """Where markers live (``$F7T_STATE_DIR`` or ``<repo>/.f7tbuild``)."""
    return Path(os.environ.get("F7T_STATE_DIR") or REPO_ROOT / ".f7tbuild") / "checks-passed"


def _path(image_id: str) -> Path:
    algo, _, hexdigest = image_id.partition(":")
    if not hexdigest or not hexdigest.isalnum():
        raise ValueError(f"not an image id: {image_id!r} (expected sha256:<hex>)")
    return state_dir() / f"{algo}-{hexdigest}.json"


def record(image_id: str, ref: str, checks: list[str], revision: str) -> Path:
    """Record that ``image_id`` (built as ``ref``) passed ``checks`` at ``revision``."""
    path = _path(image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "image_id": image_id,
        "ref": ref,
        "checks": checks,
        "revision": revision,
        "passed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, indent=2) + "\n")
    tmp.replace(path)
    return path


def lookup(image_id: str) -> dict[str, Any] | None:
    """The marker of ``image_id``, or None when its checks never passed here."""
    path = _path(image_id)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("image_id") == image_id else None
