/* test_loader: batch layout and media collation of dataset/loader.h, and the prefetcher of
 * dataset/prefetch.h (order, positions, epochs, resume, errors, shutdown, memory). */
#include "tests/loader/fixtures.h"

int main(void)
{
    /* Two statements: the operands of + run in no fixed order, and the groups should report in file order. */
    int failed = loader_run_cases();
    return failed + prefetch_run_cases();
}
