"""Bearer-token checks of the double, as the real FirecREST v2 (2.5.6) performs them.

Tokens are RS256 JWTs verified against the identity provider's JWKS, fetched over
HTTP from ``jwks_url`` and cached (re-fetched when a token names an unknown ``kid``,
at most once per ``refetch_interval``). Outcomes, from the measured notes:

* no/malformed ``Authorization`` header, bad signature, no ``kid``, unknown ``kid``,
  expired token → 401;
* fewer than 30 s of validity left → 401 ``Access token expires too soon``;
* no ``preferred_username`` → 400;
* ``email`` without ``given_name`` → 500 (the real server's validation error).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

MIN_VALIDITY_S = 30


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
    """Verifies bearer tokens against a JWKS URL."""

    def __init__(self, jwks_url: str, refetch_interval: float = 1.0,
                 min_validity_s: float = MIN_VALIDITY_S) -> None:
        self.jwks_url = jwks_url
        self.refetch_interval = refetch_interval
        self.min_validity_s = min_validity_s
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        #: How many times the JWKS was fetched.
        self.fetches = 0

    async def _refresh_keys(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.refetch_interval and self._keys:
                return
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(timeout=timeout) as s, s.get(self.jwks_url) as r:
                r.raise_for_status()
                data = await r.json()
            self._keys = {k["kid"]: jwt.PyJWK(k).key for k in data.get("keys", []) if "kid" in k}
            self._fetched_at = time.monotonic()
            self.fetches += 1

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
        if kid not in self._keys:
            try:
                await self._refresh_keys()
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                raise AuthError(500, f"Cannot fetch JWKS from {self.jwks_url}: {e}") from None
        key = self._keys.get(kid)
        if key is None:
            raise AuthError(401, f"Invalid token: unknown key id (kid) {kid!r}")
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
