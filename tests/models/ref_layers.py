#!/usr/bin/python3
"""torch.nn references for models/layers.h (tests/models/layers_cases.c); nothing here uses our C code.

  ref_layers.py layers IN OUT

IN is a safetensors file. Its metadata maps each layer's prefix to a spec "KIND key=value ..." (lists
comma-separated); its tensors are the layers' parameters and buffers under "<prefix>." and their inputs
as "in.<prefix>.<name>". Every layer runs in this one process (a torch start costs a second).

For each prefix a torch.nn module is built from the spec and its state_dict is loaded, strict, from the
tensors under the prefix with the prefix stripped, so the names are torch's or the load fails. The
outputs go to OUT as "out.<prefix>.<name>"; one backward of
    loss = sum over outputs that carry a gradient of sum(out * loss_weight(out.shape))
writes "grad.<param>" for every parameter and "grad.in.<prefix>.<name>" for the differentiable inputs
(named x, x_*, q, k or v). loss_weight is a fixed hash of the element index that the C side computes
too, so neither side needs the other's output shapes beforehand.

Prefixes under "init." are built only: after torch.manual_seed(0) a fresh module of the same spec is
made and its state_dict, torch's own reset_parameters() draws, is written as "torch_init.<name>".
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_models import st_load, st_save  # noqa: E402

ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "tanh": nn.Tanh,
       "none": nn.Identity}


def loss_weight(shape):
    """w[i] = ((i + 1) * 2654435761 mod 2^32) / 2^32 - 0.5 over the flat index, as f32."""
    n = int(np.prod(shape, dtype=np.int64))
    h = (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return torch.from_numpy((h.astype(np.float64) / 2.0 ** 32 - 0.5).astype(np.float32).reshape(shape))


def parse_spec(text):
    kind, *pairs = text.split()
    args = {}
    for pair in pairs:
        key, value = pair.split("=")
        items = [float(v) if "." in v or "e" in v else int(v) for v in value.split(",")] if value[0].isdigit() \
            else [value]
        args[key] = items if "," in value else items[0]
    return kind, args


class AttnPool(nn.Module):
    """ml_attn_pool: softmax of a learned score over the valid positions; a row with none pools to zeros."""

    def __init__(self, embed):
        super().__init__()
        self.score = nn.Linear(embed, 1)

    def forward(self, x, valid):
        scores = self.score(x).squeeze(2)
        any_valid = valid.sum(1, keepdim=True) > 0
        scores = torch.where(valid > 0, scores, torch.full_like(scores, float("-inf")))
        scores = torch.where(any_valid, scores, torch.zeros_like(scores))
        w = torch.softmax(scores, dim=1) * valid
        return (x * w.unsqueeze(2)).sum(1)


def build(kind, a):
    """The torch.nn module a spec names (None for the parameterless ones)."""
    if kind == "linear":
        return nn.Linear(a["in"], a["out"], bias=bool(a["bias"]))
    if kind == "embedding":
        return nn.Embedding(a["num"], a["dim"])
    if kind == "layer_norm":
        return nn.LayerNorm(a["dim"], eps=a["eps"])
    if kind == "group_norm":
        return nn.GroupNorm(a["groups"], a["channels"], eps=a["eps"])
    if kind == "batch_norm":
        return nn.BatchNorm1d(a["channels"], eps=a["eps"], momentum=a["momentum"])
    if kind == "conv1d":
        return nn.Conv1d(a["in"], a["out"], a["kernel"], stride=a["stride"], padding=a["padding"],
                         dilation=a["dilation"], groups=a["groups"], bias=bool(a["bias"]))
    if kind == "conv2d":
        return nn.Conv2d(a["in"], a["out"], a["kernel"], stride=a["stride"], bias=bool(a["bias"]))
    if kind == "mlp":
        # The Linear layers hold the names ("<i>.weight"); the Sequential of run() strings them together.
        return nn.ModuleList(nn.Linear(a["dims"][i], a["dims"][i + 1]) for i in range(len(a["dims"]) - 1))
    if kind == "mha":
        return nn.MultiheadAttention(a["embed"], a["heads"], dropout=a.get("dropout", 0.0), batch_first=True)
    if kind == "lstm":
        return nn.LSTM(a["input"], a["hidden"], a["layers"], batch_first=True,
                       bidirectional=bool(a["bidirectional"]), dropout=a.get("dropout", 0.0))
    if kind == "attn_pool":
        return AttnPool(a["embed"])
    if kind in ("dropout", "masked_mean"):
        return None
    raise ValueError(f"unknown layer kind {kind}")


def load(module, prefix, tensors):
    """Loads the tensors under prefix into module, strict: every name must be one of torch's."""
    state = {name[len(prefix) + 1:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}
    if isinstance(module, nn.BatchNorm1d):
        # The one buffer layers.h does not carry: a step counter unused when momentum is set.
        state["num_batches_tracked"] = module.num_batches_tracked
    module.load_state_dict(state, strict=True)


def mlp_sequence(lins, a, training):
    steps = []
    for i, lin in enumerate(lins):
        steps.append(lin)
        if i < len(lins) - 1 or a["act_last"]:
            steps += [ACT[a["act"]](), nn.Dropout(a["dropout"])]
    return nn.Sequential(*steps).train(training)


def run(kind, a, m, x):
    """The layer's outputs {name: tensor} on its inputs x {name: tensor}."""
    if kind in ("linear", "layer_norm", "group_norm", "conv1d", "conv2d"):
        return {"y": m(x["x"])}
    if kind == "embedding":
        return {"y": m(x["ids"])}
    if kind == "batch_norm":
        y_train = m.train()(x["x_train"])
        y_eval = m.eval()(x["x_eval"])
        return {"y_train": y_train, "y_eval": y_eval, "running_mean": m.running_mean.clone(),
                "running_var": m.running_var.clone()}
    if kind == "dropout":
        torch.manual_seed(a["seed"])
        return {"y": F.dropout(x["x"], a["p"], training=True)}
    if kind == "mlp":
        out = {"y_eval": mlp_sequence(m, a, False)(x["x"])}
        if a.get("seed") is not None:
            torch.manual_seed(a["seed"])
            out["y_train"] = mlp_sequence(m, a, True)(x["x"])
        return out
    if kind == "mha":
        return run_mha(a, m, x)
    if kind == "lstm":
        packed = pack_padded_sequence(x["x"], x["lengths"], batch_first=True, enforce_sorted=False)
        y, _ = pad_packed_sequence(m(packed)[0], batch_first=True, total_length=x["x"].shape[1])
        return {"y": y}
    if kind == "attn_pool":
        return {"y": m(x["x"], x["valid"])}
    if kind == "masked_mean":
        v = x["valid"]
        return {"y": (x["x"] * v.unsqueeze(2)).sum(1) / v.sum(1, keepdim=True).clamp(min=1)}
    raise ValueError(f"unknown layer kind {kind}")


def run_mha(a, m, x):
    if "x" in x:
        q = k = v = x["x"]
    else:
        q, k, v = x["q"], x["k"], x.get("v", x["k"])
    valid = x.get("key_valid")
    if valid is None:
        m.train(bool(a.get("training", 0)))
        if a.get("seed") is not None:
            torch.manual_seed(a["seed"])
        return {"y": m(q, k, v)[0]}
    m.eval()
    # torch gives NaN for a query whose keys are all padding: compare the other samples ("y", ours
    # gathered to the same rows) and check ours against the uniform average separately.
    ok = valid.sum(1) > 0
    qo = q[ok]
    ko, vo = (qo, qo) if k is q else (k[ok], v[ok])
    y = m(qo, ko, vo, key_padding_mask=valid[ok] == 0)[0]
    out = {"y": y}
    if not bool(ok.all()):
        e = a["embed"]
        with torch.no_grad():
            vp = F.linear(v[~ok], m.in_proj_weight[2 * e:], m.in_proj_bias[2 * e:])
            uniform = m.out_proj(vp.mean(1, keepdim=True)).expand(-1, q.shape[1], -1)
        out["y_uniform"] = uniform.contiguous()
    return out


def differentiable(name):
    leaf = name.rsplit(".", 1)[-1]
    return leaf in ("x", "q", "k", "v") or leaf.startswith("x_")


def layers_reference(src, dst):
    torch.set_num_threads(1)
    meta, raw = st_load(src)
    tensors = {name: torch.from_numpy(a.copy()) for name, _, _, a in raw}
    out, loss, modules, inputs = [], 0.0, {}, {}
    for prefix in sorted(meta):
        kind, a = parse_spec(meta[prefix])
        m = build(kind, a)
        if m is not None:
            load(m, prefix, tensors)
        if prefix.startswith("init."):
            torch.manual_seed(0)
            fresh = build(kind, a)
            out += [(f"torch_init.{prefix}.{n}", "F32", t.numpy()) for n, t in fresh.state_dict().items()
                    if t.dtype == torch.float32]
            continue
        x = {}
        for name, t in tensors.items():
            if name.startswith(f"in.{prefix}."):
                if differentiable(name):
                    t.requires_grad_(True)
                    inputs[name] = t
                x[name[len(prefix) + 4:]] = t
        modules[prefix] = m
        for name, y in run(kind, a, m, x).items():
            if y.requires_grad:
                loss = loss + (y * loss_weight(tuple(y.shape))).sum()
            out.append((f"out.{prefix}.{name}", "F32", y.detach().contiguous().numpy()))
    loss.backward()
    for prefix, m in modules.items():
        if m is not None:
            out += [(f"grad.{prefix}.{n}", "F32", p.grad.numpy()) for n, p in m.named_parameters()
                    if p.grad is not None]
    out += [("grad." + name, "F32", t.grad.numpy()) for name, t in inputs.items() if t.grad is not None]
    st_save(dst, out)


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "layers":
        sys.exit("usage: ref_layers.py layers IN OUT")
    layers_reference(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
