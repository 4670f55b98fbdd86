/*
 * cli_consume.c - `runnel consume`: print records as kafka-console-consumer.sh does
 * (DefaultMessageFormatter: print.timestamp, print.partition, print.offset, print.headers,
 * print.key, print.value with key.separator between fields), or as JSON lines.
 *
 * Without --group the tool assigns the partitions itself (all, or --partition) and starts
 * at --from-beginning / --offset / --timestamp / the end. With --group it subscribes; the
 * group's committed offsets are used, --from-beginning only choosing where a partition
 * without a committed offset starts (auto.offset.reset), unless --offset or --timestamp
 * set explicit positions at each assignment. SIGINT/SIGTERM stop the loop and the
 * consumer is closed, which commits the group's offsets.
 */
#include "cli/cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { START_DEFAULT, START_BEGINNING, START_END, START_OFFSET, START_TIMESTAMP };

typedef struct consume_state {
    cli_ctx_t *ctx;
    int start;
    int64_t start_value;
    bool *at_eof; /* per partition of the topic */
    bool *assigned;
    int nparts;
    bool failed;
} consume_state_t;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static const cli_opt_t consume_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to read (required)"},
    {"group", CLI_VALUE, "ID", "consume as a member of this consumer group (subscribe)"},
    {"partition", CLI_MULTI, "N[,N...]", "read only these partitions (assign)"},
    {"from-beginning", CLI_FLAG, NULL, "start at the earliest record (with --group: when "
                                       "the group has no committed offset)"},
    {"offset", CLI_VALUE, "N|earliest|latest|-N",
     "start offset; -N means N records before the end"},
    {"timestamp", CLI_VALUE, "MS|DATETIME",
     "start at the first record at or after this time (ms since epoch or "
     "2024-01-31T10:00:00[Z])"},
    {"max-messages", CLI_VALUE, "N", "stop after N records"},
    {"timeout-ms", CLI_VALUE, "MS", "stop when no record arrived for this long"},
    {"exit-at-end", CLI_FLAG, NULL, "stop when every partition is read to its end"},
    {"isolation-level", CLI_VALUE, "LEVEL",
     "read_uncommitted (default) or read_committed"},
    {"property", CLI_MULTI, "KEY=VALUE",
     "print.key, print.value, print.headers, print.timestamp, print.partition, print.offset "
     "(true/false), key.separator, line.separator, headers.separator, "
     "headers.key.separator, null.literal"},
    {"consumer-property", CLI_MULTI, "KEY=VALUE", "librdkafka consumer property"},
    {0},
};

typedef struct fmt_props {
    bool key, value, headers, timestamp, partition, offset;
    const char *sep, *line_sep, *headers_sep, *headers_key_sep, *null_literal;
} fmt_props_t;

/* Kafka's escapes in separators given on a command line: \t \n \r \\ */
static char *unescape(const char *s)
{
    char *d = malloc(strlen(s) + 1), *o = d;
    if (d == NULL)
        return NULL;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return d;
}

static int read_fmt(cli_ctx_t *ctx, fmt_props_t *f)
{
    *f = (fmt_props_t){false, true, false, false, false, false, "\t", "\n", ",", ":", "null"};
    int pos = 0;
    const char *kv;
    while ((kv = cli_next(ctx, "property", &pos)) != NULL) {
        const char *eq = strchr(kv, '=');
        if (eq == NULL)
            return cli_usage(ctx, "--property wants KEY=VALUE, not '%s'", kv);
        size_t kl = (size_t)(eq - kv);
        const char *v = eq + 1;
        bool *flag = NULL;
        const char **str = NULL;
#define KEYIS(s) (kl == strlen(s) && strncmp(kv, s, kl) == 0)
        if (KEYIS("print.key"))
            flag = &f->key;
        else if (KEYIS("print.value"))
            flag = &f->value;
        else if (KEYIS("print.headers"))
            flag = &f->headers;
        else if (KEYIS("print.timestamp"))
            flag = &f->timestamp;
        else if (KEYIS("print.partition"))
            flag = &f->partition;
        else if (KEYIS("print.offset"))
            flag = &f->offset;
        else if (KEYIS("key.separator"))
            str = &f->sep;
        else if (KEYIS("line.separator"))
            str = &f->line_sep;
        else if (KEYIS("headers.separator"))
            str = &f->headers_sep;
        else if (KEYIS("headers.key.separator"))
            str = &f->headers_key_sep;
        else if (KEYIS("null.literal"))
            str = &f->null_literal;
        else
            return cli_usage(ctx, "unknown --property '%.*s'", (int)kl, kv);
#undef KEYIS
        if (flag) {
            if (strcasecmp(v, "true") == 0)
                *flag = true;
            else if (strcasecmp(v, "false") == 0)
                *flag = false;
            else
                return cli_usage(ctx, "--property %.*s must be true or false", (int)kl, kv);
        } else {
            *str = unescape(v); /* lives until exit */
            if (*str == NULL)
                return cli_fail("out of memory");
        }
    }
    return CLI_OK;
}

/* ---- output --------------------------------------------------------------------- */

static void print_plain(const fmt_props_t *f, const rd_kafka_message_t *m)
{
    FILE *o = stdout;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    bool more;
    if (f->timestamp) {
        if (tt == RD_KAFKA_TIMESTAMP_CREATE_TIME)
            fprintf(o, "CreateTime:%lld", (long long)ts);
        else if (tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME)
            fprintf(o, "LogAppendTime:%lld", (long long)ts);
        else
            fputs("NO_TIMESTAMP", o);
        more = f->partition || f->offset || f->headers || f->key || f->value;
        if (more)
            fputs(f->sep, o);
    }
    if (f->partition) {
        fprintf(o, "Partition:%d", (int)m->partition);
        if (f->offset || f->headers || f->key || f->value)
            fputs(f->sep, o);
    }
    if (f->offset) {
        fprintf(o, "Offset:%lld", (long long)m->offset);
        if (f->headers || f->key || f->value)
            fputs(f->sep, o);
    }
    if (f->headers) {
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || h == NULL ||
            rd_kafka_header_cnt(h) == 0) {
            fputs("NO_HEADERS", o);
        } else {
            const char *name;
            const void *val;
            size_t sz;
            for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &sz) == 0; i++) {
                if (i)
                    fputs(f->headers_sep, o);
                fputs(name, o);
                fputs(f->headers_key_sep, o);
                if (val)
                    fwrite(val, 1, sz, o);
                else
                    fputs(f->null_literal, o);
            }
        }
        if (f->key || f->value)
            fputs(f->sep, o);
    }
    if (f->key) {
        if (m->key)
            fwrite(m->key, 1, m->key_len, o);
        else
            fputs(f->null_literal, o);
        if (f->value)
            fputs(f->sep, o);
    }
    if (f->value) {
        if (m->payload)
            fwrite(m->payload, 1, m->len, o);
        else
            fputs(f->null_literal, o);
    }
    fputs(f->line_sep, o);
}

static void print_json(const rd_kafka_message_t *m)
{
    cli_json_t j;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    cli_json_init(&j, stdout);
    cli_json_obj(&j);
    cli_json_kstr(&j, "topic", rd_kafka_topic_name(m->rkt));
    cli_json_kint(&j, "partition", m->partition);
    cli_json_kint(&j, "offset", m->offset);
    cli_json_kint(&j, "timestamp", ts);
    cli_json_kstr(&j, "timestamp_type", tt == RD_KAFKA_TIMESTAMP_CREATE_TIME       ? "CreateTime"
                                        : tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime"
                                                                                   : "NoTimestamp");
    cli_json_key(&j, "key");
    cli_json_strn(&j, m->key, m->key_len);
    cli_json_key(&j, "value");
    cli_json_strn(&j, m->payload, m->len);
    cli_json_key(&j, "headers");
    cli_json_arr(&j);
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        const char *name;
        const void *val;
        size_t sz;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &sz) == 0; i++) {
            cli_json_obj(&j);
            cli_json_kstr(&j, "key", name);
            cli_json_key(&j, "value");
            cli_json_strn(&j, val, sz);
            cli_json_obj_end(&j);
        }
    }
    cli_json_arr_end(&j);
    cli_json_obj_end(&j);
    fputc('\n', stdout);
}

/* ---- start positions ------------------------------------------------------------ */

/* Sets each partition's start offset in `list` from the start mode; -1 after an error. */
static int set_start_offsets(consume_state_t *st, rd_kafka_t *rk,
                             rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *p = &list->elems[i];
        switch (st->start) {
        case START_BEGINNING:
            p->offset = RD_KAFKA_OFFSET_BEGINNING;
            break;
        case START_END:
            p->offset = RD_KAFKA_OFFSET_END;
            break;
        case START_OFFSET:
            p->offset = st->start_value >= 0 ? st->start_value
                                             : RD_KAFKA_OFFSET_TAIL(-st->start_value);
            break;
        case START_TIMESTAMP:
            p->offset = st->start_value;
            break;
        default:
            break;
        }
    }
    if (st->start == START_TIMESTAMP) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, list, st->ctx->timeout_ms);
        if (err) {
            cli_fail("cannot look up offsets for the timestamp: %s", rd_kafka_err2str(err));
            return -1;
        }
        for (int i = 0; i < list->cnt; i++) {
            /* no record at or after the time: start at the end */
            if (list->elems[i].err || list->elems[i].offset < 0)
                list->elems[i].offset = RD_KAFKA_OFFSET_END;
            list->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
    }
    return 0;
}

static void track_assignment(consume_state_t *st, const rd_kafka_topic_partition_list_t *l,
                             bool on)
{
    for (int i = 0; i < l->cnt; i++) {
        int p = l->elems[i].partition;
        if (p >= 0 && p < st->nparts) {
            st->assigned[p] = on;
            st->at_eof[p] = false;
        }
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consume_state_t *st = ((cli_ctx_t *)opaque)->user;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (st->start != START_DEFAULT && set_start_offsets(st, rk, parts) != 0)
            st->failed = true;
        track_assignment(st, parts, true);
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, parts);
        }
    } else {
        track_assignment(st, parts, false);
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
}

/* Adds "3" or "0,1,2" from --partition values to list; -1 after a usage line. */
static int add_partitions(cli_ctx_t *ctx, rd_kafka_topic_partition_list_t *list,
                          const char *topic, int nparts)
{
    int pos = 0;
    const char *v;
    while ((v = cli_next(ctx, "partition", &pos)) != NULL) {
        char *copy = strdup(v), *save = NULL;
        if (copy == NULL)
            return -1;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int64_t p;
            if (cli_parse_i64(t, &p) != 0 || p < 0) {
                cli_usage(ctx, "--partition wants partition numbers, not '%s'", v);
                free(copy);
                return -2;
            }
            if (p >= nparts) {
                cli_fail("topic '%s' has no partition %lld (it has %d)", topic, (long long)p,
                         nparts);
                free(copy);
                return -1;
            }
            rd_kafka_topic_partition_list_add(list, topic, (int32_t)p);
        }
        free(copy);
    }
    return 0;
}

/* ---- main ----------------------------------------------------------------------- */

/* librdkafka wants a group.id even to assign partitions; without --group nothing is
 * committed under it. */
static const char *anon_group(void)
{
    static char name[64];
    snprintf(name, sizeof(name), "runnel-cli-%ld", (long)getpid());
    return name;
}

static int consume_run(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    if (topic == NULL || *topic == '\0')
        return cli_usage(ctx, "--topic is required");
    const char *group = cli_get(ctx, "group");
    fmt_props_t fmt;
    int rc = read_fmt(ctx, &fmt);
    if (rc != CLI_OK)
        return rc;
    consume_state_t st;
    memset(&st, 0, sizeof(st));
    st.ctx = ctx;
    int starts = cli_has(ctx, "from-beginning") + cli_has(ctx, "offset") + cli_has(ctx, "timestamp");
    if (starts > 1)
        return cli_usage(ctx, "give only one of --from-beginning, --offset and --timestamp");
    if (cli_has(ctx, "from-beginning")) {
        st.start = group ? START_DEFAULT : START_BEGINNING;
    } else if (cli_has(ctx, "offset")) {
        const char *o = cli_get(ctx, "offset");
        if (strcmp(o, "earliest") == 0 || strcmp(o, "beginning") == 0)
            st.start = START_BEGINNING;
        else if (strcmp(o, "latest") == 0 || strcmp(o, "end") == 0)
            st.start = START_END;
        else if (cli_parse_i64(o, &st.start_value) == 0)
            st.start = START_OFFSET;
        else
            return cli_usage(ctx, "--offset must be a number, earliest or latest, not '%s'", o);
    } else if (cli_has(ctx, "timestamp")) {
        if (cli_parse_datetime(cli_get(ctx, "timestamp"), &st.start_value) != 0)
            return cli_usage(ctx, "--timestamp must be ms since the epoch or "
                                  "YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]");
        st.start = START_TIMESTAMP;
    } else {
        st.start = group ? START_DEFAULT : START_END;
    }
    int64_t max_messages, idle_ms;
    if (cli_get_int(ctx, "max-messages", 1, INT64_MAX, -1, &max_messages) != 0 ||
        cli_get_int(ctx, "timeout-ms", 1, INT64_MAX, -1, &idle_ms) != 0)
        return CLI_USAGE;
    const char *iso = cli_get(ctx, "isolation-level");
    if (iso && strcmp(iso, "read_committed") != 0 && strcmp(iso, "read_uncommitted") != 0)
        return cli_usage(ctx, "--isolation-level must be read_committed or read_uncommitted");

    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL ||
        cli_conf_set(conf, "isolation.level", iso ? iso : "read_uncommitted") ||
        cli_conf_set(conf, "enable.partition.eof", "true") ||
        /* the end of a partition is only seen when a fetch comes back empty */
        (cli_has(ctx, "exit-at-end") && cli_conf_set(conf, "fetch.wait.max.ms", "100")) ||
        cli_conf_set(conf, "auto.offset.reset",
                     cli_has(ctx, "from-beginning") ? "earliest" : "latest") ||
        (group && cli_conf_set(conf, "group.id", group)) ||
        (!group && (cli_conf_set(conf, "enable.auto.commit", "false") ||
                    cli_conf_set(conf, "group.id", anon_group()))) ||
        cli_conf_apply_multi(ctx, conf, "consumer-property") != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return CLI_USAGE;
    }
    ctx->user = &st;
    if (group)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_CONSUMER, conf);
    if (rk == NULL)
        return CLI_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    rc = CLI_OK;
    if (md == NULL) {
        cli_client_destroy(rk);
        return CLI_FAIL;
    }
    const rd_kafka_metadata_topic_t *mt = cli_md_topic(md, topic);
    if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || mt->partition_cnt == 0)
        rc = cli_fail("topic '%s' does not exist", topic);
    else
        st.nparts = mt->partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (rc == CLI_OK) {
        st.at_eof = calloc((size_t)st.nparts, sizeof(bool));
        st.assigned = calloc((size_t)st.nparts, sizeof(bool));
        if (st.at_eof == NULL || st.assigned == NULL)
            rc = cli_fail("out of memory");
    }
    rd_kafka_poll_set_consumer(rk);
    bool explicit_parts = cli_has(ctx, "partition");
    if (rc == CLI_OK && (!group || explicit_parts)) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(st.nparts);
        int r = 0;
        if (explicit_parts) {
            r = add_partitions(ctx, list, topic, st.nparts);
        } else {
            for (int p = 0; p < st.nparts; p++)
                rd_kafka_topic_partition_list_add(list, topic, p);
        }
        if (r == -2)
            rc = CLI_USAGE;
        else if (r < 0 || (st.start != START_DEFAULT && set_start_offsets(&st, rk, list) != 0))
            rc = CLI_FAIL;
        if (rc == CLI_OK) {
            if (st.start == START_DEFAULT) /* a group's committed offsets */
                for (int i = 0; i < list->cnt; i++)
                    list->elems[i].offset = RD_KAFKA_OFFSET_STORED;
            track_assignment(&st, list, true);
            rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
            if (err)
                rc = cli_fail("cannot assign partitions: %s", rd_kafka_err2str(err));
        }
        rd_kafka_topic_partition_list_destroy(list);
    } else if (rc == CLI_OK) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        if (err)
            rc = cli_fail("cannot subscribe to '%s': %s", topic, rd_kafka_err2str(err));
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int64_t count = 0;
    int64_t last_activity = cli_mono_us();
    bool exit_at_end = cli_has(ctx, "exit-at-end");
    while (rc == CLI_OK && !stop_signal && !st.failed &&
           (max_messages < 0 || count < max_messages)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL) {
            fflush(stdout);
            if (idle_ms > 0 && cli_mono_us() - last_activity > idle_ms * 1000)
                break;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && m->partition < st.nparts)
                st.at_eof[m->partition] = true;
            rd_kafka_message_destroy(m);
            if (exit_at_end) {
                bool all = true, any = false;
                for (int p = 0; p < st.nparts; p++) {
                    if (st.assigned[p]) {
                        any = true;
                        all = all && st.at_eof[p];
                    }
                }
                if (any && all)
                    break;
            }
            continue;
        }
        if (m->err) {
            rd_kafka_resp_err_t err = m->err;
            char fe[256];
            if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
                rc = cli_fail("topic '%s' does not exist", topic);
            else if (rd_kafka_fatal_error(rk, fe, sizeof(fe)))
                rc = cli_fail("consumer failed: %s", fe);
            else if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
                     err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION ||
                     err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
                     err == RD_KAFKA_RESP_ERR_INVALID_GROUP_ID)
                rc = cli_fail("consumer failed: %s", rd_kafka_message_errstr(m));
            else
                cli_verbose(ctx, "consumer error: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        last_activity = cli_mono_us();
        if (m->partition >= 0 && m->partition < st.nparts)
            st.at_eof[m->partition] = false;
        if (ctx->format == CLI_FMT_JSON)
            print_json(m);
        else
            print_plain(&fmt, m);
        count++;
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    if (st.failed)
        rc = CLI_FAIL;
    /* close leaves the group and commits the offsets of what was printed */
    rd_kafka_resp_err_t cerr = rd_kafka_consumer_close(rk);
    if (cerr && group && rc == CLI_OK)
        rc = cli_fail("closing the consumer failed: %s", rd_kafka_err2str(cerr));
    if (rc == CLI_OK)
        fprintf(stderr, "Processed a total of %lld messages\n", (long long)count);
    free(st.at_eof);
    free(st.assigned);
    cli_client_destroy(rk);
    return rc;
}

const cli_cmd_t cli_cmd_consume = {
    "consume", "Print records of a topic, as text or JSON lines.",
    "Without --group every partition (or each --partition) is assigned directly and reading\n"
    "starts at the end unless --from-beginning, --offset or --timestamp says otherwise.\n"
    "With --group the consumer joins the group; Ctrl-C closes it, committing its offsets.\n"
    "The plain format follows kafka-console-consumer.sh; --format json prints one object\n"
    "per record: topic, partition, offset, timestamp, timestamp_type, key, value, headers.\n"
    "A summary line 'Processed a total of N messages' goes to stderr.",
    "  runnel consume --topic demo --from-beginning --max-messages 10\n"
    "  runnel consume --topic demo --partition 0 --offset 42 --property print.key=true "
    "--property print.offset=true\n"
    "  runnel consume --topic demo --timestamp 2024-01-31T10:00:00Z --exit-at-end --format json\n"
    "  runnel consume --topic demo --group billing --from-beginning",
    consume_opts, consume_run};
