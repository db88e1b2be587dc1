#!/usr/bin/env bash
# End-to-end tests of the training recipe and its fault tolerance: recipe.sh NAME. The environment (set
# by ctest) gives EMPD, EMPD_PYTHON, MPIEXEC, WORK (a scratch folder with the text and media shards of
# the trainer_ and fusion_ fixtures) and REPO.
set -euo pipefail
name=$1
here=$(cd "$(dirname "$0")" && pwd)
mpi() { "$MPIEXEC" -np "$1" --oversubscribe "${@:2}"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
t=$WORK/recipe-$name
rm -rf "$t" && mkdir -p "$t"
losses() { grep '"event":"train"' "$1/metrics.jsonl" | sed -E 's/.*"step":([0-9]+),.*"loss":([^,]+),.*/\1 \2/'; }
last_step() { grep -o '"event":"train","step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0; }
# Fusion runs: KIND RANKS OUT STEPS [ARGS...]
fusion() {
  local kind=$1 ranks=$2 out=$3 steps=$4
  mpi "$ranks" "$EMPD" train --config "$REPO/configs/tiny-$kind.json" --shards "$WORK/media-shards" --out "$out" \
    --max-steps "$steps" --set train.threads=1 --set train.eval_every=0 --quiet "${@:5}"
}
loud=(--config "$REPO/configs/tiny-text.json" --shards "$WORK/shards" --set train.threads=1)
text=("${loud[@]}" --quiet)
# Waits (up to 120 s) until RUNDIR's metrics.jsonl reaches step N.
wait_step() {
  for _ in $(seq 1200); do
    [ "$(last_step "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "$1 never reached step $2"
}
# The pid of rank R of an mpirun job (the empd child of mpirun with OMPI_COMM_WORLD_RANK=R).
rank_pid() {
  local launcher=$1 rank=$2 p
  for p in $(pgrep -P "$launcher"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank"; then echo "$p"; return; fi
  done
}

case $name in
overlap)
  # Gradients all-reduced while backward runs equal those all-reduced after it, bit for bit, and both
  # equal one rank with the doubled batch (to 1e-5). Small buckets so each model has several.
  for kind in audio video; do
    same=(--set model.dropout=0 --set model.audio.dropout=0 --set model.video.dropout=0 --set train.bucket_mb=0.05
          --set train.first_bucket_mb=0.01)
    fusion "$kind" 2 "$t/$kind-on" 6 "${same[@]}" --set train.batch_size=2 --set train.overlap=1
    fusion "$kind" 2 "$t/$kind-off" 6 "${same[@]}" --set train.batch_size=2 --set train.overlap=0
    fusion "$kind" 1 "$t/$kind-one" 6 "${same[@]}" --set train.batch_size=4
    "$EMPD_PYTHON" "$here/compare.py" "$t/$kind-on/model.safetensors" "$t/$kind-off/model.safetensors" exact
    "$EMPD_PYTHON" "$here/compare.py" "$t/$kind-on/model.safetensors" "$t/$kind-one/model.safetensors" rel 1e-5
    diff <(losses "$t/$kind-on") <(losses "$t/$kind-off") || fail "$kind: losses differ with overlap on and off"
    grep -q '"comm_s":' "$t/$kind-on/metrics.jsonl" || fail "no communication times in metrics.jsonl"
  done
  ;;
accum)
  # Two micro-batches of 4 per step are one batch of 8 (no dropout), on one rank and across two.
  same=(--set model.dropout=0 --max-steps 12 --set train.eval_every=0)
  "$EMPD" train "${text[@]}" "${same[@]}" --out "$t/accum" --set train.batch_size=4 --set train.grad_accum=2
  "$EMPD" train "${text[@]}" "${same[@]}" --out "$t/batch" --set train.batch_size=8
  mpi 2 "$EMPD" train "${text[@]}" "${same[@]}" --out "$t/two" --set train.batch_size=2 --set train.grad_accum=2
  "$EMPD_PYTHON" "$here/compare.py" "$t/accum/model.safetensors" "$t/batch/model.safetensors" rel 1e-5
  "$EMPD_PYTHON" "$here/compare.py" "$t/two/model.safetensors" "$t/batch/model.safetensors" rel 1e-5
  paste <(losses "$t/accum") <(losses "$t/batch") | awk '{d=$2-$4; if (d<0) d=-d; if (d>m) m=d} END {
    printf "accumulated vs whole batch: max loss difference %.3g over %d steps\n", m, NR; exit !(m<=1e-5)}'
  ;;
sigterm)
  # The seed's recipe (focal loss, clipping, accumulation, encoder learning-rate group) with dropout:
  # SIGTERM to one rank mid-run stops every rank with a checkpoint and exit 0; --resume auto then ends
  # bit-identical to the uninterrupted run, across epoch boundaries (9 micro-batches per epoch).
  for kind in audio video; do
    recipe=(--set train.batch_size=4 --set train.grad_accum=2 --set train.loss=focal --set train.clip_norm=0.5
            --set train.encoder_lr_scale=0.1 --set train.checkpoint_every=0)
    fusion "$kind" 2 "$t/$kind-full" 12 "${recipe[@]}"
    "$MPIEXEC" -np 2 --oversubscribe "$EMPD" train --config "$REPO/configs/tiny-$kind.json" \
      --shards "$WORK/media-shards" --out "$t/$kind-cut" --max-steps 12 --set train.threads=1 \
      --set train.eval_every=0 "${recipe[@]}" >"$t/$kind-cut.log" 2>&1 &
    launcher=$!
    wait_step "$t/$kind-cut" 3
    kill -TERM "$(rank_pid "$launcher" 1)"
    wait "$launcher" || fail "$kind: the stopped run exited $?: $(cat "$t/$kind-cut.log")"
    stopped=$(last_step "$t/$kind-cut")
    grep -q "stopped at step $stopped on a signal" "$t/$kind-cut.log" || fail "$kind: no stop line: $(cat "$t/$kind-cut.log")"
    [ "$stopped" -lt 12 ] || fail "$kind: the signal came too late to test anything (step $stopped)"
    [ -e "$t/$kind-cut/checkpoints/step-$(printf %08d "$stopped")/COMPLETE" ] || fail "$kind: no checkpoint at step $stopped"
    [ ! -e "$t/$kind-cut/model.safetensors" ] || fail "$kind: a stopped run exported final weights"
    fusion "$kind" 2 "$t/$kind-cut" 12 "${recipe[@]}" --resume auto
    "$EMPD_PYTHON" "$here/compare.py" "$t/$kind-full/model.safetensors" "$t/$kind-cut/model.safetensors" exact
    diff <(losses "$t/$kind-full") <(losses "$t/$kind-cut") || fail "$kind: losses differ after the resume"
    echo "$kind: stopped by SIGTERM at step $stopped of 12, resumed: weights and losses bit-identical"
  done
  ;;
kill9)
  # kill -9 at random moments of a run that checkpoints every step: each time, --resume auto continues
  # from the newest complete checkpoint (every one of which is whole: sizes and CRCs as state.json
  # says), never from a torn one.
  trials=20 step=0
  for trial in $(seq $trials); do
    "$EMPD" train "${text[@]}" --out "$t/run" --max-steps 100000 --set train.checkpoint_every=1 --set train.keep_last=2 \
      --set train.eval_every=0 --set model.dropout=0 --resume auto >"$t/log" 2>&1 &
    pid=$!
    sleep "$("$EMPD_PYTHON" -c "import random; random.seed($trial); print(0.5 + random.random() * 2)")"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    newest=
    for d in "$t/run/checkpoints"/step-*[0-9]; do
      if [ -e "$d/COMPLETE" ]; then newest=$d; fi
    done
    "$EMPD_PYTHON" - "$t/run/checkpoints" <<'PY'
import json, os, sys, zlib
root = sys.argv[1]
for d in sorted(os.listdir(root) if os.path.isdir(root) else []):
    path = os.path.join(root, d)
    if not os.path.exists(os.path.join(path, "COMPLETE")):
        continue
    st = json.load(open(os.path.join(path, "state.json")))
    for f, want in st["files"].items():
        data = open(os.path.join(path, f), "rb").read()
        crc = "%08x" % (zlib.crc32(data) & 0xffffffff)
        assert len(data) == want["bytes"] and crc == want["crc32"], (path, f, len(data), crc, want)
    assert st["step"] == int(d[5:]), (d, st["step"])
PY
    [ -n "$newest" ] || continue
    got=$((10#${newest##*step-}))
    "$EMPD" train "${loud[@]}" --out "$t/run" --max-steps $((got + 1)) --set train.checkpoint_every=1 \
      --set train.keep_last=2 --set train.eval_every=0 --set model.dropout=0 --resume auto >"$t/log2" 2>&1 ||
      fail "trial $trial: resume after kill -9 failed: $(cat "$t/log2")"
    grep -q "continuing from $newest (step $got" "$t/log2" || fail "trial $trial: not resumed from $newest: $(cat "$t/log2")"
    rm -f "$t/run/model.safetensors"
    rm -rf "$t/run/hf"
    step=$got
  done
  [ "$step" -gt 0 ] || fail "no trial got as far as a checkpoint"
  echo "kill -9: $trials trials, each resumed from its newest complete checkpoint (the last at step $step)"
  ;;
kill_rank)
  # A rank killed with -9: the other ends within 60 s, non-zero. A rank that hangs (stopped) instead:
  # the watchdog ends the job within train.comm_timeout.
  for how in KILL STOP; do
    start=$(date +%s)
    "$MPIEXEC" -np 2 --oversubscribe "$EMPD" train "${text[@]}" --out "$t/$how" --max-steps 100000 \
      --set train.eval_every=0 --set train.checkpoint_every=0 --set train.comm_timeout=10 >"$t/$how.log" 2>&1 &
    launcher=$!
    wait_step "$t/$how" 2
    victim=$(rank_pid "$launcher" 1)
    kill -"$how" "$victim"
    killed=$(date +%s)
    if wait "$launcher"; then fail "$how: the job exited 0 after its rank 1 was sent SIG$how"; fi
    took=$(($(date +%s) - killed))
    kill -KILL "$victim" 2>/dev/null || true
    [ "$took" -le 60 ] || fail "$how: the job took $took s to end"
    echo "SIG$how to rank 1: the job ended non-zero after $took s"
    [ "$how" = KILL ] || grep -q "has not completed after" "$t/$how.log" || fail "no watchdog line: $(cat "$t/$how.log")"
  done
  ;;
tcp)
  # Without MPI: two plain processes meeting over the TCP rendezvous (torchrun's environment) train as
  # two MPI ranks do; then one of them killed ends the other at once.
  port() { "$EMPD_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  same=(--max-steps 8 --set train.eval_every=0 --set train.batch_size=4)
  mpi 2 "$EMPD" train "${text[@]}" "${same[@]}" --out "$t/mpi"
  p=$(port)
  for r in 0 1; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$p WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r \
      "$EMPD" train "${text[@]}" "${same[@]}" --out "$t/tcp" >"$t/tcp$r.log" 2>&1 &
  done
  wait %1 && wait %2 || fail "the TCP job failed: $(cat "$t/tcp0.log" "$t/tcp1.log")"
  "$EMPD_PYTHON" "$here/compare.py" "$t/mpi/model.safetensors" "$t/tcp/model.safetensors" rel 1e-5
  p=$(port)
  for r in 0 1; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$p WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r \
      "$EMPD" train "${text[@]}" --out "$t/kill" --max-steps 100000 --set train.eval_every=0 \
      --set train.checkpoint_every=0 >"$t/kill$r.log" 2>&1 &
    pids[$r]=$!
  done
  wait_step "$t/kill" 2
  kill -9 "${pids[1]}"
  killed=$(date +%s)
  if wait "${pids[0]}"; then fail "rank 0 exited 0 after rank 1 was killed"; fi
  took=$(($(date +%s) - killed))
  [ "$took" -le 60 ] || fail "rank 0 took $took s to end"
  grep -q "rank 1" "$t/kill0.log" || fail "rank 0's line does not name rank 1: $(cat "$t/kill0.log")"
  echo "TCP: 2 processes train as 2 MPI ranks do; rank 1 killed, rank 0 ended after $took s: $(grep -m1 'rank 1' "$t/kill0.log")"
  ;;
predictions)
  # The best checkpoint's val and test predictions, gathered from 2 ranks: every sample once, in the
  # split's order, and the metrics.jsonl figures equal scikit-learn's on them.
  mpi 2 "$EMPD" train "${text[@]}" --out "$t/run" --max-steps 20 --set train.eval_every=10 --set train.batch_size=8
  "$EMPD_PYTHON" - "$t/run" "$WORK/shards/manifest.json" <<'PY'
import csv, json, math, sys
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, accuracy_score
run, man = sys.argv[1], json.load(open(sys.argv[2]))
finals = {e["split"]: e for e in map(json.loads, open(run + "/metrics.jsonl")) if e["event"] == "final"}
evals = [e for e in map(json.loads, open(run + "/metrics.jsonl")) if e["event"] == "eval"]
best = max(evals, key=lambda e: e["accuracy"])  # the first of equals, as the trainer keeps it
for split in ("val", "test"):
    rows = list(csv.reader(open(f"{run}/predictions/{split}.csv")))
    head, rows = rows[0], rows[1:]
    k = len(head) - 3
    assert head[:3] == ["id", "label", "pred"] and k == 7, head
    assert [r[0] for r in rows] == man["splits"][split]["conversation_ids"], f"{split}: ids not the split's, in order"
    y = np.array([int(r[1]) for r in rows]); pred = np.array([int(r[2]) for r in rows])
    p = np.array([[float(v) for v in r[3:]] for r in rows])
    assert np.all(np.abs(p.sum(1) - 1) < 1e-5), "probabilities do not sum to 1"
    assert np.all(p[np.arange(len(p)), pred] >= p.max(1) - 1e-6), "pred is not the most probable class"
    f = finals[split]
    assert f["step"] == (best["step"] if split == "val" else f["step"]), (f["step"], best["step"])
    assert math.isclose(f["accuracy"], accuracy_score(y, pred), abs_tol=1e-12)
    for avg in ("macro", "weighted"):
        want = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)[:3]
        got = [f[f"{avg}_precision"], f[f"{avg}_recall"], f[f"{avg}_f1"]]
        assert np.allclose(got, want, atol=1e-12), (split, avg, got, want)
    pc = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    for c, row in enumerate(f["per_class"]):
        assert np.allclose([row["precision"], row["recall"], row["f1"]], [pc[0][c], pc[1][c], pc[2][c]], atol=1e-12)
        assert row["support"] == pc[3][c] and row["name"] == head[3 + c][2:]
    assert f["confusion"] == confusion_matrix(y, pred, labels=list(range(k))).tolist(), "confusion matrix"
    loss = float(np.mean(-np.log(p[np.arange(len(p)), y])))
    assert abs(loss - f["loss"]) <= 1e-5 * max(1, loss), (loss, f["loss"])
    print(f"{split}: {len(rows)} samples, accuracy {f['accuracy']:.4f}, metrics and confusion equal scikit-learn's")
assert finals["val"]["accuracy"] == best["accuracy"], "the final val record is not the best validation's"
PY
  ;;
early_stop)
  # lr 0: the validation loss never improves, so patience 2 stops the run at the third validation; the
  # best checkpoint (the first validation's) is kept beside the last one.
  "$EMPD" train "${text[@]}" --out "$t/run" --max-steps 100 --set train.lr=0 --set train.eval_every=2 \
    --set train.patience=2 --set train.checkpoint_every=0 --set train.keep_last=1
  grep -q '"event":"eval","step":6' "$t/run/metrics.jsonl" || fail "no validation at step 6"
  ! grep -q '"event":"eval","step":8' "$t/run/metrics.jsonl" || fail "the run went on past its patience"
  [ -e "$t/run/model.safetensors" ] || fail "an early-stopped run exported no weights"
  ls "$t/run/checkpoints" >"$t/kept"
  [ "$(cat "$t/kept" | tr '\n' ' ')" = "step-00000002 step-00000006 " ] || fail "kept checkpoints: $(cat "$t/kept")"
  # train.epochs ends a run before train.max_steps: one epoch of 2 micro-batches per step.
  per_epoch=$("$EMPD_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["splits"]["train"]["count"] // 8)' \
    "$WORK/shards/manifest.json")
  "$EMPD" train "${text[@]}" --out "$t/epochs" --max-steps 100000 --set train.epochs=1 --set train.grad_accum=2 \
    --set train.eval_every=0
  [ "$(last_step "$t/epochs")" -eq $((per_epoch / 2)) ] || fail "train.epochs=1 ended at step $(last_step "$t/epochs")"
  ;;
*) fail "unknown test $name" ;;
esac
echo "ok: $name"
