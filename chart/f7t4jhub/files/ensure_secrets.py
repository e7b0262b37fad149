"""Create the hub's generated secrets once; never change a value that exists (stdlib only).

Run by the chart's pre-install/pre-upgrade hook Job (ArgoCD: PreSync) in the hub image.
Reads or creates the Secret SECRET_NAME in its namespace through the Kubernetes API and
adds only the keys it lacks (random, hex): proxy-auth-token, cookie-secret, crypt-key.
The values are never in the chart's rendered manifests, so `helm upgrade`, `helm
template` and ArgoCD re-syncs keep them.

Environment: SECRET_NAME; SECRET_LABELS and SECRET_ANNOTATIONS (JSON objects, metadata
of a created Secret);
KUBERNETES_SERVICE_HOST/PORT and the pod's service account (token, CA, namespace), or,
for tests, F7T_K8S_API (base URL), F7T_K8S_TOKEN_FILE, F7T_K8S_NAMESPACE.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: key -> random bytes (hex-encoded in the Secret)
KEYS = {"proxy-auth-token": 32, "cookie-secret": 32, "crypt-key": 32}


class Api:
    """The few Kubernetes API calls this needs (JSON over HTTPS with the pod's token)."""

    def __init__(self) -> None:
        base = os.environ.get("F7T_K8S_API")
        token_file = os.environ.get("F7T_K8S_TOKEN_FILE", f"{SA_DIR}/token")
        self.context: ssl.SSLContext | None = None
        if not base:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
            self.context = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt")
        self.base = base.rstrip("/")
        with open(token_file) as fh:
            self.token = fh.read().strip()
        namespace = os.environ.get("F7T_K8S_NAMESPACE")
        if not namespace:
            with open(f"{SA_DIR}/namespace") as fh:
                namespace = fh.read().strip()
        self.namespace = namespace

    def call(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base}/api/v1/namespaces/{self.namespace}/secrets{path}", data=data,
            method=method, headers={"Authorization": f"Bearer {self.token}",
                                    "Content-Type": content_type, "Accept": "application/json"})
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.context))
        try:
            with opener.open(request, timeout=20) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")[:500]


def generate(names: list[str]) -> dict[str, str]:
    """base64 Secret data: one random hex value per name."""
    return {n: base64.b64encode(secrets.token_hex(KEYS[n]).encode()).decode() for n in names}


def ensure(api: Api, name: str, labels: dict[str, str],
           annotations: dict[str, str] | None = None) -> str:
    """Create or complete the Secret; what was done, as a sentence."""
    for _attempt in range(5):
        status, found = api.call("GET", f"/{name}")
        if status == 404:
            body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "labels": labels,
                                 "annotations": annotations or {}},
                    "data": generate(list(KEYS))}
            status, answer = api.call("POST", "", body)
            if status == 201:
                return f"created Secret {name} with {', '.join(KEYS)}"
            if status == 409:  # created meanwhile (another run): look again
                time.sleep(1)
                continue
            raise SystemExit(f"ensure-secrets: creating Secret {name}: HTTP {status}: {answer}")
        if status != 200:
            raise SystemExit(f"ensure-secrets: reading Secret {name}: HTTP {status}: {found}; "
                             "the hook's Role must allow get/create/patch on secrets")
        have = (found.get("data") or {}) if isinstance(found, dict) else {}
        missing = [k for k in KEYS if not have.get(k)]
        if not missing:
            return f"Secret {name} has {', '.join(KEYS)}: unchanged"
        patch = {"data": generate(missing)}
        status, answer = api.call("PATCH", f"/{name}", patch, "application/merge-patch+json")
        if status == 200:
            return f"added {', '.join(missing)} to Secret {name}; other keys unchanged"
        raise SystemExit(f"ensure-secrets: patching Secret {name}: HTTP {status}: {answer}")
    raise SystemExit(f"ensure-secrets: Secret {name} kept changing under us; run the hook again")


def main() -> int:
    name = os.environ["SECRET_NAME"]
    labels = json.loads(os.environ.get("SECRET_LABELS", "{}"))
    annotations = json.loads(os.environ.get("SECRET_ANNOTATIONS", "{}"))
    print(f"ensure-secrets: {ensure(Api(), name, labels, annotations)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
