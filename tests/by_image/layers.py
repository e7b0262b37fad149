"""Scan every layer of an image for build secrets: the build CA, private keys, tokens.

Reusable by every image's checks (``assert_no_build_secrets``). ``docker save`` is
streamed; each layer tar is read file by file. What counts as a leak:

* the build CA bundle itself (a file with exactly its bytes), in any layer;
* any *extra* CA of the bundle (a certificate that neither Mozilla's set -- certifi --
  nor this host's distro store /usr/share/ca-certificates ships: e.g. a TLS-intercepting
  proxy's CA), as PEM or DER, in any layer;
* in the layers the build added (not the base's): PEM private keys (outside allowed test
  data paths), well-known token formats, and the values of secret-looking variables
  (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``) of the environment running the check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import IO

from f7tbuild import engine

PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.DOTALL
)
# A PEM private key with key material (not just the marker quoted in documentation).
PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----\r?\n"
    rb"(?:Proc-Type:[^\n]*\n(?:DEK-Info:[^\n]*\n)?\r?\n?)?[A-Za-z0-9+/]{40,}"
)
TOKEN_PATTERNS: dict[str, re.Pattern[bytes]] = {
    "npm auth token": re.compile(rb"_authToken\s*=\s*[^\s$]{8,}"),
    "GitHub token": re.compile(
        rb"\b(?:ghp|gho|ghs|ghu)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"
    ),
    "GitLab token": re.compile(rb"\bglpat-[A-Za-z0-9_-]{20}\b"),
    "AWS access key": re.compile(rb"\bAKIA[0-9A-Z]{16}\b"),
    "Slack token": re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
}
# Test data that packages ship on purpose (e.g. tornado's test.key): not a build secret.
DEFAULT_ALLOWED_KEY_PATHS = (
    "*/site-packages/*/test/*",
    "*/site-packages/*/tests/*",
    "*/dist-packages/*/test/*",
    "*/dist-packages/*/tests/*",
    "*/node_modules/*/test/*",
    "*/node_modules/*/tests/*",
)
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY", re.IGNORECASE)
CHUNK = 4 << 20
OVERLAP = 8 << 10


@dataclass(frozen=True)
class Finding:
    """One leak: which layer, which file, what."""

    layer: str
    path: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} in /{self.path} (layer {self.layer[:19]})"


@dataclass
class Needles:
    """What to look for."""

    bundle_sha256: str | None = None
    ca_needles: dict[str, list[bytes]] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)


def pem_certs(data: bytes) -> list[bytes]:
    """DER bytes of every PEM certificate in ``data``."""
    out = []
    for body in PEM_CERT.findall(data):
        try:
            out.append(base64.b64decode(b"".join(body.split())))
        except ValueError:
            continue
    return out


def public_roots() -> set[bytes]:
    """DER of the public roots: certifi's (Mozilla) and the host distro's store."""
    roots: set[bytes] = set()
    try:
        import certifi

        roots.update(pem_certs(Path(certifi.where()).read_bytes()))
    except ImportError:
        pass
    for crt in Path("/usr/share/ca-certificates").rglob("*.crt"):
        roots.update(pem_certs(crt.read_bytes()))
    return roots


def _subject_cn(der: bytes) -> str:
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
        return str(names[0].value) if names else hashlib.sha256(der).hexdigest()[:16]
    except Exception:  # noqa: BLE001 - naming only
        return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def ca_needles(bundle: bytes, public: set[bytes]) -> dict[str, list[bytes]]:
    """Search strings for each extra (non-public) CA of a bundle: PEM lines and DER slices."""
    needles: dict[str, list[bytes]] = {}
    for der in pem_certs(bundle):
        if der in public:
            continue
        b64 = base64.b64encode(der)
        lines = [b64[i : i + 64] for i in range(0, len(b64) - 64, 64)]
        mid = len(der) // 2
        found = [lines[len(lines) // 2]] if lines else []
        found.append(der[mid : mid + 48])
        needles[f"build CA '{_subject_cn(der)}'"] = found
    return needles


def env_secrets(env: dict[str, str] | None = None) -> dict[str, bytes]:
    """Values of secret-looking environment variables (12+ characters)."""
    env = dict(os.environ if env is None else env)
    return {
        f"value of ${k}": v.encode()
        for k, v in env.items()
        if SECRET_ENV.search(k) and len(v) >= 12 and not v.startswith("/")
    }


def needles_for(ca_bundle: Path | None, env: dict[str, str] | None = None) -> Needles:
    """Everything the scan looks for, given the CA bundle the build was given."""
    n = Needles(secrets=env_secrets(env))
    if ca_bundle is not None:
        data = Path(ca_bundle).read_bytes()
        n.bundle_sha256 = hashlib.sha256(data).hexdigest()
        n.ca_needles = ca_needles(data, public_roots())
    return n


def scan_bytes(
    data: bytes, path: str, layer: str, needles: Needles, added: bool, allowed: Iterable[str]
) -> list[Finding]:
    """Findings in one chunk of one file."""
    found: list[Finding] = []
    for kind, pats in needles.ca_needles.items():
        if any(p in data for p in pats):
            found.append(Finding(layer, path, kind))
    if not added:
        return found
    if PRIVATE_KEY.search(data) and not any(fnmatch("/" + path, a) for a in allowed):
        found.append(Finding(layer, path, "PEM private key"))
    for kind, pat in TOKEN_PATTERNS.items():
        if pat.search(data):
            found.append(Finding(layer, path, kind))
    for kind, value in needles.secrets.items():
        if value in data:
            found.append(Finding(layer, path, kind))
    return found


class _HashingReader(io.RawIOBase):
    """Reads from a stream while hashing what passes (sha256 of a layer tar = diff_id)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        return n

    def drain(self) -> str:
        while self.raw.read(CHUNK):
            pass
        return "sha256:" + self.sha.hexdigest()


def _scan_layer(
    stream: IO[bytes], needles: Needles, base_layers: set[str], allowed: Iterable[str]
) -> tuple[str, list[Finding]]:
    reader = _HashingReader(stream)
    buffered = io.BufferedReader(reader, buffer_size=1 << 20)
    raw: list[tuple[str, bool, list[Finding]]] = []
    with tarfile.open(fileobj=buffered, mode="r|") as layer:
        for member in layer:
            if not member.isfile():
                continue
            fh = layer.extractfile(member)
            if fh is None:
                continue
            digest = hashlib.sha256() if member.size <= CHUNK else None
            tail = b""
            hits: list[Finding] = []
            while True:
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                if digest is not None:
                    digest.update(chunk)
                hits.extend(scan_bytes(tail + chunk, member.name, "?", needles, True, allowed))
                tail = chunk[-OVERLAP:]
            if digest is not None and needles.bundle_sha256 == digest.hexdigest():
                hits.append(Finding("?", member.name, "the build CA bundle file"))
            if hits:
                raw.append((member.name, True, hits))
    buffered.read()
    diff_id = reader.drain()
    added = diff_id not in base_layers
    out: list[Finding] = []
    for _name, _a, hits in raw:
        for f in hits:
            base_safe = (
                f.kind.startswith(("PEM private key", "value of $")) or f.kind in TOKEN_PATTERNS
            )
            if added or not base_safe:
                key = Finding(diff_id, f.path, f.kind)
                if key not in out:
                    out.append(key)
    return diff_id, out


def _layer_members(save: tarfile.TarFile) -> Iterator[tuple[str, IO[bytes]]]:
    for member in save:
        if not member.isfile():
            continue
        name = member.name
        if name.endswith("layer.tar") or (name.startswith("blobs/sha256/") and member.size > 1024):
            fh = save.extractfile(member)
            if fh is None:
                continue
            if name.startswith("blobs/"):
                head = fh.peek(512)[:512] if hasattr(fh, "peek") else b""
                if head[257:262] != b"ustar":
                    continue
            yield name, fh


def image_layers(ref: str) -> list[str]:
    """The image's layer diff_ids (empty if the image is not local)."""
    if not engine.image_exists(ref):
        return []
    return list(engine.inspect(ref).get("RootFS", {}).get("Layers", []))


def scan_image(
    ref: str,
    ca_bundle: Path | None,
    base_ref: str | None = None,
    allowed_key_paths: Iterable[str] = DEFAULT_ALLOWED_KEY_PATHS,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> tuple[list[Finding], int]:
    """Scan every layer of ``ref``; return (findings, number of layers scanned)."""
    needles = needles_for(ca_bundle, env)
    base_layers = set(image_layers(base_ref)) if base_ref else set()
    allowed = tuple(allowed_key_paths)
    findings: list[Finding] = []
    layers = 0
    with engine.save(ref, timeout) as stream, tarfile.open(fileobj=stream, mode="r|") as save:
        for _name, fh in _layer_members(save):
            _diff, found = _scan_layer(fh, needles, base_layers, allowed)
            layers += 1
            findings.extend(found)
    if layers == 0:
        raise RuntimeError(f"docker save {ref} produced no layer tar: unknown save format")
    return findings, layers


def assert_no_build_secrets(
    ref: str,
    ca_bundle: Path | None,
    base_ref: str | None = None,
    allowed_key_paths: Iterable[str] = DEFAULT_ALLOWED_KEY_PATHS,
) -> int:
    """Fail (AssertionError listing every leak) if any layer of ``ref`` holds a build secret.

    Returns the number of layers scanned.
    """
    findings, layers = scan_image(ref, ca_bundle, base_ref, allowed_key_paths)
    assert not findings, f"{ref}: build secrets left in layers:\n" + "\n".join(
        f"  - {f}" for f in findings
    )
    return layers
