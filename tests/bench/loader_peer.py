#!/usr/bin/env python3
"""loader_peer.py SHARDS CORPUS BATCH STEPS: the seed's way of feeding a model, for tests/bench/run loader.

Every training sample is decoded on the fly from its mp4 and wav files, in Python: PyAV decodes each clip's
frames in order and keeps 8 by the seed's linspace rule, reformatted to the shards' frame size in rgb24; the
wav is resampled to 16 kHz mono int16 and cut or padded to the shards' length; then batches are collated into
numpy arrays of the loader's shape [B, 10, 8, H, W, 3] and [B, 10, S]. Two worker processes, like a PyTorch
DataLoader with num_workers=2. The samples and their order are those bench_loader reads (the train split,
shuffled by the sampler's rule with seed 1, epoch 0, which CPython's random reproduces). Prints
`samples=N seconds=S`.
"""
import concurrent.futures
import json
import os
import random
import sys
import time

import av
import av.logging
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shard_peers import linspace_indices  # noqa: E402

av.logging.set_level(av.logging.PANIC)
U = 10


def utterance_stems(corpus):
    """conversation id -> the stems of its sample's utterances (last turn: history + response, last 10)."""
    out = {}
    for c in json.load(open(os.path.join(corpus, "train.json"), encoding="utf-8")):
        turns = [t for t in c.get("turns") or [] if str(t.get("turn_id", "")).isdigit()]
        if not turns:
            continue
        last = max(turns, key=lambda t: int(t["turn_id"]))
        idx = [h["index"] for h in last.get("dialogue_history") or []] + [2 * int(last["turn_id"]) + 1]
        ids = {0: (c.get("speaker_profile") or {}).get("ID"), 1: (c.get("listener_profile") or {}).get("ID")}
        out[c["conversation_id"]] = [f"dia{c['conversation_id']}utt{k}_{ids[k % 2]}" for k in idx[-U:]]
    return out


def load_sample(args):
    corpus, stems, w, h, s = args
    frames = np.zeros((U, 8, h, w, 3), np.uint8)
    audio = np.zeros((U, s), np.int16)
    for u, stem in enumerate(stems):
        try:
            with av.open(os.path.join(corpus, "video_v5_0", stem + ".mp4")) as c:
                decoded = list(c.decode(video=0))
            for k, i in enumerate(linspace_indices(len(decoded))):
                frames[u, k] = decoded[i].reformat(width=w, height=h, format="rgb24").to_ndarray()
        except (av.error.FFmpegError, IndexError):
            pass
        try:
            with av.open(os.path.join(corpus, "audio_v5_0", stem + ".wav")) as c:
                rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
                parts = [g.to_ndarray().reshape(-1) for f in c.decode(audio=0) for g in rs.resample(f)]
            wave = np.concatenate(parts)[:s] if parts else np.zeros(0, np.int16)
            audio[u, :len(wave)] = wave
        except av.error.FFmpegError:
            pass
    return frames, audio


def main():
    shards, corpus, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    man = json.load(open(os.path.join(shards, "manifest.json")))
    ids = man["splits"]["train"]["conversation_ids"]
    media = man["media"]
    w, h, s = media["frame_width"], media["frame_height"], int(media["audio_max_seconds"] * 16000)
    order = list(range(len(ids)))
    random.seed(1 + (0 << 64))
    random.shuffle(order)
    n = steps * batch
    order = (order * (n // len(order) + 1))[:n]
    stems = utterance_stems(corpus)
    jobs = [(corpus, stems[ids[i]], w, h, s) for i in order]
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        samples = ex.map(load_sample, jobs, chunksize=2)
        for b in range(steps):
            rows = [next(samples) for _ in range(batch)]
            np.stack([r[0] for r in rows])
            np.stack([r[1] for r in rows])
    print(f"samples={n} seconds={time.perf_counter() - t0:.3f}")


if __name__ == "__main__":
    main()
