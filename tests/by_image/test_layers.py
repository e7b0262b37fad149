"""The generic layer scan (layers.py) finds planted build secrets and nothing else.

Builds tiny ``FROM scratch`` images (no base pull needed) whose layers hold a test CA
bundle, one of its certificates inside another file, a private key and a token, then
scans them with ``docker save`` like the per-image checks do.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from f7tbuild import engine
from tests.by_image.layers import ca_needles, needles_for, public_roots, scan_image
from tests.support.require import unavailable

pytestmark = pytest.mark.docker

SECRET = "f7t-test-secret-value-0123456789"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private test CA, a bundle = that CA + one public root, and an unrelated key."""
    if shutil.which("openssl") is None:
        unavailable("tools", "openssl CLI missing: apt-get install openssl")
    d = tmp_path_factory.mktemp("ca")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=f7t-layer-scan-test-ca",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
    )  # fmt: skip
    import certifi

    public = Path(certifi.where()).read_text().split("-----END CERTIFICATE-----")[0]
    bundle = d / "bundle.pem"
    bundle.write_text(public + "-----END CERTIFICATE-----\n" + (d / "ca.pem").read_text())
    _openssl("genpkey", "-algorithm", "ed25519", "-out", str(d / "other.key"))
    return {"bundle": bundle, "ca": d / "ca.pem", "key": d / "other.key"}


def _build(tmp: Path, files: dict[str, bytes]) -> str:
    """Build a scratch image with one COPY layer per file; return its tag."""
    try:
        engine.require_engine()
    except engine.EngineError as exc:
        unavailable("docker", str(exc))
    ctx = tmp / f"ctx-{uuid.uuid4().hex[:8]}"
    ctx.mkdir()
    lines = ["FROM scratch"]
    for i, (dest, data) in enumerate(files.items()):
        (ctx / f"f{i}").write_bytes(data)
        lines.append(f"COPY f{i} {dest}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    tag = f"f7t4jhub/layer-scan-test:{uuid.uuid4().hex[:10]}"
    engine.client().images.build(path=str(ctx), tag=tag, rm=True, forcerm=True)
    return tag


@pytest.fixture
def images() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for tag in made:
        engine.remove_image(tag)


def test_only_the_private_ca_is_a_needle(material: dict[str, Path]) -> None:
    needles = ca_needles(material["bundle"].read_bytes(), public_roots())
    assert list(needles) == ["build CA 'f7t-layer-scan-test-ca'"]


def test_scan_finds_planted_secrets(
    material: dict[str, Path], tmp_path: Path, images: list[str]
) -> None:
    ca_text = material["ca"].read_bytes()
    tag = _build(
        tmp_path,
        {
            "/etc/ssl/leaked-bundle.pem": material["bundle"].read_bytes(),
            "/usr/local/share/ca-certificates/extra.crt": b"# added\n" + ca_text,
            "/root/.ssh/id_ed25519": material["key"].read_bytes(),
            "/root/.npmrc": b"//registry.example/:_authToken=npm_abcdefghijklmnop\n",
            "/app/env": f"TOKEN={SECRET}\n".encode(),
            "/app/clean.txt": b"nothing to see here\n",
        },
    )
    images.append(tag)
    findings, layers = scan_image(tag, material["bundle"], env={"MY_TOKEN": SECRET})
    assert layers == 6
    got = {(f.path, f.kind) for f in findings}
    assert ("etc/ssl/leaked-bundle.pem", "the build CA bundle file") in got
    assert ("etc/ssl/leaked-bundle.pem", "build CA 'f7t-layer-scan-test-ca'") in got
    assert (
        "usr/local/share/ca-certificates/extra.crt",
        "build CA 'f7t-layer-scan-test-ca'",
    ) in got
    assert ("root/.ssh/id_ed25519", "PEM private key") in got
    assert ("root/.npmrc", "npm auth token") in got
    assert ("app/env", "value of $MY_TOKEN") in got
    assert not any(f.path == "app/clean.txt" for f in findings)


def test_clean_image_and_base_layers(
    material: dict[str, Path], tmp_path: Path, images: list[str]
) -> None:
    key = material["key"].read_bytes()
    base = _build(tmp_path, {"/usr/lib/python3/site-packages/pkg/tests/test.key": key})
    images.append(base)
    # A key in an allowed test-data path is not a finding; nor is a public root.
    findings, _ = scan_image(base, material["bundle"])
    assert findings == []
    public_only = material["bundle"].read_text().split("-----END CERTIFICATE-----")[0]
    clean = _build(
        tmp_path, {"/etc/roots.pem": (public_only + "-----END CERTIFICATE-----\n").encode()}
    )
    images.append(clean)
    assert scan_image(clean, material["bundle"])[0] == []
    # Without a bundle (--no-ca) only keys and tokens are looked for.
    assert needles_for(None, env={}).ca_needles == {}
