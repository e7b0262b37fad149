"""External programs publish needs (cosign, crane, syft, actionlint), found in one place.

``scripts/host-setup.sh`` installs them with ``go install`` into ``$F7T_GOBIN``
(default ``/opt/f7t4jhub-tools/gobin``) and links them into ``/usr/local/bin``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

GOBIN = Path(os.environ.get("F7T_GOBIN", "/opt/f7t4jhub-tools/gobin"))

#: go install paths (the versions host-setup.sh pins).
MODULES = {
    "cosign": "github.com/sigstore/cosign/v2/cmd/cosign",
    "crane": "github.com/google/go-containerregistry/cmd/crane",
    "syft": "github.com/anchore/syft/cmd/syft",
    "actionlint": "github.com/rhysd/actionlint/cmd/actionlint",
}


class ToolMissing(RuntimeError):
    """A program is not installed; the message says how to install it."""


def find(name: str) -> str:
    """Path of ``name``: PATH first, then ``$F7T_GOBIN``."""
    found = shutil.which(name) or (str(GOBIN / name) if (GOBIN / name).is_file() else None)
    if found:
        return found
    module = MODULES.get(name, name)
    raise ToolMissing(
        f"{name} is not installed: run `bash scripts/host-setup.sh` as root (it runs "
        f"`go install {module}@<pinned version>`), or put {name} on PATH"
    )
