/* Unit tests for buf (varints, big-endian) and CRC-32C. */
#include "common/buf.h"
#include "common/bufpool.h"
#include "common/crc32c.h"
#include "test.h"

#include <stdlib.h>

static void test_crc32c_vectors(void)
{
    /* RFC 3720 B.4 test vectors. */
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    CHECK_EQ_INT(crc32c(zeros, 32), 0x8a9136aa);
    CHECK_EQ_INT(crc32c(ones, 32), 0x62a8ab43);
    CHECK_EQ_INT(crc32c(inc, 32), 0x46dd794e);
    CHECK_EQ_INT(crc32c("123456789", 9), 0xe3069283);
    /* Incremental equals one-shot, at every split. */
    for (size_t k = 0; k <= 9; k++)
        CHECK_EQ_INT(crc32c_update(crc32c("123456789", k), "123456789" + k, 9 - k), 0xe3069283);
}

static void test_varint_roundtrip(void)
{
    static const int64_t vals[] = {0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN,
                                   INT64_MAX, INT64_MIN, 1LL << 40};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        buf_t b;
        buf_init(&b);
        buf_put_varlong(&b, vals[i]);
        rd_t r;
        rd_init(&r, b.data, b.len);
        CHECK(rd_varlong(&r) == vals[i]);
        CHECK(!r.err && rd_left(&r) == 0);
        buf_free(&b);
        if (vals[i] >= INT32_MIN && vals[i] <= INT32_MAX) {
            buf_init(&b);
            buf_put_varint(&b, (int32_t)vals[i]);
            rd_init(&r, b.data, b.len);
            CHECK_EQ_INT(rd_varint(&r), vals[i]);
            CHECK(!r.err);
            buf_free(&b);
        }
    }
}

static void test_varint_known_bytes(void)
{
    buf_t b;
    buf_init(&b);
    buf_put_varint(&b, -1); /* zigzag 1 */
    buf_put_varint(&b, 150); /* zigzag 300 = ac 02 */
    buf_put_uvarint(&b, 0);
    const uint8_t want[] = {0x01, 0xac, 0x02, 0x00};
    CHECK_EQ_INT(b.len, sizeof(want));
    CHECK_MEM(b.data, want, sizeof(want));
    buf_free(&b);
}

static void test_reader_underflow(void)
{
    const uint8_t d[] = {0x00, 0x01, 0x80, 0x80};
    rd_t r;
    rd_init(&r, d, sizeof(d));
    CHECK_EQ_INT(rd_i16(&r), 1);
    CHECK(!r.err);
    CHECK_EQ_INT(rd_i32(&r), 0); /* only 2 bytes left */
    CHECK(r.err);
    rd_init(&r, d + 2, 2);
    (void)rd_uvarint(&r); /* unterminated varint */
    CHECK(r.err);
    const uint8_t long_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    rd_init(&r, long_varint, sizeof(long_varint));
    (void)rd_varint(&r);
    CHECK(r.err);
}

static void test_big_endian(void)
{
    buf_t b;
    buf_init(&b);
    buf_put_i16(&b, -2);
    buf_put_i32(&b, 0x01020304);
    buf_put_i64(&b, -5);
    const uint8_t want[] = {0xff, 0xfe, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb};
    CHECK_MEM(b.data, want, sizeof(want));
    rd_t r;
    rd_init(&r, b.data, b.len);
    CHECK_EQ_INT(rd_i16(&r), -2);
    CHECK_EQ_INT(rd_i32(&r), 0x01020304);
    CHECK_EQ_INT(rd_i64(&r), -5);
    CHECK(!r.err);
    buf_free(&b);
}

/* Freed large blocks come back for the next request of their size class; small ones and the
 * cache bound leave the pool; every block is writable over its full requested size. */
static void test_bufpool_reuse(void)
{
    uint8_t *a = bufpool_alloc(1000000);
    CHECK(a != NULL);
    CHECK(((uintptr_t)a & 15) == 0);
    memset(a, 0xab, 1000000);
    bufpool_free(a);
    uint8_t *b = bufpool_alloc(700000); /* same 1 MiB class */
    CHECK(b == a);
    uint8_t *c = bufpool_alloc(700000); /* the class is empty now: a new block */
    CHECK(c != NULL && c != b);
    memset(c, 1, 700000);
    uint8_t *small = bufpool_alloc(100);
    CHECK(small != NULL);
    memset(small, 2, 100);
    bufpool_free(small);
    uint8_t *huge = bufpool_alloc((size_t)17 << 20); /* above the largest class */
    CHECK(huge != NULL);
    huge[((size_t)17 << 20) - 1] = 3;
    bufpool_free(huge);
    uint8_t *edge = bufpool_alloc((size_t)1 << 20); /* exactly a class size fits that class */
    CHECK(edge != NULL);
    edge[((size_t)1 << 20) - 1] = 4;
    bufpool_free(edge);
    bufpool_free(b);
    bufpool_free(c);
    bufpool_free(NULL);
    /* many blocks at once: the class keeps only its bound, the rest is freed (ASan sees leaks) */
    enum { N = 100 };
    uint8_t *many[N];
    for (int i = 0; i < N; i++) {
        many[i] = bufpool_alloc((size_t)2 << 20);
        CHECK(many[i] != NULL);
        many[i][0] = (uint8_t)i;
    }
    for (int i = 0; i < N; i++)
        bufpool_free(many[i]);
    bufpool_drain();
    uint8_t *d = bufpool_alloc(1000000); /* after the drain: allocated afresh */
    CHECK(d != NULL);
    bufpool_free(d);
    bufpool_drain();
}

int main(void)
{
    RUN_TEST(test_crc32c_vectors);
    RUN_TEST(test_varint_roundtrip);
    RUN_TEST(test_varint_known_bytes);
    RUN_TEST(test_reader_underflow);
    RUN_TEST(test_big_endian);
    RUN_TEST(test_bufpool_reuse);
    return TEST_REPORT();
}
