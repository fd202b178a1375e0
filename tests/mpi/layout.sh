#!/usr/bin/env bash
# Layout invariance: the same jobs (a supermask and a full fine-tuning on a
# generated task, tiny random BERT) on 1 rank, on 2 data-parallel replicas, on
# 2 pipeline stages (4 micro-batches) and on 2 replicas x 2 stages (3
# micro-batches), each pipeline under the GPipe and the 1F1B schedule, give
# the same metrics and log losses (to 1e-5) and masks that differ in at most
# 1e-4 of their entries; the same layout twice (2 replicas; 2 stages with
# 1F1B) gives byte-identical run directories (and science); a pipeline stage
# holds as many micro-batches' activations as its schedule keeps alive (GPipe
# M; 1F1B min(S-s, M), never more than S, and at most S/M of GPipe's bytes); rank 0's communication per step is
# what the layout says: a pipeline stage sums the gradients of the layers it
# holds only; and the evaluations are split over the team's ranks (each
# replica forwards a share of the dev batches, together exactly what 1 rank
# forwards; on stages, which hold their own layers only, every stage of a
# replica forwards that replica's share through its layers).
# Usage: layout.sh FINEMASK MPIEXEC SOURCE_DIR.
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
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/r2" --team-size 2
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/r2b" --team-size 2
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" --out "$work/s2" --team-size 2 --stages 2 --micro-batches 4 \
  --pipeline-schedule gpipe
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --out "$work/q4" --team-size 4 --stages 2 --micro-batches 3 \
  --pipeline-schedule gpipe
# 1F1B, the default (the job file's [layout] key for the 2-stage run)
cp "$work/job.ini" "$work/job1f1b.ini"
echo "pipeline_schedule = 1f1b" >> "$work/job1f1b.ini"
"${mpi[@]}" -n 2 "$bin" -q run "$work/job1f1b.ini" --out "$work/s2f" --team-size 2 --stages 2 --micro-batches 4
"${mpi[@]}" -n 2 "$bin" -q run "$work/job1f1b.ini" --out "$work/s2fb" --team-size 2 --stages 2 --micro-batches 4
"${mpi[@]}" -n 4 "$bin" -q run "$work/job.ini" --out "$work/q4f" --team-size 4 --stages 2 --micro-batches 3

/usr/bin/python3 - "$work" <<'PY'
import json, sys, numpy as np
w = sys.argv[1]
def st(path):
    # safetensors: 8-byte header length, JSON header, data
    b = open(path, 'rb').read(); n = int.from_bytes(b[:8], 'little')
    h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v['data_offsets'][0]:v['data_offsets'][1]], dtype=np.uint8)
            for k, v in h.items() if k != '__metadata__' and v['dtype'] == 'U8'}
bad = 0
for lay, what in [('r2', '2 replicas'), ('s2', '2 stages'), ('q4', '2 replicas x 2 stages'),
                  ('s2f', '2 stages 1F1B'), ('q4f', '2 replicas x 2 stages 1F1B')]:
    for job in ['SST-2.supermask.s30.seed7', 'SST-2.full.seed7']:
        a = json.load(open(f'{w}/r1/{job}/metrics.json')); b = json.load(open(f'{w}/{lay}/{job}/metrics.json'))
        for k in ['score', 'final_loss', 'steps']:
            if abs(a[k] - b[k]) > 1e-5:
                print(f'FAIL {job}: {k} {a[k]} on 1 rank, {b[k]} on {what}'); bad = 1
        la = [json.loads(l) for l in open(f'{w}/r1/{job}/log.jsonl')]
        lb = [json.loads(l) for l in open(f'{w}/{lay}/{job}/log.jsonl')]
        if len(la) != len(lb) or len(la) < 2:
            print(f'FAIL {job}: {len(la)} log lines on 1 rank, {len(lb)} on {what}'); bad = 1
        for x, y in zip(la, lb):
            if 'loss' in x and abs(x['loss'] - y['loss']) > 1e-5:
                print(f'FAIL {job} on {what}: step {x["step"]} loss {x["loss"]} vs {y["loss"]}'); bad = 1
        print(f'{what}: {job}: score {a["score"]:.6f} / {b["score"]:.6f}, '
              f'final loss {a["final_loss"]:.7f} / {b["final_loss"]:.7f}')
    m1 = json.load(open(f'{w}/r1/SST-2.supermask.s30.seed7/metrics.json'))
    if abs(m1['sparsity_deterministic'] - 0.3) < 0.02:
        print('FAIL: the mask barely moved from its initialisation; the comparison would be vacuous'); bad = 1
    ma = st(f'{w}/r1/SST-2.supermask.s30.seed7/mask.safetensors')
    mb = st(f'{w}/{lay}/SST-2.supermask.s30.seed7/mask.safetensors')
    assert ma.keys() == mb.keys() and ma
    diff = sum(int(np.unpackbits(ma[k] ^ mb[k]).sum()) for k in ma)
    total = sum(8 * ma[k].size for k in ma)
    print(f'{what}: mask entries that differ from 1 rank: {diff} of {total}')
    if diff > 1e-4 * total:
        print(f'FAIL: masks on {what} differ in more than 1e-4 of their entries'); bad = 1
sys.exit(bad)
PY
# Communication per step, from the layout. A stage sums over its R replicas
# only the gradients of what it holds (stage s of S: encoder layers
# [L*s/S, L*(s+1)/S), stage 0 also the embeddings, the last also the pooler
# and head; nothing at all when R = 1); the team sums the loss and the two
# signal flags (3 floats); with S > 1 the stages sum one double per tensor (the
# gradient norm's terms). With S = 1 the loss and flags ride with the gradients.
# compute.json is team rank 0's (stage 0 of replica 0), with every rank's
# bytes per step in team rank order (replica x S + stage).
/usr/bin/python3 - "$work" <<'PY'
import fnmatch, json, sys
w = sys.argv[1]
b = open(f'{w}/model/model.safetensors', 'rb').read(); n = int.from_bytes(b[:8], 'little')
hdr = json.loads(b[8:8 + n]); cfg = json.load(open(f'{w}/model/config.json'))
ten = {k.removeprefix('bert.'): v['shape'] for k, v in hdr.items() if k != '__metadata__'}
assert not any(k.startswith('classifier') or k.startswith('cls.') for k in ten)
ten['classifier.weight'] = [2, cfg['hidden_size']]; ten['classifier.bias'] = [2]  # SST-2's new head
numel = {k: eval('*'.join(map(str, s))) for k, s in ten.items()}
L = cfg['num_hidden_layers']
def layer(k): return -1 if k.startswith('embeddings.') else int(k.split('.')[2]) if k.startswith('encoder.') else L
def stage(k, S): return 0 if layer(k) < 0 else S - 1 if layer(k) >= L else max(s for s in range(S) if L * s // S <= layer(k))
glob = 'embeddings.*_embeddings.weight,encoder.layer.*.attention.self.*.weight,encoder.layer.*.dense.weight,pooler.dense.weight'
masked = {k for k in ten if any(fnmatch.fnmatchcase(k, g) for g in glob.split(','))}
bad = 0
for lay, R, S in [('r2', 2, 1), ('s2', 1, 2), ('q4', 2, 2), ('s2f', 1, 2), ('q4f', 2, 2)]:
    for job in ['SST-2.full.seed7', 'SST-2.supermask.s30.seed7']:
        c = json.load(open(f'{w}/{lay}/{job}/compute.json')); steps = json.load(open(f'{w}/{lay}/{job}/metrics.json'))['steps']
        want = []
        for st in [r % S for r in range(R * S)]:
            grads = [k for k in ten if stage(k, S) == st and (job.startswith('SST-2.full') or k in masked or k.startswith('classifier.'))]
            grad = (4 * sum(numel[k] for k in grads) if R > 1 else 0) + (12 if S == 1 else 0)
            want.append((grad, grad + (12 + 8 * len(ten) if S > 1 else 0)))
        if c.get('grad_bytes') != steps * want[0][0]:
            print(f'FAIL {lay} {job}: gradient sums of {c.get("grad_bytes")} bytes on rank 0, expected {steps} x {want[0][0]}'); bad = 1
        got = c.get('comm_bytes_per_step_by_rank')
        if job.startswith('SST-2.full') and got != [p for _, p in want]:  # (supermask adds the sparsity terms at log steps)
            print(f'FAIL {lay} {job}: {got} bytes per step per rank, expected {[p for _, p in want]}'); bad = 1
        print(f'{lay}: {job}: bytes per step per rank {got} (rank 0: {c.get("grad_bytes", 0) // steps} of gradients)')
        # Evaluations: 48 dev examples in 6 batches of 8, per evaluation.
        # Replicas forward their shares of whole batches; together they forward
        # what 1 rank does, and every rank takes part. Pipeline stages hold
        # their own layers only: each stage of a replica forwards the
        # replica's share through its layers (the evaluation is pipelined).
        one = json.load(open(f'{w}/r1/{job}/compute.json')).get('eval_examples_by_rank')
        ev = c.get('eval_examples_by_rank')
        evals = 1 + (json.load(open(f'{w}/r1/{job}/metrics.json')).get('samples', 0) if 'supermask' in job else 0)
        if one != [48 * evals]:
            print(f'FAIL {job}: 1 rank forwarded {one} dev examples, expected [{48 * evals}]'); bad = 1
        if S == 1:
            good = ev and len(ev) == R and sum(ev) == 48 * evals and min(ev) >= 8 * evals
        else:
            good = ev and len(ev) == R * S and sum(ev) == S * 48 * evals and min(ev) >= 8 * evals and \
                all(ev[r * S + k] == ev[r * S] for r in range(R) for k in range(S))
        if not good:
            print(f'FAIL {lay} {job}: dev examples forwarded per rank {ev}; expected {R} shares of 6 batches '
                  f'of 8 per evaluation ({evals}), summing to {48 * evals}, each forwarded by all {S} stages of its replica'); bad = 1
        print(f'{lay}: {job}: dev examples forwarded per rank {ev} ({evals} evaluation(s) of 48)')
sys.exit(bad)
PY
# Activation sets per stage (compute.json, every rank's in team rank order
# replica x S + stage): GPipe keeps all M micro-batches' activations, 1F1B
# min(S - s, M) of them (at most S), and so at most S/M of GPipe's bytes.
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
bad = 0
def acts(lay):
    c = json.load(open(f'{w}/{lay}/SST-2.full.seed7/compute.json'))
    return c.get('acts_sets_by_rank'), c.get('acts_bytes_by_rank'), c.get('pipeline_schedule')
for lay, R, S, M, sch, gp in [('s2', 1, 2, 4, 'gpipe', None), ('q4', 2, 2, 3, 'gpipe', None),
                             ('s2f', 1, 2, 4, '1f1b', 's2'), ('q4f', 2, 2, 3, '1f1b', 'q4')]:
    sets, nbytes, got = acts(lay)
    want = [M if sch == 'gpipe' else min(S - r % S, M) for r in range(R * S)]
    print(f'{lay}: {got}, activation sets per rank {sets}, bytes {nbytes}')
    if got != sch or sets != want:
        print(f'FAIL {lay}: schedule {got}, activation sets per rank {sets}; expected {sch}, {want}'); bad = 1
    if sch == '1f1b' and (not sets or max(sets) > S):
        print(f'FAIL {lay}: 1F1B holds more than S = {S} activation sets'); bad = 1
    if gp:
        g = acts(gp)[1]
        for r in range(R * S):
            if nbytes[r] * M > S * g[r]:
                print(f'FAIL {lay}: rank {r} holds {nbytes[r]} bytes of activations, GPipe {g[r]}: more than S/M'); bad = 1
        print(f'{lay}: 1F1B / GPipe activation bytes per rank: {[round(a / b, 3) for a, b in zip(nbytes, g)]} (S/M = {S / M:.3f})')
sys.exit(bad)
PY
# Same layout twice: every deterministic file byte-identical.
diff -r -x compute.json -x run.json -x 'report*' -x '*.csv' -x 'fig*' "$work/r2" "$work/r2b" \
  || { echo "FAIL: two runs of the same layout differ"; exit 1; }
diff -r -x compute.json -x run.json -x 'report*' -x '*.csv' -x 'fig*' "$work/s2f" "$work/s2fb" \
  || { echo "FAIL: two runs of 2 stages under 1F1B differ"; exit 1; }
cmp "$work/s2f/report/science.json" "$work/s2fb/report/science.json" || { echo "FAIL: science differs (1F1B)"; exit 1; }
cmp "$work/r2/report/science.json" "$work/r2b/report/science.json" || { echo "FAIL: science differs"; exit 1; }
# 1 rank and 2 replicas: the same science up to float rounding (every number
# within 1e-5, relative to its size where that is above 1: an L1 distance sums
# half a million terms; everything else equal).
python3 - "$work/r1/report/science.json" "$work/r2/report/science.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
worst, bad = 0.0, []
def walk(x, y, path):
    global worst
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
        if type(x) != type(y):
            bad.append(f'{path}: {x!r} vs {y!r}')
        elif isinstance(x, dict):
            if x.keys() != y.keys(): bad.append(f'{path}: keys {sorted(x)} vs {sorted(y)}')
            for k in x.keys() & y.keys(): walk(x[k], y[k], f'{path}.{k}')
        elif isinstance(x, list):
            if len(x) != len(y): bad.append(f'{path}: {len(x)} vs {len(y)} entries')
            for i, (u, v) in enumerate(zip(x, y)): walk(u, v, f'{path}[{i}]')
        elif x != y:
            bad.append(f'{path}: {x!r} vs {y!r}')
        return
    d = abs(x - y) / max(1.0, abs(x), abs(y))
    worst = max(worst, d)
    if d > 1e-5: bad.append(f'{path}: {x!r} vs {y!r}')
walk(a, b, 'science')
for l in bad[:20]: print('FAIL 1 rank vs 2 replicas:', l)
print(f'science.json on 1 rank and 2 replicas: largest (relative) difference {worst:.3g}')
sys.exit(1 if bad else 0)
PY
echo PASS
