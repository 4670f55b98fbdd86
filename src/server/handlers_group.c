/*
 * handlers_group.c - FindCoordinator and the consumer-group APIs: JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
 * DescribeGroups, DeleteGroups, OffsetDelete.
 *
 * On a single node every group's coordinator is this broker; the group
 * coordinator itself (src/group/) does the work, these handlers translate
 * between the generated request/response structs and its calls. JoinGroup
 * and SyncGroup are delayed: the request keeps a group_waiter_t in its arena
 * and a cancel hook withdraws it if the connection closes first. Transaction
 * coordinators do not exist yet.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "group/group_coordinator.h"
#include "txn/txn_coordinator.h"
#include "txn/txn_markers.h"
#include "server/broker.h"

#define KEY_TYPE_GROUP 0
#define KEY_TYPE_TRANSACTION 1

/* Kafka's bits for READ, DELETE and DESCRIBE on a group (no ACLs here). */
#define GROUP_AUTHORIZED_OPERATIONS ((1 << 3) | (1 << 6) | (1 << 8))

/* Cluster mode: the internal topic exists in ZooKeeper and in this broker's image (it is created on
 * first need, with Kafka's settings for it). */
static bool cluster_internal_ready(broker_t *b, int8_t key_type)
{
    bool group = key_type == KEY_TYPE_GROUP;
    const broker_config_t *c = b->config;
    return cluster_ensure_internal_topic(
        b->cluster, group ? "__consumer_offsets" : "__transaction_state",
        (int32_t)broker_config_get_long(c, group ? "offsets.topic.num.partitions" : "transaction.state.log.num.partitions"),
        (int32_t)broker_config_get_long(c, group ? "offsets.topic.replication.factor"
                                                 : "transaction.state.log.replication.factor"),
        broker_config_get_long(c, group ? "offsets.topic.segment.bytes" : "transaction.state.log.segment.bytes"));
}

static int16_t coordinator_for(broker_t *b, int8_t key_type, kstr_t *msg)
{
    if (b->cluster && (key_type == KEY_TYPE_GROUP || key_type == KEY_TYPE_TRANSACTION) &&
        !cluster_internal_ready(b, key_type)) {
        *msg = kstr_c("the coordinator's internal topic is being created");
        return KERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (key_type == KEY_TYPE_GROUP) {
        if (b->groups == NULL || group_coordinator_ensure_topic(b->groups) != 0) {
            *msg = kstr_c("the group coordinator is not available");
            return KERR_COORDINATOR_NOT_AVAILABLE;
        }
        return KERR_NONE;
    }
    if (key_type == KEY_TYPE_TRANSACTION) {
        if (b->txns == NULL || txn_coordinator_ensure_topic(b->txns) != 0) {
            *msg = kstr_c("the transaction coordinator is not available");
            return KERR_COORDINATOR_NOT_AVAILABLE;
        }
        return KERR_NONE;
    }
    *msg = kstr_c("unknown coordinator key type");
    return KERR_INVALID_REQUEST;
}

/* The coordinator of a group when this broker is it: in cluster mode, the broker leading the
 * group's __consumer_offsets partition (its groups loaded); else NULL with *err telling the client
 * to look for it again. */
static group_coordinator_t *group_for(request_t *req, kstr_t group_id, int16_t *err)
{
    group_coordinator_t *gc = req->broker->groups;
    *err = KERR_NONE;
    if (gc == NULL) {
        *err = KERR_COORDINATOR_NOT_AVAILABLE;
        return NULL;
    }
    if (!group_coordinator_owns(gc, group_id)) {
        *err = KERR_NOT_COORDINATOR;
        return NULL;
    }
    return gc;
}

/* Cluster mode: the leader of the key's partition of the internal topic. */
static int16_t cluster_coordinator(broker_t *b, const char *internal_topic, int32_t partition, int32_t *node,
                                   kstr_t *host, int32_t *port)
{
    const zk_partition_t *zp = cluster_partition(b->cluster, internal_topic, partition);
    if (zp == NULL || zp->leader < 0)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    for (int i = 0; i < cluster_broker_count(b->cluster); i++) {
        const zk_broker_t *br = cluster_broker_at(b->cluster, i);
        if (br->id == zp->leader) {
            *node = br->id;
            *host = kstr_c(br->host);
            *port = br->port;
            return KERR_NONE;
        }
    }
    return KERR_COORDINATOR_NOT_AVAILABLE;
}

/* Fills the coordinator of one key: this broker on a single node, else the partition leader. */
static int16_t locate(request_t *req, int8_t key_type, kstr_t key, int32_t *node, kstr_t *host, int32_t *port,
                      kstr_t *msg)
{
    broker_t *b = req->broker;
    int16_t err = coordinator_for(b, key_type, msg);
    *node = -1;
    *host = kstr_c("");
    *port = -1;
    if (err != KERR_NONE)
        return err;
    if (b->cluster == NULL) {
        *node = b->node_id;
        *host = kstr_c(b->advertised_host);
        *port = b->advertised_port;
        return KERR_NONE;
    }
    bool group = key_type == KEY_TYPE_GROUP;
    int32_t partition = group ? group_coordinator_partition(b->groups, key)
                              : txn_coordinator_partition(b->txns, key);
    err = cluster_coordinator(b, group ? "__consumer_offsets" : "__transaction_state", partition, node, host, port);
    if (err != KERR_NONE)
        *msg = kstr_c("the coordinator's partition has no leader yet");
    return err;
}

void handle_find_coordinator(request_t *req)
{
    FindCoordinatorRequest *r = req->body;
    FindCoordinatorResponse *resp = req->resp;
    if (req->hdr.api_version < 4) {
        kstr_t msg = kstr_null();
        resp->ErrorCode = locate(req, r->KeyType, r->Key, &resp->NodeId, &resp->Host, &resp->Port, &msg);
        resp->ErrorMessage = msg;
        request_respond(req);
        return;
    }
    REQUEST_ARRAY(req, resp->Coordinators, r->CoordinatorKeys.count);
    for (int32_t i = 0; i < resp->Coordinators.count; i++) {
        FindCoordinatorResponse_Coordinator *c = &resp->Coordinators.items[i];
        FindCoordinatorResponse_Coordinator_init(c);
        c->Key = r->CoordinatorKeys.items[i];
        kstr_t msg = kstr_null();
        c->ErrorCode = locate(req, r->KeyType, c->Key, &c->NodeId, &c->Host, &c->Port, &msg);
        c->ErrorMessage = msg;
    }
    request_respond(req);
}

/* Kafka shows a member's host as InetAddress.toString(): "/" + address. */
static const char *client_host(request_t *req)
{
    const char *peer = conn_peer(req->conn);
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    kstr_t s = request_strf(req, "/%.*s", (int)n, peer);
    return s.ptr ? s.ptr : "";
}

/* A delayed JoinGroup or SyncGroup: the waiter lives in the request's arena. */
typedef struct group_op {
    request_t *req;
    group_waiter_t w;
} group_op_t;

static void group_op_cancel(request_t *req)
{
    group_op_t *op = req->op;
    group_waiter_cancel(req->broker->groups, &op->w);
}

static group_op_t *group_op_new(request_t *req, void (*done)(group_waiter_t *, const group_result_t *))
{
    group_op_t *op = request_alloc(req, sizeof(*op));
    if (op == NULL)
        return NULL;
    memset(op, 0, sizeof(*op));
    op->req = req;
    op->w.done = done;
    op->w.arg = op;
    req->op = op;
    req->cancel = group_op_cancel;
    return op;
}

/* ---- JoinGroup ---- */

static void join_done(group_waiter_t *w, const group_result_t *res)
{
    group_op_t *op = w->arg;
    request_t *req = op->req;
    req->cancel = NULL;
    JoinGroupResponse *resp = req->resp;
    resp->ErrorCode = res->error;
    resp->GenerationId = res->generation_id;
    resp->ProtocolType = res->protocol_type;
    resp->ProtocolName = res->protocol_name;
    resp->Leader = res->leader_id;
    resp->SkipAssignment = res->skip_assignment;
    resp->MemberId = res->member_id;
    REQUEST_ARRAY(req, resp->Members, res->n_members);
    for (int32_t i = 0; i < resp->Members.count; i++) {
        JoinGroupResponse_JoinGroupResponseMember *m = &resp->Members.items[i];
        JoinGroupResponse_JoinGroupResponseMember_init(m);
        m->MemberId = res->members[i].member_id;
        m->GroupInstanceId = res->members[i].instance_id;
        m->Metadata = res->members[i].metadata;
    }
    request_respond(req);
}

void handle_join_group(request_t *req)
{
    JoinGroupRequest *r = req->body;
    JoinGroupResponse *resp = req->resp;
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    int32_t np = r->Protocols.count > 0 ? r->Protocols.count : 0;
    group_protocol_in_t *protos = request_alloc(req, sizeof(*protos) * (size_t)(np > 0 ? np : 1));
    if (gc == NULL || protos == NULL) {
        resp->ErrorCode = gc ? KERR_COORDINATOR_NOT_AVAILABLE : gerr;
        resp->MemberId = r->MemberId;
        request_respond(req);
        return;
    }
    for (int32_t i = 0; i < np; i++) {
        protos[i].name = r->Protocols.items[i].Name;
        protos[i].metadata = r->Protocols.items[i].Metadata;
    }
    group_join_params_t p = {
        .group_id = r->GroupId,
        .member_id = r->MemberId,
        .instance_id = r->GroupInstanceId,
        .protocol_type = r->ProtocolType,
        .client_id = req->hdr.client_id.len >= 0 ? req->hdr.client_id : kstr_c(""),
        .client_host = client_host(req),
        .session_timeout_ms = r->SessionTimeoutMs,
        .rebalance_timeout_ms = req->hdr.api_version >= 1 ? r->RebalanceTimeoutMs : -1,
        .api_version = req->hdr.api_version,
        .n_protocols = np,
        .protocols = protos,
    };
    group_op_t *op = group_op_new(req, join_done);
    if (op == NULL) {
        resp->ErrorCode = KERR_COORDINATOR_NOT_AVAILABLE;
        request_respond(req);
        return;
    }
    /* May answer (and free req) before it returns. */
    group_join(gc, &p, &op->w);
}

/* ---- SyncGroup ---- */

static void sync_done(group_waiter_t *w, const group_result_t *res)
{
    group_op_t *op = w->arg;
    request_t *req = op->req;
    req->cancel = NULL;
    SyncGroupResponse *resp = req->resp;
    resp->ErrorCode = res->error;
    resp->ProtocolType = res->protocol_type;
    resp->ProtocolName = res->protocol_name;
    resp->Assignment = res->assignment;
    if (resp->Assignment.len < 0) {
        resp->Assignment.ptr = (const uint8_t *)"";
        resp->Assignment.len = 0;
    }
    request_respond(req);
}

void handle_sync_group(request_t *req)
{
    SyncGroupRequest *r = req->body;
    SyncGroupResponse *resp = req->resp;
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    int32_t na = r->Assignments.count > 0 ? r->Assignments.count : 0;
    group_assignment_in_t *as = request_alloc(req, sizeof(*as) * (size_t)(na > 0 ? na : 1));
    group_op_t *op = gc && as ? group_op_new(req, sync_done) : NULL;
    if (op == NULL) {
        resp->ErrorCode = gc ? KERR_COORDINATOR_NOT_AVAILABLE : gerr;
        request_respond(req);
        return;
    }
    for (int32_t i = 0; i < na; i++) {
        as[i].member_id = r->Assignments.items[i].MemberId;
        as[i].assignment = r->Assignments.items[i].Assignment;
    }
    group_sync_params_t p = {
        .group_id = r->GroupId,
        .generation_id = r->GenerationId,
        .member_id = r->MemberId,
        .instance_id = r->GroupInstanceId,
        .protocol_type = req->hdr.api_version >= 5 ? r->ProtocolType : kstr_null(),
        .protocol_name = req->hdr.api_version >= 5 ? r->ProtocolName : kstr_null(),
        .n_assignments = na,
        .assignments = as,
    };
    group_sync(gc, &p, &op->w);
}

/* ---- Heartbeat / LeaveGroup ---- */

void handle_heartbeat(request_t *req)
{
    HeartbeatRequest *r = req->body;
    HeartbeatResponse *resp = req->resp;
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    resp->ErrorCode = gc ? group_heartbeat(gc, r->GroupId, r->GenerationId, r->MemberId, r->GroupInstanceId) : gerr;
    request_respond(req);
}

void handle_leave_group(request_t *req)
{
    LeaveGroupRequest *r = req->body;
    LeaveGroupResponse *resp = req->resp;
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    if (gc == NULL) {
        resp->ErrorCode = gerr;
        request_respond(req);
        return;
    }
    if (req->hdr.api_version < 3) {
        resp->ErrorCode = group_leave(gc, r->GroupId, r->MemberId, kstr_null(), kstr_c("the consumer is leaving"));
        request_respond(req);
        return;
    }
    REQUEST_ARRAY(req, resp->Members, r->Members.count);
    for (int32_t i = 0; i < resp->Members.count; i++) {
        LeaveGroupRequest_MemberIdentity *in = &r->Members.items[i];
        LeaveGroupResponse_MemberResponse *out = &resp->Members.items[i];
        LeaveGroupResponse_MemberResponse_init(out);
        out->MemberId = in->MemberId;
        out->GroupInstanceId = in->GroupInstanceId;
        out->ErrorCode = group_leave(gc, r->GroupId, in->MemberId, in->GroupInstanceId,
                                     in->Reason.len >= 0 ? in->Reason : kstr_c("the consumer is leaving"));
    }
    request_respond(req);
}

/* ---- OffsetCommit ---- */

/* Cluster mode: a commit is answered once the ISR of the group's __consumer_offsets partition has
 * it (Kafka's offsets.commit.required.acks=-1), so a coordinator failover cannot lose it. */
typedef struct commit_wait {
    request_t *req;
    repl_hw_wait_t hw;
} commit_wait_t;

static void commit_replicated(repl_hw_wait_t *hw, int16_t error)
{
    commit_wait_t *cw = hw->arg;
    request_t *req = cw->req;
    req->cancel = NULL;
    /* A partition this broker stopped leading is a group it no longer coordinates. */
    if (error == KERR_NOT_LEADER_OR_FOLLOWER)
        error = KERR_NOT_COORDINATOR;
    OffsetCommitResponse *resp = req->resp;
    for (int32_t i = 0; error != KERR_NONE && i < resp->Topics.count; i++)
        for (int32_t j = 0; j < resp->Topics.items[i].Partitions.count; j++)
            if (resp->Topics.items[i].Partitions.items[j].ErrorCode == KERR_NONE)
                resp->Topics.items[i].Partitions.items[j].ErrorCode = error;
    request_respond(req);
}

static void commit_cancel(request_t *req)
{
    commit_wait_t *cw = req->op;
    repl_hw_wait_cancel(&cw->hw);
}

/* Parks the answer until the high watermark covers the commit; false when there is nothing to
 * wait for. */
static bool commit_wait(request_t *req, group_coordinator_t *gc, kstr_t group_id)
{
    broker_t *b = req->broker;
    if (b->cluster == NULL)
        return false;
    topic_t *tp = topics_find(b->topics, "__consumer_offsets", strlen("__consumer_offsets"));
    partition_t *p = topics_partition(tp, group_coordinator_partition(gc, group_id));
    if (p == NULL || partition_high_watermark(p) >= log_end_offset(p->log))
        return false;
    commit_wait_t *cw = request_alloc(req, sizeof(*cw));
    if (cw == NULL)
        return false;
    cw->req = req;
    cw->hw.done = commit_replicated;
    cw->hw.arg = cw;
    if (repl_hw_wait_start(&cw->hw, b->loop, p, log_end_offset(p->log),
                          broker_config_get_long(b->config, "offsets.commit.timeout.ms")) == 0)
        return false;
    req->op = cw;
    req->cancel = commit_cancel;
    return true;
}

void handle_offset_commit(request_t *req)
{
    OffsetCommitRequest *r = req->body;
    OffsetCommitResponse *resp = req->resp;
    broker_t *b = req->broker;
    int16_t v = req->hdr.api_version;
    int n = 0;
    for (int32_t i = 0; i < r->Topics.count; i++)
        n += r->Topics.items[i].Partitions.count > 0 ? r->Topics.items[i].Partitions.count : 0;
    group_commit_item_t *items = request_alloc(req, sizeof(*items) * (size_t)(n > 0 ? n : 1));
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    if (items == NULL || (r->Topics.count > 0 && resp->Topics.items == NULL)) {
        resp->Topics.count = 0;
        request_respond(req);
        return;
    }
    int64_t now = evloop_wall_ms();
    int64_t retention = broker_config_get_long(b->config, "offsets.retention.minutes") * 60000;
    int k = 0;
    for (int32_t i = 0; i < r->Topics.count; i++) {
        OffsetCommitRequest_OffsetCommitRequestTopic *t = &r->Topics.items[i];
        for (int32_t j = 0; j < t->Partitions.count; j++, k++) {
            OffsetCommitRequest_OffsetCommitRequestPartition *pp = &t->Partitions.items[j];
            group_commit_item_t *it = &items[k];
            memset(it, 0, sizeof(*it));
            it->topic = t->Name;
            it->partition = pp->PartitionIndex;
            it->offset = pp->CommittedOffset;
            it->leader_epoch = v >= 6 ? pp->CommittedLeaderEpoch : -1;
            it->metadata = pp->CommittedMetadata;
            it->commit_ts = -1;
            it->expire_ts = -1;
            if (v == 1 && pp->CommitTimestamp != -1) {
                /* v1's explicit commit time: the offset lives for the retention from then. */
                it->commit_ts = pp->CommitTimestamp;
                it->expire_ts = pp->CommitTimestamp + retention;
            } else if (v >= 2 && v <= 4 && r->RetentionTimeMs != -1) {
                it->commit_ts = now;
                it->expire_ts = now + r->RetentionTimeMs;
            }
        }
    }
    group_commit_params_t p = {
        .group_id = r->GroupId,
        .generation_id = v >= 1 ? r->GenerationIdOrMemberEpoch : -1,
        .member_id = v >= 1 && r->MemberId.len >= 0 ? r->MemberId : kstr_c(""),
        .instance_id = v >= 7 ? r->GroupInstanceId : kstr_null(),
    };
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    if (gc)
        group_commit(gc, &p, items, n);
    else
        for (int i = 0; i < n; i++)
            items[i].error = gerr;
    k = 0;
    for (int32_t i = 0; i < r->Topics.count; i++) {
        OffsetCommitRequest_OffsetCommitRequestTopic *t = &r->Topics.items[i];
        OffsetCommitResponse_OffsetCommitResponseTopic *rt = &resp->Topics.items[i];
        OffsetCommitResponse_OffsetCommitResponseTopic_init(rt);
        rt->Name = t->Name;
        REQUEST_ARRAY(req, rt->Partitions, t->Partitions.count > 0 ? t->Partitions.count : 0);
        for (int32_t j = 0; j < rt->Partitions.count; j++) {
            rt->Partitions.items[j].PartitionIndex = t->Partitions.items[j].PartitionIndex;
            rt->Partitions.items[j].ErrorCode = items[k + j].error;
        }
        k += t->Partitions.count > 0 ? t->Partitions.count : 0;
    }
    if (gc && n > 0 && commit_wait(req, gc, r->GroupId))
        return;
    request_respond(req);
}

/* ---- OffsetFetch ---- */

typedef struct fetched {
    int64_t offset;
    int32_t epoch;
    kstr_t metadata;
} fetched_t;

static fetched_t fetch_one(group_coordinator_t *gc, kstr_t group, kstr_t topic, int32_t partition)
{
    fetched_t f = {-1, -1, kstr_c("")};
    group_offset_view_t v;
    if (gc && group_fetch_offset(gc, group, topic, partition, &v)) {
        f.offset = v.offset;
        f.epoch = v.leader_epoch;
        f.metadata = v.metadata;
    }
    return f;
}

/* Every committed offset of a group, in the arena, sorted by topic then partition. */
static int fetch_all(request_t *req, kstr_t group, group_offset_view_t **out)
{
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, group, &gerr);
    int n = gc ? group_fetch_all_offsets(gc, group, NULL, 0) : 0;
    *out = request_alloc(req, sizeof(**out) * (size_t)(n > 0 ? n : 1));
    if (*out == NULL)
        return 0;
    return n ? group_fetch_all_offsets(gc, group, *out, n) : 0;
}

static int count_topics(const group_offset_view_t *v, int n)
{
    int t = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || v[i].topic.len != v[i - 1].topic.len ||
            memcmp(v[i].topic.ptr, v[i - 1].topic.ptr, (size_t)v[i].topic.len) != 0)
            t++;
    return t;
}

/* RequireStable (v7+): an offset an open transaction is about to change is answered with
 * UNSTABLE_OFFSET_COMMIT (the client retries) rather than with its old value. Pending transactional
 * offsets live at the group coordinator in cluster mode. */
static bool unstable(request_t *req, group_coordinator_t *gc, kstr_t group, kstr_t topic, int32_t partition)
{
    const OffsetFetchRequest *r = req->body;
    return gc && req->hdr.api_version >= 7 && r->RequireStable &&
           group_has_pending_txn_offset(gc, group, topic, partition);
}

/* v0-7: one group. */
static void offset_fetch_single(request_t *req)
{
    OffsetFetchRequest *r = req->body;
    OffsetFetchResponse *resp = req->resp;
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    resp->ErrorCode = gerr;
    if (r->Topics.count < 0) {
        group_offset_view_t *all;
        int n = fetch_all(req, r->GroupId, &all);
        REQUEST_ARRAY(req, resp->Topics, count_topics(all, n));
        int ti = -1;
        for (int i = 0; i < n && resp->Topics.items; i++) {
            if (i == 0 || all[i].topic.len != all[i - 1].topic.len ||
                memcmp(all[i].topic.ptr, all[i - 1].topic.ptr, (size_t)all[i].topic.len) != 0) {
                OffsetFetchResponse_OffsetFetchResponseTopic *t = &resp->Topics.items[++ti];
                OffsetFetchResponse_OffsetFetchResponseTopic_init(t);
                t->Name = all[i].topic;
                int c = 0;
                while (i + c < n && all[i + c].topic.len == all[i].topic.len &&
                       memcmp(all[i + c].topic.ptr, all[i].topic.ptr, (size_t)all[i].topic.len) == 0)
                    c++;
                REQUEST_ARRAY(req, t->Partitions, c);
                t->Partitions.count = 0;
            }
            OffsetFetchResponse_OffsetFetchResponseTopic *t = &resp->Topics.items[ti];
            if (t->Partitions.items == NULL)
                continue;
            OffsetFetchResponse_OffsetFetchResponsePartition *p = &t->Partitions.items[t->Partitions.count++];
            OffsetFetchResponse_OffsetFetchResponsePartition_init(p);
            p->PartitionIndex = all[i].partition;
            p->CommittedOffset = all[i].offset;
            p->CommittedLeaderEpoch = all[i].leader_epoch;
            p->Metadata = all[i].metadata;
        }
        request_respond(req);
        return;
    }
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        OffsetFetchRequest_OffsetFetchRequestTopic *in = &r->Topics.items[i];
        OffsetFetchResponse_OffsetFetchResponseTopic *t = &resp->Topics.items[i];
        OffsetFetchResponse_OffsetFetchResponseTopic_init(t);
        t->Name = in->Name;
        REQUEST_ARRAY(req, t->Partitions, in->PartitionIndexes.count > 0 ? in->PartitionIndexes.count : 0);
        for (int32_t j = 0; j < t->Partitions.count; j++) {
            OffsetFetchResponse_OffsetFetchResponsePartition *p = &t->Partitions.items[j];
            OffsetFetchResponse_OffsetFetchResponsePartition_init(p);
            p->PartitionIndex = in->PartitionIndexes.items[j];
            fetched_t f = fetch_one(gc, r->GroupId, in->Name, p->PartitionIndex);
            p->CommittedOffset = f.offset;
            p->CommittedLeaderEpoch = f.epoch;
            p->Metadata = f.metadata;
            p->ErrorCode = gerr;
            if (unstable(req, gc, r->GroupId, in->Name, p->PartitionIndex)) {
                p->ErrorCode = KERR_UNSTABLE_OFFSET_COMMIT;
                p->CommittedOffset = -1;
            }
        }
    }
    request_respond(req);
}

/* v8+: several groups. */
static void offset_fetch_groups(request_t *req)
{
    OffsetFetchRequest *r = req->body;
    OffsetFetchResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Groups, r->Groups.count);
    for (int32_t g = 0; g < resp->Groups.count; g++) {
        OffsetFetchRequest_OffsetFetchRequestGroup *in = &r->Groups.items[g];
        OffsetFetchResponse_OffsetFetchResponseGroup *out = &resp->Groups.items[g];
        OffsetFetchResponse_OffsetFetchResponseGroup_init(out);
        out->GroupId = in->GroupId;
        group_coordinator_t *gc = group_for(req, in->GroupId, &out->ErrorCode);
        if (in->Topics.count < 0) {
            group_offset_view_t *all;
            int n = fetch_all(req, in->GroupId, &all);
            REQUEST_ARRAY(req, out->Topics, count_topics(all, n));
            int ti = -1;
            for (int i = 0; i < n && out->Topics.items; i++) {
                if (i == 0 || all[i].topic.len != all[i - 1].topic.len ||
                    memcmp(all[i].topic.ptr, all[i - 1].topic.ptr, (size_t)all[i].topic.len) != 0) {
                    OffsetFetchResponse_OffsetFetchResponseTopics *t = &out->Topics.items[++ti];
                    OffsetFetchResponse_OffsetFetchResponseTopics_init(t);
                    t->Name = all[i].topic;
                    int c = 0;
                    while (i + c < n && all[i + c].topic.len == all[i].topic.len &&
                           memcmp(all[i + c].topic.ptr, all[i].topic.ptr, (size_t)all[i].topic.len) == 0)
                        c++;
                    REQUEST_ARRAY(req, t->Partitions, c);
                    t->Partitions.count = 0;
                }
                OffsetFetchResponse_OffsetFetchResponseTopics *t = &out->Topics.items[ti];
                if (t->Partitions.items == NULL)
                    continue;
                OffsetFetchResponse_OffsetFetchResponsePartitions *p = &t->Partitions.items[t->Partitions.count++];
                OffsetFetchResponse_OffsetFetchResponsePartitions_init(p);
                p->PartitionIndex = all[i].partition;
                p->CommittedOffset = all[i].offset;
                p->CommittedLeaderEpoch = all[i].leader_epoch;
                p->Metadata = all[i].metadata;
            }
            continue;
        }
        REQUEST_ARRAY(req, out->Topics, in->Topics.count);
        for (int32_t i = 0; i < out->Topics.count; i++) {
            OffsetFetchRequest_OffsetFetchRequestTopics *ti = &in->Topics.items[i];
            OffsetFetchResponse_OffsetFetchResponseTopics *t = &out->Topics.items[i];
            OffsetFetchResponse_OffsetFetchResponseTopics_init(t);
            t->Name = ti->Name;
            REQUEST_ARRAY(req, t->Partitions, ti->PartitionIndexes.count > 0 ? ti->PartitionIndexes.count : 0);
            for (int32_t j = 0; j < t->Partitions.count; j++) {
                OffsetFetchResponse_OffsetFetchResponsePartitions *p = &t->Partitions.items[j];
                OffsetFetchResponse_OffsetFetchResponsePartitions_init(p);
                p->PartitionIndex = ti->PartitionIndexes.items[j];
                fetched_t f = fetch_one(gc, in->GroupId, ti->Name, p->PartitionIndex);
                p->CommittedOffset = f.offset;
                p->CommittedLeaderEpoch = f.epoch;
                p->Metadata = f.metadata;
                if (unstable(req, gc, in->GroupId, ti->Name, p->PartitionIndex)) {
                    p->ErrorCode = KERR_UNSTABLE_OFFSET_COMMIT;
                    p->CommittedOffset = -1;
                }
            }
        }
    }
    request_respond(req);
}

void handle_offset_fetch(request_t *req)
{
    if (req->hdr.api_version >= 8)
        offset_fetch_groups(req);
    else
        offset_fetch_single(req);
}

/* ---- ListGroups / DescribeGroups / DeleteGroups / OffsetDelete ---- */

static bool filter_has(const kstr_t *items, int32_t n, kstr_t s)
{
    for (int32_t i = 0; i < n; i++)
        if (items[i].len == s.len && (s.len <= 0 || strncasecmp(items[i].ptr, s.ptr, (size_t)s.len) == 0))
            return true;
    return false;
}

void handle_list_groups(request_t *req)
{
    ListGroupsRequest *r = req->body;
    ListGroupsResponse *resp = req->resp;
    group_coordinator_t *gc = req->broker->groups;
    int16_t v = req->hdr.api_version;
    int n = gc ? group_list(gc, NULL, 0) : 0;
    group_listing_t *all = request_alloc(req, sizeof(*all) * (size_t)(n > 0 ? n : 1));
    if (all == NULL) {
        resp->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
        request_respond(req);
        return;
    }
    n = n ? group_list(gc, all, n) : 0;
    bool by_state = v >= 4 && r->StatesFilter.count > 0;
    /* Every group here is a "classic" group. */
    bool type_ok = !(v >= 5 && r->TypesFilter.count > 0) ||
                   filter_has(r->TypesFilter.items, r->TypesFilter.count, kstr_c("classic"));
    REQUEST_ARRAY(req, resp->Groups, n);
    int k = 0;
    for (int i = 0; i < n && resp->Groups.items && type_ok; i++) {
        if (by_state && !filter_has(r->StatesFilter.items, r->StatesFilter.count, all[i].state))
            continue;
        ListGroupsResponse_ListedGroup *g = &resp->Groups.items[k++];
        ListGroupsResponse_ListedGroup_init(g);
        g->GroupId = all[i].group_id;
        g->ProtocolType = all[i].protocol_type;
        g->GroupState = all[i].state;
        g->GroupType = kstr_c("classic");
    }
    resp->Groups.count = resp->Groups.items ? k : 0;
    request_respond(req);
}

void handle_describe_groups(request_t *req)
{
    DescribeGroupsRequest *r = req->body;
    DescribeGroupsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Groups, r->Groups.count);
    for (int32_t i = 0; i < resp->Groups.count; i++) {
        DescribeGroupsResponse_DescribedGroup *g = &resp->Groups.items[i];
        DescribeGroupsResponse_DescribedGroup_init(g);
        g->GroupId = r->Groups.items[i];
        g->AuthorizedOperations = r->IncludeAuthorizedOperations ? GROUP_AUTHORIZED_OPERATIONS : INT32_MIN;
        group_coordinator_t *gc = group_for(req, g->GroupId, &g->ErrorCode);
        if (gc == NULL)
            continue;
        group_description_t d;
        int n = group_describe(gc, g->GroupId, &d, NULL, 0);
        group_member_view_t *ms = request_alloc(req, sizeof(*ms) * (size_t)(n > 0 ? n : 1));
        if (ms == NULL) {
            g->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        n = group_describe(gc, g->GroupId, &d, ms, n);
        g->ErrorCode = KERR_NONE;
        g->GroupState = d.state;
        g->ProtocolType = d.protocol_type;
        g->ProtocolData = d.protocol_name;
        REQUEST_ARRAY(req, g->Members, n);
        for (int32_t j = 0; j < g->Members.count; j++) {
            DescribeGroupsResponse_DescribedGroupMember *m = &g->Members.items[j];
            DescribeGroupsResponse_DescribedGroupMember_init(m);
            m->MemberId = ms[j].member_id;
            m->GroupInstanceId = ms[j].instance_id;
            m->ClientId = ms[j].client_id;
            m->ClientHost = ms[j].client_host;
            m->MemberMetadata = ms[j].metadata;
            m->MemberAssignment = ms[j].assignment;
        }
    }
    request_respond(req);
}

void handle_delete_groups(request_t *req)
{
    DeleteGroupsRequest *r = req->body;
    DeleteGroupsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Results, r->GroupsNames.count);
    for (int32_t i = 0; i < resp->Results.count; i++) {
        DeleteGroupsResponse_DeletableGroupResult *g = &resp->Results.items[i];
        DeleteGroupsResponse_DeletableGroupResult_init(g);
        g->GroupId = r->GroupsNames.items[i];
        group_coordinator_t *gc = group_for(req, g->GroupId, &g->ErrorCode);
        if (gc)
            g->ErrorCode = group_delete(gc, g->GroupId);
    }
    request_respond(req);
}

void handle_offset_delete(request_t *req)
{
    OffsetDeleteRequest *r = req->body;
    OffsetDeleteResponse *resp = req->resp;
    int16_t gerr;
    group_coordinator_t *gc = group_for(req, r->GroupId, &gerr);
    int n = 0;
    for (int32_t i = 0; i < r->Topics.count; i++)
        n += r->Topics.items[i].Partitions.count > 0 ? r->Topics.items[i].Partitions.count : 0;
    group_offset_delete_item_t *items = request_alloc(req, sizeof(*items) * (size_t)(n > 0 ? n : 1));
    if (gc == NULL || items == NULL) {
        resp->ErrorCode = gc ? KERR_COORDINATOR_NOT_AVAILABLE : gerr;
        resp->Topics.count = 0;
        request_respond(req);
        return;
    }
    int k = 0;
    for (int32_t i = 0; i < r->Topics.count; i++)
        for (int32_t j = 0; j < r->Topics.items[i].Partitions.count; j++, k++) {
            items[k].topic = r->Topics.items[i].Name;
            items[k].partition = r->Topics.items[i].Partitions.items[j].PartitionIndex;
            items[k].error = KERR_NONE;
        }
    resp->ErrorCode = group_delete_offsets(gc, r->GroupId, items, n);
    if (resp->ErrorCode != KERR_NONE) {
        resp->Topics.count = 0;
        request_respond(req);
        return;
    }
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    k = 0;
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        OffsetDeleteRequest_OffsetDeleteRequestTopic *in = &r->Topics.items[i];
        OffsetDeleteResponse_OffsetDeleteResponseTopic *t = &resp->Topics.items[i];
        OffsetDeleteResponse_OffsetDeleteResponseTopic_init(t);
        t->Name = in->Name;
        REQUEST_ARRAY(req, t->Partitions, in->Partitions.count > 0 ? in->Partitions.count : 0);
        for (int32_t j = 0; j < t->Partitions.count; j++) {
            t->Partitions.items[j].PartitionIndex = in->Partitions.items[j].PartitionIndex;
            t->Partitions.items[j].ErrorCode = items[k + j].error;
        }
        k += in->Partitions.count > 0 ? in->Partitions.count : 0;
    }
    request_respond(req);
}
