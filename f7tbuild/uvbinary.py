"""uv for the image builds: its binary, taken on the host from uv's hashed wheel.

The hub and singleuser Dockerfiles install their hashed locks with uv. They used to
``pip install`` uv (images/common/uv-requirements.lock) first, in the image's own
build: pip's start-up, download and unpacking took 6-30 s of every cold build on this
kind of machine, on the build's critical path. uv is one static-enough binary in a
platform wheel, so f7tbuild takes it out of that wheel here instead:

- the wheel is the one of the locked version for the image's architecture
  (``manylinux`` x86_64 or aarch64), fetched through the package cache
  (f7tbuild.pkgcache) while a build runs, and its sha256 must be one of the lock's
  hashes (the same check as ``--require-hashes``);
- its ``uv`` binary goes to ``<context>/.f7tbuild/uv/uv``, the one other path under
  ``.f7tbuild`` that .dockerignore lets into the context; the Dockerfiles bind-mount
  that directory in the steps that run uv (``RUN --mount=type=bind,source=.f7tbuild/uv``,
  BuildKit), so uv is in no image layer;
- ``.f7tbuild/uv.stamp`` names the wheel's sha256: an unchanged lock and architecture
  are not fetched again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from f7tbuild import pkgcache
from f7tbuild.output import status

LOCK = Path("images") / "common" / "uv-requirements.lock"
UV_DIR = Path(".f7tbuild") / "uv"
STAMP = Path(".f7tbuild") / "uv.stamp"
#: Docker architecture -> the machine name in uv's wheel tags.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


class UvBinaryError(RuntimeError):
    """uv's binary could not be provided to the build."""


@dataclass(frozen=True)
class Pin:
    """uv's locked version and the sha256 digests the lock allows."""

    version: str
    hashes: frozenset[str]


def read_pin(text: str) -> Pin:
    """uv's pin in a hashed requirements file (``uv==X \\ --hash=sha256:...``)."""
    m = re.search(r"^uv==(\S+)((?:\s*\\\s*\n\s*--hash=sha256:[0-9a-f]{64})+)", text, re.MULTILINE)
    if m is None:
        raise UvBinaryError(f"{LOCK} has no hashed uv==<version> pin: regenerate it (nox -s lock)")
    hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", m.group(2)))
    return Pin(m.group(1), hashes)


def pick(files: list[dict[str, object]], pin: Pin, arch: str) -> tuple[str, str, str]:
    """(filename, sha256, url) of the locked manylinux wheel for ``arch``."""
    machine = MACHINES.get(arch)
    if machine is None:
        raise UvBinaryError(f"no uv wheel for architecture {arch!r} (known: {', '.join(MACHINES)})")
    for entry in files:
        name = str(entry.get("filename", ""))
        hashes = entry.get("hashes")
        digest = str(hashes.get("sha256", "")).lower() if isinstance(hashes, dict) else ""
        if (
            name.startswith(f"uv-{pin.version}-")
            and "-manylinux" in name
            and name.endswith(f"_{machine}.whl")
            and digest in pin.hashes
        ):
            return name, digest, str(entry.get("url", ""))
    raise UvBinaryError(
        f"the index lists no manylinux {machine} wheel of uv {pin.version} with a hash of "
        f"{LOCK}: regenerate the lock (nox -s lock) or check the index"
    )


def _get(url: str, accept: str) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=120) as resp:  # loopback package cache
        return bytes(resp.read())


def _fetch(pin: Pin, arch: str, index_url: str, ca_bundle: Path | None, dest: Path) -> str:
    """Download the wheel to ``dest``; return its sha256 (checked against the lock)."""
    if index_url:
        page = json.loads(_get(urllib.parse.urljoin(index_url, "uv/"), pkgcache.JSON_TYPE))
        name, digest, url = pick(page.get("files", []), pin, arch)
        dest.write_bytes(_get(urllib.parse.urljoin(index_url, url), "*/*"))
    else:  # no cache served (F7T_PACKAGE_CACHE=off): the same code, a throw-away directory
        cache = pkgcache.PackageCache(
            dest.parent / "cache", pkgcache.upstream_index(), pkgcache.ssl_context(ca_bundle)
        )
        page = json.loads(cache.page("uv", "http://unused/"))
        name, digest, url = pick(page.get("files", []), pin, arch)
        upstream = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("u", [""])[0]
        shutil.copyfile(cache.file(digest, name, upstream), dest)
    got = hashlib.sha256(dest.read_bytes()).hexdigest()
    if got != digest:
        raise UvBinaryError(f"{name}: sha256 {got}, the lock allows {digest}: not used")
    return digest


def ensure_uv(root: Path, arch: str, index_url: str = "", ca_bundle: Path | None = None) -> Path:
    """``root/.f7tbuild/uv`` holding the locked uv for ``arch`` (fetched unless there)."""
    pin = read_pin((root / LOCK).read_text())
    out, stamp = root / UV_DIR, root / STAMP
    want = f"{pin.version} {arch} " + " ".join(sorted(pin.hashes))
    if (out / "uv").is_file() and stamp.is_file() and stamp.read_text().startswith(want):
        return out
    with tempfile.TemporaryDirectory(prefix="f7t-uv-") as tmp:
        wheel = Path(tmp) / "uv.whl"
        digest = _fetch(pin, arch, index_url, ca_bundle, wheel)
        member = f"uv-{pin.version}.data/scripts/uv"
        with zipfile.ZipFile(wheel) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                raise UvBinaryError(f"uv's wheel has no {member}") from None
        stamp.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        (out / "uv").write_bytes(data)
        (out / "uv").chmod(0o755)
    stamp.write_text(f"{want}\nwheel sha256 {digest}\n")
    status(f"uv {pin.version} ({arch}) from its hashed wheel -> {UV_DIR / 'uv'}")
    return out


def clear(root: Path) -> None:
    """Forget the extracted binary (the next build fetches it again)."""
    (root / STAMP).unlink(missing_ok=True)
    shutil.rmtree(root / UV_DIR, ignore_errors=True)
