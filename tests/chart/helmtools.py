"""Render the f7t4jhub chart with the real helm and read the result (tests/chart).

helm comes from PATH (scripts/host-setup.sh installs the catalogue's version with
``go install``); the Kubernetes version is always passed (``--kube-version``), as a
go-installed helm would otherwise assume v1.20.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

from tests.support.require import unavailable

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart" / "f7t4jhub"
EXAMPLES = REPO / "chart" / "examples"
VALUES = Path(__file__).resolve().parent / "values"
RELEASE, NAMESPACE = "rel", "jhub"


def pins() -> dict[str, Any]:
    """The [chart] table of catalogue.toml (helm, Kubernetes and External Secrets versions)."""
    with open(REPO / "catalogue.toml", "rb") as fh:
        table: dict[str, Any] = tomllib.load(fh)["chart"]
    return table


def kube_versions() -> list[str]:
    return list(pins()["kubernetes"])


def helm() -> str:
    path = shutil.which("helm")
    if path is None:
        unavailable("tools", "helm is not on PATH: run scripts/host-setup.sh (go install of "
                    f"helm {pins()['helm']})")
    return path


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm(), *args], capture_output=True, text=True, timeout=180,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template(*values: Path | str, chart: Path = CHART, release: str = RELEASE,
             kube_version: str | None = None, extra: tuple[str, ...] = (),
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """``helm template`` of ``chart`` with the values files (names: tests/chart/values/)."""
    args = ["template", release, str(chart), "--namespace", NAMESPACE,
            "--kube-version", kube_version or kube_versions()[-1]]
    for v in values:
        path = v if isinstance(v, Path) else VALUES / v
        args += ["--values", str(path)]
    return run_helm(*args, *extra, check=check)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(*values: Path | str, **kwargs: Any) -> list[dict[str, Any]]:
    return documents(template(*values, **kwargs).stdout)


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind
             and d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def build_umbrella(tmp: Path) -> Path:
    """Copy chart/ to ``tmp`` and build the ArgoCD example's file:// dependencies there
    (the umbrella first, then the site chart); the site chart's path."""
    shutil.copytree(REPO / "chart", tmp / "chart")
    argocd = tmp / "chart" / "examples" / "argocd"
    run_helm("dependency", "build", str(argocd / "umbrella"))
    run_helm("dependency", "build", str(argocd / "site"))
    return argocd / "site"
