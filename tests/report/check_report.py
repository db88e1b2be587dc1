#!/usr/bin/env python3
"""Tests of `empd report` on synthetic run and fusion folders.

usage: check_report.py files|errors|chromium REPORT_TOOL WORKDIR

  files     report.json against the records it was made from, report.md's tables, a report.html that
            fetches nothing, well-formed SVG; a finished run (resumed, with a diverged step), an unfinished
            one (its last line cut short), an empty one, and a fusion
  errors    bad inputs: one line on stderr naming the file and the line or field, exit status 1, nothing
            written
  chromium  report.html rendered by headless Chromium: a screenshot that is not blank and no console
            message; skipped (exit 77) when chromium is not installed
REPORT_TOOL runs as `REPORT_TOOL DIR...`, the way `empd report DIR...` does.
"""
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

CLASSES = ["happy", "surprised", "angry", "fear", "sad", "disgusted", "contempt"]
HEAD = ["accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall",
        "weighted_f1"]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- Inputs -----------------------------------------------------------------------------------------------

def metrics(conf, names):
    """The members tr_metrics_json writes, from a confusion matrix (rows true, columns predicted)."""
    k = len(conf)
    support = [sum(r) for r in conf]
    pred = [sum(conf[r][c] for r in range(k)) for c in range(k)]
    total = sum(support)
    p = [conf[c][c] / pred[c] if pred[c] else 0.0 for c in range(k)]
    r = [conf[c][c] / support[c] if support[c] else 0.0 for c in range(k)]
    f = [2 * p[c] * r[c] / (p[c] + r[c]) if p[c] + r[c] > 0 else 0.0 for c in range(k)]
    present = [c for c in range(k) if support[c] or pred[c]]
    m = {"accuracy": sum(conf[c][c] for c in range(k)) / total}
    for key, v in (("precision", p), ("recall", r), ("f1", f)):
        m["macro_" + key] = sum(v[c] for c in present) / len(present)
    for key, v in (("precision", p), ("recall", r), ("f1", f)):
        m["weighted_" + key] = sum(v[c] * support[c] for c in range(k)) / total
    for key, v in (("precision", p), ("recall", r), ("f1", f)):
        m["macro_all_" + key] = sum(v) / k
    m["samples"] = total
    m["classes_present"] = len(present)
    m["per_class"] = [{"name": names[c], "precision": p[c], "recall": r[c], "f1": f[c], "support": support[c]}
                      for c in range(k)]
    m["confusion"] = conf
    return m


def confusion(rng, n, skill, k=7):
    weights = [30, 8, 10, 5, 60, 4, 3][:k] + [5] * max(0, k - 7)
    conf = [[0] * k for _ in range(k)]
    for _ in range(n):
        t = rng.choices(range(k), weights)[0]
        p = t if rng.random() < skill else rng.choices(range(k), weights)[0]
        conf[t][p] += 1
    return conf


def line(rec):
    return json.dumps(rec, separators=(",", ":")) + "\n"


def lr_at(step):
    return 1e-3 * step / 10 if step <= 10 else 1e-3 * (120 - step) / 110


CONFIG = {"data": {"shards": "shards/tiny", "loader_threads": 2},
          "model": {"kind": "audio", "num_classes": 7, "hidden": 64},
          "train": {"batch_size": 8, "grad_accum": 1, "lr": 0.001, "warmup_steps": 10, "max_steps": 120,
                    "epochs": 0, "loss": "ce", "class_weights": "none", "best_metric": "accuracy", "seed": 42,
                    "device": "cpu"}}


def make_run(d, rng):
    """A finished run that was resumed from step 80 (its records from 81 on logged twice, the later ones the
    run's), with a null and a bare -nan loss. Returns what the report must hold."""
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/config.json", "w") as f:
        json.dump(CONFIG, f, indent=2)
    train, val = {}, {}
    out = []

    def train_rec(step, offset):
        loss = 2.0 * math.exp(-step / 60) + 0.1 * rng.random() + offset
        rec = {"event": "train", "step": step, "epoch": (step - 1) // 40, "loss": loss, "lr": lr_at(step),
               "grad_norm": 0.5 + rng.random(), "step_s": 0.05, "comm_s": 0.0, "comm_wait_s": 0.0}
        text = line(rec)
        if step == 57:
            loss, text = None, text.replace(f'"loss":{json.dumps(loss)}', '"loss":null')
        if step == 58:
            loss, text = None, text.replace(f'"loss":{json.dumps(loss)}', '"loss":-nan')
        train[step] = (loss, rec["lr"], rec["epoch"])
        out.append(text)

    def eval_rec(step, skill):
        m = metrics(confusion(rng, 140, skill), CLASSES)
        rec = {"event": "eval", "step": step, "split": "val", "loss": 1.5 - step / 200, **m}
        val[step] = rec
        out.append(line(rec))

    for step in range(1, 91):
        train_rec(step, 0.0)
        if step % 30 == 0:
            eval_rec(step, 0.3 + step / 400)
    for step in range(81, 121):  # the resumed run's records
        train_rec(step, 0.05)
        if step % 30 == 0:
            eval_rec(step, 0.32 + step / 400)
    out.append(line({"event": "export", "step": 120}))  # a record the report does not know
    finals = {}
    for split in ("val", "test"):
        m = metrics(confusion(rng, 140 if split == "val" else 150, 0.6), CLASSES)
        finals[split] = {"event": "final", "step": 90, "split": split, "loss": 1.04 if split == "val" else None, **m}
        out.append(line(finals[split]))
    with open(f"{d}/metrics.jsonl", "w") as f:
        f.writelines(out)
    return train, val, finals


def make_unfinished(d, rng):
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/config.json", "w") as f:
        json.dump(CONFIG, f)
    last = None
    with open(f"{d}/metrics.jsonl", "w") as f:
        for step in range(1, 51):
            f.write(line({"event": "train", "step": step, "epoch": 0, "loss": 2.0 - step / 50, "lr": lr_at(step),
                          "grad_norm": 0}))
            if step % 25 == 0:
                last = {"event": "eval", "step": step, "split": "val", "loss": None,
                        **metrics(confusion(rng, 100, 0.5), CLASSES)}
                f.write(line(last))
        f.write('{"event":"train","step":51,"epoch":0,"lo')  # the run is writing this line
    return last


def make_fusion(d, rng):
    os.makedirs(d, exist_ok=True)
    names = CLASSES[:6] + ["contempt | <scorn> & co"]
    scores = []
    for name, kind, skill in (("audio", "run", 0.35), ("video", "run", 0.45), ("average", "fusion", 0.5),
                              ("weighted", "fusion", 0.55), ("stacking", "fusion", 0.52)):
        s = {"name": name, "kind": kind}
        for split, n in (("val", 140), ("test", 150)):
            s[split] = {**metrics(confusion(rng, n, skill), names), "nll": 1.2 + rng.random()}
        scores.append(s)
    doc = {"format": "empd-fusion", "version": 1, "method": "weighted", "select": "accuracy", "folds": 5,
           "classes": names, "runs": ["runs/audio", "runs/video"], "temperatures": [1.25, 0.875],
           "weights": [0.625, 0.375],
           "stacking": {"C": 0.1, "coef": [[0.5] * 14 for _ in range(7)], "intercept": [0.0] * 7},
           "samples": {"val": 140, "test": 150}, "scores": scores}
    with open(f"{d}/fusion.json", "w") as f:
        json.dump(doc, f, indent=2)
    return doc


def run_tool(tool, *dirs, ok=True):
    p = subprocess.run([tool, *dirs], capture_output=True, text=True, timeout=60)
    if ok and p.returncode != 0:
        fail(f"{tool} {' '.join(dirs)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


# ---- Checks of the outputs --------------------------------------------------------------------------------

FORBIDDEN = [r"https?://", r"\bsrc\s*=", r"\bhref\s*=", r"url\(", r"<script", r"<link", r"@import", r"<iframe",
             r"<object", r"<embed"]


def check_html(path):
    html = open(path, encoding="utf-8").read()
    for pat in FORBIDDEN:
        m = re.search(pat, html, re.I)
        check(not m, f"{path}: '{m.group(0) if m else ''}' would fetch or run something; the page is self-contained")
    check(html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>"), f"{path}: not a whole page")
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    for s in svgs:
        try:
            ET.fromstring(s)
        except ET.ParseError as e:
            fail(f"{path}: an inline picture is not well-formed SVG: {e}")
    return html, len(svgs)


def check_svg_files(d, files):
    for rel in files:
        path = os.path.join(d, rel)
        check(os.path.isfile(path), f"{path}: listed in report.json but missing")
        root = ET.parse(path).getroot()
        check(root.tag == "{http://www.w3.org/2000/svg}svg", f"{path}: not an SVG document ({root.tag})")


def same(a, b, what):
    check(a == b, f"{what}: report.json has {a!r}, the input {b!r}")


def check_split(got, rec, what, loss_key="loss"):
    for k in HEAD + ["samples", "per_class", "confusion"]:
        same(got[k], rec[k], f"{what}.{k}")
    same(got[loss_key], rec[loss_key], f"{what}.{loss_key}")


def f4(v):
    return "–" if v is None else f"{v:.4f}"


def test_files(tool, work):
    rng = random.Random(7)
    run, unf, empty, fus = (f"{work}/{n}" for n in ("run", "unfinished", "empty", "fused"))
    train, val, finals = make_run(run, rng)
    last_eval = make_unfinished(unf, rng)
    os.makedirs(empty, exist_ok=True)
    with open(f"{empty}/config.json", "w") as f:
        json.dump(CONFIG, f)
    open(f"{empty}/metrics.jsonl", "w").close()
    doc = make_fusion(fus, rng)
    p = run_tool(tool, run, unf, empty, fus)
    for d in (run, unf, empty, fus):
        check(f"{d}/report.html" in p.stdout, f"the command did not say where the report of {d} is: {p.stdout!r}")

    # The finished run.
    j = json.load(open(f"{run}/report.json"))
    same(j["format"], "empd-report", "format")
    same(j["kind"], "run", "kind")
    same(j["status"], "finished", "status")
    same(j["best_step"], 90, "best_step")
    same(j["last_step"], 120, "last_step")
    same(j["last_epoch"], train[120][2], "last_epoch")
    same(j["nonfinite_loss_steps"], [57, 58], "nonfinite_loss_steps")
    same(j["classes"], CLASSES, "classes")
    same(j["config"]["model.kind"], "audio", "config model.kind")
    same(j["config"]["train.lr"], 0.001, "config train.lr")
    for split in ("val", "test"):
        check_split(j["splits"][split], finals[split], f"splits.{split}")
        same(j["splits"][split]["source"], "final", f"splits.{split}.source")
        same(j["splits"][split]["step"], 90, f"splits.{split}.step")
    ct, cv = j["curves"]["train"], j["curves"]["val"]
    same(ct["step"], list(range(1, 121)), "curves.train.step (a resumed run's records replace the earlier ones)")
    same(ct["loss"], [train[s][0] for s in range(1, 121)], "curves.train.loss")
    same(ct["lr"], [train[s][1] for s in range(1, 121)], "curves.train.lr")
    same(ct["epoch"], [train[s][2] for s in range(1, 121)], "curves.train.epoch")
    same(cv["step"], [30, 60, 90, 120], "curves.val.step")
    for k in ("loss", "accuracy", "macro_f1", "weighted_f1"):
        same(cv[k], [val[s][k] for s in (30, 60, 90, 120)], f"curves.val.{k}")
    want_svg = {"report/train_loss.svg", "report/val_loss.svg", "report/val_metrics.svg", "report/lr.svg",
                "report/grad_norm.svg", "report/confusion_val.svg", "report/confusion_test.svg"}
    same(set(j["files"]["svg"]), want_svg, "files.svg")
    check_svg_files(run, j["files"]["svg"])
    md = open(f"{run}/report.md", encoding="utf-8").read()
    for split in ("val", "test"):
        r = finals[split]
        row = f"| {split} | best checkpoint, step 90 | " + " | ".join(
            f4(r[k]) for k in HEAD + ["loss"]) + f" | {r['samples']} |"
        check(row in md, f"report.md: no headline row {row!r}")
        for c in r["per_class"]:
            row = f"| {c['name']} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
            check(row in md, f"report.md: no per-class row {row!r}")
        conf = r["confusion"]
        row = f"| {CLASSES[1]} |" + "".join(f" **{v}** |" if i == 1 else f" {v} |" for i, v in enumerate(conf[1]))
        check(row in md, f"report.md: no confusion row {row!r}")
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        check(os.path.isfile(os.path.join(run, img)), f"report.md: picture {img} missing")
    html, n_svg = check_html(f"{run}/report.html")
    same(n_svg, 7, "inline pictures in the run's report.html")
    for text in CLASSES + ["Training loss", "Validation loss", "Validation metrics", "Learning rate", "best: step 90",
                           f"{finals['test']['accuracy']:.4f}", "not finite (2)"]:
        check(text in html, f"report.html of the run lacks {text!r}")

    # The unfinished run: its last validation, the line being written left out.
    j = json.load(open(f"{unf}/report.json"))
    same(j["status"], "unfinished", "unfinished status")
    same(j["best_step"], None, "unfinished best_step")
    same(j["last_step"], 50, "unfinished last_step")
    same(sorted(j["splits"]), ["val"], "unfinished splits")
    same(j["splits"]["val"]["source"], "eval", "unfinished splits.val.source")
    same(j["splits"]["val"]["step"], 50, "unfinished splits.val.step")
    check_split(j["splits"]["val"], last_eval, "unfinished splits.val")
    html, n_svg = check_html(f"{unf}/report.html")
    check("latest validation, step 50" in html and "unfinished" in html, "unfinished report.html: no status")

    # The empty run.
    j = json.load(open(f"{empty}/report.json"))
    same(j["status"], "empty", "empty status")
    same(j["splits"], {}, "empty splits")
    same(j["files"]["svg"], [], "empty files.svg")
    html, n_svg = check_html(f"{empty}/report.html")
    check("Nothing yet" in html, "empty report.html does not say there is nothing yet")
    check("Nothing yet" in open(f"{empty}/report.md").read(), "empty report.md does not say there is nothing yet")

    # The fusion.
    j = json.load(open(f"{fus}/report.json"))
    same(j["kind"], "fusion", "fusion kind")
    for k in ("method", "select", "folds", "classes", "runs", "temperatures", "weights", "samples"):
        same(j[k], doc[k], f"fusion {k}")
    same(j["C"], doc["stacking"]["C"], "fusion C")
    same(len(j["scores"]), len(doc["scores"]), "fusion scores")
    for got, want in zip(j["scores"], doc["scores"]):
        same(got["name"], want["name"], "score name")
        same(got["kind"], want["kind"], "score kind")
        same(got["chosen"], want["name"] == "weighted", f"score {want['name']} chosen")
        for split in ("val", "test"):
            check_split(got[split], want[split], f"scores.{want['name']}.{split}", "nll")
    check_svg_files(fus, j["files"]["svg"])
    same(len(j["files"]["svg"]), 4, "fusion pictures (scores, the chosen method's and each run's confusion)")
    md = open(f"{fus}/report.md", encoding="utf-8").read()
    for s in doc["scores"]:
        row = f"| {s['name']}{' **(chosen)**' if s['name'] == 'weighted' else ''} | {s['kind']} |" + "".join(
            f" {f4(s[sp][k])} |" for sp in ("val", "test") for k in ("accuracy", "macro_f1", "weighted_f1", "nll"))
        check(row in md, f"fusion report.md: no score row {row!r}")
    check("| `runs/audio` | 1.2500 | 0.6250 |" in md, "fusion report.md: no parameter row of runs/audio")
    check("contempt \\| <scorn> & co" in md, "fusion report.md: a class name with | is not escaped")
    html, n_svg = check_html(f"{fus}/report.html")
    same(n_svg, 4, "inline pictures in the fusion's report.html")
    check(html.count('class="badge">chosen<') == 1, "fusion report.html: the chosen method is not marked once")
    check("contempt | &lt;scorn&gt; &amp; co" in html, "fusion report.html: a class name is not escaped")
    print("report_files: ok (finished, resumed, unfinished, empty run; fusion)")


# ---- Bad inputs -------------------------------------------------------------------------------------------

def test_errors(tool, work):
    rng = random.Random(3)
    good = metrics(confusion(rng, 50, 0.5), CLASSES)
    tr = line({"event": "train", "step": 1, "epoch": 0, "loss": 1.0, "lr": 1e-4, "grad_norm": 0})
    ev = line({"event": "eval", "step": 1, "split": "val", "loss": 1.0, **good})
    bad_conf = dict(good, confusion=[row[:6] for row in good["confusion"]])
    six = metrics(confusion(rng, 50, 0.5, k=6), CLASSES[:6])
    cases = [
        ("json", [tr, tr.replace('"step":1', '"step":2'), "{not json\n", tr], "metrics.jsonl:3: not a JSON record"),
        ("step", [tr, line({"event": "train", "loss": 1.0})], 'metrics.jsonl:2: "step" must be a number'),
        ("loss", [tr, line({"event": "train", "step": 2, "loss": "low"})], 'metrics.jsonl:2: "loss" must be a number'),
        ("event", [line({"step": 3})], 'metrics.jsonl:1: no "event"'),
        ("object", ["[1, 2]\n"], "metrics.jsonl:1: not a JSON object"),
        ("split", [tr, line({"event": "final", "step": 1, "loss": 1.0, **good})], 'metrics.jsonl:2: no "split"'),
        ("confusion", [tr, ev, line({"event": "eval", "step": 2, "split": "val", "loss": 1.0, **bad_conf})],
         "metrics.jsonl:3: confusion[0] must be a list of 7 counts"),
        ("classes", [ev, line({"event": "final", "step": 1, "split": "test", "loss": 1.0, **six})],
         "metrics.jsonl:2: 6 classes, but the records before have 7"),
        ("accuracy", [line({"event": "eval", "step": 1, "split": "val", "loss": 1.0,
                            **{k: v for k, v in good.items() if k != "accuracy"}})],
         'metrics.jsonl:1: "accuracy" must be a number'),
    ]
    n = 0
    for name, lines, want in cases:
        d = f"{work}/{name}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/metrics.jsonl", "w") as f:
            f.writelines(lines)
        expect_error(tool, d, want)
        n += 1
    d = f"{work}/notrun"
    os.makedirs(d, exist_ok=True)
    expect_error(tool, d, "neither config.json nor metrics.jsonl: not a run folder")
    expect_error(tool, f"{work}/absent", "absent: no such folder")
    d = f"{work}/badconfig"
    os.makedirs(d, exist_ok=True)
    open(f"{d}/config.json", "w").write("{")
    expect_error(tool, d, "config.json: not valid JSON")
    doc = make_fusion(f"{work}/fusion_ok", rng)
    for name, edit, want in (
            ("fusion_json", lambda t: t[:-20], "fusion.json: not valid JSON"),
            ("fusion_format", lambda t: t.replace('"empd-fusion"', '"other"'), "fusion.json: not a fusion file"),
            ("fusion_method", lambda t: t.replace('"method": "weighted"', '"method": "vote"'),
             'fusion.json: "method" is "vote", but no fusion score has that name'),
            ("fusion_weights", lambda t: json.dumps(dict(doc, weights=[1.0])),
             'fusion.json: "weights" must be a list of 2 numbers'),
            ("fusion_score", lambda t: json.dumps(dict(doc, scores=doc["scores"][:1] + [
                dict(doc["scores"][1], test={k: v for k, v in doc["scores"][1]["test"].items() if k != "accuracy"})
            ] + doc["scores"][2:])), 'fusion.json: scores[1].test: "accuracy" must be a number')):
        d = f"{work}/{name}"
        os.makedirs(d, exist_ok=True)
        open(f"{d}/fusion.json", "w").write(edit(open(f"{work}/fusion_ok/fusion.json").read()))
        expect_error(tool, d, want)
        n += 1
    p = subprocess.run([tool], capture_output=True, text=True, timeout=30)
    same(p.returncode, 2, "exit status without a folder (usage)")
    print(f"report_errors: ok ({n + 3} bad inputs, each one line naming where)")


def expect_error(tool, d, want):
    p = run_tool(tool, d, ok=False)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 1, f"{d}: exit {p.returncode}, want 1 (stderr {p.stderr!r})")
    check(len(lines) == 1, f"{d}: {len(lines)} lines on stderr, want one: {p.stderr!r}")
    check(want in lines[0], f"{d}: error {lines[0]!r} does not say {want!r}")
    check(d in lines[0] or os.path.basename(d) in lines[0], f"{d}: error {lines[0]!r} does not name the folder")
    for f in ("report.html", "report.md", "report.json"):
        check(not os.path.exists(f"{d}/{f}"), f"{d}: {f} written despite the error")


# ---- Headless Chromium ------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":CONSOLE|Uncaught|Failed to load resource|net::ERR_")


def screenshot(chromium, page, png, size="1280,2400"):
    with tempfile.TemporaryDirectory(prefix="empd-chromium-") as profile:
        p = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                            f"--window-size={size}", "file://" + os.path.abspath(page)],
                           capture_output=True, text=True, timeout=90)
    logged = [l for l in p.stderr.splitlines() if CONSOLE.search(l)]
    return p.returncode, logged, p.stderr


def pixels(png):
    """The screenshot as rows of RGB bytes (width, height, data), decoded by FFmpeg (PyAV or the CLI)."""
    try:
        import av
        with av.open(png) as c:
            frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
        return frame.shape[1], frame.shape[0], frame.tobytes()
    except ImportError:
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                "stream=width,height", "-of", "csv=p=0", png], capture_output=True, text=True,
                               check=True)
        w, h = map(int, probe.stdout.strip().split(","))
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", png, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
        return w, h, raw


def check_screenshot(png, what):
    w, h, data = pixels(png)
    same((w, h), (1280, 2400), f"{what}: screenshot size")
    import numpy as np
    img = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3)
    flat = img.reshape(-1, 3).astype(np.uint32)
    colors = len(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]))
    background = (np.abs(img.astype(int) - [243, 244, 247]).sum(axis=2) < 6) | (img.min(axis=2) > 250)
    inked = 1 - background.mean()
    banner = (np.abs(img[5:40, :, :].astype(int) - [31, 59, 87]).sum(axis=2) < 6).mean()
    dark_text = (img.max(axis=2) < 90).mean()
    check(colors > 300, f"{what}: {colors} distinct colors; the page looks blank")
    check(inked > 0.05, f"{what}: only {inked:.1%} of the page differs from the background")
    check(banner > 0.5, f"{what}: the banner is not where the style sheet puts it ({banner:.0%})")
    check(dark_text > 0.002, f"{what}: hardly any text ({dark_text:.2%} dark pixels)")
    return colors, inked


def test_chromium(tool, work):
    chromium = next((shutil.which(c) for c in ("chromium", "chromium-browser") if shutil.which(c)), None)
    if not chromium:
        print("report_chromium: SKIP: chromium is not installed (launch/setup installs the Debian package)")
        sys.exit(77)
    rng = random.Random(11)
    run, fus = f"{work}/run", f"{work}/fused"
    make_run(run, rng)
    make_fusion(fus, rng)
    run_tool(tool, run, fus)

    # The detector must see what it is there to see: a page that logs an error and an uncaught exception.
    with open(f"{work}/broken.html", "w") as f:
        f.write('<!DOCTYPE html><html><body><p>broken</p><script>console.error("deliberate");'
                'undefined_function();</script></body></html>')
    rc, logged, _ = screenshot(chromium, f"{work}/broken.html", f"{work}/broken.png", "400,300")
    check(rc == 0 and len(logged) >= 2, f"the console check saw {logged} of a page that logs two errors")

    for name, d in (("run", run), ("fusion", fus)):
        png = f"{work}/{name}.png"
        rc, logged, err = screenshot(chromium, f"{d}/report.html", png)
        check(rc == 0 and os.path.isfile(png), f"chromium failed on {d}/report.html (exit {rc}): {err[-2000:]}")
        check(not logged, f"{d}/report.html logged: {logged}")
        colors, inked = check_screenshot(png, f"{d}/report.html")
        print(f"report_chromium: {name}: {png}: {colors} colors, {inked:.0%} of the page drawn, no console message")
    print("report_chromium: ok")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("files", "errors", "chromium"):
        sys.exit(__doc__)
    what, tool, work = sys.argv[1:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    {"files": test_files, "errors": test_errors, "chromium": test_chromium}[what](tool, work)


if __name__ == "__main__":
    main()
