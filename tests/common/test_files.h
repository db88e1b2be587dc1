/* File helpers shared by the cmocka test binaries: scratch folders and whole-file reads/writes. */
#ifndef EMPD_TESTS_COMMON_TEST_FILES_H
#define EMPD_TESTS_COMMON_TEST_FILES_H

#include <stddef.h>

/* A new empty folder /tmp/<name>.XXXXXX into buf (at least 64 bytes); 0 on success. */
int tf_make_temp_dir(char *buf, const char *name);
/* Removes path and everything below it. */
void tf_remove_tree(const char *path);
/* Writes text to path; a failure fails the running test. */
void tf_write_text(const char *path, const char *text);
/* The whole file, NUL-terminated (its length in *len when len is set); NULL when unreadable. */
char *tf_read_text(const char *path, size_t *len);
/* Entries of dir whose name contains part; -1 when dir cannot be opened. */
int tf_count_entries(const char *dir, const char *part);

#endif
