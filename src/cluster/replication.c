/* replication.c - see replication.h. */
#include "replication.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/logger.h"
#include "protocol/kafka_messages.h"
#include "protocol/kerr.h"
#include "protocol/record_batch.h"
#include "storage/leader_epoch.h"
#include "txn/producer_state.h"

#define FETCH_VERSION 12 /* the first with LastFetchedEpoch and DivergingEpoch */
#define FETCH_API_KEY 1
#define MAX_RESPONSE_BYTES (256 << 20)
#define ISR_WRITE_RETRY_MS 5000

enum role { ROLE_NONE, ROLE_LEADER, ROLE_FOLLOWER };

/* What the leader knows of one follower. */
typedef struct follower {
    int32_t id;
    int64_t leo;                  /* its log end: the offset of its last fetch; -1 unknown */
    int64_t last_caught_up_ms;    /* when it last had everything the leader had */
    int64_t last_fetch_ms;
    int64_t last_fetch_leader_leo; /* the leader's log end at that fetch */
} follower_t;

struct repl_partition {
    replication_t *r;
    enum role role;
    int32_t leader, leader_epoch;
    int32_t replicas[ZK_MAX_REPLICAS];
    int nreplicas;
    int32_t isr[ZK_MAX_REPLICAS];
    int nisr;
    follower_t followers[ZK_MAX_REPLICAS];
    int nfollowers;
    leader_epoch_cache_t *lec;
    int64_t isr_write_ms; /* an ISR change written at this time and not yet seen back; 0 none */
};

typedef enum { F_IDLE, F_CONNECTING, F_WAITING } fetcher_state_t;

/* One connection to one leader broker, with at most one Fetch in flight. */
typedef struct fetcher {
    struct fetcher *next;
    replication_t *r;
    int32_t leader_id;
    char host[256];
    int32_t port;
    int fd;
    ev_io_t io;
    fetcher_state_t state;
    bool connected;
    bool in_backoff;
    buf_t out;
    size_t out_pos;
    uint8_t *in;
    size_t in_len, in_cap;
    int32_t correlation;
    ev_timer_t timer; /* backoff, or the socket timeout of the fetch in flight */
    /* The partitions it copies, in request order (topics_foreach's), valid while follow_gen
     * equals the replication's: saves walking every topic for each Fetch. */
    partition_t **follow;
    int32_t nfollow, cap_follow;
    uint64_t follow_gen;
} fetcher_t;

struct replication {
    evloop_t *loop;
    topics_t *topics;
    int32_t broker_id;
    const broker_config_t *config;
    repl_isr_writer_t write_isr;
    void *write_isr_arg;
    fetcher_t *fetchers;
    zk_broker_t *brokers;
    int nbrokers;
    ev_timer_t isr_timer;
    int64_t lag_max_ms;
    repl_leadership_cb_t on_leadership;
    void *on_leadership_arg;
    char client_id[64];
    /* Bumped whenever a partition gains or loses replication state or changes role or leader:
     * the fetchers' partition lists are rebuilt then (0: never valid). */
    uint64_t follow_gen;
    uint64_t isr_shrinks, isr_expands; /* of partitions led here, as the snapshots show them */
};

static bool id_in(int32_t id, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static int64_t cfg_long(const replication_t *r, const char *key) { return broker_config_get_long(r->config, key); }

static void wake_hw_waiters(partition_t *p) { partition_wake_all(&p->hw_waiters); }

static void set_high_watermark(partition_t *p, int64_t hw)
{
    if (hw <= p->high_watermark)
        return;
    p->high_watermark = hw;
    partition_wake_all(&p->waiters);
    wake_hw_waiters(p);
}

/* ---- leader ---- */

static follower_t *find_follower(repl_partition_t *rp, int32_t id)
{
    for (int i = 0; i < rp->nfollowers; i++)
        if (rp->followers[i].id == id)
            return &rp->followers[i];
    return NULL;
}

/* The high watermark: the smallest log end among the in-sync replicas. It never moves back. */
static void update_high_watermark(partition_t *p)
{
    repl_partition_t *rp = p->repl;
    if (rp->role != ROLE_LEADER)
        return;
    int64_t hw = log_end_offset(p->log);
    for (int i = 0; i < rp->nisr; i++) {
        if (rp->isr[i] == rp->r->broker_id)
            continue;
        follower_t *f = find_follower(rp, rp->isr[i]);
        if (f == NULL || f->leo < 0)
            return; /* not heard from since this broker leads: wait for its first fetch */
        if (f->leo < hw)
            hw = f->leo;
    }
    set_high_watermark(p, hw);
}

static void write_isr(partition_t *p, const int32_t *isr, int nisr, const char *why, int32_t who)
{
    repl_partition_t *rp = p->repl;
    replication_t *r = rp->r;
    LOG_INFO("replication", "%s-%d: %s replica %d: ISR -> %d member(s) (leader epoch %d)", p->topic->name,
             p->index, why, who, nisr, rp->leader_epoch);
    rp->isr_write_ms = evloop_now_ms(r->loop);
    r->write_isr(r->write_isr_arg, p->topic->name, p->index, rp->leader_epoch, isr, nisr);
}

static bool isr_write_pending(const repl_partition_t *rp, int64_t now)
{
    return rp->isr_write_ms != 0 && now - rp->isr_write_ms < ISR_WRITE_RETRY_MS;
}

/* Where the current leader epoch starts in this log (the follower must reach it to join the ISR). */
static int64_t current_epoch_start(const partition_t *p)
{
    int32_t e;
    int64_t end;
    lec_end_offset_for(p->repl->lec, p->repl->leader_epoch - 1, log_end_offset(p->log), &e, &end);
    return end < 0 ? log_start_offset(p->log) : end;
}

bool repl_diverging(partition_t *p, int32_t last_fetched_epoch, int64_t fetch_offset, int32_t *epoch,
                    int64_t *end_offset)
{
    *epoch = -1;
    *end_offset = -1;
    if (p->repl == NULL || last_fetched_epoch < 0)
        return false;
    int32_t e;
    int64_t end;
    lec_end_offset_for(p->repl->lec, last_fetched_epoch, log_end_offset(p->log), &e, &end);
    if (e < 0 || (e == last_fetched_epoch && end >= fetch_offset))
        return false;
    *epoch = e;
    *end_offset = end;
    return true;
}

int16_t repl_follower_fetch(partition_t *p, int32_t replica_id, int64_t fetch_offset, int32_t last_fetched_epoch,
                            int32_t *diverging_epoch, int64_t *diverging_end)
{
    repl_partition_t *rp = p->repl;
    if (rp == NULL || rp->role != ROLE_LEADER)
        return KERR_NOT_LEADER_OR_FOLLOWER;
    follower_t *f = find_follower(rp, replica_id);
    if (f == NULL)
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (repl_diverging(p, last_fetched_epoch, fetch_offset, diverging_epoch, diverging_end))
        return KERR_NONE; /* it truncates first */
    int64_t leo = log_end_offset(p->log);
    if (fetch_offset > leo)
        return KERR_OFFSET_OUT_OF_RANGE;
    int64_t now = evloop_now_ms(rp->r->loop);
    f->leo = fetch_offset;
    if (fetch_offset >= leo)
        f->last_caught_up_ms = now;
    else if (f->last_fetch_leader_leo >= 0 && fetch_offset >= f->last_fetch_leader_leo)
        f->last_caught_up_ms = f->last_fetch_ms;
    f->last_fetch_leader_leo = leo;
    f->last_fetch_ms = now;
    if (!id_in(replica_id, rp->isr, rp->nisr) && fetch_offset >= p->high_watermark &&
        fetch_offset >= current_epoch_start(p) && !isr_write_pending(rp, now) && rp->nisr < ZK_MAX_REPLICAS) {
        int32_t isr[ZK_MAX_REPLICAS];
        memcpy(isr, rp->isr, sizeof(int32_t) * (size_t)rp->nisr);
        isr[rp->nisr] = replica_id;
        write_isr(p, isr, rp->nisr + 1, "caught up:", replica_id);
    }
    update_high_watermark(p);
    return KERR_NONE;
}

int repl_isr_size(const partition_t *p) { return p->repl ? p->repl->nisr : 1; }

bool repl_is_leader(const partition_t *p) { return p->repl == NULL || p->repl->role == ROLE_LEADER; }

void repl_leader_appended(partition_t *p) { update_high_watermark(p); }

void repl_end_offset_for(partition_t *p, int32_t requested_epoch, int32_t *epoch, int64_t *end_offset)
{
    if (p->repl == NULL) {
        /* A single replica leads at its one epoch from the start of its log (Kafka's cache
         * answers an older epoch with where the first known one starts). */
        *epoch = -1;
        *end_offset = -1;
        if (requested_epoch == p->leader_epoch) {
            *epoch = p->leader_epoch;
            *end_offset = log_end_offset(p->log);
        } else if (requested_epoch >= 0 && requested_epoch < p->leader_epoch) {
            *epoch = requested_epoch;
            *end_offset = log_start_offset(p->log);
        }
        return;
    }
    lec_end_offset_for(p->repl->lec, requested_epoch, log_end_offset(p->log), epoch, end_offset);
}

/* replica.lag.time.max.ms: followers in the ISR that have not caught up for that long leave it. */
static void check_isr(void *arg, topic_t *tp)
{
    replication_t *r = arg;
    int64_t now = evloop_now_ms(r->loop);
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = tp->partitions[i];
        repl_partition_t *rp = p ? p->repl : NULL;
        if (rp == NULL || rp->role != ROLE_LEADER || isr_write_pending(rp, now))
            continue;
        int32_t isr[ZK_MAX_REPLICAS];
        int n = 0, out = -1;
        for (int k = 0; k < rp->nisr; k++) {
            follower_t *f = rp->isr[k] == r->broker_id ? NULL : find_follower(rp, rp->isr[k]);
            if (f && now - f->last_caught_up_ms > r->lag_max_ms && out < 0)
                out = f->id;
            else
                isr[n++] = rp->isr[k];
        }
        if (out >= 0)
            write_isr(p, isr, n, "lagging:", out);
    }
}

static void isr_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    replication_t *r = t->arg;
    topics_foreach(r->topics, check_isr, r);
    int64_t every = r->lag_max_ms / 2 > 0 ? r->lag_max_ms / 2 : 1;
    evloop_timer_start(loop, &r->isr_timer, every);
}

/* ---- follower: fetching from leaders ---- */

static void fetcher_kick(fetcher_t *f);

static fetcher_t *find_fetcher(replication_t *r, int32_t leader_id, bool create)
{
    for (fetcher_t *f = r->fetchers; f; f = f->next)
        if (f->leader_id == leader_id)
            return f;
    if (!create)
        return NULL;
    fetcher_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->r = r;
    f->leader_id = leader_id;
    f->fd = -1;
    f->port = -1;
    buf_init(&f->out);
    evloop_timer_init(&f->timer, NULL, f);
    for (int i = 0; i < r->nbrokers; i++)
        if (r->brokers[i].id == leader_id) {
            snprintf(f->host, sizeof(f->host), "%s", r->brokers[i].host);
            f->port = r->brokers[i].port;
        }
    f->next = r->fetchers;
    r->fetchers = f;
    return f;
}

static void fetcher_disconnect(fetcher_t *f)
{
    if (f->fd >= 0) {
        evloop_io_del(f->r->loop, &f->io);
        close(f->fd);
        f->fd = -1;
    }
    evloop_timer_stop(f->r->loop, &f->timer);
    f->connected = false;
    f->state = F_IDLE;
    f->out.len = 0;
    f->out_pos = 0;
    f->in_len = 0;
}

static void backoff_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    fetcher_t *f = t->arg;
    f->in_backoff = false;
    fetcher_kick(f);
}

static void fetcher_backoff(fetcher_t *f)
{
    f->in_backoff = true;
    f->timer.cb = backoff_cb;
    evloop_timer_start(f->r->loop, &f->timer, cfg_long(f->r, "replica.fetch.backoff.ms"));
}

static void fetcher_fail(fetcher_t *f, const char *why)
{
    LOG_WARN("replication", "fetching from broker %d (%s:%d): %s", f->leader_id, f->host, f->port, why);
    fetcher_disconnect(f);
    fetcher_backoff(f);
}

static void timeout_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    fetcher_fail(t->arg, "no answer within replica.socket.timeout.ms");
}

/* True when p is a follower replica of a partition led by broker leader_id. */
static bool following(const partition_t *p, int32_t leader_id)
{
    return p && p->repl && p->repl->role == ROLE_FOLLOWER && p->repl->leader == leader_id;
}

/* The partitions this fetcher copies, grouped by topic, as a Fetch request body. */
typedef struct build_ctx {
    fetcher_t *f;
    arena_t *arena;
    FetchRequest *req;
    int32_t cap;
    int32_t partition_max;
} build_ctx_t;

static void fill_partition(build_ctx_t *b, FetchRequest_FetchPartition *fp, partition_t *p)
{
    FetchRequest_FetchPartition_init(fp);
    fp->Partition = p->index;
    fp->CurrentLeaderEpoch = p->repl->leader_epoch;
    fp->FetchOffset = log_end_offset(p->log);
    fp->LastFetchedEpoch = lec_latest_epoch(p->repl->lec);
    fp->LogStartOffset = log_start_offset(p->log);
    fp->PartitionMaxBytes = b->partition_max;
}

static void add_topic_partitions(void *arg, topic_t *tp)
{
    build_ctx_t *b = arg;
    int32_t n = 0;
    for (int32_t i = 0; i < tp->npartitions; i++)
        if (following(tp->partitions[i], b->f->leader_id))
            n++;
    if (n == 0)
        return;
    if (b->req->Topics.count == b->cap) {
        int32_t cap = b->cap ? b->cap * 2 : 16;
        FetchRequest_FetchTopic *t = arena_alloc(b->arena, sizeof(*t) * (size_t)cap);
        if (t == NULL)
            return;
        if (b->cap)
            memcpy(t, b->req->Topics.items, sizeof(*t) * (size_t)b->cap);
        b->req->Topics.items = t;
        b->cap = cap;
    }
    FetchRequest_FetchPartition *parts = arena_alloc(b->arena, sizeof(*parts) * (size_t)n);
    if (parts == NULL)
        return;
    FetchRequest_FetchTopic *ft = &b->req->Topics.items[b->req->Topics.count++];
    FetchRequest_FetchTopic_init(ft);
    ft->Topic = kstr_c(tp->name);
    ft->TopicId = tp->id;
    ft->Partitions.items = parts;
    ft->Partitions.count = n;
    int32_t k = 0;
    for (int32_t i = 0; i < tp->npartitions; i++)
        if (following(tp->partitions[i], b->f->leader_id))
            fill_partition(b, &parts[k++], tp->partitions[i]);
}

static void collect_followed(void *arg, topic_t *tp)
{
    fetcher_t *f = arg;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = tp->partitions[i];
        if (!following(p, f->leader_id))
            continue;
        if (f->nfollow == f->cap_follow) {
            int32_t cap = f->cap_follow ? f->cap_follow * 2 : 16;
            partition_t **n = realloc(f->follow, sizeof(*n) * (size_t)cap);
            if (n == NULL) {
                f->cap_follow = -1; /* failed: see fetcher_follow_update */
                return;
            }
            f->follow = n;
            f->cap_follow = cap;
        }
        if (f->cap_follow > 0)
            f->follow[f->nfollow++] = p;
    }
}

/* Brings f->follow up to date (the same partitions, in the same order, as a walk of all topics
 * would find). 0, or -1 when out of memory (the caller walks the topics then). */
static int fetcher_follow_update(fetcher_t *f)
{
    replication_t *r = f->r;
    if (r->follow_gen != 0 && f->follow_gen == r->follow_gen)
        return 0;
    f->nfollow = 0;
    if (f->cap_follow < 0)
        f->cap_follow = 0;
    topics_foreach(r->topics, collect_followed, f);
    if (f->cap_follow < 0) {
        f->cap_follow = 0;
        free(f->follow);
        f->follow = NULL;
        f->nfollow = 0;
        f->follow_gen = 0;
        return -1;
    }
    f->follow_gen = r->follow_gen;
    return 0;
}

/* The request body from f->follow: one topic entry per run of partitions of the same topic. */
static void add_followed(build_ctx_t *b)
{
    fetcher_t *f = b->f;
    FetchRequest *req = b->req;
    int32_t ntopics = 0;
    for (int32_t i = 0; i < f->nfollow; i++)
        if (i == 0 || f->follow[i]->topic != f->follow[i - 1]->topic)
            ntopics++;
    if (ntopics == 0)
        return;
    FetchRequest_FetchTopic *topics = arena_alloc(b->arena, sizeof(*topics) * (size_t)ntopics);
    FetchRequest_FetchPartition *parts = arena_alloc(b->arena, sizeof(*parts) * (size_t)f->nfollow);
    if (topics == NULL || parts == NULL)
        return;
    req->Topics.items = topics;
    for (int32_t i = 0; i < f->nfollow; i++) {
        partition_t *p = f->follow[i];
        if (i == 0 || p->topic != f->follow[i - 1]->topic) {
            FetchRequest_FetchTopic *ft = &topics[req->Topics.count++];
            FetchRequest_FetchTopic_init(ft);
            ft->Topic = kstr_c(p->topic->name);
            ft->TopicId = p->topic->id;
            ft->Partitions.items = &parts[i];
            ft->Partitions.count = 0;
        }
        FetchRequest_FetchTopic *ft = &topics[req->Topics.count - 1];
        fill_partition(b, &parts[i], p);
        ft->Partitions.count++;
    }
}

static void fetcher_on_io(evloop_t *loop, ev_io_t *io, uint32_t revents);

static int fetcher_connect(fetcher_t *f)
{
    if (f->port <= 0)
        return -1;
    char port[16];
    snprintf(port, sizeof(port), "%d", f->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(f->host, port, &hints, &ai) != 0 || ai == NULL)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    f->fd = fd;
    f->io.fd = fd;
    f->io.cb = fetcher_on_io;
    f->io.arg = f;
    if (evloop_io_add(f->r->loop, &f->io, EPOLLOUT) != 0) {
        close(fd);
        f->fd = -1;
        return -1;
    }
    f->state = F_CONNECTING;
    return 0;
}

/* Encodes the next Fetch into f->out; false when there is nothing to fetch. */
static bool build_request(fetcher_t *f)
{
    replication_t *r = f->r;
    arena_t arena;
    arena_init(&arena, 64u << 20);
    FetchRequest req;
    FetchRequest_init(&req);
    req.ReplicaId = r->broker_id;
    req.MaxWaitMs = (int32_t)cfg_long(r, "replica.fetch.wait.max.ms");
    req.MinBytes = (int32_t)cfg_long(r, "replica.fetch.min.bytes");
    req.MaxBytes = (int32_t)cfg_long(r, "replica.fetch.response.max.bytes");
    req.IsolationLevel = 0;
    req.SessionId = 0;
    req.SessionEpoch = -1;
    req.Topics.items = NULL;
    req.Topics.count = 0;
    build_ctx_t b = {f, &arena, &req, 0, (int32_t)cfg_long(r, "replica.fetch.max.bytes")};
    if (fetcher_follow_update(f) == 0)
        add_followed(&b);
    else
        topics_foreach(r->topics, add_topic_partitions, &b);
    bool any = req.Topics.count > 0;
    if (any) {
        kmsg_out_t o;
        kmsg_out_init(&o);
        buf_put_i32(&o.buf, 0); /* size, patched below */
        buf_put_i16(&o.buf, FETCH_API_KEY);
        buf_put_i16(&o.buf, FETCH_VERSION);
        buf_put_i32(&o.buf, ++f->correlation);
        buf_put_i16(&o.buf, (int16_t)strlen(r->client_id));
        buf_put(&o.buf, r->client_id, strlen(r->client_id));
        buf_put_uvarint(&o.buf, 0); /* request header v2: no tagged fields */
        if (kmsg_encode(&FetchRequest_desc, FETCH_VERSION, &req, &o) != 0 || o.buf.oom || o.nsplices) {
            any = false;
        } else {
            be_put32(o.buf.data, (uint32_t)(o.buf.len - 4));
            buf_free(&f->out);
            f->out = o.buf;
            buf_init(&o.buf);
            f->out_pos = 0;
        }
        kmsg_out_free(&o);
    }
    arena_free(&arena);
    return any;
}

static void fetcher_send(fetcher_t *f)
{
    if (!build_request(f)) {
        f->state = F_IDLE;
        evloop_io_set(f->r->loop, &f->io, EPOLLIN); /* notice a close while idle */
        return;
    }
    f->state = F_WAITING;
    f->in_len = 0;
    f->timer.cb = timeout_cb;
    evloop_timer_start(f->r->loop, &f->timer, cfg_long(f->r, "replica.socket.timeout.ms"));
    evloop_io_set(f->r->loop, &f->io, EPOLLIN | EPOLLOUT);
}

static void fetcher_kick(fetcher_t *f)
{
    if (f->in_backoff || f->state != F_IDLE)
        return;
    if (f->fd < 0) {
        if (fetcher_connect(f) != 0)
            fetcher_fail(f, "cannot connect");
        return;
    }
    fetcher_send(f);
}

/* Which of this broker's epochs ends where the leader's diverging epoch ends, as Kafka's follower
 * works it out: the smaller of both ends when the epochs agree, else the end of this log's own
 * largest epoch not above it. */
static int64_t truncation_offset(partition_t *p, int32_t epoch, int64_t leader_end)
{
    int32_t e;
    int64_t end;
    lec_end_offset_for(p->repl->lec, epoch, log_end_offset(p->log), &e, &end);
    if (e < 0)
        return leader_end;
    if (e == epoch)
        return end < leader_end ? end : leader_end;
    return end;
}

static void drop_producer_state(partition_t *p)
{
    /* Reloaded from the log at first use: the follower's appends do not maintain it. */
    pstate_free(p->pstate);
    p->pstate = NULL;
}

static void follower_truncate(partition_t *p, int64_t offset, const char *why)
{
    int64_t end;
    if (offset >= log_end_offset(p->log))
        return;
    LOG_INFO("replication", "%s-%d: truncating to %lld (%s)", p->topic->name, p->index, (long long)offset, why);
    if (log_truncate_to(p->log, offset, &end) != LOG_OK) {
        LOG_ERROR("replication", "%s-%d: truncation failed", p->topic->name, p->index);
        return;
    }
    if (lec_truncate_from_end(p->repl->lec, end))
        lec_flush(p->repl->lec);
    if (p->high_watermark > end)
        p->high_watermark = end;
    drop_producer_state(p);
}

/* Appends the leader's batches as they are (offsets and epochs kept). */
static int follower_append(partition_t *p, const uint8_t *data, size_t len)
{
    int64_t leo = log_end_offset(p->log);
    size_t pos = 0;
    /* The leader answers from the batch holding the fetch offset; skip what this log has. */
    while (pos < len) {
        int64_t size = rb_next_batch_size(data + pos, len - pos);
        if (size <= 0)
            break;
        if (rb_last_offset(data + pos) >= leo)
            break;
        pos += (size_t)size;
    }
    size_t start = pos;
    bool lec_changed = false;
    while (pos < len) {
        int64_t size = rb_next_batch_size(data + pos, len - pos);
        if (size <= 0)
            break; /* a partial batch at the end of a size-limited answer */
        const uint8_t *b = data + pos;
        if (!rb_crc_ok(b) || rb_base_offset(b) < leo) {
            LOG_ERROR("replication", "%s-%d: bad batch from the leader at offset %lld", p->topic->name, p->index,
                      (long long)rb_base_offset(b));
            return -1;
        }
        if (rb_leader_epoch(b) > lec_latest_epoch(p->repl->lec))
            lec_changed |= lec_assign(p->repl->lec, rb_leader_epoch(b), rb_base_offset(b));
        pos += (size_t)size;
    }
    if (pos > start) {
        int64_t next;
        if (log_append_replica(p->log, data + start, pos - start, evloop_wall_ms(), &next) != LOG_OK) {
            LOG_ERROR("replication", "%s-%d: append of the leader's batches failed", p->topic->name, p->index);
            return -1;
        }
        topic_t *tp = p->topic;
        tp->bytes_in += pos - start;
    }
    if (lec_changed)
        lec_flush(p->repl->lec);
    return 0;
}

/* One partition of a Fetch answer. Returns true when it made progress or needs no backoff. */
static bool handle_partition(fetcher_t *f, partition_t *p, const FetchResponse_PartitionData *pd)
{
    if (pd->ErrorCode == KERR_OFFSET_OUT_OF_RANGE) {
        if (log_end_offset(p->log) < pd->LogStartOffset) {
            int64_t end;
            LOG_INFO("replication", "%s-%d: the leader's log starts at %lld: restarting there", p->topic->name,
                     p->index, (long long)pd->LogStartOffset);
            if (log_restart_at(p->log, pd->LogStartOffset, &end) == LOG_OK && lec_truncate_from_end(p->repl->lec, 0))
                lec_flush(p->repl->lec);
            drop_producer_state(p);
        } else if (pd->HighWatermark >= 0) {
            follower_truncate(p, pd->HighWatermark, "ahead of the leader");
        }
        return true;
    }
    if (pd->ErrorCode != KERR_NONE) {
        LOG_DEBUG("replication", "%s-%d: fetch from broker %d: error %d", p->topic->name, p->index, f->leader_id,
                  pd->ErrorCode);
        return false;
    }
    if (pd->DivergingEpoch.Epoch >= 0) {
        follower_truncate(p, truncation_offset(p, pd->DivergingEpoch.Epoch, pd->DivergingEpoch.EndOffset),
                          "diverged from the leader");
        return true;
    }
    if (pd->Records.len > 0 && follower_append(p, pd->Records.ptr, (size_t)pd->Records.len) != 0)
        return false;
    int64_t hw = pd->HighWatermark < log_end_offset(p->log) ? pd->HighWatermark : log_end_offset(p->log);
    if (hw > p->high_watermark)
        p->high_watermark = hw;
    return true;
}

static void handle_response(fetcher_t *f, const uint8_t *frame, size_t len)
{
    replication_t *r = f->r;
    rd_t rd;
    rd_init(&rd, frame, len);
    int32_t corr = rd_i32(&rd);
    uint32_t ntags = rd_uvarint(&rd);
    for (uint32_t i = 0; i < ntags && !rd.err; i++) {
        (void)rd_uvarint(&rd);
        rd_take(&rd, rd_uvarint(&rd));
    }
    arena_t arena;
    arena_init(&arena, 64u << 20);
    FetchResponse resp;
    if (rd.err || corr != f->correlation || kmsg_decode(&FetchResponse_desc, FETCH_VERSION, &rd, &arena, &resp) != 0) {
        arena_free(&arena);
        fetcher_fail(f, "malformed Fetch answer");
        return;
    }
    bool progress = resp.ErrorCode == KERR_NONE;
    int handled = 0;
    for (int32_t i = 0; i < resp.Responses.count && progress; i++) {
        FetchResponse_FetchableTopicResponse *rt = &resp.Responses.items[i];
        topic_t *tp = rt->Topic.len > 0 ? topics_find(r->topics, rt->Topic.ptr, (size_t)rt->Topic.len) : NULL;
        for (int32_t j = 0; j < rt->Partitions.count; j++) {
            partition_t *p = topics_partition(tp, rt->Partitions.items[j].PartitionIndex);
            if (!following(p, f->leader_id))
                continue;
            if (handle_partition(f, p, &rt->Partitions.items[j]))
                handled++;
        }
    }
    arena_free(&arena);
    f->state = F_IDLE;
    evloop_timer_stop(r->loop, &f->timer);
    if (handled == 0)
        fetcher_backoff(f); /* every partition failed (e.g. a stale leader): let metadata catch up */
    else
        fetcher_kick(f);
}

static void fetcher_on_io(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)loop;
    fetcher_t *f = io->arg;
    if (f->state == F_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        if ((revents & (EPOLLERR | EPOLLHUP)) || getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err) {
            fetcher_fail(f, err ? strerror(err) : "cannot connect");
            return;
        }
        f->connected = true;
        f->state = F_IDLE;
        LOG_INFO("replication", "fetching from broker %d at %s:%d", f->leader_id, f->host, f->port);
        fetcher_send(f);
        return;
    }
    if (revents & EPOLLOUT) {
        while (f->out_pos < f->out.len) {
            ssize_t n = write(f->fd, f->out.data + f->out_pos, f->out.len - f->out_pos);
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                fetcher_fail(f, strerror(errno));
                return;
            }
            f->out_pos += (size_t)n;
        }
        if (f->out_pos >= f->out.len)
            evloop_io_set(f->r->loop, &f->io, EPOLLIN);
    }
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            if (f->in_cap - f->in_len < 65536) {
                size_t cap = f->in_cap ? f->in_cap * 2 : 1 << 20;
                uint8_t *in = realloc(f->in, cap);
                if (in == NULL) {
                    fetcher_fail(f, "out of memory");
                    return;
                }
                f->in = in;
                f->in_cap = cap;
            }
            ssize_t n = read(f->fd, f->in + f->in_len, f->in_cap - f->in_len);
            if (n == 0) {
                fetcher_fail(f, "the leader closed the connection");
                return;
            }
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                fetcher_fail(f, strerror(errno));
                return;
            }
            f->in_len += (size_t)n;
            if (f->in_len < 4)
                continue;
            uint32_t size = be_get32(f->in);
            if (size > MAX_RESPONSE_BYTES) {
                fetcher_fail(f, "answer too large");
                return;
            }
            if (f->in_len < 4 + (size_t)size)
                continue;
            if (f->state != F_WAITING || f->in_len > 4 + (size_t)size) {
                fetcher_fail(f, "unexpected data from the leader");
                return;
            }
            f->in_len = 0;
            handle_response(f, f->in + 4, size);
            return;
        }
    }
}

/* ---- partition states from ZooKeeper ---- */

static repl_partition_t *attach(replication_t *r, partition_t *p)
{
    repl_partition_t *rp = calloc(1, sizeof(*rp));
    if (rp == NULL)
        return NULL;
    rp->lec = lec_open(p->dir);
    if (rp->lec == NULL) {
        free(rp);
        return NULL;
    }
    /* Entries past the log end say nothing about this log. */
    if (lec_truncate_from_end(rp->lec, log_end_offset(p->log)))
        lec_flush(rp->lec);
    rp->r = r;
    rp->role = ROLE_NONE;
    rp->leader = -1;
    rp->leader_epoch = -1;
    p->repl = rp;
    p->high_watermark = log_start_offset(p->log);
    r->follow_gen++;
    return rp;
}

void replication_apply(replication_t *r, partition_t *p, const zk_partition_t *zp)
{
    repl_partition_t *rp = p->repl ? p->repl : attach(r, p);
    if (rp == NULL)
        return;
    enum role role = ROLE_NONE;
    if (zp->leader == r->broker_id)
        role = ROLE_LEADER;
    else if (zp->leader >= 0 && id_in(r->broker_id, zp->replicas, zp->nreplicas))
        role = ROLE_FOLLOWER;
    bool changed = role != rp->role || zp->leader != rp->leader || zp->leader_epoch != rp->leader_epoch;
    bool isr_changed = zp->nisr != rp->nisr || memcmp(zp->isr, rp->isr, sizeof(int32_t) * (size_t)zp->nisr) != 0;
    enum role old = rp->role;
    if (changed)
        r->follow_gen++;
    /* Counted like Kafka's IsrShrinksPerSec/IsrExpandsPerSec: by the leader, once the change is in. */
    if (isr_changed && !changed && role == ROLE_LEADER && old == ROLE_LEADER) {
        if (zp->nisr < rp->nisr)
            r->isr_shrinks++;
        else if (zp->nisr > rp->nisr)
            r->isr_expands++;
    }
    rp->role = role;
    rp->leader = zp->leader;
    rp->leader_epoch = zp->leader_epoch;
    memcpy(rp->replicas, zp->replicas, sizeof(zp->replicas));
    rp->nreplicas = zp->nreplicas;
    memcpy(rp->isr, zp->isr, sizeof(zp->isr));
    rp->nisr = zp->nisr;
    if (isr_changed)
        rp->isr_write_ms = 0;
    if (changed) {
        int64_t now = evloop_now_ms(r->loop);
        if (role == ROLE_LEADER) {
            if (lec_assign(rp->lec, zp->leader_epoch, log_end_offset(p->log)))
                lec_flush(rp->lec);
            rp->nfollowers = 0;
            for (int i = 0; i < zp->nreplicas; i++) {
                if (zp->replicas[i] == r->broker_id)
                    continue;
                follower_t *f = &rp->followers[rp->nfollowers++];
                f->id = zp->replicas[i];
                f->leo = -1;
                f->last_caught_up_ms = now;
                f->last_fetch_ms = now;
                f->last_fetch_leader_leo = -1;
            }
            if (old != ROLE_LEADER)
                drop_producer_state(p);
            LOG_INFO("replication", "%s-%d: leader at epoch %d from offset %lld", p->topic->name, p->index,
                     zp->leader_epoch, (long long)log_end_offset(p->log));
        } else if (role == ROLE_FOLLOWER) {
            if (old == ROLE_LEADER)
                drop_producer_state(p);
            LOG_INFO("replication", "%s-%d: follower of broker %d at epoch %d", p->topic->name, p->index, zp->leader,
                     zp->leader_epoch);
            fetcher_t *f = find_fetcher(r, zp->leader, true);
            if (f)
                fetcher_kick(f);
        }
        wake_hw_waiters(p); /* acks=all produces waiting here learn of the change */
        if ((old == ROLE_LEADER) != (role == ROLE_LEADER) && r->on_leadership)
            r->on_leadership(r->on_leadership_arg, p, role == ROLE_LEADER);
    }
    if (role == ROLE_LEADER && (changed || isr_changed)) {
        update_high_watermark(p);
        wake_hw_waiters(p);
    }
}

void replication_set_leadership_hook(replication_t *r, repl_leadership_cb_t cb, void *arg)
{
    r->on_leadership = cb;
    r->on_leadership_arg = arg;
}

void replication_set_brokers(replication_t *r, const zk_broker_t *brokers, int n)
{
    zk_broker_t *copy = n > 0 ? malloc(sizeof(*copy) * (size_t)n) : NULL;
    if (n > 0 && copy == NULL)
        return;
    if (n > 0)
        memcpy(copy, brokers, sizeof(*copy) * (size_t)n);
    free(r->brokers);
    r->brokers = copy;
    r->nbrokers = n;
    for (fetcher_t *f = r->fetchers; f; f = f->next) {
        for (int i = 0; i < n; i++) {
            if (copy[i].id != f->leader_id)
                continue;
            if (strcmp(copy[i].host, f->host) != 0 || copy[i].port != f->port) {
                snprintf(f->host, sizeof(f->host), "%s", copy[i].host);
                f->port = copy[i].port;
                fetcher_disconnect(f);
            }
            fetcher_kick(f);
        }
    }
}

bool repl_under_replicated(const partition_t *p)
{
    return p->repl && p->repl->role == ROLE_LEADER && p->repl->nisr < p->repl->nreplicas;
}

void replication_isr_changes(const replication_t *r, uint64_t *shrinks, uint64_t *expands)
{
    *shrinks = r ? r->isr_shrinks : 0;
    *expands = r ? r->isr_expands : 0;
}

void repl_partition_free(partition_t *p)
{
    if (p->repl == NULL)
        return;
    p->repl->r->follow_gen++; /* no fetcher may keep a pointer to p */
    lec_free(p->repl->lec);
    free(p->repl);
    p->repl = NULL;
}

replication_t *replication_new(evloop_t *loop, topics_t *topics, const broker_config_t *config, int32_t broker_id,
                               repl_isr_writer_t write_isr, void *write_isr_arg)
{
    replication_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->loop = loop;
    r->topics = topics;
    r->config = config;
    r->broker_id = broker_id;
    r->write_isr = write_isr;
    r->write_isr_arg = write_isr_arg;
    r->lag_max_ms = cfg_long(r, "replica.lag.time.max.ms");
    snprintf(r->client_id, sizeof(r->client_id), "runnel-replica-fetcher-%d", broker_id);
    evloop_timer_init(&r->isr_timer, isr_timer_cb, r);
    evloop_timer_start(loop, &r->isr_timer, r->lag_max_ms / 2 > 0 ? r->lag_max_ms / 2 : 1);
    return r;
}

void replication_free(replication_t *r)
{
    if (r == NULL)
        return;
    evloop_timer_stop(r->loop, &r->isr_timer);
    while (r->fetchers) {
        fetcher_t *f = r->fetchers;
        r->fetchers = f->next;
        fetcher_disconnect(f);
        buf_free(&f->out);
        free(f->in);
        free(f->follow);
        free(f);
    }
    free(r->brokers);
    free(r);
}

/* ---------------------------------------------------------------- high-watermark wait */

static void hw_finish(repl_hw_wait_t *w, int16_t err)
{
    repl_hw_wait_cancel(w);
    w->done(w, err);
}

static void hw_recheck_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    repl_hw_wait_t *w = d->arg;
    if (w->gone || !repl_is_leader(w->p))
        hw_finish(w, KERR_NOT_LEADER_OR_FOLLOWER);
    else if (partition_high_watermark(w->p) >= w->target)
        hw_finish(w, KERR_NONE);
}

static void hw_wake(partition_waiter_t *pw)
{
    repl_hw_wait_t *w = pw->arg;
    if (pw->next == NULL)
        w->gone = true; /* detached: the partition is going away */
    evloop_defer(w->loop, &w->recheck);
}

static void hw_timeout_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    hw_finish(t->arg, KERR_REQUEST_TIMED_OUT);
}

int repl_hw_wait_start(repl_hw_wait_t *w, evloop_t *loop, partition_t *p, int64_t target, int64_t timeout_ms)
{
    if (partition_high_watermark(p) >= target)
        return 0;
    w->loop = loop;
    w->p = p;
    w->target = target;
    w->gone = false;
    w->pw.prev = w->pw.next = NULL;
    w->pw.wake = hw_wake;
    w->pw.arg = w;
    memset(&w->recheck, 0, sizeof(w->recheck));
    w->recheck.cb = hw_recheck_cb;
    w->recheck.arg = w;
    evloop_timer_init(&w->timer, hw_timeout_cb, w);
    partition_add_hw_waiter(p, &w->pw);
    evloop_timer_start(loop, &w->timer, timeout_ms > 0 ? timeout_ms : 0);
    w->armed = true;
    return 1;
}

void repl_hw_wait_cancel(repl_hw_wait_t *w)
{
    if (!w->armed)
        return;
    w->armed = false;
    partition_remove_waiter(&w->pw);
    evloop_timer_stop(w->loop, &w->timer);
    evloop_defer_cancel(w->loop, &w->recheck);
}
