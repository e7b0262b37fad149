"""The chart's rendered pods run with the real hub and chp images (Docker SDK).

No Kubernetes runs here, so the pods are reproduced from the rendered manifests, not
written by hand: each container gets exactly the rendered image (mapped to the local
build of the same image and version), args, env, security context (user, fsGroup,
read-only root file system, no capabilities) and volumes — ConfigMap and Secret files at
the mount paths with the rendered items and modes, the data volume, emptyDirs — on a
Docker network whose aliases are the rendered Service names. The generated Secret comes
from the chart's hook script run against a Secrets API stand-in (as the hook Job would
make it). Then: the hub starts with FirecRESTSpawner and the rendered settings, registers
its route with the proxy through the proxy API, and /hub/health answers through the proxy.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helmtools import find, render
from tests.chart.test_ensure_secrets import SecretsApi, run_hook
from tests.support.require import unavailable

pytestmark = [pytest.mark.docker]

#: rendered image repository's last part -> local image name (f7tbuild's local refs)
LOCAL_NAMES = {"f7t4jhub": "f7t4jhub/hub", "chp": "f7t4jhub/chp"}
#: overrides for a run against particular local builds
IMAGE_ENV = {"f7t4jhub": "F7T_CHART_HUB_IMAGE", "chp": "F7T_CHART_CHP_IMAGE"}


def docker_client() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        unavailable("docker", f"no Docker engine: {exc}")
    return client


def local_image(client: Any, rendered: str) -> str:
    """The local build of a rendered image reference (same name and version)."""
    repository, _, tag = rendered.rpartition(":")
    family = repository.rsplit("/", 1)[-1]
    override = os.environ.get(IMAGE_ENV[family])
    candidates = [override] if override else [
        f"{LOCAL_NAMES[family]}:{tag}", f"{LOCAL_NAMES[family]}:{tag}-standin"]
    import docker.errors

    for ref in candidates:
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            continue
        return ref
    unavailable("docker", f"no local image for {rendered} (tried {candidates}): build it "
                "first (nox -s build-hub / build-chp)")


def http(url: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Pod:
    """One rendered pod made into a container: its files, mounts and settings."""

    def __init__(self, deployment: dict[str, Any], docs: list[dict[str, Any]],
                 secrets: dict[str, dict[str, str]], root: Path) -> None:
        self.spec = deployment["spec"]["template"]["spec"]
        (self.container,) = self.spec["containers"]
        self.docs, self.secrets, self.root = docs, secrets, root
        self.name = deployment["metadata"]["name"]
        self.psc = self.spec["securityContext"]
        self.fs_group = int(self.psc["fsGroup"])

    def _data(self, kind: str, name: str) -> dict[str, bytes]:
        if kind == "Secret" and name in self.secrets:
            return {k: base64.b64decode(v) for k, v in self.secrets[name].items()}
        doc = find(self.docs, kind, name)
        assert doc["metadata"]["name"] == name
        if kind == "ConfigMap":
            return {k: v.encode() for k, v in doc["data"].items()}
        if "stringData" in doc:
            return {k: v.encode() for k, v in doc["stringData"].items()}
        return {k: base64.b64decode(v) for k, v in doc["data"].items()}

    def _write(self, directory: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None,
               mode: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        chosen = items or [{"key": k, "path": k} for k in data]
        for item in chosen:
            assert item["key"] in data, f"{self.name}: key {item['key']} not in its source"
            path = directory / item["path"]
            path.write_bytes(data[item["key"]])
            os.chown(path, 0, self.fs_group)  # kubelet: root-owned, group fsGroup
            path.chmod(item.get("mode", mode))
        os.chown(directory, 0, self.fs_group)
        directory.chmod(0o755)

    def mounts(self) -> tuple[list[Any], dict[str, str]]:
        """Docker bind mounts and tmpfs mounts for the container's volumeMounts."""
        from docker.types import Mount

        volumes = {v["name"]: v for v in self.spec["volumes"]}
        binds: list[Any] = []
        tmpfs: dict[str, str] = {}
        for m in self.container["volumeMounts"]:
            volume = volumes[m["name"]]
            host = self.root / self.name / m["name"]
            if "configMap" in volume:
                src = volume["configMap"]
                self._write(host, self._data("ConfigMap", src["name"]), src.get("items"),
                            src.get("defaultMode", 0o644))
            elif "secret" in volume:
                src = volume["secret"]
                self._write(host, self._data("Secret", src["secretName"]), src.get("items"),
                            src.get("defaultMode", 0o644))
            elif "projected" in volume:
                for source in volume["projected"]["sources"]:
                    (kind, src), = source.items()
                    data = self._data({"secret": "Secret", "configMap": "ConfigMap"}[kind],
                                      src["name"])
                    self._write(host, data, src.get("items"),
                                volume["projected"].get("defaultMode", 0o644))
            elif "persistentVolumeClaim" in volume:
                host.mkdir(parents=True)
                os.chown(host, 0, self.fs_group)
                host.chmod(0o2775)  # fsGroup: group-owned, setgid
            elif "emptyDir" in volume:
                tmpfs[m["mountPath"]] = f"mode=1777,size={volume['emptyDir'].get('sizeLimit', '64Mi').replace('Mi', 'm')}"
                continue
            else:
                raise AssertionError(f"{self.name}: volume kind not reproduced: {volume}")
            binds.append(Mount(m["mountPath"], str(host), type="bind",
                               read_only=bool(m.get("readOnly"))))
        return binds, tmpfs

    def run(self, client: Any, image: str, network: str, aliases: list[str],
            ports: dict[str, Any] | None = None) -> Any:
        sc = self.container["securityContext"]
        assert sc["capabilities"]["drop"] == ["ALL"]
        binds, tmpfs = self.mounts()
        env = {e["name"]: e["value"] for e in self.container.get("env", [])}
        return client.containers.run(
            image,
            command=self.container.get("args"),
            entrypoint=self.container.get("command"),
            environment=env,
            user=f"{self.psc['runAsUser']}:{self.psc['runAsGroup']}",
            group_add=[str(self.fs_group)],
            read_only=sc["readOnlyRootFilesystem"],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mounts=binds,
            tmpfs=tmpfs,
            network=network,
            networking_config={network: client.api.create_endpoint_config(aliases=aliases)},
            ports=ports or {},
            name=f"f7t-chart-{self.name}-{uuid.uuid4().hex[:6]}",
            detach=True,
        )


def service_names(docs: list[dict[str, Any]], component: str,
                  container: dict[str, Any]) -> list[str]:
    """The rendered Services that select this component; their ports must equal the
    container ports they target (a network alias cannot remap a port)."""
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    names = []
    for svc in docs:
        if svc["kind"] != "Service":
            continue
        if svc["spec"]["selector"].get("app.kubernetes.io/component") != component:
            continue
        for p in svc["spec"]["ports"]:
            assert ports[p["targetPort"]] == p["port"], (svc["metadata"]["name"], p)
        names.append(svc["metadata"]["name"])
    return names


@pytest.fixture
def secrets_api() -> Iterator[SecretsApi]:
    server = SecretsApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def wait_for(what: str, check: Any, containers: list[Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        for c in containers:
            c.reload()
            if c.status != "running":
                break
        else:
            time.sleep(1)
            continue
        break
    logs = "\n".join(f"--- {c.name} ({c.status}):\n{c.logs().decode(errors='replace')[-4000:]}"
                     for c in containers)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{logs}")


def test_rendered_pods_run_the_real_images(tmp_path: Path, secrets_api: SecretsApi) -> None:
    if os.geteuid() != 0:
        unavailable("root", "the pods' files are given to root and the pod's fsGroup, as the "
                    "kubelet does: run as root")
    client = docker_client()
    docs = render("minimal.yaml", "stack.yaml")
    hub_deploy, proxy_deploy = find(docs, "Deployment", "-hub"), find(docs, "Deployment", "-proxy")
    hub_image = local_image(client, hub_deploy["spec"]["template"]["spec"]["containers"][0]["image"])
    chp_image = local_image(client, proxy_deploy["spec"]["template"]["spec"]["containers"][0]["image"])

    # The generated Secret, made by the chart's hook script as the hook Job makes it.
    job_env = {e["name"]: e["value"] for e in
               find(docs, "Job")["spec"]["template"]["spec"]["containers"][0]["env"]}
    hook = run_hook(secrets_api, tmp_path, name=job_env["SECRET_NAME"],
                    labels=json.loads(job_env["SECRET_LABELS"]),
                    annotations=json.loads(job_env["SECRET_ANNOTATIONS"]))
    assert hook.returncode == 0, hook.stderr
    generated = {name: s["data"] for name, s in secrets_api.secrets.items()}

    root = tmp_path / "pods"
    root.mkdir()
    root.chmod(0o755)
    tmp_path.chmod(0o755)
    hub_pod = Pod(hub_deploy, docs, generated, root)
    proxy_pod = Pod(proxy_deploy, docs, generated, root)
    network = client.networks.create(f"f7t-chart-{uuid.uuid4().hex[:8]}", driver="bridge")
    started: list[Any] = []
    try:
        proxy = proxy_pod.run(
            client, chp_image, network.name,
            service_names(docs, "proxy", proxy_pod.container),
            ports={f"{p['containerPort']}/tcp": ("127.0.0.1", None)
                   for p in proxy_pod.container["ports"]})
        started.append(proxy)
        hub = hub_pod.run(client, hub_image, network.name,
                          service_names(docs, "hub", hub_pod.container))
        started.append(hub)
        proxy.reload()
        published = {name: int(proxy.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])
                     for name, port in ((p["name"], p["containerPort"])
                                        for p in proxy_pod.container["ports"])}
        public = f"http://127.0.0.1:{published['http']}"
        api = f"http://127.0.0.1:{published['api']}"
        token = base64.b64decode(
            generated[job_env["SECRET_NAME"]]["proxy-auth-token"]).decode()

        # The hub registers its route through the proxy API (the Service alias in hub.yaml).
        config = yaml.safe_load(find(docs, "ConfigMap", "-hub-config")["data"]["hub.yaml"])

        def hub_route() -> Any:
            # chp's --default-target also shows as "/"; the hub's own entry carries its flags.
            status, body = http(f"{api}/api/routes", token=token)
            route = (json.loads(body) if status == 200 else {}).get("/") or {}
            return route if route.get("jupyterhub") else None

        route = wait_for("the hub's route in the proxy", hub_route, started)
        assert route["target"] == config["hub"]["hub_connect_url"]
        assert route.get("hub") is True, route
        assert http(f"{api}/api/routes")[0] == 403  # the proxy API needs the token

        # /hub/health through the proxy (the Ingress's only backend).
        health = wait_for("/hub/health through the proxy",
                          lambda: http(f"{public}/hub/health")[0] == 200, started)
        assert health
        status, page = http(f"{public}/hub/login")
        assert status == 200 and b"Welcome to the test hub" in page

        # The probes, as the kubelet would send them.
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            for pod, container in ((hub_pod, hub), (proxy_pod, proxy)):
                spec = pod.container.get(probe)
                if not spec:
                    continue
                port = {p["name"]: p["containerPort"] for p in pod.container["ports"]}[
                    spec["httpGet"]["port"]]
                code = container.exec_run(
                    ["python" if pod is hub_pod else "node", "-e" if pod is proxy_pod else "-c",
                     _probe_script(pod is hub_pod, port, spec["httpGet"]["path"])])
                assert code.exit_code == 0, (pod.name, probe, code.output[-500:])

        logs = hub.logs().decode(errors="replace")
        assert "Using Spawner: firecrestspawner.spawner.FirecRESTSpawner" in logs, logs[-3000:]
        assert "Using Authenticator: oauthenticator.generic.GenericOAuthenticator" in logs

        # The hub's settings are the rendered ones (read in the running container, same env).
        shown_run = hub.exec_run(["python", "-m", "firecrestspawner.hubconfig", "show"],
                                 environment={e["name"]: e["value"]
                                              for e in hub_pod.container["env"]})
        assert shown_run.exit_code == 0, shown_run.output[-2000:]
        shown = json.loads(shown_run.output)
        for key, value in config["spawner"].items():
            assert shown["FirecRESTSpawner"][key] == value, key
        assert shown["JupyterHub"]["cleanup_servers"] is False
        assert shown["ConfigurableHTTPProxy"]["should_start"] is False
        assert shown["ConfigurableHTTPProxy"]["api_url"] == config["proxy"]["api_url"]
        assert shown["GenericOAuthenticator"]["client_secret"] == "<set>"
        assert shown["Authenticator"]["admin_users"] == ["hpc-admin"]
        data_dir = root / hub_pod.name / "data"
        assert (data_dir / "jupyterhub.sqlite").is_file()
    finally:
        for c in started:
            c.remove(force=True)
        network.remove()


def _probe_script(python: bool, port: int, path: str) -> str:
    url = f"http://127.0.0.1:{port}{path}"
    if python:
        return ("import sys, urllib.request as u; "
                f"sys.exit(0 if u.urlopen({url!r}, timeout=5).status == 200 else 1)")
    return (f"require('http').get({json.dumps(url)}, r => process.exit(r.statusCode === 200 ? 0 : 1))"
            ".on('error', () => process.exit(1))")
