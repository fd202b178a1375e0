#!/usr/bin/env bash
# A rank killed with SIGKILL mid-job, in a team of 2: rank 0 pauses after
# step 3 and SIGUSR1 to it saves the state at step 4; it pauses again after
# step 6 and rank 1 (waiting for it in step 7) gets SIGKILL. The run must end (mpiexec reports the killed rank,
# non-zero exit) instead of hanging, leaving the step-4 state whole; the same
# command run again must resume the job at step 4 and complete the sweep with
# an uninterrupted run's science.
# Then the writer (rank 0) is killed just after its full fine-tuning job wrote
# metrics.json and the model, before distance.json (test hook
# FINEMASK_TEST_PAUSE_AT=written): run again, the finished job is skipped but
# its distances are computed then, so the science is still an uninterrupted
# run's (before, the report lost that job's distances for good).
# Usage: kill_rank.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
fm_fault_sweep "$work/job.ini" 2 2
mpi=("$mpiexec" --oversubscribe --bind-to none -n 2)
"${mpi[@]}" "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
FINEMASK_TEST_PAUSE_AFTER_STEP=3,6 FINEMASK_TEST_PAUSE_RANK=0 "${mpi[@]}" -x FINEMASK_TEST_PAUSE_AFTER_STEP \
  -x FINEMASK_TEST_PAUSE_RANK \
  "$bin" run "$work/job.ini" --out "$work/a" 2> "$work/a.err" &
mp=$!
pid0=
fm_wait_paused "$work/a.err" 1 $mp
pid0=$(fm_paused_pid "$work/a.err" 'after step 3 .*rank 0')
kill -USR1 "$pid0"
fm_wait_paused "$work/a.err" 2 $mp
grep -q 'SIGUSR1: state at step 4 written' "$work/a.err" || { echo "FAIL: no state at step 4"; cat "$work/a.err"; exit 1; }
pid1=$(pgrep -P $mp | grep -vx "$pid0")
[ "$(echo "$pid1" | wc -w)" -eq 1 ] || { echo "FAIL: cannot tell rank 1's pid"; exit 1; }
kill -KILL $pid1
if ! fm_wait_end $mp; then
  echo "FAIL: the run hangs after a rank was killed"; kill -KILL $(pgrep -P $mp) 2>/dev/null; exit 1
fi
set +e
wait $mp
rc=$?
set -e
echo "run with rank 1 killed: exit $rc"
[ $rc -ne 0 ] || { echo "FAIL: a run that lost a rank must exit non-zero"; exit 1; }
grep -q 'rank 1 .*signal 9' "$work/a.err" || { echo "FAIL: the killed rank is not reported"; cat "$work/a.err"; exit 1; }
job="$work/a/SST-2.supermask.s20.seed1"
[ -e "$job/state.safetensors" ] && [ ! -e "$job/metrics.json" ] || { echo "FAIL: expected the step-4 state"; ls "$job"; exit 1; }
"${mpi[@]}" "$bin" run "$work/job.ini" --out "$work/a" 2> "$work/a2.err" || { echo "FAIL: the rerun failed"; cat "$work/a2.err"; exit 1; }
grep -q 'resuming .*SST-2.supermask.s20.seed1 at step 4' "$work/a2.err" || { echo "FAIL: the rerun did not resume at step 4"; cat "$work/a2.err"; exit 1; }
cmp "$work/a/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science.json differs after the rerun"; exit 1; }
cmp "$work/a/report/science.md" "$work/b/report/science.md" || { echo "FAIL: science.md differs after the rerun"; exit 1; }
diff -r -x compute.json -x run.json -x report "$work/a" "$work/b" || { echo "FAIL: job directories differ"; exit 1; }

FINEMASK_TEST_PAUSE_AT=written FINEMASK_TEST_PAUSE_AT_JOB=2 FINEMASK_TEST_PAUSE_RANK=0 "${mpi[@]}" \
  -x FINEMASK_TEST_PAUSE_AT -x FINEMASK_TEST_PAUSE_AT_JOB -x FINEMASK_TEST_PAUSE_RANK \
  "$bin" run "$work/job.ini" --out "$work/c" 2> "$work/c.err" &
mp=$!
fm_wait_lines "$work/c.err" 'test hook: paused at written' 1 $mp
pid0=$(fm_paused_pid "$work/c.err" 'at written .*rank 0')
[ -n "$pid0" ] || { echo "FAIL: rank 0 did not pause after writing"; cat "$work/c.err"; exit 1; }
[ -e "$work/c/SST-2.full.seed1/metrics.json" ] && [ ! -e "$work/c/SST-2.full.seed1/distance.json" ] \
  || { echo "FAIL: expected metrics.json without distance.json"; ls "$work/c/SST-2.full.seed1"; exit 1; }
kill -KILL "$pid0"
if ! fm_wait_end $mp; then
  echo "FAIL: the run hangs after rank 0 was killed"; kill -KILL $(pgrep -P $mp) 2>/dev/null; exit 1
fi
set +e
wait $mp
rc=$?
set -e
echo "run with rank 0 killed after writing: exit $rc"
[ $rc -ne 0 ] || { echo "FAIL: a run that lost a rank must exit non-zero"; exit 1; }
"${mpi[@]}" "$bin" -q run "$work/job.ini" --out "$work/c" 2>/dev/null || { echo "FAIL: the rerun failed"; exit 1; }
cmp "$work/c/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science.json differs after the rerun"; exit 1; }
cmp "$work/c/report/science.md" "$work/b/report/science.md" || { echo "FAIL: science.md differs after the rerun"; exit 1; }
echo PASS
