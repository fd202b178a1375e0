#!/usr/bin/env bash
# End to end, supermask on SST-2 (../shared/data) over a small model with
# signal: a random-init tiny BERT is first fully fine-tuned briefly (as
# train_sst2.sh does), then its weights are frozen and a supermask is learned
# over them from 50% initial sparsity (the smallest half of |theta~| masked).
# Asserts: the mask recovers weights the function needs, so the deterministic
# and expected sparsities fall below their initial 0.5; the deterministic
# mask's dev accuracy is above chance (the dev set is 51% positive); the run
# directory holds metrics.json, log.jsonl, options.json and mask.safetensors
# and no model; the mask file has one packed tensor per masked matrix and the
# head; eval --mask reproduces the score and rejects a mask over another
# model (resume.sh checks that runs are byte-reproducible). Then the shuffled and random
# controls run in supermask mode.
# Usage: supermask_sst2.sh FINEMASK_BIN SOURCE_DIR. Exit 77: data absent (skip).
set -euo pipefail
bin=$1 src=$2
data=${FINEMASK_DATA:-$src/../shared/data}
if [ ! -f "$data/glue/SST-2/train.tsv" ] || [ ! -f "$data/vocab/bert-base-uncased-vocab.txt" ]; then
  echo "skip: GLUE data not found in $data"
  exit 77
fi
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" -q init --config tiny --seed 1 --vocab "$data/vocab/bert-base-uncased-vocab.txt" --out "$work/tiny"
common=(--task SST-2 --data "$data/glue" --max-seq-length 48 --eval-batch-size 128)
"$bin" -q train --model "$work/tiny" "${common[@]}" --max-train-examples 6000 --epochs 1 --lr 1e-3 --out "$work/ft"
base_acc=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["score"])' "$work/ft/metrics.json")
echo "fully fine-tuned tiny model: dev accuracy $base_acc"

sm=(--model "$work/ft/model" "${common[@]}" --mode supermask --init-sparsity 0.5 --max-train-examples 3200
    --epochs 1 --lr 1e-3 --mask-lr 0.5 --ste sigmoid --samples 3 --log-every 25)
start=$(date +%s%N)
"$bin" -q train "${sm[@]}" --out "$work/sm1"
end=$(date +%s%N)
echo "supermask training: $(( (end - start) / 1000000 )) ms"
for f in metrics.json log.jsonl options.json mask.safetensors; do
  [ -s "$work/sm1/$f" ] || { echo "FAIL: run directory lacks $f"; exit 1; }
done
[ ! -e "$work/sm1/model" ] || { echo "FAIL: a supermask run wrote a model directory"; exit 1; }
$PY - "$work/sm1" <<'PY'
import json, struct, sys
d = sys.argv[1]
m = json.load(open(f"{d}/metrics.json"))
print("supermask: acc %.4f (samples %.4f +- %.4f), sparsity expected %.4f sampled %.4f deterministic %.4f, storage %d bytes"
      % (m["score"], m["score_samples_mean"], m["score_samples_std"], m["sparsity_expected"],
         m["sparsity_sampled"], m["sparsity_deterministic"], m["task_storage_bytes"]))
assert m["mode"] == "supermask" and m["init_sparsity"] == 0.5 and m["ste"] == "sigmoid", m
assert len(m["score_samples"]) == m["samples"] == 3
for k in ("sparsity_expected", "sparsity_deterministic", "sparsity_sampled"):
    # Moved down from 0.5. Measured (tiny, this recipe): expected 0.49953,
    # sampled 0.49953, deterministic 0.49980. The word embeddings hold 89% of
    # the masked entries and most of their rows never see a gradient, so the
    # overall figures move little; the runs are bit-reproducible, so this is
    # no statistical threshold.
    assert m[k] < 0.5 - 1e-4, (k, m[k])
assert m["score"] > 0.55, m["score"]             # above chance (0.509 = all positive)
assert m["score_samples_mean"] > 0.53, m["score_samples_mean"]
assert m["trained_parameters"] == 2 * 128 + 2
# The mask file: packed bits for every masked matrix, the head, the job.
raw = open(f"{d}/mask.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
meta = h.pop("__metadata__")
assert meta["mode"] == "supermask" and meta["task"] == "SST-2", meta
tensors = json.loads(meta["tensors"])
assert len(tensors) == m["masked_tensors"] == 16, len(tensors)
assert "classifier.weight" in h and "classifier.bias" in h
ones = sum(t["ones"] for t in tensors.values())
assert abs(1 - ones / m["masked_parameters"] - m["sparsity_deterministic"]) < 1e-9
assert m["task_storage_bytes"] == m["mask_bytes"] + 4 * (2 * 128 + 2)
PY
# The sparsity goes down in the log too.
$PY - "$work/sm1/log.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
exp = [l["sparsity_expected"] for l in lines if "sparsity_expected" in l]
assert exp[-1] < exp[0], exp
PY
# eval --mask reproduces the deterministic-mask score of metrics.json.
"$bin" -q eval --model "$work/ft/model" --mask "$work/sm1/mask.safetensors" --task SST-2 --data "$data/glue" \
  --max-seq-length 48 --batch-size 128 --out "$work/eval.json" >/dev/null
$PY - "$work/eval.json" "$work/sm1/metrics.json" <<'PY'
import json, sys
e, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert e["acc"] == m["dev"]["acc"], (e["acc"], m["dev"]["acc"])
assert abs(e["sparsity_deterministic"] - m["sparsity_deterministic"]) < 1e-9
PY
# A mask over another model is rejected (its fingerprint differs).
if "$bin" -q eval --model "$work/tiny" --mask "$work/sm1/mask.safetensors" --task SST-2 --data "$data/glue" \
  --out "$work/bad.json" 2>/dev/null; then echo "FAIL: a mask over a foreign model accepted"; exit 1; fi

# The controls in supermask mode: a few steps each, the run directory complete.
for w in shuffled random; do
  "$bin" -q train --model "$work/ft/model" "${common[@]}" --mode supermask --weights $w --init-sparsity 0.5 \
    --max-train-examples 64 --max-steps 4 --batch-size 16 --samples 1 --out "$work/$w"
  $PY - "$work/$w/metrics.json" "$w" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["weights"] == sys.argv[2] and m["mode"] == "supermask" and m["steps"] == 4, m
assert abs(m["sparsity_deterministic"] - 0.5) < 1e-6, m["sparsity_deterministic"]
print(f"control {sys.argv[2]}: acc {m['score']:.4f}")
PY
  [ -s "$work/$w/mask.safetensors" ] || { echo "FAIL: $w control wrote no mask"; exit 1; }
done
echo "PASS"
