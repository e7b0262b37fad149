"""Serve an extra CA bundle on loopback for the duration of a build (never baked in).

Install steps fetch ``$CA_URL`` into a temp file inside the same RUN, use it, and delete
it (docs/contracts.md section 3). The port is fixed (default 47291, env F7T_CA_PORT) so
``CA_URL`` -- a build argument -- keeps the layer cache keys stable between builds.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from f7tbuild.output import status, warn

DEFAULT_PORT = 47291
PORT_TRIES = 10
# Servers running in this process: (asked port, bundle) -> URL, reused by nested serve().
_active: dict[tuple[int, bytes], str] = {}


class CAError(RuntimeError):
    """The CA bundle is unusable or cannot be served."""


@dataclass(frozen=True)
class CAChoice:
    """Which bundle to serve (``None``: no extra CA)."""

    path: Path | None
    reason: str


def choose_bundle(explicit: str | None, no_ca: bool, env: dict[str, str] | None = None) -> CAChoice:
    """Pick the bundle: --no-ca, --ca-bundle, F7T_CA_BUNDLE, SSL_CERT_FILE, PIP_CERT."""
    env = dict(os.environ if env is None else env)
    if no_ca:
        return CAChoice(None, "--no-ca given")
    for source, value in (
        ("--ca-bundle", explicit),
        ("F7T_CA_BUNDLE", env.get("F7T_CA_BUNDLE")),
        ("SSL_CERT_FILE", env.get("SSL_CERT_FILE")),
        ("PIP_CERT", env.get("PIP_CERT")),
    ):
        if value:
            path = Path(value)
            if not path.is_file():
                raise CAError(
                    f"CA bundle {path} (from {source}) is not a file; fix it or use --no-ca"
                )
            if b"-----BEGIN CERTIFICATE-----" not in path.read_bytes():
                raise CAError(f"CA bundle {path} (from {source}) holds no PEM certificate")
            return CAChoice(path, f"from {source}")
    return CAChoice(None, "no --ca-bundle, F7T_CA_BUNDLE, SSL_CERT_FILE or PIP_CERT set")


def _handler(payload: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/ca.pem":
                self.send_error(404, "only /ca.pem is served")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pem-file")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def configured_port(env: dict[str, str] | None = None) -> int:
    """The fixed CA port (env F7T_CA_PORT, default 47291)."""
    raw = (os.environ if env is None else env).get("F7T_CA_PORT", str(DEFAULT_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise CAError(f"F7T_CA_PORT={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise CAError(f"F7T_CA_PORT={port} is out of range 1..65535")
    return port


@contextmanager
def serve(bundle: Path | None, port: int | None = None) -> Iterator[str]:
    """Serve ``bundle`` at http://127.0.0.1:<port>/ca.pem; yield the URL ('' when no bundle)."""
    if bundle is None:
        yield ""
        return
    base = configured_port() if port is None else port
    payload = bundle.read_bytes()
    shared = _active.get((base, payload))
    if shared is not None:  # already served by this process (e.g. a stand-in built mid-run)
        yield shared
        return
    server: ThreadingHTTPServer | None = None
    for candidate in range(base, base + PORT_TRIES):
        try:
            server = ThreadingHTTPServer(("127.0.0.1", candidate), _handler(payload))
            break
        except OSError:
            continue
    if server is None:
        raise CAError(
            f"ports {base}..{base + PORT_TRIES - 1} on 127.0.0.1 are all busy; "
            "set F7T_CA_PORT to a free port"
        )
    actual = server.server_address[1]
    if actual != base:
        warn(
            f"CA port {base} is busy (another build?); serving on {actual}: layer cache keys differ"
        )
    thread = threading.Thread(target=server.serve_forever, name="f7tbuild-ca", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{actual}/ca.pem"
    status(f"serving the build CA bundle {bundle} at {url} (build steps only)")
    _active[(base, payload)] = url
    try:
        yield url
    finally:
        del _active[(base, payload)]
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
