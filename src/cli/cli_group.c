/*
 * cli_group.c - `runnel group list|describe|delete|reset-offsets`, the
 * kafka-consumer-groups.sh subset, on librdkafka's group admin API (ListConsumerGroups,
 * DescribeConsumerGroups, DeleteGroups, ListConsumerGroupOffsets,
 * AlterConsumerGroupOffsets) plus watermark and timestamp lookups for lag and resets.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt_t list_opts[] = {{0}};

static const cli_opt_t describe_opts[] = {
    {"group", CLI_VALUE, "ID", "group to describe (required)"},
    {0},
};

static const cli_opt_t delete_opts[] = {
    {"group", CLI_MULTI, "ID", "group to delete; several may be given, or ID1,ID2"},
    {0},
};

static const cli_opt_t reset_opts[] = {
    {"group", CLI_VALUE, "ID", "group whose offsets to reset (required)"},
    {"topic", CLI_MULTI, "NAME[:P,P...]", "topic, optionally with partitions"},
    {"all-topics", CLI_FLAG, NULL, "every topic the group has offsets for"},
    {"to-earliest", CLI_FLAG, NULL, "reset to the log start offset"},
    {"to-latest", CLI_FLAG, NULL, "reset to the log end offset"},
    {"to-offset", CLI_VALUE, "N", "reset to offset N (clamped to the log's range)"},
    {"to-datetime", CLI_VALUE, "DATETIME",
     "reset to the first offset at or after YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM] (or ms)"},
    {"shift-by", CLI_VALUE, "N", "move the committed offset by N (negative goes back)"},
    {"to-current", CLI_FLAG, NULL, "keep the committed offset"},
    {"dry-run", CLI_FLAG, NULL, "only show the new offsets (the default)"},
    {"execute", CLI_FLAG, NULL, "commit the new offsets"},
    {0},
};

static int admin_client(cli_ctx_t *ctx, rd_kafka_t **rk)
{
    rd_kafka_conf_t *conf = cli_conf_new(ctx);
    if (conf == NULL)
        return CLI_USAGE;
    *rk = cli_client_new(ctx, RD_KAFKA_PRODUCER, conf);
    return *rk ? CLI_OK : CLI_FAIL;
}

/* librdkafka 2.0.2 hangs or aborts in rd_kafka_destroy after DescribeConsumerGroups or
 * DeleteGroups failed because the broker lacks the group APIs, while a failed
 * ListConsumerGroups leaves it sound. So every group command first lists the groups and
 * stops there, cleanly, on a broker without group support. CLI_OK or CLI_FAIL. */
static int check_group_support(cli_ctx_t *ctx, rd_kafka_t *rk)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_ListConsumerGroups(rk, o, q);
    rd_kafka_AdminOptions_destroy(o);
    int rc = CLI_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
                                          "list groups");
    if (ev) {
        size_t nerr = 0;
        const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(
            rd_kafka_event_ListConsumerGroups_result(ev), &nerr);
        if (nerr > 0 && rd_kafka_error_code(errs[0]) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
            cli_fail("the broker at %s does not support consumer groups", ctx->bootstrap);
        else
            rc = CLI_OK; /* other list errors do not stop describe/delete/reset */
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

/* An admin client on a broker that has consumer groups; CLI_OK or an exit code. */
static int group_client(cli_ctx_t *ctx, rd_kafka_t **rk)
{
    int rc = admin_client(ctx, rk);
    if (rc == CLI_OK && check_group_support(ctx, *rk) != CLI_OK) {
        cli_client_destroy(*rk);
        *rk = NULL;
        rc = CLI_FAIL;
    }
    return rc;
}

/* ---- list ----------------------------------------------------------------------- */

static int group_list(cli_ctx_t *ctx)
{
    rd_kafka_t *rk;
    int rc = admin_client(ctx, &rk);
    if (rc != CLI_OK)
        return rc;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_ListConsumerGroups(rk, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rc = CLI_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
                                          "list groups");
    if (ev) {
        const rd_kafka_ListConsumerGroups_result_t *res =
            rd_kafka_event_ListConsumerGroups_result(ev);
        size_t nerr = 0, n = 0;
        const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &nerr);
        const rd_kafka_ConsumerGroupListing_t **gl =
            rd_kafka_ListConsumerGroups_result_valid(res, &n);
        if (nerr > 0 && rd_kafka_error_code(errs[0]) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
            cli_fail("the broker at %s does not support consumer groups", ctx->bootstrap);
        } else if (nerr > 0) {
            cli_fail("list groups: %s", rd_kafka_error_string(errs[0]));
        } else {
            rc = CLI_OK;
            cli_json_t j;
            cli_table_t *t = NULL;
            if (ctx->format == CLI_FMT_JSON) {
                cli_json_init(&j, stdout);
                cli_json_obj(&j);
                cli_json_key(&j, "groups");
                cli_json_arr(&j);
            } else {
                t = cli_table_new("GROUP\tSTATE\tTYPE");
            }
            for (size_t i = 0; i < n; i++) {
                const char *state =
                    rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(gl[i]));
                bool simple = rd_kafka_ConsumerGroupListing_is_simple_consumer_group(gl[i]);
                if (t) {
                    cli_table_addf(t, "%s\t%s\t%s", rd_kafka_ConsumerGroupListing_group_id(gl[i]),
                                   state, simple ? "simple" : "consumer");
                } else {
                    cli_json_obj(&j);
                    cli_json_kstr(&j, "group", rd_kafka_ConsumerGroupListing_group_id(gl[i]));
                    cli_json_kstr(&j, "state", state);
                    cli_json_kbool(&j, "simple", simple);
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
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    cli_client_destroy(rk);
    return rc;
}

/* ---- shared lookups ------------------------------------------------------------- */

/* Describes one group; the event owns *desc. NULL after an error line (including a group
 * that does not exist: Kafka reports those as state Dead). */
static rd_kafka_event_t *describe_group(cli_ctx_t *ctx, rd_kafka_t *rk, const char *group,
                                        const rd_kafka_ConsumerGroupDescription_t **desc)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
                                          "describe group");
    rd_kafka_queue_destroy(q);
    if (ev == NULL)
        return NULL;
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t **d = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    if (n < 1) {
        cli_fail("describe group: empty answer");
    } else if (rd_kafka_ConsumerGroupDescription_error(d[0])) {
        const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(d[0]);
        if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
            cli_fail("group '%s' does not exist", group);
        else
            cli_fail("describe group '%s': %s", group, rd_kafka_error_string(e));
    } else {
        *desc = d[0];
        return ev;
    }
    rd_kafka_event_destroy(ev);
    return NULL;
}

/* The group's committed offsets (all partitions); a copy the caller destroys, or NULL
 * after an error line. */
static rd_kafka_topic_partition_list_t *committed_offsets(cli_ctx_t *ctx, rd_kafka_t *rk,
                                                          const char *group)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_topic_partition_list_t *out = NULL;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
                                          "list group offsets");
    if (ev) {
        size_t n = 0;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        if (n < 1)
            cli_fail("list group offsets: empty answer");
        else if (rd_kafka_group_result_error(gr[0]))
            cli_fail("list offsets of group '%s': %s", group,
                     rd_kafka_error_string(rd_kafka_group_result_error(gr[0])));
        else
            out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return out;
}

static bool group_active(rd_kafka_consumer_group_state_t s)
{
    return s == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE ||
           s == RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE ||
           s == RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE;
}

static int cmp_tp(const void *a, const void *b)
{
    const rd_kafka_topic_partition_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* ---- describe ------------------------------------------------------------------- */

/* The member a partition is assigned to, or NULL. */
static const rd_kafka_MemberDescription_t *
owner_of(const rd_kafka_ConsumerGroupDescription_t *d, const char *topic, int32_t part)
{
    size_t n = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_topic_partition_list_t *l =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        for (int k = 0; l && k < l->cnt; k++)
            if (l->elems[k].partition == part && strcmp(l->elems[k].topic, topic) == 0)
                return m;
    }
    return NULL;
}

static int group_describe(cli_ctx_t *ctx)
{
    const char *group = cli_get(ctx, "group");
    if (group == NULL || *group == '\0')
        return cli_usage(ctx, "--group is required");
    rd_kafka_t *rk;
    int rc = group_client(ctx, &rk);
    if (rc != CLI_OK)
        return rc;
    const rd_kafka_ConsumerGroupDescription_t *d = NULL;
    rd_kafka_event_t *dev = describe_group(ctx, rk, group, &d);
    rd_kafka_topic_partition_list_t *offs = NULL;
    if (dev == NULL) {
        rc = CLI_FAIL;
    } else if (rd_kafka_ConsumerGroupDescription_state(d) == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) {
        rc = cli_fail("group '%s' does not exist", group);
    } else if ((offs = committed_offsets(ctx, rk, group)) == NULL) {
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK) {
        /* rows: every committed partition plus assigned partitions without an offset */
        size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
        for (size_t i = 0; i < nm; i++) {
            const rd_kafka_topic_partition_list_t *l = rd_kafka_MemberAssignment_partitions(
                rd_kafka_MemberDescription_assignment(rd_kafka_ConsumerGroupDescription_member(d, i)));
            for (int k = 0; l && k < l->cnt; k++)
                if (!rd_kafka_topic_partition_list_find(offs, l->elems[k].topic,
                                                        l->elems[k].partition))
                    rd_kafka_topic_partition_list_add(offs, l->elems[k].topic,
                                                      l->elems[k].partition)
                        ->offset = RD_KAFKA_OFFSET_INVALID;
        }
        qsort(offs->elems, (size_t)offs->cnt, sizeof(*offs->elems), cmp_tp);
        const rd_kafka_Node_t *coord = rd_kafka_ConsumerGroupDescription_coordinator(d);
        const char *state =
            rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d));
        const char *assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(d);
        cli_json_t j;
        cli_table_t *t = NULL;
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "group", group);
            cli_json_kstr(&j, "state", state);
            cli_json_kstr(&j, "assignor", assignor);
            cli_json_key(&j, "coordinator");
            if (coord)
                cli_json_int(&j, rd_kafka_Node_id(coord));
            else
                cli_json_null(&j);
            cli_json_key(&j, "members");
            cli_json_arr(&j);
            for (size_t i = 0; i < nm; i++) {
                const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
                cli_json_obj(&j);
                cli_json_kstr(&j, "consumer_id", rd_kafka_MemberDescription_consumer_id(m));
                cli_json_kstr(&j, "client_id", rd_kafka_MemberDescription_client_id(m));
                cli_json_kstr(&j, "host", rd_kafka_MemberDescription_host(m));
                cli_json_key(&j, "partitions");
                cli_json_arr(&j);
                const rd_kafka_topic_partition_list_t *l =
                    rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
                for (int k = 0; l && k < l->cnt; k++) {
                    cli_json_obj(&j);
                    cli_json_kstr(&j, "topic", l->elems[k].topic);
                    cli_json_kint(&j, "partition", l->elems[k].partition);
                    cli_json_obj_end(&j);
                }
                cli_json_arr_end(&j);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_key(&j, "offsets");
            cli_json_arr(&j);
        } else {
            printf("Group: %s  State: %s  Assignor: %s  Coordinator: %d  Members: %zu\n\n", group,
                   state, assignor && *assignor ? assignor : "-", coord ? rd_kafka_Node_id(coord) : -1,
                   nm);
            t = cli_table_new("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID"
                              "\tHOST\tCLIENT-ID");
        }
        for (int i = 0; i < offs->cnt; i++) {
            rd_kafka_topic_partition_t *p = &offs->elems[i];
            int64_t lo = -1, hi = -1;
            rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition,
                                                                       &lo, &hi, ctx->timeout_ms);
            if (err)
                hi = -1;
            bool has_off = p->offset >= 0 && !p->err;
            int64_t lag = has_off && hi >= 0 ? (hi > p->offset ? hi - p->offset : 0) : -1;
            const rd_kafka_MemberDescription_t *m = owner_of(d, p->topic, p->partition);
            if (t) {
                char cur[32] = "-", end[32] = "-", lg[32] = "-";
                if (has_off)
                    snprintf(cur, sizeof(cur), "%lld", (long long)p->offset);
                if (hi >= 0)
                    snprintf(end, sizeof(end), "%lld", (long long)hi);
                if (lag >= 0)
                    snprintf(lg, sizeof(lg), "%lld", (long long)lag);
                cli_table_addf(t, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s", p->topic, (int)p->partition,
                               cur, end, lg, m ? rd_kafka_MemberDescription_consumer_id(m) : "-",
                               m ? rd_kafka_MemberDescription_host(m) : "-",
                               m ? rd_kafka_MemberDescription_client_id(m) : "-");
            } else {
                cli_json_obj(&j);
                cli_json_kstr(&j, "topic", p->topic);
                cli_json_kint(&j, "partition", p->partition);
                cli_json_key(&j, "current_offset");
                if (has_off)
                    cli_json_int(&j, p->offset);
                else
                    cli_json_null(&j);
                cli_json_key(&j, "log_end_offset");
                if (hi >= 0)
                    cli_json_int(&j, hi);
                else
                    cli_json_null(&j);
                cli_json_key(&j, "lag");
                if (lag >= 0)
                    cli_json_int(&j, lag);
                else
                    cli_json_null(&j);
                cli_json_kstr(&j, "consumer_id", m ? rd_kafka_MemberDescription_consumer_id(m) : NULL);
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
    }
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    if (dev)
        rd_kafka_event_destroy(dev);
    cli_client_destroy(rk);
    return rc;
}

/* ---- delete --------------------------------------------------------------------- */

static int group_delete(cli_ctx_t *ctx)
{
    rd_kafka_DeleteGroup_t *dg[128];
    int n = 0, pos = 0;
    const char *v;
    while ((v = cli_next(ctx, "group", &pos)) != NULL) {
        char *copy = strdup(v), *save = NULL;
        if (copy == NULL)
            return cli_fail("out of memory");
        for (char *t = strtok_r(copy, ",", &save); t && n < 128; t = strtok_r(NULL, ",", &save))
            dg[n++] = rd_kafka_DeleteGroup_new(t);
        free(copy);
    }
    if (n == 0)
        return cli_usage(ctx, "--group is required");
    rd_kafka_t *rk;
    int rc = group_client(ctx, &rk);
    if (rc != CLI_OK) {
        rd_kafka_DeleteGroup_destroy_array(dg, (size_t)n);
        return rc;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_DeleteGroups(rk, dg, (size_t)n, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteGroup_destroy_array(dg, (size_t)n);
    rc = CLI_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(ctx, q, RD_KAFKA_EVENT_DELETEGROUPS_RESULT,
                                          "delete groups");
    if (ev) {
        size_t cnt = 0;
        const rd_kafka_group_result_t **gr =
            rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &cnt);
        rc = CLI_OK;
        cli_json_t j;
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_key(&j, "deleted");
            cli_json_arr(&j);
        }
        for (size_t i = 0; i < cnt; i++) {
            const char *name = rd_kafka_group_result_name(gr[i]);
            const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
            if (e) {
                if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
                    cli_fail("group '%s' does not exist", name);
                else if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP)
                    cli_fail("group '%s' has active members and cannot be deleted", name);
                else
                    cli_fail("delete group '%s': %s", name, rd_kafka_error_string(e));
                rc = CLI_FAIL;
                continue;
            }
            if (ctx->format == CLI_FMT_JSON)
                cli_json_str(&j, name);
            else
                printf("Deleted group %s.\n", name);
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
    return rc;
}

/* ---- reset-offsets -------------------------------------------------------------- */

enum { RS_EARLIEST, RS_LATEST, RS_OFFSET, RS_DATETIME, RS_SHIFT, RS_CURRENT };

/* Fills `target` with the partitions to reset from --topic / --all-topics. */
static int reset_targets(cli_ctx_t *ctx, rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *committed,
                         rd_kafka_topic_partition_list_t *target)
{
    if (cli_has(ctx, "all-topics")) {
        for (int i = 0; i < committed->cnt; i++)
            rd_kafka_topic_partition_list_add(target, committed->elems[i].topic,
                                              committed->elems[i].partition);
        return CLI_OK;
    }
    const rd_kafka_metadata_t *md = cli_metadata_all(ctx, rk);
    if (md == NULL)
        return CLI_FAIL;
    int rc = CLI_OK, pos = 0;
    const char *v;
    while (rc == CLI_OK && (v = cli_next(ctx, "topic", &pos)) != NULL) {
        char *copy = strdup(v);
        if (copy == NULL) {
            rc = cli_fail("out of memory");
            break;
        }
        char *colon = strchr(copy, ':');
        if (colon)
            *colon = '\0';
        const rd_kafka_metadata_topic_t *mt = cli_md_topic(md, copy);
        if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            rc = cli_fail("topic '%s' does not exist", copy);
        } else if (colon == NULL) {
            for (int p = 0; p < mt->partition_cnt; p++)
                rd_kafka_topic_partition_list_add(target, copy, p);
        } else {
            char *save = NULL;
            for (char *t = strtok_r(colon + 1, ",", &save); t && rc == CLI_OK;
                 t = strtok_r(NULL, ",", &save)) {
                int64_t p;
                if (cli_parse_i64(t, &p) != 0 || p < 0)
                    rc = cli_usage(ctx, "--topic wants NAME or NAME:P,P..., not '%s'", v);
                else if (p >= mt->partition_cnt)
                    rc = cli_fail("topic '%s' has no partition %lld", copy, (long long)p);
                else
                    rd_kafka_topic_partition_list_add(target, copy, (int32_t)p);
            }
        }
        free(copy);
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int group_reset(cli_ctx_t *ctx)
{
    const char *group = cli_get(ctx, "group");
    if (group == NULL || *group == '\0')
        return cli_usage(ctx, "--group is required");
    if (!cli_has(ctx, "topic") && !cli_has(ctx, "all-topics"))
        return cli_usage(ctx, "give --topic or --all-topics");
    if (cli_has(ctx, "topic") && cli_has(ctx, "all-topics"))
        return cli_usage(ctx, "give --topic or --all-topics, not both");
    int scen = -1, nscen = 0;
    int64_t value = 0;
    if (cli_has(ctx, "to-earliest"))
        scen = RS_EARLIEST, nscen++;
    if (cli_has(ctx, "to-latest"))
        scen = RS_LATEST, nscen++;
    if (cli_has(ctx, "to-current"))
        scen = RS_CURRENT, nscen++;
    if (cli_has(ctx, "to-offset")) {
        scen = RS_OFFSET, nscen++;
        if (cli_parse_i64(cli_get(ctx, "to-offset"), &value) != 0 || value < 0)
            return cli_usage(ctx, "--to-offset wants a non-negative offset");
    }
    if (cli_has(ctx, "shift-by")) {
        scen = RS_SHIFT, nscen++;
        if (cli_parse_i64(cli_get(ctx, "shift-by"), &value) != 0)
            return cli_usage(ctx, "--shift-by wants an integer");
    }
    if (cli_has(ctx, "to-datetime")) {
        scen = RS_DATETIME, nscen++;
        if (cli_parse_datetime(cli_get(ctx, "to-datetime"), &value) != 0)
            return cli_usage(ctx, "--to-datetime wants YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]");
    }
    if (nscen != 1)
        return cli_usage(ctx, "give exactly one of --to-earliest, --to-latest, --to-offset, "
                              "--to-datetime, --shift-by, --to-current");
    if (cli_has(ctx, "dry-run") && cli_has(ctx, "execute"))
        return cli_usage(ctx, "give --dry-run or --execute, not both");
    bool execute = cli_has(ctx, "execute");

    rd_kafka_t *rk;
    int rc = group_client(ctx, &rk);
    if (rc != CLI_OK)
        return rc;
    const rd_kafka_ConsumerGroupDescription_t *d = NULL;
    rd_kafka_event_t *dev = describe_group(ctx, rk, group, &d);
    rd_kafka_topic_partition_list_t *committed = NULL, *target = NULL;
    if (dev == NULL) {
        rc = CLI_FAIL;
    } else if (group_active(rd_kafka_ConsumerGroupDescription_state(d))) {
        rc = cli_fail("offsets can only be reset while group '%s' is inactive; it is %s", group,
                      rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d)));
    } else if ((committed = committed_offsets(ctx, rk, group)) == NULL) {
        rc = CLI_FAIL;
    } else {
        target = rd_kafka_topic_partition_list_new(16);
        rc = reset_targets(ctx, rk, committed, target);
    }
    if (dev)
        rd_kafka_event_destroy(dev);
    /* previous offsets, for --shift-by and the report */
    int64_t *prev = NULL;
    if (rc == CLI_OK) {
        qsort(target->elems, (size_t)target->cnt, sizeof(*target->elems), cmp_tp);
        prev = calloc((size_t)target->cnt + 1, sizeof(*prev));
        if (prev == NULL)
            rc = cli_fail("out of memory");
    }
    if (rc == CLI_OK && scen == RS_DATETIME) {
        for (int i = 0; i < target->cnt; i++)
            target->elems[i].offset = value;
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, target, ctx->timeout_ms);
        if (err)
            rc = cli_fail("cannot look up offsets by time: %s", rd_kafka_err2str(err));
    }
    for (int i = 0; rc == CLI_OK && i < target->cnt; i++) {
        rd_kafka_topic_partition_t *p = &target->elems[i];
        rd_kafka_topic_partition_t *c =
            rd_kafka_topic_partition_list_find(committed, p->topic, p->partition);
        prev[i] = c && c->offset >= 0 && !c->err ? c->offset : -1;
        int64_t lo, hi;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, ctx->timeout_ms);
        if (err) {
            rc = cli_fail("cannot read offsets of %s-%d: %s", p->topic, (int)p->partition,
                          rd_kafka_err2str(err));
            break;
        }
        int64_t n;
        switch (scen) {
        case RS_EARLIEST: n = lo; break;
        case RS_LATEST: n = hi; break;
        case RS_OFFSET: n = value; break;
        case RS_SHIFT: n = (prev[i] >= 0 ? prev[i] : lo) + value; break;
        case RS_CURRENT: n = prev[i] >= 0 ? prev[i] : hi; break;
        default: n = p->err || p->offset < 0 ? hi : p->offset; break;
        }
        /* as kafka-consumer-groups.sh: stay inside the log */
        if (n < lo)
            n = lo;
        if (n > hi)
            n = hi;
        p->offset = n;
        p->err = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (rc == CLI_OK && execute && target->cnt > 0) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *o =
            cli_admin_options(ctx, rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
        rd_kafka_AlterConsumerGroupOffsets_t *req =
            rd_kafka_AlterConsumerGroupOffsets_new(group, target);
        rd_kafka_AlterConsumerGroupOffsets(rk, &req, 1, o, q);
        rd_kafka_AlterConsumerGroupOffsets_destroy(req);
        rd_kafka_AdminOptions_destroy(o);
        rc = CLI_FAIL;
        rd_kafka_event_t *ev = cli_admin_wait(
            ctx, q, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, "commit group offsets");
        if (ev) {
            size_t n = 0;
            const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
                rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
            if (n < 1) {
                cli_fail("commit group offsets: empty answer");
            } else if (rd_kafka_group_result_error(gr[0])) {
                cli_fail("commit offsets of group '%s': %s", group,
                         rd_kafka_error_string(rd_kafka_group_result_error(gr[0])));
            } else {
                rc = CLI_OK;
                const rd_kafka_topic_partition_list_t *l = rd_kafka_group_result_partitions(gr[0]);
                for (int i = 0; l && i < l->cnt; i++)
                    if (l->elems[i].err)
                        rc = cli_fail("commit offset of %s-%d: %s", l->elems[i].topic,
                                      (int)l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
            }
            rd_kafka_event_destroy(ev);
        }
        rd_kafka_queue_destroy(q);
    }
    if (rc == CLI_OK) {
        if (ctx->format == CLI_FMT_JSON) {
            cli_json_t j;
            cli_json_init(&j, stdout);
            cli_json_obj(&j);
            cli_json_kstr(&j, "group", group);
            cli_json_kbool(&j, "executed", execute);
            cli_json_key(&j, "offsets");
            cli_json_arr(&j);
            for (int i = 0; i < target->cnt; i++) {
                cli_json_obj(&j);
                cli_json_kstr(&j, "topic", target->elems[i].topic);
                cli_json_kint(&j, "partition", target->elems[i].partition);
                cli_json_key(&j, "previous_offset");
                if (prev[i] >= 0)
                    cli_json_int(&j, prev[i]);
                else
                    cli_json_null(&j);
                cli_json_kint(&j, "new_offset", target->elems[i].offset);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            cli_json_done(&j);
        } else {
            cli_table_t *t = cli_table_new("GROUP\tTOPIC\tPARTITION\tPREVIOUS-OFFSET\tNEW-OFFSET");
            for (int i = 0; i < target->cnt; i++) {
                char pv[32] = "-";
                if (prev[i] >= 0)
                    snprintf(pv, sizeof(pv), "%lld", (long long)prev[i]);
                cli_table_addf(t, "%s\t%s\t%d\t%s\t%lld", group, target->elems[i].topic,
                               (int)target->elems[i].partition, pv,
                               (long long)target->elems[i].offset);
            }
            cli_table_print(t, stdout);
            if (!execute)
                printf("(dry run: nothing changed; add --execute to commit these offsets)\n");
        }
    }
    free(prev);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (target)
        rd_kafka_topic_partition_list_destroy(target);
    cli_client_destroy(rk);
    return rc;
}

const cli_cmd_t cli_cmd_group_list = {
    "group list", "List consumer groups and their state.", NULL,
    "  runnel group list\n"
    "  runnel group list --format json",
    list_opts, group_list};

const cli_cmd_t cli_cmd_group_describe = {
    "group describe",
    "Show a group's state, members and, per partition, committed offset, log end and lag.",
    NULL,
    "  runnel group describe --group billing\n"
    "  runnel group describe --group billing --format json",
    describe_opts, group_describe};

const cli_cmd_t cli_cmd_group_delete = {
    "group delete", "Delete consumer groups (they must have no active members).", NULL,
    "  runnel group delete --group billing\n"
    "  runnel group delete --group a,b",
    delete_opts, group_delete};

const cli_cmd_t cli_cmd_group_reset_offsets = {
    "group reset-offsets", "Reset a group's committed offsets (dry run unless --execute).",
    "The group must have no active members. New offsets are clamped to each partition's\n"
    "log start and end, as kafka-consumer-groups.sh does.",
    "  runnel group reset-offsets --group billing --topic orders --to-earliest\n"
    "  runnel group reset-offsets --group billing --topic orders:0,1 --shift-by -10 --execute\n"
    "  runnel group reset-offsets --group billing --all-topics --to-datetime "
    "2024-01-31T00:00:00Z --execute",
    reset_opts, group_reset};
