/* The report of a training run folder (report.h): config.json and metrics.jsonl in, the report out. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"
#include "trainer/report.h"
#include "trainer/report_parts.h"

/* Columns of the curves: a training record's, a validation's. */
enum { T_STEP, T_EPOCH, T_LOSS, T_LR, T_GNORM, T_N };
enum { V_STEP, V_LOSS, V_ACC, V_MF1, V_WF1, V_N };
static const char *const train_cols[T_N] = {"step", "epoch", "loss", "lr", "grad_norm"};
static const char *const val_cols[V_N] = {"step", "loss", "accuracy", "macro_f1", "weighted_f1"};

typedef struct {
    size_t n, cap;
    int cols;
    double *c[T_N];
} series;

typedef struct {
    const char *dir;
    cJSON *config;
    series train, val;
    tr_report_metrics latest;      /* the last validation */
    int64_t latest_step;
    tr_report_metrics final[2];    /* the best checkpoint's val and test (the "final" records) */
    int64_t final_step;
    int k;                         /* classes of the records so far (0: none yet) */
    size_t records;
} run_data;

/* Appends a row; a row whose step is not past the last one's (a resumed run's log) first drops the
 * rows from that step on, as the run itself started over from there. */
static int series_push(series *s, const double *row)
{
    while (s->n && s->c[0][s->n - 1] >= row[0])
        s->n--;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        for (int i = 0; i < s->cols; i++) {
            double *g = realloc(s->c[i], cap * sizeof *g);
            if (!g)
                return -1;
            s->c[i] = g;
        }
        s->cap = cap;
    }
    for (int i = 0; i < s->cols; i++)
        s->c[i][s->n] = row[i];
    s->n++;
    return 0;
}

static void series_free(series *s)
{
    for (int i = 0; i < s->cols; i++)
        free(s->c[i]);
}

/* The line with the bare nan, -nan, inf, -inf a C printf leaves for a non-finite double written as null;
 * strings are left alone. The caller frees the copy. */
static char *null_nonfinite(const char *s, size_t n)
{
    char *o = malloc(2 * n + 1), *w = o;
    int in_str = 0;
    for (size_t i = 0; o && i < n;) {
        char ch = s[i];
        if (in_str) {
            *w++ = ch;
            i++;
            if (ch == '\\' && i < n)
                *w++ = s[i++];
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        size_t skip = 0;
        if (!strncmp(s + i, "-nan", 4) || !strncmp(s + i, "-inf", 4))
            skip = 4;
        else if (!strncmp(s + i, "nan", 3) || !strncmp(s + i, "inf", 3))
            skip = 3;
        if (skip) {
            memcpy(w, "null", 4);
            w += 4;
            i += skip;
            continue;
        }
        in_str = ch == '"';
        *w++ = ch;
        i++;
    }
    if (o)
        *w = 0;
    return o;
}

/* A number member: absent gives NaN unless required; null gives NaN. */
static int field(const cJSON *o, const char *key, int required, double *v, const char *where, char *err, size_t errlen)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    *v = NAN;
    if (cJSON_IsNumber(f))
        *v = f->valuedouble;
    else if (f ? !cJSON_IsNull(f) : required)
        return md_fail(err, errlen, "%s: \"%s\" must be a number%s", where, key, f ? " or null" : " (it is missing)");
    return 0;
}

static int same_classes(run_data *d, const tr_report_metrics *m, const char *where, char *err, size_t errlen)
{
    if (d->k && d->k != m->k)
        return md_fail(err, errlen, "%s: %d classes, but the records before have %d", where, m->k, d->k);
    d->k = m->k;
    return 0;
}

static int record(run_data *d, const cJSON *j, const char *where, char *err, size_t errlen)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
    if (!cJSON_IsObject(j))
        return md_fail(err, errlen, "%s: not a JSON object", where);
    if (!cJSON_IsString(ev))
        return md_fail(err, errlen, "%s: no \"event\" string", where);
    double step;
    if (field(j, "step", 1, &step, where, err, errlen))
        return -1;
    if (!(step >= 0))
        return md_fail(err, errlen, "%s: \"step\" must be a number >= 0", where);
    const char *e = ev->valuestring;
    int is_train = !strcmp(e, "train"), is_eval = !strcmp(e, "eval"), is_final = !strcmp(e, "final");
    if (!is_train && !is_eval && !is_final)
        return 0; /* another kind of record: not part of the report */
    d->records++;
    /* Training after "final" records: the run was continued, they no longer describe it. */
    if (!is_final && d->final_step >= 0) {
        d->final[0].present = d->final[1].present = 0;
        d->final_step = -1;
    }
    if (is_train) {
        double row[T_N] = {step};
        if (field(j, "epoch", 0, &row[T_EPOCH], where, err, errlen) ||
            field(j, "loss", 1, &row[T_LOSS], where, err, errlen) || field(j, "lr", 0, &row[T_LR], where, err, errlen) ||
            field(j, "grad_norm", 0, &row[T_GNORM], where, err, errlen))
            return -1;
        return series_push(&d->train, row) ? md_fail(err, errlen, "%s: out of memory", where) : 0;
    }
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(j, "split");
    if (!cJSON_IsString(split))
        return md_fail(err, errlen, "%s: no \"split\" string", where);
    int s = !strcmp(split->valuestring, "val") ? 0 : !strcmp(split->valuestring, "test") ? 1 : -1;
    if (s < 0 || (is_eval && s != 0))
        return 0; /* the report knows val validations and final val and test */
    tr_report_metrics *m = is_final ? &d->final[s] : &d->latest;
    if (tr_report_read_metrics(j, "loss", m, where, err, errlen) || same_classes(d, m, where, err, errlen))
        return -1;
    if (is_final) {
        d->final_step = (int64_t)step;
        return 0;
    }
    d->latest_step = (int64_t)step;
    double row[V_N] = {step, m->v[TR_H_LOSS], m->v[TR_H_ACC], m->v[TR_H_MF1], m->v[TR_H_WF1]};
    return series_push(&d->val, row) ? md_fail(err, errlen, "%s: out of memory", where) : 0;
}

static int read_metrics_file(run_data *d, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) /* none: nothing logged yet (the caller knows there is a run here) */
        return errno == ENOENT ? 0 : md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL, where[4300];
    size_t cap = 0, ln = 0;
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) > 0) {
        ln++;
        snprintf(where, sizeof where, "%s:%zu", path, ln);
        int complete = line[got - 1] == '\n';
        if (strspn(line, " \t\r\n") == (size_t)got)
            continue;
        char *clean = null_nonfinite(line, (size_t)got);
        cJSON *j = clean ? cJSON_Parse(clean) : NULL;
        free(clean);
        if (!j) {
            /* The run may be writing its last line right now. */
            if (!complete)
                break;
            rc = md_fail(err, errlen, "%s: not a JSON record (metrics.jsonl holds one JSON object per line)", where);
            break;
        }
        rc = record(d, j, where, err, errlen);
        cJSON_Delete(j);
    }
    if (rc == 0 && ferror(f))
        rc = md_fail(err, errlen, "%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}

/* ---- The pictures -------------------------------------------------------------------------------------- */

/* The mean of the finite values in a window centred on each point (no lag behind a trend, unlike an
 * exponential average); NaN where the value itself is not finite. The window spans about a thirtieth of
 * the series, and shrinks at its ends. */
static double *smooth(const double *y, size_t n)
{
    double *o = malloc((n + 1) * sizeof *o), *sum = malloc((n + 1) * sizeof *sum);
    size_t *cnt = malloc((n + 1) * sizeof *cnt), h = n / 60 + 1;
    if (o && sum && cnt) {
        sum[0] = 0;
        cnt[0] = 0;
        for (size_t i = 0; i < n; i++) {
            int ok = isfinite(y[i]);
            sum[i + 1] = sum[i] + (ok ? y[i] : 0);
            cnt[i + 1] = cnt[i] + (size_t)ok;
        }
        for (size_t i = 0; i < n; i++) {
            size_t lo = i > h ? i - h : 0, hi = i + h + 1 < n ? i + h + 1 : n;
            o[i] = isfinite(y[i]) ? (sum[hi] - sum[lo]) / (double)(cnt[hi] - cnt[lo]) : NAN;
        }
    }
    free(sum);
    free(cnt);
    if (!sum || !cnt) {
        free(o);
        return NULL;
    }
    return o;
}

enum { P_LOSS, P_VLOSS, P_VMET, P_LR, P_GNORM, P_CONF_VAL, P_CONF_TEST, P_N };
static const char *const pic_file[P_N] = {"report/train_loss.svg", "report/val_loss.svg", "report/val_metrics.svg",
                                          "report/lr.svg", "report/grad_norm.svg", "report/confusion_val.svg",
                                          "report/confusion_test.svg"};

typedef struct {
    tr_text svg[P_N]; /* empty: no such picture */
    char caption[P_N][96];
} pictures;

static void draw(const run_data *d, int64_t best, pictures *p)
{
    const series *tr = &d->train, *va = &d->val;
    double *trend = smooth(tr->c[T_LOSS], tr->n), *bad = malloc((tr->n + 1) * sizeof *bad);
    size_t n_bad = 0;
    for (size_t i = 0; bad && i < tr->n; i++)
        if (!isfinite(tr->c[T_LOSS][i]))
            bad[n_bad++] = tr->c[T_STEP][i];
    char mark[64];
    snprintf(mark, sizeof mark, "best: step %lld", (long long)best);
    /* Every chart spans the steps logged, so that they line up. */
    tr_svg_chart c = {.xlabel = "step", .width = 580, .height = 320, .ylo = 0, .yhi = NAN,
                      .xfrom = tr->n ? tr->c[T_STEP][0] : NAN, .xto = tr->n ? tr->c[T_STEP][tr->n - 1] : NAN,
                      .mark_x = best >= 0 ? (double)best : NAN, .mark_label = mark};
    int smoothed = tr->n > 20 && trend;
    const double *x = tr->c[T_STEP];

    c.title = "Training loss";
    c.ylabel = "loss";
    c.bad_x = bad;
    c.n_bad = bad ? n_bad : 0;
    tr_svg_series loss[2] = {{smoothed ? "per step" : "loss", x, tr->c[T_LOSS], tr->n, "#1f77b4", smoothed ? 1 : 1.8,
                              smoothed ? 0.35 : 0, tr->n <= 60},
                             {"smoothed", x, trend, tr->n, "#1f77b4", 2.4, 0, 0}};
    tr_svg_lines(&p->svg[P_LOSS], &c, loss, smoothed ? 2 : 1);
    c.bad_x = NULL;
    c.n_bad = 0;

    c.title = "Validation loss";
    tr_svg_series vloss[2] = {{"train (smoothed)", x, smoothed ? trend : tr->c[T_LOSS], tr->n, "#9aa1ab", 1.6, 0, 0},
                              {"validation", va->c[V_STEP], va->c[V_LOSS], va->n, "#d62728", 2.2, 0, va->n <= 60}};
    tr_svg_lines(&p->svg[P_VLOSS], &c, vloss, 2);

    c.title = "Validation metrics";
    c.ylabel = "score";
    c.yhi = 1;
    /* Accuracy drawn last: on top of weighted F1, which often runs close to it. */
    tr_svg_series met[3] = {{"macro F1", va->c[V_STEP], va->c[V_MF1], va->n, "#9467bd", 2.2, 0, va->n <= 60},
                            {"weighted F1", va->c[V_STEP], va->c[V_WF1], va->n, "#ff7f0e", 2.2, 0, va->n <= 60},
                            {"accuracy", va->c[V_STEP], va->c[V_ACC], va->n, "#2ca02c", 2.2, 0, va->n <= 60}};
    tr_svg_lines(&p->svg[P_VMET], &c, met, 3);

    c.title = "Learning rate";
    c.ylabel = "learning rate";
    c.yhi = NAN;
    c.include_zero = 1;
    c.mark_x = NAN;
    tr_svg_series lr = {NULL, x, tr->c[T_LR], tr->n, "#17808f", 2.2, 0, 0};
    tr_svg_lines(&p->svg[P_LR], &c, &lr, 1);

    int clipped = 0;
    for (size_t i = 0; i < tr->n; i++)
        clipped |= tr->c[T_GNORM][i] > 0;
    if (clipped) {
        c.title = "Gradient norm (before clipping)";
        c.ylabel = "L2 norm";
        tr_svg_series g = {NULL, x, tr->c[T_GNORM], tr->n, "#8c564b", 1.4, 0, tr->n <= 60};
        tr_svg_lines(&p->svg[P_GNORM], &c, &g, 1);
    }
    free(trend);
    free(bad);
}

/* ---- The report ---------------------------------------------------------------------------------------- */

/* Configuration fields worth a line in the summary, in order. */
static const char *const config_keys[] = {"model.kind",        "model.num_classes", "data.shards",    "train.device",
                                          "train.batch_size",  "train.grad_accum",  "train.lr",       "train.warmup_steps",
                                          "train.max_steps",   "train.epochs",      "train.loss",     "train.class_weights",
                                          "train.best_metric", "train.seed"};

static const cJSON *config_get(const cJSON *cfg, const char *dotted)
{
    char key[64];
    snprintf(key, sizeof key, "%s", dotted);
    const cJSON *o = cfg;
    for (char *save = NULL, *part = strtok_r(key, ".", &save); o && part; part = strtok_r(NULL, ".", &save))
        o = cJSON_GetObjectItemCaseSensitive(o, part);
    return o;
}

static void config_value(tr_text *t, const cJSON *v)
{
    if (cJSON_IsString(v))
        tr_text_add(t, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        tr_text_add(t, "%.10g", v->valuedouble);
    else if (cJSON_IsBool(v))
        tr_text_add(t, "%s", cJSON_IsTrue(v) ? "true" : "false");
}

static const char *const split_name[2] = {"val", "test"};

/* Split s's metrics in the report: the final record, else (val) the latest validation. */
static const tr_report_metrics *split_of(const run_data *d, int s, int64_t *step, const char **source)
{
    if (d->final[s].present) {
        *step = d->final_step;
        *source = "final";
        return &d->final[s];
    }
    if (s == 0 && d->latest.present) {
        *step = d->latest_step;
        *source = "eval";
        return &d->latest;
    }
    return NULL;
}

static cJSON *curves_json(const series *s, const char *const *names)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < s->cols; i++) {
        cJSON *a = cJSON_AddArrayToObject(o, names[i]);
        for (size_t k = 0; k < s->n; k++)
            cJSON_AddItemToArray(a, tr_report_num(s->c[i][k]));
    }
    return o;
}

static cJSON *run_json(const run_data *d, const char *status, const pictures *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "empd-report");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "kind", "run");
    cJSON_AddStringToObject(j, "dir", d->dir);
    cJSON_AddStringToObject(j, "status", status);
    cJSON *cfg = cJSON_AddObjectToObject(j, "config");
    for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
        const cJSON *v = config_get(d->config, config_keys[i]);
        if (cJSON_IsNumber(v))
            cJSON_AddItemToObject(cfg, config_keys[i], tr_report_num(v->valuedouble));
        else if (cJSON_IsString(v) || cJSON_IsBool(v))
            cJSON_AddItemToObject(cfg, config_keys[i], cJSON_Duplicate(v, 0));
    }
    size_t n = d->train.n;
    cJSON_AddNumberToObject(j, "last_step", n ? d->train.c[T_STEP][n - 1] : 0);
    cJSON_AddItemToObject(j, "last_epoch", tr_report_num(n ? d->train.c[T_EPOCH][n - 1] : NAN));
    cJSON_AddItemToObject(j, "best_step", d->final_step >= 0 ? cJSON_CreateNumber((double)d->final_step)
                                                             : cJSON_CreateNull());
    cJSON *bad = cJSON_AddArrayToObject(j, "nonfinite_loss_steps");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(d->train.c[T_LOSS][i]))
            cJSON_AddItemToArray(bad, cJSON_CreateNumber(d->train.c[T_STEP][i]));
    cJSON *classes = cJSON_AddArrayToObject(j, "classes"), *splits = cJSON_AddObjectToObject(j, "splits");
    for (int s = 0; s < 2; s++) {
        int64_t step;
        const char *source;
        const tr_report_metrics *m = split_of(d, s, &step, &source);
        if (!m)
            continue;
        for (int c = 0; c < m->k && cJSON_GetArraySize(classes) < m->k; c++)
            cJSON_AddItemToArray(classes, cJSON_CreateString(m->names[c]));
        cJSON *o = tr_report_metrics_json(m, "loss");
        cJSON_AddItemToObject(splits, split_name[s], o);
        cJSON_AddItemToObjectCS(o, "source", cJSON_CreateString(source));
        cJSON_AddItemToObjectCS(o, "step", cJSON_CreateNumber((double)step));
    }
    cJSON *curves = cJSON_AddObjectToObject(j, "curves");
    cJSON_AddItemToObject(curves, "train", curves_json(&d->train, train_cols));
    cJSON_AddItemToObject(curves, "val", curves_json(&d->val, val_cols));
    cJSON *files = cJSON_AddObjectToObject(j, "files");
    cJSON_AddStringToObject(files, "html", "report.html");
    cJSON_AddStringToObject(files, "md", "report.md");
    cJSON *svg = cJSON_AddArrayToObject(files, "svg");
    for (int i = 0; i < P_N; i++)
        if (p->svg[i].len)
            cJSON_AddItemToArray(svg, cJSON_CreateString(pic_file[i]));
    return j;
}

/* The headline table: one row per split. */
static void headline(tr_text *h, tr_text *md, const run_data *d)
{
    tr_text_add(h, "<table><tr><th class=\"l\">split</th><th class=\"l\">from</th>");
    tr_text_add(md, "| split | from |");
    for (int k = 0; k < TR_H_N; k++) {
        tr_text_add(h, "<th>%s</th>", tr_report_head_label[k]);
        tr_text_add(md, " %s |", tr_report_head_label[k]);
    }
    tr_text_add(h, "<th>samples</th></tr>");
    tr_text_add(md, " samples |\n|---|---|");
    for (int k = 0; k <= TR_H_N; k++)
        tr_text_add(md, "---:|");
    tr_text_add(md, "\n");
    for (int s = 0; s < 2; s++) {
        int64_t step;
        const char *source;
        const tr_report_metrics *m = split_of(d, s, &step, &source);
        if (!m)
            continue;
        const char *from = !strcmp(source, "final") ? "best checkpoint" : "latest validation";
        tr_text_add(h, "<tr><td class=\"l\"><b>%s</b></td><td class=\"l\">%s, step %lld</td>", split_name[s], from,
                    (long long)step);
        tr_text_add(md, "| %s | %s, step %lld |", split_name[s], from, (long long)step);
        for (int k = 0; k < TR_H_N; k++) {
            tr_text_add(h, "<td>");
            tr_report_f4(h, m->v[k]);
            tr_text_add(h, "</td>");
            tr_text_add(md, " ");
            tr_report_f4(md, m->v[k]);
            tr_text_add(md, " |");
        }
        tr_text_add(h, "<td>%lld</td></tr>", (long long)m->samples);
        tr_text_add(md, " %lld |\n", (long long)m->samples);
    }
    tr_text_add(h, "</table>");
    tr_text_add(md, "\n");
}

static void write_pages(const run_data *d, const char *status, pictures *p, tr_text *h, tr_text *md)
{
    size_t n = d->train.n;
    long long last = n ? (long long)d->train.c[T_STEP][n - 1] : 0;
    double epoch = n ? d->train.c[T_EPOCH][n - 1] : NAN;
    /* train.best_metric, by its canonical name (the text of config.json goes into no page). */
    static const char *const best_names[] = {"accuracy", "macro_f1", "weighted_f1", "loss"};
    static const int best_h[] = {TR_H_ACC, TR_H_MF1, TR_H_WF1, TR_H_LOSS};
    const cJSON *bm = config_get(d->config, "train.best_metric");
    int best = 0;
    for (int i = 1; i < 4; i++)
        best = cJSON_IsString(bm) && !strcmp(bm->valuestring, best_names[i]) ? i : best;
    char sub[400];
    if (!strcmp(status, "finished")) {
        snprintf(sub, sizeof sub, "finished at step %lld; best checkpoint at step %lld (val %s %.4f)", last,
                 (long long)d->final_step, best_names[best], d->final[0].present ? d->final[0].v[best_h[best]] : NAN);
    } else if (!strcmp(status, "unfinished")) {
        snprintf(sub, sizeof sub, "unfinished: at step %lld, no final evaluation yet", last);
    } else {
        snprintf(sub, sizeof sub, "nothing logged yet");
    }
    tr_report_page_begin(h, "Training run", d->dir, sub);
    tr_text_add(md, "# Training run `%s`\n\n%s.\n\n", d->dir, sub);

    tr_text_add(h, "<section><h2>Run</h2><dl><dt>status</dt><dd>%s</dd><dt>last step</dt><dd>%lld</dd>", status, last);
    tr_text_add(h, "<dt>epoch</dt><dd>");
    if (isfinite(epoch))
        tr_text_add(h, "%.0f", epoch);
    else
        tr_text_add(h, "–");
    tr_text_add(h, "</dd><dt>validations</dt><dd>%zu</dd>", d->val.n);
    tr_text_add(md, "| field | value |\n|---|---|\n| status | %s |\n| last step | %lld |\n", status, last);
    for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
        const cJSON *v = config_get(d->config, config_keys[i]);
        if (!v || !(cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v)))
            continue;
        tr_text val = {0};
        config_value(&val, v);
        tr_text_add(h, "<dt>%s</dt><dd>", config_keys[i]);
        tr_text_esc(h, val.s ? val.s : "");
        tr_text_add(h, "</dd>");
        tr_text_add(md, "| %s | ", config_keys[i]);
        tr_report_md_esc(md, val.s ? val.s : "");
        tr_text_add(md, " |\n");
        tr_text_free(&val);
    }
    tr_text_add(h, "</dl>%s</section>\n", d->config ? "" : "<p class=\"note\">no config.json in the run folder</p>");
    tr_text_add(md, "\n");
    if (!strcmp(status, "empty")) {
        tr_text_add(h, "<section><h2>Nothing yet</h2><p class=\"empty\">metrics.jsonl holds no training record yet. "
                       "Run <code>empd report</code> again once the run has logged its first steps.</p></section>\n");
        tr_text_add(md, "Nothing yet: metrics.jsonl holds no training record.\n");
        tr_report_page_end(h);
        return;
    }
    tr_text_add(h, "<section><h2>Metrics</h2>");
    tr_text_add(md, "## Metrics\n\n");
    if (d->latest.present || d->final[0].present || d->final[1].present) {
        headline(h, md, d);
        tr_text_add(h, "<p class=\"note\">P precision, R recall; macro: the mean over classes, weighted: by support. "
                       "val and test from the best checkpoint once training has finished.</p>");
    } else {
        tr_text_add(h, "<p class=\"empty\">No validation yet.</p>");
        tr_text_add(md, "No validation yet.\n\n");
    }
    tr_text_add(h, "</section>\n<section><h2>Training curves</h2><div class=\"grid\">");
    tr_text_add(md, "## Training curves\n\n");
    for (int i = P_LOSS; i <= P_GNORM; i++)
        if (p->svg[i].len) {
            tr_text_add(h, "<div>%s</div>", p->svg[i].s);
            tr_text_add(md, "![%s](%s)\n", pic_file[i] + 7, pic_file[i]);
        }
    tr_text_add(h, "</div>");
    size_t n_bad = 0;
    for (size_t i = 0; i < n; i++)
        n_bad += !isfinite(d->train.c[T_LOSS][i]);
    if (n_bad) {
        tr_text_add(h, "<p class=\"note\">%zu training step%s logged a loss that is not finite (red ticks): the run "
                       "diverged there.</p>", n_bad, n_bad > 1 ? "s" : "");
        tr_text_add(md, "\n%zu training step%s logged a loss that is not finite.\n", n_bad, n_bad > 1 ? "s" : "");
    }
    tr_text_add(h, "</section>\n");
    tr_text_add(md, "\n");
    int any = 0;
    for (int s = 0; s < 2; s++) {
        int64_t step;
        const char *source;
        const tr_report_metrics *m = split_of(d, s, &step, &source);
        if (!m)
            continue;
        if (!any++) {
            tr_text_add(h, "<section><h2>Per class</h2><div class=\"flex\">");
            tr_text_add(md, "## Per class\n\n");
        }
        char cap[96];
        snprintf(cap, sizeof cap, "%s (step %lld)", split_name[s], (long long)step);
        tr_report_html_per_class(h, cap, m);
        tr_report_md_per_class(md, cap, m);
    }
    if (any)
        tr_text_add(h, "</div></section>\n<section><h2>Confusion matrices</h2><div class=\"flex\">");
    for (int s = 0; s < 2; s++)
        if (p->svg[P_CONF_VAL + s].len) {
            tr_text_add(h, "<div>%s</div>", p->svg[P_CONF_VAL + s].s);
            int64_t step;
            const char *source;
            tr_report_md_confusion(md, p->caption[P_CONF_VAL + s], pic_file[P_CONF_VAL + s], split_of(d, s, &step, &source));
        }
    if (any)
        tr_text_add(h, "</div><p class=\"note\">Rows: the true class; columns: the predicted one. A cell's color is "
                       "its share of the row (the class's recall on the diagonal).</p></section>\n");
    tr_report_page_end(h);
}

int tr_report_run(const char *rundir, char *err, size_t errlen)
{
    char path[4200];
    int missing_cfg = 0, missing_metrics;
    size_t len;
    run_data *d = calloc(1, sizeof *d);
    if (!d)
        return md_fail(err, errlen, "%s: out of memory", rundir);
    d->dir = rundir;
    d->final_step = -1;
    d->train.cols = T_N;
    d->val.cols = V_N;
    snprintf(path, sizeof path, "%s/config.json", rundir);
    char *text = tr_report_slurp(path, &len, &missing_cfg, err, errlen);
    int rc = text || missing_cfg ? 0 : -1;
    if (text && !(d->config = cJSON_Parse(text)))
        rc = md_fail(err, errlen, "%s: not valid JSON", path);
    free(text);
    snprintf(path, sizeof path, "%s/metrics.jsonl", rundir);
    FILE *probe = fopen(path, "rb");
    missing_metrics = !probe;
    if (probe)
        fclose(probe);
    if (rc == 0 && missing_cfg && missing_metrics)
        rc = md_fail(err, errlen, "%s: neither config.json nor metrics.jsonl: not a run folder (empd train --out "
                                  "makes one)", rundir);
    if (rc == 0)
        rc = read_metrics_file(d, path, err, errlen);

    pictures p = {0};
    tr_text html = {0}, md = {0};
    cJSON *json = NULL;
    if (rc == 0) {
        const char *status = d->final_step >= 0 ? "finished" : d->records ? "unfinished" : "empty";
        if (d->records) {
            draw(d, d->final_step, &p);
            for (int s = 0; s < 2; s++) {
                int64_t step;
                const char *source, *names[TR_MAX_CLASSES];
                const tr_report_metrics *m = split_of(d, s, &step, &source);
                if (!m)
                    continue;
                snprintf(p.caption[P_CONF_VAL + s], sizeof p.caption[0], "Confusion: %s, step %lld", split_name[s],
                         (long long)step);
                tr_svg_confusion(&p.svg[P_CONF_VAL + s], p.caption[P_CONF_VAL + s], m->conf, m->k,
                                 tr_report_names(m, names));
            }
        }
        write_pages(d, status, &p, &html, &md);
        json = run_json(d, status, &p);
        int any = 0;
        for (int i = 0; i < P_N; i++)
            any |= p.svg[i].len > 0;
        if (any)
            rc = tr_report_mkdir(rundir, err, errlen);
        for (int i = 0; rc == 0 && i < P_N; i++)
            if (p.svg[i].len)
                rc = tr_report_write(rundir, pic_file[i], &p.svg[i], 1, err, errlen);
        if (rc == 0)
            rc = json ? tr_report_finish(rundir, json, &html, &md, err, errlen)
                      : md_fail(err, errlen, "%s: out of memory", rundir);
    }
    cJSON_Delete(json);
    for (int i = 0; i < P_N; i++)
        tr_text_free(&p.svg[i]);
    tr_text_free(&html);
    tr_text_free(&md);
    cJSON_Delete(d->config);
    series_free(&d->train);
    series_free(&d->val);
    free(d);
    return rc;
}
