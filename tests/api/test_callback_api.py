"""The hub's callback handler (firecrestspawner.api) in a real JupyterHub, over real HTTP.

A ``jupyterhub`` subprocess (tests/api/hub_config.py: a tiny spawner with
``receive_callback``, no proxy) runs once per supported JupyterHub major — the majors
allowed by the ``hub`` extra in pyproject.toml; the current stack's pin from
catalogue.toml for its major, the newest release of the others. Servers are started
through the hub's REST API; the tests then post callbacks as a job would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.stacks import REPO, requirements_venv, stack_versions, tomllib

pytestmark = pytest.mark.timeout(900)
CONFIG = Path(__file__).with_name("hub_config.py")


def hub_majors() -> list[int]:
    """JupyterHub majors the ``hub`` extra allows (``jupyterhub>=A,<B`` -> A..B-1)."""
    with open(REPO / "pyproject.toml", "rb") as fh:
        extra = tomllib.load(fh)["project"]["optional-dependencies"]["hub"]
    spec = next(r for r in extra if re.match(r"jupyterhub\b", r))
    lo = int(re.search(r">=\s*(\d+)", spec).group(1))  # type: ignore[union-attr]
    hi = int(re.search(r"<\s*(\d+)", spec).group(1))  # type: ignore[union-attr]
    return list(range(lo, hi))


def hub_requirement(major: int) -> str:
    """The current stack's jupyterhub pin if it is of this major, else that major's newest."""
    pinned = stack_versions("current")["jupyterhub"]
    if int(pinned.split(".")[0]) == major:
        return f"jupyterhub=={pinned}"
    return f"jupyterhub>={major},<{major + 1}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hub:
    """A running hub and helpers to drive it."""

    major: int
    url: str
    admin_token: str
    state: Path
    proc: subprocess.Popen[bytes]
    log: Path
    venv: Path

    def request(
        self, method: str, path: str, token: str | None, body: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"token {token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def callback(self, token: str | None, payload: Any = None, raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(payload).encode()
        return self.request("POST", "/hub/api/firecrestspawner/callback", token, body)

    def user(self, name: str) -> dict[str, Any]:
        status, model = self.request("GET", f"/hub/api/users/{name}", self.admin_token)
        assert status == 200, (status, model)
        return dict(model)

    def spawn(self, name: str) -> str:
        """Start ``name``'s server; return its API token once the spawner wrote it."""
        token_file = self.state / f"{name}.token"
        token_file.unlink(missing_ok=True)
        status, body = self.request("POST", f"/hub/api/users/{name}/server", self.admin_token)
        assert status == 202, (status, body, self.tail())
        deadline = time.monotonic() + 30
        while not token_file.exists() or not token_file.read_text():
            assert time.monotonic() < deadline, "spawner never started\n" + self.tail()
            time.sleep(0.1)
        assert self.user(name)["servers"][""]["pending"] == "spawn"
        return token_file.read_text()

    def stop(self, name: str) -> None:
        status, body = self.request("DELETE", f"/hub/api/users/{name}/server", self.admin_token)
        assert status in (202, 204, 400), (status, body)
        deadline = time.monotonic() + 30
        while self.user(name)["servers"]:
            assert time.monotonic() < deadline, f"{name}'s server did not stop\n" + self.tail()
            time.sleep(0.2)

    def callbacks(self, name: str) -> list[dict[str, Any]]:
        path = self.state / f"{name}.callbacks"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="module", params=hub_majors(), ids=lambda m: f"jupyterhub{m}")
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    major: int = request.param
    venv = requirements_venv(f"hub{major}", [hub_requirement(major)])
    state = tmp_path_factory.mktemp(f"hub{major}")
    port = _free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(state),
        "F7T_HUB_DIR": str(state),
        "F7T_HUB_PORT": str(port),
        "F7T_PROXY_PORT": str(_free_port()),
        "F7T_ADMIN_TOKEN": secrets.token_hex(24),
    }
    log = state / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "jupyterhub"), "-f", str(CONFIG), "--debug"],
            cwd=state,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    hub = Hub(major, f"http://127.0.0.1:{port}", env["F7T_ADMIN_TOKEN"], state, proc, log, venv)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "jupyterhub exited\n" + hub.tail()
            try:
                status, info = hub.request("GET", "/hub/api/", None)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "jupyterhub did not come up\n" + hub.tail()
            time.sleep(0.5)
        assert int(info["version"].split(".")[0]) == major, info
        yield hub
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"host": "node1", "port": 4242, "user": "bob"}, "unexpected key(s) user"),
        ({"host": "node1"}, "missing key(s) port"),
        ({"host": "node1", "port": 0}, "invalid port 0"),
        ({"host": "node1", "port": 65536}, "invalid port 65536"),
        ({"host": "node1", "port": "4242"}, "invalid port '4242'"),
        ({"host": "node1", "port": True}, "invalid port True"),
        ({"host": "evil.example/x", "port": 4242}, "invalid host"),
        ({"host": "node1:4242", "port": 4242}, "invalid host"),
        ({"host": "", "port": 4242}, "invalid host"),
        ({"host": 12, "port": 4242}, "invalid host"),
        (["node1", 4242], "must be a JSON object"),
        (b"host=node1&port=4242", "not UTF-8 JSON"),
    ],
)
def test_bad_bodies_are_400(hub: Hub, payload: Any, fragment: str) -> None:
    token = hub.spawn("alice")
    try:
        if isinstance(payload, bytes):
            status, body = hub.callback(token, raw=payload)
        else:
            status, body = hub.callback(token, payload)
        assert status == 400, (status, body)
        assert fragment in body["message"], body
        assert hub.callbacks("alice") == []
    finally:
        hub.stop("alice")


def test_wrong_or_missing_token_is_403(hub: Hub) -> None:
    hub.spawn("alice")
    try:
        for token in (secrets.token_hex(24), None):
            status, body = hub.callback(token, {"host": "node1", "port": 4242})
            assert status == 403, (status, body)
        assert hub.callbacks("alice") == []
        assert hub.user("alice")["servers"][""]["pending"] == "spawn"
    finally:
        hub.stop("alice")


def test_token_of_no_server_is_403(hub: Hub) -> None:
    status, body = hub.request(
        "POST", "/hub/api/users/bob/tokens", hub.admin_token, json.dumps({}).encode()
    )
    assert status in (200, 201), (status, body)
    status, body = hub.callback(body["token"], {"host": "node1", "port": 4242})
    assert status == 403, (status, body)
    assert "belongs to no server of user bob" in body["message"]


def test_token_resolves_to_its_own_server(hub: Hub) -> None:
    """Bob's server token reports for bob's server only, never for alice's."""
    hub.spawn("alice")
    bob = hub.spawn("bob")
    try:
        status, body = hub.callback(bob, {"host": "nid000002", "port": 4243})
        assert status == 200, (status, body)
        assert hub.callbacks("bob") == [{"host": "nid000002", "port": 4243}]
        assert hub.callbacks("alice") == []
        assert hub.user("alice")["servers"][""]["pending"] == "spawn"
    finally:
        hub.stop("alice")
        hub.stop("bob")
        (hub.state / "bob.callbacks").unlink(missing_ok=True)


def test_spawner_value_error_is_400(hub: Hub) -> None:
    token = hub.spawn("alice")
    try:
        status, body = hub.callback(token, {"host": "node1", "port": 80})
        assert status == 400, (status, body)
        assert "rejected by the spawner: port 80 is privileged" in body["message"]
    finally:
        hub.stop("alice")


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_accepted_callback_completes_the_spawn(hub: Hub) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    token = hub.spawn("alice")
    try:
        status, body = hub.callback(token, {"host": "127.0.0.1", "port": port})
        assert status == 200, (status, body, hub.tail())
        assert body == {"message": "callback accepted", "host": "127.0.0.1", "port": port}
        assert hub.callbacks("alice") == [{"host": "127.0.0.1", "port": port}]
        # still pending, but the spawner is no longer waiting: its RuntimeError -> 403
        status, body = hub.callback(token, {"host": "127.0.0.1", "port": port + 1})
        assert status == 403, (status, body)
        assert "refused by the spawner: alice" in body["message"], body
        deadline = time.monotonic() + 30
        while not hub.user("alice")["servers"][""]["ready"]:
            assert time.monotonic() < deadline, "server never became ready\n" + hub.tail()
            time.sleep(0.2)
        # once running, the same token can no longer move the server
        status, body = hub.callback(token, {"host": "127.0.0.1", "port": port + 1})
        assert status == 403, (status, body)
        assert "is not starting" in body["message"]
        assert len(hub.callbacks("alice")) == 1
    finally:
        hub.stop("alice")
        (hub.state / "alice.callbacks").unlink(missing_ok=True)
        server.shutdown()
        server.server_close()


def test_handler_is_registered_once(hub: Hub) -> None:
    """Importing twice (spawner module and config) must not add a second route."""
    out = subprocess.run(
        [
            str(hub.venv / "bin" / "python"),
            "-c",
            (
                "import importlib, firecrestspawner.api as a; importlib.reload(a); a.register(); "
                "from jupyterhub.apihandlers import default_handlers as d; "
                "print(sum(r[0] == a.CALLBACK_ROUTE for r in d))"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == "1", out


def test_heap_is_frozen_once_the_hub_started(hub: Hub) -> None:
    """The image's gc.freeze after start-up runs in a real JupyterHub (5.x and 6.x)."""
    deadline = time.monotonic() + 30
    while "gc.freeze() moved" not in hub.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "no gc.freeze after start-up\n" + hub.tail()
        time.sleep(0.2)
    line = next(x for x in hub.log.read_text().splitlines() if "gc.freeze() moved" in x)
    assert int(line.split("gc.freeze() moved ")[1].split()[0]) > 10_000, line
