#!/usr/bin/env bash
# Fault test: a mask used with the wrong task or model, and where eval writes.
#  1. A supermask trained on SST-2 given to eval / predict --task CoLA is
#     refused, naming both tasks and --any-task, with a non-zero exit and no
#     output; with --any-task (a cross-task study) it is scored.
#  2. The same mask over another pre-trained model (another fingerprint) is
#     refused, --any-task or not.
#  3. eval writes its JSON where --out says; without --out into the current
#     directory (eval_<TASK>_<split>.json), never into the model directory
#     (shared, maybe read-only); --out - prints the JSON on standard output.
# Generated data (tests/mpi/mkdata.sh). Usage: mask_task.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$(realpath "$1") src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
# CoLA from the same sentences: source, label, original label, sentence; no header.
mkdir -p "$work/glue/CoLA"
for s in train dev; do
  tail -n +2 "$work/glue/SST-2/$s.tsv" | awk -F'\t' '{ print "gen\t" $2 "\t\t" $1 }' > "$work/glue/CoLA/$s.tsv"
done
"$bin" -q train --model "$work/model" --task SST-2 --data "$work/glue" --mode supermask --max-seq-length 24 \
  --batch-size 8 --max-steps 4 --samples 1 --threads 1 --out "$work/sm"
mask=$work/sm/mask.safetensors
ev=(--data "$work/glue" --max-seq-length 24 --threads 1)
snapshot() { (cd "$1" && find . -type f -exec cksum {} + | sort); }
snapshot "$work/model" > "$work/model.before"
cd "$work"

# 1. another task
if "$bin" -q eval --model "$work/model" --mask "$mask" --task CoLA "${ev[@]}" --out "$work/x.json" 2> err; then
  echo "FAIL: eval scored an SST-2 mask on CoLA without --any-task"; exit 1
fi
grep -q "trained on SST-2, not CoLA" err && grep -q -- "--any-task" err || { echo "FAIL: message"; cat err; exit 1; }
[ ! -e "$work/x.json" ] || { echo "FAIL: the refused eval wrote its output"; exit 1; }
echo "eval, SST-2 mask on CoLA: refused: $(cat err)"
if "$bin" -q predict --model "$work/model" --mask "$mask" --task CoLA "${ev[@]}" --split dev --out "$work/pred" 2> err; then
  echo "FAIL: predict used an SST-2 mask on CoLA without --any-task"; exit 1
fi
grep -q "trained on SST-2, not CoLA" err || { echo "FAIL: predict message"; cat err; exit 1; }
[ ! -e "$work/pred" ] || { echo "FAIL: the refused predict wrote $work/pred"; exit 1; }
"$bin" -q eval --model "$work/model" --mask "$mask" --task CoLA --any-task "${ev[@]}" --out "$work/cross.json" > /dev/null
grep -q '"mcc"' "$work/cross.json" || { echo "FAIL: --any-task did not score CoLA"; exit 1; }
"$bin" -q predict --model "$work/model" --mask "$mask" --task CoLA --any-task "${ev[@]}" --split dev --out "$work/pred"
[ -s "$work/pred/CoLA.tsv" ] || { echo "FAIL: predict --any-task wrote no CoLA.tsv"; exit 1; }
# the right task needs no option
"$bin" -q eval --model "$work/model" --mask "$mask" --task SST-2 "${ev[@]}" --out "$work/same.json" > /dev/null

# 2. another model
"$bin" -q init --config tiny --seed 4 --vocab "$work/vocab.txt" --out "$work/other" > /dev/null
for extra in "" --any-task; do
  if "$bin" -q eval --model "$work/other" --mask "$mask" --task SST-2 $extra "${ev[@]}" --out "$work/y.json" 2> err; then
    echo "FAIL: eval used a mask over another model ($extra)"; exit 1
  fi
  grep -q "fingerprint" err || { echo "FAIL: model mismatch message"; cat err; exit 1; }
done
echo "eval, mask over another model: refused: $(cat err)"

# 3. where eval writes
mkdir "$work/cwd" && cd "$work/cwd"
"$bin" -q eval --model "$work/model" --mask "$mask" --task SST-2 "${ev[@]}" > table.txt
[ -s "$work/cwd/eval_SST-2_dev.json" ] || { echo "FAIL: eval without --out wrote nothing in the current directory"; ls; exit 1; }
grep -q "acc" table.txt || { echo "FAIL: no table on stdout"; exit 1; }
"$bin" -q eval --model "$work/model" --mask "$mask" --task SST-2 "${ev[@]}" --out - > stdout.json
/usr/bin/python3 -c 'import json,sys; j = json.load(open(sys.argv[1])); assert j["task"] == "SST-2" and "acc" in j, j' stdout.json
snapshot "$work/model" | diff "$work/model.before" - || { echo "FAIL: eval changed the model directory"; exit 1; }
echo "mask_task: OK"
