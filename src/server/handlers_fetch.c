/*
 * handlers_fetch.c - Fetch, including the long poll.
 *
 * Record data is never copied: each partition's answer is a file region of
 * whole batches (from the batch holding the fetch offset) that the connection
 * sends with sendfile(); the region's fd is dup()ed so that a segment deleted
 * meanwhile still reads correctly. When less than MinBytes is available the
 * request waits (a delayed operation): it registers a waiter on each
 * partition, and an append wakes it at once, or the MaxWaitMs timer ends it.
 * Fetch sessions are answered with SessionId 0 ("no session"), which every
 * client accepts and answers with full fetch requests.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "common/logger.h"
#include "server/broker.h"
#include "txn/partition_txn.h"

struct fetch_part;

typedef struct fetch_op {
    request_t *req;
    partition_waiter_t *waiters;
    int nwaiters;
    struct fetch_part *parts; /* the recheck's outcomes (NULL if none could be allocated) */
    ev_timer_t timer;
    ev_defer_t recheck;
} fetch_op_t;

static topic_t *fetch_topic(request_t *req, FetchRequest_FetchTopic *ft)
{
    topics_t *topics = req->broker->topics;
    if (req->hdr.api_version >= 13)
        return topics_find_id(topics, &ft->TopicId);
    return ft->Topic.len > 0 ? topics_find(topics, ft->Topic.ptr, (size_t)ft->Topic.len) : NULL;
}

static int16_t check_leader_epoch(partition_t *p, int32_t requested)
{
    if (requested < 0 || requested == p->leader_epoch)
        return KERR_NONE;
    return requested > p->leader_epoch ? KERR_UNKNOWN_LEADER_EPOCH : KERR_FENCED_LEADER_EPOCH;
}

/* The broker that sent a Fetch: a follower's replica id, or -1 for a consumer. */
static int32_t fetch_replica_id(const request_t *req)
{
    const FetchRequest *r = req->body;
    return req->hdr.api_version >= 15 ? r->ReplicaState.ReplicaId : r->ReplicaId;
}

/* The end of what this fetch may read: followers copy up to the log end; consumers read up to
 * the high watermark, and read_committed ones (src/txn/) only up to the last stable offset. */
static int64_t fetch_upper(partition_t *p, bool replica, bool read_committed)
{
    if (replica)
        return log_end_offset(p->log);
    int64_t hw = partition_high_watermark(p);
    if (read_committed) {
        int64_t lso = ptxn_last_stable_offset(p);
        if (lso < hw)
            return lso;
    }
    return hw;
}

/* Nothing at or past `upper` is served. */
static int16_t fetch_trim(partition_t *p, int64_t offset, int64_t upper, log_read_t *rd)
{
    if (rd->len <= 0 || upper >= log_end_offset(p->log))
        return KERR_NONE;
    int32_t n = offset >= upper ? 0 : ptxn_trim_region(rd->fd, rd->position, rd->len, upper);
    if (n < 0)
        return KERR_KAFKA_STORAGE_ERROR;
    rd->len = n;
    if (n == 0)
        rd->fd = -1;
    return KERR_NONE;
}

/* The aborted transactions a read_committed consumer needs to drop records of the answer. */
static void fetch_aborted(request_t *req, partition_t *p, int64_t offset, FetchResponse_PartitionData *pd)
{
    int64_t upper = ptxn_last_stable_offset(p);
    int n = ptxn_aborted(p, offset, upper, NULL, 0);
    if (n <= 0)
        return;
    pstate_aborted_t *a = request_alloc(req, sizeof(*a) * (size_t)n);
    REQUEST_ARRAY(req, pd->AbortedTransactions, n);
    if (a == NULL || pd->AbortedTransactions.items == NULL) {
        pd->AbortedTransactions.count = 0;
        return;
    }
    ptxn_aborted(p, offset, upper, a, n);
    for (int i = 0; i < n; i++) {
        pd->AbortedTransactions.items[i].ProducerId = a[i].producer_id;
        pd->AbortedTransactions.items[i].FirstOffset = a[i].first_offset;
    }
}

/* One partition's outcome: what a measure found, kept so that the answer given right after it
 * (in the same call, so nothing can have changed) is built without reading the log again. The
 * log's fd is only borrowed until the next call on that log (a later partition of the same
 * request may close it), so a region's fd is dup()ed at once, as the answer needs anyway. */
typedef struct fetch_part {
    topic_t *tp;
    partition_t *p;
    int16_t err;
    bool diverging; /* counted as an error (answer at once), answered with ErrorCode NONE */
    bool dup_failed;
    int32_t div_epoch;
    int64_t div_end;
    log_read_t rd;  /* with len > 0 and no error: rd.fd is our own dup (or dup_failed) */
} fetch_part_t;

typedef struct fetch_eval {
    int64_t max_bytes;
    int64_t total;
    bool min_one;
    bool read_committed;
    bool replica;
} fetch_eval_t;

static void fetch_eval_init(request_t *req, fetch_eval_t *e)
{
    FetchRequest *r = req->body;
    e->max_bytes = req->hdr.api_version >= 3 ? r->MaxBytes : INT32_MAX;
    e->total = 0;
    e->min_one = true;
    e->read_committed = r->IsolationLevel == 1;
    e->replica = fetch_replica_id(req) >= 0 && req->broker->cluster;
}

/* Reads what the fetch would return from one partition, within what is left of MaxBytes; with
 * `keep`, dup()s the region's fd (see fetch_part_t). */
static void fetch_part_eval(request_t *req, fetch_eval_t *e, topic_t *tp, FetchRequest_FetchPartition *fp,
                            bool keep, fetch_part_t *out)
{
    int16_t v = req->hdr.api_version;
    partition_t *p = topics_partition(tp, fp->Partition);
    int16_t err = KERR_NONE;
    if (p == NULL)
        err = tp == NULL && v >= 13 ? KERR_UNKNOWN_TOPIC_ID : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    else if (req->broker->cluster)
        err = cluster_check_leader(req->broker->cluster, tp, p->index);
    if (p && err == KERR_NONE)
        err = check_leader_epoch(p, fp->CurrentLeaderEpoch);
    log_read_t rd = {.fd = -1};
    int32_t div_epoch = -1;
    int64_t div_end = -1;
    bool diverging = false;
    if (err == KERR_NONE && e->replica &&
        repl_diverging(p, fp->LastFetchedEpoch, fp->FetchOffset, &div_epoch, &div_end)) {
        diverging = true; /* answered at once: the follower truncates first */
    } else if (err == KERR_NONE) {
        int64_t room = e->max_bytes - e->total;
        int32_t limit = fp->PartitionMaxBytes;
        if (room < limit)
            limit = room < 0 ? 0 : (int32_t)room;
        if (e->read_committed)
            (void)ptxn_state(p); /* loading reads the log: before rd borrows its fd */
        int rc = log_read(p->log, fp->FetchOffset, limit, e->min_one, &rd);
        if (rc == LOG_ERR_OUT_OF_RANGE)
            err = KERR_OFFSET_OUT_OF_RANGE;
        else if (rc != LOG_OK)
            err = KERR_KAFKA_STORAGE_ERROR;
        else
            err = fetch_trim(p, fp->FetchOffset, fetch_upper(p, e->replica, e->read_committed), &rd);
    }
    out->dup_failed = false;
    if (err == KERR_NONE && !diverging && rd.len > 0) {
        e->total += rd.len;
        e->min_one = false;
        if (keep) {
            rd.fd = dup(rd.fd);
            if (rd.fd == -1) {
                LOG_ERROR("fetch", "dup: %s", strerror(errno));
                out->dup_failed = true;
            }
        }
    }
    out->tp = tp;
    out->p = p;
    out->err = err;
    out->diverging = diverging;
    out->div_epoch = div_epoch;
    out->div_end = div_end;
    out->rd = rd;
}

static int32_t fetch_npartitions(const FetchRequest *r)
{
    int32_t n = 0;
    for (int32_t i = 0; i < r->Topics.count; i++)
        n += r->Topics.items[i].Partitions.count;
    return n;
}

/* Measures what the fetch would return: the bytes available; *errors counts partitions that
 * failed (or diverge). With `parts` (one per requested partition, in request order) the
 * outcomes are kept for fetch_fill. */
static int64_t fetch_measure(request_t *req, fetch_part_t *parts, int *errors)
{
    FetchRequest *r = req->body;
    fetch_eval_t e;
    fetch_eval_init(req, &e);
    *errors = 0;
    int32_t k = 0;
    for (int32_t i = 0; i < r->Topics.count; i++) {
        FetchRequest_FetchTopic *ft = &r->Topics.items[i];
        topic_t *tp = fetch_topic(req, ft);
        for (int32_t j = 0; j < ft->Partitions.count; j++) {
            fetch_part_t scratch, *fpo = parts ? &parts[k++] : &scratch;
            fetch_part_eval(req, &e, tp, &ft->Partitions.items[j], parts != NULL, fpo);
            if (fpo->err != KERR_NONE || fpo->diverging)
                (*errors)++;
        }
    }
    return e.total;
}

/* Closes the fds a measure kept when no answer follows it. */
static void fetch_parts_release(request_t *req, fetch_part_t *parts)
{
    if (parts == NULL)
        return;
    int32_t n = fetch_npartitions(req->body);
    for (int32_t k = 0; k < n; k++) {
        fetch_part_t *pr = &parts[k];
        if (pr->err == KERR_NONE && !pr->diverging && pr->rd.len > 0 && !pr->dup_failed)
            close(pr->rd.fd);
        pr->rd.len = 0;
        pr->rd.fd = -1;
    }
}

/* Fills the response: from `parts` measured just before (same call), or, without them, by
 * reading each partition now. Keeps dup()ed fds for the record regions. */
static void fetch_fill(request_t *req, const fetch_part_t *parts)
{
    FetchRequest *r = req->body;
    FetchResponse *resp = req->resp;
    fetch_eval_t e;
    fetch_eval_init(req, &e);
    bool read_committed = e.read_committed;
    int32_t k = 0;
    REQUEST_ARRAY(req, resp->Responses, r->Topics.count);
    for (int32_t i = 0; i < r->Topics.count; i++) {
        FetchRequest_FetchTopic *ft = &r->Topics.items[i];
        topic_t *tp = parts ? NULL : fetch_topic(req, ft);
        FetchResponse_FetchableTopicResponse *rt = NULL;
        if (resp->Responses.items) {
            rt = &resp->Responses.items[i];
            FetchResponse_FetchableTopicResponse_init(rt);
            rt->Topic = ft->Topic;
            rt->TopicId = ft->TopicId;
            REQUEST_ARRAY(req, rt->Partitions, ft->Partitions.count);
        }
        for (int32_t j = 0; j < ft->Partitions.count; j++) {
            FetchRequest_FetchPartition *fp = &ft->Partitions.items[j];
            fetch_part_t now;
            const fetch_part_t *pr;
            if (parts) {
                pr = &parts[k++];
            } else {
                fetch_part_eval(req, &e, tp, fp, true, &now);
                pr = &now;
            }
            if (rt == NULL || rt->Partitions.items == NULL) {
                if (pr->err == KERR_NONE && !pr->diverging && pr->rd.len > 0 && !pr->dup_failed)
                    close(pr->rd.fd);
                continue;
            }
            FetchResponse_PartitionData *pd = &rt->Partitions.items[j];
            FetchResponse_PartitionData_init(pd);
            pd->PartitionIndex = fp->Partition;
            pd->Records.ptr = (const uint8_t *)"";
            pd->Records.len = 0;
            pd->Records.fd = -1;
            pd->AbortedTransactions.count = r->IsolationLevel == 1 ? 0 : -1;
            partition_t *p = pr->p;
            int16_t err = pr->err;
            log_read_t rd = pr->rd;
            pd->ErrorCode = err;
            pd->DivergingEpoch.Epoch = pr->div_epoch;
            pd->DivergingEpoch.EndOffset = pr->div_end;
            if (p != NULL) {
                pd->HighWatermark = partition_high_watermark(p);
                pd->LastStableOffset = read_committed || p->pstate ? fetch_upper(p, false, true) : pd->HighWatermark;
                pd->LogStartOffset = log_start_offset(p->log);
                if (read_committed && err == KERR_NONE && rd.len > 0)
                    fetch_aborted(req, p, fp->FetchOffset, pd);
            } else {
                pd->HighWatermark = -1;
                pd->LastStableOffset = -1;
                pd->LogStartOffset = -1;
            }
            if (err == KERR_NONE && rd.len > 0) {
                if (pr->dup_failed) {
                    pd->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
                    continue;
                }
                int fd = rd.fd;
                request_keep_fd(req, fd);
                pd->Records.ptr = NULL;
                pd->Records.fd = fd;
                pd->Records.file_offset = rd.position;
                pd->Records.len = rd.len;
                pr->tp->bytes_out += (uint64_t)rd.len;
            }
        }
    }
}

static void fetch_detach(fetch_op_t *op)
{
    evloop_t *loop = op->req->broker->loop;
    for (int i = 0; i < op->nwaiters; i++)
        partition_remove_waiter(&op->waiters[i]);
    evloop_timer_stop(loop, &op->timer);
    evloop_defer_cancel(loop, &op->recheck);
}

/* Answers a waiting fetch: with `measured`, from the outcomes its recheck has just kept. */
static void fetch_complete(fetch_op_t *op, bool measured)
{
    request_t *req = op->req;
    fetch_detach(op);
    req->cancel = NULL;
    fetch_fill(req, measured ? op->parts : NULL);
    request_respond(req);
}

static void fetch_cancel(request_t *req)
{
    fetch_detach(req->op);
}

static void fetch_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    fetch_complete(t->arg, false);
}

static void fetch_recheck_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    fetch_op_t *op = d->arg;
    FetchRequest *r = op->req->body;
    int errors;
    int64_t bytes = fetch_measure(op->req, op->parts, &errors);
    if (bytes >= r->MinBytes || errors > 0)
        fetch_complete(op, true);
    else
        fetch_parts_release(op->req, op->parts);
}

static void fetch_wake(partition_waiter_t *w)
{
    fetch_op_t *op = w->arg;
    evloop_defer(op->req->broker->loop, &op->recheck);
}

static bool b_is_cluster(const request_t *req) { return req->broker->cluster != NULL; }

/* A follower's fetch offsets are its log ends: the leader's view of it (replication.c) moves on
 * arrival, once per request, before anything is read. */
static void fetch_note_followers(request_t *req)
{
    FetchRequest *r = req->body;
    int32_t replica_id = fetch_replica_id(req);
    for (int32_t i = 0; i < r->Topics.count; i++) {
        FetchRequest_FetchTopic *ft = &r->Topics.items[i];
        topic_t *tp = fetch_topic(req, ft);
        for (int32_t j = 0; j < ft->Partitions.count; j++) {
            FetchRequest_FetchPartition *fp = &ft->Partitions.items[j];
            partition_t *p = topics_partition(tp, fp->Partition);
            int32_t e;
            int64_t end;
            if (p && check_leader_epoch(p, fp->CurrentLeaderEpoch) == KERR_NONE)
                (void)repl_follower_fetch(p, replica_id, fp->FetchOffset, fp->LastFetchedEpoch, &e, &end);
        }
    }
}

void handle_fetch(request_t *req)
{
    FetchRequest *r = req->body;
    FetchResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;
    resp->SessionId = 0;
    if (v >= 7 && r->SessionId != 0) {
        /* We never hand out sessions, so the client's one cannot exist. */
        resp->ErrorCode = KERR_FETCH_SESSION_ID_NOT_FOUND;
        resp->Responses.count = 0;
        request_respond(req);
        return;
    }
    if (fetch_replica_id(req) >= 0 && b_is_cluster(req))
        fetch_note_followers(req);
    int errors;
    int32_t n = fetch_npartitions(r);
    /* Measured once: an answer given now is built from these outcomes. */
    fetch_part_t *parts = request_alloc(req, sizeof(fetch_part_t) * (size_t)(n > 0 ? n : 1));
    int64_t bytes = fetch_measure(req, parts, &errors);
    if (r->MaxWaitMs <= 0 || bytes >= r->MinBytes || errors > 0 || r->Topics.count == 0) {
        fetch_fill(req, parts);
        request_respond(req);
        return;
    }
    /* Not enough data yet: wait for appends or the timeout. */
    fetch_parts_release(req, parts);
    fetch_op_t *op = request_alloc(req, sizeof(*op));
    if (op)
        op->waiters = request_alloc(req, sizeof(partition_waiter_t) * (size_t)(n > 0 ? n : 1));
    if (op == NULL || op->waiters == NULL) {
        fetch_fill(req, NULL);
        request_respond(req);
        return;
    }
    op->req = req;
    op->parts = parts;
    bool replica = fetch_replica_id(req) >= 0 && b_is_cluster(req);
    for (int32_t i = 0; i < r->Topics.count; i++) {
        FetchRequest_FetchTopic *ft = &r->Topics.items[i];
        topic_t *tp = fetch_topic(req, ft);
        for (int32_t j = 0; j < ft->Partitions.count; j++) {
            partition_t *p = topics_partition(tp, ft->Partitions.items[j].Partition);
            if (p == NULL)
                continue;
            partition_waiter_t *w = &op->waiters[op->nwaiters++];
            w->wake = fetch_wake;
            w->arg = op;
            /* On a replicated partition an append shows a consumer nothing until the high
             * watermark moves: it waits with the acks=all produces, which are woken by that
             * (and by leadership changes), not by every append as followers are. */
            if (!replica && p->repl)
                partition_add_hw_waiter(p, w);
            else
                partition_add_waiter(p, w);
        }
    }
    op->recheck.cb = fetch_recheck_cb;
    op->recheck.arg = op;
    evloop_timer_init(&op->timer, fetch_timer_cb, op);
    evloop_timer_start(req->broker->loop, &op->timer, r->MaxWaitMs);
    req->op = op;
    req->cancel = fetch_cancel;
}
