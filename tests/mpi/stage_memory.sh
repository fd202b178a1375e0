#!/usr/bin/env bash
# Pipeline stages own their memory: a model whose parameters dominate (4
# encoder layers of hidden size 384), fine-tuned in full and supermask mode on
# 1 rank, on 2 and on 4 pipeline stages (one micro-batch). Each stage holds
# the parameters, gradients, AdamW moments, scores and mask of its own
# tensors only, so a stage's peak resident memory (compute.json's
# peak_rss_bytes_by_rank) must be below 1 rank's by at least 30% (2 stages)
# and 60% (4 stages) of those arrays' size (half and three quarters, ideally),
# where every stage of a run that allocates the whole model peaks at least as
# high as 1 rank. The files are assembled from the stages' tensors: the run
# directories (mask, model, metrics, log) are byte-identical to 1 rank's.
# Usage: stage_memory.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/big.json" <<JSON
{"vocab_size": 21, "hidden_size": 384, "num_hidden_layers": 4, "num_attention_heads": 6,
 "intermediate_size": 1536, "max_position_embeddings": 64, "type_vocab_size": 2}
JSON
"$bin" -q init --config "$work/big.json" --seed 3 --vocab "$work/vocab.txt" --out "$work/big" >/dev/null
cat > "$work/job.ini" <<INI
[run]
model = big
data = glue
[sweep]
tasks = SST-2
modes = supermask, full
seeds = 7
[supermask]
sparsities = 0.3
mask_lr = 2
samples = 2
[train]
lr = 1e-3
batch_size = 16
epochs = 1
max_seq_length = 24
log_every = 2
eval_batch_size = 8
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none)
for S in 1 2 4; do
  "${mpi[@]}" -n $S "$bin" -q run "$work/job.ini" --out "$work/s$S" --team-size $S --stages $S --micro-batches 1
done
for S in 2 4; do
  diff -r -x compute.json -x run.json -x 'report*' -x '*.csv' -x 'fig*' "$work/s1" "$work/s$S" \
    || { echo "FAIL: $S stages' run directory differs from 1 rank's"; exit 1; }
  cmp "$work/s1/report/science.json" "$work/s$S/report/science.json" || { echo "FAIL: science differs on $S stages"; exit 1; }
done
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
b = open(f'{w}/big/model.safetensors', 'rb').read(); n = int.from_bytes(b[:8], 'little')
hdr = json.loads(b[8:8 + n])
numel = sum(eval('*'.join(map(str, v['shape']))) for k, v in hdr.items() if k != '__metadata__')
bad = 0
for job, arrays in [('SST-2.full.seed7', 4), ('SST-2.supermask.s30.seed7', 5)]:
    # full: parameters, gradients, two moments; supermask: and the scores nu
    size = 4 * numel * arrays
    peak = {S: json.load(open(f'{w}/s{S}/{job}/compute.json'))['peak_rss_bytes_by_rank'] for S in (1, 2, 4)}
    one = peak[1][0]
    for S, frac in [(2, 0.3), (4, 0.6)]:
        worst = max(peak[S])
        print(f'{job}: peak per rank on 1 rank {one / 2**20:.1f} MiB, on {S} stages '
              f'{[round(x / 2**20, 1) for x in peak[S]]} MiB (the arrays: {size / 2**20:.1f} MiB)')
        if one - worst < frac * size:
            print(f'FAIL {job}: a stage of {S} peaks at {worst / 2**20:.1f} MiB, expected at most '
                  f'{(one - frac * size) / 2**20:.1f} MiB'); bad = 1
sys.exit(bad)
PY
echo PASS
