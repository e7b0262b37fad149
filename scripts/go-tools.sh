#!/usr/bin/env bash
# The Go programs the lint and test sessions use (helm: scripts/install-helm.sh; crane,
# cosign, syft, actionlint: scripts/install-go-tools.sh), built with `go install`.
# Cold on 2 CPUs they take about a quarter of an hour, mostly CPU; the image builds
# mostly wait on downloads and layer commits, so host-setup starts this build in the
# background and `nox -s lint` / `nox -s tests` wait for it.
#
#   go-tools.sh start    build in the background (no-op when already built or building)
#   go-tools.sh wait     wait for a background build (bounded; exit 1 with its log if it failed)
#   go-tools.sh run      build in the foreground
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${F7T_GO_TOOLS_STATE:-/opt/f7t4jhub-tools/go-tools}"
log="$state/build.log"
status="$state/status"   # "running" while a build runs, then its exit code
limit="${F7T_GO_TOOLS_WAIT:-2400}"  # seconds `wait` waits at most

build() {
  local started rc=0
  started=$(date +%s)
  bash "$here/install-helm.sh" && bash "$here/install-go-tools.sh" || rc=$?
  echo "go-tools: finished with exit code $rc in $(( $(date +%s) - started ))s"
  return "$rc"
}

case "${1:-}" in
  run)
    build
    ;;
  start)
    mkdir -p "$state"
    if [ "$(cat "$status" 2>/dev/null)" = running ] && [ -n "$(cat "$state/pid" 2>/dev/null)" ] \
       && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "go-tools: a build is already running (log: $log)"
      exit 0
    fi
    echo running > "$status"
    # setsid: the build outlives host-setup; its exit code lands in $status.
    # shellcheck disable=SC2016  # $0, $1, $2 are the inner bash's arguments, on purpose
    setsid bash -c 'rc=0; bash "$0" run > "$1" 2>&1 || rc=$?; echo "$rc" > "$2"' \
      "${BASH_SOURCE[0]}" "$log" "$status" < /dev/null > /dev/null 2>&1 &
    echo $! > "$state/pid"
    echo "go-tools: building helm, crane, cosign, syft and actionlint in the background"
    echo "          (log: $log; nox -s lint and nox -s tests wait for it)"
    ;;
  wait)
    if [ ! -f "$status" ]; then
      # Nothing started here (a host set up by hand): the sessions name a missing tool.
      echo "go-tools: no background build on this host; using what is on PATH"
      exit 0
    fi
    waited=0
    while [ "$(cat "$status")" = running ]; do
      if [ -z "$(cat "$state/pid" 2>/dev/null)" ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
        echo "go-tools: the background build died without an exit code (log: $log); re-run: bash scripts/go-tools.sh run" >&2
        exit 1
      fi
      if [ "$waited" -ge "$limit" ]; then
        echo "go-tools: still building after ${limit}s (log: $log); raise F7T_GO_TOOLS_WAIT or run: bash scripts/go-tools.sh run" >&2
        exit 1
      fi
      [ $(( waited % 60 )) -eq 0 ] && echo "go-tools: waiting for the background build (${waited}s): $(tail -n 1 "$log" 2>/dev/null)"
      sleep 5
      waited=$(( waited + 5 ))
    done
    rc="$(cat "$status")"
    if [ "$rc" != 0 ]; then
      echo "go-tools: the background build failed (exit $rc); its log ($log) ends:" >&2
      tail -n 30 "$log" >&2
      echo "go-tools: fix the cause, then: bash scripts/go-tools.sh run" >&2
      exit 1
    fi
    grep -E "built in|present|finished" "$log" || true
    ;;
  *)
    echo "usage: $0 start|wait|run" >&2
    exit 2
    ;;
esac
