/*
 * main.c - runnel-server: the single-binary Kafka-compatible broker.
 *
 *   runnel-server [server.properties] [--override key=value ...]
 *
 * Loads Kafka-named settings, opens (and recovers) the logs, listens, and runs
 * the event loop until SIGTERM or SIGINT, then flushes, checkpoints and exits 0.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cluster/broker_client.h"
#include "cluster/cluster.h"
#include "common/bufpool.h"
#include "common/fsutil.h"
#include "common/logger.h"
#include "common/properties.h"
#include "group/group_coordinator.h"
#include "txn/partition_txn.h"
#include "txn/txn_coordinator.h"
#include "server/broker.h"

#define HOUSEKEEPING_MS 1000

static evloop_t *g_loop;
static ev_timer_t g_log_timer; /* retention checks and cleaner scheduling */
static ev_io_t g_cleaner_io;   /* the log cleaner's completion eventfd */
static ev_io_t g_flusher_io;   /* the flusher thread's completion eventfd (flush.messages) */

/* Cluster mode: the first SIGTERM/SIGINT asks the loop, through this eventfd, for a controlled
 * shutdown (leadership handed over while requests are still served); a second one stops at once. */
static int g_shutdown_fd = -1;
static ev_io_t g_shutdown_io = {.fd = -1};
static atomic_int g_signals;

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_fetch_add(&g_signals, 1) == 0 && g_shutdown_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(g_shutdown_fd, &one, sizeof(one));
        (void)w;
        return;
    }
    if (g_loop)
        evloop_stop(g_loop);
}

static void shutdown_done(void *arg) { evloop_stop(arg); }

static void shutdown_io_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)revents;
    broker_t *b = io->arg;
    evloop_io_del(loop, io);
    if (cluster_controlled_shutdown(b->cluster, shutdown_done, loop) != 0)
        evloop_stop(loop);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: runnel-server [--check-config] [server.properties] [--override key=value ...]\n"
               "       runnel-server --version | --help\n"
               "  --check-config  validate the settings, print the effective configuration with\n"
               "                  each value's source (default, static), and exit\n"
               "  Kafka's server.properties names and defaults, e.g.\n"
               "  runnel-server --override listeners=PLAINTEXT://localhost:9092 --override log.dirs=data\n");
}

/* Splits a comma-separated list into trimmed, non-empty items. */
static int split_list(const char *s, char ***out)
{
    int n = 0, cap = 4;
    char **items = malloc((size_t)cap * sizeof(char *));
    char *copy = strdup(s ? s : "");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && items; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*tok)
            continue;
        if (n == cap) {
            cap *= 2;
            char **grown = realloc(items, (size_t)cap * sizeof(char *));
            if (grown == NULL)
                break;
            items = grown;
        }
        items[n++] = strdup(tok);
    }
    free(copy);
    *out = items;
    return n;
}

typedef struct meta_props {
    char cluster_id[64];
    int32_t broker_id;
    bool has_broker_id;
} meta_props_t;

static void meta_entry(void *arg, const char *key, const char *value, int line)
{
    (void)line;
    meta_props_t *m = arg;
    if (strcmp(key, "cluster.id") == 0)
        snprintf(m->cluster_id, sizeof(m->cluster_id), "%s", value);
    else if (strcmp(key, "broker.id") == 0 || strcmp(key, "node.id") == 0) {
        m->broker_id = (int32_t)strtol(value, NULL, 10);
        m->has_broker_id = true;
    }
}

/* meta.properties in every log dir: the cluster id (generated once) and our broker id. */
static int broker_check_meta(broker_t *b, char *err, size_t errlen)
{
    for (int i = 0; i < b->n_log_dirs; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/meta.properties", b->log_dirs[i]);
        meta_props_t m = {0};
        char perr[256];
        if (properties_load_file(path, meta_entry, &m, perr, sizeof(perr)) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s", perr);
            return -1;
        }
        if (m.has_broker_id && m.broker_id != b->node_id) {
            snprintf(err, errlen, "the broker.id %d in %s does not match the configured broker.id %d",
                     m.broker_id, path, b->node_id);
            return -1;
        }
        if (m.cluster_id[0]) {
            if (b->cluster_id[0] && strcmp(b->cluster_id, m.cluster_id) != 0) {
                snprintf(err, errlen, "log dirs belong to different clusters (%s vs %s)", b->cluster_id,
                         m.cluster_id);
                return -1;
            }
            snprintf(b->cluster_id, sizeof(b->cluster_id), "%s", m.cluster_id);
        }
    }
    if (!b->cluster_id[0]) {
        kuuid_t id;
        topics_uuid_random(&id);
        topics_uuid_to_string(&id, b->cluster_id);
    }
    for (int i = 0; i < b->n_log_dirs; i++) {
        char path[PATH_MAX], text[256];
        snprintf(path, sizeof(path), "%s/meta.properties", b->log_dirs[i]);
        int n = snprintf(text, sizeof(text),
                         "#\n#Written by runnel-server\nversion=0\nbroker.id=%d\ncluster.id=%s\n", b->node_id,
                         b->cluster_id);
        if (fs_mkdirs(b->log_dirs[i]) != 0 || fs_write_atomic(path, text, (size_t)n) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void load_dynamic_entry(void *arg, const char *key, const char *value, int line)
{
    broker_t *b = arg;
    char err[256];
    if (broker_config_set_dynamic(b->config, key, value, err, sizeof(err)) != 0)
        LOG_WARN("config", "ignoring stored dynamic config %s (line %d): %s", key, line, err);
}

static void housekeeping_cb(evloop_t *loop, ev_timer_t *t)
{
    broker_t *b = t->arg;
    static int64_t last_checkpoint;
    int64_t now = evloop_now_ms(loop);
    topics_flush_due(b->topics, now);
    int64_t every = broker_config_get_long(b->config, "log.flush.offset.checkpoint.interval.ms");
    if (every > 0 && now - last_checkpoint >= every) {
        if (last_checkpoint != 0)
            topics_write_checkpoints(b->topics);
        last_checkpoint = now;
    }
    evloop_timer_start(loop, t, HOUSEKEEPING_MS);
}

static void log_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    broker_t *b = t->arg;
    evloop_timer_start(loop, t, topics_log_tick(b->topics, evloop_now_ms(loop), evloop_wall_ms()));
}

static void cleaner_io_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)loop;
    (void)revents;
    broker_t *b = io->arg;
    topics_cleaner_poll(b->topics, evloop_wall_ms());
}

static void flusher_io_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)loop;
    (void)revents;
    broker_t *b = io->arg;
    topics_flusher_poll(b->topics);
}

static bool g_check_config;

static const char *source_name(int source)
{
    switch (source) {
    case CONFIG_SOURCE_DYNAMIC_BROKER: return "dynamic";
    case CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER: return "dynamic-default";
    case CONFIG_SOURCE_STATIC_BROKER: return "static";
    case CONFIG_SOURCE_DEFAULT: return "default";
    default: return "unknown";
    }
}

static void print_config(void *arg, const config_def_t *def, const char *value, int source)
{
    (void)arg;
    printf("%-50s %-10s %s\n", config_def_name(def), source_name(source),
           config_def_sensitive(def) ? "(hidden)" : value ? value : "null");
}

static int broker_configure(broker_t *b, int argc, char **argv, char *err, size_t errlen)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "--check-config") == 0) {
        g_check_config = true;
        i++;
    }
    if (i < argc && strncmp(argv[i], "--", 2) != 0) {
        if (broker_config_load_file(b->config, argv[i], err, errlen) != 0)
            return -1;
        i++;
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--override") == 0 && i + 1 < argc) {
            if (broker_config_apply_override(b->config, argv[++i], err, errlen) != 0)
                return -1;
        } else if (strncmp(argv[i], "--override=", 11) == 0) {
            if (broker_config_apply_override(b->config, argv[i] + 11, err, errlen) != 0)
                return -1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--check-config") == 0) {
            g_check_config = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("runnel-server %s\n", RUNNEL_VERSION);
            exit(0);
        } else {
            snprintf(err, errlen, "unexpected argument '%s'", argv[i]);
            return -2;
        }
    }
    const char *lvl = broker_config_get(b->config, "runnel.log.level", NULL);
    if (lvl && logger_parse_level(lvl) >= 0)
        logger_min_level = logger_parse_level(lvl);

    config_listener_t ls[8];
    int nl = config_parse_listeners(broker_config_get(b->config, "listeners", NULL), ls, 8, err, errlen);
    if (nl <= 0) {
        if (nl == 0)
            snprintf(err, errlen, "listeners is empty");
        return -1;
    }
    snprintf(b->listener_name, sizeof(b->listener_name), "%s", ls[0].name);
    snprintf(b->listen_host, sizeof(b->listen_host), "%s", ls[0].host);
    b->listen_port = ls[0].port;
    config_listener_t adv[8];
    int na = config_parse_listeners(broker_config_advertised_listeners(b->config), adv, 8, err, errlen);
    if (na <= 0)
        return -1;
    snprintf(b->advertised_host, sizeof(b->advertised_host), "%s", adv[0].host);
    b->advertised_port = adv[0].port;
    if (!b->advertised_host[0] || strcmp(b->advertised_host, "0.0.0.0") == 0 ||
        strcmp(b->advertised_host, "::") == 0) {
        /* Like Kafka: advertise this machine's name when bound to all interfaces. */
        if (gethostname(b->advertised_host, sizeof(b->advertised_host)) != 0)
            snprintf(b->advertised_host, sizeof(b->advertised_host), "localhost");
    }
    int64_t id = broker_config_get_long(b->config, "broker.id");
    if (id < 0)
        id = broker_config_get_long(b->config, "node.id");
    b->node_id = id < 0 ? 0 : (int32_t)id;
    b->n_log_dirs = split_list(broker_config_log_dirs(b->config), &b->log_dirs);
    if (b->n_log_dirs == 0) {
        snprintf(err, errlen, "log.dirs is empty");
        return -1;
    }
    return 0;
}

/* Cluster mode: requests to the other brokers (the transaction coordinator's WriteTxnMarkers). */
static broker_client_t *g_peers;

/* Cluster mode: the coordinators follow the leadership of their internal topics' partitions. */
static void on_leadership(void *arg, partition_t *p, bool leader)
{
    broker_t *b = arg;
    if (b->groups && strcmp(p->topic->name, "__consumer_offsets") == 0) {
        if (leader)
            group_coordinator_elected(b->groups, p);
        else
            group_coordinator_resigned(b->groups, p->index);
    } else if (b->txns && strcmp(p->topic->name, TXN_LOG_TOPIC) == 0) {
        if (leader)
            txn_coordinator_elected(b->txns, p);
        else
            txn_coordinator_resigned(b->txns, p->index);
    }
}

int main(int argc, char **argv)
{
    broker_t b;
    memset(&b, 0, sizeof(b));
    char err[512] = "";
    b.config = broker_config_new();
    if (b.config == NULL)
        return 1;
    int rc = broker_configure(&b, argc, argv, err, sizeof(err));
    if (rc != 0) {
        LOG_ERROR("server", "configuration error: %s", err);
        if (rc == -2)
            usage(stderr);
        return 2;
    }
    if (g_check_config) {
        /* Validated above; show the effective configuration and where each value comes from. */
        broker_config_foreach(b.config, print_config, NULL);
        broker_config_free(b.config);
        return 0;
    }
    const char *zk = broker_config_get(b.config, "zookeeper.connect", NULL);
    if (zk && *zk) {
        /* Cluster mode: the cluster id comes from ZooKeeper (created there by the first broker). */
        char candidate[23];
        kuuid_t cid;
        topics_uuid_random(&cid);
        topics_uuid_to_string(&cid, candidate);
        cluster_options_t co = {.config = b.config, .broker_id = b.node_id, .listener_name = b.listener_name,
                                .host = b.advertised_host, .port = b.advertised_port};
        b.cluster = cluster_open(&co, candidate, err, sizeof(err));
        if (b.cluster == NULL) {
            LOG_ERROR("server", "%s", err);
            return 1;
        }
        snprintf(b.cluster_id, sizeof(b.cluster_id), "%s", candidate);
    }
    if (broker_check_meta(&b, err, sizeof(err)) != 0) {
        LOG_ERROR("server", "%s", err);
        return 1;
    }
    snprintf(b.broker_config_path, sizeof(b.broker_config_path), "%s/runnel-metadata/broker.properties",
             b.log_dirs[0]);
    char perr[256];
    if (properties_load_file(b.broker_config_path, load_dynamic_entry, &b, perr, sizeof(perr)) != 0 &&
        errno != ENOENT)
        LOG_WARN("config", "%s", perr);

    /* Each open partition keeps a few files open: take all the descriptors we may. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    b.loop = evloop_create();
    g_loop = b.loop;
    topics_options_t topt = {.config = b.config, .log_dirs = b.log_dirs, .n_log_dirs = b.n_log_dirs};
    b.topics = b.loop ? topics_open(&topt, err, sizeof(err)) : NULL;
    if (b.topics == NULL) {
        LOG_ERROR("server", "cannot open logs: %s", err);
        return 1;
    }
    /* Groups and committed offsets come back from __consumer_offsets. */
    b.groups = group_coordinator_create(b.loop, b.topics, b.config);
    if (b.groups && b.cluster) /* groups follow the leadership of __consumer_offsets partitions */
        group_coordinator_set_cluster_mode(b.groups);
    if (b.groups == NULL || group_coordinator_load(b.groups) != 0)
        LOG_ERROR("server", "the group coordinator could not load everything from __consumer_offsets");
    /* Producer-id blocks and transactions (__transaction_state). */
    char txn_meta[4096];
    snprintf(txn_meta, sizeof(txn_meta), "%s/runnel-metadata", b.log_dirs[0]);
    b.txns = txn_coordinator_create(b.loop, b.topics, b.groups, b.config, txn_meta);
    if (b.txns && b.cluster)
        txn_coordinator_set_cluster_mode(b.txns, b.node_id);
    if (b.txns && b.cluster) {
        g_peers = broker_client_new(b.loop, b.cluster, b.node_id, b.config);
        txn_coordinator_set_peers(b.txns, b.cluster, g_peers);
    }
    if (b.txns == NULL || txn_coordinator_load(b.txns) != 0)
        LOG_ERROR("server", "the transaction coordinator could not load everything");
    net_limits_t limits = {
        .max_request_bytes = (int32_t)broker_config_get_long(b.config, "socket.request.max.bytes"),
        .max_idle_ms = broker_config_get_long(b.config, "connections.max.idle.ms"),
        .max_queued_out_bytes = 64u << 20,
    };
    conn_handlers_t handlers = {.on_request = request_on_frame, .on_close = request_on_close, .ctx = &b};
    b.listener = net_listener_open(b.loop, b.listen_host, b.listen_port, &limits, &handlers, err, sizeof(err));
    if (b.listener == NULL) {
        LOG_ERROR("server", "%s", err);
        group_coordinator_destroy(b.groups);
        topics_close(b.topics, true);
        return 1;
    }
    if (b.listen_port == 0) {
        b.listen_port = net_listener_port(b.listener);
        if (b.advertised_port == 0)
            b.advertised_port = b.listen_port;
    }
    const char *ml = broker_config_get(b.config, "metrics.listener", NULL);
    if (ml && *ml) {
        /* host:port, optionally written as a URL (http://host:port). */
        char mhost[256] = "";
        int mport = -1;
        const char *hp = strncmp(ml, "http://", 7) == 0 ? ml + 7 : ml;
        const char *colon = strrchr(hp, ':');
        if (colon && colon - hp < (long)sizeof(mhost)) {
            memcpy(mhost, hp, (size_t)(colon - hp));
            mhost[colon - hp] = '\0';
            char *end;
            long v = strtol(colon + 1, &end, 10);
            if (*end == '\0' && end != colon + 1 && v >= 0 && v <= 65535)
                mport = (int)v;
        }
        if (mport < 0) {
            LOG_ERROR("server", "metrics.listener must be host:port, got '%s'", ml);
            return 2;
        }
        b.metrics_http = metrics_http_open(&b, mhost, mport, err, sizeof(err));
        if (b.metrics_http == NULL) {
            LOG_ERROR("server", "%s", err);
            return 1;
        }
        LOG_INFO("server", "metrics at http://%s:%d/metrics", *mhost ? mhost : "0.0.0.0",
                 metrics_http_port(b.metrics_http));
    }
    b.metrics.start_wall_ms = evloop_wall_ms();
    evloop_timer_init(&b.housekeeping, housekeeping_cb, &b);
    evloop_timer_start(b.loop, &b.housekeeping, HOUSEKEEPING_MS);
    evloop_timer_init(&g_log_timer, log_timer_cb, &b);
    evloop_timer_start(b.loop, &g_log_timer, 0);
    g_cleaner_io.fd = topics_cleaner_fd(b.topics);
    g_cleaner_io.cb = cleaner_io_cb;
    g_cleaner_io.arg = &b;
    if (g_cleaner_io.fd >= 0 && evloop_io_add(b.loop, &g_cleaner_io, EPOLLIN) != 0)
        LOG_ERROR("server", "cannot watch the log cleaner: %s", strerror(errno));
    g_flusher_io.fd = topics_flusher_fd(b.topics);
    g_flusher_io.cb = flusher_io_cb;
    g_flusher_io.arg = &b;
    if (g_flusher_io.fd >= 0 && evloop_io_add(b.loop, &g_flusher_io, EPOLLIN) != 0)
        LOG_ERROR("server", "cannot watch the flusher: %s", strerror(errno));
    if (b.cluster)
        cluster_set_leadership_hook(b.cluster, on_leadership, &b);
    if (b.cluster && cluster_start(b.cluster, b.loop, b.topics) != 0) {
        LOG_ERROR("server", "cannot start following ZooKeeper: %s", strerror(errno));
        return 1;
    }
    if (b.cluster) {
        g_shutdown_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_shutdown_io.cb = shutdown_io_cb;
        g_shutdown_io.arg = &b;
        if (g_shutdown_io.fd >= 0 && evloop_io_add(b.loop, &g_shutdown_io, EPOLLIN) == 0)
            g_shutdown_fd = g_shutdown_io.fd;
    }
    LOG_INFO("server", "Runnel %s started: broker.id=%d cluster.id=%s listeners=%s://%s:%d "
             "advertised=%s:%d log.dirs=%s topics=%d",
             RUNNEL_VERSION, b.node_id, b.cluster_id, b.listener_name, b.listen_host, b.listen_port,
             b.advertised_host, b.advertised_port, broker_config_log_dirs(b.config), topics_count(b.topics));
    rc = evloop_run(b.loop);
    if (g_shutdown_io.fd >= 0) {
        g_shutdown_fd = -1;
        close(g_shutdown_io.fd); /* it also leaves the loop's epoll set */
    }
    LOG_INFO("server", "Runnel %s stopping", RUNNEL_VERSION);
    metrics_http_close(b.metrics_http);
    net_listener_close(b.listener); /* cancels waiting JoinGroup/SyncGroup requests */
    cluster_close(b.cluster);       /* deregisters: our ephemeral znodes go at once */
    txn_coordinator_destroy(b.txns);
    broker_client_free(g_peers); /* after the coordinator, which cancels its requests */
    group_coordinator_destroy(b.groups);
    evloop_timer_stop(b.loop, &b.housekeeping);
    evloop_timer_stop(b.loop, &g_log_timer);
    if (g_cleaner_io.fd >= 0)
        evloop_io_del(b.loop, &g_cleaner_io);
    if (g_flusher_io.fd >= 0)
        evloop_io_del(b.loop, &g_flusher_io);
    ptxn_snapshot_all(b.topics); /* producer state: the next start replays nothing */
    topics_close(b.topics, true);
    evloop_run_pending(b.loop);
    evloop_destroy(b.loop);
    for (int i = 0; i < b.n_log_dirs; i++)
        free(b.log_dirs[i]);
    free(b.log_dirs);
    broker_config_free(b.config);
    bufpool_drain();
    LOG_INFO("server", "Runnel %s stopped", RUNNEL_VERSION);
    return rc == 0 ? 0 : 1;
}
