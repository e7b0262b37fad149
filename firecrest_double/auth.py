"""Bearer-token checks of the double, as the real FirecREST v2 (2.5.6) performs them.

Tokens are RS256 JWTs verified against the identity provider's JWKS, fetched over
HTTP from ``jwks_url`` **once, when the server starts** (:meth:`TokenVerifier.load`),
never again — not even for an unknown ``kid``: a key rotation at the provider, or a
provider unreachable at start-up, makes every token fail with 401 ``Token's public
key not found.`` until FirecREST is restarted (``FirecrestDouble.reload_jwks``).
Outcomes, from the measured notes:

* no/malformed ``Authorization`` header, bad signature, no ``kid``, expired token → 401;
* a ``kid`` the JWKS loaded at start did not have → 401 ``Token's public key not found.``;
* fewer than 30 s of validity left → 401 ``Access token expires too soon``;
* no ``preferred_username`` → 400;
* ``email`` without ``given_name`` → 500 (the real server's validation error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

log = logging.getLogger("firecrest_double")

MIN_VALIDITY_S = 30
#: FirecREST's answer to a token whose ``kid`` was not in the JWKS it loaded at start.
KEY_NOT_FOUND = "Token's public key not found."


class AuthError(Exception):
    """A rejected token: ``status`` and ``message`` are what the server answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Identity:
    """Who a verified token belongs to."""

    username: str
    claims: dict[str, Any]


class TokenVerifier:
    """Verifies bearer tokens against the keys of a JWKS URL, loaded by :meth:`load`."""

    def __init__(self, jwks_url: str, min_validity_s: float = MIN_VALIDITY_S) -> None:
        self.jwks_url = jwks_url
        self.min_validity_s = min_validity_s
        self._keys: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        #: How many times the JWKS was fetched (once per start or reload).
        self.fetches = 0
        #: Why the last fetch failed (None: it worked), for logs and tests.
        self.load_error: str | None = None

    @property
    def keys(self) -> dict[str, Any]:
        """The keys by ``kid`` loaded by the last successful :meth:`load`."""
        return dict(self._keys)

    async def load(self) -> None:
        """Fetch the JWKS (at start-up, or on a simulated restart).

        A failure is logged and remembered, not raised: FirecREST starts anyway, and
        then refuses every token with 401 ``Token's public key not found.``."""
        async with self._lock:
            self.fetches += 1
            timeout = aiohttp.ClientTimeout(total=5)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as s, \
                        s.get(self.jwks_url) as r:
                    r.raise_for_status()
                    data = await r.json()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                self.load_error = f"cannot fetch the JWKS from {self.jwks_url}: {e!r}"
                log.error("FirecREST double: %s; every token will be refused with 401 %r "
                          "until reload_jwks()", self.load_error, KEY_NOT_FOUND)
                return
            self._keys = {k["kid"]: jwt.PyJWK(k).key for k in data.get("keys", []) if "kid" in k}
            self.load_error = None

    async def verify(self, authorization: str | None) -> Identity:
        """Check an ``Authorization`` header value; raise :class:`AuthError` if refused."""
        if not authorization:
            raise AuthError(401, "Not authenticated: missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "Invalid authentication credentials: expected 'Bearer <token>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise AuthError(401, f"Invalid token: {e}") from None
        kid = header.get("kid")
        if not kid:
            raise AuthError(401, "Invalid token: header has no 'kid'")
        if header.get("alg") != "RS256":
            raise AuthError(401, f"Invalid token: algorithm {header.get('alg')!r} is not RS256")
        key = self._keys.get(kid)
        if key is None:
            raise AuthError(401, KEY_NOT_FOUND)
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"],
                                options={"verify_aud": False, "require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "Token expired") from None
        except jwt.PyJWTError as e:
            raise AuthError(401, f"Invalid token: {e}") from None
        if claims["exp"] - time.time() < self.min_validity_s:
            raise AuthError(401, "Access token expires too soon")
        username = claims.get("preferred_username")
        if not username:
            raise AuthError(400, "Token has no 'preferred_username' claim: cannot identify user")
        if "email" in claims and "given_name" not in claims:
            raise AuthError(500, "1 validation error for user identity: given_name: Field required")
        return Identity(str(username), claims)
