#!/usr/bin/env bash
# End to end: an interrupted `finemask pretrain` resumed with --resume ends
# with the same model directory, byte for byte (model.safetensors,
# pretrain_log.jsonl, pretrain.json, config.json, vocab.txt; no state left), as
# an uninterrupted run: (b) SIGUSR1 (state saved, the run goes on) then
# SIGTERM (state saved, exit 1), (c) SIGKILL at a random moment after a
# checkpoint, (c2) SIGKILL half-way through writing a checkpoint
# (FINEMASK_TEST_KILL_IN_CHECKPOINT), (e) SIGTERM to mpiexec of 2 ranks,
# resumed on 2 ranks, (e2) SIGTERM to one rank of 2. (d) A resume with another --lr or --steps is refused,
# naming the option, and leaves the state and the log as they were. The run
# crosses an epoch boundary, and is stopped in both epochs across the cases.
# Tiny BERT on a slice of the demo's generated corpus.
# Usage: pretrain_resume.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1
. "$(dirname "$0")/../lib.sh"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1

"$bin" -q demo --only data --dir "$work/demo" --scale 0.1
head -n 600 "$work/demo/data/corpus.txt" > "$work/corpus.txt"
args=(--corpus "$work/corpus.txt" --vocab "$work/demo/data/vocab.txt" --config tiny --steps 40 --batch 16
      --seq 32 --lr 2e-3 --warmup 0.1 --seed 5 --log-every 3 --threads 1)

same() { # same REF DIR: the same files, byte for byte
  diff <(cd "$1" && find . -type f | sort) <(cd "$2" && find . -type f | sort) \
    || { echo "FAIL: $2 holds other files than $1"; exit 1; }
  (cd "$1" && find . -type f) | while read -r f; do
    cmp "$1/$f" "$2/$f" || { echo "FAIL: $2/$f differs from $1/$f"; exit 1; }
  done
}
# The runs that get a signal pause at known steps (FINEMASK_TEST_PAUSE_AFTER_STEP,
# see cli/stopsig.h) until it arrives, so the signal lands mid-run whatever the
# machine's speed.
paused='test hook: paused after step'
interrupted() { # interrupted DIR: a state and no model yet
  [ -f "$1/state.safetensors" ] || { echo "FAIL: $1 has no state"; exit 1; }
  [ ! -e "$1/model.safetensors" ] || { echo "FAIL: $1 finished before the interruption"; exit 1; }
}

# (a) uninterrupted
"$bin" -q pretrain "${args[@]}" --out "$work/ref"
[ ! -e "$work/ref/state.safetensors" ] || { echo "FAIL: an uninterrupted run left a state"; exit 1; }
python3 - "$work/ref" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/pretrain.json"))
assert 1.2 < s["epochs"] < 2, s["epochs"]  # an epoch boundary inside the run
assert [json.loads(l)["step"] for l in open(sys.argv[1] + "/pretrain_log.jsonl")] == list(range(3, 40, 3)) + [40]
PY

# (b) SIGUSR1 saves and goes on; SIGTERM saves and stops with exit status 1.
FINEMASK_TEST_PAUSE_AFTER_STEP=6,25 "$bin" pretrain "${args[@]}" --checkpoint-every 4 --out "$work/b" 2> "$work/b.err" & pid=$!
fm_wait_lines "$work/b.err" "$paused 6 " 1 $pid
kill -USR1 $pid
fm_wait_lines "$work/b.err" "$paused 25 " 1 $pid
grep -q "SIGUSR1: state at step 7 " "$work/b.err" || { echo "FAIL: SIGUSR1 after step 6 saved no state at step 7"; cat "$work/b.err"; exit 1; }
kill -TERM $pid
rc=0; wait $pid || rc=$?; pid=
[ $rc -eq 1 ] || { echo "FAIL: SIGTERM: exit status $rc, expected 1"; cat "$work/b.err"; exit 1; }
grep -q "interrupted by SIGTERM after step" "$work/b.err" || { echo "FAIL: no interruption message"; cat "$work/b.err"; exit 1; }
grep -q "SIGTERM: state at step 26 " "$work/b.err" || { echo "FAIL: SIGTERM after step 25 wrote no state at step 26"; cat "$work/b.err"; exit 1; }
interrupted "$work/b"
grep "SIGTERM: state" "$work/b.err" | sed 's/^finemask: //'

# (d) other options are refused, naming the option; nothing is changed.
cp "$work/b/state.safetensors" "$work/b/pretrain_log.jsonl" "$work/"
for bad in "--lr 1e-3:option lr differs" "--steps 41:option steps differs"; do
  # shellcheck disable=SC2086
  if "$bin" -q pretrain "${args[@]}" ${bad%%:*} --resume --out "$work/b" 2> "$work/bad.err"; then
    echo "FAIL: resume with ${bad%%:*} accepted"; exit 1
  fi
  grep -q "${bad#*:}" "$work/bad.err" || { echo "FAIL: ${bad%%:*} refused without naming it:"; cat "$work/bad.err"; exit 1; }
done
sed 's/^finemask: error: [^ ]*: //' "$work/bad.err"
if "$bin" pretrain "${args[@]}" --out "$work/b" 2> "$work/bad.err"; then echo "FAIL: a fresh run over a state accepted"; exit 1; fi
grep -q -- "--resume" "$work/bad.err" || { echo "FAIL: no --resume hint"; cat "$work/bad.err"; exit 1; }
cmp "$work/state.safetensors" "$work/b/state.safetensors"
cmp "$work/pretrain_log.jsonl" "$work/b/pretrain_log.jsonl"
"$bin" -q pretrain "${args[@]}" --checkpoint-every 4 --resume --out "$work/b"
same "$work/ref" "$work/b"
# A finished model: --resume has nothing to do.
"$bin" -q pretrain "${args[@]}" --resume --out "$work/b"
same "$work/ref" "$work/b"

# (c) SIGKILL at a random step after the first checkpoint.
kstep=$((5 + RANDOM % 34))
echo "SIGKILL after step $kstep"
FINEMASK_TEST_PAUSE_AFTER_STEP=$kstep "$bin" -q pretrain "${args[@]}" --checkpoint-every 4 --out "$work/c" 2> "$work/c.err" & pid=$!
fm_wait_lines "$work/c.err" "$paused $kstep " 1 $pid
kill -KILL $pid
{ wait $pid; } 2>/dev/null || true; pid=
interrupted "$work/c"
"$bin" -q pretrain "${args[@]}" --checkpoint-every 4 --resume --out "$work/c"
same "$work/ref" "$work/c"

# (c2) SIGKILL while the second checkpoint is half written: the first one is resumed.
if FINEMASK_TEST_KILL_IN_CHECKPOINT=2 "$bin" -q pretrain "${args[@]}" --checkpoint-every 12 --out "$work/k"; then
  echo "FAIL: the checkpoint kill hook did not fire"; exit 1
fi
interrupted "$work/k"
ls "$work/k"/state.safetensors.tmp.* >/dev/null || { echo "FAIL: no half-written state"; exit 1; }
"$bin" -q pretrain "${args[@]}" --checkpoint-every 12 --resume --out "$work/k"
same "$work/ref" "$work/k"

# (e) two ranks: SIGTERM to mpiexec, resumed on two ranks, equal to an
# uninterrupted 2-rank run; (e2) SIGTERM to rank 1 alone (not the writer):
# both ranks save (rank 0 writes) and stop at the same step.
if command -v mpiexec >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  mpi=(mpiexec -n 2 --oversubscribe --bind-to none)
  if "${mpi[@]}" "$bin" -q pretrain "${args[@]}" --out "$work/m1" 2> "$work/mpi.err"; then
    # mpiexec passes a SIGTERM on to the ranks and SIGKILLs them
    # odls_base_sigkill_timeout seconds later (1 by default; mpiexec then
    # waits about twice that whatever the ranks do): 5 s gives a loaded
    # machine time to save this tiny model.
    FINEMASK_TEST_PAUSE_AFTER_STEP=10 "${mpi[@]}" --mca odls_base_sigkill_timeout 5 -x FINEMASK_TEST_PAUSE_AFTER_STEP \
      "$bin" pretrain "${args[@]}" --checkpoint-every 4 --out "$work/m2" 2> "$work/m2.err" & pid=$!
    fm_wait_lines "$work/m2.err" "$paused 10 " 2 $pid
    kill -TERM $pid
    rc=0; wait $pid || rc=$?; pid=
    [ $rc -ne 0 ] || { echo "FAIL: mpiexec: SIGTERM did not stop the run"; exit 1; }
    interrupted "$work/m2"
    grep -q "SIGTERM: state at step 11 " "$work/m2.err" \
      || { echo "FAIL: the ranks did not save at step 11 on SIGTERM"; cat "$work/m2.err"; exit 1; }
    "${mpi[@]}" "$bin" -q pretrain "${args[@]}" --checkpoint-every 4 --resume --out "$work/m2"
    same "$work/m1" "$work/m2"
    echo "2 ranks: SIGTERM to mpiexec, then --resume: the uninterrupted 2-rank model"

    # Only rank 1 pauses (rank 0 waits in the next step's sum); it alone gets SIGTERM.
    FINEMASK_TEST_PAUSE_AFTER_STEP=17 FINEMASK_TEST_PAUSE_RANK=1 "${mpi[@]}" -x FINEMASK_TEST_PAUSE_AFTER_STEP \
      -x FINEMASK_TEST_PAUSE_RANK "$bin" pretrain "${args[@]}" --out "$work/m3" 2> "$work/m3.err" & pid=$!
    fm_wait_lines "$work/m3.err" "$paused 17 " 1 $pid
    r1=$(sed -n "s/.*$paused 17 (.*rank 1, pid \([0-9]*\)).*/\1/p" "$work/m3.err")
    [ -n "$r1" ] || { echo "FAIL: rank 1 did not pause"; cat "$work/m3.err"; exit 1; }
    if [ "$(grep -c "$paused" "$work/m3.err")" -ne 1 ]; then echo "FAIL: a rank other than 1 paused"; exit 1; fi
    kill -TERM "$r1"
    rc=0; wait $pid || rc=$?; pid=
    [ $rc -ne 0 ] || { echo "FAIL: SIGTERM to rank 1 did not stop the run"; exit 1; }
    [ "$(grep -c "interrupted by SIGTERM" "$work/m3.err")" -eq 2 ] \
      || { echo "FAIL: both ranks should stop"; cat "$work/m3.err"; exit 1; }
    grep -q "SIGTERM: state at step 18 " "$work/m3.err" || { echo "FAIL: rank 0 saved no state at step 18"; cat "$work/m3.err"; exit 1; }
    interrupted "$work/m3"
    "${mpi[@]}" "$bin" -q pretrain "${args[@]}" --resume --out "$work/m3"
    same "$work/m1" "$work/m3"
    echo "2 ranks: SIGTERM to rank 1 alone stops both at the same step; --resume: the same model"
  else
    echo "FAIL: mpiexec could not start 2 ranks"; cat "$work/mpi.err"; exit 1
  fi
else
  echo "FAIL: no mpiexec (install.sh installs Open MPI)"; exit 1
fi
echo "pretrain_resume e2e: OK"
