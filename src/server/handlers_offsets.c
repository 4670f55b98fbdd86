/* handlers_offsets.c - ListOffsets and DeleteRecords. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "common/logger.h"
#include "protocol/record_batch.h"
#include "server/broker.h"
#include "txn/partition_txn.h"

#define LIST_OFFSETS_LATEST (-1)
#define LIST_OFFSETS_EARLIEST (-2)
#define LIST_OFFSETS_MAX_TIMESTAMP (-3)
#define LIST_OFFSETS_EARLIEST_LOCAL (-4)
#define LIST_OFFSETS_LATEST_TIERED (-5)
#define MAX_BATCH_READ ((size_t)256 << 20)

/* Reads one batch from a log region and finds the first record whose
 * timestamp is >= ts (or == ts when exact). Returns 0 and fills offset and
 * timestamp, 1 when no record qualifies, -1 on error. */
static int find_record_in_batch(const log_read_t *rd, int64_t ts, bool exact, int64_t *offset, int64_t *timestamp)
{
    if (rd->len <= 0 || (size_t)rd->len > MAX_BATCH_READ)
        return -1;
    uint8_t *batch = malloc((size_t)rd->len);
    if (batch == NULL)
        return -1;
    size_t got = 0;
    while (got < (size_t)rd->len) {
        ssize_t n = pread(rd->fd, batch + got, (size_t)rd->len - got, rd->position + (off_t)got);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(batch);
            return -1;
        }
        got += (size_t)n;
    }
    int rc = 1;
    int64_t base = rb_base_offset(batch);
    if (rb_attributes(batch) & RB_ATTR_LOG_APPEND_TIME) {
        /* Every record carries the batch's append time. */
        if (rb_max_timestamp(batch) >= ts) {
            *offset = base;
            *timestamp = rb_max_timestamp(batch);
            rc = 0;
        }
        free(batch);
        return rc;
    }
    buf_t scratch;
    buf_init(&scratch);
    const uint8_t *records;
    size_t records_len;
    if (rb_records_plain(batch, (size_t)rd->len, &scratch, MAX_BATCH_READ, &records, &records_len) != 0) {
        rc = -1;
    } else {
        rb_iter_t it;
        rb_record_t rec;
        rb_iter_init(&it, records, records_len, rb_records_count(batch));
        int64_t base_ts = rb_base_timestamp(batch);
        while (rb_iter_next(&it, &rec) == 1) {
            int64_t t = base_ts + rec.timestamp_delta;
            if (exact ? t == ts : t >= ts) {
                *offset = base + rec.offset_delta;
                *timestamp = t;
                rc = 0;
                break;
            }
        }
    }
    buf_free(&scratch);
    free(batch);
    return rc;
}

/* Resolves one ListOffsets query. */
static int16_t list_offset(partition_t *p, int64_t ts, int64_t *offset, int64_t *timestamp)
{
    *offset = -1;
    *timestamp = -1;
    log_t *log = p->log;
    switch (ts) {
    case LIST_OFFSETS_LATEST:
    case LIST_OFFSETS_LATEST_TIERED:
        *offset = partition_high_watermark(p); /* what consumers may read */
        return KERR_NONE;
    case LIST_OFFSETS_EARLIEST:
    case LIST_OFFSETS_EARLIEST_LOCAL:
        *offset = log_start_offset(log);
        return KERR_NONE;
    case LIST_OFFSETS_MAX_TIMESTAMP: {
        int64_t max_ts, batch_off;
        log_read_t rd;
        if (log_max_timestamp(log, &max_ts, &batch_off, &rd) <= 0 || max_ts < 0)
            return KERR_NONE; /* empty log: -1/-1 */
        if (find_record_in_batch(&rd, max_ts, true, offset, timestamp) != 0) {
            *offset = batch_off;
            *timestamp = max_ts;
        }
        return KERR_NONE;
    }
    default:
        break;
    }
    if (ts < 0)
        return KERR_INVALID_REQUEST;
    log_read_t rd;
    int rc = log_find_timestamp(log, ts, &rd);
    if (rc < 0)
        return KERR_KAFKA_STORAGE_ERROR;
    if (rc == 0)
        return KERR_NONE; /* no record that late: -1/-1 */
    if (find_record_in_batch(&rd, ts, false, offset, timestamp) < 0)
        return KERR_KAFKA_STORAGE_ERROR;
    if (*offset >= 0 && *offset < log_start_offset(log)) {
        *offset = log_start_offset(log);
    }
    return KERR_NONE;
}

void handle_list_offsets(request_t *req)
{
    broker_t *b = req->broker;
    ListOffsetsRequest *r = req->body;
    ListOffsetsResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        ListOffsetsRequest_ListOffsetsTopic *t = &r->Topics.items[i];
        ListOffsetsResponse_ListOffsetsTopicResponse *rt = &resp->Topics.items[i];
        ListOffsetsResponse_ListOffsetsTopicResponse_init(rt);
        rt->Name = t->Name;
        topic_t *tp = t->Name.len > 0 ? topics_find(b->topics, t->Name.ptr, (size_t)t->Name.len) : NULL;
        REQUEST_ARRAY(req, rt->Partitions, t->Partitions.count);
        for (int32_t j = 0; j < rt->Partitions.count; j++) {
            ListOffsetsRequest_ListOffsetsPartition *pq = &t->Partitions.items[j];
            ListOffsetsResponse_ListOffsetsPartitionResponse *pr = &rt->Partitions.items[j];
            ListOffsetsResponse_ListOffsetsPartitionResponse_init(pr);
            pr->PartitionIndex = pq->PartitionIndex;
            pr->Offset = -1;
            pr->Timestamp = -1;
            partition_t *p = topics_partition(tp, pq->PartitionIndex);
            if (p == NULL) {
                pr->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (b->cluster && (pr->ErrorCode = cluster_check_leader(b->cluster, tp, p->index)) != KERR_NONE)
                continue; /* cluster mode: only the leader answers */
            if (pq->CurrentLeaderEpoch >= 0 && pq->CurrentLeaderEpoch != p->leader_epoch) {
                pr->ErrorCode = pq->CurrentLeaderEpoch > p->leader_epoch ? KERR_UNKNOWN_LEADER_EPOCH
                                                                         : KERR_FENCED_LEADER_EPOCH;
                continue;
            }
            pr->ErrorCode = list_offset(p, pq->Timestamp, &pr->Offset, &pr->Timestamp);
            /* read_committed (v2+): the latest offset is the last stable offset (src/txn/). */
            if (pr->ErrorCode == KERR_NONE && v >= 2 && r->IsolationLevel == 1 &&
                (pq->Timestamp == LIST_OFFSETS_LATEST || pq->Timestamp == LIST_OFFSETS_LATEST_TIERED))
                pr->Offset = ptxn_last_stable_offset(p) < pr->Offset ? ptxn_last_stable_offset(p) : pr->Offset;
            pr->LeaderEpoch = p->leader_epoch;
            if (v == 0) {
                /* v0 answers a list of offsets (at most MaxNumOffsets). */
                if (pr->ErrorCode == KERR_NONE && pr->Offset >= 0 && pq->MaxNumOffsets > 0) {
                    REQUEST_ARRAY(req, pr->OldStyleOffsets, 1);
                    if (pr->OldStyleOffsets.items)
                        pr->OldStyleOffsets.items[0] = pr->Offset;
                } else {
                    pr->OldStyleOffsets.count = 0;
                }
            }
        }
    }
    request_respond(req);
}

void handle_delete_records(request_t *req)
{
    broker_t *b = req->broker;
    DeleteRecordsRequest *r = req->body;
    DeleteRecordsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        DeleteRecordsRequest_DeleteRecordsTopic *t = &r->Topics.items[i];
        DeleteRecordsResponse_DeleteRecordsTopicResult *rt = &resp->Topics.items[i];
        DeleteRecordsResponse_DeleteRecordsTopicResult_init(rt);
        rt->Name = t->Name;
        topic_t *tp = t->Name.len > 0 ? topics_find(b->topics, t->Name.ptr, (size_t)t->Name.len) : NULL;
        REQUEST_ARRAY(req, rt->Partitions, t->Partitions.count);
        for (int32_t j = 0; j < rt->Partitions.count; j++) {
            DeleteRecordsRequest_DeleteRecordsPartition *pq = &t->Partitions.items[j];
            DeleteRecordsResponse_DeleteRecordsPartitionResult *pr = &rt->Partitions.items[j];
            DeleteRecordsResponse_DeleteRecordsPartitionResult_init(pr);
            pr->PartitionIndex = pq->PartitionIndex;
            pr->LowWatermark = -1;
            partition_t *p = topics_partition(tp, pq->PartitionIndex);
            if (p == NULL) {
                pr->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            int64_t hw = partition_high_watermark(p);
            int64_t target = pq->Offset == -1 ? hw : pq->Offset;
            if (target < 0 || target > hw) {
                pr->ErrorCode = KERR_OFFSET_OUT_OF_RANGE;
                pr->LowWatermark = log_start_offset(p->log);
                continue;
            }
            if (target > log_start_offset(p->log)) {
                if (log_delete_records(p->log, target) != 0) {
                    pr->ErrorCode = KERR_KAFKA_STORAGE_ERROR;
                    continue;
                }
                LOG_INFO("storage", "DeleteRecords: %s-%d log start offset now %lld", tp->name, p->index,
                         (long long)log_start_offset(p->log));
            }
            pr->ErrorCode = KERR_NONE;
            pr->LowWatermark = log_start_offset(p->log);
        }
    }
    request_respond(req);
}
