/* trainer/predictions.h: a predictions file written from a known evaluation, read back by Python's csv
 * module (every id, label, prediction and probability equal to the last bit) and by
 * tr_predictions_read; files Python's csv writer made (its "\r\n" line ends, quoting everything) read by
 * tr_predictions_read; and every fault of a malformed file named with its line. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/predictions.h"

enum { N = 6, C = 7 };

/* Reads PATH with csv.DictReader, checks it against EXPECTED (per sample: the id's bytes in hex, label,
 * pred, the probabilities as float.hex), then writes the rows with csv.writer twice: OUT_CRLF with its
 * defaults ("\r\n", minimal quoting), OUT_QUOTED quoting every field. */
static const char *const check_py =
    "import csv, sys\n"
    "path, expected, out_crlf, out_quoted, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]\n"
    "with open(path, newline='', encoding='utf-8') as f:\n"
    "    reader = csv.DictReader(f)\n"
    "    rows = list(reader)\n"
    "    header = reader.fieldnames\n"
    "want_header = ['id', 'label', 'pred'] + ['p_' + n for n in names]\n"
    "assert header == want_header, (header, want_header)\n"
    "want = [line.split() for line in open(expected)]\n"
    "assert len(rows) == len(want), (len(rows), len(want))\n"
    "for row, w in zip(rows, want):\n"
    "    assert row['id'] == bytes.fromhex(w[0]).decode('utf-8'), (row['id'], w[0])\n"
    "    assert int(row['label']) == int(w[1]) and int(row['pred']) == int(w[2]), (row, w)\n"
    "    for n, h in zip(names, w[3:]):\n"
    "        assert float(row['p_' + n]) == float.fromhex(h), (row['id'], n, row['p_' + n], h)\n"
    "for out, quoting in ((out_crlf, csv.QUOTE_MINIMAL), (out_quoted, csv.QUOTE_ALL)):\n"
    "    with open(out, 'w', newline='', encoding='utf-8') as f:\n"
    "        w = csv.writer(f, quoting=quoting)\n"
    "        w.writerow(header)\n"
    "        for row in rows:\n"
    "            w.writerow([row['id'], row['label'], row['pred']] + [repr(float(row['p_' + n])) for n in names])\n"
    "print(f'csv: {len(rows)} rows equal')\n";

static void expect_equal(const char *what, const tr_predictions *p, const tr_eval *e, const ds_strv *ids) {
    const char *const *names = tr_class_names(C);
    assert_int_equal(p->n_classes, C);
    assert_int_equal(p->n, e->n);
    for (int c = 0; c < C; c++) assert_string_equal(p->class_names[c], names[c]);
    for (int64_t i = 0; i < e->n; i++) {
        assert_string_equal(p->ids[i], ids->v[i]);
        assert_int_equal(p->label[i], e->label[i]);
        assert_int_equal(p->pred[i], e->pred[i]);
        for (int c = 0; c < C; c++)
            if (p->probs[i * C + c] != e->probs[i * C + c]) {
                fprintf(stderr, "%s: sample %lld p_%s %.17g, written %.17g\n", what, (long long)i, names[c],
                        p->probs[i * C + c], e->probs[i * C + c]);
                fail();
            }
    }
}

void test_predictions_round_trip(void **state) {
    (void)state;
    static const char *const id_text[N] = {"00001", "65020", "a,\"b", "x y", "07", "\xc3\xbaltima"};
    static const int64_t labels[N] = {0, -1, 6, 3, 2, 5};
    ds_strv ids = {0};
    int64_t label[N];
    int pred[N];
    double probs[N * C];
    for (int i = 0; i < N; i++) {
        assert_int_equal(ds_strv_push(&ids, id_text[i]), 0);
        label[i] = labels[i];
        /* Softmax of logits with a wide spread: probabilities down to about 1e-300 survive the text. */
        double z[C], mx = -INFINITY, sum = 0;
        for (int c = 0; c < C; c++) mx = fmax(mx, z[c] = i == 4 ? -690.0 * (c != 3) : 4 * sin(1.1 * i + 0.9 * c));
        for (int c = 0; c < C; c++) sum += exp(z[c] - mx);
        pred[i] = 0;
        for (int c = 0; c < C; c++) {
            probs[i * C + c] = exp(z[c] - mx) / sum;
            if (probs[i * C + c] > probs[i * C + pred[i]]) pred[i] = c;
        }
    }
    tr_eval e = {.n = N, .n_classes = C, .label = label, .pred = pred, .probs = probs};
    char dir[64], path[128], expected[128], crlf[128], quoted[128], script[128], err[512];
    assert_int_equal(tf_make_temp_dir(dir, "test_trainer_unit"), 0);
    snprintf(path, sizeof path, "%s/val.csv", dir);
    snprintf(expected, sizeof expected, "%s/expected.txt", dir);
    snprintf(crlf, sizeof crlf, "%s/crlf.csv", dir);
    snprintf(quoted, sizeof quoted, "%s/quoted.csv", dir);
    snprintf(script, sizeof script, "%s/check.py", dir);
    int rc = tr_predictions_write(path, &e, &ids, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);

    FILE *f = fopen(expected, "w");
    assert_non_null(f);
    for (int i = 0; i < N; i++) {
        for (const unsigned char *s = (const unsigned char *)id_text[i]; *s; s++) fprintf(f, "%02x", *s);
        fprintf(f, " %lld %d", (long long)label[i], pred[i]);
        for (int c = 0; c < C; c++) fprintf(f, " %a", probs[i * C + c]);
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
    tf_write_text(script, check_py);
    char cmd[1024];
    int len = snprintf(cmd, sizeof cmd, "%s %s %s %s %s %s", EMPD_PYTHON, script, path, expected, crlf, quoted);
    for (int c = 0; c < C; c++) len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s", tr_class_names(C)[c]);
    fflush(NULL);
    assert_int_equal(system(cmd), 0);

    static const char *const what[] = {"ours", "csv.writer, \\r\\n", "csv.writer, every field quoted"};
    const char *const files[] = {path, crlf, quoted};
    for (int k = 0; k < 3; k++) {
        tr_predictions p;
        rc = tr_predictions_read(files[k], &p, err, sizeof err);
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        expect_equal(what[k], &p, &e, &ids);
        tr_predictions_free(&p);
    }
    char *crlf_text = tf_read_text(crlf, NULL), *quoted_text = tf_read_text(quoted, NULL);
    assert_true(crlf_text && strstr(crlf_text, "\r\n") && strstr(crlf_text, "\"a,\"\"b\""));
    assert_true(quoted_text && strstr(quoted_text, "\"00001\",\"0\""));
    free(crlf_text);
    free(quoted_text);
    printf("predictions: %d samples written, read back equal by Python's csv and by tr_predictions_read "
           "(also csv.writer's files)\n", N);

    /* No ids for the samples. */
    ids.n--;
    assert_int_equal(tr_predictions_write(path, &e, &ids, err, sizeof err), -1);
    assert_non_null(strstr(err, "val.csv: 6 samples but 5 ids"));
    ids.n++;
    ds_strv_free(&ids);
    tf_remove_tree(dir);
}

void test_predictions_bad_files(void **state) {
    (void)state;
    static const char H[] = "id,label,pred,p_a,p_b\n";
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"", "bad.csv:1: empty file, no header"},
        {"id,label,p_a,p_b\n", "bad.csv:1: the header does not start with id,label,pred"},
        {"id,label,pred,p_a\n", "bad.csv:1: 1 probability columns (2..32 are read)"},
        {"id,label,pred,p_a,p_a\n", "bad.csv:1: the class a has two columns"},
        {"id,label,pred,a,p_b\n", "bad.csv:1: column 4 is \"a\", not p_<class name>"},
        {"id,label,pred,p_a,p_\n", "bad.csv:1: column 5 is \"p_\", not p_<class name>"},
        {"id,label,pred,p_a,\"p_b\nc\"\n", "bad.csv:1: column 5 is \"p_b\nc\", not p_<class name>"},
        {"x,0,1,0.5,0.5\n", "bad.csv:1: the header does not start with id,label,pred"},
        {"x,0,1,0.5\n", "bad.csv:2: 4 fields where the header has 5"},
        {"x,0,1,0.5,0.5,0\n", "bad.csv:2: 6 fields where the header has 5"},
        {"x,2,1,0.5,0.5\n", "bad.csv:2: label \"2\" is not -1 or a class 0..1"},
        {"x,-2,1,0.5,0.5\n", "bad.csv:2: label \"-2\" is not -1 or a class 0..1"},
        {"x,1.0,1,0.5,0.5\n", "bad.csv:2: label \"1.0\" is not -1 or a class 0..1"},
        {"x,0,-1,0.5,0.5\n", "bad.csv:2: pred \"-1\" is not a class 0..1"},
        {"x,0,,0.5,0.5\n", "bad.csv:2: pred \"\" is not a class 0..1"},
        {"x,0,1,0.5,abc\n", "bad.csv:2: p_b \"abc\" is not a probability"},
        {"x,0,1,nan,0.5\n", "bad.csv:2: p_a \"nan\" is not a probability"},
        {"x,0,1,-0.5,1.5\n", "bad.csv:2: p_a \"-0.5\" is not a probability"},
        {"x,0,1,0.5,\n", "bad.csv:2: p_b \"\" is not a probability"},
        {"x,0,1,0.5,0.6\n", "bad.csv:2: the probabilities sum to 1.1, not 1"},
        {",0,1,0.5,0.5\n", "bad.csv:2: an empty id"},
        {"\"x\ny\",0,1,0.5,0.5\n", "bad.csv:2: an empty id, or one with a line end"},
        {"x,0,1,0.5,0.5\ny,1,0,0.5,0.5\nx,1,1,0.5,0.5\n", "bad.csv:4: the id x again (first on line 2)"},
        {"x,0,1,0.5,0.5\n\ny,1,0,0.5,0.5\n", "bad.csv:3: an empty line"},
        {"x,0,1,0.5,0.5\n\"y,1,0,0.5,0.5\n", "bad.csv:3: a quoted field never ends"},
        {"x\"y,0,1,0.5,0.5\n", "bad.csv:2: a quote inside an unquoted field"},
        {"\"x\"y,0,1,0.5,0.5\n", "bad.csv:2: a field goes on after its closing quote"},
        {"x,0,1,0.5,0.5\ry,1,0,0.5,0.5\n", "bad.csv:2: a field goes on after its closing quote, or a lone carriage"},
    };
    char dir[64], path[128], err[512];
    assert_int_equal(tf_make_temp_dir(dir, "test_trainer_unit"), 0);
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char text[256];
        /* The cases that start with a row get the usable header. */
        int row_only = strncmp(cases[k].text, "id,", 3) && cases[k].text[0] && strncmp(cases[k].err, "bad.csv:1:", 10);
        snprintf(text, sizeof text, "%s%s", row_only ? H : "", cases[k].text);
        tf_write_text(path, text);
        tr_predictions p;
        memset(&p, 0x5a, sizeof p);
        err[0] = 0;
        int rc = tr_predictions_read(path, &p, err, sizeof err);
        if (rc != -1 || !strstr(err, cases[k].err) || strstr(err, path) != err) {
            fprintf(stderr, "case %zu: rc %d, \"%s\", expected \"%s\"\n", k, rc, err, cases[k].err);
            fail();
        }
        assert_true(p.n == 0 && p.ids == NULL && p.probs == NULL);
    }
    /* Accepted: no line end after the last row, "\r\n" line ends, quoted fields, an unlabelled sample. */
    tf_write_text(path, "id,label,pred,p_a,p_b\r\n\"x,1\",-1,1,0.25,0.75\r\n\"y\",\"1\",0,\"0.5\",0.5");
    tr_predictions p;
    int rc = tr_predictions_read(path, &p, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[0], "x,1");
    assert_string_equal(p.class_names[1], "b");
    assert_true(p.label[0] == -1 && p.label[1] == 1 && p.pred[0] == 1 && p.probs[1] == 0.75 && p.probs[3] == 0.5);
    tr_predictions_free(&p);
    snprintf(path, sizeof path, "%s/none.csv", dir);
    assert_int_equal(tr_predictions_read(path, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "none.csv: cannot open: No such file or directory"));
    tf_remove_tree(dir);
}
