"""The f7t4jhub chart rendered by the real helm: lint, schema, Kubernetes schemas, shape.

Values files: tests/chart/values/ (minimal, vault, existing secrets, stack) and the ArgoCD
example (chart/examples/argocd, the seed's nesting). Rendered manifests are validated with
kubernetes-validate against the Kubernetes versions of catalogue.toml [chart], and the
External Secrets resources against the CRDs of the catalogue's operator version.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from firecrestspawner import hubconfig
from tests.chart.helmtools import (
    CHART,
    RELEASE,
    VALUES,
    build_umbrella,
    documents,
    find,
    kube_versions,
    pins,
    render,
    run_helm,
    template,
)
from tests.support.require import unavailable

# Each values file is layered on minimal.yaml (the values every site sets).
GOOD = ["minimal.yaml", "vault.yaml", "existing-secrets.yaml", "stack.yaml"]


def layers(name: str) -> tuple[str, ...]:
    return ("minimal.yaml",) if name == "minimal.yaml" else ("minimal.yaml", name)
LOCAL_KINDS = {"SecretStore", "ExternalSecret"}  # CRDs: validated against the operator's


@pytest.fixture(scope="module")
def argocd_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_umbrella(tmp_path_factory.mktemp("argocd"))


@pytest.fixture(scope="module")
def rendered(argocd_site: Path) -> dict[str, list[dict[str, Any]]]:
    out = {name: render(*layers(name)) for name in GOOD}
    out["argocd"] = render(argocd_site / "values.yaml", chart=argocd_site, release="jhub-daint")
    return out


@pytest.mark.parametrize("values", GOOD)
def test_helm_lint_strict(values: str) -> None:
    files = [a for name in layers(values) for a in ("--values", str(VALUES / name))]
    proc = run_helm("lint", "--strict", str(CHART), *files, "--kube-version", kube_versions()[0])
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_argocd_umbrella_nests_values_as_the_seed(rendered: dict[str, Any]) -> None:
    docs = rendered["argocd"]
    config = yaml.safe_load(find(docs, "ConfigMap", "-hub-config")["data"]["hub.yaml"])
    assert config["spawner"]["system"] == "daint"
    assert config["spawner"]["allowed_uenvs"] == {"prgenv-gnu/24.11:v1": ["default"]}
    ingress = find(docs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "jupyter-daint.example.org"
    assert find(docs, "ExternalSecret")["apiVersion"] == "external-secrets.io/v1"
    hub = find(docs, "Deployment", "-hub")
    assert "secret.reloader.stakater.com/reload" in hub["metadata"]["annotations"]


def _validate_crd(doc: dict[str, Any], crd_dir: Path) -> None:
    import jsonschema

    plural = {"SecretStore": "secretstores", "ExternalSecret": "externalsecrets"}[doc["kind"]]
    crd = yaml.safe_load((crd_dir / f"external-secrets.io_{plural}.yaml").read_text())
    version = doc["apiVersion"].split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served["served"], f"{doc['kind']} {version} is not served by the operator"
    assert served["storage"], f"{doc['kind']} {version} is not the operator's storage version"
    schema = served["schema"]["openAPIV3Schema"]
    jsonschema.validate(doc, schema)


@pytest.fixture(scope="module")
def eso_crds() -> Path:
    """The External Secrets operator's CRDs, from its Go module (catalogue version)."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists(
        "/usr/local/go/bin/go") else None)
    if go is None:
        unavailable("tools", "go is not installed: it fetches the External Secrets CRDs")
    module = f"github.com/external-secrets/external-secrets@{pins()['external-secrets']}"
    proc = subprocess.run([go, "mod", "download", "-json", module], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "GOFLAGS": "-mod=mod"},
                          check=False)
    assert proc.returncode == 0, f"go mod download {module}: {proc.stdout}{proc.stderr}"
    return Path(json.loads(proc.stdout)["Dir"]) / "config" / "crds" / "bases"


@pytest.mark.parametrize("kube", kube_versions())
def test_manifests_match_the_kubernetes_schemas(
    kube: str, argocd_site: Path, eso_crds: Path
) -> None:
    import kubernetes_validate

    sets = {name: render(*layers(name), kube_version=kube) for name in GOOD}
    sets["argocd"] = render(argocd_site / "values.yaml", chart=argocd_site,
                            release="jhub-daint", kube_version=kube)
    checked = 0
    for name, docs in sets.items():
        for doc in docs:
            where = f"{name}: {doc['kind']} {doc['metadata']['name']}"
            try:
                if doc["kind"] in LOCAL_KINDS:
                    _validate_crd(doc, eso_crds)
                else:
                    kubernetes_validate.validate(doc, kube, strict=True)
            except Exception as exc:  # noqa: BLE001 - reported with the object's name
                raise AssertionError(f"{where} (Kubernetes {kube}): {exc}") from None
            checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("bad-misspelt.yaml", "max_nodez"),
        ("bad-mistyped.yaml", "apiPort"),
        ("bad-toplevel.yaml", "ingres"),
        ("bad-secret-in-config.yaml", "client_secret"),
        ("bad-source.yaml", "source"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(values: str, message: str) -> None:
    proc = template("minimal.yaml", values, check=False)
    assert proc.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("ingress.host", "ingress.host is required"),
        ("hub.config.spawner.firecrest_url", "hub.config.spawner.firecrest_url is required"),
        ("oidc.clientSecret", "oidc.clientSecret is required"),
        ("hub.config.authenticator.token_url", "hub.config.authenticator.token_url is required"),
    ],
)
def test_missing_site_values_are_named(tmp_path: Path, drop: str, message: str) -> None:
    data = yaml.safe_load((VALUES / "minimal.yaml").read_text())
    node = data
    *parents, leaf = drop.split(".")
    for part in parents:
        node = node[part]
    del node[leaf]
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(data))
    proc = template(tmp_path / "v.yaml", check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_rendered_hub_config_is_accepted_by_the_hub_side_check(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    """Validated and applied as the hub applies it: the spawner built from it passes its
    own settings check (e.g. default partition among the allowed ones)."""
    from traitlets.config import Config

    for name in ("proxy-auth-token", "cookie-secret", "crypt-key"):
        (tmp_path / name).write_text("ab" * 32)
    (tmp_path / "oauth-client-id").write_text("jupyterhub")
    (tmp_path / "oauth-client-secret").write_text("from-a-file")
    secrets = hubconfig.read_secrets(tmp_path)
    for name, docs in rendered.items():
        text = find(docs, "ConfigMap", "-hub-config")["data"]["hub.yaml"]
        data = yaml.safe_load(text)
        hubconfig.validate(data, f"{name}: hub.yaml")
        config = Config()
        hubconfig.apply(config, data, secrets)
        assert config.FirecRESTSpawner.system == data["spawner"]["system"], name
        assert "client_secret" not in text and "not-a-real-secret" not in text


def test_chart_schema_carries_the_hub_config_schema() -> None:
    from tests.chart import sync_schema

    current = json.loads((CHART / "values.schema.json").read_text())
    assert current == json.loads(sync_schema.synced()), (
        "chart/f7t4jhub/values.schema.json hub.config differs from "
        "firecrestspawner/hubconfig.schema.json: run python -m tests.chart.sync_schema")


def test_default_images_are_the_catalogue_versions(rendered: dict[str, Any]) -> None:
    from f7tbuild import catalogue

    cat = catalogue.load()
    (hub,) = cat.select(["hub"])
    (chp,) = cat.select(["chp"])
    docs = rendered["minimal.yaml"]
    hub_image = find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"][0]
    chp_image = find(docs, "Deployment", "-proxy")["spec"]["template"]["spec"]["containers"][0]
    assert hub_image["image"] == f"{cat.registry}/f7t4jhub:{dict(hub.stack)['jupyterhub']}"
    assert chp_image["image"] == (
        f"{cat.registry}/chp:{chp.versions['configurable-http-proxy']}")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == dict(hub.stack)["jupyterhub"]


def _pod(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    pod: dict[str, Any] = find(docs, "Deployment", f"-{component}")["spec"]["template"]
    return pod


@pytest.mark.parametrize("component", ["hub", "proxy"])
def test_pods_are_hardened_and_probed(rendered: dict[str, Any], component: str) -> None:
    docs = rendered["minimal.yaml"]
    deployment = find(docs, "Deployment", f"-{component}")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    spec = _pod(docs, component)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    path = "/hub/health" if component == "hub" else "/_chp_healthz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == path


def test_hub_database_is_on_a_kept_volume(rendered: dict[str, Any]) -> None:
    docs = rendered["minimal.yaml"]
    pvc = find(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Delete=false"
    spec = _pod(docs, "hub")["spec"]
    (data,) = [v for v in spec["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/srv/jupyterhub"


def test_ingress_routes_only_the_public_proxy_port(rendered: dict[str, Any]) -> None:
    for name, docs in rendered.items():
        ingress = find(docs, "Ingress")
        backends = [p["backend"]["service"] for r in ingress["spec"]["rules"]
                    for p in r["http"]["paths"]]
        public = find(docs, "Service", "-proxy-public")
        assert backends == [{"name": public["metadata"]["name"], "port": {"name": "http"}}], name
        assert [p["name"] for p in public["spec"]["ports"]] == ["http"]
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
        api = find(docs, "Service", "-proxy-api")
        assert api["spec"]["type"] == "ClusterIP"


def test_network_policies_keep_the_proxy_api_for_the_hub(rendered: dict[str, Any]) -> None:
    docs = rendered["minimal.yaml"]
    hub_labels = _pod(docs, "hub")["metadata"]["labels"]
    proxy_policy = find(docs, "NetworkPolicy", "-proxy")
    api_rules = [r for r in proxy_policy["spec"]["ingress"]
                 if {"protocol": "TCP", "port": "api"} in r["ports"]]
    (api_rule,) = api_rules
    (peer,) = api_rule["from"]
    assert set(peer) == {"podSelector"}
    selector = peer["podSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "hub"
    assert selector["app.kubernetes.io/instance"] == RELEASE
    assert all(hub_labels[k] == v for k, v in selector.items())
    hub_policy = find(docs, "NetworkPolicy", "-hub")
    assert set(hub_policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = [p.get("port") for r in hub_policy["spec"]["egress"] for p in r.get("ports", [])]
    assert 8001 in egress_ports and 443 in egress_ports and 53 in egress_ports
    (hub_in,) = hub_policy["spec"]["ingress"]
    assert hub_in["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "proxy"


def test_labels_are_scoped_to_the_release(rendered: dict[str, Any]) -> None:
    for name, docs in rendered.items():
        release = "jhub-daint" if name == "argocd" else RELEASE
        for doc in docs:
            labels = doc["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == release, (name, doc["kind"])
            selector = doc.get("spec", {}).get("selector", {})
            selector = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
            if selector:
                assert selector["app.kubernetes.io/instance"] == release
        pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
        assert len(pdbs) == 2


def _checksums(docs: list[dict[str, Any]]) -> dict[str, str]:
    annotations: dict[str, str] = _pod(docs, "hub")["metadata"]["annotations"]
    return annotations


def test_config_and_secret_changes_roll_the_hub(tmp_path: Path) -> None:
    base = _checksums(render("minimal.yaml"))
    (tmp_path / "c.yaml").write_text("hub: {config: {spawner: {max_nodes: 2}}}\n")
    (tmp_path / "s.yaml").write_text("oidc: {clientSecret: rotated}\n")
    (tmp_path / "e.yaml").write_text("hub: {extraConfig: {50-x.py: 'c.JupyterHub.x = 1'}}\n")
    config = _checksums(render("minimal.yaml", tmp_path / "c.yaml"))
    secret = _checksums(render("minimal.yaml", tmp_path / "s.yaml"))
    extra = _checksums(render("minimal.yaml", tmp_path / "e.yaml"))
    assert config["checksum/config"] != base["checksum/config"]
    assert secret["checksum/oidc"] != base["checksum/oidc"]
    assert secret["checksum/config"] == base["checksum/config"]
    assert extra["checksum/extra-config"] != base["checksum/extra-config"]


def test_reloader_annotations_are_an_option(rendered: dict[str, Any], tmp_path: Path) -> None:
    off = find(rendered["minimal.yaml"], "Deployment", "-hub")["metadata"].get("annotations", {})
    assert not any("reloader" in k for k in off)
    (tmp_path / "r.yaml").write_text("hub: {reloader: {enabled: true}}\n")
    on = find(render("minimal.yaml", tmp_path / "r.yaml"), "Deployment", "-hub")
    annotations = on["metadata"]["annotations"]
    assert annotations["configmap.reloader.stakater.com/reload"] == f"{RELEASE}-f7t4jhub-hub-config"
    assert annotations["secret.reloader.stakater.com/reload"] == (
        f"{RELEASE}-f7t4jhub-hub-secrets,{RELEASE}-f7t4jhub-oidc")


def test_escape_hatch_is_mounted_in_conf_d(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("hub: {extraConfig: {50-x.py: 'c.JupyterHub.x = 1'}}\n")
    docs = render("minimal.yaml", tmp_path / "e.yaml")
    extra = find(docs, "ConfigMap", "-hub-extra")
    assert extra["data"] == {"50-x.py": "c.JupyterHub.x = 1"}
    mounts = _pod(docs, "hub")["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "extra-config", "mountPath": "/etc/jupyterhub/conf.d",
            "readOnly": True} in mounts


def test_vault_switch_replaces_the_plain_secret(rendered: dict[str, Any]) -> None:
    plain, vault = rendered["minimal.yaml"], rendered["vault.yaml"]
    assert [d for d in plain if d["kind"] == "Secret"]
    assert not [d for d in plain if d["kind"] in LOCAL_KINDS]
    assert not [d for d in vault if d["kind"] == "Secret"]
    store, external = find(vault, "SecretStore"), find(vault, "ExternalSecret")
    assert store["apiVersion"] == external["apiVersion"] == "external-secrets.io/v1"
    assert external["spec"]["secretStoreRef"]["name"] == store["metadata"]["name"]
    target = external["spec"]["target"]["name"]
    projected = next(v for v in _pod(vault, "hub")["spec"]["volumes"] if v["name"] == "secrets")
    names = [s["secret"]["name"] for s in projected["projected"]["sources"]]
    assert target in names
    assert {d["secretKey"] for d in external["spec"]["data"]} == {
        "oauth-client-id", "oauth-client-secret"}


def test_generated_secrets_never_appear_in_renders_and_upgrades_keep_them() -> None:
    """Two renders (install, then upgrade) are identical and carry no generated value:
    the hook Job makes them once in the cluster; existingSecret replaces the Job."""
    first = template("minimal.yaml").stdout
    second = template("minimal.yaml", extra=("--is-upgrade",)).stdout
    assert first == second
    docs = documents(first)
    for doc in docs:
        if doc["kind"] == "Secret":
            assert set(doc["stringData"]) == {"oauth-client-id", "oauth-client-secret"}
    job = find(docs, "Job")
    hook = job["metadata"]["annotations"]["helm.sh/hook"]
    assert set(hook.split(",")) == {"pre-install", "pre-upgrade"}
    for doc in docs:  # the Job and what it needs run before everything else, also in ArgoCD
        if doc["kind"] in ("Job", "Role", "RoleBinding", "ServiceAccount") or doc[
                "metadata"]["name"].endswith("-secrets") and doc["kind"] == "ConfigMap":
            annotations = doc["metadata"]["annotations"]
            assert annotations["argocd.argoproj.io/hook"] == "PreSync", doc["kind"]
            assert (annotations["argocd.argoproj.io/sync-wave"]
                    == annotations["helm.sh/hook-weight"])
    values = "\n".join(line for line in first.splitlines() if "checksum/" not in line)
    assert not re.search(r"\b[0-9a-f]{64}\b", values), "a generated-looking value is rendered"
    existing = render("minimal.yaml", "existing-secrets.yaml")
    assert not [d for d in existing if d["kind"] in ("Job", "Role", "ServiceAccount")]
    volumes = _pod(existing, "hub")["spec"]["volumes"]
    sources = next(v for v in volumes if v["name"] == "secrets")["projected"]["sources"]
    assert [s["secret"]["name"] for s in sources] == ["site-hub-secrets", "site-oidc"]


def test_the_hook_script_in_the_configmap_is_the_tested_one(rendered: dict[str, Any]) -> None:
    script = find(rendered["minimal.yaml"], "ConfigMap", "-secrets")["data"]["ensure_secrets.py"]
    assert script == (CHART / "files" / "ensure_secrets.py").read_text()
    assert base64  # used by the stack test's secret decoding as well
