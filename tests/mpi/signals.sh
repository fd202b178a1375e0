#!/usr/bin/env bash
# Signals on several ranks, at any point of a job (cli/stopsig.h):
#  1. SIGUSR1 reaching every rank of a team (2 ranks, then 4) in the middle of
#     training: the job saves its state at the next step and goes on; the run
#     ends with status 0 and the science of an uninterrupted run. (Summed
#     per-rank codes used to turn two SIGUSR1s into a SIGTERM.)
#  2. SIGTERM while a job is loading (the model loaded, the data tokenized,
#     no step run; FINEMASK_TEST_PAUSE_AT=load), to one rank of a team of 2:
#     the whole team saves the state at step 1 and stops, the run exits
#     non-zero; on 4 ranks (2 teams of 2), SIGTERM to every rank while one
#     rank loads: every team stops, the loading one at step 1. Running the
#     same command again finishes the sweep with an uninterrupted run's
#     science. (A SIGTERM during loading used to be held until the job ended.)
# Waits for the test hook's lines, never on the machine's speed.
# Usage: signals.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
fm_fault_sweep "$work/job.ini" 4
mpi=("$mpiexec" --oversubscribe --bind-to none)

# finish PID: wait for the run, its exit status into $rc.
finish() { set +e; wait "$1"; rc=$?; set -e; }
same_science() { # A B WHAT
  cmp "$1/report/science.json" "$2/report/science.json" || { echo "FAIL: $3: science.json differs"; exit 1; }
  cmp "$1/report/science.md" "$2/report/science.md" || { echo "FAIL: $3: science.md differs"; exit 1; }
}

for n in 2 4; do
  "${mpi[@]}" -n $n "$bin" -q run "$work/job.ini" --team-size $n --out "$work/b$n" 2>/dev/null
  # 1. SIGUSR1 on every rank, each paused after step 3 of its first job.
  FINEMASK_TEST_PAUSE_AFTER_STEP=3 "${mpi[@]}" -n $n -x FINEMASK_TEST_PAUSE_AFTER_STEP \
    "$bin" run "$work/job.ini" --team-size $n --out "$work/u$n" 2> "$work/u$n.err" &
  mp=$!
  fm_wait_paused "$work/u$n.err" $n $mp
  kill -USR1 $(pgrep -P $mp)
  finish $mp
  echo "SIGUSR1 on $n ranks: exit $rc"
  [ $rc -eq 0 ] || { echo "FAIL: SIGUSR1 on $n ranks must not stop the run"; cat "$work/u$n.err"; exit 1; }
  grep -q 'SIGUSR1: state at step 4 written' "$work/u$n.err" || { echo "FAIL: no state saved at step 4 on SIGUSR1"; cat "$work/u$n.err"; exit 1; }
  ! grep -q 'interrupted' "$work/u$n.err" || { echo "FAIL: SIGUSR1 interrupted a job"; cat "$work/u$n.err"; exit 1; }
  [ "$(ls "$work"/u$n/*/metrics.json | wc -l)" -eq 2 ] || { echo "FAIL: not every job finished"; exit 1; }
  [ -z "$(ls "$work"/u$n/*/state.safetensors 2>/dev/null)" ] || { echo "FAIL: a finished job kept its state"; exit 1; }
  same_science "$work/u$n" "$work/b$n" "SIGUSR1 on $n ranks"
done

# 2a. SIGTERM to rank 1 of a team of 2 while it is loading its first job.
FINEMASK_TEST_PAUSE_AT=load FINEMASK_TEST_PAUSE_AT_JOB=1 FINEMASK_TEST_PAUSE_RANK=1 \
  "${mpi[@]}" -n 2 -x FINEMASK_TEST_PAUSE_AT -x FINEMASK_TEST_PAUSE_AT_JOB -x FINEMASK_TEST_PAUSE_RANK \
  "$bin" run "$work/job.ini" --team-size 2 --out "$work/t2" 2> "$work/t2.err" &
mp=$!
fm_wait_paused "$work/t2.err" 1 $mp
grep -q 'test hook: paused at load (job 1 of this process, rank 1' "$work/t2.err" || { echo "FAIL: rank 1 did not pause loading"; cat "$work/t2.err"; exit 1; }
pid=$(fm_paused_pid "$work/t2.err" 'at load')
kill -TERM "$pid"
finish $mp
states=$(ls "$work"/t2/*/state.safetensors 2>/dev/null | wc -l)
echo "SIGTERM while loading (2 ranks): exit $rc, $states state file(s)"
[ $rc -ne 0 ] || { echo "FAIL: a run stopped by SIGTERM must exit non-zero"; cat "$work/t2.err"; exit 1; }
grep -q 'SIGTERM: state at step 1 written' "$work/t2.err" || { echo "FAIL: SIGTERM during loading did not save at step 1"; cat "$work/t2.err"; exit 1; }
[ "$states" -eq 1 ] && [ -z "$(ls "$work"/t2/*/metrics.json 2>/dev/null)" ] || { echo "FAIL: expected one interrupted job and none finished"; cat "$work/t2.err"; exit 1; }
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --team-size 2 --out "$work/t2" 2>/dev/null
same_science "$work/t2" "$work/b2" "resumed after SIGTERM while loading (2 ranks)"

# 2b. 4 ranks, 2 teams of 2: rank 3 pauses loading; SIGTERM to every rank.
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --team-size 2 --out "$work/b4t" 2>/dev/null
FINEMASK_TEST_PAUSE_AT=load FINEMASK_TEST_PAUSE_AT_JOB=1 FINEMASK_TEST_PAUSE_RANK=3 \
  "${mpi[@]}" -n 4 -x FINEMASK_TEST_PAUSE_AT -x FINEMASK_TEST_PAUSE_AT_JOB -x FINEMASK_TEST_PAUSE_RANK \
  "$bin" run "$work/job.ini" --team-size 2 --out "$work/t4" 2> "$work/t4.err" &
mp=$!
fm_wait_paused "$work/t4.err" 1 $mp
kill -TERM $(pgrep -P $mp)
finish $mp
echo "SIGTERM to 4 ranks, one loading: exit $rc"
[ $rc -ne 0 ] || { echo "FAIL: a run stopped by SIGTERM must exit non-zero"; cat "$work/t4.err"; exit 1; }
grep -q '\[team 1\] SIGTERM: state at step 1 written' "$work/t4.err" || { echo "FAIL: the loading team did not save at step 1"; cat "$work/t4.err"; exit 1; }
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --team-size 2 --out "$work/t4" 2>/dev/null
same_science "$work/t4" "$work/b4t" "resumed after SIGTERM on 4 ranks"
echo PASS
