"""Token rules of the real server, reproduced by the double."""

from __future__ import annotations

import aiohttp
import pytest

from firecrest_double import FirecrestDouble

SYSTEMS = "/status/systems"


async def status_of(fc: FirecrestDouble, http: aiohttp.ClientSession, token: str) -> tuple[int, str]:
    async with http.get(fc.url + SYSTEMS, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.headers["f7t-appversion"] == "2.5.6"
        return r.status, (await r.json()).get("message", "")


async def test_valid_token(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    assert (await status_of(fc, http, fc.idp.mint("alice")))[0] == 200


async def test_token_with_less_than_30s_left_is_refused(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    assert await status_of(fc, http, fc.idp.mint("alice", 20)) == (
        401, "Access token expires too soon")
    assert (await status_of(fc, http, fc.idp.mint("alice", 45)))[0] == 200


async def test_expired_token(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    status, message = await status_of(fc, http, fc.idp.mint("alice", -5))
    assert status == 401 and "expired" in message.lower()


async def test_kid_is_required_and_must_be_known(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    status, message = await status_of(fc, http, fc.idp.mint("alice", kid=None))
    assert status == 401 and "kid" in message
    status, message = await status_of(fc, http, fc.idp.mint("alice", kid="not-a-key"))
    assert status == 401 and message == "Token's public key not found."


async def test_jwks_is_fetched_once_at_start(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    """As FirecREST: a key rotated at the provider is unknown until a restart."""
    old = fc.idp.kid
    assert (await status_of(fc, http, fc.idp.mint("alice")))[0] == 200
    fetches = fc._verifier.fetches  # type: ignore[union-attr]
    fc.idp.rotate_key()
    for _ in range(3):  # no refetch for an unknown kid, however often it comes
        status, message = await status_of(fc, http, fc.idp.mint("alice"))
        assert (status, message) == (401, "Token's public key not found.")
    assert fc._verifier.fetches == fetches  # type: ignore[union-attr]
    token_old = fc.idp.mint("alice", key_kid=old)
    assert (await status_of(fc, http, token_old))[0] == 200  # the old key still works
    # a restart of FirecREST loads the provider's keys again
    fc.idp.retire_key(old)
    assert await fc.reload_jwks() == 1
    assert (await status_of(fc, http, fc.idp.mint("alice")))[0] == 200
    assert (await status_of(fc, http, token_old))[0] == 401


async def test_provider_down_at_start_refuses_every_token() -> None:
    from firecrest_double import IdentityProvider

    idp = IdentityProvider()
    await idp.start("127.0.0.1")
    url = idp.url
    await idp.stop()  # FirecREST starts while its provider is unreachable
    fc = FirecrestDouble(idp=idp)
    try:
        await fc.start()
        assert fc._verifier is not None and fc._verifier.load_error
        await idp.start("127.0.0.1", int(url.rsplit(":", 1)[1]))  # the provider comes back
        async with aiohttp.ClientSession() as http:
            status, message = await status_of(fc, http, idp.mint("alice"))
            assert (status, message) == (401, "Token's public key not found.")
            await fc.reload_jwks()
            assert (await status_of(fc, http, idp.mint("alice")))[0] == 200
    finally:
        await fc.stop()
        await idp.stop()


async def test_signature_from_another_key_is_refused(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    from firecrest_double import IdentityProvider

    forger = IdentityProvider()
    forger.url = fc.idp.url
    token = forger.mint("alice", kid=fc.idp.kid)  # right kid, wrong key
    status, message = await status_of(fc, http, token)
    assert status == 401 and "signature" in message.lower()


async def test_missing_preferred_username_is_400(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    assert (await status_of(fc, http, fc.idp.mint(None)))[0] == 400


@pytest.mark.parametrize("claims, status", [
    ({"email": "a@x"}, 500),
    ({"email": "a@x", "given_name": "A"}, 200),
])
async def test_email_without_given_name_is_500(
        fc: FirecrestDouble, http: aiohttp.ClientSession, claims: dict, status: int) -> None:
    assert (await status_of(fc, http, fc.idp.mint("alice", extra_claims=claims)))[0] == status


async def test_identity_tokens_carry_both_claims(fc: FirecrestDouble) -> None:
    import jwt

    claims = jwt.decode(fc.idp.mint("alice", identity=True), options={"verify_signature": False})
    assert claims["email"] and claims["given_name"]


async def test_missing_or_malformed_header(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(fc.url + SYSTEMS, headers={"Authorization": "Basic abc"}) as r:
        assert r.status == 401
    assert (await status_of(fc, http, "not-a-jwt"))[0] == 401
