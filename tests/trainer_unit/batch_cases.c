/* test_trainer_unit: trainer/batch.c: the loader's batch as the model's tensors, zero copy, token ids
 * exact over the whole uint16 range (torch 1.13 has no uint16: the ids are read as int16 and fixed up). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/batch.h"
#include "trainer/model.h"

void test_batch_tensors(void **state)
{
    (void)state;
    tr_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.train.batch_size = 3;
    cfg.model.utt_tokens = 7;
    ds_batch_shape shape = tr_model_batch_shape(&cfg, NULL);
    assert_int_equal(shape.mods, DS_MOD_TEXT);
    ds_batch b;
    char err[256];
    assert_int_equal(ds_batch_alloc(&b, &shape, tr_batch_allocator((tc_device){TC_CPU, 0}), err, sizeof err), 0);
    size_t n = (size_t)b.B * b.U * b.L;
    for (size_t i = 0; i < n; i++)   /* every boundary: 0, 32767, 32768, 65535, and steps between */
        b.utt_tokens[i] = (uint16_t)(i * 331u + (i % 4 == 0 ? 32767u : 0u));
    b.utt_tokens[1] = 32768;
    b.utt_tokens[2] = 65535;
    b.utt_tokens[3] = 32767;
    b.utt_tokens[4] = 0;
    for (int i = 0; i < b.B * DS_META_N; i++)
        b.meta[i] = i;
    b.label7[0] = -1;
    b.label7[1] = 6;
    tc_scope *s = tc_scope_begin();
    tm_inputs in = tr_batch_inputs(&b);
    assert_int_equal(tc_dtype_of(in.utt_tokens), TC_I64);
    assert_int_equal(tc_numel(in.utt_tokens), (int64_t)n);
    int64_t *ids = malloc(n * sizeof *ids);
    assert_int_equal(tc_copy_to_host(in.utt_tokens, ids, n * sizeof *ids), TC_OK);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != (int64_t)b.utt_tokens[i])
            fail_msg("token %zu: id %lld, stored %u", i, (long long)ids[i], b.utt_tokens[i]);
    /* Masks and metadata are the batch's own memory, not copies. */
    assert_ptr_equal(tc_data_ptr(in.utt_mask), b.utt_mask);
    assert_ptr_equal(tc_data_ptr(in.utt_valid), b.utt_valid);
    assert_int_equal(tc_size(in.meta, 1), DS_META_FIRST_LEAKING);
    assert_int_equal(tc_scope_end(s), TC_OK);
    int64_t *y = tr_batch_labels(&b, 7);
    assert_int_equal(y[0], -100);
    assert_int_equal(y[1], 6);
    free(ids);
    ds_batch_free(&b);
    /* Pinned memory: page-locked on a CUDA machine, a clear refusal elsewhere. */
    void *p = tc_host_alloc(1 << 20, 1);
    if (tc_cuda_device_count() > 0) {
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
    } else {
        assert_null(p);
        assert_non_null(strstr(tc_last_error(), "pinned memory needs CUDA"));
    }
    tc_host_free(p);
    p = tc_host_alloc(100, 0);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    memset(p, 1, 100);
    tc_host_free(p);
}
