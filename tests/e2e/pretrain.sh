#!/usr/bin/env bash
# End to end: masked-LM pre-training of a tiny BERT on the demo's generated
# corpus lowers the held-out MLM loss by a measured margin; the model
# directory is what train reads; the same command gives the same bytes; two
# MPI ranks give the same losses as one (when mpiexec is there); bad inputs
# are refused with a message; --init continues a model's pre-training.
# Usage: pretrain.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1

"$bin" -q demo --only data --dir "$work/demo" --scale 0.1
data=$work/demo/data
args=(--corpus "$data/corpus.txt" --vocab "$data/vocab.txt" --config tiny --steps 200 --batch 16 --seq 32
      --lr 2e-3 --warmup 0.05 --seed 3 --log-every 50)
"$bin" pretrain "${args[@]}" --out "$work/m1" 2> "$work/log1"
grep -q "pretrain: step 200/200" "$work/log1" || { echo "FAIL: no progress line"; cat "$work/log1"; exit 1; }
for f in config.json model.safetensors vocab.txt pretrain.json pretrain_log.jsonl; do
  [ -s "$work/m1/$f" ] || { echo "FAIL: model directory lacks $f"; exit 1; }
done
python3 - "$work/m1" <<'PY'
import json, struct, sys
d = sys.argv[1]
s = json.load(open(d + "/pretrain.json"))
a, b = s["eval_loss_initial"], s["eval_loss_final"]
print(f"held-out MLM loss {a:.3f} -> {b:.3f} after {s['steps']} steps")
# measured: 5.895 -> 3.767 (a uniform guess over the 349 tokens is ln 349 = 5.86)
assert a > 5.0, a
assert b < a - 1.5, (a, b)
k = s["mlm_counts"]
assert k["chosen"] == k["masked"] + k["random"] + k["kept"], k
assert abs(k["chosen"] / k["tokens"] - 0.15) < 0.01, k
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["BertForMaskedLM"], c["architectures"]
assert c["vocab_size"] == sum(1 for _ in open(d + "/vocab.txt")), c["vocab_size"]
raw = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
names = set(json.loads(raw[8:8 + n])) - {"__metadata__"}
for t in ("cls.predictions.bias", "cls.predictions.transform.dense.weight",
          "bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.dense.weight"):
    assert t in names, t
lines = [json.loads(l) for l in open(d + "/pretrain_log.jsonl")]
assert [l["step"] for l in lines] == [50, 100, 150, 200], lines
PY

# Deterministic: the same command again writes the same model.
"$bin" -q pretrain "${args[@]}" --out "$work/m2"
cmp "$work/m1/model.safetensors" "$work/m2/model.safetensors" || { echo "FAIL: two runs differ"; exit 1; }
cmp "$work/m1/pretrain.json" "$work/m2/pretrain.json"

# train and eval read the pre-trained directory (the MLM head is skipped).
"$bin" -q train --model "$work/m1" --task SST-2 --data "$data/glue" --max-steps 3 --max-seq-length 32 \
  --out "$work/run" >/dev/null
[ -s "$work/run/metrics.json" ] || { echo "FAIL: train on the pre-trained model wrote no metrics"; exit 1; }

# Data parallel: two ranks split each batch and match one rank's losses.
if command -v mpiexec >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  short=(--corpus "$data/corpus.txt" --vocab "$data/vocab.txt" --steps 20 --batch 16 --seq 32 --lr 2e-3
         --seed 3 --log-every 5)
  "$bin" -q pretrain "${short[@]}" --out "$work/r1"
  if mpiexec -n 2 --oversubscribe "$bin" -q pretrain "${short[@]}" --out "$work/r2" 2> "$work/mpi.log"; then
    python3 - "$work/r1" "$work/r2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1] + "/pretrain_log.jsonl")]
b = [json.loads(l) for l in open(sys.argv[2] + "/pretrain_log.jsonl")]
assert len(a) == len(b) == 4
for x, y in zip(a, b):
    assert abs(x["loss"] - y["loss"]) <= 1e-4 * abs(x["loss"]), (x, y)
sa, sb = (json.load(open(d + "/pretrain.json")) for d in sys.argv[1:])
assert abs(sa["eval_loss_final"] - sb["eval_loss_final"]) < 1e-4, (sa, sb)
assert sa["mlm_counts"] == sb["mlm_counts"], (sa["mlm_counts"], sb["mlm_counts"])
print("2 ranks match 1 rank:", [round(x["loss"], 5) for x in a], [round(y["loss"], 5) for y in b])
PY
  else
    echo "FAIL: mpiexec could not start 2 ranks"; cat "$work/mpi.log"; exit 1
  fi
else
  echo "FAIL: no mpiexec (install.sh installs Open MPI)"; exit 1
fi

# Bad inputs: a clear message and a non-zero exit; nothing overwritten.
expect_fail() {
  local want=$1; shift
  if "$bin" "$@" > "$work/out" 2>&1; then echo "FAIL: '$*' succeeded"; exit 1; fi
  grep -q -- "$want" "$work/out" || { echo "FAIL: '$*' said:"; cat "$work/out"; exit 1; }
}
expect_fail "already exists" pretrain "${args[@]}" --out "$work/m1"
expect_fail "nope.txt" pretrain --corpus "$work/nope.txt" --vocab "$data/vocab.txt" --out "$work/m3"
grep -v MASK "$data/vocab.txt" > "$work/nomask.txt"
expect_fail "no \[MASK\]" pretrain --corpus "$data/corpus.txt" --vocab "$work/nomask.txt" --out "$work/m3"
expect_fail "max_position_embeddings" pretrain --corpus "$data/corpus.txt" --vocab "$data/vocab.txt" --seq 1024 --out "$work/m3"
printf '\n\n' > "$work/empty.txt"
expect_fail "no text" pretrain --corpus "$work/empty.txt" --vocab "$data/vocab.txt" --out "$work/m3"
cmp "$work/m1/model.safetensors" "$work/m2/model.safetensors"

# Continued pre-training (--init): the run starts from m1's weights, MLM head
# included, so its held-out loss before the first step is m1's final one
# (the same corpus, rows, held-out split and seed, which draws the held-out
# rows' masks), and it goes on lowering it.
cont=(--corpus "$data/corpus.txt" --vocab "$data/vocab.txt" --steps 100 --batch 16 --seq 32 --lr 1e-3
      --warmup 0.05 --seed 3 --log-every 50)
"$bin" pretrain "${cont[@]}" --init "$work/m1" --out "$work/c1" 2> "$work/logc"
grep -q "continuing from $work/m1/model.safetensors" "$work/logc" || { echo "FAIL: no --init line"; cat "$work/logc"; exit 1; }
python3 - "$work/m1" "$work/c1" <<'PY'
import json, sys
a, c = (json.load(open(d + "/pretrain.json")) for d in sys.argv[1:])
assert abs(c["eval_loss_initial"] - a["eval_loss_final"]) < 1e-5, (a["eval_loss_final"], c["eval_loss_initial"])
assert c["eval_loss_final"] < c["eval_loss_initial"], c
assert c["init"] == sys.argv[1], c
print(f"continued: {c['eval_loss_initial']:.4f} -> {c['eval_loss_final']:.4f}")
PY
cmp "$work/m1/config.json" "$work/c1/config.json"
expect_fail "the config is the model's" pretrain "${cont[@]}" --init "$work/m1" --config tiny --out "$work/m3"
head -n 200 "$data/vocab.txt" > "$work/small-vocab.txt"
expect_fail "the model's vocab_size is" pretrain --corpus "$data/corpus.txt" --vocab "$work/small-vocab.txt" \
  --init "$work/m1" --out "$work/m3"
expect_fail "config.json" pretrain "${cont[@]}" --init "$work/nope" --out "$work/m3"
[ ! -e "$work/m3" ] || { echo "FAIL: a refused run left $work/m3"; exit 1; }
echo "pretrain e2e: OK"
