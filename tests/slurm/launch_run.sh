#!/usr/bin/env bash
# launch/run: how it maps each launcher's environment (Open MPI, Slurm, PMIx, torchrun) to a rank's
# threads and GPU and to empd's options, and real 2-rank jobs it starts itself, with mpirun and over
# TCP. The environment (set by ctest) gives COMM_NODE (tests/comm's rank program), WORK and REPO.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
run=$REPO/launch/run
t=$WORK/launch-run
rm -rf "$t" && mkdir -p "$t/bin" "$t/gpus" "$t/gpu1"
# A stand-in empd that shows what it was given, and nvidia-smis that list two GPUs and one.
cat >"$t/bin/empd" <<'EOF'
#!/bin/sh
echo "args: $*"
echo "env: OMP_NUM_THREADS=${OMP_NUM_THREADS-unset} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"
EOF
printf '#!/bin/sh\necho "GPU 0: Fake (UUID: GPU-0)"\necho "GPU 1: Fake (UUID: GPU-1)"\n' >"$t/gpus/nvidia-smi"
printf '#!/bin/sh\necho "GPU 0: Fake (UUID: GPU-0)"\n' >"$t/gpu1/nvidia-smi"
chmod +x "$t/bin/empd" "$t/gpus/nvidia-smi" "$t/gpu1/nvidia-smi"
empd=$t/bin/empd
cores=$(nproc)
half=$((cores / 2 > 0 ? cores / 2 : 1))
# Nothing of this machine's own launch may leak into the cases.
clean=(env -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_LOCAL_RANK -u OMPI_COMM_WORLD_LOCAL_SIZE
       -u PMIX_RANK -u PMI_RANK -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u SLURM_PROCID -u SLURM_STEP_ID
       -u SLURM_JOB_ID -u SLURM_CPUS_PER_TASK -u SLURM_CPUS_ON_NODE -u OMP_NUM_THREADS -u CUDA_VISIBLE_DEVICES
       -u MASTER_ADDR -u MASTER_PORT -u EMPD_RUN_GPUS PATH="$PATH")
nogpu=(PATH="$t/bin:/usr/bin:/bin")
gpu=(PATH="$t/gpus:$t/bin:/usr/bin:/bin")
# expect NAME WANT -- VAR=VALUE... launch/run ARGS: the output must contain every line of WANT.
expect() {
  local name=$1 want=$2 out
  shift 3
  out=$("${clean[@]}" "$@" 2>&1) || fail "$name: launch/run failed: $out"
  while IFS= read -r line; do
    grep -qxF -- "$line" <<<"$out" || fail "$name: no line '$line' in:
$out"
  done <<<"$want"
  echo "ok: $name"
}

expect "Open MPI rank, no GPU" "args: train --set train.threads=$half --config c.json
env: OMP_NUM_THREADS=$half CUDA_VISIBLE_DEVICES=unset" -- "${nogpu[@]}" \
  OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_LOCAL_RANK=1 OMPI_COMM_WORLD_LOCAL_SIZE=2 \
  "$run" -- "$empd" train --config c.json
expect "torchrun rank, two GPUs" "args: train --set train.threads=$half
env: OMP_NUM_THREADS=$half CUDA_VISIBLE_DEVICES=1" -- "${gpu[@]}" \
  RANK=3 WORLD_SIZE=4 LOCAL_RANK=1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 "$run" -- "$empd" train
expect "torchrun rank 2 of 2 local ranks wraps to GPU 0" "env: OMP_NUM_THREADS=$half CUDA_VISIBLE_DEVICES=0" -- "${gpu[@]}" \
  RANK=2 WORLD_SIZE=4 LOCAL_RANK=2 LOCAL_WORLD_SIZE=4 "$run" --threads "$half" -- "$empd" train
expect "srun task with --cpus-per-task 3, shard" "args: shard --threads 3 --data d --out s
env: OMP_NUM_THREADS=3 CUDA_VISIBLE_DEVICES=unset" -- "${nogpu[@]}" \
  SLURM_JOB_ID=7 SLURM_PROCID=5 SLURM_STEP_ID=0 SLURM_LOCALID=1 SLURM_NODEID=2 SLURM_STEP_TASKS_PER_NODE='2(x2),3' \
  SLURM_STEP_NUM_TASKS=7 SLURM_CPUS_PER_TASK=3 PMIX_RANK=5 "$run" -- "$empd" shard --data d --out s
expect "srun task: the job's CPUs on the node over its tasks there" "launch/run: rank 5 of 7 (local 1 of 3, srun (PMIx), $(hostname)): 1 thread(s), CUDA_VISIBLE_DEVICES=0,1: $empd train --set train.threads=1" -- \
  "${gpu[@]}" SLURM_JOB_ID=7 SLURM_PROCID=5 SLURM_STEP_ID=0 SLURM_LOCALID=1 SLURM_NODEID=2 SLURM_STEP_TASKS_PER_NODE='2(x2),3' \
  SLURM_STEP_NUM_TASKS=7 SLURM_CPUS_ON_NODE=3 PMIX_RANK=5 CUDA_VISIBLE_DEVICES=0,1 "$run" --dry-run -- "$empd" train
expect "srun without PMIx: rank 0's host for the TCP rendezvous" "launch/run: rank 1 of 2 (local 1 of 2, srun, $(hostname)): 1 thread(s), CUDA_VISIBLE_DEVICES=unset: /bin/true" -- \
  "${nogpu[@]}" SLURM_JOB_ID=7 SLURM_PROCID=1 SLURM_STEP_ID=0 SLURM_LOCALID=1 SLURM_NODEID=0 SLURM_STEP_TASKS_PER_NODE=2 \
  SLURM_STEP_NUM_TASKS=2 SLURM_CPUS_PER_TASK=1 MASTER_ADDR=node1 "$run" --dry-run -- /bin/true
expect "the user's thread settings win" "args: train --set=train.threads=5
env: OMP_NUM_THREADS=5 CUDA_VISIBLE_DEVICES=unset
args: shard --threads 4 --data d
env: OMP_NUM_THREADS=4 CUDA_VISIBLE_DEVICES=unset
args: shard verify s
env: OMP_NUM_THREADS=6 CUDA_VISIBLE_DEVICES=unset
args: train
env: OMP_NUM_THREADS=unset CUDA_VISIBLE_DEVICES=unset" -- "${nogpu[@]}" bash -c "
  export RANK=0 WORLD_SIZE=1
  '$run' -- '$empd' train --set=train.threads=5
  '$run' -- '$empd' shard --threads 4 --data d
  OMP_NUM_THREADS=6 '$run' -- '$empd' shard verify s
  '$run' --threads keep -- '$empd' train"
expect "a GPU the user chose stays" "env: OMP_NUM_THREADS=$half CUDA_VISIBLE_DEVICES=3" -- "${gpu[@]}" \
  OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=2 \
  CUDA_VISIBLE_DEVICES=3 "$run" -- "$empd" train
expect "one rank alone gets every core and the one GPU" "args: train --set train.threads=$cores
env: OMP_NUM_THREADS=$cores CUDA_VISIBLE_DEVICES=0" -- PATH="$t/gpu1:$t/bin:/usr/bin:/bin" "$run" -- "$empd" train
expect "outside a launch: one rank per GPU under mpirun, no core binding" \
  "mpirun -np 2 --bind-to none $run --threads auto --gpus auto --dry-run -- $empd train " -- "${gpu[@]}" \
  "$run" --dry-run -- "$empd" train
expect "more ranks than cores: --oversubscribe" \
  "mpirun -np $((cores + 1)) --bind-to none --oversubscribe $run --threads auto --gpus auto --dry-run -- $empd train " -- \
  "${nogpu[@]}" "$run" -n $((cores + 1)) --dry-run -- "$empd" train
expect "outside a launch without mpirun: torchrun-style variables per rank" \
  "RANK=2 WORLD_SIZE=3 LOCAL_RANK=2 LOCAL_WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 $run --threads auto --gpus auto --dry-run -- $empd train " -- \
  "${nogpu[@]}" "$run" -n 3 --launcher tcp --port 29999 --dry-run -- "$empd" train
expect "an empd subcommand by name runs \$EMPD" "args: fuse --out f a b" -- "${nogpu[@]}" EMPD="$empd" "$run" -n 1 fuse --out f a b

# Refusals, each with one line.
refuse() {
  local name=$1 want=$2 out
  shift 2
  if out=$("${clean[@]}" "$@" 2>&1); then fail "$name: accepted"; fi
  grep -qF -- "$want" <<<"$out" || fail "$name: no line '$want' in: $out"
  echo "ok: refuses $name"
}
refuse "-n against the launcher's ranks" "-n 3, but this process is rank 0 of 2 under mpirun" \
  OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 "$run" -n 3 -- "$empd" train
refuse "a bad -n" "-n must be a positive integer, got 'two'" "$run" -n two -- "$empd"
refuse "an unknown option" "unknown option '--ranks-per-gpu'" "$run" --ranks-per-gpu 2 -- "$empd"
refuse "a missing command" "no-such-program: no such command" "$run" -- no-such-program
refuse "a missing empd" "no empd at $t/none" EMPD="$t/none" "$run" train

# Real jobs of two ranks started by launch/run: with mpirun and over TCP, each rank set up by
# launch/run again; and a rank that dies ends the job with its status.
mpi_out=$("$run" -n 2 -v -- "$COMM_NODE" run 2>&1) || fail "mpirun job failed: $mpi_out"
for r in 0 1; do
  grep -q "^comm_node: rank $r of 2 ok (mpi)$" <<<"$mpi_out" || fail "mpirun job: rank $r missing: $mpi_out"
  grep -q "^launch/run: rank $r of 2 (local $r of 2, mpirun, .*): $half thread(s)" <<<"$mpi_out" ||
    fail "mpirun job: no mapping line for rank $r: $mpi_out"
done
echo "ok: mpirun job of 2 ranks"
tcp_out=$("$run" -n 2 --launcher tcp -v -- "$COMM_NODE" run 2>&1) || fail "TCP job failed: $tcp_out"
for r in 0 1; do
  grep -q "^comm_node: rank $r of 2 ok (tcp)$" <<<"$tcp_out" || fail "TCP job: rank $r missing: $tcp_out"
done
echo "ok: TCP job of 2 ranks"
start=$(date +%s)
if out=$("$run" -n 2 --launcher tcp -- "$COMM_NODE" run --die 1 2>&1); then fail "a job whose rank died succeeded"; fi
grep -q "launch/run: rank [01] exited with status" <<<"$out" || fail "no line on the failed rank: $out"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the job took too long to end after a rank died"
echo "ok: a dead rank ends the TCP job"
