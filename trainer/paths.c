#include "trainer/paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VOCAB_REL "third_party/bert-base-uncased/vocab.txt"

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

int tr_default_vocab(char *out, size_t outlen)
{
    const char *env = getenv("EMPD_VOCAB");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return exists(out);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, outlen, "%s/../%s", exe, VOCAB_REL);
            if (exists(out))
                return 1;
        }
    }
    snprintf(out, outlen, "%s", VOCAB_REL);
    return exists(out);
}
