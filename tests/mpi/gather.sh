#!/usr/bin/env bash
# The final gather is bounded (--gather-budget, cli/cmd_run.c; report.h): a
# sweep of 8 supermask jobs over 2 tasks, on 2 teams, run three times: with
# the default budget (every mask's bits gathered to rank 0, as before), with
# a budget of 0 (no mask bits over MPI: rank 0 reads the masks from the run
# directory, a family at a time, to count overlaps) and with a budget that
# holds some masks but not all. science.json and science.md must be the same
# bytes in all three, and `finemask report` (which now keeps only the masks'
# statistics in memory) must rebuild them.
# Usage: gather.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
# A second task, CoLA's layout (source, label, original label, sentence; no header).
mkdir -p "$work/glue/CoLA"
for s in train dev; do
  awk -F'\t' 'NR > 1 { print "gen\t" $2 "\t\t" $1 }' "$work/glue/SST-2/$s.tsv" > "$work/glue/CoLA/$s.tsv"
done
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2, CoLA
modes = supermask
seeds = 1, 2
[supermask]
sparsities = 0.2, 0.5
samples = 2
[train]
lr = 1e-3
batch_size = 16
epochs = 1
max_seq_length = 24
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none -n 2)
run() { # OUT [OPTIONS]: the sweep, its final gather line into OUT.gather
  local out=$1; shift
  "${mpi[@]}" "$bin" run "$work/job.ini" --out "$work/$out" "$@" 2> "$work/$out.err" \
    || { echo "FAIL: run $out"; cat "$work/$out.err"; exit 1; }
  grep 'final gather:' "$work/$out.err" | tee "$work/$out.gather"
}
run all
run none --gather-budget 0
# each mask's bits (the same size for every job), times 3: each of the 2 ranks
# may send 1 of its 4 masks
mb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mask_bytes"])' "$work/all/SST-2.supermask.s20.seed1/metrics.json")
run some --gather-budget $((3 * mb))
grep -q '8 mask(s) came with their bits, 0 stay' "$work/all.gather" || { echo "FAIL: the default budget should gather every mask"; exit 1; }
grep -q '0 mask(s) came with their bits, 8 stay' "$work/none.gather" || { echo "FAIL: budget 0 gathered mask bits"; exit 1; }
grep -q '2 mask(s) came with their bits, 6 stay' "$work/some.gather" || { echo "FAIL: budget 3 masks: expected 2 gathered (1 per rank)"; exit 1; }
b_all=$(sed 's/.*final gather: \([0-9]*\) bytes.*/\1/' "$work/all.gather")
b_none=$(sed 's/.*final gather: \([0-9]*\) bytes.*/\1/' "$work/none.gather")
echo "gathered bytes: $b_all with every mask, $b_none with none (8 masks of $mb bytes)"
# (the records hold times, so their lengths vary by a few bytes between runs)
[ "$b_all" -gt $((8 * mb)) ] && [ "$b_none" -lt "$mb" ] || { echo "FAIL: without bits the gather should be smaller than one mask"; exit 1; }
grep -q 'Mask overlap' "$work/all/report/science.md" || { echo "FAIL: the report has no overlaps to compare"; exit 1; }
for o in none some; do
  cmp "$work/all/report/science.json" "$work/$o/report/science.json" || { echo "FAIL: science.json differs ($o)"; exit 1; }
  cmp "$work/all/report/science.md" "$work/$o/report/science.md" || { echo "FAIL: science.md differs ($o)"; exit 1; }
done
cp -r "$work/none/report" "$work/none.report"
"$bin" -q report "$work/none"
cmp "$work/all/report/science.json" "$work/none/report/science.json" || { echo "FAIL: finemask report differs"; exit 1; }
cmp "$work/all/report/science.md" "$work/none/report/science.md" || { echo "FAIL: finemask report's science.md differs"; exit 1; }
echo PASS
