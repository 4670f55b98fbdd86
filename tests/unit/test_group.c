/* Unit tests for the group coordinator: Java's String.hashCode and the
 * coordinator partition, the __consumer_offsets record format (exact bytes,
 * round trips, every truncation), the offsets table, the join/sync state
 * machine with timers on a real event loop, and persistence: a coordinator
 * over real topics in a temp dir is reloaded from __consumer_offsets. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/logger.h"
#include "group/group_coordinator.h"
#include "group/group_log.h"
#include "group/group_offsets.h"
#include "net/evloop.h"
#include "test.h"

static kstr_t K(const char *s)
{
    return kstr_c(s);
}

static kstr_t KN(const char *s, size_t n)
{
    kstr_t k = {s, (int32_t)n};
    return k;
}

static bool keq(kstr_t k, const char *s)
{
    return kstr_eq(k, s);
}

/* ---------------------------------------------------------------- hash */

static void test_java_hash(void)
{
    CHECK_EQ_INT(group_log_java_hash("", 0), 0);
    CHECK_EQ_INT(group_log_java_hash("g1", 2), 3242);
    CHECK_EQ_INT(group_log_java_hash("hello", 5), 99162322);
    CHECK_EQ_INT(group_log_java_hash("consumer-group", 14), -1738392088);
    CHECK_EQ_INT(group_log_java_hash("polygenelubricants", 18), INT32_MIN);
    CHECK_EQ_INT(group_log_java_hash("caf\xc3\xa9", 5), 3045921);           /* U+00E9 */
    CHECK_EQ_INT(group_log_java_hash("\xe4\xb8\xad\xe6\x96\x87", 6), 646394); /* two CJK */
    CHECK_EQ_INT(group_log_java_hash("\xf0\x9f\x98\x80", 4), 1772899);       /* surrogate pair */
    CHECK_EQ_INT(group_log_java_hash("x\xffy", 3), 2146964);                 /* U+FFFD */
    char a40[41];
    memset(a40, 'a', 40);
    CHECK_EQ_INT(group_log_java_hash(a40, 40), 1042809472);
}

static void test_partition_for(void)
{
    CHECK_EQ_INT(group_log_partition_for("", 0, 50), 0);
    CHECK_EQ_INT(group_log_partition_for("g1", 2, 50), 42);
    CHECK_EQ_INT(group_log_partition_for("g1", 2, 5), 2);
    CHECK_EQ_INT(group_log_partition_for("hello", 5, 50), 22);
    /* Kafka's Utils.abs: a negative hash counts by its absolute value (not hash & 0x7fffffff, 10). */
    CHECK_EQ_INT(group_log_partition_for("consumer-group", 14, 50), 38);
    CHECK_EQ_INT(group_log_partition_for("polygenelubricants", 18, 50), 0); /* INT_MIN -> 0 */
    CHECK_EQ_INT(group_log_partition_for("caf\xc3\xa9", 5, 50), 21);
    CHECK_EQ_INT(group_log_partition_for("\xf0\x9f\x98\x80", 4, 50), 49);
    CHECK_EQ_INT(group_log_partition_for("g1", 2, 0), 0);
}

/* ---------------------------------------------------------------- record format */

static void test_offset_key_bytes(void)
{
    buf_t b;
    buf_init(&b);
    group_log_put_offset_key(&b, K("grp"), K("tp"), 7);
    static const uint8_t want[] = {0, 1, 0, 3, 'g', 'r', 'p', 0, 2, 't', 'p', 0, 0, 0, 7};
    CHECK_EQ_INT(b.len, sizeof(want));
    CHECK_MEM(b.data, want, sizeof(want));
    group_log_key_t k;
    CHECK_EQ_INT(group_log_decode_key(b.data, b.len, &k), GROUP_LOG_KEY_OFFSET);
    CHECK_EQ_INT(k.version, 1);
    CHECK(keq(k.group, "grp") && keq(k.topic, "tp"));
    CHECK_EQ_INT(k.partition, 7);
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ_INT(group_log_decode_key(b.data, n, &k), -1);
    /* version 0 keys read the same */
    b.data[1] = 0;
    CHECK_EQ_INT(group_log_decode_key(b.data, b.len, &k), GROUP_LOG_KEY_OFFSET);
    /* unknown versions are skipped, not errors */
    b.data[1] = 9;
    CHECK_EQ_INT(group_log_decode_key(b.data, b.len, &k), GROUP_LOG_KEY_OTHER);
    buf_free(&b);
}

static void test_offset_value_bytes(void)
{
    buf_t b;
    buf_init(&b);
    group_log_offset_value_t v = {.offset = 0x0102030405060708LL, .leader_epoch = 5, .metadata = K("md"),
                                  .commit_ts = 1000, .expire_ts = -1};
    group_log_put_offset_value(&b, &v);
    static const uint8_t v3[] = {0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 5, 0, 2, 'm', 'd',
                                 0, 0, 0, 0, 0, 0, 0x03, 0xe8};
    CHECK_EQ_INT(b.len, sizeof(v3));
    CHECK_MEM(b.data, v3, sizeof(v3));
    group_log_offset_value_t d;
    CHECK_EQ_INT(group_log_decode_offset_value(b.data, b.len, &d), 0);
    CHECK(d.offset == v.offset && d.leader_epoch == 5 && keq(d.metadata, "md") && d.commit_ts == 1000 &&
          d.expire_ts == -1);
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ_INT(group_log_decode_offset_value(b.data, n, &d), -1);
    /* an explicit expiry is only expressible in version 1 */
    b.len = 0;
    v.expire_ts = 2000;
    v.metadata = kstr_null();
    group_log_put_offset_value(&b, &v);
    static const uint8_t v1[] = {0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8,
                                 0, 0, 0, 0, 0, 0, 0x07, 0xd0};
    CHECK_EQ_INT(b.len, sizeof(v1));
    CHECK_MEM(b.data, v1, sizeof(v1));
    CHECK_EQ_INT(group_log_decode_offset_value(b.data, b.len, &d), 0);
    CHECK(d.leader_epoch == -1 && d.expire_ts == 2000 && keq(d.metadata, "") && d.commit_ts == 1000);
    /* versions 0 and 2: offset, metadata, timestamp */
    static const uint8_t v0[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 4};
    CHECK_EQ_INT(group_log_decode_offset_value(v0, sizeof(v0), &d), 0);
    CHECK(d.offset == 9 && keq(d.metadata, "x") && d.commit_ts == 4 && d.expire_ts == -1 &&
          d.leader_epoch == -1);
    uint8_t v2[sizeof(v0)];
    memcpy(v2, v0, sizeof(v0));
    v2[1] = 2;
    CHECK_EQ_INT(group_log_decode_offset_value(v2, sizeof(v2), &d), 0);
    CHECK(d.offset == 9 && d.commit_ts == 4);
    v2[1] = 4;
    CHECK_EQ_INT(group_log_decode_offset_value(v2, sizeof(v2), &d), -1);
    buf_free(&b);
}

static void test_group_records(void)
{
    buf_t b;
    buf_init(&b);
    group_log_put_group_key(&b, K("gg"));
    static const uint8_t key[] = {0, 2, 0, 2, 'g', 'g'};
    CHECK_EQ_INT(b.len, sizeof(key));
    CHECK_MEM(b.data, key, sizeof(key));
    group_log_key_t k;
    CHECK_EQ_INT(group_log_decode_key(b.data, b.len, &k), GROUP_LOG_KEY_GROUP);
    CHECK(keq(k.group, "gg"));
    b.len = 0;
    group_log_member_t m = {.member_id = K("m"), .instance_id = kstr_null(), .client_id = K("c"),
                            .client_host = K("/h"), .rebalance_timeout_ms = 300, .session_timeout_ms = 10,
                            .subscription = {(const uint8_t *)"S", 1}, .assignment = {(const uint8_t *)"AB", 2}};
    group_log_put_group_value(&b, K("consumer"), 3, K("range"), K("m"), 0x10, &m, 1);
    static const uint8_t val[] = {
        0, 3, 0, 8, 'c', 'o', 'n', 's', 'u', 'm', 'e', 'r', 0, 0, 0, 3, 0, 5, 'r', 'a', 'n', 'g', 'e',
        0, 1, 'm', 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1,
        0, 1, 'm', 0xff, 0xff, 0, 1, 'c', 0, 2, '/', 'h', 0, 0, 1, 0x2c, 0, 0, 0, 10,
        0, 0, 0, 1, 'S', 0, 0, 0, 2, 'A', 'B'};
    CHECK_EQ_INT(b.len, sizeof(val));
    CHECK_MEM(b.data, val, sizeof(val));
    group_log_group_value_t v;
    CHECK_EQ_INT(group_log_decode_group_value(b.data, b.len, &v), 0);
    CHECK(v.version == 3 && keq(v.protocol_type, "consumer") && v.generation == 3 && keq(v.protocol, "range") &&
          keq(v.leader, "m") && v.state_ts == 0x10 && v.n_members == 1);
    group_log_member_t d;
    CHECK_EQ_INT(group_log_member_next(&v, &d), 0);
    CHECK(keq(d.member_id, "m") && d.instance_id.len == -1 && keq(d.client_id, "c") && keq(d.client_host, "/h"));
    CHECK(d.rebalance_timeout_ms == 300 && d.session_timeout_ms == 10);
    CHECK(d.subscription.len == 1 && d.subscription.ptr[0] == 'S' && d.assignment.len == 2 &&
          memcmp(d.assignment.ptr, "AB", 2) == 0);
    /* every truncation fails in the header or in the member */
    for (size_t n = 0; n < b.len; n++) {
        int rc = group_log_decode_group_value(b.data, n, &v);
        if (rc == 0)
            rc = group_log_member_next(&v, &d);
        CHECK_EQ_INT(rc, -1);
    }
    /* an empty group: null protocol and leader, no members */
    b.len = 0;
    group_log_put_group_value(&b, K("consumer"), 4, kstr_null(), kstr_null(), 1, NULL, 0);
    CHECK_EQ_INT(group_log_decode_group_value(b.data, b.len, &v), 0);
    CHECK(v.protocol.len == -1 && v.leader.len == -1 && v.n_members == 0 && v.generation == 4);
    /* a lying member count is refused up front */
    static const uint8_t lie[] = {0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0x7f, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(group_log_decode_group_value(lie, sizeof(lie), &v), -1);
    buf_free(&b);
}

typedef struct topics_seen {
    char names[4][16];
    int n;
} topics_seen_t;

static void seen_cb(void *arg, kstr_t t)
{
    topics_seen_t *s = arg;
    if (s->n < 4)
        snprintf(s->names[s->n++], 16, "%.*s", t.len, t.ptr);
}

static void test_subscription_topics(void)
{
    static const uint8_t sub[] = {0, 1, 0, 0, 0, 2, 0, 1, 'a', 0, 2, 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0};
    topics_seen_t s = {.n = 0};
    CHECK_EQ_INT(group_log_subscription_topics(sub, sizeof(sub), seen_cb, &s), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK(strcmp(s.names[0], "a") == 0 && strcmp(s.names[1], "bc") == 0);
    s.n = 0;
    CHECK_EQ_INT(group_log_subscription_topics(sub, 10, seen_cb, &s), -1);
    CHECK_EQ_INT(s.n, 0);
    CHECK_EQ_INT(group_log_subscription_topics((const uint8_t *)"m1", 2, seen_cb, &s), -1);
}

/* ---------------------------------------------------------------- offsets table */

static void test_offsets_table(void)
{
    group_offsets_t *o = group_offsets_new();
    CHECK(o != NULL);
    CHECK_EQ_INT(group_offsets_put(o, "t", 1, 0, 5, -1, NULL, 0, 10, -1), 0);
    CHECK_EQ_INT(group_offsets_put(o, "t", 1, 0, 6, 2, "meta", 4, 11, 99), 0);
    CHECK_EQ_INT(group_offsets_count(o), 1);
    group_offset_t *e = group_offsets_get(o, "t", 1, 0);
    CHECK(e && e->offset == 6 && e->leader_epoch == 2 && strcmp(e->metadata, "meta") == 0 && e->commit_ts == 11 &&
          e->expire_ts == 99);
    CHECK(group_offsets_get(o, "t", 1, 1) == NULL);
    CHECK(group_offsets_get(o, "tt", 2, 0) == NULL);
    /* many entries: growth keeps everything reachable and sorted output ordered */
    char name[16];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof(name), "topic-%d", i % 37);
        CHECK_EQ_INT(group_offsets_put(o, name, (size_t)n, i, i * 10, -1, "", 0, 0, -1), 0);
    }
    CHECK_EQ_INT(group_offsets_count(o), 1001);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof(name), "topic-%d", i % 37);
        e = group_offsets_get(o, name, (size_t)n, i);
        CHECK(e && e->offset == i * 10);
    }
    group_offset_t **all = malloc(1001 * sizeof(*all));
    CHECK_EQ_INT(group_offsets_sorted(o, all, 1001), 1001);
    for (int i = 1; i < 1001; i++) {
        int c = strcmp(all[i - 1]->topic, all[i]->topic);
        CHECK(c < 0 || (c == 0 && all[i - 1]->partition < all[i]->partition));
    }
    CHECK_EQ_INT(group_offsets_sorted(o, all, 3), 3);
    free(all);
    CHECK(group_offsets_delete(o, "t", 1, 0));
    CHECK(!group_offsets_delete(o, "t", 1, 0));
    CHECK_EQ_INT(group_offsets_count(o), 1000);
    group_offsets_free(o);
}

/* ---------------------------------------------------------------- coordinator */

typedef struct answer {
    group_waiter_t w;
    int calls;
    int16_t error;
    int32_t generation;
    char member[128], leader[128], protocol[32];
    int n_members;
    char assignment[32];
} answer_t;

static void answer_cb(group_waiter_t *w, const group_result_t *r)
{
    answer_t *a = w->arg;
    a->calls++;
    a->error = r->error;
    a->generation = r->generation_id;
    snprintf(a->member, sizeof(a->member), "%.*s", r->member_id.len > 0 ? r->member_id.len : 0,
             r->member_id.ptr ? r->member_id.ptr : "");
    snprintf(a->leader, sizeof(a->leader), "%.*s", r->leader_id.len > 0 ? r->leader_id.len : 0,
             r->leader_id.ptr ? r->leader_id.ptr : "");
    snprintf(a->protocol, sizeof(a->protocol), "%.*s", r->protocol_name.len > 0 ? r->protocol_name.len : 0,
             r->protocol_name.ptr ? r->protocol_name.ptr : "");
    a->n_members = r->n_members;
    snprintf(a->assignment, sizeof(a->assignment), "%.*s", r->assignment.len > 0 ? r->assignment.len : 0,
             r->assignment.ptr ? (const char *)r->assignment.ptr : "");
}

static void answer_init(answer_t *a)
{
    memset(a, 0, sizeof(*a));
    a->w.done = answer_cb;
    a->w.arg = a;
}

static const group_protocol_in_t range_proto = {{"range", 5}, {(const uint8_t *)"meta", 4}};

static void do_join(group_coordinator_t *gc, const char *group, const char *member, int16_t version,
                    int32_t session_ms, answer_t *a)
{
    answer_init(a);
    group_join_params_t p = {.group_id = K(group), .member_id = K(member), .instance_id = kstr_null(),
                             .protocol_type = K("consumer"), .client_id = K("cli"), .client_host = "/127.0.0.1",
                             .session_timeout_ms = session_ms, .rebalance_timeout_ms = 5000,
                             .api_version = version, .n_protocols = 1, .protocols = &range_proto};
    group_join(gc, &p, &a->w);
}

static void do_sync(group_coordinator_t *gc, const char *group, int32_t gen, const char *member,
                    const group_assignment_in_t *as, int n, answer_t *a)
{
    answer_init(a);
    group_sync_params_t p = {.group_id = K(group), .generation_id = gen, .member_id = K(member),
                             .instance_id = kstr_null(), .protocol_type = kstr_null(),
                             .protocol_name = kstr_null(), .n_assignments = n, .assignments = as};
    group_sync(gc, &p, &a->w);
}

static broker_config_t *quick_config(const char *extra)
{
    broker_config_t *cfg = broker_config_new();
    char err[256];
    CHECK_EQ_INT(broker_config_apply_override(cfg, "group.initial.rebalance.delay.ms=0", err, sizeof(err)), 0);
    CHECK_EQ_INT(broker_config_apply_override(cfg, "group.min.session.timeout.ms=10", err, sizeof(err)), 0);
    if (extra)
        CHECK_EQ_INT(broker_config_apply_override(cfg, extra, err, sizeof(err)), 0);
    return cfg;
}

static void stop_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)t;
    evloop_stop(loop);
}

static void run_loop_ms(evloop_t *loop, int64_t ms)
{
    ev_timer_t t;
    evloop_timer_init(&t, stop_cb, NULL);
    evloop_timer_start(loop, &t, ms);
    evloop_run(loop);
    evloop_timer_stop(loop, &t);
}

static void test_join_sync_flow(void)
{
    evloop_t *loop = evloop_create();
    broker_config_t *cfg = quick_config(NULL);
    group_coordinator_t *gc = group_coordinator_create(loop, NULL, cfg);
    answer_t a, b, sa, sb;
    /* v4+: a new dynamic member gets its id first */
    do_join(gc, "g", "", 5, 6000, &a);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(a.error, GROUP_KERR_MEMBER_ID_REQUIRED);
    CHECK(strncmp(a.member, "cli-", 4) == 0 && strlen(a.member) == 4 + 36);
    char ma[128];
    snprintf(ma, sizeof(ma), "%s", a.member);
    do_join(gc, "g", ma, 5, 6000, &a);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(a.error, 0);
    CHECK_EQ_INT(a.generation, 1);
    CHECK(strcmp(a.leader, ma) == 0 && strcmp(a.protocol, "range") == 0 && a.n_members == 1);
    group_assignment_in_t as[2] = {{K(ma), {(const uint8_t *)"A1", 2}}};
    do_sync(gc, "g", 1, ma, as, 1, &sa);
    CHECK(sa.calls == 1 && sa.error == 0 && strcmp(sa.assignment, "A1") == 0);
    CHECK_EQ_INT(group_heartbeat(gc, K("g"), 1, K(ma), kstr_null()), 0);
    CHECK_EQ_INT(group_heartbeat(gc, K("g"), 2, K(ma), kstr_null()), GROUP_KERR_ILLEGAL_GENERATION);
    CHECK_EQ_INT(group_heartbeat(gc, K("g"), 1, K("x"), kstr_null()), GROUP_KERR_UNKNOWN_MEMBER_ID);
    /* a v1 member joins at once and waits for the leader to rejoin */
    do_join(gc, "g", "", 1, 6000, &b);
    CHECK_EQ_INT(b.calls, 0);
    CHECK_EQ_INT(group_heartbeat(gc, K("g"), 1, K(ma), kstr_null()), GROUP_KERR_REBALANCE_IN_PROGRESS);
    group_description_t d;
    group_describe(gc, K("g"), &d, NULL, 0);
    CHECK(keq(d.state, "PreparingRebalance") && d.n_members == 2 && keq(d.protocol_name, ""));
    do_join(gc, "g", ma, 5, 6000, &a);
    CHECK(a.calls == 1 && b.calls == 1 && a.generation == 2 && b.generation == 2);
    CHECK(a.n_members == 2 && b.n_members == 0 && strcmp(b.leader, ma) == 0);
    char mb[128];
    snprintf(mb, sizeof(mb), "%s", b.member);
    /* the follower's sync waits for the leader's */
    do_sync(gc, "g", 2, mb, NULL, 0, &sb);
    CHECK_EQ_INT(sb.calls, 0);
    as[1].member_id = K(mb);
    as[1].assignment.ptr = (const uint8_t *)"B2";
    as[1].assignment.len = 2;
    do_sync(gc, "g", 2, ma, as, 2, &sa);
    CHECK(sa.calls == 1 && sb.calls == 1 && strcmp(sb.assignment, "B2") == 0 && strcmp(sa.assignment, "A1") == 0);
    group_member_view_t mv[2];
    CHECK_EQ_INT(group_describe(gc, K("g"), &d, mv, 2), 2);
    CHECK(keq(d.state, "Stable") && keq(d.protocol_name, "range") && keq(mv[1].member_id, mb) &&
          mv[1].assignment.len == 2 && keq(mv[0].client_host, "/127.0.0.1"));
    /* group commits: stale generations refused */
    group_commit_item_t it = {.topic = K("t"), .partition = 0, .offset = 42, .leader_epoch = -1,
                              .metadata = K("m"), .commit_ts = -1, .expire_ts = -1};
    group_commit_params_t cp = {.group_id = K("g"), .generation_id = 1, .member_id = K(ma),
                                .instance_id = kstr_null()};
    group_commit(gc, &cp, &it, 1);
    CHECK_EQ_INT(it.error, GROUP_KERR_ILLEGAL_GENERATION);
    cp.generation_id = 2;
    it.error = 0;
    group_commit(gc, &cp, &it, 1);
    CHECK_EQ_INT(it.error, 0);
    group_offset_view_t ov;
    CHECK_EQ_INT(group_fetch_offset(gc, K("g"), K("t"), 0, &ov), 1);
    CHECK(ov.offset == 42 && keq(ov.metadata, "m"));
    CHECK_EQ_INT(group_delete(gc, K("g")), GROUP_KERR_NON_EMPTY_GROUP);
    /* both leave: empty, then deletable */
    CHECK_EQ_INT(group_leave(gc, K("g"), K(mb), kstr_null(), K("bye")), 0);
    CHECK_EQ_INT(group_leave(gc, K("g"), K(ma), kstr_null(), K("bye")), 0);
    group_describe(gc, K("g"), &d, NULL, 0);
    CHECK(keq(d.state, "Empty") && d.n_members == 0);
    CHECK_EQ_INT(group_delete(gc, K("g")), 0);
    CHECK_EQ_INT(group_delete(gc, K("g")), GROUP_KERR_GROUP_ID_NOT_FOUND);
    CHECK_EQ_INT(group_coordinator_group_count(gc), 0);
    group_coordinator_destroy(gc);
    broker_config_free(cfg);
    evloop_destroy(loop);
}

static void test_timers_and_cancel(void)
{
    evloop_t *loop = evloop_create();
    broker_config_t *cfg = quick_config(NULL);
    group_coordinator_t *gc = group_coordinator_create(loop, NULL, cfg);
    answer_t a, b, sa;
    do_join(gc, "t", "", 1, 100, &a);
    char ma[128];
    snprintf(ma, sizeof(ma), "%s", a.member);
    CHECK(a.error == 0 && a.generation == 1);
    do_sync(gc, "t", 1, ma, NULL, 0, &sa);
    CHECK(sa.calls == 1 && sa.error == 0);
    /* a second member's join waits; its request goes away (cancel) */
    do_join(gc, "t", "", 1, 100, &b);
    CHECK_EQ_INT(b.calls, 0);
    group_waiter_cancel(gc, &b.w);
    CHECK(b.w.member == NULL);
    /* nobody heartbeats: both sessions end, the group empties, nothing answers b */
    run_loop_ms(loop, 400);
    CHECK_EQ_INT(b.calls, 0);
    group_description_t d;
    group_describe(gc, K("t"), &d, NULL, 0);
    CHECK(keq(d.state, "Empty") && d.n_members == 0);
    /* the session timeout is bounded by the broker's limits */
    do_join(gc, "t", "", 1, 5, &a);
    CHECK_EQ_INT(a.error, GROUP_KERR_INVALID_SESSION_TIMEOUT);
    /* a waiting join is answered when the coordinator goes away */
    do_join(gc, "t", "", 1, 100, &a);
    CHECK(a.calls == 1 && a.error == 0);
    do_join(gc, "t", "", 1, 100, &b);
    CHECK_EQ_INT(b.calls, 0);
    group_coordinator_destroy(gc);
    CHECK(b.calls == 1 && b.error == GROUP_KERR_COORDINATOR_NOT_AVAILABLE);
    broker_config_free(cfg);
    evloop_destroy(loop);
}

/* ---------------------------------------------------------------- persistence */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static char *log_dirs[1]; /* topics_open keeps the array */

static topics_t *open_topics(broker_config_t *cfg, char *dir)
{
    char **dirs = log_dirs;
    dirs[0] = dir;
    topics_options_t opt = {.config = cfg, .log_dirs = dirs, .n_log_dirs = 1};
    char err[256];
    topics_t *t = topics_open(&opt, err, sizeof(err));
    if (t == NULL)
        fprintf(stderr, "topics_open: %s\n", err);
    return t;
}

static void test_persistence_and_reload(void)
{
    char dir[] = "/tmp/runnel-group-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    broker_config_t *cfg = quick_config("offsets.topic.num.partitions=3");
    evloop_t *loop = evloop_create();
    topics_t *topics = open_topics(cfg, dir);
    CHECK(topics != NULL);
    if (topics == NULL)
        return;
    char err[256];
    topic_config_t *tc = topic_config_new();
    CHECK_EQ_INT(topics_create(topics, "data", 2, tc, NULL, err, sizeof(err)), 0);
    group_coordinator_t *gc = group_coordinator_create(loop, topics, cfg);
    CHECK_EQ_INT(group_coordinator_ensure_topic(gc), 0);
    topic_t *co = topics_find(topics, GROUP_LOG_TOPIC, strlen(GROUP_LOG_TOPIC));
    CHECK(co != NULL && co->npartitions == 3 && co->internal && co->settings.compact);
    CHECK_EQ_INT(group_coordinator_partition(gc, K("g1")), 2);
    /* simple commits, one unknown partition, one oversized metadata */
    char big[GROUP_OFFSET_METADATA_MAX_BYTES + 1];
    memset(big, 'x', sizeof(big));
    group_commit_item_t it[4] = {
        {.topic = K("data"), .partition = 0, .offset = 10, .leader_epoch = 3, .metadata = K("zero"),
         .commit_ts = -1, .expire_ts = -1},
        {.topic = K("data"), .partition = 1, .offset = 11, .leader_epoch = -1, .metadata = kstr_null(),
         .commit_ts = -1, .expire_ts = -1},
        {.topic = K("data"), .partition = 2, .offset = 1, .leader_epoch = -1, .commit_ts = -1, .expire_ts = -1},
        {.topic = K("data"), .partition = 0, .offset = 1, .leader_epoch = -1, .metadata = KN(big, sizeof(big)),
         .commit_ts = -1, .expire_ts = -1}};
    group_commit_params_t cp = {.group_id = K("g1"), .generation_id = -1, .member_id = K(""),
                                .instance_id = kstr_null()};
    group_commit(gc, &cp, it, 4);
    CHECK(it[0].error == 0 && it[1].error == 0 && it[2].error == 3 &&
          it[3].error == GROUP_KERR_OFFSET_METADATA_TOO_LARGE);
    /* the offsets landed in partition 2 as one batch of two records */
    partition_t *p2 = topics_partition(co, 2);
    CHECK_EQ_INT(log_end_offset(p2->log), 2);
    CHECK_EQ_INT(log_end_offset(topics_partition(co, 0)->log), 0);
    /* a group with a member, and a deleted group */
    answer_t a, sa;
    do_join(gc, "g1", "", 1, 60000, &a);
    char ma[128];
    snprintf(ma, sizeof(ma), "%s", a.member);
    group_assignment_in_t as = {K(ma), {(const uint8_t *)"ASG", 3}};
    do_sync(gc, "g1", 1, ma, &as, 1, &sa);
    CHECK(sa.error == 0);
    group_commit_item_t gone = {.topic = K("data"), .partition = 0, .offset = 5, .leader_epoch = -1,
                                .commit_ts = -1, .expire_ts = -1};
    cp.group_id = K("gone");
    group_commit(gc, &cp, &gone, 1);
    CHECK_EQ_INT(gone.error, 0);
    CHECK_EQ_INT(group_delete(gc, K("gone")), 0);
    group_coordinator_destroy(gc);
    topics_close(topics, true);

    /* reopen: everything comes back from the log */
    topics = open_topics(cfg, dir);
    CHECK(topics != NULL);
    gc = group_coordinator_create(loop, topics, cfg);
    CHECK_EQ_INT(group_coordinator_load(gc), 0);
    CHECK_EQ_INT(group_coordinator_group_count(gc), 1);
    group_offset_view_t ov[4];
    CHECK_EQ_INT(group_fetch_all_offsets(gc, K("g1"), ov, 4), 2);
    CHECK(keq(ov[0].topic, "data") && ov[0].partition == 0 && ov[0].offset == 10 && ov[0].leader_epoch == 3 &&
          keq(ov[0].metadata, "zero"));
    CHECK(ov[1].partition == 1 && ov[1].offset == 11 && ov[1].leader_epoch == -1 && keq(ov[1].metadata, ""));
    CHECK_EQ_INT(group_fetch_all_offsets(gc, K("gone"), ov, 4), 0);
    group_description_t d;
    group_member_view_t mv[1];
    CHECK_EQ_INT(group_describe(gc, K("g1"), &d, mv, 1), 1);
    CHECK(keq(d.state, "Stable") && keq(d.protocol_type, "consumer") && keq(d.protocol_name, "range"));
    CHECK(keq(mv[0].member_id, ma) && mv[0].assignment.len == 3 && memcmp(mv[0].assignment.ptr, "ASG", 3) == 0 &&
          mv[0].metadata.len == 4 && keq(mv[0].client_id, "cli"));
    /* the reloaded member carries on with its generation */
    CHECK_EQ_INT(group_heartbeat(gc, K("g1"), 1, K(ma), kstr_null()), 0);
    CHECK_EQ_INT(group_leave(gc, K("g1"), K(ma), kstr_null(), K("done")), 0);
    group_describe(gc, K("g1"), &d, NULL, 0);
    CHECK(keq(d.state, "Empty"));
    /* expiry: retention counts from when the group became empty */
    CHECK_EQ_INT(group_coordinator_expire(gc, evloop_wall_ms()), 0);
    CHECK_EQ_INT(group_coordinator_expire(gc, evloop_wall_ms() + 7 * 24 * 3600 * 1000LL + 1000), 2);
    CHECK_EQ_INT(group_coordinator_group_count(gc), 0);
    group_coordinator_destroy(gc);
    topics_close(topics, true);

    topics = open_topics(cfg, dir);
    gc = group_coordinator_create(loop, topics, cfg);
    CHECK_EQ_INT(group_coordinator_load(gc), 0);
    CHECK_EQ_INT(group_coordinator_group_count(gc), 0);
    group_coordinator_destroy(gc);
    topics_close(topics, true);
    evloop_destroy(loop);
    broker_config_free(cfg);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    logger_min_level = LOG_LEVEL_WARN;
    RUN_TEST(test_java_hash);
    RUN_TEST(test_partition_for);
    RUN_TEST(test_offset_key_bytes);
    RUN_TEST(test_offset_value_bytes);
    RUN_TEST(test_group_records);
    RUN_TEST(test_subscription_topics);
    RUN_TEST(test_offsets_table);
    RUN_TEST(test_join_sync_flow);
    RUN_TEST(test_timers_and_cancel);
    RUN_TEST(test_persistence_and_reload);
    return TEST_REPORT();
}
