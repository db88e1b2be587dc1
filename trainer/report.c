/* Reports of training runs and fusions (report.h): inputs read and checked, then report.json, report.md,
 * report.html and the pictures written. */
#include "trainer/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/errors.h"
#include "trainer/checkpoint.h"
#include "trainer/metrics.h"
#include "trainer/report_parts.h"

/* ---- Files --------------------------------------------------------------------------------------------- */

char *tr_report_slurp(const char *path, size_t *len, int *missing, char *err, size_t errlen)
{
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *s = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4097 > cap) {
            char *g = realloc(s, cap = cap ? cap * 2 : 8192);
            if (!g) {
                free(s);
                fclose(f);
                md_fail(err, errlen, "%s: out of memory", path);
                return NULL;
            }
            s = g;
        }
        size_t got = fread(s + n, 1, cap - n - 1, f);
        n += got;
        if (!got)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(s);
        md_fail(err, errlen, "%s: read error", path);
        return NULL;
    }
    s[n] = 0;
    *len = n;
    return s;
}

int tr_report_write(const char *dir, const char *name, const tr_text *t, int svg, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (t->failed || !t->s)
        return md_fail(err, errlen, "%s: out of memory", path);
    if (!svg)
        return tr_write_file_atomic(path, t->s, t->len, err, errlen);
    /* A picture on its own needs its namespace (report_svg.h). */
    tr_text f = {0};
    tr_text_add(&f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"%s\n",
                t->s + 4);
    int rc = f.failed ? md_fail(err, errlen, "%s: out of memory", path)
                      : tr_write_file_atomic(path, f.s, f.len, err, errlen);
    tr_text_free(&f);
    return rc;
}

int tr_report_mkdir(const char *dir, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/report", dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        return md_fail(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    return 0;
}

/* ---- Metrics of one split ----------------------------------------------------------------------------- */

const char *const tr_report_head_key[TR_H_N] = {"accuracy",    "macro_precision",    "macro_recall",
                                                "macro_f1",    "weighted_precision", "weighted_recall",
                                                "weighted_f1", "loss"};
const char *const tr_report_head_label[TR_H_N] = {"accuracy",    "macro P", "macro R",     "macro F1",
                                                  "weighted P",  "weighted R", "weighted F1", "loss"};

static int number(const cJSON *o, const char *key, int nullable, double *v, const char *where, char *err,
                  size_t errlen)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(f)) {
        *v = f->valuedouble;
        return 0;
    }
    if (nullable && cJSON_IsNull(f)) {
        *v = NAN;
        return 0;
    }
    return md_fail(err, errlen, "%s: \"%s\" must be a number%s", where, key, nullable ? " or null" : "");
}

int tr_report_read_metrics(const cJSON *o, const char *loss_key, tr_report_metrics *m, const char *where, char *err,
                           size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (!cJSON_IsObject(o))
        return md_fail(err, errlen, "%s: the metrics must be a JSON object", where);
    for (int h = 0; h < TR_H_N; h++)
        if (number(o, h == TR_H_LOSS ? loss_key : tr_report_head_key[h], h == TR_H_LOSS, &m->v[h], where, err,
                   errlen))
            return -1;
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(o, "per_class");
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(o, "confusion");
    int k = cJSON_GetArraySize(pc);
    if (!cJSON_IsArray(pc) || k < 1 || k > TR_MAX_CLASSES)
        return md_fail(err, errlen, "%s: \"per_class\" must be a list of 1 to %d classes", where, TR_MAX_CLASSES);
    m->k = k;
    int c = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, pc)
    {
        char w[4400];
        snprintf(w, sizeof w, "%s: per_class[%d]", where, c);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        double sup = 0;
        if (!cJSON_IsString(name))
            return md_fail(err, errlen, "%s: \"name\" must be a string", w);
        snprintf(m->names[c], sizeof m->names[c], "%s", name->valuestring);
        if (number(e, "precision", 0, &m->precision[c], w, err, errlen) ||
            number(e, "recall", 0, &m->recall[c], w, err, errlen) || number(e, "f1", 0, &m->f1[c], w, err, errlen) ||
            number(e, "support", 0, &sup, w, err, errlen))
            return -1;
        m->support[c++] = (int64_t)sup;
    }
    if (!cJSON_IsArray(cf) || cJSON_GetArraySize(cf) != k)
        return md_fail(err, errlen, "%s: \"confusion\" must be %d rows (one per class of per_class)", where, k);
    int64_t total = 0;
    for (int r = 0; r < k; r++) {
        const cJSON *row = cJSON_GetArrayItem(cf, r);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != k)
            return md_fail(err, errlen, "%s: confusion[%d] must be a list of %d counts", where, r, k);
        for (c = 0; c < k; c++) {
            const cJSON *v = cJSON_GetArrayItem(row, c);
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 9e15) ||
                v->valuedouble != floor(v->valuedouble))
                return md_fail(err, errlen, "%s: confusion[%d][%d] must be a count (a whole number >= 0)", where, r, c);
            m->conf[r * k + c] = (int64_t)v->valuedouble;
            total += m->conf[r * k + c];
        }
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "samples");
    m->samples = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : total;
    m->present = 1;
    return 0;
}

const char *const *tr_report_names(const tr_report_metrics *m, const char *names[TR_MAX_CLASSES])
{
    for (int c = 0; c < m->k; c++)
        names[c] = m->names[c];
    return names;
}

cJSON *tr_report_num(double v)
{
    /* cJSON prints 15 digits when they come within an epsilon; %.17g reads back to the same double. */
    char text[40];
    snprintf(text, sizeof text, "%.17g", v);
    return isfinite(v) ? cJSON_CreateRaw(text) : cJSON_CreateNull();
}

cJSON *tr_report_metrics_json(const tr_report_metrics *m, const char *loss_key)
{
    cJSON *o = cJSON_CreateObject();
    for (int h = 0; o && h < TR_H_N; h++)
        cJSON_AddItemToObject(o, h == TR_H_LOSS ? loss_key : tr_report_head_key[h], tr_report_num(m->v[h]));
    cJSON_AddNumberToObject(o, "samples", (double)m->samples);
    cJSON *pc = cJSON_AddArrayToObject(o, "per_class"), *cf = cJSON_AddArrayToObject(o, "confusion");
    for (int c = 0; c < m->k; c++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(pc, e);
        cJSON_AddStringToObject(e, "name", m->names[c]);
        cJSON_AddItemToObject(e, "precision", tr_report_num(m->precision[c]));
        cJSON_AddItemToObject(e, "recall", tr_report_num(m->recall[c]));
        cJSON_AddItemToObject(e, "f1", tr_report_num(m->f1[c]));
        cJSON_AddNumberToObject(e, "support", (double)m->support[c]);
        cJSON *row = cJSON_CreateArray();
        cJSON_AddItemToArray(cf, row);
        for (int p = 0; p < m->k; p++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m->conf[c * m->k + p]));
    }
    return o;
}

/* ---- Page parts ---------------------------------------------------------------------------------------- */

void tr_report_f4(tr_text *t, double v)
{
    if (isfinite(v))
        tr_text_add(t, "%.4f", v);
    else
        tr_text_add(t, "–");
}

static const char css[] =
    "body{margin:0;background:#f3f4f7;color:#1d1f24;font:14px/1.45 'DejaVu Sans',Helvetica,Arial,sans-serif}"
    "header{background:#1f3b57;color:#fff;padding:18px 32px 16px}"
    "header h1{margin:0;font-size:23px;font-weight:600}header h1 code{font-size:21px}"
    "header p{margin:5px 0 0;color:#d3dfeb;font-size:14.5px}"
    "main{max-width:1220px;margin:0 auto;padding:6px 24px 32px}"
    "section{background:#fff;border:1px solid #dfe3e8;border-radius:8px;padding:14px 20px 18px;margin:16px 0}"
    "h2{font-size:17px;margin:0 0 10px;color:#1f3b57}h3{font-size:14.5px;margin:4px 0 6px;color:#333}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "th,td{padding:5px 11px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}"
    "th{background:#eef2f6;font-weight:600;color:#2a2f36}th.grp{text-align:center;border-left:2px solid #fff}"
    "td.l,th.l{text-align:left}td.sep,th.sep{border-left:2px solid #dfe3e8}"
    "tr.chosen td{background:#fff4cc}tr.sum td{border-top:2px solid #dfe3e8;color:#333}"
    "b.best{color:#0b5d1e}.badge{display:inline-block;background:#c47f00;color:#fff;border-radius:9px;"
    "padding:0 7px;margin-left:7px;font-size:11.5px;font-weight:600}"
    ".grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px 18px}"
    ".flex{display:flex;flex-wrap:wrap;gap:20px 32px;align-items:flex-start}"
    "svg{max-width:100%;height:auto;display:block}"
    ".note{color:#5d6570;font-size:13px;margin:6px 0 0}.empty{font-size:16px;color:#5d6570;padding:6px 0}"
    "dl{display:grid;grid-template-columns:max-content minmax(0,1fr) max-content minmax(0,1fr);gap:4px 16px;margin:0}"
    "dt{color:#5d6570}dd{margin:0;overflow-wrap:anywhere}code{font-family:'DejaVu Sans Mono',monospace}"
    "footer{color:#7a828c;font-size:12.5px;text-align:center;padding:4px 0 24px}";

void tr_report_page_begin(tr_text *t, const char *what, const char *dir, const char *sub)
{
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    tr_text_add(t, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>empd: %s ", what);
    tr_text_esc(t, base);
    tr_text_add(t, "</title><style>%s</style></head>\n<body><header><h1>%s <code>", css, what);
    tr_text_esc(t, base);
    tr_text_add(t, "</code></h1><p><code>");
    tr_text_esc(t, dir);
    tr_text_add(t, "</code> · %s</p></header><main>\n", sub);
}

void tr_report_page_end(tr_text *t)
{
    tr_text_add(t, "</main><footer>empd report · also in this folder: report.md, report.json and the pictures in "
                   "report/</footer></body></html>\n");
}

/* A cell of a ratio with a bar behind it as long as the ratio. */
static void bar_cell(tr_text *t, double v)
{
    double w = isfinite(v) ? fmax(0, fmin(1, v)) * 100 : 0;
    tr_text_add(t, "<td style=\"background:linear-gradient(90deg,#d6e6f5 %.1f%%,transparent %.1f%%)\">", w, w);
    tr_report_f4(t, v);
    tr_text_add(t, "</td>");
}

void tr_report_html_per_class(tr_text *t, const char *caption, const tr_report_metrics *m)
{
    tr_text_add(t, "<div><h3>");
    tr_text_esc(t, caption);
    tr_text_add(t, "</h3><table><tr><th class=\"l\">class</th><th>precision</th><th>recall</th><th>F1</th>"
                   "<th>support</th></tr>");
    for (int c = 0; c < m->k; c++) {
        tr_text_add(t, "<tr><td class=\"l\">");
        tr_text_esc(t, m->names[c]);
        tr_text_add(t, "</td>");
        bar_cell(t, m->precision[c]);
        bar_cell(t, m->recall[c]);
        bar_cell(t, m->f1[c]);
        tr_text_add(t, "<td>%lld</td></tr>", (long long)m->support[c]);
    }
    for (int a = 0; a < 2; a++) {
        tr_text_add(t, "<tr class=\"%s\"><td class=\"l\">%s avg</td>", a ? "" : "sum", a ? "weighted" : "macro");
        for (int h = 0; h < 3; h++) {
            tr_text_add(t, "<td>");
            tr_report_f4(t, m->v[(a ? TR_H_WP : TR_H_MP) + h]);
            tr_text_add(t, "</td>");
        }
        tr_text_add(t, "<td>%lld</td></tr>", (long long)m->samples);
    }
    tr_text_add(t, "</table><p class=\"note\">accuracy ");
    tr_report_f4(t, m->v[TR_H_ACC]);
    tr_text_add(t, " over %lld samples</p></div>\n", (long long)m->samples);
}

/* Markdown table cells: | and line ends would break the row. */
void tr_report_md_esc(tr_text *t, const char *s)
{
    for (; *s; s++)
        if (*s == '|')
            tr_text_add(t, "\\|");
        else
            tr_text_add(t, "%c", *s == '\n' || *s == '\r' ? ' ' : *s);
}

void tr_report_md_per_class(tr_text *t, const char *caption, const tr_report_metrics *m)
{
    tr_text_add(t, "### %s\n\n| class | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n", caption);
    for (int c = 0; c < m->k; c++) {
        tr_text_add(t, "| ");
        tr_report_md_esc(t, m->names[c]);
        tr_text_add(t, " | %.4f | %.4f | %.4f | %lld |\n", m->precision[c], m->recall[c], m->f1[c],
                    (long long)m->support[c]);
    }
    for (int a = 0; a < 2; a++) {
        tr_text_add(t, "| *%s avg* |", a ? "weighted" : "macro");
        for (int h = 0; h < 3; h++) {
            tr_text_add(t, " ");
            tr_report_f4(t, m->v[(a ? TR_H_WP : TR_H_MP) + h]);
            tr_text_add(t, " |");
        }
        tr_text_add(t, " %lld |\n", (long long)m->samples);
    }
    tr_text_add(t, "\n");
}

void tr_report_md_confusion(tr_text *t, const char *caption, const char *svg, const tr_report_metrics *m)
{
    tr_text_add(t, "### %s\n\n", caption);
    if (svg)
        tr_text_add(t, "![%s](%s)\n\n", caption, svg);
    tr_text_add(t, "| true \\ predicted |");
    for (int c = 0; c < m->k; c++) {
        tr_text_add(t, " ");
        tr_report_md_esc(t, m->names[c]);
        tr_text_add(t, " |");
    }
    tr_text_add(t, "\n|---|");
    for (int c = 0; c < m->k; c++)
        tr_text_add(t, "---:|");
    for (int r = 0; r < m->k; r++) {
        tr_text_add(t, "\n| ");
        tr_report_md_esc(t, m->names[r]);
        tr_text_add(t, " |");
        for (int c = 0; c < m->k; c++)
            tr_text_add(t, r == c ? " **%lld** |" : " %lld |", (long long)m->conf[r * m->k + c]);
    }
    tr_text_add(t, "\n\n");
}

int tr_report_finish(const char *dir, cJSON *json, tr_text *html, tr_text *md, char *err, size_t errlen)
{
    char *text = json ? cJSON_Print(json) : NULL;
    tr_text j = {0};
    if (text)
        tr_text_add(&j, "%s\n", text);
    free(text);
    int rc = tr_report_write(dir, "report.json", &j, 0, err, errlen) ||
             tr_report_write(dir, "report.md", md, 0, err, errlen) ||
             tr_report_write(dir, "report.html", html, 0, err, errlen);
    tr_text_free(&j);
    return rc ? -1 : 0;
}
