#!/usr/bin/env bash
# Stop the local Slurm test cluster started by scripts/slurm-up.sh.
#
# Cancels every job still known to Slurm, then stops slurmd, slurmctld, slurmdbd,
# MariaDB and munged by the pids in their pid files. Leaves packages, configuration,
# the test user, the accounting database and Slurm's state directory in place, so
# slurm-up.sh starts again quickly. Idempotent.
set -euo pipefail

RUN_DIR=/run/slurm

log() { printf 'slurm-down: %s\n' "$*"; }

[[ "$(id -u)" -eq 0 ]] || { echo "slurm-down: ERROR: must run as root; try: sudo $0" >&2; exit 1; }

stop_daemon() {  # stop_daemon NAME PIDFILE
    local name="$1" pidfile="$2" pid i
    if [[ ! -s "$pidfile" ]] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "${name} not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping ${name} (pid ${pid})"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pidfile"
            return 0
        fi
        sleep 0.25
    done
    log "${name} ignored SIGTERM for 15 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

if command -v scancel >/dev/null && timeout 10 squeue -h >/dev/null 2>&1; then
    mapfile -t jobs < <(timeout 10 squeue -h -o '%i' 2>/dev/null || true)
    if ((${#jobs[@]} > 0)); then
        log "cancelling remaining jobs: ${jobs[*]}"
        timeout 10 scancel "${jobs[@]}" 2>/dev/null || true
        sleep 2
    fi
fi

stop_daemon slurmd "${RUN_DIR}/slurmd.pid"
stop_daemon slurmctld "${RUN_DIR}/slurmctld.pid"
stop_daemon slurmdbd "${RUN_DIR}/slurmdbd.pid"
stop_daemon MariaDB /run/mysqld/mysqld.pid
stop_daemon munged /run/munge/munged.pid
log "stopped"
