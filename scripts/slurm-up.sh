#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this host for the test suite.
#
# Installs slurmctld, slurmd, slurmdbd, the Slurm client commands, munge and MariaDB
# (all from Debian) with apt-get when missing, writes /etc/slurm/slurm.conf for this
# host (CPUs and memory taken from `slurmd -C`) and /etc/slurm/slurmdbd.conf, creates
# the test user that jobs run as, starts munged, MariaDB, slurmdbd, slurmctld and slurmd
# directly (no systemd needed), registers the cluster, an account and the test user in
# the accounting database, and waits, bounded, for the node to be idle.
#
# Accounting goes through slurmdbd (AccountingStorageType=accounting_storage/slurmdbd),
# as FirecREST requires: it answers job queries from sacct merged with squeue.
#
# Idempotent: running it again with everything up only re-checks the state (no
# restart). When the generated configuration changed, the daemons that read it are
# restarted with it (running jobs survive: slurmctld keeps its state, slurmstepd its
# jobs). Must run as root. Stop everything with scripts/slurm-down.sh.
#
# Environment knobs (all optional):
#   F7T_SLURM_USER   test user jobs run as        (default f7tuser)
#   F7T_SLURM_UID    its uid/gid                   (default 2001)
#   F7T_SLURM_WAIT   seconds to wait for the node  (default 90)
#   F7T_SLURM_ACCOUNT the test user's Slurm account (default f7t4jhub)
set -euo pipefail

JOB_USER="${F7T_SLURM_USER:-f7tuser}"
JOB_UID="${F7T_SLURM_UID:-2001}"
WAIT_SECONDS="${F7T_SLURM_WAIT:-90}"
JOB_ACCOUNT="${F7T_SLURM_ACCOUNT:-f7t4jhub}"
CLUSTER=f7t

CONF_DIR=/etc/slurm
CONF="${CONF_DIR}/slurm.conf"
DBD_CONF="${CONF_DIR}/slurmdbd.conf"
DB_NAME=slurm_acct_db
DB_SOCKET=/run/mysqld/mysqld.sock
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
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    if ((${#missing[@]} == 0)); then
        log "packages present: $(dpkg-query -W -f='${Package} ${Version}  ' slurmctld slurmd slurmdbd munge mariadb-server 2>/dev/null)"
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

# --- MariaDB and slurmdbd ------------------------------------------------------------
db() {  # db SQL -> run SQL as the database's root (unix socket authentication)
    # on stdin, not in argv: the SQL carries the slurm user's password
    mariadb --protocol=socket --socket="$DB_SOCKET" -u root -N -B <<<"$1"
}

db_alive() {
    mariadb-admin --protocol=socket --socket="$DB_SOCKET" ping >/dev/null 2>&1
}

start_mariadb() {
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    install -d -o mysql -g adm -m 0750 /var/log/mysql
    if db_alive; then
        log "MariaDB already running"
        return
    fi
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        log "initialising the MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null \
            || die "mariadb-install-db failed"
    fi
    log "starting MariaDB (unix socket only, no TCP)"
    # mariadbd does not daemonise itself: detach it into a session of its own.
    setsid -f /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$DB_SOCKET" \
        --pid-file=/run/mysqld/mysqld.pid --log-error=/var/log/mysql/error.log \
        </dev/null >/dev/null 2>&1 || die "mariadbd did not start; see /var/log/mysql/error.log"
    local i
    for ((i = 0; i < 60; i++)); do
        db_alive && return
        sleep 0.5
    done
    tail -n 20 /var/log/mysql/error.log >&2 || true
    die "MariaDB did not answer on ${DB_SOCKET} within 30 s; see /var/log/mysql/error.log"
}

db_password() {  # the slurm database user's password: kept from slurmdbd.conf, else new
    local pass=""
    if [[ -f "$DBD_CONF" ]]; then
        pass="$(sed -n 's/^StoragePass=//p' "$DBD_CONF" | head -n 1)"
    fi
    [[ -n "$pass" ]] || pass="$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s' "$pass"
}

write_dbd_config() {  # write_dbd_config PASSWORD; prints "changed" when (re)written
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp" <<EOF
# Written by scripts/slurm-up.sh (f7t4jhub test cluster). Changes are overwritten.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=${RUN_DIR}/slurmdbd.pid
LogFile=${LOG_DIR}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=${DB_NAME}
StorageUser=slurm
StoragePass=$1
EOF
    if [[ -f "$DBD_CONF" ]] && cmp -s "$tmp" "$DBD_CONF"; then
        rm -f "$tmp"
        return
    fi
    install -d -m 0755 "$CONF_DIR"
    # slurmdbd refuses a configuration file others can read (it holds the password)
    install -o slurm -g slurm -m 0600 "$tmp" "$DBD_CONF"
    rm -f "$tmp"
    echo changed
}

setup_database() {  # setup_database PASSWORD: database and user for slurmdbd (idempotent)
    db "CREATE DATABASE IF NOT EXISTS ${DB_NAME};
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$1';
        ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$1';
        GRANT ALL ON ${DB_NAME}.* TO 'slurm'@'localhost';" \
        || die "could not create the ${DB_NAME} database and its user; see /var/log/mysql/error.log"
}

start_slurmdbd() {  # start_slurmdbd CHANGED: (re)start when its configuration changed
    local i
    install -d -o slurm -g slurm -m 0755 "$RUN_DIR" "$LOG_DIR"
    if [[ "$1" == changed ]]; then
        stop_daemon slurmdbd "${RUN_DIR}/slurmdbd.pid"
    fi
    if pid_alive "${RUN_DIR}/slurmdbd.pid"; then
        log "slurmdbd already running (pid $(cat "${RUN_DIR}/slurmdbd.pid"))"
    else
        log "starting slurmdbd"
        /usr/sbin/slurmdbd || die "slurmdbd did not start; see ${LOG_DIR}/slurmdbd.log"
    fi
    for ((i = 0; i < 60; i++)); do
        timeout 10 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1 && return
        sleep 0.5
    done
    tail -n 20 "${LOG_DIR}/slurmdbd.log" >&2 || true
    die "slurmdbd does not answer sacctmgr within 30 s; see ${LOG_DIR}/slurmdbd.log"
}

register_accounting() {  # the cluster, the test account and user (each added only once)
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        log "registering cluster ${CLUSTER} with slurmdbd"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster ${CLUSTER} failed"
    fi
    if ! sacctmgr -n -P show account format=account | grep -qx "$JOB_ACCOUNT"; then
        log "adding account ${JOB_ACCOUNT}"
        sacctmgr -i add account "$JOB_ACCOUNT" cluster="$CLUSTER" \
            description="f7t4jhub tests" organization=f7t4jhub >/dev/null \
            || die "sacctmgr add account ${JOB_ACCOUNT} failed"
    fi
    if ! sacctmgr -n -P show user format=user | grep -qx "$JOB_USER"; then
        log "adding user ${JOB_USER} to account ${JOB_ACCOUNT}"
        sacctmgr -i add user "$JOB_USER" account="$JOB_ACCOUNT" cluster="$CLUSTER" >/dev/null \
            || die "sacctmgr add user ${JOB_USER} failed"
    fi
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
ClusterName=${CLUSTER}
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
# Accounting through slurmdbd (MariaDB), as FirecREST requires for its sacct queries.
# Finished jobs also stay visible to scontrol/squeue for MinJobAge seconds.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
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
    start_mariadb
    local password dbd_changed changed
    password="$(db_password)"
    setup_database "$password"
    dbd_changed="$(write_dbd_config "$password")"
    [[ "$dbd_changed" == changed ]] && log "wrote ${DBD_CONF}"
    # slurm.conf first: sacctmgr finds slurmdbd through it (the daemons reload it below)
    changed="$(write_config)"
    [[ "$changed" == changed ]] && log "wrote ${CONF}"
    start_slurmdbd "$dbd_changed"
    register_accounting
    start_slurm "$changed"
    wait_idle
    log "ready: $(sinfo --version)"
    sinfo -o '%P %a %l %D %T %N'
    log "jobs run as ${JOB_USER}: runuser -u ${JOB_USER} -- sbatch ...; stop with scripts/slurm-down.sh"
}

main "$@"
