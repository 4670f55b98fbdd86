/*
 * group_coordinator.h - the consumer group coordinator (Kafka's classic
 * group protocol) and the committed-offsets store behind it.
 *
 * Each group runs Kafka's state machine
 *
 *   Empty -> PreparingRebalance -> CompletingRebalance -> Stable
 *     ^            ^  |                  |                  |
 *     +------------+--+------------------+------------------+   (and Dead)
 *
 * with generation ids, member ids (MEMBER_ID_REQUIRED for v4+ joins),
 * static members (group.instance.id), protocol selection by vote, the leader
 * as first joiner, and timers for session timeouts, the rebalance timeout,
 * group.initial.rebalance.delay.ms and members that never send SyncGroup.
 * JoinGroup and SyncGroup are delayed operations: the caller passes a
 * group_waiter_t that is answered, now or later, exactly once, unless the
 * caller cancels it first (group_waiter_cancel, e.g. when its connection
 * closes).
 *
 * Offsets and group metadata are appended to the compacted internal topic
 * __consumer_offsets in Kafka's record format (group_log.h) and replayed
 * from it at start-up (group_coordinator_load).
 *
 * Strings and bytes passed in are borrowed for the duration of the call;
 * the coordinator copies what it keeps. Results and views point into the
 * coordinator's memory and are valid until the next call into it.
 *
 * @locality: everything runs on the broker's event-loop thread; no locking.
 */
#ifndef RUNNEL_GROUP_COORDINATOR_H
#define RUNNEL_GROUP_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "common/config.h"
#include "net/evloop.h"
#include "protocol/kmsg.h"

/* Kafka error codes of the group protocol (Kafka's numbering). */
enum group_kerr {
    GROUP_KERR_OFFSET_METADATA_TOO_LARGE = 12,
    GROUP_KERR_COORDINATOR_NOT_AVAILABLE = 15,
    GROUP_KERR_ILLEGAL_GENERATION = 22,
    GROUP_KERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    GROUP_KERR_INVALID_GROUP_ID = 24,
    GROUP_KERR_UNKNOWN_MEMBER_ID = 25,
    GROUP_KERR_INVALID_SESSION_TIMEOUT = 26,
    GROUP_KERR_REBALANCE_IN_PROGRESS = 27,
    GROUP_KERR_NON_EMPTY_GROUP = 68,
    GROUP_KERR_GROUP_ID_NOT_FOUND = 69,
    GROUP_KERR_MEMBER_ID_REQUIRED = 79,
    GROUP_KERR_GROUP_MAX_SIZE_REACHED = 81,
    GROUP_KERR_FENCED_INSTANCE_ID = 82,
    GROUP_KERR_GROUP_SUBSCRIBED_TO_TOPIC = 86,
};

/* Kafka's offset.metadata.max.bytes default: longer commit metadata is refused. */
#define GROUP_OFFSET_METADATA_MAX_BYTES 4096

typedef struct group_coordinator group_coordinator_t;
typedef struct group_member group_member_t;

/* Creates the coordinator. topics may be NULL (nothing is persisted: unit tests). */
group_coordinator_t *group_coordinator_create(evloop_t *loop, topics_t *topics,
                                              const broker_config_t *config);
/* Replays __consumer_offsets (if it exists) into groups and offsets. Groups with
 * members come back Stable, their members evicted after their session timeout
 * unless they heartbeat. 0, or -1 when a partition could not be read (what was
 * read is kept). */
int group_coordinator_load(group_coordinator_t *gc);
/* Cluster mode: this broker coordinates only the groups of the __consumer_offsets partitions it
 * leads; nothing is loaded at start-up (group_coordinator_load does nothing). */
void group_coordinator_set_cluster_mode(group_coordinator_t *gc);
/* Whether this broker coordinates the group (always on a single node). */
bool group_coordinator_owns(group_coordinator_t *gc, kstr_t group_id);
/* Cluster mode: this broker became the leader of __consumer_offsets partition p: replays it and
 * coordinates its groups. */
void group_coordinator_elected(group_coordinator_t *gc, partition_t *p);
/* ...and no longer leads it: its groups are unloaded (waiting members answered with an error that
 * sends them to the new coordinator). */
void group_coordinator_resigned(group_coordinator_t *gc, int32_t partition);
/* Answers every waiting request with COORDINATOR_NOT_AVAILABLE and frees everything. */
void group_coordinator_destroy(group_coordinator_t *gc);
/* Creates __consumer_offsets (offsets.topic.num.partitions partitions, compacted)
 * when it does not exist yet. 0, or a Kafka error code. */
int16_t group_coordinator_ensure_topic(group_coordinator_t *gc);
/* The __consumer_offsets partition that holds a group. */
int32_t group_coordinator_partition(group_coordinator_t *gc, kstr_t group_id);
/* Expires offsets (offsets.retention.minutes) and removes empty groups without
 * offsets, writing tombstones; also run by a timer every
 * offsets.retention.check.interval.ms. Returns the number of offsets expired. */
int group_coordinator_expire(group_coordinator_t *gc, int64_t now_wall_ms);
int group_coordinator_group_count(const group_coordinator_t *gc);

/* ---- JoinGroup / SyncGroup (delayed) ---- */

typedef struct group_join_member {
    kstr_t member_id;
    kstr_t instance_id;
    kbytes_t metadata;
} group_join_member_t;

typedef struct group_result {
    int16_t error;
    /* JoinGroup */
    int32_t generation_id;
    kstr_t protocol_type; /* null when none */
    kstr_t protocol_name; /* null when none */
    kstr_t leader_id;
    kstr_t member_id;
    bool skip_assignment;
    int n_members;        /* the leader's view of every member, else 0 */
    const group_join_member_t *members;
    /* SyncGroup */
    kbytes_t assignment;
} group_result_t;

typedef struct group_waiter group_waiter_t;
struct group_waiter {
    /* Called once with the answer; the waiter is detached before the call, so
     * the callee may free it. */
    void (*done)(group_waiter_t *w, const group_result_t *res);
    void *arg;
    group_member_t *member; /* coordinator's: the member it waits as; NULL once answered */
    bool is_sync;           /* coordinator's */
};

typedef struct group_protocol_in {
    kstr_t name;
    kbytes_t metadata;
} group_protocol_in_t;

typedef struct group_join_params {
    kstr_t group_id;
    kstr_t member_id;   /* "" for a new member */
    kstr_t instance_id; /* null for a dynamic member */
    kstr_t protocol_type;
    kstr_t client_id;
    const char *client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms; /* -1: as the session timeout (v0) */
    int16_t api_version;          /* v4+: new dynamic members get MEMBER_ID_REQUIRED first */
    int n_protocols;
    const group_protocol_in_t *protocols;
} group_join_params_t;

void group_join(group_coordinator_t *gc, const group_join_params_t *p, group_waiter_t *w);

typedef struct group_assignment_in {
    kstr_t member_id;
    kbytes_t assignment;
} group_assignment_in_t;

typedef struct group_sync_params {
    kstr_t group_id;
    int32_t generation_id;
    kstr_t member_id;
    kstr_t instance_id;
    kstr_t protocol_type; /* null: not sent (before v5) */
    kstr_t protocol_name; /* null: not sent */
    int n_assignments;
    const group_assignment_in_t *assignments;
} group_sync_params_t;

void group_sync(group_coordinator_t *gc, const group_sync_params_t *p, group_waiter_t *w);

/* Withdraws a waiter that has not been answered (its request is gone). */
void group_waiter_cancel(group_coordinator_t *gc, group_waiter_t *w);

/* ---- Heartbeat / LeaveGroup ---- */

int16_t group_heartbeat(group_coordinator_t *gc, kstr_t group_id, int32_t generation_id,
                        kstr_t member_id, kstr_t instance_id);
/* One leaving member: by member id, or (v3+) by instance id with or without member id. */
int16_t group_leave(group_coordinator_t *gc, kstr_t group_id, kstr_t member_id, kstr_t instance_id,
                    kstr_t reason);

/* ---- offsets ---- */

typedef struct group_commit_item {
    kstr_t topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    kstr_t metadata;    /* null: none */
    int64_t commit_ts;  /* -1: now */
    int64_t expire_ts;  /* -1: none */
    int16_t error;      /* out; items already non-zero on entry are skipped */
} group_commit_item_t;

typedef struct group_commit_params {
    kstr_t group_id;
    int32_t generation_id; /* -1 with an empty member id: a simple (standalone) commit */
    kstr_t member_id;
    kstr_t instance_id;
    /* Offsets of a committed transaction (TxnOffsetCommit, written at EndTxn): no membership or
     * generation check, as Kafka applies them when the commit marker lands. */
    bool transactional;
} group_commit_params_t;

/* Validates membership and generation as Kafka does, refuses unknown topic
 * partitions and oversized metadata, and appends the rest in one batch.
 * Every item's error is set. */
void group_commit(group_coordinator_t *gc, const group_commit_params_t *p, group_commit_item_t *items,
                  int n);

/* ---- transactional offsets (cluster mode: TxnOffsetCommit at the group coordinator) ---- */

typedef struct group_txn_commit_params {
    kstr_t group_id;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t generation_id; /* -1: not checked */
    kstr_t member_id;      /* ""/null: not checked */
    kstr_t instance_id;
} group_txn_commit_params_t;

/* TxnOffsetCommit, as Kafka's group coordinator takes it (the group is created when unknown; a
 * member id and generation are checked when given): the offsets are appended to the group's
 * __consumer_offsets partition as one transactional batch of the producer, and stay pending
 * (invisible to OffsetFetch) until the producer's marker reaches that partition. A replay of the
 * partition rebuilds them the same way. Every item's error is set. */
void group_txn_commit(group_coordinator_t *gc, const group_txn_commit_params_t *p, group_commit_item_t *items,
                      int n);
/* A COMMIT or ABORT marker of producer_id was written to __consumer_offsets partition `partition`:
 * the producer's pending offsets of the groups there become committed offsets, or are dropped. */
void group_coordinator_txn_complete(group_coordinator_t *gc, int32_t partition, int64_t producer_id, bool commit);
/* Whether an open transaction holds an offset of the group for this topic partition. */
bool group_has_pending_txn_offset(group_coordinator_t *gc, kstr_t group_id, kstr_t topic, int32_t partition);

typedef struct group_offset_view {
    kstr_t topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    kstr_t metadata;
} group_offset_view_t;

/* The committed offset of one partition: 1 with *out filled, 0 when none. */
int group_fetch_offset(group_coordinator_t *gc, kstr_t group_id, kstr_t topic, int32_t partition,
                       group_offset_view_t *out);
/* Every committed offset of a group sorted by topic and partition: fills up
 * to cap views and returns how many there are in all (0 for unknown groups). */
int group_fetch_all_offsets(group_coordinator_t *gc, kstr_t group_id, group_offset_view_t *out, int cap);

typedef struct group_offset_delete_item {
    kstr_t topic;
    int32_t partition;
    int16_t error; /* out */
} group_offset_delete_item_t;

/* OffsetDelete. Returns the group-level error; item errors are set when it is 0. */
int16_t group_delete_offsets(group_coordinator_t *gc, kstr_t group_id, group_offset_delete_item_t *items,
                             int n);

/* ---- ListGroups / DescribeGroups / DeleteGroups ---- */

typedef struct group_listing {
    kstr_t group_id;
    kstr_t protocol_type; /* "" when none */
    kstr_t state;         /* "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead" */
} group_listing_t;

/* Fills up to cap listings; returns the number of groups. */
int group_list(group_coordinator_t *gc, group_listing_t *out, int cap);

typedef struct group_member_view {
    kstr_t member_id;
    kstr_t instance_id;
    kstr_t client_id;
    kstr_t client_host;
    kbytes_t metadata;   /* empty unless Stable */
    kbytes_t assignment; /* empty unless Stable */
} group_member_view_t;

typedef struct group_description {
    kstr_t state;         /* "Dead" for an unknown group */
    kstr_t protocol_type; /* "" when none */
    kstr_t protocol_name; /* "" unless Stable */
    int n_members;
} group_description_t;

/* Describes a group (Kafka's summary): fills up to cap members; returns n_members. */
int group_describe(group_coordinator_t *gc, kstr_t group_id, group_description_t *d,
                   group_member_view_t *members, int cap);

/* DeleteGroups for one group: 0, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP or INVALID_GROUP_ID. */
int16_t group_delete(group_coordinator_t *gc, kstr_t group_id);

#endif
