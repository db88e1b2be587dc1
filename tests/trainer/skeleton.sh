#!/usr/bin/env bash
# One end-to-end test of the skeleton per call: skeleton.sh NAME. The environment (set by ctest)
# gives EMPD (the binary), EMPD_PYTHON, MPIEXEC, WORK (a scratch folder) and REPO.
set -euo pipefail
name=$1
here=$(cd "$(dirname "$0")" && pwd)
cfg=$REPO/configs/tiny-text.json
mpi() { "$MPIEXEC" -np "$1" --oversubscribe "${@:2}"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
shards=$WORK/shards
t=$WORK/$name
rm -rf "$t" && mkdir -p "$t"
loud=(--config "$cfg" --shards "$shards" --set train.threads=1)
common=("${loud[@]}" --quiet)

# Train losses of a run's metrics.jsonl, one "step loss" per line, bit-exact text.
losses() { grep '"event":"train"' "$1/metrics.jsonl" | sed -E 's/.*"step":([0-9]+),.*"loss":([^,]+),.*/\1 \2/'; }

case $name in
fixture)
  rm -rf "$WORK/corpus" "$shards"
  # The text model's tests need no media: they are sharded and tested in tests/sharder.
  "$EMPD" synth --out "$WORK/corpus" --conversations 600 --seed 11 --media none
  "$EMPD" shard --data "$WORK/corpus" --out "$shards" --media none
  ;;
cli)
  "$EMPD" --help >"$t/help"
  grep -q 'train' "$t/help" || fail "empd --help does not list train"
  for c in synth shard inspect train tokenize; do
    "$EMPD" $c --help >"$t/help" || fail "empd $c --help failed"
    grep -q -- '--' "$t/help" || fail "empd $c --help lists no option"
  done
  "$EMPD" train --help >"$t/help"
  grep -q 'train.lr' "$t/help" || fail "empd train --help does not list the config fields"
  if "$EMPD" train --set train.lrr=1 --shards /nonexistent 2>"$t/err"; then fail "unknown field accepted"; fi
  grep -q "unknown field 'train.lrr'" "$t/err" || fail "no clear line for an unknown field: $(cat "$t/err")"
  [ "$(wc -l <"$t/err")" -eq 1 ] || fail "more than one line for one error: $(cat "$t/err")"
  if "$EMPD" train --set train.lr=-1 2>"$t/err"; then fail "negative lr accepted"; fi
  grep -q "train.lr = -1 is outside" "$t/err" || fail "no clear line for a bad value: $(cat "$t/err")"
  # The same error on every rank: one line, from rank 0, and no MPI_Abort (mpirun's own note on
  # the exit status is not ours).
  if mpi 2 "$EMPD" train --set train.lr=-1 >"$t/out" 2>"$t/err"; then fail "negative lr accepted on 2 ranks"; fi
  [ "$(cat "$t/out" "$t/err" | grep -c '^empd')" -eq 1 ] || fail "2 ranks, one error, but: $(cat "$t/out" "$t/err")"
  if grep -q MPI_ABORT "$t/err"; then fail "an error every rank saw went through MPI_Abort"; fi
  grep -q "^empd train: config: train.lr = -1 is outside" "$t/err" || fail "2-rank error line: $(cat "$t/err")"
  # An error on one rank only (rank 1 is given a missing shard folder): that rank's line, once.
  if "$MPIEXEC" --oversubscribe -np 1 "$EMPD" train --shards "$WORK/shards" --out "$t/one" : \
       -np 1 "$EMPD" train --shards "$t/none" --out "$t/one" >"$t/out" 2>"$t/err"; then fail "rank 1's error ignored"; fi
  [ "$(cat "$t/out" "$t/err" | grep -c '^empd')" -eq 1 ] || fail "one rank's error: $(cat "$t/out" "$t/err")"
  grep -q "^empd train: rank 1: $t/none/manifest.json: cannot open" "$t/err" || fail "rank 1 line: $(cat "$t/err")"
  if grep -q MPI_ABORT "$t/err"; then fail "a failure all ranks agreed on went through MPI_Abort"; fi
  if "$EMPD" train --max-steps 3abc 2>"$t/err"; then fail "--max-steps 3abc accepted"; fi
  grep -q "train.max_steps must be a number, got 3abc" "$t/err" || fail "trailing garbage: $(cat "$t/err")"
  if "$EMPD" train --set train.device=cuda --shards "$shards" --out "$t/gpu" 2>"$t/err"; then
    [ "$("$EMPD_PYTHON" -c 'import torch; print(torch.cuda.is_available())')" = True ] || fail "trained on CUDA without one"
  else
    grep -q "train.device=cuda: libtorch sees no CUDA device" "$t/err" || fail "no clear line for a missing GPU: $(cat "$t/err")"
  fi
  if "$EMPD" train --bogus 2>"$t/err"; then fail "unknown option accepted"; fi
  [ "$(wc -l <"$t/err")" -eq 1 ] && grep -q "unknown option '--bogus'" "$t/err" || fail "unknown option: $(cat "$t/err")"
  if "$EMPD" train --shards "$t/none" 2>"$t/err"; then fail "missing shards accepted"; fi
  grep -q "$t/none" "$t/err" || fail "missing shards error does not name the folder: $(cat "$t/err")"
  echo '{"train": {"lr": 0.1,}}' >"$t/bad.json"
  if "$EMPD" train --config "$t/bad.json" 2>"$t/err"; then fail "malformed config accepted"; fi
  grep -q "bad.json: malformed JSON near line 1" "$t/err" || fail "malformed config line: $(cat "$t/err")"
  if "$EMPD" shard --data "$t/nowhere" --out "$t/s" 2>"$t/err"; then fail "shard of a missing folder succeeded"; fi
  grep -q "no train.json" "$t/err" || fail "shard error: $(cat "$t/err")"
  [ ! -e "$t/s/manifest.json" ] || fail "a manifest was written for a failed shard run"
  ;;
sharder)
  # The hand-written AvaMERG sample (its README lists the expected samples), sharded with the json
  # inside audio_v5_0/ as in the real download, read back by the independent Python reader.
  mkdir -p "$t/data/audio_v5_0"
  cp "$REPO/tests/dataset_text/data/train.json" "$t/data/audio_v5_0/"
  "$EMPD" shard --data "$t/data" --out "$t/shards" --labels 32 --media none >"$t/log"
  grep -q "train 1, val 2, test 0" "$t/log" || fail "unexpected split: $(cat "$t/log")"
  "$EMPD_PYTHON" "$REPO/tests/shard/read_shards.py" "$t/shards" "$t/records.json"
  printf '%s\n' "Hard work pays off. What will she study?" "I hid under my blanket until morning." |
    "$EMPD" tokenize --vocab "$REPO/third_party/bert-base-uncased/vocab.txt" >"$t/ids"
  "$EMPD_PYTHON" - "$t/records.json" "$t/shards/manifest.json" "$t/ids" <<'PY'
import json, sys
recs = {r["conversation_id"]: r for split in json.load(open(sys.argv[1]))["splits"].values() for r in split}
man = json.load(open(sys.argv[2]))
ids = [list(map(int, l.split())) for l in open(sys.argv[3])]
expected = {"00042": (0, "proud", 4), "00107": (3, "terrified", 4), "01118": (2, "furious", 2)}
names32 = sorted(["anticipating", "caring", "confident", "content", "excited", "faithful", "grateful", "hopeful",
                  "joyful", "prepared", "proud", "trusting", "devastated", "impressed", "surprised", "angry",
                  "annoyed", "furious", "afraid", "apprehensive", "terrified", "anxious", "ashamed", "disappointed",
                  "embarrassed", "guilty", "lonely", "nostalgic", "sad", "sentimental", "disgusted", "jealous"])
assert sorted(recs) == sorted(expected), sorted(recs)
for cid, (l7, emo, n) in expected.items():
    r = recs[cid]
    assert (r["label7"], r["label32"], len(r["utts"])) == (l7, names32.index(emo), n), (cid, r["label7"], r["label32"])
    assert [u["role"] for u in r["utts"]] == [0, 1] * (n // 2 - 1) + [0, 2], (cid, r["utts"])
    assert [u["index"] for u in r["utts"]] == list(range(n)), cid
    assert all(u["presence"] == 0 for u in r["utts"]), "--media none stored media"
assert recs["00042"]["utts"][3]["tokens"] == ids[0], (recs["00042"]["utts"][3]["tokens"], ids[0])
assert recs["00107"]["utts"][2]["tokens"] == ids[1]
assert [u["avatar"] for u in recs["00042"]["utts"]] == [17, 63, 17, 63]
assert man["labels"] == 32
# Vocabularies come from the training split only: the one training conversation's topic has id 1,
# the validation ones' unseen topics map to 0 (unknown), and a missing topic is 0 too.
train_cid = man["splits"]["train"]["conversation_ids"][0]
topics = man["vocabularies"]["topic"]
assert len(topics) == (1 if train_cid == "01118" else 2), topics
for cid, r in recs.items():
    assert r["meta"][8] == (1 if cid == train_cid and cid != "01118" else 0), (cid, r["meta"])
assert man["tokenizer"]["vocab_size"] == 30522
print("sharder: 3 samples, labels, roles, avatars, tokens and train-only vocabularies as expected")
PY
  if "$EMPD" train --shards "$t/shards" --out "$t/run" --set model.vocab_size=2000 2>"$t/err"; then
    fail "a model smaller than the shards' vocabulary trained"
  fi
  grep -q "model.vocab_size (2000) is below the shards' tokenizer vocabulary (30522 tokens" "$t/err" ||
    fail "vocab size line: $(cat "$t/err")"
  ;;
replicas)
  mpi 2 "$EMPD" train "${common[@]}" --out "$t/run" --max-steps 30 --save-all-ranks
  "$EMPD_PYTHON" "$here/compare.py" "$t/run/model-rank0.safetensors" "$t/run/model-rank1.safetensors" exact
  # The loader's threads and depth change when batches are ready, never what they hold.
  "$EMPD" train "${common[@]}" --out "$t/l1" --max-steps 20 --set data.loader_threads=1 --set data.prefetch_depth=1
  "$EMPD" train "${common[@]}" --out "$t/l4" --max-steps 20 --set data.loader_threads=4 --set data.prefetch_depth=3
  "$EMPD_PYTHON" "$here/compare.py" "$t/l1/model.safetensors" "$t/l4/model.safetensors" exact
  ;;
two_vs_one)
  # Same samples per step: 2 ranks x 4 == 1 rank x 8 (no dropout, so the ranks' math is the only difference).
  set2=(--set model.dropout=0 --max-steps 20 --set train.eval_every=0)
  mpi 2 "$EMPD" train "${common[@]}" "${set2[@]}" --set train.batch_size=4 --out "$t/two"
  mpi 1 "$EMPD" train "${common[@]}" "${set2[@]}" --set train.batch_size=8 --out "$t/one"
  "$EMPD_PYTHON" "$here/compare.py" "$t/two/model.safetensors" "$t/one/model.safetensors" rel 1e-5
  paste <(losses "$t/two") <(losses "$t/one") | awk '{d=$2-$4; if (d<0) d=-d; r=d/($4>0?$4:-$4);
    if (r>m) m=r} END {printf "losses: max relative difference %.3g over %d steps\n", m, NR; exit !(m<=1e-5)}'
  ;;
resume)
  # 30 uninterrupted steps vs 15 + resume + 15: crosses the epoch boundary (22 steps per epoch), with dropout.
  mpi 2 "$EMPD" train "${common[@]}" --out "$t/full" --max-steps 30 --set train.checkpoint_every=0
  mpi 2 "$EMPD" train "${common[@]}" --out "$t/split" --max-steps 15 --set train.checkpoint_every=0
  [ -e "$t/split/checkpoints/step-00000015/COMPLETE" ] || fail "no complete checkpoint at step 15"
  mpi 2 "$EMPD" train "${loud[@]}" --out "$t/split" --max-steps 30 --set train.checkpoint_every=0 \
    --resume auto >"$t/log"
  grep -q "resume: continuing from $t/split/checkpoints/step-00000015 (step 15, epoch 0)" "$t/log" ||
    fail "the second run did not resume: $(cat "$t/log")"
  "$EMPD_PYTHON" "$here/compare.py" "$t/full/model.safetensors" "$t/split/model.safetensors" exact
  [ "$(losses "$t/full" | wc -l)" -eq 30 ] || fail "expected 30 train events"
  diff <(losses "$t/full") <(losses "$t/split") || fail "losses differ after resume"
  echo "resume: 30 steps == 15 + resume + 15, weights and $(losses "$t/full" | wc -l) losses bit-identical"
  ;;
checkpoints)
  # A crash after step 30's checkpoint began: step 30 lost, step 20 torn (no marker). --resume auto
  # goes back to step 10, rewinds metrics.jsonl, and must end bit-identical to an uninterrupted run.
  mpi 2 "$EMPD" train "${common[@]}" --out "$t/full" --max-steps 30 --set train.checkpoint_every=0
  mpi 2 "$EMPD" train "${common[@]}" --out "$t/crash" --max-steps 30 --set train.checkpoint_every=10
  rm -rf "$t/crash/checkpoints/step-00000030" "$t/crash/checkpoints/step-00000020/COMPLETE"
  printf '{"event":"train","step":31,"epo' >>"$t/crash/metrics.jsonl"   # a line the crash cut short
  cp -r "$t/crash" "$t/crash.orig"
  mpi 2 "$EMPD" train "${loud[@]}" --out "$t/crash" --max-steps 30 --set train.checkpoint_every=10 \
    --resume auto >"$t/log"
  grep -q "continuing from $t/crash/checkpoints/step-00000010 (step 10" "$t/log" || fail "no resume: $(cat "$t/log")"
  "$EMPD_PYTHON" -c 'import json, sys; [json.loads(l) for l in open(sys.argv[1])]' "$t/crash/metrics.jsonl" ||
    fail "metrics.jsonl is not one JSON object per line after the resume"
  [ "$(losses "$t/crash" | wc -l)" -eq 30 ] || fail "expected 30 train events after the resume"
  "$EMPD_PYTHON" "$here/compare.py" "$t/full/model.safetensors" "$t/crash/model.safetensors" exact
  diff <(losses "$t/full") <(losses "$t/crash") || fail "losses differ after resuming from step 10"
  # A fresh run into a folder holding a run is refused, and touches nothing.
  if "$EMPD" train "${common[@]}" --out "$t/crash.orig" --max-steps 5 2>"$t/err"; then fail "a second run mixed into a run folder"; fi
  grep -q "already holds a run" "$t/err" || fail "no clear line: $(cat "$t/err")"
  # Resuming an older checkpoint while a newer one exists would overwrite it: refused.
  if "$EMPD" train "${common[@]}" --out "$t/crash" --max-steps 40 --resume "$t/crash/checkpoints/step-00000020" 2>"$t/err"; then
    fail "resumed behind a newer checkpoint"
  fi
  grep -q "newer checkpoint (step 30)" "$t/err" || fail "no clear line: $(cat "$t/err")"
  # A checkpoint of another run continues only into a folder without a run.
  if "$EMPD" train "${common[@]}" --out "$t/full" --max-steps 40 --resume "$t/crash/checkpoints/step-00000030" 2>"$t/err"; then
    fail "a checkpoint of another run continued into a run folder"
  fi
  grep -q "$t/full already holds a run" "$t/err" || fail "no clear line: $(cat "$t/err")"
  if "$EMPD" train "${common[@]}" --out "$t/crash" --resume "$t/nowhere" 2>"$t/err"; then fail "resumed from nothing"; fi
  grep -q "resume: $t/nowhere: No such file" "$t/err" || fail "no clear line: $(cat "$t/err")"
  # Another world size continues the same epoch (one rank, twice the batch, same global batch).
  "$EMPD" train "${common[@]}" --out "$t/crash" --max-steps 35 --set train.batch_size=16 --resume auto >"$t/log" 2>&1 ||
    fail "resume on 1 rank failed: $(cat "$t/log")"
  [ -e "$t/crash/checkpoints/step-00000035/COMPLETE" ] || fail "no checkpoint after resuming on another world size"
  # Other shards are refused, even with as many training samples (another split of the same corpus).
  "$EMPD" shard --data "$WORK/corpus" --out "$t/shards2" --split-seed 7 --media none >/dev/null
  if "$EMPD" train "${common[@]}" --shards "$t/shards2" --out "$t/crash" --max-steps 40 --resume auto 2>"$t/err"; then
    fail "resumed on other shards"
  fi
  grep -q "was trained on other shards" "$t/err" || fail "no clear line: $(cat "$t/err")"
  if "$EMPD" train "${common[@]}" --out "$t/crash" --max-steps 40 --set train.seed=7 --resume auto 2>"$t/err"; then
    fail "resumed with another seed"
  fi
  grep -q "was trained with train.seed 42" "$t/err" || fail "no clear line: $(cat "$t/err")"
  # A checkpoint at the end of an epoch continues on any world size (1 rank x 8 -> 2 ranks x 8).
  per_epoch=$("$EMPD_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["splits"]["train"]["count"] // 8)' \
    "$shards/manifest.json")
  "$EMPD" train "${common[@]}" --out "$t/epoch" --max-steps "$per_epoch"
  mpi 2 "$EMPD" train "${common[@]}" --out "$t/epoch" --max-steps $((per_epoch + 5)) --resume auto ||
    fail "an epoch-end checkpoint did not resume on 2 ranks"
  grep -q "\"step\":$((per_epoch + 5)),\"epoch\":1" "$t/epoch/metrics.jsonl" || fail "the resumed steps are not in epoch 1"
  echo "checkpoints: torn and lost checkpoints, rewound metrics, refusals, world-size change: all as expected"
  ;;
learns)
  # A corpus of its own, larger than the fixture's, so the signal is learnable within 300 steps.
  "$EMPD" synth --out "$t/corpus" --conversations 1500 --seed 11 --media none >/dev/null
  "$EMPD" shard --data "$t/corpus" --out "$t/shards" --media none >/dev/null
  mpi 2 "$EMPD" train "${common[@]}" --shards "$t/shards" --out "$t/run" --max-steps 300 --set train.eval_every=300
  "$EMPD_PYTHON" - "$t/run/metrics.jsonl" "$t/shards/manifest.json" <<'PY'
import json, sys
evals = [json.loads(l) for l in open(sys.argv[1]) if '"eval"' in l]
hist = json.load(open(sys.argv[2]))["splits"]["val"]["label7_histogram"]
majority = max(hist) / sum(hist)
# Always predicting the majority class: its F1 is 2p/(1+p) for that class and 0 for the other six.
majority_macro_f1 = 2 * majority / (1 + majority) / sum(1 for h in hist if h)
acc, macro = evals[-1]["accuracy"], evals[-1]["macro_f1"]
print(f"val accuracy {acc:.3f} (majority class {majority:.3f}, chance {1/7:.3f}); "
      f"macro F1 {macro:.3f} (majority classifier {majority_macro_f1:.3f})")
ok = acc >= majority + 0.08 and macro >= 2 * majority_macro_f1
sys.exit(0 if ok else "the model did not learn the text signal")
PY
  ;;
*) fail "unknown test $name" ;;
esac
echo "ok: $name"
