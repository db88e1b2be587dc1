"""empd fuse against references nobody here wrote: scipy for the temperatures and the mixture weights,
scikit-learn for stacking (LogisticRegression with the same C, and the C its own cross-validation on our
folds picks) and for every metric in fusion.json.

usage: check_fuse.py EMPD WORKDIR reference|errors

Two synthetic "runs" over 7 classes: model A knows classes 0-3 and guesses the rest, model B the reverse,
each over- or under-confident, so every method has something to fit and fusion has something to gain.
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

CLASSES = ["happy", "surprised", "angry", "fear", "sad", "disgusted", "contempt"]
K = len(CLASSES)
PMIN = 1e-12


def make_split(rng, n, prefix):
    y = rng.integers(0, K, n)
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    runs = []
    for known, scale in ((range(0, 4), 2.5), (range(4, 7), 0.4)):
        logits = rng.normal(0, 1, (n, K))
        for i in range(n):
            if y[i] in known and rng.random() < 0.85:
                logits[i, y[i]] += 3.0
            elif rng.random() < 0.3:
                logits[i, y[i]] += 1.0
        z = logits * scale
        p = np.exp(z - z.max(1, keepdims=True))
        runs.append(p / p.sum(1, keepdims=True))
    return ids, y, runs


def write_run(folder, split, ids, y, p):
    os.makedirs(f"{folder}/predictions", exist_ok=True)
    with open(f"{folder}/predictions/{split}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "label", "pred"] + [f"p_{c}" for c in CLASSES])
        for i in range(len(ids)):
            w.writerow([ids[i], int(y[i]), int(np.argmax(p[i]))] + [repr(float(v)) for v in p[i]])


def read_preds(path):
    rows = list(csv.DictReader(open(path, newline="")))
    return [r["id"] for r in rows], np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])


def nll_temperature(p, y, t):
    z = np.log(np.maximum(p, PMIN)) / t
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def calibrated(p, t):
    z = np.log(np.maximum(p, PMIN)) / t
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def features(runs):
    return np.concatenate([np.log(np.maximum(p, PMIN)) for p in runs], axis=1)


def folds_of(y, folds):
    seen = [0] * K
    out = []
    for c in y:
        out.append((seen[c] + c) % folds)
        seen[c] += 1
    return np.array(out)


def sk_logreg(x, y, C, exact=False):
    # exact: newton-cg, as lbfgs stops on scipy's relative-decrease test ~1e-4 above the optimum here;
    # lbfgs is close enough to rank the Cs by cross-validated NLL, and 20x faster.
    if exact:
        return LogisticRegression(C=C, tol=1e-12, max_iter=100000, solver="newton-cg").fit(x, y)
    return LogisticRegression(C=C, tol=1e-8, max_iter=100000).fit(x, y)


def close(a, b, tol, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    err = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))
    if not err <= tol:
        sys.exit(f"check_fuse: {what}: empd {a.ravel()[:6]} vs reference {b.ravel()[:6]} (max rel diff {err:.3g})")
    print(f"check_fuse: {what} matches (max rel diff {err:.2e})")


def reference(empd, work):
    rng = np.random.default_rng(11)
    val = make_split(rng, 240, "v")
    test = make_split(rng, 300, "t")
    # The second run lists its samples in another order: fuse matches them by id.
    for r, name in enumerate(("audio", "video")):
        for split, (ids, y, runs) in (("val", val), ("test", test)):
            order = np.arange(len(ids)) if r == 0 else rng.permutation(len(ids))
            write_run(f"{work}/{name}", split, [ids[i] for i in order], y[order], runs[r][order])
    out = f"{work}/fused"
    res = subprocess.run([empd, "fuse", "--out", out, f"{work}/audio", f"{work}/video"], capture_output=True,
                         text=True)
    print(res.stdout, res.stderr)
    if res.returncode:
        sys.exit("check_fuse: empd fuse failed")
    fj = json.load(open(f"{out}/fusion.json"))
    _, yv, pv = val
    _, yt, pt = test

    # Temperatures: each run's NLL minimized over T (scipy, bounded Brent in log T).
    for m in range(2):
        r = minimize_scalar(lambda u: nll_temperature(pv[m], yv, math.exp(u)), bounds=(-6, 6), method="bounded",
                            options={"xatol": 1e-12})
        close(fj["temperatures"][m], math.exp(r.x), 1e-5, f"temperature of run {m}")
    # Weights: the mixture NLL of the calibrated runs over w in [0, 1].
    q = [calibrated(pv[m], fj["temperatures"][m])[np.arange(len(yv)), yv] for m in range(2)]
    r = minimize_scalar(lambda w: -np.mean(np.log(w * q[0] + (1 - w) * q[1])), bounds=(0, 1), method="bounded",
                        options={"xatol": 1e-12})
    close(fj["weights"], [r.x, 1 - r.x], 1e-5, "mixture weights")

    # Stacking: C by 5-fold CV (our folds) with scikit-learn, then the fit on all of val.
    xv, xt = features(pv), features(pt)
    fold = folds_of(yv, 5)
    cv = []
    for C in (0.01, 0.1, 1, 10, 100):
        nll = 0.0
        for f in range(5):
            tr = fold != f
            lr = sk_logreg(xv[tr], yv[tr], C)
            nll -= np.sum(np.log(np.maximum(lr.predict_proba(xv[~tr])[np.arange((~tr).sum()), yv[~tr]], 1e-300)))
        cv.append(nll / len(yv))
    C = (0.01, 0.1, 1, 10, 100)[int(np.argmin(cv))]
    if fj["stacking"]["C"] != C:
        sys.exit(f"check_fuse: stacking C {fj['stacking']['C']}, scikit-learn's CV picks {C} (NLL {cv})")
    print(f"check_fuse: stacking C {C} as scikit-learn's CV on the same folds")
    lr = sk_logreg(xv, yv, C, exact=True)
    W, b = np.array(fj["stacking"]["coef"]), np.array(fj["stacking"]["intercept"])
    s = xt @ W.T + b
    ours = np.exp(s - s.max(1, keepdims=True))
    ours /= ours.sum(1, keepdims=True)
    close(ours, lr.predict_proba(xt), 1e-5, "stacking test probabilities vs LogisticRegression")

    # The methods' test probabilities, from the parameters; their scores in fusion.json vs scikit-learn.
    probs = {"average": (pt[0] + pt[1]) / 2,
             "weighted": sum(fj["weights"][m] * calibrated(pt[m], fj["temperatures"][m]) for m in range(2)),
             "stacking": lr.predict_proba(xt), "audio": pt[0], "video": pt[1]}
    for sc in fj["scores"]:
        p = probs[sc["name"]]
        pred = np.argmax(p, 1)
        close([sc["test"]["accuracy"], sc["test"]["macro_f1"], sc["test"]["weighted_f1"]],
              [accuracy_score(yt, pred), f1_score(yt, pred, average="macro", zero_division=0),
               f1_score(yt, pred, average="weighted", zero_division=0)], 1e-6, f"test scores of {sc['name']}")
        close(sc["test"]["nll"], -np.mean(np.log(p[np.arange(len(yt)), yt])), 1e-6, f"test NLL of {sc['name']}")
    # The chosen method is the best on val (out of fold); its test predictions are written in run 0's order.
    fus = {sc["name"]: sc for sc in fj["scores"] if sc["kind"] == "fusion"}
    best = max(fus, key=lambda n: (fus[n]["val"]["accuracy"], -list(fus).index(n)))
    if fj["method"] != best:
        sys.exit(f"check_fuse: chose {fj['method']}, the best val accuracy is {best}'s")
    ids, p = read_preds(f"{out}/predictions/test.csv")
    if ids != test[0]:
        sys.exit("check_fuse: predictions/test.csv is not in the first run's order")
    close(p, probs[best], 1e-5, f"predictions/test.csv of the chosen method ({best})")
    # The synthetic runs are complementary: the chosen fusion beats each alone on test.
    single = max(sc["test"]["accuracy"] for sc in fj["scores"] if sc["kind"] == "run")
    if not fus[best]["test"]["accuracy"] > single:
        sys.exit(f"check_fuse: fused test accuracy {fus[best]['test']['accuracy']} <= best single {single}")
    print("check_fuse: reference OK")


def errors(empd, work):
    rng = np.random.default_rng(5)
    val, test = make_split(rng, 40, "v"), make_split(rng, 40, "t")
    for name in ("a", "b"):
        for split, (ids, y, runs) in (("val", val), ("test", test)):
            write_run(f"{work}/{name}", split, ids, y, runs[0])
    shutil.copytree(f"{work}/a", f"{work}/other_ids")
    ids, y, runs = val
    write_run(f"{work}/other_ids", "val", ids[:-1] + ["stranger"], y, runs[0])
    shutil.copytree(f"{work}/a", f"{work}/unlabelled")
    write_run(f"{work}/unlabelled", "val", ids, np.where(np.arange(len(y)) == 3, -1, y), runs[0])
    cases = [
        (["b"], 2, "fusion takes 2 to"),
        (["a", "missing"], 1, "missing/predictions/val.csv"),
        (["a", "other_ids"], 1, "'stranger' is not in the first run's"),
        (["unlabelled", "a"], 1, "has no label"),
        (["--select", "auc", "a", "b"], 2, "--select 'auc'"),
        (["--folds", "1", "a", "b"], 2, "--folds '1'"),
        (["--folds", "41", "a", "b"], 1, "fewer than the 41 folds"),
    ]
    for args, code, want in cases:
        out = f"{work}/out_err"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [empd, "fuse", "--out", out] + [a if a.startswith("-") or a.isdigit() or a == "auc" else f"{work}/{a}"
                                             for a in args]
        res = subprocess.run(cmd, capture_output=True, text=True)
        lines = [l for l in res.stderr.splitlines() if l.startswith("empd fuse:")]
        if res.returncode != code or not any(want in l for l in lines):
            sys.exit(f"check_fuse: {args}: exit {res.returncode} (want {code}), stderr {res.stderr!r} lacks {want!r}")
        if os.path.exists(f"{out}/fusion.json"):
            sys.exit(f"check_fuse: {args}: fusion.json written despite the error")
        print(f"check_fuse: {args} -> {lines[0]}")
    print("check_fuse: errors OK")


if __name__ == "__main__":
    warnings.simplefilter("ignore")  # newton-cg's "Line Search failed" once it is at the optimum
    empd, work, what = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    {"reference": reference, "errors": errors}[what](empd, work)
