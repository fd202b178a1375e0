#!/usr/bin/env bash
# End to end, on real data (skipped when SOURCE_DIR/../shared/data is absent):
# a small reproduction of the paper's claims. Extracts the sentences of the
# GLUE training sets of SST-2, CoLA, MRPC, STS-B and RTE into a corpus,
# pre-trains a tiny BERT on it with the real bert-base-uncased vocabulary,
# then runs jobs/real-small.ini with `finemask run`: per task full
# fine-tuning, and supermasks from 0% initial sparsity over the pre-trained,
# the shuffled and random weights (20 jobs). Asserts the machinery only:
# the held-out MLM loss falls, all 20 jobs complete, the report has every
# score row and a claims row per task with scores in range, and a second
# `finemask run` (every job skipped) writes the same science.json. Prints
# the claims as measured: whatever they are, they are a finding, not a test.
# REPRO_FULL=1 runs the full-size variant (jobs/real-full.ini, longer
# pre-training; hours). Usage: repro_real.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1
src=$2
data=$src/../shared/data
vocab=$data/vocab/bert-base-uncased-vocab.txt
[ -d "$data/glue" ] && [ -s "$vocab" ] || { echo "no $data: skipped"; exit 77; }
work=${REPRO_DIR:-$(mktemp -d)}
[ -n "${REPRO_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ "${REPRO_FULL:-0}" = 1 ]; then
  job=$src/jobs/real-full.ini
  pt=(--config mini --steps 20000 --batch 64 --seq 128 --lr 5e-4)
else
  job=$src/jobs/real-small.ini
  pt=(--config tiny --steps 200 --batch 32 --seq 64 --lr 1e-3)
fi

# Two ranks when mpiexec can start them (pre-training splits each batch, the
# sweep runs two jobs at a time), else one process.
run=("$bin")
if command -v mpiexec >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  if mpiexec -n 2 --oversubscribe true >/dev/null 2>&1; then run=(mpiexec -n 2 --oversubscribe "$bin"); fi
fi

# 1. The corpus: every sentence of the five training sets, one per line
# (tab-separated files; columns as GLUE ships them; CoLA has no header).
corpus=$work/corpus.txt
g=$data/glue
{
  awk -F'\t' 'NR > 1 { print $1 }' "$g/SST-2/train.tsv"
  awk -F'\t' '{ print $4 }' "$g/CoLA/train.tsv"
  awk -F'\t' 'NR > 1 { print $4; print $5 }' "$g/MRPC/train.tsv"
  awk -F'\t' 'NR > 1 { print $8; print $9 }' "$g/STS-B/train.tsv"
  awk -F'\t' 'NR > 1 { print $2; print $3 }' "$g/RTE/train.tsv"
} | awk 'NF' > "$corpus"
lines=$(wc -l < "$corpus")
echo "corpus: $lines sentences, $(wc -w < "$corpus") words"
[ "$lines" -gt 80000 ] || { echo "FAIL: corpus has only $lines lines"; exit 1; }

# 2. Pre-training (reused when REPRO_DIR holds one already).
model=$work/model
t0=$(date +%s)
if [ ! -s "$model/pretrain.json" ]; then
  "${run[@]}" -q pretrain --corpus "$corpus" --vocab "$vocab" --out "$model" "${pt[@]}" --warmup 0.05 --seed 1 --resume --checkpoint-every 500 \
    --log-every 50
fi
t1=$(date +%s)
read -r before after < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["eval_loss_initial"], s["eval_loss_final"])' "$model/pretrain.json")
echo "pre-training: held-out MLM loss $before -> $after ($((t1 - t0)) s)"
# ln 30522 = 10.33: the loss starts near a uniform guess and must fall.
python3 -c 'import sys; a,b=map(float,sys.argv[1:]); assert 9 < a < 11.5 and b < a - 2, (a, b)' "$before" "$after" \
  || { echo "FAIL: pre-training did not lower the loss"; exit 1; }

# 3. The sweep.
out=$work/runs
"${run[@]}" -q run "$job" --model "$model" --data "$g" --out "$out" > "$work/run.out" 2> "$work/run.err" \
  || { echo "FAIL: finemask run"; tail -30 "$work/run.err"; exit 1; }
t2=$(date +%s)
echo "sweep: $((t2 - t1)) s"
[ "$(find "$out" -name metrics.json | wc -l)" = 20 ] || { echo "FAIL: expected 20 finished jobs"; exit 1; }
rep=$out/report
python3 - "$rep/science.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert not s["failed"], s["failed"]
tasks = ["SST-2", "CoLA", "MRPC", "STS-B", "RTE"]
conds = [("full", "pretrained"), ("supermask", "pretrained"), ("supermask", "shuffled"), ("supermask", "random")]
g = {(x["task"], x["mode"], x["weights"]): x for x in s["groups"]}
for t in tasks:
    for m, w in conds:
        x = g.get((t, m, w))
        assert x, (t, m, w)
        # accuracy or F1 in [0, 1]; CoLA's Matthews and STS-B's correlation in [-1, 1]
        lo = -1 if t in ("CoLA", "STS-B") else 0
        assert lo <= x["score_mean"] <= 1, x
c = s["claims"]
assert [r["task"] for r in c["tasks"]] == tasks, c
for r in c["tasks"]:
    assert abs(r["gap"] - (r["full"] - r["supermask"])) < 1e-9, r
    assert r["variant"] == "s0" and "shuffled" in r and "random" in r, r
print("\nClaims as measured (dev score; CoLA Matthews corr., STS-B Pearson/Spearman, MRPC F1/acc, others acc):")
print(f"{'task':6} {'full':>7} {'supermask':>9} {'gap':>7} {'shuffled':>8} {'random':>7}  close  >shuf  >rand")
for r in c["tasks"]:
    print(f"{r['task']:6} {r['full']:7.4f} {r['supermask']:9.4f} {r['gap']:+7.4f} {r['shuffled']:8.4f} {r['random']:7.4f}"
          f"  {'yes' if r['close'] else 'no':5}  {'yes' if r['beats_shuffled'] else 'no':5}  {'yes' if r['beats_random'] else 'no'}")
print(f"supermask within {c['close_threshold']} of full fine-tuning on {c['close']}/5 tasks (mean gap {c['mean_gap']:+.4f}); "
      f"beats shuffled on {c['beats_shuffled']}/5, random on {c['beats_random']}/5")
PY
grep -q "^## Claims as measured" "$rep/science.md" || { echo "FAIL: no claims section in science.md"; exit 1; }
for t in SST-2 CoLA MRPC STS-B RTE; do
  grep -q "^| $t | full | " "$rep/report.md" && grep -q "^| $t | supermask | s0 | random |" "$rep/report.md" \
    || { echo "FAIL: report.md lacks rows of $t"; exit 1; }
done

# 4. Deterministic report: a second run skips every job and writes the same science.
cp "$rep/science.json" "$work/science1.json"
stamps=$(stat -c '%n %Y' "$out"/*/metrics.json)
"${run[@]}" run "$job" --model "$model" --data "$g" --out "$out" > /dev/null 2> "$work/run2.err"
grep -q "20 job(s), 0 failed" "$work/run2.err" || { echo "FAIL: second run"; cat "$work/run2.err"; exit 1; }
[ "$stamps" = "$(stat -c '%n %Y' "$out"/*/metrics.json)" ] || { echo "FAIL: second run redid jobs"; exit 1; }
cmp "$work/science1.json" "$rep/science.json" || { echo "FAIL: report differs on a rerun"; exit 1; }
echo "report: $rep/report.md"
echo "repro_real e2e: OK ($(( $(date +%s) - t0 )) s)"
