"""testinfra checks of the chp image (configurable-http-proxy, non-root, npm removed)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker.errors
import pytest

from f7tbuild import engine
from f7tbuild.catalogue import load
from tests.by_image.conftest import container_logs, free_port
from tests.by_image.layers import assert_no_build_secrets

pytestmark = [pytest.mark.docker, pytest.mark.image("chp")]

TOKEN = "chp-check-token-0123456789abcdef"


def http(
    url: str, method: str = "GET", token: str | None = None, body: dict | None = None
) -> tuple[int, bytes]:
    """One HTTP request on loopback; returns (status, body) even for 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"token {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http(url: str, name: str, timeout: float = 30) -> tuple[int, bytes]:
    """Poll ``url`` until it answers (bounded), else fail with the container's logs."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return http(url)
        except OSError as exc:
            last = exc
            time.sleep(0.3)
    raise AssertionError(
        f"{url} did not answer in {timeout}s ({last}); logs:\n{container_logs(name)}"
    )


def inspect(ref: str) -> dict:
    return engine.inspect(ref)


@pytest.fixture
def proxy(image_ref: str, run_container, patience: float):
    """A running chp with free proxy/API ports on loopback: (name, host, proxy_port, api_port)."""
    port, api = free_port(), free_port()
    name, host = run_container(
        image_ref,
        "--ip=127.0.0.1",
        f"--port={port}",
        "--api-ip=127.0.0.1",
        f"--api-port={api}",
        env={"CONFIGPROXY_AUTH_TOKEN": TOKEN, "CHP_HEALTHCHECK_PORT": str(port)},
        health_interval_s=1,
    )
    wait_http(f"http://127.0.0.1:{port}/_chp_healthz", name, timeout=30 * patience)
    return name, host, port, api


@pytest.fixture
def target() -> Iterator[int]:
    """A tiny HTTP target on loopback answering ``target saw <path>``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"target saw {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_runs_as_unprivileged_user(image_ref: str, proxy) -> None:
    assert inspect(image_ref)["Config"]["User"] == "1000:1000"
    _, host, _, _ = proxy
    assert host.user().uid == 1000
    assert host.user().uid != 0


def test_entrypoint_is_exec_form_and_chp_is_pid1(image_ref: str, proxy) -> None:
    config = inspect(image_ref)["Config"]
    assert config["Entrypoint"] == ["/usr/local/bin/chp-entrypoint"]
    _, host, _, _ = proxy
    assert host.file("/proc/1/comm").content_string.strip() == "node"
    cmdline = host.file("/proc/1/cmdline").content_string
    assert "configurable-http-proxy" in cmdline


def test_npm_and_friends_are_removed(proxy) -> None:
    _, host, _, _ = proxy
    for tool in ("npm", "npx", "corepack", "yarn", "yarnpkg", "pnpm"):
        assert not host.exists(tool), f"{tool} is still in the image"
    assert not host.file("/usr/local/lib/node_modules").exists


def test_pinned_chp_version(proxy) -> None:
    _, host, _, _ = proxy
    want = load().select(["chp"])[0].versions["configurable-http-proxy"]
    assert host.check_output("configurable-http-proxy --version").strip() == want


def test_healthz_answers_ok(proxy) -> None:
    _, _, port, _ = proxy
    status, body = http(f"http://127.0.0.1:{port}/_chp_healthz")
    assert status == 200
    assert json.loads(body) == {"status": "OK"}


def test_docker_healthcheck_turns_healthy(image_ref: str, proxy, patience: float) -> None:
    name, _, _, _ = proxy
    test = inspect(image_ref)["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD" and test[-1].endswith("healthcheck.js")
    deadline, state = time.monotonic() + 30 * patience, ""
    while time.monotonic() < deadline:
        attrs = engine.client().containers.get(name).attrs
        state = ((attrs.get("State") or {}).get("Health") or {}).get("Status", "")
        if state == "healthy":
            break
        time.sleep(0.5)
    assert state == "healthy", container_logs(name)


def test_api_needs_the_token(proxy) -> None:
    _, _, _, api = proxy
    assert http(f"http://127.0.0.1:{api}/api/routes")[0] == 403
    assert http(f"http://127.0.0.1:{api}/api/routes", token="wrong-token")[0] == 403
    status, body = http(f"http://127.0.0.1:{api}/api/routes", token=TOKEN)
    assert status == 200
    assert isinstance(json.loads(body), dict)


def test_route_added_through_api_proxies_to_target(proxy, target: int) -> None:
    _, _, port, api = proxy
    status, _ = http(
        f"http://127.0.0.1:{api}/api/routes/probe",
        method="POST",
        token=TOKEN,
        body={"target": f"http://127.0.0.1:{target}"},
    )
    assert status == 201
    status, body = http(f"http://127.0.0.1:{port}/probe/hello?x=1")
    assert status == 200
    assert body == b"target saw /probe/hello?x=1"
    routes = json.loads(http(f"http://127.0.0.1:{api}/api/routes", token=TOKEN)[1])
    assert routes["/probe"]["target"] == f"http://127.0.0.1:{target}"


def test_token_from_file(
    image_ref: str, run_container, tmp_path: Path, patience: float
) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token-abcdef0123456789\n")
    secret.chmod(0o644)
    port, api = free_port(), free_port()
    name, _ = run_container(
        image_ref,
        "--ip=127.0.0.1",
        f"--port={port}",
        "--api-ip=127.0.0.1",
        f"--api-port={api}",
        env={"CONFIGPROXY_AUTH_TOKEN_FILE": "/run/secrets/chp-token"},
        volumes={str(secret): "/run/secrets/chp-token"},
    )
    wait_http(f"http://127.0.0.1:{port}/_chp_healthz", name, timeout=30 * patience)
    url = f"http://127.0.0.1:{api}/api/routes"
    assert http(url, token="file-token-abcdef0123456789")[0] == 200
    assert http(url)[0] == 403


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "no API token"),
        ({"CONFIGPROXY_AUTH_TOKEN": "a", "CONFIGPROXY_AUTH_TOKEN_FILE": "/x"}, "not both"),
        ({"CONFIGPROXY_AUTH_TOKEN_FILE": "/nonexistent"}, "cannot read"),
    ],
)
def test_entrypoint_refuses_bad_token_setup(image_ref: str, env: dict, message: str) -> None:
    with pytest.raises(docker.errors.ContainerError) as failed:
        engine.client().containers.run(
            image_ref, environment=env, network_mode="host", remove=True, stdout=False, stderr=True
        )
    assert failed.value.exit_status != 0
    assert message in (failed.value.stderr or b"").decode(errors="replace")


def test_oci_and_standin_labels(image_ref: str, base_ref: str | None) -> None:
    labels = inspect(image_ref)["Config"]["Labels"]
    for key in ("version", "revision", "created", "title", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    standin = image_ref.endswith("-standin")
    assert labels["org.f7t4jhub.standin"] == ("true" if standin else "false")


def test_no_build_secrets_in_any_layer(
    image_ref: str, base_ref: str | None, ca_bundle: Path | None
) -> None:
    layers = assert_no_build_secrets(image_ref, ca_bundle, base_ref)
    assert layers > 0
