#!/usr/bin/python3
"""References for test_models, from numpy and python3-torch (nothing here uses our C code).

  ref_models.py st-read FILE     describes FILE, parsed with numpy per the public safetensors spec
  ref_models.py st-write FILE    writes FILE with a numpy writer (header keys not in data order,
                                 metadata, padding) and describes what it wrote
  ref_models.py bert IN OUT      HF BertModel's math in plain torch on the weights and inputs of IN
                                 (a safetensors file: bert.* parameters, input.ids, input.mask, and
                                 the loss weights input.w, input.w_pool; metadata "heads"); writes
                                 hidden, pooled and grad.<param> (d loss / d param, loss =
                                 sum(hidden * w) + sum(pooled * w_pool)) to OUT
  ref_models.py bert-nn IN OUT   the same from torch.nn modules: nn.Embedding x3 + nn.LayerNorm, one
                                 nn.TransformerEncoderLayer (post-LN, batch first, BERT's layer) per
                                 layer with q/k/v concatenated into in_proj, nn.Linear + tanh pooler;
                                 metadata "heads", "act" (gelu, gelu_new, relu), "eps"
  ref_models.py bert-hf-files DIR V H L I P T
                                 writes Hugging Face BERT checkpoints of random weights, the names
                                 taken from a module tree shaped like transformers' BertForPreTraining:
                                 DIR/pretraining.safetensors (F32, "bert." prefix, LayerNorm
                                 gamma/beta, cls.* heads, embeddings.position_ids), the same as
                                 DIR/pretraining_bf16.safetensors, and DIR/model_f16.safetensors
                                 (F16, BertModel.save_pretrained's names: no prefix, weight/bias);
                                 DIR/expected.safetensors holds "<file stem>/<BertModel name>" F32
                                 (each value as its file stores it)

A description is one line per metadata entry, "M KEY VALUE" (sorted by key), then one line per
tensor in data order, "T NAME DTYPE NDIM DIM... HEX" (HEX: the raw bytes, "-" when empty).
"""
import json
import math
import mmap
import os
import struct
import sys

import numpy as np

NP = {"F32": "<f4", "F64": "<f8", "BF16": "<u2", "F16": "<f2", "I64": "<i8", "I32": "<i4",
      "I16": "<i2", "U8": "u1", "BOOL": "?"}


def st_load(path):
    """(metadata, [(name, dtype, shape, array)] in data order), checking what the spec requires. The
    arrays are writable copy-on-write views of the file mapped into memory, so a base-size model's
    file is neither read nor copied as a whole."""
    with open(path, "rb") as f:
        raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if os.fstat(f.fileno()).st_size else b""
    if len(raw) < 8:
        raise ValueError("file shorter than its length prefix")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("header length beyond the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out, end = [], 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, en = e["data_offsets"]
        if b != end or en < b or en > len(data):
            raise ValueError(f"{name}: data_offsets {b}, {en} leave a hole, overlap or exceed the data")
        dt = np.dtype(NP[e["dtype"]])
        if int(np.prod(e["shape"], dtype=np.int64)) * dt.itemsize != en - b:
            raise ValueError(f"{name}: size does not match shape and dtype")
        out.append((name, e["dtype"], list(e["shape"]),
                    np.frombuffer(data, dtype=dt, count=(en - b) // dt.itemsize, offset=b).reshape(e["shape"])))
        end = en
    if end != len(data):
        raise ValueError("data section has bytes no tensor owns")
    return meta, out


def st_load_torch(path):
    """(metadata, {name: torch tensor}) sharing st_load's arrays; one the file leaves misaligned for
    its dtype is copied first."""
    import torch

    meta, tensors = st_load(path)
    return meta, {name: torch.from_numpy(a if a.flags.aligned else a.copy()) for name, _, _, a in tensors}


def st_save(path, tensors, meta=None, reverse_header=False):
    """tensors: [(name, dtype, array)] written in this data order, each straight from its array."""
    header, arrays, off = {}, [], 0
    for name, dtype, a in tensors:
        c = np.ascontiguousarray(a, dtype=np.dtype(NP[dtype]))
        header[name] = {"dtype": dtype, "shape": list(np.shape(a)), "data_offsets": [off, off + c.nbytes]}
        arrays.append(c)
        off += c.nbytes
    items = list(header.items())
    if reverse_header:
        items.reverse()
    if meta:
        items.insert(1, ("__metadata__", meta))
    text = json.dumps(dict(items)).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for c in arrays:
            f.write(c.data)


def describe(meta, tensors):
    lines = [f"M {k} {meta[k]}" for k in sorted(meta)]
    for name, dtype, shape, a in tensors:
        hexs = a.tobytes().hex() or "-"
        lines.append(" ".join(["T", name, dtype, str(len(shape))] + [str(d) for d in shape] + [hexs]))
    print("\n".join(lines))


def st_write_sample(path):
    tensors = [
        ("w.f32", "F32", np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1),
        ("w.f64", "F64", np.array([math.pi, -math.e, 1e-300])),
        ("w.bf16", "BF16", np.array([[0x3F80, 0xC000], [0x0000, 0x7F80]], dtype=np.uint16)),
        ("w.f16", "F16", np.array([1.5, -0.25, 65504.0], dtype=np.float16)),
        ("w.i64", "I64", np.array([-(2 ** 40), 2 ** 62], dtype=np.int64)),
        ("w.i32", "I32", np.array([[7, -8]], dtype=np.int32)),
        ("w.i16", "I16", np.array([-32768, 32767], dtype=np.int16)),
        ("w.u8", "U8", np.array([0, 1, 254, 255], dtype=np.uint8)),
        ("w.bool", "BOOL", np.array([True, False, True])),
        ("w.empty", "F32", np.zeros((0, 4), dtype=np.float32)),
        ("w.scalar", "F32", np.array(2.75, dtype=np.float32)),
    ]
    st_save(path, tensors, {"format": "pt", "producer": "numpy"}, reverse_header=True)
    describe(*st_load(path))


def bert_reference(src, dst):
    import torch
    import torch.nn.functional as F

    meta, t = st_load_torch(src)
    ids, mask, w, w_pool = t.pop("input.ids"), t.pop("input.mask"), t.pop("input.w"), t.pop("input.w_pool")
    p = {k: v.requires_grad_(True) for k, v in t.items()}
    heads = int(meta["heads"])
    n, length = ids.shape
    hidden = p["bert.embeddings.word_embeddings.weight"].shape[1]
    d = hidden // heads

    def lin(x, name):
        return x @ p[name + ".weight"].t() + p[name + ".bias"]

    def ln(x, name):
        return F.layer_norm(x, (hidden,), p[name + ".weight"], p[name + ".bias"], eps=1e-12)

    def split(x):
        return x.view(n, length, heads, d).permute(0, 2, 1, 3)

    x = (p["bert.embeddings.word_embeddings.weight"][ids]
         + p["bert.embeddings.position_embeddings.weight"][torch.arange(length)][None]
         + p["bert.embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)])
    x = ln(x, "bert.embeddings.LayerNorm")
    extended = (1.0 - mask)[:, None, None, :] * -10000.0
    i = 0
    while f"bert.encoder.layer.{i}.attention.self.query.weight" in p:
        pre = f"bert.encoder.layer.{i}."
        q, k, v = (split(lin(x, pre + "attention.self." + s)) for s in ("query", "key", "value"))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + extended
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).reshape(n, length, hidden)
        x = ln(lin(ctx, pre + "attention.output.dense") + x, pre + "attention.output.LayerNorm")
        h = F.gelu(lin(x, pre + "intermediate.dense"))
        x = ln(lin(h, pre + "output.dense") + x, pre + "output.LayerNorm")
        i += 1
    pooled = torch.tanh(lin(x[:, 0], "bert.pooler.dense"))
    ((x * w).sum() + (pooled * w_pool).sum()).backward()
    out = [("hidden", "F32", x.detach().numpy()), ("pooled", "F32", pooled.detach().numpy())]
    out += [("grad." + k, "F32", v.grad.numpy()) for k, v in p.items()]
    st_save(dst, out)


def bert_nn_reference(src, dst):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    meta, t = st_load_torch(src)
    ids, mask, w, w_pool = t.pop("input.ids"), t.pop("input.mask"), t.pop("input.w"), t.pop("input.w_pool")
    heads, eps = int(meta["heads"]), float(meta["eps"])
    act = {"gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}[meta["act"]]
    vocab, hidden = t["bert.embeddings.word_embeddings.weight"].shape
    inter = t["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
    layers = 0
    while f"bert.encoder.layer.{layers}.attention.self.query.weight" in t:
        layers += 1

    # Every parameter is overwritten below: skip_init spares a base-size model's random initialisation.
    new = nn.utils.skip_init
    word = new(nn.Embedding, vocab, hidden)
    position = new(nn.Embedding, t["bert.embeddings.position_embeddings.weight"].shape[0], hidden)
    token_type = new(nn.Embedding, t["bert.embeddings.token_type_embeddings.weight"].shape[0], hidden)
    emb_ln = new(nn.LayerNorm, hidden, eps=eps)
    encoder = [new(nn.TransformerEncoderLayer, hidden, heads, dim_feedforward=inter, dropout=0.0, activation=act,
                   layer_norm_eps=eps, batch_first=True, norm_first=False)
               for _ in range(layers)]
    pooler = new(nn.Linear, hidden, hidden)
    # Our name -> (module parameter, rows of it): q/k/v are thirds of in_proj.
    where = {"bert.embeddings.word_embeddings.weight": (word.weight, None),
             "bert.embeddings.position_embeddings.weight": (position.weight, None),
             "bert.embeddings.token_type_embeddings.weight": (token_type.weight, None),
             "bert.embeddings.LayerNorm.weight": (emb_ln.weight, None),
             "bert.embeddings.LayerNorm.bias": (emb_ln.bias, None),
             "bert.pooler.dense.weight": (pooler.weight, None), "bert.pooler.dense.bias": (pooler.bias, None)}
    for i, layer in enumerate(encoder):
        pre = f"bert.encoder.layer.{i}."
        for j, part in enumerate(("query", "key", "value")):
            rows = slice(j * hidden, (j + 1) * hidden)
            where[pre + f"attention.self.{part}.weight"] = (layer.self_attn.in_proj_weight, rows)
            where[pre + f"attention.self.{part}.bias"] = (layer.self_attn.in_proj_bias, rows)
        for ours, mod in (("attention.output.dense", layer.self_attn.out_proj), ("intermediate.dense", layer.linear1),
                          ("output.dense", layer.linear2), ("attention.output.LayerNorm", layer.norm1),
                          ("output.LayerNorm", layer.norm2)):
            where[pre + ours + ".weight"] = (mod.weight, None)
            where[pre + ours + ".bias"] = (mod.bias, None)
    if sorted(where) != sorted(t):
        raise ValueError(f"parameters differ: {sorted(set(where) ^ set(t))}")
    with torch.no_grad():
        for name, (param, rows) in where.items():
            (param if rows is None else param[rows]).copy_(t[name])
    for mod in [word, position, token_type, emb_ln, pooler] + encoder:
        mod.eval()

    length = ids.shape[1]
    x = word(ids) + position(torch.arange(length))[None] + token_type(torch.zeros_like(ids))
    x = emb_ln(x)
    for layer in encoder:
        x = layer(x, src_key_padding_mask=mask == 0)
    pooled = torch.tanh(pooler(x[:, 0]))
    ((x * w).sum() + (pooled * w_pool).sum()).backward()
    out = [("hidden", "F32", x.detach().numpy()), ("pooled", "F32", pooled.detach().numpy())]
    out += [("grad." + name, "F32", (p.grad if rows is None else p.grad[rows]).numpy())
            for name, (p, rows) in where.items()]
    st_save(dst, out)


def bert_hf_files(out_dir, vocab, hidden, layers, inter, positions, types):
    import torch
    import torch.nn as nn

    def tree(**children):
        return nn.ModuleDict(children)

    def layer():
        return tree(attention=tree(self=tree(query=nn.Linear(hidden, hidden), key=nn.Linear(hidden, hidden),
                                             value=nn.Linear(hidden, hidden)),
                                   output=tree(dense=nn.Linear(hidden, hidden), LayerNorm=nn.LayerNorm(hidden))),
                    intermediate=tree(dense=nn.Linear(hidden, inter)),
                    output=tree(dense=nn.Linear(inter, hidden), LayerNorm=nn.LayerNorm(hidden)))

    torch.manual_seed(11)
    bert = tree(embeddings=tree(word_embeddings=nn.Embedding(vocab, hidden),
                                position_embeddings=nn.Embedding(positions, hidden),
                                token_type_embeddings=nn.Embedding(types, hidden), LayerNorm=nn.LayerNorm(hidden)),
                encoder=tree(layer=nn.ModuleList([layer() for _ in range(layers)])),
                pooler=tree(dense=nn.Linear(hidden, hidden)))
    predictions = tree(transform=tree(dense=nn.Linear(hidden, hidden), LayerNorm=nn.LayerNorm(hidden)),
                       decoder=nn.Linear(hidden, vocab, bias=False))
    predictions.register_parameter("bias", nn.Parameter(torch.zeros(vocab)))
    heads = tree(predictions=predictions, seq_relationship=nn.Linear(hidden, 2))

    def legacy(name):
        for new, old in ((".weight", ".gamma"), (".bias", ".beta")):
            if "LayerNorm" in name and name.endswith(new):
                return name[:-len(new)] + old
        return name

    def stored(v, dtype):
        if dtype == "BF16":
            return v.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16), v.to(torch.bfloat16).float()
        if dtype == "F16":
            return v.to(torch.float16).numpy(), v.to(torch.float16).float()
        return v.numpy(), v

    # Random values everywhere, so LayerNorm's 1/0 and zero biases are told apart from the model's own.
    weights = {k: torch.randn(v.shape) * 0.5 for k, v in bert.state_dict().items()}
    extras = {k: torch.randn(v.shape) for k, v in heads.state_dict().items()}
    expected = []
    for stem, dtype, pretraining in (("pretraining", "F32", True), ("pretraining_bf16", "BF16", True),
                                     ("model_f16", "F16", False)):
        out = []
        for name, v in weights.items():
            data, value = stored(v, dtype)
            out.append(("bert." + legacy(name) if pretraining else name, dtype, data))
            expected.append((f"{stem}/{name}", "F32", value.numpy()))
        if pretraining:
            out += [("cls." + legacy(name), dtype, stored(v, dtype)[0]) for name, v in extras.items()]
            out.append(("bert.embeddings.position_ids", "I64", np.arange(positions, dtype=np.int64)[None]))
        st_save(f"{out_dir}/{stem}.safetensors", out, {"format": "pt"})
    st_save(f"{out_dir}/expected.safetensors", expected)


def main():
    mode = sys.argv[1]
    if mode == "st-read":
        describe(*st_load(sys.argv[2]))
    elif mode == "st-write":
        st_write_sample(sys.argv[2])
    elif mode == "bert":
        bert_reference(sys.argv[2], sys.argv[3])
    elif mode == "bert-nn":
        bert_nn_reference(sys.argv[2], sys.argv[3])
    elif mode == "bert-hf-files":
        bert_hf_files(sys.argv[2], *(int(a) for a in sys.argv[3:9]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
