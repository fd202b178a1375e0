#!/usr/bin/env bash
# compute.json counts the sums over the tensor-parallel ranks: a full
# fine-tuning of a tiny BERT on 2 tensor-parallel ranks and on 2 replicas x
# 2 tensor-parallel ranks, every example cut to the same 6 tokens (so every
# batch has T = 6). Each training step sums 4 activations of B x T x H
# floats per encoder layer (B the replica's rows), 4 bytes a float:
# tp_sum_bytes and its per-step figures must be that exactly, on every rank,
# the sums of the evaluations after the training left out; the
# small sums of doubles are the two signal flags, one check value per rank
# and one norm term per tensor, every step; comm_bytes adds them all to the
# gradient sums. One rank has none of these fields.
# Usage: tp_compute.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = full
seeds = 3
[train]
lr = 1e-3
batch_size = 16
epochs = 1
max_seq_length = 6
log_every = 2
eval_batch_size = 8
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none)
"$bin" -q run "$work/job.ini" --out "$work/r1"
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/t2" --team-size 2 --tensor-parallel 2
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --out "$work/q4" --team-size 4 --tensor-parallel 2
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
job = 'SST-2.full.seed3'
cfg = json.load(open(f'{w}/model/config.json'))
b = open(f'{w}/model/model.safetensors', 'rb').read(); n = int.from_bytes(b[:8], 'little')
tensors = [k for k in json.loads(b[8:8 + n]) if k != '__metadata__'] + ['classifier.weight', 'classifier.bias']
H, L, T = cfg['hidden_size'], cfg['num_hidden_layers'], 6
bad = 0
c1 = json.load(open(f'{w}/r1/{job}/compute.json'))
for k in ['tp_sum_bytes', 'tp_small_sum_bytes', 'tp_sum_bytes_per_step', 'tp_sum_bytes_per_step_by_rank']:
    if k in c1:
        print(f'FAIL: 1 rank reports {k}'); bad = 1
for lay, P, R in [('t2', 2, 1), ('q4', 2, 2)]:
    c = json.load(open(f'{w}/{lay}/{job}/compute.json'))
    steps = json.load(open(f'{w}/{lay}/{job}/metrics.json'))['steps']
    B = 16 // R
    per_step = 4 * B * T * H * 4 * L
    small = 8 * (2 + P + len(tensors))
    want = {'tp_sum_bytes': steps * per_step, 'tp_sum_bytes_per_step': per_step,
            'tp_sum_bytes_per_step_by_rank': [per_step] * (P * R), 'tp_small_sum_bytes': steps * small}
    for k, v in want.items():
        if c.get(k) != v:
            print(f'FAIL {lay}: {k} {c.get(k)}, expected {v}'); bad = 1
    if c.get('comm_bytes') != c.get('grad_bytes', 0) + steps * (per_step + small):
        print(f'FAIL {lay}: comm_bytes {c.get("comm_bytes")} is not the gradient sums {c.get("grad_bytes")} '
              f'+ {steps} x ({per_step} + {small})'); bad = 1
    if steps != 6:
        print(f'FAIL {lay}: {steps} steps, expected 6'); bad = 1
    print(f'{lay}: {steps} steps, B {B} T {T} H {H} L {L}: '
          f'tp_sum_bytes {c.get("tp_sum_bytes")} = {steps} x 4 x {B} x {T} x {H} x 4 x {L}, '
          f'small sums {c.get("tp_small_sum_bytes")}, comm_bytes {c.get("comm_bytes")}')
sys.exit(bad)
PY
echo PASS
