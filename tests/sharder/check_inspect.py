#!/usr/bin/env python3
"""check_inspect.py LOG OUT CORPUS SHARDS: what `empd inspect --out` wrote, against the source media.

For every utterance the log says has video: 8 PNG files of the manifest's frame size whose pixels match the
ffmpeg CLI's decode of the same frame indices of the source mp4 (select by n, scale flags=bilinear, rgb24):
PSNR >= 40 dB for raw storage, >= 36 dB for JPEG quality 90. For every utterance with audio: a 16 kHz mono wav equal
to ffmpeg's own resampling of the source wav (-ac 1 -ar 16000), within a few LSB.
"""
import json
import os
import re
import subprocess
import sys

import av
import av.logging

av.logging.set_level(av.logging.PANIC)
import numpy as np

JPEG_PSNR_MIN = 36.0     # JPEG q90 4:4:4 of the synthetic faces measures about 40-45 dB
RAW_PSNR_MIN = 40.0      # raw storage: the decoder alone (bit-exact with the CLI on FFmpeg 5.1)
AUDIO_MAX_DIFF = 4       # int16 LSB: the same libswresample, only rounding of the downmix may differ


def linspace_indices(total, n=8):
    if total <= n:
        return list(range(total)) + [total - 1] * (n - total)
    return [int(i * (total - 1) / (n - 1)) for i in range(n)]


def ffmpeg_frames(mp4, w, h):
    total = int(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                                "stream=nb_read_packets", "-of", "csv=p=0", mp4], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, check=True).stdout.strip().split(",")[0])
    idx = linspace_indices(total)
    sel = "+".join(f"eq(n\\,{i})" for i in sorted(set(idx)))
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", mp4, "-vf",
                          f"select={sel},scale={w}:{h}:flags=bilinear", "-vsync", "0", "-pix_fmt", "rgb24", "-f",
                          "rawvideo", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    by_index = dict(zip(sorted(set(idx)), frames))
    return [by_index[i] for i in idx]


def png(path):
    with av.open(path) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def wav16(path):
    with av.open(path) as c:
        s = c.streams.audio[0]
        assert s.rate == 16000 and s.channels == 1, (path, s.rate, s.channels)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def main():
    log, out, corpus, shards = sys.argv[1:5]
    man = json.load(open(os.path.join(shards, "manifest.json")))
    w, h = man["media"]["frame_width"], man["media"]["frame_height"]
    bound = RAW_PSNR_MIN if man["media"]["frame_format"] == "raw" else JPEG_PSNR_MIN
    text = open(log).read()
    cid = re.search(r"^sample \d+: conversation (\S+),", text, re.M).group(1)
    utts = re.findall(r"^  utt (\d+): index (\d+), \S+, avatar (-?\d+), \d+ tokens, audio ([^,]+), video (.*)$", text,
                      re.M)
    assert utts, "no utterance lines in the log"
    worst, n_frames, n_audio = 99.0, 0, 0
    for u, index, avatar, audio, video in utts:
        stem = f"dia{cid}utt{index}_{avatar}"
        if video.startswith("8 frames"):
            ref = ffmpeg_frames(os.path.join(corpus, "video_v5_0", stem + ".mp4"), w, h)
            for f in range(8):
                got = png(os.path.join(out, f"utt{u}-frame{f}.png"))
                assert got.shape == (h, w, 3), (stem, f, got.shape)
                p = psnr(got, ref[f])
                worst = min(worst, p)
                assert p >= bound, f"{stem} frame {f}: PSNR {p:.1f} dB < {bound}"
                n_frames += 1
        else:
            assert not os.path.exists(os.path.join(out, f"utt{u}-frame0.png")), f"{stem}: frames without video"
        if audio.endswith(" s"):
            got = wav16(os.path.join(out, f"utt{u}.wav"))
            ref = np.frombuffer(subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i",
                                                os.path.join(corpus, "audio_v5_0", stem + ".wav"), "-ac", "1", "-ar",
                                                "16000", "-f", "s16le", "-"], capture_output=True, check=True).stdout,
                                np.int16)
            cut = int(man["media"]["audio_max_seconds"] * 16000)
            ref = ref[:cut]
            assert abs(len(got) - len(ref)) <= 16, f"{stem}: {len(got)} samples, ffmpeg {len(ref)}"
            n = min(len(got), len(ref))
            d = int(np.max(np.abs(got[:n].astype(np.int32) - ref[:n].astype(np.int32)))) if n else 0
            assert d <= AUDIO_MAX_DIFF, f"{stem}: audio differs from ffmpeg's resampling by {d} LSB"
            n_audio += 1
    assert n_frames or n_audio, "the sample has no media at all: pick another sample"
    print(f"inspect: {n_frames} {man['media']['frame_format']} frames (worst PSNR {worst:.1f} dB vs ffmpeg, bound "
          f"{bound}) and {n_audio} wav files as expected")


if __name__ == "__main__":
    main()
