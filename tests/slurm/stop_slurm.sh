#!/usr/bin/env bash
# Stop the test cluster started by start_slurm.sh: slurmd, slurmctld, munged,
# each by its pid file only. Idempotent (does nothing for daemons not running).
#   --keep-munge   leave munged running
# Environment: DUALCLIP_SLURM_DIR (default /tmp/dualclip-slurm), as for start_slurm.sh.
set -uo pipefail

STATE_DIR="${DUALCLIP_SLURM_DIR:-/tmp/dualclip-slurm}"
keep_munge=0
[ "${1:-}" = "--keep-munge" ] && keep_munge=1

log() { echo "[stop_slurm] $*"; }

stop_pidfile() {  # stop_pidfile NAME PIDFILE
    local name="$1" pidfile="$2" pid
    if [ ! -s "$pidfile" ]; then
        log "$name: no pid file ($pidfile), not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    if ! kill -0 "$pid" 2>/dev/null; then
        log "$name: pid $pid not running"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: pid $pid still alive after 10s, sending KILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

stop_pidfile slurmd    "$STATE_DIR/slurmd.pid"
stop_pidfile slurmctld "$STATE_DIR/slurmctld.pid"
[ "$keep_munge" = 1 ] || stop_pidfile munged /run/munge/munged.pid
log "logs kept in $STATE_DIR/log"
exit 0
