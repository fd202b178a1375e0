#!/usr/bin/env bash
# Communication volume of data-parallel BERT-base supermask training: the
# bytes each replica hands to allreduce per step, computed from the model's
# tensor shapes (the theta-gradients of every masked tensor, from which the nu
# gradients follow element-wise, plus the task head, plus the loss and stop
# flag) and measured by the allreduce wrapper (mpi/dp.c) in a 2-replica run of
# 2 steps; then a step's compute time (finemask bench, batch 8 x 128 on one
# thread, times 4 for BERT's batch of 32) and the efficiency projected for
# p = 16 and 64 nodes at 100 Gb/s with a ring allreduce.
# Usage: comm_volume.sh FINEMASK SOURCE_DIR. Needs ../shared/data's vocabulary.
set -euo pipefail
bin=$1 src=$2
data=${FINEMASK_DATA:-$src/../shared/data}
vocab=$data/vocab/bert-base-uncased-vocab.txt
[ -f "$vocab" ] || { echo "skip: $vocab not found"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
"$bin" -q init --config base --seed 1 --vocab "$vocab" --out "$work/base" >/dev/null
cat > "$work/job.ini" <<INI
[run]
model = base
data = glue
[sweep]
tasks = SST-2
modes = supermask
seeds = 1
[supermask]
samples = 1
[train]
batch_size = 4
max_steps = 2
max_seq_length = 16
[layout]
threads = 1
INI
mpiexec --bind-to none -n 2 "$bin" -q run "$work/job.ini" --out "$work/r" --team-size 2
"$bin" -q bench --config base --batch 8 --seq 128 --steps 1 --threads 1 --json > "$work/bench.json"
/usr/bin/python3 - "$work" <<'PY'
import json, sys, fnmatch
w = sys.argv[1]
b = open(f'{w}/base/model.safetensors', 'rb').read(8); n = int.from_bytes(b, 'little')
hdr = json.loads(open(f'{w}/base/model.safetensors', 'rb').read(8 + n)[8:])
globs = ['embeddings.*_embeddings.weight', 'encoder.layer.*.attention.self.*.weight',
         'encoder.layer.*.dense.weight', 'pooler.dense.weight']
masked = 0
for k, v in hdr.items():
    if k == '__metadata__': continue
    name = k[5:] if k.startswith('bert.') else k
    if any(fnmatch.fnmatchcase(name, g) for g in globs):
        c = 1
        for d in v['shape']: c *= d
        masked += c
head = 768 * 2 + 2
floats = masked + head + 3
expect = 4 * floats
c = json.load(open(f'{w}/r/SST-2.supermask.s0.seed1/compute.json'))
meas = c['comm_bytes_per_step']
print(f'masked entries {masked:,}; head {head}; + loss, SIGTERM and SIGUSR1 flags 3')
print(f'computed bytes per step and replica: 4 x {floats:,} = {expect:,} ({expect / 1e6:.1f} MB)')
print(f'measured by the allreduce wrapper:   {meas:,} ({c["comm_calls"] // 2} Iallreduce calls per step)')
print('MATCH' if meas == expect else 'MISMATCH')
bench = json.load(open(f'{w}/bench.json'))
print('bench:', json.dumps(bench)[:400])
PY
