/*
 * group_coordinator.c - Kafka's classic group coordinator on the event loop.
 *
 * The rules follow Kafka's GroupCoordinator: a rebalance starts when a member
 * joins, leaves, changes its protocols or dies; it completes (the join
 * barrier) when every known member has rejoined and no MEMBER_ID_REQUIRED
 * member is outstanding, or when the rebalance timeout (the largest member
 * rebalance timeout) fires, dropping dynamic members that did not rejoin. The
 * first rebalance of an empty group waits group.initial.rebalance.delay.ms,
 * extended while new members keep arriving, never past the rebalance timeout.
 * After the barrier every member must send SyncGroup within the rebalance
 * timeout or it is removed (and the group rebalances), so no rebalance waits
 * forever. Members awaiting a join or sync answer are kept alive; others are
 * evicted after session.timeout.ms without a heartbeat (or commit, join,
 * sync). A waiter whose connection closes is cancelled: its member stops
 * counting as rejoined and its session timer restarts.
 *
 * Persistence: each rebalance that completes (the leader's SyncGroup), each
 * group that becomes empty and each static member replacement writes a group
 * metadata record; each commit writes its offsets as one batch; deletions and
 * expiry write tombstones. Appends are synchronous (acks=1 on one node), so
 * an answer is given only after the records are in the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/logger.h"
#include "group/group_coordinator.h"
#include "group/group_log.h"
#include "group/group_offsets.h"
#include "protocol/kerr.h"
#include "protocol/record_batch.h"
#include "txn/partition_txn.h"

#define GROUP_HASH_SIZE 1024
#define LOAD_MAX_DECOMPRESSED (64u << 20)

enum group_state { GS_EMPTY, GS_PREPARING, GS_COMPLETING, GS_STABLE, GS_DEAD };
static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance", "Stable",
                                          "Dead"};

enum join_kind { JOIN_NONE, JOIN_INITIAL, JOIN_DELAYED };

typedef struct group group_t;

/* Cluster mode: the offsets a producer's open transaction committed for a group (TxnOffsetCommit),
 * in the log as a transactional batch and not visible until its COMMIT marker lands. */
typedef struct group_txn_pending {
    struct group_txn_pending *next;
    int64_t producer_id;
    group_offsets_t *offsets;
} group_txn_pending_t;

typedef struct group_protocol {
    char *name;
    uint8_t *metadata;
    int32_t metadata_len;
} group_protocol_t;

struct group_member {
    group_member_t *next;
    group_t *group;
    char *member_id;
    char *instance_id; /* NULL for dynamic members */
    char *client_id;
    char *client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    group_protocol_t *protocols;
    int n_protocols;
    uint8_t *assignment;
    int32_t assignment_len;
    group_waiter_t *join_waiter;
    group_waiter_t *sync_waiter;
    bool is_new;
    bool pending_sync; /* joined this generation, SyncGroup not seen yet */
    ev_timer_t session_timer;
};

/* A member id handed out with MEMBER_ID_REQUIRED, not joined yet. */
typedef struct pending_member {
    struct pending_member *next;
    group_t *group;
    char *member_id;
    ev_timer_t timer;
} pending_member_t;

struct group {
    group_t *hnext;
    group_coordinator_t *gc;
    char *id;
    size_t id_len;
    enum group_state state;
    int64_t state_ts; /* wall-clock ms of the last state change */
    int32_t generation;
    char *protocol_type; /* NULL: none (a standalone group that only commits) */
    char *protocol_name; /* NULL: none */
    char *leader_id;     /* NULL: none */
    group_member_t *members; /* in join order */
    int n_members;
    pending_member_t *pending;
    bool new_member_added;
    enum join_kind join_kind;
    int64_t join_remaining_ms;
    ev_timer_t join_timer;
    ev_timer_t sync_timer;
    group_offsets_t *offsets;
    group_txn_pending_t *txn_pending; /* offsets of open transactions, per producer */
};

struct group_coordinator {
    evloop_t *loop;
    topics_t *topics;
    const broker_config_t *config;
    group_t *buckets[GROUP_HASH_SIZE];
    int ngroups;
    ev_timer_t expire_timer;
    buf_t scratch; /* decompression during load */
    /* Cluster mode: groups live with the __consumer_offsets partitions this broker leads. */
    bool cluster_mode;
    uint8_t *owned; /* per partition: its groups are loaded here */
    int32_t nowned;
    int32_t loading; /* the __consumer_offsets partition being replayed, -1 */
};

/* ---------------------------------------------------------------- helpers */

static int32_t group_partition_of(group_coordinator_t *gc, const group_t *g);

static kstr_t kstrn(const char *p, size_t n)
{
    kstr_t s = {p, (int32_t)n};
    return s;
}

static kstr_t kstr_or_null(const char *c)
{
    return c ? kstr_c(c) : kstr_null();
}

static kstr_t kstr_or_empty(const char *c)
{
    return kstr_c(c ? c : "");
}

static bool kstr_empty(kstr_t s)
{
    return s.len <= 0;
}

static bool str_is(const char *c, kstr_t k)
{
    return c != NULL && kstr_eq(k, c);
}

static char *dup_kstr(kstr_t s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s.ptr, n);
    p[n] = '\0';
    return p;
}

static int64_t cfg_long(const group_coordinator_t *gc, const char *key, int64_t def)
{
    if (gc->config == NULL)
        return def;
    return broker_config_get_long(gc->config, key);
}

static int64_t retention_ms(const group_coordinator_t *gc)
{
    return cfg_long(gc, "offsets.retention.minutes", 10080) * 60000;
}

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static group_t *group_find(group_coordinator_t *gc, kstr_t id)
{
    if (id.len < 0)
        return NULL;
    for (group_t *g = gc->buckets[name_hash(id.ptr, (size_t)id.len) % GROUP_HASH_SIZE]; g; g = g->hnext)
        if (g->id_len == (size_t)id.len && memcmp(g->id, id.ptr, g->id_len) == 0)
            return g;
    return NULL;
}

static kstr_t group_kid(const group_t *g)
{
    return kstrn(g->id, g->id_len);
}

static void transition(group_t *g, enum group_state s)
{
    g->state = s;
    g->state_ts = evloop_wall_ms();
}

static void member_session_cb(evloop_t *loop, ev_timer_t *t);
static void pending_timer_cb(evloop_t *loop, ev_timer_t *t);
static void join_timer_cb(evloop_t *loop, ev_timer_t *t);
static void sync_timer_cb(evloop_t *loop, ev_timer_t *t);

static group_t *group_create(group_coordinator_t *gc, kstr_t id)
{
    group_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->id = dup_kstr(id);
    g->offsets = group_offsets_new();
    if (g->id == NULL || g->offsets == NULL) {
        free(g->id);
        group_offsets_free(g->offsets);
        free(g);
        return NULL;
    }
    g->id_len = (size_t)(id.len > 0 ? id.len : 0);
    g->gc = gc;
    transition(g, GS_EMPTY);
    evloop_timer_init(&g->join_timer, join_timer_cb, g);
    evloop_timer_init(&g->sync_timer, sync_timer_cb, g);
    uint32_t h = name_hash(g->id, g->id_len) % GROUP_HASH_SIZE;
    g->hnext = gc->buckets[h];
    gc->buckets[h] = g;
    gc->ngroups++;
    return g;
}

/* ---------------------------------------------------------------- members */

static void protocols_free(group_protocol_t *ps, int n)
{
    for (int i = 0; i < n; i++) {
        free(ps[i].name);
        free(ps[i].metadata);
    }
    free(ps);
}

static group_protocol_t *protocols_copy(const group_protocol_in_t *in, int n)
{
    group_protocol_t *ps = calloc((size_t)(n > 0 ? n : 1), sizeof(*ps));
    if (ps == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        int32_t len = in[i].metadata.len > 0 ? in[i].metadata.len : 0;
        ps[i].name = dup_kstr(in[i].name);
        ps[i].metadata = malloc((size_t)len + 1);
        ps[i].metadata_len = len;
        if (ps[i].name == NULL || ps[i].metadata == NULL) {
            protocols_free(ps, i + 1);
            return NULL;
        }
        if (len)
            memcpy(ps[i].metadata, in[i].metadata.ptr, (size_t)len);
    }
    return ps;
}

static const group_protocol_t *member_protocol(const group_member_t *m, const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; i < m->n_protocols; i++)
        if (strcmp(m->protocols[i].name, name) == 0)
            return &m->protocols[i];
    return NULL;
}

static kbytes_t member_metadata(const group_member_t *m, const char *protocol)
{
    const group_protocol_t *p = member_protocol(m, protocol);
    kbytes_t b = {(const uint8_t *)"", 0};
    if (p) {
        b.ptr = p->metadata;
        b.len = p->metadata_len;
    }
    return b;
}

static bool member_matches(const group_member_t *m, const group_join_params_t *p)
{
    if (m->n_protocols != p->n_protocols)
        return false;
    for (int i = 0; i < p->n_protocols; i++) {
        const group_protocol_in_t *in = &p->protocols[i];
        int32_t len = in->metadata.len > 0 ? in->metadata.len : 0;
        if (!str_is(m->protocols[i].name, in->name) || m->protocols[i].metadata_len != len ||
            (len && memcmp(m->protocols[i].metadata, in->metadata.ptr, (size_t)len) != 0))
            return false;
    }
    return true;
}

static void member_free(group_coordinator_t *gc, group_member_t *m)
{
    evloop_timer_stop(gc->loop, &m->session_timer);
    free(m->member_id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    protocols_free(m->protocols, m->n_protocols);
    free(m->assignment);
    free(m);
}

/* (Re)starts the member's session timeout: a heartbeat, join, sync or commit. */
static void member_touch(group_member_t *m)
{
    group_coordinator_t *gc = m->group->gc;
    evloop_timer_start(gc->loop, &m->session_timer, m->session_timeout_ms > 0 ? m->session_timeout_ms : 1);
}

static group_member_t *member_find(const group_t *g, kstr_t id)
{
    if (id.len < 0)
        return NULL;
    for (group_member_t *m = g->members; m; m = m->next)
        if (str_is(m->member_id, id))
            return m;
    return NULL;
}

static group_member_t *static_member_find(const group_t *g, kstr_t instance_id)
{
    if (kstr_empty(instance_id))
        return NULL;
    for (group_member_t *m = g->members; m; m = m->next)
        if (m->instance_id && str_is(m->instance_id, instance_id))
            return m;
    return NULL;
}

/* Kafka's isStaticMemberFenced: the instance id belongs to another member id. */
static bool static_member_fenced(const group_t *g, kstr_t instance_id, kstr_t member_id)
{
    group_member_t *s = static_member_find(g, instance_id);
    return s != NULL && !str_is(s->member_id, member_id);
}

static bool is_leader(const group_t *g, const group_member_t *m)
{
    return g->leader_id != NULL && strcmp(g->leader_id, m->member_id) == 0;
}

static int set_leader(group_t *g, const char *id)
{
    char *copy = id ? strdup(id) : NULL;
    if (id && copy == NULL)
        return -1;
    free(g->leader_id);
    g->leader_id = copy;
    return 0;
}

static pending_member_t *pending_find(const group_t *g, kstr_t id)
{
    for (pending_member_t *p = g->pending; p; p = p->next)
        if (str_is(p->member_id, id))
            return p;
    return NULL;
}

static void pending_remove(group_t *g, pending_member_t *p)
{
    pending_member_t **pp = &g->pending;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    evloop_timer_stop(g->gc->loop, &p->timer);
    free(p->member_id);
    free(p);
}

/* ---------------------------------------------------------------- answers */

static void answer(group_waiter_t *w, const group_result_t *res)
{
    group_member_t *m = w->member;
    if (m) {
        if (m->join_waiter == w)
            m->join_waiter = NULL;
        if (m->sync_waiter == w)
            m->sync_waiter = NULL;
    }
    w->member = NULL;
    w->done(w, res);
}

static void answer_error(group_waiter_t *w, int16_t err, kstr_t member_id)
{
    group_result_t r;
    memset(&r, 0, sizeof(r));
    r.error = err;
    r.generation_id = -1;
    r.protocol_type = kstr_null();
    r.protocol_name = kstr_null();
    r.leader_id = kstr_c("");
    r.member_id = member_id.len >= 0 ? member_id : kstr_c("");
    r.assignment.ptr = (const uint8_t *)"";
    r.assignment.len = 0;
    answer(w, &r);
}

/* The JoinGroup answer of the current generation for m (members only for the leader). */
static void answer_join(group_t *g, group_member_t *m, group_waiter_t *w, const char *leader,
                        bool with_members, bool skip_assignment)
{
    group_result_t r;
    memset(&r, 0, sizeof(r));
    r.error = KERR_NONE;
    r.generation_id = g->generation;
    r.protocol_type = kstr_or_null(g->protocol_type);
    r.protocol_name = kstr_or_null(g->protocol_name);
    r.leader_id = kstr_or_empty(leader);
    r.member_id = kstr_c(m->member_id);
    r.skip_assignment = skip_assignment;
    group_join_member_t *list = NULL;
    if (with_members) {
        list = calloc((size_t)(g->n_members > 0 ? g->n_members : 1), sizeof(*list));
        if (list) {
            int i = 0;
            for (group_member_t *x = g->members; x; x = x->next, i++) {
                list[i].member_id = kstr_c(x->member_id);
                list[i].instance_id = kstr_or_null(x->instance_id);
                list[i].metadata = member_metadata(x, g->protocol_name);
            }
            r.n_members = g->n_members;
            r.members = list;
        }
    }
    r.assignment.ptr = (const uint8_t *)"";
    answer(w, &r);
    free(list);
}

/* ---------------------------------------------------------------- persistence */

static partition_t *offsets_partition(group_coordinator_t *gc, const group_t *g)
{
    topic_t *tp = topics_find(gc->topics, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC));
    if (tp == NULL)
        return NULL;
    return topics_partition(tp, group_log_partition_for(g->id, g->id_len, tp->npartitions));
}

typedef struct group_batch {
    buf_t out;
    rb_builder_t rb;
    buf_t key, val;
    int count;
    int64_t now;
    bool failed;
} group_batch_t;

static void batch_init(group_batch_t *b)
{
    memset(b, 0, sizeof(*b));
    b->now = evloop_wall_ms();
    buf_init(&b->out);
    buf_init(&b->key);
    buf_init(&b->val);
    rb_builder_init(&b->rb, &b->out, 0, 0, b->now);
}

/* Adds the record in b->key / b->val (tombstone: a null value) and resets them. */
static void batch_add(group_batch_t *b, bool tombstone)
{
    if (b->key.oom || b->val.oom ||
        rb_builder_add(&b->rb, b->now, -1, b->key.data, (int32_t)b->key.len, tombstone ? NULL : b->val.data,
                       tombstone ? -1 : (int32_t)b->val.len, 0, NULL, NULL, NULL, NULL) != 0)
        b->failed = true;
    b->count++;
    b->key.len = 0;
    b->val.len = 0;
}

static void batch_free(group_batch_t *b)
{
    buf_free(&b->out);
    buf_free(&b->key);
    buf_free(&b->val);
}

/* Appends the batch to the group's __consumer_offsets partition. 0, or a Kafka error. A batch
 * carrying a producer id (transactional offsets) is recorded in the partition's producer state,
 * so its transaction counts as open there until its marker. */
static int16_t batch_append(group_coordinator_t *gc, const group_t *g, group_batch_t *b, bool producer)
{
    if (b->count == 0 || gc->topics == NULL) {
        rb_builder_abort(&b->rb);
        batch_free(b);
        return KERR_NONE;
    }
    int16_t err = group_coordinator_ensure_topic(gc);
    partition_t *p = err ? NULL : offsets_partition(gc, g);
    if (p == NULL || b->failed) {
        rb_builder_abort(&b->rb);
        batch_free(b);
        return err ? err : KERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (rb_builder_finish(&b->rb) != 0 || b->out.oom) {
        batch_free(b);
        return KERR_UNKNOWN_SERVER_ERROR;
    }
    int64_t first, next;
    int rc = partition_append(gc->topics, p, b->out.data, b->out.len, b->now, &first, &next);
    if (rc == 0 && producer)
        ptxn_produce_done(p, b->out.data, b->now);
    batch_free(b);
    if (rc != 0) {
        LOG_ERROR("group", "appending to %s-%d for group %s failed: %s", GROUP_LOG_TOPIC, p->index, g->id,
                  log_rc_str(rc));
        return KERR_COORDINATOR_NOT_AVAILABLE;
    }
    return KERR_NONE;
}

static int16_t batch_commit(group_coordinator_t *gc, const group_t *g, group_batch_t *b)
{
    return batch_append(gc, g, b, false);
}

static void batch_put_group(group_batch_t *b, const group_t *g)
{
    group_log_put_group_key(&b->key, group_kid(g));
    group_log_member_t *ms = calloc((size_t)(g->n_members > 0 ? g->n_members : 1), sizeof(*ms));
    if (ms == NULL) {
        b->failed = true;
        return;
    }
    int i = 0;
    for (group_member_t *m = g->members; m; m = m->next, i++) {
        ms[i].member_id = kstr_c(m->member_id);
        ms[i].instance_id = kstr_or_null(m->instance_id);
        ms[i].client_id = kstr_c(m->client_id);
        ms[i].client_host = kstr_c(m->client_host);
        ms[i].rebalance_timeout_ms = m->rebalance_timeout_ms;
        ms[i].session_timeout_ms = m->session_timeout_ms;
        ms[i].subscription = member_metadata(m, g->protocol_name);
        ms[i].assignment.ptr = m->assignment ? m->assignment : (const uint8_t *)"";
        ms[i].assignment.len = m->assignment_len;
    }
    group_log_put_group_value(&b->val, kstr_or_empty(g->protocol_type), g->generation,
                              kstr_or_null(g->protocol_name), kstr_or_null(g->leader_id), g->state_ts, ms,
                              g->n_members);
    free(ms);
    batch_add(b, false);
}

/* Writes the group's metadata record (members, generation, assignment). */
static int16_t store_group(group_coordinator_t *gc, const group_t *g)
{
    group_batch_t b;
    batch_init(&b);
    batch_put_group(&b, g);
    return batch_commit(gc, g, &b);
}

int16_t group_coordinator_ensure_topic(group_coordinator_t *gc)
{
    if (gc->topics == NULL)
        return KERR_NONE;
    if (gc->cluster_mode) /* created through ZooKeeper (cluster_ensure_internal_topic) */
        return topics_find(gc->topics, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC)) ? KERR_NONE
                                                                               : KERR_COORDINATOR_NOT_AVAILABLE;
    int64_t n = cfg_long(gc, "offsets.topic.num.partitions", 50);
    char err[256];
    int rc = topics_ensure_internal(gc->topics, GROUP_LOG_TOPIC, (int32_t)n,
                                    cfg_long(gc, "offsets.topic.segment.bytes", 104857600), err, sizeof(err));
    if (rc < 0) {
        LOG_ERROR("group", "cannot create %s: %s", GROUP_LOG_TOPIC, err);
        return KERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (rc == 0)
        return KERR_NONE;
    LOG_INFO("group", "created the internal topic %s with %" PRId64 " partitions (replication factor 1)",
             GROUP_LOG_TOPIC, n);
    return KERR_NONE;
}

int32_t group_coordinator_partition(group_coordinator_t *gc, kstr_t group_id)
{
    topic_t *tp = gc->topics ? topics_find(gc->topics, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC)) : NULL;
    int32_t n = tp ? tp->npartitions : (int32_t)cfg_long(gc, "offsets.topic.num.partitions", 50);
    return group_log_partition_for(group_id.ptr ? group_id.ptr : "", (size_t)(group_id.len > 0 ? group_id.len : 0),
                                   n);
}

/* ---------------------------------------------------------------- group lifecycle */

static void group_clear_members(group_t *g)
{
    group_coordinator_t *gc = g->gc;
    while (g->members) {
        group_member_t *m = g->members;
        g->members = m->next;
        if (m->join_waiter)
            answer_error(m->join_waiter, KERR_COORDINATOR_NOT_AVAILABLE, kstr_c(m->member_id));
        if (m->sync_waiter)
            answer_error(m->sync_waiter, KERR_COORDINATOR_NOT_AVAILABLE, kstr_c(m->member_id));
        member_free(gc, m);
    }
    g->n_members = 0;
    while (g->pending)
        pending_remove(g, g->pending);
}

static void group_free(group_t *g)
{
    group_coordinator_t *gc = g->gc;
    group_clear_members(g);
    evloop_timer_stop(gc->loop, &g->join_timer);
    evloop_timer_stop(gc->loop, &g->sync_timer);
    group_offsets_free(g->offsets);
    while (g->txn_pending) {
        group_txn_pending_t *tp = g->txn_pending;
        g->txn_pending = tp->next;
        group_offsets_free(tp->offsets);
        free(tp);
    }
    free(g->protocol_type);
    free(g->protocol_name);
    free(g->leader_id);
    free(g->id);
    free(g);
}

static void group_unlink_free(group_t *g)
{
    group_coordinator_t *gc = g->gc;
    group_t **pp = &gc->buckets[name_hash(g->id, g->id_len) % GROUP_HASH_SIZE];
    while (*pp && *pp != g)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = g->hnext;
        gc->ngroups--;
    }
    group_free(g);
}

/* ---------------------------------------------------------------- rebalancing */

static int32_t group_rebalance_timeout(const group_t *g)
{
    int32_t t = 0;
    for (group_member_t *m = g->members; m; m = m->next)
        if (m->rebalance_timeout_ms > t)
            t = m->rebalance_timeout_ms;
    return t;
}

static bool all_members_joined(const group_t *g)
{
    if (g->pending)
        return false;
    for (group_member_t *m = g->members; m; m = m->next)
        if (m->join_waiter == NULL)
            return false;
    return true;
}

/* Kafka's selectProtocol: among protocols every member supports, the one most
 * members list first among those (ties: the first member's preference). */
static const char *select_protocol(const group_t *g)
{
    const group_member_t *first = g->members;
    if (first == NULL)
        return NULL;
    const char *best = NULL;
    int best_votes = -1;
    for (int i = 0; i < first->n_protocols; i++) {
        const char *cand = first->protocols[i].name;
        bool everyone = true;
        for (group_member_t *m = g->members; m && everyone; m = m->next)
            everyone = member_protocol(m, cand) != NULL;
        if (!everyone)
            continue;
        int votes = 0;
        for (group_member_t *m = g->members; m; m = m->next) {
            /* m votes for its first protocol that every member supports */
            for (int j = 0; j < m->n_protocols; j++) {
                const char *pj = m->protocols[j].name;
                bool all = true;
                for (group_member_t *x = g->members; x && all; x = x->next)
                    all = member_protocol(x, pj) != NULL;
                if (all) {
                    votes += strcmp(pj, cand) == 0;
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best;
}

/* Kafka's supportsProtocols: an empty group takes any non-empty type and list;
 * otherwise the type must match and one protocol must be supported by all. */
static bool supports_protocols(const group_t *g, const group_join_params_t *p)
{
    if (g->n_members == 0)
        return !kstr_empty(p->protocol_type) && p->n_protocols > 0;
    if (g->protocol_type == NULL || !str_is(g->protocol_type, p->protocol_type))
        return false;
    for (int i = 0; i < p->n_protocols; i++) {
        int count = 0;
        for (group_member_t *m = g->members; m; m = m->next)
            for (int j = 0; j < m->n_protocols; j++)
                if (str_is(m->protocols[j].name, p->protocols[i].name)) {
                    count++;
                    break;
                }
        if (count == g->n_members)
            return true;
    }
    return false;
}

/* Answers every waiting SyncGroup with err and drops the assignments. */
static void reset_and_propagate_assignment_error(group_t *g, int16_t err)
{
    for (group_member_t *m = g->members; m; m = m->next) {
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
        if (m->sync_waiter)
            answer_error(m->sync_waiter, err, kstr_c(m->member_id));
    }
}

static void try_complete_join(group_t *g);

static void prepare_rebalance(group_t *g, const char *reason)
{
    group_coordinator_t *gc = g->gc;
    if (g->state == GS_COMPLETING)
        reset_and_propagate_assignment_error(g, GROUP_KERR_REBALANCE_IN_PROGRESS);
    evloop_timer_stop(gc->loop, &g->sync_timer);
    for (group_member_t *m = g->members; m; m = m->next)
        m->pending_sync = false;
    int32_t rebalance_timeout = group_rebalance_timeout(g);
    int64_t delay = cfg_long(gc, "group.initial.rebalance.delay.ms", 3000);
    if (g->state == GS_EMPTY && delay > 0) {
        g->join_kind = JOIN_INITIAL;
        g->join_remaining_ms = rebalance_timeout - delay > 0 ? rebalance_timeout - delay : 0;
        evloop_timer_start(gc->loop, &g->join_timer, delay);
    } else {
        g->join_kind = JOIN_DELAYED;
        evloop_timer_start(gc->loop, &g->join_timer, rebalance_timeout);
    }
    LOG_INFO("group", "preparing to rebalance group %s in state %s with old generation %d (reason: %s)", g->id,
             state_names[g->state], g->generation, reason);
    transition(g, GS_PREPARING);
    try_complete_join(g);
}

static void maybe_prepare_rebalance(group_t *g, const char *reason)
{
    if (g->state == GS_STABLE || g->state == GS_COMPLETING || g->state == GS_EMPTY)
        prepare_rebalance(g, reason);
}

static void remove_member(group_t *g, group_member_t *m)
{
    group_member_t **pp = &g->members;
    while (*pp && *pp != m)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = m->next;
        g->n_members--;
    }
    if (is_leader(g, m))
        set_leader(g, g->members ? g->members->member_id : NULL);
    member_free(g->gc, m);
}

/* The join barrier is over: start the next generation. */
static void complete_join(group_t *g)
{
    group_coordinator_t *gc = g->gc;
    evloop_timer_stop(gc->loop, &g->join_timer);
    g->join_kind = JOIN_NONE;
    /* Dynamic members that did not rejoin are gone; static ones stay until their session ends. */
    for (group_member_t *m = g->members, *next; m; m = next) {
        next = m->next;
        if (m->join_waiter == NULL && m->instance_id == NULL) {
            LOG_INFO("group", "group %s: member %s did not rejoin in time; removing it", g->id, m->member_id);
            remove_member(g, m);
        }
    }
    if (g->members) {
        /* The leader must be a member that rejoined. */
        group_member_t *leader = NULL;
        for (group_member_t *m = g->members; m; m = m->next)
            if (is_leader(g, m) && m->join_waiter)
                leader = m;
        for (group_member_t *m = g->members; m && !leader; m = m->next)
            if (m->join_waiter)
                leader = m;
        if (leader == NULL) {
            /* Nobody rejoined (static members only): wait another round for
             * their sessions to end. */
            g->join_kind = JOIN_DELAYED;
            evloop_timer_start(gc->loop, &g->join_timer, group_rebalance_timeout(g));
            return;
        }
        set_leader(g, leader->member_id);
    }
    g->generation++;
    g->new_member_added = false;
    free(g->protocol_name);
    g->protocol_name = NULL;
    if (g->members == NULL) {
        set_leader(g, NULL);
        transition(g, GS_EMPTY);
        LOG_INFO("group", "group %s with generation %d is now empty", g->id, g->generation);
        int16_t err = store_group(gc, g);
        if (err)
            LOG_WARN("group", "could not store the empty group %s (error %d)", g->id, err);
        return;
    }
    const char *sel = select_protocol(g);
    g->protocol_name = sel ? strdup(sel) : NULL;
    transition(g, GS_COMPLETING);
    LOG_INFO("group", "stabilized group %s generation %d (protocol %s, %d members, leader %s)", g->id,
             g->generation, g->protocol_name ? g->protocol_name : "-", g->n_members, g->leader_id);
    for (group_member_t *m = g->members; m; m = m->next) {
        m->is_new = false;
        m->pending_sync = true;
        member_touch(m);
        if (m->join_waiter)
            answer_join(g, m, m->join_waiter, g->leader_id, is_leader(g, m), false);
    }
    evloop_timer_start(gc->loop, &g->sync_timer, group_rebalance_timeout(g));
}

static void try_complete_join(group_t *g)
{
    if (g->state == GS_PREPARING && g->join_kind == JOIN_DELAYED && all_members_joined(g))
        complete_join(g);
}

static void join_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    group_t *g = t->arg;
    if (g->state != GS_PREPARING)
        return;
    if (g->join_kind == JOIN_INITIAL && g->new_member_added && g->join_remaining_ms > 0) {
        /* New members keep coming: wait a little more, within the rebalance timeout. */
        int64_t delay = cfg_long(g->gc, "group.initial.rebalance.delay.ms", 3000);
        int64_t d = delay < g->join_remaining_ms ? delay : g->join_remaining_ms;
        g->new_member_added = false;
        g->join_remaining_ms = g->join_remaining_ms - delay > 0 ? g->join_remaining_ms - delay : 0;
        evloop_timer_start(loop, t, d);
        return;
    }
    complete_join(g);
}

/* Members that joined but never sent SyncGroup within the rebalance timeout. */
static void sync_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    group_t *g = t->arg;
    if (g->state != GS_COMPLETING && g->state != GS_STABLE)
        return;
    bool removed = false;
    for (group_member_t *m = g->members, *next; m; m = next) {
        next = m->next;
        if (m->pending_sync) {
            LOG_INFO("group", "group %s: member %s sent no SyncGroup within the rebalance timeout; removing it",
                     g->id, m->member_id);
            if (m->sync_waiter)
                answer_error(m->sync_waiter, GROUP_KERR_UNKNOWN_MEMBER_ID, kstr_c(m->member_id));
            remove_member(g, m);
            removed = true;
        }
    }
    if (removed)
        prepare_rebalance(g, "members did not sync in time");
}

/* A member leaves (LeaveGroup) or dies (session timeout). */
static void remove_member_and_update_group(group_t *g, group_member_t *m, const char *reason)
{
    if (m->join_waiter)
        answer_error(m->join_waiter, GROUP_KERR_UNKNOWN_MEMBER_ID, kstr_c(m->member_id));
    if (m->sync_waiter)
        answer_error(m->sync_waiter, GROUP_KERR_UNKNOWN_MEMBER_ID, kstr_c(m->member_id));
    remove_member(g, m);
    switch (g->state) {
    case GS_STABLE:
    case GS_COMPLETING:
        maybe_prepare_rebalance(g, reason);
        break;
    case GS_PREPARING:
        try_complete_join(g);
        break;
    default:
        break;
    }
}

static void member_session_cb(evloop_t *loop, ev_timer_t *t)
{
    group_member_t *m = t->arg;
    if (m->join_waiter || m->sync_waiter) {
        /* Waiting for the coordinator, not the other way round: keep it. */
        evloop_timer_start(loop, t, m->session_timeout_ms > 0 ? m->session_timeout_ms : 1);
        return;
    }
    group_t *g = m->group;
    LOG_INFO("group", "member %s in group %s has failed (no heartbeat for %d ms); removing it", m->member_id,
             g->id, m->session_timeout_ms);
    remove_member_and_update_group(g, m, "member session timeout");
}

static void pending_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    pending_member_t *p = t->arg;
    group_t *g = p->group;
    pending_remove(g, p);
    try_complete_join(g);
}

static group_member_t *member_new(group_t *g, kstr_t member_id, const group_join_params_t *p)
{
    group_member_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->group = g;
    m->member_id = dup_kstr(member_id);
    m->instance_id = kstr_empty(p->instance_id) ? NULL : dup_kstr(p->instance_id);
    m->client_id = dup_kstr(p->client_id);
    m->client_host = strdup(p->client_host ? p->client_host : "");
    m->protocols = protocols_copy(p->protocols, p->n_protocols);
    m->n_protocols = p->n_protocols;
    m->session_timeout_ms = p->session_timeout_ms;
    m->rebalance_timeout_ms = p->rebalance_timeout_ms;
    evloop_timer_init(&m->session_timer, member_session_cb, m);
    if (m->member_id == NULL || (!kstr_empty(p->instance_id) && m->instance_id == NULL) ||
        m->client_id == NULL || m->client_host == NULL || m->protocols == NULL) {
        if (m->protocols == NULL)
            m->n_protocols = 0;
        member_free(g->gc, m);
        return NULL;
    }
    return m;
}

/* Kafka's updateMember: new protocols and timeouts, and the waiter for the join answer. */
static int member_update(group_member_t *m, const group_join_params_t *p, group_waiter_t *w)
{
    group_protocol_t *ps = protocols_copy(p->protocols, p->n_protocols);
    if (ps == NULL)
        return -1;
    protocols_free(m->protocols, m->n_protocols);
    m->protocols = ps;
    m->n_protocols = p->n_protocols;
    m->session_timeout_ms = p->session_timeout_ms;
    m->rebalance_timeout_ms = p->rebalance_timeout_ms;
    if (m->join_waiter && m->join_waiter != w) /* a retry from another connection replaces it */
        answer_error(m->join_waiter, GROUP_KERR_REBALANCE_IN_PROGRESS, kstr_c(m->member_id));
    m->join_waiter = w;
    w->member = m;
    w->is_sync = false;
    return 0;
}

static void add_member_and_rebalance(group_t *g, kstr_t member_id, const group_join_params_t *p,
                                     group_waiter_t *w)
{
    group_member_t *m = member_new(g, member_id, p);
    if (m == NULL) {
        answer_error(w, KERR_UNKNOWN_SERVER_ERROR, member_id);
        return;
    }
    if (g->n_members == 0) {
        free(g->protocol_type);
        g->protocol_type = dup_kstr(p->protocol_type);
    }
    if (g->state == GS_PREPARING && g->generation == 0)
        g->new_member_added = true;
    group_member_t **pp = &g->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    g->n_members++;
    if (g->leader_id == NULL)
        set_leader(g, m->member_id);
    m->is_new = true;
    m->join_waiter = w;
    w->member = m;
    w->is_sync = false;
    pending_member_t *pm = pending_find(g, member_id);
    if (pm)
        pending_remove(g, pm);
    member_touch(m);
    char reason[300];
    snprintf(reason, sizeof(reason), "adding new member %s", m->member_id);
    if (g->state == GS_PREPARING)
        try_complete_join(g);
    else
        maybe_prepare_rebalance(g, reason);
}

static void update_member_and_rebalance(group_t *g, group_member_t *m, const group_join_params_t *p,
                                        group_waiter_t *w)
{
    if (member_update(m, p, w) != 0) {
        answer_error(w, KERR_UNKNOWN_SERVER_ERROR, kstr_c(m->member_id));
        return;
    }
    char reason[300];
    snprintf(reason, sizeof(reason), "updating metadata for member %s", m->member_id);
    if (g->state == GS_PREPARING)
        try_complete_join(g);
    else
        maybe_prepare_rebalance(g, reason);
}

/* A static member came back with a new member id: Kafka's
 * updateStaticMemberAndRebalance. In a stable group whose chosen protocol would
 * not change, the member takes the old member's place without a rebalance. */
static void update_static_member(group_t *g, group_member_t *m, const char *new_id,
                                 const group_join_params_t *p, group_waiter_t *w)
{
    group_coordinator_t *gc = g->gc;
    char *old_leader = g->leader_id ? strdup(g->leader_id) : NULL;
    char *nid = strdup(new_id);
    group_protocol_t *ps = protocols_copy(p->protocols, p->n_protocols);
    if (nid == NULL || ps == NULL || (g->leader_id && old_leader == NULL)) {
        free(old_leader);
        free(nid);
        if (ps)
            protocols_free(ps, p->n_protocols);
        answer_error(w, KERR_UNKNOWN_SERVER_ERROR, kstr_c(new_id));
        return;
    }
    /* Fence whoever waits as the old member id. */
    if (m->join_waiter)
        answer_error(m->join_waiter, GROUP_KERR_FENCED_INSTANCE_ID, kstr_c(m->member_id));
    if (m->sync_waiter)
        answer_error(m->sync_waiter, GROUP_KERR_FENCED_INSTANCE_ID, kstr_c(m->member_id));
    bool was_leader = is_leader(g, m);
    LOG_INFO("group", "group %s: static member %s rejoined as %s (was %s)", g->id, m->instance_id, nid,
             m->member_id);
    free(m->member_id);
    m->member_id = nid;
    if (was_leader)
        set_leader(g, nid);
    protocols_free(m->protocols, m->n_protocols);
    m->protocols = ps;
    m->n_protocols = p->n_protocols;
    m->session_timeout_ms = p->session_timeout_ms;
    m->rebalance_timeout_ms = p->rebalance_timeout_ms;
    char *cid = dup_kstr(p->client_id);
    if (cid) {
        free(m->client_id);
        m->client_id = cid;
    }
    m->join_waiter = w;
    w->member = m;
    w->is_sync = false;
    member_touch(m);
    switch (g->state) {
    case GS_STABLE: {
        const char *sel = select_protocol(g);
        if (sel && g->protocol_name && strcmp(sel, g->protocol_name) == 0) {
            int16_t err = store_group(gc, g);
            if (err) {
                answer_error(w, err, kstr_c(nid));
                break;
            }
            /* The old leader id goes back, so a rejoining leader does not run a
             * pointless assignment a stable group would not hand out. */
            bool skip = was_leader && p->api_version >= 9;
            answer_join(g, m, w, old_leader, skip, skip);
        } else {
            maybe_prepare_rebalance(g, "a static member rejoined with another protocol");
        }
        break;
    }
    case GS_COMPLETING:
        maybe_prepare_rebalance(g, "a static member rejoined during the sync phase");
        break;
    case GS_PREPARING:
        try_complete_join(g);
        break;
    default:
        answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, kstr_c(nid));
        break;
    }
    free(old_leader);
}

static void make_member_id(kstr_t prefix, char *out, size_t outlen)
{
    kuuid_t u;
    topics_uuid_random(&u);
    const uint8_t *b = u.b;
    snprintf(out, outlen,
             "%.*s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             prefix.len > 200 ? 200 : (prefix.len > 0 ? (int)prefix.len : 0), prefix.ptr ? prefix.ptr : "",
             b[0], b[1], b[2], b[3], b[4], b[5], (b[6] & 0x0f) | 0x40, b[7], (b[8] & 0x3f) | 0x80, b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

static void join_new_member(group_t *g, const group_join_params_t *p, group_waiter_t *w)
{
    if (!supports_protocols(g, p)) {
        answer_error(w, GROUP_KERR_INCONSISTENT_GROUP_PROTOCOL, p->member_id);
        return;
    }
    bool is_static = !kstr_empty(p->instance_id);
    char id[320];
    make_member_id(is_static ? p->instance_id : p->client_id, id, sizeof(id));
    if (is_static) {
        group_member_t *old = static_member_find(g, p->instance_id);
        if (old) {
            update_static_member(g, old, id, p, w);
            return;
        }
    }
    int64_t max = cfg_long(g->gc, "group.max.size", INT32_MAX);
    int npending = 0;
    for (pending_member_t *pm = g->pending; pm; pm = pm->next)
        npending++;
    if (g->n_members + npending >= max) {
        answer_error(w, GROUP_KERR_GROUP_MAX_SIZE_REACHED, p->member_id);
        return;
    }
    if (!is_static && p->api_version >= 4) {
        /* KIP-394: hand out the id first; the member joins with it. */
        pending_member_t *pm = calloc(1, sizeof(*pm));
        if (pm == NULL || (pm->member_id = strdup(id)) == NULL) {
            free(pm);
            answer_error(w, KERR_UNKNOWN_SERVER_ERROR, p->member_id);
            return;
        }
        pm->group = g;
        pm->next = g->pending;
        g->pending = pm;
        evloop_timer_init(&pm->timer, pending_timer_cb, pm);
        evloop_timer_start(g->gc->loop, &pm->timer, p->session_timeout_ms);
        answer_error(w, GROUP_KERR_MEMBER_ID_REQUIRED, kstr_c(id));
        return;
    }
    add_member_and_rebalance(g, kstr_c(id), p, w);
}

static void join_known_member(group_t *g, const group_join_params_t *p, group_waiter_t *w)
{
    if (!supports_protocols(g, p)) {
        answer_error(w, GROUP_KERR_INCONSISTENT_GROUP_PROTOCOL, p->member_id);
        return;
    }
    if (pending_find(g, p->member_id)) {
        add_member_and_rebalance(g, p->member_id, p, w);
        return;
    }
    if (static_member_fenced(g, p->instance_id, p->member_id)) {
        answer_error(w, GROUP_KERR_FENCED_INSTANCE_ID, p->member_id);
        return;
    }
    group_member_t *m = member_find(g, p->member_id);
    if (m == NULL || (!kstr_empty(p->instance_id) && static_member_find(g, p->instance_id) == NULL)) {
        answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, p->member_id);
        return;
    }
    member_touch(m);
    switch (g->state) {
    case GS_PREPARING:
        update_member_and_rebalance(g, m, p, w);
        break;
    case GS_COMPLETING:
        if (member_matches(m, p)) {
            /* A retried join of this generation: the same answer again. */
            if (m->join_waiter && m->join_waiter != w)
                answer_error(m->join_waiter, GROUP_KERR_UNKNOWN_MEMBER_ID, kstr_c(m->member_id));
            w->member = NULL;
            answer_join(g, m, w, g->leader_id, is_leader(g, m), false);
        } else {
            update_member_and_rebalance(g, m, p, w);
        }
        break;
    case GS_STABLE:
        if (is_leader(g, m) || !member_matches(m, p)) {
            update_member_and_rebalance(g, m, p, w);
        } else {
            w->member = NULL;
            answer_join(g, m, w, g->leader_id, false, false);
        }
        break;
    default:
        answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, p->member_id);
        break;
    }
}

void group_join(group_coordinator_t *gc, const group_join_params_t *p0, group_waiter_t *w)
{
    group_join_params_t pp = *p0;
    const group_join_params_t *p = &pp;
    w->member = NULL;
    w->is_sync = false;
    if (pp.rebalance_timeout_ms < 0)
        pp.rebalance_timeout_ms = pp.session_timeout_ms;
    if (pp.member_id.len < 0)
        pp.member_id = kstr_c("");
    if (kstr_empty(p->group_id)) {
        answer_error(w, GROUP_KERR_INVALID_GROUP_ID, p->member_id);
        return;
    }
    int64_t min = cfg_long(gc, "group.min.session.timeout.ms", 6000);
    int64_t max = cfg_long(gc, "group.max.session.timeout.ms", 1800000);
    if (p->session_timeout_ms < min || p->session_timeout_ms > max) {
        answer_error(w, GROUP_KERR_INVALID_SESSION_TIMEOUT, p->member_id);
        return;
    }
    int16_t err = group_coordinator_ensure_topic(gc);
    if (err) {
        answer_error(w, err, p->member_id);
        return;
    }
    bool unknown = kstr_empty(p->member_id);
    group_t *g = group_find(gc, p->group_id);
    if (g == NULL) {
        if (!unknown) {
            answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, p->member_id);
            return;
        }
        g = group_create(gc, p->group_id);
        if (g == NULL) {
            answer_error(w, KERR_UNKNOWN_SERVER_ERROR, p->member_id);
            return;
        }
    }
    if (g->state == GS_DEAD) {
        answer_error(w, KERR_COORDINATOR_NOT_AVAILABLE, p->member_id);
        return;
    }
    if (unknown)
        join_new_member(g, p, w);
    else
        join_known_member(g, p, w);
}

void group_sync(group_coordinator_t *gc, const group_sync_params_t *p, group_waiter_t *w)
{
    w->member = NULL;
    w->is_sync = true;
    group_t *g = group_find(gc, p->group_id);
    if (g == NULL) {
        answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, p->member_id);
        return;
    }
    if (g->state == GS_DEAD) {
        answer_error(w, KERR_COORDINATOR_NOT_AVAILABLE, p->member_id);
        return;
    }
    if (static_member_fenced(g, p->instance_id, p->member_id)) {
        answer_error(w, GROUP_KERR_FENCED_INSTANCE_ID, p->member_id);
        return;
    }
    group_member_t *m = member_find(g, p->member_id);
    if (m == NULL) {
        answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, p->member_id);
        return;
    }
    if (p->generation_id != g->generation) {
        answer_error(w, GROUP_KERR_ILLEGAL_GENERATION, p->member_id);
        return;
    }
    if ((p->protocol_type.len >= 0 && !str_is(g->protocol_type, p->protocol_type)) ||
        (p->protocol_name.len >= 0 && !str_is(g->protocol_name, p->protocol_name))) {
        answer_error(w, GROUP_KERR_INCONSISTENT_GROUP_PROTOCOL, p->member_id);
        return;
    }
    group_result_t r;
    switch (g->state) {
    case GS_EMPTY:
        answer_error(w, GROUP_KERR_UNKNOWN_MEMBER_ID, p->member_id);
        return;
    case GS_PREPARING:
        answer_error(w, GROUP_KERR_REBALANCE_IN_PROGRESS, p->member_id);
        return;
    case GS_COMPLETING:
        if (m->sync_waiter && m->sync_waiter != w)
            answer_error(m->sync_waiter, GROUP_KERR_UNKNOWN_MEMBER_ID, kstr_c(m->member_id));
        m->sync_waiter = w;
        w->member = m;
        m->pending_sync = false;
        member_touch(m);
        if (!is_leader(g, m))
            return; /* the leader's SyncGroup answers it */
        for (group_member_t *x = g->members; x; x = x->next) {
            const group_assignment_in_t *a = NULL;
            for (int i = 0; i < p->n_assignments && !a; i++)
                if (str_is(x->member_id, p->assignments[i].member_id))
                    a = &p->assignments[i];
            int32_t len = a && a->assignment.len > 0 ? a->assignment.len : 0;
            uint8_t *copy = malloc((size_t)len + 1);
            if (copy == NULL) {
                reset_and_propagate_assignment_error(g, KERR_UNKNOWN_SERVER_ERROR);
                maybe_prepare_rebalance(g, "out of memory storing the assignment");
                return;
            }
            if (len)
                memcpy(copy, a->assignment.ptr, (size_t)len);
            free(x->assignment);
            x->assignment = copy;
            x->assignment_len = len;
        }
        transition(g, GS_STABLE);
        int16_t err = store_group(gc, g);
        if (err) {
            LOG_WARN("group", "storing group %s generation %d failed (error %d); rebalancing", g->id,
                     g->generation, err);
            g->state = GS_COMPLETING;
            reset_and_propagate_assignment_error(g, err);
            maybe_prepare_rebalance(g, "storing the group failed");
            return;
        }
        LOG_INFO("group", "assignment received from leader %s for group %s generation %d", m->member_id,
                 g->id, g->generation);
        for (group_member_t *x = g->members; x; x = x->next) {
            if (x->sync_waiter == NULL)
                continue;
            memset(&r, 0, sizeof(r));
            r.protocol_type = kstr_or_null(g->protocol_type);
            r.protocol_name = kstr_or_null(g->protocol_name);
            r.assignment.ptr = x->assignment;
            r.assignment.len = x->assignment_len;
            r.member_id = kstr_c(x->member_id);
            r.leader_id = kstr_or_empty(g->leader_id);
            r.generation_id = g->generation;
            answer(x->sync_waiter, &r);
        }
        return;
    case GS_STABLE:
        m->pending_sync = false;
        member_touch(m);
        memset(&r, 0, sizeof(r));
        r.protocol_type = kstr_or_null(g->protocol_type);
        r.protocol_name = kstr_or_null(g->protocol_name);
        r.assignment.ptr = m->assignment ? m->assignment : (const uint8_t *)"";
        r.assignment.len = m->assignment_len;
        r.member_id = kstr_c(m->member_id);
        r.leader_id = kstr_or_empty(g->leader_id);
        r.generation_id = g->generation;
        answer(w, &r);
        return;
    default:
        answer_error(w, KERR_COORDINATOR_NOT_AVAILABLE, p->member_id);
        return;
    }
}

void group_waiter_cancel(group_coordinator_t *gc, group_waiter_t *w)
{
    (void)gc;
    group_member_t *m = w->member;
    if (m == NULL)
        return;
    if (m->join_waiter == w)
        m->join_waiter = NULL;
    if (m->sync_waiter == w)
        m->sync_waiter = NULL;
    w->member = NULL;
    /* It no longer counts as rejoined; unless it comes back, its session ends. */
    member_touch(m);
}

int16_t group_heartbeat(group_coordinator_t *gc, kstr_t group_id, int32_t generation_id, kstr_t member_id,
                        kstr_t instance_id)
{
    group_t *g = group_find(gc, group_id);
    if (g == NULL)
        return GROUP_KERR_UNKNOWN_MEMBER_ID;
    if (g->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    if (static_member_fenced(g, instance_id, member_id))
        return GROUP_KERR_FENCED_INSTANCE_ID;
    group_member_t *m = member_find(g, member_id);
    if (m == NULL)
        return GROUP_KERR_UNKNOWN_MEMBER_ID;
    if (generation_id != g->generation)
        return GROUP_KERR_ILLEGAL_GENERATION;
    switch (g->state) {
    case GS_COMPLETING:
    case GS_STABLE:
        member_touch(m);
        return KERR_NONE;
    case GS_PREPARING:
        member_touch(m);
        return GROUP_KERR_REBALANCE_IN_PROGRESS;
    default:
        return GROUP_KERR_UNKNOWN_MEMBER_ID;
    }
}

int16_t group_leave(group_coordinator_t *gc, kstr_t group_id, kstr_t member_id, kstr_t instance_id,
                    kstr_t reason)
{
    group_t *g = group_find(gc, group_id);
    if (g == NULL)
        return GROUP_KERR_UNKNOWN_MEMBER_ID;
    if (g->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    group_member_t *m;
    if (!kstr_empty(instance_id)) {
        m = static_member_find(g, instance_id);
        if (m == NULL)
            return GROUP_KERR_UNKNOWN_MEMBER_ID;
        if (!kstr_empty(member_id) && !str_is(m->member_id, member_id))
            return GROUP_KERR_FENCED_INSTANCE_ID;
    } else {
        pending_member_t *pm = pending_find(g, member_id);
        if (pm) {
            pending_remove(g, pm);
            try_complete_join(g);
            return KERR_NONE;
        }
        m = member_find(g, member_id);
        if (m == NULL)
            return GROUP_KERR_UNKNOWN_MEMBER_ID;
    }
    char why[300];
    snprintf(why, sizeof(why), "member %s left the group (%.*s)", m->member_id,
             reason.len > 200 ? 200 : (reason.len > 0 ? (int)reason.len : 0), reason.ptr ? reason.ptr : "");
    LOG_INFO("group", "group %s: %s", g->id, why);
    remove_member_and_update_group(g, m, why);
    return KERR_NONE;
}

/* ---------------------------------------------------------------- offsets */

static bool topic_partition_exists(group_coordinator_t *gc, kstr_t topic, int32_t partition)
{
    if (gc->topics == NULL)
        return true;
    if (topic.len <= 0)
        return false;
    topic_t *tp = topics_find(gc->topics, topic.ptr, (size_t)topic.len);
    return tp != NULL && topics_partition(tp, partition) != NULL;
}

static int16_t validate_commit(group_t *g, const group_commit_params_t *p)
{
    if (g->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    if (p->generation_id >= 0 || !kstr_empty(p->member_id) || !kstr_empty(p->instance_id)) {
        if (static_member_fenced(g, p->instance_id, p->member_id))
            return GROUP_KERR_FENCED_INSTANCE_ID;
        group_member_t *m = member_find(g, p->member_id);
        if (m == NULL)
            return GROUP_KERR_UNKNOWN_MEMBER_ID;
        if (p->generation_id != g->generation)
            return GROUP_KERR_ILLEGAL_GENERATION;
        if (g->state == GS_COMPLETING)
            return GROUP_KERR_REBALANCE_IN_PROGRESS;
        member_touch(m);
        return KERR_NONE;
    }
    /* Only members may commit to a group that has members. */
    return g->state == GS_EMPTY ? KERR_NONE : GROUP_KERR_UNKNOWN_MEMBER_ID;
}

/* Checks each item (skipping those already failed) and adds its offset record to the batch. */
static void batch_put_offsets(group_coordinator_t *gc, const group_t *g, group_batch_t *b,
                              group_commit_item_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        group_commit_item_t *it = &items[i];
        if (it->error)
            continue;
        if (!topic_partition_exists(gc, it->topic, it->partition)) {
            it->error = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (it->metadata.len > GROUP_OFFSET_METADATA_MAX_BYTES) {
            it->error = GROUP_KERR_OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        if (it->commit_ts < 0)
            it->commit_ts = b->now;
        group_log_offset_value_t v = {.offset = it->offset, .leader_epoch = it->leader_epoch,
                                      .metadata = it->metadata, .commit_ts = it->commit_ts,
                                      .expire_ts = it->expire_ts};
        group_log_put_offset_key(&b->key, group_kid(g), it->topic, it->partition);
        group_log_put_offset_value(&b->val, &v);
        batch_add(b, false);
    }
}

void group_commit(group_coordinator_t *gc, const group_commit_params_t *p, group_commit_item_t *items, int n)
{
    int16_t err = KERR_NONE;
    group_t *g = NULL;
    if (kstr_empty(p->group_id)) {
        err = GROUP_KERR_INVALID_GROUP_ID;
    } else {
        g = group_find(gc, p->group_id);
        if (g == NULL) {
            if (p->generation_id < 0 || p->transactional) {
                g = group_create(gc, p->group_id);
                if (g == NULL)
                    err = KERR_UNKNOWN_SERVER_ERROR;
            } else {
                err = GROUP_KERR_ILLEGAL_GENERATION;
            }
        }
        if (g && !err && !p->transactional)
            err = validate_commit(g, p);
    }
    if (err) {
        for (int i = 0; i < n; i++)
            if (!items[i].error)
                items[i].error = err;
        return;
    }
    group_batch_t b;
    batch_init(&b);
    batch_put_offsets(gc, g, &b, items, n);
    int16_t werr = batch_commit(gc, g, &b);
    for (int i = 0; i < n; i++) {
        group_commit_item_t *it = &items[i];
        if (it->error)
            continue;
        if (werr) {
            it->error = werr;
            continue;
        }
        kstr_t md = it->metadata;
        if (group_offsets_put(g->offsets, it->topic.ptr, (size_t)it->topic.len, it->partition, it->offset,
                              it->leader_epoch, md.ptr, (size_t)(md.len > 0 ? md.len : 0), it->commit_ts,
                              it->expire_ts) != 0)
            it->error = KERR_UNKNOWN_SERVER_ERROR;
    }
}

/* ---------------------------------------------------------------- transactional offsets */

static group_txn_pending_t *txn_pending_get(group_t *g, int64_t producer_id, bool create)
{
    for (group_txn_pending_t *tp = g->txn_pending; tp; tp = tp->next)
        if (tp->producer_id == producer_id)
            return tp;
    if (!create)
        return NULL;
    group_txn_pending_t *tp = calloc(1, sizeof(*tp));
    if (tp == NULL || (tp->offsets = group_offsets_new()) == NULL) {
        free(tp);
        return NULL;
    }
    tp->producer_id = producer_id;
    tp->next = g->txn_pending;
    g->txn_pending = tp;
    return tp;
}

/* The producer's transaction ended: its offsets of group g become committed offsets, or go. */
static void txn_pending_end(group_t *g, int64_t producer_id, bool commit)
{
    group_txn_pending_t **pp = &g->txn_pending;
    while (*pp && (*pp)->producer_id != producer_id)
        pp = &(*pp)->next;
    group_txn_pending_t *tp = *pp;
    if (tp == NULL)
        return;
    *pp = tp->next;
    int n = commit ? group_offsets_count(tp->offsets) : 0;
    group_offset_t **all = n > 0 ? malloc((size_t)n * sizeof(*all)) : NULL;
    if (n > 0 && all == NULL)
        LOG_ERROR("group", "group %s: out of memory committing the offsets of producer %" PRId64, g->id,
                  producer_id);
    n = all ? group_offsets_sorted(tp->offsets, all, n) : 0;
    for (int k = 0; k < n; k++) {
        const group_offset_t *e = all[k];
        if (group_offsets_put(g->offsets, e->topic, e->topic_len, e->partition, e->offset, e->leader_epoch,
                              e->metadata, e->metadata_len, e->commit_ts, e->expire_ts) != 0)
            LOG_ERROR("group", "group %s: out of memory committing an offset of producer %" PRId64, g->id,
                      producer_id);
    }
    free(all);
    group_offsets_free(tp->offsets);
    free(tp);
}

/* Kafka's checks of a transactional commit: a member id and generation are checked when given. */
static int16_t validate_txn_commit(const group_t *g, const group_txn_commit_params_t *p)
{
    if (g->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    if (static_member_fenced(g, p->instance_id, p->member_id))
        return GROUP_KERR_FENCED_INSTANCE_ID;
    if (!kstr_empty(p->member_id) && member_find(g, p->member_id) == NULL)
        return GROUP_KERR_UNKNOWN_MEMBER_ID;
    if (p->generation_id >= 0 && p->generation_id != g->generation)
        return GROUP_KERR_ILLEGAL_GENERATION;
    return KERR_NONE;
}

void group_txn_commit(group_coordinator_t *gc, const group_txn_commit_params_t *p, group_commit_item_t *items,
                      int n)
{
    int16_t err = KERR_NONE;
    group_t *g = NULL;
    if (kstr_empty(p->group_id)) {
        err = GROUP_KERR_INVALID_GROUP_ID;
    } else if (p->producer_id < 0) {
        err = KERR_INVALID_REQUEST;
    } else {
        g = group_find(gc, p->group_id);
        if (g == NULL && (g = group_create(gc, p->group_id)) == NULL)
            err = KERR_UNKNOWN_SERVER_ERROR;
        if (g && !err)
            err = validate_txn_commit(g, p);
    }
    if (err) {
        for (int i = 0; i < n; i++)
            if (!items[i].error)
                items[i].error = err;
        return;
    }
    group_batch_t b;
    batch_init(&b);
    rb_builder_set_producer(&b.rb, p->producer_id, p->producer_epoch, -1, true);
    batch_put_offsets(gc, g, &b, items, n);
    bool any = b.count > 0;
    int16_t werr = batch_append(gc, g, &b, true);
    group_txn_pending_t *tp = any && !werr ? txn_pending_get(g, p->producer_id, true) : NULL;
    for (int i = 0; i < n; i++) {
        group_commit_item_t *it = &items[i];
        if (it->error)
            continue;
        kstr_t md = it->metadata;
        if (werr)
            it->error = werr;
        else if (tp == NULL ||
                 group_offsets_put(tp->offsets, it->topic.ptr, (size_t)it->topic.len, it->partition, it->offset,
                                   it->leader_epoch, md.ptr, (size_t)(md.len > 0 ? md.len : 0), it->commit_ts,
                                   it->expire_ts) != 0)
            it->error = KERR_UNKNOWN_SERVER_ERROR;
    }
}

/* The groups of one __consumer_offsets partition (every group with partition < 0). */
static void txn_end_in_partition(group_coordinator_t *gc, int32_t partition, int64_t producer_id, bool commit)
{
    for (int i = 0; i < GROUP_HASH_SIZE; i++)
        for (group_t *g = gc->buckets[i]; g; g = g->hnext)
            if (g->txn_pending && txn_pending_get(g, producer_id, false) &&
                (partition < 0 || group_partition_of(gc, g) == partition))
                txn_pending_end(g, producer_id, commit);
}

void group_coordinator_txn_complete(group_coordinator_t *gc, int32_t partition, int64_t producer_id, bool commit)
{
    txn_end_in_partition(gc, partition, producer_id, commit);
}

bool group_has_pending_txn_offset(group_coordinator_t *gc, kstr_t group_id, kstr_t topic, int32_t partition)
{
    group_t *g = group_find(gc, group_id);
    if (g == NULL || topic.len <= 0)
        return false;
    for (group_txn_pending_t *tp = g->txn_pending; tp; tp = tp->next)
        if (group_offsets_get(tp->offsets, topic.ptr, (size_t)topic.len, partition))
            return true;
    return false;
}

static void offset_view(const group_offset_t *e, group_offset_view_t *v)
{
    v->topic = kstrn(e->topic, e->topic_len);
    v->partition = e->partition;
    v->offset = e->offset;
    v->leader_epoch = e->leader_epoch;
    v->metadata = kstrn(e->metadata, e->metadata_len);
}

int group_fetch_offset(group_coordinator_t *gc, kstr_t group_id, kstr_t topic, int32_t partition,
                       group_offset_view_t *out)
{
    group_t *g = group_find(gc, group_id);
    if (g == NULL || topic.len < 0)
        return 0;
    group_offset_t *e = group_offsets_get(g->offsets, topic.ptr, (size_t)topic.len, partition);
    if (e == NULL)
        return 0;
    offset_view(e, out);
    return 1;
}

int group_fetch_all_offsets(group_coordinator_t *gc, kstr_t group_id, group_offset_view_t *out, int cap)
{
    group_t *g = group_find(gc, group_id);
    if (g == NULL)
        return 0;
    int n = group_offsets_count(g->offsets);
    if (cap <= 0 || n == 0)
        return n;
    group_offset_t **all = malloc((size_t)n * sizeof(*all));
    if (all == NULL)
        return 0;
    int got = group_offsets_sorted(g->offsets, all, n);
    for (int i = 0; i < got && i < cap; i++)
        offset_view(all[i], &out[i]);
    free(all);
    return n;
}

/* ---- subscriptions (for OffsetDelete and expiry) ---- */

typedef struct sub_match {
    kstr_t topic;
    bool found;
} sub_match_t;

static void sub_match_cb(void *arg, kstr_t t)
{
    sub_match_t *s = arg;
    if (t.len == s->topic.len && (t.len == 0 || memcmp(t.ptr, s->topic.ptr, (size_t)t.len) == 0))
        s->found = true;
}

/* Whether some member's consumer subscription names the topic; an unknown
 * subscription (not the consumer protocol, or unparsable) counts as yes. */
static bool group_subscribed_to(const group_t *g, kstr_t topic)
{
    if (g->protocol_type == NULL || strcmp(g->protocol_type, "consumer") != 0 || g->protocol_name == NULL)
        return true;
    sub_match_t s = {topic, false};
    for (group_member_t *m = g->members; m; m = m->next) {
        kbytes_t md = member_metadata(m, g->protocol_name);
        if (group_log_subscription_topics(md.ptr, (size_t)md.len, sub_match_cb, &s) != 0)
            return true;
        if (s.found)
            return true;
    }
    return false;
}

static bool group_subscriptions_known(const group_t *g)
{
    if (g->protocol_type == NULL || strcmp(g->protocol_type, "consumer") != 0 || g->protocol_name == NULL)
        return false;
    sub_match_t s = {kstr_c(""), false};
    for (group_member_t *m = g->members; m; m = m->next) {
        kbytes_t md = member_metadata(m, g->protocol_name);
        if (group_log_subscription_topics(md.ptr, (size_t)md.len, sub_match_cb, &s) != 0)
            return false;
    }
    return true;
}

/* Removes offsets (with tombstones). `del` holds the entries to drop. */
static int16_t delete_offsets(group_coordinator_t *gc, group_t *g, group_offset_t **del, int n, bool group_too)
{
    group_batch_t b;
    batch_init(&b);
    for (int i = 0; i < n; i++) {
        group_log_put_offset_key(&b.key, group_kid(g), kstrn(del[i]->topic, del[i]->topic_len), del[i]->partition);
        batch_add(&b, true);
    }
    if (group_too) {
        group_log_put_group_key(&b.key, group_kid(g));
        batch_add(&b, true);
    }
    int16_t err = batch_commit(gc, g, &b);
    for (int i = 0; i < n; i++)
        group_offsets_delete(g->offsets, del[i]->topic, del[i]->topic_len, del[i]->partition);
    return err;
}

int16_t group_delete_offsets(group_coordinator_t *gc, kstr_t group_id, group_offset_delete_item_t *items, int n)
{
    if (kstr_empty(group_id))
        return GROUP_KERR_INVALID_GROUP_ID;
    group_t *g = group_find(gc, group_id);
    if (g == NULL || g->state == GS_DEAD)
        return GROUP_KERR_GROUP_ID_NOT_FOUND;
    bool check_subscription = false;
    if (g->state != GS_EMPTY && g->protocol_type != NULL) {
        if (strcmp(g->protocol_type, "consumer") != 0)
            return GROUP_KERR_NON_EMPTY_GROUP;
        check_subscription = true;
    }
    group_offset_t **del = calloc((size_t)(n > 0 ? n : 1), sizeof(*del));
    if (del == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    int nd = 0;
    for (int i = 0; i < n; i++) {
        group_offset_delete_item_t *it = &items[i];
        if (!topic_partition_exists(gc, it->topic, it->partition)) {
            it->error = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (check_subscription && group_subscribed_to(g, it->topic)) {
            it->error = GROUP_KERR_GROUP_SUBSCRIBED_TO_TOPIC;
            continue;
        }
        it->error = KERR_NONE;
        group_offset_t *e = group_offsets_get(g->offsets, it->topic.ptr, (size_t)it->topic.len, it->partition);
        bool dup = false;
        for (int j = 0; j < nd && e; j++)
            dup |= del[j] == e;
        if (e && !dup)
            del[nd++] = e;
    }
    int16_t err = nd ? delete_offsets(gc, g, del, nd, false) : KERR_NONE;
    free(del);
    if (err)
        for (int i = 0; i < n; i++)
            if (items[i].error == KERR_NONE)
                items[i].error = err;
    return KERR_NONE;
}

/* ---------------------------------------------------------------- listing */

int group_list(group_coordinator_t *gc, group_listing_t *out, int cap)
{
    int n = 0;
    for (int i = 0; i < GROUP_HASH_SIZE; i++)
        for (group_t *g = gc->buckets[i]; g; g = g->hnext) {
            if (g->state == GS_DEAD)
                continue;
            if (n < cap) {
                out[n].group_id = group_kid(g);
                out[n].protocol_type = kstr_or_empty(g->protocol_type);
                out[n].state = kstr_c(state_names[g->state]);
            }
            n++;
        }
    return n;
}

int group_describe(group_coordinator_t *gc, kstr_t group_id, group_description_t *d, group_member_view_t *members,
                   int cap)
{
    group_t *g = group_find(gc, group_id);
    d->state = kstr_c("Dead");
    d->protocol_type = kstr_c("");
    d->protocol_name = kstr_c("");
    d->n_members = 0;
    if (g == NULL)
        return 0;
    bool stable = g->state == GS_STABLE;
    d->state = kstr_c(state_names[g->state]);
    d->protocol_type = kstr_or_empty(g->protocol_type);
    d->protocol_name = kstr_or_empty(stable ? g->protocol_name : NULL);
    d->n_members = g->n_members;
    int i = 0;
    for (group_member_t *m = g->members; m && i < cap; m = m->next, i++) {
        group_member_view_t *v = &members[i];
        v->member_id = kstr_c(m->member_id);
        v->instance_id = kstr_or_null(m->instance_id);
        v->client_id = kstr_c(m->client_id);
        v->client_host = kstr_c(m->client_host);
        v->metadata.ptr = (const uint8_t *)"";
        v->metadata.len = 0;
        v->assignment = v->metadata;
        if (stable) {
            v->metadata = member_metadata(m, g->protocol_name);
            v->assignment.ptr = m->assignment ? m->assignment : (const uint8_t *)"";
            v->assignment.len = m->assignment_len;
        }
    }
    return g->n_members;
}

int16_t group_delete(group_coordinator_t *gc, kstr_t group_id)
{
    if (kstr_empty(group_id))
        return GROUP_KERR_INVALID_GROUP_ID;
    group_t *g = group_find(gc, group_id);
    if (g == NULL || g->state == GS_DEAD)
        return GROUP_KERR_GROUP_ID_NOT_FOUND;
    if (g->state != GS_EMPTY)
        return GROUP_KERR_NON_EMPTY_GROUP;
    int n = group_offsets_count(g->offsets);
    group_offset_t **all = malloc((size_t)(n > 0 ? n : 1) * sizeof(*all));
    if (all == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    n = group_offsets_sorted(g->offsets, all, n);
    transition(g, GS_DEAD);
    int16_t err = delete_offsets(gc, g, all, n, true);
    free(all);
    if (err)
        LOG_WARN("group", "tombstones for deleted group %s were not written (error %d)", g->id, err);
    LOG_INFO("group", "deleted group %s and its %d offsets", g->id, n);
    group_unlink_free(g);
    return KERR_NONE;
}

int group_coordinator_group_count(const group_coordinator_t *gc)
{
    return gc->ngroups;
}

/* ---------------------------------------------------------------- expiry */

int group_coordinator_expire(group_coordinator_t *gc, int64_t now)
{
    int64_t retention = retention_ms(gc);
    int expired = 0;
    for (int i = 0; i < GROUP_HASH_SIZE; i++) {
        for (group_t *g = gc->buckets[i], *next; g; g = next) {
            next = g->hnext;
            int mode = 0; /* 0: none, 1: all from state time, 2: unsubscribed, 3: all from commit time */
            if (g->protocol_type != NULL && g->state == GS_EMPTY)
                mode = 1;
            else if (g->protocol_type != NULL && g->state == GS_STABLE && group_subscriptions_known(g))
                mode = 2;
            else if (g->protocol_type == NULL)
                mode = 3;
            int n = group_offsets_count(g->offsets);
            group_offset_t **all = NULL;
            int nd = 0;
            if (mode && n > 0 && (all = malloc((size_t)n * sizeof(*all))) != NULL) {
                n = group_offsets_sorted(g->offsets, all, n);
                for (int k = 0; k < n; k++) {
                    group_offset_t *e = all[k];
                    if (mode == 2 && group_subscribed_to(g, kstrn(e->topic, e->topic_len)))
                        continue;
                    int64_t base = mode == 1 && g->state_ts > 0 ? g->state_ts : e->commit_ts;
                    bool gone = e->expire_ts >= 0 ? now >= e->expire_ts : now - base >= retention;
                    if (gone)
                        all[nd++] = e;
                }
            }
            bool dead = g->state == GS_EMPTY && group_offsets_count(g->offsets) == nd && g->pending == NULL &&
                        g->txn_pending == NULL;
            if (nd || dead) {
                if (nd)
                    LOG_INFO("group", "expired %d offsets of group %s", nd, g->id);
                expired += nd;
                if (dead)
                    transition(g, GS_DEAD);
                int16_t err = delete_offsets(gc, g, all, nd, dead);
                if (err)
                    LOG_WARN("group", "tombstones for group %s were not written (error %d)", g->id, err);
            }
            free(all);
            if (dead) {
                LOG_INFO("group", "group %s is empty without offsets; removed", g->id);
                group_unlink_free(g);
            }
        }
    }
    return expired;
}

static void expire_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    group_coordinator_t *gc = t->arg;
    group_coordinator_expire(gc, evloop_wall_ms());
    evloop_timer_start(loop, t, cfg_long(gc, "offsets.retention.check.interval.ms", 600000));
}

/* ---------------------------------------------------------------- loading */

static void load_group_value(group_coordinator_t *gc, group_t *g, const group_log_group_value_t *v0)
{
    group_log_group_value_t v = *v0;
    group_clear_members(g);
    free(g->protocol_type);
    free(g->protocol_name);
    g->protocol_type = v.protocol_type.len > 0 ? dup_kstr(v.protocol_type) : NULL;
    g->protocol_name = v.protocol.len >= 0 ? dup_kstr(v.protocol) : NULL;
    set_leader(g, NULL);
    if (v.leader.len >= 0) {
        char *l = dup_kstr(v.leader);
        set_leader(g, l);
        free(l);
    }
    g->generation = v.generation;
    g->state_ts = v.state_ts > 0 ? v.state_ts : evloop_wall_ms();
    group_member_t **tail = &g->members;
    for (int32_t i = 0; i < v.n_members; i++) {
        group_log_member_t lm;
        if (group_log_member_next(&v, &lm) != 0) {
            LOG_WARN("group", "group %s: malformed member record; members dropped", g->id);
            break;
        }
        group_protocol_in_t proto = {kstr_or_empty(g->protocol_name), lm.subscription};
        group_join_params_t jp = {.member_id = lm.member_id, .instance_id = lm.instance_id,
                                  .client_id = lm.client_id, .session_timeout_ms = lm.session_timeout_ms,
                                  .rebalance_timeout_ms = lm.rebalance_timeout_ms, .n_protocols = 1,
                                  .protocols = &proto};
        char *host = dup_kstr(lm.client_host);
        jp.client_host = host;
        group_member_t *m = host ? member_new(g, lm.member_id, &jp) : NULL;
        free(host);
        if (m == NULL)
            break;
        if (lm.assignment.len > 0 && (m->assignment = malloc((size_t)lm.assignment.len)) != NULL) {
            memcpy(m->assignment, lm.assignment.ptr, (size_t)lm.assignment.len);
            m->assignment_len = lm.assignment.len;
        }
        *tail = m;
        tail = &m->next;
        g->n_members++;
    }
    (void)gc;
}

/* One record of __consumer_offsets; txn_pid >= 0 when it comes from a producer's transactional batch
 * (offsets pending until that producer's marker). */
static void load_record(group_coordinator_t *gc, const rb_record_t *rec, int64_t txn_pid)
{
    if (rec->key == NULL || rec->key_len <= 0)
        return;
    group_log_key_t k;
    int kind = group_log_decode_key(rec->key, (size_t)rec->key_len, &k);
    if (kind < 0) {
        LOG_WARN("group", "skipping a malformed key in %s", GROUP_LOG_TOPIC);
        return;
    }
    if (kind == GROUP_LOG_KEY_OTHER)
        return;
    group_t *g = group_find(gc, k.group);
    bool tombstone = rec->value == NULL || rec->value_len < 0;
    if (kind == GROUP_LOG_KEY_OFFSET) {
        if (tombstone) {
            if (g && txn_pid < 0)
                group_offsets_delete(g->offsets, k.topic.ptr, (size_t)k.topic.len, k.partition);
            return;
        }
        group_log_offset_value_t v;
        if (group_log_decode_offset_value(rec->value, (size_t)rec->value_len, &v) != 0) {
            LOG_WARN("group", "skipping a malformed offset record of group %.*s", k.group.len, k.group.ptr);
            return;
        }
        if (g == NULL && (g = group_create(gc, k.group)) == NULL)
            return;
        group_txn_pending_t *tp = txn_pid >= 0 ? txn_pending_get(g, txn_pid, true) : NULL;
        if (txn_pid >= 0 && tp == NULL)
            return;
        group_offsets_put(tp ? tp->offsets : g->offsets, k.topic.ptr, (size_t)k.topic.len, k.partition, v.offset, v.leader_epoch,
                          v.metadata.ptr, (size_t)(v.metadata.len > 0 ? v.metadata.len : 0), v.commit_ts,
                          v.expire_ts);
        return;
    }
    if (tombstone) {
        if (g) {
            group_clear_members(g);
            free(g->protocol_type);
            free(g->protocol_name);
            g->protocol_type = g->protocol_name = NULL;
            set_leader(g, NULL);
            g->generation = 0;
        }
        return;
    }
    group_log_group_value_t v;
    if (group_log_decode_group_value(rec->value, (size_t)rec->value_len, &v) != 0) {
        LOG_WARN("group", "skipping a malformed metadata record of group %.*s", k.group.len, k.group.ptr);
        return;
    }
    if (g == NULL && (g = group_create(gc, k.group)) == NULL)
        return;
    load_group_value(gc, g, &v);
}

/* A transaction marker in __consumer_offsets: the producer's pending offsets there end. */
static void load_marker(group_coordinator_t *gc, const uint8_t *batch, size_t len)
{
    int64_t pid = rb_producer_id(batch);
    const uint8_t *recs;
    size_t rlen;
    if (pid < 0 || rb_records_plain(batch, len, &gc->scratch, LOAD_MAX_DECOMPRESSED, &recs, &rlen) != 0)
        return;
    rb_iter_t it;
    rb_iter_init(&it, recs, rlen, rb_records_count(batch));
    rb_record_t rec;
    bool commit;
    if (rb_iter_next(&it, &rec) == 1 && ptxn_decode_control_key(rec.key, rec.key_len, &commit) == 1)
        txn_end_in_partition(gc, gc->loading, pid, commit);
}

static void load_batch(group_coordinator_t *gc, const uint8_t *batch, size_t len)
{
    if (rb_magic(batch) != 2)
        return;
    if (rb_attributes(batch) & RB_ATTR_CONTROL) {
        load_marker(gc, batch, len);
        return;
    }
    int64_t txn_pid = (rb_attributes(batch) & RB_ATTR_TRANSACTIONAL) ? rb_producer_id(batch) : -1;
    const uint8_t *recs;
    size_t rlen;
    if (rb_records_plain(batch, len, &gc->scratch, LOAD_MAX_DECOMPRESSED, &recs, &rlen) != 0) {
        LOG_WARN("group", "skipping an unreadable batch at offset %" PRId64 " of %s", rb_base_offset(batch),
                 GROUP_LOG_TOPIC);
        return;
    }
    rb_iter_t it;
    rb_iter_init(&it, recs, rlen, rb_records_count(batch));
    rb_record_t rec;
    int rc;
    while ((rc = rb_iter_next(&it, &rec)) == 1)
        load_record(gc, &rec, txn_pid);
    if (rc < 0)
        LOG_WARN("group", "malformed records in the batch at offset %" PRId64 " of %s", rb_base_offset(batch),
                 GROUP_LOG_TOPIC);
}

static void load_batch_cb(void *arg, const uint8_t *batch, size_t len)
{
    load_batch(arg, batch, len);
}

static int load_partition(group_coordinator_t *gc, partition_t *p, int64_t *nbatches)
{
    int64_t chunk_max = cfg_long(gc, "offsets.load.buffer.size", 5242880);
    if (chunk_max < 65536)
        chunk_max = 65536;
    if (chunk_max > (1 << 30))
        chunk_max = 1 << 30;
    gc->loading = p->index;
    int64_t n = log_replay(p->log, (int32_t)chunk_max, load_batch_cb, gc);
    gc->loading = -1;
    if (n < 0) {
        LOG_ERROR("group", "reading %s-%d failed: %s", GROUP_LOG_TOPIC, p->index, log_rc_str((int)n));
        return -1;
    }
    *nbatches += n;
    return 0;
}

static int32_t group_partition_of(group_coordinator_t *gc, const group_t *g)
{
    return group_coordinator_partition(gc, kstrn(g->id, g->id_len));
}

/* Loaded groups (all, or those of one partition) settle: members are back until their sessions
 * end. Returns the number of groups kept; *members counts their members. */
static int settle_groups(group_coordinator_t *gc, int32_t partition, int *members)
{
    int ngroups = 0;
    for (int i = 0; i < GROUP_HASH_SIZE; i++) {
        for (group_t *g = gc->buckets[i], *next; g; g = next) {
            next = g->hnext;
            if (partition >= 0 && group_partition_of(gc, g) != partition)
                continue;
            if (g->members && g->protocol_name) {
                g->state = GS_STABLE;
                for (group_member_t *m = g->members; m; m = m->next) {
                    member_touch(m);
                    (*members)++;
                }
                /* Loaded members owe no SyncGroup. */
                if (g->leader_id == NULL || member_find(g, kstr_c(g->leader_id)) == NULL)
                    set_leader(g, g->members->member_id);
            } else {
                group_clear_members(g);
                g->state = GS_EMPTY;
                if (group_offsets_count(g->offsets) == 0 && g->protocol_type == NULL && g->txn_pending == NULL) {
                    group_unlink_free(g);
                    continue;
                }
            }
            ngroups++;
        }
    }
    return ngroups;
}

int group_coordinator_load(group_coordinator_t *gc)
{
    if (gc->topics == NULL || gc->cluster_mode)
        return 0;
    topic_t *tp = topics_find(gc->topics, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC));
    if (tp == NULL)
        return 0;
    int rc = 0;
    int64_t nbatches = 0;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = topics_partition(tp, i);
        if (p && load_partition(gc, p, &nbatches) != 0)
            rc = -1;
    }
    int nmembers = 0;
    int ngroups = settle_groups(gc, -1, &nmembers);
    LOG_INFO("group", "loaded %d groups (%d members) from %" PRId64 " batches of %s", ngroups, nmembers,
             nbatches, GROUP_LOG_TOPIC);
    return rc;
}

void group_coordinator_set_cluster_mode(group_coordinator_t *gc) { gc->cluster_mode = true; }

bool group_coordinator_owns(group_coordinator_t *gc, kstr_t group_id)
{
    if (!gc->cluster_mode)
        return true;
    int32_t p = group_coordinator_partition(gc, group_id);
    return p >= 0 && p < gc->nowned && gc->owned[p];
}

void group_coordinator_elected(group_coordinator_t *gc, partition_t *p)
{
    if (!gc->cluster_mode || p->index < 0)
        return;
    if (p->index >= gc->nowned) {
        int32_t n = p->topic->npartitions > p->index ? p->topic->npartitions : p->index + 1;
        uint8_t *o = realloc(gc->owned, (size_t)n);
        if (o == NULL)
            return;
        memset(o + gc->nowned, 0, (size_t)(n - gc->nowned));
        gc->owned = o;
        gc->nowned = n;
    }
    if (gc->owned[p->index])
        return;
    int64_t nbatches = 0;
    int nmembers = 0;
    if (load_partition(gc, p, &nbatches) != 0)
        LOG_ERROR("group", "%s-%d: loaded what could be read", GROUP_LOG_TOPIC, p->index);
    int ngroups = settle_groups(gc, p->index, &nmembers);
    gc->owned[p->index] = 1;
    LOG_INFO("group", "coordinating the groups of %s-%d: %d groups (%d members) from %" PRId64 " batches",
             GROUP_LOG_TOPIC, p->index, ngroups, nmembers, nbatches);
}

void group_coordinator_resigned(group_coordinator_t *gc, int32_t partition)
{
    if (!gc->cluster_mode || partition < 0 || partition >= gc->nowned || !gc->owned[partition])
        return;
    gc->owned[partition] = 0;
    int n = 0;
    for (int i = 0; i < GROUP_HASH_SIZE; i++) {
        for (group_t *g = gc->buckets[i], *next; g; g = next) {
            next = g->hnext;
            if (group_partition_of(gc, g) == partition) {
                group_unlink_free(g); /* waiting members are told to find the coordinator again */
                n++;
            }
        }
    }
    LOG_INFO("group", "no longer coordinating the groups of %s-%d (%d unloaded)", GROUP_LOG_TOPIC, partition, n);
}

/* ---------------------------------------------------------------- lifecycle */

group_coordinator_t *group_coordinator_create(evloop_t *loop, topics_t *topics, const broker_config_t *config)
{
    group_coordinator_t *gc = calloc(1, sizeof(*gc));
    if (gc == NULL)
        return NULL;
    gc->loop = loop;
    gc->topics = topics;
    gc->config = config;
    gc->loading = -1;
    buf_init(&gc->scratch);
    evloop_timer_init(&gc->expire_timer, expire_timer_cb, gc);
    evloop_timer_start(loop, &gc->expire_timer, cfg_long(gc, "offsets.retention.check.interval.ms", 600000));
    return gc;
}

void group_coordinator_destroy(group_coordinator_t *gc)
{
    if (gc == NULL)
        return;
    evloop_timer_stop(gc->loop, &gc->expire_timer);
    for (int i = 0; i < GROUP_HASH_SIZE; i++) {
        while (gc->buckets[i]) {
            group_t *g = gc->buckets[i];
            gc->buckets[i] = g->hnext;
            group_free(g);
        }
    }
    buf_free(&gc->scratch);
    free(gc->owned);
    free(gc);
}
