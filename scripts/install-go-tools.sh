#!/usr/bin/env bash
# Install the Go programs publishing and workflow lint use, pinned, with `go install`
# (Go module proxy), into $F7T_GOBIN (default /opt/f7t4jhub-tools/gobin), linked into
# /usr/local/bin:
#   crane       registry client and the loopback registry of the publish test
#   cosign      signs and verifies image digests (v2: offline flags, see docs/publishing.md)
#   syft        SBOM (SPDX) of each published image
#   actionlint  lints .github/workflows in `nox -s lint`
# Idempotent: a tool whose recorded module@version matches is left alone. Needs Go
# >= 1.24 on PATH or in /usr/local/go/bin (GitHub: actions/setup-go). Cold, on 2 CPUs:
# crane ~1-2 min, actionlint ~20 s, cosign ~4 min, syft ~5 min.
set -euo pipefail

gobin="${F7T_GOBIN:-/opt/f7t4jhub-tools/gobin}"
tools=(
  "crane github.com/google/go-containerregistry/cmd/crane@v0.22.1"
  "actionlint github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
  "cosign github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5"
  "syft github.com/anchore/syft/cmd/syft@v1.57.1"
)

go_bin="$(command -v go || true)"
[ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
if [ -z "$go_bin" ]; then
  echo "install-go-tools: no Go toolchain: install Go >= 1.24 (PATH or /usr/local/go)" >&2
  exit 1
fi

mkdir -p "$gobin"
for entry in "${tools[@]}"; do
  name="${entry%% *}"
  module="${entry#* }"
  stamp="$gobin/.$name.module"
  if [ -x "$gobin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$module" ]; then
    echo "install-go-tools: $name ($module) present"
  else
    echo "install-go-tools: go install $module"
    started=$(date +%s)
    GOBIN="$gobin" GOFLAGS=-buildvcs=false "$go_bin" install "$module"
    echo "$module" > "$stamp"
    echo "install-go-tools: $name built in $(( $(date +%s) - started ))s"
  fi
  ln -sf "$gobin/$name" "/usr/local/bin/$name"
done
