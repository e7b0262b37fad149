#!/usr/bin/env bash
# Install helm (the chart tests' tool) with `go install` from the Go module proxy, at the
# version in catalogue.toml [chart] helm. Idempotent: skips when that version is on PATH.
# A go-installed helm carries no release ldflags (it would report Kubernetes v1.20 to
# charts); they are set here: helm's version and the newest Kubernetes of [chart] kubernetes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
catalogue="$here/../catalogue.toml"
read -r version kube_minor < <(python3 - "$catalogue" <<'PY'
import sys, tomllib
chart = tomllib.load(open(sys.argv[1], "rb"))["chart"]
print(chart["helm"], chart["kubernetes"][-1].split(".")[1])
PY
)

if command -v helm >/dev/null && [ "$(helm version --template '{{.Version}}' 2>/dev/null)" = "$version" ]; then
  echo "helm $version present ($(command -v helm))"
  exit 0
fi

go="$(command -v go || true)"
[ -n "$go" ] || go=/usr/local/go/bin/go
if [ ! -x "$go" ]; then
  echo "install-helm: Go is needed to build helm $version (go install); install Go >= 1.24 (e.g. at /usr/local/go) and re-run" >&2
  exit 1
fi

echo "building helm $version with $("$go" version) (a few minutes)"
GOBIN=/usr/local/bin GOFLAGS=-mod=mod "$go" install -ldflags "\
-X helm.sh/helm/v3/internal/version.version=$version \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor" \
  "helm.sh/helm/v3/cmd/helm@$version"
/usr/local/bin/helm version --template '{{.Version}}{{"\n"}}'
