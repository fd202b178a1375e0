#!/usr/bin/env bash
# A job that diverges (lr 1e6: the loss turns NaN) on a team of 2 ranks, as
# data-parallel replicas and as 2 pipeline stages: every rank stops at the
# same step (the loss and norm are summed over the team, so no rank waits in a
# collective for the others), the run exits 1 naming the step, and the job's
# metrics.json records the same step as on one rank.
# Usage: diverge_team.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 mpiexec=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = $work/model
data = $work/glue
[sweep]
tasks = SST-2
modes = full
seeds = 1
[train]
lr = 1e6
batch_size = 8
max_steps = 30
max_seq_length = 24
log_every = 1
[layout]
threads = 1
INI
step() { /usr/bin/python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); assert m["status"] == "diverged", m; print(m["diverged_at_step"])' "$1"; }
if "$bin" -q run "$work/job.ini" --out "$work/one" 2>/dev/null; then echo "FAIL: exit 0 on one rank"; exit 1; fi
want=$(step "$work/one/SST-2.full.seed1/metrics.json")
mpi=("$mpiexec" --oversubscribe --bind-to none -n 2)
for layout in "--team-size 2" "--team-size 2 --stages 2"; do
  out=$work/out.${layout// /_}
  if "${mpi[@]}" "$bin" run "$work/job.ini" --out "$out" $layout 2> "$work/err"; then
    echo "FAIL: $layout: a diverged job gave exit 0"; exit 1
  fi
  grep -q "failed: SST-2.full.seed1: .*diverged at step $want of 30" "$work/err" \
    || { echo "FAIL: $layout: message"; cat "$work/err"; exit 1; }
  got=$(step "$out/SST-2.full.seed1/metrics.json")
  [ "$got" = "$want" ] || { echo "FAIL: $layout: diverged at step $got, one rank at $want"; exit 1; }
  echo "$layout: diverged at step $got, as on one rank"
done
echo "diverge_team: OK"
