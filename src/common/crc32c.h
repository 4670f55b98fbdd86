/* crc32c.h - CRC-32C (Castagnoli), the checksum of Kafka record batches. */
#ifndef RUNNEL_CRC32C_H
#define RUNNEL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start. Uses SSE4.2 when the CPU has it. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);
static inline uint32_t crc32c(const void *data, size_t len) { return crc32c_update(0, data, len); }

#endif
