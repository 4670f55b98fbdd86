/*
 * record_batch.c - Kafka RecordBatch (magic 2): validation, record
 * iteration, in-place rewrites (CRC, LogAppendTime), building and
 * recompression. The header layout is at the top of record_batch.h.
 *
 * Records inside the (possibly compressed) records section:
 *   length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
 *   | keyLength varint (-1 null) | key | valueLength varint (-1 null) | value
 *   | headerCount varint | headers: keyLength varint, key, valueLength varint
 *   (-1 null), value
 * All varints are zigzag. `length` counts the bytes after itself and must
 * match them exactly, as Kafka's reader insists.
 */
#include "protocol/record_batch.h"

#include "common/compress.h"
#include "common/crc32c.h"

/* Bytes of the batch the CRC does not cover: everything before attributes. */
#define RB_CRC_START RB_OFF_ATTRIBUTES

/* Stand-in for a NULL pointer with length 0, so no arithmetic touches NULL. */
static const uint8_t rb_empty[1];

uint32_t rb_compute_crc(const uint8_t *b)
{
    int64_t total = rb_total_size(b);
    if (total <= RB_CRC_START)
        return crc32c(b, 0);
    return crc32c(b + RB_CRC_START, (size_t)(total - RB_CRC_START));
}

bool rb_crc_ok(const uint8_t *b) { return rb_compute_crc(b) == rb_crc(b); }

void rb_update_crc(uint8_t *batch) { be_put32(batch + RB_OFF_CRC, rb_compute_crc(batch)); }

/* ---- records ---- */

void rb_iter_init(rb_iter_t *it, const uint8_t *records, size_t len, int32_t count)
{
    rd_init(&it->r, records ? records : rb_empty, records ? len : 0);
    it->remaining = count;
    if (count < 0)
        it->r.err = true;
}

/* Zigzag varints as rd_varint/rd_varlong (common/buf.c), with the one- and two-byte cases
 * inline: in a batch's records nearly every varint (lengths, deltas, counts) is that short, and
 * the record walk of every produced batch was mostly calls to these. Same results and errors:
 * anything else (longer, truncated, or after an error) goes to the general decoder. */
static inline bool rb_uvarint_short(rd_t *r, uint32_t *z)
{
    const uint8_t *p = r->p;
    size_t left = rd_left(r);
    if (r->err || left == 0)
        return false;
    if (p[0] < 0x80) {
        *z = p[0];
        r->p = p + 1;
        return true;
    }
    if (left >= 2 && p[1] < 0x80) {
        *z = (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
        r->p = p + 2;
        return true;
    }
    return false;
}

static inline int32_t rb_varint(rd_t *r)
{
    uint32_t z;
    if (rb_uvarint_short(r, &z))
        return (int32_t)((z >> 1) ^ (~(z & 1) + 1));
    return rd_varint(r);
}

static inline int64_t rb_varlong(rd_t *r)
{
    uint32_t z;
    if (rb_uvarint_short(r, &z)) {
        uint64_t u = z; /* the sign mask must be 64 bits wide */
        return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
    }
    return rd_varlong(r);
}

/* A length-prefixed byte string where -1 means null (when allowed). */
static inline void rd_nullable_bytes(rd_t *r, bool null_ok, const uint8_t **p, int32_t *len)
{
    int32_t n = rb_varint(r);
    *p = NULL;
    *len = -1;
    if (r->err)
        return;
    if (n == -1 && null_ok)
        return;
    if (n < 0) {
        r->err = true;
        return;
    }
    *p = rd_take(r, (size_t)n);
    if (*p)
        *len = n;
}

int rb_header_next(rd_t *r, rb_rec_header_t *h)
{
    if (r->err)
        return -1;
    if (rd_left(r) == 0)
        return 0;
    rd_nullable_bytes(r, false, &h->key, &h->key_len);
    rd_nullable_bytes(r, true, &h->value, &h->value_len);
    return r->err ? -1 : 1;
}

int rb_iter_next(rb_iter_t *it, rb_record_t *rec)
{
    rd_t *in = &it->r;
    if (in->err)
        return -1;
    if (it->remaining == 0) {
        if (rd_left(in) == 0)
            return 0;
        in->err = true; /* bytes after the last declared record */
        return -1;
    }
    int32_t len = rb_varint(in);
    if (in->err || len < 0 || (size_t)len > rd_left(in)) {
        in->err = true;
        return -1;
    }
    rd_t r;
    rd_init(&r, rd_take(in, (size_t)len), (size_t)len);
    rec->attributes = rd_i8(&r);
    rec->timestamp_delta = rb_varlong(&r);
    rec->offset_delta = rb_varint(&r);
    rd_nullable_bytes(&r, true, &rec->key, &rec->key_len);
    rd_nullable_bytes(&r, true, &rec->value, &rec->value_len);
    rec->header_count = rb_varint(&r);
    if (r.err || rec->header_count < 0) {
        in->err = true;
        return -1;
    }
    /* The headers must be exactly the rest of the record. */
    rec->headers = r.p;
    rec->headers_len = rd_left(&r);
    rb_rec_header_t h;
    for (int32_t i = 0; i < rec->header_count; i++) {
        if (rd_left(&r) == 0 || rb_header_next(&r, &h) != 1) {
            in->err = true;
            return -1;
        }
    }
    if (rd_left(&r) != 0) {
        in->err = true;
        return -1;
    }
    it->remaining--;
    return 1;
}

int rb_records_plain(const uint8_t *batch, size_t batch_len, buf_t *scratch, size_t max_decompressed,
                     const uint8_t **records, size_t *records_len)
{
    if (batch_len < RB_HEADER_SIZE)
        return -1;
    const uint8_t *sec = batch + RB_HEADER_SIZE;
    size_t sec_len = batch_len - RB_HEADER_SIZE;
    int codec = rb_codec(batch);
    if (codec == COMPRESS_NONE) {
        *records = sec;
        *records_len = sec_len;
        return 0;
    }
    if (codec > COMPRESS_ZSTD || scratch == NULL)
        return -1;
    scratch->len = 0;
    if (compress_decompress(codec, sec, sec_len, scratch, max_decompressed) != 0)
        return -1;
    *records = scratch->len ? scratch->data : rb_empty;
    *records_len = scratch->len;
    return 0;
}

/* ---- validation ---- */

int16_t rb_err_kafka_code(rb_err_t e)
{
    switch (e) {
    case RB_OK: return 0;
    case RB_ERR_CORRUPT: return 2;             /* CORRUPT_MESSAGE */
    case RB_ERR_INVALID_RECORD: return 87;     /* INVALID_RECORD */
    case RB_ERR_UNSUPPORTED_MAGIC: return 43;  /* UNSUPPORTED_FOR_MESSAGE_FORMAT */
    case RB_ERR_UNSUPPORTED_CODEC: return 76;  /* UNSUPPORTED_COMPRESSION_TYPE */
    }
    return 2;
}

const char *rb_err_name(rb_err_t e)
{
    switch (e) {
    case RB_OK: return "ok";
    case RB_ERR_CORRUPT: return "corrupt";
    case RB_ERR_INVALID_RECORD: return "invalid record";
    case RB_ERR_UNSUPPORTED_MAGIC: return "unsupported magic";
    case RB_ERR_UNSUPPORTED_CODEC: return "unsupported codec";
    }
    return "unknown";
}

int64_t rb_next_batch_size(const uint8_t *p, size_t len)
{
    if (len == 0)
        return 0;
    if (len < RB_HEADER_SIZE)
        return -1;
    int32_t bl = rb_batch_length(p);
    if (bl < RB_HEADER_SIZE - RB_LOG_OVERHEAD)
        return -1;
    int64_t total = (int64_t)bl + RB_LOG_OVERHEAD;
    if ((uint64_t)total > len)
        return -1;
    return total;
}

/* Timestamps add with wrap-around rather than signed overflow: a hostile
 * delta must give a wrong number, not undefined behaviour. */
static int64_t ts_add(int64_t base, int64_t delta) { return (int64_t)((uint64_t)base + (uint64_t)delta); }

rb_err_t rb_validate(const uint8_t *batch, size_t len, buf_t *scratch, size_t max_decompressed,
                     rb_summary_t *out)
{
    if (len <= RB_OFF_MAGIC)
        return RB_ERR_CORRUPT;
    /* Magic first: a legacy message set is shorter and differently laid out,
     * but keeps its magic byte at the same offset. */
    if (rb_magic(batch) != 2)
        return RB_ERR_UNSUPPORTED_MAGIC;
    if (len < RB_HEADER_SIZE || rb_total_size(batch) != (int64_t)len)
        return RB_ERR_CORRUPT;
    if (!rb_crc_ok(batch))
        return RB_ERR_CORRUPT;
    int codec = rb_codec(batch);
    if (codec > COMPRESS_ZSTD)
        return RB_ERR_UNSUPPORTED_CODEC;
    int32_t count = rb_records_count(batch);
    if (count < 0)
        return RB_ERR_INVALID_RECORD;

    const uint8_t *recs;
    size_t recs_len;
    if (rb_records_plain(batch, len, scratch, max_decompressed, &recs, &recs_len) != 0)
        return RB_ERR_CORRUPT;

    int64_t base_ts = rb_base_timestamp(batch);
    int64_t max_delta = 0, first_delta = 0;
    int32_t max_delta_off = 0;
    bool null_key = false;
    rb_iter_t it;
    rb_iter_init(&it, recs, recs_len, count);
    rb_record_t rec;
    for (int32_t i = 0; i < count; i++) {
        /* Clean end of bytes before the count is reached: the count lies. */
        if (rd_left(&it.r) == 0)
            return RB_ERR_INVALID_RECORD;
        if (rb_iter_next(&it, &rec) != 1)
            return RB_ERR_CORRUPT;
        if (rec.offset_delta != i)
            return RB_ERR_INVALID_RECORD;
        if (i == 0 || rec.timestamp_delta > max_delta) {
            max_delta = rec.timestamp_delta;
            max_delta_off = rec.offset_delta;
        }
        if (i == 0)
            first_delta = rec.timestamp_delta;
        if (rec.key_len < 0)
            null_key = true;
    }
    /* Whole records beyond the count are a count mismatch too. */
    if (rd_left(&it.r) != 0)
        return RB_ERR_INVALID_RECORD;
    if (count > 0 && rb_last_offset_delta(batch) != count - 1)
        return RB_ERR_INVALID_RECORD;

    if (out) {
        int16_t attrs = rb_attributes(batch);
        out->records = count;
        out->max_timestamp = count ? ts_add(base_ts, max_delta) : rb_max_timestamp(batch);
        out->max_timestamp_delta = max_delta_off;
        out->first_timestamp = count ? ts_add(base_ts, first_delta) : base_ts;
        out->codec = codec;
        out->has_null_key = null_key;
        out->is_control = (attrs & RB_ATTR_CONTROL) != 0;
        out->is_transactional = (attrs & RB_ATTR_TRANSACTIONAL) != 0;
        out->log_append_time = (attrs & RB_ATTR_LOG_APPEND_TIME) != 0;
        out->producer_id = rb_producer_id(batch);
        out->producer_epoch = rb_producer_epoch(batch);
        out->base_sequence = rb_base_sequence(batch);
    }
    return RB_OK;
}

/* ---- rewriting in place ---- */

void rb_set_max_timestamp(uint8_t *batch, int64_t max_timestamp, bool log_append_time)
{
    uint16_t attrs = (uint16_t)rb_attributes(batch);
    uint16_t want = log_append_time ? (uint16_t)(attrs | RB_ATTR_LOG_APPEND_TIME)
                                    : (uint16_t)(attrs & ~RB_ATTR_LOG_APPEND_TIME);
    if (want == attrs && rb_max_timestamp(batch) == max_timestamp)
        return;
    be_put16(batch + RB_OFF_ATTRIBUTES, want);
    be_put64(batch + RB_OFF_MAX_TIMESTAMP, (uint64_t)max_timestamp);
    rb_update_crc(batch);
}

void rb_set_log_append_time(uint8_t *batch, int64_t now_ms) { rb_set_max_timestamp(batch, now_ms, true); }

/* ---- building ---- */

void rb_builder_init(rb_builder_t *b, buf_t *out, int codec, int64_t base_offset, int64_t base_timestamp)
{
    memset(b, 0, sizeof(*b));
    b->out = out;
    b->start = out->len;
    buf_init(&b->records);
    buf_init(&b->rec);
    b->codec = codec;
    b->base_offset = base_offset;
    b->base_timestamp = base_timestamp;
    b->max_timestamp = base_timestamp;
    b->attributes = (int16_t)(codec & RB_ATTR_CODEC_MASK);
    b->producer_id = -1;
    b->producer_epoch = -1;
    b->base_sequence = -1;
    b->failed = codec < COMPRESS_NONE || codec > COMPRESS_ZSTD;
}

void rb_builder_set_producer(rb_builder_t *b, int64_t producer_id, int16_t epoch, int32_t base_sequence,
                             bool transactional)
{
    b->producer_id = producer_id;
    b->producer_epoch = epoch;
    b->base_sequence = base_sequence;
    if (transactional)
        b->attributes |= RB_ATTR_TRANSACTIONAL;
    else
        b->attributes &= (int16_t)~RB_ATTR_TRANSACTIONAL;
}

void rb_builder_set_control(rb_builder_t *b) { b->attributes |= RB_ATTR_CONTROL; }

void rb_builder_set_last_offset_delta(rb_builder_t *b, int32_t delta)
{
    if (delta > b->min_last_offset_delta)
        b->min_last_offset_delta = delta;
}

static bool bytes_arg_ok(const uint8_t *p, int32_t len, bool null_ok)
{
    if (len < -1 || (len == -1 && !null_ok))
        return false;
    return len <= 0 || p != NULL;
}

static void put_nullable(buf_t *o, const uint8_t *p, int32_t len)
{
    buf_put_varint(o, len);
    if (len > 0)
        buf_put(o, p, (size_t)len);
}

int rb_builder_add(rb_builder_t *b, int64_t timestamp, int32_t offset_delta, const uint8_t *key,
                   int32_t key_len, const uint8_t *value, int32_t value_len, int n_headers,
                   const uint8_t *const *hkeys, const int32_t *hkey_lens, const uint8_t *const *hvals,
                   const int32_t *hval_lens)
{
    if (b->failed)
        return -1;
    if (offset_delta == -1)
        offset_delta = b->next_offset_delta;
    bool ok = offset_delta >= b->next_offset_delta && offset_delta < INT32_MAX && b->count < INT32_MAX &&
              bytes_arg_ok(key, key_len, true) && bytes_arg_ok(value, value_len, true) && n_headers >= 0 &&
              (n_headers == 0 || (hkeys && hkey_lens && hvals && hval_lens));
    for (int i = 0; ok && i < n_headers; i++)
        ok = bytes_arg_ok(hkeys[i], hkey_lens[i], false) && bytes_arg_ok(hvals[i], hval_lens[i], true);
    if (!ok) {
        b->failed = true;
        return -1;
    }
    buf_t *r = &b->rec;
    r->len = 0;
    buf_put_i8(r, 0); /* record attributes: unused by Kafka */
    buf_put_varlong(r, (int64_t)((uint64_t)timestamp - (uint64_t)b->base_timestamp));
    buf_put_varint(r, offset_delta);
    put_nullable(r, key, key_len);
    put_nullable(r, value, value_len);
    buf_put_varint(r, n_headers);
    for (int i = 0; i < n_headers; i++) {
        put_nullable(r, hkeys[i], hkey_lens[i]);
        put_nullable(r, hvals[i], hval_lens[i]);
    }
    if (r->oom || r->len > INT32_MAX) {
        b->failed = true;
        return -1;
    }
    buf_put_varint(&b->records, (int32_t)r->len);
    buf_put(&b->records, r->data, r->len);
    if (b->records.oom) {
        b->failed = true;
        return -1;
    }
    if (b->count == 0 || timestamp > b->max_timestamp)
        b->max_timestamp = timestamp;
    b->count++;
    b->next_offset_delta = offset_delta + 1;
    return 0;
}

void rb_builder_abort(rb_builder_t *b)
{
    buf_free(&b->records);
    buf_free(&b->rec);
    b->failed = true;
}

int rb_builder_finish(rb_builder_t *b)
{
    buf_t *out = b->out;
    size_t start = out->len;
    int rc = -1;
    if (b->failed || out->oom || buf_extend(out, RB_HEADER_SIZE) == NULL)
        goto done;
    if (compress_compress(b->codec, b->records.len ? b->records.data : rb_empty, b->records.len, out) != 0)
        goto done;
    size_t total = out->len - start;
    if (total - RB_LOG_OVERHEAD > INT32_MAX)
        goto done;
    int32_t last_delta = b->count ? b->next_offset_delta - 1 : 0;
    if (b->min_last_offset_delta > last_delta)
        last_delta = b->min_last_offset_delta;
    uint8_t *h = out->data + start;
    be_put64(h + RB_OFF_BASE_OFFSET, (uint64_t)b->base_offset);
    be_put32(h + RB_OFF_BATCH_LENGTH, (uint32_t)(total - RB_LOG_OVERHEAD));
    be_put32(h + RB_OFF_LEADER_EPOCH, (uint32_t)-1);
    h[RB_OFF_MAGIC] = 2;
    be_put16(h + RB_OFF_ATTRIBUTES, (uint16_t)b->attributes);
    be_put32(h + RB_OFF_LAST_OFFSET_DELTA, (uint32_t)last_delta);
    be_put64(h + RB_OFF_BASE_TIMESTAMP, (uint64_t)b->base_timestamp);
    be_put64(h + RB_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
    be_put64(h + RB_OFF_PRODUCER_ID, (uint64_t)b->producer_id);
    be_put16(h + RB_OFF_PRODUCER_EPOCH, (uint16_t)b->producer_epoch);
    be_put32(h + RB_OFF_BASE_SEQUENCE, (uint32_t)b->base_sequence);
    be_put32(h + RB_OFF_RECORDS_COUNT, (uint32_t)b->count);
    rb_update_crc(h);
    rc = 0;
done:
    if (rc != 0)
        out->len = start;
    rb_builder_abort(b);
    return rc;
}

int rb_recompress(const uint8_t *batch, size_t len, int codec, buf_t *out, buf_t *scratch,
                  size_t max_decompressed)
{
    if (codec < COMPRESS_NONE || codec > COMPRESS_ZSTD || out->oom)
        return -1;
    if (rb_next_batch_size(batch, len) != (int64_t)len || rb_magic(batch) != 2)
        return -1;
    const uint8_t *recs;
    size_t recs_len;
    if (rb_records_plain(batch, len, scratch, max_decompressed, &recs, &recs_len) != 0)
        return -1;
    size_t start = out->len;
    buf_put(out, batch, RB_HEADER_SIZE);
    if (out->oom || compress_compress(codec, recs, recs_len, out) != 0) {
        out->len = start;
        return -1;
    }
    size_t total = out->len - start;
    if (total - RB_LOG_OVERHEAD > INT32_MAX) {
        out->len = start;
        return -1;
    }
    uint8_t *h = out->data + start;
    uint16_t attrs = (uint16_t)rb_attributes(h);
    be_put16(h + RB_OFF_ATTRIBUTES, (uint16_t)((attrs & ~RB_ATTR_CODEC_MASK) | (uint16_t)codec));
    be_put32(h + RB_OFF_BATCH_LENGTH, (uint32_t)(total - RB_LOG_OVERHEAD));
    rb_update_crc(h);
    return 0;
}
