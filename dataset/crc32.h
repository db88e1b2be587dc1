/* crc32.h: CRC-32 as zlib computes it (IEEE 802.3 polynomial 0xEDB88320, reflected, initial and final
 * value 0xFFFFFFFF), so a record's checksum can be checked with Python's zlib.crc32 or any zlib binding.
 *
 * Thread-safe: the tables are built once, under pthread_once, on the first call.
 */
#ifndef EMPD_DATASET_CRC32_H
#define EMPD_DATASET_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC over len more bytes: pass 0 as crc to start. Chaining is exact:
 * ds_crc32(ds_crc32(0, a, n), b, m) equals the CRC of a followed by b, as with zlib's crc32(). */
uint32_t ds_crc32(uint32_t crc, const void *data, size_t len);

#endif
