/* handlers_cluster.c - Metadata, DescribeCluster, DescribeLogDirs, ElectLeaders. */
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

/* ---- ElectLeaders ---- */

/* Kafka's codes for election results. */

static void elect_result(ElectLeadersResponse_PartitionResult *pr, const zk_election_t *e, int8_t type)
{
    pr->PartitionId = e->partition;
    pr->ErrorMessage = kstr_null();
    switch (e->result) {
    case ZK_ELECTED:
        pr->ErrorCode = KERR_NONE;
        break;
    case ZK_ELECT_NOT_NEEDED:
        pr->ErrorCode = KERR_ELECTION_NOT_NEEDED;
        pr->ErrorMessage = kstr_c("Leader election not needed for topic partition.");
        break;
    case ZK_ELECT_NOT_AVAILABLE:
        pr->ErrorCode = type == ZK_ELECT_PREFERRED ? KERR_PREFERRED_LEADER_NOT_AVAILABLE
                                                   : KERR_ELIGIBLE_LEADERS_NOT_AVAILABLE;
        pr->ErrorMessage = kstr_c(type == ZK_ELECT_PREFERRED
                                      ? "The preferred leader is not live or not in the ISR."
                                      : "No replica of the partition is live.");
        break;
    case ZK_ELECT_UNKNOWN:
        pr->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        pr->ErrorMessage = kstr_c("The partition does not exist.");
        break;
    default:
        pr->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
        pr->ErrorMessage = kstr_c("The election could not be written to ZooKeeper.");
        break;
    }
}

/* Fills the response from the results, one entry per run of the same topic. For a request on
 * every partition (null list) partitions that needed no election are left out, as Kafka does. */
static void elect_respond(request_t *req, const zk_election_t *res, int n)
{
    ElectLeadersRequest *r = req->body;
    ElectLeadersResponse *resp = req->resp;
    int8_t type = req->hdr.api_version >= 1 ? r->ElectionType : ZK_ELECT_PREFERRED;
    bool all = r->TopicPartitions.count < 0;
    int ngroups = 0;
    const char *last = NULL;
    for (int i = 0; i < n; i++) {
        if (all && res[i].result == ZK_ELECT_NOT_NEEDED)
            continue;
        if (last == NULL || strcmp(last, res[i].topic) != 0)
            ngroups++;
        last = res[i].topic;
    }
    REQUEST_ARRAY(req, resp->ReplicaElectionResults, ngroups);
    int g = -1;
    last = NULL;
    for (int i = 0; i < n && resp->ReplicaElectionResults.items; i++) {
        if (all && res[i].result == ZK_ELECT_NOT_NEEDED)
            continue;
        if (last == NULL || strcmp(last, res[i].topic) != 0) {
            ElectLeadersResponse_ReplicaElectionResult *t = &resp->ReplicaElectionResults.items[++g];
            ElectLeadersResponse_ReplicaElectionResult_init(t);
            t->Topic = request_strf(req, "%s", res[i].topic);
            int k = 0;
            for (int j = i; j < n; j++) {
                if (all && res[j].result == ZK_ELECT_NOT_NEEDED)
                    continue;
                if (strcmp(res[j].topic, res[i].topic) != 0)
                    break;
                k++;
            }
            REQUEST_ARRAY(req, t->PartitionResult, k);
            t->PartitionResult.count = 0;
        }
        last = res[i].topic;
        ElectLeadersResponse_ReplicaElectionResult *t = &resp->ReplicaElectionResults.items[g];
        if (t->PartitionResult.items == NULL)
            continue;
        ElectLeadersResponse_PartitionResult *pr = &t->PartitionResult.items[t->PartitionResult.count++];
        ElectLeadersResponse_PartitionResult_init(pr);
        elect_result(pr, &res[i], type);
    }
    request_respond(req);
}

static void elect_done(void *arg, const zk_election_t *results, int n)
{
    request_t *req = arg;
    req->op = NULL;
    req->cancel = NULL;
    elect_respond(req, results, n);
}

static void elect_cancel(request_t *req) { cluster_op_cancel(req->broker->cluster, req->op); }

typedef struct elect_list {
    zk_election_t *items;
    int n, cap;
} elect_list_t;

static void elect_add(elect_list_t *l, const char *topic, size_t len, int32_t partition)
{
    if (l->items == NULL || l->n >= l->cap)
        return;
    zk_election_t *e = &l->items[l->n++];
    memset(e, 0, sizeof(*e));
    if (len >= sizeof(e->topic))
        len = sizeof(e->topic) - 1;
    memcpy(e->topic, topic, len);
    e->partition = partition;
    e->result = ZK_ELECT_UNKNOWN;
    e->leader = -1;
}

static void elect_local_topic(void *arg, topic_t *tp)
{
    elect_list_t *l = arg;
    for (int32_t p = 0; p < tp->npartitions; p++)
        elect_add(l, tp->name, strlen(tp->name), p);
}

static void count_local_partitions(void *arg, topic_t *tp) { *(int *)arg += tp->npartitions; }

/* ElectLeaders: in cluster mode this broker's ZooKeeper worker makes the elections (see
 * zk_store_elect_leaders), whichever broker is controller; the answer comes once this broker's
 * snapshot shows the results. On a single node every partition is led by its only replica. */
void handle_elect_leaders(request_t *req)
{
    broker_t *b = req->broker;
    ElectLeadersRequest *r = req->body;
    ElectLeadersResponse *resp = req->resp;
    int8_t type = req->hdr.api_version >= 1 ? r->ElectionType : ZK_ELECT_PREFERRED;
    resp->ErrorCode = KERR_NONE;
    resp->ReplicaElectionResults.count = 0;
    if (type != ZK_ELECT_PREFERRED && type != ZK_ELECT_UNCLEAN) {
        resp->ErrorCode = KERR_INVALID_REQUEST;
        request_respond(req);
        return;
    }
    /* The partitions asked for, or every partition (null list). */
    int n = 0;
    if (r->TopicPartitions.count >= 0) {
        for (int32_t i = 0; i < r->TopicPartitions.count; i++)
            n += r->TopicPartitions.items[i].Partitions.count;
    } else if (b->cluster) {
        for (int i = 0; i < cluster_topic_count(b->cluster); i++)
            n += cluster_topic_at(b->cluster, i)->npartitions;
    } else {
        topics_foreach(b->topics, count_local_partitions, &n);
    }
    elect_list_t l = {request_alloc(req, sizeof(zk_election_t) * (size_t)(n > 0 ? n : 1)), 0, n};
    if (r->TopicPartitions.count >= 0) {
        for (int32_t i = 0; i < r->TopicPartitions.count; i++) {
            ElectLeadersRequest_TopicPartitions *t = &r->TopicPartitions.items[i];
            for (int32_t j = 0; j < t->Partitions.count; j++)
                elect_add(&l, t->Topic.ptr ? t->Topic.ptr : "", t->Topic.len > 0 ? (size_t)t->Topic.len : 0,
                          t->Partitions.items[j]);
        }
    } else if (b->cluster) {
        for (int i = 0; i < cluster_topic_count(b->cluster); i++) {
            const zk_topic_t *zt = cluster_topic_at(b->cluster, i);
            for (int32_t p = 0; p < zt->npartitions; p++)
                elect_add(&l, zt->name, strlen(zt->name), p);
        }
    } else {
        topics_foreach(b->topics, elect_local_topic, &l);
    }
    if (l.items == NULL) {
        resp->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
        request_respond(req);
        return;
    }
    if (b->cluster) {
        cluster_op_t *op = cluster_elect_leaders(b->cluster, (zk_election_type_t)type, l.items, l.n, elect_done, req);
        if (op == NULL) {
            resp->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
            request_respond(req);
            return;
        }
        req->op = op;
        req->cancel = elect_cancel;
        return;
    }
    for (int i = 0; i < l.n; i++) {
        topic_t *tp = topics_find(b->topics, l.items[i].topic, strlen(l.items[i].topic));
        bool known = tp && l.items[i].partition >= 0 && l.items[i].partition < tp->npartitions;
        l.items[i].result = known ? ZK_ELECT_NOT_NEEDED : ZK_ELECT_UNKNOWN;
        l.items[i].leader = known ? b->node_id : -1;
    }
    elect_respond(req, l.items, l.n);
}
