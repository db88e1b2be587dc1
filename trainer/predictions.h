/* Per-sample predictions of a split, for late fusion (empd fuse) and for anyone's own analysis:
 * RUNDIR/predictions/<split>.csv, written by rank 0 from the best checkpoint's weights once tr_evaluate
 * has gathered every rank's samples.
 *
 * Format: CSV as RFC 4180 and Python's csv module read it, UTF-8, "\n" line ends, no comment lines.
 *   line 1    id,label,pred,p_<class 0>,...,p_<class K-1>
 *   then one row per sample of the split, in the split's order (manifest.json's
 *   splits.<split>.conversation_ids), each sample exactly once:
 *     id      the conversation id (the sample's stable name across runs, models and world sizes)
 *     label   the true class index 0..K-1, or -1 for an unlabelled sample
 *     pred    the predicted class (the largest logit; the lowest index on a tie), what the metrics count
 *     p_*     the softmax probabilities of the K classes, %.17g: the doubles evaluation computed from the
 *             model's float logits, exactly (they sum to 1 within 1e-15). log(p) gives back the logits up to
 *             a constant per row, which is all temperature scaling and logit fusion need.
 *   A field is quoted ("...", with "" for a quote) only when it holds a comma, a quote or a line end; the
 *   AvaMERG ids and the class names never do. K is 7 (happy, surprised, angry, fear, sad, disgusted,
 *   contempt) or 32 (the EmpatheticDialogues emotions in alphabetical order); another K names the columns
 *   p_0 .. p_<K-1>.
 * Python:  rows = list(csv.DictReader(open(path, newline="")))  ->  row["id"], int(row["label"]),
 *          float(row["p_happy"]) ...;  or pandas.read_csv(path, dtype={"id": str}) (keep the ids' zeros). */
#ifndef EMPD_TRAINER_PREDICTIONS_H
#define EMPD_TRAINER_PREDICTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "dataset/manifest.h"
#include "trainer/evaluate.h"
#include "trainer/metrics.h"

/* The names of a 7- or 32-class label space, NULL for another count. */
const char *const *tr_class_names(int n_classes);

/* Writes e's samples (tr_evaluate with samples) to path atomically (temporary name, fsync, rename);
 * ids: the split's conversation ids, one per sample. -1 with one line naming path on failure. */
int tr_predictions_write(const char *path, const tr_eval *e, const ds_strv *ids, char *err, size_t errlen);

/* A predictions file read back. */
typedef struct {
    int n_classes;
    char *class_names[TR_MAX_CLASSES]; /* the header's p_<name> without "p_" */
    int64_t n;
    char **ids;      /* [n] */
    int64_t *label;  /* [n] -1: unlabelled */
    int *pred;       /* [n] */
    double *probs;   /* [n * n_classes] */
} tr_predictions;

/* Reads and checks a predictions file (this format, from any writer: quoted fields and "\r\n" line ends
 * are accepted): the header, 2..TR_MAX_CLASSES distinct class names, every row with all its fields, an
 * id that is not empty and not repeated, a label in -1..K-1, a pred in 0..K-1, probabilities in [0, 1]
 * summing to 1 within 1e-4. -1 with one line "PATH:LINE: what" on the first fault; *out then holds nothing
 * to free. */
int tr_predictions_read(const char *path, tr_predictions *out, char *err, size_t errlen);
void tr_predictions_free(tr_predictions *p);

#endif
