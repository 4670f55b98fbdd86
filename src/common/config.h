/*
 * config.h - broker and topic configuration with Kafka's names, defaults, validation and
 * DescribeConfigs sources.
 *
 * One static table defines every known key: its Kafka type, its default (as the string
 * Kafka shows; NULL where Kafka's default is null), its validator, whether a broker key
 * may be changed at run time, and the synonym on the other level (log.retention.ms on
 * the broker is retention.ms on a topic).
 *
 * Precedence, as in Kafka:
 *   broker key:  dynamic per-broker > dynamic cluster default > static (server.properties
 *                and --override) > built-in default;
 *   time keys:   a more precise unit wins whatever layer it comes from:
 *                log.retention.ms > log.retention.minutes > log.retention.hours,
 *                log.roll.ms > log.roll.hours, log.roll.jitter.ms > .hours,
 *                log.flush.interval.ms > log.flush.scheduler.interval.ms,
 *                zookeeper.connection.timeout.ms > zookeeper.session.timeout.ms;
 *   topic key:   topic override > the broker synonym's effective value (with its source)
 *                > the topic default.
 *
 * Values are validated and normalised as Kafka's ConfigDef does: surrounding blanks are
 * trimmed (passwords excepted), numbers must parse whole and lie in range, booleans are
 * true/false in any case and stored lower-case, lists are comma-separated and stored
 * joined by ",". Error text follows Kafka:
 *   "Invalid value abc for configuration segment.bytes: Not a number of type INT".
 *
 * segment.bytes / log.segment.bytes use Kafka 3.x's lower bound (14 bytes) rather than
 * the 1 MiB of Kafka 4, so tests can roll tiny segments.
 *
 * Threads: a broker_config_t may be read from any thread while another changes it (an
 * internal rwlock). Strings it returns stay valid until broker_config_free, because
 * replaced values are retired, not freed (dynamic changes are rare, so this is small).
 * A topic_config_t has no lock: its owner serialises access, and its strings are valid
 * until that key is next changed.
 */
#ifndef RUNNEL_CONFIG_H
#define RUNNEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka's DescribeConfigs ConfigSource values. */
enum config_source {
    CONFIG_SOURCE_UNKNOWN = 0,
    CONFIG_SOURCE_TOPIC = 1,
    CONFIG_SOURCE_DYNAMIC_BROKER = 2,
    CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER = 3,
    CONFIG_SOURCE_STATIC_BROKER = 4,
    CONFIG_SOURCE_DEFAULT = 5,
};

/* Kafka's DescribeConfigs ConfigType values (v3+). */
enum config_type {
    CONFIG_TYPE_BOOLEAN = 1,
    CONFIG_TYPE_STRING = 2,
    CONFIG_TYPE_INT = 3,
    CONFIG_TYPE_SHORT = 4,
    CONFIG_TYPE_LONG = 5,
    CONFIG_TYPE_DOUBLE = 6,
    CONFIG_TYPE_LIST = 7,
    CONFIG_TYPE_CLASS = 8,
    CONFIG_TYPE_PASSWORD = 9,
};

typedef struct config_def config_def_t;

/* Looks a key up: the broker key of that name if there is one, else the topic key.
 * (compression.type, min.insync.replicas and unclean.leader.election.enable exist on
 * both levels under the same name.) NULL if unknown. */
const config_def_t *config_def_find(const char *name);
const config_def_t *config_def_find_broker(const char *name);
const config_def_t *config_def_find_topic(const char *name);

const char *config_def_name(const config_def_t *d);
/* One of enum config_type. */
int config_def_kafka_type(const config_def_t *d);
/* The built-in default as Kafka shows it; NULL for a null default. */
const char *config_def_default(const config_def_t *d);
bool config_def_is_topic(const config_def_t *d);
/* True for broker keys AlterConfigs may not change; always false for topic keys. */
bool config_def_read_only(const config_def_t *d);
/* True for PASSWORD keys: DescribeConfigs must not return their value. */
bool config_def_sensitive(const config_def_t *d);
/* The same setting on the other level ("retention.ms" for log.retention.ms and the
 * reverse), or NULL. */
const char *config_def_synonym(const config_def_t *d);
/* One-line description; "" when there is none. */
const char *config_def_doc(const config_def_t *d);

/* Validates `value` for `d` as Kafka would; on success stores a malloc'd normalised copy
 * in *normalised (if not NULL) and returns 0; else -1 with Kafka's message in err. */
int config_def_validate(const config_def_t *d, const char *value, char **normalised,
                        char *err, size_t errlen);

/* True if the comma-separated list contains `item` (blanks around items ignored), e.g.
 * config_list_contains(cleanup_policy, "compact"). */
bool config_list_contains(const char *list, const char *item);

/* ---- listeners ----------------------------------------------------------------- */

typedef struct config_listener {
    char name[64];  /* upper-cased listener name, e.g. PLAINTEXT */
    char host[256]; /* "" = all interfaces; IPv6 without brackets */
    int port;       /* 0..65535 (0 = any free port) */
} config_listener_t;

/* Parses a listeners value such as "PLAINTEXT://:9092,INTERNAL://[::1]:9093" into at
 * most `max` entries. Returns the number parsed (0 for an empty string), or -1 with a
 * message in err (bad syntax, bad port, repeated name, more than max). */
int config_parse_listeners(const char *s, config_listener_t *out, int max, char *err,
                           size_t errlen);

/* ---- broker configuration ------------------------------------------------------ */

typedef struct broker_config broker_config_t;
typedef void (*config_warn_cb)(void *arg, const char *msg);

broker_config_t *broker_config_new(void);
void broker_config_free(broker_config_t *c);

/* Where warnings go (unknown keys, the log.segment.ms alias). The default logs them
 * with LOG_WARN("config", ...). */
void broker_config_set_warn_cb(broker_config_t *c, config_warn_cb cb, void *arg);

/* A static setting (server.properties, --override). An unknown key is kept (readable
 * through broker_config_get, source STATIC) with a warning, as Kafka does; an invalid
 * value is an error naming key, value and what is allowed. log.segment.ms is accepted as
 * an alias of log.roll.ms, with a warning; a log.roll.ms given explicitly wins over it
 * whatever the order. A later setting of the same key replaces an earlier one. */
int broker_config_set_static(broker_config_t *c, const char *key, const char *value,
                             char *err, size_t errlen);
/* Loads server.properties through broker_config_set_static; stops at the first error,
 * whose message then starts with "path:line: ". */
int broker_config_load_file(broker_config_t *c, const char *path, char *err, size_t errlen);
/* Applies one "key=value" command-line override (split at the first '='). */
int broker_config_apply_override(broker_config_t *c, const char *kv, char *err, size_t errlen);

/* A dynamic per-broker setting (AlterConfigs on this broker's id): source
 * DYNAMIC_BROKER. value NULL deletes it. Unknown and read-only keys are refused
 * ("Cannot update these configs dynamically: listeners"). */
int broker_config_set_dynamic(broker_config_t *c, const char *key, const char *value,
                              char *err, size_t errlen);
/* The same for the cluster-wide default (AlterConfigs on the broker resource ""):
 * source DYNAMIC_DEFAULT_BROKER. */
int broker_config_set_dynamic_default(broker_config_t *c, const char *key, const char *value,
                                      char *err, size_t errlen);
/* Every dynamic setting of one layer, for persisting them in the metadata store. */
void broker_config_foreach_dynamic(const broker_config_t *c, bool cluster_default,
                                   void (*cb)(void *arg, const char *key, const char *value),
                                   void *arg);

/* The effective value of a key after the layer precedence (not the unit precedence: use
 * the derived getters below for that). NULL for a null value or an unknown key; the
 * source (enum config_source) goes to *source_out if not NULL. */
const char *broker_config_get(const broker_config_t *c, const char *key, int *source_out);
/* Numeric value of a key. For log.retention.ms, log.roll.ms, log.roll.jitter.ms,
 * log.flush.interval.ms and zookeeper.connection.timeout.ms this is the value after the
 * unit precedence (so never null); otherwise a null, unknown or non-numeric value reads
 * as -1 (use broker_config_get to tell null apart). */
int64_t broker_config_get_long(const broker_config_t *c, const char *key);
/* True only for a "true" value. */
bool broker_config_get_bool(const broker_config_t *c, const char *key);
/* 0.0 for a null, unknown or non-numeric value. */
double broker_config_get_double(const broker_config_t *c, const char *key);
/* log.retention.{ms,minutes,hours} resolved; -1 (keep forever) for any negative. */
int64_t broker_config_retention_ms(const broker_config_t *c);
/* log.roll.{ms,hours} resolved. */
int64_t broker_config_roll_ms(const broker_config_t *c);
/* log.dirs, else log.dir. */
const char *broker_config_log_dirs(const broker_config_t *c);
/* advertised.listeners, else listeners. */
const char *broker_config_advertised_listeners(const broker_config_t *c);

/* Every broker key in table order with its effective value (NULL for null) and source:
 * DescribeConfigs on a broker resource. Sensitive values are passed too; the caller
 * hides them. The callback may call back into the getters. */
void broker_config_foreach(const broker_config_t *c,
                           void (*cb)(void *arg, const config_def_t *def, const char *value,
                                      int source),
                           void *arg);

/* ---- topic overrides ----------------------------------------------------------- */

typedef struct topic_config topic_config_t;

topic_config_t *topic_config_new(void);
void topic_config_free(topic_config_t *t);
/* NULL on allocation failure (or if t is NULL). */
topic_config_t *topic_config_clone(const topic_config_t *t);

/* -1 for an unknown topic key ("Unknown topic config name: x") or a bad value; the broker
 * answers INVALID_CONFIG (40) with the message. */
int topic_config_validate(const char *key, const char *value, char *err, size_t errlen);
/* Sets an override (validated and normalised) or, with value NULL, deletes it (deleting
 * one that is not set is not an error). */
int topic_config_set(topic_config_t *t, const char *key, const char *value, char *err,
                     size_t errlen);
/* Number of overrides. */
size_t topic_config_count(const topic_config_t *t);

/* Effective value: the override (source TOPIC), else the broker synonym's effective
 * value with its source (retention.ms from log.retention.{ms,minutes,hours}, segment.ms
 * from log.roll.{ms,hours}, ...), else the topic default (source DEFAULT). t and b may
 * be NULL (no overrides / broker defaults only). NULL for an unknown key. */
const char *topic_config_get(const topic_config_t *t, const broker_config_t *b,
                             const char *topic_key, int *source_out);
/* Numeric forms of topic_config_get: -1 / false / 0.0 for unknown or non-numeric keys. */
int64_t topic_config_get_long(const topic_config_t *t, const broker_config_t *b,
                              const char *topic_key);
bool topic_config_get_bool(const topic_config_t *t, const broker_config_t *b,
                           const char *topic_key);
double topic_config_get_double(const topic_config_t *t, const broker_config_t *b,
                               const char *topic_key);

/* Every topic-level key in table order with its effective value and source:
 * DescribeConfigs on a topic resource. */
void topic_config_foreach_effective(const topic_config_t *t, const broker_config_t *b,
                                    void (*cb)(void *arg, const config_def_t *def,
                                               const char *value, int source),
                                    void *arg);
/* Only the overrides, in key order. */
void topic_config_foreach_override(const topic_config_t *t,
                                   void (*cb)(void *arg, const char *key, const char *value),
                                   void *arg);

/* Persists the overrides as Java properties text: written to "<path>.tmp", fsynced,
 * renamed over path, and the directory fsynced. 0, or -1 with errno set. */
int topic_config_save(const topic_config_t *t, const char *path);
/* Replaces t's overrides with the file's. -1 with errno set on an I/O error, or with
 * errno EINVAL if the file is malformed or holds an unknown key or bad value (t is then
 * unchanged). */
int topic_config_load(topic_config_t *t, const char *path);

#endif
