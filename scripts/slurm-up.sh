#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this host for the test suite.
#
# Installs slurmctld, slurmd, the Slurm client commands and munge with apt-get when
# missing, writes /etc/slurm/slurm.conf for this host (CPUs and memory taken from
# `slurmd -C`), creates the test user that jobs run as, starts munged, slurmctld and
# slurmd directly (no systemd needed) and waits, bounded, for the node to be idle.
#
# Idempotent: running it again with everything up only re-checks the state. When the
# generated configuration changed, the Slurm daemons are restarted with it.
# Must run as root. Stop everything with scripts/slurm-down.sh.
#
# Environment knobs (all optional):
#   F7T_SLURM_USER   test user jobs run as        (default f7tuser)
#   F7T_SLURM_UID    its uid/gid                   (default 2001)
#   F7T_SLURM_WAIT   seconds to wait for the node  (default 90)
set -euo pipefail

JOB_USER="${F7T_SLURM_USER:-f7tuser}"
JOB_UID="${F7T_SLURM_UID:-2001}"
WAIT_SECONDS="${F7T_SLURM_WAIT:-90}"

CONF_DIR=/etc/slurm
CONF="${CONF_DIR}/slurm.conf"
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm

log() { printf 'slurm-up: %s\n' "$*"; }
die() { printf 'slurm-up: ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "must run as root (it installs packages and starts daemons); try: sudo $0"

# --- packages -----------------------------------------------------------------
install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if ((${#missing[@]} == 0)); then
        log "packages present: $(dpkg-query -W -f='${Package} ${Version}  ' slurmctld slurmd munge 2>/dev/null)"
        return
    fi
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || die "apt-get update failed; check the apt sources in /etc/apt"
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed (see above)"
}

# --- the job user -----------------------------------------------------------------
ensure_user() {
    if id -u "$JOB_USER" >/dev/null 2>&1; then
        log "user ${JOB_USER} exists (uid $(id -u "$JOB_USER"))"
        return
    fi
    getent group "$JOB_USER" >/dev/null || groupadd -g "$JOB_UID" "$JOB_USER"
    useradd -m -u "$JOB_UID" -g "$JOB_USER" -s /bin/bash "$JOB_USER" \
        || die "could not create user ${JOB_USER} (uid ${JOB_UID}); pick another with F7T_SLURM_UID"
    log "created user ${JOB_USER} (uid ${JOB_UID})"
}

# --- munge ----------------------------------------------------------------------
pid_alive() {  # pid_alive PIDFILE -> 0 when the process in PIDFILE runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_munge() {
    install -d -o munge -g munge -m 0700 /etc/munge
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    if pid_alive /run/munge/munged.pid; then
        log "munged already running (pid $(cat /run/munge/munged.pid))"
    else
        log "starting munged"
        runuser -u munge -- /usr/sbin/munged --force \
            || die "munged did not start; see /var/log/munge/munged.log"
    fi
    local i
    for ((i = 0; i < 20; i++)); do
        if munge -n </dev/null | unmunge >/dev/null 2>&1; then
            return
        fi
        sleep 0.5
    done
    die "munge credentials do not round-trip (munge -n | unmunge); see /var/log/munge/munged.log"
}

# --- slurm.conf -----------------------------------------------------------------
write_config() {  # prints "changed" when the file was (re)written
    local node_line node_name
    node_line="$(slurmd -C | head -n 1)"
    [[ "$node_line" == NodeName=* ]] || die "unexpected 'slurmd -C' output: ${node_line}"
    node_name="$(hostname -s)"
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp" <<EOF
# Written by scripts/slurm-up.sh (f7t4jhub test cluster). Changes are overwritten.
ClusterName=f7t
SlurmctldHost=${node_name}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
StateSaveLocation=${STATE_DIR}/slurmctld
SlurmdSpoolDir=${STATE_DIR}/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No accounting database: finished jobs stay visible to scontrol for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
${node_line% UpTime=*} NodeAddr=127.0.0.1 State=UNKNOWN
# debug: default partition; up to 4 jobs share a core so test runs do not queue each other.
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
# normal: exclusive cores, 1 hour default time, like a production partition.
PartitionName=normal Nodes=ALL Default=NO DefaultTime=01:00:00 MaxTime=1-00:00:00 State=UP
EOF
    if [[ -f "$CONF" ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return
    fi
    install -d -m 0755 "$CONF_DIR"
    install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    echo changed
}

stop_daemon() {  # stop_daemon NAME PIDFILE
    local name="$1" pidfile="$2" pid i
    pid_alive "$pidfile" || return 0
    pid="$(cat "$pidfile")"
    log "stopping ${name} (pid ${pid})"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
}

start_slurm() {
    local changed="$1"
    install -d -o slurm -g slurm -m 0755 "$RUN_DIR" "$LOG_DIR" "${STATE_DIR}/slurmctld"
    install -d -o root -g root -m 0755 "${STATE_DIR}/slurmd"
    if [[ "$changed" == changed ]]; then
        stop_daemon slurmd "${RUN_DIR}/slurmd.pid"
        stop_daemon slurmctld "${RUN_DIR}/slurmctld.pid"
    fi
    if pid_alive "${RUN_DIR}/slurmctld.pid"; then
        log "slurmctld already running (pid $(cat "${RUN_DIR}/slurmctld.pid"))"
    else
        log "starting slurmctld"
        /usr/sbin/slurmctld || die "slurmctld did not start; see ${LOG_DIR}/slurmctld.log"
    fi
    if pid_alive "${RUN_DIR}/slurmd.pid"; then
        log "slurmd already running (pid $(cat "${RUN_DIR}/slurmd.pid"))"
    else
        log "starting slurmd"
        /usr/sbin/slurmd || die "slurmd did not start; see ${LOG_DIR}/slurmd.log"
    fi
}

wait_idle() {
    local node deadline state=""
    node="$(hostname -s)"
    deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        state="$(sinfo -h -n "$node" -o '%T' 2>/dev/null | head -n 1 || true)"
        case "$state" in
            idle | mixed | allocated | completing)
                return 0
                ;;
            drained | draining | down | down\*)
                scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
                ;;
        esac
        sleep 1
    done
    log "node ${node} not usable after ${WAIT_SECONDS}s (state: '${state:-no answer}')"
    scontrol show node "$node" >&2 || true
    tail -n 20 "${LOG_DIR}/slurmctld.log" "${LOG_DIR}/slurmd.log" >&2 || true
    die "Slurm did not come up; read the logs above and ${LOG_DIR}/"
}

main() {
    install_packages
    ensure_user
    start_munge
    local changed
    changed="$(write_config)"
    [[ "$changed" == changed ]] && log "wrote ${CONF}"
    start_slurm "$changed"
    wait_idle
    log "ready: $(sinfo --version)"
    sinfo -o '%P %a %l %D %T %N'
    log "jobs run as ${JOB_USER}: runuser -u ${JOB_USER} -- sbatch ...; stop with scripts/slurm-down.sh"
}

main "$@"
