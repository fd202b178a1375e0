#!/usr/bin/env bash
# Rank-local failures in a team of 2 ranks (jobs: an SST-2 supermask and an
# SST-2 full fine-tuning). Each must fail the job on both ranks with the
# failing rank's message, the team must go on to its next job, and a rerun
# must complete the sweep with an undisturbed run's science:
#  1. the writer (rank 0) cannot write the mask (test hook
#     FINEMASK_TEST_FAIL_WRITE=mask, io/fileio.h): the supermask job fails on
#     both ranks (rank 1, under -v, says so with the writer's message; before,
#     rank 1 counted the job done), the full job completes;
#  2. the writer cannot write metrics.json (=metrics): both jobs fail;
#  3. the writer cannot open the log at the start of a job (=log): both jobs
#     fail at once (before, rank 1 went into the first gradient sum while
#     rank 0 left the job: the team hung);
#  4. an MPI error in a job (FINEMASK_TEST_MPI_ERROR=3, mpi/dp.c: the third
#     step's first gradient sum is started with an invalid count on every
#     rank): the job fails with MPI's message and the team goes on to its
#     next job (before, MPI's default handler aborted the whole run).
# Usage: write_fail.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
fm_fault_sweep "$work/job.ini" 2 2
mpi=("$mpiexec" --oversubscribe --bind-to none -n 2)
sm=SST-2.supermask.s20.seed1 full=SST-2.full.seed1
"${mpi[@]}" "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
# run OUT ERRFILE ENV...: the sweep under the given test hooks; its exit code
# in $rc. A team that hangs never ends: fm_wait_end gives up.
run() {
  local out=$1 err=$2
  shift 2
  local xs=()
  for kv in "$@"; do xs+=(-x "$kv"); done
  "${mpi[@]}" "${xs[@]}" "$bin" -v run "$work/job.ini" --out "$out" > /dev/null 2> "$err" &
  local mp=$!
  if ! fm_wait_end $mp; then
    echo "FAIL: the run hangs ($*)"; kill -KILL $(pgrep -P $mp) 2>/dev/null; tail -n 30 "$err"; exit 1
  fi
  set +e
  wait $mp
  rc=$?
  set -e
}
fail() { echo "FAIL: $1"; tail -n 40 "$2"; exit 1; }
# The rerun completes the sweep with the science of the undisturbed run.
rerun_same() {
  "${mpi[@]}" "$bin" run "$work/job.ini" --out "$1" 2> "$1.rerun.err" || fail "the rerun of $1 failed" "$1.rerun.err"
  cmp "$1/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science.json differs after the rerun of $1"; exit 1; }
  cmp "$1/report/science.md" "$work/b/report/science.md" || { echo "FAIL: science.md differs after the rerun of $1"; exit 1; }
}

# 1. the mask
run "$work/m" "$work/m.err" FINEMASK_TEST_FAIL_WRITE=mask
echo "mask write fails on the writer: exit $rc"
grep -q 'FINEMASK_TEST_FAIL_WRITE=mask: the disk is full' "$work/m.err" || fail "the hook did not fire" "$work/m.err"
[ $rc -eq 1 ] || fail "expected exit 1" "$work/m.err"
grep -q "failed: $sm: .*$sm/mask.safetensors: write failed: No space left on device" "$work/m.err" \
  || fail "the failure must name the file and the error" "$work/m.err"
grep -q "$sm: FAILED on team rank 1 too: .*$sm/mask.safetensors: write failed: No space left on device" "$work/m.err" \
  || fail "rank 1 did not fail the job with the writer's message" "$work/m.err"
[ -e "$work/m/$full/metrics.json" ] || fail "the team did not go on to its next job" "$work/m.err"
[ ! -e "$work/m/$sm/metrics.json" ] || fail "the failed job has a metrics.json" "$work/m.err"
grep -q "\"$sm\": \".*mask.safetensors: write failed" "$work/m/run.json" || fail "run.json does not record the failure" "$work/m.err"
rerun_same "$work/m"

# 2. metrics.json
run "$work/j" "$work/j.err" FINEMASK_TEST_FAIL_WRITE=metrics
echo "metrics.json write fails on the writer: exit $rc"
[ $rc -eq 1 ] || fail "expected exit 1" "$work/j.err"
for job in $sm $full; do
  grep -q "failed: $job: .*$job/metrics.json: write failed: No space left on device" "$work/j.err" \
    || fail "$job: the failure must name the file and the error" "$work/j.err"
  grep -q "$job: FAILED on team rank 1 too: .*$job/metrics.json: write failed" "$work/j.err" \
    || fail "$job: rank 1 did not fail the job with the writer's message" "$work/j.err"
  [ ! -e "$work/j/$job/metrics.json" ] || fail "$job has a metrics.json" "$work/j.err"
done
rerun_same "$work/j"

# 3. the log, at the start of a job
run "$work/l" "$work/l.err" FINEMASK_TEST_FAIL_WRITE=log
echo "log.jsonl cannot be opened by the writer: exit $rc"
[ $rc -eq 1 ] || fail "expected exit 1" "$work/l.err"
for job in $sm $full; do
  grep -q "failed: $job: .*$job/log.jsonl: write failed: No space left on device" "$work/l.err" \
    || fail "$job: the failure must name the file and the error" "$work/l.err"
  grep -q "$job: FAILED on team rank 1 too: .*$job/log.jsonl: write failed" "$work/l.err" \
    || fail "$job: rank 1 did not fail the job with the writer's message" "$work/l.err"
done
rerun_same "$work/l"

# 4. an MPI error in the first job's third step, on both ranks
run "$work/e" "$work/e.err" FINEMASK_TEST_MPI_ERROR=3
echo "MPI error in a gradient sum: exit $rc"
[ $rc -eq 1 ] || fail "expected exit 1 (a failed job), not a dead world" "$work/e.err"
n=$(grep -c "finemask: failed: SST-2\..*: gradient allreduce of [0-9]* floats failed: .*count" "$work/e.err" || true)
[ "$n" -eq 1 ] || fail "expected one job failed with MPI's message, got $n" "$work/e.err"
[ "$(ls "$work"/e/*/metrics.json | wc -l)" -eq 1 ] || fail "the team did not finish its other job" "$work/e.err"
[ -e "$work/e/report/science.json" ] || fail "no report" "$work/e.err"
rerun_same "$work/e"
echo PASS
