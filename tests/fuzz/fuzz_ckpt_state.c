/* Fuzzes tr_ckpt_state_parse (trainer/ckpt_state.c), the reader of a checkpoint's state.json. A failed parse
 * leaves a state that needs no free and one line naming the file; a state that parses must hold one generator
 * per rank, come from one whole JSON document, and reparse from tr_ckpt_state_to_json's text to the same values
 * (a resume after a resume). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/check.h"
#include "trainer/checkpoint.h"

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b); }

static void check_equal(const tr_ckpt_state *a, const tr_ckpt_state *b)
{
    CHECK(a->step == b->step && a->sampler_epoch == b->sampler_epoch && a->sampler_consumed == b->sampler_consumed);
    CHECK(a->world_size == b->world_size && a->threads == b->threads && a->seed == b->seed);
    CHECK(a->train_samples == b->train_samples);
    CHECK(!strcmp(a->model_hash, b->model_hash) && !strcmp(a->config_hash, b->config_hash) &&
          !strcmp(a->data_hash, b->data_hash));
    CHECK(!strcmp(a->best_metric, b->best_metric) && same_double(a->best_value, b->best_value) &&
          a->best_step == b->best_step);
    CHECK(same_double(a->stop_best, b->stop_best) && a->stop_bad == b->stop_bad && a->evals == b->evals);
    for (int i = 0; i < 2; i++)
        CHECK(a->files[i].crc == b->files[i].crc && a->files[i].bytes == b->files[i].bytes);
    CHECK(a->n_rng == b->n_rng);
    for (int i = 0; i < a->n_rng; i++)
        CHECK(!strcmp(a->rng_hex[i], b->rng_hex[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    /* An exact-size copy: a read past the text is then a heap overflow ASan reports. */
    char *text = malloc(n ? n : 1);
    CHECK(text != NULL);
    memcpy(text, in, n);
    tr_ckpt_state st;
    char err[512];
    err[0] = 0;
    int rc = tr_ckpt_state_parse(text, n, "state.json", &st, err, sizeof err);
    free(text);
    if (rc != 0) {
        CHECK(rc == -1 && err[0] != 0 && st.rng_hex == NULL && st.n_rng == 0);
        return 0;
    }
    CHECK(check_whole_json(in, n));
    CHECK(st.world_size >= 1 && st.n_rng == st.world_size && st.rng_hex != NULL);
    for (int i = 0; i < st.n_rng; i++)
        CHECK(st.rng_hex[i] != NULL);

    char *json = tr_ckpt_state_to_json(&st, NULL);
    CHECK(json != NULL);
    tr_ckpt_state back;
    rc = tr_ckpt_state_parse(json, strlen(json), "state.json (rewritten)", &back, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "a written state.json does not parse: %s\n%s\n", err, json);
        abort();
    }
    check_equal(&st, &back);
    free(json);
    tr_ckpt_state_free(&st);
    tr_ckpt_state_free(&back);
    return 0;
}
