/*
 * cli_client.c - librdkafka client set-up for the runnel tool: configuration, quiet
 * logging, a fast "is any broker reachable" check, metadata and admin-result helpers.
 *
 * librdkafka keeps retrying an unreachable broker forever and only reports it through the
 * error callback (RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN), so cli_client_new polls for that
 * error while it waits for a first metadata answer: a refused connection fails in
 * milliseconds, a silent network within --timeout.
 */
#include "cli/cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/properties.h"

/* librdkafka's threads call this; with --verbose the lines go to stderr as they are. */
static void cli_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const cli_ctx_t *ctx = rd_kafka_opaque(rk);
    if (ctx != NULL && ctx->verbose)
        fprintf(stderr, "rdkafka %d %s: %s\n", level, fac, buf);
}

/* Served by rd_kafka_poll / rd_kafka_consumer_poll on the main thread. */
static void cli_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    cli_ctx_t *ctx = opaque;
    (void)rk;
    if (ctx == NULL)
        return;
    if (ctx->verbose)
        fprintf(stderr, "runnel: client error %s: %s\n", rd_kafka_err2name(err), reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        ctx->all_brokers_down = 1;
        if (ctx->last_error[0] == '\0')
            snprintf(ctx->last_error, sizeof(ctx->last_error), "%s", reason);
        return;
    }
    snprintf(ctx->last_error, sizeof(ctx->last_error), "%s", reason);
    /* "(after 0ms in state CONNECT)" says nothing to a user */
    char *after = strstr(ctx->last_error, " (after ");
    if (after)
        *after = '\0';
}

int cli_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fflush(stdout);
        fprintf(stderr, "runnel: client property %s=%s: %s\n", key, value, errstr);
        return -1;
    }
    return 0;
}

struct conf_load {
    rd_kafka_conf_t *conf;
    int failed;
};

static void conf_load_cb(void *arg, const char *key, const char *value, int line)
{
    struct conf_load *cl = arg;
    (void)line;
    if (!cl->failed && cli_conf_set(cl->conf, key, value) != 0)
        cl->failed = 1;
}

rd_kafka_conf_t *cli_conf_new(cli_ctx_t *ctx)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%d", ctx->timeout_ms);
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_log_cb(conf, cli_log_cb);
    rd_kafka_conf_set_error_cb(conf, cli_error_cb);
    if (cli_conf_set(conf, "bootstrap.servers", ctx->bootstrap) != 0 ||
        cli_conf_set(conf, "client.id", "runnel-cli") != 0 ||
        cli_conf_set(conf, "log.connection.close", "false") != 0 ||
        cli_conf_set(conf, "socket.timeout.ms", ctx->timeout_ms < 10 ? "10" : tmo) != 0 ||
        (ctx->verbose && cli_conf_set(conf, "log_level", "7") != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    const char *file = cli_get(ctx, "command-config");
    if (file) {
        struct conf_load cl = {conf, 0};
        char err[512];
        if (properties_load_file(file, conf_load_cb, &cl, err, sizeof(err)) != 0) {
            fflush(stdout);
            fprintf(stderr, "runnel: --command-config: %s\n", err);
            cl.failed = 1;
        }
        if (cl.failed) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

int cli_conf_apply_multi(cli_ctx_t *ctx, rd_kafka_conf_t *conf, const char *optname)
{
    int pos = 0;
    const char *kv;
    while ((kv = cli_next(ctx, optname, &pos)) != NULL) {
        const char *eq = strchr(kv, '=');
        if (eq == NULL || eq == kv) {
            cli_usage(ctx, "--%s wants key=value, not '%s'", optname, kv);
            return -1;
        }
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
        if (cli_conf_set(conf, key, eq + 1) != 0)
            return -1;
    }
    return 0;
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cli_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

rd_kafka_t *cli_client_new(cli_ctx_t *ctx, rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        cli_fail("cannot create client: %s", errstr);
        return NULL;
    }
    ctx->all_brokers_down = 0;
    ctx->last_error[0] = '\0';
    int64_t deadline = cli_mono_us() + (int64_t)ctx->timeout_ms * 1000;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (;;) {
        int64_t left_ms = (deadline - cli_mono_us()) / 1000;
        if (left_ms <= 0)
            break;
        const struct rd_kafka_metadata *md = NULL;
        err = rd_kafka_metadata(rk, 0, NULL, &md, (int)(left_ms < 200 ? left_ms : 200));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            return rk;
        }
        rd_kafka_poll(rk, 0); /* serves the error callback */
        if (ctx->all_brokers_down)
            break;
    }
    const char *why = ctx->last_error[0] ? ctx->last_error : rd_kafka_err2str(err);
    if (!ctx->all_brokers_down && !ctx->last_error[0])
        why = "no answer within the timeout";
    cli_fail("cannot reach broker at %s: %s", ctx->bootstrap, why);
    cli_client_destroy(rk);
    return NULL;
}

static void *destroy_thread(void *arg)
{
    /* a consumer was closed by its owner already */
    rd_kafka_destroy_flags(arg, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return NULL;
}

void cli_client_destroy(rd_kafka_t *rk)
{
    if (rk == NULL)
        return;
    /* librdkafka 2.0.2 can hang in destroy after some failed admin requests (seen after
     * DescribeConsumerGroups against a broker without group support). The tool is about
     * to exit, so give destroy a few seconds and then leave it. */
    pthread_t th;
    if (pthread_create(&th, NULL, destroy_thread, rk) != 0) {
        destroy_thread(rk);
        return;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 3;
    if (pthread_timedjoin_np(th, NULL, &deadline) != 0)
        pthread_detach(th);
}

const rd_kafka_metadata_t *cli_metadata_all(cli_ctx_t *ctx, rd_kafka_t *rk)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, ctx->timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cli_fail("cannot read metadata from %s: %s", ctx->bootstrap, rd_kafka_err2str(err));
        return NULL;
    }
    return md;
}

const rd_kafka_metadata_topic_t *cli_md_topic(const rd_kafka_metadata_t *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0)
            return &md->topics[i];
    return NULL;
}

rd_kafka_AdminOptions_t *cli_admin_options(cli_ctx_t *ctx, rd_kafka_t *rk,
                                           rd_kafka_admin_op_t op)
{
    char errstr[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    rd_kafka_AdminOptions_set_request_timeout(o, ctx->timeout_ms, errstr, sizeof(errstr));
    /* only some operations have a broker-side timeout; the others refuse it, harmlessly */
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
        op == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS || op == RD_KAFKA_ADMIN_OP_DELETERECORDS)
        rd_kafka_AdminOptions_set_operation_timeout(o, ctx->timeout_ms, errstr, sizeof(errstr));
    return o;
}

rd_kafka_event_t *cli_admin_wait(cli_ctx_t *ctx, rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                 const char *what)
{
    int64_t deadline = cli_mono_us() + ((int64_t)ctx->timeout_ms + 2000) * 1000;
    for (;;) {
        int64_t left = (deadline - cli_mono_us()) / 1000;
        if (left <= 0) {
            cli_fail("%s: no answer within %d ms", what, ctx->timeout_ms);
            return NULL;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)left);
        if (ev == NULL)
            continue;
        if (rd_kafka_event_type(ev) != type) {
            /* errors and logs forwarded to this queue */
            if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR)
                cli_verbose(ctx, "client error: %s", rd_kafka_event_error_string(ev));
            rd_kafka_event_destroy(ev);
            continue;
        }
        if (rd_kafka_event_error(ev)) {
            cli_fail("%s: %s", what, rd_kafka_event_error_string(ev));
            rd_kafka_event_destroy(ev);
            return NULL;
        }
        return ev;
    }
}

int cli_parse_datetime(const char *s, int64_t *ms_out)
{
    int64_t v;
    if (cli_parse_i64(s, &v) == 0) {
        *ms_out = v;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    int ms = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) {
                ms = ms * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        if (digits == 0)
            return -1;
        while (digits++ < 3)
            ms *= 10;
    }
    time_t t;
    if (*p == '\0') {
        tm.tm_isdst = -1;
        t = mktime(&tm);
        if (t == (time_t)-1)
            return -1;
    } else {
        long off = 0;
        if (*p == 'Z' && p[1] == '\0') {
            off = 0;
        } else if ((*p == '+' || *p == '-') && strlen(p) >= 3) {
            int hh = 0, mm = 0;
            if (sscanf(p + 1, "%2d:%2d", &hh, &mm) < 1 && sscanf(p + 1, "%2d%2d", &hh, &mm) < 1)
                return -1;
            off = (hh * 60L + mm) * 60L * (*p == '-' ? -1 : 1);
        } else {
            return -1;
        }
        t = timegm(&tm);
        if (t == (time_t)-1)
            return -1;
        t -= off;
    }
    *ms_out = (int64_t)t * 1000 + ms;
    return 0;
}
