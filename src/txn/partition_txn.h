/*
 * partition_txn.h - producer state attached to a partition: loading it
 * (snapshot + replay of the log after it + the .txnindex files), checking
 * and recording producer batches on Produce, writing transaction markers,
 * and what read_committed fetches need (last stable offset, aborted
 * transactions). File layouts are in producer_state.h.
 *
 * A partition's state is loaded at its first use (a Produce with a producer
 * id, a marker, a read_committed Fetch, DescribeProducers), so idle
 * partitions cost nothing at start-up. Loading takes the newest
 * `<offset>.snapshot` inside [log start, log end] and replays the batch
 * headers after it (control batches are read whole); without one it replays
 * from the log start. A clean shutdown writes `<log end>.snapshot` for every
 * loaded partition (ptxn_snapshot_all), so the next start replays nothing.
 *
 * Aborted transactions are kept in memory per partition and appended to the
 * active segment's `<base>.txnindex` when their abort marker is written;
 * every .txnindex of the directory is read back at load (entries whose
 * marker lies past the log end are dropped; the replay re-adds markers that
 * came after the snapshot).
 *
 * @locality: event-loop thread only.
 */
#ifndef RUNNEL_PARTITION_TXN_H
#define RUNNEL_PARTITION_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "txn/producer_state.h"

/* The partition's producer state, loaded on first use; NULL when out of memory. */
producer_state_t *ptxn_state(partition_t *p);

/* Produce, before the append: checks the one batch of the request against the producer state.
 * Returns 0 (append it), 1 (a duplicate: *dup_base = its original first offset, do not append),
 * or a Kafka error code (> 1). */
int ptxn_produce_check(partition_t *p, const uint8_t *batch, int64_t *dup_base);
/* Produce, after a successful append (the batch carries its assigned base offset). */
void ptxn_produce_done(partition_t *p, const uint8_t *batch, int64_t now_ms);

/* Appends a COMMIT or ABORT control batch for the producer and applies it. 0, or a Kafka error. */
int16_t ptxn_write_marker(topics_t *t, partition_t *p, int64_t producer_id, int16_t epoch, bool commit,
                          int32_t coordinator_epoch, int64_t now_ms);

/* Last stable offset: the first offset of the oldest open transaction, else the log end. */
int64_t ptxn_last_stable_offset(partition_t *p);

/* Aborted transactions overlapping [from, to); fills up to cap, returns the total. */
int ptxn_aborted(partition_t *p, int64_t from, int64_t to, pstate_aborted_t *out, int cap);

/* Shortens a fetched region of whole batches (file fd at pos, len bytes) to the batches whose base
 * offset is below `upper`. Returns the new length (0 when the first batch is already at or past
 * upper), or -1 on a read error. */
int32_t ptxn_trim_region(int fd, int64_t pos, int32_t len, int64_t upper);

/* Writes <log end>.snapshot for every partition whose state is loaded and removes its older
 * snapshots (clean shutdown). */
void ptxn_snapshot_all(topics_t *t);

/* producer.id.expiration.ms: forgets idle producers (no open transaction, last batch older than
 * max_idle_ms) of every partition whose state is loaded. Returns how many went. */
int ptxn_expire_producers(topics_t *t, int64_t now_ms, int64_t max_idle_ms);

/* Control record key of a marker: int16 version 0, int16 type (0 abort, 1 commit). 1 with *commit
 * set, 0 when the key is not a transaction marker, -1 when malformed. */
int ptxn_decode_control_key(const uint8_t *key, int32_t key_len, bool *commit);

#endif
