#!/usr/bin/env bash
# End to end: a run interrupted and resumed ends with the same run directory,
# byte for byte, as an uninterrupted one, in every mode (full, freeze,
# supermask). For each mode: SIGTERM mid-run (the run writes its state and
# exits non-zero saying how to resume), SIGKILL at a random moment, and
# SIGKILL half-way through writing a checkpoint (FINEMASK_TEST_KILL_IN_CHECKPOINT);
# each is resumed with `train --resume RUN_DIR` and compared with cmp.
# Options that differ from the run's are rejected. Tiny random-init model,
# SST-2 from ../shared/data. Usage: resume.sh FINEMASK_BIN SOURCE_DIR. Exit 77: no data.
set -euo pipefail
bin=$1 src=$2
. "$src/tests/lib.sh"
data=${FINEMASK_DATA:-$src/../shared/data}
if [ ! -f "$data/glue/SST-2/train.tsv" ] || [ ! -f "$data/vocab/bert-base-uncased-vocab.txt" ]; then
  echo "skip: GLUE data not found in $data"
  exit 77
fi
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
"$bin" -q init --config tiny --seed 3 --vocab "$data/vocab/bert-base-uncased-vocab.txt" --out "$work/tiny"

same() { # same REF DIR: every file equal, no extra or missing file
  diff <(cd "$1" && find . -type f | sort) <(cd "$2" && find . -type f | sort) \
    || { echo "FAIL: $2 holds other files than $1"; exit 1; }
  (cd "$1" && find . -type f) | while read -r f; do
    cmp "$1/$f" "$2/$f" || { echo "FAIL: $2/$f differs"; exit 1; }
  done
}


for mode in full freeze supermask; do
  args=(--model "$work/tiny" --task SST-2 --data "$data/glue" --mode "$mode" --max-train-examples 240
        --batch-size 8 --max-steps 30 --max-seq-length 24 --lr 1e-3 --log-every 3 --eval-every 20
        --eval-batch-size 128 --threads 1)
  case $mode in
    freeze) args+=(--freeze key,deepest:1) ;;
    supermask) args+=(--init-sparsity 0.3 --mask-lr 0.05 --samples 2) ;;
  esac
  "$bin" -q train "${args[@]}" --out "$work/$mode.ref"
  [ ! -e "$work/$mode.ref/state.safetensors" ] || { echo "FAIL: a finished run keeps its state"; exit 1; }

  # SIGTERM: state written at the next step boundary, exit non-zero with the resume command.
  FINEMASK_TEST_PAUSE_AFTER_STEP=9 "$bin" train "${args[@]}" --checkpoint-every 4 --out "$work/$mode.term" \
    2> "$work/term.err" & pid=$!
  fm_wait_paused "$work/term.err" 1 $pid
  kill -TERM $pid
  if wait $pid; then echo "FAIL: $mode: SIGTERM did not stop the run"; exit 1; fi
  pid=
  grep -q -- "--resume $work/$mode.term" "$work/term.err" || { echo "FAIL: no resume hint"; cat "$work/term.err"; exit 1; }
  grep -q "SIGTERM: state at step 10 " "$work/term.err" || { echo "FAIL: SIGTERM after step 9 saved no state at step 10"; cat "$work/term.err"; exit 1; }
  [ -f "$work/$mode.term/state.safetensors" ] && [ ! -e "$work/$mode.term/metrics.json" ] \
    || { echo "FAIL: SIGTERM left no state, or the run finished"; exit 1; }
  # Options that differ are rejected; the run directory is untouched by that.
  if "$bin" -q train --resume "$work/$mode.term" --lr 5e-4 2> "$work/bad.err"; then
    echo "FAIL: resume with another --lr accepted"; exit 1
  fi
  grep -q "differ" "$work/bad.err" || { echo "FAIL: mismatch message"; cat "$work/bad.err"; exit 1; }
  "$bin" -q train --resume "$work/$mode.term" --threads 1
  same "$work/$mode.ref" "$work/$mode.term"

  # SIGKILL at a random step after the first checkpoint.
  kstep=$((5 + RANDOM % 24))
  FINEMASK_TEST_PAUSE_AFTER_STEP=$kstep "$bin" -q train "${args[@]}" --checkpoint-every 4 --out "$work/$mode.kill" \
    2> "$work/kill.err" & pid=$!
  fm_wait_paused "$work/kill.err" 1 $pid
  kill -KILL $pid
  wait $pid 2>/dev/null || true
  pid=
  [ -f "$work/$mode.kill/state.safetensors" ] && [ ! -e "$work/$mode.kill/metrics.json" ] \
    || { echo "FAIL: SIGKILL after step $kstep: no state, or the run finished"; exit 1; }
  "$bin" -q train --resume "$work/$mode.kill" --threads 1 --checkpoint-every 4
  same "$work/$mode.ref" "$work/$mode.kill"

  # SIGKILL half-way through writing the third checkpoint: the second one is used.
  if FINEMASK_TEST_KILL_IN_CHECKPOINT=3 "$bin" -q train "${args[@]}" --checkpoint-every 3 --out "$work/$mode.ckpt"; then
    echo "FAIL: the checkpoint kill hook did not fire"; exit 1
  fi
  ls "$work/$mode.ckpt"/state.safetensors.tmp.* >/dev/null 2>&1 || { echo "FAIL: no half-written temporary state"; exit 1; }
  "$bin" -q train --resume "$work/$mode.ckpt" --threads 1
  same "$work/$mode.ref" "$work/$mode.ckpt"
  echo "$mode: SIGTERM after step 9, SIGKILL after step $kstep and a kill inside the checkpoint all resume to identical files"
done
echo "PASS"
