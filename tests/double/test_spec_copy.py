"""The double's OpenAPI document is the shared FirecREST v2 document, unchanged.

The double validates every request and answer against its own copy
(``firecrest_double/openapi/``); if that copy drifted from the API document the project
shares (``../shared/firecrest-v2-openapi.json`` next to the repository), the double
would accept or send what the real FirecREST does not. A clone without ``shared/``
skips this check, unless ``F7T_REQUIRE`` names ``shared`` (as CI does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firecrest_double.spec import SPEC_PATH
from tests.support.require import unavailable

REPO = Path(__file__).resolve().parents[2]
SHARED_SPEC = REPO.parent / "shared" / "firecrest-v2-openapi.json"


def _differences(copy: Any, shared: Any, where: str = "$") -> list[str]:
    """JSON paths where ``copy`` and ``shared`` differ (at most the first 20)."""
    if type(copy) is not type(shared):
        return [f"{where}: {type(copy).__name__} in the copy, {type(shared).__name__} shared"]
    if isinstance(copy, dict):
        found = [f"{where}.{k}: only in the copy" for k in sorted(copy.keys() - shared.keys())]
        found += [f"{where}.{k}: only shared" for k in sorted(shared.keys() - copy.keys())]
        for key in sorted(copy.keys() & shared.keys()):
            found += _differences(copy[key], shared[key], f"{where}.{key}")
        return found[:20]
    if isinstance(copy, list):
        if len(copy) != len(shared):
            return [f"{where}: {len(copy)} items in the copy, {len(shared)} shared"]
        found = []
        for i, (a, b) in enumerate(zip(copy, shared)):
            found += _differences(a, b, f"{where}[{i}]")
        return found[:20]
    return [] if copy == shared else [f"{where}: {copy!r} in the copy, {shared!r} shared"]


def test_double_spec_is_the_shared_api_document() -> None:
    if not SHARED_SPEC.is_file():
        unavailable(
            "shared",
            f"no shared API document at {SHARED_SPEC} (a clone without shared/): "
            "the double's copy cannot be compared",
        )
    copy = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    shared = json.loads(SHARED_SPEC.read_text(encoding="utf-8"))
    assert copy == shared, (
        f"{SPEC_PATH} drifted from {SHARED_SPEC}; copy the shared document over it. "
        "Differences:\n" + "\n".join(_differences(copy, shared))
    )


def test_differences_name_the_json_path() -> None:
    """The failure message points at what drifted."""
    copy = {"info": {"version": "2.5.6"}, "paths": {"/a": {}}, "tags": [1, 2]}
    shared = {"info": {"version": "2.5.7"}, "paths": {"/b": {}}, "tags": [1]}
    assert _differences(copy, shared) == [
        "$.info.version: '2.5.6' in the copy, '2.5.7' shared",
        "$.paths./a: only in the copy",
        "$.paths./b: only shared",
        "$.tags: 2 items in the copy, 1 shared",
    ]
    assert _differences(copy, json.loads(json.dumps(copy))) == []
