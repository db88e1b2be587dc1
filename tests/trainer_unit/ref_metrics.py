#!/usr/bin/python3
"""Reference classification metrics for test_trainer_unit, computed by scikit-learn.

Usage:
  ref_metrics.py               the cases on stdout, one block per case:
    case NAME N_CLASSES N_SAMPLES
    names NAME0 NAME1 ...                      (class names, no spaces in them)
    true Y0 Y1 ...
    pred Y0 Y1 ...
    accuracy A
    class C PRECISION RECALL F1 SUPPORT        (N_CLASSES lines, labels=range(N_CLASSES))
    macro P R F                                (labels=None: the labels in y_true or y_pred)
    weighted P R F                             (labels=None)
    macro_all P R F                            (labels=range(N_CLASSES))
    confusion C00 C01 ...                      (confusion_matrix, labels=range(N_CLASSES), row-major)
    report K                                   then K lines: classification_report(y_true, y_pred,
                                               target_names=the present classes' names, digits=4)
  ref_metrics.py --check-json FILE
    FILE holds one line per case, in the order above: NAME, a tab, and the JSON object made of
    tr_metrics_json's members. Each is parsed with the json module and every figure compared with
    scikit-learn's (reals to 1e-12, counts and names exactly). Prints "json CASES MAX_ERROR"; exit
    status 1 with a line naming the case and the field on the first mismatch.
Every real number is printed with repr (17 significant digits, round-trips exactly).
"""
import json
import re
import sys

import numpy as np
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix,
                             precision_recall_fscore_support)

NAMES7 = ["happy", "surprised", "angry", "fear", "sad", "disgusted", "contempt"]
# Lengths on both sides of "weighted avg" (12), and characters JSON must escape.
NAMES32 = [f"emotion{c}" + "x" * (c % 9) for c in range(31)] + ['q"uo\\te']


def cases():
    """(name, n_classes, y_true, y_pred) of every case, the same on every call."""
    for n in (7, 32):
        for seed in range(4):
            rng = np.random.default_rng(1000 * n + seed)
            m = int(rng.integers(20, 400))
            y_true = rng.integers(0, n, m)
            # Mostly right, as a trained model is, so precision and recall are far from chance.
            y_pred = np.where(rng.random(m) < 0.6, y_true, rng.integers(0, n, m))
            yield f"random{n}_{seed}", n, y_true, y_pred
        rng = np.random.default_rng(n)
        m = 150
        y_true = rng.integers(0, n, m)
        y_pred = rng.integers(0, n, m)
        y_pred[y_pred == 2] = 3
        yield f"never_predicted{n}", n, y_true, y_pred
        y_true = rng.integers(0, n, m)
        y_true[y_true == 1] = 0
        y_pred = rng.integers(0, n, m)
        yield f"absent_from_true{n}", n, y_true, y_pred
        # Only some classes in y_true and y_pred: the macro average over present labels differs
        # from the one over range(n).
        y_true = rng.integers(0, 3, m)
        y_pred = np.where(rng.random(m) < 0.5, y_true, rng.integers(0, 4, m))
        yield f"few_labels{n}", n, y_true, y_pred
        # The class with the longest name absent: the report's column follows the present names.
        y_true = rng.integers(0, n - 1, m)
        y_pred = np.where(rng.random(m) < 0.7, y_true, rng.integers(0, n - 1, m))
        yield f"last_absent{n}", n, y_true, y_pred
        yield f"all_one_class{n}", n, [4] * 30, [4] * 30
        yield f"all_one_class_wrong{n}", n, [4] * 30, rng.integers(0, n, 30)
        yield f"predicts_one_class{n}", n, rng.integers(0, n, 40), [5] * 40
        yield f"single_right{n}", n, [6], [6]
        yield f"single_wrong{n}", n, [6], [2]
        yield f"perfect{n}", n, np.arange(m) % n, np.arange(m) % n


def reference(n, y_true, y_pred):
    """Every figure scikit-learn gives for the case."""
    labels = list(range(n))
    ref = {"accuracy": float(accuracy_score(y_true, y_pred))}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    ref["per_class"] = [(float(p[c]), float(r[c]), float(f[c]), int(s[c])) for c in range(n)]
    for key, avg, lab in (("macro", "macro", None), ("weighted", "weighted", None),
                          ("macro_all", "macro", labels)):
        ref[key] = [float(v) for v in precision_recall_fscore_support(
            y_true, y_pred, labels=lab, average=avg, zero_division=0)[:3]]
    ref["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return ref


def emit(name, n, y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    names = NAMES7 if n == 7 else NAMES32
    ref = reference(n, y_true, y_pred)
    out = [f"case {name} {n} {len(y_true)}",
           "names " + " ".join(names),
           "true " + " ".join(map(str, y_true)),
           "pred " + " ".join(map(str, y_pred)),
           f"accuracy {ref['accuracy']!r}"]
    for c, (p, r, f, s) in enumerate(ref["per_class"]):
        out.append(f"class {c} {p!r} {r!r} {f!r} {s}")
    for key in ("macro", "weighted", "macro_all"):
        out.append(key + " " + " ".join(repr(v) for v in ref[key]))
    out.append("confusion " + " ".join(str(v) for row in ref["confusion"] for v in row))
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    report = classification_report(y_true, y_pred, target_names=[names[c] for c in present], digits=4,
                                   zero_division=0)
    # Where no prediction is right, sklearn's counts come out as floats (multilabel_confusion_matrix's
    # "pathological case") and the support column reads "1.0": the count is the same, printed as one.
    report = [re.sub(r" (\d+)\.0$", lambda m: " " + m.group(1).rjust(len(m.group(0)) - 1), line)
              for line in report.split("\n")]
    out.append(f"report {len(report)}")
    out.extend(report)
    print("\n".join(out))


def check_json(path):
    worst = 0.0
    lines = open(path, encoding="utf-8").read().splitlines()
    all_cases = list(cases())
    if len(lines) != len(all_cases):
        sys.exit(f"{path}: {len(lines)} records for {len(all_cases)} cases")
    for line, (name, n, y_true, y_pred) in zip(lines, all_cases):
        got_name, record = line.split("\t", 1)
        got = json.loads(record)
        ref = reference(n, np.asarray(y_true), np.asarray(y_pred))
        names = NAMES7 if n == 7 else NAMES32

        def close(field, a, b):
            nonlocal worst
            worst = max(worst, abs(a - b))
            if not (isinstance(a, (int, float)) and abs(a - b) <= 1e-12):
                sys.exit(f"{name}: {field} is {a!r} in the JSON, {b!r} by scikit-learn")

        if got_name != name:
            sys.exit(f"record {got_name} where case {name} was expected")
        close("accuracy", got["accuracy"], ref["accuracy"])
        for key in ("macro", "weighted", "macro_all"):
            for part, want in zip(("precision", "recall", "f1"), ref[key]):
                close(f"{key}_{part}", got[f"{key}_{part}"], want)
        if got["samples"] != len(y_true):
            sys.exit(f"{name}: samples {got['samples']}, want {len(y_true)}")
        present = len(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
        if got["classes_present"] != present:
            sys.exit(f"{name}: classes_present {got['classes_present']}, want {present}")
        if len(got["per_class"]) != n:
            sys.exit(f"{name}: {len(got['per_class'])} per_class entries for {n} classes")
        for c, (row, (p, r, f, s)) in enumerate(zip(got["per_class"], ref["per_class"])):
            if row["name"] != names[c] or row["support"] != s:
                sys.exit(f"{name}: per_class[{c}] is {row['name']!r} support {row['support']}, want "
                         f"{names[c]!r} support {s}")
            close(f"per_class[{c}].precision", row["precision"], p)
            close(f"per_class[{c}].recall", row["recall"], r)
            close(f"per_class[{c}].f1", row["f1"], f)
        if got["confusion"] != ref["confusion"]:
            sys.exit(f"{name}: confusion {got['confusion']} is not scikit-learn's {ref['confusion']}")
    print(f"json {len(lines)} {worst!r}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-json":
        check_json(sys.argv[2])
        return
    for name, n, y_true, y_pred in cases():
        emit(name, n, y_true, y_pred)


if __name__ == "__main__":
    main()
