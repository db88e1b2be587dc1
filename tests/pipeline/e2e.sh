#!/usr/bin/env bash
# The user's pipeline end to end on a small generated corpus: synth, shard on 2 ranks, train the audio
# and the video model on 2 ranks each, fuse, predict. Checks: every output is there; the fusion chosen
# on val is at least as good on test as each model alone (the corpus's modalities carry complementary
# signal by construction); predict gives each run's, and the fusion's, probabilities of the evaluation
# path for the same conversations; predict's bad inputs give one line.
# Environment (from ctest): EMPD, EMPD_PYTHON, MPIEXEC, WORK.
set -euo pipefail
w="$WORK/pipeline"
rm -rf "$w" && mkdir -p "$w" && cd "$w"
fail() { echo "pipeline: $*" >&2; exit 1; }
mpi() { "$MPIEXEC" -np 2 --oversubscribe "$@"; }

"$EMPD" synth --out corpus --conversations 300 --seed 7 >/dev/null
mpi "$EMPD" shard --data corpus --out shards --threads 1 --quiet
for kind in audio video; do
  mpi "$EMPD" train --config "$REPO/configs/tiny-$kind.json" --shards shards --out "run-$kind" --set train.threads=1 \
    --quiet
  for f in metrics.jsonl model.safetensors predictions/val.csv predictions/test.csv report.html report.md report.json; do
    [ -s "run-$kind/$f" ] || fail "run-$kind/$f is missing"
  done
done
"$EMPD" fuse --out fused run-audio run-video | tee fuse.log
for f in fusion.json predictions/val.csv predictions/test.csv report.html report.md report.json; do
  [ -s "fused/$f" ] || fail "fused/$f is missing"
done

# predict on test conversations, given as a new AvaMERG folder (their json, the corpus's media).
"$EMPD_PYTHON" - <<'PY'
import csv, json, os
ids = [r["id"] for r in csv.DictReader(open("run-audio/predictions/test.csv"))][:8]
sel = [c for c in json.load(open("corpus/train.json")) if c["conversation_id"] in ids]
os.makedirs("new", exist_ok=True)
json.dump(sel, open("new/train.json", "w"))
for d in ("audio_v5_0", "video_v5_0"):
    os.symlink(os.path.abspath(f"corpus/{d}"), f"new/{d}")
PY
"$EMPD" predict --fusion fused --data new --json --threads 2 >predict.json
"$EMPD" predict --fusion fused --data new --threads 2
"$EMPD_PYTHON" - <<'PY'
import csv, json, sys
out = json.load(open("predict.json"))
def rows(path):
    return {r["id"]: r for r in csv.DictReader(open(path))}
fused, runs = rows("fused/predictions/test.csv"), [rows(f"run-{k}/predictions/test.csv") for k in ("audio", "video")]
fj = json.load(open("fused/fusion.json"))
assert out["method"] == fj["method"], (out["method"], fj["method"])
assert len(out["predictions"]) == 8, len(out["predictions"])
worst = 0.0
for p in out["predictions"]:
    for name, v in p["probabilities"].items():
        worst = max(worst, abs(v - float(fused[p["id"]]["p_" + name])))
    for r, run in enumerate(p["runs"]):
        for name, v in run["probabilities"].items():
            worst = max(worst, abs(v - float(runs[r][p["id"]]["p_" + name])))
    assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
if worst > 1e-6:
    sys.exit(f"pipeline: predict differs from the evaluation path by {worst:.3g}")
print(f"pipeline: predict = evaluation path (max abs diff {worst:.2e}) for 8 conversations, both runs and the fusion")
acc = {s["name"]: s["test"]["accuracy"] for s in fj["scores"]}
chosen = acc[fj["method"]]
for s in fj["scores"]:
    if s["kind"] == "run" and chosen < s["test"]["accuracy"]:
        sys.exit(f"pipeline: fused ({fj['method']}) test accuracy {chosen:.4f} < {s['name']}'s {s['test']['accuracy']:.4f}")
print(f"pipeline: fused ({fj['method']}) test accuracy {chosen:.4f} >= each run's "
      "(" + ", ".join(f"{s['name']} {s['test']['accuracy']:.4f}" for s in fj["scores"] if s["kind"] == "run") + ")")
PY

# One utterance with its media.
wavs=(corpus/audio_v5_0/dia*utt0_*.wav) mp4s=(corpus/video_v5_0/dia*utt0_*.mp4)
wav=${wavs[0]} mp4=${mp4s[0]}
"$EMPD" predict --fusion fused --text "I can't believe it, this is wonderful news" --wav "$wav" --mp4 "$mp4" --json >one.json
"$EMPD_PYTHON" -c '
import json, sys
p = json.load(open("one.json"))["predictions"]
assert len(p) == 1 and abs(sum(p[0]["probabilities"].values()) - 1) < 1e-9, p
print("pipeline: one utterance ->", p[0]["label"])'

# Bad inputs: one line each, a non-zero exit.
expect() {
  local code=$1 want=$2; shift 2
  set +e; "$EMPD" predict "$@" >/dev/null 2>err.txt; local rc=$?; set -e
  [ $rc -eq "$code" ] && grep -q -- "$want" err.txt || fail "predict $*: exit $rc, stderr: $(cat err.txt) (want $code, '$want')"
}
expect 2 "exactly one of --data or --text" --fusion fused --data new --text hi
expect 1 "nowhere/fusion.json\|nowhere: cannot open" --fusion nowhere --text hi
expect 1 "missing-run/config.json" --run missing-run --text hi
expect 1 "no_such.wav" --run run-audio --text hi --wav no_such.wav
echo "pipeline: OK"
