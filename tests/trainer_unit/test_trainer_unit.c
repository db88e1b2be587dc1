/* test_trainer_unit: the trainer's parts below the training loop, one by one: config
 * (config_cases.c), metrics against scikit-learn (metrics_cases.c), the learning-rate schedule
 * (here), checkpoints and atomic writes (checkpoint_cases.c). */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/optim.h"

static tr_config schedule(double lr, int64_t warmup, int64_t decay) {
    tr_config c;
    memset(&c, 0, sizeof c);
    c.train.lr = lr;
    c.train.warmup_steps = warmup;
    c.train.decay_steps = decay;
    return c;
}

static void expect_lr(const tr_config *c, int64_t step, double want) {
    double got = tr_lr_at(c, step);
    if (!(fabs(got - want) <= 1e-15 * fabs(want))) {
        fprintf(stderr, "warmup %lld decay %lld step %lld: lr %.17g, want %.17g\n",
                (long long)c->train.warmup_steps, (long long)c->train.decay_steps, (long long)step, got, want);
        fail();
    }
}

static void test_lr_schedule(void **state) {
    (void)state;
    /* Warmup 10, then constant. */
    tr_config c = schedule(2e-3, 10, 0);
    for (int64_t s = 1; s <= 10; s++) expect_lr(&c, s, 2e-3 * (double)s / 10.0);
    expect_lr(&c, 1, 2e-4);
    expect_lr(&c, 10, 2e-3);
    for (int64_t s = 11; s <= 1000; s += 7) expect_lr(&c, s, 2e-3);
    expect_lr(&c, 1000000000000, 2e-3);

    /* Warmup 10, linear decay to 0 at step 100, 0 after. */
    c = schedule(1e-3, 10, 100);
    expect_lr(&c, 5, 5e-4);
    expect_lr(&c, 10, 1e-3);
    for (int64_t s = 11; s <= 100; s++) expect_lr(&c, s, 1e-3 * (double)(100 - s) / 90.0);
    expect_lr(&c, 55, 5e-4);
    expect_lr(&c, 99, 1e-3 / 90.0);
    expect_lr(&c, 100, 0);
    expect_lr(&c, 101, 0);
    expect_lr(&c, 5000, 0);

    /* No warmup: full rate from step 1, decaying when asked. */
    c = schedule(0.5, 0, 0);
    expect_lr(&c, 1, 0.5);
    expect_lr(&c, 77, 0.5);
    c = schedule(0.5, 0, 4);
    expect_lr(&c, 1, 0.375);
    expect_lr(&c, 2, 0.25);
    expect_lr(&c, 3, 0.125);
    expect_lr(&c, 4, 0);
    expect_lr(&c, 5, 0);

    /* Warmup 1: the first step already runs at the peak. */
    c = schedule(3e-5, 1, 0);
    expect_lr(&c, 1, 3e-5);
    expect_lr(&c, 2, 3e-5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_file_and_sets),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_malformed_json),
        cmocka_unit_test(test_config_model_hash),
        cmocka_unit_test(test_config_canonical_json),
        cmocka_unit_test(test_config_huge_integer),
        cmocka_unit_test(test_config_json_exact_doubles),
        cmocka_unit_test_setup_teardown(test_metrics_vs_sklearn, metrics_setup, metrics_teardown),
        cmocka_unit_test(test_metrics_empty_and_unnamed),
        cmocka_unit_test(test_eval_vs_torch),
        cmocka_unit_test(test_eval_gather_faults),
        cmocka_unit_test(test_eval_gather_two_ranks),
        cmocka_unit_test(test_predictions_round_trip),
        cmocka_unit_test(test_predictions_bad_files),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_ckpt_round_trip),
        cmocka_unit_test(test_ckpt_keep_last_and_torn),
        cmocka_unit_test(test_ckpt_keeps_best),
        cmocka_unit_test(test_ckpt_bad_files),
        cmocka_unit_test(test_ckpt_missing_extra_named),
        cmocka_unit_test(test_ckpt_best_val_acc_exact),
        cmocka_unit_test(test_write_file_atomic),
        cmocka_unit_test(test_batch_tensors),
        cmocka_unit_test(test_loss_vs_torch),
    };
    return cmocka_run_group_tests_name("trainer_unit", tests, NULL, NULL);
}
