/*
 * cluster.h - cluster mode (zookeeper.connect set): the loop thread's view of
 * the cluster - live brokers, the controller, each partition's replicas,
 * leader and ISR - kept from the ZooKeeper store's snapshots (zk_store.h),
 * and topic creation through the store.
 *
 * Topics found in ZooKeeper are opened in the local image (topics.h) with
 * their ZooKeeper topic id, so every request path keeps working unchanged;
 * this module only adds who leads what. A topic that exists only locally
 * (no ZooKeeper state, e.g. __consumer_offsets) is treated as led here.
 * Without zookeeper.connect no cluster_t exists and nothing here runs.
 *
 * @locality: owned by the event-loop thread.
 */
#ifndef RUNNEL_CLUSTER_H
#define RUNNEL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "cluster/zk_store.h"
#include "common/config.h"
#include "net/evloop.h"

typedef struct cluster cluster_t;
typedef struct cluster_op cluster_op_t;

typedef struct cluster_options {
    const broker_config_t *config; /* zookeeper.connect, zookeeper.*.timeout.ms */
    int32_t broker_id;
    const char *listener_name;
    const char *host; /* advertised host and port, registered in /brokers/ids */
    int32_t port;
} cluster_options_t;

/* Connects to ZooKeeper (blocking, before the loop runs). cluster_id[23] is the id to use when
 * the cluster has none yet and receives the cluster's id. NULL with err set on failure. */
cluster_t *cluster_open(const cluster_options_t *o, char cluster_id[23], char *err, size_t errlen);
/* Watches the store on the loop, registers the broker and starts following ZooKeeper. */
int cluster_start(cluster_t *c, evloop_t *loop, topics_t *topics);
/* Deregisters (closes the session) and frees. Pending operations are dropped unanswered. */
void cluster_close(cluster_t *c);

int32_t cluster_controller_id(const cluster_t *c);
/* Live brokers, by id. */
int cluster_broker_count(const cluster_t *c);
const zk_broker_t *cluster_broker_at(const cluster_t *c, int i);
/* A partition's replicas, leader and ISR as ZooKeeper has them; NULL for a topic (or partition)
 * ZooKeeper does not know. */
const zk_partition_t *cluster_partition(const cluster_t *c, const char *topic, int32_t partition);
/* KERR_NONE when this broker leads the partition (or it is local-only), else
 * NOT_LEADER_OR_FOLLOWER, or LEADER_NOT_AVAILABLE while it has no leader. */
int16_t cluster_check_leader(const cluster_t *c, const topic_t *tp, int32_t partition);

/* Kafka's replica assignment without racks: partition p's first replica is
 * brokers[(start + p) % n], the others follow at a shift that grows every n
 * partitions. out receives npartitions * rf ids. Returns 0, or -1 if rf > n or
 * an argument is out of range. */
int cluster_assign_replicas(const int32_t *brokers, int nbrokers, int32_t npartitions, int rf, int start,
                            int shift, int32_t *out);
/* The same for partitions first .. first + count - 1 only (Kafka's startPartitionId): the shift
 * grows at each multiple of n among them. cluster_assign_replicas is first = 0. */
int cluster_assign_replicas_from(const int32_t *brokers, int nbrokers, int32_t first, int32_t count, int rf,
                                 int start, int shift, int32_t *out);
/* Checks one partition's replica list given in a request (Kafka's rules): not empty, rf long, no
 * broker twice, every broker live. KERR_NONE, or INVALID_REPLICA_ASSIGNMENT with msg set. */
int16_t cluster_check_assignment(const cluster_t *c, const int32_t *ids, int n, int rf, int32_t partition,
                                 char *msg, size_t msglen);

/* Creates a topic in ZooKeeper with replicas spread over the live brokers.
 * Returns an operation that calls done(arg, error, message) on the loop once
 * the topic is in this broker's image (or failed), or NULL with *err and msg
 * set when it fails at once (INVALID_REPLICATION_FACTOR, ...). overrides is
 * only read. */
cluster_op_t *cluster_create_topic(cluster_t *c, const char *name, int32_t npartitions, int32_t rf,
                                   const topic_config_t *overrides,
                                   void (*done)(void *arg, int16_t error, const char *message), void *arg,
                                   int16_t *err, char *msg, size_t msglen);
/* Whether ZooKeeper has this topic (as of the latest snapshot). */
bool cluster_knows_topic(const cluster_t *c, const char *name);
/* Asks the controller to delete a topic (/admin/delete_topics/<t>). done(arg, error, message) runs
 * once the topic has left ZooKeeper and this broker (its data deleted), or at once on failure.
 * NULL when out of memory. */
cluster_op_t *cluster_delete_topic(cluster_t *c, const char *name,
                                   void (*done)(void *arg, int16_t error, const char *message), void *arg);
/* After a local config change of a topic ZooKeeper knows: stores its overrides in
 * /config/topics/<t> with a change notification, so every broker applies them. */
void cluster_topic_config_changed(cluster_t *c, const topic_t *tp);
/* leader(arg, p, true/false) when this broker starts or stops leading partition p; set before
 * cluster_start. */
void cluster_set_leadership_hook(cluster_t *c, void (*cb)(void *arg, partition_t *p, bool leader), void *arg);
/* Creates an internal compacted topic (__consumer_offsets, __transaction_state) in ZooKeeper unless
 * ZooKeeper has it or a creation is under way: replication factor rf (refused while fewer brokers
 * are live, as Kafka does), cleanup.policy=compact, the given segment.bytes. Returns true when the
 * topic exists in this broker's image. */
bool cluster_ensure_internal_topic(cluster_t *c, const char *name, int32_t npartitions, int32_t rf,
                                   int64_t segment_bytes);
/* The replication state (metrics); NULL before cluster_start. */
struct replication *cluster_replication(const cluster_t *c);
/* The requester went away: done will not be called. */
void cluster_op_cancel(cluster_t *c, cluster_op_t *op);

/* Topics ZooKeeper has, as of the latest snapshot (for requests on every partition). */
int cluster_topic_count(const cluster_t *c);
const zk_topic_t *cluster_topic_at(const cluster_t *c, int i);
/* One topic as ZooKeeper has it in the latest snapshot, or NULL. */
const zk_topic_t *cluster_topic(const cluster_t *c, const char *name);

/* Adds partitions to a topic ZooKeeper knows, up to count: assignment holds (count - current) * rf
 * broker ids already checked with cluster_check_assignment, or is NULL for Kafka's assignment
 * (round robin over the live brokers, continuing the topic's pattern). done(arg, error, message)
 * runs once this broker's image has the new partitions, or at once on failure. NULL with *err and
 * msg set when it fails at once (INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, ...). */
cluster_op_t *cluster_create_partitions(cluster_t *c, const char *name, int32_t count, const int32_t *assignment,
                                        void (*done)(void *arg, int16_t error, const char *message), void *arg,
                                        int16_t *err, char *msg, size_t msglen);
/* Leader elections (the ElectLeaders API) for n partitions, made through ZooKeeper by this
 * broker's worker (zk_store_elect_leaders). done(arg, results, n) runs on the loop with the entries
 * and their results once this broker's snapshot shows them. NULL when out of memory. */
cluster_op_t *cluster_elect_leaders(cluster_t *c, zk_election_type_t type, const zk_election_t *targets, int n,
                                    void (*done)(void *arg, const zk_election_t *results, int n), void *arg);

/* Controlled shutdown (controlled.shutdown.enable): this broker stops following its leaders
 * (Kafka's StopReplica) and has its worker move the leadership of the partitions it leads to other
 * live in-sync replicas (zk_store_controlled_shutdown); done(arg) runs on the loop once the
 * snapshots show it leads no partition that has another live ISR member, or after
 * controlled.shutdown.max.retries attempts controlled.shutdown.retry.backoff.ms apart. The loop
 * keeps serving meanwhile. Returns -1 (done not called) when disabled or already under way. */
int cluster_controlled_shutdown(cluster_t *c, void (*done)(void *arg), void *arg);

#endif
