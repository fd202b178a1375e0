#!/usr/bin/env bash
# End to end on a real (one-node, loopback) Slurm cluster: a small sweep
# submitted with sbatch through slurm/glue.sbatch, stopped mid-run and
# finished later, must end with the same science as an uninterrupted run.
#
#   1. reference: the sweep submitted once, run to the end.
#   2. requeue:   the time-limit path: SIGUSR1 to the batch shell (what
#                 --signal=B:USR1@T sends) once one job is complete and
#                 another is training (rank 0 pauses in its second job until
#                 the signal comes: FINEMASK_TEST_PAUSE_*, cli/stopsig.h); the script stops the ranks with
#                 SIGTERM (they save their training state), requeues the job,
#                 and its second start skips the complete jobs and resumes the
#                 interrupted ones.
#   3. cancel:    scancel mid-run (SIGTERM to everything), then the same sbatch
#                 command again.
# Each must end COMPLETED with every job done, and report/science.json, every
# job's metrics.json and every job's model or mask must be byte-identical to
# the reference's.
#
# Usage: slurm_requeue.sh FINEMASK_BIN SOURCE_DIR (as ctest runs it; also by
# hand, as root). Exit 77 (skip): not root, Slurm/munge not installed, the
# daemons do not start, GLUE data absent, or no `finemask run`.
# Set FM_KEEP=1 to keep the work directory (logs, runs) for a look afterwards.
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
data=${FINEMASK_DATA:-$src/../shared/data}
export PATH=$PATH:/usr/sbin
t_start=$(date +%s)

skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to start the Slurm daemons"
for p in sbatch scancel scontrol slurmctld slurmd munged; do
  command -v "$p" >/dev/null || skip "$p not installed (slurm-wlm, munge: ./install.sh --deps)"
done
if [ ! -f "$data/glue/RTE/train.tsv" ] || [ ! -f "$data/vocab/bert-base-uncased-vocab.txt" ]; then
  skip "GLUE data not found in $data"
fi
"$bin" run --help >/dev/null 2>&1 || skip "$bin has no run command"

work=$(mktemp -d /tmp/fm-slurm.XXXXXX)
export FM_SLURM_DIR=$work/cluster
cleanup() {
  [ -n "${FM_KEEP:-}" ] && cp "$FM_SLURM_DIR"/*.log "$work"/ 2>/dev/null
  "$src/slurm/cluster-down.sh" 2>/dev/null || true
  if [ -n "${FM_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A port pair nobody listens on, so a cluster started by hand can stay up.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 20); do
  FM_SLURM_PORT=$((20000 + RANDOM % 20000 * 2))
  port_free "$FM_SLURM_PORT" && port_free $((FM_SLURM_PORT + 1)) && break
done
export FM_SLURM_PORT

t0=$(date +%s%N)
if ! env_line=$("$src/slurm/cluster-up.sh" 2>"$work/cluster-up.err"); then
  cat "$work/cluster-up.err"
  skip "could not start the loopback Slurm cluster"
fi
eval "$env_line"
t1=$(date +%s%N)
echo "cluster up in $(( (t1 - t0) / 1000000 )) ms"

# The sweep: a random-init tiny BERT on 192 RTE examples, full fine-tuning and
# supermasks, 2 seeds each: 4 jobs on 2 teams of 1 rank.
"$bin" -q init --config tiny --seed 3 --vocab "$data/vocab/bert-base-uncased-vocab.txt" --out "$work/tiny"
cat > "$work/sweep.ini" <<EOF
[run]
name = slurm-requeue
model = $work/tiny
data = $data/glue
out = $work/unused

[sweep]
tasks = RTE
modes = full, supermask
seeds = 1, 2

[supermask]
sparsities = 0.5
samples = 1

[train]
lr = 1e-3
epochs = 1
max_train_examples = 192
max_seq_length = 32
log_every = 1

[layout]
team_size = 1
threads = 1
EOF
njobs=4

export FINEMASK=$bin FINEMASK_HOME=$src
submit() {  # submit NAME: sbatch glue.sbatch on 2 ranks into $work/NAME; prints the job id
  sbatch --parsable --job-name="$1" --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
    --time=10 --output="$work/$1.log" --chdir="$work" \
    "$src/slurm/glue.sbatch" "$work/sweep.ini" "$work/$1"
}
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -n 30 "$f"; done; exit 1; }
field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }
wait_end() {  # wait_end JOBID: until the job has ended (not requeued); prints its state
  local st
  for _ in $(seq 600); do
    st=$(field "$1" JobState)
    case $st in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        echo "$st"; return 0 ;;
    esac
    sleep 0.5
  done
  echo "TIMEOUT_WAITING"
}
ndone() { find "$work/$1" -mindepth 2 -maxdepth 2 -name metrics.json 2>/dev/null | wc -l; }
training() {  # training NAME: true when a job without metrics.json has logged a step
  local d
  for d in "$work/$1"/*/; do
    [ -f "$d/metrics.json" ] || [ ! -s "$d/log.jsonl" ] || return 0
  done
  return 1
}
wait_first_job() {  # wait_first_job NAME JOBID: until rank 0 has paused in its second job (see below)
  for _ in $(seq 3000); do
    [ -e "$work/$1.pause.0" ] && break
    case $(field "$2" JobState) in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        fail "$1 ended before rank 0 paused in its second job" ;;
    esac
    sleep 0.2
  done
  [ -e "$work/$1.pause.0" ] || fail "$1: rank 0 did not pause in 600 s"
  [ "$(ndone "$1")" -ge 1 ] && training "$1" || fail "$1: paused without a job complete and another training"
}

# 1. Reference, uninterrupted.
ts=$(date +%s%N)
id=$(submit ref)
st=$(wait_end "$id")
[ "$st" = COMPLETED ] || fail "reference job $id ended $st"
te=$(date +%s%N)
echo "reference sweep: $njobs jobs on 2 ranks in $(( (te - ts) / 1000000 )) ms (submit to end)"

# The interrupted runs: rank 0 pauses a few steps into its second job until
# a signal comes (FINEMASK_TEST_PAUSE_*, cli/stopsig.h), so the signal finds a
# job complete and another training whatever the machine's speed; the marker
# file keeps the requeued or resubmitted run from pausing again.
steps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"])' \
  "$(find "$work/ref" -mindepth 2 -maxdepth 2 -name metrics.json | head -n 1)")
export FINEMASK_TEST_PAUSE_AFTER_STEP=$((steps + 3)) FINEMASK_TEST_PAUSE_RANK=0

# 2. SIGUSR1 to the batch shell after the first job: checkpoint, requeue, resume.
export FINEMASK_TEST_PAUSE_ONCE=$work/requeue.pause
id=$(submit requeue)
wait_first_job requeue "$id"
scancel --batch --signal=USR1 "$id"
at=$(ndone requeue)
[ "$at" -lt "$njobs" ] || fail "requeue: the sweep was complete before the signal"
st=$(wait_end "$id")
[ "$st" = COMPLETED ] || fail "requeued job $id ended $st"
[ "$(field "$id" Restarts)" = 1 ] || fail "job $id restarted $(field "$id" Restarts) times, expected 1"
grep -q "requeueing job $id" "$work/requeue.log" || fail "the script did not requeue job $id"
grep -q "start 2:" "$work/requeue.log" || fail "job $id did not start a second time"
resumed() { grep -c "resuming .* at step" "$work/$1.log" || true; }
[ "$(resumed requeue)" -ge 1 ] || fail "requeue: no job resumed from a saved state"
echo "requeue: signalled with $at/$njobs jobs complete; restarted once; completed;" \
  "$(resumed requeue) job(s) resumed from a saved state"

# 3. scancel mid-run, then submit the same command again.
export FINEMASK_TEST_PAUSE_ONCE=$work/cancel.pause
id=$(submit cancel)
wait_first_job cancel "$id"
scancel "$id"
st=$(wait_end "$id")
[ "$st" = CANCELLED ] || fail "cancelled job $id ended $st"
# CANCELLED comes at once; the ranks still finish or checkpoint the jobs in
# hand (within KillWait). Resubmit only when the job has left the queue.
for _ in $(seq 300); do [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && break; sleep 0.2; done
at=$(ndone cancel)
[ "$at" -lt "$njobs" ] || fail "cancel: the sweep was complete before scancel"
if [ -f "$work/cancel/report/science.json" ]; then  # the stopped run's report lists what it did not do
  python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["failed"] else 1)' \
    "$work/cancel/report/science.json" || fail "cancel: the stopped run's report lists no unfinished job"
fi
id=$(submit cancel)
st=$(wait_end "$id")
[ "$st" = COMPLETED ] || fail "resubmitted job $id ended $st"
[ "$(resumed cancel)" -ge 1 ] || fail "cancel: no job resumed from a saved state"
echo "cancel: scancel with $at/$njobs jobs complete; resubmitted; completed;" \
  "$(resumed cancel) job(s) resumed from a saved state"

# The science of both interrupted runs equals the reference's, byte for byte.
python3 - "$work/ref/report/science.json" "$njobs" <<'PY' || fail "reference science.json"
import json, sys
s = json.load(open(sys.argv[1]))
jobs = s["jobs"]
assert not s["failed"], s["failed"]
assert len(jobs) == int(sys.argv[2]) and all(j["status"] == "done" for j in jobs), jobs
print("reference:", ", ".join(f'{j["name"]} {j["score_name"]} {j["score"]:.4f}' for j in jobs))
PY
for run in requeue cancel; do
  cmp "$work/ref/report/science.json" "$work/$run/report/science.json" \
    || { diff "$work/ref/report/science.json" "$work/$run/report/science.json" | head -20; fail "$run: science.json differs"; }
  n=0
  for f in $(cd "$work/ref" && find . -mindepth 2 \( -name metrics.json -o -name '*.safetensors' \) | sort); do
    cmp -s "$work/ref/$f" "$work/$run/$f" || fail "$run: $f differs from the reference"
    n=$((n + 1))
  done
  echo "$run: science.json and $n job files identical to the reference"
done
echo "total $(( $(date +%s) - t_start )) s"
echo "PASS"
