"""Compares two safetensors files (read with numpy, following the published format, not our C):
   compare.py A B exact      -> every tensor bit-identical
   compare.py A B rel TOL    -> max |a-b| / max |b|, the scale taken over the whole model, <= TOL.
A model-wide scale, because some parameters have an exactly zero gradient in exact arithmetic
(BERT's key bias: softmax ignores a shift shared by all keys); their values are rounding noise
that Adam's normalisation amplifies, and a per-tensor relative error of noise means nothing."""
import json, struct, sys
import numpy as np

def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, en = e["data_offsets"]
        out[name] = np.frombuffer(raw[base + b:base + en], dtype="<f4").reshape(e["shape"])
    return out

a, b = load(sys.argv[1]), load(sys.argv[2])
if sorted(a) != sorted(b):
    sys.exit(f"tensor names differ: {sorted(set(a) ^ set(b))}")
mode = sys.argv[3]
worst, worst_name = 0.0, ""
scale = max(max(float(np.abs(t).max()) if t.size else 0.0 for t in b.values()), 1e-30)
for k in a:
    if a[k].shape != b[k].shape:
        sys.exit(f"{k}: shape {a[k].shape} vs {b[k].shape}")
    if mode == "exact":
        if a[k].tobytes() != b[k].tobytes():
            sys.exit(f"{k}: not bit-identical (max diff {np.abs(a[k] - b[k]).max():.3g})")
    else:
        rel = float(np.abs(a[k].astype(np.float64) - b[k]).max()) / scale
        if rel > worst:
            worst, worst_name = rel, k
print(f"compared {len(a)} tensors ({mode}); worst relative difference {worst:.3g} ({worst_name or '-'})")
if mode != "exact" and worst > float(sys.argv[4]):
    sys.exit(f"relative difference {worst:.3g} in {worst_name} exceeds {sys.argv[4]}")
