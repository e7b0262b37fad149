"""The mini identity provider: discovery, JWKS, refresh rotation, client credentials."""

from __future__ import annotations

import base64

import aiohttp
import jwt

from firecrest_double import FirecrestDouble


async def test_discovery_and_jwks(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(fc.idp.url + "/.well-known/openid-configuration") as r:
        conf = await r.json()
    assert conf["token_endpoint"] == fc.idp.url + "/token"
    async with http.get(conf["jwks_uri"]) as r:
        keys = (await r.json())["keys"]
    assert [k["kid"] for k in keys] == [fc.idp.kid] and keys[0]["kty"] == "RSA"
    token = fc.idp.mint("alice", 120)
    key = jwt.PyJWK(keys[0]).key
    claims = jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
    assert claims["preferred_username"] == "alice" and claims["exp"] - claims["iat"] == 120
    assert claims["iss"] == conf["issuer"]


async def test_refresh_token_rotation(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    fc.idp.access_token_lifetime = 90
    first = fc.idp.issue_refresh_token("alice")
    form = {"grant_type": "refresh_token", "refresh_token": first, "client_id": "f7t4jhub"}
    async with http.post(fc.idp.url + "/token", data=form) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["expires_in"] == 90 and answer["refresh_token"] != first
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == "alice"
    # the access token works against the double
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    async with http.get(fc.url + "/status/systems", headers=headers) as r:
        assert r.status == 200
    # the old refresh token is now invalid; the new one works exactly once
    async with http.post(fc.idp.url + "/token", data=form) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
    form["refresh_token"] = answer["refresh_token"]
    async with http.post(fc.idp.url + "/token", data=form) as r:
        assert r.status == 200
    assert fc.idp.refresh_count == 2
    assert fc.idp.rejections == [("refresh_token", "invalid_grant")]


async def test_client_credentials(fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    client = fc.idp.register_client("hub", "s3cret", username="svc-hub")
    form = {"grant_type": "client_credentials", "client_id": "hub", "client_secret": "s3cret"}
    async with http.post(fc.idp.url + "/token", data=form) as r:
        token = (await r.json())["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["preferred_username"] == \
        client.username
    basic = {"Authorization": "Basic " + base64.b64encode(b"hub:wrong").decode()}
    async with http.post(fc.idp.url + "/token", data={"grant_type": "client_credentials"},
                         headers=basic) as r:
        assert r.status == 401
    async with http.post(fc.idp.url + "/token", data={"grant_type": "password"}) as r:
        assert r.status == 400 and (await r.json())["error"] == "unsupported_grant_type"
