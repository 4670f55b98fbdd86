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

#endif
