/* zk_store.c - see zk_store.h. One worker thread makes every ZooKeeper call. */
#include "zk_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
/* The synchronous API exists only in the multi-threaded library. */
#define THREADED 1
#include <zookeeper/zookeeper.h>

#include "cluster/topics.h"
#include "cluster/zk_json.h"
#include "common/buf.h"
#include "common/logger.h"
#include "protocol/kerr.h"

#define ZK_PATH_MAX 1024
#define ZK_DATA_MAX (1024 * 1024) /* ZooKeeper's default jute.maxbuffer */
#define PUT_LIT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)

/* Work flags for the worker, set by watches and by the loop thread. */
#define W_BROKERS 1u
#define W_TOPICS 2u
#define W_ELECT 4u
#define W_REGISTER 8u
#define W_RESET 16u
#define W_DELETES 32u
#define W_PREFERRED 64u  /* /admin/preferred_replica_election appeared or changed */
#define W_REBALANCE 128u /* the controller's periodic leader rebalance is due */

#define FIRST_REBALANCE_MS 5000 /* after becoming controller, as Kafka's */
#define WRITE_ATTEMPTS 3        /* conditional state writes retried after a concurrent change */

typedef struct create_cmd {
    struct create_cmd *next;
    char name[256];
    char id[23];
    int32_t npartitions;
    int rf;
    int32_t *assignment;
    char *config_json;
    uint64_t token;
    bool is_delete; /* a deletion request: only name and token are used */
    bool is_config; /* a config change: name and config_json */
    bool is_isr;    /* an ISR change by the leader: name, partition, leader_epoch, assignment/rf */
    int32_t partition, leader_epoch;
    bool is_elect;          /* leader elections: elect_type, elections/nelections */
    bool is_shutdown;       /* this broker's controlled shutdown: token */
    bool is_add_partitions; /* partitions added: name, partition (the old count), npartitions (the new),
                             * rf, assignment of the new ones */
    zk_election_type_t elect_type;
    zk_election_t *elections;
    int nelections;
} create_cmd_t;

struct zk_store {
    zk_store_options_t opt;
    char *connect, *listener_name, *host; /* owned copies of the options' strings */
    char hosts[ZK_PATH_MAX];
    char chroot[ZK_PATH_MAX];
    zhandle_t *zh;
    char *data; /* ZK_DATA_MAX bytes, worker (or open) only */

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int state;      /* last session state seen by the global watcher */
    unsigned work;  /* W_* */
    create_cmd_t *creates, **creates_tail;
    bool stop;
    zk_event_t *events, **events_tail;
    int efd;

    pthread_t worker;
    bool started;
    bool registered;
    int32_t controller_epoch; /* the latest seen, worker only */
    int controller_epoch_version; /* /controller_epoch's znode version as this controller set it, -1 */
    bool is_controller;       /* worker only */
    bool shutting_down;       /* worker only: a controlled shutdown was done, no more rebalancing */
    int64_t next_rebalance_ms; /* worker only: wall clock of the next leader rebalance (controller) */
    void (*on_event)(void *arg, zk_event_t *ev);
    void *arg;
};

/* ---- helpers ---- */

static void zpath(const zk_store_t *s, char *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void zpath(const zk_store_t *s, char *out, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(out, ZK_PATH_MAX, "%s", s->chroot);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, ZK_PATH_MAX - n, fmt, ap);
    va_end(ap);
}

static void post_work(zk_store_t *s, unsigned bits)
{
    pthread_mutex_lock(&s->mu);
    s->work |= bits;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void post_event(zk_store_t *s, zk_event_t *ev)
{
    pthread_mutex_lock(&s->mu);
    ev->next = NULL;
    *s->events_tail = ev;
    s->events_tail = &ev->next;
    pthread_mutex_unlock(&s->mu);
    uint64_t one = 1;
    while (write(s->efd, &one, sizeof(one)) == -1 && errno == EINTR)
        ;
}

static void global_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    zk_store_t *s = ctx;
    if (type != ZOO_SESSION_EVENT)
        return;
    pthread_mutex_lock(&s->mu);
    s->state = state;
    if (state == ZOO_EXPIRED_SESSION_STATE)
        s->work |= W_RESET;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* Watches on particular znodes carry the work bit to set as their context. */
static void work_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    zk_store_t *s = (zk_store_t *)zoo_get_context(zh);
    if (s == NULL || type == ZOO_SESSION_EVENT)
        return;
    post_work(s, (unsigned)(uintptr_t)ctx);
}

static int wait_connected(zk_store_t *s, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->state != ZOO_CONNECTED_STATE && rc == 0 && !s->stop)
        rc = pthread_cond_timedwait(&s->cond, &s->mu, &until);
    bool ok = s->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

static int session_connect(zk_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->state = 0;
    pthread_mutex_unlock(&s->mu);
    s->zh = zookeeper_init(s->hosts, global_watcher, s->opt.session_timeout_ms, NULL, s, 0);
    if (s->zh == NULL)
        return -1;
    if (wait_connected(s, s->opt.connect_timeout_ms) != 0) {
        zookeeper_close(s->zh);
        s->zh = NULL;
        return -1;
    }
    return 0;
}

/* Creates a persistent znode (and its parents) when missing. */
static int ensure_path(zk_store_t *s, const char *full)
{
    char p[ZK_PATH_MAX];
    snprintf(p, sizeof(p), "%s", full);
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            int rc = zoo_create(s->zh, p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
            if (rc != ZOK && rc != ZNODEEXISTS) {
                LOG_ERROR("zk", "cannot create %s: %s", p, zerror(rc));
                return -1;
            }
            *q = c;
            if (c == '\0')
                return 0;
        }
    }
}

/* zoo_get into s->data, NUL-terminated; returns the ZooKeeper code and sets *len. */
static int get_data(zk_store_t *s, const char *path, bool watch, unsigned bit, int *len, struct Stat *st)
{
    int n = ZK_DATA_MAX - 1;
    int rc = watch ? zoo_wget(s->zh, path, work_watcher, (void *)(uintptr_t)bit, s->data, &n, st)
                   : zoo_get(s->zh, path, 0, s->data, &n, st);
    if (rc != ZOK)
        return rc;
    if (n < 0)
        n = 0;
    s->data[n] = '\0';
    *len = n;
    return ZOK;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- split and open ---- */

int zk_store_split_connect(const char *connect, char *hosts, size_t hosts_len, char *chroot, size_t chroot_len)
{
    if (connect == NULL || !*connect)
        return -1;
    const char *slash = strchr(connect, '/');
    size_t hl = slash ? (size_t)(slash - connect) : strlen(connect);
    if (hl == 0 || hl >= hosts_len)
        return -1;
    memcpy(hosts, connect, hl);
    hosts[hl] = '\0';
    const char *c = slash ? slash : "";
    size_t cl = strlen(c);
    while (cl > 0 && c[cl - 1] == '/')
        cl--;
    if (cl >= chroot_len)
        return -1;
    memcpy(chroot, c, cl);
    chroot[cl] = '\0';
    if (strstr(chroot, "//"))
        return -1;
    return 0;
}

static void store_free(zk_store_t *s)
{
    if (s->zh)
        zookeeper_close(s->zh);
    if (s->efd >= 0)
        close(s->efd);
    while (s->events) {
        zk_event_t *e = s->events;
        s->events = e->next;
        zk_event_free(e);
    }
    while (s->creates) {
        create_cmd_t *c = s->creates;
        s->creates = c->next;
        free(c->assignment);
        free(c->config_json);
        free(c->elections);
        free(c);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s->data);
    free(s->connect);
    free(s->listener_name);
    free(s->host);
    free(s);
}

zk_store_t *zk_store_open(const zk_store_options_t *o, char cluster_id[23], char *err, size_t errlen)
{
    zk_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->controller_epoch_version = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->creates_tail = &s->creates;
    s->events_tail = &s->events;
    s->opt = *o;
    s->connect = strdup(o->connect);
    s->listener_name = strdup(o->listener_name ? o->listener_name : "PLAINTEXT");
    s->host = strdup(o->host ? o->host : "localhost");
    s->data = malloc(ZK_DATA_MAX);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->connect == NULL || s->listener_name == NULL || s->host == NULL || s->data == NULL || s->efd < 0) {
        snprintf(err, errlen, "cannot set up the ZooKeeper client: %s", strerror(errno ? errno : ENOMEM));
        store_free(s);
        return NULL;
    }
    if (s->opt.session_timeout_ms <= 0)
        s->opt.session_timeout_ms = 18000;
    if (s->opt.connect_timeout_ms <= 0)
        s->opt.connect_timeout_ms = s->opt.session_timeout_ms;
    if (zk_store_split_connect(o->connect, s->hosts, sizeof(s->hosts), s->chroot, sizeof(s->chroot)) != 0) {
        snprintf(err, errlen, "zookeeper.connect '%s' is not host:port[,host:port...][/chroot]", o->connect);
        store_free(s);
        return NULL;
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    if (session_connect(s) != 0) {
        snprintf(err, errlen, "cannot connect to ZooKeeper at %s within %d ms", s->hosts,
                 s->opt.connect_timeout_ms);
        store_free(s);
        return NULL;
    }
    static const char *const tops[] = {"/brokers/ids", "/brokers/topics", "/config/topics", "/config/changes",
                                       "/admin/delete_topics", "/isr_change_notification", "/cluster"};
    char p[ZK_PATH_MAX];
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
        zpath(s, p, "%s", tops[i]);
        if (ensure_path(s, p) != 0) {
            snprintf(err, errlen, "cannot create %s in ZooKeeper", p);
            store_free(s);
            return NULL;
        }
    }
    zpath(s, p, "/cluster/id");
    for (int attempt = 0; attempt < 2; attempt++) {
        int len;
        int rc = get_data(s, p, false, 0, &len, NULL);
        if (rc == ZOK) {
            char id[64] = "";
            const char *v = zkjson_find(s->data, s->data + len, "id");
            if (v == NULL || zkjson_string(v, s->data + len, id, sizeof(id)) <= 0 || strlen(id) > 22) {
                snprintf(err, errlen, "unreadable %s: %s", p, s->data);
                store_free(s);
                return NULL;
            }
            snprintf(cluster_id, 23, "%s", id);
            return s;
        }
        if (rc != ZNONODE)
            break;
        char text[128];
        int n = snprintf(text, sizeof(text), "{\"version\":\"1\",\"id\":\"%s\"}", cluster_id);
        rc = zoo_create(s->zh, p, text, n, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc != ZOK && rc != ZNODEEXISTS)
            break;
    }
    snprintf(err, errlen, "cannot read or create %s", p);
    store_free(s);
    return NULL;
}

/* ---- worker: registration, election, snapshots, creation ---- */

static int register_broker(zk_store_t *s)
{
    buf_t b;
    buf_init(&b);
    char head[128], ep[600], path[ZK_PATH_MAX];
    int n = snprintf(head, sizeof(head), "{\"features\":{},\"listener_security_protocol_map\":{");
    buf_put(&b, head, (size_t)n);
    zkjson_put_string(&b, s->listener_name);
    PUT_LIT(&b, ":\"PLAINTEXT\"},\"endpoints\":[");
    snprintf(ep, sizeof(ep), "%s://%s:%d", s->listener_name, s->host, s->opt.port);
    zkjson_put_string(&b, ep);
    PUT_LIT(&b, "],\"jmx_port\":-1,\"host\":");
    zkjson_put_string(&b, s->host);
    n = snprintf(head, sizeof(head), ",\"port\":%d,\"timestamp\":\"%lld\",\"version\":5}", s->opt.port,
                 (long long)wall_ms());
    buf_put(&b, head, (size_t)n);
    zpath(s, path, "/brokers/ids/%d", s->opt.broker_id);
    int rc = b.oom ? ZMARSHALLINGERROR
                   : zoo_create(s->zh, path, (const char *)b.data, (int)b.len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                                NULL, 0);
    buf_free(&b);
    if (rc == ZOK) {
        LOG_INFO("zk", "registered broker %d at %s", s->opt.broker_id, path);
        s->registered = true;
        return 0;
    }
    if (rc == ZNODEEXISTS) {
        /* Usually our own previous session after a crash: it goes when that session expires. */
        LOG_WARN("zk", "%s exists (a previous session of broker %d?); retrying until it expires", path,
                 s->opt.broker_id);
    } else {
        LOG_ERROR("zk", "cannot register %s: %s", path, zerror(rc));
    }
    return -1;
}

static void elect(zk_store_t *s)
{
    char path[ZK_PATH_MAX], epath[ZK_PATH_MAX], text[128];
    zpath(s, path, "/controller");
    zpath(s, epath, "/controller_epoch");
    for (int attempt = 0; attempt < 10; attempt++) {
        int n = snprintf(text, sizeof(text), "{\"version\":1,\"brokerid\":%d,\"timestamp\":\"%lld\"}",
                         s->opt.broker_id, (long long)wall_ms());
        int rc = zoo_create(s->zh, path, text, n, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0);
        if (rc == ZOK) {
            /* Fence older controllers: bump /controller_epoch with a conditional write. */
            int64_t epoch = 0;
            for (int k = 0; k < 20; k++) {
                struct Stat st;
                int len;
                int g = get_data(s, epath, false, 0, &len, &st);
                if (g == ZNONODE) {
                    if (zoo_create(s->zh, epath, "1", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK) {
                        epoch = 1;
                        s->controller_epoch_version = 0;
                        break;
                    }
                    continue;
                }
                if (g != ZOK || zkjson_int(s->data, s->data + len, &epoch) != 0)
                    epoch = 0;
                char e[32];
                int el = snprintf(e, sizeof(e), "%lld", (long long)(epoch + 1));
                if (zoo_set(s->zh, epath, e, el, st.version) == ZOK) {
                    epoch++;
                    s->controller_epoch_version = st.version + 1;
                    break;
                }
            }
            LOG_INFO("zk", "broker %d is the controller (epoch %lld)", s->opt.broker_id, (long long)epoch);
        } else if (rc != ZNODEEXISTS) {
            LOG_ERROR("zk", "controller election: %s", zerror(rc));
            return;
        }
        /* Whoever holds it, watch it so its loss starts a new election. */
        int len;
        rc = get_data(s, path, true, W_ELECT, &len, NULL);
        if (rc == ZNONODE)
            continue;
        if (rc != ZOK)
            return;
        int64_t id = -1, epoch = 0;
        const char *v = zkjson_find(s->data, s->data + len, "brokerid");
        if (v == NULL || zkjson_int(v, s->data + len, &id) != 0)
            id = -1;
        if (get_data(s, epath, false, 0, &len, NULL) != ZOK || zkjson_int(s->data, s->data + len, &epoch) != 0)
            epoch = 0;
        s->controller_epoch = (int32_t)epoch;
        if (id == s->opt.broker_id && !s->is_controller)
            s->next_rebalance_ms = wall_ms() + FIRST_REBALANCE_MS;
        s->is_controller = id == s->opt.broker_id;
        if (!s->is_controller)
            s->controller_epoch_version = -1;
        zk_event_t *ev = calloc(1, sizeof(*ev));
        if (ev) {
            ev->type = ZK_EV_CONTROLLER;
            ev->controller_id = (int32_t)id;
            ev->controller_epoch = (int32_t)epoch;
            post_event(s, ev);
        }
        return;
    }
}

static void refresh_brokers(zk_store_t *s)
{
    char path[ZK_PATH_MAX];
    zpath(s, path, "/brokers/ids");
    struct String_vector kids = {0, NULL};
    int rc = zoo_wget_children(s->zh, path, work_watcher, (void *)(uintptr_t)W_BROKERS, &kids);
    if (rc != ZOK) {
        LOG_ERROR("zk", "cannot list %s: %s", path, zerror(rc));
        return;
    }
    zk_event_t *ev = calloc(1, sizeof(*ev));
    if (ev)
        ev->brokers = calloc((size_t)(kids.count > 0 ? kids.count : 1), sizeof(zk_broker_t));
    for (int i = 0; ev && ev->brokers && i < kids.count; i++) {
        char bp[ZK_PATH_MAX], *end;
        long id = strtol(kids.data[i], &end, 10);
        if (*end != '\0')
            continue;
        zpath(s, bp, "/brokers/ids/%s", kids.data[i]);
        int len;
        if (get_data(s, bp, false, 0, &len, NULL) != ZOK)
            continue;
        zk_broker_t *b = &ev->brokers[ev->nbrokers];
        int64_t port = -1;
        const char *v = zkjson_find(s->data, s->data + len, "host");
        const char *pv = zkjson_find(s->data, s->data + len, "port");
        if (v == NULL || zkjson_string(v, s->data + len, b->host, sizeof(b->host)) < 0 || pv == NULL ||
            zkjson_int(pv, s->data + len, &port) != 0) {
            LOG_WARN("zk", "ignoring unreadable registration %s", bp);
            continue;
        }
        b->id = (int32_t)id;
        b->port = (int32_t)port;
        ev->nbrokers++;
    }
    deallocate_String_vector(&kids);
    if (ev == NULL || ev->brokers == NULL) {
        zk_event_free(ev);
        return;
    }
    ev->type = ZK_EV_BROKERS;
    post_event(s, ev);
}

typedef struct assign_ctx {
    zk_topic_t *t;
    int bad;
} assign_ctx_t;

static int assign_cb(void *arg, const char *key, const char *v, const char *end)
{
    assign_ctx_t *a = arg;
    char *e;
    long p = strtol(key, &e, 10);
    if (*e != '\0' || p < 0 || p >= a->t->npartitions) {
        a->bad = 1;
        return 1;
    }
    zk_partition_t *zp = &a->t->partitions[p];
    int n = zkjson_int_array(v, end, zp->replicas, ZK_MAX_REPLICAS);
    if (n < 0 || n > ZK_MAX_REPLICAS) {
        a->bad = 1;
        return 1;
    }
    zp->nreplicas = n;
    return 0;
}

/* Reads one topic's znodes into t; 0 or -1 (skipped). */
static int read_topic(zk_store_t *s, const char *name, zk_topic_t *t)
{
    char path[ZK_PATH_MAX];
    int len;
    snprintf(t->name, sizeof(t->name), "%s", name);
    zpath(s, path, "/brokers/topics/%s", name);
    if (get_data(s, path, true, W_TOPICS, &len, NULL) != ZOK)
        return -1;
    const char *end = s->data + len;
    const char *parts = zkjson_find(s->data, end, "partitions");
    const char *idv = zkjson_find(s->data, end, "topic_id");
    if (idv && zkjson_string(idv, end, t->id, sizeof(t->id)) < 0)
        t->id[0] = '\0';
    int np = parts ? zkjson_object_foreach(parts, end, NULL, NULL) : -1;
    if (np <= 0)
        return -1;
    t->npartitions = np;
    t->partitions = calloc((size_t)np, sizeof(zk_partition_t));
    if (t->partitions == NULL)
        return -1;
    assign_ctx_t a = {t, 0};
    zkjson_object_foreach(parts, end, assign_cb, &a);
    if (a.bad)
        return -1;
    for (int32_t p = 0; p < np; p++) {
        zk_partition_t *zp = &t->partitions[p];
        zp->leader = -1;
        zpath(s, path, "/brokers/topics/%s/partitions/%d/state", name, p);
        if (get_data(s, path, true, W_TOPICS, &len, NULL) != ZOK) {
            /* Not there yet (the controller writes it): be told when it is created. */
            zoo_wexists(s->zh, path, work_watcher, (void *)(uintptr_t)W_TOPICS, NULL);
            continue;
        }
        end = s->data + len;
        int64_t leader, epoch, cepoch = 0;
        const char *lv = zkjson_find(s->data, end, "leader");
        const char *ev = zkjson_find(s->data, end, "leader_epoch");
        const char *cv = zkjson_find(s->data, end, "controller_epoch");
        const char *iv = zkjson_find(s->data, end, "isr");
        if (lv == NULL || zkjson_int(lv, end, &leader) != 0 || ev == NULL || zkjson_int(ev, end, &epoch) != 0)
            continue;
        if (cv)
            zkjson_int(cv, end, &cepoch);
        int n = iv ? zkjson_int_array(iv, end, zp->isr, ZK_MAX_REPLICAS) : 0;
        zp->nisr = n < 0 ? 0 : n > ZK_MAX_REPLICAS ? ZK_MAX_REPLICAS : n;
        zp->leader = (int32_t)leader;
        zp->leader_epoch = (int32_t)epoch;
        zp->controller_epoch = (int32_t)cepoch;
    }
    zpath(s, path, "/config/topics/%s", name);
    if (get_data(s, path, false, 0, &len, NULL) == ZOK) {
        const char *cfg = zkjson_find(s->data, s->data + len, "config");
        const char *cend = cfg ? zkjson_skip(cfg, s->data + len) : NULL;
        if (cend)
            t->config_json = strndup(cfg, (size_t)(cend - cfg));
    }
    return 0;
}

static void refresh_topics(zk_store_t *s)
{
    char path[ZK_PATH_MAX];
    /* Config change notifications (Kafka's /config/changes) also re-read every topic. */
    zpath(s, path, "/config/changes");
    struct String_vector changes = {0, NULL};
    if (zoo_wget_children(s->zh, path, work_watcher, (void *)(uintptr_t)W_TOPICS, &changes) == ZOK)
        deallocate_String_vector(&changes);
    zpath(s, path, "/brokers/topics");
    struct String_vector kids = {0, NULL};
    int rc = zoo_wget_children(s->zh, path, work_watcher, (void *)(uintptr_t)W_TOPICS, &kids);
    if (rc != ZOK) {
        LOG_ERROR("zk", "cannot list %s: %s", path, zerror(rc));
        return;
    }
    zk_event_t *ev = calloc(1, sizeof(*ev));
    if (ev)
        ev->topics = calloc((size_t)(kids.count > 0 ? kids.count : 1), sizeof(zk_topic_t));
    for (int i = 0; ev && ev->topics && i < kids.count; i++) {
        zk_topic_t *t = &ev->topics[ev->ntopics];
        if (read_topic(s, kids.data[i], t) == 0) {
            ev->ntopics++;
        } else {
            free(t->partitions);
            free(t->config_json);
            memset(t, 0, sizeof(*t));
        }
    }
    deallocate_String_vector(&kids);
    if (ev == NULL || ev->topics == NULL) {
        zk_event_free(ev);
        return;
    }
    ev->type = ZK_EV_TOPICS;
    post_event(s, ev);
}

static void put_int_array(buf_t *b, const int32_t *v, int n)
{
    PUT_LIT(b, "[");
    for (int i = 0; i < n; i++) {
        char x[16];
        int l = snprintf(x, sizeof(x), i ? ",%d" : "%d", v[i]);
        buf_put(b, x, (size_t)l);
    }
    PUT_LIT(b, "]");
}

static int16_t do_create(zk_store_t *s, create_cmd_t *c, char *msg, size_t msglen)
{
    char path[ZK_PATH_MAX];
    /* Kafka writes the config first, then the assignment that makes the topic exist. */
    buf_t cfg;
    buf_init(&cfg);
    PUT_LIT(&cfg, "{\"version\":1,\"config\":");
    buf_put(&cfg, c->config_json ? c->config_json : "{}", strlen(c->config_json ? c->config_json : "{}"));
    PUT_LIT(&cfg, "}");
    zpath(s, path, "/config/topics/%s", c->name);
    int rc = zoo_create(s->zh, path, (const char *)cfg.data, (int)cfg.len, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc == ZNODEEXISTS)
        rc = zoo_set(s->zh, path, (const char *)cfg.data, (int)cfg.len, -1);
    buf_free(&cfg);
    if (rc != ZOK) {
        snprintf(msg, msglen, "cannot write %s: %s", path, zerror(rc));
        return KERR_UNKNOWN_SERVER_ERROR;
    }

    /* The partition states carry the current controller epoch (another broker may have bumped it). */
    int len;
    int64_t epoch;
    zpath(s, path, "/controller_epoch");
    if (get_data(s, path, false, 0, &len, NULL) == ZOK && zkjson_int(s->data, s->data + len, &epoch) == 0)
        s->controller_epoch = (int32_t)epoch;

    int nops = 2 + 2 * c->npartitions;
    zoo_op_t *ops = calloc((size_t)nops, sizeof(*ops));
    zoo_op_result_t *res = calloc((size_t)nops, sizeof(*res));
    char (*paths)[ZK_PATH_MAX] = calloc((size_t)nops, ZK_PATH_MAX);
    buf_t *vals = calloc((size_t)nops, sizeof(buf_t));
    int16_t err = KERR_NONE;
    if (ops == NULL || res == NULL || paths == NULL || vals == NULL) {
        snprintf(msg, msglen, "out of memory");
        err = KERR_UNKNOWN_SERVER_ERROR;
        goto out;
    }
    for (int i = 0; i < nops; i++)
        buf_init(&vals[i]);
    buf_t *v = &vals[0];
    PUT_LIT(v, "{\"version\":3,\"partitions\":{");
    for (int32_t p = 0; p < c->npartitions; p++) {
        char k[32];
        int l = snprintf(k, sizeof(k), p ? ",\"%d\":" : "\"%d\":", p);
        buf_put(v, k, (size_t)l);
        put_int_array(v, c->assignment + (size_t)p * (size_t)c->rf, c->rf);
    }
    PUT_LIT(v, "},\"adding_replicas\":{},\"removing_replicas\":{},\"topic_id\":");
    zkjson_put_string(v, c->id);
    PUT_LIT(v, "}");
    zpath(s, paths[0], "/brokers/topics/%s", c->name);
    zpath(s, paths[1], "/brokers/topics/%s/partitions", c->name);
    for (int32_t p = 0; p < c->npartitions; p++) {
        const int32_t *r = c->assignment + (size_t)p * (size_t)c->rf;
        zpath(s, paths[2 + 2 * p], "/brokers/topics/%s/partitions/%d", c->name, p);
        zpath(s, paths[3 + 2 * p], "/brokers/topics/%s/partitions/%d/state", c->name, p);
        buf_t *sv = &vals[3 + 2 * p];
        char head[96];
        int l = snprintf(head, sizeof(head), "{\"controller_epoch\":%d,\"leader\":%d,\"version\":1,"
                                             "\"leader_epoch\":0,\"isr\":", s->controller_epoch, r[0]);
        buf_put(sv, head, (size_t)l);
        put_int_array(sv, r, c->rf);
        PUT_LIT(sv, "}");
    }
    for (int i = 0; i < nops; i++) {
        if (vals[i].oom) {
            snprintf(msg, msglen, "out of memory");
            err = KERR_UNKNOWN_SERVER_ERROR;
            goto out;
        }
        zoo_create_op_init(&ops[i], paths[i], vals[i].len ? (const char *)vals[i].data : NULL,
                           vals[i].len ? (int)vals[i].len : -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    }
    rc = zoo_multi(s->zh, nops, ops, res);
    if (rc == ZNODEEXISTS) {
        snprintf(msg, msglen, "Topic '%s' already exists.", c->name);
        err = KERR_TOPIC_ALREADY_EXISTS;
    } else if (rc != ZOK) {
        snprintf(msg, msglen, "cannot create topic %s in ZooKeeper: %s", c->name, zerror(rc));
        err = KERR_UNKNOWN_SERVER_ERROR;
    } else {
        LOG_INFO("zk", "created topic %s (%d partitions, replication factor %d)", c->name, c->npartitions,
                 c->rf);
    }
out:
    for (int i = 0; vals && i < nops; i++)
        buf_free(&vals[i]);
    free(vals);
    free(paths);
    free(res);
    free(ops);
    return err;
}

/* Deletes a znode and everything under it. */
static int delete_tree(zk_store_t *s, const char *path, int depth)
{
    struct String_vector kids = {0, NULL};
    int rc = zoo_get_children(s->zh, path, 0, &kids);
    if (rc == ZNONODE)
        return ZOK;
    if (rc != ZOK || depth > 16)
        return rc != ZOK ? rc : ZBADARGUMENTS;
    for (int i = 0; i < kids.count && rc == ZOK; i++) {
        char child[ZK_PATH_MAX];
        snprintf(child, sizeof(child), "%s/%s", path, kids.data[i]);
        rc = delete_tree(s, child, depth + 1);
    }
    deallocate_String_vector(&kids);
    if (rc == ZOK) {
        rc = zoo_delete(s->zh, path, -1);
        if (rc == ZNONODE)
            rc = ZOK;
    }
    return rc;
}

/* The controller's part of topic deletion (Kafka's): every /admin/delete_topics/<t> request
 * removes the topic's znodes, then the request itself. Every broker sees the topic leave
 * /brokers/topics and deletes its data. Others only keep the watch armed. */
static void process_deletes(zk_store_t *s)
{
    char path[ZK_PATH_MAX];
    zpath(s, path, "/admin/delete_topics");
    struct String_vector kids = {0, NULL};
    int rc = zoo_wget_children(s->zh, path, work_watcher, (void *)(uintptr_t)W_DELETES, &kids);
    if (rc != ZOK) {
        LOG_ERROR("zk", "cannot list %s: %s", path, zerror(rc));
        return;
    }
    for (int i = 0; s->is_controller && i < kids.count; i++) {
        char p[ZK_PATH_MAX];
        const char *t = kids.data[i];
        zpath(s, p, "/brokers/topics/%s", t);
        rc = delete_tree(s, p, 0);
        if (rc == ZOK) {
            zpath(s, p, "/config/topics/%s", t);
            rc = delete_tree(s, p, 0);
        }
        if (rc == ZOK) {
            zpath(s, p, "/admin/delete_topics/%s", t);
            rc = zoo_delete(s->zh, p, -1);
        }
        if (rc == ZOK || rc == ZNONODE)
            LOG_INFO("zk", "controller: deleted topic %s", t);
        else
            LOG_ERROR("zk", "controller: deleting topic %s: %s", t, zerror(rc));
    }
    deallocate_String_vector(&kids);
}

static bool id_in(int32_t id, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

bool zk_store_elect_leader(int32_t leader, const int32_t *isr, int nisr, const int32_t *live, int nlive,
                           const int32_t *replicas, int nreplicas, bool unclean, int32_t *next, int32_t *new_isr,
                           int *new_nisr)
{
    *next = leader;
    int n = 0;
    for (int i = 0; i < nisr; i++)
        if (id_in(isr[i], live, nlive))
            new_isr[n++] = isr[i];
    *new_nisr = n;
    if (leader >= 0 && id_in(leader, live, nlive))
        return n != nisr; /* the leader stays; dead members leave the ISR */
    int32_t pick = n > 0 ? new_isr[0] : -1;
    if (pick < 0 && unclean) {
        /* Unclean election: the first live replica, whatever it holds, alone in the ISR. */
        for (int i = 0; i < nreplicas && pick < 0; i++)
            if (id_in(replicas[i], live, nlive))
                pick = replicas[i];
        if (pick >= 0) {
            new_isr[0] = pick;
            *new_nisr = 1;
        }
    }
    if (pick < 0) {
        /* No live ISR member: no leader, and the ISR keeps who may lead again. */
        memcpy(new_isr, isr, sizeof(int32_t) * (size_t)nisr);
        *new_nisr = nisr;
        if (leader < 0)
            return false;
    }
    *next = pick;
    return true;
}

zk_elect_result_t zk_store_elect_preferred(const int32_t *replicas, int nreplicas, int32_t leader,
                                           const int32_t *isr, int nisr, const int32_t *live, int nlive)
{
    if (nreplicas <= 0)
        return ZK_ELECT_NOT_AVAILABLE;
    if (leader == replicas[0])
        return ZK_ELECT_NOT_NEEDED;
    if (!id_in(replicas[0], live, nlive) || !id_in(replicas[0], isr, nisr))
        return ZK_ELECT_NOT_AVAILABLE;
    return ZK_ELECTED;
}

int32_t zk_store_shutdown_leader(const int32_t *replicas, int nreplicas, const int32_t *isr, int nisr,
                                 const int32_t *live, int nlive, int32_t leaving)
{
    for (int i = 0; i < nreplicas; i++)
        if (replicas[i] != leaving && id_in(replicas[i], live, nlive) && id_in(replicas[i], isr, nisr))
            return replicas[i];
    return -1;
}

int zk_store_rebalance_pick(const zk_partition_t *parts, int n, const int32_t *live, int nlive, int pct,
                            bool *elect)
{
    int marked = 0;
    for (int i = 0; i < n; i++)
        elect[i] = false;
    /* Each preferred broker once: at the first partition it prefers. */
    for (int i = 0; i < n; i++) {
        if (parts[i].nreplicas <= 0)
            continue;
        int32_t b = parts[i].replicas[0];
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = parts[j].nreplicas > 0 && parts[j].replicas[0] == b;
        if (seen)
            continue;
        int total = 0, off = 0;
        for (int j = i; j < n; j++) {
            if (parts[j].nreplicas <= 0 || parts[j].replicas[0] != b)
                continue;
            total++;
            if (parts[j].leader != b)
                off++;
        }
        /* Kafka: imbalance ratio off / total above pct / 100. */
        if ((int64_t)off * 100 <= (int64_t)pct * total)
            continue;
        for (int j = i; j < n; j++) {
            const zk_partition_t *zp = &parts[j];
            if (zp->nreplicas > 0 && zp->replicas[0] == b &&
                zk_store_elect_preferred(zp->replicas, zp->nreplicas, zp->leader, zp->isr, zp->nisr, live, nlive) ==
                    ZK_ELECTED) {
                elect[j] = true;
                marked++;
            }
        }
    }
    return marked;
}

/* ---- worker: partition states ---- */

/* One partition state znode as read, with its znode version for the conditional write back. */
typedef struct pstate {
    int32_t leader;
    int64_t epoch;
    int32_t isr[ZK_MAX_REPLICAS];
    int nisr;
    int version;
} pstate_t;

/* Every registered broker id; *live is malloc'd (free it). ZOK or the ZooKeeper error. */
static int read_live(zk_store_t *s, int32_t **live, int *nlive)
{
    char path[ZK_PATH_MAX];
    struct String_vector ids = {0, NULL};
    *live = NULL;
    *nlive = 0;
    zpath(s, path, "/brokers/ids");
    int rc = zoo_get_children(s->zh, path, 0, &ids);
    if (rc != ZOK)
        return rc;
    *live = calloc((size_t)(ids.count > 0 ? ids.count : 1), sizeof(int32_t));
    for (int i = 0; *live && i < ids.count; i++) {
        char *e;
        long id = strtol(ids.data[i], &e, 10);
        if (*e == '\0')
            (*live)[(*nlive)++] = (int32_t)id;
    }
    deallocate_String_vector(&ids);
    return *live ? ZOK : ZSYSTEMERROR;
}

/* /controller_epoch's value and znode version (the fence of writes made outside the controller). */
static int read_controller_epoch(zk_store_t *s, int32_t *epoch, int *version)
{
    char path[ZK_PATH_MAX];
    struct Stat st;
    int len;
    int64_t e;
    zpath(s, path, "/controller_epoch");
    int rc = get_data(s, path, false, 0, &len, &st);
    if (rc != ZOK)
        return rc;
    if (zkjson_int(s->data, s->data + len, &e) != 0)
        return ZBADARGUMENTS;
    *epoch = (int32_t)e;
    *version = st.version;
    return ZOK;
}

static int read_state(zk_store_t *s, const char *topic, int32_t partition, pstate_t *ps)
{
    char path[ZK_PATH_MAX];
    struct Stat st;
    int len;
    zpath(s, path, "/brokers/topics/%s/partitions/%d/state", topic, partition);
    int rc = get_data(s, path, false, 0, &len, &st);
    if (rc != ZOK)
        return rc;
    const char *end = s->data + len;
    int64_t leader;
    const char *lv = zkjson_find(s->data, end, "leader");
    const char *ev = zkjson_find(s->data, end, "leader_epoch");
    const char *iv = zkjson_find(s->data, end, "isr");
    int nisr = iv ? zkjson_int_array(iv, end, ps->isr, ZK_MAX_REPLICAS) : -1;
    if (lv == NULL || ev == NULL || zkjson_int(lv, end, &leader) != 0 || zkjson_int(ev, end, &ps->epoch) != 0 ||
        nisr < 0 || nisr > ZK_MAX_REPLICAS)
        return ZBADARGUMENTS;
    ps->leader = (int32_t)leader;
    ps->nisr = nisr;
    ps->version = st.version;
    return ZOK;
}

/* Writes a partition state conditional on the znode's version; with fence >= 0 also on
 * /controller_epoch still being at that znode version (one multi-op), so a write made outside the
 * controller never crosses a controller change. ZOK, ZBADVERSION when either moved, or the error. */
static int write_state(zk_store_t *s, const char *topic, int32_t partition, int32_t cepoch, int32_t leader,
                       int64_t epoch, const int32_t *isr, int nisr, int version, int fence)
{
    char path[ZK_PATH_MAX], epath[ZK_PATH_MAX], head[160];
    zpath(s, path, "/brokers/topics/%s/partitions/%d/state", topic, partition);
    buf_t b;
    buf_init(&b);
    int n = snprintf(head, sizeof(head), "{\"controller_epoch\":%d,\"leader\":%d,\"version\":1,\"leader_epoch\":%lld,"
                                         "\"isr\":", cepoch, leader, (long long)epoch);
    buf_put(&b, head, (size_t)n);
    put_int_array(&b, isr, nisr);
    PUT_LIT(&b, "}");
    int rc;
    if (b.oom) {
        rc = ZMARSHALLINGERROR;
    } else if (fence < 0) {
        rc = zoo_set(s->zh, path, (const char *)b.data, (int)b.len, version);
    } else {
        zoo_op_t ops[2];
        zoo_op_result_t res[2];
        struct Stat st;
        zpath(s, epath, "/controller_epoch");
        zoo_check_op_init(&ops[0], epath, fence);
        zoo_set_op_init(&ops[1], path, (const char *)b.data, (int)b.len, version, &st);
        rc = zoo_multi(s->zh, 2, ops, res);
    }
    buf_free(&b);
    return rc;
}

/* A topic's unclean.leader.election.enable: its override in /config/topics/<t>, else the broker's. */
static bool topic_unclean(zk_store_t *s, const char *topic)
{
    char path[ZK_PATH_MAX], v[16];
    int len;
    zpath(s, path, "/config/topics/%s", topic);
    if (get_data(s, path, false, 0, &len, NULL) != ZOK)
        return s->opt.unclean;
    const char *end = s->data + len;
    const char *cfg = zkjson_find(s->data, end, "config");
    const char *u = cfg ? zkjson_find(cfg, end, "unclean.leader.election.enable") : NULL;
    if (u == NULL || zkjson_string(u, end, v, sizeof(v)) < 0)
        return s->opt.unclean;
    return strcasecmp(v, "true") == 0;
}

/* One partition: a leader that is not live is replaced by the first live ISR member (the ISR
 * losing its dead members), or by none (-1, the ISR kept) when no ISR member is live; a
 * partition without a leader gets the first live ISR member back. When no ISR member is live and
 * unclean.leader.election.enable holds for the topic, the first live replica leads alone (unclean
 * election). Each change of leader bumps the leader epoch and is a conditional write on the state
 * znode's version. */
static void reconcile_partition(zk_store_t *s, const char *topic, int32_t partition, const zk_partition_t *assigned,
                                const int32_t *live, int nlive)
{
    pstate_t ps;
    if (read_state(s, topic, partition, &ps) != ZOK)
        return;
    bool unclean = false;
    bool leader_live = ps.leader >= 0 && id_in(ps.leader, live, nlive);
    bool isr_live = false;
    for (int i = 0; i < ps.nisr; i++)
        isr_live = isr_live || id_in(ps.isr[i], live, nlive);
    if (!leader_live && !isr_live) {
        for (int i = 0; i < assigned->nreplicas && !unclean; i++)
            unclean = id_in(assigned->replicas[i], live, nlive);
        unclean = unclean && topic_unclean(s, topic);
    }
    int32_t next, newisr[ZK_MAX_REPLICAS];
    int nnew;
    if (!zk_store_elect_leader(ps.leader, ps.isr, ps.nisr, live, nlive, assigned->replicas, assigned->nreplicas,
                               unclean, &next, newisr, &nnew))
        return;
    /* A new leader gets a new epoch; an ISR that only lost dead members keeps it (the leader and its
     * live followers carry on undisturbed). */
    int64_t new_epoch = next != ps.leader ? ps.epoch + 1 : ps.epoch;
    /* Fenced by /controller_epoch as this controller set it: a controller that lost its place
     * (a newer one bumped the epoch) writes nothing. */
    int rc = write_state(s, topic, partition, s->controller_epoch, next, new_epoch, newisr, nnew, ps.version,
                         s->controller_epoch_version);
    if (rc == ZOK && unclean && next >= 0)
        LOG_WARN("zk", "controller: %s-%d unclean leader election: %d leads with ISR [%d] (leader epoch %lld); "
                 "records it lacks are lost", topic, partition, next, next, (long long)new_epoch);
    else if (rc == ZOK)
        LOG_INFO("zk", "controller: %s-%d leader %d -> %d, %d in ISR (leader epoch %lld)", topic, partition,
                 ps.leader, next, nnew, (long long)new_epoch);
    else
        LOG_WARN("zk", "controller: cannot move the leader of %s-%d: %s", topic, partition, zerror(rc));
}

/* A topic written by someone else (another tool, or a broker that died half-way) may lack its
 * topic id or partition states: the controller completes it, as Kafka's does. Then every
 * partition goes through reconcile_partition. */
static void reconcile_topic(zk_store_t *s, const char *name, const int32_t *live, int nlive)
{
    char path[ZK_PATH_MAX], p[ZK_PATH_MAX];
    struct Stat st;
    int len;
    zpath(s, path, "/brokers/topics/%s", name);
    if (get_data(s, path, false, 0, &len, &st) != ZOK)
        return;
    zk_topic_t t;
    memset(&t, 0, sizeof(t));
    const char *end = s->data + len;
    const char *parts = zkjson_find(s->data, end, "partitions");
    const char *pend = parts ? zkjson_skip(parts, end) : NULL;
    int np = parts ? zkjson_object_foreach(parts, end, NULL, NULL) : -1;
    if (pend == NULL || np <= 0 || (t.partitions = calloc((size_t)np, sizeof(zk_partition_t))) == NULL)
        return;
    t.npartitions = np;
    assign_ctx_t a = {&t, 0};
    zkjson_object_foreach(parts, end, assign_cb, &a);
    if (!a.bad && zkjson_find(s->data, end, "topic_id") == NULL) {
        kuuid_t id;
        char ids[23];
        topics_uuid_random(&id);
        topics_uuid_to_string(&id, ids);
        buf_t b;
        buf_init(&b);
        PUT_LIT(&b, "{\"version\":3,\"partitions\":");
        buf_put(&b, parts, (size_t)(pend - parts));
        PUT_LIT(&b, ",\"adding_replicas\":{},\"removing_replicas\":{},\"topic_id\":");
        zkjson_put_string(&b, ids);
        PUT_LIT(&b, "}");
        int rc = b.oom ? ZMARSHALLINGERROR : zoo_set(s->zh, path, (const char *)b.data, (int)b.len, st.version);
        buf_free(&b);
        if (rc == ZOK)
            LOG_INFO("zk", "controller: topic %s gets topic id %s", name, ids);
    }
    for (int32_t i = 0; !a.bad && i < np; i++) {
        zpath(s, p, "/brokers/topics/%s/partitions/%d/state", name, i);
        int rc = zoo_exists(s->zh, p, 0, NULL);
        if (rc == ZOK) {
            reconcile_partition(s, name, i, &t.partitions[i], live, nlive);
            continue;
        }
        if (rc != ZNONODE)
            continue;
        /* A new partition: the live replicas are the ISR, the first of them leads. */
        const zk_partition_t *zp = &t.partitions[i];
        int32_t isr[ZK_MAX_REPLICAS];
        int nisr = 0;
        for (int r = 0; r < zp->nreplicas; r++)
            if (id_in(zp->replicas[r], live, nlive))
                isr[nisr++] = zp->replicas[r];
        if (nisr == 0)
            continue;
        zpath(s, p, "/brokers/topics/%s/partitions/%d", name, i);
        if (ensure_path(s, p) != 0)
            continue;
        buf_t b;
        buf_init(&b);
        char head[128];
        int n = snprintf(head, sizeof(head),
                         "{\"controller_epoch\":%d,\"leader\":%d,\"version\":1,\"leader_epoch\":0,\"isr\":",
                         s->controller_epoch, isr[0]);
        buf_put(&b, head, (size_t)n);
        put_int_array(&b, isr, nisr);
        PUT_LIT(&b, "}");
        zpath(s, p, "/brokers/topics/%s/partitions/%d/state", name, i);
        rc = b.oom ? ZMARSHALLINGERROR
                   : zoo_create(s->zh, p, (const char *)b.data, (int)b.len, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        buf_free(&b);
        if (rc == ZOK)
            LOG_INFO("zk", "controller: %s-%d starts with leader %d", name, i, isr[0]);
    }
    free(t.partitions);
}

/* The controller's reaction to brokers leaving and returning, over every partition. */
static void reconcile(zk_store_t *s)
{
    if (!s->is_controller)
        return;
    char path[ZK_PATH_MAX];
    struct String_vector topics = {0, NULL};
    int32_t *live;
    int nlive;
    if (read_live(s, &live, &nlive) != ZOK)
        return;
    zpath(s, path, "/brokers/topics");
    if (zoo_get_children(s->zh, path, 0, &topics) != ZOK) {
        free(live);
        return;
    }
    for (int t = 0; t < topics.count; t++)
        reconcile_topic(s, topics.data[t], live, nlive);
    deallocate_String_vector(&topics);
    free(live);
}

/* ---- worker: elections, controlled shutdown, added partitions ---- */

static void topic_free(zk_topic_t *t)
{
    free(t->partitions);
    free(t->config_json);
    memset(t, 0, sizeof(*t));
}

/* A topic's replica assignment (/brokers/topics/<t>, no watch) into t: name, id, npartitions and
 * each partition's replicas (leader -1, no ISR). 0, or -1 when missing or unreadable. */
static int read_assignment(zk_store_t *s, const char *name, zk_topic_t *t)
{
    char path[ZK_PATH_MAX];
    int len;
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    zpath(s, path, "/brokers/topics/%s", name);
    if (get_data(s, path, false, 0, &len, NULL) != ZOK)
        return -1;
    const char *end = s->data + len;
    const char *parts = zkjson_find(s->data, end, "partitions");
    const char *idv = zkjson_find(s->data, end, "topic_id");
    if (idv && zkjson_string(idv, end, t->id, sizeof(t->id)) < 0)
        t->id[0] = '\0';
    int np = parts ? zkjson_object_foreach(parts, end, NULL, NULL) : -1;
    if (np <= 0 || (t->partitions = calloc((size_t)np, sizeof(zk_partition_t))) == NULL)
        return -1;
    t->npartitions = np;
    assign_ctx_t a = {t, 0};
    zkjson_object_foreach(parts, end, assign_cb, &a);
    for (int32_t p = 0; p < np; p++)
        t->partitions[p].leader = -1;
    if (a.bad) {
        topic_free(t);
        return -1;
    }
    return 0;
}

/* One election by this worker (ElectLeaders, /admin/preferred_replica_election or the controller's
 * rebalance): reads the state, decides, and writes it fenced by *cepoch / *fence (both refreshed
 * when the controller moved meanwhile). *leader receives the leader afterwards. */
static zk_elect_result_t elect_partition(zk_store_t *s, const char *topic, int32_t partition,
                                         const zk_partition_t *assigned, zk_election_type_t type, const int32_t *live,
                                         int nlive, int32_t *cepoch, int *fence, int32_t *leader)
{
    for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        pstate_t ps;
        int rc = read_state(s, topic, partition, &ps);
        if (rc == ZNONODE)
            return ZK_ELECT_UNKNOWN; /* no state yet: the partition is being created */
        if (rc != ZOK)
            return ZK_ELECT_FAILED;
        *leader = ps.leader;
        int32_t next, isr[ZK_MAX_REPLICAS];
        int nisr;
        if (type == ZK_ELECT_PREFERRED) {
            zk_elect_result_t r = zk_store_elect_preferred(assigned->replicas, assigned->nreplicas, ps.leader, ps.isr,
                                                           ps.nisr, live, nlive);
            if (r != ZK_ELECTED)
                return r;
            next = assigned->replicas[0];
            memcpy(isr, ps.isr, sizeof(int32_t) * (size_t)ps.nisr);
            nisr = ps.nisr;
        } else {
            if (ps.leader >= 0 && id_in(ps.leader, live, nlive))
                return ZK_ELECT_NOT_NEEDED;
            if (!zk_store_elect_leader(ps.leader, ps.isr, ps.nisr, live, nlive, assigned->replicas,
                                       assigned->nreplicas, true, &next, isr, &nisr) ||
                next < 0)
                return ZK_ELECT_NOT_AVAILABLE;
        }
        rc = write_state(s, topic, partition, *cepoch, next, ps.epoch + 1, isr, nisr, ps.version, *fence);
        if (rc == ZOK) {
            LOG_INFO("zk", "%s-%d: %s election: leader %d -> %d, %d in ISR (leader epoch %lld)", topic, partition,
                     type == ZK_ELECT_PREFERRED ? "preferred" : "unclean", ps.leader, next, nisr,
                     (long long)ps.epoch + 1);
            *leader = next;
            return ZK_ELECTED;
        }
        if (rc != ZBADVERSION) {
            LOG_WARN("zk", "%s-%d: cannot write the elected leader: %s", topic, partition, zerror(rc));
            return ZK_ELECT_FAILED;
        }
        /* The state or the controller changed under the write: read both again. */
        if (read_controller_epoch(s, cepoch, fence) != ZOK)
            return ZK_ELECT_FAILED;
    }
    return ZK_ELECT_FAILED;
}

/* Runs elections for n partitions (grouped by topic for fewer reads); returns how many moved. */
static int run_elections(zk_store_t *s, zk_election_type_t type, zk_election_t *es, int n)
{
    int32_t *live = NULL, cepoch = 0;
    int nlive = 0, fence = -1, moved = 0;
    bool ok = read_live(s, &live, &nlive) == ZOK && read_controller_epoch(s, &cepoch, &fence) == ZOK;
    zk_topic_t t;
    memset(&t, 0, sizeof(t));
    bool have = false;
    for (int i = 0; i < n; i++) {
        zk_election_t *e = &es[i];
        e->leader = -1;
        if (!ok) {
            e->result = ZK_ELECT_FAILED;
            continue;
        }
        if (!have || strcmp(t.name, e->topic) != 0) {
            topic_free(&t);
            have = true;
            if (read_assignment(s, e->topic, &t) != 0)
                snprintf(t.name, sizeof(t.name), "%s", e->topic); /* unknown: npartitions 0 */
        }
        if (e->partition < 0 || e->partition >= t.npartitions) {
            e->result = ZK_ELECT_UNKNOWN;
            continue;
        }
        e->result = elect_partition(s, e->topic, e->partition, &t.partitions[e->partition], type, live, nlive,
                                    &cepoch, &fence, &e->leader);
        if (e->result == ZK_ELECTED)
            moved++;
    }
    topic_free(&t);
    free(live);
    return moved;
}

/* Kafka's /admin/preferred_replica_election (written by its older tools): the controller runs a
 * preferred election for each listed partition, then deletes the znode. Everyone keeps a watch on
 * it. Returns how many leaders moved. */
static int process_preferred(zk_store_t *s)
{
    char path[ZK_PATH_MAX];
    zpath(s, path, "/admin/preferred_replica_election");
    int rc = zoo_wexists(s->zh, path, work_watcher, (void *)(uintptr_t)W_PREFERRED, NULL);
    int len;
    if (rc != ZOK || !s->is_controller || get_data(s, path, false, 0, &len, NULL) != ZOK)
        return 0;
    const char *end = s->data + len;
    const char *q = zkjson_find(s->data, end, "partitions");
    zk_election_t *es = NULL;
    int n = 0, cap = 0;
    while (q && q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
        q++;
    if (q && q < end && *q == '[') {
        for (q++;;) {
            while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == ','))
                q++;
            const char *next = q < end && *q != ']' ? zkjson_skip(q, end) : NULL;
            if (next == NULL)
                break;
            const char *tv = zkjson_find(q, next, "topic");
            const char *pv = zkjson_find(q, next, "partition");
            int64_t part;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                zk_election_t *grown = realloc(es, sizeof(*es) * (size_t)cap);
                if (grown == NULL)
                    break;
                es = grown;
            }
            if (tv && pv && zkjson_int(pv, next, &part) == 0 && part >= 0 && part <= INT32_MAX &&
                zkjson_string(tv, next, es[n].topic, sizeof(es[n].topic)) > 0) {
                es[n].partition = (int32_t)part;
                n++;
            }
            q = next;
        }
    }
    int moved = n > 0 ? run_elections(s, ZK_ELECT_PREFERRED, es, n) : 0;
    LOG_INFO("zk", "controller: %s asked for %d preferred election(s); %d leader(s) moved", path, n, moved);
    free(es);
    rc = zoo_delete(s->zh, path, -1);
    if (rc != ZOK && rc != ZNONODE)
        LOG_WARN("zk", "controller: cannot delete %s: %s", path, zerror(rc));
    return moved;
}

/* The controller's periodic leader rebalance (auto.leader.rebalance.enable): over every
 * partition, zk_store_rebalance_pick, then a preferred election for each picked. Returns how
 * many leaders moved. */
static int rebalance(zk_store_t *s)
{
    char path[ZK_PATH_MAX];
    int32_t *live = NULL, cepoch;
    int nlive, fence, moved = 0;
    struct String_vector names = {0, NULL};
    if (!s->is_controller || s->shutting_down || read_controller_epoch(s, &cepoch, &fence) != ZOK ||
        cepoch != s->controller_epoch || read_live(s, &live, &nlive) != ZOK)
        goto out;
    zpath(s, path, "/brokers/topics");
    if (zoo_get_children(s->zh, path, 0, &names) != ZOK)
        goto out;
    zk_topic_t *ts = calloc((size_t)(names.count > 0 ? names.count : 1), sizeof(*ts));
    int nt = 0, total = 0;
    for (int i = 0; ts && i < names.count; i++) {
        if (read_topic(s, names.data[i], &ts[nt]) == 0)
            total += ts[nt++].npartitions;
        else
            topic_free(&ts[nt]);
    }
    zk_partition_t *parts = calloc((size_t)(total > 0 ? total : 1), sizeof(*parts));
    bool *elect = calloc((size_t)(total > 0 ? total : 1), sizeof(*elect));
    if (ts && parts && elect) {
        int k = 0;
        for (int i = 0; i < nt; i++)
            for (int32_t p = 0; p < ts[i].npartitions; p++)
                parts[k++] = ts[i].partitions[p];
        if (zk_store_rebalance_pick(parts, total, live, nlive, s->opt.imbalance_pct, elect) > 0) {
            k = 0;
            for (int i = 0; i < nt; i++) {
                for (int32_t p = 0; p < ts[i].npartitions; p++, k++) {
                    int32_t leader;
                    if (elect[k] && elect_partition(s, ts[i].name, p, &parts[k], ZK_ELECT_PREFERRED, live, nlive,
                                                    &cepoch, &fence, &leader) == ZK_ELECTED)
                        moved++;
                }
            }
            LOG_INFO("zk", "controller: leader rebalance moved %d leader(s) to their preferred replica", moved);
        }
    }
    for (int i = 0; ts && i < nt; i++)
        topic_free(&ts[i]);
    free(ts);
    free(parts);
    free(elect);
out:
    if (names.data)
        deallocate_String_vector(&names);
    free(live);
    return moved;
}

/* This broker's controlled shutdown (see zk_store_controlled_shutdown). */
static void do_shutdown(zk_store_t *s, char *msg, size_t msglen)
{
    char path[ZK_PATH_MAX];
    const int32_t me = s->opt.broker_id;
    int32_t *live = NULL, cepoch;
    int nlive, fence, moved = 0, left = 0, kept = 0;
    struct String_vector names = {0, NULL};
    s->shutting_down = true;
    zpath(s, path, "/brokers/topics");
    if (read_live(s, &live, &nlive) != ZOK || read_controller_epoch(s, &cepoch, &fence) != ZOK ||
        zoo_get_children(s->zh, path, 0, &names) != ZOK) {
        snprintf(msg, msglen, "cannot read the cluster state from ZooKeeper");
        free(live);
        return;
    }
    for (int i = 0; i < names.count; i++) {
        zk_topic_t t;
        if (read_assignment(s, names.data[i], &t) != 0)
            continue;
        for (int32_t p = 0; p < t.npartitions; p++) {
            const zk_partition_t *a = &t.partitions[p];
            if (a->nreplicas < 2 || !id_in(me, a->replicas, a->nreplicas))
                continue;
            for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
                pstate_t ps;
                if (read_state(s, t.name, p, &ps) != ZOK)
                    break;
                int32_t next = ps.leader, isr[ZK_MAX_REPLICAS];
                int nisr = 0;
                for (int k = 0; k < ps.nisr; k++)
                    if (ps.isr[k] != me)
                        isr[nisr++] = ps.isr[k];
                int64_t epoch = ps.epoch;
                if (ps.leader == me) {
                    next = zk_store_shutdown_leader(a->replicas, a->nreplicas, ps.isr, ps.nisr, live, nlive, me);
                    if (next < 0) {
                        kept++; /* no other live in-sync replica: it stays here until we are gone */
                        break;
                    }
                    epoch++;
                } else if (ps.leader < 0 || nisr == ps.nisr || nisr == 0) {
                    break; /* not in the ISR, or no leader to keep serving */
                }
                int rc = write_state(s, t.name, p, cepoch, next, epoch, isr, nisr, ps.version, fence);
                if (rc == ZOK) {
                    if (ps.leader == me) {
                        moved++;
                        LOG_INFO("zk", "%s-%d: controlled shutdown: leader %d -> %d (leader epoch %lld)", t.name, p,
                                 me, next, (long long)epoch);
                    } else {
                        left++;
                    }
                    break;
                }
                if (rc != ZBADVERSION || read_controller_epoch(s, &cepoch, &fence) != ZOK) {
                    LOG_WARN("zk", "%s-%d: controlled shutdown: cannot write the state: %s", t.name, p, zerror(rc));
                    break;
                }
            }
        }
        topic_free(&t);
    }
    deallocate_String_vector(&names);
    free(live);
    snprintf(msg, msglen, "moved the leadership of %d partition(s), left the ISR of %d, %d led here without "
                          "another live in-sync replica", moved, left, kept);
    LOG_INFO("zk", "controlled shutdown of broker %d: %s", me, msg);
}

/* Adds partitions to a topic (see zk_store_add_partitions). */
static int16_t do_add_partitions(zk_store_t *s, create_cmd_t *c, char *msg, size_t msglen)
{
    char path[ZK_PATH_MAX];
    const int32_t old = c->partition, count = c->npartitions, added = count - old;
    for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        int32_t cepoch;
        int fence, len;
        struct Stat st;
        if (read_controller_epoch(s, &cepoch, &fence) != ZOK)
            cepoch = s->controller_epoch;
        zpath(s, path, "/brokers/topics/%s", c->name);
        int rc = get_data(s, path, false, 0, &len, &st);
        if (rc == ZNONODE) {
            snprintf(msg, msglen, "The topic '%s' does not exist.", c->name);
            return KERR_UNKNOWN_TOPIC_OR_PARTITION;
        }
        if (rc != ZOK) {
            snprintf(msg, msglen, "cannot read %s: %s", path, zerror(rc));
            return KERR_UNKNOWN_SERVER_ERROR;
        }
        const char *end = s->data + len;
        const char *parts = zkjson_find(s->data, end, "partitions");
        const char *pend = parts ? zkjson_skip(parts, end) : NULL;
        const char *idv = zkjson_find(s->data, end, "topic_id");
        char id[23] = "";
        int np = parts ? zkjson_object_foreach(parts, end, NULL, NULL) : -1;
        if (pend == NULL || np <= 0 || pend[-1] != '}' || (idv && zkjson_string(idv, end, id, sizeof(id)) < 0)) {
            snprintf(msg, msglen, "unreadable %s", path);
            return KERR_UNKNOWN_SERVER_ERROR;
        }
        if (np != old) {
            snprintf(msg, msglen, "Topic currently has %d partitions, %d would not be an increase of the %d "
                                  "this request was checked against.", np, count, old);
            return KERR_INVALID_PARTITIONS;
        }
        int nops = 1 + 2 * added;
        zoo_op_t *ops = calloc((size_t)nops, sizeof(*ops));
        zoo_op_result_t *res = calloc((size_t)nops, sizeof(*res));
        char(*paths)[ZK_PATH_MAX] = calloc((size_t)nops, ZK_PATH_MAX);
        buf_t *vals = calloc((size_t)nops, sizeof(buf_t));
        int16_t err = KERR_NONE;
        bool retry = false;
        if (ops == NULL || res == NULL || paths == NULL || vals == NULL) {
            snprintf(msg, msglen, "out of memory");
            err = KERR_UNKNOWN_SERVER_ERROR;
            goto next;
        }
        for (int i = 0; i < nops; i++)
            buf_init(&vals[i]);
        /* The assignment with the new partitions after the existing ones (Kafka's, version 3). */
        PUT_LIT(&vals[0], "{\"version\":3,\"partitions\":");
        buf_put(&vals[0], parts, (size_t)(pend - 1 - parts));
        for (int32_t k = 0; k < added; k++) {
            char key[32];
            int l = snprintf(key, sizeof(key), ",\"%d\":", old + k);
            buf_put(&vals[0], key, (size_t)l);
            put_int_array(&vals[0], c->assignment + (size_t)k * (size_t)c->rf, c->rf);
        }
        PUT_LIT(&vals[0], "},\"adding_replicas\":{},\"removing_replicas\":{}");
        if (id[0]) {
            PUT_LIT(&vals[0], ",\"topic_id\":");
            zkjson_put_string(&vals[0], id);
        }
        PUT_LIT(&vals[0], "}");
        zpath(s, paths[0], "/brokers/topics/%s", c->name);
        for (int32_t k = 0; k < added; k++) {
            const int32_t *r = c->assignment + (size_t)k * (size_t)c->rf;
            zpath(s, paths[1 + 2 * k], "/brokers/topics/%s/partitions/%d", c->name, old + k);
            zpath(s, paths[2 + 2 * k], "/brokers/topics/%s/partitions/%d/state", c->name, old + k);
            char head[128];
            int l = snprintf(head, sizeof(head), "{\"controller_epoch\":%d,\"leader\":%d,\"version\":1,"
                                                 "\"leader_epoch\":0,\"isr\":", cepoch, r[0]);
            buf_put(&vals[2 + 2 * k], head, (size_t)l);
            put_int_array(&vals[2 + 2 * k], r, c->rf);
            PUT_LIT(&vals[2 + 2 * k], "}");
        }
        for (int i = 0; i < nops; i++) {
            if (vals[i].oom) {
                snprintf(msg, msglen, "out of memory");
                err = KERR_UNKNOWN_SERVER_ERROR;
                goto next;
            }
        }
        zoo_set_op_init(&ops[0], paths[0], (const char *)vals[0].data, (int)vals[0].len, st.version, &st);
        for (int i = 1; i < nops; i++)
            zoo_create_op_init(&ops[i], paths[i], vals[i].len ? (const char *)vals[i].data : NULL,
                               vals[i].len ? (int)vals[i].len : -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        rc = zoo_multi(s->zh, nops, ops, res);
        if (rc == ZOK) {
            LOG_INFO("zk", "topic %s: partitions %d to %d added (replication factor %d)", c->name, old, count - 1,
                     c->rf);
        } else if (rc == ZBADVERSION) {
            retry = true; /* the assignment changed meanwhile: look again */
        } else {
            snprintf(msg, msglen, "cannot add partitions to %s in ZooKeeper: %s", c->name, zerror(rc));
            err = KERR_UNKNOWN_SERVER_ERROR;
        }
    next:
        for (int i = 0; vals && i < nops; i++)
            buf_free(&vals[i]);
        free(vals);
        free(paths);
        free(res);
        free(ops);
        if (!retry)
            return err;
    }
    snprintf(msg, msglen, "the assignment of %s kept changing", c->name);
    return KERR_UNKNOWN_SERVER_ERROR;
}

/* Writes /config/topics/<t> and announces it with a sequential /config/changes/config_change_ znode. */
static void do_config(zk_store_t *s, create_cmd_t *c)
{
    char path[ZK_PATH_MAX];
    buf_t b;
    buf_init(&b);
    PUT_LIT(&b, "{\"version\":1,\"config\":");
    buf_put(&b, c->config_json, strlen(c->config_json));
    PUT_LIT(&b, "}");
    zpath(s, path, "/config/topics/%s", c->name);
    int rc = b.oom ? ZMARSHALLINGERROR : zoo_set(s->zh, path, (const char *)b.data, (int)b.len, -1);
    buf_free(&b);
    if (rc == ZOK) {
        buf_init(&b);
        PUT_LIT(&b, "{\"version\":2,\"entity_path\":");
        char entity[300];
        snprintf(entity, sizeof(entity), "topics/%s", c->name);
        zkjson_put_string(&b, entity);
        PUT_LIT(&b, "}");
        zpath(s, path, "/config/changes/config_change_");
        rc = b.oom ? ZMARSHALLINGERROR
                   : zoo_create(s->zh, path, (const char *)b.data, (int)b.len, &ZOO_OPEN_ACL_UNSAFE,
                                ZOO_PERSISTENT_SEQUENTIAL, NULL, 0);
        buf_free(&b);
    }
    if (rc != ZOK)
        LOG_ERROR("zk", "cannot store the config of topic %s: %s", c->name, zerror(rc));
}

/* A leader's ISR change: written only while the state znode still names this broker as the
 * leader at the same leader epoch (the controller may have moved on), conditional on its version. */
static void do_isr(zk_store_t *s, create_cmd_t *c)
{
    char path[ZK_PATH_MAX];
    zpath(s, path, "/brokers/topics/%s/partitions/%d/state", c->name, c->partition);
    struct Stat st;
    int len;
    if (get_data(s, path, false, 0, &len, &st) != ZOK)
        return;
    const char *end = s->data + len;
    int64_t leader, epoch, cepoch = 0;
    const char *lv = zkjson_find(s->data, end, "leader");
    const char *ev = zkjson_find(s->data, end, "leader_epoch");
    const char *cv = zkjson_find(s->data, end, "controller_epoch");
    if (lv == NULL || ev == NULL || zkjson_int(lv, end, &leader) != 0 || zkjson_int(ev, end, &epoch) != 0)
        return;
    if (cv)
        zkjson_int(cv, end, &cepoch);
    if (leader != s->opt.broker_id || epoch != c->leader_epoch) {
        LOG_INFO("zk", "%s-%d: ISR change dropped: the state moved on (leader %lld, epoch %lld)", c->name,
                 c->partition, (long long)leader, (long long)epoch);
        return;
    }
    buf_t b;
    buf_init(&b);
    char head[160];
    int n = snprintf(head, sizeof(head), "{\"controller_epoch\":%lld,\"leader\":%lld,\"version\":1,"
                                         "\"leader_epoch\":%lld,\"isr\":", (long long)cepoch, (long long)leader,
                     (long long)epoch);
    buf_put(&b, head, (size_t)n);
    put_int_array(&b, c->assignment, c->rf);
    PUT_LIT(&b, "}");
    int rc = b.oom ? ZMARSHALLINGERROR : zoo_set(s->zh, path, (const char *)b.data, (int)b.len, st.version);
    buf_free(&b);
    if (rc != ZOK)
        LOG_WARN("zk", "%s-%d: cannot write the ISR: %s", c->name, c->partition, zerror(rc));
}

static int16_t do_delete_request(zk_store_t *s, create_cmd_t *c, char *msg, size_t msglen)
{
    char path[ZK_PATH_MAX];
    zpath(s, path, "/admin/delete_topics/%s", c->name);
    int rc = zoo_create(s->zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc == ZOK || rc == ZNODEEXISTS)
        return KERR_NONE;
    snprintf(msg, msglen, "cannot write %s: %s", path, zerror(rc));
    return KERR_UNKNOWN_SERVER_ERROR;
}

static void *worker_main(void *arg)
{
    zk_store_t *s = arg;
    int64_t next_register = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->work == 0 && s->creates == NULL) {
            /* Timed waits: the registration is retried every half second while an old session's
             * znode lingers, and the controller rebalances leaders every rebalance interval. */
            bool rebalancing = s->is_controller && s->opt.auto_rebalance && !s->shutting_down;
            int64_t now = wall_ms(), until_ms = s->registered ? -1 : now + 500;
            if (rebalancing && (until_ms < 0 || s->next_rebalance_ms < until_ms))
                until_ms = s->next_rebalance_ms;
            if (until_ms < 0) {
                pthread_cond_wait(&s->cond, &s->mu);
                continue;
            }
            if (until_ms > now) {
                struct timespec until = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000L};
                if (pthread_cond_timedwait(&s->cond, &s->mu, &until) != ETIMEDOUT)
                    continue;
            }
            if (!s->registered)
                s->work |= W_REGISTER;
            if (rebalancing && wall_ms() >= s->next_rebalance_ms)
                s->work |= W_REBALANCE;
        }
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        unsigned work = s->work;
        s->work = 0;
        create_cmd_t *creates = s->creates;
        s->creates = NULL;
        s->creates_tail = &s->creates;
        pthread_mutex_unlock(&s->mu);

        if (work & W_RESET) {
            LOG_WARN("zk", "ZooKeeper session expired; starting a new one");
            zookeeper_close(s->zh);
            s->zh = NULL;
            s->registered = false;
            while (session_connect(s) != 0) {
                pthread_mutex_lock(&s->mu);
                bool stop = s->stop;
                pthread_mutex_unlock(&s->mu);
                if (stop)
                    return NULL;
                LOG_ERROR("zk", "cannot reconnect to ZooKeeper at %s; retrying", s->hosts);
            }
            work |= W_REGISTER | W_ELECT | W_BROKERS | W_TOPICS | W_DELETES;
        }
        if ((work & W_REGISTER) && !s->registered && wall_ms() >= next_register) {
            if (register_broker(s) == 0)
                work |= W_BROKERS | W_ELECT;
            next_register = wall_ms() + 400;
        }
        if (work & W_ELECT)
            elect(s);
        if (work & (W_ELECT | W_DELETES))
            process_deletes(s);
        if ((work & (W_ELECT | W_PREFERRED)) && process_preferred(s) > 0)
            work |= W_TOPICS;
        if (work & W_BROKERS)
            refresh_brokers(s);
        if (work & (W_BROKERS | W_ELECT | W_TOPICS))
            reconcile(s);
        if (work & W_REBALANCE) {
            if (rebalance(s) > 0)
                work |= W_TOPICS;
            s->next_rebalance_ms = wall_ms() + s->opt.rebalance_interval_ms;
        }
        zk_event_t *done = NULL, **done_tail = &done;
        while (creates) {
            create_cmd_t *c = creates;
            creates = c->next;
            zk_event_t *ev = calloc(1, sizeof(*ev));
            char *msg = ev ? ev->message : (char[256]){0};
            int16_t err = KERR_NONE;
            if (c->is_config || c->is_isr) {
                if (c->is_config)
                    do_config(s, c);
                else
                    do_isr(s, c);
                free(ev);
                ev = NULL;
            } else if (c->is_elect) {
                run_elections(s, c->elect_type, c->elections, c->nelections);
                if (ev) {
                    ev->elections = c->elections;
                    ev->nelections = c->nelections;
                    c->elections = NULL;
                }
            } else if (c->is_shutdown) {
                do_shutdown(s, msg, 256);
            } else if (c->is_add_partitions) {
                err = do_add_partitions(s, c, msg, 256);
            } else {
                err = c->is_delete ? do_delete_request(s, c, msg, 256) : do_create(s, c, msg, 256);
            }
            if (ev) {
                ev->type = ZK_EV_DONE;
                ev->token = c->token;
                ev->error = err;
                *done_tail = ev;
                done_tail = &ev->next;
            }
            work |= W_TOPICS;
            free(c->assignment);
            free(c->config_json);
            free(c->elections);
            free(c);
        }
        if (work & W_TOPICS)
            refresh_topics(s);
        /* Creation results after the snapshot holding the new topics. */
        while (done) {
            zk_event_t *ev = done;
            done = ev->next;
            post_event(s, ev);
        }
    }
}

int zk_store_start(zk_store_t *s, void (*on_event)(void *arg, zk_event_t *ev), void *arg)
{
    s->on_event = on_event;
    s->arg = arg;
    s->work = W_REGISTER | W_ELECT | W_BROKERS | W_TOPICS | W_DELETES;
    int rc = pthread_create(&s->worker, NULL, worker_main, s);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    s->started = true;
    return 0;
}

int zk_store_event_fd(const zk_store_t *s) { return s->efd; }

void zk_store_poll(zk_store_t *s)
{
    uint64_t n;
    while (read(s->efd, &n, sizeof(n)) == -1 && errno == EINTR)
        ;
    pthread_mutex_lock(&s->mu);
    zk_event_t *list = s->events;
    s->events = NULL;
    s->events_tail = &s->events;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        zk_event_t *ev = list;
        list = ev->next;
        if (s->on_event)
            s->on_event(s->arg, ev);
        else
            zk_event_free(ev);
    }
}

int zk_store_create_topic(zk_store_t *s, const char *name, const char *id, int32_t npartitions, int rf,
                          const int32_t *assignment, const char *config_json, uint64_t token)
{
    create_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->npartitions = npartitions;
    c->rf = rf;
    c->token = token;
    c->assignment = malloc((size_t)npartitions * (size_t)rf * sizeof(int32_t));
    c->config_json = strdup(config_json ? config_json : "{}");
    if (c->assignment == NULL || c->config_json == NULL) {
        free(c->assignment);
        free(c->config_json);
        free(c);
        return -1;
    }
    memcpy(c->assignment, assignment, (size_t)npartitions * (size_t)rf * sizeof(int32_t));
    pthread_mutex_lock(&s->mu);
    *s->creates_tail = c;
    s->creates_tail = &c->next;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int zk_store_delete_topic(zk_store_t *s, const char *name, uint64_t token)
{
    create_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->token = token;
    c->is_delete = true;
    pthread_mutex_lock(&s->mu);
    *s->creates_tail = c;
    s->creates_tail = &c->next;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int zk_store_set_topic_config(zk_store_t *s, const char *name, const char *config_json)
{
    create_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->config_json = strdup(config_json)) == NULL) {
        free(c);
        return -1;
    }
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->is_config = true;
    pthread_mutex_lock(&s->mu);
    *s->creates_tail = c;
    s->creates_tail = &c->next;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int zk_store_set_isr(zk_store_t *s, const char *name, int32_t partition, int32_t leader_epoch, const int32_t *isr,
                     int nisr)
{
    create_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL || nisr < 0 || nisr > ZK_MAX_REPLICAS || (c->assignment = malloc(sizeof(int32_t) * ZK_MAX_REPLICAS)) == NULL) {
        free(c);
        return -1;
    }
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->is_isr = true;
    c->partition = partition;
    c->leader_epoch = leader_epoch;
    c->rf = nisr;
    memcpy(c->assignment, isr, sizeof(int32_t) * (size_t)nisr);
    pthread_mutex_lock(&s->mu);
    *s->creates_tail = c;
    s->creates_tail = &c->next;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Queues a command for the worker. */
static void queue_cmd(zk_store_t *s, create_cmd_t *c)
{
    pthread_mutex_lock(&s->mu);
    *s->creates_tail = c;
    s->creates_tail = &c->next;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

int zk_store_elect_leaders(zk_store_t *s, zk_election_type_t type, const zk_election_t *targets, int n,
                           uint64_t token)
{
    create_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL || n < 0 || (c->elections = malloc(sizeof(zk_election_t) * (size_t)(n > 0 ? n : 1))) == NULL) {
        free(c);
        return -1;
    }
    if (n > 0)
        memcpy(c->elections, targets, sizeof(zk_election_t) * (size_t)n);
    c->nelections = n;
    c->is_elect = true;
    c->elect_type = type;
    c->token = token;
    queue_cmd(s, c);
    return 0;
}

int zk_store_controlled_shutdown(zk_store_t *s, uint64_t token)
{
    create_cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->is_shutdown = true;
    c->token = token;
    queue_cmd(s, c);
    return 0;
}

int zk_store_add_partitions(zk_store_t *s, const char *name, int32_t old_count, int32_t new_count, int rf,
                            const int32_t *assignment, uint64_t token)
{
    if (old_count <= 0 || new_count <= old_count || rf <= 0 || rf > ZK_MAX_REPLICAS)
        return -1;
    create_cmd_t *c = calloc(1, sizeof(*c));
    size_t n = (size_t)(new_count - old_count) * (size_t)rf;
    if (c == NULL || (c->assignment = malloc(n * sizeof(int32_t))) == NULL) {
        free(c);
        return -1;
    }
    memcpy(c->assignment, assignment, n * sizeof(int32_t));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->is_add_partitions = true;
    c->partition = old_count;
    c->npartitions = new_count;
    c->rf = rf;
    c->token = token;
    queue_cmd(s, c);
    return 0;
}

void zk_store_close(zk_store_t *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->worker, NULL);
    }
    store_free(s);
}

void zk_event_free(zk_event_t *ev)
{
    if (ev == NULL)
        return;
    for (int i = 0; i < ev->ntopics; i++) {
        free(ev->topics[i].partitions);
        free(ev->topics[i].config_json);
    }
    free(ev->topics);
    free(ev->brokers);
    free(ev->elections);
    free(ev);
}
