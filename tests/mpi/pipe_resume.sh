#!/usr/bin/env bash
# Interrupt and resume a pipelined run: 2 replicas x 2 stages, where each
# stage updates only the tensors it holds, get SIGTERM (sent to the ranks)
# after the first job's fourth step; the state file written then must
# hold every stage's parameters, scores and AdamW moments, so that the resumed
# run ends with the same job directories (metrics, log, mask, model) and the
# same science as an uninterrupted run of the same layout.
# Usage: pipe_resume.sh FINEMASK MPIEXEC SOURCE_DIR.
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
seeds = 5
[supermask]
sparsities = 0.2
mask_lr = 2
samples = 2
[train]
lr = 1e-3
batch_size = 16
epochs = 8
max_seq_length = 24
log_every = 2
[layout]
threads = 1
team_size = 4
stages = 2
micro_batches = 2
INI
mpi=("$mpiexec" --oversubscribe --bind-to none -n 4)
"${mpi[@]}" "$bin" -q run "$work/job.ini" --out "$work/b" 2>/dev/null
# Every rank pauses after the first job's step 4 of 48 (see cli/stopsig.h),
# then gets SIGTERM; the resumed run ends with the uninterrupted one's bytes.
fm_term_resume 4 "$work/a" "$work/b" 4 "${mpi[@]}" -- "$bin" -q run "$work/job.ini"
cmp "$work/a/report/science.json" "$work/b/report/science.json" || { echo "FAIL: science differs after resume"; exit 1; }
echo PASS
