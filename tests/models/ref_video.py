#!/usr/bin/python3
"""References for the video encoder's tests (video_cases.c), built from torch.nn modules and numpy;
nothing here uses our C code.

  ref_video.py joint IN OUT       nn.Conv2d patch embedding, layers x nn.TransformerEncoderLayer(
                                  norm_first=True, batch_first=True, activation="gelu", dropout=0),
                                  nn.LayerNorm, mean over the tokens
  ref_video.py divided IN OUT     the same with divided space-time blocks composed of
                                  nn.MultiheadAttention, nn.LayerNorm and nn.Linear
  ref_video.py normalize IN OUT   numpy: input.frames -> pixels, ToTensor's / 255 then Normalize's
                                  (x - mean) / std with ImageNet's mean and std, channels last

IN (safetensors): the model's parameters under "<prefix>." (metadata "prefix", "heads", "eps"),
input.frames u8 [N, F, H, W, 3] and the loss weights input.w [N, dim]. OUT: out [N, dim] and
grad.<param> = d sum(out * w) / d param, in eval mode.
"""
import sys

import numpy as np

from ref_models import st_load, st_load_torch, st_save

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize_reference(src, dst):
    _, tensors = st_load(src)
    frames = {name: a for name, _, _, a in tensors}["input.frames"]
    x = frames.astype(np.float32) / np.float32(255)
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    st_save(dst, [("pixels", "F32", x)])


def model_reference(src, dst, divided):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    meta, t = st_load_torch(src)
    frames, w = t.pop("input.frames"), t.pop("input.w")
    prefix, heads, eps = meta["prefix"] + ".", int(meta["heads"]), float(meta["eps"])
    state = {k[len(prefix):]: v for k, v in t.items()}
    dim, _, patch, _ = state["patch_embed.weight"].shape
    n_pos, frames_per_clip = state["pos_spatial"].shape[0], state["pos_temporal"].shape[0]
    ffn = state["layers.0.linear1.weight"].shape[0]
    layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})

    class DividedBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.temporal_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm_t = nn.LayerNorm(dim, eps=eps)
            self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.linear1 = nn.Linear(dim, ffn)
            self.linear2 = nn.Linear(ffn, dim)
            self.norm1 = nn.LayerNorm(dim, eps=eps)
            self.norm2 = nn.LayerNorm(dim, eps=eps)

        def forward(self, x):
            n, f, p, d = x.shape
            h = self.norm_t(x).permute(0, 2, 1, 3).reshape(n * p, f, d)
            h = self.temporal_attn(h, h, h, need_weights=False)[0]
            x = x + h.reshape(n, p, f, d).permute(0, 2, 1, 3)
            x = x.reshape(n * f, p, d)
            h = self.norm1(x)
            x = x + self.self_attn(h, h, h, need_weights=False)[0]
            x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
            return x.reshape(n, f, p, d)

    class Video(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
            self.pos_spatial = nn.Parameter(torch.zeros(n_pos, dim))
            self.pos_temporal = nn.Parameter(torch.zeros(frames_per_clip, dim))
            if divided:
                self.layers = nn.ModuleList([DividedBlock() for _ in range(layers)])
            else:
                self.layers = nn.ModuleList([
                    nn.TransformerEncoderLayer(dim, heads, ffn, dropout=0.0, activation="gelu", layer_norm_eps=eps,
                                               batch_first=True, norm_first=True) for _ in range(layers)])
            self.norm = nn.LayerNorm(dim, eps=eps)

        def forward(self, u8):
            n, f, h, w_, _ = u8.shape
            x = u8.float() / 255
            x = (x - torch.tensor(MEAN)) / torch.tensor(STD)
            x = x.permute(0, 1, 4, 2, 3).reshape(n * f, 3, h, w_)
            x = self.patch_embed(x).flatten(2).transpose(1, 2).reshape(n, f, n_pos, dim)
            x = x + self.pos_spatial + self.pos_temporal[:, None]
            if not divided:
                x = x.reshape(n, f * n_pos, dim)
            for layer in self.layers:
                x = layer(x)
            return self.norm(x.reshape(n, f * n_pos, dim)).mean(1)

    model = Video()
    model.load_state_dict(state, strict=True)
    model.eval()
    out = model(frames)
    (out * w).sum().backward()
    res = [("out", "F32", out.detach().numpy())]
    res += [("grad." + prefix + k, "F32", p.grad.numpy()) for k, p in model.named_parameters()]
    st_save(dst, res)


def main():
    mode = sys.argv[1]
    if mode == "normalize":
        normalize_reference(sys.argv[2], sys.argv[3])
    elif mode in ("joint", "divided"):
        model_reference(sys.argv[2], sys.argv[3], mode == "divided")
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
