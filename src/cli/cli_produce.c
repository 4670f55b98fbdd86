/*
 * cli_produce.c - `runnel produce`: one record per input line, as kafka-console-producer.sh
 * reads them (LineMessageReader properties parse.key, key.separator, parse.headers,
 * headers.delimiter, headers.separator, headers.key.separator, null.marker, ignore.error).
 *
 * Partitions are chosen here rather than by librdkafka, from the partition count read in
 * metadata before the first record, so every choice is deterministic and the same as the
 * Java producer's:
 *   default    keyed records: murmur2 (Java-compatible, positive hash mod count);
 *              keyless records: sticky (below)
 *   murmur2    the same as the default
 *   sticky     every record sticky, keys ignored (UniformStickyPartitioner)
 *   round-robin  every record to the next partition in turn, keys ignored
 *   random     every record to a random partition, keys ignored
 * "Sticky" follows KIP-794: stay on one partition until batch.size (16384) bytes of
 * records went to it, then move to another partition picked at random.
 * The partition count is read once; partitions added while producing are not used.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define STICKY_BATCH_BYTES 16384

enum { PART_DEFAULT, PART_STICKY, PART_ROUND_ROBIN, PART_MURMUR2, PART_RANDOM };

typedef struct part_stats {
    int64_t count, first, last;
} part_stats_t;

typedef struct produce_state {
    cli_ctx_t *ctx;
    int64_t delivered, failed;
    part_stats_t *parts;
    int nparts;
    /* partitioner */
    int mode;
    int sticky_part;
    int64_t sticky_bytes;
    unsigned rr_next;
    unsigned rand_state;
    rd_kafka_topic_t *rkt;
} produce_state_t;

static const cli_opt_t produce_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to write to (required)"},
    {"file", CLI_VALUE, "PATH", "read lines from this file instead of stdin"},
    {"partition", CLI_VALUE, "N", "write every record to this partition"},
    {"acks", CLI_VALUE, "all|-1|0|1", "acknowledgements to wait for (default all)"},
    {"compression-type", CLI_VALUE, "CODEC", "none, gzip, snappy, lz4 or zstd (default none)"},
    {"partitioner", CLI_VALUE, "NAME",
     "sticky, round-robin, murmur2 or random (default: murmur2 for keyed records, sticky for "
     "keyless)"},
    {"property", CLI_MULTI, "KEY=VALUE",
     "line reader setting: parse.key, key.separator, parse.headers, headers.delimiter, "
     "headers.separator, headers.key.separator, null.marker, ignore.error"},
    {"header", CLI_MULTI, "KEY=VALUE", "add this header to every record"},
    {"producer-property", CLI_MULTI, "KEY=VALUE", "librdkafka producer property"},
    {"enable-idempotence", CLI_FLAG, NULL, "idempotent producer (needs broker support)"},
    {"transactional-id", CLI_VALUE, "ID",
     "write all records in one transaction (needs broker support)"},
    {0},
};

/* Line reader settings, Kafka's defaults. */
typedef struct reader_props {
    bool parse_key, parse_headers, ignore_error;
    const char *key_sep, *headers_delim, *headers_sep, *headers_key_sep, *null_marker;
} reader_props_t;

static int parse_bool_prop(cli_ctx_t *ctx, const char *k, const char *v, bool *out)
{
    if (strcasecmp(v, "true") == 0)
        *out = true;
    else if (strcasecmp(v, "false") == 0)
        *out = false;
    else
        return cli_usage(ctx, "--property %s must be true or false", k);
    return CLI_OK;
}

static int read_props(cli_ctx_t *ctx, reader_props_t *p)
{
    *p = (reader_props_t){false, false, false, "\t", "\t", ",", ":", NULL};
    int pos = 0;
    const char *kv;
    while ((kv = cli_next(ctx, "property", &pos)) != NULL) {
        const char *eq = strchr(kv, '=');
        if (eq == NULL)
            return cli_usage(ctx, "--property wants KEY=VALUE, not '%s'", kv);
        size_t kl = (size_t)(eq - kv);
        const char *v = eq + 1;
        int rc = CLI_OK;
#define KEYIS(s) (kl == strlen(s) && strncmp(kv, s, kl) == 0)
        if (KEYIS("parse.key"))
            rc = parse_bool_prop(ctx, "parse.key", v, &p->parse_key);
        else if (KEYIS("parse.headers"))
            rc = parse_bool_prop(ctx, "parse.headers", v, &p->parse_headers);
        else if (KEYIS("ignore.error"))
            rc = parse_bool_prop(ctx, "ignore.error", v, &p->ignore_error);
        else if (KEYIS("key.separator"))
            p->key_sep = v;
        else if (KEYIS("headers.delimiter"))
            p->headers_delim = v;
        else if (KEYIS("headers.separator"))
            p->headers_sep = v;
        else if (KEYIS("headers.key.separator"))
            p->headers_key_sep = v;
        else if (KEYIS("null.marker"))
            p->null_marker = v;
        else
            return cli_usage(ctx, "unknown --property '%.*s'", (int)kl, kv);
#undef KEYIS
        if (rc != CLI_OK)
            return rc;
        if (!*p->key_sep || !*p->headers_delim || !*p->headers_sep || !*p->headers_key_sep)
            return cli_usage(ctx, "separators may not be empty");
    }
    return CLI_OK;
}

/* ---- partitioner ---------------------------------------------------------------- */

static unsigned next_rand(produce_state_t *st)
{
    /* xorshift32: plenty for spreading records */
    unsigned x = st->rand_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    st->rand_state = x;
    return x;
}

static int sticky_pick(produce_state_t *st, size_t record_bytes)
{
    if (st->sticky_part < 0 || st->sticky_bytes >= STICKY_BATCH_BYTES) {
        int p = (int)(next_rand(st) % (unsigned)st->nparts);
        if (st->nparts > 1 && p == st->sticky_part)
            p = (p + 1 + (int)(next_rand(st) % (unsigned)(st->nparts - 1))) % st->nparts;
        st->sticky_part = p;
        st->sticky_bytes = 0;
    }
    st->sticky_bytes += (int64_t)record_bytes;
    return st->sticky_part;
}

static int pick_partition(produce_state_t *st, const char *key, size_t klen, size_t bytes)
{
    switch (st->mode) {
    case PART_ROUND_ROBIN:
        return (int)(st->rr_next++ % (unsigned)st->nparts);
    case PART_RANDOM:
        return (int)(next_rand(st) % (unsigned)st->nparts);
    case PART_STICKY:
        return sticky_pick(st, bytes);
    default:
        if (key == NULL)
            return sticky_pick(st, bytes);
        return rd_kafka_msg_partitioner_murmur2(st->rkt, key, klen, st->nparts, NULL, NULL);
    }
}

/* ---- delivery reports ----------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    produce_state_t *st = ((cli_ctx_t *)opaque)->user;
    (void)rk;
    long line = (long)(intptr_t)m->_private;
    if (m->err) {
        st->failed++;
        if (m->err == RD_KAFKA_RESP_ERR__FATAL)
            return; /* the fatal error itself is reported once, at the end */
        fflush(stdout);
        fprintf(stderr, "runnel: record %ld (line %ld) failed: %s\n", line, line,
                rd_kafka_err2str(m->err));
        return;
    }
    st->delivered++;
    if (m->partition >= 0 && m->partition < st->nparts) {
        part_stats_t *ps = &st->parts[m->partition];
        if (ps->count == 0 || m->offset < ps->first)
            ps->first = m->offset;
        if (ps->count == 0 || m->offset > ps->last)
            ps->last = m->offset;
        ps->count++;
    }
}

/* ---- line parsing --------------------------------------------------------------- */

typedef struct parsed {
    const char *key;
    size_t klen;
    const char *value;
    size_t vlen;
    rd_kafka_headers_t *hdrs;
} parsed_t;

static bool is_null_marker(const reader_props_t *p, const char *s, size_t n)
{
    return p->null_marker && strlen(p->null_marker) == n && memcmp(p->null_marker, s, n) == 0;
}

/* Splits `line` (NUL-terminated, modified in place). Returns NULL or an error text. */
static const char *parse_line(const reader_props_t *p, char *line, parsed_t *out)
{
    char *rest = line;
    out->hdrs = NULL;
    if (p->parse_headers) {
        char *d = strstr(rest, p->headers_delim);
        if (d == NULL) {
            if (!p->ignore_error)
                return "no headers delimiter found";
        } else {
            *d = '\0';
            char *hs = rest;
            rest = d + strlen(p->headers_delim);
            if (!is_null_marker(p, hs, strlen(hs)) && *hs) {
                out->hdrs = rd_kafka_headers_new(4);
                size_t sl = strlen(p->headers_sep);
                for (char *h = hs; h;) {
                    char *next = strstr(h, p->headers_sep);
                    if (next) {
                        *next = '\0';
                        next += sl;
                    }
                    char *ks = strstr(h, p->headers_key_sep);
                    if (ks == NULL) {
                        rd_kafka_header_add(out->hdrs, h, -1, NULL, 0);
                    } else {
                        *ks = '\0';
                        const char *hv = ks + strlen(p->headers_key_sep);
                        if (is_null_marker(p, hv, strlen(hv)))
                            rd_kafka_header_add(out->hdrs, h, -1, NULL, 0);
                        else
                            rd_kafka_header_add(out->hdrs, h, -1, hv, (ssize_t)strlen(hv));
                    }
                    h = next;
                }
            }
        }
    }
    out->key = NULL;
    out->klen = 0;
    if (p->parse_key) {
        char *s = strstr(rest, p->key_sep);
        if (s == NULL) {
            if (!p->ignore_error) {
                if (out->hdrs)
                    rd_kafka_headers_destroy(out->hdrs);
                out->hdrs = NULL;
                return "no key separator found";
            }
        } else {
            *s = '\0';
            out->key = rest;
            out->klen = strlen(rest);
            rest = s + strlen(p->key_sep);
            if (is_null_marker(p, out->key, out->klen))
                out->key = NULL;
        }
    }
    out->value = rest;
    out->vlen = strlen(rest);
    if (is_null_marker(p, out->value, out->vlen))
        out->value = NULL;
    if (out->value == NULL)
        out->vlen = 0;
    if (out->key == NULL)
        out->klen = 0;
    return NULL;
}

/* ---- topic lookup --------------------------------------------------------------- */

/* Partition count of the topic (asking for it may auto-create it, as the Java console
 * producer does); -1 after an error line. */
static int topic_partitions(cli_ctx_t *ctx, rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                            const char *topic)
{
    int64_t start = cli_mono_us();
    int64_t deadline = start + (int64_t)ctx->timeout_ms * 1000;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, ctx->timeout_ms);
        if (err) {
            cli_fail("cannot read metadata of topic '%s': %s", topic, rd_kafka_err2str(err));
            return -1;
        }
        int n = -1;
        if (md->topic_cnt == 1) {
            last = md->topics[0].err;
            if (last == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
                n = md->topics[0].partition_cnt;
        }
        rd_kafka_metadata_destroy(md);
        if (n > 0)
            return n;
        /* a topic being auto-created shows LEADER_NOT_AVAILABLE briefly; one that stays
         * unknown for a second is not going to be created */
        if (last == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && cli_mono_us() - start > 1000000)
            break;
        if (cli_mono_us() > deadline)
            break;
        usleep(100000);
    }
    if (last == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || last == RD_KAFKA_RESP_ERR_NO_ERROR)
        cli_fail("topic '%s' does not exist", topic);
    else
        cli_fail("topic '%s' is not available: %s", topic, rd_kafka_err2str(last));
    return -1;
}

/* ---- main ----------------------------------------------------------------------- */

static int produce_run(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    if (topic == NULL || *topic == '\0')
        return cli_usage(ctx, "--topic is required");
    reader_props_t props;
    int rc = read_props(ctx, &props);
    if (rc != CLI_OK)
        return rc;
    int64_t partition;
    if (cli_get_int(ctx, "partition", 0, 1000000, -1, &partition) != 0)
        return CLI_USAGE;
    produce_state_t st;
    memset(&st, 0, sizeof(st));
    st.ctx = ctx;
    st.sticky_part = -1;
    st.rand_state = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16) ^ 0x9e3779b9u;
    if (st.rand_state == 0)
        st.rand_state = 1;
    const char *pn = cli_get(ctx, "partitioner");
    if (pn == NULL)
        st.mode = PART_DEFAULT;
    else if (strcmp(pn, "sticky") == 0)
        st.mode = PART_STICKY;
    else if (strcmp(pn, "round-robin") == 0 || strcmp(pn, "roundrobin") == 0)
        st.mode = PART_ROUND_ROBIN;
    else if (strcmp(pn, "murmur2") == 0)
        st.mode = PART_MURMUR2;
    else if (strcmp(pn, "random") == 0)
        st.mode = PART_RANDOM;
    else
        return cli_usage(ctx, "--partitioner must be sticky, round-robin, murmur2 or random");
    const char *acks = cli_get(ctx, "acks");
    if (acks && strcmp(acks, "all") != 0 && strcmp(acks, "-1") != 0 && strcmp(acks, "0") != 0 &&
        strcmp(acks, "1") != 0)
        return cli_usage(ctx, "--acks must be all, -1, 0 or 1");
    const char *codec = cli_get(ctx, "compression-type");
    if (codec && strcmp(codec, "none") != 0 && strcmp(codec, "gzip") != 0 &&
        strcmp(codec, "snappy") != 0 && strcmp(codec, "lz4") != 0 && strcmp(codec, "zstd") != 0)
        return cli_usage(ctx, "--compression-type must be none, gzip, snappy, lz4 or zstd");
    int pos = 0;
    const char *hv;
    while ((hv = cli_next(ctx, "header", &pos)) != NULL)
        if (strchr(hv, '=') == NULL || *hv == '=')
            return cli_usage(ctx, "--header wants KEY=VALUE, not '%s'", hv);
    const char *txid = cli_get(ctx, "transactional-id");

    FILE *in = stdin;
    const char *path = cli_get(ctx, "file");
    if (path) {
        in = fopen(path, "r");
        if (in == NULL)
            return cli_fail("cannot open %s: %s", path, strerror(errno));
    }

    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL ||
        cli_conf_set(conf, "acks", acks ? (strcmp(acks, "all") == 0 ? "-1" : acks) : "-1") ||
        cli_conf_set(conf, "compression.codec", codec ? codec : "none") ||
        cli_conf_set(conf, "message.timeout.ms", "30000") ||
        (cli_has(ctx, "enable-idempotence") &&
         cli_conf_set(conf, "enable.idempotence", "true")) ||
        (txid && cli_conf_set(conf, "transactional.id", txid)) ||
        cli_conf_apply_multi(ctx, conf, "producer-property") != 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        if (in != stdin)
            fclose(in);
        return CLI_USAGE;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    ctx->user = &st;
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL) {
        if (in != stdin)
            fclose(in);
        return CLI_FAIL;
    }
    st.rkt = rd_kafka_topic_new(rk, topic, NULL);
    st.nparts = topic_partitions(ctx, rk, st.rkt, topic);
    rc = CLI_OK;
    if (st.nparts < 0)
        rc = CLI_FAIL;
    else if (partition >= st.nparts)
        rc = cli_fail("topic '%s' has no partition %lld (it has %d)", topic, (long long)partition,
                      st.nparts);
    if (rc == CLI_OK) {
        st.parts = calloc((size_t)st.nparts, sizeof(*st.parts));
        if (st.parts == NULL)
            rc = cli_fail("out of memory");
    }
    bool in_txn = false;
    if (rc == CLI_OK && txid) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(rk, ctx->timeout_ms);
        if (e == NULL)
            e = rd_kafka_begin_transaction(rk);
        if (e) {
            rc = cli_fail("transactions unavailable: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else {
            in_txn = true;
        }
    }

    bool started = rc == CLI_OK;
    int64_t lines = 0, parse_failed = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (rc == CLI_OK && !rd_kafka_fatal_error(rk, NULL, 0) &&
           (len = getline(&line, &cap, in)) != -1) {
        lines++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if ((size_t)len != strlen(line)) {
            fprintf(stderr, "runnel: line %lld: contains a NUL byte; skipped\n", (long long)lines);
            parse_failed++;
            continue;
        }
        parsed_t pr;
        const char *perr = parse_line(&props, line, &pr);
        if (perr) {
            fflush(stdout);
            fprintf(stderr, "runnel: line %lld: %s; record not sent\n", (long long)lines, perr);
            parse_failed++;
            continue;
        }
        pos = 0;
        while ((hv = cli_next(ctx, "header", &pos)) != NULL) {
            if (pr.hdrs == NULL)
                pr.hdrs = rd_kafka_headers_new(4);
            const char *eq = strchr(hv, '=');
            rd_kafka_header_add(pr.hdrs, hv, eq - hv, eq + 1, -1);
        }
        int p = partition >= 0 ? (int)partition
                               : pick_partition(&st, pr.key, pr.klen, pr.klen + pr.vlen);
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_RKT(st.rkt), RD_KAFKA_V_PARTITION(p),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(pr.key, pr.klen), RD_KAFKA_V_VALUE((void *)pr.value, pr.vlen),
                RD_KAFKA_V_HEADERS(pr.hdrs), RD_KAFKA_V_OPAQUE((void *)(intptr_t)lines),
                RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 50);
                continue;
            }
            if (err) {
                if (pr.hdrs)
                    rd_kafka_headers_destroy(pr.hdrs);
                if (err == RD_KAFKA_RESP_ERR__FATAL) {
                    st.failed++;
                    break;
                }
                fflush(stdout);
                fprintf(stderr, "runnel: record %lld (line %lld) failed: %s\n", (long long)lines,
                        (long long)lines, rd_kafka_err2str(err));
                st.failed++;
            }
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    free(line);
    if (in != stdin)
        fclose(in);

    /* every record gets its delivery report within message.timeout.ms */
    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_resp_err_t err = rd_kafka_flush(rk, 1000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        char fe[256];
        if (rd_kafka_fatal_error(rk, fe, sizeof(fe))) {
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(rk, 100);
            break;
        }
    }
    if (in_txn) {
        rd_kafka_error_t *e = st.failed || parse_failed || rc != CLI_OK
                                  ? rd_kafka_abort_transaction(rk, ctx->timeout_ms)
                                  : rd_kafka_commit_transaction(rk, ctx->timeout_ms);
        if (e) {
            rc = cli_fail("transaction failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    char fe[256];
    if (started && rc == CLI_OK && rd_kafka_fatal_error(rk, fe, sizeof(fe))) {
        rc = cli_fail("producer failed: %s", fe);
        started = false; /* that line says it all */
    }
    if (st.failed || parse_failed)
        rc = CLI_FAIL;

    if (started) {
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_t j;
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "topic", topic);
            cli_json_kint(&j, "records", lines);
            cli_json_kint(&j, "delivered", st.delivered);
            cli_json_kint(&j, "failed", st.failed + parse_failed);
            cli_json_key(&j, "partitions");
            cli_json_arr(&j);
            for (int i = 0; i < st.nparts; i++) {
                if (st.parts[i].count == 0)
                    continue;
                cli_json_obj(&j);
                cli_json_kint(&j, "partition", i);
                cli_json_kint(&j, "count", st.parts[i].count);
                cli_json_kint(&j, "first_offset", st.parts[i].first);
                cli_json_kint(&j, "last_offset", st.parts[i].last);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            cli_json_done(&j);
        } else if (st.failed || parse_failed) {
            printf("Produced %lld of %lld records to topic %s (%lld failed).\n",
                   (long long)st.delivered, (long long)lines, topic,
                   (long long)(st.failed + parse_failed));
        } else {
            printf("Produced %lld records to topic %s.\n", (long long)st.delivered, topic);
        }
    }
    free(st.parts);
    rd_kafka_topic_destroy(st.rkt);
    cli_client_destroy(rk);
    return rc;
}

const cli_cmd_t cli_cmd_produce = {
    "produce", "Write records read line by line from stdin or a file.",
    "Each line is one record value. With --property parse.key=true a line is KEY<sep>VALUE\n"
    "(key.separator, default TAB). With --property parse.headers=true a line starts with\n"
    "headers, h1:v1,h2:v2 then headers.delimiter (default TAB), as in "
    "kafka-console-producer.sh.\n"
    "A failed record is reported on stderr with its line number and the exit code is 1.\n"
    "Records are delivered within 30 s or fail (set --producer-property "
    "message.timeout.ms=MS).",
    "  echo hello | runnel produce --topic demo\n"
    "  printf 'k1:v1\\nk2:v2\\n' | runnel produce --topic demo --property parse.key=true "
    "--property key.separator=:\n"
    "  runnel produce --topic demo --file events.txt --compression-type zstd --acks 1\n"
    "  runnel produce --topic demo --header source=cli --partitioner round-robin --format json",
    produce_opts, produce_run};
