# shellcheck shell=bash
# Sourced by the sbatch scripts of this folder (Slurm runs a copy of each script from its spool
# folder, so they find the repository through EMPD_REPO, else the folder sbatch was called from).
#
# Environment (all optional):
#   EMPD_REPO       this repository (default: $SLURM_SUBMIT_DIR)
#   EMPD            the empd binary (default: $EMPD_REPO/build/empd)
#   EMPD_SRUN_MPI   srun's --mpi plugin (pmix): Debian's Open MPI needs PMIx; with "none" the ranks
#                   meet over empd's TCP backend instead (launch/run sets MASTER_ADDR/MASTER_PORT)
#   EMPD_SRUN_ARGS  more srun options for every step, split on spaces (e.g. "--gpu-bind=closest")

job_say() { printf '%s: %s\n' "${SLURM_JOB_NAME:-empd}" "$*"; }
job_die() {
  printf '%s: error: %s\n' "${SLURM_JOB_NAME:-empd}" "$*" >&2
  exit 2
}

[ -n "${SLURM_JOB_ID:-}" ] || job_die "not inside a Slurm job: submit this script with sbatch"
EMPD=${EMPD:-$EMPD_REPO/build/empd}
[ -x "$EMPD" ] || job_die "no empd at $EMPD: build it (cmake -S . -B build && cmake --build build) or set EMPD"
[ -x "$EMPD_REPO/launch/run" ] || job_die "no launch/run in $EMPD_REPO: set EMPD_REPO to the repository"
job_say "job $SLURM_JOB_ID${SLURM_RESTART_COUNT:+ (restart $SLURM_RESTART_COUNT)} on ${SLURM_JOB_NODELIST:-?}," \
  "${SLURM_NTASKS:-1} task(s) x ${SLURM_CPUS_PER_TASK:-1} CPU(s), $(date '+%F %T')"

# Runs `empd ARGS` as one job step: one rank per task, each set up by launch/run (threads, GPU).
# srun is told the CPUs per task explicitly: since Slurm 22.05 it no longer inherits sbatch's.
empd_step() {
  local extra=()
  [ -z "${EMPD_SRUN_ARGS:-}" ] || read -ra extra <<<"$EMPD_SRUN_ARGS"
  srun --mpi="${EMPD_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "${extra[@]}" \
    "$EMPD_REPO/launch/run" -- "$EMPD" "$@"
}

# The step of RUNDIR's newest complete checkpoint, 0 when none.
newest_checkpoint() {
  local d best=0 s
  for d in "$1"/checkpoints/step-*; do
    [ -e "$d/COMPLETE" ] || continue
    s=${d##*/step-}
    s=$((10#$s))
    [ "$s" -le "$best" ] || best=$s
  done
  echo "$best"
}

# empd train --resume auto on SHARDS into RUNDIR with CONFIG (EMPD_CONFIG overrides it; a --config
# among the options overrides both). A run stopped by a signal (SIGUSR1 before the time limit,
# SIGTERM on preemption) checkpoints and exits 0; the job then requeues itself, so that jobs
# waiting on it (afterok) start only once training has finished.
empd_train_job() {
  local config=${EMPD_CONFIG:-$1} shards=$2 run=$3
  shift 3
  mkdir -p "$run"
  local before started=$run/.slurm-step-started
  before=$(newest_checkpoint "$run")
  job_say "empd train --config $config --shards $shards --out $run --resume auto $* (checkpoint: step $before)"
  touch "$started"
  local rc=0
  empd_step train --config "$config" --shards "$shards" --out "$run" --resume auto "$@" || rc=$?
  [ "$rc" = 0 ] || job_die "empd train exited with status $rc"
  # The final export is newer than the step's start only when the run reached its end.
  if [ -n "$(find "$run" -maxdepth 1 -name model.safetensors -newer "$started")" ]; then
    rm -f "$started"
    job_say "training finished: $run/model.safetensors, $run/predictions/"
    return 0
  fi
  local after
  after=$(newest_checkpoint "$run")
  [ "$after" -gt "$before" ] ||
    job_die "empd train stopped before its end without a new checkpoint (still step $before): not requeued"
  job_say "stopped at the checkpoint of step $after before the end: requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID" || job_die "scontrol requeue $SLURM_JOB_ID failed: resubmit this script to continue"
  exit 0
}
