#!/usr/bin/env bash
# Prepare a bare Debian 12 host (as root) for building and testing f7t4jhub:
#   - first, a check of the free disk space where Docker and the checkout live (at least
#     F7T_MIN_FREE_GB, default 15; below it, stop and say how to free space),
#   - a Docker engine (scripts/install-docker.sh),
#   - debootstrap (stand-in base images when no registry can be reached),
#   - a local single-node Slurm cluster with accounting (slurmdbd + MariaDB) for the
#     end-to-end tests (scripts/slurm-up.sh),
#   - Node.js/npm on the host (configurable-http-proxy for the end-to-end hub),
#   - for the deployment end-to-end test (tests/deploy, nox -s e2e): rootless Podman
#     (podman uidmap slirp4netns fuse-overlayfs), Debian's Chromium, and the test's npm
#     packages (oidc-provider, playwright-core) in tests/deploy/node/node_modules,
#   - nox and uv in a tools venv, linked into /usr/local/bin,
#   - helm, crane, cosign, syft, actionlint (scripts/go-tools.sh; needs Go), built in the
#     background while the images build: `nox -s lint` and `nox -s tests` wait for them.
# Idempotent: re-running only starts what is not running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${F7T_TOOLS_VENV:-/opt/f7t4jhub-tools}"

step() { printf '\n== host-setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "host-setup: must run as root (it installs Debian packages and starts daemons)." >&2
  echo "            run: sudo bash scripts/host-setup.sh" >&2
  exit 1
fi

step "free disk space (F7T_MIN_FREE_GB=${F7T_MIN_FREE_GB:-15})"
# A build and test run needs about 10 GB (nox venvs ~2.5 GB, images ~4 GB, the deploy
# test's Podman copy ~1.2 GB, build cache); the default leaves half as much again as a margin. Free space
# is what df calls available: the file system's reserved blocks are not counted.
min_gb="${F7T_MIN_FREE_GB:-15}"
if ! [[ "$min_gb" =~ ^[0-9]+$ ]]; then
  echo "host-setup: F7T_MIN_FREE_GB=$min_gb is not a whole number of GB" >&2
  exit 1
fi
min_gb=$(( 10#$min_gb ))
checkout="$(cd "$here/.." && pwd)"
# Docker's data root; before the engine is installed, the directory that will hold it.
docker_dir=/var/lib/docker
[ -d "$docker_dir" ] || docker_dir="$(dirname "$docker_dir")"
mount_of() { df --output=target -- "$1" | tail -n 1; }
check_free() {  # <mount point> <what it holds>
  local avail_kib free_gb
  avail_kib="$(df --output=avail -- "$1" | tail -n 1 | tr -d ' ')"
  free_gb="$(awk -v k="$avail_kib" 'BEGIN { printf "%.1f", k / 1048576 }')"
  if [ "$avail_kib" -lt $(( min_gb * 1048576 )) ]; then
    {
      echo "host-setup: only $free_gb GB free on $1 (holds $2);"
      echo "            a build and test run needs about 10 GB, and host-setup asks for"
      echo "            $min_gb GB to leave a margin."
      echo "            Free space: \`nox -s clean-images\` removes earlier builds of f7t4jhub"
      echo "            images, \`docker builder prune\` the build cache (\`docker system df\`"
      echo "            shows what the engine holds); or set F7T_MIN_FREE_GB=<GB> to go on."
    } >&2
    exit 1
  fi
  echo "$free_gb GB free on $1 (holds $2; at least $min_gb GB wanted)"
}
# One file system (same device, also through a bind mount): one report.
if [ "$(stat -c %d -- "$docker_dir")" = "$(stat -c %d -- "$checkout")" ]; then
  check_free "$(mount_of "$checkout")" "/var/lib/docker and the checkout"
else
  check_free "$(mount_of "$docker_dir")" "/var/lib/docker"
  check_free "$(mount_of "$checkout")" "the checkout $checkout"
fi

step "Debian packages"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The end-to-end job venv is made from Debian's own python3 (readable by the job user).
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  need+=(python3 python3-venv)
fi
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v git >/dev/null || need+=(git)
command -v setpriv >/dev/null || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "all present"
fi

step "Go tools in the background: helm, crane, cosign, syft, actionlint (scripts/go-tools.sh)"
bash "$here/go-tools.sh" start

step "Docker engine"
bash "$here/install-docker.sh"

step "Slurm (local single-node cluster)"
bash "$here/slurm-up.sh"


step "deployment e2e: rootless Podman, Chromium, npm packages (tests/deploy/node)"
need=()
for pkg in podman uidmap slirp4netns fuse-overlayfs chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "podman and chromium present"
fi
node_dir="$here/../tests/deploy/node"
# playwright-core never downloads a browser (it drives /usr/bin/chromium); the lock file
# pins every package with its integrity hash.
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] \
   || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$node_dir" --no-audit --no-fund
else
  echo "npm packages present"
fi

step "nox and uv (tools venv: $tools)"
if [ ! -x "$tools/bin/nox" ] || [ ! -x "$tools/bin/uv" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --upgrade pip
  "$tools/bin/python" -m pip install --quiet nox uv
fi
ln -sf "$tools/bin/nox" /usr/local/bin/nox
ln -sf "$tools/bin/uv" /usr/local/bin/uv
nox --version
uv --version

step "done"
