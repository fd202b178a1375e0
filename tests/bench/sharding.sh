#!/usr/bin/env bash
# Job-sharding efficiency: a sweep of NJOBS equal jobs (supermasks on the same
# generated task, one seed each, tiny BERT, one thread per rank) run by 1 team
# of 1 rank and by 2 teams of 1 rank. Prints both wall times, the efficiency
# T1 / (2 T2), and the scheduler's load balance (busy / (busy + idle) per team).
# The machine must have 2 idle cores for the efficiency to mean anything.
# Usage: sharding.sh FINEMASK SOURCE_DIR [NJOBS] [EXAMPLES]
set -euo pipefail
bin=$1 src=$2 njobs=${3:-8} examples=${4:-512}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
# more training rows: the generator again with more lines
awk -v n="$examples" 'BEGIN {
  split("good bad the a film movie was is very not plot actors fun dull long short", w, " ");
  srand(11); print "sentence\tlabel";
  for (i = 0; i < n; i++) { len = 4 + int(rand() * 10); s = ""; g = 0; b = 0;
    for (k = 0; k < len; k++) { x = w[1 + int(rand() * 16)]; g += x == "good"; b += x == "bad"; s = s (k ? " " : "") x }
    print s "\t" (g > b ? 1 : 0) } }' > "$work/glue/SST-2/train.tsv"
seeds=$(seq -s, 1 "$njobs")
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = supermask
seeds = $seeds
[supermask]
samples = 1
[train]
batch_size = 16
epochs = 1
max_seq_length = 32
[layout]
threads = 1
INI
mpiexec --bind-to none -n 1 "$bin" -q run "$work/job.ini" --out "$work/t1"
mpiexec --bind-to none -n 2 "$bin" -q run "$work/job.ini" --out "$work/t2" --baseline "$work/t1"
# The control: the same job as plain processes without MPI or the scheduler,
# once alone and then two copies side by side. t_alone / t_pair is the most
# two ranks on this machine can reach against one (the shared cores, caches
# and memory, not the scheduler, set it).
job() { "$bin" -q train --model "$work/model" --task SST-2 --data "$work/glue" --out "$work/c$1" --mode supermask \
  --samples 1 --batch-size 16 --epochs 1 --max-seq-length 32 --threads 1 --seed "$1" >/dev/null; }
now() { date +%s.%N; }
t0=$(now); job 1; t1=$(now); rm -rf "$work/c1"
job 1 & job 2 & wait; t2=$(now)
echo "$t0 $t1 $t2" > "$work/control"
/usr/bin/python3 - "$work" "$njobs" <<'PY'
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
r1 = json.load(open(f'{w}/t1/run.json')); r2 = json.load(open(f'{w}/t2/run.json'))
t1, t2 = r1['wall_seconds'], r2['wall_seconds']
print(f'{n} equal jobs: 1 team {t1:.2f} s, 2 teams {t2:.2f} s')
print(f'sharding efficiency T1 / (2 T2) = {t1 / (2 * t2):.3f}')
for k, t in enumerate(r2['teams']):
    b, i = t['busy_seconds'], t['idle_seconds']
    print(f'team {k}: {t["jobs"]} jobs, busy {b:.2f} s, idle {i:.2f} s, balance {b / (b + i):.3f}')
j1 = [json.load(open(f'{w}/t1/{j["name"]}/compute.json'))['wall_seconds'] for j in r1['jobs']]
j2 = [json.load(open(f'{w}/t2/{j["name"]}/compute.json'))['wall_seconds'] for j in r2['jobs']]
busy = sum(t['busy_seconds'] for t in r2['teams'])
jobsum = sum(json.load(open(f'{w}/t2/' + j['name'] + '/compute.json'))['wall_seconds'] for j in r2['jobs'])
print(f'scheduler efficiency (busy time per team / wall) = {busy / (2 * t2):.3f}; '
      f'CPU-normalised efficiency (sum of job times / (2 T2)) = {jobsum / (2 * t2):.3f}')
print(f'mean job wall time: {sum(j1) / n:.2f} s alone, {sum(j2) / n:.2f} s with two teams side by side')
c0, c1, c2 = map(float, open(f'{w}/control').read().split())
alone, pair = c1 - c0, c2 - c1
print(f'control without MPI: one job alone {alone:.2f} s, two side by side {pair:.2f} s: '
      f'the machine allows at most {alone / pair:.3f}; sharding efficiency against that: '
      f'{t1 / (2 * t2) / (alone / pair):.3f}')
PY
