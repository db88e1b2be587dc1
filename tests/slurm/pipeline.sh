#!/usr/bin/env bash
# slurm/pipeline on a real single-node Slurm cluster (munged, slurmctld, slurmd on localhost, see
# cluster.sh) with a small generated corpus: shard (2 ranks) -> train-audio, train-video (2 ranks
# each, srun --mpi=pmix) -> fuse. Mid-run, the audio job is requeued from outside (scontrol requeue:
# SIGTERM, as on preemption) and the video job gets SIGUSR1 (what --signal=USR1@120 sends before the
# time limit) and requeues itself; both must resume from their checkpoints and end bit-identical
# (weights, predictions, "final" metrics, every step's loss) to uninterrupted runs of the same
# configuration started by launch/run with mpirun. Also srun with and without PMIx through
# launch/run. The environment (set by ctest) gives EMPD, EMPD_PYTHON, COMM_NODE, WORK and REPO.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
source "$here/cluster.sh"
t=$WORK/pipeline
rm -rf "$t" && mkdir -p "$t"
cluster_start "$WORK/cluster"

# Job steps through launch/run: Open MPI over PMIx, and empd's TCP backend under srun --mpi=none.
for mpi in pmix none; do
  out=$(srun --mpi=$mpi --ntasks=2 --cpus-per-task=1 "$REPO/launch/run" -v -- "$COMM_NODE" run 2>&1) ||
    fail "srun --mpi=$mpi: $out"
  backend=$([ $mpi = pmix ] && echo mpi || echo tcp)
  for r in 0 1; do
    grep -q "^comm_node: rank $r of 2 ok ($backend)$" <<<"$out" || fail "srun --mpi=$mpi: no rank $r on $backend: $out"
    grep -q "^launch/run: rank $r of 2 (local $r of 2, srun.*): 1 thread(s)" <<<"$out" ||
      fail "srun --mpi=$mpi: no mapping line for rank $r: $out"
  done
  echo "ok: srun --mpi=$mpi: 2 ranks through launch/run on the $backend backend"
done

"$EMPD" synth --out "$t/corpus" --conversations 60 --seed 5 >/dev/null
steps=40
common=("--max-steps=$steps" --set=train.batch_size=4 --set=train.eval_every=0 --set=train.checkpoint_every=3
        --set=train.log_every=1)
targs=()
for a in "${common[@]}"; do targs+=(--train-arg="$a"); done
"$REPO/slurm/pipeline" --data "$t/corpus" --shards "$t/shards" --runs "$t/runs" --empd "$EMPD" \
  --audio-config "$REPO/configs/tiny-audio.json" --video-config "$REPO/configs/tiny-video.json" \
  --shard-tasks 2 --shard-cpus 1 --tasks-per-node 2 --cpus-per-task 1 --shard-arg=--quiet "${targs[@]}" >"$t/ids"
cat "$t/ids"
job() { awk -v n="$1" '$1 == n { print $2 }' "$t/ids"; }
shard=$(job shard) audio=$(job train-audio) video=$(job train-video) fuse=$(job fuse)
[ -n "$shard" ] && [ -n "$audio" ] && [ -n "$video" ] && [ -n "$fuse" ] || fail "slurm/pipeline printed: $(cat "$t/ids")"
log() { echo "$t/runs/logs/empd-$1-$2.out"; }

field() { scontrol show job "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | head -n1 | cut -d= -f2; }
last_step() { grep -o '"event":"train","step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -n1 | grep -o '[0-9]*$' || echo 0; }
# Waits (up to $3 s) until run folder $1 of job $4 (log $5) has logged step $2.
wait_step() {
  local i state
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(last_step "$1")" -lt "$2" ] || return 0
    if ((i % 10 == 0)); then
      state=$(field "$4" JobState)
      [[ $state =~ ^(PENDING|CONFIGURING|RUNNING)$ ]] || fail "job $4 is $state before step $2; its log: $(cat "$5" 2>/dev/null)"
    fi
    sleep 0.1
  done
  fail "$1 never reached step $2; the job's log: $(cat "$5" 2>/dev/null)"
}
# Waits (up to 60 s) until job $1 is pending again after a requeue, then lets it start at once
# (a requeued job would otherwise wait ~2 minutes: its BeginTime).
restart_now() {
  local i
  for ((i = 0; i < 600; i++)); do
    [ "$(field "$1" JobState)" = PENDING ] && [ "$(field "$1" Restarts)" -ge 1 ] && break
    sleep 0.1
  done
  [ "$(field "$1" JobState)" = PENDING ] || fail "job $1 is $(field "$1" JobState) after its requeue, not PENDING"
  scontrol update JobId="$1" StartTime=now
}

# Preemption-like requeue of the audio job at step 4 or later (of 40).
wait_step "$t/runs/audio" 4 240 "$audio" "$(log train-audio "$audio")"
scontrol requeue "$audio"
echo "requeued job $audio at step $(last_step "$t/runs/audio")"
restart_now "$audio"
# SIGUSR1 to the video job's ranks (not its batch shell) at step 4 or later: it checkpoints and
# requeues itself.
wait_step "$t/runs/video" 4 240 "$video" "$(log train-video "$video")"
scancel --signal=USR1 "$video"
echo "sent SIGUSR1 to job $video at step $(last_step "$t/runs/video")"
restart_now "$video"

for ((i = 0; i < 2400; i++)); do
  [ -n "$(squeue -h -j "$shard,$audio,$video,$fuse" 2>/dev/null)" ] || break
  sleep 0.1
done
[ -z "$(squeue -h -j "$shard,$audio,$video,$fuse" 2>/dev/null)" ] || fail "the jobs did not finish in 4 minutes: $(squeue)"
for j in shard:$shard train-audio:$audio train-video:$video fuse:$fuse; do
  name=${j%%:*} id=${j#*:}
  state=$(field "$id" JobState) code=$(field "$id" ExitCode)
  [ "$state" = COMPLETED ] && [ "$code" = 0:0 ] ||
    fail "$name job $id ended $state (exit $code); its log: $(tail -n 20 "$(log "$name" "$id")")"
done
for j in $audio $video; do
  [ "$(field "$j" Restarts)" = 1 ] || fail "job $j restarted $(field "$j" Restarts) times, not once"
done
echo "ok: the four jobs completed; each training job ran twice"

# What the logs (appended across the restarts) say: a stop on a signal with a checkpoint, and a
# resume from exactly that checkpoint, with the threads launch/run gave each rank.
for m in audio video; do
  id=$([ $m = audio ] && echo "$audio" || echo "$video")
  l=$(log train-$m "$id")
  stopped=$(grep -o 'stopped at step [0-9]* on a signal' "$l" | grep -o '[0-9]\+' | head -n1) ||
    fail "$m: no stop on a signal in $l: $(cat "$l")"
  [ "$stopped" -ge 4 ] && [ "$stopped" -lt $steps ] || fail "$m: stopped at step $stopped"
  grep -q "resume: continuing from $t/runs/$m/checkpoints/step-$(printf %08d "$stopped") (step $stopped," "$l" ||
    fail "$m: no resume from the checkpoint of step $stopped in $l: $(cat "$l")"
  [ "$(grep -c "^empd-train-$m: job $id" "$l")" = 2 ] || fail "$m: the log does not hold both attempts"
  grep -q "2 ranks x batch 4 .* 1 thread per rank" "$l" || fail "$m: not 2 ranks of 1 thread: $(grep '^train:' "$l")"
  echo "ok: $m stopped at step $stopped with a checkpoint and resumed from it"
done
grep -q "requeueing job $video" "$(log train-video "$video")" || fail "video: the job did not requeue itself"
grep -q "DUE TO JOB REQUEUE" "$(log train-audio "$audio")" || fail "audio: no requeue in its log"

# The same runs uninterrupted, started by launch/run with mpirun (2 ranks, 1 thread each), on the
# shards the Slurm job wrote: everything must match bit for bit.
final() { grep '"event":"final"' "$1/metrics.jsonl"; }
losses() { grep '"event":"train"' "$1/metrics.jsonl" | sed -E 's/.*"step":([0-9]+),.*"loss":([^,]+),.*/\1 \2/'; }
for m in audio video; do
  EMPD=$EMPD "$REPO/launch/run" -n 2 --threads 1 train --config "$REPO/configs/tiny-$m.json" --shards "$t/shards" \
    --out "$t/ref/$m" "${common[@]}" --quiet
  a=$t/runs/$m b=$t/ref/$m
  "$EMPD_PYTHON" "$REPO/tests/trainer/compare.py" "$b/model.safetensors" "$a/model.safetensors" exact
  for f in predictions/val.csv predictions/test.csv; do
    cmp -s "$a/$f" "$b/$f" || fail "$m: $f differs from the uninterrupted run's"
  done
  [ "$(final "$a" | wc -l)" = 2 ] || fail "$m: no final val and test records in $a/metrics.jsonl"
  diff <(final "$a") <(final "$b") >/dev/null || fail "$m: the final metrics differ: $(diff <(final "$a") <(final "$b"))"
  [ "$(losses "$a" | wc -l)" = $steps ] || fail "$m: $(losses "$a" | wc -l) train records after the resume, not $steps"
  diff <(losses "$a") <(losses "$b") >/dev/null || fail "$m: the losses differ from the uninterrupted run's"
  echo "ok: $m after the requeue equals the uninterrupted run (weights, predictions, final metrics, $steps losses)"
done
[ -s "$t/runs/fusion/fusion.json" ] && [ -s "$t/runs/fusion/predictions/test.csv" ] ||
  fail "the fuse job wrote no fusion: $(cat "$(log fuse "$fuse")")"
echo "ok: fusion of both runs in $t/runs/fusion"
