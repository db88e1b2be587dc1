#!/usr/bin/python3
"""The peer of `tests/bench/run train`: what empd train's optimizer step does, done by PyTorch's Python
on the same model, batches, ranks and threads, with torch.nn.parallel.DistributedDataParallel (gloo).

  train_peer.py RUN SHARDS [--world 2] [--steps N] [--warmup W] [--threads T]

RUN is a folder empd train wrote: the model is ref_fusion's (tests/models/ref_fusion.py) built from its
resolved config.json, hf/bert/config.json and hf/wav2vec2/config.json and the shards' manifest, and it
starts from RUN/model.safetensors, loaded strictly (so every parameter has our name and shape).
Parameters that backward never reaches (BERT's pooler under mean pooling) are frozen, as empd leaves them
out of training: DDP then needs no search for unused parameters.

The batches are the train split's real samples (tokens, roles, metadata, labels, waveforms and which
utterances have media), collated to the loader's shape for the config (batch size, 10 slots,
model.utt_tokens and model.ctx_tokens, model.audio.seconds of audio, 8 frames of the shards' size);
frame pixels are random, since no step's cost depends on their values. Rank r takes samples r,
r + world, ... Before timing, rank 0 checks the model: the validation loss of RUN's weights with dropout
off (real frames) must be the one empd logged with them (check_val).

Starts `world` processes of itself (a file:// rendezvous in a temporary folder). A step, timed on rank 0:
zero_grad, forward in training mode, cross-entropy, backward (DDP all-reduces 25 MB buckets during it),
AdamW (train.lr, betas, eps, weight_decay), then an all-reduce of the loss, as empd's step ends. After
W warm-up steps, prints on rank 0: step_s (the median of N steps), trained (parameters), slots and
media (valid and media-carrying utterance slots per sample), batch, world, threads, val_err (the
check's relative difference).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import av
import lmdb
import torch
import torch.distributed as dist
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "models"))
sys.path.insert(0, os.path.join(here, "..", "shard"))
from model_step_peer import st_read  # noqa: E402
from read_shards import parse_record  # noqa: E402
from ref_fusion import build  # noqa: E402

av.logging.set_level(av.logging.PANIC)
U, N_FRAMES, RATE = 10, 8, 16000
SEED_HEADS = {"audio": [512, 256], "video": [512, 256, 128]}


def load_json(path):
    with open(path) as f:
        return json.load(f)


def ref_config(run, man):
    """ref_fusion's config for empd's resolved config (trainer/model.c's fusion_config)."""
    c = load_json(os.path.join(run, "config.json"))
    m, fu, me = c["model"], c["model"]["fusion"], c["model"]["meta"]
    voc = man["vocabularies"]
    rows = lambda name: max(1, len(voc.get(name, [])))  # noqa: E731
    r = {"kind": m["kind"], "classes": m["num_classes"] or man["labels"], "dropout": m["dropout"],
         "bert": load_json(os.path.join(run, "hf", "bert", "config.json")),
         "bert_freeze_layers": m["bert"]["freeze_layers"], "text_pool": m["text_pool"],
         "use_coe": bool(me["use_coe"]), "rows_age": rows("age"), "rows_gender": rows("gender"),
         "rows_timbre": rows("timbre"), "rows_avatar": m["avatar_ids"], "rows_topic": rows("topic"),
         "rows_event": rows("event_scenario") if me["use_coe"] else 1,
         "rows_cause": rows("emotion_cause") if me["use_coe"] else 1,
         "rows_goal": rows("goal_to_response") if me["use_coe"] else 1,
         "lstm_layers": fu["lstm_layers"], "head_dims": fu["head"] or SEED_HEADS[m["kind"]]}
    for k in ("age_dim", "gender_dim", "timbre_dim", "avatar_dim", "topic_dim", "coe_dim"):
        r[k] = me[k]
    for k in ("meta_hidden", "meta_out", "lstm_hidden", "heads", "role_dim", "audio_hidden", "audio_out", "ctx_out",
              "meta_time"):
        r[k] = fu[k]
    if m["kind"] == "audio":
        a = m["audio"]
        r.update(audio=load_json(os.path.join(run, "hf", "wav2vec2", "config.json")), audio_frozen=a["frozen"],
                 audio_norm=a["norm"])
    else:
        v = m["video"]
        r.update(video={"image": man["media"]["frame_height"], "frames": N_FRAMES, "patch": v["patch"], "dim": v["dim"],
                        "heads": v["heads"], "layers": v["layers"], "ffn": v["ffn"], "dropout": v["dropout"],
                        "ln_eps": 1e-5, "attention": v["attention"]},
                 ctx_dims=fu["ctx"])
    return r, c


def read_split(shards, man, split, n):
    """The first n records of a split (fewer if it has fewer)."""
    out = []
    for fname in man["splits"][split]["shards"]:
        env = lmdb.open(os.path.join(shards, fname), subdir=False, readonly=True, lock=False)
        with env.begin() as txn:
            for _, v in txn.cursor():
                if len(out) == n:
                    break
                out.append(parse_record(bytes(v)))
        env.close()
    return out


def random_frames(gen, side):
    return lambda ut: torch.randint(0, 256, (N_FRAMES, side, side, 3), generator=gen, dtype=torch.uint8)


def decoded_frames(ut):
    """An utterance's JPEG frames decoded by FFmpeg's decoder (PyAV)."""
    out = []
    for hexed in ut["frames"]:
        codec = av.CodecContext.create("mjpeg", "r")
        out.append(torch.from_numpy(codec.decode(av.Packet(bytes.fromhex(hexed)))[0].to_ndarray(format="rgb24")))
    return torch.stack(out)


def collate(recs, kind, B, L, C, S, side, classes, frames):
    """The loader's batch of these records (rows past them zero), as ref_fusion's inputs, and labels;
    frames(utterance) gives the pixels of an utterance with video."""
    b = {"utt_tokens": torch.zeros(B, U, L, dtype=torch.int64), "utt_mask": torch.zeros(B, U, L),
         "utt_valid": torch.zeros(B, U), "utt_role": torch.zeros(B, U, dtype=torch.int64),
         "ctx_tokens": torch.zeros(B, C, dtype=torch.int64), "ctx_mask": torch.zeros(B, C),
         "meta": torch.zeros(B, 12, dtype=torch.int64)}
    if kind == "audio":
        b.update(audio=torch.zeros(B, U, S, dtype=torch.int16), audio_len=torch.zeros(B, U, dtype=torch.int64),
                 audio_valid=torch.zeros(B, U))
    else:
        b.update(frames=torch.zeros(B, U, N_FRAMES, side, side, 3, dtype=torch.uint8), video_valid=torch.zeros(B, U))
    labels = torch.full((B,), -100, dtype=torch.int64)
    for i, r in enumerate(recs):
        label = r["label7"] if classes == 7 else r["label32"]
        labels[i] = label if label >= 0 else -100
        b["meta"][i] = torch.tensor(r["meta"])
        ctx = r["ctx"][:C]
        b["ctx_tokens"][i, :len(ctx)] = torch.tensor(ctx, dtype=torch.int64)
        b["ctx_mask"][i, :len(ctx)] = 1
        for u, ut in enumerate(r["utts"][:U]):
            toks = ut["tokens"][:L]
            b["utt_tokens"][i, u, :len(toks)] = torch.tensor(toks, dtype=torch.int64)
            b["utt_mask"][i, u, :len(toks)] = 1
            b["utt_valid"][i, u] = 1
            b["utt_role"][i, u] = ut["role"]
            if kind == "audio" and ut["presence"] & 1:
                wave = ut["wave"][:S]
                b["audio"][i, u, :len(wave)] = torch.tensor(wave, dtype=torch.int16)
                b["audio_len"][i, u] = len(wave)
                b["audio_valid"][i, u] = 1
            if kind == "video" and ut["presence"] & 2:
                b["frames"][i, u] = frames(ut)
                b["video_valid"][i, u] = 1
    return b, labels


def check_val(model, a, man, shape):
    """The validation loss of the run's final weights, dropout off, against the one empd logged with them
    (its last eval event): the same model and inputs give the same loss (1e-4). Frames come from another
    JPEG decoder than empd's (FFmpeg's); their pixels agree closely enough. Returns the relative
    difference; exits when it is larger."""
    with open(os.path.join(a.run, "metrics.jsonl")) as f:
        evals = [json.loads(line) for line in f if '"event":"eval"' in line]
    if not evals:
        sys.exit(f"train_peer.py: {a.run}/metrics.jsonl has no eval event to check the model against")
    recs = read_split(a.shards, man, "val", man["splits"]["val"]["count"])
    total, count, B = 0.0, 0, shape[1]
    model.eval()
    with torch.no_grad():
        for k in range(0, len(recs), B):
            rows = recs[k:k + B]
            batch, labels = collate(rows, shape[0], len(rows), *shape[2:], decoded_frames)
            total += F.cross_entropy(model(batch), labels, reduction="sum").item()
            count += int((labels >= 0).sum())
    ours = evals[-1]["loss"]
    err = abs(total / max(count, 1) - ours) / abs(ours)
    if not err <= 1e-4:
        sys.exit(f"train_peer.py: the model is not empd's: validation loss {total / max(count, 1):.9g}, "
                 f"empd's {ours:.9g} (relative difference {err:.3g} > 1e-4)")
    return err


def worker(a):
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method=a.init, rank=a.rank, world_size=a.world,
                            timeout=datetime.timedelta(seconds=120))
    man = load_json(os.path.join(a.shards, "manifest.json"))
    cfg, run_cfg = ref_config(a.run, man)
    train, kind = run_cfg["train"], cfg["kind"]
    B = train["batch_size"]
    model = build(cfg)
    _, weights = st_read(os.path.join(a.run, "model.safetensors"))
    model.load_ours(weights)
    del weights

    # One epoch's worth of distinct batches at most: rank r reads samples r, r + world, ...
    n_rec = man["splits"]["train"]["count"]
    per_rank = max(1, n_rec // a.world)
    n_batches = max(1, min(a.warmup + a.steps, per_rank // B))
    recs = read_split(a.shards, man, "train", min(n_rec, a.world * B * n_batches))
    mine = recs[a.rank::a.world] or recs
    m = run_cfg["model"]
    shape = (kind, B, m["utt_tokens"], m["ctx_tokens"], int(m["audio"]["seconds"] * RATE + 0.5),
             man["media"]["frame_height"], cfg["classes"])
    pixels = random_frames(torch.Generator().manual_seed(1 + a.rank), shape[5])
    batches = [collate([mine[(k * B + i) % len(mine)] for i in range(B)], *shape, pixels) for k in range(n_batches)]
    slots = sum(float(b["utt_valid"].sum()) for b, _ in batches) / (B * n_batches)
    media = sum(float(b["audio_valid" if kind == "audio" else "video_valid"].sum()) for b, _ in batches) / (
        B * n_batches)

    val_err = check_val(model, a, man, shape) if a.rank == 0 else 0
    torch.manual_seed(train["seed"] + a.rank)
    model.train()
    probe, probe_labels = batches[0]
    F.cross_entropy(model(probe), probe_labels).backward()
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.requires_grad_(False)
    model.zero_grad(set_to_none=True)
    params = [p for p in model.parameters() if p.requires_grad]
    ddp = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=25)
    opt = torch.optim.AdamW(params, lr=train["lr"], betas=(train["beta1"], train["beta2"]), eps=train["eps"],
                            weight_decay=train["weight_decay"])

    times = []
    for step in range(a.warmup + a.steps):
        batch, labels = batches[step % n_batches]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(ddp(batch), labels)
        loss.backward()
        opt.step()
        agree = torch.tensor([loss.item(), 0.0], dtype=torch.float64)
        dist.all_reduce(agree)
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    dist.barrier()
    if a.rank == 0:
        print(f"step_s={statistics.median(times):.6f} trained={sum(p.numel() for p in params)} slots={slots:.2f} "
              f"media={media:.2f} batch={B} world={a.world} threads={torch.get_num_threads()} val_err={val_err:.3g}",
              flush=True)
    dist.destroy_process_group()


def launch(a):
    """Starts the ranks; when one fails, ends the others."""
    with tempfile.TemporaryDirectory() as tmp:
        base = [sys.executable, os.path.abspath(__file__), a.run, a.shards, "--world", str(a.world), "--steps",
                str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads), "--init",
                "file://" + os.path.join(tmp, "rendezvous")]
        procs = [subprocess.Popen(base + ["--rank", str(r)], stdout=None if r == 0 else subprocess.DEVNULL)
                 for r in range(a.world)]
        rc = 0
        while any(p.poll() is None for p in procs):
            bad = [p for p in procs if p.poll() not in (None, 0)]
            if bad:
                rc = bad[0].returncode
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
            time.sleep(0.05)
        rc = rc or next((p.returncode for p in procs if p.returncode), 0)
    if rc:
        sys.exit(f"train_peer.py: a rank failed (exit status {rc})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("shards")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rank", type=int, default=-1)
    ap.add_argument("--init", default="")
    a = ap.parse_args()
    if a.world < 1 or a.steps < 1 or a.warmup < 0 or a.threads < 1:
        sys.exit("train_peer.py: --world, --steps and --threads must be >= 1, --warmup >= 0")
    worker(a) if a.rank >= 0 else launch(a)


if __name__ == "__main__":
    main()
