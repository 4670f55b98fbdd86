/* handlers_configs.c - DescribeConfigs, AlterConfigs, IncrementalAlterConfigs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/logger.h"
#include "server/broker.h"

#define RESOURCE_TOPIC 2
#define RESOURCE_BROKER 4

#define OP_SET 0
#define OP_DELETE 1
#define OP_APPEND 2
#define OP_SUBTRACT 3

/* A broker resource names this broker ("0") or, empty, the cluster-wide default. */
static int broker_resource(broker_t *b, kstr_t name, bool *cluster_default)
{
    *cluster_default = name.len <= 0;
    if (*cluster_default)
        return 0;
    char id[16];
    snprintf(id, sizeof(id), "%d", b->node_id);
    return kstr_eq(name, id) ? 0 : -1;
}

/* ---- DescribeConfigs ---- */

typedef struct describe_ctx {
    request_t *req;
    DescribeConfigsRequest_DescribeConfigsResource *res_req;
    DescribeConfigsResponse_DescribeConfigsResult *out;
    int cap;
    bool topic;
} describe_ctx_t;

static bool key_requested(DescribeConfigsRequest_DescribeConfigsResource *r, const char *name)
{
    if (r->ConfigurationKeys.count < 0)
        return true;
    for (int32_t i = 0; i < r->ConfigurationKeys.count; i++)
        if (kstr_eq(r->ConfigurationKeys.items[i], name))
            return true;
    return false;
}

static void add_synonym(request_t *req, DescribeConfigsResponse_DescribeConfigsResourceResult *e, int *n,
                        const char *name, const char *value, int source)
{
    DescribeConfigsResponse_DescribeConfigsSynonym *s = &e->Synonyms.items[(*n)++];
    DescribeConfigsResponse_DescribeConfigsSynonym_init(s);
    s->Name = kstr_c(name);
    s->Value = value ? request_strf(req, "%s", value) : kstr_null();
    s->Source = (int8_t)source;
}

static void describe_one(void *arg, const config_def_t *def, const char *value, int source)
{
    describe_ctx_t *c = arg;
    request_t *req = c->req;
    DescribeConfigsRequest *r = req->body;
    broker_t *b = req->broker;
    const char *name = config_def_name(def);
    if (!key_requested(c->res_req, name) || c->out->Configs.count >= c->cap)
        return;
    DescribeConfigsResponse_DescribeConfigsResourceResult *e = &c->out->Configs.items[c->out->Configs.count++];
    DescribeConfigsResponse_DescribeConfigsResourceResult_init(e);
    e->Name = kstr_c(name);
    e->IsSensitive = config_def_sensitive(def);
    e->Value = (value == NULL || e->IsSensitive) ? kstr_null() : request_strf(req, "%s", value);
    e->ReadOnly = c->topic ? false : config_def_read_only(def);
    e->ConfigSource = (int8_t)source;
    e->IsDefault = source == CONFIG_SOURCE_DEFAULT;
    e->ConfigType = (int8_t)config_def_kafka_type(def);
    if (r->IncludeDocumentation)
        e->Documentation = kstr_c(config_def_doc(def));
    else
        e->Documentation = kstr_null();
    e->Synonyms.count = 0;
    if (!r->IncludeSynonyms || req->hdr.api_version < 1)
        return;
    REQUEST_ARRAY(req, e->Synonyms, 3);
    int n = 0;
    if (e->Synonyms.items == NULL)
        return;
    if (c->topic && source == CONFIG_SOURCE_TOPIC)
        add_synonym(req, e, &n, name, e->IsSensitive ? NULL : value, source);
    const char *bkey = c->topic ? config_def_synonym(def) : name;
    const config_def_t *bdef = bkey ? config_def_find_broker(bkey) : NULL;
    if (bdef) {
        int bsrc;
        const char *bval = broker_config_get(b->config, bkey, &bsrc);
        if (bsrc != CONFIG_SOURCE_DEFAULT && bsrc != CONFIG_SOURCE_UNKNOWN)
            add_synonym(req, e, &n, bkey, e->IsSensitive ? NULL : bval, bsrc);
        add_synonym(req, e, &n, bkey, config_def_default(bdef), CONFIG_SOURCE_DEFAULT);
    }
    e->Synonyms.count = n;
}

void handle_describe_configs(request_t *req)
{
    broker_t *b = req->broker;
    DescribeConfigsRequest *r = req->body;
    DescribeConfigsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Results, r->Resources.count);
    for (int32_t i = 0; i < resp->Results.count; i++) {
        DescribeConfigsRequest_DescribeConfigsResource *rr = &r->Resources.items[i];
        DescribeConfigsResponse_DescribeConfigsResult *out = &resp->Results.items[i];
        DescribeConfigsResponse_DescribeConfigsResult_init(out);
        out->ResourceType = rr->ResourceType;
        out->ResourceName = rr->ResourceName;
        out->Configs.count = 0;
        describe_ctx_t c = {req, rr, out, 512, rr->ResourceType == RESOURCE_TOPIC};
        if (rr->ResourceType == RESOURCE_TOPIC) {
            topic_t *tp = rr->ResourceName.len > 0
                              ? topics_find(b->topics, rr->ResourceName.ptr, (size_t)rr->ResourceName.len)
                              : NULL;
            if (tp == NULL) {
                out->ErrorCode = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                out->ErrorMessage = kstr_c("The topic does not exist.");
                continue;
            }
            REQUEST_ARRAY(req, out->Configs, c.cap);
            out->Configs.count = 0;
            topic_config_foreach_effective(tp->config, b->config, describe_one, &c);
        } else if (rr->ResourceType == RESOURCE_BROKER) {
            bool cluster_default;
            if (broker_resource(b, rr->ResourceName, &cluster_default) != 0) {
                out->ErrorCode = KERR_INVALID_REQUEST;
                out->ErrorMessage = kstr_c("Unexpected broker id, this broker is the only one in the cluster");
                continue;
            }
            REQUEST_ARRAY(req, out->Configs, c.cap);
            out->Configs.count = 0;
            broker_config_foreach(b->config, describe_one, &c);
        } else {
            out->ErrorCode = KERR_INVALID_REQUEST;
            out->ErrorMessage = request_strf(req, "Unsupported resource type %d", rr->ResourceType);
        }
    }
    request_respond(req);
}

/* ---- changes ---- */

typedef struct change {
    char *key;
    char *value; /* NULL: delete */
    int op;
} change_t;

/* APPEND / SUBTRACT on a comma-separated list value. */
static char *list_edit(const char *current, const char *item, bool append)
{
    size_t cap = (current ? strlen(current) : 0) + strlen(item) + 2;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    bool present = false;
    char *copy = strdup(current ? current : "");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (strcmp(tok, item) == 0) {
            present = true;
            if (!append)
                continue;
        }
        if (out[0])
            strcat(out, ",");
        strcat(out, tok);
    }
    free(copy);
    if (append && !present) {
        if (out[0])
            strcat(out, ",");
        strcat(out, item);
    }
    return out;
}

/* Applies the changes to a topic: on a copy first, so a bad one changes nothing. */
static int16_t alter_topic(request_t *req, topic_t *tp, change_t *ch, int n, bool replace_all, bool validate_only,
                           char *msg, size_t msglen)
{
    broker_t *b = req->broker;
    topic_config_t *cfg = replace_all ? topic_config_new() : topic_config_clone(tp->config);
    if (cfg == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    for (int i = 0; i < n; i++) {
        const config_def_t *def = config_def_find_topic(ch[i].key);
        if (def == NULL) {
            snprintf(msg, msglen, "Unknown topic config name: %s", ch[i].key);
            topic_config_free(cfg);
            return KERR_INVALID_CONFIG;
        }
        char *value = ch[i].value;
        char *edited = NULL;
        if (ch[i].op == OP_APPEND || ch[i].op == OP_SUBTRACT) {
            if (config_def_kafka_type(def) != CONFIG_TYPE_LIST) {
                snprintf(msg, msglen, "Config value append is not allowed for config key: %s", ch[i].key);
                topic_config_free(cfg);
                return KERR_INVALID_CONFIG;
            }
            edited = list_edit(topic_config_get(cfg, b->config, ch[i].key, NULL), value ? value : "",
                               ch[i].op == OP_APPEND);
            value = edited;
        }
        int rc = topic_config_set(cfg, ch[i].key, ch[i].op == OP_DELETE ? NULL : value, msg, msglen);
        free(edited);
        if (rc != 0) {
            topic_config_free(cfg);
            return KERR_INVALID_CONFIG;
        }
    }
    if (validate_only) {
        topic_config_free(cfg);
        return KERR_NONE;
    }
    if (topics_set_config(b->topics, tp, cfg, msg, msglen) != 0)
        return KERR_UNKNOWN_SERVER_ERROR;
    LOG_INFO("config", "topic %s config updated (%d change(s))", tp->name, n);
    if (b->cluster)
        cluster_topic_config_changed(b->cluster, tp); /* every broker applies it */
    return KERR_NONE;
}

typedef struct dyn_keys {
    request_t *req;
    change_t *ch;
    int n;
    char **stale;
    int nstale, cap;
} dyn_keys_t;

/* Collects dynamic keys the new set leaves out (legacy AlterConfigs replaces the set). */
static void collect_stale(void *arg, const char *key, const char *value)
{
    (void)value;
    dyn_keys_t *d = arg;
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->ch[i].key, key) == 0)
            return;
    if (d->nstale < d->cap)
        d->stale[d->nstale++] = request_cstr(d->req, kstr_c(key));
}

static int16_t alter_broker(request_t *req, bool cluster_default, change_t *ch, int n, bool replace_all,
                            bool validate_only, char *msg, size_t msglen)
{
    broker_t *b = req->broker;
    /* Validate everything before changing anything. */
    for (int i = 0; i < n; i++) {
        const config_def_t *def = config_def_find_broker(ch[i].key);
        if (def == NULL) {
            snprintf(msg, msglen, "Unknown broker config name: %s", ch[i].key);
            return KERR_INVALID_CONFIG;
        }
        if (config_def_read_only(def)) {
            snprintf(msg, msglen, "Cannot update these configs dynamically: %s", ch[i].key);
            return KERR_INVALID_CONFIG;
        }
        if (ch[i].op == OP_APPEND || ch[i].op == OP_SUBTRACT) {
            if (config_def_kafka_type(def) != CONFIG_TYPE_LIST) {
                snprintf(msg, msglen, "Config value append is not allowed for config key: %s", ch[i].key);
                return KERR_INVALID_CONFIG;
            }
            char *edited = list_edit(broker_config_get(b->config, ch[i].key, NULL), ch[i].value ? ch[i].value : "",
                                     ch[i].op == OP_APPEND);
            ch[i].value = request_cstr(req, kstr_c(edited ? edited : ""));
            free(edited);
            ch[i].op = OP_SET;
        }
        if (ch[i].op == OP_SET && config_def_validate(def, ch[i].value ? ch[i].value : "", NULL, msg, msglen) != 0)
            return KERR_INVALID_CONFIG;
    }
    if (validate_only)
        return KERR_NONE;
    if (replace_all) {
        dyn_keys_t d = {req, ch, n, NULL, 0, 256};
        d.stale = request_alloc(req, sizeof(char *) * (size_t)d.cap);
        if (d.stale)
            broker_config_foreach_dynamic(b->config, cluster_default, collect_stale, &d);
        for (int i = 0; i < d.nstale; i++) {
            int rc = cluster_default ? broker_config_set_dynamic_default(b->config, d.stale[i], NULL, msg, msglen)
                                     : broker_config_set_dynamic(b->config, d.stale[i], NULL, msg, msglen);
            if (rc != 0)
                return KERR_INVALID_CONFIG;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *value = ch[i].op == OP_DELETE ? NULL : ch[i].value;
        int rc = cluster_default ? broker_config_set_dynamic_default(b->config, ch[i].key, value, msg, msglen)
                                 : broker_config_set_dynamic(b->config, ch[i].key, value, msg, msglen);
        if (rc != 0)
            return KERR_INVALID_CONFIG;
    }
    topics_refresh_settings(b->topics);
    const char *lvl = broker_config_get(b->config, "runnel.log.level", NULL);
    if (lvl && logger_parse_level(lvl) >= 0)
        logger_min_level = logger_parse_level(lvl);
    broker_save_dynamic_config(b);
    LOG_INFO("config", "broker config updated (%d change(s))", n);
    return KERR_NONE;
}

static int16_t alter_resource(request_t *req, int8_t type, kstr_t name, change_t *ch, int n, bool replace_all,
                              bool validate_only, char *msg, size_t msglen)
{
    broker_t *b = req->broker;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(ch[i].key, ch[j].key) == 0) {
                snprintf(msg, msglen, "Error due to duplicate config keys: %s", ch[i].key);
                return KERR_INVALID_REQUEST;
            }
    if (type == RESOURCE_TOPIC) {
        topic_t *tp = name.len > 0 ? topics_find(b->topics, name.ptr, (size_t)name.len) : NULL;
        if (tp == NULL) {
            snprintf(msg, msglen, "The topic does not exist.");
            return KERR_UNKNOWN_TOPIC_OR_PARTITION;
        }
        return alter_topic(req, tp, ch, n, replace_all, validate_only, msg, msglen);
    }
    if (type == RESOURCE_BROKER) {
        bool cluster_default;
        if (broker_resource(b, name, &cluster_default) != 0) {
            snprintf(msg, msglen, "Unexpected broker id, this broker is the only one in the cluster");
            return KERR_INVALID_REQUEST;
        }
        return alter_broker(req, cluster_default, ch, n, replace_all, validate_only, msg, msglen);
    }
    snprintf(msg, msglen, "Unsupported resource type %d", type);
    return KERR_INVALID_REQUEST;
}

void handle_alter_configs(request_t *req)
{
    AlterConfigsRequest *r = req->body;
    AlterConfigsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Responses, r->Resources.count);
    for (int32_t i = 0; i < resp->Responses.count; i++) {
        AlterConfigsRequest_AlterConfigsResource *rr = &r->Resources.items[i];
        AlterConfigsResponse_AlterConfigsResourceResponse *out = &resp->Responses.items[i];
        AlterConfigsResponse_AlterConfigsResourceResponse_init(out);
        out->ResourceType = rr->ResourceType;
        out->ResourceName = rr->ResourceName;
        int n = rr->Configs.count > 0 ? rr->Configs.count : 0;
        change_t *ch = request_alloc(req, sizeof(change_t) * (size_t)(n ? n : 1));
        char msg[512] = "";
        if (ch == NULL) {
            out->ErrorCode = KERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        for (int j = 0; j < n; j++) {
            ch[j].key = request_cstr(req, rr->Configs.items[j].Name);
            ch[j].value = rr->Configs.items[j].Value.len < 0 ? NULL : request_cstr(req, rr->Configs.items[j].Value);
            ch[j].op = ch[j].value ? OP_SET : OP_DELETE;
        }
        out->ErrorCode = alter_resource(req, rr->ResourceType, rr->ResourceName, ch, n, true, r->ValidateOnly, msg,
                                        sizeof(msg));
        out->ErrorMessage = out->ErrorCode ? request_strf(req, "%s", msg) : kstr_null();
    }
    request_respond(req);
}

void handle_incremental_alter_configs(request_t *req)
{
    IncrementalAlterConfigsRequest *r = req->body;
    IncrementalAlterConfigsResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Responses, r->Resources.count);
    for (int32_t i = 0; i < resp->Responses.count; i++) {
        IncrementalAlterConfigsRequest_AlterConfigsResource *rr = &r->Resources.items[i];
        IncrementalAlterConfigsResponse_AlterConfigsResourceResponse *out = &resp->Responses.items[i];
        IncrementalAlterConfigsResponse_AlterConfigsResourceResponse_init(out);
        out->ResourceType = rr->ResourceType;
        out->ResourceName = rr->ResourceName;
        int n = rr->Configs.count > 0 ? rr->Configs.count : 0;
        change_t *ch = request_alloc(req, sizeof(change_t) * (size_t)(n ? n : 1));
        char msg[512] = "";
        int16_t err = ch ? KERR_NONE : KERR_UNKNOWN_SERVER_ERROR;
        for (int j = 0; j < n && err == KERR_NONE; j++) {
            IncrementalAlterConfigsRequest_AlterableConfig *c = &rr->Configs.items[j];
            ch[j].key = request_cstr(req, c->Name);
            ch[j].value = c->Value.len < 0 ? NULL : request_cstr(req, c->Value);
            ch[j].op = c->ConfigOperation;
            if (c->ConfigOperation < OP_SET || c->ConfigOperation > OP_SUBTRACT) {
                err = KERR_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Unknown config operation %d", c->ConfigOperation);
            } else if (c->ConfigOperation != OP_DELETE && ch[j].value == NULL) {
                err = KERR_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Null value not supported for : %s", ch[j].key);
            }
        }
        if (err == KERR_NONE)
            err = alter_resource(req, rr->ResourceType, rr->ResourceName, ch, n, false, r->ValidateOnly, msg,
                                 sizeof(msg));
        out->ErrorCode = err;
        out->ErrorMessage = err ? request_strf(req, "%s", msg) : kstr_null();
    }
    request_respond(req);
}
