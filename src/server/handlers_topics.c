/* handlers_topics.c - CreateTopics, DeleteTopics, CreatePartitions. */
#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/logger.h"
#include "server/broker.h"

static bool is_internal_name(const char *name)
{
    return strcmp(name, "__consumer_offsets") == 0 || strcmp(name, "__transaction_state") == 0;
}

typedef struct cfg_list_ctx {
    request_t *req;
    CreateTopicsResponse_CreatableTopicResult *res;
    int cap;
} cfg_list_ctx_t;

static void add_created_config(void *arg, const config_def_t *def, const char *value, int source)
{
    cfg_list_ctx_t *c = arg;
    if (c->res->Configs.count >= c->cap)
        return;
    CreateTopicsResponse_CreatableTopicConfigs *e = &c->res->Configs.items[c->res->Configs.count++];
    CreateTopicsResponse_CreatableTopicConfigs_init(e);
    e->Name = kstr_c(config_def_name(def));
    e->IsSensitive = config_def_sensitive(def);
    e->Value = e->IsSensitive || value == NULL ? kstr_null() : request_strf(c->req, "%s", value);
    e->ReadOnly = false;
    e->ConfigSource = (int8_t)source;
}

/* Validates one CreatableTopic; on success fills *npartitions and *overrides. */
static int16_t create_topic_check(request_t *req, CreateTopicsRequest_CreatableTopic *t, const char *name,
                                  int32_t *npartitions, int32_t *replication, topic_config_t **overrides,
                                  char *msg, size_t msglen)
{
    broker_t *b = req->broker;
    if (topics_validate_name(name, strlen(name), msg, msglen) != 0)
        return KERR_INVALID_TOPIC_EXCEPTION;
    if (topics_find(b->topics, name, strlen(name))) {
        snprintf(msg, msglen, "Topic '%s' already exists.", name);
        return KERR_TOPIC_ALREADY_EXISTS;
    }
    if (is_internal_name(name)) {
        snprintf(msg, msglen, "Creating the internal topic %s is not allowed", name);
        return KERR_INVALID_TOPIC_EXCEPTION;
    }
    topic_t *other = topics_find_colliding(b->topics, name, strlen(name));
    if (other) {
        snprintf(msg, msglen, "Topic '%s' collides with existing topic: %s", name, other->name);
        return KERR_INVALID_TOPIC_EXCEPTION;
    }
    int32_t parts = t->NumPartitions;
    int32_t rf = t->ReplicationFactor;
    if (t->Assignments.count > 0) {
        if (parts != -1 || rf != -1) {
            snprintf(msg, msglen, "Both numPartitions or replicationFactor and replicasAssignments were set. "
                                  "Both cannot be used at the same time.");
            return KERR_INVALID_REQUEST;
        }
        parts = t->Assignments.count;
        for (int32_t i = 0; i < t->Assignments.count; i++) {
            CreateTopicsRequest_CreatableReplicaAssignment *a = &t->Assignments.items[i];
            if (a->PartitionIndex != i && !(a->PartitionIndex >= 0 && a->PartitionIndex < parts)) {
                snprintf(msg, msglen, "Unexpected partition index %d in the replica assignment", a->PartitionIndex);
                return KERR_INVALID_REPLICA_ASSIGNMENT;
            }
            if (a->BrokerIds.count != 1 || a->BrokerIds.items[0] != b->node_id) {
                snprintf(msg, msglen, "Replica assignment for partition %d names brokers that do not exist "
                                      "(this cluster has only broker %d)", a->PartitionIndex, b->node_id);
                return KERR_INVALID_REPLICA_ASSIGNMENT;
            }
        }
    } else {
        if (parts == -1)
            parts = (int32_t)broker_config_get_long(b->config, "num.partitions");
        if (rf == -1)
            rf = (int32_t)broker_config_get_long(b->config, "default.replication.factor");
        if (parts <= 0) {
            snprintf(msg, msglen, "Number of partitions was set to an invalid non-positive value.");
            return KERR_INVALID_PARTITIONS;
        }
        if (rf <= 0) {
            snprintf(msg, msglen, "Replication factor must be larger than 0, or -1 to use the default value.");
            return KERR_INVALID_REPLICATION_FACTOR;
        }
        if (rf > 1 && !b->cluster) { /* in cluster mode the live brokers decide */
            snprintf(msg, msglen, "Unable to replicate the partition %d time(s): The target replication factor "
                                  "of %d cannot be reached because only 1 broker(s) are registered.", rf, rf);
            return KERR_INVALID_REPLICATION_FACTOR;
        }
    }
    topic_config_t *cfg = topic_config_new();
    if (cfg == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    for (int32_t i = 0; i < t->Configs.count; i++) {
        CreateTopicsRequest_CreatableTopicConfig *c = &t->Configs.items[i];
        char *key = request_cstr(req, c->Name);
        if (c->Value.len < 0) {
            snprintf(msg, msglen, "Null value not supported for topic configs: %s", key ? key : "");
            topic_config_free(cfg);
            return KERR_INVALID_CONFIG;
        }
        char *value = request_cstr(req, c->Value);
        if (key == NULL || value == NULL || topic_config_set(cfg, key, value, msg, msglen) != 0) {
            topic_config_free(cfg);
            return KERR_INVALID_CONFIG;
        }
    }
    *npartitions = parts;
    *replication = rf > 0 ? rf : 1;
    *overrides = cfg;
    return KERR_NONE;
}

/* Cluster mode: CreateTopics answers once every topic is in ZooKeeper and in this broker's image,
 * DeleteTopics once every topic has left them. */
typedef struct create_wait {
    request_t *req;
    int pending;
    int32_t n;
    cluster_op_t **ops; /* per topic of the request, NULL when not waiting */
} create_wait_t;

typedef struct create_one {
    create_wait_t *w;
    int32_t index;
} create_one_t;

static void create_done(void *arg, int16_t error, const char *message)
{
    create_one_t *o = arg;
    create_wait_t *w = o->w;
    request_t *req = w->req;
    CreateTopicsResponse_CreatableTopicResult *res = &((CreateTopicsResponse *)req->resp)->Topics.items[o->index];
    w->ops[o->index] = NULL;
    res->ErrorCode = error;
    if (error != KERR_NONE) {
        res->ErrorMessage = request_strf(req, "%s", message);
        res->NumPartitions = -1;
        res->ReplicationFactor = -1;
        res->Configs.count = req->hdr.api_version >= 5 ? 0 : -1;
    } else {
        topic_t *tp = topics_find(req->broker->topics, res->Name.ptr, (size_t)res->Name.len);
        if (tp)
            res->TopicId = tp->id;
    }
    if (--w->pending == 0) {
        req->cancel = NULL;
        req->op = NULL;
        request_respond(req);
    }
}

static void create_cancel(request_t *req)
{
    create_wait_t *w = req->op;
    for (int32_t i = 0; i < w->n; i++)
        if (w->ops[i])
            cluster_op_cancel(req->broker->cluster, w->ops[i]);
}

/* Allocates the wait state for n topics in the request's arena; NULL when out of memory. */
static create_wait_t *wait_new(request_t *req, int32_t n, create_one_t **ones)
{
    create_wait_t *w = request_alloc(req, sizeof(*w));
    *ones = request_alloc(req, sizeof(**ones) * (size_t)(n > 0 ? n : 1));
    if (w == NULL || *ones == NULL)
        return NULL;
    w->req = req;
    w->pending = 0;
    w->n = n;
    w->ops = request_alloc(req, sizeof(*w->ops) * (size_t)(n > 0 ? n : 1));
    if (w->ops == NULL)
        return NULL;
    memset(w->ops, 0, sizeof(*w->ops) * (size_t)(n > 0 ? n : 1));
    for (int32_t i = 0; i < n; i++) {
        (*ones)[i].w = w;
        (*ones)[i].index = i;
    }
    return w;
}

static void delete_done(void *arg, int16_t error, const char *message)
{
    create_one_t *o = arg;
    create_wait_t *w = o->w;
    request_t *req = w->req;
    DeleteTopicsResponse_DeletableTopicResult *res = &((DeleteTopicsResponse *)req->resp)->Responses.items[o->index];
    w->ops[o->index] = NULL;
    res->ErrorCode = error;
    if (error != KERR_NONE)
        res->ErrorMessage = request_strf(req, "%s", message);
    if (--w->pending == 0) {
        req->cancel = NULL;
        req->op = NULL;
        request_respond(req);
    }
}

void handle_create_topics(request_t *req)
{
    broker_t *b = req->broker;
    CreateTopicsRequest *r = req->body;
    CreateTopicsResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    create_wait_t *w = NULL;
    create_one_t *ones = NULL;
    if (b->cluster && resp->Topics.count > 0)
        w = wait_new(req, resp->Topics.count, &ones);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        CreateTopicsRequest_CreatableTopic *t = &r->Topics.items[i];
        CreateTopicsResponse_CreatableTopicResult *res = &resp->Topics.items[i];
        CreateTopicsResponse_CreatableTopicResult_init(res);
        res->Name = t->Name;
        res->NumPartitions = -1;
        res->ReplicationFactor = -1;
        res->Configs.count = v >= 5 ? 0 : -1;
        char msg[512] = "";
        char *name = request_cstr(req, t->Name);
        int16_t err = KERR_NONE;
        /* A name given twice in one request is refused for every occurrence (Kafka's rule). */
        for (int32_t j = 0; j < r->Topics.count && name; j++)
            if (j != i && r->Topics.items[j].Name.len == t->Name.len &&
                memcmp(r->Topics.items[j].Name.ptr, t->Name.ptr, (size_t)t->Name.len) == 0) {
                err = KERR_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Create topics request from client contains multiple entries "
                                           "for the following topics: %s", name);
            }
        int32_t parts = 0, rf = 1;
        topic_config_t *cfg = NULL;
        if (err == KERR_NONE)
            err = name ? create_topic_check(req, t, name, &parts, &rf, &cfg, msg, sizeof(msg))
                       : KERR_UNKNOWN_SERVER_ERROR;
        topic_t *tp = NULL;
        if (err == KERR_NONE && !r->validateOnly && b->cluster) {
            cluster_op_t *op = NULL;
            if (w) {
                op = cluster_create_topic(b->cluster, name, parts, rf, cfg, create_done, &ones[i], &err, msg,
                                          sizeof(msg));
            } else {
                err = KERR_UNKNOWN_SERVER_ERROR;
            }
            if (op) {
                w->ops[i] = op;
                w->pending++;
            }
        } else if (err == KERR_NONE && !r->validateOnly) {
            if (topics_create(b->topics, name, parts, cfg, &tp, msg, sizeof(msg)) != 0)
                err = KERR_UNKNOWN_SERVER_ERROR;
            cfg = NULL; /* taken over */
        }
        res->ErrorCode = err;
        if (err != KERR_NONE) {
            res->ErrorMessage = request_strf(req, "%s", msg);
            topic_config_free(cfg);
            continue;
        }
        res->NumPartitions = parts;
        res->ReplicationFactor = (int16_t)rf;
        if (tp)
            res->TopicId = tp->id;
        if (v >= 5) {
            cfg_list_ctx_t c = {req, res, 64};
            REQUEST_ARRAY(req, res->Configs, c.cap);
            res->Configs.count = 0;
            topic_config_foreach_effective(tp ? tp->config : cfg, b->config, add_created_config, &c);
        }
        topic_config_free(cfg);
    }
    if (w && w->pending > 0) {
        req->op = w;
        req->cancel = create_cancel;
        return;
    }
    request_respond(req);
}

void handle_delete_topics(request_t *req)
{
    broker_t *b = req->broker;
    DeleteTopicsRequest *r = req->body;
    DeleteTopicsResponse *resp = req->resp;
    int16_t v = req->hdr.api_version;
    int32_t n = v >= 6 ? r->Topics.count : r->TopicNames.count;
    bool enabled = broker_config_get_bool(b->config, "delete.topic.enable");
    REQUEST_ARRAY(req, resp->Responses, n);
    create_wait_t *w = NULL;
    create_one_t *ones = NULL;
    if (b->cluster && resp->Responses.count > 0)
        w = wait_new(req, resp->Responses.count, &ones);
    for (int32_t i = 0; i < resp->Responses.count; i++) {
        DeleteTopicsResponse_DeletableTopicResult *res = &resp->Responses.items[i];
        DeleteTopicsResponse_DeletableTopicResult_init(res);
        kstr_t name = v >= 6 ? r->Topics.items[i].Name : r->TopicNames.items[i];
        topic_t *tp = NULL;
        if (name.len >= 0) {
            tp = topics_find(b->topics, name.ptr, (size_t)name.len);
            res->Name = name;
        } else {
            res->TopicId = r->Topics.items[i].TopicId;
            tp = topics_find_id(b->topics, &res->TopicId);
            res->Name = tp ? request_strf(req, "%s", tp->name) : kstr_null();
        }
        if (tp == NULL) {
            res->ErrorCode = name.len >= 0 ? KERR_UNKNOWN_TOPIC_OR_PARTITION : KERR_UNKNOWN_TOPIC_ID;
            res->ErrorMessage = kstr_c(name.len >= 0 ? "This server does not host this topic-partition."
                                                     : "This server does not host this topic ID.");
            continue;
        }
        res->TopicId = tp->id;
        if (!enabled) {
            res->ErrorCode = KERR_TOPIC_DELETION_DISABLED;
            res->ErrorMessage = kstr_c("Topic deletion is disabled.");
            continue;
        }
        /* The name may point into the topic itself: copy it before the topic goes. */
        res->Name = request_strf(req, "%s", tp->name);
        if (b->cluster && cluster_knows_topic(b->cluster, tp->name)) {
            /* Cluster mode: the controller deletes it everywhere; answer once it has gone here. */
            cluster_op_t *op = w ? cluster_delete_topic(b->cluster, tp->name, delete_done, &ones[i]) : NULL;
            if (op) {
                w->ops[i] = op;
                w->pending++;
            } else {
                res->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
            }
            continue;
        }
        topics_delete(b->topics, tp);
        res->ErrorCode = KERR_NONE;
    }
    if (w && w->pending > 0) {
        req->op = w;
        req->cancel = create_cancel;
        return;
    }
    request_respond(req);
}

static void partitions_done(void *arg, int16_t error, const char *message)
{
    create_one_t *o = arg;
    create_wait_t *w = o->w;
    request_t *req = w->req;
    CreatePartitionsResponse_CreatePartitionsTopicResult *res =
        &((CreatePartitionsResponse *)req->resp)->Results.items[o->index];
    w->ops[o->index] = NULL;
    res->ErrorCode = error;
    if (error != KERR_NONE)
        res->ErrorMessage = request_strf(req, "%s", message);
    if (--w->pending == 0) {
        req->cancel = NULL;
        req->op = NULL;
        request_respond(req);
    }
}

/* The replica lists of a request's new partitions: each checked (on a single node: this broker
 * alone), copied into *flat ((count - current) * rf ids) in cluster mode. */
static int16_t check_new_assignments(request_t *req, CreatePartitionsRequest_CreatePartitionsTopic *t,
                                     int32_t current, int rf, bool cluster, int32_t **flat, char *msg,
                                     size_t msglen)
{
    broker_t *b = req->broker;
    *flat = NULL;
    if (t->Assignments.count < 0)
        return KERR_NONE;
    if (t->Assignments.count != t->Count - current) {
        snprintf(msg, msglen, "Increasing the number of partitions by %d but %d assignments provided.",
                 t->Count - current, t->Assignments.count);
        return KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    if (cluster && (*flat = request_alloc(req, sizeof(int32_t) * (size_t)t->Assignments.count * (size_t)rf)) == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    for (int32_t j = 0; j < t->Assignments.count; j++) {
        CreatePartitionsRequest_CreatePartitionsAssignment *a = &t->Assignments.items[j];
        if (cluster) {
            int16_t err = cluster_check_assignment(b->cluster, a->BrokerIds.items, a->BrokerIds.count, rf, current + j,
                                                   msg, msglen);
            if (err != KERR_NONE)
                return err;
            memcpy(*flat + (size_t)j * (size_t)rf, a->BrokerIds.items, sizeof(int32_t) * (size_t)rf);
        } else if (a->BrokerIds.count != 1 || a->BrokerIds.items[0] != b->node_id) {
            snprintf(msg, msglen, "Assignment %d names brokers that do not exist.", j);
            return KERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    return KERR_NONE;
}

/* CreatePartitions. In cluster mode the partitions are added in ZooKeeper (zk_store_add_partitions)
 * and the answer comes once this broker's image has them; every broker opens them from its
 * snapshot. */
void handle_create_partitions(request_t *req)
{
    broker_t *b = req->broker;
    CreatePartitionsRequest *r = req->body;
    CreatePartitionsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Results, r->Topics.count);
    create_wait_t *w = NULL;
    create_one_t *ones = NULL;
    if (b->cluster && resp->Results.count > 0)
        w = wait_new(req, resp->Results.count, &ones);
    for (int32_t i = 0; i < resp->Results.count; i++) {
        CreatePartitionsRequest_CreatePartitionsTopic *t = &r->Topics.items[i];
        CreatePartitionsResponse_CreatePartitionsTopicResult *res = &resp->Results.items[i];
        CreatePartitionsResponse_CreatePartitionsTopicResult_init(res);
        res->Name = t->Name;
        topic_t *tp = t->Name.len > 0 ? topics_find(b->topics, t->Name.ptr, (size_t)t->Name.len) : NULL;
        /* Cluster mode: ZooKeeper's view of the topic decides (this broker may not have opened all
         * its partitions yet). */
        const zk_topic_t *zt = tp && b->cluster ? cluster_topic(b->cluster, tp->name) : NULL;
        int32_t current = zt ? zt->npartitions : tp ? tp->npartitions : 0;
        int rf = zt ? zt->partitions[0].nreplicas : 1;
        int32_t *assignment = NULL;
        char msg[512] = "";
        int16_t err = KERR_NONE;
        if (tp == NULL) {
            err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            snprintf(msg, sizeof(msg), "The topic '%.*s' does not exist.", t->Name.len > 0 ? t->Name.len : 0,
                     t->Name.ptr ? t->Name.ptr : "");
        } else if (t->Count < current) {
            err = KERR_INVALID_PARTITIONS;
            snprintf(msg, sizeof(msg), "Topic currently has %d partitions, which is higher than the requested %d.",
                     current, t->Count);
        } else if (t->Count == current) {
            err = KERR_INVALID_PARTITIONS;
            snprintf(msg, sizeof(msg), "Topic already has %d partitions.", current);
        } else {
            err = check_new_assignments(req, t, current, rf, zt != NULL, &assignment, msg, sizeof(msg));
        }
        if (err == KERR_NONE && zt && assignment == NULL && rf > cluster_broker_count(b->cluster)) {
            err = KERR_INVALID_REPLICATION_FACTOR;
            snprintf(msg, sizeof(msg), "Replication factor: %d larger than available brokers: %d.", rf,
                     cluster_broker_count(b->cluster));
        }
        if (err == KERR_NONE && zt && !r->ValidateOnly) {
            cluster_op_t *op = w ? cluster_create_partitions(b->cluster, tp->name, t->Count, assignment,
                                                             partitions_done, &ones[i], &err, msg, sizeof(msg))
                                 : NULL;
            if (op) {
                w->ops[i] = op;
                w->pending++;
            } else if (err == KERR_NONE) {
                err = KERR_UNKNOWN_SERVER_ERROR;
                snprintf(msg, sizeof(msg), "out of memory");
            }
        } else if (err == KERR_NONE && !zt && !r->ValidateOnly &&
                   topics_add_partitions(b->topics, tp, t->Count, msg, sizeof(msg)) != 0) {
            err = KERR_UNKNOWN_SERVER_ERROR;
        }
        res->ErrorCode = err;
        if (err != KERR_NONE)
            res->ErrorMessage = request_strf(req, "%s", msg);
    }
    if (w && w->pending > 0) {
        req->op = w;
        req->cancel = create_cancel;
        return;
    }
    request_respond(req);
}
