/*
 * fuzz_record_batch.c - libFuzzer target for the RecordBatch decoder and the
 * codecs behind it.
 *
 * The input is used four ways: as a produce request's records bytes (walked
 * with rb_next_batch_size and each batch validated); as one batch whose
 * length, magic and CRC are forced right, so mutations reach the codecs and
 * the record parser instead of dying at the CRC; as a bare records section;
 * and as compressed bytes for each codec. Beyond "no crash, no over-read",
 * it checks invariants: a batch that validates iterates to exactly its count
 * of well-formed records, and recompressing it gives a valid batch with the
 * same records.
 */
#include <stdlib.h>

#include "common/buf.h"
#include "common/compress.h"
#include "protocol/record_batch.h"

#define FUZZ_MAX_OUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walks every record and header; returns the number of records, or -1 when
 * the section is malformed. */
static int32_t walk_records(const uint8_t *recs, size_t len, int32_t count)
{
    rb_iter_t it;
    rb_record_t rec;
    rb_iter_init(&it, recs, len, count);
    int32_t n = 0;
    int rc;
    while ((rc = rb_iter_next(&it, &rec)) == 1) {
        if ((rec.key_len < 0) != (rec.key == NULL) || (rec.value_len < 0) != (rec.value == NULL))
            abort();
        /* Touch every byte we were handed, so ASan checks the pointers. */
        volatile uint8_t sink = 0;
        for (int32_t i = 0; i < rec.key_len; i++)
            sink ^= rec.key[i];
        for (int32_t i = 0; i < rec.value_len; i++)
            sink ^= rec.value[i];
        (void)sink;
        rd_t hr;
        rb_rec_header_t h;
        rd_init(&hr, rec.headers, rec.headers_len);
        int32_t hn = 0;
        int hrc;
        while ((hrc = rb_header_next(&hr, &h)) == 1) {
            if (h.key_len < 0 || h.key == NULL)
                abort();
            hn++;
        }
        /* rb_iter_next promised well-formed headers, exactly header_count. */
        if (hrc != 0 || hn != rec.header_count)
            abort();
        n++;
    }
    return rc == 0 ? n : -1;
}

/* Checks the invariants of one batch that rb_validate accepted. */
static void check_valid_batch(const uint8_t *batch, size_t len, const rb_summary_t *s, buf_t *scratch,
                              int codec)
{
    const uint8_t *recs;
    size_t rl;
    if (rb_records_plain(batch, len, scratch, FUZZ_MAX_OUT, &recs, &rl) != 0)
        abort();
    if (walk_records(recs, rl, s->records) != s->records || s->records != rb_records_count(batch))
        abort();

    buf_t plain, out, scratch2;
    buf_init(&plain);
    buf_init(&out);
    buf_init(&scratch2);
    buf_put(&plain, recs, rl);
    /* Recompressed output may exceed the bound only by codec overhead. */
    if (rb_recompress(batch, len, codec, &out, &scratch2, FUZZ_MAX_OUT) != 0)
        abort();
    rb_summary_t s2;
    if (rb_validate(out.data, out.len, &scratch2, FUZZ_MAX_OUT, &s2) != RB_OK)
        abort();
    if (s2.records != s->records || s2.max_timestamp != s->max_timestamp || s2.codec != codec)
        abort();
    const uint8_t *recs2;
    size_t rl2;
    if (rb_records_plain(out.data, out.len, &scratch2, FUZZ_MAX_OUT, &recs2, &rl2) != 0 || rl2 != plain.len ||
        (rl2 && memcmp(recs2, plain.data, rl2) != 0))
        abort();
    /* LogAppendTime keeps the batch valid. */
    rb_set_log_append_time(out.data, 1234567);
    if (rb_validate(out.data, out.len, &scratch2, FUZZ_MAX_OUT, &s2) != RB_OK || !s2.log_append_time)
        abort();
    buf_free(&plain);
    buf_free(&out);
    buf_free(&scratch2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t scratch;
    buf_init(&scratch);
    int target_codec = size ? data[size - 1] % 5 : 0;

    /* 1. As a produce request's records bytes. */
    const uint8_t *p = data;
    size_t left = size;
    for (;;) {
        int64_t n = rb_next_batch_size(p, left);
        if (n <= 0)
            break;
        if ((uint64_t)n > left || n < RB_HEADER_SIZE)
            abort();
        rb_summary_t s;
        if (rb_validate(p, (size_t)n, &scratch, FUZZ_MAX_OUT, &s) == RB_OK)
            check_valid_batch(p, (size_t)n, &s, &scratch, target_codec);
        p += n;
        left -= (size_t)n;
    }

    /* 2. As one batch with its framing and CRC forced right. */
    if (size >= RB_HEADER_SIZE && size - RB_LOG_OVERHEAD <= INT32_MAX) {
        uint8_t *b = malloc(size);
        if (b) {
            memcpy(b, data, size);
            be_put32(b + RB_OFF_BATCH_LENGTH, (uint32_t)(size - RB_LOG_OVERHEAD));
            b[RB_OFF_MAGIC] = 2;
            rb_update_crc(b);
            if (!rb_crc_ok(b) || rb_next_batch_size(b, size) != (int64_t)size)
                abort();
            rb_summary_t s;
            rb_err_t e = rb_validate(b, size, &scratch, FUZZ_MAX_OUT, &s);
            if (e == RB_OK)
                check_valid_batch(b, size, &s, &scratch, target_codec);
            else if (e == RB_ERR_UNSUPPORTED_MAGIC)
                abort(); /* the magic was forced to 2 */
            free(b);
        }
    }

    /* 3. As a bare records section, count taken from the first byte. */
    if (size > 0)
        (void)walk_records(data + 1, size - 1, data[0] % 8);

    /* 4. As compressed bytes for each codec: bounded output or a clean -1. */
    for (int codec = COMPRESS_GZIP; codec <= COMPRESS_ZSTD; codec++) {
        scratch.len = 0;
        int rc = compress_decompress(codec, data, size, &scratch, FUZZ_MAX_OUT);
        if (rc == 0 ? scratch.len > FUZZ_MAX_OUT : scratch.len != 0)
            abort(); /* too much output, or a failure that left some behind */
    }
    buf_free(&scratch);
    return 0;
}
