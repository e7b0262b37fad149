"""Sign and verify image digests with cosign (sigstore), with a key or keyless.

Keys: ``cosign generate-key-pair`` (``COSIGN_PASSWORD`` for the private key). Signing
with a key does not upload to the public transparency log (``--tlog-upload=false``) and
verifying with a key skips it too (``--insecure-ignore-tlog``): a centre's own registry
and key need no outside service. ``keyless`` (GitHub Actions with ``id-token: write``)
uses the workflow's OIDC identity and the public sigstore services instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from f7tbuild import tools

KEYLESS = "keyless"


class SignError(RuntimeError):
    """cosign failed; the message carries its output."""


def _cosign(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tools.find("cosign"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def generate_key_pair(directory: Path, password: str = "") -> tuple[Path, Path]:
    """``cosign.key`` and ``cosign.pub`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = _cosign("generate-key-pair", env={"COSIGN_PASSWORD": password}, cwd=directory)
    if proc.returncode != 0:
        raise SignError(f"cosign generate-key-pair failed: {proc.stderr.strip()[-800:]}")
    return directory / "cosign.key", directory / "cosign.pub"


def require_digest(ref: str) -> None:
    """Only ``name@sha256:...`` is signed or verified: a tag can move after the fact."""
    if "@sha256:" not in ref:
        raise SignError(f"{ref} is not pinned by digest (<name>@sha256:...): sign digests, not tags")


def _password_env(password: str | None) -> dict[str, str]:
    return {} if password is None else {"COSIGN_PASSWORD": password}


def sign(ref: str, key: str, password: str | None = None) -> None:
    """Sign ``ref`` (by digest) with a key file, or ``keyless``."""
    require_digest(ref)
    if key == KEYLESS:
        proc = _cosign("sign", "--yes", ref)
    else:
        proc = _cosign(
            "sign", "--key", key, "--tlog-upload=false", "--yes", ref,
            env=_password_env(password),
        )
    if proc.returncode != 0:
        raise SignError(f"cosign sign {ref} failed: {proc.stderr.strip()[-800:]}")


def verify(ref: str, public_key: Path) -> subprocess.CompletedProcess[str]:
    """``cosign verify`` with a public key; the caller reads returncode and output."""
    return _cosign("verify", "--key", str(public_key), "--insecure-ignore-tlog=true", ref)


def attach_sbom(ref: str, sbom: Path, key: str, password: str | None = None) -> None:
    """Attach the SBOM to ``ref`` as a signed SPDX attestation (cosign attest)."""
    require_digest(ref)
    args = ["attest", "--yes", "--type", "spdxjson", "--predicate", str(sbom)]
    if key != KEYLESS:
        args += ["--key", key, "--tlog-upload=false"]
    proc = _cosign(*args, ref, env=_password_env(password))
    if proc.returncode != 0:
        raise SignError(f"cosign attest {ref} failed: {proc.stderr.strip()[-800:]}")
