#!/usr/bin/python3
"""Reference values for test_torch_c, computed by python3-torch.

Usage: ref_torch_c.py OUTDIR  ->  OUTDIR/ref.idx and OUTDIR/ref.bin

ref.bin is raw little-endian tensor data back to back; ref.idx has one line per tensor:
    KEY DTYPE OFFSET NDIM DIM0 DIM1 ...
DTYPE is one of f32 bf16 f16 i64 i32 i16 u8 bool (bf16 stored as its 16 raw bits).
For an op case NAME the keys are NAME/inK (inputs, in order), NAME/out (forward result),
NAME/w (random weights: the loss is sum(out * w)), NAME/gradK (d loss / d inK, present exactly
for the inputs that require grad), NAME/postK (inK after the op, for in-place updates).
"""
import sys

import torch
import torch.nn.functional as F

DTYPES = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16", torch.int64: "i64",
          torch.int32: "i32", torch.int16: "i16", torch.uint8: "u8", torch.bool: "bool"}


class Writer:
    def __init__(self, outdir):
        self.bin = open(outdir + "/ref.bin", "wb")
        self.idx = open(outdir + "/ref.idx", "w")
        self.offset = 0

    def add(self, key, t):
        t = t.detach().contiguous()
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        data = raw.numpy().tobytes()
        dims = " ".join(str(d) for d in t.shape)
        self.idx.write(f"{key} {DTYPES[t.dtype]} {self.offset} {t.dim()} {dims}\n")
        self.bin.write(data)
        self.offset += len(data)

    def close(self):
        self.bin.close()
        self.idx.close()


def case(wr, name, inputs, fn, nograd=(), post=(), leaves=False):
    """Writes inputs, fn(*inputs), weights, and the gradients of sum(out * w).

    Float inputs require grad unless listed in nograd; leaves=True uses the given tensors as they
    are (module parameters)."""
    ins = []
    for i, t in enumerate(inputs):
        if not leaves:
            t = t.detach().clone()
            if t.is_floating_point() and i not in nograd:
                t.requires_grad_(True)
        wr.add(f"{name}/in{i}", t)
        ins.append(t)
    out = fn(*ins)
    wr.add(f"{name}/out", out)
    if out.requires_grad:
        w = torch.randn(out.shape)
        wr.add(f"{name}/w", w)
        (out * w).sum().backward()
        for i, t in enumerate(ins):
            if t.requires_grad:
                wr.add(f"{name}/grad{i}", t.grad if t.grad is not None else torch.zeros_like(t))
    for i in post:
        wr.add(f"{name}/post{i}", ins[i])


def creation_cases(wr):
    case(wr, "zeros", [], lambda: torch.zeros(2, 3))
    case(wr, "ones_i64", [], lambda: torch.ones(4, dtype=torch.int64))
    case(wr, "full", [], lambda: torch.full((3, 2), -2.5))
    case(wr, "arange_i64", [], lambda: torch.arange(7))
    case(wr, "arange_f32", [], lambda: torch.arange(5, dtype=torch.float32))
    g = torch.Generator().manual_seed(42)
    case(wr, "rand_uniform", [], lambda: torch.empty(5, 7).uniform_(-2, 3, generator=g))
    g2 = torch.Generator().manual_seed(43)
    case(wr, "randn", [], lambda: torch.empty(40, 3).normal_(1.5, 0.5, generator=g2))


def dtype_cases(wr):
    x = torch.randn(3, 5) * 40
    xp = torch.rand(3, 5) * 200
    for dt, name in [(torch.bfloat16, "bf16"), (torch.float16, "f16"), (torch.int64, "i64"),
                     (torch.int32, "i32"), (torch.int16, "i16"), (torch.bool, "bool")]:
        case(wr, f"to_{name}", [x], lambda a, dt=dt: a.to(dt))
        case(wr, f"from_{name}", [x.to(dt)], lambda a: a.to(torch.float32))
    case(wr, "to_u8", [xp], lambda a: a.to(torch.uint8))
    case(wr, "from_u8", [xp.to(torch.uint8)], lambda a: a.to(torch.float32))


def view_cases(wr):
    x = torch.randn(2, 3, 4)
    case(wr, "reshape", [x], lambda a: a.reshape(4, 6))
    case(wr, "permute", [x], lambda a: a.permute(2, 0, 1))
    case(wr, "transpose", [x], lambda a: a.transpose(0, 2))
    case(wr, "slice", [x], lambda a: a[:, :, 1:4:2])
    case(wr, "select", [x], lambda a: a.select(1, 2))
    case(wr, "narrow", [x], lambda a: a.narrow(2, 1, 2))
    case(wr, "cat", [x, torch.randn(2, 1, 4), torch.randn(2, 2, 4)], lambda a, b, c: torch.cat([a, b, c], 1))
    case(wr, "stack", [x, torch.randn(2, 3, 4)], lambda a, b: torch.stack([a, b], 1))
    case(wr, "expand", [torch.randn(3, 1)], lambda a: a.expand(2, 3, 4))
    case(wr, "unsqueeze", [x], lambda a: a.unsqueeze(1))
    case(wr, "squeeze", [torch.randn(3, 1, 4)], lambda a: a.squeeze(1))
    case(wr, "gather", [x, torch.randint(0, 4, (2, 3, 2))], lambda a, i: torch.gather(a, 2, i))
    case(wr, "index_select", [x, torch.tensor([2, 0, 2])], lambda a, i: a.index_select(1, i))
    case(wr, "index_copy", [torch.randn(5, 3), torch.tensor([3, 0]), torch.randn(2, 3)],
         lambda t, i, src: t.index_copy(0, i, src))
    case(wr, "contiguous", [x], lambda a: a.transpose(1, 2).contiguous())
    case(wr, "clone", [x], lambda a: a.clone())
    case(wr, "detach", [x], lambda a: a.detach())


def elementwise_cases(wr):
    a, b = torch.randn(2, 3, 4), torch.randn(4)
    pos = torch.rand(3, 4) + 0.2
    case(wr, "add", [a, b], lambda x, y: x + y)
    case(wr, "sub", [a, b], lambda x, y: x - y)
    case(wr, "mul", [a, b], lambda x, y: x * y)
    case(wr, "div", [a, pos[0] * torch.sign(b)], lambda x, y: x / y)
    case(wr, "add_scalar", [a], lambda x: x + 0.75)
    case(wr, "mul_scalar", [a], lambda x: x * -1.5)
    case(wr, "neg", [a], lambda x: -x)
    case(wr, "exp", [a], torch.exp)
    case(wr, "log", [pos], torch.log)
    case(wr, "sqrt", [pos], torch.sqrt)
    case(wr, "rsqrt", [pos], torch.rsqrt)
    case(wr, "pow", [pos], lambda x: torch.pow(x, 2.5))
    case(wr, "pow2", [a], lambda x: torch.pow(x, 2.0))
    case(wr, "tanh", [a], torch.tanh)
    case(wr, "sigmoid", [a], torch.sigmoid)
    case(wr, "relu", [a], torch.relu)
    case(wr, "abs", [a], torch.abs)
    case(wr, "gelu_exact", [a * 3], lambda x: F.gelu(x))
    case(wr, "gelu_tanh", [a * 3], lambda x: F.gelu(x, approximate="tanh"))
    # The gradient reaches the GELU transposed (libtorch 1.13's CPU kernel gets that wrong): the
    # reference computes in float64.
    g = torch.randn(2, 24, 40)
    case(wr, "gelu_transposed", [g], lambda x: F.gelu(x.double()).float().transpose(1, 2))
    case(wr, "clamp", [a], lambda x: torch.clamp(x, -0.5, 0.7))
    case(wr, "masked_fill", [a, torch.rand(3, 4) > 0.5], lambda x, m: x.masked_fill(m, -1e4))
    case(wr, "masked_fill_u8", [a, (torch.rand(1, 4) > 0.5).to(torch.uint8)],
         lambda x, m: x.masked_fill(m.bool(), 2.0))
    case(wr, "where", [torch.rand(3, 4) > 0.5, a, torch.randn(3, 1)], lambda c, x, y: torch.where(c, x, y))
    ia, ib = torch.randint(0, 3, (4, 5)).float(), torch.randint(0, 3, (4, 5)).float()
    case(wr, "eq", [ia, ib], lambda x, y: torch.eq(x, y))
    case(wr, "gt_scalar", [a], lambda x: x > 0.1)
    case(wr, "lt_scalar", [a], lambda x: x < 0.1)


def reduction_cases(wr):
    x = torch.randn(3, 4, 5)
    case(wr, "sum", [x], lambda a: a.sum(1, keepdim=True))
    case(wr, "sum_neg", [x], lambda a: a.sum(-1))
    case(wr, "sum_all", [x], lambda a: a.sum())
    case(wr, "mean", [x], lambda a: a.mean(2))
    case(wr, "mean_all", [x], lambda a: a.mean())
    case(wr, "max", [x], lambda a: a.max(1).values)
    case(wr, "argmax", [x], lambda a: a.argmax(2, keepdim=True))
    case(wr, "var", [x], lambda a: a.var(1))
    case(wr, "var_biased", [x], lambda a: a.var(2, unbiased=False, keepdim=True))


def nn_cases(wr):
    case(wr, "matmul", [torch.randn(5, 7), torch.randn(7, 3)], torch.matmul)
    case(wr, "matmul_batched", [torch.randn(2, 5, 7), torch.randn(7, 3)], torch.matmul)
    case(wr, "bmm", [torch.randn(2, 5, 7), torch.randn(2, 7, 3)], torch.bmm)
    x = torch.randn(2, 3, 6)
    case(wr, "linear", [x, torch.randn(4, 6), torch.randn(4)], F.linear)
    case(wr, "linear_nobias", [x, torch.randn(4, 6)], F.linear)
    case(wr, "softmax", [x * 3], lambda a: torch.softmax(a, -1))
    case(wr, "log_softmax", [x * 3], lambda a: torch.log_softmax(a, 1))
    case(wr, "layer_norm", [x * 2 + 1, torch.randn(6), torch.randn(6)],
         lambda a, w, b: F.layer_norm(a, (6,), w, b, 1e-12))
    case(wr, "layer_norm_noaffine", [x], lambda a: F.layer_norm(a, (6,), eps=1e-5))
    g = torch.randn(2, 6, 5) * 2 + 0.5
    case(wr, "group_norm", [g, torch.randn(6), torch.randn(6)], lambda a, w, b: F.group_norm(a, 3, w, b, 1e-5))
    bn = [torch.randn(4, 3, 5) * 2 + 1, torch.randn(3), torch.randn(3), torch.randn(3), torch.rand(3) + 0.5]
    case(wr, "batch_norm_train", bn, lambda a, w, b, rm, rv: F.batch_norm(a, rm, rv, w, b, True, 0.1, 1e-5),
         nograd=(3, 4), post=(3, 4))
    case(wr, "batch_norm_eval", bn, lambda a, w, b, rm, rv: F.batch_norm(a, rm, rv, w, b, False, 0.1, 1e-5),
         nograd=(3, 4), post=(3, 4))
    case(wr, "weight_norm", [torch.randn(6, 2, 5), torch.rand(1, 1, 5) + 0.5],
         lambda v, g: torch._weight_norm(v, g, 2))
    case(wr, "embedding", [torch.randn(10, 4), torch.tensor([[1, 3, 9], [3, 0, 3]])],
         lambda w, i: F.embedding(i, w))
    case(wr, "conv1d", [torch.randn(2, 4, 11), torch.randn(6, 2, 3), torch.randn(6)],
         lambda a, w, b: F.conv1d(a, w, b, stride=2, padding=1, dilation=2, groups=2))
    case(wr, "conv1d_nobias", [torch.randn(2, 4, 11), torch.randn(6, 4, 3)], lambda a, w: F.conv1d(a, w))
    case(wr, "conv2d", [torch.randn(2, 3, 9, 8), torch.randn(4, 3, 3, 2), torch.randn(4)],
         lambda a, w, b: F.conv2d(a, w, b, stride=(2, 1), padding=(1, 0)))
    case(wr, "conv3d", [torch.randn(1, 2, 4, 6, 6), torch.randn(3, 2, 2, 3, 3), torch.randn(3)],
         lambda a, w, b: F.conv3d(a, w, b, stride=(2, 1, 2), padding=(0, 1, 1)))
    d = torch.randn(4, 50)
    case(wr, "dropout_p0", [d], lambda a: F.dropout(a, 0.0, True))
    case(wr, "dropout_eval", [d], lambda a: F.dropout(a, 0.3, False))

    def seeded_dropout(seed):
        def fn(a):
            torch.manual_seed(seed)
            return F.dropout(a, 0.3, True)
        return fn
    case(wr, "dropout_gen", [d], seeded_dropout(77))
    case(wr, "dropout_default_gen", [d], seeded_dropout(78))
    logits, target = torch.randn(6, 5) * 2, torch.tensor([0, 4, 2, 2, 1, 3])
    cw = torch.rand(5) + 0.5
    case(wr, "cross_entropy", [logits, target], lambda a, t: F.cross_entropy(a, t))
    case(wr, "cross_entropy_w", [logits, target, cw], lambda a, t, w: F.cross_entropy(a, t, w), nograd=(2,))
    logp = torch.log_softmax(logits, 1)
    case(wr, "nll_loss", [logp, target], lambda a, t: F.nll_loss(a, t))
    case(wr, "nll_loss_w", [logp, target, cw], lambda a, t, w: F.nll_loss(a, t, w), nograd=(2,))


def lstm_cases(wr):
    B, T, I, H = 3, 5, 4, 3
    lstm = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, I, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])

    def packed(a, lens, *params):
        p = torch.nn.utils.rnn.pack_padded_sequence(a, lens, batch_first=True, enforce_sorted=False)
        out, _ = lstm(p)
        return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    case(wr, "lstm_packed", [x, lengths] + list(lstm._flat_weights), packed, leaves=True)

    one = torch.nn.LSTM(I, H, num_layers=1, bidirectional=False, batch_first=True)
    x1 = torch.randn(B, T, I, requires_grad=True)
    case(wr, "lstm_full", [x1] + list(one._flat_weights), lambda a, *p: one(a)[0], leaves=True)


def adamw_case(wr):
    p = torch.nn.Parameter(torch.randn(64, 33))
    wr.add("adamw/p0", p)
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=False)
    for k in range(1, 6):
        g = torch.randn(64, 33) * (0.1 * k)
        wr.add(f"adamw/g{k}", g)
        p.grad = g
        opt.step()
    st = opt.state[p]
    wr.add("adamw/p", p)
    wr.add("adamw/m", st["exp_avg"])
    wr.add("adamw/v", st["exp_avg_sq"])


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    wr = Writer(sys.argv[1])
    for section in (creation_cases, dtype_cases, view_cases, elementwise_cases, reduction_cases, nn_cases,
                    lstm_cases, adamw_case):
        section(wr)
    wr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
