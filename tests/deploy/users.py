"""Users of the deployment: log in through the OIDC provider without a browser, use the
hub's REST API with the user's own token, and the Linux accounts behind them.

:func:`oidc_login` walks the same pages a browser does (the hub's ``/hub/oauth_login``,
the provider's login and consent forms, the hub's ``/hub/oauth_callback``) with plain
HTTP requests; the browser test does it in Chromium. :class:`UserAPI` then asks the hub
for an API token with the session's cookie (as the hub's token page does) and drives
the user's own server through the REST API — no admin service is configured in the hub.
"""

from __future__ import annotations

import contextlib
import html
import pwd
import re
import subprocess
from typing import Any
from urllib.parse import urljoin

import requests

_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.IGNORECASE)


def _form_action(page: requests.Response, what: str) -> str:
    match = _FORM.search(page.text)
    if match is None:
        raise AssertionError(
            f"{what}: no form at {page.url} (HTTP {page.status_code}): {page.text[:400]}"
        )
    return urljoin(page.url, html.unescape(match.group(1)))


def oidc_login(public_url: str, user: str, password: str = "any") -> requests.Session:
    """A session logged in at the hub through the provider's login and consent pages."""
    s = requests.Session()
    page = s.get(f"{public_url}/hub/oauth_login", timeout=60)
    page.raise_for_status()
    page = s.post(
        _form_action(page, "provider login page"),
        data={"prompt": "login", "login": user, "password": password}, timeout=60,
    )
    page.raise_for_status()
    if "/hub/" not in page.url:  # the consent page (first login of this user)
        page = s.post(_form_action(page, "provider consent page"),
                      data={"prompt": "consent"}, timeout=60)
    if page.status_code >= 400 or not page.url.startswith(public_url):
        raise AssertionError(f"login of {user} ended at {page.url} ({page.status_code}): "
                             f"{page.text[:400]}")
    return s


class UserAPI:
    """The hub's REST API as one user, with a token the user made for themselves."""

    def __init__(self, public_url: str, user: str, session: requests.Session) -> None:
        self.public_url = public_url
        self.user = user
        self.api = f"{public_url}/hub/api"
        xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf") or ""
        r = session.post(
            f"{self.api}/users/{user}/tokens", json={"note": "e2e", "expires_in": 7200},
            headers={"X-XSRFToken": xsrf}, timeout=30,
        )
        if r.status_code != 201:
            raise AssertionError(f"token for {user}: {r.status_code} {r.text[:300]}")
        self.token = r.json()["token"]
        self.headers = {"Authorization": f"token {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.api + path, headers=self.headers, **kwargs)

    def server(self) -> dict[str, Any] | None:
        """The user's default server as the hub reports it, or None."""
        r = self.request("GET", f"/users/{self.user}")
        r.raise_for_status()
        return r.json().get("servers", {}).get("")

    def start(self, options: dict[str, Any]) -> requests.Response:
        return self.request("POST", f"/users/{self.user}/server", json=options)

    def stop(self) -> requests.Response:
        return self.request("DELETE", f"/users/{self.user}/server")

    def progress(self, timeout: float = 300) -> list[dict[str, Any]]:
        """The start's progress events (the event stream the progress page shows)."""
        import json

        events = []
        with requests.get(
            f"{self.api}/users/{self.user}/server/progress", headers=self.headers,
            stream=True, timeout=timeout,
        ) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def lab(self, path: str = "lab") -> requests.Response:
        """A page of the user's server, through the proxy."""
        return requests.get(
            f"{self.public_url}/user/{self.user}/{path}", headers=self.headers,
            timeout=60, allow_redirects=False,
        )


def create_user(name: str) -> None:
    """A Linux account for a test user (``useradd -m``: Podman's subuid ranges too)."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, timeout=60)


def end_processes(name: str) -> list[str]:
    """End the processes a test user still runs (rootless Podman leaves a pause process),
    each by its id; returns their ids."""
    import os
    import signal

    try:
        pwd.getpwnam(name)
    except KeyError:
        return []
    pids = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True,
                          timeout=30, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    return pids


def delete_user(name: str) -> None:
    """Remove a test user's account and home (teardown), after ending its processes."""
    end_processes(name)
    subprocess.run(["userdel", "-r", "-f", name], check=False, timeout=300,
                   capture_output=True)
