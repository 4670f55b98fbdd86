/*
 * replication.h - cluster mode: partitions replicated as a leader and
 * followers, as Kafka does it.
 *
 * The controller and ZooKeeper decide who leads (cluster.c applies each
 * partition state znode here). A follower copies from its leader with the
 * Fetch API (ReplicaId = its broker id), one connection and one fetch in
 * flight per leader broker, appending the leader's batches unchanged (same
 * offsets, same leader epochs). The leader learns each follower's log end
 * from the fetch offset, moves the high watermark to the smallest log end in
 * the ISR, adds a follower to the ISR once it has caught up and removes it
 * after replica.lag.time.max.ms without catching up; ISR changes are written
 * to the state znode by the leader (conditional on the leader epoch, as
 * Kafka's leaders do). Consumers read up to the high watermark; acks=all
 * produces wait for it (handlers_produce.c).
 *
 * Divergence after a leader change: each replica keeps Kafka's leader epoch
 * cache (leader-epoch-checkpoint). The follower sends the epoch of its last
 * batch with each fetch; a leader whose history differs answers with the
 * diverging epoch and where it ends, and the follower truncates there.
 *
 * @locality: the event-loop thread.
 */
#ifndef RUNNEL_REPLICATION_H
#define RUNNEL_REPLICATION_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "cluster/zk_store.h"
#include "common/config.h"
#include "net/evloop.h"

typedef struct replication replication_t;
typedef struct repl_partition repl_partition_t;

/* Writes an ISR change of a partition this broker leads (to ZooKeeper). */
typedef void (*repl_isr_writer_t)(void *arg, const char *topic, int32_t partition, int32_t leader_epoch,
                                  const int32_t *isr, int nisr);

replication_t *replication_new(evloop_t *loop, topics_t *topics, const broker_config_t *config, int32_t broker_id,
                               repl_isr_writer_t write_isr, void *write_isr_arg);
/* Closes the fetch connections; partitions keep their state until freed with their topics. */
void replication_free(replication_t *r);

/* Called when this broker becomes or stops being the leader of a partition (the group and
 * transaction coordinators follow their internal topics' leadership). */
typedef void (*repl_leadership_cb_t)(void *arg, partition_t *p, bool leader);
void replication_set_leadership_hook(replication_t *r, repl_leadership_cb_t cb, void *arg);

/* The live brokers changed (addresses of leaders to fetch from). */
void replication_set_brokers(replication_t *r, const zk_broker_t *brokers, int n);
/* ZooKeeper's state of one partition, after every snapshot: becomes leader, follower or neither;
 * leader epoch and ISR. */
void replication_apply(replication_t *r, partition_t *p, const zk_partition_t *zp);

/* ---- the leader's side ---- */

/* A follower's fetch, before it is answered: records the follower's log end (fetch_offset), may
 * move the high watermark and add it to the ISR. Returns a Kafka error code (NOT_LEADER_OR_FOLLOWER
 * when this broker does not lead or the replica is not assigned). With last_fetched_epoch >= 0,
 * diverging_epoch and diverging_end receive where the follower's history leaves the leader's
 * (epoch -1: it does not); the follower's log end is then not taken. */
int16_t repl_follower_fetch(partition_t *p, int32_t replica_id, int64_t fetch_offset, int32_t last_fetched_epoch,
                            int32_t *diverging_epoch, int64_t *diverging_end);
/* Whether a follower's history (its last batch's epoch and its log end) leaves the leader's; then
 * epoch and end_offset receive the leader's epoch there and where it ends. */
bool repl_diverging(partition_t *p, int32_t last_fetched_epoch, int64_t fetch_offset, int32_t *epoch,
                    int64_t *end_offset);
/* The in-sync replicas the leader counts now (1 without replication). */
int repl_isr_size(const partition_t *p);
/* Called by partition_append after every local append to a partition with repl state. */
void repl_leader_appended(partition_t *p);
/* This broker leads the partition (always true without replication state). */
bool repl_is_leader(const partition_t *p);

/* OffsetForLeaderEpoch: the largest epoch <= requested and where it ends (-1, -1 when unknown). */
void repl_end_offset_for(partition_t *p, int32_t requested_epoch, int32_t *epoch, int64_t *end_offset);

/* Metrics: this broker leads the partition and its ISR is smaller than its replica set. */
bool repl_under_replicated(const partition_t *p);
/* Metrics: ISR shrinks and expansions of partitions led here since start-up (NULL: none). */
void replication_isr_changes(const replication_t *r, uint64_t *shrinks, uint64_t *expands);

/* Frees a partition's replication state (topics.c, when the partition goes). */
void repl_partition_free(partition_t *p);

/* ---- waiting for the high watermark (acks=all-like waits of the coordinators) ---- */

typedef struct repl_hw_wait repl_hw_wait_t;
struct repl_hw_wait {
    /* Set by the caller: called once, later, with 0, NOT_LEADER_OR_FOLLOWER (this broker stopped
     * leading the partition, or the partition went away) or REQUEST_TIMED_OUT. */
    void (*done)(repl_hw_wait_t *w, int16_t err);
    void *arg;
    /* private */
    evloop_t *loop;
    partition_t *p;
    int64_t target;
    partition_waiter_t pw;
    ev_defer_t recheck;
    ev_timer_t timer;
    bool armed, gone;
};

/* Waits until the high watermark of p reaches target. 0 when it already has (done is not
 * called), 1 when waiting (done will be called unless cancelled). */
int repl_hw_wait_start(repl_hw_wait_t *w, evloop_t *loop, partition_t *p, int64_t target, int64_t timeout_ms);
/* Stops waiting; done will not be called. Harmless on a wait that is not armed. */
void repl_hw_wait_cancel(repl_hw_wait_t *w);

#endif
