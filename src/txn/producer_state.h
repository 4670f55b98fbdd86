/*
 * producer_state.h - per-partition state of idempotent and transactional
 * producers, as Kafka's ProducerStateManager keeps it: for each producer id
 * its epoch, the sequence ranges and offsets of its last 5 batches, its
 * coordinator epoch and the first offset of its open transaction; plus the
 * partition's aborted transactions (what read_committed fetches need).
 *
 * Files (per partition directory, Kafka's layouts, all big-endian):
 *   <20-digit offset>.snapshot  the producers at that log offset:
 *     int16 version (1), uint32 crc (CRC-32C of everything after it),
 *     int32 count, then per producer (46 bytes):
 *       int64 producerId, int16 epoch, int32 lastSequence, int64 lastOffset,
 *       int32 offsetDelta (lastOffset - first offset of the last batch),
 *       int64 timestamp, int32 coordinatorEpoch, int64 currentTxnFirstOffset (-1 none)
 *   <20-digit segment base>.txnindex  aborted transactions whose abort marker
 *     was written while that segment was active, 34 bytes each:
 *       int16 version (0), int64 producerId, int64 firstOffset,
 *       int64 lastOffset (the marker's offset), int64 lastStableOffset
 *
 * Everything here is memory only; partition_txn.h does the file and log I/O.
 * Decoders never read out of bounds: malformed input is a -1 return.
 *
 * @locality: one event-loop thread; no locking.
 */
#ifndef RUNNEL_PRODUCER_STATE_H
#define RUNNEL_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Kafka error codes of idempotence and transactions (Kafka's numbering). */
enum txn_kerr {
    TXN_KERR_COORDINATOR_LOAD_IN_PROGRESS = 14,
    TXN_KERR_NOT_COORDINATOR = 16,
    TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    TXN_KERR_DUPLICATE_SEQUENCE_NUMBER = 46,
    TXN_KERR_INVALID_PRODUCER_EPOCH = 47,
    TXN_KERR_INVALID_TXN_STATE = 48,
    TXN_KERR_INVALID_PRODUCER_ID_MAPPING = 49,
    TXN_KERR_INVALID_TRANSACTION_TIMEOUT = 50,
    TXN_KERR_CONCURRENT_TRANSACTIONS = 51,
    TXN_KERR_UNKNOWN_PRODUCER_ID = 59,
    TXN_KERR_PRODUCER_FENCED = 90,
    TXN_KERR_TRANSACTIONAL_ID_NOT_FOUND = 105,
};

#define PSTATE_MAX_BATCHES 5
#define PSTATE_SNAPSHOT_VERSION 1
#define PSTATE_SNAPSHOT_ENTRY_SIZE 46
#define PSTATE_TXNINDEX_ENTRY_SIZE 34

typedef struct pstate_batch {
    int32_t first_seq, last_seq;
    int64_t first_offset, last_offset;
    int64_t timestamp;
} pstate_batch_t;

typedef struct pstate_producer {
    int64_t producer_id;
    int16_t epoch;
    int32_t coordinator_epoch;
    int64_t txn_first_offset; /* -1: no open transaction */
    int64_t last_timestamp;
    int nbatches;             /* the last PSTATE_MAX_BATCHES, oldest first */
    pstate_batch_t batches[PSTATE_MAX_BATCHES];
    struct pstate_producer *hnext;
} pstate_producer_t;

typedef struct pstate_aborted {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset;
    int64_t last_stable_offset;
} pstate_aborted_t;

typedef struct producer_state producer_state_t;

producer_state_t *pstate_new(void);
void pstate_free(producer_state_t *ps);
pstate_producer_t *pstate_find(const producer_state_t *ps, int64_t producer_id);
int pstate_producer_count(const producer_state_t *ps);
/* Calls cb for every producer (any order). */
void pstate_foreach(const producer_state_t *ps, void (*cb)(void *arg, const pstate_producer_t *p), void *arg);

/* Result of pstate_check. */
enum pstate_check_rc {
    PSTATE_APPEND = 0,    /* new batch: append it */
    PSTATE_DUPLICATE = 1, /* one of the last batches again: answer with *dup, do not append */
};

/* Checks a producer batch (sequences first_seq..first_seq+count-1, wrapping at INT32_MAX) against
 * the producer's state: returns PSTATE_APPEND, PSTATE_DUPLICATE (with *dup = that earlier batch),
 * or a Kafka error: INVALID_PRODUCER_EPOCH for an older epoch, OUT_OF_ORDER_SEQUENCE_NUMBER for a
 * gap or a new epoch not starting at 0. An unknown producer may start at any sequence (its state
 * may have gone with retention, as Kafka allows). Batches without a producer id pass. */
int pstate_check(const producer_state_t *ps, int64_t producer_id, int16_t epoch, int32_t first_seq,
                 int32_t count, pstate_batch_t *dup);

/* Records an appended batch (offsets first_offset..last_offset). A new epoch resets the batch
 * history. A transactional batch opens a transaction at first_offset unless one is open.
 * Batches with producer_id < 0 are ignored. 0, or -1 when out of memory. */
int pstate_update(producer_state_t *ps, int64_t producer_id, int16_t epoch, int32_t first_seq, int32_t count,
                  int64_t first_offset, int64_t last_offset, int64_t timestamp, bool transactional);

/* Applies a transaction marker written at marker_offset: closes the producer's open transaction.
 * For an abort that had an open transaction, fills *aborted (the last stable offset computed after
 * closing it, bounded by marker_offset + 1) and returns 1; otherwise 0; -1 out of memory. The epoch
 * of the marker becomes the producer's (markers may carry a bumped epoch). */
int pstate_apply_marker(producer_state_t *ps, int64_t producer_id, int16_t epoch, bool commit,
                        int32_t coordinator_epoch, int64_t marker_offset, int64_t timestamp,
                        pstate_aborted_t *aborted);

/* Forgets producers without an open transaction whose last batch or marker is older than
 * before_ms (producer.id.expiration.ms). Returns how many went. */
int pstate_expire(producer_state_t *ps, int64_t before_ms);

/* First offset of the oldest open transaction, or -1 when none is open. */
int64_t pstate_first_unstable_offset(const producer_state_t *ps);

/* Aborted transactions. pstate_add_aborted keeps the list ordered by last offset and ignores an
 * entry it already holds (same producer and last offset). */
int pstate_add_aborted(producer_state_t *ps, const pstate_aborted_t *a);
/* Entries overlapping [from, to): last_offset >= from and first_offset < to. Fills up to cap;
 * returns how many there are in all. */
int pstate_aborted_range(const producer_state_t *ps, int64_t from, int64_t to, pstate_aborted_t *out, int cap);
int pstate_aborted_count(const producer_state_t *ps);

/* ---- files ---- */

/* Appends the snapshot file's bytes (every producer) to out. */
void pstate_snapshot_encode(const producer_state_t *ps, buf_t *out);
/* Loads a snapshot into ps (producers only; the batch history holds the last batch). 0, or -1 when
 * malformed (bad version, CRC, length). */
int pstate_snapshot_decode(producer_state_t *ps, const uint8_t *p, size_t len);

void pstate_txnindex_put(buf_t *out, const pstate_aborted_t *a);
/* Decodes every whole 34-byte entry of a .txnindex into ps (a torn tail is ignored). Returns the
 * number of entries, or -1 on an unknown version. */
int pstate_txnindex_decode(producer_state_t *ps, const uint8_t *p, size_t len);

#endif
