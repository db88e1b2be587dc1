/* errors: the one way models/ reports a bad file, field or tensor to its caller.
 *
 * Functions that read or write files (safetensors, HF import, config.json) return 0 or -1 and leave
 * one line in a caller-given buffer, naming the file and the record at fault; md_fail is that
 * line's formatter, so every such function can end in `return md_fail(err, errlen, ...)`. The trainer's
 * readers (config, checkpoints, run folders) report the same way with it. */
#ifndef EMPD_MODELS_ERRORS_H
#define EMPD_MODELS_ERRORS_H

#include <stddef.h>

/* Formats fmt into err (at most errlen bytes, always terminated; nothing when err is NULL or errlen
 * 0) and returns -1. */
int md_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
