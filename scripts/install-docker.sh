#!/bin/sh
# Install and start a Docker engine on a bare Debian host (run as root).
#
#   scripts/install-docker.sh            # install docker.io if missing, start dockerd
#   DOCKER_WAIT_SECONDS=120 scripts/install-docker.sh
#
# Idempotent: does nothing when `docker info` already answers. Installs Debian's
# docker.io package with apt (the host's own apt sources), then starts dockerd in the
# background when no service manager runs it (containers, chroots), logging to
# /var/log/dockerd.log, and waits at most DOCKER_WAIT_SECONDS (default 60) for
# `docker info`. f7tbuild points here when no engine is reachable.
set -eu

wait_seconds="${DOCKER_WAIT_SECONDS:-60}"
log_file="${DOCKERD_LOG:-/var/log/dockerd.log}"

say() { printf 'install-docker: %s\n' "$*"; }
die() { printf 'install-docker: error: %s\n' "$*" >&2; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_up; then
  say "a Docker engine is already running: $(docker info --format '{{.ServerVersion}}')"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (installs packages and starts dockerd)"

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: this script supports Debian/Ubuntu only"
  say "installing docker.io from the host's apt sources"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends docker.io ca-certificates iptables
fi

if ! engine_up; then
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    say "starting docker with systemd"
    systemctl enable --now docker || true
  fi
fi

if ! engine_up && ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd in the background (log: $log_file)"
  nohup dockerd >"$log_file" 2>&1 &
fi

say "waiting up to ${wait_seconds}s for the engine"
waited=0
while ! engine_up; do
  if [ "$waited" -ge "$wait_seconds" ]; then
    die "dockerd did not answer within ${wait_seconds}s; see $log_file"
  fi
  sleep 1
  waited=$((waited + 1))
done
say "Docker engine ready: $(docker info --format '{{.ServerVersion}}')"
