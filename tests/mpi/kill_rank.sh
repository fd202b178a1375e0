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
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = supermask, full
seeds = 1
[supermask]
sparsities = 0.2
samples = 2
[train]
lr = 1e-3
batch_size = 8
epochs = 1
max_seq_length = 24
log_every = 2
[layout]
threads = 1
team_size = 2
INI
mpi=("$mpiexec" --oversubscribe --bind-to none -n 2)
"${mpi[@]}" "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
FINEMASK_TEST_PAUSE_AFTER_STEP=3,6 FINEMASK_TEST_PAUSE_RANK=0 "${mpi[@]}" -x FINEMASK_TEST_PAUSE_AFTER_STEP \
  -x FINEMASK_TEST_PAUSE_RANK \
  "$bin" run "$work/job.ini" --out "$work/a" 2> "$work/a.err" &
mp=$!
wait_paused() { # N: until N "paused" lines
  for _ in $(seq 12000); do
    [ "$(grep -c 'test hook: paused' "$work/a.err")" -ge "$1" ] && return 0
    kill -0 $mp 2>/dev/null || { echo "FAIL: the run ended before $1 pause(s)"; cat "$work/a.err"; exit 1; }
    sleep 0.05
  done
  echo "FAIL: no pause $1"; cat "$work/a.err"; exit 1
}
pid0=
wait_paused 1
pid0=$(sed -n 's/.*paused after step 3 .*rank 0, pid \([0-9]*\)).*/\1/p' "$work/a.err")
kill -USR1 "$pid0"
wait_paused 2
grep -q 'SIGUSR1: state at step 4 written' "$work/a.err" || { echo "FAIL: no state at step 4"; cat "$work/a.err"; exit 1; }
pid1=$(pgrep -P $mp | grep -vx "$pid0")
[ "$(echo "$pid1" | wc -w)" -eq 1 ] || { echo "FAIL: cannot tell rank 1's pid"; exit 1; }
kill -KILL $pid1
for _ in $(seq 12000); do kill -0 $mp 2>/dev/null || break; sleep 0.05; done
if kill -0 $mp 2>/dev/null; then
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
for _ in $(seq 12000); do
  grep -q 'test hook: paused at written' "$work/c.err" && break
  kill -0 $mp 2>/dev/null || { echo "FAIL: the run ended before the pause"; cat "$work/c.err"; exit 1; }
  sleep 0.05
done
pid0=$(sed -n 's/.*paused at written .*rank 0, pid \([0-9]*\)).*/\1/p' "$work/c.err")
[ -n "$pid0" ] || { echo "FAIL: rank 0 did not pause after writing"; cat "$work/c.err"; exit 1; }
[ -e "$work/c/SST-2.full.seed1/metrics.json" ] && [ ! -e "$work/c/SST-2.full.seed1/distance.json" ] \
  || { echo "FAIL: expected metrics.json without distance.json"; ls "$work/c/SST-2.full.seed1"; exit 1; }
kill -KILL "$pid0"
for _ in $(seq 12000); do kill -0 $mp 2>/dev/null || break; sleep 0.05; done
if kill -0 $mp 2>/dev/null; then
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
