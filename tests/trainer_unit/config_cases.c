/* trainer/config.h: defaults, files, --set overrides, every kind of bad input, the model hash and
 * the canonical JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/config.h"

/* Loads text (written to a temporary file) with sets; returns tr_config_load's code and leaves the
 * file's path in path (64 bytes) for messages. */
static int load_text(const char *text, char *const *sets, int n_sets, tr_config *c, char *path, char *err,
                     size_t errlen) {
    char dir[64];
    assert_int_equal(tf_make_temp_dir(dir, "test_trainer_unit"), 0);
    snprintf(path, 64, "%s/c.json", dir);
    tf_write_text(path, text);
    int rc = tr_config_load(path, sets, n_sets, c, err, errlen);
    tf_remove_tree(dir);
    return rc;
}

static void assert_one_line(const char *err) {
    assert_true(err[0] != 0);
    assert_null(strchr(err, '\n'));
}

void test_config_defaults(void **state) {
    (void)state;
    tr_config c;
    char err[512] = "";
    assert_int_equal(tr_config_load(NULL, NULL, 0, &c, err, sizeof err), 0);
    assert_string_equal(c.data.shards, "shards");
    assert_int_equal(c.model.vocab_size, 30522);
    assert_int_equal(c.model.hidden, 64);
    assert_int_equal(c.model.layers, 2);
    assert_int_equal(c.model.heads, 2);
    assert_int_equal(c.model.intermediate, 128);
    assert_int_equal(c.model.max_position, 64);
    assert_int_equal(c.model.utt_tokens, 32);
    assert_int_equal(c.model.meta_dim, 8);
    assert_int_equal(c.model.num_classes, 0);
    assert_true(c.model.dropout == 0.1);
    assert_true(c.model.init_std == 0.02);
    assert_int_equal(c.train.batch_size, 8);
    assert_int_equal(c.train.max_steps, 300);
    assert_int_equal(c.train.warmup_steps, 20);
    assert_int_equal(c.train.decay_steps, 0);
    assert_int_equal(c.train.log_every, 10);
    assert_int_equal(c.train.eval_every, 100);
    assert_int_equal(c.train.checkpoint_every, 100);
    assert_int_equal(c.train.keep_last, 3);
    assert_int_equal(c.train.threads, 0);
    assert_int_equal(c.train.seed, 42);
    assert_int_equal(c.train.drop_last, 1);
    assert_true(c.train.lr == 1e-3);
    assert_true(c.train.weight_decay == 0.01);
    assert_true(c.train.beta1 == 0.9);
    assert_true(c.train.beta2 == 0.999);
    assert_true(c.train.eps == 1e-8);
    assert_non_null(c.json);
    assert_int_equal(strlen(c.model_hash), 16);
    assert_int_equal(strspn(c.model_hash, "0123456789abcdef"), 16);
    tr_config_free(&c);
    assert_null(c.json);
}

void test_config_file_and_sets(void **state) {
    (void)state;
    const char *text = "{\n"
                       "  \"data\": {\"shards\": \"from/file\"},\n"
                       "  \"model\": {\"hidden\": 32, \"heads\": 4, \"dropout\": 0.25, \"layers\": 1},\n"
                       "  \"train\": {\"lr\": 0.002, \"drop_last\": 1, \"seed\": 9}\n"
                       "}\n";
    char *sets[] = {"train.lr=2e-5",          "train.drop_last=false", "data.shards=/runs/my shards",
                    "model.layers=3",         "train.eps=1e-6",        "model.init_std=0.5",
                    "train.threads=true"};
    tr_config c;
    char err[512] = "", path[64];
    assert_int_equal(load_text(text, sets, 7, &c, path, err, sizeof err), 0);
    assert_string_equal(c.data.shards, "/runs/my shards");
    assert_int_equal(c.model.hidden, 32);
    assert_int_equal(c.model.heads, 4);
    assert_int_equal(c.model.layers, 3);
    assert_true(c.model.dropout == 0.25);
    assert_true(c.model.init_std == 0.5);
    assert_true(c.train.lr == 2e-5);
    assert_int_equal(c.train.drop_last, 0);
    assert_int_equal(c.train.threads, 1);
    assert_int_equal(c.train.seed, 9);
    assert_true(c.train.eps == 1e-6);
    /* Untouched fields keep their defaults. */
    assert_int_equal(c.model.vocab_size, 30522);
    assert_int_equal(c.train.batch_size, 8);
    tr_config_free(&c);
}

typedef struct {
    const char *text; /* NULL: no file */
    const char *set;  /* NULL: none */
    const char *want; /* the message, "%s" standing for the source (file path or "config") */
} bad_case;

void test_config_errors(void **state) {
    (void)state;
    static const bad_case cases[] = {
        {"{\"model\": {\"hiden\": 32}}", NULL,
         "%s: unknown field 'model.hiden' (empd train --help lists the fields)"},
        {"{\"foo\": 1}", NULL, "%s: unknown field 'foo' (empd train --help lists the fields)"},
        {"{\"train\": {\"lr\": 0.1, \"nested\": {\"x\": 1}}}", NULL,
         "%s: unknown field 'train.nested' (empd train --help lists the fields)"},
        {NULL, "train.lrr=0.1", "%s: unknown field 'train.lrr' (empd train --help lists the fields)"},
        {"{\"model\": {\"hidden\": \"big\"}}", NULL, "%s: model.hidden must be a number, got big"},
        {"{\"data\": {\"shards\": 5}}", NULL, "%s: data.shards must be a string"},
        {"{\"model\": {\"layers\": 2.5}}", NULL, "%s: model.layers must be an integer, got 2.5"},
        {NULL, "train.batch_size=1.5", "%s: train.batch_size must be an integer, got 1.5"},
        {"{\"model\": {\"layers\": 25}}", NULL, "%s: model.layers = 25 is outside [1, 24]"},
        {"{\"train\": {\"lr\": -1}}", NULL, "%s: train.lr = -1 is outside [0, 10]"},
        {NULL, "model.dropout=1", "%s: model.dropout = 1 is outside [0, 0.99]"},
        {"{\"model\": {\"hidden\": 30, \"heads\": 4}}", NULL,
         "%s: model.hidden (30) must be a multiple of model.heads (4)"},
        {"{\"model\": {\"utt_tokens\": 65}}", NULL, "%s: model.utt_tokens (65) exceeds model.max_position (64)"},
        {"{\"model\": {\"num_classes\": 5}}", NULL, "%s: model.num_classes must be 0, 7 or 32"},
        {NULL, "train.lr", "--set 'train.lr': expected section.field=value"},
        {"{\"train\": {\"lr\": 0.5, \"lr\": 0.1}}", NULL, "%s: field 'train.lr' appears twice"},
        {"{\"train.lr\": 0.5}", NULL, "%s: key 'train.lr' has a dot: nest it ({\"train\": {\"lr\": ...}})"},
        {NULL, "train.loss=huber", "%s: train.loss = 'huber' is not one of ce,focal"},
        {"{\"\": {\"train\": {\"lr\": 0.5}}}", NULL, "%s: an empty key in 'the top level'"},
        {"{\"trian\": {}}", NULL, "%s: unknown field 'trian' (empd train --help lists the fields)"},
        {NULL, ".train.lr=0.5", "--set '.train.lr=0.5': '.train.lr' has an empty part (section.field=value)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *k = &cases[i];
        tr_config c;
        char err[512] = "", path[64] = "config", want[600];
        char *sets[] = {(char *)k->set};
        int n_sets = k->set ? 1 : 0;
        int rc = k->text ? load_text(k->text, sets, n_sets, &c, path, err, sizeof err)
                         : tr_config_load(NULL, sets, n_sets, &c, err, sizeof err);
        snprintf(want, sizeof want, k->want, path);
        printf("case %zu: %s\n", i, err);
        assert_int_equal(rc, -1);
        assert_one_line(err);
        assert_string_equal(err, want);
    }
}

void test_config_malformed_json(void **state) {
    (void)state;
    tr_config c;
    char err[512] = "", path[64], want[600];
    const char *text = "{\n  \"model\": {\n    \"hidden\": 32,\n    \"layers\": ,\n    \"heads\": 2\n  }\n}\n";
    assert_int_equal(load_text(text, NULL, 0, &c, path, err, sizeof err), -1);
    printf("%s\n", err);
    snprintf(want, sizeof want, "config %s: malformed JSON near line 4", path);
    assert_string_equal(err, want);
    /* Trailing garbage after the object, on line 3. */
    assert_int_equal(load_text("{\"model\": {}}\n\n}", NULL, 0, &c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "config %s: malformed JSON near line 3", path);
    assert_string_equal(err, want);
    /* Valid JSON that is not an object. */
    assert_int_equal(load_text("[1, 2]", NULL, 0, &c, path, err, sizeof err), -1);
    assert_one_line(err);
    assert_non_null(strstr(err, path));
    assert_int_equal(tr_config_load("/nonexistent/c.json", NULL, 0, &c, err, sizeof err), -1);
    assert_string_equal(err, "config /nonexistent/c.json: cannot open: No such file or directory");
}

static void load_ok(const char *text, char *const *sets, int n_sets, tr_config *c) {
    char err[512] = "", path[64];
    int rc = text ? load_text(text, sets, n_sets, c, path, err, sizeof err)
                  : tr_config_load(NULL, sets, n_sets, c, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
}

void test_config_model_hash(void **state) {
    (void)state;
    tr_config a, b, c, d, e, f;
    load_ok("{\"model\": {\"hidden\": 32, \"heads\": 4, \"layers\": 1, \"dropout\": 0.2},"
            " \"train\": {\"lr\": 0.1}}",
            NULL, 0, &a);
    load_ok("{\"train\": {\"lr\": 0.1},"
            " \"model\": {\"dropout\": 0.2, \"layers\": 1, \"heads\": 4, \"hidden\": 32}}",
            NULL, 0, &b);
    assert_string_equal(a.model_hash, b.model_hash);
    assert_string_equal(a.json, b.json);

    char *train_sets[] = {"train.lr=0.5", "train.seed=7", "data.shards=elsewhere"};
    load_ok("{\"model\": {\"layers\": 1, \"hidden\": 32, \"heads\": 4, \"dropout\": 0.2}}", train_sets, 3, &c);
    assert_string_equal(a.model_hash, c.model_hash);
    assert_string_not_equal(a.json, c.json);

    char *model_sets[] = {"model.layers=2"};
    load_ok("{\"model\": {\"hidden\": 32, \"heads\": 4, \"layers\": 1, \"dropout\": 0.2}}", model_sets, 1, &d);
    assert_string_not_equal(a.model_hash, d.model_hash);

    /* The same model from --set alone, with a default spelled out. */
    char *all_sets[] = {"model.dropout=0.2", "model.hidden=32", "model.layers=1", "model.heads=4",
                        "model.vocab_size=30522"};
    load_ok(NULL, all_sets, 5, &e);
    assert_string_equal(a.model_hash, e.model_hash);

    char *drop_sets[] = {"model.dropout=0.3"};
    load_ok("{\"model\": {\"hidden\": 32, \"heads\": 4, \"layers\": 1}}", drop_sets, 1, &f);
    assert_string_not_equal(a.model_hash, f.model_hash);
    tr_config *all[] = {&a, &b, &c, &d, &e, &f};
    for (size_t i = 0; i < 6; i++) tr_config_free(all[i]);
}

/* Every object's keys in strcmp order. */
static int keys_sorted(const cJSON *o) {
    const char *prev = NULL;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (prev && strcmp(prev, c->string) >= 0) return 0;
        if (cJSON_IsObject(c) && !keys_sorted(c)) return 0;
        prev = c->string;
    }
    return 1;
}

void test_config_canonical_json(void **state) {
    (void)state;
    char *sets[] = {"train.lr=3e-4", "data.shards=/d/s", "model.hidden=48", "model.heads=3",
                    "train.drop_last=false"};
    tr_config a, b;
    load_ok("{\"train\": {\"warmup_steps\": 5}, \"model\": {\"layers\": 3}}", sets, 5, &a);
    printf("%s\n", a.json);
    assert_null(strpbrk(a.json, "\n\t"));
    cJSON *j = cJSON_Parse(a.json);
    assert_non_null(j);
    assert_true(keys_sorted(j));
    /* Every field is spelled out, so the file alone reproduces the run. */
    assert_non_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "train"), "beta2"));
    cJSON_Delete(j);

    load_ok(a.json, NULL, 0, &b);
    assert_string_equal(a.json, b.json);
    assert_string_equal(a.model_hash, b.model_hash);
    tr_config x = a, y = b;
    x.json = y.json = NULL;
    assert_memory_equal(&x, &y, sizeof x);
    assert_int_equal(b.model.hidden, 48);
    assert_int_equal(b.train.warmup_steps, 5);
    assert_int_equal(b.train.drop_last, 0);
    assert_true(b.train.lr == 3e-4);
    tr_config_free(&a);
    tr_config_free(&b);
}

/* An integer field far outside its range is reported as out of range (the value is an integer). */
void test_config_huge_integer(void **state) {
    (void)state;
    tr_config c;
    char err[512] = "";
    char *sets[] = {"train.max_steps=1e30"};
    assert_int_equal(tr_config_load(NULL, sets, 1, &c, err, sizeof err), -1);
    printf("%s\n", err);
    assert_string_equal(err, "config: train.max_steps = 1e+30 is outside [1, 1e+12]");
}

/* cfg.json re-loads to the same values for every double, also those that need 17 digits. */
void test_config_json_exact_doubles(void **state) {
    (void)state;
    char *sets[] = {"train.lr=0.8571428571428571", "train.weight_decay=0.09090909090909091"};
    tr_config a, b;
    load_ok(NULL, sets, 2, &a);
    assert_true(a.train.lr == 6.0 / 7.0);
    load_ok(a.json, NULL, 0, &b);
    printf("lr %.17g -> %.17g, weight_decay %.17g -> %.17g\n", a.train.lr, b.train.lr, a.train.weight_decay,
           b.train.weight_decay);
    assert_memory_equal(&a.train.lr, &b.train.lr, sizeof(double));
    assert_memory_equal(&a.train.weight_decay, &b.train.weight_decay, sizeof(double));
    tr_config_free(&a);
    tr_config_free(&b);
}
