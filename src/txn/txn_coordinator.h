/*
 * txn_coordinator.h - producer ids and the transaction coordinator.
 *
 * Producer ids come from blocks of TXN_PID_BLOCK_SIZE reserved in
 * <meta dir>/producer-id-block ("next.block.start=N", written atomically
 * before any id of the block is handed out), so ids stay unique across
 * restarts and crashes.
 *
 * Each transactional id lives in partition abs(hashCode(id)) % N of the
 * compacted internal topic __transaction_state (N =
 * transaction.state.log.num.partitions), in Kafka's record format:
 *   key   (version 0): int16 version, string transactional_id
 *   value (version 0): int16 version, int64 producer_id, int16 producer_epoch,
 *     int32 transaction_timeout_ms, int8 status, int32 topic count, then per
 *     topic: string topic, int32 count, int32 partitions...; int64
 *     last_update_timestamp_ms, int64 start_timestamp_ms
 *   status: 0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort,
 *     4 CompleteCommit, 5 CompleteAbort, 6 Dead, 7 PrepareEpochFence
 * Every state change is appended before it is answered; txn_coordinator_load
 * replays the topic at start and finishes transactions left in
 * PrepareCommit/PrepareAbort.
 *
 * On one node the coordinator writes the markers itself, so EndTxn runs
 * PrepareX -> markers on every partition -> CompleteX before answering.
 * Transactional offsets (TxnOffsetCommit) are held with the transaction and
 * handed to the group coordinator when it commits; a broker restart loses
 * them, so an Ongoing transaction that had added offsets is aborted at load.
 *
 * Cluster mode (txn_coordinator_set_cluster_mode) follows Kafka: this broker
 * coordinates the ids of the __transaction_state partitions it leads
 * (txn_coordinator_elected/resigned); EndTxn appends PrepareX and returns;
 * the markers are then written to the partitions this broker leads and sent
 * as WriteTxnMarkers to the leaders of the others (broker_client.h), failed
 * ones retried after a backoff with the leaders of the moment, and CompleteX
 * is appended when every partition has its marker. TxnOffsetCommit goes to
 * the group coordinator instead (group_txn_commit); the __consumer_offsets
 * partition of the group is one of the transaction's partitions and gets a
 * marker like the others.
 *
 * @locality: event-loop thread only.
 */
#ifndef RUNNEL_TXN_COORDINATOR_H
#define RUNNEL_TXN_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "common/buf.h"
#include "common/config.h"
#include "net/evloop.h"
#include "protocol/kmsg.h"

#define TXN_LOG_TOPIC "__transaction_state"
#define TXN_PID_BLOCK_SIZE 1000

struct group_coordinator;
typedef struct txn_coordinator txn_coordinator_t;

enum txn_status {
    TXN_EMPTY = 0,
    TXN_ONGOING = 1,
    TXN_PREPARE_COMMIT = 2,
    TXN_PREPARE_ABORT = 3,
    TXN_COMPLETE_COMMIT = 4,
    TXN_COMPLETE_ABORT = 5,
    TXN_DEAD = 6,
    TXN_PREPARE_EPOCH_FENCE = 7,
};

/* Kafka's names of the states ("Ongoing", "CompleteCommit", ...). */
const char *txn_status_name(int status);

/* topics and groups may be NULL (unit tests: nothing is persisted). meta_dir holds producer-id-block
 * (NULL: ids start at 0 and nothing is persisted). */
txn_coordinator_t *txn_coordinator_create(evloop_t *loop, topics_t *topics, struct group_coordinator *groups,
                                          const broker_config_t *config, const char *meta_dir);
/* Reserves the first producer-id block and replays __transaction_state. 0, or -1 when something
 * could not be read or written (the coordinator then refuses producer ids). */
int txn_coordinator_load(txn_coordinator_t *tc);
void txn_coordinator_destroy(txn_coordinator_t *tc);
/* Creates __transaction_state when missing. 0, or a Kafka error. */
int16_t txn_coordinator_ensure_topic(txn_coordinator_t *tc);
/* Aborts Ongoing transactions older than their timeout (also run by a timer every
 * transaction.abort.timed.out.transaction.cleanup.interval.ms). Returns how many. */
int txn_coordinator_abort_expired(txn_coordinator_t *tc, int64_t now_ms);

/* Removes transactional ids without a transaction that were idle for transactional.id.expiration.ms
 * (a tombstone in __transaction_state; run by the same timer). Returns how many. */
int txn_coordinator_expire_ids(txn_coordinator_t *tc, int64_t now_ms);

/* A new producer id (-1 when the block file cannot be written). */
int64_t txn_next_producer_id(txn_coordinator_t *tc);

/* InitProducerId. transactional_id null/empty: an idempotent producer (always a new id, epoch 0).
 * Otherwise: timeout check, abort of an open transaction, epoch bump (new id when the epoch is
 * exhausted), KIP-360 check of the producer id/epoch the client sent (-1 = none). */
int16_t txn_init_producer_id(txn_coordinator_t *tc, kstr_t transactional_id, int32_t timeout_ms,
                             int64_t pid_in, int16_t epoch_in, int64_t *pid, int16_t *epoch);

typedef struct txn_partition_ref {
    kstr_t topic;
    int32_t partition;
    int16_t error; /* out */
} txn_partition_ref_t;

/* AddPartitionsToTxn for one transaction. Returns the transaction-level error; when it is 0, each
 * ref's error says what happened (UNKNOWN_TOPIC_OR_PARTITION, or OPERATION_NOT_ATTEMPTED for the
 * others when one failed). verify_only checks without adding. */
int16_t txn_add_partitions(txn_coordinator_t *tc, kstr_t transactional_id, int64_t pid, int16_t epoch,
                           txn_partition_ref_t *refs, int n, bool verify_only);
int16_t txn_add_offsets(txn_coordinator_t *tc, kstr_t transactional_id, int64_t pid, int16_t epoch,
                        kstr_t group_id);

typedef struct txn_offset_item {
    kstr_t topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    kstr_t metadata;
    int16_t error; /* out */
} txn_offset_item_t;

/* TxnOffsetCommit: keeps the offsets with the transaction until EndTxn. Returns a request-level
 * error applied to every item, else sets each item's error. */
int16_t txn_offset_commit(txn_coordinator_t *tc, kstr_t transactional_id, kstr_t group_id, int64_t pid,
                          int16_t epoch, txn_offset_item_t *items, int n);

/* EndTxn: commit or abort. On one node the markers are written to every partition before it
 * returns; in cluster mode it returns once PrepareCommit/PrepareAbort is appended, and the markers
 * and CompleteCommit/CompleteAbort follow asynchronously. */
int16_t txn_end(txn_coordinator_t *tc, kstr_t transactional_id, int64_t pid, int16_t epoch, bool commit);

typedef struct txn_view {
    kstr_t transactional_id;
    int status;
    int32_t timeout_ms;
    int64_t start_ms; /* -1 when no transaction is open */
    int64_t last_update_ms;
    int64_t producer_id;
    int16_t epoch;
    int n_partitions;
    const txn_partition_ref_t *partitions; /* coordinator's memory, valid until the next call */
} txn_view_t;

/* 1 with *out filled, 0 unknown. */
int txn_describe(txn_coordinator_t *tc, kstr_t transactional_id, txn_view_t *out);
/* Calls cb for every transactional id. */
void txn_foreach(txn_coordinator_t *tc, void (*cb)(void *arg, const txn_view_t *v), void *arg);

/* Cluster mode: producer ids are sequence * TXN_PID_TAG_SPACE + (broker id % TXN_PID_TAG_SPACE), so
 * brokers handing out ids on their own never collide. Call before txn_coordinator_load, which then
 * only reserves the producer-id block: transactional ids are loaded per __transaction_state
 * partition when this broker comes to lead it (txn_coordinator_elected). */
#define TXN_PID_TAG_SPACE 1048576
void txn_coordinator_set_cluster_mode(txn_coordinator_t *tc, int32_t broker_id);
/* Cluster mode: the cluster view (partition leaders) and the client to the other brokers the
 * markers go through. */
struct cluster;
struct broker_client;
void txn_coordinator_set_peers(txn_coordinator_t *tc, struct cluster *cluster, struct broker_client *peers);
/* Whether this broker coordinates the transactional id (always on a single node). */
bool txn_coordinator_owns(txn_coordinator_t *tc, kstr_t transactional_id);
/* Cluster mode: this broker became the leader of __transaction_state partition p: replays it, takes
 * p's leader epoch as its coordinator epoch, and completes the transactions it finds in
 * PrepareCommit/PrepareAbort (markers sent again). Ongoing ones stay open (their offsets are pending
 * in __consumer_offsets); they time out as usual. */
void txn_coordinator_elected(txn_coordinator_t *tc, partition_t *p);
/* ...and no longer leads it: its transactional ids are unloaded, markers in flight dropped. */
void txn_coordinator_resigned(txn_coordinator_t *tc, int32_t partition);
/* The __transaction_state partition holding the id, NULL when the topic does not exist (handlers
 * wait for its high watermark before answering in cluster mode). */
partition_t *txn_coordinator_log_partition(txn_coordinator_t *tc, kstr_t transactional_id);

/* The __transaction_state partition of a transactional id among npartitions. */
int32_t txn_partition_for(const char *id, size_t len, int32_t npartitions);
/* The __transaction_state partition of a transactional id (the topic's partition count when it
 * exists, else transaction.state.log.num.partitions). */
int32_t txn_coordinator_partition(txn_coordinator_t *tc, kstr_t transactional_id);

/* Record codec (exposed for tests). */
void txn_log_put_key(buf_t *b, kstr_t id);
void txn_log_put_value(buf_t *b, const txn_view_t *v);
/* 0 with *id, or -1 (malformed / unknown version). */
int txn_log_decode_key(const uint8_t *p, size_t len, kstr_t *id);
/* 0 with *v (partitions decoded into a malloc'd array *parts the caller frees), or -1. */
int txn_log_decode_value(const uint8_t *p, size_t len, txn_view_t *v, txn_partition_ref_t **parts);

#endif
