#!/usr/bin/env python3
"""check_media.py CORPUS SHARDS SHARD_TESTS: every utterance's presence bits against PyAV's view of its files.

Reads the shards with tests/shard/read_shards.py (written from dataset/FORMAT.md alone). For each utterance of
each record: no file -> neither bit; a file PyAV decodes -> the present bit and, for audio, a waveform of the
length ffmpeg's resampling to 16 kHz gives (cut to the manifest's limit); a file PyAV cannot decode -> the bad
bit and a line naming the file in the manifest's skipped.lines. The manifest's counts must add up.
"""
import json
import os
import sys

import av
import av.logging

av.logging.set_level(av.logging.PANIC)

sys.path.insert(0, sys.argv[3])
import read_shards  # noqa: E402


def decodes(path, kind):
    """How many frames (video) or 16 kHz samples (audio) PyAV gets from path; None when it fails."""
    try:
        with av.open(path) as c:
            if kind == "video":
                return sum(1 for _ in c.decode(video=0)) or None
            rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
            n = 0
            for f in c.decode(audio=0):
                for g in rs.resample(f):
                    n += g.samples
            for g in rs.resample(None):
                n += g.samples
            return n or None
    except (av.error.FFmpegError, StopIteration, IndexError):
        return None


def main():
    corpus, shards = sys.argv[1], sys.argv[2]
    man = json.load(open(os.path.join(shards, "manifest.json")))
    media = man["media"]
    limit = int(media["audio_max_seconds"] * 16000 + 0.5)
    lines = "\n".join(man["skipped"]["lines"])
    tally = dict.fromkeys(media["counts"], 0)
    seen = {"audio": [0, 0, 0], "video": [0, 0, 0]}
    for name, split in man["splits"].items():
        for rec in read_shards.read_split(shards, name, split, media, limit, dict(tally)):
            for ut in rec["utts"]:
                stem = f"dia{rec['conversation_id']}utt{ut['index']}_{ut['avatar']}"
                for kind, sub, ext, bit, bad in (("audio", "audio_v5_0", ".wav", 1, 4),
                                                 ("video", "video_v5_0", ".mp4", 2, 8)):
                    path = os.path.join(corpus, sub, stem + ext)
                    p = ut["presence"]
                    where = f"{name} sample {rec['sample_index']} utterance {ut['index']} ({stem}{ext})"
                    if ut["avatar"] < 0 or not os.path.exists(path):
                        assert not p & (bit | bad), f"{where}: no file, presence 0x{p:x}"
                        seen[kind][0] += 1
                        continue
                    got = decodes(path, kind)
                    if got is None:
                        assert p & bad and not p & bit, f"{where}: PyAV cannot decode it, presence 0x{p:x}"
                        assert stem + ext in lines, f"{where}: bad file not listed in skipped.lines"
                        seen[kind][2] += 1
                        continue
                    assert p & bit and not p & bad, f"{where}: PyAV decodes it, presence 0x{p:x}"
                    if kind == "audio":
                        n = len(ut["wave"])
                        assert abs(n - min(got, limit)) <= 16, f"{where}: {n} samples, PyAV {got}"
                    seen[kind][1] += 1
    c = media["counts"]
    for kind in ("audio", "video"):
        missing, present, bad = seen[kind]
        assert (c[kind + "_missing"], c[kind + "_present"], c[kind + "_bad"]) == (missing, present, bad), (kind, c)
        assert bad == 0 or man["skipped"]["counts"].get(kind + "_bad") == bad, man["skipped"]["counts"]
    assert seen["audio"][0] + seen["video"][0] > 0, "no missing file: the test cannot fail on that branch"
    assert seen["audio"][2] > 0 and seen["video"][2] > 0, "no bad file of each kind: the test cannot fail there"
    print(f"media: audio {seen['audio']} / video {seen['video']} (missing, present, bad) as PyAV sees the files")


if __name__ == "__main__":
    main()
