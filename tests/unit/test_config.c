/* Unit tests for properties parsing and the broker/topic configuration store. */
#include "common/buf.h"
#include "common/config.h"
#include "common/properties.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_STR(a, b) do { \
        const char *sa_ = (a), *sb_ = (b); \
        if (sa_ == NULL || sb_ == NULL ? sa_ != sb_ : strcmp(sa_, sb_) != 0) { \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__, \
                    __LINE__, #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)"); \
            test_checks_failed++; \
        } \
    } while (0)

/* ---- helpers ---- */

#define MAX_ENTRIES 32
struct entries {
    int n;
    char *key[MAX_ENTRIES];
    char *value[MAX_ENTRIES];
    int line[MAX_ENTRIES];
};

static void collect(void *arg, const char *key, const char *value, int line)
{
    struct entries *e = arg;
    if (e->n >= MAX_ENTRIES)
        return;
    e->key[e->n] = strdup(key);
    e->value[e->n] = strdup(value);
    e->line[e->n] = line;
    e->n++;
}

static void entries_free(struct entries *e)
{
    for (int i = 0; i < e->n; i++) {
        free(e->key[i]);
        free(e->value[i]);
    }
    e->n = 0;
}

static int warnings;
static char last_warning[300];

static void count_warn(void *arg, const char *msg)
{
    (void)arg;
    warnings++;
    snprintf(last_warning, sizeof(last_warning), "%s", msg);
}

static broker_config_t *quiet_broker(void)
{
    broker_config_t *b = broker_config_new();
    if (b)
        broker_config_set_warn_cb(b, count_warn, NULL);
    warnings = 0;
    last_warning[0] = '\0';
    return b;
}

/* ---- properties ---- */

static void test_properties_syntax(void)
{
    static const char text[] =
        "# comment\n"
        "! bang comment\n"
        "   \n"
        "a=b\n"
        "c : d\n"
        "e f\n"
        "\tg\t=\th  \n"
        "multi = one \\\n"
        "     two\n"
        "esc = tab\\there\\nnl\\\\slash\\u0041\\u00e9\n"
        "key\\ with\\=sep = v\n"
        "empty=\n"
        "justkey\n"
        "crlf=1\r\n"
        "cr=2\r"
        "# comment ending in a backslash \\\n"
        "after=3\n"
        "even=x\\\\\n"
        "next=4\n"
        "emoji=\\uD83D\\uDE00\n"
        "a:=:b\n"
        "last=a\\";
    struct entries e = {0};
    char err[200] = "";
    CHECK_EQ_INT(properties_parse(text, sizeof(text) - 1, collect, &e, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    static const char *const want[][2] = {
        {"a", "b"},
        {"c", "d"},
        {"e", "f"},
        {"g", "h  "}, /* Java keeps trailing blanks of a value */
        {"multi", "one two"},
        {"esc", "tab\there\nnl\\slashA\xc3\xa9"},
        {"key with=sep", "v"},
        {"empty", ""},
        {"justkey", ""},
        {"crlf", "1"},
        {"cr", "2"},
        {"after", "3"},
        {"even", "x\\"},
        {"next", "4"},
        {"emoji", "\xf0\x9f\x98\x80"},
        {"a", "=:b"},
        {"last", "a"},
    };
    CHECK_EQ_INT(e.n, sizeof(want) / sizeof(want[0]));
    for (int i = 0; i < e.n && i < (int)(sizeof(want) / sizeof(want[0])); i++) {
        CHECK_STR(e.key[i], want[i][0]);
        CHECK_STR(e.value[i], want[i][1]);
    }
    /* Line numbers: where each entry starts. */
    CHECK_EQ_INT(e.line[0], 4);
    CHECK_EQ_INT(e.line[4], 8);  /* multi: starts on 8, continues on 9 */
    CHECK_EQ_INT(e.line[5], 10); /* esc */
    CHECK_EQ_INT(e.line[9], 14); /* crlf */
    CHECK_EQ_INT(e.line[10], 15); /* cr, ended by a lone \r */
    CHECK_EQ_INT(e.line[11], 17); /* after the comment */
    entries_free(&e);
}

static void test_properties_errors(void)
{
    struct entries e = {0};
    char err[200] = "";
    const char bad_u[] = "ok=1\nbad=\\u12G4\n";
    CHECK_EQ_INT(properties_parse(bad_u, sizeof(bad_u) - 1, collect, &e, err, sizeof(err)), -1);
    CHECK_STR(err, "line 2: Malformed \\uxxxx encoding");
    CHECK_EQ_INT(e.n, 1); /* the entry before the error was reported */
    entries_free(&e);

    const char short_u[] = "x=\\u12";
    CHECK_EQ_INT(properties_parse(short_u, sizeof(short_u) - 1, collect, &e, err, sizeof(err)), -1);
    CHECK_EQ_INT(e.n, 0);

    const char nul[] = "a=1\n\nb=x\0y\n";
    CHECK_EQ_INT(properties_parse(nul, sizeof(nul) - 1, collect, &e, err, sizeof(err)), -1);
    CHECK_STR(err, "line 3: NUL byte in properties text");
    entries_free(&e);

    const char nul_esc[] = "a=\\u0000";
    CHECK_EQ_INT(properties_parse(nul_esc, sizeof(nul_esc) - 1, collect, &e, err, sizeof(err)), -1);
    CHECK_EQ_INT(e.n, 0);

    /* Empty input and only comments: nothing, no error. */
    CHECK_EQ_INT(properties_parse("", 0, collect, &e, err, sizeof(err)), 0);
    CHECK_EQ_INT(properties_parse("#x\n!y", 5, collect, &e, err, sizeof(err)), 0);
    CHECK_EQ_INT(e.n, 0);

    CHECK_EQ_INT(properties_load_file("/nonexistent-dir/x.properties", collect, &e, err, sizeof(err)), -1);
    CHECK_EQ_INT(errno, ENOENT);
    CHECK(strstr(err, "/nonexistent-dir/x.properties: ") == err);
}

static void test_properties_write_roundtrip(void)
{
    static const char *const kv[][2] = {
        {"plain", "value"},
        {"key with space", " leading and trailing "},
        {"sep=:#!", "a=b:c#d!e\\f"},
        {"ctl", "tab\tnl\ncr\rff\fbell\x07"},
        {"#hash", "!bang"},
        {"utf8", "h\xc3\xa9llo"},
        {"empty", ""},
    };
    size_t n = sizeof(kv) / sizeof(kv[0]);
    buf_t out;
    buf_init(&out);
    for (size_t i = 0; i < n; i++)
        properties_write_entry(&out, kv[i][0], kv[i][1]);
    /* Exact text of two of them. */
    static const char first[] = "plain=value\nkey\\ with\\ space=\\ leading and trailing \n";
    CHECK(out.len > sizeof(first) - 1);
    CHECK_MEM(out.data, first, sizeof(first) - 1);
    struct entries e = {0};
    char err[200];
    CHECK_EQ_INT(properties_parse((const char *)out.data, out.len, collect, &e, err, sizeof(err)), 0);
    CHECK_EQ_INT(e.n, n);
    for (size_t i = 0; i < n && (int)i < e.n; i++) {
        CHECK_STR(e.key[i], kv[i][0]);
        CHECK_STR(e.value[i], kv[i][1]);
    }
    entries_free(&e);
    buf_free(&out);
}

/* ---- defaults ---- */

static void test_broker_defaults(void)
{
    broker_config_t *b = quiet_broker();
    CHECK(b != NULL);
    if (!b)
        return;
    static const char *const want[][2] = {
        {"broker.id", "0"},
        {"node.id", "-1"},
        {"listeners", "PLAINTEXT://:9092"},
        {"advertised.listeners", NULL},
        {"listener.security.protocol.map", "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"},
        {"log.dir", "/tmp/kafka-logs"},
        {"log.dirs", NULL},
        {"num.partitions", "1"},
        {"default.replication.factor", "1"},
        {"min.insync.replicas", "1"},
        {"auto.create.topics.enable", "true"},
        {"delete.topic.enable", "true"},
        {"log.segment.bytes", "1073741824"},
        {"log.roll.hours", "168"},
        {"log.roll.ms", NULL},
        {"log.retention.hours", "168"},
        {"log.retention.minutes", NULL},
        {"log.retention.ms", NULL},
        {"log.retention.bytes", "-1"},
        {"log.retention.check.interval.ms", "300000"},
        {"log.cleanup.policy", "delete"},
        {"log.index.interval.bytes", "4096"},
        {"log.index.size.max.bytes", "10485760"},
        {"log.flush.interval.messages", "9223372036854775807"},
        {"log.flush.interval.ms", NULL},
        {"log.flush.scheduler.interval.ms", "9223372036854775807"},
        {"log.flush.offset.checkpoint.interval.ms", "60000"},
        {"log.flush.start.offset.checkpoint.interval.ms", "60000"},
        {"log.message.timestamp.type", "CreateTime"},
        {"message.max.bytes", "1048588"},
        {"socket.request.max.bytes", "104857600"},
        {"socket.send.buffer.bytes", "102400"},
        {"socket.receive.buffer.bytes", "102400"},
        {"num.network.threads", "3"},
        {"num.io.threads", "8"},
        {"num.recovery.threads.per.data.dir", "1"},
        {"connections.max.idle.ms", "600000"},
        {"compression.type", "producer"},
        {"offsets.topic.num.partitions", "50"},
        {"offsets.topic.replication.factor", "3"},
        {"offsets.retention.minutes", "10080"},
        {"offsets.commit.timeout.ms", "5000"},
        {"transaction.state.log.num.partitions", "50"},
        {"transaction.state.log.replication.factor", "3"},
        {"transaction.state.log.min.isr", "2"},
        {"transactional.id.expiration.ms", "604800000"},
        {"transaction.max.timeout.ms", "900000"},
        {"replica.lag.time.max.ms", "30000"},
        {"replica.fetch.max.bytes", "1048576"},
        {"group.initial.rebalance.delay.ms", "3000"},
        {"group.min.session.timeout.ms", "6000"},
        {"group.max.session.timeout.ms", "1800000"},
        {"unclean.leader.election.enable", "false"},
        {"zookeeper.connect", NULL},
        {"zookeeper.session.timeout.ms", "18000"},
        {"zookeeper.connection.timeout.ms", NULL},
        {"log.cleaner.enable", "true"},
        {"log.cleaner.threads", "1"},
        {"log.cleaner.dedupe.buffer.size", "134217728"},
        {"log.cleaner.delete.retention.ms", "86400000"},
        {"log.cleaner.min.cleanable.ratio", "0.5"},
        {"log.cleaner.min.compaction.lag.ms", "0"},
        {"log.cleaner.max.compaction.lag.ms", "9223372036854775807"},
        {"log.cleaner.backoff.ms", "15000"},
        {"auto.leader.rebalance.enable", "true"},
        {"controlled.shutdown.enable", "true"},
        {"fetch.max.bytes", "57671680"},
        {"queued.max.requests", "500"},
        {"log.preallocate", "false"},
        {"log.segment.delete.delay.ms", "60000"},
        {"log.message.timestamp.before.max.ms", "9223372036854775807"},
        {"log.message.timestamp.after.max.ms", "9223372036854775807"},
        {"runnel.log.level", "info"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int src = -1;
        const char *v = broker_config_get(b, want[i][0], &src);
        CHECK_STR(v, want[i][1]);
        if (src != CONFIG_SOURCE_DEFAULT)
            fprintf(stderr, "key %s\n", want[i][0]);
        CHECK_EQ_INT(src, CONFIG_SOURCE_DEFAULT);
        const config_def_t *d = config_def_find_broker(want[i][0]);
        CHECK(d != NULL);
        if (d)
            CHECK_STR(config_def_default(d), want[i][1]);
    }
    /* Derived values. */
    CHECK_EQ_INT(broker_config_retention_ms(b), 604800000LL);
    CHECK_EQ_INT(broker_config_roll_ms(b), 604800000LL);
    CHECK_EQ_INT(broker_config_get_long(b, "log.roll.jitter.ms"), 0);
    CHECK_EQ_INT(broker_config_get_long(b, "log.flush.interval.ms"), INT64_MAX);
    CHECK_EQ_INT(broker_config_get_long(b, "zookeeper.connection.timeout.ms"), 18000);
    CHECK_STR(broker_config_log_dirs(b), "/tmp/kafka-logs");
    CHECK_STR(broker_config_advertised_listeners(b), "PLAINTEXT://:9092");
    /* Typed getters. */
    CHECK_EQ_INT(broker_config_get_long(b, "message.max.bytes"), 1048588);
    CHECK_EQ_INT(broker_config_get_long(b, "log.retention.minutes"), -1); /* null */
    CHECK_EQ_INT(broker_config_get_long(b, "no.such.key"), -1);
    CHECK(broker_config_get_bool(b, "auto.create.topics.enable"));
    CHECK(!broker_config_get_bool(b, "unclean.leader.election.enable"));
    CHECK(broker_config_get_double(b, "log.cleaner.min.cleanable.ratio") == 0.5);
    int src = -1;
    CHECK(broker_config_get(b, "no.such.key", &src) == NULL);
    CHECK_EQ_INT(src, CONFIG_SOURCE_UNKNOWN);
    CHECK_EQ_INT(warnings, 0);
    broker_config_free(b);
}

static void test_def_metadata(void)
{
    const config_def_t *d = config_def_find("log.retention.ms");
    CHECK(d != NULL);
    if (!d)
        return;
    CHECK_STR(config_def_name(d), "log.retention.ms");
    CHECK_EQ_INT(config_def_kafka_type(d), CONFIG_TYPE_LONG);
    CHECK_STR(config_def_synonym(d), "retention.ms");
    CHECK(!config_def_read_only(d));
    CHECK(!config_def_sensitive(d));
    CHECK(!config_def_is_topic(d));
    CHECK(strlen(config_def_doc(d)) > 0);

    CHECK(config_def_read_only(config_def_find("listeners")));
    CHECK(config_def_read_only(config_def_find("log.dirs")));
    CHECK(config_def_read_only(config_def_find("broker.id")));
    CHECK_EQ_INT(config_def_kafka_type(config_def_find("offsets.topic.replication.factor")), CONFIG_TYPE_SHORT);
    CHECK_EQ_INT(config_def_kafka_type(config_def_find("log.cleanup.policy")), CONFIG_TYPE_LIST);
    CHECK_EQ_INT(config_def_kafka_type(config_def_find("log.cleaner.min.cleanable.ratio")), CONFIG_TYPE_DOUBLE);
    CHECK_EQ_INT(config_def_kafka_type(config_def_find("preallocate")), CONFIG_TYPE_BOOLEAN);

    /* Same name on both levels: config_def_find prefers the broker key. */
    const config_def_t *bc = config_def_find("compression.type"), *tc = config_def_find_topic("compression.type");
    CHECK(bc && tc && bc != tc);
    CHECK(bc && !config_def_is_topic(bc));
    CHECK(tc && config_def_is_topic(tc) && !config_def_read_only(tc));
    CHECK(config_def_find("retention.ms") == config_def_find_topic("retention.ms"));
    CHECK(config_def_find_broker("retention.ms") == NULL);
    CHECK(config_def_find("log.segment.ms") == NULL); /* an alias, not a key */
    CHECK(config_def_find("nope") == NULL);

    /* Synonyms are symmetric for every topic key, and a fresh broker gives every topic key
     * its topic default (so broker and topic defaults agree, chains included). */
    static const char *const topic_keys[] = {
        "cleanup.policy", "compression.type", "delete.retention.ms", "file.delete.delay.ms",
        "flush.messages", "flush.ms", "index.interval.bytes", "max.compaction.lag.ms",
        "max.message.bytes", "message.timestamp.type", "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
        "min.insync.replicas", "preallocate", "retention.bytes", "retention.ms", "segment.bytes",
        "segment.index.bytes", "segment.jitter.ms", "segment.ms", "unclean.leader.election.enable",
    };
    broker_config_t *b = quiet_broker();
    for (size_t i = 0; i < sizeof(topic_keys) / sizeof(topic_keys[0]); i++) {
        const config_def_t *t = config_def_find_topic(topic_keys[i]);
        CHECK(t != NULL);
        if (!t)
            continue;
        const config_def_t *syn = config_def_find_broker(config_def_synonym(t));
        CHECK(syn != NULL);
        if (syn)
            CHECK_STR(config_def_synonym(syn), topic_keys[i]);
        int src = -1;
        CHECK_STR(topic_config_get(NULL, b, topic_keys[i], &src), config_def_default(t));
        CHECK_EQ_INT(src, CONFIG_SOURCE_DEFAULT);
        CHECK_STR(topic_config_get(NULL, NULL, topic_keys[i], &src), config_def_default(t));
    }
    broker_config_free(b);
}

/* ---- precedence ---- */

static void test_retention_precedence(void)
{
    broker_config_t *b = quiet_broker();
    char err[300];
    int src = -1;
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.hours", "24", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 86400000LL);
    CHECK_STR(topic_config_get(NULL, b, "retention.ms", &src), "86400000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);

    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.minutes", "30", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 1800000LL);

    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.ms", "1000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 1000);
    CHECK_EQ_INT(broker_config_get_long(b, "log.retention.ms"), 1000);

    /* A dynamic hours value does not beat a static ms value: units decide first. */
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.hours", "1", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 1000);
    CHECK_STR(broker_config_get(b, "log.retention.hours", &src), "1");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DYNAMIC_BROKER);

    CHECK_EQ_INT(broker_config_set_dynamic_default(b, "log.retention.ms", "5000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 5000);
    CHECK_STR(topic_config_get(NULL, b, "retention.ms", &src), "5000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER);
    CHECK_EQ_INT(topic_config_get_long(NULL, b, "retention.ms"), 5000);

    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.ms", "7000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 7000);
    CHECK_STR(topic_config_get(NULL, b, "retention.ms", &src), "7000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DYNAMIC_BROKER);

    /* Deleting dynamic values falls back layer by layer. */
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.ms", NULL, err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 5000);
    CHECK_EQ_INT(broker_config_set_dynamic_default(b, "log.retention.ms", NULL, err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), 1000);
    CHECK_STR(broker_config_get(b, "log.retention.ms", &src), "1000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    broker_config_free(b);

    /* Negative means keep forever, whatever the unit. */
    b = quiet_broker();
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.minutes", "-5", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), -1);
    CHECK_STR(topic_config_get(NULL, b, "retention.ms", NULL), "-1");
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.ms", "-1", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_retention_ms(b), -1);
    broker_config_free(b);
}

static void test_roll_precedence_and_alias(void)
{
    broker_config_t *b = quiet_broker();
    char err[300];
    int src = -1;
    CHECK_EQ_INT(broker_config_set_static(b, "log.roll.hours", "2", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_roll_ms(b), 7200000LL);
    CHECK_STR(topic_config_get(NULL, b, "segment.ms", &src), "7200000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    CHECK_EQ_INT(warnings, 0);

    /* The seed's log.segment.ms: accepted as log.roll.ms, with a warning. */
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.ms", "5000", err, sizeof(err)), 0);
    CHECK_EQ_INT(warnings, 1);
    CHECK(strstr(last_warning, "log.segment.ms") != NULL && strstr(last_warning, "log.roll.ms") != NULL);
    CHECK_EQ_INT(broker_config_roll_ms(b), 5000);
    CHECK_STR(broker_config_get(b, "log.roll.ms", &src), "5000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    CHECK(broker_config_get(b, "log.segment.ms", NULL) == NULL);

    /* The real name wins whatever the order. */
    CHECK_EQ_INT(broker_config_set_static(b, "log.roll.ms", "7000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_roll_ms(b), 7000);
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.ms", "9000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_roll_ms(b), 7000);
    CHECK_EQ_INT(warnings, 3); /* alias warning + "ignored" warning */
    /* A bad value through the alias is still an error. */
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.ms", "soon", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value soon for configuration log.roll.ms: Not a number of type LONG");
    broker_config_free(b);

    /* Jitter and flush chains. */
    b = quiet_broker();
    CHECK_EQ_INT(broker_config_set_static(b, "log.roll.jitter.hours", "1", err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(NULL, b, "segment.jitter.ms", &src), "3600000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    CHECK_EQ_INT(broker_config_set_static(b, "log.flush.scheduler.interval.ms", "3000", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_get_long(NULL, b, "flush.ms"), 3000);
    CHECK_EQ_INT(broker_config_set_static(b, "log.flush.interval.ms", "100", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_get_long(NULL, b, "flush.ms"), 100);
    CHECK_EQ_INT(broker_config_set_static(b, "zookeeper.session.timeout.ms", "6000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_get_long(b, "zookeeper.connection.timeout.ms"), 6000);
    broker_config_free(b);
}

static void test_sources(void)
{
    broker_config_t *b = quiet_broker();
    char err[300];
    int src = -1;
    CHECK_STR(broker_config_get(b, "log.retention.bytes", &src), "-1");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DEFAULT);
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.bytes", " 1000 ", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "log.retention.bytes", &src), "1000"); /* trimmed */
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    CHECK_EQ_INT(broker_config_set_dynamic_default(b, "log.retention.bytes", "2000", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "log.retention.bytes", &src), "2000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER);
    const char *held = broker_config_get(b, "log.retention.bytes", NULL);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.bytes", "3000", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "log.retention.bytes", &src), "3000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DYNAMIC_BROKER);
    CHECK_STR(held, "2000"); /* pointers handed out stay valid */
    CHECK_EQ_INT(broker_config_set_dynamic_default(b, "log.retention.bytes", NULL, err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.bytes", NULL, err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "log.retention.bytes", &src), "1000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    /* Deleting what is not set is fine. */
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.bytes", NULL, err, sizeof(err)), 0);

    /* Later static settings replace earlier ones. */
    CHECK_EQ_INT(broker_config_set_static(b, "num.partitions", "3", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_static(b, "num.partitions", "6", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_get_long(b, "num.partitions"), 6);

    /* Normalisation. */
    CHECK_EQ_INT(broker_config_set_static(b, "auto.create.topics.enable", "FALSE", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "auto.create.topics.enable", NULL), "false");
    CHECK(!broker_config_get_bool(b, "auto.create.topics.enable"));
    CHECK_EQ_INT(broker_config_set_static(b, "log.cleanup.policy", " compact , delete ", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "log.cleanup.policy", NULL), "compact,delete");
    CHECK_EQ_INT(broker_config_set_static(b, "broker.id", "+7", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "broker.id", NULL), "7");

    broker_config_free(b);
}

static void collect_kv(void *arg, const char *key, const char *value)
{
    collect(arg, key, value, 0);
}

static void test_dynamic_rules(void)
{
    broker_config_t *b = quiet_broker();
    char err[300];
    CHECK_EQ_INT(broker_config_set_dynamic(b, "listeners", "PLAINTEXT://:9093", err, sizeof(err)), -1);
    CHECK_STR(err, "Cannot update these configs dynamically: listeners");
    CHECK_EQ_INT(broker_config_set_dynamic_default(b, "log.dirs", "/x", err, sizeof(err)), -1);
    CHECK_STR(err, "Cannot update these configs dynamically: log.dirs");
    CHECK_EQ_INT(broker_config_set_dynamic(b, "made.up.key", "1", err, sizeof(err)), -1);
    CHECK_STR(err, "Unknown broker config name: made.up.key");
    /* Topic-only names are not broker keys. */
    CHECK_EQ_INT(broker_config_set_dynamic(b, "retention.ms", "1", err, sizeof(err)), -1);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.ms", "abc", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value abc for configuration log.retention.ms: Not a number of type LONG");
    CHECK_EQ_INT(broker_config_set_dynamic(b, "message.max.bytes", "2000000", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "compression.type", "zstd", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_dynamic_default(b, "log.cleanup.policy", "compact", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "runnel.log.level", "debug", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "runnel.log.level", "loud", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value loud for configuration runnel.log.level: String must be one of: debug, info, warn, error");

    struct entries e = {0};
    broker_config_foreach_dynamic(b, false, collect_kv, &e);
    CHECK_EQ_INT(e.n, 3); /* table order */
    if (e.n == 3) {
        CHECK_STR(e.key[0], "runnel.log.level");
        CHECK_STR(e.value[0], "debug");
        CHECK_STR(e.key[1], "message.max.bytes");
        CHECK_STR(e.value[1], "2000000");
        CHECK_STR(e.key[2], "compression.type");
        CHECK_STR(e.value[2], "zstd");
    }
    entries_free(&e);
    broker_config_foreach_dynamic(b, true, collect_kv, &e);
    CHECK_EQ_INT(e.n, 1);
    if (e.n == 1) {
        CHECK_STR(e.key[0], "log.cleanup.policy");
        CHECK_STR(e.value[0], "compact");
    }
    entries_free(&e);

    /* Unknown static keys are kept with a warning, as Kafka does. */
    CHECK_EQ_INT(warnings, 0);
    CHECK_EQ_INT(broker_config_set_static(b, "my.plugin.setting", " x ", err, sizeof(err)), 0);
    CHECK_EQ_INT(warnings, 1);
    CHECK_STR(last_warning, "The configuration 'my.plugin.setting' was supplied but isn't a known config.");
    int src = -1;
    CHECK_STR(broker_config_get(b, "my.plugin.setting", &src), " x ");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    CHECK_EQ_INT(broker_config_set_static(b, "my.plugin.setting", "y", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "my.plugin.setting", NULL), "y");
    broker_config_free(b);
}

/* ---- validation ---- */

static void test_validation_messages(void)
{
    broker_config_t *b = quiet_broker();
    char err[300];
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "abc", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value abc for configuration log.segment.bytes: Not a number of type INT");
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "12abc", err, sizeof(err)), -1);
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value  for configuration log.segment.bytes: Not a number of type INT");
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "2147483648", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 2147483648 for configuration log.segment.bytes: Not a number of type INT");
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "13", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 13 for configuration log.segment.bytes: Value must be at least 14");
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "2147483647", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.bytes", "9223372036854775808", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 9223372036854775808 for configuration log.retention.bytes: Not a number of type LONG");
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.bytes", "-9223372036854775808", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_get_long(b, "log.retention.bytes"), INT64_MIN);
    CHECK_EQ_INT(broker_config_set_static(b, "offsets.topic.replication.factor", "40000", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 40000 for configuration offsets.topic.replication.factor: Not a number of type SHORT");
    CHECK_EQ_INT(broker_config_set_static(b, "num.io.threads", "0", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 0 for configuration num.io.threads: Value must be at least 1");
    CHECK_EQ_INT(broker_config_set_static(b, "auto.create.topics.enable", "yes", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value yes for configuration auto.create.topics.enable: Expected value to be either true or false");
    CHECK_EQ_INT(broker_config_set_static(b, "compression.type", "brotli", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer");
    CHECK_EQ_INT(broker_config_set_static(b, "log.message.timestamp.type", "createtime", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value createtime for configuration log.message.timestamp.type: String must be one of: CreateTime, LogAppendTime");
    CHECK_EQ_INT(broker_config_set_static(b, "log.cleaner.min.cleanable.ratio", "1.5", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 1.5 for configuration log.cleaner.min.cleanable.ratio: Value must be no more than 1");
    CHECK_EQ_INT(broker_config_set_static(b, "log.cleaner.min.cleanable.ratio", "-0.1", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value -0.1 for configuration log.cleaner.min.cleanable.ratio: Value must be at least 0");
    CHECK_EQ_INT(broker_config_set_static(b, "log.cleaner.min.cleanable.ratio", "nan", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value nan for configuration log.cleaner.min.cleanable.ratio: Not a number of type DOUBLE");
    CHECK_EQ_INT(broker_config_set_static(b, "log.cleaner.min.cleanable.ratio", "0.25", err, sizeof(err)), 0);
    CHECK(broker_config_get_double(b, "log.cleaner.min.cleanable.ratio") == 0.25);
    CHECK_EQ_INT(broker_config_set_static(b, "listeners", "PLAINTEXT//:9092", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value PLAINTEXT//:9092 for configuration listeners: Unable to parse PLAINTEXT//:9092 to a broker endpoint");
    CHECK_EQ_INT(broker_config_set_static(b, "listeners", " , ", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value , for configuration listeners: at least one listener is required");
    CHECK_EQ_INT(broker_config_set_static(b, "listeners", "plaintext://127.0.0.1:0", err, sizeof(err)), 0);
    CHECK_STR(broker_config_get(b, "listeners", NULL), "plaintext://127.0.0.1:0");
    /* A rejected value leaves the old one in place. */
    CHECK_EQ_INT(broker_config_get_long(b, "log.segment.bytes"), 2147483647);
    broker_config_free(b);
}

static void test_topic_validation(void)
{
    char err[300];
    CHECK_EQ_INT(topic_config_validate("retention.msx", "1", err, sizeof(err)), -1);
    CHECK_STR(err, "Unknown topic config name: retention.msx");
    CHECK_EQ_INT(topic_config_validate("log.retention.ms", "1", err, sizeof(err)), -1);
    CHECK_STR(err, "Unknown topic config name: log.retention.ms");
    CHECK_EQ_INT(topic_config_validate("retention.ms", "-1", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_validate("retention.ms", "-2", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value -2 for configuration retention.ms: Value must be at least -1");
    CHECK_EQ_INT(topic_config_validate("segment.bytes", "10", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 10 for configuration segment.bytes: Value must be at least 14");
    CHECK_EQ_INT(topic_config_validate("segment.ms", "0", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_validate("cleanup.policy", "compact,foo", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete");
    CHECK_EQ_INT(topic_config_validate("cleanup.policy", "compact,delete", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_validate("preallocate", "1", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid value 1 for configuration preallocate: Expected value to be either true or false");
    CHECK_EQ_INT(topic_config_validate("min.cleanable.dirty.ratio", "1", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_validate("min.cleanable.dirty.ratio", "0.5x", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_validate("compression.type", "gzip", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_validate("compression.type", "GZIP", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_validate("max.message.bytes", "-1", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_validate("max.compaction.lag.ms", "0", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_validate("segment.index.bytes", "3", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_validate("message.timestamp.type", "LogAppendTime", err, sizeof(err)), 0);

    topic_config_t *t = topic_config_new();
    CHECK_EQ_INT(topic_config_set(t, "bogus", "1", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_set(t, "bogus", NULL, err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_set(t, "segment.bytes", "x", err, sizeof(err)), -1);
    CHECK_EQ_INT(topic_config_count(t), 0);
    topic_config_free(t);
}

/* ---- topic fallback ---- */

static void test_topic_fallback(void)
{
    broker_config_t *b = quiet_broker();
    topic_config_t *t = topic_config_new();
    char err[300];
    int src = -1;

    CHECK_STR(topic_config_get(t, b, "max.message.bytes", &src), "1048588");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DEFAULT);
    CHECK_EQ_INT(broker_config_set_static(b, "message.max.bytes", "2000000", err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(t, b, "max.message.bytes", &src), "2000000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_STATIC_BROKER);
    CHECK_EQ_INT(topic_config_set(t, "max.message.bytes", "3000000", err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(t, b, "max.message.bytes", &src), "3000000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_TOPIC);
    CHECK_EQ_INT(topic_config_get_long(t, b, "max.message.bytes"), 3000000);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "message.max.bytes", "4000000", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_get_long(t, b, "max.message.bytes"), 3000000); /* override wins */
    CHECK_EQ_INT(topic_config_set(t, "max.message.bytes", NULL, err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(t, b, "max.message.bytes", &src), "4000000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DYNAMIC_BROKER);

    /* retention.ms: chain on the broker, override on the topic. */
    CHECK_EQ_INT(broker_config_set_static(b, "log.retention.hours", "1", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_get_long(t, b, "retention.ms"), 3600000);
    CHECK_EQ_INT(topic_config_set(t, "retention.ms", "1000", err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(t, b, "retention.ms", &src), "1000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_TOPIC);

    /* Typed getters and lists. */
    CHECK_EQ_INT(topic_config_set(t, "cleanup.policy", "compact , delete", err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(t, b, "cleanup.policy", NULL), "compact,delete");
    CHECK(config_list_contains(topic_config_get(t, b, "cleanup.policy", NULL), "compact"));
    CHECK(config_list_contains("compact, delete", "delete"));
    CHECK(!config_list_contains("compact", "delete"));
    CHECK(!config_list_contains("compaction", "compact"));
    CHECK(!config_list_contains("", "compact"));
    CHECK_EQ_INT(topic_config_set(t, "preallocate", "True", err, sizeof(err)), 0);
    CHECK(topic_config_get_bool(t, b, "preallocate"));
    CHECK(!topic_config_get_bool(t, b, "unclean.leader.election.enable"));
    CHECK_EQ_INT(broker_config_set_static(b, "unclean.leader.election.enable", "true", err, sizeof(err)), 0);
    CHECK(topic_config_get_bool(t, b, "unclean.leader.election.enable"));
    CHECK(topic_config_get_double(t, b, "min.cleanable.dirty.ratio") == 0.5);
    CHECK_EQ_INT(broker_config_set_static(b, "log.cleaner.min.cleanable.ratio", "0.75", err, sizeof(err)), 0);
    CHECK(topic_config_get_double(t, b, "min.cleanable.dirty.ratio") == 0.75);
    CHECK_EQ_INT(topic_config_get_long(t, b, "flush.messages"), INT64_MAX);
    CHECK(topic_config_get(t, b, "not.a.topic.key", &src) == NULL);
    CHECK_EQ_INT(src, CONFIG_SOURCE_UNKNOWN);
    CHECK_EQ_INT(topic_config_get_long(t, b, "not.a.topic.key"), -1);

    /* Clone is deep and independent. */
    topic_config_t *c = topic_config_clone(t);
    CHECK(c != NULL);
    CHECK_EQ_INT(topic_config_count(c), 3);
    CHECK_EQ_INT(topic_config_set(t, "retention.ms", "2000", err, sizeof(err)), 0);
    CHECK_STR(topic_config_get(c, b, "retention.ms", NULL), "1000");
    topic_config_free(c);

    topic_config_free(t);
    broker_config_free(b);
}

struct describe {
    int n, topic_src, dyn_src, static_src, default_src;
    bool saw_null_retention_ms;
};

static void describe_cb(void *arg, const config_def_t *def, const char *value, int source)
{
    struct describe *d = arg;
    d->n++;
    if (source == CONFIG_SOURCE_TOPIC)
        d->topic_src++;
    else if (source == CONFIG_SOURCE_DYNAMIC_BROKER)
        d->dyn_src++;
    else if (source == CONFIG_SOURCE_STATIC_BROKER)
        d->static_src++;
    else if (source == CONFIG_SOURCE_DEFAULT)
        d->default_src++;
    if (strcmp(config_def_name(def), "log.retention.ms") == 0 && value == NULL)
        d->saw_null_retention_ms = true;
}

static void override_cb(void *arg, const char *key, const char *value)
{
    collect(arg, key, value, 0);
}

static void test_foreach(void)
{
    broker_config_t *b = quiet_broker();
    topic_config_t *t = topic_config_new();
    char err[300];
    CHECK_EQ_INT(broker_config_set_static(b, "num.partitions", "4", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_static(b, "log.segment.bytes", "1048576", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_set_dynamic(b, "log.retention.bytes", "100", err, sizeof(err)), 0);

    struct describe d = {0};
    broker_config_foreach(b, describe_cb, &d);
    CHECK(d.n >= 90);
    CHECK_EQ_INT(d.static_src, 2);
    CHECK_EQ_INT(d.dyn_src, 1);
    CHECK_EQ_INT(d.default_src, d.n - 3);
    CHECK(d.saw_null_retention_ms);

    CHECK_EQ_INT(topic_config_set(t, "segment.ms", "1000", err, sizeof(err)), 0);
    memset(&d, 0, sizeof(d));
    topic_config_foreach_effective(t, b, describe_cb, &d);
    CHECK_EQ_INT(d.n, 23);
    CHECK_EQ_INT(d.topic_src, 1);
    CHECK_EQ_INT(d.static_src, 1); /* segment.bytes */
    CHECK_EQ_INT(d.dyn_src, 1);    /* retention.bytes */
    CHECK_EQ_INT(d.default_src, 20);

    CHECK_EQ_INT(topic_config_set(t, "cleanup.policy", "compact", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_set(t, "retention.ms", "-1", err, sizeof(err)), 0);
    struct entries e = {0};
    topic_config_foreach_override(t, override_cb, &e);
    CHECK_EQ_INT(e.n, 3); /* key order */
    if (e.n == 3) {
        CHECK_STR(e.key[0], "cleanup.policy");
        CHECK_STR(e.key[1], "retention.ms");
        CHECK_STR(e.value[1], "-1");
        CHECK_STR(e.key[2], "segment.ms");
    }
    entries_free(&e);
    topic_config_free(t);
    broker_config_free(b);
}

/* ---- files ---- */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *s = calloc(1, 4096);
    if (s && fread(s, 1, 4095, f) == 0)
        s[0] = '\0';
    fclose(f);
    return s;
}

static void test_save_load(void)
{
    char dir[] = "/tmp/runnel-test-config-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], tmp[140];
    snprintf(path, sizeof(path), "%s/topic.properties", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char err[300];

    topic_config_t *t = topic_config_new();
    CHECK_EQ_INT(topic_config_set(t, "retention.ms", "86400000", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_set(t, "cleanup.policy", "compact,delete", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_set(t, "compression.type", "lz4", err, sizeof(err)), 0);
    CHECK_EQ_INT(topic_config_save(t, path), 0);
    CHECK(access(tmp, F_OK) != 0);

    char *text = read_text(path);
    CHECK(text != NULL);
    if (text)
        CHECK_STR(text, "# Runnel topic configuration overrides\n"
                        "cleanup.policy=compact,delete\n"
                        "compression.type=lz4\n"
                        "retention.ms=86400000\n");
    free(text);

    topic_config_t *u = topic_config_new();
    CHECK_EQ_INT(topic_config_set(u, "segment.ms", "5", err, sizeof(err)), 0); /* replaced by load */
    CHECK_EQ_INT(topic_config_load(u, path), 0);
    CHECK_EQ_INT(topic_config_count(u), 3);
    int src = -1;
    CHECK_STR(topic_config_get(u, NULL, "retention.ms", &src), "86400000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_TOPIC);
    CHECK_STR(topic_config_get(u, NULL, "cleanup.policy", NULL), "compact,delete");
    CHECK_STR(topic_config_get(u, NULL, "compression.type", NULL), "lz4");
    CHECK_STR(topic_config_get(u, NULL, "segment.ms", &src), "604800000");
    CHECK_EQ_INT(src, CONFIG_SOURCE_DEFAULT);

    /* Empty overrides round-trip too. */
    topic_config_t *empty = topic_config_new();
    CHECK_EQ_INT(topic_config_save(empty, path), 0);
    CHECK_EQ_INT(topic_config_load(u, path), 0);
    CHECK_EQ_INT(topic_config_count(u), 0);
    topic_config_free(empty);

    /* A file with a bad key or value leaves the target unchanged. */
    CHECK_EQ_INT(write_file(path, "retention.ms=1\nbogus.key=2\n"), 0);
    CHECK_EQ_INT(topic_config_load(t, path), -1);
    CHECK_EQ_INT(errno, EINVAL);
    CHECK_EQ_INT(topic_config_count(t), 3);
    CHECK_EQ_INT(write_file(path, "segment.bytes=1\n"), 0);
    CHECK_EQ_INT(topic_config_load(t, path), -1);
    CHECK_EQ_INT(errno, EINVAL);
    unlink(path);
    CHECK_EQ_INT(topic_config_load(t, path), -1);
    CHECK_EQ_INT(errno, ENOENT);
    CHECK_STR(topic_config_get(t, NULL, "compression.type", NULL), "lz4");

    /* Saving into a missing directory fails cleanly. */
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing/topic.properties", dir);
    CHECK_EQ_INT(topic_config_save(t, bad), -1);
    CHECK_EQ_INT(errno, ENOENT);

    topic_config_free(t);
    topic_config_free(u);
    CHECK_EQ_INT(rmdir(dir), 0);
}

static void test_broker_load_file(void)
{
    char dir[] = "/tmp/runnel-test-config-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], err[400];
    snprintf(path, sizeof(path), "%s/server.properties", dir);

    CHECK_EQ_INT(write_file(path, "# test\nnum.partitions = 3\nlog.dirs=/data/a,/data/b\n"
                                  "log.segment.ms=1000\nlog.retention.minutes: 10\n"), 0);
    broker_config_t *b = quiet_broker();
    CHECK_EQ_INT(broker_config_load_file(b, path, err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_get_long(b, "num.partitions"), 3);
    CHECK_STR(broker_config_log_dirs(b), "/data/a,/data/b");
    CHECK_EQ_INT(broker_config_roll_ms(b), 1000);
    CHECK_EQ_INT(broker_config_retention_ms(b), 600000);
    CHECK_EQ_INT(warnings, 1); /* the alias */
    CHECK_EQ_INT(broker_config_apply_override(b, "num.partitions=8", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_get_long(b, "num.partitions"), 8);
    CHECK_EQ_INT(broker_config_apply_override(b, "listeners=PLAINTEXT://:1234=x", err, sizeof(err)), -1);
    CHECK_EQ_INT(broker_config_apply_override(b, "num.partitions", err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid override 'num.partitions': expected key=value");
    broker_config_free(b);

    CHECK_EQ_INT(write_file(path, "num.partitions=3\n\nnum.io.threads=many\n"), 0);
    b = quiet_broker();
    CHECK_EQ_INT(broker_config_load_file(b, path, err, sizeof(err)), -1);
    char want[300];
    snprintf(want, sizeof(want), "%s:3: Invalid value many for configuration num.io.threads: "
                                 "Not a number of type INT", path);
    CHECK_STR(err, want);
    broker_config_free(b);

    unlink(path);
    b = quiet_broker();
    CHECK_EQ_INT(broker_config_load_file(b, path, err, sizeof(err)), -1);
    CHECK(strstr(err, "No such file") != NULL);
    broker_config_free(b);
    CHECK_EQ_INT(rmdir(dir), 0);

    /* The example file in the repository loads cleanly, with no warnings. */
    b = quiet_broker();
    CHECK_EQ_INT(broker_config_load_file(b, "config/server.properties", err, sizeof(err)), 0);
    CHECK_EQ_INT(warnings, 0);
    CHECK_STR(broker_config_get(b, "listeners", NULL), "PLAINTEXT://localhost:9092");
    CHECK_STR(broker_config_log_dirs(b), "data");
    CHECK_EQ_INT(broker_config_retention_ms(b), 604800000LL);
    broker_config_free(b);
}

/* ---- listeners ---- */

static void test_listeners(void)
{
    config_listener_t ls[4];
    char err[300];
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://:9092", ls, 4, err, sizeof(err)), 1);
    CHECK_STR(ls[0].name, "PLAINTEXT");
    CHECK_STR(ls[0].host, "");
    CHECK_EQ_INT(ls[0].port, 9092);

    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://localhost:9092", ls, 4, err, sizeof(err)), 1);
    CHECK_STR(ls[0].host, "localhost");
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://0.0.0.0:9092", ls, 4, err, sizeof(err)), 1);
    CHECK_STR(ls[0].host, "0.0.0.0");
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://[::1]:9092", ls, 4, err, sizeof(err)), 1);
    CHECK_STR(ls[0].host, "::1");
    CHECK_EQ_INT(ls[0].port, 9092);

    CHECK_EQ_INT(config_parse_listeners(" plaintext://:9092 , INTERNAL://10.0.0.1:19092,,", ls, 4,
                                        err, sizeof(err)), 2);
    CHECK_STR(ls[0].name, "PLAINTEXT");
    CHECK_STR(ls[1].name, "INTERNAL");
    CHECK_STR(ls[1].host, "10.0.0.1");
    CHECK_EQ_INT(ls[1].port, 19092);
    CHECK_EQ_INT(config_parse_listeners("", ls, 4, err, sizeof(err)), 0);
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://:0", ls, 4, err, sizeof(err)), 1);
    CHECK_EQ_INT(ls[0].port, 0);

    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://host", ls, 4, err, sizeof(err)), -1);
    CHECK_STR(err, "Unable to parse PLAINTEXT://host to a broker endpoint");
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://:70000", ls, 4, err, sizeof(err)), -1);
    CHECK_STR(err, "Invalid port in PLAINTEXT://:70000");
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://:", ls, 4, err, sizeof(err)), -1);
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://:-1", ls, 4, err, sizeof(err)), -1);
    CHECK_EQ_INT(config_parse_listeners("://:9092", ls, 4, err, sizeof(err)), -1);
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://[::1:9092", ls, 4, err, sizeof(err)), -1);
    CHECK_EQ_INT(config_parse_listeners("PLAINTEXT://ho st:9092", ls, 4, err, sizeof(err)), -1);
    CHECK_EQ_INT(config_parse_listeners("A://:1,a://:2", ls, 4, err, sizeof(err)), -1);
    CHECK_STR(err, "Each listener must have a different name, listeners: A://:1,a://:2");
    CHECK_EQ_INT(config_parse_listeners("A://:1,B://:2,C://:3", ls, 2, err, sizeof(err)), -1);
    CHECK_STR(err, "more than 2 listeners");
}

int main(void)
{
    RUN_TEST(test_properties_syntax);
    RUN_TEST(test_properties_errors);
    RUN_TEST(test_properties_write_roundtrip);
    RUN_TEST(test_broker_defaults);
    RUN_TEST(test_def_metadata);
    RUN_TEST(test_retention_precedence);
    RUN_TEST(test_roll_precedence_and_alias);
    RUN_TEST(test_sources);
    RUN_TEST(test_dynamic_rules);
    RUN_TEST(test_validation_messages);
    RUN_TEST(test_topic_validation);
    RUN_TEST(test_topic_fallback);
    RUN_TEST(test_foreach);
    RUN_TEST(test_save_load);
    RUN_TEST(test_broker_load_file);
    RUN_TEST(test_listeners);
    return TEST_REPORT();
}
