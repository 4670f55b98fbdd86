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
 *
 * Every ZooKeeper call runs on one worker thread of this module (the
 * synchronous libzookeeper-mt API); watches and session events only set
 * flags for it. Results reach the event loop as zk_event_t snapshots through
 * a queue and an eventfd (zk_store_event_fd / zk_store_poll), so the loop
 * never blocks on ZooKeeper and all metadata changes happen on its thread.
 *
 * @locality: zk_store_open/close and zk_store_poll on the loop thread;
 * zk_store_create_topic may be called from the loop thread at any time.
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
} zk_event_t;

typedef struct zk_store_options {
    const char *connect;    /* host:port[,host:port...][/chroot] */
    int session_timeout_ms;
    int connect_timeout_ms;
    int32_t broker_id;
    const char *listener_name;
    const char *host; /* advertised */
    int32_t port;
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
/* The controller's choice for one partition (pure, for the worker and the tests): when the leader
 * is not among the live brokers (or there is none, -1), the first live ISR member leads and the
 * ISR keeps only live members; when no ISR member is live the partition has no leader (-1) and
 * keeps its ISR (no unclean election). Returns false when nothing changes. new_isr has room for
 * nisr ids. */
bool zk_store_elect_leader(int32_t leader, const int32_t *isr, int nisr, const int32_t *live, int nlive,
                           int32_t *next, int32_t *new_isr, int *new_nisr);
/* Stops the worker and closes the session (our ephemeral znodes go at once). */
void zk_store_close(zk_store_t *s);
void zk_event_free(zk_event_t *ev);

#endif
