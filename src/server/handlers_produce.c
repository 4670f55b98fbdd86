/*
 * handlers_produce.c - Produce.
 *
 * Each partition's batches are validated as a whole before any is appended
 * (a bad batch fails the partition, nothing of it is written): header, CRC,
 * and every record, decompressing compressed batches into a scratch buffer
 * as Kafka does, so a batch no consumer could read is never stored. A topic
 * codec that differs from the producer's rebuilds the batch (recompression);
 * LogAppendTime rewrites the batch's max timestamp and CRC in place.
 * Everything else is stored exactly as received, with offsets assigned in
 * place by the log.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "common/logger.h"
#include "protocol/record_batch.h"
#include "server/broker.h"
#include "txn/partition_txn.h"

/* Decompressed size a single batch may reach while the broker looks inside it. */
#define PRODUCE_MAX_DECOMPRESSED ((size_t)256 << 20)

typedef struct produce_result {
    int16_t error;
    const char *message;
} produce_result_t;

/* What a producer's batch must be beyond a valid batch (rb_validate checks magic,
 * CRC, codec and records, the CRC once: it is the costliest part of a produce). */
static int16_t check_producer_batch(const uint8_t *batch)
{
    if (rb_records_count(batch) <= 0)
        return KERR_INVALID_RECORD;
    if (rb_attributes(batch) & RB_ATTR_CONTROL)
        return KERR_INVALID_RECORD; /* only the broker writes control batches */
    return KERR_NONE;
}

static produce_result_t produce_partition(request_t *req, topic_t *tp, partition_t *p, krecords_t *rec,
                                          buf_t *scratch, buf_t *rewritten, int64_t now_ms, int64_t *base_offset)
{
    produce_result_t res = {KERR_NONE, NULL};
    if (rec->len <= 0 || rec->ptr == NULL) {
        res.error = KERR_CORRUPT_MESSAGE;
        res.message = "empty record set";
        return res;
    }
    /* The request frame is ours: offsets and timestamps are patched in it. */
    uint8_t *data = (uint8_t *)rec->ptr;
    size_t len = (size_t)rec->len;
    const topic_settings_t *s = &tp->settings;
    bool recompress = false;
    int nbatches = 0;
    for (size_t pos = 0; pos < len;) {
        int64_t size = rb_next_batch_size(data + pos, len - pos);
        if (size <= 0) {
            res.error = KERR_CORRUPT_MESSAGE;
            res.message = "truncated record batch";
            return res;
        }
        uint8_t *batch = data + pos;
        if (++nbatches > 1) {
            /* Kafka's rule for magic 2: one batch per partition per request. */
            res.error = KERR_INVALID_RECORD;
            res.message = "produce requests may only contain exactly one record batch per partition";
            return res;
        }
        if (size > s->max_message_bytes) {
            res.error = KERR_MESSAGE_TOO_LARGE;
            res.message = "record batch is larger than max.message.bytes";
            return res;
        }
        rb_summary_t sum;
        scratch->len = 0;
        rb_err_t ve = rb_validate(batch, (size_t)size, scratch, PRODUCE_MAX_DECOMPRESSED, &sum);
        if (ve != RB_OK) {
            res.error = rb_err_kafka_code(ve);
            res.message = rb_err_name(ve);
            return res;
        }
        int16_t e = check_producer_batch(batch);
        if (e != KERR_NONE) {
            res.error = e;
            res.message = "invalid record batch";
            return res;
        }
        if (s->compact && sum.has_null_key) {
            res.error = KERR_INVALID_RECORD;
            res.message = "compacted topic cannot accept a record without a key";
            return res;
        }
        bool needs_recompress = s->compression >= 0 && s->compression != rb_codec(batch);
        recompress |= needs_recompress;
        pos += (size_t)size;
    }
    /* Idempotent/transactional producers (src/txn/): a retried batch is answered with its
     * original offset and not appended again; gaps and old epochs are refused. */
    int64_t dup_base = -1;
    int pc = ptxn_produce_check(p, data, &dup_base);
    if (pc == 1) {
        *base_offset = dup_base;
        return res;
    }
    if (pc > 1) {
        res.error = (int16_t)pc;
        res.message = pc == TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER ? "out of order sequence number"
                                                                  : "invalid producer epoch";
        return res;
    }
    if (recompress) {
        rewritten->len = 0;
        for (size_t pos = 0; pos < len;) {
            int64_t size = rb_next_batch_size(data + pos, len - pos);
            scratch->len = 0;
            if (rb_recompress(data + pos, (size_t)size, s->compression, rewritten, scratch,
                              PRODUCE_MAX_DECOMPRESSED) != 0) {
                res.error = KERR_CORRUPT_MESSAGE;
                res.message = "cannot recompress record batch";
                return res;
            }
            pos += (size_t)size;
        }
        if (rewritten->oom) {
            res.error = KERR_UNKNOWN_SERVER_ERROR;
            return res;
        }
        data = rewritten->data;
        len = rewritten->len;
    }
    if (s->log_append_time) {
        for (size_t pos = 0; pos < len;) {
            int64_t size = rb_next_batch_size(data + pos, len - pos);
            rb_set_log_append_time(data + pos, now_ms);
            pos += (size_t)size;
        }
    }
    int64_t next;
    if (partition_append(req->broker->topics, p, data, len, now_ms, base_offset, &next) != 0) {
        LOG_ERROR("storage", "append to %s-%d failed", tp->name, p->index);
        res.error = KERR_KAFKA_STORAGE_ERROR;
    } else {
        ptxn_produce_done(p, data, now_ms);
        tp->bytes_in += len;
        tp->messages_in += (uint64_t)(next - *base_offset);
    }
    return res;
}

/* ---- waiting for the in-sync replicas (acks=all) and for flushes (flush.messages) ---- */

/* What an acknowledgement of the offsets below `end` still waits for. */
static bool produce_must_wait(const partition_t *p, int16_t acks, int64_t end)
{
    return (acks == -1 && partition_high_watermark(p) < end) || partition_flush_pending(p, end);
}

typedef struct produce_wait {
    partition_waiter_t w;
    struct produce_op *op;
    partition_t *p;
    ProduceResponse_PartitionProduceResponse *pr;
    int64_t target; /* the high watermark (and flushed offset) that covers the append */
    int16_t acks;
    bool done, gone;
} produce_wait_t;

typedef struct produce_op {
    request_t *req;
    produce_wait_t *waits;
    int nwaits;
    ev_timer_t timer;
    ev_defer_t recheck;
} produce_op_t;

static void produce_detach(produce_op_t *op)
{
    for (int i = 0; i < op->nwaits; i++)
        partition_remove_waiter(&op->waits[i].w);
    evloop_timer_stop(op->req->broker->loop, &op->timer);
    evloop_defer_cancel(op->req->broker->loop, &op->recheck);
}

static void produce_finish(produce_op_t *op)
{
    produce_detach(op);
    op->req->cancel = NULL;
    request_respond(op->req);
}

/* Kafka's rule once the high watermark covers the append: acknowledged, unless the ISR has shrunk
 * below min.insync.replicas meanwhile. */
static void produce_recheck_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    produce_op_t *op = d->arg;
    int pending = 0;
    for (int i = 0; i < op->nwaits; i++) {
        produce_wait_t *w = &op->waits[i];
        if (w->done)
            continue;
        if (w->gone) {
            w->pr->ErrorCode = KERR_NOT_LEADER_OR_FOLLOWER;
        } else if (!repl_is_leader(w->p)) {
            w->pr->ErrorCode = KERR_NOT_LEADER_OR_FOLLOWER;
        } else if (w->p->flush_failed) {
            w->pr->ErrorCode = KERR_KAFKA_STORAGE_ERROR;
        } else if (!produce_must_wait(w->p, w->acks, w->target)) {
            if (w->acks == -1 && repl_isr_size(w->p) < w->p->topic->settings.min_insync_replicas)
                w->pr->ErrorCode = KERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND;
        } else {
            pending++;
            continue;
        }
        w->done = true;
        partition_remove_waiter(&w->w);
    }
    if (pending == 0)
        produce_finish(op);
}

static void produce_wake(partition_waiter_t *pw)
{
    produce_wait_t *w = pw->arg;
    if (pw->next == NULL)
        w->gone = true; /* detached: the partition is going away */
    evloop_defer(w->op->req->broker->loop, &w->op->recheck);
}

static void produce_timeout_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    produce_op_t *op = t->arg;
    for (int i = 0; i < op->nwaits; i++)
        if (!op->waits[i].done)
            op->waits[i].pr->ErrorCode = KERR_REQUEST_TIMED_OUT;
    produce_finish(op);
}

static void produce_cancel(request_t *req) { produce_detach(req->op); }

/* Parks the request until every appended partition's high watermark covers its append (or the
 * request's timeout). Returns false when it cannot wait (answered at once then). */
static bool produce_wait(request_t *req, int nwait)
{
    broker_t *b = req->broker;
    ProduceRequest *r = req->body;
    ProduceResponse *resp = req->resp;
    produce_op_t *op = request_alloc(req, sizeof(*op));
    produce_wait_t *waits = request_alloc(req, sizeof(*waits) * (size_t)nwait);
    if (op == NULL || waits == NULL)
        return false;
    op->req = req;
    op->waits = waits;
    for (int32_t i = 0; i < resp->Responses.count; i++) {
        ProduceResponse_TopicProduceResponse *tr = &resp->Responses.items[i];
        ProduceRequest_TopicProduceData *td = &r->TopicData.items[i];
        topic_t *tp = td->Name.len > 0 ? topics_find(b->topics, td->Name.ptr, (size_t)td->Name.len) : NULL;
        for (int32_t j = 0; j < tr->PartitionResponses.count && op->nwaits < nwait; j++) {
            ProduceResponse_PartitionProduceResponse *pr = &tr->PartitionResponses.items[j];
            partition_t *p = topics_partition(tp, pr->Index);
            if (p == NULL || pr->ErrorCode != KERR_NONE || !produce_must_wait(p, r->Acks, log_end_offset(p->log)))
                continue;
            produce_wait_t *w = &waits[op->nwaits++];
            w->op = op;
            w->p = p;
            w->pr = pr;
            w->target = log_end_offset(p->log);
            w->acks = r->Acks;
            w->w.wake = produce_wake;
            w->w.arg = w;
            partition_add_hw_waiter(p, &w->w);
        }
    }
    op->recheck.cb = produce_recheck_cb;
    op->recheck.arg = op;
    evloop_timer_init(&op->timer, produce_timeout_cb, op);
    evloop_timer_start(b->loop, &op->timer, r->TimeoutMs > 0 ? r->TimeoutMs : 0);
    req->op = op;
    req->cancel = produce_cancel;
    /* The producer's next requests are appended meanwhile (in order): their flushes and
     * replication overlap with this one's (group commit). */
    request_park(req);
    return true;
}

void handle_produce(request_t *req)
{
    broker_t *b = req->broker;
    ProduceRequest *r = req->body;
    ProduceResponse *resp = req->resp;
    int64_t now_ms = evloop_wall_ms();
    bool bad_acks = r->Acks != 0 && r->Acks != 1 && r->Acks != -1;
    bool any_error = false;
    int nwait = 0; /* acks=all partitions whose high watermark has not reached the append yet */
    buf_t scratch, rewritten;
    buf_init(&scratch);
    buf_init(&rewritten);

    REQUEST_ARRAY(req, resp->Responses, r->TopicData.count);
    for (int32_t i = 0; i < resp->Responses.count; i++) {
        ProduceRequest_TopicProduceData *td = &r->TopicData.items[i];
        ProduceResponse_TopicProduceResponse *tr = &resp->Responses.items[i];
        ProduceResponse_TopicProduceResponse_init(tr);
        tr->Name = td->Name;
        topic_t *tp = td->Name.len > 0 ? topics_find(b->topics, td->Name.ptr, (size_t)td->Name.len) : NULL;
        REQUEST_ARRAY(req, tr->PartitionResponses, td->PartitionData.count);
        for (int32_t j = 0; j < tr->PartitionResponses.count; j++) {
            ProduceRequest_PartitionProduceData *pd = &td->PartitionData.items[j];
            ProduceResponse_PartitionProduceResponse *pr = &tr->PartitionResponses.items[j];
            ProduceResponse_PartitionProduceResponse_init(pr);
            pr->Index = pd->Index;
            pr->BaseOffset = -1;
            pr->LogAppendTimeMs = -1;
            pr->LogStartOffset = -1;
            partition_t *p = topics_partition(tp, pd->Index);
            if (bad_acks) {
                pr->ErrorCode = KERR_INVALID_REQUIRED_ACKS;
            } else if (p == NULL) {
                pr->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            } else if (b->cluster && (pr->ErrorCode = cluster_check_leader(b->cluster, tp, p->index)) != KERR_NONE) {
                /* Cluster mode: another broker leads it; the client refreshes its metadata. */
            } else if (r->Acks == -1 && repl_isr_size(p) < tp->settings.min_insync_replicas) {
                pr->ErrorCode = KERR_NOT_ENOUGH_REPLICAS;
                pr->ErrorMessage = request_strf(req, "acks=all needs min.insync.replicas=%d in-sync replicas; "
                                                "the ISR has %d", tp->settings.min_insync_replicas,
                                                repl_isr_size(p));
            } else {
                produce_result_t res =
                    produce_partition(req, tp, p, &pd->Records, &scratch, &rewritten, now_ms, &pr->BaseOffset);
                pr->ErrorCode = res.error;
                if (res.message)
                    pr->ErrorMessage = kstr_c(res.message);
                if (res.error == KERR_NONE && tp->settings.log_append_time)
                    pr->LogAppendTimeMs = now_ms;
                pr->LogStartOffset = log_start_offset(p->log);
                if (res.error == KERR_NONE && r->Acks != 0 && produce_must_wait(p, r->Acks, log_end_offset(p->log)))
                    nwait++;
                if (res.error != KERR_NONE)
                    LOG_DEBUG("produce", "%s-%d from %s: error %d (%s)", tp->name, p->index,
                              conn_peer(req->conn), res.error, res.message ? res.message : "");
            }
            if (pr->ErrorCode != KERR_NONE)
                any_error = true;
        }
    }
    buf_free(&scratch);
    buf_free(&rewritten);
    if (r->Acks == 0) {
        /* No response for acks=0; on error Kafka closes the connection so the
         * producer notices and refreshes its metadata. */
        conn_t *c = req->conn;
        request_finish_silently(req);
        if (any_error)
            conn_close(c, "acks=0 produce failed");
        return;
    }
    if (nwait > 0 && produce_wait(req, nwait))
        return;
    request_respond(req);
}
