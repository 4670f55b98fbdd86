/* handlers_cluster.c - Metadata, DescribeCluster, DescribeLogDirs. */
#include <string.h>
#include <sys/statvfs.h>

#include "cluster/cluster.h"
#include "common/logger.h"
#include "server/broker.h"

#define AUTHORIZED_OPERATIONS_OMITTED INT32_MIN

static void fill_partition(request_t *req, MetadataResponse_MetadataResponsePartition *mp, partition_t *p)
{
    broker_t *b = req->broker;
    mp->ErrorCode = KERR_NONE;
    mp->PartitionIndex = p->index;
    mp->LeaderId = b->node_id;
    mp->LeaderEpoch = p->leader_epoch;
    REQUEST_ARRAY(req, mp->ReplicaNodes, 1);
    REQUEST_ARRAY(req, mp->IsrNodes, 1);
    if (mp->ReplicaNodes.items)
        mp->ReplicaNodes.items[0] = b->node_id;
    if (mp->IsrNodes.items)
        mp->IsrNodes.items[0] = b->node_id;
    mp->OfflineReplicas.count = 0;
    const zk_partition_t *zp = b->cluster ? cluster_partition(b->cluster, p->topic->name, p->index) : NULL;
    if (zp) {
        /* Cluster mode: replicas, leader and ISR as ZooKeeper has them. */
        mp->ErrorCode = zp->leader < 0 ? KERR_LEADER_NOT_AVAILABLE : KERR_NONE;
        mp->LeaderId = zp->leader;
        mp->LeaderEpoch = zp->leader_epoch;
        REQUEST_ARRAY(req, mp->ReplicaNodes, zp->nreplicas);
        REQUEST_ARRAY(req, mp->IsrNodes, zp->nisr);
        for (int32_t i = 0; mp->ReplicaNodes.items && i < mp->ReplicaNodes.count; i++)
            mp->ReplicaNodes.items[i] = zp->replicas[i];
        for (int32_t i = 0; mp->IsrNodes.items && i < mp->IsrNodes.count; i++)
            mp->IsrNodes.items[i] = zp->isr[i];
    }
}

/* Cluster mode: every live broker, as registered in ZooKeeper. */
static void fill_cluster_brokers(request_t *req, MetadataResponse *resp)
{
    cluster_t *c = req->broker->cluster;
    if (cluster_broker_count(c) == 0)
        return; /* not heard from ZooKeeper yet: this broker alone, as filled before */
    REQUEST_ARRAY(req, resp->Brokers, cluster_broker_count(c));
    for (int32_t i = 0; resp->Brokers.items && i < resp->Brokers.count; i++) {
        const zk_broker_t *zb = cluster_broker_at(c, i);
        MetadataResponse_MetadataResponseBroker_init(&resp->Brokers.items[i]);
        resp->Brokers.items[i].NodeId = zb->id;
        resp->Brokers.items[i].Host = request_strf(req, "%s", zb->host);
        resp->Brokers.items[i].Port = zb->port;
        resp->Brokers.items[i].Rack = kstr_null();
    }
    resp->ControllerId = cluster_controller_id(c);
}

static void fill_topic(request_t *req, MetadataResponse_MetadataResponseTopic *mt, topic_t *tp)
{
    mt->ErrorCode = KERR_NONE;
    mt->Name = kstr_c(tp->name);
    mt->TopicId = tp->id;
    mt->IsInternal = tp->internal;
    mt->TopicAuthorizedOperations = AUTHORIZED_OPERATIONS_OMITTED;
    REQUEST_ARRAY(req, mt->Partitions, tp->npartitions);
    for (int32_t i = 0; i < mt->Partitions.count; i++) {
        MetadataResponse_MetadataResponsePartition_init(&mt->Partitions.items[i]);
        fill_partition(req, &mt->Partitions.items[i], tp->partitions[i]);
    }
}

typedef struct all_topics {
    request_t *req;
    MetadataResponse *resp;
    int n;
} all_topics_t;

static void add_topic_cb(void *arg, topic_t *tp)
{
    all_topics_t *a = arg;
    MetadataResponse_MetadataResponseTopic *mt = &a->resp->Topics.items[a->n++];
    MetadataResponse_MetadataResponseTopic_init(mt);
    fill_topic(a->req, mt, tp);
}

void handle_metadata(request_t *req)
{
    broker_t *b = req->broker;
    MetadataRequest *r = req->body;
    MetadataResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;

    REQUEST_ARRAY(req, resp->Brokers, 1);
    if (resp->Brokers.items) {
        MetadataResponse_MetadataResponseBroker_init(&resp->Brokers.items[0]);
        resp->Brokers.items[0].NodeId = b->node_id;
        resp->Brokers.items[0].Host = kstr_c(b->advertised_host);
        resp->Brokers.items[0].Port = b->advertised_port;
        resp->Brokers.items[0].Rack = kstr_null();
    }
    resp->ClusterId = kstr_c(b->cluster_id);
    resp->ControllerId = b->node_id;
    resp->ClusterAuthorizedOperations = AUTHORIZED_OPERATIONS_OMITTED;
    if (b->cluster)
        fill_cluster_brokers(req, resp);

    /* v0: an empty list means all topics; v1+: null means all. */
    bool all = r->Topics.count < 0 || (v == 0 && r->Topics.count == 0);
    if (all) {
        all_topics_t a = {req, resp, 0};
        REQUEST_ARRAY(req, resp->Topics, topics_count(b->topics));
        if (resp->Topics.items)
            topics_foreach(b->topics, add_topic_cb, &a);
        resp->Topics.count = a.n;
        request_respond(req);
        return;
    }
    /* Before v4 there is no flag: auto-creation follows the broker config alone. */
    bool may_create = (v < 4 || r->AllowAutoTopicCreation) &&
                      broker_config_get_bool(b->config, "auto.create.topics.enable");
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        MetadataRequest_MetadataRequestTopic *rt = &r->Topics.items[i];
        MetadataResponse_MetadataResponseTopic *mt = &resp->Topics.items[i];
        MetadataResponse_MetadataResponseTopic_init(mt);
        topic_t *tp = NULL;
        if (rt->Name.len >= 0)
            tp = topics_find(b->topics, rt->Name.ptr, (size_t)rt->Name.len);
        else if (!topics_uuid_is_zero(&rt->TopicId))
            tp = topics_find_id(b->topics, &rt->TopicId);
        if (tp) {
            fill_topic(req, mt, tp);
            continue;
        }
        mt->Name = rt->Name;
        mt->TopicId = rt->TopicId;
        mt->Partitions.count = 0;
        mt->TopicAuthorizedOperations = AUTHORIZED_OPERATIONS_OMITTED;
        if (rt->Name.len < 0) {
            mt->ErrorCode = KERR_UNKNOWN_TOPIC_ID;
            continue;
        }
        char err[256];
        if (topics_validate_name(rt->Name.ptr, (size_t)rt->Name.len, err, sizeof(err)) != 0) {
            mt->ErrorCode = KERR_INVALID_TOPIC_EXCEPTION;
            continue;
        }
        if (!may_create) {
            mt->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        char *name = request_cstr(req, rt->Name);
        if (name == NULL || topics_find_colliding(b->topics, name, strlen(name)) ||
            (name[0] == '_' && (strcmp(name, "__consumer_offsets") == 0 ||
                                strcmp(name, "__transaction_state") == 0))) {
            mt->ErrorCode = KERR_INVALID_TOPIC_EXCEPTION;
            continue;
        }
        int32_t parts = (int32_t)broker_config_get_long(b->config, "num.partitions");
        if (b->cluster) {
            /* Created through ZooKeeper; like Kafka, answer LEADER_NOT_AVAILABLE meanwhile. */
            int16_t cerr;
            int32_t rf = (int32_t)broker_config_get_long(b->config, "default.replication.factor");
            cluster_op_t *op = cluster_create_topic(b->cluster, name, parts > 0 ? parts : 1, rf, NULL, NULL, NULL,
                                                    &cerr, err, sizeof(err));
            if (op == NULL)
                LOG_WARN("metadata", "auto-creating topic %s failed: %s", name, err);
            mt->ErrorCode = op ? KERR_LEADER_NOT_AVAILABLE : cerr;
            continue;
        }
        topic_config_t *cfg = topic_config_new();
        if (cfg == NULL || topics_create(b->topics, name, parts > 0 ? parts : 1, cfg, &tp, err, sizeof(err)) != 0) {
            LOG_WARN("metadata", "auto-creating topic %s failed: %s", name, err);
            mt->ErrorCode = KERR_LEADER_NOT_AVAILABLE;
            continue;
        }
        fill_topic(req, mt, tp);
    }
    request_respond(req);
}

void handle_describe_cluster(request_t *req)
{
    broker_t *b = req->broker;
    DescribeClusterRequest *r = req->body;
    DescribeClusterResponse *resp = req->resp;
    if (r->EndpointType != 1) {
        /* Only the broker endpoint type exists here (2 = controllers, KRaft only). */
        resp->ErrorCode = KERR_UNSUPPORTED_VERSION;
        resp->ErrorMessage = kstr_c("only EndpointType 1 (brokers) is supported");
        resp->EndpointType = r->EndpointType;
        request_respond(req);
        return;
    }
    resp->EndpointType = 1;
    resp->ClusterId = kstr_c(b->cluster_id);
    resp->ControllerId = b->node_id;
    resp->ClusterAuthorizedOperations = AUTHORIZED_OPERATIONS_OMITTED;
    if (b->cluster) {
        resp->ControllerId = cluster_controller_id(b->cluster);
        REQUEST_ARRAY(req, resp->Brokers, cluster_broker_count(b->cluster));
        for (int32_t i = 0; resp->Brokers.items && i < resp->Brokers.count; i++) {
            const zk_broker_t *zb = cluster_broker_at(b->cluster, i);
            DescribeClusterResponse_DescribeClusterBroker_init(&resp->Brokers.items[i]);
            resp->Brokers.items[i].BrokerId = zb->id;
            resp->Brokers.items[i].Host = request_strf(req, "%s", zb->host);
            resp->Brokers.items[i].Port = zb->port;
            resp->Brokers.items[i].Rack = kstr_null();
        }
        request_respond(req);
        return;
    }
    REQUEST_ARRAY(req, resp->Brokers, 1);
    if (resp->Brokers.items) {
        DescribeClusterResponse_DescribeClusterBroker_init(&resp->Brokers.items[0]);
        resp->Brokers.items[0].BrokerId = b->node_id;
        resp->Brokers.items[0].Host = kstr_c(b->advertised_host);
        resp->Brokers.items[0].Port = b->advertised_port;
        resp->Brokers.items[0].Rack = kstr_null();
    }
    request_respond(req);
}

/* ---- DescribeLogDirs ---- */

typedef struct logdir_ctx {
    request_t *req;
    DescribeLogDirsRequest *r;
    DescribeLogDirsResponse_DescribeLogDirsResult *res;
    int dir;
    int cap;
} logdir_ctx_t;

static bool logdir_wanted(DescribeLogDirsRequest *r, topic_t *tp, int32_t p)
{
    if (r->Topics.count < 0)
        return true;
    for (int32_t i = 0; i < r->Topics.count; i++) {
        DescribeLogDirsRequest_DescribableLogDirTopic *t = &r->Topics.items[i];
        if (!kstr_eq(t->Topic, tp->name))
            continue;
        for (int32_t j = 0; j < t->Partitions.count; j++)
            if (t->Partitions.items[j] == p)
                return true;
    }
    return false;
}

static void logdir_topic_cb(void *arg, topic_t *tp)
{
    logdir_ctx_t *c = arg;
    int n = 0;
    for (int32_t i = 0; i < tp->npartitions; i++)
        if (tp->partitions[i]->log_dir_index == c->dir && logdir_wanted(c->r, tp, i))
            n++;
    if (n == 0 || c->res->Topics.count >= c->cap)
        return;
    DescribeLogDirsResponse_DescribeLogDirsTopic *t = &c->res->Topics.items[c->res->Topics.count++];
    DescribeLogDirsResponse_DescribeLogDirsTopic_init(t);
    t->Name = kstr_c(tp->name);
    REQUEST_ARRAY(c->req, t->Partitions, n);
    int k = 0;
    for (int32_t i = 0; i < tp->npartitions && k < t->Partitions.count; i++) {
        partition_t *p = tp->partitions[i];
        if (p->log_dir_index != c->dir || !logdir_wanted(c->r, tp, i))
            continue;
        DescribeLogDirsResponse_DescribeLogDirsPartition *dp = &t->Partitions.items[k++];
        DescribeLogDirsResponse_DescribeLogDirsPartition_init(dp);
        dp->PartitionIndex = i;
        dp->PartitionSize = log_size_bytes(p->log);
        dp->OffsetLag = 0;
        dp->IsFutureKey = false;
    }
}

void handle_describe_log_dirs(request_t *req)
{
    broker_t *b = req->broker;
    DescribeLogDirsResponse *resp = req->resp;
    int ndirs = topics_log_dir_count(b->topics);
    REQUEST_ARRAY(req, resp->Results, ndirs);
    for (int d = 0; d < resp->Results.count; d++) {
        DescribeLogDirsResponse_DescribeLogDirsResult *res = &resp->Results.items[d];
        DescribeLogDirsResponse_DescribeLogDirsResult_init(res);
        res->ErrorCode = KERR_NONE;
        res->LogDir = kstr_c(topics_log_dir(b->topics, d));
        struct statvfs sv;
        if (statvfs(topics_log_dir(b->topics, d), &sv) == 0) {
            res->TotalBytes = (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
            res->UsableBytes = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
        }
        logdir_ctx_t c = {req, req->body, res, d, topics_count(b->topics)};
        REQUEST_ARRAY(req, res->Topics, c.cap);
        res->Topics.count = 0;
        topics_foreach(b->topics, logdir_topic_cb, &c);
    }
    request_respond(req);
}
