/*
 * handlers_txn.c - InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
 * EndTxn, TxnOffsetCommit, DescribeTransactions, ListTransactions and
 * DescribeProducers: translation between the generated structs and
 * src/txn/ (the coordinator and per-partition producer state).
 *
 * PRODUCER_FENCED exists from InitProducerId v4 / AddPartitionsToTxn,
 * AddOffsetsToTxn, EndTxn v2 / TxnOffsetCommit v3 on; older versions get
 * INVALID_PRODUCER_EPOCH, as Kafka answers them.
 *
 * Cluster mode: requests for transactional ids whose __transaction_state
 * partition this broker does not lead get NOT_COORDINATOR (ListTransactions
 * lists the ids it coordinates). A successful answer waits until what the
 * coordinator appended is on the ISR of that partition (Kafka appends with
 * acks=all): a broker failing meanwhile answers NOT_COORDINATOR, a timeout
 * COORDINATOR_NOT_AVAILABLE, and the client retries with the coordinator
 * that took over. TxnOffsetCommit goes to the group coordinator (the leader
 * of the group's __consumer_offsets partition), which keeps the offsets
 * pending until the transaction's marker reaches that partition.
 */
#include <string.h>

#include "cluster/replication.h"
#include "common/logger.h"
#include "group/group_coordinator.h"
#include "group/group_log.h"
#include "server/broker.h"
#include "txn/partition_txn.h"
#include "txn/txn_coordinator.h"
#include "txn/txn_markers.h"

static int16_t fenced_for(int16_t err, int16_t version, int16_t first_version)
{
    if (err == TXN_KERR_PRODUCER_FENCED && version < first_version)
        return TXN_KERR_INVALID_PRODUCER_EPOCH;
    return err;
}

/* 0 when this broker coordinates the transactional id (always on a single node). */
static int16_t coordinator_check(request_t *req, kstr_t transactional_id)
{
    txn_coordinator_t *tc = req->broker->txns;
    if (tc == NULL)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    return txn_coordinator_owns(tc, transactional_id) ? KERR_NONE : KERR_NOT_COORDINATOR;
}

/* ---- cluster mode: answers wait for the ISR ---- */

typedef struct durable_op {
    request_t *req;
    repl_hw_wait_t w;
    void (*fail)(request_t *req, int16_t err); /* puts a failed wait's error into the response */
} durable_op_t;

static void durable_done(repl_hw_wait_t *w, int16_t err)
{
    durable_op_t *op = w->arg;
    request_t *req = op->req;
    req->cancel = NULL;
    if (err)
        op->fail(req, err == KERR_NOT_LEADER_OR_FOLLOWER ? KERR_NOT_COORDINATOR : KERR_COORDINATOR_NOT_AVAILABLE);
    request_respond(req);
}

static void durable_cancel(request_t *req)
{
    durable_op_t *op = req->op;
    repl_hw_wait_cancel(&op->w);
}

/* Answers now, or (cluster mode) once the high watermark of p covers its log end, i.e. once
 * everything the coordinator appended there is on every in-sync replica. */
static void respond_durable(request_t *req, partition_t *p, void (*fail)(request_t *req, int16_t err))
{
    broker_t *b = req->broker;
    durable_op_t *op = b->cluster && p ? request_alloc(req, sizeof(*op)) : NULL;
    if (op == NULL) {
        request_respond(req);
        return;
    }
    memset(op, 0, sizeof(*op));
    op->req = req;
    op->fail = fail;
    op->w.done = durable_done;
    op->w.arg = op;
    int64_t timeout = broker_config_get_long(b->config, "request.timeout.ms");
    if (repl_hw_wait_start(&op->w, b->loop, p, log_end_offset(p->log), timeout > 0 ? timeout : 30000) == 0) {
        request_respond(req);
        return;
    }
    req->op = op;
    req->cancel = durable_cancel;
}

static partition_t *txn_log_partition(request_t *req, kstr_t transactional_id)
{
    return req->broker->txns ? txn_coordinator_log_partition(req->broker->txns, transactional_id) : NULL;
}

static void init_producer_id_fail(request_t *req, int16_t err)
{
    InitProducerIdResponse *resp = req->resp;
    resp->ErrorCode = err;
    resp->ProducerId = -1;
    resp->ProducerEpoch = -1;
}

void handle_init_producer_id(request_t *req)
{
    InitProducerIdRequest *r = req->body;
    InitProducerIdResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;
    int64_t pid_in = v >= 3 ? r->ProducerId : -1;
    int16_t epoch_in = v >= 3 ? r->ProducerEpoch : -1;
    bool transactional = r->TransactionalId.len > 0;
    if (req->broker->txns == NULL) {
        resp->ErrorCode = KERR_COORDINATOR_NOT_AVAILABLE;
    } else if (transactional && (resp->ErrorCode = coordinator_check(req, r->TransactionalId)) != KERR_NONE) {
        /* another broker coordinates it (an idempotent producer's id comes from any broker) */
    } else {
        resp->ErrorCode = fenced_for(txn_init_producer_id(req->broker->txns, r->TransactionalId, r->TransactionTimeoutMs,
                                                          pid_in, epoch_in, &resp->ProducerId, &resp->ProducerEpoch),
                                     v, 4);
    }
    if (resp->ErrorCode) {
        resp->ProducerId = -1;
        resp->ProducerEpoch = -1;
    }
    if (resp->ErrorCode || !transactional) {
        request_respond(req);
        return;
    }
    respond_durable(req, txn_log_partition(req, r->TransactionalId), init_producer_id_fail);
}

typedef KARRAY(AddPartitionsToTxnRequest_AddPartitionsToTxnTopic) apt_topics_t;
typedef KARRAY(AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult) apt_results_t;

static void add_partitions_one(request_t *req, kstr_t id, int64_t pid, int16_t epoch, bool verify_only,
                               const apt_topics_t *topics, apt_results_t *results)
{
    int n = 0;
    for (int32_t i = 0; i < topics->count; i++)
        n += topics->items[i].Partitions.count;
    txn_partition_ref_t *refs = request_alloc(req, sizeof(*refs) * (size_t)(n > 0 ? n : 1));
    int16_t err = KERR_UNKNOWN_SERVER_ERROR;
    if (refs) {
        int k = 0;
        for (int32_t i = 0; i < topics->count; i++)
            for (int32_t j = 0; j < topics->items[i].Partitions.count; j++) {
                refs[k].topic = topics->items[i].Name;
                refs[k].partition = topics->items[i].Partitions.items[j];
                refs[k].error = 0;
                k++;
            }
        err = coordinator_check(req, id);
        if (err == KERR_NONE)
            err = txn_add_partitions(req->broker->txns, id, pid, epoch, refs, n, verify_only);
    }
    err = fenced_for(err, req->hdr.api_version, 2);
    REQUEST_ARRAY(req, (*results), topics->count);
    int k = 0;
    for (int32_t i = 0; i < results->count; i++) {
        AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult *tr = &results->items[i];
        AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult_init(tr);
        tr->Name = topics->items[i].Name;
        REQUEST_ARRAY(req, tr->ResultsByPartition, topics->items[i].Partitions.count);
        for (int32_t j = 0; j < tr->ResultsByPartition.count; j++, k++) {
            tr->ResultsByPartition.items[j].PartitionIndex = topics->items[i].Partitions.items[j];
            tr->ResultsByPartition.items[j].PartitionErrorCode = err ? err : (refs ? refs[k].error : err);
        }
    }
}

static void add_partitions_fail(request_t *req, int16_t err)
{
    AddPartitionsToTxnResponse *resp = req->resp;
    for (int32_t i = 0; i < resp->ResultsByTopicV3AndBelow.count; i++)
        for (int32_t j = 0; j < resp->ResultsByTopicV3AndBelow.items[i].ResultsByPartition.count; j++)
            resp->ResultsByTopicV3AndBelow.items[i].ResultsByPartition.items[j].PartitionErrorCode = err;
}

void handle_add_partitions_to_txn(request_t *req)
{
    AddPartitionsToTxnRequest *r = req->body;
    AddPartitionsToTxnResponse *resp = req->resp;
    if (req->hdr.api_version <= 3) {
        apt_topics_t in = {r->V3AndBelowTopics.items, r->V3AndBelowTopics.count};
        apt_results_t out = {NULL, 0};
        add_partitions_one(req, r->V3AndBelowTransactionalId, r->V3AndBelowProducerId, r->V3AndBelowProducerEpoch,
                           false, &in, &out);
        resp->ResultsByTopicV3AndBelow.items = out.items;
        resp->ResultsByTopicV3AndBelow.count = out.count;
        bool ok = true;
        for (int32_t i = 0; i < out.count; i++)
            for (int32_t j = 0; j < out.items[i].ResultsByPartition.count; j++)
                ok &= out.items[i].ResultsByPartition.items[j].PartitionErrorCode == KERR_NONE;
        if (ok)
            respond_durable(req, txn_log_partition(req, r->V3AndBelowTransactionalId), add_partitions_fail);
        else
            request_respond(req);
        return;
    }
    /* v4+ (brokers' batched and VerifyOnly checks, KIP-890; clients send v3 at most): answered at
     * once, without waiting for the ISR of each transaction's partition. */
    REQUEST_ARRAY(req, resp->ResultsByTransaction, r->Transactions.count);
    for (int32_t i = 0; i < resp->ResultsByTransaction.count; i++) {
        AddPartitionsToTxnRequest_AddPartitionsToTxnTransaction *t = &r->Transactions.items[i];
        AddPartitionsToTxnResponse_AddPartitionsToTxnResult *res = &resp->ResultsByTransaction.items[i];
        AddPartitionsToTxnResponse_AddPartitionsToTxnResult_init(res);
        res->TransactionalId = t->TransactionalId;
        apt_topics_t in = {t->Topics.items, t->Topics.count};
        apt_results_t out = {NULL, 0};
        add_partitions_one(req, t->TransactionalId, t->ProducerId, t->ProducerEpoch, t->VerifyOnly, &in, &out);
        res->TopicResults.items = out.items;
        res->TopicResults.count = out.count;
    }
    request_respond(req);
}

static void add_offsets_fail(request_t *req, int16_t err)
{
    AddOffsetsToTxnResponse *resp = req->resp;
    resp->ErrorCode = err;
}

void handle_add_offsets_to_txn(request_t *req)
{
    AddOffsetsToTxnRequest *r = req->body;
    AddOffsetsToTxnResponse *resp = req->resp;
    int16_t err = coordinator_check(req, r->TransactionalId);
    if (err == KERR_NONE)
        err = txn_add_offsets(req->broker->txns, r->TransactionalId, r->ProducerId, r->ProducerEpoch, r->GroupId);
    resp->ErrorCode = fenced_for(err, req->hdr.api_version, 2);
    if (resp->ErrorCode)
        request_respond(req);
    else
        respond_durable(req, txn_log_partition(req, r->TransactionalId), add_offsets_fail);
}

static void end_txn_fail(request_t *req, int16_t err)
{
    EndTxnResponse *resp = req->resp;
    resp->ErrorCode = err;
}

void handle_end_txn(request_t *req)
{
    EndTxnRequest *r = req->body;
    EndTxnResponse *resp = req->resp;
    int16_t err = coordinator_check(req, r->TransactionalId);
    if (err == KERR_NONE)
        err = txn_end(req->broker->txns, r->TransactionalId, r->ProducerId, r->ProducerEpoch, r->Committed);
    resp->ErrorCode = fenced_for(err, req->hdr.api_version, 2);
    resp->ProducerId = r->ProducerId;
    resp->ProducerEpoch = r->ProducerEpoch;
    /* Cluster mode: answered once PrepareCommit/PrepareAbort is on the ISR; the markers follow. */
    if (resp->ErrorCode)
        request_respond(req);
    else
        respond_durable(req, txn_log_partition(req, r->TransactionalId), end_txn_fail);
}

static void txn_offset_commit_fail(request_t *req, int16_t err)
{
    TxnOffsetCommitResponse *resp = req->resp;
    for (int32_t i = 0; i < resp->Topics.count; i++)
        for (int32_t j = 0; j < resp->Topics.items[i].Partitions.count; j++)
            if (resp->Topics.items[i].Partitions.items[j].ErrorCode == KERR_NONE)
                resp->Topics.items[i].Partitions.items[j].ErrorCode = err;
}

/* Cluster mode: TxnOffsetCommit at the group coordinator, which keeps the offsets pending (in
 * __consumer_offsets, as a transactional batch of the producer) until the transaction's marker. */
static int16_t group_txn_offset_commit(request_t *req, txn_offset_item_t *items, int n)
{
    TxnOffsetCommitRequest *r = req->body;
    group_coordinator_t *gc = req->broker->groups;
    if (gc == NULL)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    if (!group_coordinator_owns(gc, r->GroupId))
        return KERR_NOT_COORDINATOR;
    group_commit_item_t *gi = request_alloc(req, sizeof(*gi) * (size_t)(n > 0 ? n : 1));
    if (gi == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    for (int k = 0; k < n; k++)
        gi[k] = (group_commit_item_t){.topic = items[k].topic, .partition = items[k].partition,
                                      .offset = items[k].offset, .leader_epoch = items[k].leader_epoch,
                                      .metadata = items[k].metadata, .commit_ts = -1, .expire_ts = -1};
    bool v3 = req->hdr.api_version >= 3;
    group_txn_commit_params_t gp = {.group_id = r->GroupId, .producer_id = r->ProducerId,
                                    .producer_epoch = r->ProducerEpoch,
                                    .generation_id = v3 ? r->GenerationId : -1,
                                    .member_id = v3 ? r->MemberId : kstr_c(""),
                                    .instance_id = v3 ? r->GroupInstanceId : kstr_null()};
    group_txn_commit(gc, &gp, gi, n);
    for (int k = 0; k < n; k++)
        items[k].error = gi[k].error;
    return KERR_NONE;
}

void handle_txn_offset_commit(request_t *req)
{
    TxnOffsetCommitRequest *r = req->body;
    TxnOffsetCommitResponse *resp = req->resp;
    int n = 0;
    for (int32_t i = 0; i < r->Topics.count; i++)
        n += r->Topics.items[i].Partitions.count;
    txn_offset_item_t *items = request_alloc(req, sizeof(*items) * (size_t)(n > 0 ? n : 1));
    int16_t err = KERR_UNKNOWN_SERVER_ERROR;
    if (items) {
        int k = 0;
        for (int32_t i = 0; i < r->Topics.count; i++)
            for (int32_t j = 0; j < r->Topics.items[i].Partitions.count; j++, k++) {
                TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition *pp = &r->Topics.items[i].Partitions.items[j];
                items[k] = (txn_offset_item_t){.topic = r->Topics.items[i].Name,
                                               .partition = pp->PartitionIndex,
                                               .offset = pp->CommittedOffset,
                                               .leader_epoch = req->hdr.api_version >= 2 ? pp->CommittedLeaderEpoch
                                                                                         : -1,
                                               .metadata = pp->CommittedMetadata};
            }
        if (req->broker->cluster)
            err = group_txn_offset_commit(req, items, n);
        else
            err = req->broker->txns ? txn_offset_commit(req->broker->txns, r->TransactionalId, r->GroupId,
                                                        r->ProducerId, r->ProducerEpoch, items, n)
                                    : KERR_COORDINATOR_NOT_AVAILABLE;
    }
    err = fenced_for(err, req->hdr.api_version, 3);
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    int k = 0;
    bool any_ok = false;
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic *t = &resp->Topics.items[i];
        TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic_init(t);
        t->Name = r->Topics.items[i].Name;
        REQUEST_ARRAY(req, t->Partitions, r->Topics.items[i].Partitions.count);
        for (int32_t j = 0; j < t->Partitions.count; j++, k++) {
            t->Partitions.items[j].PartitionIndex = r->Topics.items[i].Partitions.items[j].PartitionIndex;
            t->Partitions.items[j].ErrorCode = err ? err : items[k].error;
            any_ok |= t->Partitions.items[j].ErrorCode == KERR_NONE;
        }
    }
    if (!any_ok || req->broker->cluster == NULL) {
        request_respond(req);
        return;
    }
    /* Cluster mode: once the transactional batch is on the ISR of the group's partition. */
    topic_t *tp = topics_find(req->broker->topics, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC));
    partition_t *p = tp ? topics_partition(tp, group_coordinator_partition(req->broker->groups, r->GroupId)) : NULL;
    respond_durable(req, p, txn_offset_commit_fail);
}

static void fill_txn_state(request_t *req, DescribeTransactionsResponse_TransactionState *s, const txn_view_t *v)
{
    s->TransactionState = kstr_c(txn_status_name(v->status));
    s->TransactionTimeoutMs = v->timeout_ms;
    s->TransactionStartTimeMs = v->start_ms;
    s->ProducerId = v->producer_id;
    s->ProducerEpoch = v->epoch;
    int ntopics = 0;
    for (int i = 0; i < v->n_partitions; i++)
        if (i == 0 || !kstr_eq(v->partitions[i].topic, request_cstr(req, v->partitions[i - 1].topic)))
            ntopics++;
    REQUEST_ARRAY(req, s->Topics, ntopics);
    int t = -1;
    for (int i = 0; i < v->n_partitions && s->Topics.items; i++) {
        if (i == 0 || !kstr_eq(v->partitions[i].topic, request_cstr(req, v->partitions[i - 1].topic))) {
            t++;
            int j = i;
            while (j < v->n_partitions && kstr_eq(v->partitions[j].topic, request_cstr(req, v->partitions[i].topic)))
                j++;
            DescribeTransactionsResponse_TopicData *td = &s->Topics.items[t];
            DescribeTransactionsResponse_TopicData_init(td);
            td->Topic = request_strf(req, "%.*s", v->partitions[i].topic.len, v->partitions[i].topic.ptr);
            REQUEST_ARRAY(req, td->Partitions, j - i);
            for (int k = i; k < j && td->Partitions.items; k++)
                td->Partitions.items[k - i] = v->partitions[k].partition;
        }
    }
}

void handle_describe_transactions(request_t *req)
{
    DescribeTransactionsRequest *r = req->body;
    DescribeTransactionsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->TransactionStates, r->TransactionalIds.count);
    for (int32_t i = 0; i < resp->TransactionStates.count; i++) {
        DescribeTransactionsResponse_TransactionState *s = &resp->TransactionStates.items[i];
        DescribeTransactionsResponse_TransactionState_init(s);
        s->TransactionalId = r->TransactionalIds.items[i];
        s->TransactionState = kstr_c("");
        s->Topics.count = 0;
        txn_view_t v;
        if (req->broker->txns == NULL)
            s->ErrorCode = KERR_COORDINATOR_NOT_AVAILABLE;
        else if ((s->ErrorCode = coordinator_check(req, s->TransactionalId)) != KERR_NONE)
            continue;
        else if (!txn_describe(req->broker->txns, s->TransactionalId, &v))
            s->ErrorCode = TXN_KERR_TRANSACTIONAL_ID_NOT_FOUND;
        else
            fill_txn_state(req, s, &v);
    }
    request_respond(req);
}

typedef struct list_ctx {
    request_t *req;
    ListTransactionsRequest *r;
    ListTransactionsResponse *resp;
    int n, cap;
    int64_t now;
} list_ctx_t;

static void list_one(void *arg, const txn_view_t *v)
{
    list_ctx_t *c = arg;
    ListTransactionsRequest *r = c->r;
    const char *state = txn_status_name(v->status);
    if (r->StateFilters.count > 0) {
        bool ok = false;
        for (int32_t i = 0; i < r->StateFilters.count; i++)
            ok |= kstr_eq(r->StateFilters.items[i], state);
        if (!ok)
            return;
    }
    if (r->ProducerIdFilters.count > 0) {
        bool ok = false;
        for (int32_t i = 0; i < r->ProducerIdFilters.count; i++)
            ok |= r->ProducerIdFilters.items[i] == v->producer_id;
        if (!ok)
            return;
    }
    if (c->req->hdr.api_version >= 1 && r->DurationFilter >= 0 &&
        (v->start_ms < 0 || c->now - v->start_ms < r->DurationFilter))
        return;
    if (c->resp->TransactionStates.items && c->n < c->cap) {
        ListTransactionsResponse_TransactionState *s = &c->resp->TransactionStates.items[c->n];
        s->TransactionalId = request_strf(c->req, "%.*s", v->transactional_id.len, v->transactional_id.ptr);
        s->ProducerId = v->producer_id;
        s->TransactionState = kstr_c(state);
    }
    c->n++;
}

static void count_one(void *arg, const txn_view_t *v)
{
    (void)v;
    (*(int *)arg)++;
}

void handle_list_transactions(request_t *req)
{
    ListTransactionsRequest *r = req->body;
    ListTransactionsResponse *resp = req->resp;
    resp->UnknownStateFilters.count = 0;
    int unknown = 0;
    for (int32_t i = 0; i < r->StateFilters.count; i++) {
        bool known = false;
        for (int s = 0; s <= TXN_PREPARE_EPOCH_FENCE; s++)
            known |= kstr_eq(r->StateFilters.items[i], txn_status_name(s));
        unknown += !known;
    }
    REQUEST_ARRAY(req, resp->UnknownStateFilters, unknown);
    unknown = 0;
    for (int32_t i = 0; i < r->StateFilters.count && resp->UnknownStateFilters.items; i++) {
        bool known = false;
        for (int s = 0; s <= TXN_PREPARE_EPOCH_FENCE; s++)
            known |= kstr_eq(r->StateFilters.items[i], txn_status_name(s));
        if (!known)
            resp->UnknownStateFilters.items[unknown++] = r->StateFilters.items[i];
    }
    if (req->broker->txns == NULL) {
        resp->ErrorCode = KERR_COORDINATOR_NOT_AVAILABLE;
        resp->TransactionStates.count = 0;
        request_respond(req);
        return;
    }
    int total = 0;
    txn_foreach(req->broker->txns, count_one, &total);
    REQUEST_ARRAY(req, resp->TransactionStates, total);
    list_ctx_t c = {.req = req, .r = r, .resp = resp, .cap = total, .now = evloop_wall_ms()};
    txn_foreach(req->broker->txns, list_one, &c);
    resp->TransactionStates.count = c.n < total ? c.n : total;
    request_respond(req);
}

typedef struct producers_ctx {
    DescribeProducersResponse_ProducerState *out;
    int n, cap;
} producers_ctx_t;

static void producer_one(void *arg, const pstate_producer_t *p)
{
    producers_ctx_t *c = arg;
    if (c->n < c->cap) {
        DescribeProducersResponse_ProducerState *s = &c->out[c->n];
        s->ProducerId = p->producer_id;
        s->ProducerEpoch = p->epoch;
        s->LastSequence = p->nbatches ? p->batches[p->nbatches - 1].last_seq : -1;
        s->LastTimestamp = p->last_timestamp;
        s->CoordinatorEpoch = p->coordinator_epoch;
        s->CurrentTxnStartOffset = p->txn_first_offset;
    }
    c->n++;
}

void handle_describe_producers(request_t *req)
{
    DescribeProducersRequest *r = req->body;
    DescribeProducersResponse *resp = req->resp;
    topics_t *topics = req->broker->topics;
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        DescribeProducersRequest_TopicRequest *tq = &r->Topics.items[i];
        DescribeProducersResponse_TopicResponse *tr = &resp->Topics.items[i];
        DescribeProducersResponse_TopicResponse_init(tr);
        tr->Name = tq->Name;
        topic_t *tp = tq->Name.len > 0 ? topics_find(topics, tq->Name.ptr, (size_t)tq->Name.len) : NULL;
        REQUEST_ARRAY(req, tr->Partitions, tq->PartitionIndexes.count);
        for (int32_t j = 0; j < tr->Partitions.count; j++) {
            DescribeProducersResponse_PartitionResponse *pr = &tr->Partitions.items[j];
            DescribeProducersResponse_PartitionResponse_init(pr);
            pr->PartitionIndex = tq->PartitionIndexes.items[j];
            pr->ActiveProducers.count = 0;
            partition_t *p = topics_partition(tp, pr->PartitionIndex);
            producer_state_t *ps = p ? ptxn_state(p) : NULL;
            if (p == NULL) {
                pr->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (ps == NULL) {
                pr->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
                continue;
            }
            int n = pstate_producer_count(ps);
            REQUEST_ARRAY(req, pr->ActiveProducers, n);
            producers_ctx_t c = {.out = pr->ActiveProducers.items, .cap = pr->ActiveProducers.count};
            if (c.out)
                pstate_foreach(ps, producer_one, &c);
        }
    }
    request_respond(req);
}
