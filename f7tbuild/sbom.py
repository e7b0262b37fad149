"""SBOM of an image: SPDX JSON written by syft (anchore/syft, from the Go module proxy).

syft reads the image from the local engine (``docker:<ref>``) and catalogues every
package it knows: Debian/Alpine system packages, Python distributions, npm packages.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from f7tbuild import tools


class SbomError(RuntimeError):
    """syft failed or wrote no usable SBOM."""


def generate(ref: str, out: Path, tool: str | None = None, timeout: float = 900) -> int:
    """Write ``out`` (SPDX JSON) for the local image ``ref``; return its package count."""
    syft = tool or tools.find("syft")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [syft, "scan", f"docker:{ref}", "-o", f"spdx-json={out}", "-q"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
    )
    if proc.returncode != 0:
        raise SbomError(f"syft scan {ref} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    try:
        doc = json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        raise SbomError(f"syft wrote no SPDX JSON to {out}: {exc}") from None
    packages = doc.get("packages") or []
    if not doc.get("spdxVersion") or not packages:
        raise SbomError(f"{out} is not an SPDX document with packages (syft {ref})")
    return len(packages)
