#!/usr/bin/env bash
# mask_python.sh: finemask's mask files read by a plain Python reader (json +
# numpy unpackbits(bitorder='little'), no safetensors library) give back the
# exact masks, with counts and CRC-32Cs that agree; mask stats/overlap --json,
# mask export (U8 and F32), mask apply and distance --json agree with what
# numpy computes from those bits; the float64 PyTorch reference
# (tests/tools/torch_bert.py) loads and runs the applied model; and, when the
# shared GLUE data is there, finemask eval scores the applied model.
#
#   bash tests/e2e/mask_python.sh FINEMASK_BINARY SOURCE_DIR
#
# Exit 77 (skip) without a python3 that has numpy ($FINEMASK_PYTHON names
# one). A few seconds.
set -euo pipefail
fm=${1:?usage: mask_python.sh FINEMASK_BINARY SOURCE_DIR}
src=${2:?usage: mask_python.sh FINEMASK_BINARY SOURCE_DIR}
py=
for cand in ${FINEMASK_PYTHON:-} /usr/bin/python3 python3; do
    if command -v "$cand" > /dev/null 2>&1 && "$cand" -c 'import numpy' > /dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "mask_python: SKIP: no python3 with numpy (set FINEMASK_PYTHON)"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

data=${FINEMASK_DATA:-$src/../shared/data}
vocab=()
if [ -f "$data/vocab/bert-base-uncased-vocab.txt" ]; then
    vocab=(--vocab "$data/vocab/bert-base-uncased-vocab.txt")
fi
cat > "$work/config.json" <<'JSON'
{"model_type": "bert", "vocab_size": 120, "hidden_size": 24, "num_hidden_layers": 2,
 "num_attention_heads": 2, "intermediate_size": 40, "max_position_embeddings": 64, "type_vocab_size": 2}
JSON
"$fm" -q init --config "$work/config.json" --seed 3 --num-labels 2 "${vocab[@]}" --out "$work/model"
"$fm" -q mask random --model "$work/model" --sparsity 0.35 --seed 11 --out "$work/a.safetensors"
"$fm" -q mask random --model "$work/model" --sparsity 0.6 --seed 12 --out "$work/b.safetensors"
"$fm" mask stats "$work/a.safetensors" --json > "$work/a.stats.json"
"$fm" mask overlap "$work/a.safetensors" "$work/b.safetensors" --json > "$work/ab.overlap.json"
"$fm" -q mask export "$work/a.safetensors" --out "$work/a.u8.safetensors"
"$fm" -q mask export "$work/a.safetensors" --out "$work/a.f32.safetensors" --dtype f32
"$fm" -q mask apply --model "$work/model" --mask "$work/a.safetensors" --out "$work/applied"
"$fm" distance "$work/model" "$work/applied" --json > "$work/distance.json"
"$py" "$src/tests/tools/mask_check.py" "$work"

if [ ${#vocab[@]} -gt 0 ] && [ -f "$data/glue/SST-2/dev.tsv" ]; then
    "$fm" eval --model "$work/applied" --task SST-2 --data "$data/glue" --max-seq-length 32 \
        --out "$work/eval.json"
    echo "mask_python: finemask eval runs the applied model"
else
    echo "mask_python: no shared data: eval of the applied model skipped"
fi
echo "mask_python: PASS"
