# tests/lib.sh: sourced by the test scripts that signal or wait on a running
# finemask (tests/e2e, tests/mpi). Every wait here waits for an event (a line
# in a log, a process ending); the bound, FM_TEST_WAIT seconds (default 1200,
# under ctest's 1500 s timeout), only turns a hang into a clear failure.

# fm_wait_lines FILE PATTERN COUNT PID: until FILE holds at least COUNT lines
# matching PATTERN (a grep regular expression). Fails, showing FILE's end,
# if process PID ends first or the bound passes.
fm_wait_lines() {
  local file=$1 pat=$2 count=$3 pid=$4 n end=$((SECONDS + ${FM_TEST_WAIT:-1200}))
  while :; do
    n=$(grep -c -- "$pat" "$file" 2>/dev/null || true)
    [ "${n:-0}" -ge "$count" ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      # the line may have come just before the process ended
      n=$(grep -c -- "$pat" "$file" 2>/dev/null || true)
      [ "${n:-0}" -ge "$count" ] && return 0
      echo "FAIL: the run ended before $count line(s) matching '$pat' in $file"
      tail -n 40 "$file" 2>/dev/null
      exit 1
    fi
    if [ $SECONDS -ge $end ]; then
      echo "FAIL: no $count line(s) matching '$pat' in $file after ${FM_TEST_WAIT:-1200} s"
      tail -n 40 "$file" 2>/dev/null
      exit 1
    fi
    sleep 0.05
  done
}

# fm_wait_paused FILE COUNT PID: until COUNT processes have printed the test
# hook's "paused" line (FINEMASK_TEST_PAUSE_*, cli/stopsig.h) into FILE.
fm_wait_paused() { fm_wait_lines "$1" 'test hook: paused' "$2" "$3"; }

# fm_paused_pid FILE [PATTERN]: the pid of the first paused process whose
# "paused" line also matches PATTERN (e.g. 'rank 0'), or nothing.
fm_paused_pid() {
  grep -- 'test hook: paused' "$1" | grep -- "${2:-}" | sed -n 's/.*pid \([0-9]*\)).*/\1/p' | head -n 1
}

# fm_wait_end PID: until process PID has ended; status 1 if it still runs
# after the bound (the caller reports the hang and kills it).
fm_wait_end() {
  local end=$((SECONDS + ${FM_TEST_WAIT:-1200}))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.05
  done
}

# fm_fault_sweep FILE LOG_EVERY [TEAM_SIZE]: the two-job sweep of the fault
# tests (tests/mpi): SST-2 supermask at 20% initial sparsity and full
# fine-tuning, seed 1, one epoch of the data tests/mpi/mkdata.sh makes.
fm_fault_sweep() {
  cat > "$1" <<INI
[run]
model = model
data = glue
[sweep]
tasks = SST-2
modes = supermask, full
seeds = 1
[supermask]
sparsities = 0.2
samples = 2
[train]
lr = 1e-3
batch_size = 8
epochs = 1
max_seq_length = 24
log_every = $2
[layout]
threads = 1
INI
  if [ -n "${3:-}" ]; then echo "team_size = $3" >> "$1"; fi
}

# fm_term_resume STEP OUT REF RANKS MPIEXEC_ARGS... -- FINEMASK_ARGS...: run
# `MPIEXEC_ARGS FINEMASK_ARGS --out OUT` with every one of its RANKS ranks
# pausing after the first job's step STEP (FINEMASK_TEST_PAUSE_AFTER_STEP,
# cli/stopsig.h), send them SIGTERM once all have paused, check that the run
# failed leaving the first job's state file and no finished job, run it
# again (resuming) and check that OUT's job directories have the bytes of
# the uninterrupted run REF.
fm_term_resume() {
  local step=$1 out=$2 ref=$3 ranks=$4 pre=() rc states mp
  shift 4
  while [ "$1" != -- ]; do pre+=("$1"); shift; done
  shift
  FINEMASK_TEST_PAUSE_AFTER_STEP=$step "${pre[@]}" -x FINEMASK_TEST_PAUSE_AFTER_STEP "$@" --out "$out" \
    2> "$out.err" &
  mp=$!
  fm_wait_paused "$out.err" "$ranks" $mp
  [ "$(grep -c 'test hook: paused' "$out.err")" -eq "$ranks" ] \
    || { echo "FAIL: the ranks did not pause"; cat "$out.err"; exit 1; }
  kill -TERM $(pgrep -P $mp) 2>/dev/null || true
  set +e
  wait $mp
  rc=$?
  set -e
  states=$(ls "$out"/*/state.safetensors 2>/dev/null | wc -l)
  echo "interrupted run ($*): exit $rc, $states state file(s)"
  [ $rc -ne 0 ] || { echo "FAIL: an interrupted run must exit non-zero"; exit 1; }
  [ "$states" -eq 1 ] || { echo "FAIL: expected the first job's state file"; cat "$out.err"; exit 1; }
  [ "$(ls "$out"/*/metrics.json 2>/dev/null | wc -l)" -eq 0 ] || { echo "FAIL: a job finished before the signal"; exit 1; }
  "${pre[@]}" "$@" --out "$out" 2>/dev/null
  diff -r -x compute.json -x run.json -x report "$out" "$ref" \
    || { echo "FAIL: job directories differ after resume ($*)"; exit 1; }
}
