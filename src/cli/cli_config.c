/*
 * cli_config.c - `runnel config describe|alter` and `runnel cluster info`, plus the
 * DescribeConfigs / incremental-alter helpers that `topic describe|alter` share.
 *
 * librdkafka 2.0.2 has no IncrementalAlterConfigs, and AlterConfigs replaces a resource's
 * whole set of dynamic overrides. So an incremental change is done as read-merge-write:
 * DescribeConfigs, keep the entries whose source is the resource's own dynamic layer
 * (DYNAMIC_TOPIC_CONFIG for a topic, DYNAMIC_BROKER_CONFIG for a broker id), apply the
 * --add-config and
 * --delete-config changes, and send the full set back. Two tools changing the same
 * resource at the same moment can lose one change; a sensitive override (whose value
 * DescribeConfigs hides) cannot be carried over, so it must be set again explicitly.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

void cli_cfgents_free(cli_cfgent_t *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].value);
    }
    free(e);
}

static const char *restype_word(rd_kafka_ResourceType_t type)
{
    return type == RD_KAFKA_RESOURCE_TOPIC ? "topic" : "broker";
}

int cli_describe_configs(cli_ctx_t *ctx, rd_kafka_t *rk, rd_kafka_ResourceType_t type,
                         const char *name, cli_cfgent_t **out)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(type, name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(res);
    int n = -1;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
                                          "describe configs");
    if (ev) {
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &nres);
        if (nres < 1) {
            cli_fail("describe configs: empty answer");
        } else if (rd_kafka_ConfigResource_error(rs[0])) {
            rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(rs[0]);
            const char *msg = rd_kafka_ConfigResource_error_string(rs[0]);
            if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                cli_fail("topic '%s' does not exist", name);
            else
                cli_fail("describe configs of %s '%s': %s", restype_word(type), name,
                         msg && *msg ? msg : rd_kafka_err2str(err));
        } else {
            size_t cnt = 0;
            const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rs[0], &cnt);
            cli_cfgent_t *v = calloc(cnt + 1, sizeof(*v));
            if (v == NULL) {
                cli_fail("out of memory");
            } else {
                for (size_t i = 0; i < cnt; i++) {
                    const char *val = rd_kafka_ConfigEntry_value(ce[i]);
                    v[i].name = strdup(rd_kafka_ConfigEntry_name(ce[i]));
                    v[i].value = val ? strdup(val) : NULL;
                    v[i].source = rd_kafka_ConfigEntry_source(ce[i]);
                    v[i].read_only = rd_kafka_ConfigEntry_is_read_only(ce[i]);
                    v[i].sensitive = rd_kafka_ConfigEntry_is_sensitive(ce[i]);
                }
                *out = v;
                n = (int)cnt;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return n;
}

/* The dynamic layer that belongs to this resource. */
static int own_source(rd_kafka_ResourceType_t type, const char *name)
{
    if (type == RD_KAFKA_RESOURCE_TOPIC)
        return RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
    return *name ? RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG
                 : RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG;
}

int cli_alter_configs_incremental(cli_ctx_t *ctx, rd_kafka_t *rk, rd_kafka_ResourceType_t type,
                                  const char *name, char **set, int n_set, char **del,
                                  int n_del)
{
    cli_cfgent_t *ents = NULL;
    int n = cli_describe_configs(ctx, rk, type, name, &ents);
    if (n < 0)
        return CLI_FAIL;
    int src = own_source(type, name);
    int rc = CLI_OK;
    /* a delete must name a config the resource has (Kafka: "Invalid config(s)") */
    for (int d = 0; d < n_del && rc == CLI_OK; d++) {
        bool known = false;
        for (int i = 0; i < n; i++)
            if (strcmp(ents[i].name, del[d]) == 0)
                known = true;
        if (!known)
            rc = cli_fail("invalid config to delete for %s '%s': %s", restype_word(type), name,
                          del[d]);
    }
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(type, name);
    for (int i = 0; i < n && rc == CLI_OK; i++) {
        if (ents[i].source != src)
            continue;
        bool dropped = false;
        for (int d = 0; d < n_del; d++)
            if (strcmp(ents[i].name, del[d]) == 0)
                dropped = true;
        for (int s = 0; s < n_set; s++) {
            size_t kl = strcspn(set[s], "=");
            if (strlen(ents[i].name) == kl && strncmp(ents[i].name, set[s], kl) == 0)
                dropped = true; /* replaced below */
        }
        if (dropped)
            continue;
        if (ents[i].value == NULL) {
            rc = cli_fail("the override %s of %s '%s' is sensitive and cannot be carried over "
                          "by AlterConfigs; set it again with the same command",
                          ents[i].name, restype_word(type), name);
            break;
        }
        rd_kafka_ConfigResource_set_config(res, ents[i].name, ents[i].value);
    }
    for (int s = 0; s < n_set && rc == CLI_OK; s++) {
        char key[256];
        size_t kl = strcspn(set[s], "=");
        snprintf(key, sizeof(key), "%.*s", (int)kl, set[s]);
        rd_kafka_ConfigResource_set_config(res, key, set[s] + kl + 1);
    }
    cli_cfgents_free(ents, n);
    if (rc != CLI_OK) {
        rd_kafka_ConfigResource_destroy(res);
        return rc;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AlterConfigs(rk, &res, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(res);
    rc = CLI_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_ALTERCONFIGS_RESULT,
                                          "alter configs");
    if (ev) {
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_AlterConfigs_result_resources(
            rd_kafka_event_AlterConfigs_result(ev), &nres);
        if (nres < 1) {
            cli_fail("alter configs: empty answer");
        } else if (rd_kafka_ConfigResource_error(rs[0])) {
            const char *msg = rd_kafka_ConfigResource_error_string(rs[0]);
            cli_fail("alter configs of %s '%s': %s", restype_word(type), name,
                     msg && *msg ? msg : rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[0])));
        } else {
            rc = CLI_OK;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

/* ---- config describe / alter ---------------------------------------------------- */

static const cli_opt_t describe_opts[] = {
    {"entity-type", CLI_VALUE, "topics|brokers", "kind of resource"},
    {"entity-name", CLI_VALUE, "NAME", "topic name or broker id"},
    {"topic", CLI_VALUE, "NAME", "shorthand for --entity-type topics --entity-name NAME"},
    {"broker", CLI_VALUE, "ID", "shorthand for --entity-type brokers --entity-name ID"},
    {"all", CLI_FLAG, NULL, "list every config, not only the dynamic overrides"},
    {0},
};

static const cli_opt_t alter_opts[] = {
    {"entity-type", CLI_VALUE, "topics|brokers", "kind of resource"},
    {"entity-name", CLI_VALUE, "NAME", "topic name or broker id"},
    {"topic", CLI_VALUE, "NAME", "shorthand for --entity-type topics --entity-name NAME"},
    {"broker", CLI_VALUE, "ID", "shorthand for --entity-type brokers --entity-name ID"},
    {"add-config", CLI_MULTI, "K=V[,K2=V2]",
     "set configs; a value holding commas is written in brackets: k=[a,b]"},
    {"delete-config", CLI_MULTI, "K[,K2]", "remove config overrides"},
    {0},
};

/* Resolves the resource from the entity flags; CLI_OK or CLI_USAGE. */
static int resolve_entity(cli_ctx_t *ctx, rd_kafka_ResourceType_t *type, const char **name)
{
    const char *et = cli_get(ctx, "entity-type");
    const char *en = cli_get(ctx, "entity-name");
    if (cli_get(ctx, "topic")) {
        et = "topics";
        en = cli_get(ctx, "topic");
    } else if (cli_get(ctx, "broker")) {
        et = "brokers";
        en = cli_get(ctx, "broker");
    }
    if (et == NULL)
        return cli_usage(ctx, "--entity-type (topics or brokers) is required");
    if (strcmp(et, "topics") == 0 || strcmp(et, "topic") == 0) {
        *type = RD_KAFKA_RESOURCE_TOPIC;
        if (en == NULL || *en == '\0')
            return cli_usage(ctx, "--entity-name is required for topics");
    } else if (strcmp(et, "brokers") == 0 || strcmp(et, "broker") == 0) {
        *type = RD_KAFKA_RESOURCE_BROKER;
        /* librdkafka 2.0.2 addresses broker resources by id only (a non-numeric name,
         * such as the "" of the cluster-wide default, crashes it), so no --entity-default */
        int64_t id;
        if (en == NULL || cli_parse_i64(en, &id) != 0 || id < 0)
            return cli_usage(ctx, "brokers need --entity-name ID (a broker id)");
    } else {
        return cli_usage(ctx, "--entity-type must be topics or brokers, not '%s'", et);
    }
    *name = en;
    return CLI_OK;
}

static bool is_dynamic(int source)
{
    return source == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG ||
           source == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG ||
           source == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG;
}

static int config_describe(cli_ctx_t *ctx)
{
    rd_kafka_ResourceType_t type;
    const char *name;
    int rc = resolve_entity(ctx, &type, &name);
    if (rc != CLI_OK)
        return rc;
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL)
        return CLI_USAGE;
    rd_kafka_t *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_FAIL;
    cli_cfgent_t *ents = NULL;
    int n = cli_describe_configs(ctx, rk, type, name, &ents);
    bool all = cli_has(ctx, "all");
    if (n >= 0) {
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_t j;
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "entity_type", type == RD_KAFKA_RESOURCE_TOPIC ? "topics" : "brokers");
            cli_json_kstr(&j, "entity_name", name);
            cli_json_key(&j, "configs");
            cli_json_arr(&j);
            for (int i = 0; i < n; i++) {
                if (!all && !is_dynamic(ents[i].source))
                    continue;
                cli_json_obj(&j);
                cli_json_kstr(&j, "name", ents[i].name);
                cli_json_kstr(&j, "value", ents[i].value);
                cli_json_kstr(&j, "source", rd_kafka_ConfigSource_name(ents[i].source));
                cli_json_kbool(&j, "read_only", ents[i].read_only);
                cli_json_kbool(&j, "sensitive", ents[i].sensitive);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            cli_json_done(&j);
        } else {
            const char *what = type == RD_KAFKA_RESOURCE_TOPIC ? "topic" : *name ? "broker"
                                                                                  : "the broker default";
            printf("%s configs for %s%s%s:\n", all ? "All" : "Dynamic", what, *name ? " " : "",
                   name);
            cli_table_t *t = cli_table_new("NAME\tVALUE\tSOURCE\tREAD-ONLY");
            for (int i = 0; i < n; i++) {
                if (!all && !is_dynamic(ents[i].source))
                    continue;
                cli_table_addf(t, "%s\t%s\t%s\t%s", ents[i].name,
                               ents[i].sensitive ? "(sensitive)"
                                                 : ents[i].value ? ents[i].value : "null",
                               rd_kafka_ConfigSource_name(ents[i].source),
                               ents[i].read_only ? "yes" : "no");
            }
            cli_table_print(t, stdout);
        }
        cli_cfgents_free(ents, n);
    } else {
        rc = CLI_FAIL;
    }
    cli_client_destroy(rk);
    return rc;
}

/* Splits "a=1,b=[x,y],c=2" at top-level commas into malloc'd "a=1", "b=x,y", "c=2". */
static int split_configs(const char *s, char **out, int max, int n)
{
    const char *p = s;
    while (*p && n < max) {
        const char *q = p;
        int depth = 0;
        while (*q && (depth > 0 || *q != ',')) {
            if (*q == '[')
                depth++;
            else if (*q == ']' && depth > 0)
                depth--;
            q++;
        }
        if (q > p) {
            char *item = strndup(p, (size_t)(q - p));
            if (item == NULL)
                return -1;
            char *eq = strchr(item, '=');
            size_t l = strlen(item);
            if (eq && eq[1] == '[' && l > 0 && item[l - 1] == ']') {
                memmove(eq + 1, eq + 2, l - (size_t)(eq - item) - 2);
                item[l - 2] = '\0';
            }
            out[n++] = item;
        }
        p = *q ? q + 1 : q;
    }
    return n;
}

static int config_alter(cli_ctx_t *ctx)
{
    rd_kafka_ResourceType_t type;
    const char *name;
    int rc = resolve_entity(ctx, &type, &name);
    if (rc != CLI_OK)
        return rc;
    char *set[256], *del[256];
    int nset = 0, ndel = 0, pos = 0;
    const char *v;
    while ((v = cli_next(ctx, "add-config", &pos)) != NULL)
        nset = split_configs(v, set, 256, nset);
    pos = 0;
    while ((v = cli_next(ctx, "delete-config", &pos)) != NULL)
        ndel = split_configs(v, del, 256, ndel);
    rc = CLI_OK;
    if (nset < 0 || ndel < 0)
        return cli_fail("out of memory");
    if (nset == 0 && ndel == 0)
        rc = cli_usage(ctx, "give --add-config and/or --delete-config");
    for (int i = 0; i < nset && rc == CLI_OK; i++)
        if (strchr(set[i], '=') == NULL || set[i][0] == '=')
            rc = cli_usage(ctx, "--add-config wants KEY=VALUE, not '%s'", set[i]);
    for (int i = 0; i < ndel && rc == CLI_OK; i++)
        for (int k = 0; k < nset; k++)
            if (strncmp(set[k], del[i], strlen(del[i])) == 0 && set[k][strlen(del[i])] == '=')
                rc = cli_usage(ctx, "config '%s' is both added and deleted", del[i]);
    rd_kafka_t *rk = NULL;
    if (rc == CLI_OK) {
        rd_kafka_conf_t *conf = cli_conf_new(ctx);
        if (conf == NULL)
            rc = CLI_USAGE;
        else if ((rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf)) == NULL)
            rc = CLI_FAIL;
    }
    if (rc == CLI_OK)
        rc = cli_alter_configs_incremental(ctx, rk, type, name, set, nset, del, ndel);
    if (rc == CLI_OK) {
        const char *what = type == RD_KAFKA_RESOURCE_TOPIC ? "topic" : "broker";
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_t j;
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "entity_type", type == RD_KAFKA_RESOURCE_TOPIC ? "topics" : "brokers");
            cli_json_kstr(&j, "entity_name", name);
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
            printf("Completed updating config for %s %s.\n", *name ? what : "the broker default",
                   name);
        }
    }
    for (int i = 0; i < nset; i++)
        free(set[i]);
    for (int i = 0; i < ndel; i++)
        free(del[i]);
    cli_client_destroy(rk);
    return rc;
}

/* ---- cluster info --------------------------------------------------------------- */

static const cli_opt_t cluster_opts[] = {{0}};

static int cmp_broker(const void *a, const void *b)
{
    const rd_kafka_metadata_broker_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cluster_info(cli_ctx_t *ctx)
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
    char *cid = rd_kafka_clusterid(rk, ctx->timeout_ms);
    int32_t ctrl = rd_kafka_controllerid(rk, ctx->timeout_ms);
    rd_kafka_metadata_broker_t *b = calloc((size_t)md->broker_cnt + 1, sizeof(*b));
    if (b == NULL) {
        rd_kafka_metadata_destroy(md);
        cli_client_destroy(rk);
        return cli_fail("out of memory");
    }
    memcpy(b, md->brokers, (size_t)md->broker_cnt * sizeof(*b));
    qsort(b, (size_t)md->broker_cnt, sizeof(*b), cmp_broker);
    int partitions = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        partitions += md->topics[i].partition_cnt;
    if (ctx->format == CLI_FMT_JSON) {
        cli_json_t j;
        cli_json_init(&j, stdout);
        cli_json_obj(&j);
        cli_json_kstr(&j, "cluster_id", cid);
        cli_json_kint(&j, "controller_id", ctrl);
        cli_json_key(&j, "brokers");
        cli_json_arr(&j);
        for (int i = 0; i < md->broker_cnt; i++) {
            cli_json_obj(&j);
            cli_json_kint(&j, "id", b[i].id);
            cli_json_kstr(&j, "host", b[i].host);
            cli_json_kint(&j, "port", b[i].port);
            cli_json_kbool(&j, "controller", b[i].id == ctrl);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
        cli_json_kint(&j, "topics", md->topic_cnt);
        cli_json_kint(&j, "partitions", partitions);
        cli_json_obj_end(&j);
        cli_json_done(&j);
    } else {
        printf("Cluster ID:  %s\n", cid ? cid : "(unknown)");
        if (ctrl >= 0)
            printf("Controller:  %d\n", (int)ctrl);
        else
            printf("Controller:  (unknown)\n");
        printf("Topics:      %d (%d partitions)\n\n", md->topic_cnt, partitions);
        cli_table_t *t = cli_table_new("BROKER\tHOST\tPORT\tROLE");
        for (int i = 0; i < md->broker_cnt; i++)
            cli_table_addf(t, "%d\t%s\t%d\t%s", (int)b[i].id, b[i].host, b[i].port,
                           b[i].id == ctrl ? "controller" : "");
        cli_table_print(t, stdout);
    }
    free(b);
    if (cid)
        rd_kafka_mem_free(rk, cid);
    rd_kafka_metadata_destroy(md);
    cli_client_destroy(rk);
    return CLI_OK;
}

const cli_cmd_t cli_cmd_config_describe = {
    "config describe", "Show the configs of a topic or broker, with their source.",
    "Without --all only dynamic overrides are listed (as kafka-configs.sh does).",
    "  runnel config describe --entity-type topics --entity-name orders\n"
    "  runnel config describe --entity-type brokers --entity-name 0 --all\n"
    "  runnel config describe --topic orders --all --format json",
    describe_opts, config_describe};

const cli_cmd_t cli_cmd_config_alter = {
    "config alter", "Change configs of a topic or broker incrementally.",
    "librdkafka 2.0.2 offers only the non-incremental AlterConfigs, so the tool reads the\n"
    "resource's current dynamic overrides, applies --add-config / --delete-config, and writes\n"
    "the whole set back. Other overrides are kept. Not atomic against another tool changing\n"
    "the same resource at the same time; sensitive overrides must be given again.",
    "  runnel config alter --entity-type topics --entity-name orders --add-config "
    "retention.ms=60000,segment.bytes=1048576\n"
    "  runnel config alter --entity-type topics --entity-name orders --delete-config retention.ms\n"
    "  runnel config alter --entity-type brokers --entity-name 0 --add-config "
    "log.retention.ms=3600000",
    alter_opts, config_alter};

const cli_cmd_t cli_cmd_cluster_info = {
    "cluster info", "Show the cluster id, the brokers and the controller.", NULL,
    "  runnel cluster info\n"
    "  runnel cluster info --format json",
    cluster_opts, cluster_info};
