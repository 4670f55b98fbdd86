/*
 * handlers_markers.c - WriteTxnMarkers (API key 27): the broker-to-broker
 * request a transaction coordinator sends to the leaders of a transaction's
 * partitions to close it there with a COMMIT or ABORT marker.
 *
 * Per marker entry and partition (src/txn/txn_markers.h does the work): this
 * broker must lead the partition, the marker is checked against the
 * producer's epoch and coordinator epoch there, written, and on a
 * __consumer_offsets partition the producer's pending transactional offsets
 * become committed (or are dropped). The answer waits until every written
 * marker is on the partition's in-sync replicas (Kafka appends markers with
 * acks=all) or request.timeout.ms passed (REQUEST_TIMED_OUT for those), and
 * carries one error per partition; the coordinator retries the failed ones.
 * A waiting request is parked: the connection reads the next ones meanwhile.
 */
#include <string.h>

#include "server/broker.h"
#include "txn/txn_markers.h"

typedef struct markers_op markers_op_t;

/* One marker entry of the request. */
typedef struct marker_entry {
    markers_op_t *op;
    txn_marker_write_t *write;   /* NULL once finished (it frees itself) */
    txn_marker_target_t *targets; /* its partitions, in request order */
    int ntargets;
} marker_entry_t;

struct markers_op {
    request_t *req;
    int pending;
    marker_entry_t *entries; /* per marker entry */
};

static void markers_answer(request_t *req, markers_op_t *op)
{
    WriteTxnMarkersRequest *r = req->body;
    WriteTxnMarkersResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Markers, r->Markers.count);
    for (int32_t i = 0; i < resp->Markers.count; i++) {
        WriteTxnMarkersRequest_WritableTxnMarker *m = &r->Markers.items[i];
        WriteTxnMarkersResponse_WritableTxnMarkerResult *mr = &resp->Markers.items[i];
        WriteTxnMarkersResponse_WritableTxnMarkerResult_init(mr);
        mr->ProducerId = m->ProducerId;
        REQUEST_ARRAY(req, mr->Topics, m->Topics.count);
        const marker_entry_t *e = op ? &op->entries[i] : NULL;
        int k = 0;
        for (int32_t a = 0; a < mr->Topics.count; a++) {
            WriteTxnMarkersResponse_WritableTxnMarkerTopicResult *tr = &mr->Topics.items[a];
            WriteTxnMarkersResponse_WritableTxnMarkerTopicResult_init(tr);
            tr->Name = m->Topics.items[a].Name;
            REQUEST_ARRAY(req, tr->Partitions, m->Topics.items[a].PartitionIndexes.count);
            for (int32_t b = 0; b < tr->Partitions.count; b++, k++) {
                tr->Partitions.items[b].PartitionIndex = m->Topics.items[a].PartitionIndexes.items[b];
                tr->Partitions.items[b].ErrorCode =
                    e && e->targets && k < e->ntargets ? e->targets[k].error : KERR_UNKNOWN_SERVER_ERROR;
            }
        }
    }
    request_respond(req);
}

static void markers_cancel(request_t *req)
{
    markers_op_t *op = req->op;
    WriteTxnMarkersRequest *r = req->body;
    for (int32_t i = 0; i < r->Markers.count; i++) {
        txn_markers_cancel(op->entries[i].write);
        op->entries[i].write = NULL;
    }
}

static void op_release(markers_op_t *op)
{
    if (--op->pending > 0)
        return;
    op->req->cancel = NULL;
    markers_answer(op->req, op);
}

/* One marker entry is written and replicated (or failed). */
static void marker_done(void *arg)
{
    marker_entry_t *e = arg;
    e->write = NULL; /* it freed itself before calling back */
    op_release(e->op);
}

void handle_write_txn_markers(request_t *req)
{
    broker_t *b = req->broker;
    WriteTxnMarkersRequest *r = req->body;
    int32_t n = r->Markers.count > 0 ? r->Markers.count : 0;
    markers_op_t *op = request_alloc(req, sizeof(*op));
    if (op == NULL || n == 0) {
        markers_answer(req, NULL);
        return;
    }
    memset(op, 0, sizeof(*op));
    op->req = req;
    op->entries = request_alloc(req, sizeof(*op->entries) * (size_t)n);
    if (op->entries == NULL) {
        markers_answer(req, NULL);
        return;
    }
    memset(op->entries, 0, sizeof(*op->entries) * (size_t)n);
    int64_t timeout = broker_config_get_long(b->config, "request.timeout.ms");
    txn_markers_env_t env = {.loop = b->loop, .topics = b->topics, .cluster = b->cluster, .groups = b->groups,
                             .timeout_ms = timeout > 0 ? timeout : 30000};
    /* Held until every entry was started, so none answers early. */
    op->pending = 1;
    for (int32_t i = 0; i < n; i++) {
        WriteTxnMarkersRequest_WritableTxnMarker *m = &r->Markers.items[i];
        marker_entry_t *e = &op->entries[i];
        e->op = op;
        int nt = 0;
        for (int32_t a = 0; a < m->Topics.count; a++)
            nt += m->Topics.items[a].PartitionIndexes.count > 0 ? m->Topics.items[a].PartitionIndexes.count : 0;
        e->targets = request_alloc(req, sizeof(*e->targets) * (size_t)(nt > 0 ? nt : 1));
        if (e->targets == NULL)
            continue;
        e->ntargets = nt;
        int k = 0;
        for (int32_t a = 0; a < m->Topics.count; a++)
            for (int32_t c = 0; c < m->Topics.items[a].PartitionIndexes.count; c++, k++)
                e->targets[k] = (txn_marker_target_t){m->Topics.items[a].Name,
                                                      m->Topics.items[a].PartitionIndexes.items[c],
                                                      KERR_UNKNOWN_SERVER_ERROR};
        txn_marker_params_t mp = {.producer_id = m->ProducerId, .producer_epoch = m->ProducerEpoch,
                                  .commit = m->TransactionResult, .coordinator_epoch = m->CoordinatorEpoch};
        e->write = txn_markers_write(&env, &mp, e->targets, nt, marker_done, e);
        if (e->write)
            op->pending++;
        else
            for (k = 0; k < nt; k++)
                e->targets[k].error = KERR_UNKNOWN_SERVER_ERROR;
    }
    if (op->pending == 1) { /* nothing waits for replicas (callbacks only ever run later) */
        markers_answer(req, op);
        return;
    }
    op->pending--; /* drops the hold */
    req->op = op;
    req->cancel = markers_cancel;
    /* The coordinator's next requests on this connection go on meanwhile (answers stay in order). */
    request_park(req);
}
