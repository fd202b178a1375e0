#!/usr/bin/env bash
# finemask run JOBFILE --list: each job of the job file with its run
# directory's name, task, mode, seed and status, without running anything.
# Before the sweep every job is "not started" (and the output directory is
# not made); then the sweep runs on one rank until the second job's step 4,
# where the test hook pauses it and SIGTERM stops it at the next step with
# its state saved: the first job is then "done", the second "partial at
# step 5", the rest "not started". After a rerun finishes the sweep every job is "done".
# Usage: run_list.sh FINEMASK MPIEXEC SOURCE_DIR.
set -euo pipefail
bin=$1 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/lib.sh"
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = model
data = glue
out = runs
[sweep]
tasks = SST-2
modes = full
seeds = 1, 2, 3
[train]
lr = 1e-3
batch_size = 16
epochs = 1
max_seq_length = 24
log_every = 2
[layout]
threads = 1
INI
cd "$work"
listing() { # STATUS1 STATUS2 STATUS3: the exact listing expected
  printf 'job\ttask\tmode\tseed\tstatus\n'
  printf 'SST-2.full.seed1\tSST-2\tfull\t1\t%s\n' "$1"
  printf 'SST-2.full.seed2\tSST-2\tfull\t2\t%s\n' "$2"
  printf 'SST-2.full.seed3\tSST-2\tfull\t3\t%s\n' "$3"
}
check() { # WHAT STATUS1 STATUS2 STATUS3
  local what=$1; shift
  "$bin" run job.ini --list > list.txt || { echo "FAIL: --list $what: exit status $?"; exit 1; }
  listing "$@" > want.txt
  diff want.txt list.txt || { echo "FAIL: --list $what is not the expected listing"; exit 1; }
  echo "--list $what:"; cat list.txt
}
check "before the sweep" "not started" "not started" "not started"
[ ! -e runs ] || { echo "FAIL: --list made the output directory"; exit 1; }

# 6 steps a job: the process's 10th step is the second job's 4th.
FINEMASK_TEST_PAUSE_AFTER_STEP=10 "$bin" -q run job.ini 2> run.err &
pid=$!
fm_wait_paused run.err 1 $pid
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
[ $rc -ne 0 ] || { echo "FAIL: the interrupted sweep exited 0"; exit 1; }
done_job=$(ls runs/*/metrics.json | cut -d/ -f2)
part_job=$(ls runs/*/state.safetensors | cut -d/ -f2)
echo "interrupted: $done_job done, $part_job with a state file"
# the sweep's order among equal jobs is its own: map the expected statuses to the job names
s() { case $1 in "$done_job") echo done ;; "$part_job") echo "partial at step 5" ;; *) echo "not started" ;; esac; }
check "after the interruption" "$(s SST-2.full.seed1)" "$(s SST-2.full.seed2)" "$(s SST-2.full.seed3)"
[ "$(ls runs/*/metrics.json | wc -l)" -eq 1 ] && [ "$(ls runs/*/state.safetensors | wc -l)" -eq 1 ] \
  || { echo "FAIL: --list changed the run directories"; exit 1; }

"$bin" -q run job.ini 2> /dev/null
check "after the sweep" done done done
echo PASS
