"""The chart's generate-if-absent hook script (chart/f7t4jhub/files/ensure_secrets.py).

The script runs as it does in the hook Job (``python ensure_secrets.py`` with the Job's
environment) against a small stand-in of the Kubernetes Secrets API on loopback (GET,
POST, merge PATCH of one namespace's Secrets, with the API's status codes). No cluster
runs here, so this is the part of the hook that is tested; the Job, its Role and its hook
annotations are checked in the rendered manifests (test_render.py).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helmtools import CHART, find, render

SCRIPT = CHART / "files" / "ensure_secrets.py"
PREFIX = "/api/v1/namespaces/jhub/secrets"


class SecretsApi(ThreadingHTTPServer):
    """Secrets of namespace ``jhub``; ``refuse`` makes every call answer 403."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.secrets: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.refuse = False


class Handler(BaseHTTPRequestHandler):
    server: SecretsApi

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        api = self.server
        api.calls.append(f"{self.command} {self.path}")
        if self.headers.get("Authorization") != "Bearer test-token":
            return self._answer(401, {"reason": "Unauthorized"})
        if api.refuse:
            return self._answer(403, {"reason": "Forbidden"})
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        name = self.path[len(PREFIX):].lstrip("/")
        if not self.path.startswith(PREFIX):
            return self._answer(404, {"reason": "NotFound"})
        if self.command == "GET":
            if name not in api.secrets:
                return self._answer(404, {"reason": "NotFound"})
            return self._answer(200, api.secrets[name])
        if self.command == "POST":
            new = body["metadata"]["name"]
            if new in api.secrets:
                return self._answer(409, {"reason": "AlreadyExists"})
            api.secrets[new] = body
            return self._answer(201, body)
        if self.command == "PATCH":
            assert self.headers["Content-Type"] == "application/merge-patch+json"
            if name not in api.secrets:
                return self._answer(404, {"reason": "NotFound"})
            api.secrets[name].setdefault("data", {}).update(body["data"])
            return self._answer(200, api.secrets[name])
        return self._answer(405, {"reason": "MethodNotAllowed"})

    do_GET = do_POST = do_PATCH = _handle


@pytest.fixture
def api() -> Iterator[SecretsApi]:
    server = SecretsApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_hook(api: SecretsApi, tmp_path: Path, name: str = "rel-f7t4jhub-hub-secrets",
             labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    token = tmp_path / "token"
    token.write_text("test-token\n")
    env = {
        "SECRET_NAME": name,
        "SECRET_LABELS": json.dumps(labels or {}),
        "SECRET_ANNOTATIONS": json.dumps(annotations or {}),
        "F7T_K8S_API": f"http://127.0.0.1:{api.server_address[1]}",
        "F7T_K8S_TOKEN_FILE": str(token),
        "F7T_K8S_NAMESPACE": "jhub",
    }
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def values_of(api: SecretsApi, name: str = "rel-f7t4jhub-hub-secrets") -> dict[str, str]:
    data = api.secrets[name]["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_creates_once_then_never_changes_a_value(api: SecretsApi, tmp_path: Path) -> None:
    first = run_hook(api, tmp_path, labels={"f7t4jhub/release": "rel"},
                     annotations={"argocd.argoproj.io/sync-options": "Prune=false"})
    assert first.returncode == 0, first.stderr
    assert "created Secret rel-f7t4jhub-hub-secrets" in first.stdout
    created = values_of(api)
    assert set(created) == {"proxy-auth-token", "cookie-secret", "crypt-key"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in created.values())
    assert len(set(created.values())) == 3
    metadata = api.secrets["rel-f7t4jhub-hub-secrets"]["metadata"]
    assert metadata["labels"] == {"f7t4jhub/release": "rel"}
    assert metadata["annotations"] == {"argocd.argoproj.io/sync-options": "Prune=false"}
    # An upgrade / ArgoCD re-sync runs the hook again: same values.
    for _ in range(2):
        again = run_hook(api, tmp_path)
        assert again.returncode == 0 and "unchanged" in again.stdout, again
    assert values_of(api) == created
    assert [c.split()[0] for c in api.calls].count("PATCH") == 0


def test_adds_only_what_is_missing(api: SecretsApi, tmp_path: Path) -> None:
    """A Secret from an older chart (no crypt-key yet) keeps its token and cookie secret."""
    kept = {"proxy-auth-token": "a" * 64, "cookie-secret": "b" * 64}
    api.secrets["rel-f7t4jhub-hub-secrets"] = {
        "metadata": {"name": "rel-f7t4jhub-hub-secrets"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in kept.items()},
    }
    proc = run_hook(api, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "added crypt-key" in proc.stdout
    now = values_of(api)
    assert {k: now[k] for k in kept} == kept
    assert re.fullmatch(r"[0-9a-f]{64}", now["crypt-key"])


def test_a_refusal_names_the_role(api: SecretsApi, tmp_path: Path) -> None:
    api.refuse = True
    proc = run_hook(api, tmp_path)
    assert proc.returncode != 0
    assert "HTTP 403" in proc.stderr and "Role must allow get/create/patch" in proc.stderr


def test_the_rendered_role_allows_exactly_what_the_script_does() -> None:
    docs = render("minimal.yaml")
    role = find(docs, "Role")
    secret = "rel-f7t4jhub-hub-secrets"
    rules = {(tuple(r.get("resourceNames", [])), tuple(r["verbs"])) for r in role["rules"]}
    assert rules == {((secret,), ("get", "patch")), ((), ("create",))}
    job = find(docs, "Job")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SECRET_NAME"] == secret
    labels = json.loads(env["SECRET_LABELS"])
    # ArgoCD's label tracking must not claim (and prune) a Secret that is in no manifest.
    assert "app.kubernetes.io/instance" not in labels and labels["f7t4jhub/release"] == "rel"
    annotations = json.loads(env["SECRET_ANNOTATIONS"])
    assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false"
    assert annotations["argocd.argoproj.io/compare-options"] == "IgnoreExtraneous"
