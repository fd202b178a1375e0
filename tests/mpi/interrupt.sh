#!/usr/bin/env bash
# Interrupt and resume: a 2-team sweep gets SIGTERM (sent to the ranks, as
# Slurm's --signal does) once its first job is complete; the run must stop with
# a non-zero exit, then a second run must finish the sweep (completed jobs
# skipped, an interrupted one resumed from its state) to the same science and
# the same job directories as an uninterrupted run.
# Usage: interrupt.sh FINEMASK MPIEXEC SOURCE_DIR.
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
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/a" 2>/dev/null &
mp=$!
for _ in $(seq 600); do
  ls "$work"/a/*/metrics.json >/dev/null 2>&1 && break
  sleep 0.1
done
kill -TERM $(pgrep -P $mp) 2>/dev/null || true
set +e
wait $mp
rc=$?
set -e
done1=$(ls "$work"/a/*/metrics.json 2>/dev/null | wc -l)
echo "first run: exit $rc, $done1 of 6 jobs complete"
[ "$done1" -lt 6 ] || { echo "note: the sweep finished before the signal; nothing to resume"; }
[ "$done1" -eq 6 ] || [ $rc -ne 0 ] || { echo "FAIL: an interrupted run must exit non-zero"; exit 1; }
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/a" 2>/dev/null
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
cmp "$work/a/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science differs after resume"; exit 1; }
cmp "$work/a/report/science.md" "$work/b/report/science.md" || { echo "FAIL: science.md differs after resume"; exit 1; }
diff -r -x compute.json -x run.json -x report "$work/a" "$work/b" || { echo "FAIL: job directories differ"; exit 1; }
echo PASS
