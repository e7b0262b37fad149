"""Console output of f7tbuild: status lines and prefixed build streams."""

from __future__ import annotations

import sys


def status(message: str) -> None:
    """Print one status line (``==> ...``) immediately."""
    print(f"==> {message}", flush=True)


def warn(message: str) -> None:
    """Print a visible warning line."""
    print(f"==> WARNING: {message}", flush=True)


def prefixed(prefix: str, line: str) -> None:
    """Print one line of a child's output, prefixed with the image name."""
    sys.stdout.write(f"[{prefix}] {line.rstrip()}\n")
    sys.stdout.flush()
