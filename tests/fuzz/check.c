#include "tests/fuzz/check.h"

#include <cjson/cJSON.h>

int check_whole_json(const void *text, size_t n)
{
    const char *s = text, *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!v)
        return 0;
    cJSON_Delete(v);
    size_t at = (size_t)(end - s);
    while (at < n && s[at] >= 1 && s[at] <= 32)
        at++;
    return at == n;
}
