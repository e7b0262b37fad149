"""Access tokens for FirecREST: the user's (from auth_state) and a service account's.

pyfirecrest 3.10's ``AsyncFirecrest`` asks its authorization object for headers before
every request, through ``auth_headers()`` when the object has one (awaited when it
returns an awaitable). The classes here implement that method as a coroutine, so a
token refresh (an HTTP call to the identity provider) never blocks the hub's event
loop.

* :class:`UserTokenAuth` takes the access token from the user's ``auth_state`` (as
  stored by oauthenticator's GenericOAuthenticator with ``enable_auth_state``),
  refreshes it with the OAuth2 ``refresh_token`` grant when fewer than ``margin``
  seconds are left (FirecREST refuses tokens with less than 30 s), writes rotated
  refresh tokens back to ``auth_state``, and lets one refresh run at a time per user.
* :class:`ClientCredentialsAuth` gets a service-account token with the
  ``client_credentials`` grant, cached the same way.

Tokens are never logged, and never included in error messages.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from . import metrics
from .tls import ssl_context

log = logging.getLogger(__name__)

#: FirecREST refuses tokens with fewer seconds of validity left than this.
FIRECREST_MIN_VALIDITY = 30.0


class TokenError(Exception):
    """No usable token can be had without the user's (or the admin's) action."""


class TransientTokenError(TokenError):
    """The identity provider could not be reached or failed (5xx): try again later."""


def jwt_expiry(token: str) -> float | None:
    """Return the ``exp`` claim of a JWT (unverified: only used to schedule refreshes).

    Returns None when ``token`` is not a JWT or has no numeric ``exp``.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    return None


@dataclass(frozen=True)
class CachedToken:
    """An access token and when it expires (epoch seconds; None: unknown)."""

    token: str
    expires_at: float | None

    def fresh(self, margin: float, now: float | None = None) -> bool:
        """Whether the token has more than ``margin`` seconds of validity left."""
        if self.expires_at is None:
            return True
        return self.expires_at - (time.time() if now is None else now) > margin

    @classmethod
    def from_response(cls, response: dict[str, Any], now: float | None = None) -> CachedToken:
        """Build from an OAuth2 token endpoint answer."""
        token = response["access_token"]
        expires_at = jwt_expiry(token)
        if expires_at is None and isinstance(response.get("expires_in"), (int, float)):
            expires_at = (time.time() if now is None else now) + float(response["expires_in"])
        return cls(token=token, expires_at=expires_at)


@dataclass(frozen=True)
class TokenEndpoint:
    """An OAuth2 token endpoint and the client credentials used at it."""

    url: str
    client_id: str
    client_secret: str = ""
    timeout: float = 10.0
    verify: bool | str = True

    async def grant(self, data: dict[str, str]) -> dict[str, Any]:
        """POST a grant; return the JSON answer (failures counted in :mod:`.metrics`).

        Raises :class:`TransientTokenError` for transport errors and 5xx answers,
        :class:`TokenError` for refusals (4xx), naming the grant and the OAuth
        ``error``/``error_description`` (never a token).
        """
        try:
            return await self._grant(data)
        except TransientTokenError:
            metrics.token_refresh_failed("transient")
            raise
        except TokenError:
            metrics.token_refresh_failed("refused")
            raise

    async def _grant(self, data: dict[str, str]) -> dict[str, Any]:
        form = dict(data, client_id=self.client_id)
        if self.client_secret:
            form["client_secret"] = self.client_secret
        grant = data.get("grant_type", "?")
        try:
            async with httpx.AsyncClient(verify=ssl_context(self.verify),
                                         timeout=self.timeout) as client:
                response = await client.post(self.url, data=form,
                                             headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientTokenError(
                f"token endpoint {self.url} unreachable for the {grant} grant: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 500:
            raise TransientTokenError(
                f"token endpoint {self.url} answered {response.status_code} to the {grant} grant"
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", "") if isinstance(body, dict) else ""
            detail = body.get("error_description", "") if isinstance(body, dict) else ""
            raise TokenError(
                f"token endpoint {self.url} refused the {grant} grant "
                f"(HTTP {response.status_code} {error} {detail})".rstrip()
                + ("" if grant != "refresh_token" else "; the user must log in again")
            )
        return body


class AuthStateUser(Protocol):
    """The part of jupyterhub.user.User the user token source needs."""

    name: str

    async def get_auth_state(self) -> dict[str, Any] | None: ...

    async def save_auth_state(self, auth_state: dict[str, Any]) -> None: ...


class _CachedBearer(abc.ABC):
    """A bearer token cached until fewer than ``margin`` seconds are left.

    The shared part of the two authorization objects: ``auth_headers`` for pyfirecrest,
    and ``get_token``, which serves the cached token while it is fresh and otherwise lets
    one caller at a time obtain a new one (:meth:`_obtain`); callers waiting meanwhile get
    that caller's token instead of starting their own grant.
    """

    def __init__(self, margin: float) -> None:
        self.margin = max(float(margin), FIRECREST_MIN_VALIDITY + 1)
        self._cached: CachedToken | None = None
        self._inflight: asyncio.Future[str] | None = None
        #: How many grants this object performed (for tests and metrics).
        self.refreshes = 0

    async def auth_headers(self) -> dict[str, str]:
        """The headers pyfirecrest sends: ``Authorization: Bearer <token>``."""
        return {"Authorization": f"Bearer {await self.get_token()}"}

    async def get_token(self) -> str:
        """A token with more than ``margin`` seconds left; obtains a new one when needed.

        One grant at a time: callers arriving while one runs wait for it and share its
        outcome, success or failure (they do not repeat a grant that just failed). The
        grant runs as its own task, so a caller that times out or is cancelled does not
        cut it (a rotated refresh token is saved even if nobody waits any more).
        """
        cached = self._cached
        if cached is not None and cached.fresh(self.margin):
            return cached.token
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._renew())
        return await asyncio.shield(self._inflight)

    async def _renew(self) -> str:
        cached = self._cached
        if cached is not None and cached.fresh(self.margin):
            return cached.token
        self._cached = await self._obtain()
        return self._cached.token

    def _drop(self, token: str | None) -> bool:
        """Forget the cached token if it is ``token`` (None: whatever is cached); False
        when another token was obtained meanwhile (someone else already renewed it)."""
        if self._cached is None:
            return True
        if token is not None and self._cached.token != token:
            return False
        self._cached = None
        return True

    @abc.abstractmethod
    async def _obtain(self) -> CachedToken:
        """A new token (called under the lock); each subclass says from where."""


class UserTokenAuth(_CachedBearer):
    """pyfirecrest authorization object for one user, backed by ``auth_state``.

    Obtain instances with :func:`user_token_auth` so that all servers of a user
    share one cache and one lock.
    """

    def __init__(self, user: AuthStateUser, endpoint: TokenEndpoint | None,
                 margin: float = 60.0) -> None:
        super().__init__(margin)
        self.user = user
        self.endpoint = endpoint
        self._rejected: str | None = None

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token after FirecREST answered 401 to ``token`` (None: the
        cached one): the next request refreshes it, unless auth_state meanwhile holds
        another token. A token renewed meanwhile by another caller is kept."""
        rejected = token if token is not None else (
            self._cached.token if self._cached is not None else None)
        if self._drop(token) and rejected:
            self._rejected = rejected

    async def _obtain(self) -> CachedToken:
        """The stored access token if still good, else a refreshed one."""
        auth_state = await self.user.get_auth_state()
        try:
            return await self._use_or_refresh(auth_state)
        except TransientTokenError:
            raise
        except TokenError:
            # Someone else (e.g. the authenticator's refresh_user) may have rotated the
            # refresh token meanwhile: if auth_state changed, try once more with it.
            latest = await self.user.get_auth_state()
            if not latest or not auth_state or (
                    latest.get("refresh_token") == auth_state.get("refresh_token")
                    and latest.get("access_token") == auth_state.get("access_token")):
                raise
            log.info("auth_state of user %s changed during a refresh; using the new one",
                     self.user.name)
            return await self._use_or_refresh(latest)

    async def _use_or_refresh(self, auth_state: dict[str, Any] | None) -> CachedToken:
        """The stored access token if still good, else a refreshed one (saved back)."""
        if not auth_state:
            raise TokenError(
                f"user {self.user.name} has no auth_state: set "
                "c.Authenticator.enable_auth_state = True (and JUPYTERHUB_CRYPT_KEY) and "
                "log in again"
            )
        access = auth_state.get("access_token")
        if isinstance(access, str) and access:
            current = CachedToken(access, jwt_expiry(access))
            # A token FirecREST rejected (see invalidate) is refreshed, not reused.
            if current.fresh(self.margin) and access != self._rejected:
                return current
        refresh_token = auth_state.get("refresh_token")
        if not refresh_token:
            raise TokenError(
                f"the access token of user {self.user.name} expired and auth_state holds no "
                "refresh token; the user must log in again (ask the identity provider for "
                "offline_access/refresh tokens to avoid this)"
            )
        if self.endpoint is None:
            raise TokenError(
                "the access token expired and no token endpoint is configured: set "
                "FirecRESTSpawner.token_url (or use GenericOAuthenticator, whose token_url "
                "is used by default)"
            )
        response = await self.endpoint.grant(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        self.refreshes += 1
        self._rejected = None
        fresh = CachedToken.from_response(response)
        auth_state = dict(auth_state)
        auth_state["access_token"] = fresh.token
        if response.get("refresh_token"):
            auth_state["refresh_token"] = response["refresh_token"]
        if response.get("id_token"):
            auth_state["id_token"] = response["id_token"]
        if isinstance(auth_state.get("token_response"), dict):
            auth_state["token_response"] = dict(auth_state["token_response"], **response)
        await self.user.save_auth_state(auth_state)
        log.info("Refreshed the FirecREST access token of user %s", self.user.name)
        return fresh


class ClientCredentialsAuth(_CachedBearer):
    """pyfirecrest authorization object for a service account (client credentials)."""

    def __init__(self, endpoint: TokenEndpoint, margin: float = 60.0) -> None:
        super().__init__(margin)
        self.endpoint = endpoint

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (if it is ``token``)."""
        self._drop(token)

    async def _obtain(self) -> CachedToken:
        """A new service-account token from the ``client_credentials`` grant."""
        response = await self.endpoint.grant({"grant_type": "client_credentials"})
        self.refreshes += 1
        return CachedToken.from_response(response)


# One UserTokenAuth per (event loop, user name): asyncio locks belong to one loop.
_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, UserTokenAuth]] = (
    weakref.WeakKeyDictionary()
)


def user_token_auth(user: AuthStateUser, endpoint: TokenEndpoint | None,
                    margin: float = 60.0) -> UserTokenAuth:
    """The shared :class:`UserTokenAuth` of ``user`` in the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _registry.setdefault(loop, {})
    auth = per_loop.get(user.name)
    if auth is None or auth.endpoint != endpoint:
        auth = per_loop[user.name] = UserTokenAuth(user, endpoint, margin)
    auth.user = user
    auth.margin = max(float(margin), FIRECREST_MIN_VALIDITY + 1)
    return auth
