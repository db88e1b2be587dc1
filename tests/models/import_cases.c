/* Filled in by the models issue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tests/models/models_test.h"

int tm_import_tests(void) { return 0; }
