#!/usr/bin/python3
"""The two fusion models of models/fusion.h built from torch.nn and torchaudio modules (nothing here
uses our C code): the reference for fusion_cases.c and the peer of the fusion benchmark.

  ref_fusion.py audio IN OUT    AudioModel on the parameters and inputs of IN
  ref_fusion.py video IN OUT    VideoModel on the parameters and inputs of IN
  ref_fusion.py selftest        builds both tiny models and checks the name mapping round trip,
                                BERT and torchaudio's Wav2Vec2 against HF's math written out below,
                                and that padding and absent media do not reach the logits

IN (safetensors): every parameter under our names (HF names below "bert." and "wav2vec2.", torch.nn
names elsewhere), the inputs input.utt_tokens, input.utt_mask, input.utt_valid, input.utt_role,
input.ctx_tokens, input.ctx_mask, input.meta, input.audio, input.audio_len, input.audio_valid
(audio) or input.frames, input.video_valid (video), the loss weights input.w [B, classes], and
metadata "config" (the JSON below). OUT: logits and grad.<name> = d sum(logits * w) / d param for
every trainable parameter, in eval mode.

Config JSON (mf_config's fields; "bert" and "audio" in HF's config.json names):
  {"kind": "audio"|"video", "classes", "dropout",
   "bert": {vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
            max_position_embeddings, type_vocab_size, layer_norm_eps, hidden_act,
            hidden_dropout_prob, attention_probs_dropout_prob},
   "bert_freeze_layers" (0 nothing, k > 0 the embeddings and k layers, -1 all of BERT),
   "text_pool": "cls"|"pooler"|"mean",
   "audio": {conv_dim, conv_kernel, conv_stride, conv_bias, feat_extract_norm, hidden_size,
             num_hidden_layers, num_attention_heads, intermediate_size, num_conv_pos_embeddings,
             num_conv_pos_embedding_groups, do_stable_layer_norm, layer_norm_eps, hidden_dropout,
             attention_dropout, activation_dropout, feat_proj_dropout, layerdrop},
   "audio_frozen", "audio_norm": "none"|"zero_mean"|"peak",
   "video": {image, frames, patch, dim, heads, layers, ffn, dropout, ln_eps, attention: "joint"|"divided"},
   "use_coe", "rows_age", ..., "rows_goal", "age_dim", ..., "coe_dim", "meta_hidden", "meta_out",
   "lstm_hidden", "heads", "role_dim", "lstm_layers", "audio_hidden", "audio_out", "ctx_out",
   "meta_time", "ctx_dims": [...], "head_dims": [...]}

Use from python: `from ref_fusion import AudioModel, VideoModel, build`; model.load_ours(state) takes
a dict under our names (strict), model.ours_state_dict() and model.ours_grads() give them back.
Call cpu_onednn_off() first when training on the CPU with torch 1.13: its oneDNN float32 GELU
backward is wrong when the gradient has other strides than the activation's input, which is what
Wav2Vec2's transpose after the feature encoder sends back (its conv gradients come out garbage).
"""
import json
import math
import re
import sys

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

META_FIELDS = ("age", "gender", "timbre", "avatar", "age", "gender", "timbre", "avatar", "topic",
               "event", "cause", "goal")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ACTS = {"gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}


class MLP(nn.ModuleList):
    """ml_mlp: Linear layers named "<name>.<i>", ReLU and dropout after each (after the last too
    when act_last)."""

    def __init__(self, dims, dropout, act_last):
        super().__init__([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.dropout, self.act_last = dropout, act_last

    def forward(self, x):
        for i, lin in enumerate(self):
            x = lin(x)
            if self.act_last or i + 1 < len(self):
                x = F.dropout(F.relu(x), self.dropout, self.training)
        return x


# ---- BERT: HF BertModel's math from nn.Embedding, nn.LayerNorm and post-LN encoder layers ----------

class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], h)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c.get("type_vocab_size", 2), h)
        self.LayerNorm = nn.LayerNorm(h, eps=c.get("layer_norm_eps", 1e-12))
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.1))

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings(
            torch.zeros_like(ids))
        return self.dropout(self.LayerNorm(x))


class BertPooler(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.dense = nn.Linear(h, h)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))


class Bert(nn.Module):
    # HF layer names -> nn.TransformerEncoderLayer names (query/key/value are in_proj's thirds).
    LAYER_NAMES = (("attention.output.dense", "self_attn.out_proj"), ("attention.output.LayerNorm", "norm1"),
                   ("intermediate.dense", "linear1"), ("output.dense", "linear2"), ("output.LayerNorm", "norm2"))

    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.embeddings = BertEmbeddings(c)
        # HF's attention dropout and hidden dropout differ; nn's layer has one, the hidden one.
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(h, c["num_attention_heads"], c["intermediate_size"],
                                       c.get("hidden_dropout_prob", 0.1), ACTS[c.get("hidden_act", "gelu")],
                                       c.get("layer_norm_eps", 1e-12), batch_first=True, norm_first=False)
            for _ in range(c["num_hidden_layers"])])
        for layer in self.layers:
            layer.self_attn.dropout = c.get("attention_probs_dropout_prob", 0.1)
            layer.dropout = nn.Identity()  # HF has no dropout after the intermediate activation
        self.pooler = BertPooler(h)

    def forward(self, ids, mask):
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=mask < 0.5)
        return x

    def freeze(self, k):
        """bert_freeze: the embeddings and the first k layers; k < 0 everything, pooler included."""
        if k == 0:  # mf_config's 0: nothing frozen
            return
        frozen = [self.embeddings] + list(self.layers[:k] if k >= 0 else self.layers) + ([self.pooler] if k < 0 else [])
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    @staticmethod
    def to_torch(ours):
        out = {}
        for name, v in ours.items():
            m = re.match(r"encoder\.layer\.(\d+)\.(.*)\.(weight|bias)$", name)
            if not m:
                out[name] = v
                continue
            i, part, kind = m.groups()
            if part.startswith("attention.self."):
                if part.endswith("query"):
                    out[f"layers.{i}.self_attn.in_proj_{kind}"] = torch.cat(
                        [ours[f"encoder.layer.{i}.attention.self.{s}.{kind}"] for s in ("query", "key", "value")])
                continue
            out[f"layers.{i}.{dict(Bert.LAYER_NAMES)[part]}.{kind}"] = v
        return out

    @staticmethod
    def from_torch(sd):
        out = {}
        for name, v in sd.items():
            m = re.match(r"layers\.(\d+)\.(self_attn\.in_proj|.*)[._](weight|bias)$", name)
            if not m:
                out[name] = v
                continue
            i, part, kind = m.groups()
            if part == "self_attn.in_proj":
                for s, chunk in zip(("query", "key", "value"), v.chunk(3)):
                    out[f"encoder.layer.{i}.attention.self.{s}.{kind}"] = chunk
            else:
                hf = {t: h for h, t in Bert.LAYER_NAMES}[part]
                out[f"encoder.layer.{i}.{hf}.{kind}"] = v
        return out


# ---- Wav2Vec2: torchaudio's model, HF's names ------------------------------------------------------

W2V_NAMES = (("feature_projection.", "encoder.feature_projection."),
             ("encoder.pos_conv_embed.", "encoder.transformer.pos_conv_embed."),
             ("encoder.layer_norm.", "encoder.transformer.layer_norm."),
             ("encoder.layers.", "encoder.transformer.layers."))


def w2v_build(c):
    for act in ("hidden_act", "feat_extract_activation"):
        if c.get(act, "gelu") != "gelu":
            raise ValueError(f"audio.{act}: torchaudio's Wav2Vec2 has GELU only")
    convs = list(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"]))
    return torchaudio.models.wav2vec2_model(
        "layer_norm" if c.get("feat_extract_norm", "group") == "layer" else "group_norm", convs,
        c.get("conv_bias", False), c["hidden_size"], c.get("feat_proj_dropout", 0.0),
        c["num_conv_pos_embeddings"], c["num_conv_pos_embedding_groups"], c["num_hidden_layers"],
        c["num_attention_heads"], c.get("attention_dropout", 0.1), c["intermediate_size"],
        c.get("activation_dropout", 0.1), c.get("hidden_dropout", 0.1), c.get("do_stable_layer_norm", False),
        c.get("layerdrop", 0.1), None)


def w2v_rename(name, pairs):
    for a, b in pairs:
        if name.startswith(a):
            return b + name[len(a):]
    return name


def audio_normalise(wave_i16, lengths, mode):
    """w2v_normalize: i16 / 32768, then per sample over its first lengths[i] samples; padding 0."""
    x = wave_i16.to(torch.get_default_dtype()) / 32768.0
    if mode == "none":
        return x
    valid = (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None]).float()
    if mode == "zero_mean":
        n = lengths.clamp(min=1).float()[:, None]
        mean = (x * valid).sum(-1, keepdim=True) / n
        var = (((x - mean) * valid) ** 2).sum(-1, keepdim=True) / n
        x = (x - mean) / torch.sqrt(var + 1e-7)
    elif mode == "peak":
        peak = (x.abs() * valid).amax(-1, keepdim=True)
        x = torch.where(peak > 0, x / peak.clamp_min(1e-30), torch.zeros_like(x))
    else:
        raise ValueError(f"audio_norm '{mode}'")
    return x * valid


# ---- Video transformer --------------------------------------------------------------------------

class DividedBlock(nn.Module):
    """Divided space-time attention: over time per patch, then over space per frame, then the FFN."""

    def __init__(self, c):
        super().__init__()
        d, eps, p = c["dim"], c["ln_eps"], c["dropout"]
        self.temporal_attn = nn.MultiheadAttention(d, c["heads"], p, batch_first=True)
        self.norm_t = nn.LayerNorm(d, eps=eps)
        self.self_attn = nn.MultiheadAttention(d, c["heads"], p, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, c["ffn"]), nn.Linear(c["ffn"], d)
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.p = p

    def forward(self, x, frames):
        drop = lambda t: F.dropout(t, self.p, self.training)  # noqa: E731
        n, fp, d = x.shape
        h = self.norm_t(x).view(n, frames, fp // frames, d).transpose(1, 2).reshape(-1, frames, d)
        h = self.temporal_attn(h, h, h, need_weights=False)[0]
        x = x + drop(h.view(n, fp // frames, frames, d).transpose(1, 2).reshape(n, fp, d))
        h = self.norm1(x).view(n * frames, fp // frames, d)
        x = x + drop(self.self_attn(h, h, h, need_weights=False)[0].view(n, fp, d))
        return x + drop(self.linear2(drop(F.gelu(self.linear1(self.norm2(x))))))


class VideoViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, grid = c["dim"], c["image"] // c["patch"]
        self.frames, self.p = c["frames"], c["dropout"]
        self.patch_embed = nn.Conv2d(3, d, c["patch"], stride=c["patch"])
        self.pos_spatial = nn.Parameter(torch.randn(grid * grid, d) * 0.02)
        self.pos_temporal = nn.Parameter(torch.randn(c["frames"], d) * 0.02)
        self.divided = c.get("attention", "joint") == "divided"
        self.layers = nn.ModuleList([
            DividedBlock(c) if self.divided else
            nn.TransformerEncoderLayer(d, c["heads"], c["ffn"], c["dropout"], "gelu", c["ln_eps"],
                                       batch_first=True, norm_first=True)
            for _ in range(c["layers"])])
        self.norm = nn.LayerNorm(d, eps=c["ln_eps"])

    def forward(self, frames_u8):
        n, f, h, w, _ = frames_u8.shape
        mean = torch.tensor(IMAGENET_MEAN, device=frames_u8.device)
        std = torch.tensor(IMAGENET_STD, device=frames_u8.device)
        x = (frames_u8.to(torch.get_default_dtype()) / 255.0 - mean) / std
        x = self.patch_embed(x.reshape(n * f, h, w, 3).permute(0, 3, 1, 2))
        x = x.flatten(2).transpose(1, 2) + self.pos_spatial[None]
        x = (x.view(n, f, -1, x.shape[-1]) + self.pos_temporal[None, :, None]).reshape(n, -1, x.shape[-1])
        x = F.dropout(x, self.p, self.training)
        for layer in self.layers:
            x = layer(x, f) if self.divided else layer(x)
        return self.norm(x).mean(1)


# ---- The fusion models ---------------------------------------------------------------------------

class FusionBase(nn.Module):
    """The parts both models share: text, metadata, and the masked sequence helpers."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.bert = Bert(c["bert"])
        self.bert.freeze(c.get("bert_freeze_layers", 0))
        fields = ["age", "gender", "timbre", "avatar", "topic"] + (["event", "cause", "goal"] if c["use_coe"] else [])
        self.meta = nn.ModuleDict({
            f: nn.Embedding(c["rows_" + f], c[(f if f in ("age", "gender", "timbre", "avatar", "topic") else "coe")
                                                + "_dim"]) for f in fields})
        self.meta_mlp = MLP([self.meta_width(), c["meta_hidden"], c["meta_out"]], c["dropout"], True)

    def meta_width(self):
        return sum(self.meta[f].embedding_dim for f in META_FIELDS if f in self.meta)

    def meta_embed(self, meta):
        cols = []
        for j, f in enumerate(META_FIELDS):
            if f not in self.meta:
                continue
            ids = meta[:, j]
            ids = torch.where((ids >= 0) & (ids < self.meta[f].num_embeddings), ids, torch.zeros_like(ids))
            cols.append(self.meta[f](ids))
        return torch.cat(cols, -1)

    def text_pool(self, ids, mask):
        hidden = self.bert(ids, mask)
        pool = self.c.get("text_pool", "cls")
        if pool == "cls":
            return hidden[:, 0]
        if pool == "pooler":
            return self.bert.pooler(hidden)
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)

    def per_slot(self, fn, inputs, present, width):
        """fn on the slots where present [B, U] is set (rows of inputs [B, U, ...]); others 0."""
        b, u = present.shape
        out = present.new_zeros((b * u, width))
        idx = (present.reshape(-1) > 0.5).nonzero().squeeze(1)
        if idx.numel():
            out = out.index_copy(0, idx, fn(*[t.reshape(b * u, *t.shape[2:])[idx] for t in inputs]))
        return out.view(b, u, width)

    def with_missing(self, feats, present, missing):
        return torch.where(present[..., None] > 0.5, feats, missing.expand_as(feats))

    def utt_text(self, batch):
        h = self.c["bert"]["hidden_size"]
        return self.per_slot(self.text_pool, [batch["utt_tokens"], batch["utt_mask"]], batch["utt_valid"], h)

    @staticmethod
    def lengths(batch):
        return batch["utt_valid"].sum(1).round().long()

    @staticmethod
    def run_lstm(lstm, x, lengths):
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]

    @staticmethod
    def attend(attn, x, valid):
        return attn(x, x, x, key_padding_mask=valid < 0.5, need_weights=False)[0]

    @staticmethod
    def last_valid(x, lengths):
        return x[torch.arange(x.shape[0], device=x.device), (lengths - 1).clamp(min=0).to(x.device)]

    def new_lstm(self, width):
        c = self.c
        return nn.LSTM(width, c["lstm_hidden"], c["lstm_layers"], batch_first=True, bidirectional=True,
                       dropout=c["dropout"] if c["lstm_layers"] > 1 else 0.0)

    def new_attn(self):
        return nn.MultiheadAttention(2 * self.c["lstm_hidden"], self.c["heads"], self.c["dropout"], batch_first=True)

    # Our names <-> the modules' state_dict names.
    def to_torch(self, ours):
        out = {}
        bert = Bert.to_torch({k[5:]: v for k, v in ours.items() if k.startswith("bert.")})
        out.update({"bert." + k: v for k, v in bert.items()})
        for k, v in ours.items():
            if k.startswith("wav2vec2."):
                out["wav2vec2." + w2v_rename(k[9:], W2V_NAMES)] = v
            elif not k.startswith("bert."):
                out[k] = v
        return out

    def from_torch(self, sd):
        out = {}
        bert = Bert.from_torch({k[5:]: v for k, v in sd.items() if k.startswith("bert.")})
        out.update({"bert." + k: v for k, v in bert.items()})
        back = [(b, a) for a, b in W2V_NAMES]
        for k, v in sd.items():
            if k.startswith("wav2vec2."):
                out["wav2vec2." + w2v_rename(k[9:], back)] = v
            elif not k.startswith("bert."):
                out[k] = v
        return out

    def load_ours(self, ours):
        self.load_state_dict(self.to_torch(ours), strict=True)

    def ours_state_dict(self):
        return self.from_torch(self.state_dict())

    def ours_grads(self):
        """Our name -> gradient of every trainable parameter (zeros where backward left none)."""
        return self.from_torch({k: (p.grad if p.grad is not None else torch.zeros_like(p))
                                for k, p in self.named_parameters() if p.requires_grad})


class AudioModel(FusionBase):
    def __init__(self, c):
        super().__init__(c)
        a, ht = c["audio"], c["bert"]["hidden_size"]
        self.wav2vec2 = w2v_build(a)
        if c.get("audio_frozen", True):
            self.wav2vec2.requires_grad_(False)
        self.audio_mlp = MLP([a["hidden_size"], c["audio_hidden"], c["audio_out"]], c["dropout"], True)
        self.audio_missing = nn.Parameter(torch.randn(c["audio_out"]) * 0.02)
        self.role = nn.Embedding(3, c["role_dim"])
        self.lstm = self.new_lstm(ht + c["audio_out"] + c["role_dim"])
        self.attn = self.new_attn()
        self.ctx_proj = nn.Linear(ht, c["ctx_out"])
        self.head = MLP([c["ctx_out"] + 2 * c["lstm_hidden"] + c["meta_out"]] + list(c["head_dims"]) + [c["classes"]],
                        c["dropout"], False)

    def train(self, mode=True):
        """A frozen encoder stays in evaluation mode: a fixed feature extractor, as ours runs it."""
        super().train(mode)
        if self.c.get("audio_frozen", True):
            self.wav2vec2.eval()
        return self

    def encode_audio(self, wave, lengths):
        x = audio_normalise(wave, lengths, self.c.get("audio_norm", "zero_mean"))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.c.get("audio_frozen", True)):
            hidden, frames = self.wav2vec2(x, lengths)
        valid = (torch.arange(hidden.shape[1], device=hidden.device)[None] < frames[:, None]).float()
        pooled = (hidden * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp_min(1)
        return self.audio_mlp(pooled)

    def forward(self, batch):
        valid, lengths = batch["utt_valid"], self.lengths(batch)
        text = self.utt_text(batch)
        has = batch["audio_valid"] * valid
        audio_len = batch["audio_len"].clamp(0, batch["audio"].shape[-1])
        audio = self.per_slot(self.encode_audio, [batch["audio"], audio_len], has, self.c["audio_out"])
        audio = self.with_missing(audio, has, self.audio_missing)
        x = torch.cat([text, audio, self.role(batch["utt_role"].clamp(0, 2))], -1)
        x = self.attend(self.attn, self.run_lstm(self.lstm, x, lengths), valid)
        ctx = self.ctx_proj(self.text_pool(batch["ctx_tokens"], batch["ctx_mask"]))
        meta = self.meta_mlp(self.meta_embed(batch["meta"]))
        return self.head(torch.cat([ctx, self.last_valid(x, lengths), meta], -1))


class VideoModel(FusionBase):
    def __init__(self, c):
        super().__init__(c)
        v, ht, h2 = c["video"], c["bert"]["hidden_size"], 2 * c["lstm_hidden"]
        self.video = VideoViT(v)
        self.video_missing = nn.Parameter(torch.randn(v["dim"]) * 0.02)
        self.text_lstm, self.text_attn = self.new_lstm(ht), self.new_attn()
        self.video_lstm, self.video_attn = self.new_lstm(v["dim"]), self.new_attn()
        self.meta_time = nn.Linear(self.meta_width(), c["meta_time"])
        self.fusion_lstm, self.fusion_attn = self.new_lstm(2 * h2 + c["meta_time"]), self.new_attn()
        self.ctx_mlp = MLP([ht] + list(c["ctx_dims"]), c["dropout"], True)
        ctx_w = c["ctx_dims"][-1] if c["ctx_dims"] else ht
        fused = h2 + ctx_w + c["meta_out"]
        self.cross_attn = nn.MultiheadAttention(fused, c["heads"], c["dropout"], batch_first=True)
        self.head = MLP([fused] + list(c["head_dims"]) + [c["classes"]], c["dropout"], False)

    def forward(self, batch):
        valid, lengths = batch["utt_valid"], self.lengths(batch)
        u = valid.shape[1]
        text = self.attend(self.text_attn, self.run_lstm(self.text_lstm, self.utt_text(batch), lengths), valid)
        has = batch["video_valid"] * valid
        video = self.per_slot(self.video, [batch["frames"]], has, self.c["video"]["dim"])
        video = self.with_missing(video, has, self.video_missing)
        video = self.attend(self.video_attn, self.run_lstm(self.video_lstm, video, lengths), valid)
        meta_emb = self.meta_embed(batch["meta"])
        meta_t = F.relu(self.meta_time(meta_emb))[:, None].expand(-1, u, -1)
        fusion = self.run_lstm(self.fusion_lstm, torch.cat([text, video, meta_t], -1), lengths)
        fusion = self.attend(self.fusion_attn, fusion, valid)
        ctx = self.ctx_mlp(self.text_pool(batch["ctx_tokens"], batch["ctx_mask"]))
        meta = self.meta_mlp(meta_emb)
        f = torch.cat([self.last_valid(fusion, lengths), ctx, meta], -1)
        kv = torch.cat([fusion, ctx[:, None].expand(-1, u, -1), meta[:, None].expand(-1, u, -1)], -1)
        f = f + self.cross_attn(f[:, None], kv, kv, key_padding_mask=valid < 0.5, need_weights=False)[0][:, 0]
        return self.head(f)


def cpu_onednn_off():
    """Keeps CPU ops off oneDNN (see the module's note); a process-wide setting."""
    torch.backends.mkldnn.enabled = False


def build(config):
    """AudioModel or VideoModel for a config dict (or its JSON text)."""
    c = json.loads(config) if isinstance(config, str) else config
    return {"audio": AudioModel, "video": VideoModel}[c["kind"]](c)


# ---- Command line ------------------------------------------------------------------------------

INPUTS = ("utt_tokens", "utt_mask", "utt_valid", "utt_role", "ctx_tokens", "ctx_mask", "meta", "audio", "audio_len",
          "audio_valid", "frames", "video_valid")


def run_reference(kind, src, dst):
    from ref_models import st_load, st_save

    meta, tensors = st_load(src)
    t = {name: torch.from_numpy(a.copy()) for name, _, _, a in tensors}
    config = json.loads(meta["config"])
    if config["kind"] != kind:
        sys.exit(f"{src}: config kind '{config['kind']}' but mode '{kind}'")
    cpu_onednn_off()
    model = build(config)
    batch = {k: t.pop("input." + k) for k in INPUTS if "input." + k in t}
    w = t.pop("input.w")
    model.load_ours(t)
    model.eval()
    logits = model(batch)
    (logits * w).sum().backward()
    out = [("logits", "F32", logits.detach().numpy())]
    out += [("grad." + k, "F32", g.contiguous().numpy()) for k, g in model.ours_grads().items()]
    st_save(dst, out)


# ---- Self-test: HF's math written out, against the modules above --------------------------------

def hf_bert(p, c, ids, mask):
    """HF BertModel's last hidden states from our-named parameters p (below "bert.")."""
    h, heads = c["hidden_size"], c["num_attention_heads"]
    n, length = ids.shape
    lin = lambda x, k: x @ p[k + ".weight"].t() + p[k + ".bias"]  # noqa: E731
    ln = lambda x, k: F.layer_norm(x, (h,), p[k + ".weight"], p[k + ".bias"], c["layer_norm_eps"])  # noqa: E731
    split = lambda x: x.view(n, length, heads, h // heads).transpose(1, 2)  # noqa: E731
    x = ln(p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:length][None]
           + p["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    bias = (1.0 - mask)[:, None, None] * -10000.0
    for i in range(c["num_hidden_layers"]):
        pre = f"encoder.layer.{i}."
        q, k, v = (split(lin(x, pre + "attention.self." + s)) for s in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(h // heads) + bias, -1) @ v
        x = ln(lin(a.transpose(1, 2).reshape(n, length, h), pre + "attention.output.dense") + x,
               pre + "attention.output.LayerNorm")
        x = ln(lin(F.gelu(lin(x, pre + "intermediate.dense")), pre + "output.dense") + x, pre + "output.LayerNorm")
    return x


def hf_wav2vec2(p, c, wave, lengths):
    """HF Wav2Vec2Model's last hidden states and valid frame counts, from our-named parameters p
    (below "wav2vec2."), given an attention mask from lengths."""
    h, heads, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    lin = lambda x, k: x @ p[k + ".weight"].t() + p[k + ".bias"]  # noqa: E731
    ln = lambda x, k: F.layer_norm(x, (x.shape[-1],), p[k + ".weight"], p[k + ".bias"], eps)  # noqa: E731
    x = wave[:, None]
    layer_norm = c.get("feat_extract_norm", "group") == "layer"
    for i, (_, kernel, stride) in enumerate(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"])):
        pre = f"feature_extractor.conv_layers.{i}."
        x = F.conv1d(x, p[pre + "conv.weight"], p.get(pre + "conv.bias"), stride)
        if layer_norm:
            x = ln(x.transpose(1, 2), pre + "layer_norm").transpose(1, 2)
        elif i == 0:
            x = F.group_norm(x, x.shape[1], p[pre + "layer_norm.weight"], p[pre + "layer_norm.bias"], 1e-5)
        x = F.gelu(x)
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    lengths = lengths.clamp(min=0)
    x = lin(ln(x.transpose(1, 2), "feature_projection.layer_norm"), "feature_projection.projection")
    valid = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()
    x = x * valid[..., None]
    g, v = p["encoder.pos_conv_embed.conv.weight_g"], p["encoder.pos_conv_embed.conv.weight_v"]
    weight = v * g / v.norm(dim=(0, 1), keepdim=True)
    kernel = v.shape[2]
    pos = F.conv1d(x.transpose(1, 2), weight, p["encoder.pos_conv_embed.conv.bias"], padding=kernel // 2,
                   groups=c["num_conv_pos_embedding_groups"])
    if kernel % 2 == 0:
        pos = pos[..., :-1]
    x = x + F.gelu(pos).transpose(1, 2)
    stable = c.get("do_stable_layer_norm", False)
    if not stable:
        x = ln(x, "encoder.layer_norm")
    bias = (1.0 - valid)[:, None, None] * torch.finfo(torch.float32).min
    n, t = x.shape[:2]
    split = lambda y: y.view(n, t, heads, h // heads).transpose(1, 2)  # noqa: E731
    for i in range(c["num_hidden_layers"]):
        pre = f"encoder.layers.{i}."
        y = ln(x, pre + "layer_norm") if stable else x
        q = split(lin(y, pre + "attention.q_proj") * (h // heads) ** -0.5)
        k, vv = split(lin(y, pre + "attention.k_proj")), split(lin(y, pre + "attention.v_proj"))
        a = (torch.softmax(q @ k.transpose(-1, -2) + bias, -1) @ vv).transpose(1, 2).reshape(n, t, h)
        x = x + lin(a, pre + "attention.out_proj")
        ff = lambda z: lin(F.gelu(lin(z, pre + "feed_forward.intermediate_dense")),  # noqa: E731
                           pre + "feed_forward.output_dense")
        if stable:
            x = x + ff(ln(x, pre + "final_layer_norm"))
        else:
            x = ln(x, pre + "layer_norm")
            x = ln(x + ff(x), pre + "final_layer_norm")
    return (ln(x, "encoder.layer_norm") if stable else x), lengths


def tiny_config(kind):
    c = {"kind": kind, "classes": 7, "dropout": 0.2,
         "bert": {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 32, "max_position_embeddings": 12, "type_vocab_size": 2,
                  "layer_norm_eps": 1e-12, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                  "attention_probs_dropout_prob": 0.1},
         "bert_freeze_layers": 1, "text_pool": "cls", "use_coe": False,
         "rows_age": 4, "rows_gender": 2, "rows_timbre": 3, "rows_avatar": 5, "rows_topic": 3, "rows_event": 3,
         "rows_cause": 3, "rows_goal": 3, "age_dim": 3, "gender_dim": 2, "timbre_dim": 2, "avatar_dim": 3,
         "topic_dim": 4, "coe_dim": 2, "meta_hidden": 8, "meta_out": 6, "lstm_hidden": 8, "heads": 2,
         "role_dim": 4, "lstm_layers": 2, "head_dims": [12]}
    if kind == "audio":
        c.update({"audio": {"conv_dim": [16, 16, 16], "conv_kernel": [10, 3, 2], "conv_stride": [5, 2, 2],
                            "conv_bias": False, "feat_extract_norm": "group", "hidden_size": 32,
                            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                            "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
                            "do_stable_layer_norm": False, "layer_norm_eps": 1e-5},
                  "audio_frozen": False, "audio_norm": "zero_mean", "audio_hidden": 12, "audio_out": 10,
                  "ctx_out": 6})
    else:
        c.update({"video": {"image": 64, "frames": 4, "patch": 32, "dim": 32, "heads": 4, "layers": 1, "ffn": 64,
                            "dropout": 0.3, "ln_eps": 1e-5, "attention": "joint"},
                  "meta_time": 6, "ctx_dims": [12, 8]})
    return c


def tiny_batch(c, seed):
    g = torch.Generator().manual_seed(seed)
    b, u, length, ctx = 3, 4, 6, 8
    k = torch.tensor([4, 2, 1])
    valid = (torch.arange(u)[None] < k[:, None]).float()
    tok_len = torch.randint(1, length + 1, (b, u), generator=g)
    batch = {"utt_tokens": torch.randint(0, 40, (b, u, length), generator=g),
             "utt_mask": (torch.arange(length) < tok_len[..., None]).float() * valid[..., None],
             "utt_valid": valid, "utt_role": torch.randint(0, 3, (b, u), generator=g),
             "ctx_tokens": torch.randint(0, 40, (b, ctx), generator=g),
             "ctx_mask": (torch.arange(ctx)[None] < torch.tensor([[8], [5], [2]])).float(),
             "meta": torch.randint(0, 6, (b, 12), generator=g)}
    has = valid * torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0], [1, 0, 0, 0]]).float()
    if c["kind"] == "audio":
        s = 400
        batch.update({"audio": torch.randint(-20000, 20000, (b, u, s), generator=g).short(),
                      "audio_len": torch.randint(150, s + 1, (b, u), generator=g), "audio_valid": has})
    else:
        v = c["video"]
        batch.update({"frames": torch.randint(0, 256, (b, u, v["frames"], v["image"], v["image"], 3),
                                              generator=g).to(torch.uint8), "video_valid": has})
    return batch


def selftest():
    cpu_onednn_off()
    torch.manual_seed(0)
    for kind in ("audio", "video"):
        c = tiny_config(kind)
        model = build(json.dumps(c))
        state = {k: v + 0.1 * torch.randn_like(v) for k, v in model.ours_state_dict().items()}
        twin = build(c)
        twin.load_ours(state)
        assert all(torch.equal(state[k], v) for k, v in twin.ours_state_dict().items()), "name round trip"
        assert "bert.encoder.layer.1.attention.self.key.bias" in state
        twin.eval()
        batch = tiny_batch(c, 1)
        logits = twin(batch)
        logits.sum().backward()
        grads = twin.ours_grads()
        assert "bert.embeddings.word_embeddings.weight" not in grads and "bert.encoder.layer.0.output.dense.bias" \
            not in grads and "bert.encoder.layer.1.attention.self.query.weight" in grads
        bad = [k for k, v in grads.items() if not torch.isfinite(v).all()]
        assert torch.isfinite(logits).all() and not bad, bad
        p = {k[5:]: v for k, v in state.items() if k.startswith("bert.")}
        ids, mask = batch["ctx_tokens"], batch["ctx_mask"]
        with torch.no_grad():
            e = (twin.bert(ids, mask) - hf_bert(p, c["bert"], ids, mask)).abs().max().item()
        print(f"{kind}: logits {tuple(logits.shape)}, {len(grads)} grads, bert vs HF math {e:.2e}")
        assert e < 1e-5
        noisy = dict(batch, utt_tokens=torch.where(batch["utt_mask"] > 0, batch["utt_tokens"], 7),
                     ctx_tokens=torch.where(batch["ctx_mask"] > 0, batch["ctx_tokens"], 9))
        if kind == "audio":
            s_idx = torch.arange(batch["audio"].shape[-1])
            keep = (s_idx < batch["audio_len"][..., None]) & (batch["audio_valid"][..., None] > 0)
            noisy["audio"] = torch.where(keep, batch["audio"], torch.full_like(batch["audio"], 1234))
        else:
            keep = batch["video_valid"].view(3, 4, 1, 1, 1, 1) > 0
            noisy["frames"] = torch.where(keep, batch["frames"], torch.full_like(batch["frames"], 17))
        with torch.no_grad():
            e = (twin(noisy) - logits).abs().max().item()
        print(f"{kind}: padding and absent media changed the logits by {e:.2e}")
        assert e < 1e-6
        if kind == "audio":
            p = {k[9:]: v for k, v in state.items() if k.startswith("wav2vec2.")}
            assert "encoder.pos_conv_embed.conv.weight_g" in p
            flat = batch["audio"].reshape(-1, batch["audio"].shape[-1])
            lens = batch["audio_len"].reshape(-1)
            x = audio_normalise(flat, lens, "zero_mean")
            with torch.no_grad():
                ours, n_ours = twin.wav2vec2(x, lens)
                ref, n_ref = hf_wav2vec2(p, c["audio"], x, lens)
            valid = torch.arange(ref.shape[1])[None] < n_ref[:, None]
            e = ((ours - ref).abs() * valid[..., None]).max().item() / ref.abs().max().item()
            print(f"audio: torchaudio vs HF math {e:.2e} over {int(valid.sum())} valid frames")
            assert torch.equal(n_ours, n_ref) and e < 1e-5


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode in ("audio", "video") and len(sys.argv) == 4:
        run_reference(mode, sys.argv[2], sys.argv[3])
    elif mode == "selftest":
        selftest()
    else:
        sys.exit("usage: ref_fusion.py audio|video IN OUT | selftest")


if __name__ == "__main__":
    main()
