#!/usr/bin/env bash
# End to end: `finemask demo` at a reduced size (--scale 0.02) runs every
# phase (data, pre-training, `finemask run` of its 16 jobs), prints the
# report's table of the eight tasks in both modes and the report's path; a
# second run reuses the data and the pre-trained model; the generated data is
# the same bytes as a fresh generation; jobs/demo.ini matches the job file
# the demo writes; under mpiexec -n 2 the demo runs
# across both ranks.
# Usage: demo.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1

"$bin" demo --dir "$work/d" --scale 0.02 > "$work/out1" 2> "$work/err1" || { cat "$work/err1"; exit 1; }
cat "$work/out1"
for t in CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE; do
  for m in full supermask; do
    grep -q "^| $t | $m |" "$work/out1" || { echo "FAIL: no table row for $t $m"; exit 1; }
  done
done
[ "$(find "$work/d/runs" -name metrics.json | wc -l)" = 16 ] || { echo "FAIL: expected 16 runs"; exit 1; }
grep -q "full report: $work/d/runs/report/report.md" "$work/out1" || { echo "FAIL: no report path"; exit 1; }
[ -s "$work/d/runs/report/report.md" ] && [ -s "$work/d/demo.ini" ]
# jobs/demo.ini is the demo's recipe for a demo directory ./finemask-demo: the
# same sweep and settings as the job file the demo writes.
diff <(sed -n '/^\[sweep\]/,$p' "$work/d/demo.ini") <(sed -n '/^\[sweep\]/,$p' "$src/jobs/demo.ini") \
  || { echo "FAIL: jobs/demo.ini differs from the demo's job file"; exit 1; }
grep -q "data generated" "$work/err1" && grep -q "pre-trained model made" "$work/err1"
# Progress: one line per finished job, and none of the jobs' own step lines.
[ "$(grep -c '^finemask: \[[0-9]*/16\] .*: done, ' "$work/err1")" = 16 ] \
  || { echo "FAIL: not one 'done' line per job"; cat "$work/err1"; exit 1; }
! grep -q "steps of 32" "$work/err1" || { echo "FAIL: the jobs' own lines are shown"; exit 1; }

# Second run: data and model reused (the model file untouched).
before=$(stat -c %Y.%s "$work/d/model/model.safetensors")
FINEMASK_DEMO_DIR="$work/d" "$bin" demo --scale 0.02 > "$work/out2" 2> "$work/err2"
grep -q "data reused" "$work/err2" && grep -q "pre-trained model reused" "$work/err2" \
  || { echo "FAIL: second run did not reuse"; cat "$work/err2"; exit 1; }
[ "$before" = "$(stat -c %Y.%s "$work/d/model/model.safetensors")" ] || { echo "FAIL: model rewritten"; exit 1; }
# The finished jobs are kept too: the same table.
diff <(grep -v "full report" "$work/out1") <(grep -v "full report" "$work/out2")

# Another scale is another stamp: regenerated; and the data of a fresh
# generation is byte-identical.
"$bin" -q demo --only data --dir "$work/e" --scale 0.02
diff -r "$work/d/data" "$work/e/data"
# Across MPI ranks (pre-training data-parallel, jobs shared by two teams).
if command -v mpiexec >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  if mpiexec -n 2 --oversubscribe "$bin" demo --dir "$work/m" --scale 0.02 > "$work/out3" 2> "$work/err3"; then
    grep -q "on 2 rank(s)" "$work/err3" || { echo "FAIL: not on 2 ranks"; cat "$work/err3"; exit 1; }
    grep -q "^| RTE | full |" "$work/out3" || { echo "FAIL: no table under mpiexec"; cat "$work/out3"; exit 1; }
  else
    echo "FAIL: mpiexec could not start 2 ranks"; cat "$work/err3"; exit 1
  fi
else
  echo "FAIL: no mpiexec (install.sh installs Open MPI)"; exit 1
fi
echo "demo e2e: OK"
