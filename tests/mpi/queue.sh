#!/usr/bin/env bash
# The job assignment makes progress whatever rank 0 is doing (mpi/sched.h):
# 3 ranks in teams of 1, under OMPI_MCA_osc=pt2pt (where a passive-target
# MPI_Fetch_and_op on rank 0 waits for rank 0 to enter MPI), a sweep of one
# job with ten times the expected work of the six others. Rank 0 gets the long
# job and pauses after its first step (the test hook: it makes no MPI call
# while paused, like a rank deep in a long computation); the other two teams
# must finish all six short jobs meanwhile. Only then does rank 0 get SIGUSR1
# (save and go on) and the sweep ends complete. Waits on files, not on speed;
# the bound on the wait is only there to fail instead of hanging.
# Usage: queue.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = full, supermask
seeds = 1
[supermask]
sparsities = 0, 0.1, 0.2, 0.3, 0.4, 0.5
samples = 1
epochs = 1
[full]
epochs = 10
[train]
lr = 1e-3
batch_size = 8
max_seq_length = 24
[layout]
threads = 1
INI
export OMPI_MCA_osc=pt2pt
FINEMASK_TEST_PAUSE_AFTER_STEP=1 FINEMASK_TEST_PAUSE_RANK=0 \
  "$mpiexec" --oversubscribe --bind-to none -n 3 -x OMPI_MCA_osc -x FINEMASK_TEST_PAUSE_AFTER_STEP \
  -x FINEMASK_TEST_PAUSE_RANK "$bin" run "$work/job.ini" --out "$work/out" 2> "$work/err" &
mp=$!
short() { { ls "$work"/out/SST-2.supermask.*/metrics.json 2>/dev/null || true; } | wc -l; }
end=$((SECONDS + ${FM_TEST_WAIT:-1200}))
until [ "$(short)" -eq 6 ] && grep -q 'test hook: paused' "$work/err"; do
  kill -0 $mp 2>/dev/null || { echo "FAIL: the run ended early"; cat "$work/err"; exit 1; }
  [ $SECONDS -lt $end ] || break
  sleep 0.05
done
n=$(short)
grep -q 'test hook: paused after step 1 .*rank 0' "$work/err" || { echo "FAIL: rank 0 did not pause in its job"; cat "$work/err"; exit 1; }
echo "while rank 0 is paused in the long job: $n of 6 short jobs finished"
[ "$n" -eq 6 ] || { echo "FAIL: the other teams did not finish the short jobs while rank 0 computed"; kill -KILL $(pgrep -P $mp) 2>/dev/null; cat "$work/err"; exit 1; }
[ ! -e "$work/out/SST-2.full.seed1/metrics.json" ] || { echo "FAIL: the long job finished while paused"; exit 1; }
grep -q 'SST-2.full.seed1: start (team 0)' "$work/err" || { echo "FAIL: the long job is not team 0's"; cat "$work/err"; exit 1; }
for t in 1 2; do
  grep -q "SST-2.supermask.*: done, .*team $t)" "$work/err" || { echo "FAIL: team $t ran no short job"; cat "$work/err"; exit 1; }
done
kill -USR1 "$(fm_paused_pid "$work/err" 'after step 1')"
set +e
wait $mp
rc=$?
set -e
[ $rc -eq 0 ] || { echo "FAIL: exit $rc"; cat "$work/err"; exit 1; }
[ "$(ls "$work"/out/*/metrics.json | wc -l)" -eq 7 ] || { echo "FAIL: not every job finished"; exit 1; }
echo PASS
