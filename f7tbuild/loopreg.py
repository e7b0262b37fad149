"""A registry on loopback for proving pushes and indexes here (``crane registry serve``)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from f7tbuild import tools


class RegistryError(RuntimeError):
    """The loopback registry did not start (its log is in the message)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(disk: Path, namespace: str = "f7t4jhub", timeout: float = 30) -> Iterator[str]:
    """Run ``crane registry serve`` on 127.0.0.1 with blobs under ``disk``.

    Yields ``127.0.0.1:<port>/<namespace>`` (plain HTTP: the engine and crane trust
    loopback registries without configuration); stops the registry on exit.
    """
    (disk / "blobs").mkdir(parents=True, exist_ok=True)  # crane needs it to exist
    port = free_port()
    log_path = disk / "registry.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                tools.find("crane"),
                "registry",
                "serve",
                "--address",
                f"127.0.0.1:{port}",
                "--disk",
                str(disk / "blobs"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RegistryError(
                            f"crane registry serve did not answer on 127.0.0.1:{port} within "
                            f"{timeout:.0f}s: {log_path.read_text()[-600:]}"
                        ) from None
                    time.sleep(0.2)
            yield f"127.0.0.1:{port}/{namespace}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
