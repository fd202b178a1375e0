#!/usr/bin/env bash
# End to end: `finemask demo` at a reduced size (--scale 0.02) runs every
# phase, prints the table of the eight tasks and writes its report; a second
# run reuses the data and the pre-trained model; the generated data is the
# same bytes as a fresh generation.
# Usage: demo.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1

"$bin" demo --dir "$work/d" --scale 0.02 > "$work/out1" 2> "$work/err1" || { cat "$work/err1"; exit 1; }
cat "$work/out1"
for t in CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE; do
  grep -q "^$t " "$work/out1" || { echo "FAIL: no row for $t"; exit 1; }
  for m in full supermask; do
    [ -s "$work/d/runs/$t-$m/metrics.json" ] || { echo "FAIL: no run $t-$m"; exit 1; }
  done
done
grep -q "full report: $work/d/report.md" "$work/out1" || { echo "FAIL: no report path"; exit 1; }
[ -s "$work/d/report.md" ] && [ -s "$work/d/report.json" ]
grep -q "data generated" "$work/err1" && grep -q "pre-trained model made" "$work/err1"

# Second run: data and model reused (the model file untouched).
before=$(stat -c %Y.%s "$work/d/model/model.safetensors")
FINEMASK_DEMO_DIR="$work/d" "$bin" demo --scale 0.02 > "$work/out2" 2> "$work/err2"
grep -q "data reused" "$work/err2" && grep -q "pre-trained model reused" "$work/err2" \
  || { echo "FAIL: second run did not reuse"; cat "$work/err2"; exit 1; }
[ "$before" = "$(stat -c %Y.%s "$work/d/model/model.safetensors")" ] || { echo "FAIL: model rewritten"; exit 1; }
# Fine-tuning is deterministic: the same table.
diff <(grep -v "full report" "$work/out1") <(grep -v "full report" "$work/out2")

# Another scale is another stamp: regenerated; and the data of a fresh
# generation is byte-identical.
"$bin" -q demo --only data --dir "$work/e" --scale 0.02
diff -r "$work/d/data" "$work/e/data"
echo "demo e2e: OK"
