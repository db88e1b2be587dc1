/* The report of a fusion folder (report.h): fusion.json (trainer/fusion_file.h) in, the report out. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"
#include "trainer/report.h"
#include "trainer/report_parts.h"

#define MAX_SCORES 32

typedef struct {
    char name[128];
    int fusion, chosen;
    tr_report_metrics m[2]; /* val (out-of-fold for a fusion method), test */
} score;

typedef struct {
    const char *dir;
    const cJSON *j; /* the document */
    const char *method, *select;
    int folds, n_runs, n_scores, chosen;
    const char *runs[MAX_SCORES];
    double temperature[MAX_SCORES], weight[MAX_SCORES], C;
    double samples[2];
    score *s;
} fusion_data;

static const char *const split_name[2] = {"val", "test"};

static double opt_number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int read_list(const cJSON *a, int n, double *v, const char *path, const char *what, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        v[i] = NAN;
    if (!a)
        return 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return md_fail(err, errlen, "%s: \"%s\" must be a list of %d numbers (one per run)", path, what, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e) && !cJSON_IsNull(e))
            return md_fail(err, errlen, "%s: %s[%d] must be a number", path, what, i);
        v[i] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    }
    return 0;
}

static int parse(fusion_data *d, const char *path, char *err, size_t errlen)
{
    const cJSON *j = d->j;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    const cJSON *select = cJSON_GetObjectItemCaseSensitive(j, "select");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "runs");
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(j, "scores");
    if (!cJSON_IsObject(j) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "empd-fusion"))
        return md_fail(err, errlen, "%s: not a fusion file (\"format\" is not \"empd-fusion\")", path);
    if (!cJSON_IsString(method))
        return md_fail(err, errlen, "%s: \"method\" must be a string (the chosen method)", path);
    d->method = method->valuestring;
    d->select = cJSON_IsString(select) ? select->valuestring : "accuracy";
    double folds = opt_number(j, "folds");
    d->folds = isfinite(folds) ? (int)folds : 0;
    d->n_runs = cJSON_GetArraySize(runs);
    if (!cJSON_IsArray(runs) || d->n_runs < 1 || d->n_runs > MAX_SCORES)
        return md_fail(err, errlen, "%s: \"runs\" must be a list of 1 to %d run folders", path, MAX_SCORES);
    for (int r = 0; r < d->n_runs; r++) {
        const cJSON *e = cJSON_GetArrayItem(runs, r);
        if (!cJSON_IsString(e))
            return md_fail(err, errlen, "%s: runs[%d] must be a string", path, r);
        d->runs[r] = e->valuestring;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stacking"), *n = cJSON_GetObjectItemCaseSensitive(j, "samples");
    d->C = opt_number(st, "C");
    d->samples[0] = opt_number(n, "val");
    d->samples[1] = opt_number(n, "test");
    if (read_list(cJSON_GetObjectItemCaseSensitive(j, "temperatures"), d->n_runs, d->temperature, path, "temperatures",
                  err, errlen) ||
        read_list(cJSON_GetObjectItemCaseSensitive(j, "weights"), d->n_runs, d->weight, path, "weights", err, errlen))
        return -1;
    d->n_scores = cJSON_GetArraySize(scores);
    if (!cJSON_IsArray(scores) || d->n_scores < 1 || d->n_scores > MAX_SCORES)
        return md_fail(err, errlen, "%s: \"scores\" must be a list of 1 to %d entries", path, MAX_SCORES);
    if (!(d->s = calloc((size_t)d->n_scores, sizeof *d->s)))
        return md_fail(err, errlen, "%s: out of memory", path);
    d->chosen = -1;
    for (int i = 0; i < d->n_scores; i++) {
        const cJSON *e = cJSON_GetArrayItem(scores, i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"), *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
        if (!cJSON_IsString(name) || !cJSON_IsString(kind) ||
            (strcmp(kind->valuestring, "run") && strcmp(kind->valuestring, "fusion")))
            return md_fail(err, errlen, "%s: scores[%d] needs \"name\" and \"kind\" (\"run\" or \"fusion\")", path, i);
        score *s = &d->s[i];
        snprintf(s->name, sizeof s->name, "%s", name->valuestring);
        s->fusion = !strcmp(kind->valuestring, "fusion");
        s->chosen = s->fusion && !strcmp(s->name, d->method);
        if (s->chosen)
            d->chosen = i;
        for (int sp = 0; sp < 2; sp++) {
            char where[4400];
            snprintf(where, sizeof where, "%s: scores[%d].%s", path, i, split_name[sp]);
            if (tr_report_read_metrics(cJSON_GetObjectItemCaseSensitive(e, split_name[sp]), "nll", &s->m[sp], where, err,
                                       errlen))
                return -1;
            if (s->m[sp].k != d->s[0].m[0].k)
                return md_fail(err, errlen, "%s: %d classes, but scores[0] has %d", where, s->m[sp].k, d->s[0].m[0].k);
        }
    }
    for (int sp = 0; sp < 2; sp++)
        if (!isfinite(d->samples[sp]))
            d->samples[sp] = (double)d->s[0].m[sp].samples;
    if (d->chosen < 0)
        return md_fail(err, errlen, "%s: \"method\" is \"%s\", but no fusion score has that name", path, d->method);
    return 0;
}

/* ---- The report ---------------------------------------------------------------------------------------- */

static const int score_cols[4] = {TR_H_ACC, TR_H_MF1, TR_H_WF1, TR_H_LOSS};
static const char *const score_label[4] = {"accuracy", "macro F1", "weighted F1", "NLL"};

/* The row holding column (split, figure)'s best value: the highest, the lowest NLL. */
static int best_row(const fusion_data *d, int sp, int h)
{
    int best = -1;
    for (int i = 0; i < d->n_scores; i++) {
        double v = d->s[i].m[sp].v[h];
        if (isfinite(v) && (best < 0 || (h == TR_H_LOSS ? v < d->s[best].m[sp].v[h] : v > d->s[best].m[sp].v[h])))
            best = i;
    }
    return best;
}

static void scores_table(const fusion_data *d, tr_text *h, tr_text *md)
{
    tr_text_add(h, "<table><tr><th class=\"l\" rowspan=\"2\">model</th><th class=\"l\" rowspan=\"2\">kind</th>"
                   "<th class=\"grp sep\" colspan=\"4\">val (fusion: out of fold)</th>"
                   "<th class=\"grp sep\" colspan=\"4\">test</th></tr><tr>");
    tr_text_add(md, "| model | kind |");
    for (int sp = 0; sp < 2; sp++)
        for (int c = 0; c < 4; c++) {
            tr_text_add(h, "<th%s>%s</th>", c ? "" : " class=\"sep\"", score_label[c]);
            tr_text_add(md, " %s %s |", split_name[sp], score_label[c]);
        }
    tr_text_add(h, "</tr>");
    tr_text_add(md, "\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < d->n_scores; i++) {
        const score *s = &d->s[i];
        tr_text_add(h, "<tr%s><td class=\"l\">", s->chosen ? " class=\"chosen\"" : "");
        tr_text_esc(h, s->name);
        tr_text_add(h, "%s</td><td class=\"l\">%s</td>", s->chosen ? "<span class=\"badge\">chosen</span>" : "",
                    s->fusion ? "fusion" : "run");
        tr_text_add(md, "| ");
        tr_report_md_esc(md, s->name);
        tr_text_add(md, "%s | %s |", s->chosen ? " **(chosen)**" : "", s->fusion ? "fusion" : "run");
        for (int sp = 0; sp < 2; sp++)
            for (int c = 0; c < 4; c++) {
                int b = best_row(d, sp, score_cols[c]) == i;
                tr_text_add(h, "<td%s>%s", c ? "" : " class=\"sep\"", b ? "<b class=\"best\">" : "");
                tr_report_f4(h, s->m[sp].v[score_cols[c]]);
                tr_text_add(h, "%s</td>", b ? "</b>" : "");
                tr_text_add(md, " ");
                tr_report_f4(md, s->m[sp].v[score_cols[c]]);
                tr_text_add(md, " |");
            }
        tr_text_add(h, "</tr>");
        tr_text_add(md, "\n");
    }
    tr_text_add(h, "</table><p class=\"note\">Bold: the best of each column. A fusion method's val figures are out of "
                   "fold: each fold is scored by the method fit on the other folds; test by the fit on all of val.</p>");
    tr_text_add(md, "\nA fusion method's val figures are out of fold; test is scored by the fit on all of val.\n\n");
}

static void parameters(const fusion_data *d, tr_text *h, tr_text *md)
{
    tr_text_add(h, "<section><h2>Fusion parameters</h2><div class=\"flex\"><table><tr><th class=\"l\">run</th>"
                   "<th>temperature</th><th>weight</th></tr>");
    tr_text_add(md, "## Fusion parameters\n\n| run | temperature | weight |\n|---|---:|---:|\n");
    for (int r = 0; r < d->n_runs; r++) {
        tr_text_add(h, "<tr><td class=\"l\"><code>");
        tr_text_esc(h, d->runs[r]);
        tr_text_add(h, "</code></td><td>");
        tr_report_f4(h, d->temperature[r]);
        tr_text_add(h, "</td><td>");
        tr_report_f4(h, d->weight[r]);
        tr_text_add(h, "</td></tr>");
        tr_text_add(md, "| `");
        tr_report_md_esc(md, d->runs[r]);
        tr_text_add(md, "` | ");
        tr_report_f4(md, d->temperature[r]);
        tr_text_add(md, " | ");
        tr_report_f4(md, d->weight[r]);
        tr_text_add(md, " |\n");
    }
    tr_text_add(h, "</table><dl><dt>chosen method</dt><dd><b>");
    tr_text_esc(h, d->method);
    tr_text_add(h, "</b></dd><dt>chosen by</dt><dd>val ");
    tr_text_esc(h, d->select);
    if (d->folds)
        tr_text_add(h, ", %d folds", d->folds);
    tr_text_add(h, "</dd><dt>stacking C</dt><dd>%.6g</dd><dt>samples</dt><dd>%.0f val, %.0f test</dd></dl></div>"
                   "<p class=\"note\">weighted: each run's probabilities softened by its temperature, then mixed by "
                   "the weights; stacking: logistic regression on the runs' log-probabilities, regularized by C; "
                   "average: the plain mean.</p></section>\n",
                d->C, d->samples[0], d->samples[1]);
    tr_text_add(md, "\nchosen method: **%s** (by val %s%s); stacking C = %.6g; samples: %.0f val, %.0f test.\n\n",
                d->method, d->select, d->folds ? ", out of fold" : "", d->C, d->samples[0], d->samples[1]);
}

static void file_name(char *out, size_t n, int i, const score *s, const char *split)
{
    char clean[128];
    size_t k = 0;
    for (const char *p = s->name; *p && k + 1 < sizeof clean; p++)
        clean[k++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ? *p
                                                                                                                 : '_';
    clean[k] = 0;
    snprintf(out, n, "report/confusion_%s%d_%s_%s.svg", s->fusion ? "fusion" : "run", i, clean, split);
}

static cJSON *fusion_json(const fusion_data *d, cJSON *svgs)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "empd-report");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "kind", "fusion");
    cJSON_AddStringToObject(j, "dir", d->dir);
    cJSON_AddStringToObject(j, "method", d->method);
    cJSON_AddStringToObject(j, "select", d->select);
    cJSON_AddNumberToObject(j, "folds", d->folds);
    cJSON *classes = cJSON_AddArrayToObject(j, "classes");
    for (int c = 0; c < d->s[0].m[0].k; c++)
        cJSON_AddItemToArray(classes, cJSON_CreateString(d->s[0].m[0].names[c]));
    cJSON_AddItemToObject(j, "runs", cJSON_CreateStringArray(d->runs, d->n_runs));
    cJSON *t = cJSON_AddArrayToObject(j, "temperatures"), *w = cJSON_AddArrayToObject(j, "weights");
    for (int r = 0; r < d->n_runs; r++) {
        cJSON_AddItemToArray(t, tr_report_num(d->temperature[r]));
        cJSON_AddItemToArray(w, tr_report_num(d->weight[r]));
    }
    cJSON_AddItemToObject(j, "C", tr_report_num(d->C));
    cJSON *n = cJSON_AddObjectToObject(j, "samples");
    for (int sp = 0; sp < 2; sp++)
        cJSON_AddItemToObject(n, split_name[sp], tr_report_num(d->samples[sp]));
    cJSON *scores = cJSON_AddArrayToObject(j, "scores");
    for (int i = 0; i < d->n_scores; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(scores, o);
        cJSON_AddStringToObject(o, "name", d->s[i].name);
        cJSON_AddStringToObject(o, "kind", d->s[i].fusion ? "fusion" : "run");
        cJSON_AddBoolToObject(o, "chosen", d->s[i].chosen);
        for (int sp = 0; sp < 2; sp++)
            cJSON_AddItemToObject(o, split_name[sp], tr_report_metrics_json(&d->s[i].m[sp], "nll"));
    }
    cJSON *files = cJSON_AddObjectToObject(j, "files");
    cJSON_AddStringToObject(files, "html", "report.html");
    cJSON_AddStringToObject(files, "md", "report.md");
    cJSON_AddItemToObject(files, "svg", svgs);
    return j;
}

/* The pages and pictures; the pictures are written as they are drawn. */
static int write_report(const fusion_data *d, cJSON *svgs, tr_text *h, tr_text *md, char *err, size_t errlen)
{
    const score *ch = &d->s[d->chosen];
    /* Test without labelled samples (an unlabelled test split) leaves val to show. */
    const int sp_show = ch->m[1].samples > 0 ? 1 : 0;
    tr_text sub = {0};
    tr_text_add(&sub, "chosen: <b>");
    tr_text_esc(&sub, d->method);
    tr_text_add(&sub, "</b> by val ");
    tr_text_esc(&sub, d->select);
    tr_text_add(&sub, "%s · %d runs · %.0f val and %.0f test samples · %d classes", d->folds ? " out of fold" : "",
                d->n_runs, d->samples[0], d->samples[1], ch->m[0].k);
    tr_report_page_begin(h, "Fusion", d->dir, sub.s ? sub.s : "");
    tr_text_free(&sub);
    tr_text_add(md, "# Fusion `%s`\n\nchosen: **%s** by val %s · %d runs · %.0f val and %.0f test samples\n\n", d->dir,
                d->method, d->select, d->n_runs, d->samples[0], d->samples[1]);

    tr_text_add(h, "<section><h2>Runs and fusion methods</h2>");
    tr_text_add(md, "## Runs and fusion methods\n\n");
    scores_table(d, h, md);
    const char *rows[MAX_SCORES];
    double values[MAX_SCORES * 2];
    char rowname[MAX_SCORES][160];
    for (int i = 0; i < d->n_scores; i++) {
        snprintf(rowname[i], sizeof rowname[i], "%s%s", d->s[i].fusion ? "fusion: " : "", d->s[i].name);
        rows[i] = rowname[i];
        values[2 * i] = d->s[i].m[sp_show].v[TR_H_ACC];
        values[2 * i + 1] = d->s[i].m[sp_show].v[TR_H_MF1];
    }
    tr_text bars = {0};
    tr_svg_bars(&bars, &(tr_svg_bars_spec){.title = sp_show ? "Test scores" : "Val scores (out of fold)",
                                           .width = 760, .n_rows = d->n_scores, .n_series = 2, .rows = rows,
                                           .series = (const char *const[]){"accuracy", "macro F1"},
                                           .colors = (const char *const[]){"#2c7fb8", "#9467bd"},
                                           .values = values, .highlight = d->chosen});
    tr_text_add(h, "<div style=\"margin-top:14px\">%s</div></section>\n", bars.s ? bars.s : "");
    tr_text_add(md, "![scores](report/scores.svg)\n\n");
    int rc = tr_report_write(d->dir, "report/scores.svg", &bars, 1, err, errlen);
    cJSON_AddItemToArray(svgs, cJSON_CreateString("report/scores.svg"));
    tr_text_free(&bars);

    parameters(d, h, md);

    tr_text_add(h, "<section><h2>Per class: ");
    tr_text_esc(h, ch->name);
    tr_text_add(h, " (chosen)</h2><div class=\"flex\">");
    tr_text_add(md, "## Per class: %s (chosen)\n\n", ch->name);
    for (int sp = 0; sp <= sp_show; sp++) {
        char cap[96];
        snprintf(cap, sizeof cap, "%s%s", split_name[sp], sp ? "" : " (out of fold)");
        tr_report_html_per_class(h, cap, &ch->m[sp]);
        tr_report_md_per_class(md, cap, &ch->m[sp]);
    }
    tr_text_add(h, "</div></section>\n<section><h2>Confusion matrices on %s</h2><div class=\"flex\">",
                split_name[sp_show]);
    tr_text_add(md, "## Confusion matrices on %s\n\n", split_name[sp_show]);
    /* The chosen method first, then each run. */
    for (int o = -1; rc == 0 && o < d->n_scores; o++) {
        int i = o < 0 ? d->chosen : o;
        if (o >= 0 && d->s[i].fusion)
            continue;
        const score *s = &d->s[i];
        char title[200], file[300];
        const char *names[TR_MAX_CLASSES];
        snprintf(title, sizeof title, "%s%s, %s", s->fusion ? "fusion: " : "", s->name, split_name[sp_show]);
        file_name(file, sizeof file, i, s, split_name[sp_show]);
        tr_text svg = {0};
        tr_svg_confusion(&svg, title, s->m[sp_show].conf, s->m[sp_show].k, tr_report_names(&s->m[sp_show], names));
        tr_text_add(h, "<div>%s</div>", svg.s ? svg.s : "");
        tr_report_md_confusion(md, title, file, &s->m[sp_show]);
        rc = tr_report_write(d->dir, file, &svg, 1, err, errlen);
        cJSON_AddItemToArray(svgs, cJSON_CreateString(file));
        tr_text_free(&svg);
    }
    tr_text_add(h, "</div><p class=\"note\">Rows: the true class; columns: the predicted one. A cell's color is its "
                   "share of the row.</p></section>\n");
    tr_report_page_end(h);
    return rc;
}

int tr_report_fusion(const char *dir, char *err, size_t errlen)
{
    char path[4200];
    size_t len;
    int missing;
    snprintf(path, sizeof path, "%s/fusion.json", dir);
    char *text = tr_report_slurp(path, &len, &missing, err, errlen);
    if (!text)
        return -1;
    fusion_data d = {.dir = dir};
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    int rc = 0;
    if (!j)
        rc = md_fail(err, errlen, "%s: not valid JSON near byte %ld", path, end ? (long)(end - text) : 0L);
    free(text);
    d.j = j;
    if (rc == 0)
        rc = parse(&d, path, err, errlen);
    tr_text html = {0}, md = {0};
    cJSON *svgs = cJSON_CreateArray(), *json = NULL;
    if (rc == 0)
        rc = tr_report_mkdir(dir, err, errlen) || write_report(&d, svgs, &html, &md, err, errlen) ? -1 : 0;
    if (rc == 0) {
        json = fusion_json(&d, svgs);
        svgs = NULL;
        rc = json ? tr_report_finish(dir, json, &html, &md, err, errlen) : md_fail(err, errlen, "%s: out of memory", dir);
    }
    cJSON_Delete(svgs);
    cJSON_Delete(json);
    cJSON_Delete(j);
    tr_text_free(&html);
    tr_text_free(&md);
    free(d.s);
    return rc;
}
