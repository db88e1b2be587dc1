/* Reports of a training run and of a fusion: what a person reads after `empd train` or `empd fuse`.
 *
 * Each report is three files in the folder it describes, each written atomically (temporary name,
 * fsync, rename), plus its pictures:
 *   report.html   one self-contained page (inline CSS and SVG; no script, no URL, nothing fetched): the
 *                 headline metrics, the per-class table, confusion heat maps and, for a run, the training
 *                 curves (train loss, val loss, val accuracy / F1, learning rate, gradient norm when logged)
 *   report.md     the same tables in Markdown; the pictures as the files below
 *   report/NAME.svg  the pictures as files of their own (train_loss, val_loss, val_metrics, lr, grad_norm,
 *                 confusion_<split>.svg for a run; scores.svg and confusion_{fusion,run}<i>_<name>_<split>.svg
 *                 for a fusion: the chosen method and each run)
 *   report.json   the machine-readable summary, below
 *
 * report.json of a run:
 *   {"format": "empd-report", "version": 1, "kind": "run", "dir": RUNDIR,
 *    "status": "empty" | "unfinished" | "finished"   no record yet; records but no "final" one; finished
 *    "config": {"model.kind": ..., "train.lr": ..., ...} the chosen fields of config.json (absent: left out)
 *    "last_step": the last logged training step (0: none), "last_epoch": its epoch (null: none),
 *    "best_step": the step of the "final" records (the best checkpoint), null while unfinished,
 *    "nonfinite_loss_steps": [steps whose training loss was null or not finite],
 *    "classes": [K names],
 *    "splits": {"val": S, "test": S}   a split without any record is left out
 *       S = {"source": "final" (the best checkpoint) | "eval" (the latest validation of an unfinished run),
 *            "step", "loss" (null: not finite), "accuracy", "macro_precision", "macro_recall", "macro_f1",
 *            "weighted_precision", "weighted_recall", "weighted_f1", "samples",
 *            "per_class": [{"name", "precision", "recall", "f1", "support"}], "confusion": [[K] x K]}
 *            (rows the true class, columns the predicted; the figures as metrics.jsonl has them)
 *    "curves": {"train": {"step": [], "epoch": [], "loss": [], "lr": [], "grad_norm": []},
 *               "val": {"step": [], "loss": [], "accuracy": [], "macro_f1": [], "weighted_f1": []}}
 *              columns of equal length, one entry per record; null where the record had none or not finite
 *    "files": {"html", "md", "svg": [...]}   relative to RUNDIR}
 * report.json of a fusion:
 *   {"format": "empd-report", "version": 1, "kind": "fusion", "dir": DIR,
 *    "method", "select", "folds", "classes", "runs", "temperatures", "weights": as in fusion.json,
 *    "C": stacking's C, "samples": {"val": n, "test": n},
 *    "scores": [{"name", "kind": "run" | "fusion", "chosen": true | false,
 *                "val": S', "test": S'}]   S' as S above without source and step, "nll" for "loss";
 *                                          a fusion method's val figures are out-of-fold
 *    "files": {...}}
 *
 * A run folder holds config.json and metrics.jsonl (trainer/loop.c); a run that has logged nothing
 * yet gets a report saying so. metrics.jsonl may come from a resumed run: a record whose step is not
 * past the one before it restarts its curve from there. A line cut short at the end of the file (the
 * run is writing it) is left out; any other line that is not a well-formed record is an error naming
 * the file and the line. The bare nan/inf a diverged loss may leave in a record read as null. */
#ifndef EMPD_TRAINER_REPORT_H
#define EMPD_TRAINER_REPORT_H

#include <stddef.h>

/* The report of the run folder rundir. 0, or -1 with one line in err naming the file and the fault. */
int tr_report_run(const char *rundir, char *err, size_t errlen);

/* The report of the fusion folder dir (fusion.json, trainer/fusion_file.h). 0, or -1 with one line. */
int tr_report_fusion(const char *dir, char *err, size_t errlen);

#endif
