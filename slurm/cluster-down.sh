#!/usr/bin/env bash
# cluster-down.sh: stop the one-node loopback cluster that cluster-up.sh
# started in $FM_SLURM_DIR (/tmp/finemask-slurm) and remove that directory.
# Cancels the cluster's jobs first, then stops slurmd, slurmctld and munged by
# the process ids in their pid files (never by name), waiting for each to exit.
# Idempotent: nothing running and no directory is success.
set -uo pipefail

dir=${FM_SLURM_DIR:-/tmp/finemask-slurm}
export PATH=$PATH:/usr/sbin
say() { echo "cluster-down: $*" >&2; }

[ -d "$dir" ] || exit 0
case $dir in
  /|/tmp|/tmp/) say "refusing to remove $dir"; exit 1 ;;
esac
export SLURM_CONF=$dir/slurm.conf

pid_of() { [ -f "$dir/$1.pid" ] && cat "$dir/$1.pid"; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Jobs first, so no job step outlives the daemons.
if alive "$(pid_of slurmctld)" && [ -f "$SLURM_CONF" ]; then
  scancel --full --quiet -p debug 2>/dev/null || true
  for _ in $(seq 50); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

stop() {  # stop NAME: TERM, wait up to 10 s, then KILL
  local pid
  pid=$(pid_of "$1") || return 0
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
  say "$1 ($pid) ignored SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}
for f in "$dir"/slurmd-*.pid; do
  [ -f "$f" ] || continue
  f=${f##*/}
  stop "${f%.pid}"
done
stop slurmctld
stop munged
rm -rf "$dir"
say "stopped; removed $dir"
