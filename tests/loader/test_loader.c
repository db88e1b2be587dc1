/* test_loader: batch layout and media collation of dataset/loader.h, and the prefetcher of
 * dataset/prefetch.h (order, positions, epochs, resume, errors, shutdown, memory). */
#include "tests/loader/fixtures.h"

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_alloc),
        cmocka_unit_test(test_loader_fill),
        cmocka_unit_test(test_loader_threads),
        cmocka_unit_test(test_media_collation),
        cmocka_unit_test(test_media_raw_and_text_only),
        cmocka_unit_test(test_media_mismatch),
        cmocka_unit_test(test_prefetch_order),
        cmocka_unit_test(test_prefetch_eval_end),
        cmocka_unit_test(test_prefetch_resume),
        cmocka_unit_test(test_prefetch_early_close),
        cmocka_unit_test(test_prefetch_corrupt),
        cmocka_unit_test(test_prefetch_memory_bound),
        cmocka_unit_test(test_prefetch_bad_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
