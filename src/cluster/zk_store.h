/*
 * zk_store.h - the ZooKeeper metadata backend (cluster mode), in Kafka's
 * znode layout under the chroot of zookeeper.connect:
 *
 *   /cluster/id                                  {"version":"1","id":"<cluster id>"}
 *   /brokers/ids/<id>             (ephemeral)    {"version":5,"host":..,"port":..,"endpoints":[..],..}
 *   /controller                   (ephemeral)    {"version":1,"brokerid":N,"timestamp":".."}
 *   /controller_epoch                            "<epoch>"
 *   /brokers/topics/<t>                          {"version":3,"partitions":{"0":[1,2]},"topic_id":".."}
 *   /brokers/topics/<t>/partitions/<p>/state     {"controller_epoch":..,"leader":..,"leader_epoch":..,
 *                                                 "isr":[..],"version":1}
 *   /config/topics/<t>                           {"version":1,"config":{"k":"v"}}
 *   /admin/preferred_replica_election            {"version":1,"partitions":[{"topic":"t","partition":0}]}
 *
 * Every ZooKeeper call runs on one worker thread of this module (the
 * synchronous libzookeeper-mt API); watches and session events only set
 * flags for it. Results reach the event loop as zk_event_t snapshots through
 * a queue and an eventfd (zk_store_event_fd / zk_store_poll), so the loop
 * never blocks on ZooKeeper and all metadata changes happen on its thread.
 *
 * @locality: zk_store_open/close and zk_store_poll on the loop thread;
 * the queueing calls (zk_store_create_topic, _delete_topic, _set_topic_config,
 * _set_isr, _elect_leaders, _controlled_shutdown, _add_partitions) may be
 * called from the loop thread at any time; they take the store's mutex.
 *
 * Besides the controller's duties (electing leaders when brokers come and go,
 * completing topics, deletions, the periodic leader rebalance and Kafka's
 * /admin/preferred_replica_election), any broker's worker writes partition
 * states for ElectLeaders and for its own controlled shutdown: those writes
 * are multi-ops conditional on the state znode's version and on
 * /controller_epoch's znode version, so they never cross a controller change.
 */
#ifndef RUNNEL_ZK_STORE_H
#define RUNNEL_ZK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZK_MAX_REPLICAS 16

typedef struct zk_store zk_store_t;

typedef struct zk_broker {
    int32_t id;
    char host[256];
    int32_t port;
} zk_broker_t;

typedef struct zk_partition {
    int32_t replicas[ZK_MAX_REPLICAS];
    int nreplicas;
    int32_t leader; /* -1: no state znode yet */
    int32_t leader_epoch;
    int32_t controller_epoch;
    int32_t isr[ZK_MAX_REPLICAS];
    int nisr;
} zk_partition_t;

typedef struct zk_topic {
    char name[256];
    char id[23];    /* Kafka's base64 topic id, "" when the znode has none */
    int32_t npartitions;
    zk_partition_t *partitions;
    char *config_json; /* the "config" object of /config/topics/<t>, NUL-terminated, or NULL */
} zk_topic_t;

/* Leader elections asked for by the ElectLeaders API (Kafka's ElectionType values). */
typedef enum { ZK_ELECT_PREFERRED = 0, ZK_ELECT_UNCLEAN = 1 } zk_election_type_t;

typedef enum {
    ZK_ELECTED,             /* a new leader was written (leader) */
    ZK_ELECT_NOT_NEEDED,    /* the preferred replica leads already / a live leader exists (unclean) */
    ZK_ELECT_NOT_AVAILABLE, /* the preferred replica is not live or not in the ISR / no replica is live */
    ZK_ELECT_UNKNOWN,       /* ZooKeeper has no such topic or partition */
    ZK_ELECT_FAILED,        /* a ZooKeeper error, or the state kept changing under the write */
} zk_elect_result_t;

/* One partition of an election request and, in the ZK_EV_DONE event, its result. */
typedef struct zk_election {
    char topic[256];
    int32_t partition;
    zk_elect_result_t result;
    int32_t leader; /* the leader after the election (-1: none) */
} zk_election_t;

typedef enum {
    ZK_EV_BROKERS,    /* brokers/nbrokers: every registered broker, by id */
    ZK_EV_CONTROLLER, /* controller_id (-1: none), controller_epoch */
    ZK_EV_TOPICS,     /* topics/ntopics: every topic with its assignment and partition states */
    ZK_EV_DONE,       /* a queued creation or deletion request: token, error (Kafka's code), message */
} zk_event_type_t;

typedef struct zk_event {
    struct zk_event *next;
    zk_event_type_t type;
    zk_broker_t *brokers;
    int nbrokers;
    int32_t controller_id, controller_epoch;
    zk_topic_t *topics;
    int ntopics;
    uint64_t token;
    int16_t error;
    char message[256];
    zk_election_t *elections; /* ZK_EV_DONE of zk_store_elect_leaders: the request's entries with results */
    int nelections;
} zk_event_t;

typedef struct zk_store_options {
    const char *connect;    /* host:port[,host:port...][/chroot] */
    int session_timeout_ms;
    int connect_timeout_ms;
    int32_t broker_id;
    const char *listener_name;
    const char *host; /* advertised */
    int32_t port;
    bool auto_rebalance;           /* auto.leader.rebalance.enable */
    int64_t rebalance_interval_ms; /* leader.imbalance.check.interval.seconds, in ms */
    int imbalance_pct;             /* leader.imbalance.per.broker.percentage */
    bool unclean;                  /* unclean.leader.election.enable (topics may override it) */
} zk_store_options_t;

/* Splits host:port[,...][/chroot]: the host list into hosts, the chroot ("" for none, no trailing
 * slash) into chroot. Returns -1 if a part does not fit or the chroot is malformed. */
int zk_store_split_connect(const char *connect, char *hosts, size_t hosts_len, char *chroot, size_t chroot_len);

/* Connects (waiting up to connect_timeout_ms), creates the chroot and Kafka's top-level znodes,
 * and reads /cluster/id, creating it from cluster_id when missing; cluster_id[23] receives the
 * cluster's id. Blocking: call before the loop runs. NULL with err set on failure. */
zk_store_t *zk_store_open(const zk_store_options_t *o, char cluster_id[23], char *err, size_t errlen);
/* Starts the worker: registers this broker, runs the controller election and sends the first
 * snapshots. on_event runs on the loop thread from zk_store_poll and takes the event over (it
 * frees it with zk_event_free, or keeps it). */
int zk_store_start(zk_store_t *s, void (*on_event)(void *arg, zk_event_t *ev), void *arg);
/* Readable when events wait; then call zk_store_poll. */
int zk_store_event_fd(const zk_store_t *s);
void zk_store_poll(zk_store_t *s);
/* Queues a topic creation: /config/topics/<t>, then /brokers/topics/<t> with its partitions and
 * their states in one multi-op (leader = first replica, isr = all replicas). assignment holds
 * npartitions * rf broker ids. config_json is the "config" object text. The ZK_EV_DONE event
 * with this token follows the ZK_EV_TOPICS snapshot that includes the topic. */
int zk_store_create_topic(zk_store_t *s, const char *name, const char *id, int32_t npartitions, int rf,
                          const int32_t *assignment, const char *config_json, uint64_t token);
/* Queues a deletion request (/admin/delete_topics/<t>, Kafka's); ZK_EV_DONE with this token says
 * it is recorded. The controller then removes the topic's znodes, and the topic leaves the next
 * ZK_EV_TOPICS snapshots. */
int zk_store_delete_topic(zk_store_t *s, const char *name, uint64_t token);
/* Queues a topic config change: /config/topics/<t> gets {"version":1,"config":<config_json>} and
 * a /config/changes/config_change_<seq> notification makes every broker re-read it. */
int zk_store_set_topic_config(zk_store_t *s, const char *name, const char *config_json);
/* Queues a leader's ISR change of one partition: written to its state znode (same leader, epoch
 * and controller epoch, conditional on the znode's version) only while the znode still names this
 * broker as leader at leader_epoch; the next ZK_EV_TOPICS snapshot shows the result. */
int zk_store_set_isr(zk_store_t *s, const char *name, int32_t partition, int32_t leader_epoch, const int32_t *isr,
                     int nisr);
/* Queues leader elections (the ElectLeaders API) for n partitions, made by this broker's worker
 * whether or not it is the controller: each state znode write is conditional on its version and on
 * /controller_epoch being unchanged (a multi-op), and carries the current controller epoch.
 * Preferred: the first replica leads (new leader epoch, same ISR) when it is live and in the ISR.
 * Unclean: a partition whose leader is not live gets the first live ISR member, or else the first
 * live replica with the ISR reduced to it. ZK_EV_DONE with this token carries the n entries with
 * their results, after the ZK_EV_TOPICS snapshot showing them. */
int zk_store_elect_leaders(zk_store_t *s, zk_election_type_t type, const zk_election_t *targets, int n,
                           uint64_t token);
/* Queues this broker's controlled shutdown (Kafka's, done by its own worker rather than by the
 * controller): each partition it leads with another live ISR member moves to the first such replica
 * of the assignment (new leader epoch, the ISR without this broker); it leaves the ISR of the
 * partitions it follows (same leader epoch). Writes are conditional as in zk_store_elect_leaders.
 * From then on the worker no longer rebalances leaders. ZK_EV_DONE with this token follows the
 * snapshot showing the result; error is NONE, message says how many partitions moved. */
int zk_store_controlled_shutdown(zk_store_t *s, uint64_t token);
/* Queues adding partitions to a topic that has old_count: /brokers/topics/<t> gets the assignment
 * extended with assignment ((new_count - old_count) * rf ids), and each new partition its state
 * (first replica leading, all replicas in the ISR), in one multi-op conditional on the topic
 * znode's version. ZK_EV_DONE with this token follows the snapshot holding the new partitions
 * (INVALID_PARTITIONS when the topic no longer has old_count partitions). */
int zk_store_add_partitions(zk_store_t *s, const char *name, int32_t old_count, int32_t new_count, int rf,
                            const int32_t *assignment, uint64_t token);

/* ---- the controller's choices (pure, for the worker and the tests) ---- */

/* One partition after broker changes: when the leader is not among the live brokers (or there is
 * none, -1), the first live ISR member leads and the ISR keeps only live members; a live leader
 * stays (same epoch) while dead members leave the ISR. When no ISR member is live: with unclean,
 * the first live replica of replicas leads with an ISR of just itself (Kafka's unclean election);
 * otherwise, or without a live replica, the partition has no leader (-1) and keeps its ISR.
 * Returns false when nothing changes. new_isr has room for max(nisr, 1) ids. */
bool zk_store_elect_leader(int32_t leader, const int32_t *isr, int nisr, const int32_t *live, int nlive,
                           const int32_t *replicas, int nreplicas, bool unclean, int32_t *next, int32_t *new_isr,
                           int *new_nisr);
/* Preferred replica election of one partition: ZK_ELECTED when the first replica is live, in the
 * ISR and not the leader (it is to lead, the ISR unchanged), ZK_ELECT_NOT_NEEDED when it leads,
 * ZK_ELECT_NOT_AVAILABLE otherwise. */
zk_elect_result_t zk_store_elect_preferred(const int32_t *replicas, int nreplicas, int32_t leader,
                                           const int32_t *isr, int nisr, const int32_t *live, int nlive);
/* Controlled shutdown of broker `leaving`: the first replica of the assignment that is live, in the
 * ISR and not leaving (Kafka's choice), or -1. */
int32_t zk_store_shutdown_leader(const int32_t *replicas, int nreplicas, const int32_t *isr, int nisr,
                                 const int32_t *live, int nlive, int32_t leaving);
/* Kafka's automatic leader rebalance over n partitions: per broker B, of the partitions whose
 * preferred (first) replica is B, the share led by another broker or by none; when it exceeds pct
 * percent, those of them whose preferred replica is live and in the ISR are marked in elect.
 * Returns how many are marked. */
int zk_store_rebalance_pick(const zk_partition_t *parts, int n, const int32_t *live, int nlive, int pct,
                            bool *elect);
/* Stops the worker and closes the session (our ephemeral znodes go at once). */
void zk_store_close(zk_store_t *s);
void zk_event_free(zk_event_t *ev);

#endif
