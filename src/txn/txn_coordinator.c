/*
 * txn_coordinator.c - producer-id blocks and the transaction coordinator:
 * InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
 * EndTxn, timeouts, __transaction_state persistence and replay. The record
 * format and file layout are in txn_coordinator.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/broker_client.h"
#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "common/arena.h"
#include "common/fsutil.h"
#include "common/logger.h"
#include "group/group_coordinator.h"
#include "group/group_log.h"
#include "protocol/kafka_messages.h"
#include "protocol/kerr.h"
#include "protocol/record_batch.h"
#include "txn/partition_txn.h"
#include "txn/txn_coordinator.h"
#include "txn/txn_markers.h"

#define TXN_HASH_SIZE 256
#define TXN_LOAD_CHUNK (4 << 20)
#define TXN_MAX_DECOMPRESSED ((size_t)64 << 20)
#define TXN_OPERATION_NOT_ATTEMPTED 55
#define TXN_WRITE_TXN_MARKERS_KEY 27
#define TXN_WRITE_TXN_MARKERS_VERSION 1
#define TXN_MARKER_RETRY_MIN_MS 100
#define TXN_MARKER_RETRY_MAX_MS 2000

struct txn_mk;

typedef struct txn_pending_offset {
    char *group;
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata; /* NULL: null */
} txn_pending_offset_t;

typedef struct txn {
    char *id;
    size_t id_len;
    int64_t pid;
    int16_t epoch;
    int32_t timeout_ms;
    int status;
    int64_t start_ms, last_update_ms;
    txn_partition_ref_t *parts; /* topic strings owned (malloc'd) */
    int nparts, capparts;
    txn_pending_offset_t *offsets;
    int noffsets, capoffsets;
    struct txn_mk *mk; /* cluster mode: markers being written (PrepareCommit/PrepareAbort) */
    struct txn *hnext;
} txn_t;

struct txn_coordinator {
    evloop_t *loop;
    topics_t *topics;
    struct group_coordinator *groups;
    const broker_config_t *config;
    char *pid_path;
    int64_t next_pid, pid_limit;
    bool pid_failed;
    int32_t pid_tag; /* cluster mode: this broker's id, in the low bits of every producer id; -1 */
    txn_t *buckets[TXN_HASH_SIZE];
    int ntxns;
    ev_timer_t abort_timer;
    ev_timer_t producer_timer; /* producer.id.expiration.ms on the partitions */
    buf_t scratch;
    /* Cluster mode: transactional ids live with the __transaction_state partitions this broker
     * leads; markers go to the leaders of the transactions' partitions. */
    bool cluster_mode;
    uint8_t *owned;       /* per partition: its transactional ids are loaded here */
    int32_t *owned_epoch; /* its leader epoch when this broker took it: the coordinator epoch */
    int32_t nowned;
    struct cluster *cluster;
    broker_client_t *peers;
    int32_t broker_id;
    int64_t request_timeout_ms;
};

/* Cluster mode: the markers of one transaction in PrepareCommit/PrepareAbort, from the PrepareX
 * record reaching the ISR until every partition has its marker. */
enum { MK_PENDING, MK_INFLIGHT, MK_DONE };

typedef struct txn_mk_req {
    struct txn_mk_req *next;
    struct txn_mk *mk;
    bclient_req_t *req;
    int32_t broker;
    int n;
    int idx[]; /* indexes into the transaction's partitions */
} txn_mk_req_t;

typedef struct txn_mk {
    txn_coordinator_t *tc;
    txn_t *t;
    bool commit;
    bool fenced;                 /* a newer coordinator took over: stop */
    int32_t coordinator_epoch;
    uint8_t *state;              /* per t->parts entry */
    int32_t *leader;             /* per entry: where its marker went this round */
    repl_hw_wait_t prepared;      /* the PrepareX record reaching the ISR */
    txn_marker_write_t *local;   /* markers on partitions this broker leads */
    txn_marker_target_t *local_targets;
    int *local_idx;
    int nlocal;
    txn_mk_req_t *reqs;          /* WriteTxnMarkers requests in flight */
    int inflight;
    ev_timer_t retry;
    int64_t backoff_ms;
} txn_mk_t;

static void mk_free(txn_mk_t *mk);

static const char *const status_names[] = {"Empty",          "Ongoing",        "PrepareCommit",
                                           "PrepareAbort",   "CompleteCommit", "CompleteAbort",
                                           "Dead",           "PrepareEpochFence"};

const char *txn_status_name(int status)
{
    return status >= 0 && status <= 7 ? status_names[status] : "Unknown";
}

static int64_t cfg_long(const txn_coordinator_t *tc, const char *key, int64_t def)
{
    return tc->config ? broker_config_get_long(tc->config, key) : def;
}

static kstr_t kstrn(const char *p, size_t n)
{
    kstr_t s = {p, (int32_t)n};
    return s;
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

static bool kstr_same(kstr_t a, const char *b, size_t blen)
{
    return a.len >= 0 && (size_t)a.len == blen && (blen == 0 || memcmp(a.ptr, b, blen) == 0);
}

int32_t txn_partition_for(const char *id, size_t len, int32_t npartitions)
{
    return group_log_partition_for(id, len, npartitions);
}

int32_t txn_coordinator_partition(txn_coordinator_t *tc, kstr_t transactional_id)
{
    topic_t *tp = tc->topics ? topics_find(tc->topics, TXN_LOG_TOPIC, strlen(TXN_LOG_TOPIC)) : NULL;
    int32_t n = tp ? tp->npartitions : (int32_t)cfg_long(tc, "transaction.state.log.num.partitions", 50);
    return txn_partition_for(transactional_id.ptr ? transactional_id.ptr : "",
                             (size_t)(transactional_id.len > 0 ? transactional_id.len : 0), n);
}

/* ---------------------------------------------------------------- producer ids */

static int pid_block_write(txn_coordinator_t *tc, int64_t limit)
{
    if (tc->pid_path == NULL)
        return 0;
    char text[64];
    int n = snprintf(text, sizeof(text), "next.block.start=%" PRId64 "\n", limit);
    if (fs_write_atomic(tc->pid_path, text, (size_t)n) != 0) {
        LOG_ERROR("txn", "cannot write %s: %s", tc->pid_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int pid_block_load(txn_coordinator_t *tc)
{
    int64_t start = 0;
    if (tc->pid_path) {
        buf_t b;
        buf_init(&b);
        if (fs_read_file(tc->pid_path, &b, 4096) == 0) {
            buf_put_i8(&b, 0);
            const char *eq = b.oom ? NULL : strchr((const char *)b.data, '=');
            if (eq == NULL || sscanf(eq + 1, "%" SCNd64, &start) != 1 || start < 0) {
                LOG_ERROR("txn", "%s is malformed", tc->pid_path);
                buf_free(&b);
                return -1;
            }
        } else if (errno != ENOENT) {
            LOG_ERROR("txn", "cannot read %s: %s", tc->pid_path, strerror(errno));
            buf_free(&b);
            return -1;
        }
        buf_free(&b);
    }
    if (pid_block_write(tc, start + TXN_PID_BLOCK_SIZE) != 0)
        return -1;
    tc->next_pid = start;
    tc->pid_limit = start + TXN_PID_BLOCK_SIZE;
    return 0;
}

int64_t txn_next_producer_id(txn_coordinator_t *tc)
{
    if (tc->pid_failed)
        return -1;
    if (tc->next_pid >= tc->pid_limit) {
        if (pid_block_write(tc, tc->pid_limit + TXN_PID_BLOCK_SIZE) != 0)
            return -1;
        tc->pid_limit += TXN_PID_BLOCK_SIZE;
    }
    if (tc->pid_tag < 0)
        return tc->next_pid++;
    /* Every broker hands out producer ids: its id in the low bits keeps them apart. */
    if (tc->next_pid >= ((int64_t)1 << 42))
        return -1;
    return tc->next_pid++ * TXN_PID_TAG_SPACE + tc->pid_tag;
}

void txn_coordinator_set_cluster_mode(txn_coordinator_t *tc, int32_t broker_id)
{
    tc->pid_tag = broker_id >= 0 && broker_id < TXN_PID_TAG_SPACE ? broker_id : broker_id % TXN_PID_TAG_SPACE;
    tc->cluster_mode = true;
    tc->broker_id = broker_id;
}

void txn_coordinator_set_peers(txn_coordinator_t *tc, struct cluster *cluster, struct broker_client *peers)
{
    tc->cluster = cluster;
    tc->peers = peers;
}

/* ---------------------------------------------------------------- record format */

static void put_str(buf_t *b, const char *p, size_t n)
{
    buf_put_i16(b, (int16_t)n);
    buf_put(b, p, n);
}

static kstr_t rd_str(rd_t *r)
{
    int16_t n = rd_i16(r);
    if (n < 0)
        return kstr_null();
    const uint8_t *p = rd_take(r, (size_t)n);
    return p ? kstrn((const char *)p, (size_t)n) : kstr_null();
}

void txn_log_put_key(buf_t *b, kstr_t id)
{
    buf_put_i16(b, 0);
    put_str(b, id.ptr, id.len > 0 ? (size_t)id.len : 0);
}

int txn_log_decode_key(const uint8_t *p, size_t len, kstr_t *id)
{
    rd_t r;
    rd_init(&r, p, len);
    int16_t version = rd_i16(&r);
    kstr_t s = rd_str(&r);
    if (r.err || version != 0 || s.len < 0)
        return -1;
    *id = s;
    return 0;
}

void txn_log_put_value(buf_t *b, const txn_view_t *v)
{
    buf_put_i16(b, 0);
    buf_put_i64(b, v->producer_id);
    buf_put_i16(b, v->epoch);
    buf_put_i32(b, v->timeout_ms);
    buf_put_i8(b, (int8_t)v->status);
    /* topics: consecutive refs with the same topic form one entry */
    size_t count_at = b->len;
    buf_put_i32(b, 0);
    int32_t ntopics = 0;
    for (int i = 0; i < v->n_partitions;) {
        kstr_t t = v->partitions[i].topic;
        int j = i;
        while (j < v->n_partitions && v->partitions[j].topic.len == t.len &&
               memcmp(v->partitions[j].topic.ptr, t.ptr, (size_t)t.len) == 0)
            j++;
        put_str(b, t.ptr, (size_t)t.len);
        buf_put_i32(b, j - i);
        for (int k = i; k < j; k++)
            buf_put_i32(b, v->partitions[k].partition);
        ntopics++;
        i = j;
    }
    if (!b->oom)
        be_put32(b->data + count_at, (uint32_t)ntopics);
    buf_put_i64(b, v->last_update_ms);
    buf_put_i64(b, v->start_ms);
}

int txn_log_decode_value(const uint8_t *p, size_t len, txn_view_t *v, txn_partition_ref_t **parts)
{
    rd_t r;
    rd_init(&r, p, len);
    *parts = NULL;
    memset(v, 0, sizeof(*v));
    int16_t version = rd_i16(&r);
    if (r.err || version != 0)
        return -1;
    v->producer_id = rd_i64(&r);
    v->epoch = rd_i16(&r);
    v->timeout_ms = rd_i32(&r);
    v->status = rd_i8(&r);
    int32_t ntopics = rd_i32(&r);
    if (r.err || ntopics < 0 || (size_t)ntopics > rd_left(&r) / 6)
        return -1;
    txn_partition_ref_t *refs = NULL;
    int n = 0, cap = 0;
    for (int32_t i = 0; i < ntopics; i++) {
        kstr_t t = rd_str(&r);
        int32_t np = rd_i32(&r);
        if (r.err || t.len < 0 || np < 0 || (size_t)np > rd_left(&r) / 4)
            goto bad;
        for (int32_t k = 0; k < np; k++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                txn_partition_ref_t *nr = realloc(refs, (size_t)cap * sizeof(*nr));
                if (nr == NULL)
                    goto bad;
                refs = nr;
            }
            refs[n].topic = t;
            refs[n].partition = rd_i32(&r);
            refs[n].error = 0;
            n++;
        }
    }
    v->last_update_ms = rd_i64(&r);
    v->start_ms = rd_i64(&r);
    if (r.err)
        goto bad;
    v->n_partitions = n;
    v->partitions = refs;
    *parts = refs;
    return 0;
bad:
    free(refs);
    return -1;
}

/* ---------------------------------------------------------------- table */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h % TXN_HASH_SIZE;
}

static txn_t *txn_find(txn_coordinator_t *tc, kstr_t id)
{
    if (id.len <= 0)
        return NULL;
    for (txn_t *t = tc->buckets[name_hash(id.ptr, (size_t)id.len)]; t; t = t->hnext)
        if (kstr_same(id, t->id, t->id_len))
            return t;
    return NULL;
}

static txn_t *txn_create(txn_coordinator_t *tc, kstr_t id)
{
    txn_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->id = dup_kstr(id)) == NULL) {
        free(t);
        return NULL;
    }
    t->id_len = (size_t)id.len;
    t->pid = -1;
    t->epoch = -1;
    t->start_ms = -1;
    uint32_t h = name_hash(t->id, t->id_len);
    t->hnext = tc->buckets[h];
    tc->buckets[h] = t;
    tc->ntxns++;
    return t;
}

static void txn_clear_parts(txn_t *t)
{
    for (int i = 0; i < t->nparts; i++)
        free((char *)t->parts[i].topic.ptr);
    t->nparts = 0;
}

static void txn_clear_offsets(txn_t *t)
{
    for (int i = 0; i < t->noffsets; i++) {
        free(t->offsets[i].group);
        free(t->offsets[i].topic);
        free(t->offsets[i].metadata);
    }
    t->noffsets = 0;
}

static void txn_free(txn_t *t)
{
    if (t->mk)
        mk_free(t->mk);
    txn_clear_parts(t);
    txn_clear_offsets(t);
    free(t->parts);
    free(t->offsets);
    free(t->id);
    free(t);
}

static bool txn_has_part(const txn_t *t, kstr_t topic, int32_t partition)
{
    for (int i = 0; i < t->nparts; i++)
        if (t->parts[i].partition == partition && kstr_same(topic, t->parts[i].topic.ptr, (size_t)t->parts[i].topic.len))
            return true;
    return false;
}

/* Adds a partition, keeping refs of one topic together (the record format groups them). */
static int txn_add_part(txn_t *t, kstr_t topic, int32_t partition)
{
    if (txn_has_part(t, topic, partition))
        return 0;
    if (t->nparts == t->capparts) {
        int cap = t->capparts ? t->capparts * 2 : 8;
        txn_partition_ref_t *n = realloc(t->parts, (size_t)cap * sizeof(*n));
        if (n == NULL)
            return -1;
        t->parts = n;
        t->capparts = cap;
    }
    char *name = dup_kstr(topic);
    if (name == NULL)
        return -1;
    int at = t->nparts;
    for (int i = t->nparts - 1; i >= 0; i--) {
        if (kstr_same(topic, t->parts[i].topic.ptr, (size_t)t->parts[i].topic.len)) {
            at = i + 1;
            break;
        }
    }
    memmove(&t->parts[at + 1], &t->parts[at], (size_t)(t->nparts - at) * sizeof(t->parts[0]));
    t->parts[at].topic = kstrn(name, (size_t)topic.len);
    t->parts[at].partition = partition;
    t->parts[at].error = 0;
    t->nparts++;
    return 0;
}

static void txn_view_of(const txn_t *t, txn_view_t *v)
{
    v->transactional_id = kstrn(t->id, t->id_len);
    v->status = t->status;
    v->timeout_ms = t->timeout_ms;
    v->start_ms = t->start_ms;
    v->last_update_ms = t->last_update_ms;
    v->producer_id = t->pid;
    v->epoch = t->epoch;
    v->n_partitions = t->nparts;
    v->partitions = t->parts;
}

/* ---------------------------------------------------------------- persistence */

int16_t txn_coordinator_ensure_topic(txn_coordinator_t *tc)
{
    if (tc->topics == NULL)
        return KERR_NONE;
    if (tc->cluster_mode) /* created through ZooKeeper (cluster_ensure_internal_topic) */
        return topics_find(tc->topics, TXN_LOG_TOPIC, strlen(TXN_LOG_TOPIC)) ? KERR_NONE
                                                                           : KERR_COORDINATOR_NOT_AVAILABLE;
    int64_t n = cfg_long(tc, "transaction.state.log.num.partitions", 50);
    char err[256];
    int rc = topics_ensure_internal(tc->topics, TXN_LOG_TOPIC, (int32_t)n,
                                    cfg_long(tc, "transaction.state.log.segment.bytes", 104857600), err,
                                    sizeof(err));
    if (rc < 0) {
        LOG_ERROR("txn", "cannot create %s: %s", TXN_LOG_TOPIC, err);
        return KERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (rc == 0)
        return KERR_NONE;
    LOG_INFO("txn", "created the internal topic %s with %" PRId64 " partitions (replication factor 1)",
             TXN_LOG_TOPIC, n);
    return KERR_NONE;
}

/* Appends the transaction's current state (or, with tombstone, its removal) to its
 * __transaction_state partition. 0 or a Kafka error. */
static int16_t txn_store_record(txn_coordinator_t *tc, txn_t *t, bool tombstone)
{
    if (tc->topics == NULL)
        return KERR_NONE;
    int16_t err = txn_coordinator_ensure_topic(tc);
    if (err)
        return err;
    topic_t *tp = topics_find(tc->topics, TXN_LOG_TOPIC, strlen(TXN_LOG_TOPIC));
    partition_t *p = tp ? topics_partition(tp, txn_partition_for(t->id, t->id_len, tp->npartitions)) : NULL;
    if (p == NULL)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    if (!repl_is_leader(p))
        return KERR_NOT_COORDINATOR; /* a follower's log takes only its leader's batches */
    int64_t now = evloop_wall_ms();
    buf_t key, val, out;
    buf_init(&key);
    buf_init(&val);
    buf_init(&out);
    txn_view_t v;
    txn_view_of(t, &v);
    txn_log_put_key(&key, v.transactional_id);
    txn_log_put_value(&val, &v);
    rb_builder_t rb;
    rb_builder_init(&rb, &out, 0, 0, now);
    int rc = -1;
    if (!key.oom && !val.oom &&
        rb_builder_add(&rb, now, -1, key.data, (int32_t)key.len, tombstone ? NULL : val.data,
                       tombstone ? -1 : (int32_t)val.len, 0, NULL, NULL, NULL, NULL) == 0 &&
        rb_builder_finish(&rb) == 0 && !out.oom) {
        int64_t first, next;
        rc = partition_append(tc->topics, p, out.data, out.len, now, &first, &next);
        if (rc != 0)
            LOG_ERROR("txn", "appending to %s-%d failed: %s", TXN_LOG_TOPIC, p->index, log_rc_str(rc));
    } else {
        rb_builder_abort(&rb);
    }
    buf_free(&key);
    buf_free(&val);
    buf_free(&out);
    return rc == 0 ? KERR_NONE : KERR_COORDINATOR_NOT_AVAILABLE;
}

static int16_t txn_store(txn_coordinator_t *tc, txn_t *t)
{
    return txn_store_record(tc, t, false);
}

/* ---------------------------------------------------------------- completing transactions */

static bool is_offsets_topic(kstr_t topic)
{
    return kstr_same(topic, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC));
}

static void apply_offsets(txn_coordinator_t *tc, txn_t *t)
{
    if (tc->groups == NULL)
        return;
    for (int i = 0; i < t->noffsets;) {
        int j = i;
        while (j < t->noffsets && strcmp(t->offsets[j].group, t->offsets[i].group) == 0)
            j++;
        group_commit_item_t *items = calloc((size_t)(j - i), sizeof(*items));
        if (items == NULL) {
            LOG_ERROR("txn", "out of memory committing the offsets of transaction %s", t->id);
            i = j;
            continue;
        }
        for (int k = i; k < j; k++) {
            const txn_pending_offset_t *o = &t->offsets[k];
            items[k - i] = (group_commit_item_t){.topic = kstr_c(o->topic), .partition = o->partition,
                                                 .offset = o->offset, .leader_epoch = o->leader_epoch,
                                                 .metadata = o->metadata ? kstr_c(o->metadata) : kstr_null(),
                                                 .commit_ts = -1, .expire_ts = -1};
        }
        group_commit_params_t gp = {.group_id = kstr_c(t->offsets[i].group), .generation_id = -1,
                                    .member_id = kstr_c(""), .instance_id = kstr_null(), .transactional = true};
        group_commit(tc->groups, &gp, items, j - i);
        for (int k = 0; k < j - i; k++)
            if (items[k].error)
                LOG_WARN("txn", "transaction %s: offset of %s-%d for group %s not committed: error %d", t->id,
                         t->offsets[i + k].topic, t->offsets[i + k].partition, t->offsets[i].group,
                         items[k].error);
        free(items);
        i = j;
    }
}

/* ---------------------------------------------------------------- cluster mode: markers
 *
 * Kafka's flow: EndTxn writes PrepareCommit/PrepareAbort and is answered once that record is on
 * the ISR (the handler waits for it); the coordinator then sends WriteTxnMarkers to the leader of
 * every partition of the transaction (writing those it leads itself), retries the partitions that
 * failed (no leader, NOT_LEADER_OR_FOLLOWER, timeouts, lost connections) after a backoff with the
 * leaders ZooKeeper shows then, and writes CompleteCommit/CompleteAbort when all have their marker.
 * Meanwhile the producer's next AddPartitionsToTxn/EndTxn/InitProducerId get
 * CONCURRENT_TRANSACTIONS. A coordinator taking over a partition finishes what it finds in
 * PrepareX. */

static partition_t *log_partition_of(txn_coordinator_t *tc, const char *id, size_t len)
{
    topic_t *tp = tc->topics ? topics_find(tc->topics, TXN_LOG_TOPIC, strlen(TXN_LOG_TOPIC)) : NULL;
    return tp ? topics_partition(tp, txn_partition_for(id, len, tp->npartitions)) : NULL;
}

static int32_t coordinator_epoch_of(const txn_coordinator_t *tc, const txn_t *t)
{
    if (!tc->cluster_mode || tc->topics == NULL)
        return 0;
    topic_t *tp = topics_find(tc->topics, TXN_LOG_TOPIC, strlen(TXN_LOG_TOPIC));
    int32_t part = tp ? txn_partition_for(t->id, t->id_len, tp->npartitions) : -1;
    return part >= 0 && part < tc->nowned ? tc->owned_epoch[part] : 0;
}

static void mk_free(txn_mk_t *mk)
{
    txn_coordinator_t *tc = mk->tc;
    repl_hw_wait_cancel(&mk->prepared);
    txn_markers_cancel(mk->local);
    while (mk->reqs) {
        txn_mk_req_t *rq = mk->reqs;
        mk->reqs = rq->next;
        broker_client_cancel(tc->peers, rq->req);
        free(rq);
    }
    if (tc->loop)
        evloop_timer_stop(tc->loop, &mk->retry);
    if (mk->t && mk->t->mk == mk)
        mk->t->mk = NULL;
    free(mk->state);
    free(mk->leader);
    free(mk->local_targets);
    free(mk->local_idx);
    free(mk);
}

/* Every partition has its marker: CompleteCommit/CompleteAbort. */
static void mk_finish(txn_mk_t *mk)
{
    txn_coordinator_t *tc = mk->tc;
    txn_t *t = mk->t;
    bool commit = mk->commit;
    mk_free(mk);
    txn_clear_offsets(t);
    txn_clear_parts(t);
    t->status = commit ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT;
    t->start_ms = -1;
    t->last_update_ms = evloop_wall_ms();
    int16_t err = txn_store(tc, t);
    if (err)
        LOG_WARN("txn", "transaction %s: writing %s failed (error %d); the next coordinator finishes it", t->id,
                 txn_status_name(t->status), err);
    LOG_DEBUG("txn", "transaction %s (producer %" PRId64 " epoch %d) %s", t->id, t->pid, t->epoch,
              commit ? "committed" : "aborted");
}

/* The outcome of one partition's marker, as Kafka's marker channel judges it. */
static void mk_result(txn_mk_t *mk, int i, int16_t err, int32_t broker)
{
    txn_t *t = mk->t;
    txn_partition_ref_t *r = &t->parts[i];
    switch (err) {
    case KERR_NONE:
    case KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case KERR_UNSUPPORTED_VERSION:
        mk->state[i] = MK_DONE;
        return;
    case TXN_KERR_INVALID_PRODUCER_EPOCH:
        /* The partition saw a newer epoch of the producer: nothing of this transaction to close. */
        LOG_WARN("txn", "transaction %s: %.*s-%d (broker %d) has a newer epoch of producer %" PRId64
                 "; marker skipped", t->id, r->topic.len, r->topic.ptr, r->partition, broker, t->pid);
        mk->state[i] = MK_DONE;
        return;
    case TXN_KERR_TRANSACTION_COORDINATOR_FENCED:
        LOG_WARN("txn", "transaction %s: a newer coordinator wrote markers on %.*s-%d; leaving it to it", t->id,
                 r->topic.len, r->topic.ptr, r->partition);
        mk->fenced = true;
        mk->state[i] = MK_PENDING;
        return;
    default:
        LOG_DEBUG("txn", "transaction %s: marker on %.*s-%d (broker %d): error %d, retrying", t->id, r->topic.len,
                  r->topic.ptr, r->partition, broker, err);
        mk->state[i] = MK_PENDING;
        return;
    }
}

/* After a round: done, or another round after a backoff. */
static void mk_after_round(txn_mk_t *mk)
{
    if (mk->inflight > 0 || mk->local)
        return;
    if (mk->fenced)
        return; /* this broker is about to lose the partition; the new coordinator finishes */
    bool all = true;
    for (int i = 0; i < mk->t->nparts; i++)
        all &= mk->state[i] == MK_DONE;
    if (all) {
        mk_finish(mk);
        return;
    }
    evloop_timer_start(mk->tc->loop, &mk->retry, mk->backoff_ms);
    mk->backoff_ms = mk->backoff_ms * 2 > TXN_MARKER_RETRY_MAX_MS ? TXN_MARKER_RETRY_MAX_MS : mk->backoff_ms * 2;
}

static void mk_local_done(void *arg)
{
    txn_mk_t *mk = arg;
    mk->local = NULL;
    for (int k = 0; k < mk->nlocal; k++)
        mk_result(mk, mk->local_idx[k], mk->local_targets[k].error, mk->tc->broker_id);
    mk->nlocal = 0;
    mk_after_round(mk);
}

static void mk_remote_done(void *arg, int16_t err, const uint8_t *body, size_t len)
{
    txn_mk_req_t *rq = arg;
    txn_mk_t *mk = rq->mk;
    txn_t *t = mk->t;
    for (txn_mk_req_t **pp = &mk->reqs; *pp; pp = &(*pp)->next)
        if (*pp == rq) {
            *pp = rq->next;
            break;
        }
    mk->inflight--;
    int16_t *res = malloc(sizeof(int16_t) * (size_t)(rq->n > 0 ? rq->n : 1));
    arena_t arena;
    arena_init(&arena, len * 8 + 4096);
    if (res != NULL) {
        for (int k = 0; k < rq->n; k++)
            res[k] = err ? err : KERR_UNKNOWN_SERVER_ERROR; /* missing from the answer: retried */
        WriteTxnMarkersResponse resp;
        rd_t rd;
        rd_init(&rd, body, len);
        if (!err && kmsg_decode(&WriteTxnMarkersResponse_desc, TXN_WRITE_TXN_MARKERS_VERSION, &rd, &arena, &resp) == 0) {
            for (int32_t m = 0; m < resp.Markers.count; m++) {
                WriteTxnMarkersResponse_WritableTxnMarkerResult *mr = &resp.Markers.items[m];
                if (mr->ProducerId != t->pid)
                    continue;
                for (int32_t a = 0; a < mr->Topics.count; a++) {
                    WriteTxnMarkersResponse_WritableTxnMarkerTopicResult *tr = &mr->Topics.items[a];
                    for (int32_t b = 0; b < tr->Partitions.count; b++)
                        for (int k = 0; k < rq->n; k++) {
                            txn_partition_ref_t *r = &t->parts[rq->idx[k]];
                            if (r->partition == tr->Partitions.items[b].PartitionIndex &&
                                r->topic.len == tr->Name.len && memcmp(r->topic.ptr, tr->Name.ptr, (size_t)r->topic.len) == 0)
                                res[k] = tr->Partitions.items[b].ErrorCode;
                        }
                }
            }
        } else if (!err) {
            LOG_WARN("txn", "transaction %s: malformed WriteTxnMarkers answer from broker %d", t->id, rq->broker);
        }
        for (int k = 0; k < rq->n; k++)
            mk_result(mk, rq->idx[k], res[k], rq->broker);
    } else {
        for (int k = 0; k < rq->n; k++)
            mk->state[rq->idx[k]] = MK_PENDING;
    }
    arena_free(&arena);
    free(res);
    free(rq);
    mk_after_round(mk);
}

/* One WriteTxnMarkers request to `broker` for the entries of this round it leads. */
static void mk_send_remote(txn_mk_t *mk, int32_t broker)
{
    txn_coordinator_t *tc = mk->tc;
    txn_t *t = mk->t;
    int n = 0;
    for (int i = 0; i < t->nparts; i++)
        n += mk->state[i] == MK_INFLIGHT && mk->leader[i] == broker;
    txn_mk_req_t *rq = malloc(sizeof(*rq) + sizeof(int) * (size_t)n);
    WriteTxnMarkersRequest_WritableTxnMarkerTopic *topics = calloc((size_t)n, sizeof(*topics));
    int32_t *parts = calloc((size_t)n, sizeof(*parts));
    bool sent = false;
    if (rq && topics && parts && tc->peers) {
        rq->mk = mk;
        rq->broker = broker;
        rq->n = 0;
        int ntopics = 0;
        for (int i = 0; i < t->nparts; i++) {
            if (mk->state[i] != MK_INFLIGHT || mk->leader[i] != broker)
                continue;
            txn_partition_ref_t *r = &t->parts[i];
            /* The entries of one topic are together in t->parts. */
            WriteTxnMarkersRequest_WritableTxnMarkerTopic *tt = ntopics ? &topics[ntopics - 1] : NULL;
            if (tt == NULL || tt->Name.len != r->topic.len || memcmp(tt->Name.ptr, r->topic.ptr, (size_t)r->topic.len) != 0) {
                tt = &topics[ntopics++];
                tt->Name = r->topic;
                tt->PartitionIndexes.items = &parts[rq->n];
                tt->PartitionIndexes.count = 0;
            }
            tt->PartitionIndexes.items[tt->PartitionIndexes.count++] = r->partition;
            rq->idx[rq->n++] = i;
        }
        WriteTxnMarkersRequest_WritableTxnMarker marker;
        WriteTxnMarkersRequest_WritableTxnMarker_init(&marker);
        marker.ProducerId = t->pid;
        marker.ProducerEpoch = t->epoch;
        marker.TransactionResult = mk->commit;
        marker.CoordinatorEpoch = mk->coordinator_epoch;
        marker.Topics.items = topics;
        marker.Topics.count = ntopics;
        WriteTxnMarkersRequest req;
        WriteTxnMarkersRequest_init(&req);
        req.Markers.items = &marker;
        req.Markers.count = 1;
        rq->req = broker_client_send(tc->peers, broker, TXN_WRITE_TXN_MARKERS_KEY, TXN_WRITE_TXN_MARKERS_VERSION,
                                     &req, mk_remote_done, rq);
        sent = rq->req != NULL;
    }
    free(topics);
    free(parts);
    if (!sent) {
        free(rq);
        for (int i = 0; i < t->nparts; i++)
            if (mk->state[i] == MK_INFLIGHT && mk->leader[i] == broker)
                mk->state[i] = MK_PENDING;
        return;
    }
    rq->next = mk->reqs;
    mk->reqs = rq;
    mk->inflight++;
    /* Sent: these entries are no longer this round's to place. */
    for (int k = 0; k < rq->n; k++)
        mk->leader[rq->idx[k]] = -2;
}

/* One round: every partition still without its marker goes to its leader as ZooKeeper shows it now. */
static void mk_kick(txn_mk_t *mk)
{
    txn_coordinator_t *tc = mk->tc;
    txn_t *t = mk->t;
    int nlocal = 0;
    for (int i = 0; i < t->nparts; i++) {
        if (mk->state[i] != MK_PENDING)
            continue;
        txn_partition_ref_t *r = &t->parts[i];
        topic_t *tp = r->topic.len > 0 ? topics_find(tc->topics, r->topic.ptr, (size_t)r->topic.len) : NULL;
        if (topics_partition(tp, r->partition) == NULL) {
            mk->state[i] = MK_DONE; /* deleted meanwhile: nothing to mark */
            continue;
        }
        const zk_partition_t *zp = tc->cluster ? cluster_partition(tc->cluster, tp->name, r->partition) : NULL;
        int32_t leader = zp ? zp->leader : tc->broker_id;
        if (leader < 0)
            continue; /* no leader yet: next round */
        mk->leader[i] = leader;
        mk->state[i] = MK_INFLIGHT;
        nlocal += leader == tc->broker_id;
    }
    /* The partitions this broker leads are written here. */
    mk->nlocal = 0;
    if (nlocal > 0) {
        for (int i = 0; i < t->nparts; i++) {
            if (mk->state[i] != MK_INFLIGHT || mk->leader[i] != tc->broker_id)
                continue;
            mk->local_targets[mk->nlocal] = (txn_marker_target_t){t->parts[i].topic, t->parts[i].partition, 0};
            mk->local_idx[mk->nlocal++] = i;
            mk->leader[i] = -2;
        }
        txn_markers_env_t env = {.loop = tc->loop, .topics = tc->topics, .cluster = tc->cluster,
                                 .groups = tc->groups, .timeout_ms = tc->request_timeout_ms};
        txn_marker_params_t mp = {.producer_id = t->pid, .producer_epoch = t->epoch, .commit = mk->commit,
                                  .coordinator_epoch = mk->coordinator_epoch};
        mk->local = txn_markers_write(&env, &mp, mk->local_targets, mk->nlocal, mk_local_done, mk);
        if (mk->local == NULL) {
            for (int k = 0; k < mk->nlocal; k++)
                mk->state[mk->local_idx[k]] = MK_PENDING;
            mk->nlocal = 0;
        }
    }
    /* The others: one request per leader. */
    for (int i = 0; i < t->nparts; i++)
        if (mk->state[i] == MK_INFLIGHT && mk->leader[i] >= 0)
            mk_send_remote(mk, mk->leader[i]);
    mk_after_round(mk);
}

static void mk_retry_cb(evloop_t *loop, ev_timer_t *timer)
{
    (void)loop;
    mk_kick(timer->arg);
}

static void mk_prepared_done(repl_hw_wait_t *w, int16_t err)
{
    txn_mk_t *mk = w->arg;
    if (err == KERR_NONE) {
        mk_kick(mk);
    } else if (err == KERR_REQUEST_TIMED_OUT) {
        partition_t *p = log_partition_of(mk->tc, mk->t->id, mk->t->id_len);
        if (p == NULL || repl_hw_wait_start(&mk->prepared, mk->tc->loop, p, w->target, mk->tc->request_timeout_ms) == 0)
            mk_kick(mk);
    } else {
        LOG_INFO("txn", "transaction %s: no longer leading its %s partition; the next coordinator finishes it",
                 mk->t->id, TXN_LOG_TOPIC);
    }
}

/* The PrepareX record is appended: send the markers once it is on the ISR. */
static void mk_start(txn_coordinator_t *tc, txn_t *t)
{
    if (t->mk)
        mk_free(t->mk);
    int n = t->nparts > 0 ? t->nparts : 1;
    txn_mk_t *mk = calloc(1, sizeof(*mk));
    if (mk == NULL || (mk->state = calloc((size_t)n, 1)) == NULL ||
        (mk->leader = calloc((size_t)n, sizeof(int32_t))) == NULL ||
        (mk->local_targets = calloc((size_t)n, sizeof(txn_marker_target_t))) == NULL ||
        (mk->local_idx = calloc((size_t)n, sizeof(int))) == NULL) {
        if (mk) {
            free(mk->state);
            free(mk->leader);
            free(mk->local_targets);
            free(mk);
        }
        LOG_ERROR("txn", "transaction %s: out of memory; its markers wait for the next coordinator", t->id);
        return;
    }
    mk->tc = tc;
    mk->t = t;
    mk->commit = t->status == TXN_PREPARE_COMMIT;
    mk->coordinator_epoch = coordinator_epoch_of(tc, t);
    mk->backoff_ms = TXN_MARKER_RETRY_MIN_MS;
    evloop_timer_init(&mk->retry, mk_retry_cb, mk);
    mk->prepared.done = mk_prepared_done;
    mk->prepared.arg = mk;
    t->mk = mk;
    partition_t *p = log_partition_of(tc, t->id, t->id_len);
    if (p == NULL || repl_hw_wait_start(&mk->prepared, tc->loop, p, log_end_offset(p->log), tc->request_timeout_ms) == 0)
        evloop_timer_start(tc->loop, &mk->retry, 0); /* from the loop, never inside the request */
}

/* Cluster mode: PrepareX, appended now; markers and CompleteX follow asynchronously. */
static int16_t txn_prepare(txn_coordinator_t *tc, txn_t *t, bool commit)
{
    int old_status = t->status;
    int64_t old_update = t->last_update_ms;
    t->status = commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT;
    t->last_update_ms = evloop_wall_ms();
    int16_t err = txn_store(tc, t);
    if (err) {
        t->status = old_status;
        t->last_update_ms = old_update;
        return err;
    }
    mk_start(tc, t);
    return KERR_NONE;
}

/* PrepareX -> markers -> CompleteX. The producer id/epoch of the markers is the transaction's. */
static int16_t txn_complete(txn_coordinator_t *tc, txn_t *t, bool commit)
{
    if (tc->cluster_mode)
        return txn_prepare(tc, t, commit);
    int64_t now = evloop_wall_ms();
    t->status = commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT;
    t->last_update_ms = now;
    int16_t err = txn_store(tc, t);
    if (err)
        return err;
    for (int i = 0; i < t->nparts; i++) {
        txn_partition_ref_t *r = &t->parts[i];
        if (is_offsets_topic(r->topic) || tc->topics == NULL)
            continue;
        topic_t *tp = topics_find(tc->topics, r->topic.ptr, (size_t)r->topic.len);
        partition_t *p = topics_partition(tp, r->partition);
        if (p == NULL)
            continue; /* deleted meanwhile: nothing to mark */
        int16_t merr = ptxn_write_marker(tc->topics, p, t->pid, t->epoch, commit, 0, now);
        if (merr)
            return merr; /* stays PrepareX: finished at the next start */
    }
    if (commit)
        apply_offsets(tc, t);
    txn_clear_offsets(t);
    txn_clear_parts(t);
    t->status = commit ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT;
    t->start_ms = -1;
    t->last_update_ms = now;
    LOG_DEBUG("txn", "transaction %s (producer %" PRId64 " epoch %d) %s", t->id, t->pid, t->epoch,
              commit ? "committed" : "aborted");
    return txn_store(tc, t);
}

/* Aborts an open transaction with a bumped epoch, fencing the producer that opened it. */
static int16_t txn_fence_and_abort(txn_coordinator_t *tc, txn_t *t)
{
    if (t->epoch < INT16_MAX - 1)
        t->epoch++;
    return txn_complete(tc, t, false);
}

int txn_coordinator_abort_expired(txn_coordinator_t *tc, int64_t now_ms)
{
    int n = 0;
    for (int i = 0; i < TXN_HASH_SIZE; i++) {
        for (txn_t *t = tc->buckets[i]; t; t = t->hnext) {
            if (t->status != TXN_ONGOING || t->start_ms < 0 || t->start_ms + t->timeout_ms > now_ms)
                continue;
            LOG_INFO("txn", "transaction %s (producer %" PRId64 ") timed out after %d ms: aborting", t->id, t->pid,
                     t->timeout_ms);
            txn_fence_and_abort(tc, t);
            n++;
        }
    }
    return n;
}

int txn_coordinator_expire_ids(txn_coordinator_t *tc, int64_t now_ms)
{
    int64_t idle = cfg_long(tc, "transactional.id.expiration.ms", 604800000);
    int n = 0;
    for (int i = 0; i < TXN_HASH_SIZE; i++) {
        txn_t **pp = &tc->buckets[i];
        while (*pp) {
            txn_t *t = *pp;
            bool quiet = t->status == TXN_EMPTY || t->status == TXN_COMPLETE_COMMIT ||
                         t->status == TXN_COMPLETE_ABORT;
            if (!quiet || t->last_update_ms + idle > now_ms || txn_store_record(tc, t, true) != KERR_NONE) {
                pp = &t->hnext;
                continue;
            }
            LOG_INFO("txn", "transactional id %s expired after %" PRId64 " ms without use", t->id, idle);
            *pp = t->hnext;
            tc->ntxns--;
            txn_free(t);
            n++;
        }
    }
    return n;
}

static void abort_timer_cb(evloop_t *loop, ev_timer_t *timer)
{
    txn_coordinator_t *tc = timer->arg;
    txn_coordinator_abort_expired(tc, evloop_wall_ms());
    txn_coordinator_expire_ids(tc, evloop_wall_ms());
    evloop_timer_start(loop, timer,
                       cfg_long(tc, "transaction.abort.timed.out.transaction.cleanup.interval.ms", 10000));
}

/* Kafka checks every producer.id.expiration.check.interval.ms (10 minutes). */
#define TXN_PRODUCER_EXPIRY_CHECK_MS 600000

static void producer_timer_cb(evloop_t *loop, ev_timer_t *timer)
{
    txn_coordinator_t *tc = timer->arg;
    ptxn_expire_producers(tc->topics, evloop_wall_ms(), cfg_long(tc, "producer.id.expiration.ms", 86400000));
    evloop_timer_start(loop, timer, TXN_PRODUCER_EXPIRY_CHECK_MS);
}

/* ---------------------------------------------------------------- requests */

static int16_t check_producer(const txn_t *t, int64_t pid, int16_t epoch)
{
    if (t == NULL)
        return TXN_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (t->pid != pid)
        return TXN_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != t->epoch)
        return TXN_KERR_PRODUCER_FENCED;
    if (t->status == TXN_PREPARE_COMMIT || t->status == TXN_PREPARE_ABORT)
        return TXN_KERR_CONCURRENT_TRANSACTIONS;
    return KERR_NONE;
}

int16_t txn_init_producer_id(txn_coordinator_t *tc, kstr_t transactional_id, int32_t timeout_ms,
                             int64_t pid_in, int16_t epoch_in, int64_t *pid, int16_t *epoch)
{
    *pid = -1;
    *epoch = -1;
    if (transactional_id.len <= 0) {
        int64_t id = txn_next_producer_id(tc);
        if (id < 0)
            return KERR_COORDINATOR_NOT_AVAILABLE;
        *pid = id;
        *epoch = 0;
        return KERR_NONE;
    }
    if (timeout_ms <= 0 || timeout_ms > cfg_long(tc, "transaction.max.timeout.ms", 900000))
        return TXN_KERR_INVALID_TRANSACTION_TIMEOUT;
    txn_t *t = txn_find(tc, transactional_id);
    if (t == NULL) {
        int64_t id = txn_next_producer_id(tc);
        if (id < 0)
            return KERR_COORDINATOR_NOT_AVAILABLE;
        if ((t = txn_create(tc, transactional_id)) == NULL)
            return KERR_UNKNOWN_SERVER_ERROR;
        t->pid = id;
        t->epoch = 0;
    } else {
        if (t->status == TXN_PREPARE_COMMIT || t->status == TXN_PREPARE_ABORT)
            return TXN_KERR_CONCURRENT_TRANSACTIONS;
        /* KIP-360: a producer that says who it is must be the current one. */
        if (pid_in >= 0 && (pid_in != t->pid || (epoch_in != t->epoch && epoch_in != t->epoch - 1)))
            return TXN_KERR_PRODUCER_FENCED;
        if (t->status == TXN_ONGOING) {
            int16_t err = txn_fence_and_abort(tc, t);
            if (err)
                return err;
            if (tc->cluster_mode) /* the abort completes asynchronously: the client retries */
                return TXN_KERR_CONCURRENT_TRANSACTIONS;
        }
        if (t->epoch >= INT16_MAX - 1) {
            int64_t id = txn_next_producer_id(tc);
            if (id < 0)
                return KERR_COORDINATOR_NOT_AVAILABLE;
            t->pid = id;
            t->epoch = 0;
        } else if (!(pid_in >= 0 && epoch_in == t->epoch - 1 && t->status == TXN_COMPLETE_ABORT)) {
            t->epoch++;
        }
    }
    t->timeout_ms = timeout_ms;
    t->status = TXN_EMPTY;
    t->start_ms = -1;
    t->last_update_ms = evloop_wall_ms();
    txn_clear_parts(t);
    txn_clear_offsets(t);
    int16_t err = txn_store(tc, t);
    if (err)
        return err;
    *pid = t->pid;
    *epoch = t->epoch;
    return KERR_NONE;
}

static int16_t begin_if_needed(txn_coordinator_t *tc, txn_t *t)
{
    (void)tc;
    if (t->status != TXN_ONGOING) {
        t->status = TXN_ONGOING;
        t->start_ms = evloop_wall_ms();
    }
    return KERR_NONE;
}

int16_t txn_add_partitions(txn_coordinator_t *tc, kstr_t transactional_id, int64_t pid, int16_t epoch,
                           txn_partition_ref_t *refs, int n, bool verify_only)
{
    txn_t *t = txn_find(tc, transactional_id);
    int16_t err = check_producer(t, pid, epoch);
    if (err)
        return err;
    bool failed = false;
    for (int i = 0; i < n; i++) {
        refs[i].error = KERR_NONE;
        topic_t *tp = tc->topics && refs[i].topic.len > 0
                          ? topics_find(tc->topics, refs[i].topic.ptr, (size_t)refs[i].topic.len)
                          : NULL;
        if (tc->topics && topics_partition(tp, refs[i].partition) == NULL) {
            refs[i].error = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            failed = true;
        } else if (verify_only && !txn_has_part(t, refs[i].topic, refs[i].partition)) {
            refs[i].error = TXN_KERR_INVALID_TXN_STATE;
        }
    }
    if (failed) {
        for (int i = 0; i < n; i++)
            if (refs[i].error == KERR_NONE)
                refs[i].error = TXN_OPERATION_NOT_ATTEMPTED;
        return KERR_NONE;
    }
    if (verify_only)
        return KERR_NONE;
    bool added = false;
    for (int i = 0; i < n; i++) {
        if (txn_has_part(t, refs[i].topic, refs[i].partition))
            continue;
        if (txn_add_part(t, refs[i].topic, refs[i].partition) != 0)
            return KERR_UNKNOWN_SERVER_ERROR;
        added = true;
    }
    if (!added && t->status == TXN_ONGOING)
        return KERR_NONE;
    begin_if_needed(tc, t);
    t->last_update_ms = evloop_wall_ms();
    err = txn_store(tc, t);
    for (int i = 0; err && i < n; i++)
        refs[i].error = err;
    return KERR_NONE;
}

int16_t txn_add_offsets(txn_coordinator_t *tc, kstr_t transactional_id, int64_t pid, int16_t epoch,
                        kstr_t group_id)
{
    txn_t *t = txn_find(tc, transactional_id);
    int16_t err = check_producer(t, pid, epoch);
    if (err)
        return err;
    if (group_id.len <= 0)
        return KERR_INVALID_REQUEST;
    int32_t part = 0;
    if (tc->groups) {
        if (group_coordinator_ensure_topic(tc->groups) != 0)
            return KERR_COORDINATOR_NOT_AVAILABLE;
        part = group_coordinator_partition(tc->groups, group_id);
    }
    kstr_t topic = kstr_c(GROUP_LOG_TOPIC);
    if (txn_has_part(t, topic, part) && t->status == TXN_ONGOING)
        return KERR_NONE;
    if (txn_add_part(t, topic, part) != 0)
        return KERR_UNKNOWN_SERVER_ERROR;
    begin_if_needed(tc, t);
    t->last_update_ms = evloop_wall_ms();
    return txn_store(tc, t);
}

int16_t txn_offset_commit(txn_coordinator_t *tc, kstr_t transactional_id, kstr_t group_id, int64_t pid,
                          int16_t epoch, txn_offset_item_t *items, int n)
{
    txn_t *t = txn_find(tc, transactional_id);
    int16_t err = check_producer(t, pid, epoch);
    if (err)
        return err;
    if (t->status != TXN_ONGOING)
        return TXN_KERR_INVALID_TXN_STATE;
    if (group_id.len <= 0)
        return KERR_INVALID_REQUEST; /* INVALID_GROUP_ID would be 24 */
    for (int i = 0; i < n; i++) {
        txn_offset_item_t *it = &items[i];
        it->error = KERR_NONE;
        topic_t *tp = tc->topics && it->topic.len > 0 ? topics_find(tc->topics, it->topic.ptr, (size_t)it->topic.len)
                                                      : NULL;
        if (tc->topics && topics_partition(tp, it->partition) == NULL) {
            it->error = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (it->metadata.len > GROUP_OFFSET_METADATA_MAX_BYTES) {
            it->error = GROUP_KERR_OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        /* A later commit of the same group and partition replaces the earlier one. */
        txn_pending_offset_t *o = NULL;
        for (int k = 0; k < t->noffsets; k++)
            if (kstr_same(group_id, t->offsets[k].group, strlen(t->offsets[k].group)) &&
                kstr_same(it->topic, t->offsets[k].topic, strlen(t->offsets[k].topic)) &&
                t->offsets[k].partition == it->partition)
                o = &t->offsets[k];
        if (o == NULL) {
            if (t->noffsets == t->capoffsets) {
                int cap = t->capoffsets ? t->capoffsets * 2 : 8;
                txn_pending_offset_t *no = realloc(t->offsets, (size_t)cap * sizeof(*no));
                if (no == NULL) {
                    it->error = KERR_UNKNOWN_SERVER_ERROR;
                    continue;
                }
                t->offsets = no;
                t->capoffsets = cap;
            }
            /* keep one group's offsets together */
            int at = t->noffsets;
            for (int k = t->noffsets - 1; k >= 0; k--)
                if (kstr_same(group_id, t->offsets[k].group, strlen(t->offsets[k].group))) {
                    at = k + 1;
                    break;
                }
            memmove(&t->offsets[at + 1], &t->offsets[at], (size_t)(t->noffsets - at) * sizeof(t->offsets[0]));
            o = &t->offsets[at];
            memset(o, 0, sizeof(*o));
            o->group = dup_kstr(group_id);
            o->topic = dup_kstr(it->topic);
            t->noffsets++;
            if (o->group == NULL || o->topic == NULL) {
                it->error = KERR_UNKNOWN_SERVER_ERROR;
                continue;
            }
        } else {
            free(o->metadata);
            o->metadata = NULL;
        }
        o->partition = it->partition;
        o->offset = it->offset;
        o->leader_epoch = it->leader_epoch;
        o->metadata = it->metadata.len >= 0 ? dup_kstr(it->metadata) : NULL;
    }
    return KERR_NONE;
}

int16_t txn_end(txn_coordinator_t *tc, kstr_t transactional_id, int64_t pid, int16_t epoch, bool commit)
{
    txn_t *t = txn_find(tc, transactional_id);
    if (t == NULL)
        return TXN_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (t->pid != pid)
        return TXN_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != t->epoch) {
        /* A retry of an abort that the coordinator itself completed with a bumped epoch. */
        return TXN_KERR_PRODUCER_FENCED;
    }
    switch (t->status) {
    case TXN_ONGOING:
        return txn_complete(tc, t, commit);
    case TXN_COMPLETE_COMMIT:
        return commit ? KERR_NONE : TXN_KERR_INVALID_TXN_STATE;
    case TXN_COMPLETE_ABORT:
        return commit ? TXN_KERR_INVALID_TXN_STATE : KERR_NONE;
    case TXN_EMPTY:
        /* Nothing was added: nothing to mark. Kafka answers INVALID_TXN_STATE; clients never send
         * this, but an empty commit/abort is harmless to accept. */
        return commit ? TXN_KERR_INVALID_TXN_STATE : KERR_NONE;
    case TXN_PREPARE_COMMIT:
    case TXN_PREPARE_ABORT:
        return TXN_KERR_CONCURRENT_TRANSACTIONS;
    default:
        return TXN_KERR_INVALID_TXN_STATE;
    }
}

int txn_describe(txn_coordinator_t *tc, kstr_t transactional_id, txn_view_t *out)
{
    txn_t *t = txn_find(tc, transactional_id);
    if (t == NULL)
        return 0;
    txn_view_of(t, out);
    return 1;
}

void txn_foreach(txn_coordinator_t *tc, void (*cb)(void *arg, const txn_view_t *v), void *arg)
{
    for (int i = 0; i < TXN_HASH_SIZE; i++)
        for (txn_t *t = tc->buckets[i]; t; t = t->hnext) {
            txn_view_t v;
            txn_view_of(t, &v);
            cb(arg, &v);
        }
}

/* ---------------------------------------------------------------- load */

static void load_record(txn_coordinator_t *tc, const rb_record_t *rec)
{
    kstr_t id;
    if (rec->key == NULL || rec->key_len <= 0 || txn_log_decode_key(rec->key, (size_t)rec->key_len, &id) != 0 ||
        id.len <= 0)
        return;
    txn_t *t = txn_find(tc, id);
    if (rec->value == NULL || rec->value_len < 0) {
        if (t) {
            txn_t **pp = &tc->buckets[name_hash(t->id, t->id_len)];
            while (*pp != t)
                pp = &(*pp)->hnext;
            *pp = t->hnext;
            tc->ntxns--;
            txn_free(t);
        }
        return;
    }
    txn_view_t v;
    txn_partition_ref_t *parts;
    if (txn_log_decode_value(rec->value, (size_t)rec->value_len, &v, &parts) != 0) {
        LOG_WARN("txn", "skipping a malformed record of %.*s in %s", id.len, id.ptr, TXN_LOG_TOPIC);
        return;
    }
    if (t == NULL && (t = txn_create(tc, id)) == NULL) {
        free(parts);
        return;
    }
    t->pid = v.producer_id;
    t->epoch = v.epoch;
    t->timeout_ms = v.timeout_ms;
    t->status = v.status;
    t->start_ms = v.start_ms;
    t->last_update_ms = v.last_update_ms;
    txn_clear_parts(t);
    for (int i = 0; i < v.n_partitions; i++)
        txn_add_part(t, parts[i].topic, parts[i].partition);
    free(parts);
    /* Producer ids handed out before are never handed out again (in cluster mode the broker's tag
     * keeps them apart, and the block file alone moves the local sequence). */
    if (tc->pid_tag < 0 && t->pid >= tc->next_pid) {
        tc->next_pid = t->pid + 1;
        if (tc->next_pid > tc->pid_limit) {
            tc->pid_limit = tc->next_pid;
        }
    }
}

static void load_batch(txn_coordinator_t *tc, const uint8_t *batch, size_t len)
{
    if (rb_magic(batch) != 2 || (rb_attributes(batch) & RB_ATTR_CONTROL))
        return;
    const uint8_t *recs;
    size_t rlen;
    if (rb_records_plain(batch, len, &tc->scratch, TXN_MAX_DECOMPRESSED, &recs, &rlen) != 0)
        return;
    rb_iter_t it;
    rb_iter_init(&it, recs, rlen, rb_records_count(batch));
    rb_record_t rec;
    while (rb_iter_next(&it, &rec) == 1)
        load_record(tc, &rec);
}

static void load_batch_cb(void *arg, const uint8_t *batch, size_t len)
{
    load_batch(arg, batch, len);
}

static int load_partition(txn_coordinator_t *tc, partition_t *p)
{
    return log_replay(p->log, TXN_LOAD_CHUNK, load_batch_cb, tc) < 0 ? -1 : 0;
}

int txn_coordinator_load(txn_coordinator_t *tc)
{
    int rc = 0;
    if (pid_block_load(tc) != 0) {
        tc->pid_failed = true;
        rc = -1;
    }
    if (tc->cluster_mode)
        return rc; /* transactional ids load with the partitions this broker comes to lead */
    topic_t *tp = tc->topics ? topics_find(tc->topics, TXN_LOG_TOPIC, strlen(TXN_LOG_TOPIC)) : NULL;
    if (tp == NULL)
        return rc;
    int64_t limit_before = tc->pid_limit;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = topics_partition(tp, i);
        if (p && load_partition(tc, p) != 0) {
            LOG_ERROR("txn", "reading %s-%d failed", TXN_LOG_TOPIC, i);
            rc = -1;
        }
    }
    if (tc->pid_limit != limit_before && !tc->pid_failed) {
        /* A block file older than the ids in the log: move the reservation past them. */
        tc->pid_limit = tc->next_pid + TXN_PID_BLOCK_SIZE;
        if (pid_block_write(tc, tc->pid_limit) != 0)
            tc->pid_failed = true;
    }
    int n = 0, finished = 0;
    for (int i = 0; i < TXN_HASH_SIZE; i++) {
        for (txn_t *t = tc->buckets[i]; t; t = t->hnext) {
            n++;
            if (t->status == TXN_PREPARE_COMMIT || t->status == TXN_PREPARE_ABORT) {
                txn_complete(tc, t, t->status == TXN_PREPARE_COMMIT);
                finished++;
            } else if (t->status == TXN_ONGOING) {
                bool had_offsets = false;
                for (int k = 0; k < t->nparts; k++)
                    had_offsets |= is_offsets_topic(t->parts[k].topic);
                if (had_offsets) {
                    /* Its offsets were held in memory and are gone: never commit without them. */
                    LOG_INFO("txn", "aborting transaction %s: its consumed offsets were lost with the restart",
                             t->id);
                    txn_fence_and_abort(tc, t);
                    finished++;
                }
            }
        }
    }
    LOG_INFO("txn", "loaded %d transactional ids from %s (%d transactions finished)", n, TXN_LOG_TOPIC, finished);
    return rc;
}

/* ---------------------------------------------------------------- cluster mode: ownership */

static int32_t txn_partition_of(txn_coordinator_t *tc, const txn_t *t)
{
    return txn_coordinator_partition(tc, kstrn(t->id, t->id_len));
}

bool txn_coordinator_owns(txn_coordinator_t *tc, kstr_t transactional_id)
{
    if (!tc->cluster_mode)
        return true;
    int32_t p = txn_coordinator_partition(tc, transactional_id);
    return p >= 0 && p < tc->nowned && tc->owned[p];
}

partition_t *txn_coordinator_log_partition(txn_coordinator_t *tc, kstr_t transactional_id)
{
    if (transactional_id.len <= 0)
        return NULL;
    return log_partition_of(tc, transactional_id.ptr, (size_t)transactional_id.len);
}

void txn_coordinator_elected(txn_coordinator_t *tc, partition_t *p)
{
    if (!tc->cluster_mode || p->index < 0)
        return;
    if (p->index >= tc->nowned) {
        int32_t n = p->topic->npartitions > p->index ? p->topic->npartitions : p->index + 1;
        uint8_t *o = realloc(tc->owned, (size_t)n);
        if (o == NULL)
            return;
        tc->owned = o;
        int32_t *e = realloc(tc->owned_epoch, sizeof(int32_t) * (size_t)n);
        if (e == NULL)
            return;
        tc->owned_epoch = e;
        memset(o + tc->nowned, 0, (size_t)(n - tc->nowned));
        for (int32_t i = tc->nowned; i < n; i++)
            e[i] = 0;
        tc->nowned = n;
    }
    if (tc->owned[p->index])
        return;
    tc->owned_epoch[p->index] = p->leader_epoch;
    if (load_partition(tc, p) != 0)
        LOG_ERROR("txn", "reading %s-%d failed: coordinating what could be read", TXN_LOG_TOPIC, p->index);
    tc->owned[p->index] = 1;
    int n = 0, resumed = 0;
    for (int i = 0; i < TXN_HASH_SIZE; i++) {
        for (txn_t *t = tc->buckets[i]; t; t = t->hnext) {
            if (txn_partition_of(tc, t) != p->index)
                continue;
            n++;
            if (t->status == TXN_PREPARE_COMMIT || t->status == TXN_PREPARE_ABORT) {
                mk_start(tc, t); /* its markers again: writing one twice is harmless */
                resumed++;
            }
        }
    }
    LOG_INFO("txn", "coordinating the transactional ids of %s-%d (coordinator epoch %d): %d ids, %d transactions "
             "to complete", TXN_LOG_TOPIC, p->index, p->leader_epoch, n, resumed);
}

void txn_coordinator_resigned(txn_coordinator_t *tc, int32_t partition)
{
    if (!tc->cluster_mode || partition < 0 || partition >= tc->nowned || !tc->owned[partition])
        return;
    tc->owned[partition] = 0;
    int n = 0;
    for (int i = 0; i < TXN_HASH_SIZE; i++) {
        txn_t **pp = &tc->buckets[i];
        while (*pp) {
            txn_t *t = *pp;
            if (txn_partition_of(tc, t) != partition) {
                pp = &t->hnext;
                continue;
            }
            *pp = t->hnext;
            tc->ntxns--;
            txn_free(t); /* markers in flight are dropped: the next coordinator sends them again */
            n++;
        }
    }
    LOG_INFO("txn", "no longer coordinating the transactional ids of %s-%d (%d unloaded)", TXN_LOG_TOPIC, partition, n);
}

/* ---------------------------------------------------------------- lifecycle */

txn_coordinator_t *txn_coordinator_create(evloop_t *loop, topics_t *topics, struct group_coordinator *groups,
                                          const broker_config_t *config, const char *meta_dir)
{
    txn_coordinator_t *tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NULL;
    tc->loop = loop;
    tc->topics = topics;
    tc->groups = groups;
    tc->pid_tag = -1;
    tc->config = config;
    tc->pid_limit = TXN_PID_BLOCK_SIZE;
    int64_t rt = config ? broker_config_get_long(config, "request.timeout.ms") : -1;
    tc->request_timeout_ms = rt > 0 ? rt : 30000;
    buf_init(&tc->scratch);
    if (meta_dir) {
        size_t n = strlen(meta_dir) + sizeof("/producer-id-block");
        tc->pid_path = malloc(n);
        if (tc->pid_path == NULL) {
            free(tc);
            return NULL;
        }
        snprintf(tc->pid_path, n, "%s/producer-id-block", meta_dir);
        if (fs_mkdirs(meta_dir) != 0)
            LOG_WARN("txn", "cannot create %s: %s", meta_dir, strerror(errno));
    }
    if (loop) {
        evloop_timer_init(&tc->abort_timer, abort_timer_cb, tc);
        evloop_timer_start(loop, &tc->abort_timer,
                           cfg_long(tc, "transaction.abort.timed.out.transaction.cleanup.interval.ms", 10000));
        evloop_timer_init(&tc->producer_timer, producer_timer_cb, tc);
        evloop_timer_start(loop, &tc->producer_timer, TXN_PRODUCER_EXPIRY_CHECK_MS);
    }
    return tc;
}

void txn_coordinator_destroy(txn_coordinator_t *tc)
{
    if (tc == NULL)
        return;
    if (tc->loop) {
        evloop_timer_stop(tc->loop, &tc->abort_timer);
        evloop_timer_stop(tc->loop, &tc->producer_timer);
    }
    for (int i = 0; i < TXN_HASH_SIZE; i++) {
        while (tc->buckets[i]) {
            txn_t *t = tc->buckets[i];
            tc->buckets[i] = t->hnext;
            txn_free(t);
        }
    }
    buf_free(&tc->scratch);
    free(tc->pid_path);
    free(tc->owned);
    free(tc->owned_epoch);
    free(tc);
}
