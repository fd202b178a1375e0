# lib.sh: shell functions shared by finemask's sbatch scripts (sourced, not
# run). They find the finemask binary, set the thread counts from Slurm's
# allocation, and run a step under `srun --mpi=pmix` so that a signal from
# Slurm ends it with a checkpoint and, for the time-limit warning, requeues
# the job so that its next start resumes where this one stopped.
#
# The protocol, end to end:
#   - The script asks for `#SBATCH --signal=B:USR1@SECONDS` and `--requeue`:
#     SECONDS before the time limit Slurm sends SIGUSR1 to the batch shell only.
#   - fm_srun's trap turns it into SIGTERM for every task of the running step
#     (`scancel --signal=TERM JOBID` reaches the steps, not this shell):
#     finemask writes each interrupted job's training state (atomically) and
#     stops. (To finemask, SIGUSR1 itself means "write a checkpoint and go
#     on"; SIGTERM means "write a checkpoint and stop".)
#   - When the step did not finish its work, fm_srun runs `scontrol requeue`
#     on the job: it goes back to the queue with the same job id and
#     SLURM_RESTART_COUNT one higher, and `finemask run` in the same output
#     directory skips the completed jobs and resumes the interrupted ones.
#   - SIGTERM (scancel, preemption, the time limit itself) reaches the tasks
#     from Slurm directly (and is forwarded too, for a `scancel --batch`), but
#     the job is not requeued by the script: a cancelled job stays cancelled,
#     and a preempted one is requeued by Slurm itself when the site's
#     PreemptMode is REQUEUE. Submitting the same script again resumes.
#   - FM_MAX_RESTARTS (default 20) bounds the self-requeues, so a job that
#     cannot make progress does not cycle for ever.

# fm_log MESSAGE...: one line on stderr, prefixed with the job and the time.
fm_log() {
  echo "[slurm ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+[$SLURM_ARRAY_TASK_ID]} $(date -u +%H:%M:%S)] $*" >&2
}

# fm_home: the repository the sbatch script was submitted from: $FINEMASK_HOME,
# else the directory above the script Slurm recorded for this job (sbatch runs
# a copy, so $0 does not say), else the submit directory.
fm_home() {
  if [ -n "${FINEMASK_HOME:-}" ]; then echo "$FINEMASK_HOME"; return; fi
  local cmd
  cmd=$(scontrol show job -o "${SLURM_JOB_ID:-0}" 2>/dev/null | tr ' ' '\n' | sed -n 's/^Command=//p' | head -n 1)
  if [ -n "$cmd" ] && [ -f "$cmd" ]; then
    (cd "$(dirname "$cmd")/.." && pwd)
  else
    echo "${SLURM_SUBMIT_DIR:-.}"
  fi
}

# fm_setup: set FINEMASK (the binary: $FINEMASK, else HOME/build/finemask,
# else finemask on PATH) and the thread variables, and log the allocation.
fm_setup() {
  FM_HOME=$(fm_home)
  if [ -z "${FINEMASK:-}" ]; then
    if [ -x "$FM_HOME/build/finemask" ]; then FINEMASK=$FM_HOME/build/finemask
    else FINEMASK=$(command -v finemask || true)
    fi
  fi
  if [ -z "$FINEMASK" ] || [ ! -x "$FINEMASK" ]; then
    fm_log "finemask not found: build it (./install.sh) or set FINEMASK=/path/to/finemask"
    exit 2
  fi
  # One BLIS/OpenMP thread per CPU Slurm gave each task.
  local t=${SLURM_CPUS_PER_TASK:-1}
  export BLIS_NUM_THREADS=$t OMP_NUM_THREADS=$t
  # Since Slurm 22.05 srun does not inherit --cpus-per-task from sbatch.
  export SRUN_CPUS_PER_TASK=$t
  # finemask makes no MPI window (its job assignment is static, mpi/sched.h),
  # so Open MPI's one-sided component (OMPI_MCA_osc) does not matter to it.
  fm_log "job ${SLURM_JOB_NAME:-?} start $(( ${SLURM_RESTART_COUNT:-0} + 1 )):" \
    "${SLURM_JOB_NUM_NODES:-1} node(s) ${SLURM_JOB_NODELIST:-?}, ${SLURM_NTASKS:-1} task(s)" \
    "x $t thread(s); finemask $FINEMASK"
}

# fm_stop_step: SIGTERM to the tasks of this job's steps (not to this shell);
# when scancel cannot, to srun, which passes it on.
fm_stop_step() {
  scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2034  # FM_REQUEUED is read by the sbatch scripts
# fm_srun ARGS...: run `srun --mpi=pmix ARGS` as a background step and wait
# for it, passing USR1/TERM/INT from Slurm on to it as SIGTERM. Returns srun's status;
# after a USR1 on an unfinished step it requeues the job (see the protocol
# above) and the script should exit 0 (fm_srun sets FM_REQUEUED=1).
fm_srun() {
  FM_SIGNAL='' FM_REQUEUED=0
  local pid rc
  trap 'FM_SIGNAL=USR1; fm_log "SIGUSR1: stopping the step with a checkpoint, to requeue"; fm_stop_step' USR1
  trap 'FM_SIGNAL=TERM; fm_log "SIGTERM: stopping the step with a checkpoint"; fm_stop_step' TERM
  trap 'FM_SIGNAL=INT; fm_stop_step' INT
  srun --mpi=pmix "$@" &
  pid=$!
  # wait returns early (> 128) whenever a trapped signal arrives: wait again
  # until the step itself has ended.
  while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
  rc=0
  wait "$pid" || rc=$?   # bash keeps a reaped child's status for this
  trap - USR1 TERM INT
  fm_log "step ended with status $rc"
  if [ "$FM_SIGNAL" = USR1 ] && [ "$rc" -ne 0 ]; then
    local n=${SLURM_RESTART_COUNT:-0} max=${FM_MAX_RESTARTS:-20}
    if [ "$n" -ge "$max" ]; then
      fm_log "not requeueing: already restarted $n times (FM_MAX_RESTARTS=$max)"
      return "$rc"
    fi
    fm_log "requeueing job $SLURM_JOB_ID (restart $((n + 1)))"
    FM_REQUEUED=1
    scontrol requeue "$SLURM_JOB_ID" \
      || { fm_log "scontrol requeue failed"; return "$rc"; }
    return 0
  fi
  return "$rc"
}
