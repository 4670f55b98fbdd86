/*
 * config.c - the configuration table, validation, the broker config store and topic
 * overrides. Rules and precedence are described in config.h.
 *
 * The broker store keeps, for each key of the table, one value slot per layer (static,
 * dynamic cluster default, dynamic per-broker); an empty slot means "not set in this
 * layer". Keys with unit synonyms (log.retention.ms/minutes/hours ...) are resolved by
 * "chains" whose results are cached as strings after every change, so topic lookups can
 * hand out a stable pointer without formatting anything.
 */
#include "common/config.h"
#include "common/fsutil.h"

#include "common/buf.h"
#include "common/logger.h"
#include "common/properties.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- the definitions table ------------------------------------------------------- */

enum config_validator {
    V_NONE,
    V_MIN,       /* value >= lo */
    V_RANGE,     /* lo <= value <= hi */
    V_ENUM,      /* one of choices, case-sensitive as Kafka's ValidString */
    V_LIST_ENUM, /* every list item one of choices (Kafka's ValidList) */
    V_LOGLEVEL,  /* a level logger_parse_level knows */
    V_LISTENERS, /* config_parse_listeners accepts it, at least one listener */
};

enum { SCOPE_BROKER = 0, SCOPE_TOPIC = 1 };

struct config_def {
    const char *name;
    uint8_t type;
    uint8_t scope;
    bool dynamic;
    uint8_t validator;
    int64_t lo, hi;
    const char *const *choices;
    const char *dflt;
    const char *synonym;
    const char *doc;
};

static const char *const cleanup_policies[] = {"compact", "delete", NULL};
static const char *const compression_types[] = {"uncompressed", "zstd", "lz4", "snappy", "gzip",
                                                "producer", NULL};
static const char *const timestamp_types[] = {"CreateTime", "LogAppendTime", NULL};

#define LMAX "9223372036854775807"
#define IMAX "2147483647"

#define T(x) .type = CONFIG_TYPE_##x
#define DEF(v) .dflt = v
#define DYN .dynamic = true
#define TOPIC .scope = SCOPE_TOPIC
#define SYN(s) .synonym = s
#define MIN(n) .validator = V_MIN, .lo = (n)
#define RANGE(a, b) .validator = V_RANGE, .lo = (a), .hi = (b)
#define ONEOF(arr) .validator = V_ENUM, .choices = arr
#define LISTOF(arr) .validator = V_LIST_ENUM, .choices = arr
#define DOC(s) .doc = s

static const struct config_def config_defs[] = {
    /* ---- server basics ---- */
    {"broker.id", T(INT), DEF("0"),
     DOC("This broker's id (Runnel defaults to 0; Kafka's -1 asks ZooKeeper for one).")},
    {"node.id", T(INT), DEF("-1"), DOC("KRaft node id; accepted for compatibility.")},
    {"broker.rack", T(STRING), DEF(NULL),
     DOC("Rack of the broker, for rack-aware replica assignment.")},
    {"metrics.listener", T(STRING), DEF(NULL),
     DOC("host:port serving Prometheus metrics at /metrics over HTTP; unset: off.")},
    {"runnel.log.level", T(STRING), DEF("info"), DYN, .validator = V_LOGLEVEL,
     DOC("Runnel's log level: debug, info, warn or error.")},
    {"zookeeper.connect", T(STRING), DEF(NULL),
     DOC("ZooKeeper hosts (host:port,.../chroot); unset runs single-node with the local metadata store.")},
    {"zookeeper.session.timeout.ms", T(INT), DEF("18000"), DOC("ZooKeeper session timeout.")},
    {"zookeeper.connection.timeout.ms", T(INT), DEF(NULL),
     DOC("Time to wait for a ZooKeeper connection; zookeeper.session.timeout.ms if unset.")},
    {"zookeeper.max.in.flight.requests", T(INT), DEF("10"), MIN(1),
     DOC("Unacknowledged requests to ZooKeeper before blocking.")},
    /* ---- network ---- */
    {"listeners", T(STRING), DEF("PLAINTEXT://:9092"), .validator = V_LISTENERS,
     DOC("Comma-separated NAME://host:port URIs to listen on; empty host means all interfaces.")},
    {"advertised.listeners", T(STRING), DEF(NULL), .validator = V_LISTENERS,
     DOC("Listeners given to clients in metadata; listeners if unset.")},
    {"listener.security.protocol.map", T(STRING),
     DEF("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"),
     DOC("Map from listener name to security protocol.")},
    {"inter.broker.listener.name", T(STRING), DEF(NULL),
     DOC("Listener brokers use to talk to each other.")},
    {"num.network.threads", T(INT), DEF("3"), MIN(1),
     DOC("Threads receiving requests and sending responses.")},
    {"num.io.threads", T(INT), DEF("8"), MIN(1), DOC("Threads processing requests.")},
    {"background.threads", T(INT), DEF("10"), MIN(1), DOC("Threads for background tasks.")},
    {"queued.max.requests", T(INT), DEF("500"), MIN(1),
     DOC("Requests queued before network threads stop reading.")},
    {"socket.send.buffer.bytes", T(INT), DEF("102400"),
     DOC("SO_SNDBUF of server sockets; -1 for the OS default.")},
    {"socket.receive.buffer.bytes", T(INT), DEF("102400"),
     DOC("SO_RCVBUF of server sockets; -1 for the OS default.")},
    {"socket.request.max.bytes", T(INT), DEF("104857600"), MIN(1),
     DOC("Largest request the broker accepts.")},
    {"connections.max.idle.ms", T(LONG), DEF("600000"),
     DOC("Idle connections are closed after this long.")},
    {"max.connections", T(INT), DEF(IMAX), MIN(0), DYN, DOC("Connections allowed at any time.")},
    {"max.connections.per.ip", T(INT), DEF(IMAX), MIN(0), DYN,
     DOC("Connections allowed from one address.")},
    {"message.max.bytes", T(INT), DEF("1048588"), MIN(0), DYN, SYN("max.message.bytes"),
     DOC("Largest record batch the broker accepts.")},
    {"fetch.max.bytes", T(INT), DEF("57671680"), MIN(1024),
     DOC("Most bytes returned for one fetch request.")},
    /* ---- topics and replication ---- */
    {"auto.create.topics.enable", T(BOOLEAN), DEF("true"),
     DOC("Create a topic when metadata for an unknown one is requested.")},
    {"delete.topic.enable", T(BOOLEAN), DEF("true"), DOC("Allow topics to be deleted.")},
    {"num.partitions", T(INT), DEF("1"), MIN(1), DOC("Partitions of an auto-created topic.")},
    {"default.replication.factor", T(INT), DEF("1"),
     DOC("Replication factor of an auto-created topic.")},
    {"min.insync.replicas", T(INT), DEF("1"), MIN(1), DYN, SYN("min.insync.replicas"),
     DOC("Replicas that must acknowledge an acks=all write.")},
    {"compression.type", T(STRING), DEF("producer"), ONEOF(compression_types), DYN, SYN("compression.type"),
     DOC("Compression of stored batches; producer keeps what the producer sent.")},
    {"unclean.leader.election.enable", T(BOOLEAN), DEF("false"), DYN, SYN("unclean.leader.election.enable"),
     DOC("Allow an out-of-sync replica to become leader, losing data.")},
    {"auto.leader.rebalance.enable", T(BOOLEAN), DEF("true"),
     DOC("Move leadership back to preferred replicas.")},
    {"leader.imbalance.check.interval.seconds", T(LONG), DEF("300"), MIN(1),
     DOC("How often leader balance is checked.")},
    {"leader.imbalance.per.broker.percentage", T(INT), DEF("10"),
     DOC("Imbalance allowed per broker before a rebalance.")},
    {"controlled.shutdown.enable", T(BOOLEAN), DEF("true"),
     DOC("Move leadership away before shutting down.")},
    {"controlled.shutdown.max.retries", T(INT), DEF("3"),
     DOC("Attempts of a controlled shutdown.")},
    {"controlled.shutdown.retry.backoff.ms", T(LONG), DEF("5000"),
     DOC("Wait between controlled shutdown attempts.")},
    {"replica.lag.time.max.ms", T(LONG), DEF("30000"),
     DOC("A follower not caught up for this long leaves the ISR.")},
    {"replica.fetch.max.bytes", T(INT), DEF("1048576"), MIN(0),
     DOC("Bytes a follower fetches per partition.")},
    {"replica.fetch.min.bytes", T(INT), DEF("1"), DOC("Least bytes a follower fetch waits for.")},
    {"replica.fetch.wait.max.ms", T(INT), DEF("500"), DOC("Longest wait of a follower fetch.")},
    {"replica.fetch.backoff.ms", T(INT), DEF("1000"), MIN(0),
     DOC("Pause after a follower fetch error.")},
    {"replica.fetch.response.max.bytes", T(INT), DEF("10485760"), MIN(0),
     DOC("Bytes of one whole follower fetch response.")},
    {"replica.socket.timeout.ms", T(INT), DEF("30000"), DOC("Socket timeout of follower fetches.")},
    {"replica.socket.receive.buffer.bytes", T(INT), DEF("65536"),
     DOC("SO_RCVBUF of follower fetch sockets.")},
    {"replica.high.watermark.checkpoint.interval.ms", T(LONG), DEF("5000"),
     DOC("How often high watermarks are checkpointed.")},
    {"num.replica.fetchers", T(INT), DEF("1"), DOC("Fetcher threads per source broker.")},
    {"controller.socket.timeout.ms", T(INT), DEF("30000"),
     DOC("Socket timeout of controller-to-broker requests.")},
    /* ---- log ---- */
    {"log.dir", T(STRING), DEF("/tmp/kafka-logs"),
     DOC("Data directory, used when log.dirs is unset.")},
    {"log.dirs", T(STRING), DEF(NULL), DOC("Comma-separated data directories; log.dir if unset.")},
    {"log.segment.bytes", T(INT), DEF("1073741824"), MIN(14), DYN, SYN("segment.bytes"),
     DOC("Size at which a segment is rolled.")},
    {"log.roll.ms", T(LONG), DEF(NULL), DYN, SYN("segment.ms"),
     DOC("Age at which a segment is rolled; log.roll.hours if unset.")},
    {"log.roll.hours", T(INT), DEF("168"), MIN(1), DYN,
     DOC("Age in hours at which a segment is rolled.")},
    {"log.roll.jitter.ms", T(LONG), DEF(NULL), DYN, SYN("segment.jitter.ms"),
     DOC("Random jitter subtracted from the roll time; log.roll.jitter.hours if unset.")},
    {"log.roll.jitter.hours", T(INT), DEF("0"), MIN(0), DYN, DOC("Roll jitter in hours.")},
    {"log.retention.ms", T(LONG), DEF(NULL), DYN, SYN("retention.ms"),
     DOC("Age after which segments are deleted; -1 keeps forever; minutes/hours if unset.")},
    {"log.retention.minutes", T(INT), DEF(NULL), DYN,
     DOC("Retention in minutes, used when log.retention.ms is unset.")},
    {"log.retention.hours", T(INT), DEF("168"), DYN,
     DOC("Retention in hours, used when ms and minutes are unset.")},
    {"log.retention.bytes", T(LONG), DEF("-1"), DYN, SYN("retention.bytes"),
     DOC("Partition size beyond which old segments are deleted; -1 for no limit.")},
    {"log.retention.check.interval.ms", T(LONG), DEF("300000"), MIN(1),
     DOC("How often retention is enforced.")},
    {"log.cleanup.policy", T(LIST), DEF("delete"), LISTOF(cleanup_policies), DYN, SYN("cleanup.policy"),
     DOC("delete, compact, or both.")},
    {"log.index.interval.bytes", T(INT), DEF("4096"), MIN(0), DYN, SYN("index.interval.bytes"),
     DOC("Bytes between offset index entries.")},
    {"log.index.size.max.bytes", T(INT), DEF("10485760"), MIN(4), DYN, SYN("segment.index.bytes"),
     DOC("Largest offset index of a segment.")},
    {"log.flush.interval.messages", T(LONG), DEF(LMAX), MIN(1), DYN, SYN("flush.messages"),
     DOC("Messages appended before a forced fsync.")},
    {"log.flush.interval.ms", T(LONG), DEF(NULL), DYN, SYN("flush.ms"),
     DOC("Time before a forced fsync; log.flush.scheduler.interval.ms if unset.")},
    {"log.flush.scheduler.interval.ms", T(LONG), DEF(LMAX),
     DOC("How often the flusher checks for logs to fsync.")},
    {"log.flush.offset.checkpoint.interval.ms", T(INT), DEF("60000"), MIN(0),
     DOC("How often recovery points are checkpointed.")},
    {"log.flush.start.offset.checkpoint.interval.ms", T(INT), DEF("60000"), MIN(0),
     DOC("How often log start offsets are checkpointed.")},
    {"log.preallocate", T(BOOLEAN), DEF("false"), DYN, SYN("preallocate"),
     DOC("Preallocate new segment files.")},
    {"log.segment.delete.delay.ms", T(LONG), DEF("60000"), MIN(0), DYN, SYN("file.delete.delay.ms"),
     DOC("Delay before a deleted segment's files are removed.")},
    {"log.message.timestamp.type", T(STRING), DEF("CreateTime"), ONEOF(timestamp_types), DYN,
     SYN("message.timestamp.type"), DOC("CreateTime or LogAppendTime.")},
    {"log.message.timestamp.before.max.ms", T(LONG), DEF(LMAX), MIN(0), DYN, SYN("message.timestamp.before.max.ms"),
     DOC("How far a record timestamp may lie before the broker's clock.")},
    {"log.message.timestamp.after.max.ms", T(LONG), DEF(LMAX), MIN(0), DYN, SYN("message.timestamp.after.max.ms"),
     DOC("How far a record timestamp may lie after the broker's clock.")},
    {"num.recovery.threads.per.data.dir", T(INT), DEF("1"), MIN(1),
     DOC("Threads per data directory for recovery and shutdown.")},
    /* ---- log cleaner ---- */
    {"log.cleaner.enable", T(BOOLEAN), DEF("true"),
     DOC("Run the log cleaner (needed for compacted topics).")},
    {"log.cleaner.threads", T(INT), DEF("1"), MIN(0), DOC("Log cleaner threads.")},
    {"log.cleaner.dedupe.buffer.size", T(LONG), DEF("134217728"), DYN,
     DOC("Memory for deduplication across all cleaner threads.")},
    {"log.cleaner.io.buffer.size", T(INT), DEF("524288"), MIN(0), DYN,
     DOC("I/O buffer memory across all cleaner threads.")},
    {"log.cleaner.io.buffer.load.factor", T(DOUBLE), DEF("0.9"), DYN,
     DOC("Fill ratio of the dedupe buffer.")},
    {"log.cleaner.io.max.bytes.per.second", T(DOUBLE), DEF("1.7976931348623157E308"), DYN,
     DOC("Cleaner I/O throttle.")},
    {"log.cleaner.backoff.ms", T(LONG), DEF("15000"), MIN(0), DYN,
     DOC("Sleep when there is nothing to clean.")},
    {"log.cleaner.delete.retention.ms", T(LONG), DEF("86400000"), MIN(0), DYN, SYN("delete.retention.ms"),
     DOC("How long tombstones are kept in compacted topics.")},
    {"log.cleaner.min.cleanable.ratio", T(DOUBLE), DEF("0.5"), RANGE(0, 1), DYN, SYN("min.cleanable.dirty.ratio"),
     DOC("Dirty ratio at which a log becomes eligible for cleaning.")},
    {"log.cleaner.min.compaction.lag.ms", T(LONG), DEF("0"), MIN(0), DYN, SYN("min.compaction.lag.ms"),
     DOC("Least age of a record before it can be compacted.")},
    {"log.cleaner.max.compaction.lag.ms", T(LONG), DEF(LMAX), MIN(1), DYN, SYN("max.compaction.lag.ms"),
     DOC("Greatest age of a record before it must be compacted.")},
    /* ---- group coordinator ---- */
    {"offsets.topic.num.partitions", T(INT), DEF("50"), MIN(1),
     DOC("Partitions of __consumer_offsets.")},
    {"offsets.topic.replication.factor", T(SHORT), DEF("3"), MIN(1),
     DOC("Replication factor of __consumer_offsets (capped by live brokers).")},
    {"offsets.topic.segment.bytes", T(INT), DEF("104857600"), MIN(1),
     DOC("Segment size of __consumer_offsets.")},
    {"offsets.load.buffer.size", T(INT), DEF("5242880"), MIN(1),
     DOC("Read size when loading offsets.")},
    {"offsets.retention.minutes", T(INT), DEF("10080"), MIN(1),
     DOC("Committed offsets of empty groups expire after this.")},
    {"offsets.retention.check.interval.ms", T(LONG), DEF("600000"), MIN(1),
     DOC("How often expired offsets are removed.")},
    {"offsets.commit.timeout.ms", T(INT), DEF("5000"), MIN(1),
     DOC("Wait for an offset commit to be replicated.")},
    {"group.initial.rebalance.delay.ms", T(INT), DEF("3000"),
     DOC("Wait for more members before the first rebalance of a group.")},
    {"group.min.session.timeout.ms", T(INT), DEF("6000"),
     DOC("Smallest session timeout a member may ask for.")},
    {"group.max.session.timeout.ms", T(INT), DEF("1800000"),
     DOC("Largest session timeout a member may ask for.")},
    {"group.max.size", T(INT), DEF(IMAX), MIN(1), DOC("Most members in one group.")},
    /* ---- transactions ---- */
    {"transaction.state.log.num.partitions", T(INT), DEF("50"), MIN(1),
     DOC("Partitions of __transaction_state.")},
    {"transaction.state.log.replication.factor", T(SHORT), DEF("3"), MIN(1),
     DOC("Replication factor of __transaction_state.")},
    {"transaction.state.log.min.isr", T(INT), DEF("2"), MIN(1),
     DOC("min.insync.replicas of __transaction_state.")},
    {"transaction.state.log.segment.bytes", T(INT), DEF("104857600"), MIN(1),
     DOC("Segment size of __transaction_state.")},
    {"transactional.id.expiration.ms", T(INT), DEF("604800000"), MIN(1),
     DOC("Idle transactional ids expire after this.")},
    {"transaction.max.timeout.ms", T(INT), DEF("900000"), MIN(1),
     DOC("Largest transaction timeout a producer may ask for.")},
    {"transaction.abort.timed.out.transaction.cleanup.interval.ms", T(INT), DEF("10000"), MIN(1),
     DOC("How often timed-out transactions are aborted.")},
    {"transaction.remove.expired.transaction.cleanup.interval.ms", T(INT), DEF("3600000"), MIN(1),
     DOC("How often expired transactional ids are removed.")},
    {"producer.id.expiration.ms", T(INT), DEF("86400000"), MIN(1), DYN,
     DOC("Idle producer ids expire after this.")},

    /* ---- topic-level keys ---- */
    {"cleanup.policy", T(LIST), DEF("delete"), LISTOF(cleanup_policies), TOPIC, SYN("log.cleanup.policy"),
     DOC("delete, compact, or both.")},
    {"compression.type", T(STRING), DEF("producer"), ONEOF(compression_types), TOPIC, SYN("compression.type"),
     DOC("Compression of stored batches; producer keeps what the producer sent.")},
    {"delete.retention.ms", T(LONG), DEF("86400000"), MIN(0), TOPIC, SYN("log.cleaner.delete.retention.ms"),
     DOC("How long tombstones are kept when compacting.")},
    {"file.delete.delay.ms", T(LONG), DEF("60000"), MIN(0), TOPIC, SYN("log.segment.delete.delay.ms"),
     DOC("Delay before a deleted segment's files are removed.")},
    {"flush.messages", T(LONG), DEF(LMAX), MIN(1), TOPIC, SYN("log.flush.interval.messages"),
     DOC("Messages appended before a forced fsync.")},
    {"flush.ms", T(LONG), DEF(LMAX), MIN(0), TOPIC, SYN("log.flush.interval.ms"),
     DOC("Time before a forced fsync.")},
    {"index.interval.bytes", T(INT), DEF("4096"), MIN(0), TOPIC, SYN("log.index.interval.bytes"),
     DOC("Bytes between offset index entries.")},
    {"max.compaction.lag.ms", T(LONG), DEF(LMAX), MIN(1), TOPIC, SYN("log.cleaner.max.compaction.lag.ms"),
     DOC("Greatest age of a record before it must be compacted.")},
    {"max.message.bytes", T(INT), DEF("1048588"), MIN(0), TOPIC, SYN("message.max.bytes"),
     DOC("Largest record batch accepted for this topic.")},
    {"message.timestamp.type", T(STRING), DEF("CreateTime"), ONEOF(timestamp_types), TOPIC,
     SYN("log.message.timestamp.type"), DOC("CreateTime or LogAppendTime.")},
    {"message.timestamp.before.max.ms", T(LONG), DEF(LMAX), MIN(0), TOPIC, SYN("log.message.timestamp.before.max.ms"),
     DOC("How far a record timestamp may lie before the broker's clock.")},
    {"message.timestamp.after.max.ms", T(LONG), DEF(LMAX), MIN(0), TOPIC, SYN("log.message.timestamp.after.max.ms"),
     DOC("How far a record timestamp may lie after the broker's clock.")},
    {"min.cleanable.dirty.ratio", T(DOUBLE), DEF("0.5"), RANGE(0, 1), TOPIC, SYN("log.cleaner.min.cleanable.ratio"),
     DOC("Dirty ratio at which the log becomes eligible for cleaning.")},
    {"min.compaction.lag.ms", T(LONG), DEF("0"), MIN(0), TOPIC, SYN("log.cleaner.min.compaction.lag.ms"),
     DOC("Least age of a record before it can be compacted.")},
    {"min.insync.replicas", T(INT), DEF("1"), MIN(1), TOPIC, SYN("min.insync.replicas"),
     DOC("Replicas that must acknowledge an acks=all write.")},
    {"preallocate", T(BOOLEAN), DEF("false"), TOPIC, SYN("log.preallocate"),
     DOC("Preallocate new segment files.")},
    {"retention.bytes", T(LONG), DEF("-1"), TOPIC, SYN("log.retention.bytes"),
     DOC("Partition size beyond which old segments are deleted; -1 for no limit.")},
    {"retention.ms", T(LONG), DEF("604800000"), MIN(-1), TOPIC, SYN("log.retention.ms"),
     DOC("Age after which segments are deleted; -1 keeps forever.")},
    {"segment.bytes", T(INT), DEF("1073741824"), MIN(14), TOPIC, SYN("log.segment.bytes"),
     DOC("Size at which a segment is rolled.")},
    {"segment.index.bytes", T(INT), DEF("10485760"), MIN(4), TOPIC, SYN("log.index.size.max.bytes"),
     DOC("Largest offset index of a segment.")},
    {"segment.jitter.ms", T(LONG), DEF("0"), MIN(0), TOPIC, SYN("log.roll.jitter.ms"),
     DOC("Random jitter subtracted from the roll time.")},
    {"segment.ms", T(LONG), DEF("604800000"), MIN(1), TOPIC, SYN("log.roll.ms"),
     DOC("Age at which a segment is rolled.")},
    {"unclean.leader.election.enable", T(BOOLEAN), DEF("false"), TOPIC, SYN("unclean.leader.election.enable"),
     DOC("Allow an out-of-sync replica to become leader, losing data.")},
};

#undef T
#undef DEF
#undef DYN
#undef TOPIC
#undef SYN
#undef MIN
#undef RANGE
#undef ONEOF
#undef LISTOF
#undef DOC

#define NDEFS (sizeof(config_defs) / sizeof(config_defs[0]))

/* Spellings accepted for a Kafka key. The seed used log.segment.ms for log.roll.ms. */
static const struct {
    const char *alias;
    const char *target;
} config_aliases[] = {
    {"log.segment.ms", "log.roll.ms"},
};

/* Unit precedence: the first step with a non-null effective value gives the result. */
#define CHAIN_STEPS 3
static const struct config_chain {
    const char *head;
    struct {
        const char *key;
        int64_t mult;
    } steps[CHAIN_STEPS];
    bool negative_means_forever;
} config_chains[] = {
    {"log.retention.ms",
     {{"log.retention.ms", 1}, {"log.retention.minutes", 60000}, {"log.retention.hours", 3600000}},
     true},
    {"log.roll.ms", {{"log.roll.ms", 1}, {"log.roll.hours", 3600000}, {NULL, 0}}, false},
    {"log.roll.jitter.ms", {{"log.roll.jitter.ms", 1}, {"log.roll.jitter.hours", 3600000}, {NULL, 0}}, false},
    {"log.flush.interval.ms", {{"log.flush.interval.ms", 1}, {"log.flush.scheduler.interval.ms", 1}, {NULL, 0}}, false},
    {"zookeeper.connection.timeout.ms",
     {{"zookeeper.connection.timeout.ms", 1}, {"zookeeper.session.timeout.ms", 1}, {NULL, 0}}, false},
};
#define NCHAINS (sizeof(config_chains) / sizeof(config_chains[0]))

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Name lookup: a table this small is scanned; the scan is a few hundred ns. */
static const struct config_def *find_scoped(const char *name, int scope)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < NDEFS; i++)
        if (config_defs[i].scope == scope && strcmp(config_defs[i].name, name) == 0)
            return &config_defs[i];
    return NULL;
}

const config_def_t *config_def_find_broker(const char *name)
{
    return find_scoped(name, SCOPE_BROKER);
}

const config_def_t *config_def_find_topic(const char *name)
{
    return find_scoped(name, SCOPE_TOPIC);
}

const config_def_t *config_def_find(const char *name)
{
    const config_def_t *d = config_def_find_broker(name);
    return d ? d : config_def_find_topic(name);
}

const char *config_def_name(const config_def_t *d) { return d->name; }
int config_def_kafka_type(const config_def_t *d) { return d->type; }
const char *config_def_default(const config_def_t *d) { return d->dflt; }
bool config_def_is_topic(const config_def_t *d) { return d->scope == SCOPE_TOPIC; }
bool config_def_read_only(const config_def_t *d) { return d->scope == SCOPE_BROKER && !d->dynamic; }
bool config_def_sensitive(const config_def_t *d) { return d->type == CONFIG_TYPE_PASSWORD; }
const char *config_def_synonym(const config_def_t *d) { return d->synonym; }
const char *config_def_doc(const config_def_t *d) { return d->doc ? d->doc : ""; }

static size_t def_index(const config_def_t *d)
{
    return (size_t)(d - config_defs);
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_BOOLEAN: return "BOOLEAN";
    case CONFIG_TYPE_STRING: return "STRING";
    case CONFIG_TYPE_INT: return "INT";
    case CONFIG_TYPE_SHORT: return "SHORT";
    case CONFIG_TYPE_LONG: return "LONG";
    case CONFIG_TYPE_DOUBLE: return "DOUBLE";
    case CONFIG_TYPE_LIST: return "LIST";
    case CONFIG_TYPE_CLASS: return "CLASS";
    case CONFIG_TYPE_PASSWORD: return "PASSWORD";
    default: return "UNKNOWN";
    }
}

/* ---- value parsing and validation ------------------------------------------------ */

/* Java's String.trim: drops every byte <= ' ' at both ends. */
static char *trim_dup(const char *s)
{
    size_t a = 0, b = strlen(s);
    while (a < b && (unsigned char)s[a] <= ' ')
        a++;
    while (b > a && (unsigned char)s[b - 1] <= ' ')
        b--;
    return strndup(s + a, b - a);
}

/* Decimal integer as Java's Long.parseLong: optional sign, digits only, no overflow. */
static bool parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (*p == '\0')
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (*s == '\0')
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool in_choices(const char *const *choices, const char *s)
{
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(choices[i], s) == 0)
            return true;
    return false;
}

static void join_choices(const char *const *choices, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; choices[i] && n < outlen; i++) {
        int w = snprintf(out + n, outlen - n, "%s%s", i ? ", " : "", choices[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

#define INVALID(fmt, ...) \
    set_err(err, errlen, "Invalid value %s for configuration %s: " fmt, shown, d->name, __VA_ARGS__)

/* Validates a list value item by item and rebuilds it joined by ",". */
static char *validate_list(const config_def_t *d, const char *v, char *err, size_t errlen)
{
    buf_t out;
    buf_init(&out);
    if (*v != '\0') {
        const char *p = v;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            char *item = strndup(p, n), *t = item ? trim_dup(item) : NULL;
            free(item);
            if (t == NULL) {
                buf_free(&out);
                set_err(err, errlen, "out of memory");
                return NULL;
            }
            if (d->validator == V_LIST_ENUM && !in_choices(d->choices, t)) {
                char allowed[200];
                join_choices(d->choices, allowed, sizeof(allowed));
                const char *shown = t;
                INVALID("String must be one of: %s", allowed);
                free(t);
                buf_free(&out);
                return NULL;
            }
            if (out.len)
                buf_put(&out, ",", 1);
            buf_put(&out, t, strlen(t));
            free(t);
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    buf_put(&out, "", 1);
    if (out.oom) {
        buf_free(&out);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    return (char *)out.data; /* buf_t's storage is malloc'd; the caller frees it */
}

int config_def_validate(const config_def_t *d, const char *value, char **normalised,
                        char *err, size_t errlen)
{
    if (normalised)
        *normalised = NULL;
    if (value == NULL) {
        set_err(err, errlen, "Invalid value null for configuration %s: a value is required",
                d->name);
        return -1;
    }
    char *v = d->type == CONFIG_TYPE_PASSWORD ? strdup(value) : trim_dup(value);
    if (v == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    const char *shown = v;
    char *result = NULL;

    switch (d->type) {
    case CONFIG_TYPE_BOOLEAN:
        if (strcasecmp(v, "true") == 0)
            result = strdup("true");
        else if (strcasecmp(v, "false") == 0)
            result = strdup("false");
        else {
            INVALID("%s", "Expected value to be either true or false");
            goto fail;
        }
        break;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_SHORT:
    case CONFIG_TYPE_LONG: {
        int64_t n, lo = INT64_MIN, hi = INT64_MAX;
        if (d->type == CONFIG_TYPE_INT)
            lo = INT32_MIN, hi = INT32_MAX;
        else if (d->type == CONFIG_TYPE_SHORT)
            lo = INT16_MIN, hi = INT16_MAX;
        if (!parse_i64(v, &n) || n < lo || n > hi) {
            INVALID("Not a number of type %s", type_name(d->type));
            goto fail;
        }
        char num[24];
        snprintf(num, sizeof(num), "%" PRId64, n);
        shown = num;
        if ((d->validator == V_MIN || d->validator == V_RANGE) && n < d->lo) {
            INVALID("Value must be at least %" PRId64, d->lo);
            goto fail;
        }
        if (d->validator == V_RANGE && n > d->hi) {
            INVALID("Value must be no more than %" PRId64, d->hi);
            goto fail;
        }
        result = strdup(num);
        break;
    }
    case CONFIG_TYPE_DOUBLE: {
        double x;
        if (!parse_double(v, &x)) {
            INVALID("Not a number of type %s", "DOUBLE");
            goto fail;
        }
        if ((d->validator == V_MIN || d->validator == V_RANGE) && x < (double)d->lo) {
            INVALID("Value must be at least %" PRId64, d->lo);
            goto fail;
        }
        if (d->validator == V_RANGE && x > (double)d->hi) {
            INVALID("Value must be no more than %" PRId64, d->hi);
            goto fail;
        }
        result = strdup(v);
        break;
    }
    case CONFIG_TYPE_LIST:
        result = validate_list(d, v, err, errlen);
        if (result == NULL)
            goto fail;
        break;
    default: /* STRING, CLASS, PASSWORD */
        if (d->validator == V_ENUM && !in_choices(d->choices, v)) {
            char allowed[200];
            join_choices(d->choices, allowed, sizeof(allowed));
            INVALID("String must be one of: %s", allowed);
            goto fail;
        }
        if (d->validator == V_LOGLEVEL && logger_parse_level(v) < 0) {
            INVALID("%s", "String must be one of: debug, info, warn, error");
            goto fail;
        }
        if (d->validator == V_LISTENERS) {
            config_listener_t ls[16];
            char lerr[200];
            int n = config_parse_listeners(v, ls, 16, lerr, sizeof(lerr));
            if (n == 0)
                snprintf(lerr, sizeof(lerr), "at least one listener is required");
            if (n <= 0) {
                INVALID("%s", lerr);
                goto fail;
            }
        }
        result = v;
        v = NULL;
        break;
    }
    free(v);
    if (result == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if (normalised)
        *normalised = result;
    else
        free(result);
    return 0;
fail:
    free(v);
    return -1;
}

#undef INVALID

bool config_list_contains(const char *list, const char *item)
{
    if (list == NULL || item == NULL)
        return false;
    size_t ilen = strlen(item);
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == ilen && memcmp(p, item, ilen) == 0)
            return true;
        if (*e == '\0')
            return false;
        p = e + 1;
    }
}

/* ---- listeners ------------------------------------------------------------------ */

static bool host_char_ok(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '%' || c == '.' || c == '_' || c == ':';
}

static int parse_one_listener(const char *s, size_t n, config_listener_t *out, char *err,
                              size_t errlen)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(s + i, "://", 3) == 0) {
            sep = s + i;
            break;
        }
    if (sep == NULL || sep == s) {
        set_err(err, errlen, "Unable to parse %.*s to a broker endpoint", (int)n, s);
        return -1;
    }
    size_t name_len = (size_t)(sep - s);
    if (name_len >= sizeof(out->name)) {
        set_err(err, errlen, "listener name too long in %.*s", (int)n, s);
        return -1;
    }
    for (size_t i = 0; i < name_len; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '_' && c != '-') {
            set_err(err, errlen, "invalid listener name in %.*s", (int)n, s);
            return -1;
        }
        out->name[i] = (char)toupper((unsigned char)c);
    }
    out->name[name_len] = '\0';

    const char *h = sep + 3, *end = s + n, *host_end, *colon;
    if (h < end && *h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL || rb + 1 >= end || rb[1] != ':') {
            set_err(err, errlen, "Unable to parse %.*s to a broker endpoint", (int)n, s);
            return -1;
        }
        h++;
        host_end = rb;
        colon = rb + 1;
    } else {
        colon = NULL;
        for (const char *p = h; p < end; p++)
            if (*p == ':')
                colon = p;
        if (colon == NULL) {
            set_err(err, errlen, "Unable to parse %.*s to a broker endpoint", (int)n, s);
            return -1;
        }
        host_end = colon;
    }
    size_t host_len = (size_t)(host_end - h);
    if (host_len >= sizeof(out->host)) {
        set_err(err, errlen, "host name too long in %.*s", (int)n, s);
        return -1;
    }
    for (size_t i = 0; i < host_len; i++)
        if (!host_char_ok(h[i])) {
            set_err(err, errlen, "Unable to parse %.*s to a broker endpoint", (int)n, s);
            return -1;
        }
    memcpy(out->host, h, host_len);
    out->host[host_len] = '\0';

    const char *p = colon + 1;
    long port = 0;
    if (p >= end) {
        set_err(err, errlen, "Unable to parse %.*s to a broker endpoint", (int)n, s);
        return -1;
    }
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            set_err(err, errlen, "Invalid port in %.*s", (int)n, s);
            return -1;
        }
        port = port * 10 + (*p - '0');
    }
    if (port > 65535) {
        set_err(err, errlen, "Invalid port in %.*s", (int)n, s);
        return -1;
    }
    out->port = (int)port;
    return 0;
}

int config_parse_listeners(const char *s, config_listener_t *out, int max, char *err,
                           size_t errlen)
{
    int count = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && (unsigned char)*a <= ' ')
            a++;
        while (b > a && (unsigned char)b[-1] <= ' ')
            b--;
        if (a < b) { /* empty items are skipped, as Kafka's CSV parsing does */
            if (count >= max) {
                set_err(err, errlen, "more than %d listeners", max);
                return -1;
            }
            if (parse_one_listener(a, (size_t)(b - a), &out[count], err, errlen) != 0)
                return -1;
            for (int i = 0; i < count; i++)
                if (strcmp(out[i].name, out[count].name) == 0) {
                    set_err(err, errlen, "Each listener must have a different name, listeners: %s", s);
                    return -1;
                }
            count++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return count;
}

/* ---- broker store ----------------------------------------------------------------- */

enum { LAYER_STATIC, LAYER_DYN_DEFAULT, LAYER_DYN_BROKER, LAYER_COUNT };

static const int layer_source[LAYER_COUNT] = {
    [LAYER_STATIC] = CONFIG_SOURCE_STATIC_BROKER,
    [LAYER_DYN_DEFAULT] = CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER,
    [LAYER_DYN_BROKER] = CONFIG_SOURCE_DYNAMIC_BROKER,
};

struct config_extra {
    char *key;
    char *value;
};

struct broker_config {
    pthread_rwlock_t lock;
    char *vals[LAYER_COUNT][NDEFS];
    bool via_alias[LAYER_COUNT][NDEFS]; /* set through an alias: the real name wins */
    struct config_extra *extras;        /* unknown static keys */
    size_t nextras, extras_cap;
    char **retired; /* replaced strings, freed with the store (see config.h) */
    size_t nretired, retired_cap;
    char *derived[NCHAINS];
    int derived_src[NCHAINS];
    config_warn_cb warn;
    void *warn_arg;
};

static void default_warn(void *arg, const char *msg)
{
    (void)arg;
    LOG_WARN("config", "%s", msg);
}

/* Locking a const store is a mutation of its lock only; the object itself is never
 * defined const (it is always heap-allocated by broker_config_new). */
static void rdlock(const broker_config_t *c)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&c->lock);
}

static void unlock(const broker_config_t *c)
{
    pthread_rwlock_unlock((pthread_rwlock_t *)&c->lock);
}

static void retire(broker_config_t *c, char *p)
{
    if (p == NULL)
        return;
    if (c->nretired == c->retired_cap) {
        size_t cap = c->retired_cap ? c->retired_cap * 2 : 16;
        char **r = realloc(c->retired, cap * sizeof(*r));
        if (r == NULL)
            return; /* leak it: a reader may still hold the pointer */
        c->retired = r;
        c->retired_cap = cap;
    }
    c->retired[c->nretired++] = p;
}

/* Effective value of table entry i and its source; lock held. */
static const char *eff_locked(const broker_config_t *c, size_t i, int *src)
{
    for (int l = LAYER_DYN_BROKER; l >= LAYER_STATIC; l--)
        if (c->vals[l][i]) {
            *src = layer_source[l];
            return c->vals[l][i];
        }
    *src = CONFIG_SOURCE_DEFAULT;
    return config_defs[i].dflt;
}

static int64_t chain_eval_locked(const broker_config_t *c, const struct config_chain *ch, int *src)
{
    for (int s = 0; s < CHAIN_STEPS && ch->steps[s].key; s++) {
        const config_def_t *d = config_def_find_broker(ch->steps[s].key);
        int vs;
        const char *v = eff_locked(c, def_index(d), &vs);
        int64_t n;
        if (v == NULL || !parse_i64(v, &n))
            continue;
        int64_t m = ch->steps[s].mult;
        if (n > INT64_MAX / m)
            n = INT64_MAX;
        else if (n < INT64_MIN / m)
            n = INT64_MIN;
        else
            n *= m;
        if (ch->negative_means_forever && n < 0)
            n = -1;
        *src = vs;
        return n;
    }
    *src = CONFIG_SOURCE_DEFAULT;
    return -1;
}

static int chain_index(const char *key)
{
    for (size_t i = 0; i < NCHAINS; i++)
        if (strcmp(config_chains[i].head, key) == 0)
            return (int)i;
    return -1;
}

/* Recomputes the cached chain strings; write lock held. */
static void refresh_derived_locked(broker_config_t *c)
{
    for (size_t i = 0; i < NCHAINS; i++) {
        int src;
        int64_t v = chain_eval_locked(c, &config_chains[i], &src);
        char num[24];
        snprintf(num, sizeof(num), "%" PRId64, v);
        c->derived_src[i] = src;
        if (c->derived[i] && strcmp(c->derived[i], num) == 0)
            continue;
        char *s = strdup(num);
        if (s == NULL)
            continue; /* keep the stale value rather than none */
        retire(c, c->derived[i]);
        c->derived[i] = s;
    }
}

broker_config_t *broker_config_new(void)
{
    broker_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (pthread_rwlock_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->warn = default_warn;
    refresh_derived_locked(c);
    for (size_t i = 0; i < NCHAINS; i++)
        if (c->derived[i] == NULL) {
            broker_config_free(c);
            return NULL;
        }
    return c;
}

void broker_config_free(broker_config_t *c)
{
    if (c == NULL)
        return;
    for (int l = 0; l < LAYER_COUNT; l++)
        for (size_t i = 0; i < NDEFS; i++)
            free(c->vals[l][i]);
    for (size_t i = 0; i < c->nextras; i++) {
        free(c->extras[i].key);
        free(c->extras[i].value);
    }
    free(c->extras);
    for (size_t i = 0; i < c->nretired; i++)
        free(c->retired[i]);
    free(c->retired);
    for (size_t i = 0; i < NCHAINS; i++)
        free(c->derived[i]);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

void broker_config_set_warn_cb(broker_config_t *c, config_warn_cb cb, void *arg)
{
    pthread_rwlock_wrlock(&c->lock);
    c->warn = cb ? cb : default_warn;
    c->warn_arg = cb ? arg : NULL;
    pthread_rwlock_unlock(&c->lock);
}

static void warn(broker_config_t *c, const char *msg)
{
    rdlock(c);
    config_warn_cb cb = c->warn;
    void *arg = c->warn_arg;
    unlock(c);
    cb(arg, msg);
}

static int set_extra_locked(broker_config_t *c, const char *key, const char *value)
{
    char *v = strdup(value);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < c->nextras; i++)
        if (strcmp(c->extras[i].key, key) == 0) {
            retire(c, c->extras[i].value);
            c->extras[i].value = v;
            return 0;
        }
    if (c->nextras == c->extras_cap) {
        size_t cap = c->extras_cap ? c->extras_cap * 2 : 8;
        struct config_extra *e = realloc(c->extras, cap * sizeof(*e));
        if (e == NULL) {
            free(v);
            return -1;
        }
        c->extras = e;
        c->extras_cap = cap;
    }
    char *k = strdup(key);
    if (k == NULL) {
        free(v);
        return -1;
    }
    c->extras[c->nextras].key = k;
    c->extras[c->nextras].value = v;
    c->nextras++;
    return 0;
}

static int set_layer(broker_config_t *c, int layer, const char *key, const char *value,
                     char *err, size_t errlen)
{
    char msg[300];
    const char *target = key;
    bool is_alias = false;
    for (size_t i = 0; i < sizeof(config_aliases) / sizeof(config_aliases[0]); i++)
        if (strcmp(config_aliases[i].alias, key) == 0) {
            target = config_aliases[i].target;
            is_alias = true;
            snprintf(msg, sizeof(msg),
                     "%s is not a Kafka config; using it as %s (an explicit %s wins)", key,
                     target, target);
            warn(c, msg);
        }
    const config_def_t *d = config_def_find_broker(target);

    if (d == NULL) {
        if (layer != LAYER_STATIC) {
            set_err(err, errlen, "Unknown broker config name: %s", key);
            return -1;
        }
        if (value == NULL) {
            set_err(err, errlen, "Invalid value null for configuration %s", key);
            return -1;
        }
        snprintf(msg, sizeof(msg), "The configuration '%s' was supplied but isn't a known config.",
                 key);
        warn(c, msg);
        pthread_rwlock_wrlock(&c->lock);
        int rc = set_extra_locked(c, key, value);
        pthread_rwlock_unlock(&c->lock);
        if (rc != 0)
            set_err(err, errlen, "out of memory");
        return rc;
    }
    if (layer != LAYER_STATIC && !d->dynamic) {
        set_err(err, errlen, "Cannot update these configs dynamically: %s", d->name);
        return -1;
    }
    char *norm = NULL;
    if (value == NULL) {
        if (layer == LAYER_STATIC) {
            set_err(err, errlen, "Invalid value null for configuration %s", d->name);
            return -1;
        }
    } else if (config_def_validate(d, value, &norm, err, errlen) != 0) {
        return -1;
    }

    size_t i = def_index(d);
    bool ignored = false;
    pthread_rwlock_wrlock(&c->lock);
    if (is_alias && c->vals[layer][i] && !c->via_alias[layer][i]) {
        ignored = true; /* the real name was given too: it wins */
        free(norm);
    } else {
        retire(c, c->vals[layer][i]);
        c->vals[layer][i] = norm;
        c->via_alias[layer][i] = norm ? is_alias : false;
        refresh_derived_locked(c);
    }
    pthread_rwlock_unlock(&c->lock);
    if (ignored) {
        snprintf(msg, sizeof(msg), "%s ignored: %s is set", key, d->name);
        warn(c, msg);
    }
    return 0;
}

int broker_config_set_static(broker_config_t *c, const char *key, const char *value,
                             char *err, size_t errlen)
{
    return set_layer(c, LAYER_STATIC, key, value, err, errlen);
}

int broker_config_set_dynamic(broker_config_t *c, const char *key, const char *value,
                              char *err, size_t errlen)
{
    return set_layer(c, LAYER_DYN_BROKER, key, value, err, errlen);
}

int broker_config_set_dynamic_default(broker_config_t *c, const char *key, const char *value,
                                      char *err, size_t errlen)
{
    return set_layer(c, LAYER_DYN_DEFAULT, key, value, err, errlen);
}

struct load_ctx {
    broker_config_t *c;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
};

static void load_cb(void *arg, const char *key, const char *value, int line)
{
    struct load_ctx *x = arg;
    if (x->rc != 0)
        return;
    char e[400];
    if (broker_config_set_static(x->c, key, value, e, sizeof(e)) != 0) {
        set_err(x->err, x->errlen, "%s:%d: %s", x->path, line, e);
        x->rc = -1;
    }
}

int broker_config_load_file(broker_config_t *c, const char *path, char *err, size_t errlen)
{
    struct load_ctx x = {c, path, err, errlen, 0};
    if (properties_load_file(path, load_cb, &x, err, errlen) != 0)
        return -1;
    return x.rc;
}

int broker_config_apply_override(broker_config_t *c, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL) {
        set_err(err, errlen, "Invalid override '%s': expected key=value", kv);
        return -1;
    }
    char *key = strndup(kv, (size_t)(eq - kv)), *tk = key ? trim_dup(key) : NULL;
    free(key);
    if (tk == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    int rc = broker_config_set_static(c, tk, eq + 1, err, errlen);
    free(tk);
    return rc;
}

void broker_config_foreach_dynamic(const broker_config_t *c, bool cluster_default,
                                   void (*cb)(void *arg, const char *key, const char *value),
                                   void *arg)
{
    int layer = cluster_default ? LAYER_DYN_DEFAULT : LAYER_DYN_BROKER;
    for (size_t i = 0; i < NDEFS; i++) {
        rdlock(c);
        const char *v = c->vals[layer][i];
        unlock(c);
        if (v)
            cb(arg, config_defs[i].name, v);
    }
}

const char *broker_config_get(const broker_config_t *c, const char *key, int *source_out)
{
    int src = CONFIG_SOURCE_UNKNOWN;
    const char *v = NULL;
    const config_def_t *d = config_def_find_broker(key);
    rdlock(c);
    if (d) {
        v = eff_locked(c, def_index(d), &src);
    } else if (key) {
        for (size_t i = 0; i < c->nextras; i++)
            if (strcmp(c->extras[i].key, key) == 0) {
                v = c->extras[i].value;
                src = CONFIG_SOURCE_STATIC_BROKER;
                break;
            }
    }
    unlock(c);
    if (source_out)
        *source_out = src;
    return v;
}

int64_t broker_config_get_long(const broker_config_t *c, const char *key)
{
    int ci = key ? chain_index(key) : -1;
    if (ci >= 0) {
        int src;
        rdlock(c);
        int64_t v = chain_eval_locked(c, &config_chains[ci], &src);
        unlock(c);
        return v;
    }
    const char *v = broker_config_get(c, key, NULL);
    int64_t n;
    return v && parse_i64(v, &n) ? n : -1;
}

bool broker_config_get_bool(const broker_config_t *c, const char *key)
{
    const char *v = broker_config_get(c, key, NULL);
    return v && strcasecmp(v, "true") == 0;
}

double broker_config_get_double(const broker_config_t *c, const char *key)
{
    const char *v = broker_config_get(c, key, NULL);
    double x;
    return v && parse_double(v, &x) ? x : 0.0;
}

int64_t broker_config_retention_ms(const broker_config_t *c)
{
    return broker_config_get_long(c, "log.retention.ms");
}

int64_t broker_config_roll_ms(const broker_config_t *c)
{
    return broker_config_get_long(c, "log.roll.ms");
}

const char *broker_config_log_dirs(const broker_config_t *c)
{
    const char *v = broker_config_get(c, "log.dirs", NULL);
    return v ? v : broker_config_get(c, "log.dir", NULL);
}

const char *broker_config_advertised_listeners(const broker_config_t *c)
{
    const char *v = broker_config_get(c, "advertised.listeners", NULL);
    return v ? v : broker_config_get(c, "listeners", NULL);
}

void broker_config_foreach(const broker_config_t *c,
                           void (*cb)(void *arg, const config_def_t *def, const char *value,
                                      int source),
                           void *arg)
{
    for (size_t i = 0; i < NDEFS; i++) {
        if (config_defs[i].scope != SCOPE_BROKER)
            continue;
        int src;
        rdlock(c);
        const char *v = eff_locked(c, i, &src);
        unlock(c);
        cb(arg, &config_defs[i], v, src);
    }
}

/* ---- topic overrides -------------------------------------------------------------- */

struct topic_kv {
    char *key;
    char *value;
};

struct topic_config {
    struct topic_kv *e; /* sorted by key */
    size_t n, cap;
};

topic_config_t *topic_config_new(void)
{
    return calloc(1, sizeof(topic_config_t));
}

static void topic_clear(topic_config_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].key);
        free(t->e[i].value);
    }
    free(t->e);
    t->e = NULL;
    t->n = t->cap = 0;
}

void topic_config_free(topic_config_t *t)
{
    if (t == NULL)
        return;
    topic_clear(t);
    free(t);
}

topic_config_t *topic_config_clone(const topic_config_t *t)
{
    if (t == NULL)
        return NULL;
    topic_config_t *n = topic_config_new();
    if (n == NULL)
        return NULL;
    if (t->n) {
        n->e = calloc(t->n, sizeof(*n->e));
        if (n->e == NULL) {
            free(n);
            return NULL;
        }
        n->cap = t->n;
        for (size_t i = 0; i < t->n; i++) {
            n->e[i].key = strdup(t->e[i].key);
            n->e[i].value = strdup(t->e[i].value);
            n->n = i + 1;
            if (n->e[i].key == NULL || n->e[i].value == NULL) {
                topic_config_free(n);
                return NULL;
            }
        }
    }
    return n;
}

size_t topic_config_count(const topic_config_t *t)
{
    return t ? t->n : 0;
}

/* Position of key, or where it would be inserted (with *found false). */
static size_t topic_find(const topic_config_t *t, const char *key, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->e[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int topic_config_validate(const char *key, const char *value, char *err, size_t errlen)
{
    const config_def_t *d = config_def_find_topic(key);
    if (d == NULL) {
        set_err(err, errlen, "Unknown topic config name: %s", key ? key : "(null)");
        return -1;
    }
    return config_def_validate(d, value, NULL, err, errlen);
}

int topic_config_set(topic_config_t *t, const char *key, const char *value, char *err,
                     size_t errlen)
{
    const config_def_t *d = config_def_find_topic(key);
    if (d == NULL) {
        set_err(err, errlen, "Unknown topic config name: %s", key ? key : "(null)");
        return -1;
    }
    bool found;
    size_t pos = topic_find(t, d->name, &found);
    if (value == NULL) {
        if (found) {
            free(t->e[pos].key);
            free(t->e[pos].value);
            memmove(&t->e[pos], &t->e[pos + 1], (t->n - pos - 1) * sizeof(t->e[0]));
            t->n--;
        }
        return 0;
    }
    char *norm;
    if (config_def_validate(d, value, &norm, err, errlen) != 0)
        return -1;
    if (found) {
        free(t->e[pos].value);
        t->e[pos].value = norm;
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct topic_kv *e = realloc(t->e, cap * sizeof(*e));
        if (e == NULL) {
            free(norm);
            set_err(err, errlen, "out of memory");
            return -1;
        }
        t->e = e;
        t->cap = cap;
    }
    char *k = strdup(d->name);
    if (k == NULL) {
        free(norm);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    memmove(&t->e[pos + 1], &t->e[pos], (t->n - pos) * sizeof(t->e[0]));
    t->e[pos].key = k;
    t->e[pos].value = norm;
    t->n++;
    return 0;
}

const char *topic_config_get(const topic_config_t *t, const broker_config_t *b,
                             const char *topic_key, int *source_out)
{
    int src = CONFIG_SOURCE_UNKNOWN;
    const char *v = NULL;
    const config_def_t *d = config_def_find_topic(topic_key);
    if (d == NULL)
        goto out;
    if (t) {
        bool found;
        size_t pos = topic_find(t, d->name, &found);
        if (found) {
            v = t->e[pos].value;
            src = CONFIG_SOURCE_TOPIC;
            goto out;
        }
    }
    if (b && d->synonym) {
        int ci = chain_index(d->synonym);
        if (ci >= 0) {
            rdlock(b);
            v = b->derived[ci];
            src = b->derived_src[ci];
            unlock(b);
            goto out;
        }
        v = broker_config_get(b, d->synonym, &src);
        if (v)
            goto out;
    }
    v = d->dflt;
    src = CONFIG_SOURCE_DEFAULT;
out:
    if (source_out)
        *source_out = src;
    return v;
}

int64_t topic_config_get_long(const topic_config_t *t, const broker_config_t *b,
                              const char *topic_key)
{
    const char *v = topic_config_get(t, b, topic_key, NULL);
    int64_t n;
    return v && parse_i64(v, &n) ? n : -1;
}

bool topic_config_get_bool(const topic_config_t *t, const broker_config_t *b,
                           const char *topic_key)
{
    const char *v = topic_config_get(t, b, topic_key, NULL);
    return v && strcasecmp(v, "true") == 0;
}

double topic_config_get_double(const topic_config_t *t, const broker_config_t *b,
                               const char *topic_key)
{
    const char *v = topic_config_get(t, b, topic_key, NULL);
    double x;
    return v && parse_double(v, &x) ? x : 0.0;
}

void topic_config_foreach_effective(const topic_config_t *t, const broker_config_t *b,
                                    void (*cb)(void *arg, const config_def_t *def,
                                               const char *value, int source),
                                    void *arg)
{
    for (size_t i = 0; i < NDEFS; i++) {
        if (config_defs[i].scope != SCOPE_TOPIC)
            continue;
        int src;
        const char *v = topic_config_get(t, b, config_defs[i].name, &src);
        cb(arg, &config_defs[i], v, src);
    }
}

void topic_config_foreach_override(const topic_config_t *t,
                                   void (*cb)(void *arg, const char *key, const char *value),
                                   void *arg)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        cb(arg, t->e[i].key, t->e[i].value);
}

/* ---- persistence ------------------------------------------------------------------ */

int topic_config_save(const topic_config_t *t, const char *path)
{
    buf_t out;
    buf_init(&out);
    static const char header[] = "# Runnel topic configuration overrides\n";
    buf_put(&out, header, sizeof(header) - 1);
    for (size_t i = 0; t && i < t->n; i++)
        properties_write_entry(&out, t->e[i].key, t->e[i].value);
    if (out.oom) {
        buf_free(&out);
        errno = ENOMEM;
        return -1;
    }
    int rc = fs_write_atomic(path, out.data, out.len);
    int e = errno;
    buf_free(&out);
    errno = e;
    return rc;
}

struct topic_load_ctx {
    topic_config_t *t;
    int rc;
};

static void topic_load_cb(void *arg, const char *key, const char *value, int line)
{
    (void)line;
    struct topic_load_ctx *x = arg;
    if (x->rc == 0 && topic_config_set(x->t, key, value, NULL, 0) != 0)
        x->rc = -1;
}

int topic_config_load(topic_config_t *t, const char *path)
{
    topic_config_t fresh = {0};
    struct topic_load_ctx x = {&fresh, 0};
    if (properties_load_file(path, topic_load_cb, &x, NULL, 0) != 0) {
        int e = errno;
        topic_clear(&fresh);
        errno = e;
        return -1;
    }
    if (x.rc != 0) {
        topic_clear(&fresh);
        errno = EINVAL;
        return -1;
    }
    topic_clear(t);
    *t = fresh;
    return 0;
}
