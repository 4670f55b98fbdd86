/*
 * test_txn.c - producer state (sequences, duplicates, epochs, transactions,
 * aborted list, snapshot and .txnindex bytes), the __transaction_state record
 * format and partitioning, and the transaction coordinator's state machine
 * without a log (topics NULL).
 */
#include <stdlib.h>

#include "test.h"
#include "txn/producer_state.h"
#include "txn/txn_coordinator.h"

static void test_sequences(void)
{
    producer_state_t *ps = pstate_new();
    pstate_batch_t dup;
    /* unknown producers may start anywhere */
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 42, 3, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 0, 3, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_update(ps, 7, 0, 0, 3, 100, 102, 1000, false), 0);
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 3, 2, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_update(ps, 7, 0, 3, 2, 103, 104, 1001, false), 0);
    /* duplicates of either batch, with their offsets */
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 0, 3, &dup), PSTATE_DUPLICATE);
    CHECK_EQ_INT(dup.first_offset, 100);
    CHECK_EQ_INT(dup.last_offset, 102);
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 3, 2, &dup), PSTATE_DUPLICATE);
    CHECK_EQ_INT(dup.first_offset, 103);
    /* gap, overlap, old and new epochs */
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 6, 1, &dup), TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 4, 1, &dup), TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 5, 1, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_check(ps, 7, 1, 5, 1, &dup), TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ_INT(pstate_check(ps, 7, 1, 0, 1, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_update(ps, 7, 1, 0, 1, 105, 105, 1002, false), 0);
    CHECK_EQ_INT(pstate_check(ps, 7, 0, 5, 1, &dup), TXN_KERR_INVALID_PRODUCER_EPOCH);
    /* only the last 5 batches are remembered */
    for (int i = 1; i <= 5; i++)
        CHECK_EQ_INT(pstate_update(ps, 7, 1, i, 1, 105 + i, 105 + i, 1003, false), 0);
    CHECK_EQ_INT(pstate_check(ps, 7, 1, 0, 1, &dup), TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ_INT(pstate_check(ps, 7, 1, 1, 1, &dup), PSTATE_DUPLICATE);
    CHECK_EQ_INT(dup.first_offset, 106);
    /* sequences wrap after INT32_MAX */
    CHECK_EQ_INT(pstate_update(ps, 8, 0, INT32_MAX - 1, 2, 200, 201, 1, false), 0);
    CHECK_EQ_INT(pstate_check(ps, 8, 0, 0, 1, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_check(ps, 8, 0, 1, 1, &dup), TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ_INT(pstate_check(ps, -1, -1, -1, 1, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(pstate_producer_count(ps), 2);
    /* expiry: producer 7's last batch is at 1003, producer 8's at 1 */
    CHECK_EQ_INT(pstate_expire(ps, 1), 0);
    CHECK_EQ_INT(pstate_expire(ps, 1003), 1);
    CHECK(pstate_find(ps, 8) == NULL);
    CHECK(pstate_find(ps, 7) != NULL);
    CHECK_EQ_INT(pstate_producer_count(ps), 1);
    pstate_free(ps);
}

static void test_transactions_and_aborts(void)
{
    producer_state_t *ps = pstate_new();
    pstate_aborted_t a;
    CHECK_EQ_INT(pstate_first_unstable_offset(ps), -1);
    CHECK_EQ_INT(pstate_update(ps, 1, 0, 0, 2, 10, 11, 5, true), 0);
    CHECK_EQ_INT(pstate_update(ps, 2, 0, 0, 1, 12, 12, 5, true), 0);
    CHECK_EQ_INT(pstate_update(ps, 1, 0, 2, 1, 13, 13, 5, true), 0);
    CHECK_EQ_INT(pstate_first_unstable_offset(ps), 10);
    CHECK_EQ_INT(pstate_expire(ps, 1000), 0); /* open transactions never expire */
    /* producer 1 aborts at 14: the LSO then is producer 2's first offset */
    CHECK_EQ_INT(pstate_apply_marker(ps, 1, 0, false, 3, 14, 6, &a), 1);
    CHECK_EQ_INT(a.producer_id, 1);
    CHECK_EQ_INT(a.first_offset, 10);
    CHECK_EQ_INT(a.last_offset, 14);
    CHECK_EQ_INT(a.last_stable_offset, 12);
    CHECK_EQ_INT(pstate_add_aborted(ps, &a), 0);
    CHECK_EQ_INT(pstate_add_aborted(ps, &a), 0); /* ignored: already there */
    CHECK_EQ_INT(pstate_find(ps, 1)->coordinator_epoch, 3);
    CHECK_EQ_INT(pstate_first_unstable_offset(ps), 12);
    /* commit of producer 2: nothing aborted, nothing open */
    CHECK_EQ_INT(pstate_apply_marker(ps, 2, 0, true, 3, 15, 6, &a), 0);
    CHECK_EQ_INT(pstate_first_unstable_offset(ps), -1);
    /* a marker without an open transaction */
    CHECK_EQ_INT(pstate_apply_marker(ps, 2, 0, false, 3, 16, 6, &a), 0);
    pstate_aborted_t b = {9, 20, 25, 26};
    CHECK_EQ_INT(pstate_add_aborted(ps, &b), 0);
    pstate_aborted_t out[4];
    CHECK_EQ_INT(pstate_aborted_count(ps), 2);
    CHECK_EQ_INT(pstate_aborted_range(ps, 0, 100, out, 4), 2);
    CHECK_EQ_INT(out[0].producer_id, 1);
    CHECK_EQ_INT(out[1].producer_id, 9);
    CHECK_EQ_INT(pstate_aborted_range(ps, 15, 100, out, 4), 1);
    CHECK_EQ_INT(out[0].producer_id, 9);
    CHECK_EQ_INT(pstate_aborted_range(ps, 0, 20, out, 4), 1);
    CHECK_EQ_INT(out[0].producer_id, 1);
    CHECK_EQ_INT(pstate_aborted_range(ps, 26, 100, out, 4), 0);
    pstate_free(ps);
}

static void test_snapshot_bytes(void)
{
    producer_state_t *ps = pstate_new();
    CHECK_EQ_INT(pstate_update(ps, 0x0102030405060708LL, 3, 10, 5, 1000, 1004, 77, true), 0);
    buf_t b;
    buf_init(&b);
    pstate_snapshot_encode(ps, &b);
    CHECK_EQ_INT(b.len, 10 + PSTATE_SNAPSHOT_ENTRY_SIZE);
    static const uint8_t want[] = {
        0, 1, /* version */
        0, 0, 0, 0, /* crc (checked below) */
        0, 0, 0, 1, /* count */
        1, 2, 3, 4, 5, 6, 7, 8, /* producer id */
        0, 3, /* epoch */
        0, 0, 0, 14, /* last sequence */
        0, 0, 0, 0, 0, 0, 0x03, 0xec, /* last offset 1004 */
        0, 0, 0, 4, /* offset delta */
        0, 0, 0, 0, 0, 0, 0, 77, /* timestamp */
        0xff, 0xff, 0xff, 0xff, /* coordinator epoch */
        0, 0, 0, 0, 0, 0, 0x03, 0xe8, /* txn first offset 1000 */
    };
    CHECK(b.len == sizeof(want));
    if (b.len == sizeof(want)) {
        CHECK_MEM(b.data, want, 2);
        CHECK_MEM(b.data + 6, want + 6, sizeof(want) - 6);
    }
    producer_state_t *back = pstate_new();
    CHECK_EQ_INT(pstate_snapshot_decode(back, b.data, b.len), 0);
    pstate_producer_t *p = pstate_find(back, 0x0102030405060708LL);
    CHECK(p != NULL);
    if (p) {
        CHECK_EQ_INT(p->epoch, 3);
        CHECK_EQ_INT(p->txn_first_offset, 1000);
        CHECK_EQ_INT(p->nbatches, 1);
        CHECK_EQ_INT(p->batches[0].first_seq, 10);
        CHECK_EQ_INT(p->batches[0].first_offset, 1000);
    }
    CHECK_EQ_INT(pstate_first_unstable_offset(back), 1000);
    pstate_batch_t dup;
    CHECK_EQ_INT(pstate_check(back, 0x0102030405060708LL, 3, 10, 5, &dup), PSTATE_DUPLICATE);
    CHECK_EQ_INT(pstate_check(back, 0x0102030405060708LL, 3, 15, 1, &dup), PSTATE_APPEND);
    /* a flipped byte fails the CRC; truncations fail */
    b.data[20] ^= 1;
    producer_state_t *bad = pstate_new();
    CHECK_EQ_INT(pstate_snapshot_decode(bad, b.data, b.len), -1);
    b.data[20] ^= 1;
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ_INT(pstate_snapshot_decode(bad, b.data, n), -1);
    pstate_free(bad);
    pstate_free(back);
    pstate_free(ps);
    buf_free(&b);
}

static void test_txnindex_bytes(void)
{
    buf_t b;
    buf_init(&b);
    pstate_aborted_t a = {5, 100, 120, 101};
    pstate_txnindex_put(&b, &a);
    static const uint8_t want[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 100,
                                   0, 0, 0, 0, 0, 0, 0, 120, 0, 0, 0, 0, 0, 0, 0, 101};
    CHECK_EQ_INT(b.len, PSTATE_TXNINDEX_ENTRY_SIZE);
    CHECK(b.len == sizeof(want) && memcmp(b.data, want, sizeof(want)) == 0);
    pstate_aborted_t c = {6, 130, 140, 141};
    pstate_txnindex_put(&b, &c);
    producer_state_t *ps = pstate_new();
    /* a torn tail is ignored */
    CHECK_EQ_INT(pstate_txnindex_decode(ps, b.data, b.len - 3), 1);
    CHECK_EQ_INT(pstate_txnindex_decode(ps, b.data, b.len), 2); /* the first again: not duplicated */
    CHECK_EQ_INT(pstate_aborted_count(ps), 2);
    b.data[0] = 1;
    CHECK_EQ_INT(pstate_txnindex_decode(ps, b.data, b.len), -1);
    pstate_free(ps);
    buf_free(&b);
}

static void test_txn_log_format(void)
{
    /* Java: "abc".hashCode() == 96354; 96354 % 50 == 4 */
    CHECK_EQ_INT(txn_partition_for("abc", 3, 50), 4);
    buf_t b;
    buf_init(&b);
    txn_log_put_key(&b, kstr_c("tx"));
    static const uint8_t key[] = {0, 0, 0, 2, 't', 'x'};
    CHECK(b.len == sizeof(key) && memcmp(b.data, key, sizeof(key)) == 0);
    kstr_t id;
    CHECK_EQ_INT(txn_log_decode_key(b.data, b.len, &id), 0);
    CHECK(kstr_eq(id, "tx"));
    CHECK_EQ_INT(txn_log_decode_key(b.data, b.len - 1, &id), -1);
    b.len = 0;
    txn_partition_ref_t parts[3] = {{kstr_c("a"), 0, 0}, {kstr_c("a"), 2, 0}, {kstr_c("b"), 1, 0}};
    txn_view_t v = {.status = TXN_ONGOING, .timeout_ms = 60000, .start_ms = 5, .last_update_ms = 6,
                    .producer_id = 9, .epoch = 2, .n_partitions = 3, .partitions = parts};
    txn_log_put_value(&b, &v);
    static const uint8_t val[] = {
        0, 0, /* version */
        0, 0, 0, 0, 0, 0, 0, 9, /* producer id */
        0, 2, /* epoch */
        0, 0, 0xea, 0x60, /* timeout */
        1, /* Ongoing */
        0, 0, 0, 2, /* topics */
        0, 1, 'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2,
        0, 1, 'b', 0, 0, 0, 1, 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 6, /* last update */
        0, 0, 0, 0, 0, 0, 0, 5, /* start */
    };
    CHECK(b.len == sizeof(val) && memcmp(b.data, val, sizeof(val)) == 0);
    txn_view_t back;
    txn_partition_ref_t *bp;
    CHECK_EQ_INT(txn_log_decode_value(b.data, b.len, &back, &bp), 0);
    CHECK_EQ_INT(back.n_partitions, 3);
    CHECK_EQ_INT(back.status, TXN_ONGOING);
    CHECK_EQ_INT(back.producer_id, 9);
    CHECK_EQ_INT(back.start_ms, 5);
    if (back.n_partitions == 3) {
        CHECK(kstr_eq(bp[2].topic, "b"));
        CHECK_EQ_INT(bp[1].partition, 2);
    }
    free(bp);
    for (size_t n = 0; n < b.len; n++) {
        CHECK_EQ_INT(txn_log_decode_value(b.data, n, &back, &bp), -1);
        CHECK(bp == NULL);
    }
    buf_free(&b);
    CHECK(strcmp(txn_status_name(TXN_COMPLETE_ABORT), "CompleteAbort") == 0);
}

static void test_coordinator_flow(void)
{
    txn_coordinator_t *tc = txn_coordinator_create(NULL, NULL, NULL, NULL, NULL);
    CHECK(tc != NULL);
    CHECK_EQ_INT(txn_coordinator_load(tc), 0);
    int64_t pid, pid2;
    int16_t epoch;
    /* idempotent producers: a new id each time */
    CHECK_EQ_INT(txn_init_producer_id(tc, kstr_null(), 0, -1, -1, &pid, &epoch), 0);
    CHECK_EQ_INT(pid, 0);
    CHECK_EQ_INT(epoch, 0);
    CHECK_EQ_INT(txn_init_producer_id(tc, kstr_null(), 0, -1, -1, &pid, &epoch), 0);
    CHECK_EQ_INT(pid, 1);
    /* transactional: a timeout above the maximum is refused */
    CHECK_EQ_INT(txn_init_producer_id(tc, kstr_c("t"), 900001, -1, -1, &pid, &epoch),
                 TXN_KERR_INVALID_TRANSACTION_TIMEOUT);
    CHECK_EQ_INT(txn_init_producer_id(tc, kstr_c("t"), 1000, -1, -1, &pid, &epoch), 0);
    CHECK_EQ_INT(pid, 2);
    CHECK_EQ_INT(epoch, 0);
    txn_partition_ref_t refs[2] = {{kstr_c("x"), 0, 0}, {kstr_c("x"), 1, 0}};
    CHECK_EQ_INT(txn_add_partitions(tc, kstr_c("t"), pid, 1, refs, 2, false), TXN_KERR_PRODUCER_FENCED);
    CHECK_EQ_INT(txn_add_partitions(tc, kstr_c("t"), 99, 0, refs, 2, false), TXN_KERR_INVALID_PRODUCER_ID_MAPPING);
    CHECK_EQ_INT(txn_add_partitions(tc, kstr_c("t"), pid, 0, refs, 2, false), 0);
    CHECK_EQ_INT(refs[0].error, 0);
    txn_view_t v;
    CHECK_EQ_INT(txn_describe(tc, kstr_c("t"), &v), 1);
    CHECK_EQ_INT(v.status, TXN_ONGOING);
    CHECK_EQ_INT(v.n_partitions, 2);
    CHECK_EQ_INT(txn_describe(tc, kstr_c("nope"), &v), 0);
    txn_offset_item_t off = {.topic = kstr_c("x"), .partition = 0, .offset = 5, .leader_epoch = -1,
                             .metadata = kstr_null()};
    CHECK_EQ_INT(txn_offset_commit(tc, kstr_c("t"), kstr_c("g"), pid, 0, &off, 1), 0);
    CHECK_EQ_INT(off.error, 0);
    CHECK_EQ_INT(txn_end(tc, kstr_c("t"), pid, 0, true), 0);
    CHECK_EQ_INT(txn_describe(tc, kstr_c("t"), &v), 1);
    CHECK_EQ_INT(v.status, TXN_COMPLETE_COMMIT);
    CHECK_EQ_INT(v.n_partitions, 0);
    CHECK_EQ_INT(txn_end(tc, kstr_c("t"), pid, 0, true), 0);   /* a retried commit */
    CHECK_EQ_INT(txn_end(tc, kstr_c("t"), pid, 0, false), TXN_KERR_INVALID_TXN_STATE);
    /* a second InitProducerId fences the first producer; an open transaction is aborted */
    CHECK_EQ_INT(txn_add_partitions(tc, kstr_c("t"), pid, 0, refs, 1, false), 0);
    CHECK_EQ_INT(txn_init_producer_id(tc, kstr_c("t"), 1000, -1, -1, &pid2, &epoch), 0);
    CHECK_EQ_INT(pid2, pid);
    CHECK_EQ_INT(epoch, 2); /* +1 for the fencing abort, +1 for the new session */
    CHECK_EQ_INT(txn_end(tc, kstr_c("t"), pid, 0, true), TXN_KERR_PRODUCER_FENCED);
    /* timeouts abort with a bumped epoch */
    CHECK_EQ_INT(txn_add_partitions(tc, kstr_c("t"), pid, 2, refs, 1, false), 0);
    CHECK_EQ_INT(txn_coordinator_abort_expired(tc, evloop_wall_ms()), 0);
    CHECK_EQ_INT(txn_coordinator_abort_expired(tc, evloop_wall_ms() + 2000), 1);
    CHECK_EQ_INT(txn_describe(tc, kstr_c("t"), &v), 1);
    CHECK_EQ_INT(v.status, TXN_COMPLETE_ABORT);
    CHECK_EQ_INT(v.epoch, 3);
    CHECK_EQ_INT(txn_end(tc, kstr_c("t"), pid, 2, true), TXN_KERR_PRODUCER_FENCED);
    /* idle ids expire (default 7 days), open transactions never do */
    CHECK_EQ_INT(txn_init_producer_id(tc, kstr_c("u"), 1000, -1, -1, &pid2, &epoch), 0);
    CHECK_EQ_INT(txn_add_partitions(tc, kstr_c("u"), pid2, 0, refs, 1, false), 0);
    CHECK_EQ_INT(txn_coordinator_expire_ids(tc, evloop_wall_ms() + 604700000LL), 0);
    CHECK_EQ_INT(txn_coordinator_expire_ids(tc, evloop_wall_ms() + 604900000LL), 1);
    CHECK_EQ_INT(txn_describe(tc, kstr_c("t"), &v), 0);
    CHECK_EQ_INT(txn_describe(tc, kstr_c("u"), &v), 1);
    txn_coordinator_destroy(tc);
}

int main(void)
{
    RUN_TEST(test_sequences);
    RUN_TEST(test_transactions_and_aborts);
    RUN_TEST(test_snapshot_bytes);
    RUN_TEST(test_txnindex_bytes);
    RUN_TEST(test_txn_log_format);
    RUN_TEST(test_coordinator_flow);
    return TEST_REPORT();
}
