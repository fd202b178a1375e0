#!/usr/bin/env bash
# A full disk while the writer saves a checkpoint, in a team of 2 ranks. The
# writer (rank 0) pauses after step 2 and SIGUSR1 to it makes the team save
# the state at step 3; it pauses again after step 5 and the second save fails
# half-way with ENOSPC (test hook FINEMASK_TEST_ENOSPC_IN_CHECKPOINT=2,
# io/trainstate.h). The job must fail on both ranks at that step with the
# writer's message (before, the other rank went on into the next step's sum
# and the team hung), the team must go on to its next job, the step-3 state
# and log must be left whole and no temporary file behind; the run exits 1
# naming the file and the error. Run again (the disk freed), the sweep
# completes from the step-3 state with an uninterrupted run's science.
# Usage: disk_full.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
fm_fault_sweep "$work/job.ini" 2 2
mpi=("$mpiexec" --oversubscribe --bind-to none -n 2)
"${mpi[@]}" "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
FINEMASK_TEST_PAUSE_AFTER_STEP=2,5 FINEMASK_TEST_PAUSE_RANK=0 FINEMASK_TEST_ENOSPC_IN_CHECKPOINT=2 "${mpi[@]}" \
  -x FINEMASK_TEST_PAUSE_AFTER_STEP -x FINEMASK_TEST_PAUSE_RANK -x FINEMASK_TEST_ENOSPC_IN_CHECKPOINT \
  "$bin" run "$work/job.ini" --out "$work/a" 2> "$work/a.err" &
mp=$!
job="$work/a/SST-2.supermask.s20.seed1"
pid0() { fm_paused_pid "$work/a.err" 'rank 0'; }
fm_wait_paused "$work/a.err" 1 $mp
kill -USR1 "$(pid0)"
fm_wait_paused "$work/a.err" 2 $mp
grep -q 'SIGUSR1: state at step 3 written' "$work/a.err" || { echo "FAIL: no first state"; cat "$work/a.err"; exit 1; }
cp "$job/state.safetensors" "$work/state3"
cp "$job/log.jsonl" "$work/log3"
kill -USR1 "$(pid0)"
# The run must end by itself (a hung team never would: fm_wait_end gives up).
if ! fm_wait_end $mp; then
  echo "FAIL: the run hangs after the failed checkpoint"; kill -KILL $(pgrep -P $mp) 2>/dev/null; cat "$work/a.err"; exit 1
fi
set +e
wait $mp
rc=$?
set -e
echo "run with a full disk at the second checkpoint: exit $rc"
grep -q 'FINEMASK_TEST_ENOSPC_IN_CHECKPOINT: the disk is full' "$work/a.err" || { echo "FAIL: the disk-full hook did not fire"; cat "$work/a.err"; exit 1; }
[ $rc -eq 1 ] || { echo "FAIL: expected exit 1"; cat "$work/a.err"; exit 1; }
grep -q "failed: SST-2.supermask.s20.seed1: .*state.safetensors: write failed: No space left on device" "$work/a.err" \
  || { echo "FAIL: the failure must name the file and the error"; cat "$work/a.err"; exit 1; }
[ -e "$work/a/SST-2.full.seed1/metrics.json" ] || { echo "FAIL: the team did not go on to its next job"; cat "$work/a.err"; exit 1; }
[ ! -e "$job/metrics.json" ] || { echo "FAIL: the failed job finished"; exit 1; }
cmp "$job/state.safetensors" "$work/state3" || { echo "FAIL: the step-3 state was changed"; exit 1; }
[ -z "$(ls "$job" | grep -v '^\(state.safetensors\|log.jsonl\|options.json\)$')" ] || { echo "FAIL: files left behind:"; ls "$job"; exit 1; }
head -c "$(stat -c %s "$work/log3")" "$job/log.jsonl" | cmp - "$work/log3" || { echo "FAIL: the log before the failure changed"; exit 1; }
"${mpi[@]}" "$bin" run "$work/job.ini" --out "$work/a" 2> "$work/a2.err" || { echo "FAIL: the rerun failed"; cat "$work/a2.err"; exit 1; }
grep -q 'resuming .*SST-2.supermask.s20.seed1 at step 3' "$work/a2.err" || { echo "FAIL: the rerun did not resume from step 3"; cat "$work/a2.err"; exit 1; }
cmp "$work/a/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science.json differs after the rerun"; exit 1; }
cmp "$work/a/report/science.md" "$work/b/report/science.md" || { echo "FAIL: science.md differs after the rerun"; exit 1; }
echo PASS
