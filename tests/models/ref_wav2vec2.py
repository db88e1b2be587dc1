#!/usr/bin/python3
"""References for models/wav2vec2.h (tests/models/wav2vec2_cases.c); nothing here uses our C code.

  ref_wav2vec2.py nn IN OUT          HF Wav2Vec2Model's forward (eval) assembled from torch.nn modules
  ref_wav2vec2.py torchaudio IN OUT  torchaudio.models.wav2vec2_model, torchaudio's own implementation
  ref_wav2vec2.py torchaudio-base IN OUT
                                     torchaudio.models.wav2vec2_base(), torchaudio's wav2vec2-base as
                                     it builds it (no config: the architecture is torchaudio's own)
  ref_wav2vec2.py norm IN OUT        the input normalisations in numpy, HF's frame-count formula

IN is a safetensors file: the encoder's parameters under "wav2vec2." (HF names), input.wave [N, S],
input.lengths i64 [N] (valid samples), and for the three models the loss weights input.w [N, T, H] and
input.w_pool [N, H]; metadata "config" (nn and torchaudio) is the HF config.json text the model was
built from.

The models load the parameters by name into their modules (nn.MultiheadAttention gets q, k, v
concatenated as in_proj_weight; the positional conv is torch.nn.utils.weight_norm(dim=2) with weight_g
and weight_v loaded), run the padded batch with its lengths, and write
  hidden [N, T, H], valid f32 [N, T], hidden_valid (hidden * valid), pooled [N, H] (mean over valid
  frames), frames i64 [N], and
  grad.<param> of loss = sum(pooled * w_pool) + sum(hidden * valid * w).
libtorch 1.13's oneDNN float32 GELU backward on the CPU is wrong when the gradient's strides differ from
the input's (a transpose after the activation, as every model here has), so nn and torchaudio run in float64
and torchaudio-base runs in float32 with oneDNN off (float64 would double a base model's time); all write
float32.
norm writes norm.zero_mean and norm.peak [N, S] for the wave (int16 waves are scaled by 1/32768 first)
and frames.base i64: HF's _get_feat_extract_output_lengths of input.frame_lengths (i64) for wav2vec2-base's
convs, clamped at 0.
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_models import st_load, st_load_torch, st_save  # noqa: E402

ACT = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "tanh": torch.tanh}


def load(src):
    meta, t = st_load_torch(src)
    cfg = json.loads(meta["config"]) if "config" in meta else None
    inputs = {k[len("input."):]: t.pop(k) for k in list(t) if k.startswith("input.")}
    params = {k[len("wav2vec2."):]: v for k, v in t.items()}
    return cfg, inputs, params


def hf_frames(lengths, kernels, strides):
    """Wav2Vec2Model._get_feat_extract_output_lengths."""
    for k, s in zip(kernels, strides):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths


def hf_frame_mask(frames, t):
    """Wav2Vec2Model._get_feature_vector_attention_mask: ones up to each sample's last frame."""
    mask = torch.zeros(frames.shape[0], t)
    mask[(torch.arange(frames.shape[0]), frames - 1)] = 1
    return mask.flip([-1]).cumsum(-1).flip([-1]).bool()


class Reference(nn.Module):
    """HF Wav2Vec2Model (eval) in torch.nn modules; names map to HF's through self.names."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        dims, kernels, strides = cfg["conv_dim"], cfg["conv_kernel"], cfg["conv_stride"]
        layer_mode = cfg.get("feat_extract_norm", "group") == "layer"
        eps, h = cfg.get("layer_norm_eps", 1e-5), cfg["hidden_size"]
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        self.names = {}
        cin = 1
        for i, (d, k, s) in enumerate(zip(dims, kernels, strides)):
            self.convs.append(nn.Conv1d(cin, d, k, stride=s, bias=cfg.get("conv_bias", False)))
            pre = f"feature_extractor.conv_layers.{i}."
            self.names[pre + "conv.weight"] = self.convs[i].weight
            if cfg.get("conv_bias", False):
                self.names[pre + "conv.bias"] = self.convs[i].bias
            norm = nn.LayerNorm(d) if layer_mode else nn.GroupNorm(d, d, affine=True) if i == 0 else nn.Identity()
            self.norms.append(norm)
            if not isinstance(norm, nn.Identity):
                self.names[pre + "layer_norm.weight"], self.names[pre + "layer_norm.bias"] = norm.weight, norm.bias
            cin = d
        self.proj_ln, self.proj = nn.LayerNorm(cin, eps=eps), nn.Linear(cin, h)
        k = cfg["num_conv_pos_embeddings"]
        self.pos = nn.utils.weight_norm(
            nn.Conv1d(h, h, k, padding=k // 2, groups=cfg["num_conv_pos_embedding_groups"]), name="weight", dim=2)
        self.enc_ln = nn.LayerNorm(h, eps=eps)
        self.names.update({
            "feature_projection.layer_norm.weight": self.proj_ln.weight,
            "feature_projection.layer_norm.bias": self.proj_ln.bias,
            "feature_projection.projection.weight": self.proj.weight,
            "feature_projection.projection.bias": self.proj.bias,
            "encoder.pos_conv_embed.conv.weight_g": self.pos.weight_g,
            "encoder.pos_conv_embed.conv.weight_v": self.pos.weight_v,
            "encoder.pos_conv_embed.conv.bias": self.pos.bias,
            "encoder.layer_norm.weight": self.enc_ln.weight,
            "encoder.layer_norm.bias": self.enc_ln.bias,
        })
        self.attn, self.ln1, self.ff1, self.ff2, self.ln2 = (nn.ModuleList() for _ in range(5))
        for n in range(cfg["num_hidden_layers"]):
            self.attn.append(nn.MultiheadAttention(h, cfg["num_attention_heads"], batch_first=True))
            self.ln1.append(nn.LayerNorm(h, eps=eps))
            self.ff1.append(nn.Linear(h, cfg["intermediate_size"]))
            self.ff2.append(nn.Linear(cfg["intermediate_size"], h))
            self.ln2.append(nn.LayerNorm(h, eps=eps))
            pre = f"encoder.layers.{n}."
            for ours, mod in (("layer_norm", self.ln1[n]), ("feed_forward.intermediate_dense", self.ff1[n]),
                              ("feed_forward.output_dense", self.ff2[n]), ("final_layer_norm", self.ln2[n]),
                              ("attention.out_proj", self.attn[n].out_proj)):
                self.names[pre + ours + ".weight"], self.names[pre + ours + ".bias"] = mod.weight, mod.bias

    def load(self, params):
        """Copies our tensors in; q, k, v go into slices of each in_proj."""
        h = self.cfg["hidden_size"]
        with torch.no_grad():
            for name, p in self.names.items():
                p.copy_(params[name])
            for n, a in enumerate(self.attn):
                for j, part in enumerate(("q_proj", "k_proj", "v_proj")):
                    a.in_proj_weight[j * h:(j + 1) * h] = params[f"encoder.layers.{n}.attention.{part}.weight"]
                    a.in_proj_bias[j * h:(j + 1) * h] = params[f"encoder.layers.{n}.attention.{part}.bias"]
        expected = set(self.names) | {f"encoder.layers.{n}.attention.{p}.{w}" for n in range(len(self.attn))
                                      for p in ("q_proj", "k_proj", "v_proj") for w in ("weight", "bias")}
        if expected != set(params):
            sys.exit(f"parameter names differ: {sorted(expected ^ set(params))}")

    def grads(self):
        h = self.cfg["hidden_size"]
        out = {name: p.grad for name, p in self.names.items()}
        for n, a in enumerate(self.attn):
            for j, part in enumerate(("q_proj", "k_proj", "v_proj")):
                out[f"encoder.layers.{n}.attention.{part}.weight"] = a.in_proj_weight.grad[j * h:(j + 1) * h]
                out[f"encoder.layers.{n}.attention.{part}.bias"] = a.in_proj_bias.grad[j * h:(j + 1) * h]
        return out

    def forward(self, wave, lengths):
        cfg = self.cfg
        ext_act, act = ACT[cfg.get("feat_extract_activation", "gelu")], ACT[cfg.get("hidden_act", "gelu")]
        x = wave[:, None]
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            x = norm(x.transpose(1, 2)).transpose(1, 2) if isinstance(norm, nn.LayerNorm) else norm(x)
            x = ext_act(x)
        x = x.transpose(1, 2)
        frames = hf_frames(lengths, cfg["conv_kernel"], cfg["conv_stride"])
        valid = hf_frame_mask(frames, x.shape[1])
        x = self.proj(self.proj_ln(x))
        x = x.masked_fill(~valid[..., None], 0.0)
        pos = self.pos(x.transpose(1, 2))
        if cfg["num_conv_pos_embeddings"] % 2 == 0:
            pos = pos[..., :-1]
        x = x + ext_act(pos).transpose(1, 2)
        stable = cfg.get("do_stable_layer_norm", False)
        if not stable:
            x = self.enc_ln(x)
        for n, a in enumerate(self.attn):
            if stable:
                y = self.ln1[n](x)
                x = x + a(y, y, y, key_padding_mask=~valid, need_weights=False)[0]
                x = x + self.ff2[n](act(self.ff1[n](self.ln2[n](x))))
            else:
                x = self.ln1[n](x + a(x, x, x, key_padding_mask=~valid, need_weights=False)[0])
                x = self.ln2[n](x + self.ff2[n](act(self.ff1[n](x))))
        if stable:
            x = self.enc_ln(x)
        return x, valid, frames


def finish(dst, hidden, valid, frames, inputs, grads_of):
    """Pools, backpropagates the test's loss and writes the outputs."""
    v = valid.to(hidden.dtype)
    pooled = (hidden * v[..., None]).sum(1) / v.sum(1, keepdim=True)
    w, w_pool = inputs["w"].to(hidden.dtype), inputs["w_pool"].to(hidden.dtype)
    ((pooled * w_pool).sum() + (hidden * v[..., None] * w).sum()).backward()
    out = [("hidden", "F32", hidden.detach().float().numpy()), ("valid", "F32", v.float().numpy()),
           ("hidden_valid", "F32", (hidden * v[..., None]).detach().float().numpy()),
           ("pooled", "F32", pooled.detach().float().numpy()), ("frames", "I64", frames.numpy())]
    out += [("grad.wav2vec2." + k, "F32", g.float().numpy()) for k, g in grads_of().items()]
    st_save(dst, out)


def nn_reference(src, dst):
    cfg, inputs, params = load(src)
    model = Reference(cfg).double()
    model.load(params)
    model.eval()
    hidden, valid, frames = model(inputs["wave"].double(), inputs["lengths"])
    finish(dst, hidden, valid, frames, inputs, model.grads)


def torchaudio_name(name):
    """HF name -> torchaudio's (the map torchaudio's own import_huggingface_model applies)."""
    if name.startswith("feature_projection."):
        return "encoder." + name
    if name.startswith("encoder."):
        return "encoder.transformer." + name[len("encoder."):]
    return name


def torchaudio_run(model, inputs, params, dst, dtype):
    """Loads our parameters into torchaudio's model (strictly: every name on both sides) and runs it in
    dtype."""
    model.load_state_dict({torchaudio_name(k): v for k, v in params.items()}, strict=True)
    model.to(dtype).eval()
    hidden, frames = model(inputs["wave"].to(dtype), inputs["lengths"])
    valid = torch.arange(hidden.shape[1])[None] < frames[:, None]
    named = dict(model.named_parameters())
    finish(dst, hidden, valid, frames, inputs, lambda: {k: named[torchaudio_name(k)].grad for k in params})


def torchaudio_reference(src, dst):
    import torchaudio

    cfg, inputs, params = load(src)
    model = torchaudio.models.wav2vec2_model(
        extractor_mode=cfg.get("feat_extract_norm", "group") + "_norm",
        extractor_conv_layer_config=list(zip(cfg["conv_dim"], cfg["conv_kernel"], cfg["conv_stride"])),
        extractor_conv_bias=cfg.get("conv_bias", False),
        encoder_embed_dim=cfg["hidden_size"],
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=cfg["num_conv_pos_embeddings"],
        encoder_pos_conv_groups=cfg["num_conv_pos_embedding_groups"],
        encoder_num_layers=cfg["num_hidden_layers"],
        encoder_num_heads=cfg["num_attention_heads"],
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=cfg["intermediate_size"],
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=cfg.get("do_stable_layer_norm", False),
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )
    torchaudio_run(model, inputs, params, dst, torch.float64)


def torchaudio_base_reference(src, dst):
    import torchaudio

    _, inputs, params = load(src)
    model = torchaudio.models.wav2vec2_base(encoder_projection_dropout=0.0, encoder_attention_dropout=0.0,
                                            encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
                                            encoder_layer_drop=0.0)
    torch.backends.mkldnn.enabled = False
    torchaudio_run(model, inputs, params, dst, torch.float32)


def hf_zero_mean_unit_var_norm(input_values, attention_mask):
    """Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm with an attention mask, padding_value 0."""
    normed = []
    for vector, length in zip(input_values, attention_mask.sum(-1)):
        normed_slice = (vector - vector[:length].mean()) / np.sqrt(vector[:length].var() + 1e-7)
        if length < normed_slice.shape[0]:
            normed_slice[length:] = 0.0
        normed.append(normed_slice)
    return normed


def norm_reference(src, dst):
    meta, tensors = st_load(src)
    t = {name: a for name, _, _, a in tensors}
    wave, lengths = t["input.wave"], t["input.lengths"]
    x = wave.astype(np.float32) / np.float32(32768.0) if wave.dtype == np.int16 else wave.astype(np.float32)
    mask = (np.arange(x.shape[1])[None] < lengths[:, None]).astype(np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty sample's mean is NaN there, then overwritten by padding
        zero_mean = np.stack(hf_zero_mean_unit_var_norm(x.copy(), mask)).astype(np.float32)
    peak = np.zeros_like(x)
    for i, n in enumerate(lengths):
        m = np.abs(x[i, :n]).max() if n > 0 else 0.0
        if m > 0:
            peak[i, :n] = x[i, :n] / m
    frames = hf_frames(torch.from_numpy(t["input.frame_lengths"].copy()), [10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2])
    st_save(dst, [("norm.zero_mean", "F32", zero_mean), ("norm.peak", "F32", peak),
                  ("frames.base", "I64", frames.clamp(min=0).numpy())])


def main():
    modes = {"nn": nn_reference, "torchaudio": torchaudio_reference, "torchaudio-base": torchaudio_base_reference,
             "norm": norm_reference}
    if len(sys.argv) != 4 or sys.argv[1] not in modes:
        sys.exit("usage: ref_wav2vec2.py nn|torchaudio|torchaudio-base|norm IN OUT")
    modes[sys.argv[1]](sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
