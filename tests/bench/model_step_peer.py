#!/usr/bin/python3
"""The peer of model_step.c: the same fusion model, built from torch.nn and torchaudio modules by
tests/models/ref_fusion.py, trained on the same batch from the same weights, in PyTorch's Python.

  model_step_peer.py DUMP [--steps N] [--threads T]

DUMP is what `model_step ... --dump DUMP` wrote: the parameters under our names, the batch
(input.*, input.labels), our check logits (check.logits) and the metadata "config" (ref_fusion's
JSON) and "train" (AdamW's settings and the seed).

A step is what the trainer does: zero the trainable gradients, forward in training mode (dropout),
cross-entropy, backward, torch.optim.AdamW on the parameters that require gradients. The frozen audio
encoder runs in eval mode without gradients, as models/fusion.h runs it. Every trainable parameter
starts with a zero gradient, as tc_zero_grad leaves it, so AdamW steps the same set of tensors on both
sides (weight decay included) even where backward sends no gradient (an unused pooler).

Prints the line model_step prints (step_s, fwd_s, bwd_s, free_s, opt_s, zero_s, loss0, check_loss,
peak_rss_mb, peak_scope, rss0_mb, threads) plus check_err: max|ours - these| / max|these| of the logits of a
forward with dropout off on the initial weights.
"""
import argparse
import json
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from ref_fusion import INPUTS, build  # noqa: E402

NP = {"F32": np.float32, "I64": np.int64, "I16": np.int16, "U8": np.uint8}


def st_read(path):
    """(metadata, {name: tensor}), reading one tensor at a time (no second copy of the file)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        meta = header.pop("__metadata__", {})
        out = {}
        for name, e in header.items():
            b, end = e["data_offsets"]
            f.seek(8 + n + b)
            a = np.frombuffer(f.read(end - b), dtype=NP[e["dtype"]]).reshape(e["shape"])
            out[name] = torch.from_numpy(a.copy())
    return meta, out


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    meta, t = st_read(a.dump)
    config, train = json.loads(meta["config"]), json.loads(meta["train"])
    model = build(config)
    batch = {k: t.pop("input." + k) for k in INPUTS if "input." + k in t}
    labels, ours = t.pop("input.labels"), t.pop("check.logits")
    model.load_ours(t)
    del t

    model.eval()
    with torch.no_grad():
        logits = model(batch)
        check_loss = F.cross_entropy(logits, labels).item()
    check_err = ((logits - ours).abs().max() / logits.abs().max()).item()

    rss0 = rss_mb()
    peak_reset = peak_rss_reset()
    model.train()
    if config["kind"] == "audio" and config.get("audio_frozen", True):
        model.wav2vec2.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = torch.optim.AdamW(params, lr=train["lr"], betas=(train["beta1"], train["beta2"]), eps=train["eps"],
                            weight_decay=train["weight_decay"])
    torch.manual_seed(train["seed"])

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        t1 = time.perf_counter()
        loss = F.cross_entropy(model(batch), labels)
        value = loss.item()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        del loss
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        return value, {"zero": t1 - t0, "fwd": t2 - t1, "bwd": t3 - t2, "free": t4 - t3, "opt": t5 - t4, "step": t5 - t0}

    loss0, _ = step()
    times = [step()[1] for _ in range(a.steps)]
    med = {k: statistics.median(x[k] for x in times) for k in times[0]}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"step_s={med['step']:.4f} fwd_s={med['fwd']:.4f} bwd_s={med['bwd']:.4f} free_s={med['free']:.4f} "
          f"opt_s={med['opt']:.4f} zero_s={med['zero']:.4f} loss0={loss0:.6f} check_loss={check_loss:.9g} peak_rss_mb={rss:.1f} "
          f"peak_scope={'steps' if peak_reset else 'process'} rss0_mb={rss0:.1f} threads={torch.get_num_threads()} "
          f"check_err={check_err:.3g}")


if __name__ == "__main__":
    main()
