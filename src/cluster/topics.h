/*
 * topics.h - the broker's view of topics and partitions (the metadata image)
 * and the logs behind them.
 *
 * Topic definitions (name, id, partition count, config overrides) live in a
 * metadata store; the embedded single-node store keeps one small properties
 * file per topic under <first log.dir>/runnel-metadata/topics/ (see
 * store_local.c). Partition data lives in Kafka's layout:
 * <log.dir>/<topic>-<partition>/.
 *
 * @locality: owned by the event-loop thread; no locking.
 */
#ifndef RUNNEL_TOPICS_H
#define RUNNEL_TOPICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "protocol/kmsg.h"
#include "storage/log.h"

typedef struct topic topic_t;
typedef struct topics topics_t;

/* Someone (a delayed Fetch) waiting for data on a partition; intrusive list node. */
typedef struct partition_waiter {
    struct partition_waiter *prev, *next;
    void (*wake)(struct partition_waiter *w);
    void *arg;
} partition_waiter_t;

typedef struct partition {
    topic_t *topic;
    int32_t index;
    log_t *log;
    char *dir;           /* <log.dir>/<topic>-<index> */
    int log_dir_index;   /* which of log.dirs holds it */
    int32_t leader_epoch;
    int64_t unflushed_messages; /* for flush.messages */
    int64_t last_flush_ms;
    partition_waiter_t waiters; /* sentinel of a circular list */
    struct producer_state *pstate; /* idempotence/transactions (src/txn/), loaded at first use */
    /* Cluster mode: this partition's replication state (src/cluster/replication.c); NULL when the
     * local log is the only replica, so everything in it is committed. */
    struct repl_partition *repl;
    int64_t high_watermark;         /* with repl: offsets below it are on every in-sync replica */
    partition_waiter_t hw_waiters;  /* produces waiting for the high watermark or a flush */
    /* flush.messages (durable mode): flushes run on a flusher thread (storage/flusher.h). */
    int64_t flushed_offset;         /* offsets below it are on disk */
    int64_t flush_wanted;           /* offsets below it wait for a flush requested or running */
    struct flush_job *flush_job;    /* the flush in flight, or NULL */
    bool flush_again;               /* appends since that flush asked for another one */
    bool flush_queued;              /* waits for a free flusher slot (topics' flush queue) */
    struct partition *flush_next;   /* ... the next in that queue */
    bool flush_failed;
} partition_t;

/* An acknowledgement of the offsets below `end` waits for a flush (flush.messages was reached). */
static inline bool partition_flush_pending(const partition_t *p, int64_t end)
{
    return p->flush_wanted >= end && p->flushed_offset < end && !p->flush_failed;
}

/* The end of what consumers may read: the high watermark of a replicated partition, else the
 * log end. */
static inline int64_t partition_high_watermark(const partition_t *p)
{
    return p->repl ? p->high_watermark : log_end_offset(p->log);
}

/* Per-topic settings resolved from the topic's overrides and the broker's config. */
typedef struct topic_settings {
    int32_t max_message_bytes;
    bool log_append_time;
    int compression;      /* -1: keep the producer's codec */
    bool compact;         /* cleanup.policy has compact */
    int64_t flush_messages;
    int64_t flush_ms;
    int32_t min_insync_replicas;
    log_config_t log;
} topic_settings_t;

struct topic {
    char *name;
    kuuid_t id;
    int32_t npartitions;
    partition_t **partitions;
    topic_config_t *config;
    topic_settings_t settings;
    bool internal;
    uint64_t bytes_in, messages_in, bytes_out; /* for the metrics */
    topic_t *hnext; /* hash chain by name */
};

typedef struct topics_options {
    const broker_config_t *config;
    char **log_dirs;
    int n_log_dirs;
} topics_options_t;

/* Loads every topic from the store and opens its logs (recovering them when
 * the checkpointed recovery point is behind). Returns NULL with err set. */
topics_t *topics_open(const topics_options_t *opt, char *err, size_t errlen);
/* Flushes every log, writes the checkpoints and closes everything. */
void topics_close(topics_t *t, bool clean);

topic_t *topics_find(topics_t *t, const char *name, size_t len);
topic_t *topics_find_id(topics_t *t, const kuuid_t *id);
partition_t *topics_partition(topic_t *topic, int32_t index);
/* All topics, for Metadata/DescribeLogDirs: call cb for each. */
void topics_foreach(topics_t *t, void (*cb)(void *arg, topic_t *topic), void *arg);
int topics_count(const topics_t *t);

/* Kafka's topic-name rules. Returns 0 if valid, else -1 with a Kafka-style message in err. */
int topics_validate_name(const char *name, size_t len, char *err, size_t errlen);
/* Another topic whose name equals this one after mapping '.' to '_' (Kafka's collision rule), or NULL. */
topic_t *topics_find_colliding(topics_t *t, const char *name, size_t len);

/* Creates a topic with `npartitions` partitions and these overrides (taken over by the topic). */
int topics_create(topics_t *t, const char *name, int32_t npartitions, topic_config_t *overrides,
                  topic_t **out, char *err, size_t errlen);
/* The same with a given topic id (cluster mode: the id comes from the metadata store); NULL: random. */
int topics_create_id(topics_t *t, const char *name, const kuuid_t *id, int32_t npartitions,
                     topic_config_t *overrides, topic_t **out, char *err, size_t errlen);
/* Creates a compacted internal topic (__consumer_offsets, __transaction_state) unless it
 * exists: cleanup.policy=compact, the given segment.bytes, compression.type=producer.
 * Returns 1 when it was created, 0 when it existed, -1 with err set. */
int topics_ensure_internal(topics_t *t, const char *name, int32_t npartitions, int64_t segment_bytes,
                           char *err, size_t errlen);
/* Deletes the topic's data and definition; wakes and fails any waiters first. */
int topics_delete(topics_t *t, topic_t *topic);
/* Adds partitions up to new_count. */
int topics_add_partitions(topics_t *t, topic_t *topic, int32_t new_count, char *err, size_t errlen);
/* Replaces the topic's overrides (taken over), persists them and re-applies settings to its logs. */
int topics_set_config(topics_t *t, topic_t *topic, topic_config_t *overrides, char *err, size_t errlen);
/* Re-resolves every topic's settings (after a dynamic broker config change). */
void topics_refresh_settings(topics_t *t);

/* Append already-validated batches to a partition's log and wake waiters. */
int partition_append(topics_t *t, partition_t *p, uint8_t *batches, size_t len, int64_t now_ms,
                     int64_t *first_offset, int64_t *next_offset);
void partition_add_waiter(partition_t *p, partition_waiter_t *w);
void partition_remove_waiter(partition_waiter_t *w);
/* Waiting for the high watermark (acks=all); woken when it moves or the leadership changes. */
void partition_add_hw_waiter(partition_t *p, partition_waiter_t *w);
/* Wakes every waiter of the list (the waiters remove themselves or stay). */
void partition_wake_all(partition_waiter_t *head);

/* The flusher thread's completion eventfd (-1 without a flusher) and the handler to call when it is readable: finishes flushes and wakes the produces
 * waiting for them. */
int topics_flusher_fd(const topics_t *t);
void topics_flusher_poll(topics_t *t);
/* Writes the recovery-point and log-start-offset checkpoints of every log dir. */
void topics_write_checkpoints(topics_t *t);
/* log.flush.interval.ms / flush.ms: flushes logs whose time has come. */
void topics_flush_due(topics_t *t, int64_t now_ms);

/* Retention and log cleaning, on the loop thread. Applies retention to every log when
 * log.retention.check.interval.ms has passed since the last check, and starts a cleaner job for
 * the compacted log needing it most when log.cleaner.backoff.ms has passed and the cleaner is
 * idle. now_ms is monotonic, wall_ms the wall clock (record timestamps). Returns the delay in ms
 * until it should be called again. The first call always runs both. */
int64_t topics_log_tick(topics_t *t, int64_t now_ms, int64_t wall_ms);
/* The cleaner's completion eventfd (readable when a job finished), -1 without a cleaner. */
int topics_cleaner_fd(const topics_t *t);
/* On that fd: swaps the finished job's segments in and starts the next job if one is due. */
void topics_cleaner_poll(topics_t *t, int64_t wall_ms);

const char *topics_log_dir(const topics_t *t, int index);
int topics_log_dir_count(const topics_t *t);

/* Formats a topic id as Kafka does (URL-safe base64 without padding, 22 chars). */
void topics_uuid_to_string(const kuuid_t *id, char out[23]);
int topics_uuid_from_string(const char *s, kuuid_t *id);
void topics_uuid_random(kuuid_t *id);
bool topics_uuid_is_zero(const kuuid_t *id);

#endif
