"""f7tbuild.uvbinary: uv's binary for the image builds, from its hashed wheel.

The wheel is served by a package cache (f7tbuild.pkgcache) in front of a tiny index on
loopback: a real zip holding ``uv-<version>.data/scripts/uv``.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from f7tbuild import pkgcache, uvbinary

VERSION = "0.13.9"
X86 = f"uv-{VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
ARM = f"uv-{VERSION}-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
MUSL = f"uv-{VERSION}-py3-none-musllinux_1_1_x86_64.whl"


def wheel(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"uv-{VERSION}.data/scripts/uv", payload)
    return buf.getvalue()


WHEELS = {X86: wheel(b"x86 uv"), ARM: wheel(b"arm uv"), MUSL: wheel(b"musl uv")}
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in WHEELS.items()}


@pytest.fixture
def index() -> Iterator[str]:
    files = [
        {"filename": n, "url": f"/f/{n}", "hashes": {"sha256": SHA[n]}} for n in WHEELS
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/simple/uv/":
                body = json.dumps({"name": "uv", "files": files}).encode()
            elif self.path.startswith("/f/") and self.path[3:] in WHEELS:
                body = WHEELS[self.path[3:]]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", pkgcache.JSON_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()
    server.server_close()


def write_lock(root: Path, *names: str) -> None:
    lock = root / uvbinary.LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    hashes = " \\\n".join(f"    --hash=sha256:{SHA[n]}" for n in names)
    lock.write_text(f"# made by uv\nuv=={VERSION} \\\n{hashes}\n    # via -r in\n")


def test_read_pin() -> None:
    text = f"uv=={VERSION} \\\n    --hash=sha256:{'a' * 64} \\\n    --hash=sha256:{'b' * 64}\n"
    pin = uvbinary.read_pin(text)
    assert pin.version == VERSION and pin.hashes == {"a" * 64, "b" * 64}
    with pytest.raises(uvbinary.UvBinaryError, match="nox -s lock"):
        uvbinary.read_pin("uv==1.0\n")  # unhashed


def test_the_locked_manylinux_wheel_of_the_architecture_is_extracted(
    index: str, tmp_path: Path
) -> None:
    write_lock(tmp_path, X86, ARM, MUSL)
    with pkgcache.serve(directory=tmp_path / "cache", upstream=index, port=0) as cache:
        out = uvbinary.ensure_uv(tmp_path, "amd64", cache)
        assert (out / "uv").read_bytes() == b"x86 uv"
        assert (out / "uv").stat().st_mode & 0o111
        assert uvbinary.ensure_uv(tmp_path, "arm64", cache) == out
        assert (out / "uv").read_bytes() == b"arm uv"
    assert SHA[ARM] in (tmp_path / uvbinary.STAMP).read_text()


def test_a_wheel_whose_hash_the_lock_lacks_is_refused(index: str, tmp_path: Path) -> None:
    write_lock(tmp_path, ARM)  # the x86_64 wheel's hash is not in the lock
    with (
        pkgcache.serve(directory=tmp_path / "cache", upstream=index, port=0) as cache,
        pytest.raises(uvbinary.UvBinaryError, match="no manylinux x86_64 wheel"),
    ):
        uvbinary.ensure_uv(tmp_path, "amd64", cache)
    assert not (tmp_path / uvbinary.UV_DIR / "uv").exists()


def test_an_unchanged_lock_is_not_fetched_again(index: str, tmp_path: Path) -> None:
    write_lock(tmp_path, X86)
    with pkgcache.serve(directory=tmp_path / "cache", upstream=index, port=0) as cache:
        uvbinary.ensure_uv(tmp_path, "amd64", cache)
    # The index (and cache) are gone: the binary already there is used.
    assert (uvbinary.ensure_uv(tmp_path, "amd64", "http://127.0.0.1:9/simple/") / "uv").is_file()
    uvbinary.clear(tmp_path)
    assert not (tmp_path / uvbinary.UV_DIR).exists()


def test_without_a_served_cache_the_index_is_asked_directly(
    index: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F7T_PACKAGE_CACHE=off: no index URL is served; the host's index is used, same checks."""
    monkeypatch.setenv("F7T_INDEX_URL", index)
    write_lock(tmp_path, X86)
    assert (uvbinary.ensure_uv(tmp_path, "amd64", "") / "uv").read_bytes() == b"x86 uv"
