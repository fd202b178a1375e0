#!/usr/bin/env bash
# End to end: a randomly initialised tiny BERT with the real uncased
# vocabulary, fine-tuned on (part of) SST-2 from ../shared/data, must reach a
# dev accuracy well above chance (the dev set is 51% positive), the run
# directory must hold what the README promises, the same command twice must
# give byte-identical files, and predict must write GLUE's submission layout.
# Usage: train_sst2.sh FINEMASK_BIN SOURCE_DIR. Exit 77: data absent (skip).
set -euo pipefail
bin=$1 src=$2
data=${FINEMASK_DATA:-$src/../shared/data}
if [ ! -f "$data/glue/SST-2/train.tsv" ] || [ ! -f "$data/vocab/bert-base-uncased-vocab.txt" ]; then
  echo "skip: GLUE data not found in $data"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" -q init --config tiny --seed 1 --vocab "$data/vocab/bert-base-uncased-vocab.txt" --out "$work/tiny"
args=(--model "$work/tiny" --task SST-2 --data "$data/glue" --max-train-examples 6000 --epochs 1
      --lr 1e-3 --max-seq-length 64 --log-every 50)
start=$(date +%s%N)
"$bin" train "${args[@]}" --out "$work/run1"
end=$(date +%s%N)
for f in metrics.json log.jsonl model/config.json model/model.safetensors model/vocab.txt; do
  [ -s "$work/run1/$f" ] || { echo "FAIL: run directory lacks $f"; exit 1; }
done
acc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dev"]["acc"])' "$work/run1/metrics.json")
echo "SST-2 dev accuracy $acc after 188 steps of 32 (6000 examples, one epoch) ($(( (end - start) / 1000000 )) ms)"
python3 -c 'import sys; a=float(sys.argv[1]); sys.exit(0 if a >= 0.65 else 1)' "$acc" \
  || { echo "FAIL: dev accuracy $acc below 0.65"; exit 1; }

# Determinism: the same command twice gives the same bytes (on a shorter
# run, so that the test stays short).
short=("${args[@]}" --max-train-examples 1000)
"$bin" -q train "${short[@]}" --out "$work/run2"
"$bin" -q train "${short[@]}" --out "$work/run3"
diff -r "$work/run2" "$work/run3" >/dev/null || { echo "FAIL: two identical runs differ"; diff -r "$work/run2" "$work/run3" | head; exit 1; }

# eval on the saved model reproduces the accuracy in metrics.json.
"$bin" -q eval --model "$work/run1/model" --task SST-2 --data "$data/glue" --max-seq-length 64 --out "$work/eval.json" >/dev/null
python3 - "$work/eval.json" "$acc" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
assert abs(e["acc"] - float(sys.argv[2])) < 1e-9, (e["acc"], sys.argv[2])
PY

# predict: GLUE's submission layout for SST-2's test set.
"$bin" -q predict --model "$work/run1/model" --task SST-2 --data "$data/glue" --max-seq-length 64 --out "$work/sub"
python3 - "$work/sub" "$data/glue/SST-2/test.tsv" <<'PY'
import sys
sub, test = sys.argv[1], sys.argv[2]
rows = open(f"{sub}/SST-2.tsv").read().splitlines()
tests = open(test).read().splitlines()[1:]
assert rows[0] == "index\tprediction", rows[0]
assert len(rows) - 1 == len(tests), (len(rows) - 1, len(tests))
for r, t in zip(rows[1:], tests):
    i, p = r.split("\t")
    assert i == t.split("\t")[0] and p in ("0", "1"), r
logits = open(f"{sub}/SST-2.logits.tsv").read().splitlines()
assert logits[0] == "index\t0\t1" and len(logits) == len(rows), logits[0]
for r, l in zip(rows[1:], logits[1:]):
    _, a, b = l.split("\t")
    assert r.split("\t")[1] == ("1" if float(b) > float(a) else "0"), (r, l)
print(f"predict: {len(rows) - 1} test rows in GLUE's layout")
PY
echo "PASS"
