/*
 * cli_perf.c - `runnel perf produce|consume`, load generators in the manner of
 * kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh.
 *
 * Producer latency is the time from rd_kafka_producev to the delivery report (the send
 * time rides in the message opaque, so nothing is allocated per record and the payload
 * is one static buffer sent without copying). Consumer latency is end-to-end: receive
 * time minus the record's CreateTime, meaningful when producers run at the same time.
 * Latencies are kept per record (4 bytes each) and sorted once for the percentiles.
 * A progress line goes out every --reporting-interval ms (stdout, or stderr with
 * --format json, whose stdout is the final JSON summary alone).
 */
#include "cli/cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct perf_stats {
    uint32_t *lat_us; /* per completed record */
    int64_t nlat, cap;
    int64_t records, bytes, failed;
    /* current reporting window */
    int64_t win_records, win_bytes, win_lat_sum, win_lat_max;
    int64_t win_start_us;
    char first_error[256];
} perf_stats_t;

static volatile sig_atomic_t perf_stop;

static void perf_on_signal(int sig) { perf_stop = sig; }

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = perf_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void stats_add(perf_stats_t *s, int64_t lat_us, int64_t bytes)
{
    if (lat_us < 0)
        lat_us = 0;
    if (lat_us > UINT32_MAX)
        lat_us = UINT32_MAX;
    if (s->nlat == s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 65536;
        uint32_t *n = realloc(s->lat_us, (size_t)nc * sizeof(*n));
        if (n == NULL)
            return; /* percentiles then cover the records kept so far */
        s->lat_us = n;
        s->cap = nc;
    }
    s->lat_us[s->nlat++] = (uint32_t)lat_us;
    s->records++;
    s->bytes += bytes;
    s->win_records++;
    s->win_bytes += bytes;
    s->win_lat_sum += lat_us;
    if (lat_us > s->win_lat_max)
        s->win_lat_max = lat_us;
}

static FILE *progress_stream(const cli_ctx_t *ctx)
{
    return ctx->format == CLI_FMT_JSON ? stderr : stdout;
}

/* Prints and resets the window if the interval has passed (or `force`). */
static void stats_progress(cli_ctx_t *ctx, perf_stats_t *s, int64_t interval_us, bool force,
                           const char *verb, bool with_latency)
{
    int64_t now = cli_mono_us();
    int64_t el = now - s->win_start_us;
    if (!force && el < interval_us)
        return;
    if (el <= 0)
        el = 1;
    double secs = (double)el / 1e6;
    FILE *f = progress_stream(ctx);
    if (with_latency)
        fprintf(f, "%lld records %s, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, "
                   "%.1f ms max latency.\n",
                (long long)s->win_records, verb, (double)s->win_records / secs,
                (double)s->win_bytes / secs / (1024.0 * 1024.0),
                s->win_records ? (double)s->win_lat_sum / (double)s->win_records / 1000.0 : 0.0,
                (double)s->win_lat_max / 1000.0);
    else
        fprintf(f, "%lld records %s, %.1f records/sec (%.2f MB/sec).\n", (long long)s->win_records,
                verb, (double)s->win_records / secs, (double)s->win_bytes / secs / (1024.0 * 1024.0));
    fflush(f);
    s->win_records = s->win_bytes = s->win_lat_sum = s->win_lat_max = 0;
    s->win_start_us = now;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const perf_stats_t *s, double p)
{
    if (s->nlat == 0)
        return 0.0;
    int64_t i = (int64_t)(p * (double)s->nlat);
    if (i >= s->nlat)
        i = s->nlat - 1;
    return (double)s->lat_us[i] / 1000.0;
}

/* Final summary: plain text like the Kafka tools, or one JSON object. */
static void stats_summary(cli_ctx_t *ctx, perf_stats_t *s, int64_t elapsed_us, const char *verb,
                          const char *latency_kind)
{
    if (s->nlat > 0)
        qsort(s->lat_us, (size_t)s->nlat, sizeof(*s->lat_us), cmp_u32);
    double secs = elapsed_us > 0 ? (double)elapsed_us / 1e6 : 1e-6;
    double rps = (double)s->records / secs;
    double mbps = (double)s->bytes / secs / (1024.0 * 1024.0);
    double sum = 0;
    for (int64_t i = 0; i < s->nlat; i++)
        sum += s->lat_us[i];
    double avg = s->nlat ? sum / (double)s->nlat / 1000.0 : 0.0;
    double max = s->nlat ? (double)s->lat_us[s->nlat - 1] / 1000.0 : 0.0;
    if (ctx->format == CLI_FMT_JSON) {
        cli_json_t j;
        cli_json_init(&j, stdout);
        cli_json_obj(&j);
        cli_json_kint(&j, "records", s->records);
        cli_json_kint(&j, "failed", s->failed);
        cli_json_kint(&j, "bytes", s->bytes);
        cli_json_kdouble(&j, "elapsed_ms", (double)elapsed_us / 1000.0);
        cli_json_kdouble(&j, "records_per_sec", rps);
        cli_json_kdouble(&j, "mb_per_sec", mbps);
        cli_json_kstr(&j, "latency_kind", latency_kind);
        cli_json_key(&j, "latency_ms");
        cli_json_obj(&j);
        cli_json_kdouble(&j, "avg", avg);
        cli_json_kdouble(&j, "p50", pct_ms(s, 0.50));
        cli_json_kdouble(&j, "p95", pct_ms(s, 0.95));
        cli_json_kdouble(&j, "p99", pct_ms(s, 0.99));
        cli_json_kdouble(&j, "p99_9", pct_ms(s, 0.999));
        cli_json_kdouble(&j, "max", max);
        cli_json_obj_end(&j);
        cli_json_obj_end(&j);
        cli_json_done(&j);
    } else {
        printf("%lld records %s, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms "
               "max latency, %.2f ms 50th, %.2f ms 95th, %.2f ms 99th, %.2f ms 99.9th.\n",
               (long long)s->records, verb, rps, mbps, avg, max, pct_ms(s, 0.50), pct_ms(s, 0.95),
               pct_ms(s, 0.99), pct_ms(s, 0.999));
        if (s->failed)
            printf("%lld records failed.\n", (long long)s->failed);
    }
}

/* ---- perf produce --------------------------------------------------------------- */

static const cli_opt_t produce_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to write to (required)"},
    {"num-records", CLI_VALUE, "N", "records to send (required)"},
    {"record-size", CLI_VALUE, "BYTES", "value size of each record (default 100)"},
    {"throughput", CLI_VALUE, "N", "at most N records/sec; -1 for no limit (default -1)"},
    {"producer-props", CLI_LIST, "K=V...", "librdkafka producer properties (acks=1 linger.ms=5 ...)"},
    {"reporting-interval", CLI_VALUE, "MS", "progress line interval (default 1000)"},
    {0},
};

static void perf_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    perf_stats_t *s = ((cli_ctx_t *)opaque)->user;
    (void)rk;
    if (m->err) {
        s->failed++;
        if (s->first_error[0] == '\0')
            snprintf(s->first_error, sizeof(s->first_error), "%s", rd_kafka_err2str(m->err));
        return;
    }
    int64_t sent = (int64_t)(intptr_t)m->_private;
    stats_add(s, cli_mono_us() - sent, (int64_t)m->len);
}

static int perf_produce(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    if (topic == NULL || *topic == '\0')
        return cli_usage(ctx, "--topic is required");
    if (!cli_has(ctx, "num-records"))
        return cli_usage(ctx, "--num-records is required");
    int64_t num, size, tput, interval;
    if (cli_get_int(ctx, "num-records", 1, INT32_MAX, 0, &num) != 0 ||
        cli_get_int(ctx, "record-size", 0, 100 * 1024 * 1024, 100, &size) != 0 ||
        cli_get_int(ctx, "throughput", -1, INT32_MAX, -1, &tput) != 0 ||
        cli_get_int(ctx, "reporting-interval", 10, 3600000, 1000, &interval) != 0)
        return CLI_USAGE;
    if (tput == 0)
        return cli_usage(ctx, "--throughput must be positive or -1");
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL || cli_conf_set(conf, "message.timeout.ms", "30000") ||
        cli_conf_apply_multi(ctx, conf, "producer-props") != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return CLI_USAGE;
    }
    perf_stats_t s;
    memset(&s, 0, sizeof(s));
    s.cap = num;
    s.lat_us = malloc((size_t)num * sizeof(*s.lat_us));
    if (s.lat_us == NULL) {
        rd_kafka_conf_destroy(conf);
        return cli_fail("out of memory");
    }
    ctx->user = &s;
    rd_kafka_conf_set_dr_msg_cb(conf, perf_dr_cb);
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL) {
        free(s.lat_us);
        return CLI_FAIL;
    }
    int rc = CLI_OK;
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    if (md == NULL) {
        rc = CLI_FAIL;
    } else {
        const rd_kafka_metadata_topic_t *mt = cli_md_topic(md, topic);
        if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            rc = cli_fail("topic '%s' does not exist", topic);
        rd_kafka_metadata_destroy(md);
    }
    /* one payload for every record, like the Kafka tool's random upper-case letters */
    char *payload = malloc((size_t)size + 1);
    if (payload == NULL && rc == CLI_OK)
        rc = cli_fail("out of memory");
    for (int64_t i = 0; payload && i < size; i++)
        payload[i] = (char)('A' + (i * 7 + 3) % 26);
    /* only now: a topic handle asks for the topic's metadata, which may auto-create it */
    rd_kafka_topic_t *rkt = rc == CLI_OK ? rd_kafka_topic_new(rk, topic, NULL) : NULL;
    install_signals();
    int64_t start = cli_mono_us(), iv = interval * 1000;
    s.win_start_us = start;
    int64_t sent = 0;
    for (; rc == CLI_OK && sent < num && !perf_stop; sent++) {
        if (tput > 0) {
            /* ahead of schedule: wait (serving delivery reports meanwhile) */
            for (;;) {
                int64_t due = start + (int64_t)((double)sent * 1e6 / (double)tput);
                int64_t now = cli_mono_us();
                if (now >= due || perf_stop)
                    break;
                int64_t wait_ms = (due - now) / 1000;
                rd_kafka_poll(rk, wait_ms > 0 ? (int)(wait_ms < 100 ? wait_ms : 100) : 0);
                if (wait_ms == 0)
                    usleep((useconds_t)(due - now));
                stats_progress(ctx, &s, iv, false, "sent", true);
            }
        }
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE(payload, (size_t)size),
                RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_OPAQUE((void *)(intptr_t)cli_mono_us()),
                RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 1);
                stats_progress(ctx, &s, iv, false, "sent", true);
                continue;
            }
            if (err) {
                s.failed++;
                if (s.first_error[0] == '\0')
                    snprintf(s.first_error, sizeof(s.first_error), "%s", rd_kafka_err2str(err));
            }
            break;
        }
        rd_kafka_poll(rk, 0);
        if ((sent & 255) == 0)
            stats_progress(ctx, &s, iv, false, "sent", true);
    }
    while (rc == CLI_OK && rd_kafka_outq_len(rk) > 0) {
        rd_kafka_poll(rk, 50);
        stats_progress(ctx, &s, iv, false, "sent", true);
        if (perf_stop) {
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(rk, 100);
            break;
        }
    }
    int64_t elapsed = cli_mono_us() - start;
    if (rc == CLI_OK) {
        if (s.win_records)
            stats_progress(ctx, &s, iv, true, "sent", true);
        stats_summary(ctx, &s, elapsed, "sent", "produce_to_ack");
        if (s.failed)
            rc = cli_fail("%lld records failed (first error: %s)", (long long)s.failed,
                          s.first_error);
        else if (s.records < num)
            rc = cli_fail("interrupted after %lld of %lld records", (long long)s.records,
                          (long long)num);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    cli_client_destroy(rk);
    free(payload);
    free(s.lat_us);
    return rc;
}

/* ---- perf consume --------------------------------------------------------------- */

static const cli_opt_t consume_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to read (required)"},
    {"messages", CLI_VALUE, "N", "records to read (default: everything up to the end)"},
    {"num-records", CLI_VALUE, "N", "the same as --messages"},
    {"group", CLI_VALUE, "ID", "read as this consumer group (default: assign all partitions)"},
    {"from-latest", CLI_FLAG, NULL, "start at the end instead of the beginning"},
    {"consumer-props", CLI_LIST, "K=V...", "librdkafka consumer properties"},
    {"reporting-interval", CLI_VALUE, "MS", "progress line interval (default 1000)"},
    {0},
};

/* librdkafka wants a group.id even to assign partitions; without --group nothing is
 * committed under it. */
static const char *anon_group(void)
{
    static char name[64];
    snprintf(name, sizeof(name), "runnel-cli-%ld", (long)getpid());
    return name;
}

static int perf_consume(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    if (topic == NULL || *topic == '\0')
        return cli_usage(ctx, "--topic is required");
    int64_t want, interval;
    const char *mname = cli_has(ctx, "messages") ? "messages" : "num-records";
    if (cli_get_int(ctx, mname, 1, INT64_MAX, -1, &want) != 0 ||
        cli_get_int(ctx, "reporting-interval", 10, 3600000, 1000, &interval) != 0)
        return CLI_USAGE;
    const char *group = cli_get(ctx, "group");
    bool latest = cli_has(ctx, "from-latest");
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL || cli_conf_set(conf, "enable.partition.eof", "true") ||
        cli_conf_set(conf, "isolation.level", "read_uncommitted") ||
        cli_conf_set(conf, "auto.offset.reset", latest ? "latest" : "earliest") ||
        (group && cli_conf_set(conf, "group.id", group)) ||
        (!group && (cli_conf_set(conf, "enable.auto.commit", "false") ||
                    cli_conf_set(conf, "group.id", anon_group()))) ||
        cli_conf_apply_multi(ctx, conf, "consumer-props") != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return CLI_USAGE;
    }
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_CONSUMER, conf);
    if (rk == NULL)
        return CLI_FAIL;
    int rc = CLI_OK, nparts = 0;
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    if (md == NULL) {
        rc = CLI_FAIL;
    } else {
        const rd_kafka_metadata_topic_t *mt = cli_md_topic(md, topic);
        if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || !mt->partition_cnt)
            rc = cli_fail("topic '%s' does not exist", topic);
        else
            nparts = mt->partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts + 1);
    if (rc == CLI_OK && group) {
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, list);
        if (err)
            rc = cli_fail("cannot subscribe: %s", rd_kafka_err2str(err));
    } else if (rc == CLI_OK) {
        for (int p = 0; p < nparts; p++)
            rd_kafka_topic_partition_list_add(list, topic, p)->offset =
                latest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
        if (err)
            rc = cli_fail("cannot assign partitions: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(list);
    perf_stats_t s;
    memset(&s, 0, sizeof(s));
    bool *eof = calloc((size_t)nparts + 1, sizeof(bool));
    int neof = 0;
    install_signals();
    int64_t start = cli_mono_us(), first = 0, last = 0, iv = interval * 1000;
    int64_t last_activity = start;
    s.win_start_us = start;
    while (rc == CLI_OK && !perf_stop && (want < 0 || s.records < want)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        stats_progress(ctx, &s, iv, false, "received", false);
        if (m == NULL) {
            if (cli_mono_us() - last_activity > (int64_t)ctx->timeout_ms * 1000)
                break;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (eof && m->partition >= 0 && m->partition < nparts && !eof[m->partition]) {
                eof[m->partition] = true;
                neof++;
            }
            rd_kafka_message_destroy(m);
            /* without --messages, the run is "everything there is" */
            if (want < 0 && neof == nparts)
                break;
            continue;
        }
        if (m->err) {
            cli_verbose(ctx, "consumer error: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int64_t now = cli_mono_us();
        last_activity = now;
        if (first == 0)
            first = now;
        last = now;
        if (eof && m->partition >= 0 && m->partition < nparts && eof[m->partition]) {
            eof[m->partition] = false;
            neof--;
        }
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        int64_t lat = tt == RD_KAFKA_TIMESTAMP_CREATE_TIME ? (cli_now_ms() - ts) * 1000 : 0;
        stats_add(&s, lat, (int64_t)(m->len + m->key_len));
        rd_kafka_message_destroy(m);
    }
    if (rc == CLI_OK) {
        if (s.win_records)
            stats_progress(ctx, &s, iv, true, "received", false);
        stats_summary(ctx, &s, first ? last - first : 0, "received", "end_to_end");
        if (want > 0 && s.records < want)
            rc = cli_fail("only %lld of %lld records arrived (no record for %d ms)",
                          (long long)s.records, (long long)want, ctx->timeout_ms);
    }
    rd_kafka_consumer_close(rk);
    free(eof);
    free(s.lat_us);
    cli_client_destroy(rk);
    return rc;
}

const cli_cmd_t cli_cmd_perf_produce = {
    "perf produce", "Measure producer throughput and latency (like kafka-producer-perf-test).",
    "Latency is from send to acknowledgement. --timeout is also the broker-connect timeout.",
    "  runnel perf produce --topic bench --num-records 1000000 --record-size 100 --throughput -1\n"
    "  runnel perf produce --topic bench --num-records 50000 --record-size 1024 --throughput "
    "10000 --producer-props acks=1 linger.ms=10 compression.codec=lz4\n"
    "  runnel perf produce --topic bench --num-records 10000 --format json",
    produce_opts, perf_produce};

const cli_cmd_t cli_cmd_perf_consume = {
    "perf consume", "Measure consumer throughput (like kafka-consumer-perf-test).",
    "Without --messages the run reads every partition to its end. The run also stops when no\n"
    "record arrives for --timeout ms. Latency is end-to-end (now minus the record's CreateTime).",
    "  runnel perf consume --topic bench --messages 1000000\n"
    "  runnel perf consume --topic bench --format json",
    consume_opts, perf_consume};
