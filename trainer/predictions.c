#include "trainer/predictions.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/avamerg.h"
#include "models/errors.h"
#include "trainer/checkpoint.h"

const char *const *tr_class_names(int n_classes)
{
    static const char *names7[7], *names32[32];
    const char **names = n_classes == 7 ? names7 : n_classes == 32 ? names32 : NULL;
    for (int c = 0; names && c < n_classes; c++)
        names[c] = n_classes == 7 ? am_label7_name(c) : am_label32_name(c);
    return names;
}

/* One CSV field, quoted only when it has to be. */
static void put_field(FILE *f, const char *prefix, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fprintf(f, "%s%s", prefix, s);
        return;
    }
    fputc('"', f);
    fputs(prefix, f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int tr_predictions_write(const char *path, const tr_eval *e, const ds_strv *ids, char *err, size_t errlen)
{
    const char *const *names = tr_class_names(e->n_classes);
    if (!ids || ids->n != (size_t)e->n)
        return md_fail(err, errlen, "%s: %lld samples but %zu ids", path, (long long)e->n, ids ? ids->n : 0);
    if (e->n > 0 && (!e->label || !e->pred || !e->probs))
        return md_fail(err, errlen, "%s: the evaluation kept no per-sample results", path);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return md_fail(err, errlen, "%s: out of memory", path);
    fputs("id,label,pred", f);
    for (int c = 0; c < e->n_classes; c++) {
        char index[16];
        snprintf(index, sizeof index, "%d", c);
        fputc(',', f);
        put_field(f, "p_", names ? names[c] : index);
    }
    fputc('\n', f);
    for (int64_t i = 0; i < e->n; i++) {
        const double *p = e->probs + (size_t)i * (size_t)e->n_classes;
        put_field(f, "", ids->v[i]);
        fprintf(f, ",%lld,%d", (long long)e->label[i], e->pred[i]);
        for (int c = 0; c < e->n_classes; c++)
            fprintf(f, ",%.17g", p[c]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad || !text ? md_fail(err, errlen, "%s: out of memory", path)
                          : tr_write_file_atomic(path, text, len, err, errlen);
    free(text);
    return rc;
}

enum { MAX_FIELDS = 3 + TR_MAX_CLASSES + 1 };

/* Splits the record at *p (before end) into fields, unquoting them in place and NUL-terminating each;
 * advances *p past its line end and *line by the line ends it consumed. Returns the number of fields
 * (only the first MAX_FIELDS are stored), or -1 with the fault in *why. */
static int split_record(char **p, char *end, char **fields, int *line, const char **why)
{
    char *s = *p;
    int nf = 0;
    for (;;) {
        char *start = s, *out = s;
        if (s < end && *s == '"') {
            for (s++;; s++) {
                if (s == end)
                    return *why = "a quoted field never ends", -1;
                if (*s == '"' && s + 1 < end && s[1] == '"')
                    s++;
                else if (*s == '"')
                    break;
                else if (*s == '\n')
                    (*line)++;
                *out++ = *s;
            }
            s++;
        } else {
            while (s < end && *s != ',' && *s != '\n' && *s != '\r')
                if (*s++ == '"')
                    return *why = "a quote inside an unquoted field", -1;
            out = s;
        }
        char sep = s < end ? *s : '\n';
        if (sep == '\r' && s + 1 < end && s[1] == '\n')
            sep = *++s;
        if (sep != ',' && sep != '\n')
            return *why = "a field goes on after its closing quote, or a lone carriage return", -1;
        *out = 0;
        if (nf < MAX_FIELDS)
            fields[nf] = start;
        nf++;
        if (s < end)
            s++;
        if (sep == '\n') {
            (*line)++;
            *p = s;
            return nf;
        }
    }
}

/* s as a whole integer in lo..hi. */
static int parse_int(const char *s, long long lo, long long hi, long long *v)
{
    char *e;
    errno = 0;
    *v = strtoll(s, &e, 10);
    return *s && !*e && !errno && *v >= lo && *v <= hi;
}

typedef struct {
    const char *id;
    int64_t row;
} id_row;

static int compare_ids(const void *a, const void *b)
{
    const id_row *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* The row of the first repetition of an id (in file order): -1 when none, -2 when out of memory;
 * *first: the row where that id appeared first. */
static int64_t find_repeated_id(char **ids, int64_t n, int64_t *first)
{
    id_row *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    int64_t found = -1;
    if (!v)
        return -2;
    for (int64_t i = 0; i < n; i++)
        v[i] = (id_row){ids[i], i};
    qsort(v, (size_t)n, sizeof *v, compare_ids);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(v[i - 1].id, v[i].id) == 0 && (found < 0 || v[i].row < found) && v[i - 1].row < v[i].row &&
            (i < 2 || strcmp(v[i - 2].id, v[i].id))) {
            found = v[i].row;
            *first = v[i - 1].row;
        }
    free(v);
    return found;
}

static int read_whole(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16;
    *len = 0;
    *text = malloc(cap);
    for (size_t got = 1; *text && got > 0;) {
        if (cap - *len < 2) {
            char *grown = realloc(*text, cap *= 2);
            if (!grown)
                free(*text);
            *text = grown;
            if (!grown)
                break;
        }
        got = fread(*text + *len, 1, cap - *len - 1, f);
        *len += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (!*text || bad) {
        free(*text);
        *text = NULL;
        return md_fail(err, errlen, "%s: %s", path, bad ? "read error" : "out of memory");
    }
    (*text)[*len] = 0;
    return 0;
}

/* The header: the class names. */
static int read_header(const char *path, char **fields, int nf, tr_predictions *out, char *err, size_t errlen)
{
    if (nf < 3 || strcmp(fields[0], "id") || strcmp(fields[1], "label") || strcmp(fields[2], "pred"))
        return md_fail(err, errlen, "%s:1: the header does not start with id,label,pred (not a predictions file?)",
                       path);
    out->n_classes = nf - 3;
    if (out->n_classes < 2 || out->n_classes > TR_MAX_CLASSES)
        return md_fail(err, errlen, "%s:1: %d probability columns (2..%d are read)", path, out->n_classes,
                       TR_MAX_CLASSES);
    for (int c = 0; c < out->n_classes; c++) {
        const char *h = fields[3 + c];
        if (strncmp(h, "p_", 2) || !h[2] || strpbrk(h, "\r\n"))
            return md_fail(err, errlen, "%s:1: column %d is \"%s\", not p_<class name>", path, 4 + c, h);
        for (int k = 0; k < c; k++)
            if (strcmp(out->class_names[k], h + 2) == 0)
                return md_fail(err, errlen, "%s:1: the class %s has two columns", path, h + 2);
        if (!(out->class_names[c] = strdup(h + 2)))
            return md_fail(err, errlen, "%s: out of memory", path);
    }
    return 0;
}

/* Row i (from fields) into out. */
static int read_row(const char *path, int line, char **fields, int nf, int64_t i, tr_predictions *out, char *err,
                    size_t errlen)
{
    int k = out->n_classes;
    long long label, pred;
    if (nf != 3 + k)
        return md_fail(err, errlen, "%s:%d: %d fields where the header has %d", path, line, nf, 3 + k);
    if (!fields[0][0] || strpbrk(fields[0], "\r\n"))
        return md_fail(err, errlen, "%s:%d: an empty id, or one with a line end", path, line);
    if (!parse_int(fields[1], -1, k - 1, &label))
        return md_fail(err, errlen, "%s:%d: label \"%s\" is not -1 or a class 0..%d", path, line, fields[1], k - 1);
    if (!parse_int(fields[2], 0, k - 1, &pred))
        return md_fail(err, errlen, "%s:%d: pred \"%s\" is not a class 0..%d", path, line, fields[2], k - 1);
    out->label[i] = label;
    out->pred[i] = (int)pred;
    double sum = 0;
    for (int c = 0; c < k; c++) {
        char *e;
        double p = strtod(fields[3 + c], &e);
        if (!fields[3 + c][0] || *e || !(p >= 0 && p <= 1))
            return md_fail(err, errlen, "%s:%d: p_%s \"%s\" is not a probability", path, line, out->class_names[c],
                           fields[3 + c]);
        out->probs[(size_t)i * (size_t)k + (size_t)c] = p;
        sum += p;
    }
    if (!(fabs(sum - 1) <= 1e-4))
        return md_fail(err, errlen, "%s:%d: the probabilities sum to %.9g, not 1", path, line, sum);
    if (!(out->ids[i] = strdup(fields[0])))
        return md_fail(err, errlen, "%s: out of memory", path);
    return 0;
}

/* Makes room for row i. */
static int grow(tr_predictions *p, int64_t i, int64_t *cap)
{
    if (i < *cap)
        return 0;
    int64_t want = *cap ? *cap * 2 : 1024;
    char **ids = realloc(p->ids, (size_t)want * sizeof *ids);
    if (ids)
        p->ids = ids;
    int64_t *label = ids ? realloc(p->label, (size_t)want * sizeof *label) : NULL;
    if (label)
        p->label = label;
    int *pred = label ? realloc(p->pred, (size_t)want * sizeof *pred) : NULL;
    if (pred)
        p->pred = pred;
    double *probs = pred ? realloc(p->probs, (size_t)want * (size_t)p->n_classes * sizeof *probs) : NULL;
    if (probs)
        p->probs = probs;
    if (!probs)
        return -1;
    *cap = want;
    return 0;
}

int tr_predictions_read(const char *path, tr_predictions *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *text = NULL, *fields[MAX_FIELDS];
    size_t len = 0;
    if (read_whole(path, &text, &len, err, errlen))
        return -1;
    char *p = text, *end = text + len;
    int line = 1, at = 1, rc = 0;
    int64_t cap = 0;
    const char *why = NULL;
    int nf = len ? split_record(&p, end, fields, &line, &why) : -1;
    if (nf < 0)
        rc = md_fail(err, errlen, "%s:1: %s", path, why ? why : "empty file, no header");
    else
        rc = read_header(path, fields, nf, out, err, errlen);
    while (rc == 0 && p < end) {
        at = line;
        if (*p == '\n' || *p == '\r')
            rc = md_fail(err, errlen, "%s:%d: an empty line", path, at);
        else if ((nf = split_record(&p, end, fields, &line, &why)) < 0)
            rc = md_fail(err, errlen, "%s:%d: %s", path, at, why);
        else if (grow(out, out->n, &cap))
            rc = md_fail(err, errlen, "%s: out of memory at line %d", path, at);
        else if ((rc = read_row(path, at, fields, nf, out->n, out, err, errlen)) == 0)
            out->n++;
    }
    free(text);
    int64_t first = 0, again = rc == 0 ? find_repeated_id(out->ids, out->n, &first) : -1;
    if (again == -2)
        rc = md_fail(err, errlen, "%s: out of memory", path);
    else if (again >= 0) /* no field read holds a line end, so row r is on line r + 2 */
        rc = md_fail(err, errlen, "%s:%lld: the id %s again (first on line %lld)", path, (long long)again + 2,
                     out->ids[again], (long long)first + 2);
    if (rc)
        tr_predictions_free(out);
    return rc;
}

void tr_predictions_free(tr_predictions *p)
{
    for (int64_t i = 0; p->ids && i < p->n; i++)
        free(p->ids[i]);
    for (int c = 0; c < TR_MAX_CLASSES; c++)
        free(p->class_names[c]);
    free(p->ids);
    free(p->label);
    free(p->pred);
    free(p->probs);
    memset(p, 0, sizeof *p);
}
