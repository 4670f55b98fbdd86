/*
 * txn_markers.h - writing transaction markers on partitions this broker
 * leads, as Kafka's WriteTxnMarkers does, and waiting until they are on every
 * in-sync replica (the high watermark covers them) before saying so.
 *
 * Used by the WriteTxnMarkers handler (handlers_markers.c) for markers sent
 * by other brokers' transaction coordinators, and by the coordinator itself
 * (cluster mode) for the partitions of a transaction it leads. Per
 * partition, as Kafka's replica manager and producer state check them: the
 * broker must lead it (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION), a
 * marker older than the producer's epoch there is INVALID_PRODUCER_EPOCH,
 * one from an older coordinator epoch than the last marker's is
 * TRANSACTION_COORDINATOR_FENCED. On a __consumer_offsets partition the
 * group coordinator then makes the producer's pending transactional offsets
 * committed (COMMIT) or drops them (ABORT).
 *
 * Also the high-watermark wait both the markers and the coordinator's own
 * __transaction_state appends use (Kafka appends both with acks=all).
 *
 * @locality: event-loop thread only.
 */
#ifndef RUNNEL_TXN_MARKERS_H
#define RUNNEL_TXN_MARKERS_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "net/evloop.h"
#include "protocol/kmsg.h"

struct cluster;
struct group_coordinator;

#define TXN_KERR_TRANSACTION_COORDINATOR_FENCED 52

/* ---- writing markers ---- */

typedef struct txn_markers_env {
    evloop_t *loop;
    topics_t *topics;
    struct cluster *cluster;           /* NULL on a single node */
    struct group_coordinator *groups;  /* may be NULL */
    int64_t timeout_ms;                /* how long to wait for the replicas */
} txn_markers_env_t;

typedef struct txn_marker_target {
    kstr_t topic;
    int32_t partition;
    int16_t error; /* out */
} txn_marker_target_t;

typedef struct txn_marker_params {
    int64_t producer_id;
    int16_t producer_epoch;
    bool commit;
    int32_t coordinator_epoch;
} txn_marker_params_t;

typedef struct txn_marker_write txn_marker_write_t;

/* Writes the marker on every target partition now (each target's error says what happened) and
 * calls done(arg) later from the loop, once every written marker is replicated or its wait failed
 * (that target's error set then). targets (and the topic names) must stay valid until done runs or
 * the write is cancelled. NULL when out of memory (nothing written, done never called). */
txn_marker_write_t *txn_markers_write(const txn_markers_env_t *env, const txn_marker_params_t *m,
                                      txn_marker_target_t *targets, int n, void (*done)(void *arg),
                                      void *arg);
/* done will not be called; the markers already written stay. */
void txn_markers_cancel(txn_marker_write_t *w);

#endif
