"""A JupyterHub authenticator for the end-to-end test that logs users in at the mini IdP.

The double's identity provider has no interactive login page; it issues refresh tokens
to tests (``IdentityProvider.issue_refresh_token``) and serves the OAuth2
``refresh_token`` grant. :class:`IdPRefreshAuthenticator` therefore takes a password
login form (the test's shared password) and, for an allowed user, redeems that user's
refresh token at the IdP's token endpoint. The resulting ``auth_state`` has the same
keys oauthenticator's GenericOAuthenticator stores (``access_token``,
``refresh_token``, ``token_response``), so the spawner reads and refreshes it exactly
as in a deployment.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from jupyterhub.auth import Authenticator
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Dict, Unicode


class IdPRefreshAuthenticator(Authenticator):
    """Password form login; tokens come from the IdP's refresh_token grant."""

    token_url = Unicode(help="The IdP's OAuth2 token endpoint.").tag(config=True)
    client_id = Unicode("f7t4jhub", help="OAuth2 client id sent with the grant.").tag(config=True)
    password = Unicode(help="The one password every test user logs in with.").tag(config=True)
    refresh_tokens = Dict(
        Unicode(), help="username -> refresh token issued by the IdP for that user."
    ).tag(config=True)

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        """Check the password, then redeem the user's refresh token at the IdP."""
        username = data.get("username", "")
        if not self.password or data.get("password") != self.password:
            self.log.warning("e2e login refused for %r: wrong password", username)
            return None
        refresh = self.refresh_tokens.get(username)
        if refresh is None:
            self.log.warning("e2e login refused for %r: no refresh token configured", username)
            return None
        body = urllib.parse.urlencode(
            {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": self.client_id}
        )
        request = HTTPRequest(
            self.token_url,
            method="POST",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            request_timeout=20,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            detail = exc.response.body.decode(errors="replace") if exc.response else str(exc)
            self.log.error("IdP refused the refresh token of %r: %s", username, detail)
            return None
        tokens = json.loads(response.body)
        return {
            "name": username,
            "auth_state": {
                "access_token": tokens["access_token"],
                "refresh_token": tokens.get("refresh_token"),
                "token_response": tokens,
            },
        }
