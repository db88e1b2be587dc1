#!/usr/bin/env bash
# End-to-end tests of empd train with the seed's two fusion models (tiny configs) on a small corpus with
# speech and faces: fusion.sh NAME. The environment (set by ctest) gives EMPD, EMPD_PYTHON, MPIEXEC, WORK
# (a scratch folder) and REPO.
set -euo pipefail
name=$1
here=$(cd "$(dirname "$0")" && pwd)
mpi() { "$MPIEXEC" -np "$1" --oversubscribe "${@:2}"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
shards=$WORK/media-shards
t=$WORK/fusion-$name
rm -rf "$t" && mkdir -p "$t"
losses() { grep '"event":"train"' "$1/metrics.jsonl" | sed -E 's/.*"step":([0-9]+),.*"loss":([^,]+),.*/\1 \2/'; }
run() { # KIND RANKS OUT STEPS [ARGS...]
  local kind=$1 ranks=$2 out=$3 steps=$4
  mpi "$ranks" "$EMPD" train --config "$REPO/configs/tiny-$kind.json" --shards "$shards" --out "$out" \
    --max-steps "$steps" --set train.threads=1 --set train.batch_size=4 --set train.eval_every=0 --quiet "${@:5}"
}

case $name in
fixture)
  rm -rf "$WORK/media-corpus" "$shards"
  "$EMPD" synth --out "$WORK/media-corpus" --conversations 90 --seed 5 >/dev/null
  "$EMPD" shard --data "$WORK/media-corpus" --out "$shards" --quiet
  ;;
audio|video)
  kind=$name
  # One rank and two: both train, the replicas stay equal, and the weights keep HF's encoder names.
  run "$kind" 1 "$t/one" 4
  run "$kind" 2 "$t/two" 4 --save-all-ranks
  "$EMPD_PYTHON" "$here/compare.py" "$t/two/model-rank0.safetensors" "$t/two/model-rank1.safetensors" exact
  [ "$(losses "$t/two" | wc -l)" -eq 4 ] || fail "expected 4 train events"
  "$EMPD_PYTHON" - "$t/one/model.safetensors" "$kind" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
names = set(json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])) - {"__metadata__"}
want = {"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.LayerNorm.weight",
        "meta_mlp.0.weight", "head.0.weight", "meta.topic.weight"}
want |= ({"wav2vec2.encoder.pos_conv_embed.conv.weight_g", "wav2vec2.feature_extractor.conv_layers.0.conv.weight",
          "audio_missing", "lstm.weight_ih_l0_reverse", "attn.in_proj_weight"} if sys.argv[2] == "audio" else
         {"video.patch_embed.weight", "video.layers.0.self_attn.in_proj_weight", "video_missing",
          "fusion_lstm.weight_hh_l0", "cross_attn.out_proj.weight"})
missing = want - names
sys.exit(f"exported weights lack {sorted(missing)}" if missing else 0)
PY
  # The encoders also as HF model folders: the same tensors without the prefix, and a config.json
  # that the next run starts from.
  encoders=(bert)
  [ "$kind" = audio ] && encoders+=(wav2vec2)
  from=()
  for enc in "${encoders[@]}"; do
    "$EMPD_PYTHON" - "$t/one/model.safetensors" "$t/one/hf/$enc" "$enc" <<'PY'
import json, struct, sys
import numpy as np
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]], "<f4") for k, e in h.items()}
full, hf, prefix = load(sys.argv[1]), load(sys.argv[2] + "/model.safetensors"), sys.argv[3] + "."
mine = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
assert sorted(mine) == sorted(hf), sorted(set(mine) ^ set(hf))
assert all((mine[k] == hf[k]).all() for k in hf)
cfg = json.load(open(sys.argv[2] + "/config.json"))
assert cfg["model_type"] == sys.argv[3], cfg["model_type"]
PY
    key=$([ "$enc" = bert ] && echo bert || echo audio)
    from+=(--set "model.$key.config=$t/one/hf/$enc/config.json" --set "model.$key.weights=$t/one/hf/$enc/model.safetensors")
  done
  mpi 1 "$EMPD" train --config "$REPO/configs/tiny-$kind.json" --shards "$shards" --out "$t/from-hf" --max-steps 1 \
    --set train.threads=1 --set train.batch_size=4 --set train.eval_every=0 "${from[@]}" >"$t/log"
  grep -q "model: text encoder from $t/one/hf/bert/model.safetensors: [0-9]* tensors (0 pretraining tensors ignored)" "$t/log" ||
    fail "the exported BERT did not load: $(cat "$t/log")"
  if [ "$kind" = audio ]; then
    grep -q "model: audio encoder from $t/one/hf/wav2vec2/model.safetensors" "$t/log" || fail "the exported Wav2Vec2 did not load"
  fi
  # Resume is bit-exact: 4 steps == 2 + resume + 2, with dropout.
  run "$kind" 1 "$t/split" 2 --set train.checkpoint_every=0
  run "$kind" 1 "$t/split" 4 --set train.checkpoint_every=0 --resume auto
  "$EMPD_PYTHON" "$here/compare.py" "$t/one/model.safetensors" "$t/split/model.safetensors" exact
  diff <(losses "$t/one") <(losses "$t/split") || fail "losses differ after resume"
  echo "$kind: 1 and 2 ranks train, replicas equal, HF names and folders exported and reloaded, resume bit-exact"
  ;;
frozen)
  # The seed's freezing (Wav2Vec2 whole, BERT's embeddings and first layer): frozen tensors never move
  # (nor does the unread pooler), the rest trains, 2 ranks stay replicas, and resume stays bit-exact.
  frz=(--set model.audio.frozen=1 --set model.bert.freeze_layers=1)
  run audio 2 "$t/two" 4 "${frz[@]}" --save-all-ranks
  "$EMPD_PYTHON" "$here/compare.py" "$t/two/model-rank0.safetensors" "$t/two/model-rank1.safetensors" exact
  run audio 1 "$t/short" 2 "${frz[@]}" --set train.checkpoint_every=0
  run audio 1 "$t/long" 4 "${frz[@]}" --set train.checkpoint_every=0
  run audio 1 "$t/short" 4 "${frz[@]}" --set train.checkpoint_every=0 --resume auto
  "$EMPD_PYTHON" "$here/compare.py" "$t/long/model.safetensors" "$t/short/model.safetensors" exact
  "$EMPD_PYTHON" - "$t/short/checkpoints/step-00000002/model.safetensors" "$t/long/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]], "<f4") for k, e in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
frozen = lambda k: (k.startswith("wav2vec2.") or k.startswith("bert.embeddings.") or k.startswith("bert.encoder.layer.0.")
                    or k.startswith("bert.pooler."))
moved = sorted(k for k in a if frozen(k) and not (a[k] == b[k]).all())
still = sorted(k for k in a if not frozen(k) and (a[k] == b[k]).all())
assert not moved, f"frozen tensors changed: {moved[:5]}"
assert not still, f"trained tensors did not change: {still[:5]}"
print(f"frozen: {sum(map(frozen, a))} tensors unchanged between steps 2 and 4, {len(a) - sum(map(frozen, a))} trained")
PY
  optim=$t/long/checkpoints/step-00000004/optim.safetensors
  grep -q "exp_avg.lstm" "$optim" || fail "the trained tensors have no optimizer moments in $optim"
  if grep -q "exp_avg.wav2vec2\|exp_avg.bert.embeddings" "$optim"; then fail "frozen tensors have optimizer moments"; fi
  ;;
errors)
  # Shards without the medium a model reads: one clear line.
  "$EMPD" shard --data "$WORK/media-corpus" --out "$t/text-only" --media none --quiet
  for kind in audio video; do
    if "$EMPD" train --config "$REPO/configs/tiny-$kind.json" --shards "$t/text-only" --out "$t/r-$kind" 2>"$t/err"; then
      fail "the $kind model trained on shards without its medium"
    fi
    grep -q "^empd train: the $kind model needs" "$t/err" || fail "no clear line: $(cat "$t/err")"
  done
  if "$EMPD" train --config "$REPO/configs/tiny-video.json" --shards "$shards" --out "$t/r" --set model.video.patch=30 2>"$t/err"; then
    fail "a patch size that does not divide the frames was accepted"
  fi
  grep -q "model.video.patch (30)" "$t/err" || fail "no clear line: $(cat "$t/err")"
  if "$EMPD" train --config "$REPO/configs/tiny-audio.json" --shards "$shards" --out "$t/r" --set model.fusion.heads=5 2>"$t/err"; then
    fail "heads that do not divide the widths were accepted"
  fi
  grep -q "model.fusion.heads (5) must divide 2 x model.fusion.lstm_hidden (64)" "$t/err" || fail "no clear line: $(cat "$t/err")"
  if "$EMPD" train --config "$REPO/configs/tiny-audio.json" --shards "$shards" --out "$t/r" --set model.bert.freeze_layers=3 2>"$t/err"; then
    fail "freezing more layers than BERT has was accepted"
  fi
  grep -q "model.bert.freeze_layers (3) exceeds the text encoder's 2 layers" "$t/err" || fail "no clear line: $(cat "$t/err")"
  if "$EMPD" train --config "$REPO/configs/tiny-audio.json" --shards "$shards" --out "$t/r" --set model.audio.norm=loud 2>"$t/err"; then
    fail "an unknown audio.norm was accepted"
  fi
  grep -q "model.audio.norm = 'loud' is not one of peak,zero_mean,none" "$t/err" || fail "no clear line: $(cat "$t/err")"
  if "$EMPD" train --config "$REPO/configs/tiny-video.json" --shards "$shards" --out "$t/r" --set 'model.fusion.head=[64,"x"]' 2>"$t/err"; then
    fail "a bad list was accepted"
  fi
  grep -q "model.fusion.head\[1\] must be an integer" "$t/err" || fail "no clear line: $(cat "$t/err")"
  printf '{"hidden_size": "wide"}' >"$t/config.json"
  if "$EMPD" train --config "$REPO/configs/tiny-audio.json" --shards "$shards" --out "$t/r" --set "model.bert.config=$t/config.json" 2>"$t/err"; then
    fail "a malformed HF config.json was accepted"
  fi
  grep -q "$t/config.json" "$t/err" || fail "no line naming the config.json: $(cat "$t/err")"
  if "$EMPD" train --config "$REPO/configs/tiny-audio.json" --shards "$shards" --out "$t/r" --set "model.bert.weights=$t/none.safetensors" 2>"$t/err"; then
    fail "missing BERT weights were accepted"
  fi
  grep -q "$t/none.safetensors" "$t/err" || fail "no line naming the weights: $(cat "$t/err")"
  echo "errors: each refused with one line"
  ;;
*) fail "unknown test $name" ;;
esac
echo "ok: $name"
