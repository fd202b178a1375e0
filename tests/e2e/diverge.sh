#!/usr/bin/env bash
# Fault test: a learning rate that makes training diverge (--lr 1e6 on a tiny
# model: the loss is NaN by step 5). Each command must stop at the first step
# whose loss or gradient norm is not finite, exit non-zero with a message
# naming the step, record "status": "diverged" and "diverged_at_step" in its
# metrics, never write a NaN as a number (JSON has none: null), write no model,
# and keep what it had written (options.json, the log up to that step).
#  1. finemask train: metrics.json, log.jsonl.
#  2. finemask pretrain: pretrain.json, pretrain_log.jsonl.
#  3. finemask run: the job is reported as diverged, the run exits 1; run
#     again, the diverged job is not rerun; finemask report agrees.
# Generated data (tests/mpi/mkdata.sh). Usage: diverge.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1 src=$2
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"

check() { # check METRICS LOG ERRFILE: the diverged records agree with the message
  $PY - "$@" <<'PY'
import json, re, sys
metrics, log, err = sys.argv[1:4]
msg = open(err).read()
m = re.search(r"diverged at step (\d+)", msg)
assert m, "no 'diverged at step N' in the message: " + msg
step = int(m.group(1))
j = json.load(open(metrics))
assert j["status"] == "diverged" and j["diverged_at_step"] == step, j
assert j["diverged_on"] in ("loss", "gradient norm"), j
v = j["loss"] if j["diverged_on"] == "loss" else j["grad_norm"]
assert v is None, ("a value that is not finite must be null", v)
assert "final_loss" not in j or j["final_loss"] is None, j
lines = [json.loads(l) for l in open(log)]
assert lines and lines[-1]["step"] == step and lines[-1].get("diverged") is True, lines[-1:]
assert all(l["step"] < step for l in lines[:-1])
for l in lines[:-1]:  # the steps before were finite (a saturated head can reach a loss of exactly 0)
    for k in ("loss", "grad_norm"):
        assert isinstance(l.get(k), float) and l[k] >= 0, l
print(f"  {metrics}: diverged at step {step} on the {j['diverged_on']}; log ends at that step")
PY
}

# 1. train
args=(--model "$work/model" --task SST-2 --data "$work/glue" --max-seq-length 24 --batch-size 8 --max-steps 30
      --log-every 1 --threads 1 --lr 1e6)
if "$bin" -q train "${args[@]}" --out "$work/run" 2> "$work/err"; then
  echo "FAIL: train with --lr 1e6 exited 0"; cat "$work/run/metrics.json"; exit 1
fi
cat "$work/err"
check "$work/run/metrics.json" "$work/run/log.jsonl" "$work/err"
[ -s "$work/run/options.json" ] || { echo "FAIL: options.json lost"; exit 1; }
[ ! -e "$work/run/model" ] || { echo "FAIL: a diverged run wrote a model"; exit 1; }
# the same in supermask mode with a diverging head
if "$bin" -q train "${args[@]}" --mode supermask --mask-lr 1e6 --samples 1 --out "$work/sm" 2> "$work/err"; then
  echo "FAIL: supermask with --lr 1e6 --mask-lr 1e6 exited 0"; exit 1
fi
check "$work/sm/metrics.json" "$work/sm/log.jsonl" "$work/err"
[ ! -e "$work/sm/mask.safetensors" ] || { echo "FAIL: a diverged run wrote a mask"; exit 1; }

# 2. pretrain
for i in $(seq 40); do echo "the film was good and the plot was fun"; echo "the movie was not very long"; done \
  > "$work/corpus.txt"
if "$bin" -q pretrain --corpus "$work/corpus.txt" --vocab "$work/vocab.txt" --config tiny --steps 40 --batch 4 \
  --seq 16 --lr 1e6 --log-every 1 --out "$work/pt" 2> "$work/err"; then
  echo "FAIL: pretrain with --lr 1e6 exited 0"; exit 1
fi
cat "$work/err"
check "$work/pt/pretrain.json" "$work/pt/pretrain_log.jsonl" "$work/err"
[ ! -e "$work/pt/model.safetensors" ] || { echo "FAIL: a diverged pretraining wrote a model"; exit 1; }

# 3. a sweep whose job diverges.
cat > "$work/job.ini" <<INI
[run]
model = $work/model
data = $work/glue
out = $work/sweep
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
for attempt in 1 2; do
  if "$bin" run "$work/job.ini" 2> "$work/err"; then echo "FAIL: a sweep with a diverged job exited 0"; exit 1; fi
  grep -q "failed: SST-2.full.seed1: .*diverged at step" "$work/err" \
    || { echo "FAIL: run $attempt: the diverged job is not listed"; cat "$work/err"; exit 1; }
  $PY - "$work/sweep" <<'PY'
import json, sys
d = sys.argv[1]
run = json.load(open(f"{d}/run.json"))
assert "diverged at step" in run["failures"]["SST-2.full.seed1"], run["failures"]
s = json.load(open(f"{d}/report/science.json"))
assert [j["status"] for j in s["jobs"]] == ["diverged"], s["jobs"]
assert s["groups"] == [], s["groups"]
PY
  cp "$work/sweep/SST-2.full.seed1/log.jsonl" "$work/log.$attempt"
done
# The second run read the recorded divergence instead of training again.
grep -q "metrics.json: diverged at step" "$work/err" || { echo "FAIL: the rerun did not report the recorded divergence"; exit 1; }
cmp "$work/log.1" "$work/log.2" || { echo "FAIL: the rerun trained the diverged job again"; exit 1; }
# finemask report rebuilds the same science from the directory (the job as diverged, not done).
cp "$work/sweep/report/science.json" "$work/science.json"
"$bin" -q report "$work/sweep"
cmp "$work/science.json" "$work/sweep/report/science.json" || { echo "FAIL: report disagrees with run"; exit 1; }
echo "diverge: OK"
