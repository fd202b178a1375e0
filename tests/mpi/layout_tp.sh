#!/usr/bin/env bash
# Layout invariance under tensor parallelism: the same jobs as layout.sh (a
# supermask and a full fine-tuning of a tiny random BERT with 2 heads) on 1
# rank, on 2 tensor-parallel ranks, on 2 replicas x 2 tensor-parallel ranks,
# on 2 pipeline stages x 2 tensor-parallel ranks (1F1B and GPipe) and on 2
# replicas of those (8 ranks) give the same metrics and log losses (to
# 1e-5), masks that differ in at most 1e-4 of their entries and fine-tuned
# models within float rounding of each other (so the shares are gathered
# back where they belong); the same layout twice gives byte-identical run
# directories (2 tensor-parallel ranks, and 2 stages x 2); a run interrupted
# by SIGTERM and resumed under tensor parallelism, and under stages x tensor
# parallelism, ends with the bytes of an uninterrupted one; a control job
# (shuffled weights) on 2 stages x 2 tensor-parallel ranks has one rank's
# metrics, fingerprint and mask. The comparisons must be able to fail: a
# mask or a model whose heads' shares are swapped (what a wrong gather would
# write) is caught. Layouts that cannot work are refused, naming the option.
# Usage: layout_tp.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = supermask, full
seeds = 7
[supermask]
sparsities = 0.3
mask_lr = 2
ste = identity
samples = 2
[train]
lr = 1e-3
batch_size = 16
epochs = 2
max_seq_length = 24
log_every = 2
eval_batch_size = 8
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none)
"$bin" -q run "$work/job.ini" --out "$work/r1"
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/t2" --team-size 2 --tensor-parallel 2
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/t2b" --team-size 2 --tensor-parallel 2
# 2 replicas x 2 tensor-parallel ranks, the job file's [layout] key
cp "$work/job.ini" "$work/job4.ini"
echo "tensor_parallel = 2" >> "$work/job4.ini"
"${mpi[@]}" -n 4 "$bin" -q run "$work/job4.ini" --out "$work/q4" --team-size 4
# 2 pipeline stages x 2 tensor-parallel ranks: each rank holds its stage's
# shares only (1F1B twice, and GPipe)
stp=(--team-size 4 --stages 2 --tensor-parallel 2 --micro-batches 2)
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --out "$work/s4" "${stp[@]}" --pipeline-schedule 1f1b
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --out "$work/s4b" "${stp[@]}" --pipeline-schedule 1f1b
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --out "$work/g4" "${stp[@]}" --pipeline-schedule gpipe
"${mpi[@]}" -n 8 "$bin" -q run "$work/job.ini" --out "$work/e8" --team-size 8 --stages 2 --tensor-parallel 2 \
  --micro-batches 2 --pipeline-schedule 1f1b

/usr/bin/python3 - "$work" <<'PY'
import json, sys, numpy as np
w = sys.argv[1]
def st(path, dt):
    b = open(path, 'rb').read(); n = int.from_bytes(b[:8], 'little')
    h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v['data_offsets'][0]:v['data_offsets'][1]], dtype=dt).reshape(v['shape'] if dt != np.uint8 else -1)
            for k, v in h.items() if k != '__metadata__' and v['dtype'] == ('U8' if dt == np.uint8 else 'F32')}
def mask_diff(a, b):
    assert a.keys() == b.keys() and a
    return sum(int(np.unpackbits(a[k] ^ b[k]).sum()) for k in a), sum(8 * a[k].size for k in a)
def model_diff(a, b):
    assert a.keys() == b.keys() and a
    return max(float(np.abs(a[k] - b[k]).max() / max(1.0, float(np.abs(a[k]).max()))) for k in a)
bad = 0
sm, full = 'SST-2.supermask.s30.seed7', 'SST-2.full.seed7'
for lay, what, stages, reps in [('t2', '2 tensor-parallel', 1, 1), ('q4', '2 replicas x 2 tensor-parallel', 1, 2),
                                ('s4', '2 stages x 2 tensor-parallel, 1F1B', 2, 1),
                                ('g4', '2 stages x 2 tensor-parallel, GPipe', 2, 1),
                                ('e8', '2 replicas x 2 stages x 2 tensor-parallel, 1F1B', 2, 2)]:
    c = json.load(open(f'{w}/{lay}/{full}/compute.json'))
    if c.get('tensor_parallel') != 2 or c.get('stages', 1) != stages or c.get('replicas', 1) != reps:
        print(f'FAIL {what}: compute.json says tensor_parallel {c.get("tensor_parallel")}, stages {c.get("stages")}, '
              f'replicas {c.get("replicas")}'); bad = 1
    for job in [sm, full]:
        a = json.load(open(f'{w}/r1/{job}/metrics.json')); b = json.load(open(f'{w}/{lay}/{job}/metrics.json'))
        for k in ['score', 'final_loss', 'steps', 'trained_parameters'] + (['masked_parameters', 'mask_bytes', 'sparsity_deterministic'] if job == sm else []):
            if abs(a[k] - b[k]) > 1e-5:
                print(f'FAIL {job}: {k} {a[k]} on 1 rank, {b[k]} on {what}'); bad = 1
        la = [json.loads(l) for l in open(f'{w}/r1/{job}/log.jsonl')]
        lb = [json.loads(l) for l in open(f'{w}/{lay}/{job}/log.jsonl')]
        if len(la) != len(lb) or len(la) < 2:
            print(f'FAIL {job}: {len(la)} log lines on 1 rank, {len(lb)} on {what}'); bad = 1
        for x, y in zip(la, lb):
            if 'loss' in x and abs(x['loss'] - y['loss']) > 1e-5:
                print(f'FAIL {job} on {what}: step {x["step"]} loss {x["loss"]} vs {y["loss"]}'); bad = 1
        print(f'{what}: {job}: score {a["score"]:.6f} / {b["score"]:.6f}, final loss {a["final_loss"]:.7f} / {b["final_loss"]:.7f}')
    m1 = json.load(open(f'{w}/r1/{sm}/metrics.json'))
    if abs(m1['sparsity_deterministic'] - 0.3) < 0.02:
        print('FAIL: the mask barely moved from its initialisation; the comparison would be vacuous'); bad = 1
    diff, total = mask_diff(st(f'{w}/r1/{sm}/mask.safetensors', np.uint8), st(f'{w}/{lay}/{sm}/mask.safetensors', np.uint8))
    print(f'{what}: mask entries that differ from 1 rank: {diff} of {total}')
    if diff > 1e-4 * total:
        print(f'FAIL: masks on {what} differ in more than 1e-4 of their entries'); bad = 1
    md = model_diff(st(f'{w}/r1/{full}/model/model.safetensors', np.float32), st(f'{w}/{lay}/{full}/model/model.safetensors', np.float32))
    print(f'{what}: fine-tuned model: largest difference from 1 rank {md:.3g} (relative to each tensor\'s largest entry)')
    if md > 1e-4:
        print(f'FAIL: the fine-tuned model on {what} is not 1 rank\'s'); bad = 1
# The comparisons can fail: the two heads' shares of a split tensor swapped
# (rows of the query weight, columns of the attention output dense, bits of
# the query mask) are caught.
a = st(f'{w}/r1/{full}/model/model.safetensors', np.float32)
b = {k: v.copy() for k, v in st(f'{w}/t2/{full}/model/model.safetensors', np.float32).items()}
q = 'bert.encoder.layer.0.attention.self.query.weight'
h = b[q].shape[0] // 2
b[q] = np.concatenate([b[q][h:], b[q][:h]])
if model_diff(a, b) <= 1e-4:
    print('FAIL: a model with its heads swapped passes the comparison'); bad = 1
ma = st(f'{w}/r1/{sm}/mask.safetensors', np.uint8)
mb = {k: v.copy() for k, v in st(f'{w}/t2/{sm}/mask.safetensors', np.uint8).items()}
k = [x for x in mb if x.endswith('layer.1.attention.output.dense.weight')][0]
bits = np.unpackbits(mb[k], bitorder='little').reshape(128, 128)
bits = np.concatenate([bits[:, 64:], bits[:, :64]], axis=1)
mb[k] = np.packbits(bits.reshape(-1), bitorder='little')
diff, total = mask_diff(ma, mb)
if diff <= 1e-4 * total:
    print(f'FAIL: a mask with its heads swapped passes the comparison ({diff} of {total})'); bad = 1
print(f'a mask with the heads of one tensor swapped: {diff} entries differ, caught')
sys.exit(bad)
PY
# Same layout twice: every deterministic file byte-identical.
diff -r -x compute.json -x run.json -x 'report*' -x '*.csv' -x 'fig*' "$work/t2" "$work/t2b" \
  || { echo "FAIL: two runs of 2 tensor-parallel ranks differ"; exit 1; }
cmp "$work/t2/report/science.json" "$work/t2b/report/science.json" || { echo "FAIL: science differs"; exit 1; }
diff -r -x compute.json -x run.json -x 'report*' -x '*.csv' -x 'fig*' "$work/s4" "$work/s4b" \
  || { echo "FAIL: two runs of 2 stages x 2 tensor-parallel ranks differ"; exit 1; }

# Resume: every rank pauses after the first job's step 4 of 12, then gets
# SIGTERM; the state the shares' gather wrote then resumes to the bytes of
# the uninterrupted run. The same under 2 stages x 2 tensor-parallel ranks:
# the checkpoint is streamed from the four ranks' shares, and the resume
# reads each rank's shares from it.
fm_term_resume 4 "$work/a" "$work/t2" 2 "${mpi[@]}" -n 2 -- "$bin" -q run "$work/job.ini" --team-size 2 \
  --tensor-parallel 2
fm_term_resume 4 "$work/b" "$work/s4" 4 "${mpi[@]}" -n 4 -- "$bin" -q run "$work/job.ini" "${stp[@]}" \
  --pipeline-schedule 1f1b

# A control (weights = shuffled) reads its stage's tensors whole, permutes
# them as one rank does, then keeps its shares: on 2 stages x 2
# tensor-parallel ranks its metrics (the pre-trained model's fingerprint
# too) are one rank's, and so are its mask's bits.
sed -e 's/^modes = supermask, full/modes = supermask/' -e 's/^seeds = 7/seeds = 7\nweights = shuffled/' \
  "$work/job.ini" > "$work/jobc.ini"
grep -q '^weights = shuffled' "$work/jobc.ini" || { echo "FAIL: no control job"; exit 1; }
"$bin" -q run "$work/jobc.ini" --out "$work/c1"
"${mpi[@]}" -n 4 "$bin" -q run "$work/jobc.ini" --out "$work/c4" "${stp[@]}"
/usr/bin/python3 - "$work" <<'PY'
import glob, json, sys, numpy as np
w = sys.argv[1]
jobs = [p.split('/')[-2] for p in glob.glob(f'{w}/c1/*/metrics.json')]
assert jobs == ['SST-2.supermask.s30.shuffled.seed7'], jobs
a = json.load(open(f'{w}/c1/{jobs[0]}/metrics.json')); b = json.load(open(f'{w}/c4/{jobs[0]}/metrics.json'))
bad = a['model_fingerprint'] != b['model_fingerprint']
for k in ['score', 'final_loss', 'sparsity_deterministic']:
    bad |= abs(a[k] - b[k]) > 1e-5
def bits(p):
    d = open(p, 'rb').read(); n = int.from_bytes(d[:8], 'little'); h = json.loads(d[8:8 + n])
    return {k: np.frombuffer(d[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], np.uint8)
            for k, v in h.items() if k != '__metadata__' and v['dtype'] == 'U8'}
ma, mb = bits(f'{w}/c1/{jobs[0]}/mask.safetensors'), bits(f'{w}/c4/{jobs[0]}/mask.safetensors')
diff = sum(int(np.unpackbits(ma[k] ^ mb[k]).sum()) for k in ma); total = sum(8 * v.size for v in ma.values())
bad |= ma.keys() != mb.keys() or diff > 1e-4 * total
print(f"control on 2 stages x 2 tensor-parallel: fingerprint {a['model_fingerprint']} / {b['model_fingerprint']}, "
      f"final loss {a['final_loss']} / {b['final_loss']}, mask entries that differ {diff} of {total}")
sys.exit(1 if bad else 0)
PY

# Refused, naming the option: a P that does not divide the heads, a team
# that does not split into stages x P.
refused() { # WHAT PATTERN ARGS...
  local what=$1 pat=$2; shift 2
  if "${mpi[@]}" "$@" > /dev/null 2> "$work/err"; then echo "FAIL: $what accepted"; exit 1; fi
  grep -q -- "$pat" "$work/err" || { echo "FAIL: $what: no message matching '$pat'"; cat "$work/err"; exit 1; }
  echo "refused: $what: $(grep -m1 -- "$pat" "$work/err")"
}
refused "4-way on 2 heads" "--tensor-parallel 4: .*2 attention heads" -n 4 "$bin" -q run "$work/job.ini" \
  --out "$work/x1" --team-size 4 --tensor-parallel 4
refused "a team of 3 in 2-way" "--tensor-parallel 2: a team of 3" -n 3 "$bin" -q run "$work/job.ini" \
  --out "$work/x2" --team-size 3 --tensor-parallel 2
echo PASS
