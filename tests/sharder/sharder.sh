#!/usr/bin/env bash
# End-to-end tests of empd shard with media, one per call: sharder.sh NAME. The environment (set by ctest)
# gives EMPD, EMPD_PYTHON, MPIEXEC, WORK (a scratch folder) and REPO.
set -euo pipefail
name=$1
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
corpus=$WORK/data
ref=$WORK/ref
t=$WORK/$name
rm -rf "$t" && mkdir -p "$t"
py() { "$EMPD_PYTHON" "$@"; }

case $name in
corpus)
  # The mini corpus with media, and the reference shards: one process, one thread.
  rm -rf "$corpus" "$ref"
  "$EMPD" synth --out "$corpus" --conversations 40 --seed 5 >"$t/synth.log"
  # Bad files of every kind, whatever the generator's own mess: a truncated mp4, a wav that is not audio,
  # a missing mp4; all in the last turn of labeled conversations, so the sharder reads them.
  py - "$corpus" <<'PY'
import json, os, sys
root = sys.argv[1]
stems = []
for c in json.load(open(os.path.join(root, "train.json"))):
    turns = [t for t in c.get("turns") or [] if str(t.get("turn_id", "")).isdigit()]
    if turns and (c.get("speaker_profile") or {}).get("ID") is not None:
        stems.append(f"dia{c['conversation_id']}utt0_{c['speaker_profile']['ID']}")
have = [s for s in stems if os.path.exists(os.path.join(root, "video_v5_0", s + ".mp4"))
        and os.path.exists(os.path.join(root, "audio_v5_0", s + ".wav"))]
assert len(have) >= 12, "too few conversations with media"
mp4 = os.path.join(root, "video_v5_0", have[3] + ".mp4")
data = open(mp4, "rb").read()
open(mp4, "wb").write(data[: len(data) // 3])
open(os.path.join(root, "audio_v5_0", have[7] + ".wav"), "wb").write(b"RIFF\x10\x00\x00\x00WAVEjunk" * 4)
os.remove(os.path.join(root, "video_v5_0", have[11] + ".mp4"))
PY
  "$EMPD" shard --data "$corpus" --out "$ref" --threads 1 --part-samples 8 >"$t/log"
  cat "$t/log"
  "$EMPD" shard verify "$ref"
  ;;
mpi)
  # 2 ranks x 1 thread and 1 rank x 2 threads write the same records as 1 x 1.
  "$MPIEXEC" -np 2 --oversubscribe "$EMPD" shard --data "$corpus" --out "$t/two" --threads 1 --part-samples 8 \
    >"$t/log"
  grep -q "on 2 ranks x 1 thread" "$t/log" || fail "summary: $(cat "$t/log")"
  "$EMPD" shard verify "$t/two"
  py "$here/compare_shards.py" "$ref" "$t/two"
  "$EMPD" shard --data "$corpus" --out "$t/threads" --threads 2 --part-samples 5 --quiet
  py "$here/compare_shards.py" "$ref" "$t/threads"
  # On a terminal a progress bar with rate and ETA; otherwise one summary line and no bar.
  script -qc "$EMPD shard --data $corpus --out $t/tty --threads 2" /dev/null >"$t/tty.log" </dev/null
  grep -q 'shard \[[#.]*\] [0-9]*/[0-9]* .* samples/s  ETA' "$t/tty.log" || fail "no progress bar: $(cat -v "$t/tty.log")"
  "$EMPD" shard --data "$corpus" --out "$t/notty" --threads 2 >"$t/notty.log"
  if grep -q $'\r' "$t/notty.log"; then fail "a progress bar without a terminal"; fi
  [ "$(wc -l <"$t/notty.log")" -eq 1 ] || fail "not one summary line: $(cat "$t/notty.log")"
  # Without media a sample takes microseconds: the threads race far ahead of the writer, and must still
  # deliver every record in order (a pipeline that lets a later sample take an earlier one's slot hangs).
  "$EMPD" synth --out "$t/text" --conversations 400 --seed 3 --media none >/dev/null
  "$EMPD" shard --data "$t/text" --out "$t/text1" --media none --threads 1 --quiet
  timeout 120 "$EMPD" shard --data "$t/text" --out "$t/text4" --media none --threads 4 --part-samples 7 --quiet ||
    fail "4 threads without media did not finish"
  py "$here/compare_shards.py" "$t/text1" "$t/text4"
  ;;
resume)
  # kill -9 in the middle, then the same command: finished parts are kept, the rest is redone, and the
  # records are those of an uninterrupted run.
  args=(shard --data "$corpus" --out "$t/out" --threads 1 --part-samples 2)
  "$EMPD" "${args[@]}" --quiet &
  pid=$!
  for _ in $(seq 1 600); do
    n=$(find "$t/out" -maxdepth 1 -name '*.lmdb' 2>/dev/null | wc -l || true)
    [ "$n" -ge 3 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  kill -9 "$pid" 2>/dev/null || fail "the run ended before it could be killed; make the corpus bigger"
  wait "$pid" 2>/dev/null || true
  [ ! -e "$t/out/manifest.json" ] || fail "a killed run left a manifest"
  done_before=$(find "$t/out" -maxdepth 1 -name '*.lmdb' | wc -l)
  "$EMPD" "${args[@]}" >"$t/log"
  cat "$t/log"
  resumed=$(sed -nE 's/.* \(([0-9]+) resumed\).*/\1/p' "$t/log")
  [ -n "$resumed" ] && [ "$resumed" -ge 1 ] && [ "$resumed" -le "$done_before" ] ||
    fail "expected 1..$done_before parts resumed: $(cat "$t/log")"
  [ -z "$(find "$t/out" -name '*.tmp*')" ] || fail "temporaries left: $(find "$t/out" -name '*.tmp*')"
  "$EMPD" shard verify "$t/out"
  py "$here/compare_shards.py" "$ref" "$t/out"
  # Started again once complete: everything is resumed, nothing rewritten.
  "$EMPD" "${args[@]}" >"$t/log2"
  total=$(find "$t/out" -maxdepth 1 -name '*.lmdb' | wc -l)
  grep -q "in $total files ($total resumed)" "$t/log2" || fail "complete run not resumed: $(cat "$t/log2")"
  # A media file touched since: the one part that read it is decoded again, the others are kept.
  cid=$(py -c 'import json, sys; print(json.load(open(sys.argv[1]))["splits"]["train"]["conversation_ids"][0])' \
          "$t/out/manifest.json")
  n_touched=0
  for f in "$corpus/audio_v5_0/dia${cid}utt"*.wav "$corpus/video_v5_0/dia${cid}utt"*.mp4; do
    [ -e "$f" ] && touch "$f" && n_touched=$((n_touched + 1))
  done
  [ "$n_touched" -gt 0 ] || fail "conversation $cid has no media file to touch"
  "$EMPD" "${args[@]}" >"$t/log4"
  grep -q "in $total files ($((total - 1)) resumed)" "$t/log4" || fail "touched media not redone: $(cat "$t/log4")"
  py "$here/compare_shards.py" "$ref" "$t/out"
  # Other settings: no part is reused.
  "$EMPD" "${args[@]}" --jpeg-quality 50 >"$t/log3"
  grep -q "(0 resumed)" "$t/log3" || fail "parts of other settings were reused: $(cat "$t/log3")"
  ;;
media)
  # Presence, absence and bad files against PyAV's view of the same files; manifest counts and lines.
  py "$here/check_media.py" "$corpus" "$ref" "$REPO/tests/shard"
  ;;
errors)
  # --on-error fail stops at the first undecodable file with one line naming it.
  if "$EMPD" shard --data "$corpus" --out "$t/fail" --on-error fail --threads 1 2>"$t/err" >/dev/null; then
    fail "--on-error fail passed over a corrupt file"
  fi
  [ "$(wc -l <"$t/err")" -eq 1 ] || fail "not one line: $(cat "$t/err")"
  grep -qE '^empd shard: conversation [0-9]+ utterance [0-9]+: .*dia[0-9]+utt[0-9]+_[0-9]+\.(mp4|wav): ' "$t/err" ||
    fail "the line does not name the file: $(cat "$t/err")"
  [ ! -e "$t/fail/manifest.json" ] || fail "a failed run wrote a manifest"
  # Parts a skipping run finished with bad files in them are not taken as done by a failing run.
  cp -r "$ref" "$t/resumed"
  if "$EMPD" shard --data "$corpus" --out "$t/resumed" --threads 1 --part-samples 8 --on-error fail \
       2>"$t/err" >/dev/null; then
    fail "--on-error fail resumed parts holding bad files"
  fi
  grep -q 'dia[0-9]*utt[0-9]*_[0-9]*\.\(mp4\|wav\)' "$t/err" || fail "resumed fail line: $(cat "$t/err")"
  # A media folder that is not there is an error, not a corpus without media.
  if "$EMPD" shard --data "$corpus" --out "$t/x" --video-dir "$t/nowhere" 2>"$t/err"; then fail "missing video dir"; fi
  grep -q "$t/nowhere: no such folder" "$t/err" || fail "missing folder line: $(cat "$t/err")"
  for bad in "--media some" "--frame-size 8" "--jpeg-quality 0" "--frames png" "--audio-seconds 0" "--threads 0"; do
    # shellcheck disable=SC2086
    if "$EMPD" shard --data "$corpus" --out "$t/x" $bad 2>"$t/err"; then fail "accepted $bad"; fi
    [ "$(wc -l <"$t/err")" -eq 1 ] || fail "$bad: $(cat "$t/err")"
  done
  # A flipped byte in a published shard: verify names the file and the sample.
  cp -r "$ref" "$t/flip"
  f=$t/flip/train-00000.lmdb
  py - "$f" <<'PY'
import lmdb, sys
env = lmdb.open(sys.argv[1], subdir=False, readonly=True, lock=False)
with env.begin() as txn:
    key, value = next(iter(txn.cursor()))
    value = bytes(value)
env.close()
data = bytearray(open(sys.argv[1], "rb").read())
at = data.find(value)
assert at >= 0, "record not found in the file"
data[at + len(value) // 2] ^= 0x40
open(sys.argv[1], "wb").write(data)
PY
  if "$EMPD" shard verify "$t/flip" 2>"$t/err"; then fail "verify missed a flipped byte"; fi
  grep -q "train-00000.lmdb" "$t/err" && grep -qE "(record|sample|key) 0\b" "$t/err" ||
    fail "verify line does not name shard and key: $(cat "$t/err")"
  ;;
inspect)
  "$EMPD" inspect "$ref" --sample 1 --split train --out "$t/out" >"$t/log"
  cat "$t/log"
  grep -q "^sample 1: conversation" "$t/log" || fail "no sample line"
  py "$here/check_inspect.py" "$t/log" "$t/out" "$corpus" "$ref"
  # Raw storage end to end: shard, verify, and the same frames as the ffmpeg CLI within 40 dB.
  "$EMPD" shard --data "$corpus" --out "$t/raw" --frames raw --quiet
  "$EMPD" shard verify "$t/raw"
  "$EMPD" inspect "$t/raw" --sample 1 --split train --out "$t/rawout" >"$t/rawlog"
  py "$here/check_inspect.py" "$t/rawlog" "$t/rawout" "$corpus" "$t/raw"
  if "$EMPD" inspect "$ref" --sample 100000 2>"$t/err"; then fail "an index past the split"; fi
  grep -q "no sample 100000" "$t/err" || fail "out-of-range line: $(cat "$t/err")"
  ;;
*)
  fail "unknown case $name"
  ;;
esac
