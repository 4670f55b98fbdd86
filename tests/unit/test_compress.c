/* Unit tests for the record-batch codecs: round trips, known wire bytes,
 * the decompression bound, and corrupt input. */
#include "common/buf.h"
#include "common/compress.h"
#include "test.h"

#include <stdlib.h>

static const int all_codecs[] = {COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_SNAPPY, COMPRESS_LZ4, COMPRESS_ZSTD};
#define N_CODECS (sizeof(all_codecs) / sizeof(all_codecs[0]))

/* Deterministic mixed data: runs of text, repeats and pseudo-random bytes. */
static uint8_t *mixed_data(size_t n)
{
    uint8_t *d = malloc(n);
    uint32_t x = 2463534242u;
    static const char text[] = "the quick brown fox jumps over the lazy dog; ";
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t region = (i / 4096) % 3;
        if (region == 0)
            d[i] = (uint8_t)text[i % (sizeof(text) - 1)];
        else if (region == 1)
            d[i] = (uint8_t)x;
        else
            d[i] = (uint8_t)(i / 97);
    }
    return d;
}

static void roundtrip_one(int codec, const uint8_t *data, size_t n)
{
    buf_t c, d;
    buf_init(&c);
    buf_init(&d);
    buf_put(&c, "pre", 3); /* output is appended, not overwritten */
    CHECK_EQ_INT(compress_compress(codec, data, n, &c), 0);
    CHECK_MEM(c.data, "pre", 3);
    CHECK_EQ_INT(compress_decompress(codec, c.data + 3, c.len - 3, &d, n), 0);
    CHECK_EQ_INT(d.len, n);
    if (d.len == n && n > 0)
        CHECK_MEM(d.data, data, n);
    buf_free(&c);
    buf_free(&d);
}

static void test_roundtrip(void)
{
    size_t big = 1 << 20;
    uint8_t *m = mixed_data(big);
    for (size_t i = 0; i < N_CODECS; i++) {
        roundtrip_one(all_codecs[i], NULL, 0);
        roundtrip_one(all_codecs[i], (const uint8_t *)"hello", 5);
        roundtrip_one(all_codecs[i], m, big);
        roundtrip_one(all_codecs[i], m, 32 * 1024 + 1); /* just over one xerial block */
    }
    free(m);
}

static void test_compresses(void)
{
    /* Compressible data must actually shrink with every real codec. */
    size_t n = 256 * 1024;
    uint8_t *z = calloc(1, n);
    for (size_t i = 1; i < N_CODECS; i++) {
        buf_t c;
        buf_init(&c);
        CHECK_EQ_INT(compress_compress(all_codecs[i], z, n, &c), 0);
        CHECK(c.len > 0 && c.len < n / 10);
        buf_free(&c);
    }
    free(z);
}

static void test_names(void)
{
    CHECK_EQ_INT(compress_codec_from_name("none"), COMPRESS_NONE);
    CHECK_EQ_INT(compress_codec_from_name("uncompressed"), COMPRESS_NONE);
    CHECK_EQ_INT(compress_codec_from_name("gzip"), COMPRESS_GZIP);
    CHECK_EQ_INT(compress_codec_from_name("snappy"), COMPRESS_SNAPPY);
    CHECK_EQ_INT(compress_codec_from_name("lz4"), COMPRESS_LZ4);
    CHECK_EQ_INT(compress_codec_from_name("zstd"), COMPRESS_ZSTD);
    CHECK_EQ_INT(compress_codec_from_name("producer"), -1);
    CHECK_EQ_INT(compress_codec_from_name("GZIP"), -1);
    CHECK_EQ_INT(compress_codec_from_name(""), -1);
    CHECK_EQ_INT(compress_codec_from_name(NULL), -1);
    CHECK(strcmp(compress_codec_name(COMPRESS_NONE), "none") == 0);
    CHECK(strcmp(compress_codec_name(COMPRESS_GZIP), "gzip") == 0);
    CHECK(strcmp(compress_codec_name(COMPRESS_SNAPPY), "snappy") == 0);
    CHECK(strcmp(compress_codec_name(COMPRESS_LZ4), "lz4") == 0);
    CHECK(strcmp(compress_codec_name(COMPRESS_ZSTD), "zstd") == 0);
    CHECK(strcmp(compress_codec_name(7), "unknown") == 0);
}

/* Raw snappy written by hand: "abc" as a literal, then a 9-byte copy at
 * offset 3 (tag 0x15: copy with 1-byte offset, length 9). */
static const uint8_t raw_abc[] = {0x0c, 0x08, 'a', 'b', 'c', 0x15, 0x03};

static void test_snappy_known_bytes(void)
{
    /* xerial: magic, version 1, compatible 1, then three blocks. */
    static const uint8_t xerial[] = {
        0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0x00, 0, 0, 0, 1, 0, 0, 0, 1,
        0, 0, 0, 7, 0x05, 0x10, 'h', 'e', 'l', 'l', 'o',
        0, 0, 0, 8, 0x06, 0x14, ' ', 'w', 'o', 'r', 'l', 'd',
        0, 0, 0, 7, 0x0c, 0x08, 'a', 'b', 'c', 0x15, 0x03,
    };
    static const char want[] = "hello worldabcabcabcabc";
    buf_t d;
    buf_init(&d);
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xerial, sizeof(xerial), &d, 1 << 20), 0);
    CHECK_EQ_INT(d.len, strlen(want));
    CHECK(d.len == strlen(want) && memcmp(d.data, want, d.len) == 0);

    /* Plain raw snappy, as librdkafka may send. */
    d.len = 0;
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, raw_abc, sizeof(raw_abc), &d, 1 << 20), 0);
    CHECK_EQ_INT(d.len, 12);
    CHECK(d.len == 12 && memcmp(d.data, "abcabcabcabc", 12) == 0);

    /* Header only: an empty xerial stream. */
    d.len = 0;
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xerial, 16, &d, 1 << 20), 0);
    CHECK_EQ_INT(d.len, 0);

    /* Truncated inside a block, or a block length past the end: refused. */
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xerial, 25, &d, 1 << 20), -1);
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xerial, 18, &d, 1 << 20), -1);
    uint8_t bad[sizeof(xerial)];
    memcpy(bad, xerial, sizeof(xerial));
    bad[19] = 0x70; /* first block length 0x70 > what is there */
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, bad, sizeof(bad), &d, 1 << 20), -1);
    bad[19] = 7;
    bad[16] = 0x80; /* negative block length */
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, bad, sizeof(bad), &d, 1 << 20), -1);
    /* A copy reaching before the start of the output. */
    static const uint8_t raw_bad[] = {0x0c, 0x08, 'a', 'b', 'c', 0x15, 0x09};
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, raw_bad, sizeof(raw_bad), &d, 1 << 20), -1);
    CHECK_EQ_INT(d.len, 0);
    buf_free(&d);

    /* Our writer emits xerial framing with versions 1/1. */
    buf_t c;
    buf_init(&c);
    CHECK_EQ_INT(compress_compress(COMPRESS_SNAPPY, (const uint8_t *)"hello", 5, &c), 0);
    CHECK(c.len > 20);
    CHECK_MEM(c.data, xerial, 16);
    CHECK_EQ_INT(be_get32(c.data + 16), c.len - 20);
    buf_free(&c);
}

static void test_wire_headers(void)
{
    buf_t c;
    buf_init(&c);
    CHECK_EQ_INT(compress_compress(COMPRESS_GZIP, (const uint8_t *)"hello", 5, &c), 0);
    CHECK(c.len > 18);
    CHECK_EQ_INT(c.data[0], 0x1f);
    CHECK_EQ_INT(c.data[1], 0x8b);
    CHECK_EQ_INT(c.data[2], 8); /* deflate */
    c.len = 0;
    CHECK_EQ_INT(compress_compress(COMPRESS_LZ4, (const uint8_t *)"hello", 5, &c), 0);
    static const uint8_t lz4_magic[] = {0x04, 0x22, 0x4d, 0x18};
    CHECK_MEM(c.data, lz4_magic, 4);
    CHECK_EQ_INT(c.data[4] & 0x20, 0x20); /* independent blocks: Kafka's reader needs them */
    CHECK_EQ_INT(c.data[5], 0x40);        /* 64 KiB blocks */
    c.len = 0;
    CHECK_EQ_INT(compress_compress(COMPRESS_ZSTD, (const uint8_t *)"hello", 5, &c), 0);
    static const uint8_t zstd_magic[] = {0x28, 0xb5, 0x2f, 0xfd};
    CHECK_MEM(c.data, zstd_magic, 4);
    buf_free(&c);
}

static void test_gzip_members(void)
{
    /* Two concatenated gzip members decode to the concatenation; trailing
     * zero padding after the last one is ignored, as Java does. */
    buf_t c, d;
    buf_init(&c);
    buf_init(&d);
    CHECK_EQ_INT(compress_compress(COMPRESS_GZIP, (const uint8_t *)"abc", 3, &c), 0);
    CHECK_EQ_INT(compress_compress(COMPRESS_GZIP, (const uint8_t *)"defg", 4, &c), 0);
    buf_put(&c, "\0\0\0", 3);
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, c.data, c.len, &d, 100), 0);
    CHECK_EQ_INT(d.len, 7);
    CHECK(d.len == 7 && memcmp(d.data, "abcdefg", 7) == 0);
    /* ...but a truncated second member is an error. */
    d.len = 0;
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, c.data, c.len - 8, &d, 100), -1);
    CHECK_EQ_INT(d.len, 0);
    buf_free(&c);
    buf_free(&d);
}

static void test_max_out(void)
{
    /* 4 MiB of zeros compresses to a few KiB: decompression must stop at the
     * limit, fail, and leave the output untouched. */
    size_t n = 4u << 20;
    uint8_t *z = calloc(1, n);
    for (size_t i = 1; i < N_CODECS; i++) {
        int codec = all_codecs[i];
        buf_t c, d;
        buf_init(&c);
        buf_init(&d);
        CHECK_EQ_INT(compress_compress(codec, z, n, &c), 0);
        CHECK(c.len < n / 16);
        buf_put(&d, "xy", 2);
        CHECK_EQ_INT(compress_decompress(codec, c.data, c.len, &d, 1 << 20), -1);
        CHECK_EQ_INT(d.len, 2);
        CHECK(d.cap <= (2u << 20)); /* never grew to 4 MiB */
        CHECK_EQ_INT(compress_decompress(codec, c.data, c.len, &d, n - 1), -1);
        CHECK_EQ_INT(d.len, 2);
        CHECK_EQ_INT(compress_decompress(codec, c.data, c.len, &d, n), 0);
        CHECK_EQ_INT(d.len, n + 2);
        buf_free(&c);
        buf_free(&d);
    }
    /* NONE obeys the bound too. */
    buf_t d;
    buf_init(&d);
    CHECK_EQ_INT(compress_decompress(COMPRESS_NONE, z, 10, &d, 9), -1);
    CHECK_EQ_INT(compress_decompress(COMPRESS_NONE, z, 10, &d, 10), 0);
    CHECK_EQ_INT(d.len, 10);
    buf_free(&d);
    free(z);
}

static void test_corrupt(void)
{
    size_t n = 100000;
    uint8_t *m = mixed_data(n);
    buf_t d;
    buf_init(&d);
    for (size_t i = 1; i < N_CODECS; i++) {
        int codec = all_codecs[i];
        buf_t c;
        buf_init(&c);
        CHECK_EQ_INT(compress_compress(codec, m, n, &c), 0);
        /* Every truncation fails (for xerial snappy: inside the first block,
         * since a cut exactly between blocks, or after the 16-byte header,
         * is a shorter valid stream). */
        size_t lim = codec == COMPRESS_SNAPPY ? 20 + be_get32(c.data + 16) : c.len;
        int bad = 0;
        for (size_t k = 0; k < lim; k += (k < 64 ? 1 : 37)) {
            if (codec == COMPRESS_SNAPPY && k == 16)
                continue;
            uint8_t *t = malloc(k ? k : 1); /* exact size, so ASan sees over-reads */
            memcpy(t, c.data, k);
            if (compress_decompress(codec, t, k, &d, n) != -1)
                bad++;
            free(t);
        }
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(d.len, 0);
        /* Garbage of the right shape fails, never crashes. */
        uint8_t junk[512];
        for (size_t k = 0; k < sizeof(junk); k++)
            junk[k] = (uint8_t)(k * 131 + 7);
        CHECK_EQ_INT(compress_decompress(codec, junk, sizeof(junk), &d, n), -1);
        /* Flipped bytes in the middle either fail or, for codecs without a
         * content checksum, give something; never a crash or over-long output. */
        for (size_t k = 16; k < c.len; k += c.len / 50 + 1) {
            c.data[k] ^= 0x5a;
            d.len = 0;
            int rc = compress_decompress(codec, c.data, c.len, &d, n);
            CHECK(rc == -1 || d.len <= n);
            c.data[k] ^= 0x5a;
        }
        d.len = 0;
        buf_free(&c);
    }
    /* gzip carries a CRC-32: any flipped byte of the deflate data is caught. */
    buf_t c;
    buf_init(&c);
    CHECK_EQ_INT(compress_compress(COMPRESS_GZIP, m, n, &c), 0);
    c.data[c.len / 2] ^= 0x01;
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, c.data, c.len, &d, n), -1);
    buf_free(&c);
    /* Unknown codecs. */
    CHECK_EQ_INT(compress_decompress(5, m, 10, &d, n), -1);
    CHECK_EQ_INT(compress_compress(7, m, 10, &d), -1);
    CHECK_EQ_INT(compress_compress(-1, m, 10, &d), -1);
    CHECK_EQ_INT(d.len, 0);
    buf_free(&d);
    free(m);
}

int main(void)
{
    RUN_TEST(test_roundtrip);
    RUN_TEST(test_compresses);
    RUN_TEST(test_names);
    RUN_TEST(test_snappy_known_bytes);
    RUN_TEST(test_wire_headers);
    RUN_TEST(test_gzip_members);
    RUN_TEST(test_max_out);
    RUN_TEST(test_corrupt);
    return TEST_REPORT();
}
