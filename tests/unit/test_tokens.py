"""Token sources against the double's identity provider (real HTTP, real JWTs)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from firecrest_double import IdentityProvider
from firecrestspawner.tokens import (
    CachedToken,
    ClientCredentialsAuth,
    TokenEndpoint,
    TokenError,
    TransientTokenError,
    UserTokenAuth,
    jwt_expiry,
    user_token_auth,
)


class AuthStateUser:
    """The two auth_state methods of jupyterhub.user.User, over a dict (with a yield
    to the loop on each call, like the real encrypted store)."""

    def __init__(self, name: str, auth_state: dict[str, Any] | None) -> None:
        self.name = name
        self.auth_state = auth_state
        self.saves = 0

    async def get_auth_state(self) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return None if self.auth_state is None else dict(self.auth_state)

    async def save_auth_state(self, auth_state: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.auth_state = dict(auth_state)
        self.saves += 1


@pytest_asyncio.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider(access_token_lifetime=300)
    await provider.start()
    yield provider
    await provider.stop()


def endpoint(idp: IdentityProvider, **kw: Any) -> TokenEndpoint:
    return TokenEndpoint(idp.url + "/token", kw.pop("client_id", "f7t4jhub"), **kw)


async def test_fresh_token_is_used_without_refresh(idp: IdentityProvider) -> None:
    access = idp.mint("alice", 300)
    user = AuthStateUser("alice", {"access_token": access, "refresh_token": "unused"})
    auth = UserTokenAuth(user, endpoint(idp))
    assert await auth.auth_headers() == {"Authorization": f"Bearer {access}"}
    assert idp.refresh_count == 0 and user.saves == 0


async def test_expiring_token_is_refreshed_and_rotation_saved(idp: IdentityProvider) -> None:
    refresh = idp.issue_refresh_token("alice")
    user = AuthStateUser("alice", {"access_token": idp.mint("alice", 45),
                                   "refresh_token": refresh,
                                   "token_response": {"expires_in": 45}})
    auth = UserTokenAuth(user, endpoint(idp), margin=60)

    token = await auth.get_token()

    assert idp.refresh_count == 1
    assert jwt_expiry(token) - time.time() > 250
    assert user.auth_state["access_token"] == token
    assert user.auth_state["refresh_token"] not in (None, refresh), "rotated token saved"
    assert user.auth_state["token_response"]["expires_in"] == 300
    assert await auth.get_token() == token and idp.refresh_count == 1, "cached"
    # the rotated refresh token works for the next refresh; the old one is dead
    auth.invalidate()
    assert await auth.get_token() != token and idp.refresh_count == 2


async def test_expired_token_is_refreshed(idp: IdentityProvider) -> None:
    user = AuthStateUser("alice", {"access_token": idp.mint("alice", -10),
                                   "refresh_token": idp.issue_refresh_token("alice")})
    token = await UserTokenAuth(user, endpoint(idp)).get_token()
    assert jwt_expiry(token) > time.time() + 200


async def test_one_refresh_at_a_time_per_user(idp: IdentityProvider) -> None:
    user = AuthStateUser("alice", {"access_token": idp.mint("alice", 10),
                                   "refresh_token": idp.issue_refresh_token("alice")})
    auths = [user_token_auth(user, endpoint(idp)) for _ in range(3)]
    assert auths[0] is auths[1] is auths[2], "one shared object per user"

    tokens = await asyncio.gather(*(a.get_token() for a in auths for _ in range(10)))

    assert len(set(tokens)) == 1
    assert idp.refresh_count == 1
    assert not idp.rejections, "no refresh token was presented twice"


async def test_refused_refresh_says_log_in_again_without_leaking(
        idp: IdentityProvider, caplog: pytest.LogCaptureFixture) -> None:
    access = idp.mint("alice", 10)
    user = AuthStateUser("alice", {"access_token": access, "refresh_token": "rt-revoked"})
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenError) as info:
        await UserTokenAuth(user, endpoint(idp)).get_token()
    message = str(info.value)
    assert "invalid_grant" in message and "log in again" in message
    assert not isinstance(info.value, TransientTokenError)
    assert "rt-revoked" not in message and access not in message
    assert "rt-revoked" not in caplog.text and access not in caplog.text


async def test_missing_auth_state_or_refresh_token_is_explained(idp: IdentityProvider) -> None:
    with pytest.raises(TokenError, match="enable_auth_state"):
        await UserTokenAuth(AuthStateUser("alice", None), endpoint(idp)).get_token()
    user = AuthStateUser("alice", {"access_token": idp.mint("alice", 5)})
    with pytest.raises(TokenError, match="no refresh token"):
        await UserTokenAuth(user, endpoint(idp)).get_token()
    user = AuthStateUser("alice", {"access_token": idp.mint("alice", 5), "refresh_token": "x"})
    with pytest.raises(TokenError, match="FirecRESTSpawner.token_url"):
        await UserTokenAuth(user, None).get_token()


async def test_unreachable_token_endpoint_is_transient() -> None:
    user = AuthStateUser("alice", {"access_token": "opaque", "refresh_token": "x"})
    auth = UserTokenAuth(user, TokenEndpoint("http://127.0.0.1:9/token", "c", timeout=2))
    assert await auth.get_token() == "opaque"
    auth.invalidate()  # FirecREST said 401: a refresh is needed, the IdP is down
    with pytest.raises(TransientTokenError, match="unreachable"):
        await auth.get_token()


async def test_rejected_token_of_unknown_lifetime_is_refreshed(idp: IdentityProvider) -> None:
    user = AuthStateUser("alice", {"access_token": "opaque-token",
                                   "refresh_token": idp.issue_refresh_token("alice")})
    auth = UserTokenAuth(user, endpoint(idp))
    assert await auth.get_token() == "opaque-token", "unknown lifetime: tried as is"
    auth.invalidate()  # FirecREST said 401
    assert (await auth.get_token()).count(".") == 2 and idp.refresh_count == 1


async def test_margin_never_below_firecrest_minimum(idp: IdentityProvider) -> None:
    user = AuthStateUser("alice", {"access_token": idp.mint("alice", 29),
                                   "refresh_token": idp.issue_refresh_token("alice")})
    auth = UserTokenAuth(user, endpoint(idp), margin=5)
    assert auth.margin > 30
    await auth.get_token()
    assert idp.refresh_count == 1


async def test_client_credentials(idp: IdentityProvider) -> None:
    client = idp.register_client("poller")
    auth = ClientCredentialsAuth(TokenEndpoint(idp.url + "/token", "poller", client.secret))
    token = await auth.get_token()
    assert await auth.get_token() == token
    assert idp.grant_counts["client_credentials"] == 1
    bad = ClientCredentialsAuth(TokenEndpoint(idp.url + "/token", "poller", "wrong"))
    with pytest.raises(TokenError, match="invalid_client"):
        await bad.get_token()


def test_cached_token_from_response() -> None:
    opaque = CachedToken.from_response({"access_token": "abc", "expires_in": 100}, now=1000.0)
    assert opaque.expires_at == 1100.0
    assert opaque.fresh(50, now=1040.0) and not opaque.fresh(50, now=1060.0)
    assert jwt_expiry("a.b") is None and jwt_expiry("x.!!!.y") is None


class RotatedMeanwhile(AuthStateUser):
    """auth_state whose refresh token the authenticator rotates while we read it:
    the first read returns the state from before the rotation."""

    def __init__(self, name: str, stale: dict[str, Any], current: dict[str, Any]) -> None:
        super().__init__(name, current)
        self.stale: dict[str, Any] | None = stale

    async def get_auth_state(self) -> dict[str, Any] | None:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return await super().get_auth_state()


async def test_refresh_token_rotated_by_someone_else_is_picked_up(
        idp: IdentityProvider) -> None:
    used = idp.issue_refresh_token("alice")
    # the authenticator refreshes first: `used` is spent, its successor saved
    answer = await endpoint(idp).grant({"grant_type": "refresh_token", "refresh_token": used})
    rotated = answer["refresh_token"]
    user = RotatedMeanwhile("alice", {"access_token": idp.mint("alice", 5),
                                      "refresh_token": used},
                            {"access_token": idp.mint("alice", 5), "refresh_token": rotated})
    token = await UserTokenAuth(user, endpoint(idp)).get_token()
    assert jwt_expiry(token) > time.time() + 200
    assert ("refresh_token", "invalid_grant") in idp.rejections
    assert user.auth_state["refresh_token"] not in (used, rotated)


def _auth_of_kind(idp: IdentityProvider, kind: str) -> tuple[UserTokenAuth | ClientCredentialsAuth,
                                                              str]:
    """A user or a service-account token source whose first token needs a grant,
    and the name of that grant at the identity provider."""
    if kind == "user":
        user = AuthStateUser("alice", {"access_token": idp.mint("alice", 5),
                                       "refresh_token": idp.issue_refresh_token("alice")})
        return UserTokenAuth(user, endpoint(idp)), "refresh_token"
    client = idp.register_client("poller")
    return (ClientCredentialsAuth(TokenEndpoint(idp.url + "/token", "poller", client.secret)),
            "client_credentials")


@pytest.mark.parametrize("kind", ["user", "service"])
async def test_shared_cache_one_grant_for_concurrent_callers_then_invalidate(
        idp: IdentityProvider, kind: str) -> None:
    """Both token sources share one cache: concurrent callers wait for one grant, the
    cached token serves auth_headers, and invalidate forces exactly one new grant."""
    auth, grant = _auth_of_kind(idp, kind)
    tokens = await asyncio.gather(*(auth.get_token() for _ in range(5)))
    assert len(set(tokens)) == 1
    assert jwt_expiry(tokens[0]) > time.time() + 200
    assert idp.grant_counts[grant] == 1 and auth.refreshes == 1
    assert await auth.auth_headers() == {"Authorization": f"Bearer {tokens[0]}"}
    assert idp.grant_counts[grant] == 1
    auth.invalidate()
    again = await asyncio.gather(*(auth.get_token() for _ in range(3)))
    assert len(set(again)) == 1 and again[0] != tokens[0]
    assert idp.grant_counts[grant] == 2 and auth.refreshes == 2


@pytest.mark.parametrize("kind", ["user", "service"])
async def test_token_shorter_than_margin_is_never_cached(kind: str) -> None:
    """A granted token with less than ``margin`` seconds left is replaced on every call."""
    provider = IdentityProvider(access_token_lifetime=20)
    await provider.start()
    try:
        auth, grant = _auth_of_kind(provider, kind)
        first = await auth.get_token()
        second = await auth.get_token()
        assert first != second
        assert provider.grant_counts[grant] == 2 and auth.refreshes == 2
    finally:
        await provider.stop()
