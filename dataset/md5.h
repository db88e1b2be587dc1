/* MD5 (RFC 1321): checksums of the tokenizer vocabulary and of source files recorded as provenance
 * in the shard manifest. Not for security. */
#ifndef EMPD_DATASET_MD5_H
#define EMPD_DATASET_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[4];
    uint64_t nbytes;     /* total bytes fed so far */
    uint8_t block[64];   /* pending partial block */
} md5_ctx;

/* Starts a digest. */
void md5_init(md5_ctx *c);

/* Feeds len bytes; any split of the input into calls gives the same digest. */
void md5_update(md5_ctx *c, const void *data, size_t len);

/* Writes the 16-byte digest; the context must be initialised again before reuse. */
void md5_final(md5_ctx *c, uint8_t digest[16]);

/* Writes the digest as 32 lower-case hex digits plus NUL. */
void md5_hex(const uint8_t digest[16], char hex[33]);

/* MD5 of a whole file as lower-case hex. Returns 0, or -1 with a one-line message naming the path
 * in err (open or read failure); hex is then left empty. */
int md5_file_hex(const char *path, char hex[33], char *err, size_t errlen);

#endif
