/*
 * crc32c.c - CRC-32C with a slicing-by-8 table in software and the SSE4.2
 * crc32 instruction when the CPU has it (checked once at first use).
 */
#include "crc32c.h"

#include <stdbool.h>
#include <string.h>

#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t crc_table[8][256];
static int crc_mode; /* 0 unknown, 1 software, 2 hardware */

/* The hardware loop runs three independent CRCs over three adjacent lanes of a long buffer (the
 * crc32 instruction has a latency of ~3 cycles but a throughput of one per cycle), then joins
 * them: the CRC register after lanes A, B, C is shift(crcA, |B|+|C|) ^ shift(crcB, |C|) ^ crcC,
 * where shift(s, n) = s * x^(8n) mod P, the register after n zero bytes. */
#define CRC32C_LANE 8192
static uint32_t crc_x_lane, crc_x_2lanes; /* x^(8 LANE) and x^(16 LANE) mod P, reflected */

/* a * b mod P, both in the reflected order (bit 31 is x^0). */
static uint32_t crc32c_mulmod(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    for (int i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i))
            prod ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1; /* b *= x */
    }
    return prod;
}

/* x^k mod P, reflected. */
static uint32_t crc32c_xpow(uint64_t k)
{
    uint32_t r = 0x80000000u; /* x^0 */
    while (k--)
        r = (r & 1) ? (r >> 1) ^ CRC32C_POLY : r >> 1;
    return r;
}

static void crc32c_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_x_lane = crc32c_xpow(8u * CRC32C_LANE);
    crc_x_2lanes = crc32c_xpow(16u * CRC32C_LANE);
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc; /* little-endian hosts only; x86 and arm64 are */
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 3 * CRC32C_LANE) {
        uint64_t c0 = c, c1 = 0, c2 = 0;
        for (size_t i = 0; i < CRC32C_LANE; i += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p + i, 8);
            memcpy(&v1, p + CRC32C_LANE + i, 8);
            memcpy(&v2, p + 2 * CRC32C_LANE + i, 8);
            c0 = __builtin_ia32_crc32di(c0, v0);
            c1 = __builtin_ia32_crc32di(c1, v1);
            c2 = __builtin_ia32_crc32di(c2, v2);
        }
        c = crc32c_mulmod(crc_x_2lanes, (uint32_t)c0) ^ crc32c_mulmod(crc_x_lane, (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * CRC32C_LANE;
        n -= 3 * CRC32C_LANE;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    int mode = __atomic_load_n(&crc_mode, __ATOMIC_ACQUIRE);
    if (mode == 0) {
        crc32c_init_table();
        mode = 1;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("sse4.2"))
            mode = 2;
#endif
        __atomic_store_n(&crc_mode, mode, __ATOMIC_RELEASE);
    }
    crc = ~crc;
#if defined(__x86_64__)
    if (mode == 2)
        return ~crc32c_hw(crc, data, len);
#endif
    return ~crc32c_sw(crc, data, len);
}
