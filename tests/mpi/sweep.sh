#!/usr/bin/env bash
# A sweep over 2 teams of 1 rank: every job completes, a job whose task file is
# missing (MRPC has no data here) is reported with its error while the rest
# complete, the run exits non-zero and lists the failure; the report holds
# every job, and distances to the pre-trained weights for the full jobs.
# Running again skips the completed jobs and gives the same science;
# `finemask report` rebuilds the same science from the directory. A job file
# with other options does not pass the finished jobs off as its own.
# Usage: sweep.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
out = out
[sweep]
tasks = SST-2, MRPC
modes = supermask, full
seeds = 1, 2
[supermask]
sparsities = 0, 0.5
samples = 2
[train]
lr = 1e-3
batch_size = 16
epochs = 1
max_seq_length = 24
[layout]
threads = 1
INI
mpi=("$mpiexec" --oversubscribe --bind-to none)
set +e
"${mpi[@]}" -n 2 "$bin" run "$work/job.ini" 2> "$work/err.txt"
rc=$?
set -e
cat "$work/err.txt" | grep -v '^finemask: \(train\|SST\)' | tail -20
[ $rc -ne 0 ] || { echo "FAIL: a failed job must give a non-zero exit"; exit 1; }
n_ok=$(ls "$work"/out/SST-2.*/metrics.json | wc -l)
[ "$n_ok" -eq 6 ] || { echo "FAIL: $n_ok of 6 SST-2 jobs complete"; exit 1; }
[ ! -e "$work"/out/MRPC.full.seed1/metrics.json ] || { echo "FAIL: MRPC cannot have run"; exit 1; }
n_fail=$(grep -c '^finemask: failed: MRPC\.' "$work/err.txt")
[ "$n_fail" -eq 6 ] || { echo "FAIL: expected 6 MRPC failures listed, found $n_fail"; exit 1; }
grep -q 'failed: MRPC.full.seed1: .*MRPC/train.tsv' "$work/err.txt" || { echo "FAIL: the error must name the missing file"; exit 1; }
/usr/bin/python3 - "$work/out" <<'PY'
import json, sys
d = sys.argv[1]
s = json.load(open(f'{d}/report/science.json'))
c = json.load(open(f'{d}/report/compute.json'))
assert len(s['jobs']) == 12, len(s['jobs'])
assert sum(j['status'] == 'done' for j in s['jobs']) == 6
assert len(s['failed']) == 6 and all('train.tsv' in f['error'] for f in s['failed'])
teams = c['teams']; assert len(teams) == 2, teams
assert sum(t['jobs'] for t in teams) == 12, teams
assert all(t['jobs'] > 0 for t in teams), teams
g = [x for x in s['groups'] if x['mode'] == 'supermask' and x['variant'] == 's50']
assert len(g) == 1 and g[0]['jobs'] == 2 and 'baseline_mean' in g[0], g
d = s['distances']
assert sorted(d) == ['SST-2.full.seed1', 'SST-2.full.seed2'], sorted(d)
assert all(0 < x['angular'] < x['random_angular'] for x in d.values()), d
assert [l['layer'] for l in d['SST-2.full.seed1']['layers']] == [-1, 0, 1]
print('report: 12 jobs, 6 done, 6 failed; teams ran', [t['jobs'] for t in teams])
PY
cp "$work/out/report/science.json" "$work/science1.json"
# Again: the complete jobs are skipped (their files untouched), same science.
touch -d '2000-01-01' "$work"/out/SST-2.full.seed1/metrics.json
set +e
"${mpi[@]}" -n 2 "$bin" -q run "$work/job.ini" 2>/dev/null
set -e
[ "$(stat -c %Y "$work"/out/SST-2.full.seed1/metrics.json)" = "$(date -d '2000-01-01' +%s)" ] \
  || { echo "FAIL: a complete job ran again"; exit 1; }
cmp "$work/science1.json" "$work/out/report/science.json" || { echo "FAIL: science changed on a second run"; exit 1; }
rm -rf "$work/out/report"
"$bin" -q report "$work/out"
cmp "$work/science1.json" "$work/out/report/science.json" || { echo "FAIL: finemask report gives other science"; exit 1; }
# The job file changed (another lr): finished jobs are not taken as they are;
# each is reported naming the option, and nothing in them is touched.
sed 's/^lr = 1e-3$/lr = 2e-3/' "$work/job.ini" > "$work/job2.ini"
cp "$work/out/SST-2.full.seed1/metrics.json" "$work/m1.json"
set +e
"${mpi[@]}" -n 2 "$bin" -q run "$work/job2.ini" --out "$work/out" 2> "$work/err2.txt"
rc=$?
set -e
[ $rc -ne 0 ] || { echo "FAIL: finished jobs with other options must not pass as done"; exit 1; }
grep -q "failed: SST-2.full.seed1: .*options.json: option lr differs: the job finished with 0.001, the job file now says 0.002" "$work/err2.txt" \
  || { echo "FAIL: the differing option is not named"; cat "$work/err2.txt"; exit 1; }
cmp "$work/m1.json" "$work/out/SST-2.full.seed1/metrics.json" || { echo "FAIL: a finished job was overwritten"; exit 1; }
echo PASS
