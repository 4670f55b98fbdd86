/*
 * record_batch.h - Kafka RecordBatch (magic 2), which is both the wire and
 * the on-disk format.
 *
 * Header layout (61 bytes, big-endian):
 *   0 baseOffset int64        8 batchLength int32      12 partitionLeaderEpoch int32
 *  16 magic int8             17 crc uint32 (CRC-32C of bytes 21..end)
 *  21 attributes int16       23 lastOffsetDelta int32  27 baseTimestamp int64
 *  35 maxTimestamp int64     43 producerId int64       51 producerEpoch int16
 *  53 baseSequence int32     57 recordsCount int32     61 records...
 * batchLength counts the bytes after itself, so a batch is 12 + batchLength bytes.
 * baseOffset and partitionLeaderEpoch lie outside the CRC: the broker assigns
 * them in place without touching the checksum.
 */
#ifndef RUNNEL_RECORD_BATCH_H
#define RUNNEL_RECORD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define RB_OFF_BASE_OFFSET 0
#define RB_OFF_BATCH_LENGTH 8
#define RB_OFF_LEADER_EPOCH 12
#define RB_OFF_MAGIC 16
#define RB_OFF_CRC 17
#define RB_OFF_ATTRIBUTES 21
#define RB_OFF_LAST_OFFSET_DELTA 23
#define RB_OFF_BASE_TIMESTAMP 27
#define RB_OFF_MAX_TIMESTAMP 35
#define RB_OFF_PRODUCER_ID 43
#define RB_OFF_PRODUCER_EPOCH 51
#define RB_OFF_BASE_SEQUENCE 53
#define RB_OFF_RECORDS_COUNT 57
#define RB_HEADER_SIZE 61
/* Bytes before batchLength's coverage starts: baseOffset + batchLength. */
#define RB_LOG_OVERHEAD 12

#define RB_ATTR_CODEC_MASK 0x07
#define RB_ATTR_LOG_APPEND_TIME 0x08
#define RB_ATTR_TRANSACTIONAL 0x10
#define RB_ATTR_CONTROL 0x20
#define RB_ATTR_DELETE_HORIZON 0x40

static inline int64_t rb_base_offset(const uint8_t *b) { return (int64_t)be_get64(b + RB_OFF_BASE_OFFSET); }
static inline int32_t rb_batch_length(const uint8_t *b) { return (int32_t)be_get32(b + RB_OFF_BATCH_LENGTH); }
/* Whole size of the batch on disk / on the wire. */
static inline int64_t rb_total_size(const uint8_t *b) { return (int64_t)rb_batch_length(b) + RB_LOG_OVERHEAD; }
static inline int32_t rb_leader_epoch(const uint8_t *b) { return (int32_t)be_get32(b + RB_OFF_LEADER_EPOCH); }
static inline int8_t rb_magic(const uint8_t *b) { return (int8_t)b[RB_OFF_MAGIC]; }
static inline uint32_t rb_crc(const uint8_t *b) { return be_get32(b + RB_OFF_CRC); }
static inline int16_t rb_attributes(const uint8_t *b) { return (int16_t)be_get16(b + RB_OFF_ATTRIBUTES); }
static inline int rb_codec(const uint8_t *b) { return rb_attributes(b) & RB_ATTR_CODEC_MASK; }
static inline int32_t rb_last_offset_delta(const uint8_t *b) { return (int32_t)be_get32(b + RB_OFF_LAST_OFFSET_DELTA); }
static inline int64_t rb_last_offset(const uint8_t *b) { return rb_base_offset(b) + rb_last_offset_delta(b); }
static inline int64_t rb_base_timestamp(const uint8_t *b) { return (int64_t)be_get64(b + RB_OFF_BASE_TIMESTAMP); }
static inline int64_t rb_max_timestamp(const uint8_t *b) { return (int64_t)be_get64(b + RB_OFF_MAX_TIMESTAMP); }
static inline int64_t rb_producer_id(const uint8_t *b) { return (int64_t)be_get64(b + RB_OFF_PRODUCER_ID); }
static inline int16_t rb_producer_epoch(const uint8_t *b) { return (int16_t)be_get16(b + RB_OFF_PRODUCER_EPOCH); }
static inline int32_t rb_base_sequence(const uint8_t *b) { return (int32_t)be_get32(b + RB_OFF_BASE_SEQUENCE); }
static inline int32_t rb_records_count(const uint8_t *b) { return (int32_t)be_get32(b + RB_OFF_RECORDS_COUNT); }

static inline void rb_set_base_offset(uint8_t *b, int64_t off) { be_put64(b + RB_OFF_BASE_OFFSET, (uint64_t)off); }
static inline void rb_set_leader_epoch(uint8_t *b, int32_t e) { be_put32(b + RB_OFF_LEADER_EPOCH, (uint32_t)e); }

/* CRC-32C the batch should carry: over attributes .. end. `b` holds the whole batch. */
uint32_t rb_compute_crc(const uint8_t *b);
/* True when the batch's stored CRC matches its content. */
bool rb_crc_ok(const uint8_t *b);

/* ---- records ---- */

/* One record, pointing into the (plain) records section it was read from. */
typedef struct rb_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;
    int32_t key_len; /* -1 = null */
    const uint8_t *value;
    int32_t value_len; /* -1 = null */
    int32_t header_count;
    const uint8_t *headers; /* raw header bytes; walk them with rb_header_next */
    size_t headers_len;
} rb_record_t;

typedef struct rb_iter {
    rd_t r;
    int32_t remaining;
} rb_iter_t;

/* Iterates a plain (already decompressed) records section holding `count` records. */
void rb_iter_init(rb_iter_t *it, const uint8_t *records, size_t len, int32_t count);
/* 1 with *rec filled; 0 at the end (all `count` records read and every byte
 * consumed); -1 when malformed: a record that does not parse, whose length
 * varint disagrees with its bytes, whose headers are not well formed, or
 * bytes missing or left over. */
int rb_iter_next(rb_iter_t *it, rb_record_t *rec);

typedef struct rb_rec_header {
    const uint8_t *key;
    int32_t key_len; /* >= 0: header keys are never null */
    const uint8_t *value;
    int32_t value_len; /* -1 = null */
} rb_rec_header_t;

/* Walks a record's headers: rd_init(&r, rec.headers, rec.headers_len), then
 * call until it returns 0 (end) or -1 (malformed). */
int rb_header_next(rd_t *r, rb_rec_header_t *h);

/* The records section of a whole batch in plain form: for codec NONE a
 * pointer into the batch, otherwise decompressed into `scratch` (its length
 * is reset first; the caller frees it; NULL is allowed only for
 * uncompressed batches), bounded by max_decompressed. 0, or -1 for a short
 * batch, an unknown codec or an undecompressable section. */
int rb_records_plain(const uint8_t *batch, size_t batch_len, buf_t *scratch, size_t max_decompressed,
                     const uint8_t **records, size_t *records_len);

/* ---- validation ---- */

typedef enum {
    RB_OK = 0,
    RB_ERR_CORRUPT,           /* Kafka CORRUPT_MESSAGE (2): bad CRC, sizes, record bytes, undecompressable */
    RB_ERR_INVALID_RECORD,    /* INVALID_RECORD (87): offset deltas not 0..n-1, count mismatch */
    RB_ERR_UNSUPPORTED_MAGIC, /* UNSUPPORTED_FOR_MESSAGE_FORMAT (43): magic != 2 */
    RB_ERR_UNSUPPORTED_CODEC  /* UNSUPPORTED_COMPRESSION_TYPE (76): codec value 5..7 */
} rb_err_t;

/* Kafka error code for a validation result (0 for RB_OK). */
int16_t rb_err_kafka_code(rb_err_t e);
const char *rb_err_name(rb_err_t e);

typedef struct rb_summary {
    int32_t records;
    int64_t max_timestamp;          /* baseTimestamp + largest delta (header's value when empty) */
    int32_t max_timestamp_delta;    /* offset delta of the first record holding max_timestamp */
    int64_t first_timestamp;        /* timestamp of the first record (baseTimestamp when empty) */
    int codec;
    bool has_null_key;
    bool is_control;
    bool is_transactional;
    bool log_append_time;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
} rb_summary_t;

/* Size of the next batch in a produce request's records bytes; 0 when len is
 * 0; -1 when what is left is not a whole batch (shorter than 61 bytes,
 * batchLength < 49, or batchLength running past len). */
int64_t rb_next_batch_size(const uint8_t *p, size_t len);

/* Validates one whole batch (len bytes) as a broker must before appending:
 * magic 2, batchLength == len - 12, CRC-32C, known codec, records section
 * (decompressed into scratch when needed, bounded by max_decompressed) parsing
 * into exactly recordsCount records, each record's length matching its bytes,
 * offset deltas 0..n-1, lastOffsetDelta == n-1 when n > 0, headers well
 * formed. A batch of 0 records passes (compaction leaves such batches); the
 * produce path refuses them itself. scratch may be NULL for uncompressed
 * batches only. Fills *out (may be NULL) on RB_OK. */
rb_err_t rb_validate(const uint8_t *batch, size_t len, buf_t *scratch, size_t max_decompressed,
                     rb_summary_t *out);

/* ---- rewriting in place (whole batch present) ---- */

/* Recomputes and stores the CRC after a change inside its coverage. */
void rb_update_crc(uint8_t *batch);
/* Sets maxTimestamp (and the timestamp-type bit when log_append_time), then
 * the CRC; untouched when nothing changes, as Kafka does. */
void rb_set_max_timestamp(uint8_t *batch, int64_t max_timestamp, bool log_append_time);
/* LogAppendTime: sets the timestamp-type bit and maxTimestamp = now, leaving
 * record deltas alone (consumers then use maxTimestamp for every record). */
void rb_set_log_append_time(uint8_t *batch, int64_t now_ms);

/* ---- building ---- */

typedef struct rb_builder {
    buf_t *out;
    size_t start;      /* where the batch begins in out */
    buf_t records;     /* plain records section */
    buf_t rec;         /* one record's body while it is encoded */
    int codec;
    int32_t count;
    int64_t base_offset;
    int64_t base_timestamp, max_timestamp;
    int16_t attributes;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t next_offset_delta;
    int32_t min_last_offset_delta;
    bool failed;
} rb_builder_t;

/* Starts a batch that rb_builder_finish appends to `out`. Producer fields
 * start as -1 (not idempotent), partitionLeaderEpoch is written as -1. */
void rb_builder_init(rb_builder_t *b, buf_t *out, int codec, int64_t base_offset, int64_t base_timestamp);
void rb_builder_set_producer(rb_builder_t *b, int64_t producer_id, int16_t epoch, int32_t base_sequence,
                             bool transactional);
void rb_builder_set_control(rb_builder_t *b);
/* Raises the batch's lastOffsetDelta to at least `delta`: compaction keeps a
 * batch's original offset range even when its last records are gone. */
void rb_builder_set_last_offset_delta(rb_builder_t *b, int32_t delta);
/* Adds a record. key/value lengths -1 mean null. n_headers pairs: hkeys[i]
 * (hkey_lens[i] >= 0) and hvals[i] (hval_lens[i], -1 = null). offset_delta -1
 * takes the next dense delta; an explicit one must exceed the previous (for
 * compaction output). 0, or -1 on bad arguments (the batch then fails). */
int rb_builder_add(rb_builder_t *b, int64_t timestamp, int32_t offset_delta, const uint8_t *key,
                   int32_t key_len, const uint8_t *value, int32_t value_len, int n_headers,
                   const uint8_t *const *hkeys, const int32_t *hkey_lens, const uint8_t *const *hvals,
                   const int32_t *hval_lens);
/* Compresses the records with the codec, appends header + records to out with
 * the CRC, and frees the builder's buffers. 0, or -1 (nothing appended). */
int rb_builder_finish(rb_builder_t *b);
/* Frees the builder's buffers without writing anything. */
void rb_builder_abort(rb_builder_t *b);

/* Appends to out a copy of the whole batch (len bytes) with its records
 * section re-encoded in `codec`: same baseOffset, leader epoch, offsets,
 * timestamps, producer fields, records and other attribute bits; new
 * batchLength and CRC. scratch holds the decompressed section. 0 or -1. */
int rb_recompress(const uint8_t *batch, size_t len, int codec, buf_t *out, buf_t *scratch,
                  size_t max_decompressed);

#endif
