/* What the run report (report_run.c) and the fusion report (report_fusion.c) share (report.c): the
 * metrics of one split read from a metrics.jsonl record or a fusion.json score, their tables in HTML
 * and Markdown, the page around them, and the writing of the files. Private to trainer/. */
#ifndef EMPD_TRAINER_REPORT_PARTS_H
#define EMPD_TRAINER_REPORT_PARTS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "trainer/metrics.h"
#include "trainer/report_svg.h"

/* The headline figures, in table order; TR_H_LOSS is "loss" of a run's record, "nll" of a fusion score. */
enum { TR_H_ACC, TR_H_MP, TR_H_MR, TR_H_MF1, TR_H_WP, TR_H_WR, TR_H_WF1, TR_H_LOSS, TR_H_N };
extern const char *const tr_report_head_key[TR_H_N];
extern const char *const tr_report_head_label[TR_H_N];

/* One split's metrics as tr_metrics_json wrote them. */
typedef struct {
    int present;
    double v[TR_H_N]; /* NaN: null */
    int64_t samples;
    int k;
    char names[TR_MAX_CLASSES][64];
    double precision[TR_MAX_CLASSES], recall[TR_MAX_CLASSES], f1[TR_MAX_CLASSES];
    int64_t support[TR_MAX_CLASSES];
    int64_t conf[TR_MAX_CLASSES * TR_MAX_CLASSES]; /* [true * k + predicted] */
} tr_report_metrics;

/* Reads the metrics members of object o (the loss under loss_key, a number or null). where names the
 * record in the error line ("runs/a/metrics.jsonl:12"). 0, or -1 with one line. */
int tr_report_read_metrics(const cJSON *o, const char *loss_key, tr_report_metrics *m, const char *where, char *err,
                           size_t errlen);
/* A JSON number that reads back to v exactly; null when v is not finite. */
cJSON *tr_report_num(double v);
/* m's figures, per-class list and confusion as a JSON object (the loss under loss_key). */
cJSON *tr_report_metrics_json(const tr_report_metrics *m, const char *loss_key);
/* m's class names as an array of pointers into m (names has room for TR_MAX_CLASSES). */
const char *const *tr_report_names(const tr_report_metrics *m, const char *names[TR_MAX_CLASSES]);

/* A whole file into memory, NUL-terminated; NULL with one line in err (*missing set when it does not
 * exist). */
char *tr_report_slurp(const char *path, size_t *len, int *missing, char *err, size_t errlen);
/* DIR/report/, for the pictures. */
int tr_report_mkdir(const char *dir, char *err, size_t errlen);
/* Writes t to DIR/name atomically; svg: t is one picture, written as a standalone SVG file. */
int tr_report_write(const char *dir, const char *name, const tr_text *t, int svg, char *err, size_t errlen);
/* Writes report.json (json printed), report.md and report.html into dir. */
int tr_report_finish(const char *dir, cJSON *json, tr_text *html, tr_text *md, char *err, size_t errlen);

/* The page: <head> with the style sheet, a banner "<what> <basename of dir>" over dir and sub (HTML),
 * then <main>; page_end closes it. */
void tr_report_page_begin(tr_text *t, const char *what, const char *dir, const char *sub);
void tr_report_page_end(tr_text *t);
/* A figure to 4 decimals, or a dash when not finite. */
void tr_report_f4(tr_text *t, double v);
/* The per-class table (precision, recall, F1 with bars, support; macro and weighted averages). */
void tr_report_html_per_class(tr_text *t, const char *caption, const tr_report_metrics *m);
/* Markdown: a table cell's text; the per-class table; a confusion matrix as the picture svg (a path
 * relative to the report, NULL: none) and a table of counts. */
void tr_report_md_esc(tr_text *t, const char *s);
void tr_report_md_per_class(tr_text *t, const char *caption, const tr_report_metrics *m);
void tr_report_md_confusion(tr_text *t, const char *caption, const char *svg, const tr_report_metrics *m);

#endif
