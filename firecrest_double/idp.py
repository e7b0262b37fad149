"""A mini OpenID Connect identity provider for tests (a Keycloak stand-in).

It serves, on loopback:

* ``GET /.well-known/openid-configuration`` (issuer, ``jwks_uri``, ``token_endpoint``);
* ``GET /jwks`` — the public RSA keys, each with its ``kid``;
* ``POST /token`` — OAuth2 token endpoint (form encoded) with two grants:
  ``refresh_token`` (with **rotation**: a refresh token is single use; the answer
  carries a new one and the old one is rejected with ``invalid_grant`` from then on)
  and ``client_credentials`` (client id/secret in the form or HTTP Basic).

Access tokens are RS256 JWTs with ``kid``, ``iss``, ``sub``, ``preferred_username``,
``iat``, ``exp`` (lifetime ``access_token_lifetime``) and, when asked for, both
``email`` and ``given_name`` (FirecREST answers 500 to a token with one but not the
other, so tokens minted here carry both or neither unless a test forces it through
``extra_claims``).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .faults import Faults

_DEFAULT: Any = object()


@dataclass
class _RefreshGrant:
    username: str
    client_id: str
    expires_at: float
    identity: bool


@dataclass(frozen=True)
class Client:
    """A registered OAuth2 client; ``username`` is the service account it acts as."""

    client_id: str
    secret: str
    username: str


class IdentityProvider:
    """The IdP: keys, token minting and the aiohttp application that serves them.

    ``url`` is set once the app is being served (by :class:`FirecrestDouble` or
    :meth:`start`)."""

    def __init__(
        self,
        access_token_lifetime: float = 300.0,
        refresh_token_lifetime: float = 3600.0,
        issuer_path: str = "/realms/f7t4jhub",
    ) -> None:
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.issuer_path = issuer_path
        self.url: str = ""
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self.kid: str = ""
        self.rotate_key()
        self.clients: dict[str, Client] = {}
        self._refresh: dict[str, _RefreshGrant] = {}
        self._lock = threading.Lock()
        #: How many refresh_token grants succeeded (rotation makes each one single use).
        self.refresh_count = 0
        #: How many tokens the token endpoint issued, per grant type.
        self.grant_counts: dict[str, int] = {}
        #: Rejected token requests: (grant_type, error) pairs.
        self.rejections: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        #: Injected token-endpoint faults (route ``"POST /token"``): ``status=`` answers
        #: that status without granting; ``reset=True`` drops the connection; ``delay=``
        #: grants first, then answers late (a slow provider that did rotate the token).
        self.faults = Faults()

    # -- keys ------------------------------------------------------------------------
    def rotate_key(self) -> str:
        """Add a fresh RSA key and sign with it from now on; old keys stay published."""
        kid = uuid.uuid4().hex[:16]
        self._keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        return kid

    def retire_key(self, kid: str) -> None:
        """Stop publishing ``kid`` (tokens signed with it then fail with unknown kid)."""
        if kid == self.kid:
            raise ValueError("cannot retire the signing key; rotate_key() first")
        self._keys.pop(kid)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set with every published public key."""
        keys = []
        for kid, key in self._keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    @property
    def issuer(self) -> str:
        """The ``iss`` claim (needs ``url``)."""
        return self.url + self.issuer_path

    # -- tokens ----------------------------------------------------------------------
    def mint(
        self,
        username: str | None,
        lifetime_s: float | None = None,
        *,
        kid: str | None = _DEFAULT,
        identity: bool = False,
        extra_claims: Mapping[str, Any] | None = None,
        key_kid: str | None = None,
    ) -> str:
        """Mint an access token directly.

        ``username=None`` leaves out ``preferred_username``. ``kid`` defaults to the
        signing key's; pass ``None`` to leave the header without a ``kid`` or any
        string to claim another (e.g. unknown) key id. ``key_kid`` picks which
        published key actually signs. ``identity=True`` adds ``email`` and
        ``given_name`` together. ``lifetime_s`` may be negative (already expired).
        """
        now = int(time.time())
        lifetime = self.access_token_lifetime if lifetime_s is None else lifetime_s
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"f7t-double:{username}")),
            "iat": now,
            "exp": int(now + lifetime),
            "jti": uuid.uuid4().hex,
            "typ": "Bearer",
            "azp": "f7t4jhub",
            "scope": "openid profile firecrest-v2",
        }
        if username is not None:
            claims["preferred_username"] = username
        if identity:
            claims["email"] = f"{username}@f7t4jhub.test"
            claims["given_name"] = (username or "user").capitalize()
        claims.update(extra_claims or {})
        signing = key_kid or self.kid
        headers: dict[str, Any] = {}
        header_kid = signing if kid is _DEFAULT else kid
        if header_kid is not None:
            headers["kid"] = header_kid
        token = jwt.encode(claims, self._keys[signing], algorithm="RS256", headers=headers)
        if header_kid is None:
            # PyJWT adds no kid unless asked; make sure none sneaks in.
            assert "kid" not in jwt.get_unverified_header(token)
        return token

    def register_client(self, client_id: str, secret: str | None = None,
                        username: str | None = None) -> Client:
        """Register a client for the client_credentials grant; returns it."""
        client = Client(client_id, secret or secrets.token_urlsafe(24),
                        username or f"service-account-{client_id}")
        self.clients[client_id] = client
        return client

    def issue_refresh_token(self, username: str, client_id: str = "f7t4jhub",
                            identity: bool = False) -> str:
        """A refresh token as if ``username`` had just logged in through ``client_id``."""
        token = "rt-" + secrets.token_urlsafe(32)
        with self._lock:
            self._refresh[token] = _RefreshGrant(
                username, client_id, time.time() + self.refresh_token_lifetime, identity)
        return token

    def _token_response(self, username: str, identity: bool, refresh: str | None) -> dict:
        body: dict[str, Any] = {
            "access_token": self.mint(username, identity=identity),
            "token_type": "Bearer",
            "expires_in": int(self.access_token_lifetime),
            "scope": "openid profile firecrest-v2",
        }
        if refresh is not None:
            body["refresh_token"] = refresh
            body["refresh_expires_in"] = int(self.refresh_token_lifetime)
        return body

    def _reject(self, grant: str, error: str, description: str, status: int = 400) -> web.Response:
        self.rejections.append((grant, error))
        return web.json_response({"error": error, "error_description": description}, status=status)

    # -- HTTP ------------------------------------------------------------------------
    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer,
            "jwks_uri": self.url + "/jwks",
            "token_endpoint": self.url + "/token",
            "grant_types_supported": ["refresh_token", "client_credentials"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _token(self, request: web.Request) -> web.Response:
        fault = self.faults.take("POST /token")
        if fault is not None and fault.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        if fault is not None and fault.status is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            return self._reject("", "temporarily_unavailable" if fault.status >= 500
                                else "invalid_grant", fault.message, fault.status)
        response = await self._grant(request)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return response

    async def _grant(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        client_id = str(form.get("client_id", ""))
        client_secret = str(form.get("client_secret", ""))
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, csec = base64.b64decode(auth[6:]).decode().partition(":")
                client_id, client_secret = cid, csec
            except (ValueError, UnicodeDecodeError):
                return self._reject(grant, "invalid_client", "malformed Basic header", 401)
        if grant == "refresh_token":
            presented = str(form.get("refresh_token", ""))
            with self._lock:
                entry = self._refresh.pop(presented, None)
                if entry is None:
                    return self._reject(grant, "invalid_grant",
                                        "refresh token unknown or already used (rotation)")
                if entry.expires_at < time.time():
                    return self._reject(grant, "invalid_grant", "refresh token expired")
                if client_id and client_id != entry.client_id:
                    self._refresh[presented] = entry
                    return self._reject(grant, "invalid_grant", "token issued to another client")
                self.refresh_count += 1
                self.grant_counts[grant] = self.grant_counts.get(grant, 0) + 1
            new = self.issue_refresh_token(entry.username, entry.client_id, entry.identity)
            return web.json_response(self._token_response(entry.username, entry.identity, new))
        if grant == "client_credentials":
            client = self.clients.get(client_id)
            if client is None or not secrets.compare_digest(client.secret, client_secret):
                return self._reject(grant, "invalid_client", "unknown client or wrong secret", 401)
            self.grant_counts[grant] = self.grant_counts.get(grant, 0) + 1
            return web.json_response(self._token_response(client.username, False, None))
        return self._reject(grant, "unsupported_grant_type",
                            "use grant_type=refresh_token or client_credentials")

    def app(self) -> web.Application:
        """The aiohttp application serving discovery, JWKS and the token endpoint."""
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get(self.issuer_path + "/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/token", self._token)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port) in the running loop; returns url."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
