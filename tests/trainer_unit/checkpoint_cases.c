/* trainer/checkpoint.h: save, find, load bit for bit, pruning, torn saves, and every bad file
 * giving one line that names the file and the tensor or field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "dataset/crc32.h"
#include "models/safetensors.h"
#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/checkpoint.h"

#define HASH "0123456789abcdef"

static void make_params(mp_params *ps, uint64_t seed) {
    assert_int_equal(mp_params_init(ps, seed), TC_OK);
    mp_normal(ps, "enc.weight", (const int64_t[]){3, 4}, 2, 0.5);
    mp_constant(ps, "enc.bias", (const int64_t[]){3}, 1, 0.25);
    mp_uniform(ps, "head.weight", (const int64_t[]){2, 3}, 2, 1.0);
    mp_normal(ps, "head.bias", (const int64_t[]){2}, 1, 1.0);
    assert_int_equal(ps->status, TC_OK);
}

/* A few AdamW steps on sum(p^2 tanh p) so the moments are neither zero nor equal to the grads. */
static void train_steps(mp_params *ps, tr_adamw *o, const tr_config *cfg, int steps) {
    for (int s = 0; s < steps; s++) {
        tc_scope *sc = tc_scope_begin();
        tc_tensor *loss = NULL;
        for (int i = 0; i < ps->n; i++) {
            tc_tensor *p = ps->v[i].t;
            assert_int_equal(tc_zero_grad(p), TC_OK);
            tc_tensor *t = tc_sum_all(tc_mul(tc_mul(p, p), tc_tanh(p)));
            loss = loss ? tc_add(loss, t) : t;
        }
        assert_int_equal(tc_backward(loss), TC_OK);
        assert_int_equal(tc_scope_end(sc), TC_OK);
        assert_int_equal(tr_adamw_step(o, ps, cfg, 1e-2), TC_OK);
    }
}

static void *host_bytes(const tc_tensor *t, size_t *n) {
    *n = (size_t)tc_numel(t) * tc_dtype_size(tc_dtype_of(t));
    void *buf = malloc(*n ? *n : 1);
    assert_int_equal(tc_copy_to_host(t, buf, *n), TC_OK);
    return buf;
}

static int same_bits(const tc_tensor *a, const tc_tensor *b) {
    size_t na, nb;
    void *x = host_bytes(a, &na), *y = host_bytes(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

typedef struct {
    mp_params ps;
    tr_adamw o;
    tr_config cfg;
} trained;

static void trained_init(trained *t, uint64_t seed, int steps) {
    char err[512];
    make_params(&t->ps, seed);
    assert_int_equal(tr_adamw_init(&t->o, &t->ps), TC_OK);
    assert_int_equal(tr_config_load(NULL, NULL, 0, &t->cfg, err, sizeof err), 0);
    train_steps(&t->ps, &t->o, &t->cfg, steps);
}

static void trained_free(trained *t) {
    tr_adamw_free(&t->o);
    mp_params_free(&t->ps);
    tr_config_free(&t->cfg);
}

static tr_ckpt_state sample_state(int64_t step, double best_val_acc) {
    static char *rng[] = {"00ff10a5", "deadbeefcafe"};
    tr_ckpt_state st = {.step = step,
                        .sampler_epoch = 3,
                        .sampler_consumed = 123456789012ull,
                        .world_size = 2,
                        .model_hash = HASH,
                        .seed = 42,
                        .data_hash = "fedcba9876543210",
                        .n_rng = 2,
                        .rng_hex = rng,
                        .config_hash = "0123456789abcdef",
                        .best_metric = "accuracy",
                        .best_value = best_val_acc,
                        .best_step = 1,
                        .stop_best = 0.1 + 0.2,
                        .stop_bad = 2,
                        .evals = 5};
    return st;
}

/* A save as the trainer makes it: the folder, then (every rank having agreed) its marker, keeping
 * the newest keep_last and the checkpoint of best_step. */
static void save_best(const char *run, trained *t, int64_t step, int keep_last, double best_val_acc, int64_t best_step) {
    char err[512] = "";
    tr_ckpt_state st = sample_state(step, best_val_acc);
    int rc = tr_ckpt_write(run, &st, &t->ps, &t->o, t->cfg.json, err, sizeof err);
    if (rc == 0) rc = tr_ckpt_mark_complete(run, step, keep_last, best_step, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
}

static void save_acc(const char *run, trained *t, int64_t step, int keep_last, double best_val_acc) {
    save_best(run, t, step, keep_last, best_val_acc, 0);
}

static void save(const char *run, trained *t, int64_t step, int keep_last) {
    save_acc(run, t, step, keep_last, 0.625);
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

void test_ckpt_round_trip(void **state) {
    (void)state;
    char run[64], found[4200], p[4300], err[512] = "";
    assert_int_equal(tf_make_temp_dir(run, "test_trainer_unit"), 0);
    assert_int_equal(tr_ckpt_find_latest(run, found, sizeof found, err, sizeof err), 0);

    trained a, b;
    trained_init(&a, 1, 2);
    a.o.step = 2;
    save(run, &a, 2, 3);
    assert_int_equal(tr_ckpt_find_latest(run, found, sizeof found, err, sizeof err), 1);
    snprintf(p, sizeof p, "%s/checkpoints/step-00000002", run);
    assert_string_equal(found, p);
    static const char *files[] = {"model.safetensors", "optim.safetensors", "state.json", "COMPLETE"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", found, files[i]);
        assert_true(exists(p));
    }
    assert_int_equal(tf_count_entries(found, ""), 4);
    snprintf(p, sizeof p, "%s/checkpoints", run);
    assert_int_equal(tf_count_entries(p, ".tmp"), 0);
    assert_int_equal(tf_count_entries(p, ""), 1);

    trained_init(&b, 99, 0);
    assert_false(same_bits(a.ps.v[0].t, b.ps.v[0].t));
    tr_ckpt_state got;
    int rc = tr_ckpt_load(found, HASH, &got, &b.ps, &b.o, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    for (int i = 0; i < a.ps.n; i++) {
        assert_true(same_bits(a.ps.v[i].t, b.ps.v[i].t));
        assert_true(same_bits(a.o.exp_avg[i], b.o.exp_avg[i]));
        assert_true(same_bits(a.o.exp_avg_sq[i], b.o.exp_avg_sq[i]));
    }
    tr_ckpt_state want = sample_state(2, 0.625);
    assert_int_equal(b.o.step, 2);
    assert_int_equal(got.step, 2);
    assert_int_equal(got.sampler_epoch, want.sampler_epoch);
    assert_int_equal(got.sampler_consumed, want.sampler_consumed);
    assert_int_equal(got.world_size, 2);
    assert_string_equal(got.model_hash, HASH);
    assert_int_equal(got.n_rng, 2);
    assert_string_equal(got.rng_hex[0], want.rng_hex[0]);
    assert_string_equal(got.rng_hex[1], want.rng_hex[1]);
    assert_memory_equal(&got.best_value, &want.best_value, sizeof(double));
    assert_int_equal(got.best_step, 1);
    assert_string_equal(got.best_metric, "accuracy");
    assert_string_equal(got.config_hash, want.config_hash);
    assert_memory_equal(&got.stop_best, &want.stop_best, sizeof(double));
    assert_int_equal(got.stop_bad, 2);
    assert_int_equal(got.evals, 5);
    tr_ckpt_state_free(&got);

    /* Another model's checkpoint: refused, naming the folder and both hashes. */
    assert_int_equal(tr_ckpt_load(found, "ffffffffffffffff", &got, &b.ps, &b.o, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, found));
    assert_non_null(strstr(err, HASH));
    assert_non_null(strstr(err, "ffffffffffffffff"));
    assert_null(strchr(err, '\n'));
    trained_free(&a);
    trained_free(&b);
    tf_remove_tree(run);
}

void test_ckpt_keep_last_and_torn(void **state) {
    (void)state;
    char run[64], ck[128], found[4200], p[4300], err[512];
    assert_int_equal(tf_make_temp_dir(run, "test_trainer_unit"), 0);
    snprintf(ck, sizeof ck, "%s/checkpoints", run);
    trained a;
    trained_init(&a, 5, 1);
    for (int s = 1; s <= 5; s++) save(run, &a, s, 2);
    assert_int_equal(tf_count_entries(ck, ""), 2);
    assert_int_equal(tf_count_entries(ck, "step-00000004"), 1);
    assert_int_equal(tf_count_entries(ck, "step-00000005"), 1);

    /* A save killed before its marker, and one killed while still under its temporary name. */
    snprintf(p, sizeof p, "%s/step-00000009", ck);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/step-00000009/state.json", ck);
    tf_write_text(p, "{\"step\": 9}");
    snprintf(p, sizeof p, "%s/step-00000010.tmp", ck);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/step-00000010.tmp/model.safetensors", ck);
    tf_write_text(p, "partial");
    snprintf(p, sizeof p, "%s/step-00000010.tmp/COMPLETE", ck);
    tf_write_text(p, "step 10\n");
    assert_int_equal(tr_ckpt_find_latest(run, found, sizeof found, err, sizeof err), 1);
    snprintf(p, sizeof p, "%s/step-00000005", ck);
    assert_string_equal(found, p);

    save(run, &a, 6, 2);
    assert_int_equal(tf_count_entries(ck, ""), 2);
    assert_int_equal(tf_count_entries(ck, "step-00000005"), 1);
    assert_int_equal(tf_count_entries(ck, "step-00000006"), 1);
    assert_int_equal(tr_ckpt_find_latest(run, found, sizeof found, err, sizeof err), 1);
    snprintf(p, sizeof p, "%s/step-00000006", ck);
    assert_string_equal(found, p);
    /* A write without its marker (a crash before every rank agreed) does not count. */
    tr_ckpt_state st = sample_state(7, 0.5);
    assert_int_equal(tr_ckpt_write(run, &st, &a.ps, &a.o, a.cfg.json, err, sizeof err), 0);
    assert_int_equal(tr_ckpt_find_latest(run, found, sizeof found, err, sizeof err), 1);
    assert_string_equal(found, p);
    assert_int_equal(tr_ckpt_find_step(run, 7, found, sizeof found), 0);
    assert_int_equal(tr_ckpt_find_step(run, 6, found, sizeof found), 1);
    assert_string_equal(found, p);
    trained_free(&a);
    tf_remove_tree(run);
}

/* The best checkpoint outlives keep_last; once another is the best, it goes like any other. */
void test_ckpt_keeps_best(void **state) {
    (void)state;
    char run[64], ck[128];
    assert_int_equal(tf_make_temp_dir(run, "test_trainer_unit"), 0);
    snprintf(ck, sizeof ck, "%s/checkpoints", run);
    trained a;
    trained_init(&a, 5, 1);
    for (int s = 1; s <= 6; s++) save_best(run, &a, s, 2, 0.5, 2);
    assert_int_equal(tf_count_entries(ck, ""), 3);
    assert_int_equal(tf_count_entries(ck, "step-00000002"), 1);
    assert_int_equal(tf_count_entries(ck, "step-00000005"), 1);
    assert_int_equal(tf_count_entries(ck, "step-00000006"), 1);
    save_best(run, &a, 7, 2, 0.75, 7);
    assert_int_equal(tf_count_entries(ck, ""), 2);
    assert_int_equal(tf_count_entries(ck, "step-00000002"), 0);
    trained_free(&a);
    tf_remove_tree(run);
}

typedef enum { EDIT_DROP, EDIT_EXTRA, EDIT_RENAME, EDIT_RESHAPE, EDIT_DTYPE } edit_kind;

/* Rewrites the safetensors file at path with tensor name dropped, renamed, reshaped, retyped,
 * or with an extra tensor of that name. */
static void edit_st(const char *path, edit_kind kind, const char *name) {
    static const float extra[2] = {1, 2};
    st_file *f;
    char err[512];
    assert_int_equal(st_open(path, &f, err, sizeof err), 0);
    size_t n = st_count(f), k = 0;
    st_tensor *v = calloc(n + 1, sizeof *v);
    int hit = kind == EDIT_EXTRA;
    for (size_t i = 0; i < n; i++) {
        st_tensor t = *st_at(f, i);
        if (!strcmp(t.name, name)) {
            hit = 1;
            if (kind == EDIT_DROP) continue;
            if (kind == EDIT_RENAME) t.name = "renamed.tensor";
            if (kind == EDIT_DTYPE) t.dtype = ST_I32;
            if (kind == EDIT_RESHAPE && t.ndim == 2) {
                int64_t d0 = t.shape[0];
                t.shape[0] = t.shape[1];
                t.shape[1] = d0;
            } else if (kind == EDIT_RESHAPE) {
                t.shape[1] = t.shape[0];
                t.shape[0] = 1;
                t.ndim = 2;
            }
        }
        v[k++] = t;
    }
    if (kind == EDIT_EXTRA) v[k++] = (st_tensor){name, ST_F32, 1, {2}, extra, sizeof extra};
    assert_true(hit);
    assert_int_equal(st_write(path, v, k, NULL, 0, err, sizeof err), 0);
    free(v);
    st_close(f);
}

/* Saves a fresh checkpoint under a new run folder and returns its folder in dir. */
static void fresh_checkpoint(trained *a, char *run, char *dir, size_t dirlen) {
    char err[512];
    assert_int_equal(tf_make_temp_dir(run, "test_trainer_unit"), 0);
    save(run, a, 1, 3);
    assert_int_equal(tr_ckpt_find_latest(run, dir, dirlen, err, sizeof err), 1);
}

/* Whether loading fails with one line naming file (inside dir) and what. */
static int load_error_names(trained *b, const char *dir, const char *file, const char *what) {
    char err[512] = "", path[4300];
    tr_ckpt_state st;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = tr_ckpt_load(dir, HASH, &st, &b->ps, &b->o, err, sizeof err);
    printf("%s / %s: %s\n", file, what, err);
    return rc == -1 && !strchr(err, '\n') && strstr(err, path) && strstr(err, what);
}

/* Records file's current size and CRC32 in dir/state.json, as a save of that content would: the
 * edit then reads as a checkpoint of another model, not as damage, and the tensor checks run. */
static void reseal(const char *dir, const char *file) {
    char p[4300], num[32];
    size_t len;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    char *bytes = tf_read_text(p, &len);
    assert_non_null(bytes);
    uint32_t crc = ds_crc32(0, bytes, len);
    double size = (double)len;
    free(bytes);
    snprintf(p, sizeof p, "%s/state.json", dir);
    char *text = tf_read_text(p, &len);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *f = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "files"), file);
    assert_non_null(f);
    cJSON_ReplaceItemInObject(f, "bytes", cJSON_CreateNumber(size));
    snprintf(num, sizeof num, "%08x", (unsigned)crc);
    cJSON_ReplaceItemInObject(f, "crc32", cJSON_CreateString(num));
    char *out = cJSON_Print(j);
    tf_write_text(p, out);
    free(out);
    cJSON_Delete(j);
}

/* dir/state.json with one field replaced by value (JSON text), or removed when value is NULL. */
static void edit_state(const char *dir, const char *field, const char *value) {
    char p[4300];
    size_t len;
    snprintf(p, sizeof p, "%s/state.json", dir);
    char *text = tf_read_text(p, &len);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON_DeleteItemFromObject(j, field);
    if (value)
        cJSON_AddItemToObject(j, field, cJSON_Parse(value));
    char *out = cJSON_Print(j);
    tf_write_text(p, out);
    free(out);
    cJSON_Delete(j);
}

void test_ckpt_bad_files(void **state) {
    (void)state;
    static const struct {
        const char *file;
        edit_kind kind;
        const char *tensor, *what;
    } edits[] = {
        {"model.safetensors", EDIT_RENAME, "head.weight", "head.weight"},
        {"model.safetensors", EDIT_RESHAPE, "enc.weight", "enc.weight"},
        {"model.safetensors", EDIT_DTYPE, "enc.bias", "enc.bias"},
        {"optim.safetensors", EDIT_RESHAPE, "exp_avg_sq.head.bias", "exp_avg_sq.head.bias"},
        {"optim.safetensors", EDIT_RENAME, "exp_avg.enc.weight", "exp_avg.enc.weight"},
    };
    static const struct {
        const char *field, *value, *what;
    } states[] = {
        {"step", "\"two\"", "'step'"},
        {"step", "-5", "'step'"},
        {"sampler", NULL, "'sampler'"},
        {"model_hash", "7", "'model_hash'"},
        {"rng", "[]", "'rng"},
        {"files", NULL, "'files'"},
        {"data", "{\"train_samples\": 3}", "'data'"},
        {"version", "1", "'version"},
        {"seed", NULL, "'seed'"},
        {"best", "{\"metric\": \"accuracy\", \"value\": 0.5}", "'best'"},
        {"early_stopping", NULL, "'early_stopping'"},
        {"config_hash", "\"xyz\"", "'config_hash'"},
        {"threads", "1e12", "'threads'"},
        {"step", "2", "step 2 disagrees with its folder step-00000001"},
    };
    trained a, b;
    trained_init(&a, 3, 1);
    trained_init(&b, 4, 0);
    char run[64], dir[4200], p[4300];
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        fresh_checkpoint(&a, run, dir, sizeof dir);
        snprintf(p, sizeof p, "%s/%s", dir, edits[i].file);
        edit_st(p, edits[i].kind, edits[i].tensor);
        reseal(dir, edits[i].file);
        int named = load_error_names(&b, dir, edits[i].file, edits[i].what);
        tf_remove_tree(run);
        assert_true(named);
    }
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        fresh_checkpoint(&a, run, dir, sizeof dir);
        edit_state(dir, states[i].field, states[i].value);
        int named = load_error_names(&b, dir, "state.json", states[i].what);
        tf_remove_tree(run);
        assert_true(named);
    }
    fresh_checkpoint(&a, run, dir, sizeof dir);
    snprintf(p, sizeof p, "%s/state.json", dir);
    tf_write_text(p, "{\"step\": 2, \"sampler\": {\"epoch\": 0, \"cons");
    assert_true(load_error_names(&b, dir, "state.json", "malformed JSON"));
    tf_remove_tree(run);
    /* One flipped bit in a tensor's data: only the CRC can tell. */
    fresh_checkpoint(&a, run, dir, sizeof dir);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len;
    char *bytes = tf_read_text(p, &len);
    bytes[len - 3] ^= 0x10;
    FILE *f = fopen(p, "wb");
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
    free(bytes);
    assert_true(load_error_names(&b, dir, "model.safetensors", "damaged"));
    tf_remove_tree(run);
    fresh_checkpoint(&a, run, dir, sizeof dir);
    snprintf(p, sizeof p, "%s/optim.safetensors", dir);
    assert_int_equal(unlink(p), 0);
    int named = load_error_names(&b, dir, "optim.safetensors", "cannot open");
    tf_remove_tree(run);
    assert_true(named);
    trained_free(&a);
    trained_free(&b);
}

/* checkpoint.h promises that "a missing, extra or misshapen tensor is an error naming it": a file
 * with one tensor fewer or one more than the model must name that tensor. */
void test_ckpt_missing_extra_named(void **state) {
    (void)state;
    trained a, b;
    trained_init(&a, 3, 1);
    trained_init(&b, 4, 0);
    char run[64], dir[4200], p[4300];
    static const struct {
        const char *file;
        edit_kind kind;
        const char *tensor;
    } edits[] = {
        {"model.safetensors", EDIT_DROP, "head.weight"},
        {"model.safetensors", EDIT_EXTRA, "extra.weight"},
        {"optim.safetensors", EDIT_DROP, "exp_avg_sq.enc.bias"},
    };
    int unnamed = 0;
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        fresh_checkpoint(&a, run, dir, sizeof dir);
        snprintf(p, sizeof p, "%s/%s", dir, edits[i].file);
        edit_st(p, edits[i].kind, edits[i].tensor);
        reseal(dir, edits[i].file);
        unnamed += !load_error_names(&b, dir, edits[i].file, edits[i].tensor);
        tf_remove_tree(run);
    }
    trained_free(&a);
    trained_free(&b);
    assert_int_equal(unnamed, 0);
}

/* A resumed run compares later validation accuracies with the restored best one, so it must come
 * back bit for bit; 6/7 is a validation accuracy a 7-sample split gives. */
void test_ckpt_best_val_acc_exact(void **state) {
    (void)state;
    char run[64], found[4200], err[512] = "";
    trained a;
    trained_init(&a, 6, 0);
    assert_int_equal(tf_make_temp_dir(run, "test_trainer_unit"), 0);
    double acc = 6.0 / 7.0;
    save_acc(run, &a, 1, 3, acc);
    assert_int_equal(tr_ckpt_find_latest(run, found, sizeof found, err, sizeof err), 1);
    tr_ckpt_state got;
    assert_int_equal(tr_ckpt_load(found, HASH, &got, &a.ps, &a.o, err, sizeof err), 0);
    printf("best value saved %.17g, loaded %.17g\n", acc, got.best_value);
    int same = memcmp(&got.best_value, &acc, sizeof acc) == 0;
    tr_ckpt_state_free(&got);
    trained_free(&a);
    tf_remove_tree(run);
    assert_true(same);
}

void test_write_file_atomic(void **state) {
    (void)state;
    char dir[64], p[128], err[512] = "";
    assert_int_equal(tf_make_temp_dir(dir, "test_trainer_unit"), 0);
    snprintf(p, sizeof p, "%s/a.txt", dir);
    assert_int_equal(tr_write_file_atomic(p, "hello", 5, err, sizeof err), 0);
    size_t len;
    char *got = tf_read_text(p, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(got, "hello", 5);
    free(got);
    assert_int_equal(tf_count_entries(dir, ""), 1);

    assert_int_equal(tr_write_file_atomic(p, "longer text", 11, err, sizeof err), 0);
    got = tf_read_text(p, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(got, "longer text", 11);
    free(got);
    assert_int_equal(tr_write_file_atomic(p, "", 0, err, sizeof err), 0);
    got = tf_read_text(p, &len);
    assert_int_equal(len, 0);
    free(got);
    assert_int_equal(tf_count_entries(dir, ""), 1);
    assert_int_equal(tf_count_entries(dir, ".tmp"), 0);

    snprintf(p, sizeof p, "%s/missing/a.txt", dir);
    assert_int_equal(tr_write_file_atomic(p, "x", 1, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, p));
    assert_null(strchr(err, '\n'));
    assert_int_equal(tf_count_entries(dir, ""), 1);
    tf_remove_tree(dir);
}
