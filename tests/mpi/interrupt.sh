#!/usr/bin/env bash
# Interrupt and resume: a 2-team sweep gets SIGTERM (sent to the ranks, as
# Slurm's --signal does) while each team is in its second job; the run must stop with
# a non-zero exit, then a second run must finish the sweep (completed jobs
# skipped, an interrupted one resumed from its state) to the same science and
# the same job directories as an uninterrupted run.
# Usage: interrupt.sh FINEMASK MPIEXEC SOURCE_DIR.
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
modes = supermask, full
seeds = 1, 2, 3
[supermask]
sparsities = 0.2
samples = 2
[train]
lr = 1e-3
batch_size = 8
epochs = 2
max_seq_length = 24
log_every = 4
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none)
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
# Each rank (a team of 1) pauses 5 steps into its second job
# (FINEMASK_TEST_PAUSE_AFTER_STEP counts the steps a process has run; see
# cli/stopsig.h), so whatever the machine's speed the signal finds two jobs
# finished and two in progress.
steps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"])' "$(ls "$work"/b/*/metrics.json | head -n 1)")
FINEMASK_TEST_PAUSE_AFTER_STEP=$((steps + 5)) "${mpi[@]}" -n 2 -x FINEMASK_TEST_PAUSE_AFTER_STEP \
  "$bin" -q run "$work/job.ini" --out "$work/a" 2> "$work/a.err" &
mp=$!
fm_wait_paused "$work/a.err" 2 $mp
[ "$(grep -c 'test hook: paused' "$work/a.err")" -eq 2 ] || { echo "FAIL: the ranks did not pause"; cat "$work/a.err"; exit 1; }
kill -TERM $(pgrep -P $mp)
set +e
wait $mp
rc=$?
set -e
done1=$(ls "$work"/a/*/metrics.json 2>/dev/null | wc -l)
states=$(ls "$work"/a/*/state.safetensors 2>/dev/null | wc -l)
echo "first run: exit $rc, $done1 of 6 jobs complete, $states interrupted with a state"
[ $rc -ne 0 ] || { echo "FAIL: an interrupted run must exit non-zero"; exit 1; }
[ "$done1" -eq 2 ] && [ "$states" -eq 2 ] || { echo "FAIL: expected 2 finished and 2 interrupted jobs"; cat "$work/a.err"; exit 1; }
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/a" 2>/dev/null
cmp "$work/a/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science differs after resume"; exit 1; }
cmp "$work/a/report/science.md" "$work/b/report/science.md" || { echo "FAIL: science.md differs after resume"; exit 1; }
diff -r -x compute.json -x run.json -x report "$work/a" "$work/b" || { echo "FAIL: job directories differ"; exit 1; }
echo PASS
