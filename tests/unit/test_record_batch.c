/* Unit tests for RecordBatch: a hand-written batch, builder/validate/iterate
 * round trips per codec, every kind of bad batch, in-place rewrites and
 * recompression. */
#include "common/buf.h"
#include "common/compress.h"
#include "common/crc32c.h"
#include "protocol/record_batch.h"
#include "test.h"

#include <stdlib.h>

static const int all_codecs[] = {COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_SNAPPY, COMPRESS_LZ4, COMPRESS_ZSTD};
#define N_CODECS (sizeof(all_codecs) / sizeof(all_codecs[0]))
#define MAXD (16u << 20)
#define TS0 1700000000000LL

/*
 * Two records, no compression, baseOffset 0, baseTimestamp 1700000000000:
 *   record 0: delta ts 0, offset 0, key "k1", value "v1", header h=x
 *   record 1: delta ts 5, offset 1, key null, value "v2", no headers
 * The CRC was computed independently with a bit-at-a-time CRC-32C in Python:
 *   def crc32c(d):
 *       c = 0xffffffff
 *       for b in d:
 *           c ^= b
 *           for _ in range(8): c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
 *       return c ^ 0xffffffff
 * over bytes 21..84 below, giving 0x97f4442a.
 */
static const uint8_t hand_batch[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* baseOffset 0 */
    0x00, 0x00, 0x00, 0x49,                         /* batchLength 73 */
    0xff, 0xff, 0xff, 0xff,                         /* partitionLeaderEpoch -1 */
    0x02,                                           /* magic */
    0x97, 0xf4, 0x44, 0x2a,                         /* crc */
    0x00, 0x00,                                     /* attributes */
    0x00, 0x00, 0x00, 0x01,                         /* lastOffsetDelta */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* baseTimestamp */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05, /* maxTimestamp */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* producerId -1 */
    0xff, 0xff,                                     /* producerEpoch -1 */
    0xff, 0xff, 0xff, 0xff,                         /* baseSequence -1 */
    0x00, 0x00, 0x00, 0x02,                         /* recordsCount */
    /* record 0: length 14, attrs, ts 0, off 0, key "k1", value "v1", 1 header h=x */
    0x1c, 0x00, 0x00, 0x00, 0x04, 'k', '1', 0x04, 'v', '1', 0x02, 0x02, 'h', 0x02, 'x',
    /* record 1: length 8, attrs, ts 5, off 1, key null, value "v2", 0 headers */
    0x10, 0x00, 0x0a, 0x02, 0x01, 0x04, 'v', '2', 0x00,
};
#define HAND_LEN sizeof(hand_batch)

static void build_hand(buf_t *out, int codec)
{
    rb_builder_t b;
    rb_builder_init(&b, out, codec, 0, TS0);
    const uint8_t *hk[] = {(const uint8_t *)"h"}, *hv[] = {(const uint8_t *)"x"};
    const int32_t hkl[] = {1}, hvl[] = {1};
    const uint8_t *k1 = (const uint8_t *)"k1", *v1 = (const uint8_t *)"v1", *v2 = (const uint8_t *)"v2";
    CHECK_EQ_INT(rb_builder_add(&b, TS0, -1, k1, 2, v1, 2, 1, hk, hkl, hv, hvl), 0);
    CHECK_EQ_INT(rb_builder_add(&b, TS0 + 5, -1, NULL, -1, v2, 2, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(rb_builder_finish(&b), 0);
}

/* Copies a batch into an exact-size allocation so ASan catches over-reads. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    memcpy(q, p, n);
    return q;
}

static void test_hand_batch(void)
{
    CHECK_EQ_INT(rb_compute_crc(hand_batch), 0x97f4442a);
    CHECK(rb_crc_ok(hand_batch));
    CHECK_EQ_INT(rb_next_batch_size(hand_batch, HAND_LEN), HAND_LEN);

    /* The builder produces exactly these bytes. */
    buf_t out;
    buf_init(&out);
    build_hand(&out, COMPRESS_NONE);
    CHECK_EQ_INT(out.len, HAND_LEN);
    CHECK(out.len == HAND_LEN && memcmp(out.data, hand_batch, HAND_LEN) == 0);
    buf_free(&out);

    rb_summary_t s;
    memset(&s, 0x55, sizeof(s));
    CHECK_EQ_INT(rb_validate(hand_batch, HAND_LEN, NULL, MAXD, &s), RB_OK);
    CHECK_EQ_INT(s.records, 2);
    CHECK_EQ_INT(s.max_timestamp, TS0 + 5);
    CHECK_EQ_INT(s.max_timestamp_delta, 1);
    CHECK_EQ_INT(s.first_timestamp, TS0);
    CHECK_EQ_INT(s.codec, COMPRESS_NONE);
    CHECK(s.has_null_key);
    CHECK(!s.is_control && !s.is_transactional && !s.log_append_time);
    CHECK_EQ_INT(s.producer_id, -1);
    CHECK_EQ_INT(s.producer_epoch, -1);
    CHECK_EQ_INT(s.base_sequence, -1);

    const uint8_t *recs;
    size_t rl;
    CHECK_EQ_INT(rb_records_plain(hand_batch, HAND_LEN, NULL, MAXD, &recs, &rl), 0);
    CHECK(recs == hand_batch + RB_HEADER_SIZE);
    CHECK_EQ_INT(rl, 24);
    rb_iter_t it;
    rb_record_t r;
    rb_iter_init(&it, recs, rl, 2);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 1);
    CHECK_EQ_INT(r.attributes, 0);
    CHECK_EQ_INT(r.timestamp_delta, 0);
    CHECK_EQ_INT(r.offset_delta, 0);
    CHECK_EQ_INT(r.key_len, 2);
    CHECK(r.key && memcmp(r.key, "k1", 2) == 0);
    CHECK_EQ_INT(r.value_len, 2);
    CHECK(r.value && memcmp(r.value, "v1", 2) == 0);
    CHECK_EQ_INT(r.header_count, 1);
    CHECK_EQ_INT(r.headers_len, 4);
    rd_t hr;
    rb_rec_header_t h;
    rd_init(&hr, r.headers, r.headers_len);
    CHECK_EQ_INT(rb_header_next(&hr, &h), 1);
    CHECK_EQ_INT(h.key_len, 1);
    CHECK(h.key && h.key[0] == 'h');
    CHECK_EQ_INT(h.value_len, 1);
    CHECK(h.value && h.value[0] == 'x');
    CHECK_EQ_INT(rb_header_next(&hr, &h), 0);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 1);
    CHECK_EQ_INT(r.timestamp_delta, 5);
    CHECK_EQ_INT(r.offset_delta, 1);
    CHECK_EQ_INT(r.key_len, -1);
    CHECK(r.key == NULL);
    CHECK_EQ_INT(r.value_len, 2);
    CHECK(r.value && memcmp(r.value, "v2", 2) == 0);
    CHECK_EQ_INT(r.header_count, 0);
    CHECK_EQ_INT(r.headers_len, 0);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 0);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 0);

    /* Iterating with a wrong count: too many -> -1, too few -> -1 (bytes left). */
    rb_iter_init(&it, recs, rl, 3);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 1);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 1);
    CHECK_EQ_INT(rb_iter_next(&it, &r), -1);
    rb_iter_init(&it, recs, rl, 1);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 1);
    CHECK_EQ_INT(rb_iter_next(&it, &r), -1);
    rb_iter_init(&it, recs, rl, -1);
    CHECK_EQ_INT(rb_iter_next(&it, &r), -1);
    rb_iter_init(&it, NULL, 0, 0);
    CHECK_EQ_INT(rb_iter_next(&it, &r), 0);
}

/* Patches a copy of the hand batch at `off` with `v` (of width 1, 2 or 4),
 * optionally fixes the CRC, and returns the validation result. */
static rb_err_t patched(size_t off, uint32_t v, int width, bool fix_crc)
{
    uint8_t *b = exact_copy(hand_batch, HAND_LEN);
    if (width == 1)
        b[off] = (uint8_t)v;
    else if (width == 2)
        be_put16(b + off, (uint16_t)v);
    else
        be_put32(b + off, v);
    if (fix_crc)
        rb_update_crc(b);
    rb_err_t e = rb_validate(b, HAND_LEN, NULL, MAXD, NULL);
    free(b);
    return e;
}

static void test_bad_batches(void)
{
    /* CRC: a flipped record byte, or a flipped CRC. */
    CHECK_EQ_INT(patched(HAND_LEN - 2, '3', 1, false), RB_ERR_CORRUPT);
    CHECK_EQ_INT(patched(RB_OFF_CRC, 0x97f4442b, 4, false), RB_ERR_CORRUPT);
    CHECK_EQ_INT(patched(RB_OFF_ATTRIBUTES + 1, 0x10, 1, false), RB_ERR_CORRUPT);
    /* ...while the fields outside the CRC may change freely. */
    CHECK_EQ_INT(patched(RB_OFF_BASE_OFFSET + 4, 0x1234, 4, false), RB_OK);
    CHECK_EQ_INT(patched(RB_OFF_LEADER_EPOCH, 7, 4, false), RB_OK);
    /* Count mismatch, either way, and a negative count. */
    CHECK_EQ_INT(patched(RB_OFF_RECORDS_COUNT, 3, 4, true), RB_ERR_INVALID_RECORD);
    CHECK_EQ_INT(patched(RB_OFF_RECORDS_COUNT, 1, 4, true), RB_ERR_INVALID_RECORD);
    CHECK_EQ_INT(patched(RB_OFF_RECORDS_COUNT, 0xffffffffu, 4, true), RB_ERR_INVALID_RECORD);
    CHECK_EQ_INT(patched(RB_OFF_RECORDS_COUNT, 0x7fffffffu, 4, true), RB_ERR_INVALID_RECORD);
    /* lastOffsetDelta disagreeing with the count. */
    CHECK_EQ_INT(patched(RB_OFF_LAST_OFFSET_DELTA, 2, 4, true), RB_ERR_INVALID_RECORD);
    CHECK_EQ_INT(patched(RB_OFF_LAST_OFFSET_DELTA, 0, 4, true), RB_ERR_INVALID_RECORD);
    /* Second record's offset delta 2 instead of 1 (byte 79). */
    CHECK_EQ_INT(patched(RB_HEADER_SIZE + 15 + 3, 0x04, 1, true), RB_ERR_INVALID_RECORD);
    /* First record's length varint 13 instead of 14: bytes no longer match. */
    CHECK_EQ_INT(patched(RB_HEADER_SIZE, 0x1a, 1, true), RB_ERR_CORRUPT);
    CHECK_EQ_INT(patched(RB_HEADER_SIZE, 0x1e, 1, true), RB_ERR_CORRUPT);
    /* Header count 2 with one header's bytes; header key length -1. */
    CHECK_EQ_INT(patched(RB_HEADER_SIZE + 10, 0x04, 1, true), RB_ERR_CORRUPT);
    CHECK_EQ_INT(patched(RB_HEADER_SIZE + 11, 0x01, 1, true), RB_ERR_CORRUPT);
    /* Header count 0: the header bytes become trailing junk inside the record. */
    CHECK_EQ_INT(patched(RB_HEADER_SIZE + 10, 0x00, 1, true), RB_ERR_CORRUPT);
    /* Key length running past the record. */
    CHECK_EQ_INT(patched(RB_HEADER_SIZE + 4, 0x40, 1, true), RB_ERR_CORRUPT);
    /* Magic 1 and 0: a legacy message set; unsupported, whatever else. */
    CHECK_EQ_INT(patched(RB_OFF_MAGIC, 1, 1, false), RB_ERR_UNSUPPORTED_MAGIC);
    CHECK_EQ_INT(patched(RB_OFF_MAGIC, 0, 1, true), RB_ERR_UNSUPPORTED_MAGIC);
    /* Codec 5..7. */
    for (uint32_t c = 5; c <= 7; c++)
        CHECK_EQ_INT(patched(RB_OFF_ATTRIBUTES, c, 2, true), RB_ERR_UNSUPPORTED_CODEC);
    /* Claims gzip but the section is not gzip. */
    CHECK_EQ_INT(patched(RB_OFF_ATTRIBUTES, COMPRESS_GZIP, 2, true), RB_ERR_CORRUPT);
    /* batchLength disagreeing with the bytes given. */
    CHECK_EQ_INT(patched(RB_OFF_BATCH_LENGTH, 72, 4, false), RB_ERR_CORRUPT);
    CHECK_EQ_INT(patched(RB_OFF_BATCH_LENGTH, 0x80000000u, 4, false), RB_ERR_CORRUPT);

    /* Error codes at the protocol edge. */
    CHECK_EQ_INT(rb_err_kafka_code(RB_OK), 0);
    CHECK_EQ_INT(rb_err_kafka_code(RB_ERR_CORRUPT), 2);
    CHECK_EQ_INT(rb_err_kafka_code(RB_ERR_INVALID_RECORD), 87);
    CHECK_EQ_INT(rb_err_kafka_code(RB_ERR_UNSUPPORTED_MAGIC), 43);
    CHECK_EQ_INT(rb_err_kafka_code(RB_ERR_UNSUPPORTED_CODEC), 76);
    CHECK(strcmp(rb_err_name(RB_ERR_CORRUPT), "corrupt") == 0);
}

static void test_truncated(void)
{
    /* Every proper prefix of a valid batch, in each codec, is refused. */
    for (size_t ci = 0; ci < N_CODECS; ci++) {
        buf_t out, scratch;
        buf_init(&out);
        buf_init(&scratch);
        build_hand(&out, all_codecs[ci]);
        CHECK_EQ_INT(rb_validate(out.data, out.len, &scratch, MAXD, NULL), RB_OK);
        int accepted = 0, sized = 0;
        for (size_t k = 0; k < out.len; k++) {
            uint8_t *t = exact_copy(out.data, k);
            if (rb_validate(t, k, &scratch, MAXD, NULL) == RB_OK)
                accepted++;
            if (rb_next_batch_size(t, k) != (k ? -1 : 0))
                sized++;
            free(t);
        }
        CHECK_EQ_INT(accepted, 0);
        CHECK_EQ_INT(sized, 0);
        buf_free(&out);
        buf_free(&scratch);
    }
}

/* Record i of the round-trip batch. */
static void rt_record(int i, uint8_t *key, int32_t *kl, uint8_t *val, int32_t *vl)
{
    *kl = i % 7 == 3 ? -1 : (i % 5 == 0 ? 0 : (int32_t)snprintf((char *)key, 32, "key-%d", i));
    if (i == 10) {
        *vl = 100000; /* a large value spanning xerial and lz4 blocks */
        for (int k = 0; k < *vl; k++)
            val[k] = (uint8_t)(k * 7 + k / 1000);
    } else if (i % 11 == 4) {
        *vl = -1;
    } else {
        *vl = (int32_t)snprintf((char *)val, 64, "value %d value %d", i, i * i);
    }
}

#define RT_N 40

static void test_roundtrip_codecs(void)
{
    uint8_t *val = malloc(100000), *got_val = malloc(100000);
    for (size_t ci = 0; ci < N_CODECS; ci++) {
        int codec = all_codecs[ci];
        buf_t out, scratch;
        buf_init(&out);
        buf_init(&scratch);
        buf_put(&out, "junk", 4); /* batches append after what is there */
        rb_builder_t b;
        rb_builder_init(&b, &out, codec, 1000, TS0);
        rb_builder_set_producer(&b, 4242, 3, 77, true);
        for (int i = 0; i < RT_N; i++) {
            uint8_t key[32];
            int32_t kl, vl;
            rt_record(i, key, &kl, val, &vl);
            const uint8_t *hk[2] = {(const uint8_t *)"trace", (const uint8_t *)"n"};
            const int32_t hkl[2] = {5, 1};
            const uint8_t *hv[2] = {(const uint8_t *)"abc", NULL};
            const int32_t hvl[2] = {3, -1};
            int64_t ts = TS0 + (i * 37) % 100 - 20; /* deltas negative and out of order */
            CHECK_EQ_INT(rb_builder_add(&b, ts, -1, key, kl, val, vl, i % 3, hk, hkl, hv, hvl), 0);
        }
        CHECK_EQ_INT(rb_builder_finish(&b), 0);
        CHECK_MEM(out.data, "junk", 4);
        uint8_t *batch = out.data + 4;
        size_t len = out.len - 4;
        CHECK_EQ_INT(rb_next_batch_size(batch, len), len);
        CHECK_EQ_INT(rb_base_offset(batch), 1000);
        CHECK_EQ_INT(rb_last_offset(batch), 1000 + RT_N - 1);
        CHECK_EQ_INT(rb_codec(batch), codec);
        CHECK_EQ_INT(rb_leader_epoch(batch), -1);
        CHECK_EQ_INT(rb_base_timestamp(batch), TS0);
        if (codec != COMPRESS_NONE)
            CHECK(len < 100000); /* the big value compressed */

        rb_summary_t s;
        CHECK_EQ_INT(rb_validate(batch, len, &scratch, MAXD, &s), RB_OK);
        CHECK_EQ_INT(s.records, RT_N);
        CHECK_EQ_INT(s.codec, codec);
        CHECK_EQ_INT(s.max_timestamp, TS0 + 79);      /* max of (i*37)%100 is 99, minus 20 */
        CHECK_EQ_INT(s.max_timestamp_delta, 27);      /* 27*37 % 100 == 99 */
        CHECK_EQ_INT(s.first_timestamp, TS0 - 20);
        CHECK_EQ_INT(rb_max_timestamp(batch), TS0 + 79);
        CHECK(s.has_null_key);
        CHECK(s.is_transactional && !s.is_control && !s.log_append_time);
        CHECK_EQ_INT(s.producer_id, 4242);
        CHECK_EQ_INT(s.producer_epoch, 3);
        CHECK_EQ_INT(s.base_sequence, 77);

        const uint8_t *recs;
        size_t rl;
        CHECK_EQ_INT(rb_records_plain(batch, len, &scratch, MAXD, &recs, &rl), 0);
        rb_iter_t it;
        rb_record_t r;
        rb_iter_init(&it, recs, rl, rb_records_count(batch));
        int n = 0, bad = 0;
        while (rb_iter_next(&it, &r) == 1) {
            uint8_t key[32];
            int32_t kl, vl;
            rt_record(n, key, &kl, got_val, &vl);
            if (r.offset_delta != n || r.timestamp_delta != (n * 37) % 100 - 20)
                bad++;
            if (r.key_len != kl || (kl > 0 && memcmp(r.key, key, (size_t)kl) != 0))
                bad++;
            if ((kl == -1) != (r.key == NULL))
                bad++;
            if (r.value_len != vl || (vl > 0 && memcmp(r.value, got_val, (size_t)vl) != 0))
                bad++;
            if (r.header_count != n % 3)
                bad++;
            rd_t hr;
            rb_rec_header_t h;
            rd_init(&hr, r.headers, r.headers_len);
            int hn = 0;
            while (rb_header_next(&hr, &h) == 1) {
                if (hn == 0 && !(h.key_len == 5 && memcmp(h.key, "trace", 5) == 0 && h.value_len == 3 &&
                                 memcmp(h.value, "abc", 3) == 0))
                    bad++;
                if (hn == 1 && !(h.key_len == 1 && h.key[0] == 'n' && h.value_len == -1 && h.value == NULL))
                    bad++;
                hn++;
            }
            if (hn != n % 3 || hr.err)
                bad++;
            n++;
        }
        CHECK_EQ_INT(n, RT_N);
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(rb_iter_next(&it, &r), 0);
        buf_free(&out);
        buf_free(&scratch);
    }
    free(val);
    free(got_val);
}

static void test_zip_bomb(void)
{
    /* A 4 MiB value of zeros is tiny compressed; the bound refuses it. */
    size_t n = 4u << 20;
    uint8_t *z = calloc(1, n);
    for (size_t ci = 1; ci < N_CODECS; ci++) {
        buf_t out, scratch;
        buf_init(&out);
        buf_init(&scratch);
        rb_builder_t b;
        rb_builder_init(&b, &out, all_codecs[ci], 0, TS0);
        CHECK_EQ_INT(rb_builder_add(&b, TS0, -1, NULL, -1, z, (int32_t)n, 0, NULL, NULL, NULL, NULL), 0);
        CHECK_EQ_INT(rb_builder_finish(&b), 0);
        CHECK(out.len < n / 16);
        CHECK_EQ_INT(rb_validate(out.data, out.len, &scratch, 1u << 20, NULL), RB_ERR_CORRUPT);
        CHECK(scratch.cap <= (2u << 20));
        CHECK_EQ_INT(rb_validate(out.data, out.len, &scratch, 8u << 20, NULL), RB_OK);
        buf_free(&out);
        buf_free(&scratch);
    }
    free(z);
}

static void test_log_append_time(void)
{
    uint8_t *b = exact_copy(hand_batch, HAND_LEN);
    rb_set_log_append_time(b, TS0 + 123456);
    CHECK(rb_crc_ok(b));
    CHECK_EQ_INT(rb_attributes(b), RB_ATTR_LOG_APPEND_TIME);
    CHECK_EQ_INT(rb_max_timestamp(b), TS0 + 123456);
    CHECK_EQ_INT(rb_base_timestamp(b), TS0);
    CHECK_MEM(b + RB_HEADER_SIZE, hand_batch + RB_HEADER_SIZE, HAND_LEN - RB_HEADER_SIZE);
    rb_summary_t s;
    CHECK_EQ_INT(rb_validate(b, HAND_LEN, NULL, MAXD, &s), RB_OK);
    CHECK(s.log_append_time);
    /* Back to CreateTime with the original maximum restores the original bytes. */
    rb_set_max_timestamp(b, TS0 + 5, false);
    CHECK_MEM(b, hand_batch, HAND_LEN);
    /* A no-op rewrite leaves everything alone. */
    rb_set_max_timestamp(b, TS0 + 5, false);
    CHECK_MEM(b, hand_batch, HAND_LEN);
    free(b);
}

static void test_recompress(void)
{
    buf_t src[N_CODECS], scratch, scratch2;
    buf_init(&scratch);
    buf_init(&scratch2);
    /* Start from a batch with producer fields, a control-free LogAppendTime
     * header and a non-zero base offset and leader epoch. */
    for (size_t a = 0; a < N_CODECS; a++) {
        buf_init(&src[a]);
        rb_builder_t b;
        rb_builder_init(&b, &src[a], all_codecs[a], 555, TS0);
        rb_builder_set_producer(&b, 9, 1, 100, false);
        for (int i = 0; i < 30; i++) {
            char v[64];
            int vl = snprintf(v, sizeof(v), "record number %d of thirty", i);
            CHECK_EQ_INT(rb_builder_add(&b, TS0 + i, -1, (const uint8_t *)v, 6, (const uint8_t *)v, vl, 0,
                                        NULL, NULL, NULL, NULL), 0);
        }
        CHECK_EQ_INT(rb_builder_finish(&b), 0);
        rb_set_leader_epoch(src[a].data, 12);
        rb_set_log_append_time(src[a].data, TS0 + 999);
    }
    const uint8_t *ref;
    size_t ref_len;
    CHECK_EQ_INT(rb_records_plain(src[0].data, src[0].len, &scratch2, MAXD, &ref, &ref_len), 0);
    for (size_t a = 0; a < N_CODECS; a++) {
        for (size_t c = 0; c < N_CODECS; c++) {
            buf_t out;
            buf_init(&out);
            CHECK_EQ_INT(rb_recompress(src[a].data, src[a].len, all_codecs[c], &out, &scratch, MAXD), 0);
            rb_summary_t s;
            CHECK_EQ_INT(rb_validate(out.data, out.len, &scratch, MAXD, &s), RB_OK);
            CHECK_EQ_INT(s.records, 30);
            CHECK_EQ_INT(s.codec, all_codecs[c]);
            CHECK(s.log_append_time);
            CHECK_EQ_INT(rb_codec(out.data), all_codecs[c]);
            CHECK_EQ_INT(rb_base_offset(out.data), 555);
            CHECK_EQ_INT(rb_leader_epoch(out.data), 12);
            CHECK_EQ_INT(rb_max_timestamp(out.data), TS0 + 999);
            CHECK_EQ_INT(rb_producer_id(out.data), 9);
            CHECK_EQ_INT(rb_base_sequence(out.data), 100);
            CHECK_EQ_INT(rb_last_offset_delta(out.data), 29);
            /* Everything in the header but codec, length and CRC is unchanged. */
            CHECK_MEM(out.data + RB_OFF_LEADER_EPOCH, src[a].data + RB_OFF_LEADER_EPOCH, 5);
            CHECK_MEM(out.data + RB_OFF_LAST_OFFSET_DELTA, src[a].data + RB_OFF_LAST_OFFSET_DELTA,
                      RB_HEADER_SIZE - RB_OFF_LAST_OFFSET_DELTA);
            CHECK_EQ_INT(rb_attributes(out.data) & ~RB_ATTR_CODEC_MASK,
                         rb_attributes(src[a].data) & ~RB_ATTR_CODEC_MASK);
            const uint8_t *recs;
            size_t rl;
            CHECK_EQ_INT(rb_records_plain(out.data, out.len, &scratch, MAXD, &recs, &rl), 0);
            CHECK_EQ_INT(rl, ref_len);
            CHECK(rl == ref_len && memcmp(recs, ref, rl) == 0);
            buf_free(&out);
        }
    }
    /* Refused: unknown target codec, or a batch that is not whole. */
    buf_t out;
    buf_init(&out);
    CHECK_EQ_INT(rb_recompress(src[1].data, src[1].len, 5, &out, &scratch, MAXD), -1);
    CHECK_EQ_INT(rb_recompress(src[1].data, src[1].len - 1, COMPRESS_NONE, &out, &scratch, MAXD), -1);
    CHECK_EQ_INT(out.len, 0);
    buf_free(&out);
    for (size_t a = 0; a < N_CODECS; a++)
        buf_free(&src[a]);
    buf_free(&scratch);
    buf_free(&scratch2);
}

static void test_next_batch_size(void)
{
    buf_t out;
    buf_init(&out);
    build_hand(&out, COMPRESS_NONE);
    build_hand(&out, COMPRESS_ZSTD);
    size_t first = HAND_LEN, second = out.len - HAND_LEN;
    const uint8_t *p = out.data;
    size_t left = out.len;
    CHECK_EQ_INT(rb_next_batch_size(p, left), first);
    p += first;
    left -= first;
    CHECK_EQ_INT(rb_next_batch_size(p, left), second);
    CHECK_EQ_INT(rb_codec(p), COMPRESS_ZSTD);
    p += second;
    left -= second;
    CHECK_EQ_INT(rb_next_batch_size(p, left), 0);
    /* Trailing partial batch, and a batchLength below the header size. */
    buf_put(&out, hand_batch, 30);
    CHECK_EQ_INT(rb_next_batch_size(out.data + first + second, 30), -1);
    uint8_t *b = exact_copy(hand_batch, HAND_LEN);
    be_put32(b + RB_OFF_BATCH_LENGTH, 48);
    CHECK_EQ_INT(rb_next_batch_size(b, HAND_LEN), -1);
    be_put32(b + RB_OFF_BATCH_LENGTH, 49);
    CHECK_EQ_INT(rb_next_batch_size(b, HAND_LEN), 61);
    be_put32(b + RB_OFF_BATCH_LENGTH, 74);
    CHECK_EQ_INT(rb_next_batch_size(b, HAND_LEN), -1);
    be_put32(b + RB_OFF_BATCH_LENGTH, 0xffffffffu);
    CHECK_EQ_INT(rb_next_batch_size(b, HAND_LEN), -1);
    free(b);
    buf_free(&out);
}

static void test_builder_misc(void)
{
    buf_t out;
    buf_init(&out);
    buf_put(&out, "ab", 2);
    rb_builder_t b;

    /* Bad arguments fail the add and then the whole batch; nothing is written. */
    rb_builder_init(&b, &out, COMPRESS_NONE, 0, TS0);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, -1, NULL, 3, NULL, -1, 0, NULL, NULL, NULL, NULL), -1);
    CHECK_EQ_INT(rb_builder_finish(&b), -1);
    CHECK_EQ_INT(out.len, 2);
    const uint8_t *hk[] = {NULL};
    const int32_t hkl[] = {-1}, hvl[] = {-1};
    rb_builder_init(&b, &out, COMPRESS_NONE, 0, TS0);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, -1, NULL, -1, NULL, -1, 1, hk, hkl, hk, hvl), -1);
    rb_builder_abort(&b);
    rb_builder_init(&b, &out, 6, 0, TS0);
    CHECK_EQ_INT(rb_builder_finish(&b), -1);
    CHECK_EQ_INT(out.len, 2);

    /* Explicit sparse offset deltas (compaction output) and a control batch. */
    rb_builder_init(&b, &out, COMPRESS_NONE, 10, TS0);
    rb_builder_set_control(&b);
    rb_builder_set_producer(&b, 1, 0, -1, true);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, 0, NULL, -1, NULL, -1, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, 2, NULL, -1, NULL, -1, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, 2, NULL, -1, NULL, -1, 0, NULL, NULL, NULL, NULL), -1);
    rb_builder_abort(&b);
    rb_builder_init(&b, &out, COMPRESS_NONE, 10, TS0);
    rb_builder_set_control(&b);
    rb_builder_set_producer(&b, 1, 0, -1, true);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, 0, NULL, -1, NULL, -1, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(rb_builder_add(&b, TS0, 2, NULL, -1, NULL, -1, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(rb_builder_finish(&b), 0);
    const uint8_t *batch = out.data + 2;
    size_t len = out.len - 2;
    CHECK_EQ_INT(rb_last_offset_delta(batch), 2);
    CHECK_EQ_INT(rb_attributes(batch), RB_ATTR_CONTROL | RB_ATTR_TRANSACTIONAL);
    /* Sparse deltas are not what a producer may send. */
    CHECK_EQ_INT(rb_validate(batch, len, NULL, MAXD, NULL), RB_ERR_INVALID_RECORD);
    out.len = 2;

    /* An empty batch keeping an offset range (compaction). */
    rb_builder_init(&b, &out, COMPRESS_LZ4, 10, TS0);
    rb_builder_set_last_offset_delta(&b, 4);
    CHECK_EQ_INT(rb_builder_finish(&b), 0);
    batch = out.data + 2;
    len = out.len - 2;
    CHECK_EQ_INT(rb_records_count(batch), 0);
    CHECK_EQ_INT(rb_last_offset(batch), 14);
    buf_t scratch;
    buf_init(&scratch);
    rb_summary_t s;
    CHECK_EQ_INT(rb_validate(batch, len, &scratch, MAXD, &s), RB_OK);
    CHECK_EQ_INT(s.records, 0);
    CHECK_EQ_INT(s.max_timestamp, TS0);
    out.len = 2;

    /* Ties for the maximum timestamp: the first record holding it counts. */
    rb_builder_init(&b, &out, COMPRESS_SNAPPY, 0, TS0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(rb_builder_add(&b, TS0 + (i ? 9 : 5), -1, NULL, -1, NULL, -1, 0,
                                    NULL, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(rb_builder_finish(&b), 0);
    CHECK_EQ_INT(rb_validate(out.data + 2, out.len - 2, &scratch, MAXD, &s), RB_OK);
    CHECK_EQ_INT(s.records, 4);
    CHECK_EQ_INT(s.max_timestamp, TS0 + 9);
    CHECK_EQ_INT(s.max_timestamp_delta, 1);
    CHECK(s.has_null_key);
    buf_free(&scratch);
    buf_free(&out);
}

int main(void)
{
    RUN_TEST(test_hand_batch);
    RUN_TEST(test_bad_batches);
    RUN_TEST(test_truncated);
    RUN_TEST(test_roundtrip_codecs);
    RUN_TEST(test_zip_bomb);
    RUN_TEST(test_log_append_time);
    RUN_TEST(test_recompress);
    RUN_TEST(test_next_batch_size);
    RUN_TEST(test_builder_misc);
    return TEST_REPORT();
}
