#!/usr/bin/python3
"""Reference classification metrics for test_trainer_unit, computed by scikit-learn.

Usage: ref_metrics.py  ->  cases on stdout, one block per case:
    case NAME N_CLASSES N_SAMPLES
    true Y0 Y1 ...
    pred Y0 Y1 ...
    accuracy A
    class C PRECISION RECALL F1 SUPPORT        (N_CLASSES lines, labels=range(N_CLASSES))
    macro P R F                                (labels=None: the labels in y_true or y_pred)
    weighted P R F                             (labels=None)
    macro_all P R F                            (labels=range(N_CLASSES), for the record)
Every real number is printed with repr (17 significant digits, round-trips exactly).
"""
import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


def emit(name, n, y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    out = [f"case {name} {n} {len(y_true)}",
           "true " + " ".join(map(str, y_true)),
           "pred " + " ".join(map(str, y_pred)),
           f"accuracy {float(accuracy_score(y_true, y_pred))!r}"]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(range(n)), zero_division=0)
    for c in range(n):
        out.append(f"class {c} {float(p[c])!r} {float(r[c])!r} {float(f[c])!r} {int(s[c])}")
    for avg, labels, key in (("macro", None, "macro"), ("weighted", None, "weighted"),
                             ("macro", list(range(n)), "macro_all")):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                     zero_division=0)
        out.append(f"{key} {float(p)!r} {float(r)!r} {float(f)!r}")
    print("\n".join(out))


def main():
    for n in (7, 32):
        for seed in range(4):
            rng = np.random.default_rng(1000 * n + seed)
            m = int(rng.integers(20, 400))
            y_true = rng.integers(0, n, m)
            # Mostly right, as a trained model is, so precision and recall are far from chance.
            y_pred = np.where(rng.random(m) < 0.6, y_true, rng.integers(0, n, m))
            emit(f"random{n}_{seed}", n, y_true, y_pred)
        rng = np.random.default_rng(n)
        m = 150
        y_true = rng.integers(0, n, m)
        y_pred = rng.integers(0, n, m)
        y_pred[y_pred == 2] = 3
        emit(f"never_predicted{n}", n, y_true, y_pred)
        y_true = rng.integers(0, n, m)
        y_true[y_true == 1] = 0
        y_pred = rng.integers(0, n, m)
        emit(f"absent_from_true{n}", n, y_true, y_pred)
        # Only some classes in y_true and y_pred: the macro average over present labels differs
        # from the one over range(n).
        y_true = rng.integers(0, 3, m)
        y_pred = np.where(rng.random(m) < 0.5, y_true, rng.integers(0, 4, m))
        emit(f"few_labels{n}", n, y_true, y_pred)
        emit(f"all_one_class{n}", n, [4] * 30, [4] * 30)
        emit(f"all_one_class_wrong{n}", n, [4] * 30, rng.integers(0, n, 30))
        emit(f"predicts_one_class{n}", n, rng.integers(0, n, 40), [5] * 40)
        emit(f"single_right{n}", n, [6], [6])
        emit(f"single_wrong{n}", n, [6], [2])
        emit(f"perfect{n}", n, np.arange(m) % n, np.arange(m) % n)


if __name__ == "__main__":
    main()
