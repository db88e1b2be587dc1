#!/usr/bin/env python3
"""The sharder's peers: the same per-clip work as `empd shard` does, done the usual ways.

For every utterance that has media in an AvaMERG folder: 8 frames by the seed's linspace rule, scaled to
224x224 RGB, plus the wav as 16 kHz mono int16. Two workers (the machine's 2 cores), like empd's 2 threads.

  shard_peers.py ffmpeg DATA_DIR   the ffmpeg CLI per clip: ffprobe counts the frames, ffmpeg selects and
                                   scales them to JPEG files, ffmpeg resamples the wav
  shard_peers.py pyav DATA_DIR     PyAV per clip: decode the frames in order, keep the 8, reformat them to
                                   224x224 rgb24; resample the wav with av.AudioResampler

Prints `clips=N seconds=S` (clips = the utterances of train.json's samples, as empd shard reads them). Files that do not decode (the
synthetic corpus has some on purpose) are counted as done, as the sharder's skip mode does.
"""
import concurrent.futures
import glob
import os
import subprocess
import sys
import tempfile
import time


def linspace_indices(total, n=8):
    if total <= n:
        return list(range(total)) + [total - 1] * (n - total)
    return [int(i * (total - 1) / (n - 1)) for i in range(n)]


def clips(data_dir):
    """The utterances empd shard reads: per conversation whose first turn is labeled (the seed split's filter), its
    last turn's history and response, the last 10, named dia{CID}utt{K}_{AID} with the speaker's ID for even K
    and the listener's for odd K."""
    import json
    with open(os.path.join(data_dir, "train.json"), encoding="utf-8") as f:
        convs = json.load(f)
    stems = []
    for c in convs:
        turns = [t for t in c.get("turns") or [] if str(t.get("turn_id", "")).isdigit()]
        if not turns:
            continue
        first = min(turns, key=lambda t: int(t["turn_id"]))
        if not ((first.get("chain_of_empathy") or {}).get("speaker_emotion") or ""):
            continue
        last = max(turns, key=lambda t: int(t["turn_id"]))
        idx = [h["index"] for h in last.get("dialogue_history") or []] + [2 * int(last["turn_id"]) + 1]
        ids = {0: (c.get("speaker_profile") or {}).get("ID"), 1: (c.get("listener_profile") or {}).get("ID")}
        for k in idx[-10:]:
            if ids[k % 2] is not None:
                stems.append(f"dia{c['conversation_id']}utt{k}_{ids[k % 2]}")
    return stems


def run(cmd):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).returncode


def ffmpeg_clip(data_dir, stem, out):
    mp4 = os.path.join(data_dir, "video_v5_0", stem + ".mp4")
    wav = os.path.join(data_dir, "audio_v5_0", stem + ".wav")
    if os.path.exists(mp4):
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                                "stream=nb_read_packets", "-of", "csv=p=0", mp4], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)
        try:
            total = int(probe.stdout.strip().split(",")[0])
        except ValueError:
            total = 0
        if total > 0:
            sel = "+".join(f"eq(n\\,{i})" for i in sorted(set(linspace_indices(total))))
            run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", mp4, "-vf",
                 f"select={sel},scale=224:224:flags=bilinear", "-vsync", "0", "-q:v", "3",
                 os.path.join(out, stem + "-%d.jpg")])
    if os.path.exists(wav):
        run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", wav, "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
             os.path.join(out, stem + ".wav")])


def pyav_clip(data_dir, stem, out):
    import av
    mp4 = os.path.join(data_dir, "video_v5_0", stem + ".mp4")
    wav = os.path.join(data_dir, "audio_v5_0", stem + ".wav")
    frames = []
    if os.path.exists(mp4):
        try:
            with av.open(mp4) as c:
                decoded = [f for f in c.decode(video=0)]
            want = linspace_indices(len(decoded)) if decoded else []
            frames = [decoded[i].reformat(width=224, height=224, format="rgb24").to_ndarray() for i in want]
        except av.error.FFmpegError:
            frames = []
    samples = 0
    if os.path.exists(wav):
        try:
            with av.open(wav) as c:
                rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
                for f in c.decode(audio=0):
                    for g in rs.resample(f):
                        samples += g.samples
        except av.error.FFmpegError:
            samples = 0
    return len(frames), samples


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("ffmpeg", "pyav"):
        sys.exit("usage: shard_peers.py ffmpeg|pyav DATA_DIR")
    how, data_dir = sys.argv[1], sys.argv[2]
    stems = clips(data_dir)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        if how == "ffmpeg":
            with concurrent.futures.ThreadPoolExecutor(2) as ex:
                list(ex.map(lambda s: ffmpeg_clip(data_dir, s, out), stems))
        else:
            with concurrent.futures.ProcessPoolExecutor(2) as ex:
                list(ex.map(pyav_clip, [data_dir] * len(stems), stems, [out] * len(stems), chunksize=8))
        seconds = time.perf_counter() - t0
    print(f"clips={len(stems)} seconds={seconds:.3f}")


if __name__ == "__main__":
    main()
