"""Shared SSL contexts (firecrestspawner.tls): one per verify_tls value, and each one
really trusts what the setting says (real TLS handshakes against a loopback HTTPS
server whose certificate comes from a throwaway CA)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytest.importorskip("firecrestspawner.spawner", reason="needs the hub extra: pip install -e .[hub]")

from jupyterhub.objects import Hub

from firecrestspawner.config import ConfigError
from firecrestspawner.spawner import FirecRESTSpawner
from firecrestspawner.tls import TLSSettingError, ssl_context
from firecrestspawner.tokens import ClientCredentialsAuth, TokenEndpoint, TransientTokenError
from tests.support.require import unavailable

SYSTEMS = {"systems": [{"name": "cluster"}]}


@dataclass
class Pki:
    """A throwaway CA and a server certificate (127.0.0.1, localhost) it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Make the CA and the server certificate with ``cryptography``."""
    root = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("f7t4jhub test CA"))
        .issuer_name(_name("f7t4jhub test CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(root / "ca.pem", root / "server.pem", root / "server.key")
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return pki


@pytest_asyncio.fixture
async def https_url(pki: Pki) -> AsyncIterator[str]:
    """A loopback HTTPS server: FirecREST's GET /status/systems and an OAuth token
    endpoint (POST /token, client_credentials)."""
    async def systems(_request: web.Request) -> web.Response:
        return web.json_response(SYSTEMS)

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        return web.json_response({"access_token": "opaque-test-token", "expires_in": 300,
                                  "token_type": "Bearer"})

    app = web.Application()
    app.router.add_get("/status/systems", systems)
    app.router.add_post("/token", token)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.cert_file, pki.key_file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class _User:
    """The few attributes of jupyterhub.user.User a spawner needs to be built."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.escaped_name = name
        self.url = f"/user/{name}/"

    async def get_auth_state(self) -> dict[str, Any]:
        return {}

    async def save_auth_state(self, auth_state: dict[str, Any]) -> None:
        return None


def spawner(url: str, verify: bool | str, name: str = "alice") -> FirecRESTSpawner:
    """A FirecRESTSpawner for ``name`` pointed at ``url`` with ``verify_tls=verify``."""
    return FirecRESTSpawner(user=_User(name), hub=Hub(ip="127.0.0.1", port=8081),
                            firecrest_url=url, system="cluster", workdir="/home/{username}",
                            token_url=url + "/token", verify_tls=verify)


async def service_client_systems(url: str, verify: bool | str) -> list[dict[str, Any]]:
    """GET /status/systems through the spawner's own client, with a token obtained over
    TLS from the server's token endpoint (both with ``verify_tls=verify``)."""
    sp = spawner(url, verify)
    auth = ClientCredentialsAuth(TokenEndpoint(url + "/token", "svc", "secret", 5.0, verify))
    client = sp._make_client(auth)
    try:
        return await client.systems()
    finally:
        await client.close_session()


def test_same_setting_shares_one_context(pki: Pki) -> None:
    ca = str(pki.ca_file)
    assert ssl_context(True) is ssl_context(True)
    assert ssl_context(ca) is ssl_context(ca)
    assert ssl_context(False) is ssl_context(False)
    assert len({id(ssl_context(v)) for v in (True, ca, False)}) == 3
    assert ssl_context(True).verify_mode == ssl.CERT_REQUIRED and ssl_context(True).check_hostname
    assert ssl_context(False).verify_mode == ssl.CERT_NONE
    # what AsyncFirecrest hands to its httpx session: the one shared context
    a = spawner("https://127.0.0.1:1", ca, "alice")._make_client(None)
    b = spawner("https://127.0.0.1:1", ca, "bob")._make_client(None)
    assert a._verify is b._verify is ssl_context(ca)
    c = spawner("https://127.0.0.1:1", True, "carol")._make_client(None)
    assert c._verify is ssl_context(True)


def test_default_setting_follows_ssl_cert_file(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    trusted = {c["subject"] for c in ssl_context(True).get_ca_certs()}
    assert trusted == {((("commonName", "f7t4jhub test CA"),),)}


async def test_ca_file_setting_trusts_that_ca(pki: Pki, https_url: str) -> None:
    assert await service_client_systems(https_url, str(pki.ca_file)) == SYSTEMS["systems"]


@pytest.fixture
def ca_dir(pki: Pki, tmp_path: Path) -> Path:
    """A directory holding the CA under its OpenSSL subject-hash name (as c_rehash)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("tools", "no openssl command to compute the CA's subject hash for the directory")
    subject_hash = subprocess.run([openssl, "x509", "-noout", "-subject_hash", "-in",
                                   str(pki.ca_file)], check=True, capture_output=True,
                                  text=True, timeout=30).stdout.strip()
    (tmp_path / f"{subject_hash}.0").write_bytes(pki.ca_file.read_bytes())
    return tmp_path


async def test_ca_directory_setting_trusts_that_ca(ca_dir: Path, https_url: str) -> None:
    assert await service_client_systems(https_url, str(ca_dir)) == SYSTEMS["systems"]


async def test_default_bundle_refuses_the_unknown_ca(https_url: str) -> None:
    # The default bundle (the host's or certifi's) does not hold the throwaway CA.
    with pytest.raises(TransientTokenError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        await TokenEndpoint(https_url + "/token", "svc", "secret", 5.0, True).grant(
            {"grant_type": "client_credentials"})
    client = spawner(https_url, True)._make_client(
        ClientCredentialsAuth(TokenEndpoint(https_url + "/token", "svc", "secret", 5.0, False)))
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.systems()
    finally:
        await client.close_session()


async def test_no_verification_accepts_any_certificate(https_url: str) -> None:
    assert await service_client_systems(https_url, False) == SYSTEMS["systems"]


def test_unusable_setting_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    with pytest.raises(ConfigError, match=r"cannot load the CA bundle .*no-such-ca\.pem.*PEM"):
        spawner("https://127.0.0.1:1", missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TLSSettingError, match="garbage.pem"):
        ssl_context(str(garbage))
    with pytest.raises(TLSSettingError, match="empty string"):
        ssl_context("")


async def test_clients_and_grants_build_no_context_of_their_own(
        pki: Pki, https_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = str(pki.ca_file)
    ssl_context(ca)  # the one build, e.g. at the spawner's settings check
    built: list[Any] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    endpoint = TokenEndpoint(https_url + "/token", "svc", "secret", 5.0, ca)
    for _ in range(3):
        assert (await endpoint.grant({"grant_type": "client_credentials"}))["access_token"]
    for name in ("alice", "bob"):
        assert await service_client_systems(https_url, ca) == SYSTEMS["systems"]
    assert built == []
