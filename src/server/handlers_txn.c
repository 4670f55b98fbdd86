/*
 * handlers_txn.c - InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
 * EndTxn, TxnOffsetCommit, DescribeTransactions, ListTransactions and
 * DescribeProducers: translation between the generated structs and
 * src/txn/ (the coordinator and per-partition producer state).
 *
 * PRODUCER_FENCED exists from InitProducerId v4 / AddPartitionsToTxn,
 * AddOffsetsToTxn, EndTxn v2 / TxnOffsetCommit v3 on; older versions get
 * INVALID_PRODUCER_EPOCH, as Kafka answers them.
 */
#include <string.h>

#include "common/logger.h"
#include "server/broker.h"
#include "txn/partition_txn.h"
#include "txn/txn_coordinator.h"

static int16_t fenced_for(int16_t err, int16_t version, int16_t first_version)
{
    if (err == TXN_KERR_PRODUCER_FENCED && version < first_version)
        return TXN_KERR_INVALID_PRODUCER_EPOCH;
    return err;
}

void handle_init_producer_id(request_t *req)
{
    InitProducerIdRequest *r = req->body;
    InitProducerIdResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;
    int64_t pid_in = v >= 3 ? r->ProducerId : -1;
    int16_t epoch_in = v >= 3 ? r->ProducerEpoch : -1;
    if (req->broker->txns == NULL) {
        resp->ErrorCode = KERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        resp->ErrorCode = fenced_for(txn_init_producer_id(req->broker->txns, r->TransactionalId, r->TransactionTimeoutMs,
                                                          pid_in, epoch_in, &resp->ProducerId, &resp->ProducerEpoch),
                                     v, 4);
    }
    if (resp->ErrorCode) {
        resp->ProducerId = -1;
        resp->ProducerEpoch = -1;
    }
    request_respond(req);
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
        err = req->broker->txns ? txn_add_partitions(req->broker->txns, id, pid, epoch, refs, n, verify_only)
                                : KERR_COORDINATOR_NOT_AVAILABLE;
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
        request_respond(req);
        return;
    }
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

void handle_add_offsets_to_txn(request_t *req)
{
    AddOffsetsToTxnRequest *r = req->body;
    AddOffsetsToTxnResponse *resp = req->resp;
    int16_t err = req->broker->txns ? txn_add_offsets(req->broker->txns, r->TransactionalId, r->ProducerId,
                                                      r->ProducerEpoch, r->GroupId)
                                    : KERR_COORDINATOR_NOT_AVAILABLE;
    resp->ErrorCode = fenced_for(err, req->hdr.api_version, 2);
    request_respond(req);
}

void handle_end_txn(request_t *req)
{
    EndTxnRequest *r = req->body;
    EndTxnResponse *resp = req->resp;
    int16_t err = req->broker->txns ? txn_end(req->broker->txns, r->TransactionalId, r->ProducerId, r->ProducerEpoch,
                                              r->Committed)
                                    : KERR_COORDINATOR_NOT_AVAILABLE;
    resp->ErrorCode = fenced_for(err, req->hdr.api_version, 2);
    resp->ProducerId = r->ProducerId;
    resp->ProducerEpoch = r->ProducerEpoch;
    request_respond(req);
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
        err = req->broker->txns ? txn_offset_commit(req->broker->txns, r->TransactionalId, r->GroupId, r->ProducerId,
                                                    r->ProducerEpoch, items, n)
                                : KERR_COORDINATOR_NOT_AVAILABLE;
    }
    err = fenced_for(err, req->hdr.api_version, 3);
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    int k = 0;
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic *t = &resp->Topics.items[i];
        TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic_init(t);
        t->Name = r->Topics.items[i].Name;
        REQUEST_ARRAY(req, t->Partitions, r->Topics.items[i].Partitions.count);
        for (int32_t j = 0; j < t->Partitions.count; j++, k++) {
            t->Partitions.items[j].PartitionIndex = r->Topics.items[i].Partitions.items[j].PartitionIndex;
            t->Partitions.items[j].ErrorCode = err ? err : items[k].error;
        }
    }
    request_respond(req);
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
