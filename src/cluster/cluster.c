/* cluster.c - see cluster.h. */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>

#include "cluster/replication.h"
#include "cluster/zk_json.h"
#include "common/buf.h"
#include "common/logger.h"
#include "protocol/kerr.h"

struct cluster_op {
    cluster_op_t *next;
    uint64_t token;
    char *delete_name; /* a deletion: done once the topic has left the snapshot */
    bool recorded;     /* the deletion request is in ZooKeeper */
    void (*done)(void *arg, int16_t error, const char *message);
    void (*elect_done)(void *arg, const zk_election_t *results, int n); /* an election instead */
    void *arg;
};

struct cluster {
    int32_t broker_id;
    zk_store_t *store;
    evloop_t *loop;
    topics_t *topics;
    ev_io_t io;
    zk_event_t *brokers;  /* the latest ZK_EV_BROKERS, sorted by id */
    zk_event_t *snapshot; /* the latest ZK_EV_TOPICS */
    int *index;           /* open addressing over snapshot->topics: index + 1, 0 empty */
    size_t index_size;    /* a power of two, or 0 */
    int32_t controller_id, controller_epoch;
    cluster_op_t *ops;
    uint64_t next_token;
    const broker_config_t *config;
    replication_t *repl;
    void (*on_leadership)(void *arg, partition_t *p, bool leader);
    void *on_leadership_arg;
    int64_t internal_create_ms[2]; /* last creation attempt of __consumer_offsets, __transaction_state */
    /* Controlled shutdown (cluster_controlled_shutdown). */
    bool shutting_down;
    bool shutdown_answered; /* the worker has made one attempt */
    int shutdown_attempts;
    uint64_t shutdown_token;
    ev_timer_t shutdown_timer;
    void (*shutdown_done)(void *arg);
    void *shutdown_arg;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static const zk_topic_t *find_topic(const cluster_t *c, const char *name)
{
    if (c->index_size == 0)
        return NULL;
    size_t mask = c->index_size - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        int k = c->index[i];
        if (k == 0)
            return NULL;
        if (strcmp(c->snapshot->topics[k - 1].name, name) == 0)
            return &c->snapshot->topics[k - 1];
    }
}

static void build_index(cluster_t *c)
{
    free(c->index);
    c->index = NULL;
    c->index_size = 0;
    size_t n = 16;
    while (n < (size_t)c->snapshot->ntopics * 2)
        n *= 2;
    c->index = calloc(n, sizeof(int));
    if (c->index == NULL)
        return;
    c->index_size = n;
    for (int k = 0; k < c->snapshot->ntopics; k++) {
        size_t i = name_hash(c->snapshot->topics[k].name) & (n - 1);
        while (c->index[i])
            i = (i + 1) & (n - 1);
        c->index[i] = k + 1;
    }
}

/* ---- applying snapshots ---- */

static void put_override(void *arg, const char *key, const char *value)
{
    buf_t *b = arg;
    if (b->len > 1)
        buf_put(b, ",", 1);
    zkjson_put_string(b, key);
    buf_put(b, ":", 1);
    zkjson_put_string(b, value);
}

/* A topic's overrides as the JSON object kept in /config/topics/<t> (NUL-terminated in b). */
static void config_json(const topic_config_t *cfg, buf_t *b)
{
    buf_put(b, "{", 1);
    if (cfg)
        topic_config_foreach_override(cfg, put_override, b);
    buf_put(b, "}", 2); /* with its NUL */
}

typedef struct cfg_ctx {
    topic_config_t *cfg;
    const char *topic;
} cfg_ctx_t;

static int config_member(void *arg, const char *key, const char *v, const char *end)
{
    cfg_ctx_t *cc = arg;
    char value[4096], err[256];
    if (zkjson_string(v, end, value, sizeof(value)) < 0 || topic_config_set(cc->cfg, key, value, err, sizeof(err)) != 0)
        LOG_WARN("cluster", "topic %s: ignoring config %s from ZooKeeper", cc->topic, key);
    return 0;
}

/* The leader epochs ZooKeeper has (the controller bumps them on leader changes): requests carry
 * them, and appended batches are stamped with them. */
static void apply_epochs(cluster_t *c, const zk_topic_t *zt, topic_t *tp)
{
    for (int32_t i = 0; i < zt->npartitions && i < tp->npartitions; i++) {
        partition_t *p = tp->partitions[i];
        if (p == NULL)
            continue;
        p->leader_epoch = zt->partitions[i].leader_epoch;
        if (c->repl && c->shutting_down && zt->partitions[i].leader != c->broker_id) {
            /* Controlled shutdown: stop following (Kafka's StopReplica), so this broker does not
             * rejoin ISRs it is leaving. */
            zk_partition_t stopped = zt->partitions[i];
            stopped.leader = -1;
            replication_apply(c->repl, p, &stopped);
        } else if (c->repl) {
            replication_apply(c->repl, p, &zt->partitions[i]);
        }
    }
}

static void apply_topic(cluster_t *c, const zk_topic_t *zt)
{
    char err[256];
    topic_t *tp = topics_find(c->topics, zt->name, strlen(zt->name));
    kuuid_t id;
    bool has_id = zt->id[0] && topics_uuid_from_string(zt->id, &id) == 0;
    if (tp == NULL) {
        /* Written by another tool without a topic id: wait for the controller to give it one, so
         * every broker opens it with the same id. */
        if (!has_id)
            return;
        topic_config_t *cfg = topic_config_new();
        if (cfg == NULL)
            return;
        if (zt->config_json) {
            cfg_ctx_t cc = {cfg, zt->name};
            zkjson_object_foreach(zt->config_json, zt->config_json + strlen(zt->config_json), config_member, &cc);
        }
        if (topics_create_id(c->topics, zt->name, has_id ? &id : NULL, zt->npartitions, cfg, &tp, err,
                             sizeof(err)) != 0)
            LOG_ERROR("cluster", "cannot open topic %s from ZooKeeper: %s", zt->name, err);
        else
            apply_epochs(c, zt, tp);
        return;
    }
    /* A config change made through another broker (/config/changes): take ZooKeeper's overrides. */
    if (zt->config_json) {
        buf_t cur;
        buf_init(&cur);
        config_json(tp->config, &cur);
        if (!cur.oom && strcmp((const char *)cur.data, zt->config_json) != 0) {
            topic_config_t *cfg = topic_config_new();
            if (cfg) {
                cfg_ctx_t cc = {cfg, zt->name};
                zkjson_object_foreach(zt->config_json, zt->config_json + strlen(zt->config_json), config_member,
                                      &cc);
                if (topics_set_config(c->topics, tp, cfg, err, sizeof(err)) != 0)
                    LOG_ERROR("cluster", "topic %s: cannot apply the config from ZooKeeper: %s", zt->name, err);
                else
                    LOG_INFO("cluster", "topic %s: config updated from ZooKeeper", zt->name);
            }
        }
        buf_free(&cur);
    }
    if (has_id && memcmp(&tp->id, &id, sizeof(id)) != 0)
        LOG_WARN("cluster", "topic %s: the local log has topic id differing from ZooKeeper's %s", zt->name, zt->id);
    if (tp->npartitions < zt->npartitions &&
        topics_add_partitions(c->topics, tp, zt->npartitions, err, sizeof(err)) != 0)
        LOG_ERROR("cluster", "topic %s: cannot add partitions: %s", zt->name, err);
    apply_epochs(c, zt, tp);
}

/* Finishes deletions whose topic the current snapshot no longer has. */
static void finish_deletes(cluster_t *c)
{
    for (cluster_op_t **pp = &c->ops; *pp;) {
        cluster_op_t *op = *pp;
        if (op->delete_name == NULL || !op->recorded || find_topic(c, op->delete_name)) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        if (op->done)
            op->done(op->arg, KERR_NONE, "");
        free(op->delete_name);
        free(op);
    }
}

static int broker_cmp(const void *a, const void *b)
{
    const zk_broker_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static void shutdown_check(cluster_t *c);
static void shutdown_timer_cb(evloop_t *loop, ev_timer_t *t);

static void on_event(void *arg, zk_event_t *ev)
{
    cluster_t *c = arg;
    switch (ev->type) {
    case ZK_EV_BROKERS:
        qsort(ev->brokers, (size_t)ev->nbrokers, sizeof(zk_broker_t), broker_cmp);
        zk_event_free(c->brokers);
        c->brokers = ev;
        LOG_INFO("cluster", "%d live broker(s)", ev->nbrokers);
        if (c->repl)
            replication_set_brokers(c->repl, ev->brokers, ev->nbrokers);
        shutdown_check(c);
        return;
    case ZK_EV_CONTROLLER:
        if (ev->controller_id != c->controller_id)
            LOG_INFO("cluster", "controller is broker %d (epoch %d)", ev->controller_id, ev->controller_epoch);
        c->controller_id = ev->controller_id;
        c->controller_epoch = ev->controller_epoch;
        break;
    case ZK_EV_TOPICS: {
        zk_event_t *old = c->snapshot;
        c->snapshot = ev;
        build_index(c);
        /* Topics gone from ZooKeeper (deleted by the controller) go here too, data and all. */
        for (int i = 0; old && i < old->ntopics; i++) {
            if (find_topic(c, old->topics[i].name))
                continue;
            topic_t *tp = topics_find(c->topics, old->topics[i].name, strlen(old->topics[i].name));
            if (tp)
                topics_delete(c->topics, tp);
        }
        zk_event_free(old);
        for (int i = 0; i < ev->ntopics; i++)
            apply_topic(c, &ev->topics[i]);
        finish_deletes(c);
        shutdown_check(c);
        return;
    }
    case ZK_EV_DONE:
        if (c->shutting_down && ev->token == c->shutdown_token) {
            c->shutdown_answered = true;
            shutdown_check(c);
            break;
        }
        for (cluster_op_t **pp = &c->ops; *pp; pp = &(*pp)->next) {
            cluster_op_t *op = *pp;
            if (op->token != ev->token)
                continue;
            if (op->delete_name && ev->error == KERR_NONE) {
                op->recorded = true;
                finish_deletes(c);
                break;
            }
            *pp = op->next;
            if (op->elect_done)
                op->elect_done(op->arg, ev->elections, ev->nelections);
            else if (op->done)
                op->done(op->arg, ev->error, ev->message);
            free(op->delete_name);
            free(op);
            break;
        }
        break;
    }
    zk_event_free(ev);
}

static void io_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)loop;
    (void)revents;
    cluster_t *c = io->arg;
    zk_store_poll(c->store);
}

/* ---- lifecycle ---- */

cluster_t *cluster_open(const cluster_options_t *o, char cluster_id[23], char *err, size_t errlen)
{
    cluster_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->broker_id = o->broker_id;
    c->config = o->config;
    c->controller_id = -1;
    c->io.fd = -1;
    c->next_token = 1;
    int64_t session = broker_config_get_long(o->config, "zookeeper.session.timeout.ms");
    const char *ct = broker_config_get(o->config, "zookeeper.connection.timeout.ms", NULL);
    zk_store_options_t zo = {
        .connect = broker_config_get(o->config, "zookeeper.connect", NULL),
        .session_timeout_ms = (int)session,
        .connect_timeout_ms = ct && *ct ? atoi(ct) : (int)session,
        .broker_id = o->broker_id,
        .listener_name = o->listener_name,
        .host = o->host,
        .port = o->port,
        .auto_rebalance = broker_config_get_bool(o->config, "auto.leader.rebalance.enable"),
        .rebalance_interval_ms = broker_config_get_long(o->config, "leader.imbalance.check.interval.seconds") * 1000,
        .imbalance_pct = (int)broker_config_get_long(o->config, "leader.imbalance.per.broker.percentage"),
        .unclean = broker_config_get_bool(o->config, "unclean.leader.election.enable"),
    };
    c->store = zk_store_open(&zo, cluster_id, err, errlen);
    if (c->store == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void write_isr(void *arg, const char *topic, int32_t partition, int32_t leader_epoch, const int32_t *isr,
                      int nisr)
{
    cluster_t *c = arg;
    if (zk_store_set_isr(c->store, topic, partition, leader_epoch, isr, nisr) != 0)
        LOG_ERROR("cluster", "%s-%d: cannot queue the ISR change", topic, partition);
}

int cluster_start(cluster_t *c, evloop_t *loop, topics_t *topics)
{
    c->loop = loop;
    c->topics = topics;
    evloop_timer_init(&c->shutdown_timer, shutdown_timer_cb, c);
    c->repl = replication_new(loop, topics, c->config, c->broker_id, write_isr, c);
    if (c->repl == NULL)
        return -1;
    replication_set_leadership_hook(c->repl, c->on_leadership, c->on_leadership_arg);
    c->io.fd = zk_store_event_fd(c->store);
    c->io.cb = io_cb;
    c->io.arg = c;
    if (evloop_io_add(loop, &c->io, EPOLLIN) != 0) {
        c->io.fd = -1;
        return -1;
    }
    return zk_store_start(c->store, on_event, c);
}

static void detach_replication(void *arg, topic_t *tp)
{
    (void)arg;
    for (int32_t i = 0; i < tp->npartitions; i++)
        if (tp->partitions[i])
            repl_partition_free(tp->partitions[i]);
}

void cluster_close(cluster_t *c)
{
    if (c == NULL)
        return;
    if (c->repl) {
        /* From here on the local logs are on their own (a clean shutdown's last writes). */
        topics_foreach(c->topics, detach_replication, NULL);
        replication_free(c->repl);
    }
    if (c->io.fd >= 0)
        evloop_io_del(c->loop, &c->io);
    if (c->loop)
        evloop_timer_stop(c->loop, &c->shutdown_timer);
    zk_store_close(c->store);
    while (c->ops) {
        cluster_op_t *op = c->ops;
        c->ops = op->next;
        free(op->delete_name);
        free(op);
    }
    zk_event_free(c->brokers);
    zk_event_free(c->snapshot);
    free(c->index);
    free(c);
}

/* ---- queries ---- */

int32_t cluster_controller_id(const cluster_t *c) { return c->controller_id; }

int cluster_broker_count(const cluster_t *c) { return c->brokers ? c->brokers->nbrokers : 0; }

const zk_broker_t *cluster_broker_at(const cluster_t *c, int i)
{
    return c->brokers && i >= 0 && i < c->brokers->nbrokers ? &c->brokers->brokers[i] : NULL;
}

const zk_partition_t *cluster_partition(const cluster_t *c, const char *topic, int32_t partition)
{
    const zk_topic_t *zt = find_topic(c, topic);
    if (zt == NULL || partition < 0 || partition >= zt->npartitions)
        return NULL;
    return &zt->partitions[partition];
}

int16_t cluster_check_leader(const cluster_t *c, const topic_t *tp, int32_t partition)
{
    /* Until the first snapshot this broker cannot know what it leads: a restarted broker must not
     * take writes for partitions that moved on while it was away. */
    if (c->snapshot == NULL)
        return KERR_NOT_LEADER_OR_FOLLOWER;
    const zk_partition_t *zp = cluster_partition(c, tp->name, partition);
    if (zp == NULL)
        return KERR_NONE;
    if (zp->leader < 0)
        return KERR_LEADER_NOT_AVAILABLE;
    return zp->leader == c->broker_id ? KERR_NONE : KERR_NOT_LEADER_OR_FOLLOWER;
}

/* ---- topic creation ---- */

int cluster_assign_replicas(const int32_t *brokers, int nbrokers, int32_t npartitions, int rf, int start,
                            int shift, int32_t *out)
{
    return cluster_assign_replicas_from(brokers, nbrokers, 0, npartitions, rf, start, shift, out);
}

int cluster_assign_replicas_from(const int32_t *brokers, int nbrokers, int32_t first_partition, int32_t count,
                                 int rf, int start, int shift, int32_t *out)
{
    if (nbrokers <= 0 || rf <= 0 || rf > nbrokers || count <= 0 || first_partition < 0 || start < 0 || shift < 0)
        return -1;
    for (int32_t p = first_partition; p < first_partition + count; p++) {
        if (p > 0 && p % nbrokers == 0)
            shift++;
        int first = (int)((p + start) % nbrokers);
        int32_t *r = out + (size_t)(p - first_partition) * (size_t)rf;
        r[0] = brokers[first];
        for (int j = 0; j < rf - 1; j++) {
            int s = 1 + (shift + j) % (nbrokers - 1);
            r[j + 1] = brokers[(first + s) % nbrokers];
        }
    }
    return 0;
}

cluster_op_t *cluster_create_topic(cluster_t *c, const char *name, int32_t npartitions, int32_t rf,
                                   const topic_config_t *overrides,
                                   void (*done)(void *arg, int16_t error, const char *message), void *arg,
                                   int16_t *err, char *msg, size_t msglen)
{
    int n = cluster_broker_count(c);
    if (rf > n) {
        *err = KERR_INVALID_REPLICATION_FACTOR;
        snprintf(msg, msglen, "Replication factor: %d larger than available brokers: %d.", rf, n);
        return NULL;
    }
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    int32_t *assignment = malloc((size_t)npartitions * (size_t)rf * sizeof(int32_t));
    cluster_op_t *op = calloc(1, sizeof(*op));
    buf_t cfg;
    buf_init(&cfg);
    config_json(overrides, &cfg);
    uint32_t rnd[2] = {0, 0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd[0] = rnd[1] = (uint32_t)c->next_token;
    kuuid_t id;
    char idstr[23];
    topics_uuid_random(&id);
    topics_uuid_to_string(&id, idstr);
    *err = KERR_UNKNOWN_SERVER_ERROR;
    if (ids == NULL || assignment == NULL || op == NULL || cfg.oom) {
        snprintf(msg, msglen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        ids[i] = c->brokers->brokers[i].id;
    if (cluster_assign_replicas(ids, n, npartitions, rf, (int)(rnd[0] % (uint32_t)n), (int)(rnd[1] % (uint32_t)n),
                                assignment) != 0) {
        snprintf(msg, msglen, "cannot assign replicas");
        goto fail;
    }
    op->token = c->next_token++;
    op->done = done;
    op->arg = arg;
    if (zk_store_create_topic(c->store, name, idstr, npartitions, rf, assignment, (const char *)cfg.data,
                              op->token) != 0) {
        snprintf(msg, msglen, "out of memory");
        goto fail;
    }
    op->next = c->ops;
    c->ops = op;
    free(ids);
    free(assignment);
    buf_free(&cfg);
    *err = KERR_NONE;
    return op;
fail:
    free(ids);
    free(assignment);
    free(op);
    buf_free(&cfg);
    return NULL;
}

bool cluster_knows_topic(const cluster_t *c, const char *name) { return find_topic(c, name) != NULL; }

struct replication *cluster_replication(const cluster_t *c) { return c->repl; }

void cluster_set_leadership_hook(cluster_t *c, void (*cb)(void *arg, partition_t *p, bool leader), void *arg)
{
    c->on_leadership = cb;
    c->on_leadership_arg = arg;
}

static void internal_created(void *arg, int16_t error, const char *message)
{
    const char *name = arg;
    if (error != KERR_NONE && error != KERR_TOPIC_ALREADY_EXISTS)
        LOG_WARN("cluster", "creating %s: error %d (%s)", name, error, message);
}

bool cluster_ensure_internal_topic(cluster_t *c, const char *name, int32_t npartitions, int32_t rf,
                                   int64_t segment_bytes)
{
    if (find_topic(c, name))
        return topics_find(c->topics, name, strlen(name)) != NULL;
    int k = strcmp(name, "__transaction_state") == 0;
    int64_t now = evloop_now_ms(c->loop);
    if (c->internal_create_ms[k] != 0 && now - c->internal_create_ms[k] < 5000)
        return false;
    c->internal_create_ms[k] = now;
    topic_config_t *cfg = topic_config_new();
    char seg[32], err[256];
    snprintf(seg, sizeof(seg), "%lld", (long long)segment_bytes);
    if (cfg == NULL || topic_config_set(cfg, "cleanup.policy", "compact", err, sizeof(err)) != 0 ||
        topic_config_set(cfg, "segment.bytes", seg, err, sizeof(err)) != 0 ||
        topic_config_set(cfg, "compression.type", "producer", err, sizeof(err)) != 0) {
        topic_config_free(cfg);
        return false;
    }
    int16_t e;
    char msg[256];
    /* The static name outlives the operation. */
    const char *static_name = k ? "__transaction_state" : "__consumer_offsets";
    if (cluster_create_topic(c, name, npartitions, rf, cfg, internal_created, (void *)static_name, &e, msg,
                             sizeof(msg)) == NULL)
        LOG_WARN("cluster", "cannot create %s yet: %s", name, msg);
    else
        LOG_INFO("cluster", "creating %s: %d partitions, replication factor %d", name, npartitions, rf);
    topic_config_free(cfg);
    return false;
}

void cluster_topic_config_changed(cluster_t *c, const topic_t *tp)
{
    if (!cluster_knows_topic(c, tp->name))
        return;
    buf_t b;
    buf_init(&b);
    config_json(tp->config, &b);
    if (b.oom || zk_store_set_topic_config(c->store, tp->name, (const char *)b.data) != 0)
        LOG_ERROR("cluster", "topic %s: cannot queue the config change for ZooKeeper", tp->name);
    buf_free(&b);
}

cluster_op_t *cluster_delete_topic(cluster_t *c, const char *name,
                                   void (*done)(void *arg, int16_t error, const char *message), void *arg)
{
    cluster_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->delete_name = strdup(name)) == NULL) {
        free(op);
        return NULL;
    }
    op->token = c->next_token++;
    op->done = done;
    op->arg = arg;
    if (zk_store_delete_topic(c->store, name, op->token) != 0) {
        free(op->delete_name);
        free(op);
        return NULL;
    }
    op->next = c->ops;
    c->ops = op;
    return op;
}

void cluster_op_cancel(cluster_t *c, cluster_op_t *op)
{
    (void)c;
    if (op) {
        op->done = NULL;
        op->elect_done = NULL;
        op->arg = NULL;
    }
}

/* ---- listing, added partitions, elections ---- */

int cluster_topic_count(const cluster_t *c) { return c->snapshot ? c->snapshot->ntopics : 0; }

const zk_topic_t *cluster_topic_at(const cluster_t *c, int i)
{
    return c->snapshot && i >= 0 && i < c->snapshot->ntopics ? &c->snapshot->topics[i] : NULL;
}

const zk_topic_t *cluster_topic(const cluster_t *c, const char *name) { return find_topic(c, name); }

static bool broker_live(const cluster_t *c, int32_t id)
{
    for (int i = 0; i < cluster_broker_count(c); i++)
        if (c->brokers->brokers[i].id == id)
            return true;
    return false;
}

int16_t cluster_check_assignment(const cluster_t *c, const int32_t *ids, int n, int rf, int32_t partition,
                                 char *msg, size_t msglen)
{
    if (n <= 0) {
        snprintf(msg, msglen, "Cannot have replication factor of 0 for partition id %d.", partition);
        return KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            if (ids[i] == ids[j]) {
                snprintf(msg, msglen, "Duplicate brokers not allowed in replica assignment: broker %d twice for "
                                      "partition id %d.", ids[i], partition);
                return KERR_INVALID_REPLICA_ASSIGNMENT;
            }
        }
        if (!broker_live(c, ids[i])) {
            snprintf(msg, msglen, "Unknown broker(s) in replica assignment: %d.", ids[i]);
            return KERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    if (n != rf) {
        snprintf(msg, msglen, "Inconsistent replication factor between partitions, partition 0 has %d while "
                              "partitions [%d] have replication factors [%d], respectively.", rf, partition, n);
        return KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    return KERR_NONE;
}

cluster_op_t *cluster_create_partitions(cluster_t *c, const char *name, int32_t count, const int32_t *assignment,
                                        void (*done)(void *arg, int16_t error, const char *message), void *arg,
                                        int16_t *err, char *msg, size_t msglen)
{
    const zk_topic_t *zt = find_topic(c, name);
    if (zt == NULL) {
        *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        snprintf(msg, msglen, "The topic '%s' does not exist.", name);
        return NULL;
    }
    int32_t old = zt->npartitions;
    int rf = zt->partitions[0].nreplicas;
    if (count <= old) {
        *err = KERR_INVALID_PARTITIONS;
        snprintf(msg, msglen, count < old ? "Topic currently has %d partitions, which is higher than the requested %d."
                                          : "Topic already has %d partitions.", old, count);
        return NULL;
    }
    int n = cluster_broker_count(c);
    if (assignment == NULL && rf > n) {
        *err = KERR_INVALID_REPLICATION_FACTOR;
        snprintf(msg, msglen, "Replication factor: %d larger than available brokers: %d.", rf, n);
        return NULL;
    }
    *err = KERR_UNKNOWN_SERVER_ERROR;
    int32_t *made = NULL;
    cluster_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        goto oom;
    if (assignment == NULL) {
        /* Kafka's: the live brokers by id, starting at the first one at or above partition 0's
         * first replica, partition ids (and the shift) continuing from the existing count. */
        int32_t ids[1024];
        int nb = n < 1024 ? n : 1024, start = 0;
        for (int i = 0; i < nb; i++)
            ids[i] = c->brokers->brokers[i].id;
        while (start < nb && ids[start] < zt->partitions[0].replicas[0])
            start++;
        if (start == nb)
            start = 0;
        made = malloc(sizeof(int32_t) * (size_t)(count - old) * (size_t)rf);
        if (made == NULL)
            goto oom;
        if (cluster_assign_replicas_from(ids, nb, old, count - old, rf, start, start, made) != 0) {
            snprintf(msg, msglen, "cannot assign replicas");
            free(made);
            free(op);
            return NULL;
        }
        assignment = made;
    }
    op->token = c->next_token++;
    op->done = done;
    op->arg = arg;
    if (zk_store_add_partitions(c->store, name, old, count, rf, assignment, op->token) != 0)
        goto oom;
    free(made);
    op->next = c->ops;
    c->ops = op;
    *err = KERR_NONE;
    return op;
oom:
    snprintf(msg, msglen, "out of memory");
    free(made);
    free(op);
    return NULL;
}

cluster_op_t *cluster_elect_leaders(cluster_t *c, zk_election_type_t type, const zk_election_t *targets, int n,
                                    void (*done)(void *arg, const zk_election_t *results, int n), void *arg)
{
    cluster_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->token = c->next_token++;
    op->elect_done = done;
    op->arg = arg;
    if (zk_store_elect_leaders(c->store, type, targets, n, op->token) != 0) {
        free(op);
        return NULL;
    }
    op->next = c->ops;
    c->ops = op;
    return op;
}

/* ---- controlled shutdown ---- */

/* Partitions this broker still leads that another live ISR member could lead. */
static int leaders_to_move(const cluster_t *c)
{
    int n = 0;
    for (int t = 0; t < cluster_topic_count(c); t++) {
        const zk_topic_t *zt = &c->snapshot->topics[t];
        for (int32_t p = 0; p < zt->npartitions; p++) {
            const zk_partition_t *zp = &zt->partitions[p];
            if (zp->leader != c->broker_id)
                continue;
            for (int i = 0; i < zp->nisr; i++) {
                if (zp->isr[i] != c->broker_id && broker_live(c, zp->isr[i])) {
                    n++;
                    break;
                }
            }
        }
    }
    return n;
}

static void shutdown_finish(cluster_t *c, const char *how)
{
    void (*done)(void *arg) = c->shutdown_done;
    c->shutdown_done = NULL;
    evloop_timer_stop(c->loop, &c->shutdown_timer);
    LOG_INFO("cluster", "controlled shutdown %s after %d attempt(s)", how, c->shutdown_attempts);
    if (done)
        done(c->shutdown_arg);
}

static void shutdown_attempt(cluster_t *c)
{
    int64_t backoff = broker_config_get_long(c->config, "controlled.shutdown.retry.backoff.ms");
    c->shutdown_attempts++;
    c->shutdown_token = c->next_token++;
    if (zk_store_controlled_shutdown(c->store, c->shutdown_token) != 0)
        LOG_ERROR("cluster", "controlled shutdown: cannot queue attempt %d", c->shutdown_attempts);
    evloop_timer_start(c->loop, &c->shutdown_timer, backoff > 0 ? backoff : 0);
}

/* After each worker answer and snapshot: done once nothing led here could move elsewhere. */
static void shutdown_check(cluster_t *c)
{
    if (!c->shutting_down || c->shutdown_done == NULL || !c->shutdown_answered)
        return;
    int left = leaders_to_move(c);
    if (left == 0)
        shutdown_finish(c, "complete: this broker leads no partition another live in-sync replica could lead");
}

static void shutdown_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    cluster_t *c = t->arg;
    if (c->shutdown_done == NULL)
        return;
    int64_t max = broker_config_get_long(c->config, "controlled.shutdown.max.retries");
    if (c->shutdown_attempts >= (max > 0 ? max : 1)) {
        LOG_WARN("cluster", "controlled shutdown: %d partition(s) still led here; proceeding without moving them",
                 leaders_to_move(c));
        shutdown_finish(c, "given up");
        return;
    }
    shutdown_attempt(c);
}

int cluster_controlled_shutdown(cluster_t *c, void (*done)(void *arg), void *arg)
{
    if (c->shutting_down || c->loop == NULL || !broker_config_get_bool(c->config, "controlled.shutdown.enable"))
        return -1;
    c->shutting_down = true;
    c->shutdown_done = done;
    c->shutdown_arg = arg;
    LOG_INFO("cluster", "controlled shutdown: moving the leadership of %d partition(s) to other in-sync replicas",
             leaders_to_move(c));
    /* Stop following at once: the snapshot again, through apply_epochs' shutdown branch. */
    for (int t = 0; t < cluster_topic_count(c); t++) {
        const zk_topic_t *zt = &c->snapshot->topics[t];
        topic_t *tp = topics_find(c->topics, zt->name, strlen(zt->name));
        if (tp)
            apply_epochs(c, zt, tp);
    }
    shutdown_attempt(c);
    return 0;
}
