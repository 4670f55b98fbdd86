/* Unit tests for cluster mode's pure parts: the znode JSON reader/writer, zookeeper.connect
 * splitting, and Kafka's round-robin replica assignment. */
#include "cluster/cluster.h"
#include "cluster/zk_json.h"
#include "cluster/zk_store.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char *end_of(const char *s) { return s + strlen(s); }

static void test_json_find_and_read(void)
{
    const char *j = " { \"version\" : 3, \"partitions\":{\"0\":[1,2,3],\"1\":[ 2 , 3 ]},"
                    "\"topic_id\":\"VdzXP2m4R2SSyuJNf6q4LA\",\"nested\":{\"a\":[{\"b\":null}],\"t\":true},"
                    "\"port\":\"9092\",\"neg\":-17,\"esc\":\"a\\\"b\\\\c\\nd\\u00e9\"} ";
    const char *e = end_of(j);
    int64_t x = 0;
    CHECK_EQ_INT(zkjson_int(zkjson_find(j, e, "version"), e, &x), 0);
    CHECK_EQ_INT(x, 3);
    CHECK_EQ_INT(zkjson_int(zkjson_find(j, e, "port"), e, &x), 0); /* quoted numbers, as in /controller_epoch */
    CHECK_EQ_INT(x, 9092);
    CHECK_EQ_INT(zkjson_int(zkjson_find(j, e, "neg"), e, &x), 0);
    CHECK_EQ_INT(x, -17);
    CHECK(zkjson_find(j, e, "missing") == NULL);
    CHECK(zkjson_find(j, e, "a") == NULL); /* only top-level members */
    const char *parts = zkjson_find(j, e, "partitions");
    CHECK(parts != NULL);
    CHECK_EQ_INT(zkjson_object_foreach(parts, e, NULL, NULL), 2);
    int32_t r[4] = {0};
    CHECK_EQ_INT(zkjson_int_array(zkjson_find(parts, e, "0"), e, r, 4), 3);
    CHECK_EQ_INT(r[0], 1);
    CHECK_EQ_INT(r[1], 2);
    CHECK_EQ_INT(r[2], 3);
    CHECK_EQ_INT(zkjson_int_array(zkjson_find(parts, e, "1"), e, r, 1), 2); /* count beyond max */
    CHECK_EQ_INT(r[0], 2);
    char s[64];
    CHECK_EQ_INT(zkjson_string(zkjson_find(j, e, "topic_id"), e, s, sizeof(s)), 22);
    CHECK(strcmp(s, "VdzXP2m4R2SSyuJNf6q4LA") == 0);
    CHECK_EQ_INT(zkjson_string(zkjson_find(j, e, "esc"), e, s, sizeof(s)), 8);
    CHECK(strcmp(s, "a\"b\\c\nd?") == 0);
    char small[4];
    CHECK_EQ_INT(zkjson_string(zkjson_find(j, e, "topic_id"), e, small, sizeof(small)), 22);
    CHECK(strcmp(small, "Vdz") == 0); /* truncated, still terminated */
    /* Numbers with fractions or exponents are not integers. */
    CHECK_EQ_INT(zkjson_int("1.5", end_of("1.5"), &x), -1);
    CHECK_EQ_INT(zkjson_int("99999999999999999999", end_of("99999999999999999999"), &x), -1);
}

static void test_json_malformed(void)
{
    static const char *const bad[] = {"", "{", "{\"a\"", "{\"a\":}", "{\"a\":1,}", "[1,2", "[1 2]", "{\"a\":[1,]}",
                                      "\"abc", "{a:1}", "tru", "{\"a\":1 \"b\":2}", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *e = end_of(bad[i]);
        CHECK(zkjson_skip(bad[i], e) == NULL);
        CHECK(zkjson_find(bad[i], e, "a") == NULL);
        CHECK_EQ_INT(zkjson_object_foreach(bad[i], e, NULL, NULL) < 0 || bad[i][0] != '{', 1);
    }
    /* Deep nesting is refused instead of recursing without bound. */
    char deep[200];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    CHECK(zkjson_skip(deep, end_of(deep)) == NULL);
    /* A value cut by the end bound is not read past it. */
    const char *j = "{\"a\":[1,2,3]}";
    CHECK(zkjson_find(j, j + 8, "a") == NULL);
    int32_t r[4];
    CHECK_EQ_INT(zkjson_int_array("[1,\"x\"]", end_of("[1,\"x\"]"), r, 4), -1);
    CHECK_EQ_INT(zkjson_int_array("[1,99999999999]", end_of("[1,99999999999]"), r, 4), -1);
}

static void test_json_put_string(void)
{
    buf_t b;
    buf_init(&b);
    zkjson_put_string(&b, "a\"b\\c\n\x01z");
    const char *want = "\"a\\\"b\\\\c\\u000a\\u0001z\"";
    CHECK_EQ_INT((int)b.len, (int)strlen(want));
    CHECK_MEM(b.data, want, strlen(want));
    /* And it reads back. */
    char s[32];
    buf_put(&b, "", 1);
    CHECK_EQ_INT(zkjson_string((const char *)b.data, (const char *)b.data + b.len - 1, s, sizeof(s)), 8);
    CHECK(strcmp(s, "a\"b\\c??z") == 0); /* \u escapes read back as '?' */
    buf_free(&b);
}

static void test_split_connect(void)
{
    char h[64], c[64];
    CHECK_EQ_INT(zk_store_split_connect("localhost:2181/cluster-a", h, sizeof(h), c, sizeof(c)), 0);
    CHECK(strcmp(h, "localhost:2181") == 0);
    CHECK(strcmp(c, "/cluster-a") == 0);
    CHECK_EQ_INT(zk_store_split_connect("a:1,b:2,c:3/x/y/", h, sizeof(h), c, sizeof(c)), 0);
    CHECK(strcmp(h, "a:1,b:2,c:3") == 0);
    CHECK(strcmp(c, "/x/y") == 0);
    CHECK_EQ_INT(zk_store_split_connect("a:1", h, sizeof(h), c, sizeof(c)), 0);
    CHECK(strcmp(c, "") == 0);
    CHECK_EQ_INT(zk_store_split_connect("a:1/", h, sizeof(h), c, sizeof(c)), 0);
    CHECK(strcmp(c, "") == 0);
    CHECK_EQ_INT(zk_store_split_connect("/x", h, sizeof(h), c, sizeof(c)), -1);
    CHECK_EQ_INT(zk_store_split_connect("", h, sizeof(h), c, sizeof(c)), -1);
    CHECK_EQ_INT(zk_store_split_connect("a:1/x//y", h, sizeof(h), c, sizeof(c)), -1);
    CHECK_EQ_INT(zk_store_split_connect("a:1/x", h, 3, c, sizeof(c)), -1);
}

static void test_assign_replicas(void)
{
    const int32_t brokers[] = {1, 2, 3};
    int32_t out[18];
    /* Kafka's layout: first replicas rotate, followers shift, the shift grows every n partitions. */
    CHECK_EQ_INT(cluster_assign_replicas(brokers, 3, 6, 3, 0, 0, out), 0);
    const int32_t want[18] = {1, 2, 3, 2, 3, 1, 3, 1, 2, 1, 3, 2, 2, 1, 3, 3, 2, 1};
    for (int i = 0; i < 18; i++)
        CHECK_EQ_INT(out[i], want[i]);
    CHECK_EQ_INT(cluster_assign_replicas(brokers, 3, 6, 1, 1, 0, out), 0);
    const int32_t want1[6] = {2, 3, 1, 2, 3, 1};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(out[i], want1[i]);
    /* Replicas of one partition are always distinct brokers. */
    const int32_t five[] = {10, 11, 12, 13, 14};
    int32_t big[40 * 3];
    CHECK_EQ_INT(cluster_assign_replicas(five, 5, 40, 3, 2, 4, big), 0);
    for (int p = 0; p < 40; p++)
        CHECK(big[p * 3] != big[p * 3 + 1] && big[p * 3] != big[p * 3 + 2] && big[p * 3 + 1] != big[p * 3 + 2]);
    CHECK_EQ_INT(cluster_assign_replicas(brokers, 3, 1, 4, 0, 0, out), -1);
    CHECK_EQ_INT(cluster_assign_replicas(brokers, 0, 1, 1, 0, 0, out), -1);
    CHECK_EQ_INT(cluster_assign_replicas(brokers, 3, 0, 1, 0, 0, out), -1);
}

static void test_elect_leader(void)
{
    int32_t next, isr[8];
    int n;
    const int32_t isr3[] = {2, 3, 1};
    /* Live leader: nothing to do. */
    const int32_t all[] = {1, 2, 3};
    CHECK(!zk_store_elect_leader(2, isr3, 3, all, 3, NULL, 0, false, &next, isr, &n));
    CHECK_EQ_INT(next, 2);
    /* Leader lost: the first live ISR member, the ISR without the dead. */
    const int32_t no2[] = {3, 1};
    CHECK(zk_store_elect_leader(2, isr3, 3, no2, 2, NULL, 0, false, &next, isr, &n));
    CHECK_EQ_INT(next, 3);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(isr[0], 3);
    CHECK_EQ_INT(isr[1], 1);
    /* No ISR member live: offline, ISR kept (no unclean election even with a live replica). */
    const int32_t isr1[] = {2};
    const int32_t only3[] = {3};
    const int32_t reps23[] = {2, 3};
    CHECK(zk_store_elect_leader(2, isr1, 1, only3, 1, reps23, 2, false, &next, isr, &n));
    CHECK_EQ_INT(next, -1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(isr[0], 2);
    /* Already offline and still nobody: nothing changes. */
    CHECK(!zk_store_elect_leader(-1, isr1, 1, only3, 1, reps23, 2, false, &next, isr, &n));
    /* Live leader, a follower lost: it leaves the ISR, the leader stays. */
    const int32_t no3[] = {1, 2};
    CHECK(zk_store_elect_leader(2, isr3, 3, no3, 2, NULL, 0, false, &next, isr, &n));
    CHECK_EQ_INT(next, 2);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(isr[0], 2);
    CHECK_EQ_INT(isr[1], 1);
    /* Offline and the ISR member is back: it leads again. */
    const int32_t back[] = {3, 2};
    CHECK(zk_store_elect_leader(-1, isr1, 1, back, 2, NULL, 0, false, &next, isr, &n));
    CHECK_EQ_INT(next, 2);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(isr[0], 2);
}

static void test_elect_leader_unclean(void)
{
    int32_t next, isr[8];
    int n;
    const int32_t reps[] = {1, 2, 3};
    const int32_t isr1[] = {1};
    const int32_t live23[] = {3, 2};
    /* No ISR member live: the first live replica of the assignment leads, alone in the ISR. */
    CHECK(zk_store_elect_leader(1, isr1, 1, live23, 2, reps, 3, true, &next, isr, &n));
    CHECK_EQ_INT(next, 2);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(isr[0], 2);
    /* Also from offline (-1), e.g. when that replica comes back. */
    const int32_t live3[] = {3};
    CHECK(zk_store_elect_leader(-1, isr1, 1, live3, 1, reps, 3, true, &next, isr, &n));
    CHECK_EQ_INT(next, 3);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(isr[0], 3);
    /* A live ISR member is still preferred over an unclean choice, and the live leader keeps its place. */
    const int32_t isr13[] = {1, 3};
    CHECK(zk_store_elect_leader(1, isr13, 2, live23, 2, reps, 3, true, &next, isr, &n));
    CHECK_EQ_INT(next, 3);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(isr[0], 3);
    CHECK(!zk_store_elect_leader(3, isr13, 2, (const int32_t[]){1, 3}, 2, reps, 3, true, &next, isr, &n));
    CHECK_EQ_INT(next, 3);
    /* No replica live at all: offline with the ISR kept, even with unclean. */
    const int32_t live9[] = {9};
    CHECK(zk_store_elect_leader(1, isr1, 1, live9, 1, reps, 3, true, &next, isr, &n));
    CHECK_EQ_INT(next, -1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(isr[0], 1);
    CHECK(!zk_store_elect_leader(-1, isr1, 1, live9, 1, reps, 3, true, &next, isr, &n));
    /* An empty ISR (as unclean tools may leave it): still the first live replica. */
    CHECK(zk_store_elect_leader(-1, isr1, 0, live23, 2, reps, 3, true, &next, isr, &n));
    CHECK_EQ_INT(next, 2);
    CHECK_EQ_INT(n, 1);
}

static void test_elect_preferred_and_shutdown(void)
{
    const int32_t reps[] = {2, 3, 1};
    const int32_t all[] = {1, 2, 3};
    const int32_t isr_all[] = {3, 1, 2};
    const int32_t isr31[] = {3, 1};
    CHECK_EQ_INT(zk_store_elect_preferred(reps, 3, 3, isr_all, 3, all, 3), ZK_ELECTED);
    CHECK_EQ_INT(zk_store_elect_preferred(reps, 3, 2, isr_all, 3, all, 3), ZK_ELECT_NOT_NEEDED);
    /* The preferred replica out of the ISR, or not live: not available. */
    CHECK_EQ_INT(zk_store_elect_preferred(reps, 3, 3, isr31, 2, all, 3), ZK_ELECT_NOT_AVAILABLE);
    CHECK_EQ_INT(zk_store_elect_preferred(reps, 3, 3, isr_all, 3, (const int32_t[]){1, 3}, 2),
                 ZK_ELECT_NOT_AVAILABLE);
    CHECK_EQ_INT(zk_store_elect_preferred(reps, 0, 3, isr_all, 3, all, 3), ZK_ELECT_NOT_AVAILABLE);
    /* Controlled shutdown of 2: the first replica that is live, in the ISR and not 2. */
    CHECK_EQ_INT(zk_store_shutdown_leader(reps, 3, isr_all, 3, all, 3, 2), 3);
    CHECK_EQ_INT(zk_store_shutdown_leader(reps, 3, (const int32_t[]){2, 1}, 2, all, 3, 2), 1);
    CHECK_EQ_INT(zk_store_shutdown_leader(reps, 3, isr_all, 3, (const int32_t[]){1, 2}, 2, 2), 1);
    CHECK_EQ_INT(zk_store_shutdown_leader(reps, 3, (const int32_t[]){2}, 1, all, 3, 2), -1);
    CHECK_EQ_INT(zk_store_shutdown_leader(reps, 3, isr_all, 3, (const int32_t[]){2}, 1, 2), -1);
}

static zk_partition_t part(int32_t leader, const int32_t *reps, int nreps, const int32_t *isr, int nisr)
{
    zk_partition_t p;
    memset(&p, 0, sizeof(p));
    p.leader = leader;
    memcpy(p.replicas, reps, sizeof(int32_t) * (size_t)nreps);
    p.nreplicas = nreps;
    memcpy(p.isr, isr, sizeof(int32_t) * (size_t)nisr);
    p.nisr = nisr;
    return p;
}

static void test_rebalance_pick(void)
{
    const int32_t all[] = {1, 2, 3};
    const int32_t r123[] = {1, 2, 3}, r231[] = {2, 3, 1}, r312[] = {3, 1, 2};
    bool elect[16];
    /* Broker 1 prefers 2 partitions and leads neither (100% > 10%): both move back when 1 is in the
     * ISR; broker 2 leads its one; broker 3's partition is led by 1 but 3 left its ISR. */
    zk_partition_t ps[4] = {
        part(2, r123, 3, all, 3),
        part(3, r123, 3, all, 3),
        part(2, r231, 3, all, 3),
        part(1, r312, 3, (const int32_t[]){1, 2}, 2),
    };
    CHECK_EQ_INT(zk_store_rebalance_pick(ps, 4, all, 3, 10, elect), 2);
    CHECK(elect[0] && elect[1] && !elect[2] && !elect[3]);
    /* The threshold: one of 10 partitions off (10%) is not above 10%; two (20%) are. */
    zk_partition_t many[10];
    for (int i = 0; i < 10; i++)
        many[i] = part(1, r123, 3, all, 3);
    many[4].leader = 2;
    CHECK_EQ_INT(zk_store_rebalance_pick(many, 10, all, 3, 10, elect), 0);
    many[7].leader = -1;
    CHECK_EQ_INT(zk_store_rebalance_pick(many, 10, all, 3, 10, elect), 2);
    CHECK(elect[4] && elect[7] && !elect[0]);
    CHECK_EQ_INT(zk_store_rebalance_pick(many, 10, all, 3, 20, elect), 0);
    /* The preferred broker not live: nothing to do. */
    CHECK_EQ_INT(zk_store_rebalance_pick(many, 10, (const int32_t[]){2, 3}, 2, 10, elect), 0);
    CHECK_EQ_INT(zk_store_rebalance_pick(many, 0, all, 3, 10, elect), 0);
}

static void test_assign_more_replicas(void)
{
    const int32_t brokers[] = {1, 2, 3};
    int32_t whole[18], more[9];
    /* Continuing from partition 3 with the same start and shift gives what a 6-partition topic has
     * for 3..5 (Kafka's startPartitionId: the shift grows at 3 in both). */
    CHECK_EQ_INT(cluster_assign_replicas(brokers, 3, 6, 3, 1, 1, whole), 0);
    CHECK_EQ_INT(cluster_assign_replicas_from(brokers, 3, 3, 3, 3, 1, 1, more), 0);
    for (int i = 0; i < 9; i++)
        CHECK_EQ_INT(more[i], whole[9 + i]);
    /* Distinct replicas, first replicas rotating on from partition 4's place. */
    CHECK_EQ_INT(cluster_assign_replicas_from(brokers, 3, 4, 3, 2, 0, 0, more), 0);
    CHECK_EQ_INT(more[0], 2);
    CHECK_EQ_INT(more[2], 3);
    CHECK_EQ_INT(more[4], 1);
    for (int p = 0; p < 3; p++)
        CHECK(more[2 * p] != more[2 * p + 1]);
    CHECK_EQ_INT(cluster_assign_replicas_from(brokers, 3, -1, 3, 2, 0, 0, more), -1);
    CHECK_EQ_INT(cluster_assign_replicas_from(brokers, 3, 3, 0, 2, 0, 0, more), -1);
}

static int visit_member(void *arg, const char *key, const char *v, const char *end)
{
    int *calls = arg;
    int64_t x;
    int32_t r[4];
    char str[16];
    (*calls)++;
    (void)key;
    (void)zkjson_int(v, end, &x);
    (void)zkjson_int_array(v, end, r, 4);
    (void)zkjson_string(v, end, str, sizeof(str));
    (void)zkjson_object_foreach(v, end, NULL, NULL);
    return 0;
}

/* Every reader on every truncation and on random byte changes of real znode contents, each in a
 * buffer of exactly its length (ASan reports any read past the end). */
static void test_json_never_reads_out_of_bounds(void)
{
    static const char *const docs[] = {
        "{\"features\":{},\"listener_security_protocol_map\":{\"PLAINTEXT\":\"PLAINTEXT\"},\"endpoints\":"
        "[\"PLAINTEXT://127.0.0.1:9092\"],\"jmx_port\":-1,\"host\":\"127.0.0.1\",\"port\":9092,"
        "\"timestamp\":\"1795638566028\",\"version\":5}",
        "{\"version\":3,\"partitions\":{\"0\":[2,1],\"1\":[3]},\"adding_replicas\":{},\"removing_replicas\":{},"
        "\"topic_id\":\"VdzXP2m4R2SSyuJNf6q4LA\"}",
        "{\"controller_epoch\":3,\"leader\":2,\"version\":1,\"leader_epoch\":7,\"isr\":[2,3]}",
        "{\"version\":1,\"config\":{\"retention.ms\":\"3600000\",\"x\":\"a\\\"b\\u0041\"}}",
    };
    uint32_t seed = 12345;
    int calls = 0;
    for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
        size_t n = strlen(docs[d]);
        CHECK(zkjson_skip(docs[d], docs[d] + n) == docs[d] + n); /* the originals are valid */
        for (int round = 0; round < 1500; round++) {
            size_t len = round < (int)n + 1 ? (size_t)round : n;
            char *b = malloc(len ? len : 1);
            memcpy(b, docs[d], len);
            if (round > (int)n) {
                for (int k = 0; k < 3; k++) {
                    seed = seed * 1103515245u + 12345u;
                    b[(seed >> 8) % len] = (char)(seed >> 16);
                }
            }
            const char *e = b + len;
            (void)zkjson_skip(b, e);
            (void)zkjson_find(b, e, "partitions");
            (void)zkjson_object_foreach(b, e, visit_member, &calls);
            const char *parts = zkjson_find(b, e, "partitions");
            if (parts)
                (void)zkjson_object_foreach(parts, e, visit_member, &calls);
            free(b);
        }
        /* A truncated document is never accepted as whole. */
        CHECK(zkjson_skip(docs[d], docs[d] + n - 1) == NULL);
    }
    CHECK(calls > 1000);
}

int main(void)
{
    RUN_TEST(test_json_find_and_read);
    RUN_TEST(test_json_malformed);
    RUN_TEST(test_json_put_string);
    RUN_TEST(test_split_connect);
    RUN_TEST(test_assign_replicas);
    RUN_TEST(test_elect_leader);
    RUN_TEST(test_elect_leader_unclean);
    RUN_TEST(test_elect_preferred_and_shutdown);
    RUN_TEST(test_rebalance_pick);
    RUN_TEST(test_assign_more_replicas);
    RUN_TEST(test_json_never_reads_out_of_bounds);
    return TEST_REPORT();
}
