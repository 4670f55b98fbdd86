/*
 * cli_topic.c - `runnel topic create|list|describe|delete|alter`, the kafka-topics.sh
 * subset people use daily, on librdkafka's admin API and metadata.
 *
 * Topic existence is always judged from a full metadata request (all topics), which never
 * triggers the broker's auto.create.topics.enable.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt_t create_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to create (required)"},
    {"partitions", CLI_VALUE, "N", "number of partitions (default: the broker's num.partitions)"},
    {"replication-factor", CLI_VALUE, "N",
     "replicas per partition (default: the broker's default.replication.factor)"},
    {"config", CLI_MULTI, "KEY=VALUE", "topic config override"},
    {"if-not-exists", CLI_FLAG, NULL, "succeed if the topic already exists"},
    {0},
};

static const cli_opt_t list_opts[] = {
    {"exclude-internal", CLI_FLAG, NULL, "leave out internal topics (names starting with __)"},
    {0},
};

static const cli_opt_t describe_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to describe (default: every topic)"},
    {"overrides-only", CLI_FLAG, NULL, "list only configs not at their default"},
    {0},
};

static const cli_opt_t delete_opts[] = {
    {"topic", CLI_MULTI, "NAME", "topic to delete; several may be given, or NAME1,NAME2"},
    {"if-exists", CLI_FLAG, NULL, "succeed if a topic does not exist"},
    {0},
};

static const cli_opt_t alter_opts[] = {
    {"topic", CLI_VALUE, "NAME", "topic to change (required)"},
    {"partitions", CLI_VALUE, "N", "new (larger) partition count"},
    {"config", CLI_MULTI, "KEY=VALUE", "set a config override"},
    {"delete-config", CLI_MULTI, "KEY", "remove a config override"},
    {0},
};

static void print_error_result(const char *what, const char *topic, rd_kafka_resp_err_t err,
                               const char *msg)
{
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        cli_fail("topic '%s' does not exist", topic);
    else
        cli_fail("%s '%s' failed: %s", what, topic, msg && *msg ? msg : rd_kafka_err2str(err));
}

/* ---- create --------------------------------------------------------------------- */

static int topic_create(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    if (topic == NULL || *topic == '\0')
        return cli_usage(ctx, "--topic is required");
    int64_t parts, rf;
    if (cli_get_int(ctx, "partitions", 1, 1000000, -1, &parts) != 0 ||
        cli_get_int(ctx, "replication-factor", 1, 32767, -1, &rf) != 0)
        return CLI_USAGE;
    char errstr[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, (int)parts, (int)rf, errstr,
                                                    sizeof(errstr));
    if (nt == NULL)
        return cli_usage(ctx, "%s", errstr);
    int pos = 0;
    const char *kv;
    while ((kv = cli_next(ctx, "config", &pos)) != NULL) {
        const char *eq = strchr(kv, '=');
        if (eq == NULL || eq == kv) {
            rd_kafka_NewTopic_destroy(nt);
            return cli_usage(ctx, "--config wants KEY=VALUE, not '%s'", kv);
        }
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
        rd_kafka_NewTopic_set_config(nt, key, eq + 1);
    }
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL) {
        rd_kafka_NewTopic_destroy(nt);
        return CLI_USAGE;
    }
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL) {
        rd_kafka_NewTopic_destroy(nt);
        return CLI_FAIL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(rk, &nt, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(nt);
    int rc = CLI_FAIL;
    bool existed = false;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT,
                                          "create topic");
    if (ev) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t err = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = CLI_OK;
        } else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && cli_has(ctx, "if-not-exists")) {
            rc = CLI_OK;
            existed = true;
        } else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            cli_fail("topic '%s' already exists", topic);
        } else {
            print_error_result("creating topic", topic, err,
                               n ? rd_kafka_topic_result_error_string(res[0]) : NULL);
        }
        rd_kafka_event_destroy(ev);
    }
    if (rc == CLI_OK) {
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_t j;
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "topic", topic);
            cli_json_kbool(&j, "created", !existed);
            cli_json_key(&j, "partitions");
            if (parts > 0)
                cli_json_int(&j, parts);
            else
                cli_json_null(&j);
            cli_json_obj_end(&j);
            cli_json_done(&j);
        } else {
            printf(existed ? "Topic %s already exists.\n" : "Created topic %s.\n", topic);
        }
    }
    rd_kafka_queue_destroy(q);
    cli_client_destroy(rk);
    return rc;
}

/* ---- list ----------------------------------------------------------------------- */

static int cmp_topic(const void *a, const void *b)
{
    const rd_kafka_metadata_topic_t *x = *(const rd_kafka_metadata_topic_t *const *)a;
    const rd_kafka_metadata_topic_t *y = *(const rd_kafka_metadata_topic_t *const *)b;
    return strcmp(x->topic, y->topic);
}

/* Topics of md sorted by name (caller frees the array). */
static const rd_kafka_metadata_topic_t **sorted_topics(const rd_kafka_metadata_t *md)
{
    const rd_kafka_metadata_topic_t **v = calloc((size_t)md->topic_cnt + 1, sizeof(*v));
    if (v == NULL)
        return NULL;
    for (int i = 0; i < md->topic_cnt; i++)
        v[i] = &md->topics[i];
    qsort(v, (size_t)md->topic_cnt, sizeof(*v), cmp_topic);
    return v;
}

static int replication_factor(const rd_kafka_metadata_topic_t *t)
{
    return t->partition_cnt > 0 ? t->partitions[0].replica_cnt : 0;
}

static int topic_list(cli_ctx_t *ctx)
{
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL)
        return CLI_USAGE;
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    if (md == NULL) {
        cli_client_destroy(rk);
        return CLI_FAIL;
    }
    const rd_kafka_metadata_topic_t **v = sorted_topics(md);
    bool excl = cli_has(ctx, "exclude-internal");
    cli_json_t j;
    cli_table_t *t = NULL;
    if (ctx->format == CLI_FMT_JSON) {
        cli_json_init(&j, stdout);
        cli_json_obj(&j);
        cli_json_key(&j, "topics");
        cli_json_arr(&j);
    } else {
        t = cli_table_new("TOPIC\tPARTITIONS\tREPLICATION-FACTOR");
    }
    for (int i = 0; v && i < md->topic_cnt; i++) {
        if (v[i]->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            continue;
        if (excl && strncmp(v[i]->topic, "__", 2) == 0)
            continue;
        if (t) {
            cli_table_addf(t, "%s\t%d\t%d", v[i]->topic, v[i]->partition_cnt,
                           replication_factor(v[i]));
        } else {
            cli_json_obj(&j);
            cli_json_kstr(&j, "topic", v[i]->topic);
            cli_json_kint(&j, "partitions", v[i]->partition_cnt);
            cli_json_kint(&j, "replication_factor", replication_factor(v[i]));
            cli_json_obj_end(&j);
        }
    }
    if (t) {
        cli_table_print(t, stdout);
    } else {
        cli_json_arr_end(&j);
        cli_json_obj_end(&j);
        cli_json_done(&j);
    }
    free(v);
    rd_kafka_metadata_destroy(md);
    cli_client_destroy(rk);
    return CLI_OK;
}

/* ---- describe ------------------------------------------------------------------- */

static void join_ids(char *out, size_t outlen, const int32_t *ids, int n)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%d", i ? "," : "", (int)ids[i]);
}

static void json_ids(cli_json_t *j, const char *k, const int32_t *ids, int n)
{
    cli_json_key(j, k);
    cli_json_arr(j);
    for (int i = 0; i < n; i++)
        cli_json_int(j, ids[i]);
    cli_json_arr_end(j);
}

static int cmp_part(const void *a, const void *b)
{
    const rd_kafka_metadata_partition_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int describe_one(cli_ctx_t *ctx, rd_kafka_t *rk, const rd_kafka_metadata_topic_t *mt,
                        cli_json_t *j, bool first)
{
    cli_cfgent_t *ents = NULL;
    int n = cli_describe_configs(ctx, rk, RD_KAFKA_RESOURCE_TOPIC, mt->topic, &ents);
    if (n < 0)
        return CLI_FAIL;
    bool overrides_only = cli_has(ctx, "overrides-only");
    /* metadata partitions come in any order; show them by id */
    rd_kafka_metadata_partition_t *parts = calloc((size_t)mt->partition_cnt + 1, sizeof(*parts));
    if (parts == NULL) {
        cli_cfgents_free(ents, n);
        return cli_fail("out of memory");
    }
    memcpy(parts, mt->partitions, (size_t)mt->partition_cnt * sizeof(*parts));
    qsort(parts, (size_t)mt->partition_cnt, sizeof(*parts), cmp_part);
    if (j) {
        cli_json_obj(j);
        cli_json_kstr(j, "topic", mt->topic);
        cli_json_kint(j, "partition_count", mt->partition_cnt);
        cli_json_kint(j, "replication_factor", replication_factor(mt));
        cli_json_key(j, "partitions");
        cli_json_arr(j);
        for (int i = 0; i < mt->partition_cnt; i++) {
            const rd_kafka_metadata_partition_t *p = &parts[i];
            cli_json_obj(j);
            cli_json_kint(j, "partition", p->id);
            cli_json_kint(j, "leader", p->leader);
            json_ids(j, "replicas", p->replicas, p->replica_cnt);
            json_ids(j, "isr", p->isrs, p->isr_cnt);
            if (p->err)
                cli_json_kstr(j, "error", rd_kafka_err2name(p->err));
            cli_json_obj_end(j);
        }
        cli_json_arr_end(j);
        cli_json_key(j, "configs");
        cli_json_arr(j);
        for (int i = 0; i < n; i++) {
            if (overrides_only && ents[i].source == RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG)
                continue;
            cli_json_obj(j);
            cli_json_kstr(j, "name", ents[i].name);
            cli_json_kstr(j, "value", ents[i].value);
            cli_json_kstr(j, "source", rd_kafka_ConfigSource_name(ents[i].source));
            cli_json_kbool(j, "read_only", ents[i].read_only);
            cli_json_kbool(j, "sensitive", ents[i].sensitive);
            cli_json_obj_end(j);
        }
        cli_json_arr_end(j);
        cli_json_obj_end(j);
    } else {
        if (!first)
            printf("\n");
        printf("Topic: %s\tPartitionCount: %d\tReplicationFactor: %d\n", mt->topic,
               mt->partition_cnt, replication_factor(mt));
        cli_table_t *t = cli_table_new("PARTITION\tLEADER\tREPLICAS\tISR");
        for (int i = 0; i < mt->partition_cnt; i++) {
            const rd_kafka_metadata_partition_t *p = &parts[i];
            char reps[256], isr[256];
            join_ids(reps, sizeof(reps), p->replicas, p->replica_cnt);
            join_ids(isr, sizeof(isr), p->isrs, p->isr_cnt);
            cli_table_addf(t, "%d\t%d\t%s\t%s", (int)p->id, (int)p->leader, reps, isr);
        }
        cli_table_print(t, stdout);
        printf("\nConfigs:\n");
        t = cli_table_new("NAME\tVALUE\tSOURCE");
        for (int i = 0; i < n; i++) {
            if (overrides_only && ents[i].source == RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG)
                continue;
            cli_table_addf(t, "%s\t%s\t%s", ents[i].name,
                           ents[i].sensitive ? "(sensitive)" : ents[i].value ? ents[i].value : "null",
                           rd_kafka_ConfigSource_name(ents[i].source));
        }
        cli_table_print(t, stdout);
    }
    free(parts);
    cli_cfgents_free(ents, n);
    return CLI_OK;
}

static int topic_describe(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL)
        return CLI_USAGE;
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    if (md == NULL) {
        cli_client_destroy(rk);
        return CLI_FAIL;
    }
    int rc = CLI_OK;
    if (topic) {
        const rd_kafka_metadata_topic_t *mt = cli_md_topic(md, topic);
        if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            rc = cli_fail("topic '%s' does not exist", topic);
    }
    if (rc == CLI_OK) {
        cli_json_t j;
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_key(&j, "topics");
            cli_json_arr(&j);
        }
        const rd_kafka_metadata_topic_t **v = sorted_topics(md);
        bool first = true;
        for (int i = 0; v && i < md->topic_cnt && rc == CLI_OK; i++) {
            if (topic && strcmp(v[i]->topic, topic) != 0)
                continue;
            if (v[i]->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                continue;
            rc = describe_one(ctx, rk, v[i], ctx->format == CLI_FMT_JSON ? &j : NULL, first);
            first = false;
        }
        free(v);
        if (ctx->format == CLI_FMT_JSON && rc == CLI_OK) {
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            cli_json_done(&j);
        }
    }
    rd_kafka_metadata_destroy(md);
    cli_client_destroy(rk);
    return rc;
}

/* ---- delete --------------------------------------------------------------------- */

static int topic_delete(cli_ctx_t *ctx)
{
    char *names[256];
    int nn = 0, pos = 0;
    const char *v;
    while ((v = cli_next(ctx, "topic", &pos)) != NULL) {
        char *copy = strdup(v), *save = NULL;
        if (copy == NULL)
            return cli_fail("out of memory");
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (*tok && nn < 256)
                names[nn++] = strdup(tok);
        free(copy);
    }
    if (nn == 0)
        return cli_usage(ctx, "--topic is required");
    int rc = CLI_FAIL;
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    rd_kafka_t *rk = NULL;
    if (conf == NULL)
        rc = CLI_USAGE;
    else
        rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk) {
        rd_kafka_DeleteTopic_t *dt[256];
        for (int i = 0; i < nn; i++)
            dt[i] = rd_kafka_DeleteTopic_new(names[i]);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
        rd_kafka_DeleteTopics(rk, dt, (size_t)nn, o, q);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_DeleteTopic_destroy_array(dt, (size_t)nn);
        rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_DELETETOPICS_RESULT,
                                              "delete topic");
        if (ev) {
            size_t n = 0;
            const rd_kafka_topic_result_t **res =
                rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
            rc = CLI_OK;
            cli_json_t j;
            if (ctx->format == CLI_FMT_JSON) {
                cli_json_init(&j, stdout);
                cli_json_obj(&j);
                cli_json_key(&j, "deleted");
                cli_json_arr(&j);
            }
            for (size_t i = 0; i < n; i++) {
                const char *name = rd_kafka_topic_result_name(res[i]);
                rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
                if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && cli_has(ctx, "if-exists"))
                    continue;
                if (err) {
                    print_error_result("deleting topic", name, err,
                                       rd_kafka_topic_result_error_string(res[i]));
                    rc = CLI_FAIL;
                    continue;
                }
                if (ctx->format == CLI_FMT_JSON)
                    cli_json_str(&j, name);
                else
                    printf("Deleted topic %s.\n", name);
            }
            if (ctx->format == CLI_FMT_JSON) {
                cli_json_arr_end(&j);
                cli_json_obj_end(&j);
                cli_json_done(&j);
            }
            rd_kafka_event_destroy(ev);
        }
        rd_kafka_queue_destroy(q);
        cli_client_destroy(rk);
    }
    for (int i = 0; i < nn; i++)
        free(names[i]);
    return rc;
}

/* ---- alter ---------------------------------------------------------------------- */

static int add_partitions(cli_ctx_t *ctx, rd_kafka_t *rk, const char *topic, int count)
{
    char errstr[512];
    rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(topic, (size_t)count, errstr,
                                                              sizeof(errstr));
    if (np == NULL)
        return cli_usage(ctx, "%s", errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
    rd_kafka_CreatePartitions(rk, &np, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewPartitions_destroy(np);
    int rc = CLI_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT,
                                          "add partitions");
    if (ev) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res = rd_kafka_CreatePartitions_result_topics(
            rd_kafka_event_CreatePartitions_result(ev), &n);
        rd_kafka_resp_err_t err = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = CLI_OK;
        else
            print_error_result("changing partitions of topic", topic, err,
                               n ? rd_kafka_topic_result_error_string(res[0]) : NULL);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

static int topic_alter(cli_ctx_t *ctx)
{
    const char *topic = cli_get(ctx, "topic");
    if (topic == NULL || *topic == '\0')
        return cli_usage(ctx, "--topic is required");
    int64_t parts;
    if (cli_get_int(ctx, "partitions", 1, 1000000, -1, &parts) != 0)
        return CLI_USAGE;
    char *set[128], *del[128];
    int nset = 0, ndel = 0, pos = 0;
    const char *v;
    while ((v = cli_next(ctx, "config", &pos)) != NULL && nset < 128) {
        if (strchr(v, '=') == NULL || *v == '=')
            return cli_usage(ctx, "--config wants KEY=VALUE, not '%s'", v);
        set[nset++] = (char *)v;
    }
    pos = 0;
    while ((v = cli_next(ctx, "delete-config", &pos)) != NULL && ndel < 128)
        del[ndel++] = (char *)v;
    if (parts < 0 && nset == 0 && ndel == 0)
        return cli_usage(ctx, "nothing to change: give --partitions, --config or --delete-config");
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL)
        return CLI_USAGE;
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_FAIL;
    int rc = CLI_OK;
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    if (md == NULL) {
        rc = CLI_FAIL;
    } else {
        const rd_kafka_metadata_topic_t *mt = cli_md_topic(md, topic);
        if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            rc = cli_fail("topic '%s' does not exist", topic);
        else if (parts > 0 && parts < mt->partition_cnt)
            rc = cli_fail("topic '%s' has %d partitions; the count can only grow", topic,
                          mt->partition_cnt);
        else if (parts > 0 && parts == mt->partition_cnt)
            rc = cli_fail("topic '%s' already has %d partitions", topic, mt->partition_cnt);
        rd_kafka_metadata_destroy(md);
    }
    if (rc == CLI_OK && parts > 0)
        rc = add_partitions(ctx, rk, topic, (int)parts);
    if (rc == CLI_OK && (nset || ndel))
        rc = cli_alter_configs_incremental(ctx, rk, RD_KAFKA_RESOURCE_TOPIC, topic, set, nset,
                                           del, ndel);
    if (rc == CLI_OK) {
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_t j;
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "topic", topic);
            cli_json_key(&j, "partitions");
            if (parts > 0)
                cli_json_int(&j, parts);
            else
                cli_json_null(&j);
            cli_json_key(&j, "set");
            cli_json_obj(&j);
            for (int i = 0; i < nset; i++) {
                char *eq = strchr(set[i], '=');
                *eq = '\0';
                cli_json_kstr(&j, set[i], eq + 1);
                *eq = '=';
            }
            cli_json_obj_end(&j);
            cli_json_key(&j, "deleted");
            cli_json_arr(&j);
            for (int i = 0; i < ndel; i++)
                cli_json_str(&j, del[i]);
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            cli_json_done(&j);
        } else {
            if (parts > 0)
                printf("Topic %s now has %lld partitions.\n", topic, (long long)parts);
            if (nset || ndel)
                printf("Updated configs of topic %s.\n", topic);
        }
    }
    cli_client_destroy(rk);
    return rc;
}

/* ---- command table -------------------------------------------------------------- */

const cli_cmd_t cli_cmd_topic_create = {
    "topic create", "Create a topic.", NULL,
    "  runnel topic create --topic orders --partitions 6\n"
    "  runnel topic create --topic audit --config retention.ms=86400000 --config "
    "cleanup.policy=compact\n"
    "  runnel topic create --topic orders --if-not-exists --format json",
    create_opts, topic_create};

const cli_cmd_t cli_cmd_topic_list = {
    "topic list", "List topics with their partition count and replication factor.", NULL,
    "  runnel topic list\n"
    "  runnel topic list --format json | jq -r '.topics[].topic'",
    list_opts, topic_list};

const cli_cmd_t cli_cmd_topic_describe = {
    "topic describe",
    "Show a topic's partitions (leader, replicas, ISR) and its configs with their source.",
    "Without --topic every topic is described. Config sources are Kafka's: "
    "DYNAMIC_TOPIC_CONFIG\n(an override on the topic), DYNAMIC_BROKER_CONFIG, "
    "STATIC_BROKER_CONFIG, DEFAULT_CONFIG ...",
    "  runnel topic describe --topic orders\n"
    "  runnel topic describe --topic orders --overrides-only\n"
    "  runnel topic describe --topic orders --format json",
    describe_opts, topic_describe};

const cli_cmd_t cli_cmd_topic_delete = {
    "topic delete", "Delete topics.", NULL,
    "  runnel topic delete --topic orders\n"
    "  runnel topic delete --topic a,b --if-exists",
    delete_opts, topic_delete};

const cli_cmd_t cli_cmd_topic_alter = {
    "topic alter", "Add partitions to a topic or change its config overrides.",
    "Config changes are incremental: the other overrides of the topic are kept (see "
    "'runnel config alter').",
    "  runnel topic alter --topic orders --partitions 12\n"
    "  runnel topic alter --topic orders --config retention.ms=3600000 --delete-config "
    "segment.bytes",
    alter_opts, topic_alter};
