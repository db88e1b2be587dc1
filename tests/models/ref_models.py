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

A description is one line per metadata entry, "M KEY VALUE" (sorted by key), then one line per
tensor in data order, "T NAME DTYPE NDIM DIM... HEX" (HEX: the raw bytes, "-" when empty).
"""
import json
import math
import struct
import sys

import numpy as np

NP = {"F32": "<f4", "F64": "<f8", "BF16": "<u2", "F16": "<f2", "I64": "<i8", "I32": "<i4",
      "I16": "<i2", "U8": "u1", "BOOL": "?"}


def st_load(path):
    """(metadata, [(name, dtype, shape, array)] in data order), checking what the spec requires."""
    raw = open(path, "rb").read()
    if len(raw) < 8:
        raise ValueError("file shorter than its length prefix")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("header length beyond the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
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
                    np.frombuffer(data[b:en], dtype=dt).reshape(e["shape"])))
        end = en
    if end != len(data):
        raise ValueError("data section has bytes no tensor owns")
    return meta, out


def st_save(path, tensors, meta=None, reverse_header=False):
    """tensors: [(name, dtype, array)] written in this data order."""
    header, blobs, off = {}, [], 0
    for name, dtype, a in tensors:
        raw = np.ascontiguousarray(a, dtype=np.dtype(NP[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    items = list(header.items())
    if reverse_header:
        items.reverse()
    if meta:
        items.insert(1, ("__metadata__", meta))
    text = json.dumps(dict(items)).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


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

    meta, tensors = st_load(src)
    t = {name: torch.from_numpy(a.copy()) for name, _, _, a in tensors}
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


def main():
    mode = sys.argv[1]
    if mode == "st-read":
        describe(*st_load(sys.argv[2]))
    elif mode == "st-write":
        st_write_sample(sys.argv[2])
    elif mode == "bert":
        bert_reference(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
