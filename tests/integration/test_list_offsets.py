"""ListOffsets: earliest, latest, by timestamp (earliest offset whose
timestamp >= the asked one, exact record inside a batch), max timestamp."""

import confluent_kafka as ck
import pytest
from kafka import TopicPartition as KTP

import kafka_raw as kr
from helpers import (confluent_consumer, create_topic, kp_consumer, make_records, now_ms,
                     produce_confluent, raw_fetch_batches)

N = 100
STEP = 10


@pytest.fixture(scope='module')
def ts_topic(broker):
    """100 records in batches of ~20, timestamps base+10*i except record 60,
    which carries the largest timestamp of all."""
    from conftest import unique_topic
    t = unique_topic('lo')
    create_topic(broker.bootstrap, t)
    base = now_ms() - 3600 * 1000
    recs = make_records(N, 'lo', base_ts=base, ts_step=STEP)
    recs[60]['timestamp'] = base + 100000
    for i in range(0, N, 20):
        produce_confluent(broker.bootstrap, t, recs[i:i + 20], conf={'linger.ms': 100})
    batches = raw_fetch_batches(broker.bootstrap, t)
    assert len(batches) >= 5 and max(b.records_count for b in batches) >= 10
    return t, base, recs


def expected_for(recs, target):
    for i, r in enumerate(recs):
        if r['timestamp'] >= target:
            return i, r['timestamp']
    return -1, -1


TARGETS = [('before-all', -1000), ('first', 0), ('inside-batch', STEP * 37),
           ('between', STEP * 37 - 5), ('batch-edge', STEP * 40), ('past-max-mid', STEP * 61),
           ('after-all-but-max', STEP * 99 + 1), ('the-max', 100000), ('beyond', 100001)]


@pytest.mark.parametrize('label,delta', TARGETS, ids=[t[0] for t in TARGETS])
def test_offsets_for_times(broker, ts_topic, label, delta):
    t, base, recs = ts_topic
    target = base + delta
    want_off, want_ts = expected_for(recs, target)
    c = confluent_consumer(broker.bootstrap)
    try:
        res = c.offsets_for_times([ck.TopicPartition(t, 0, target)], timeout=10)
    finally:
        c.close()
    assert res[0].error is None
    assert res[0].offset == want_off, (label, res[0].offset, want_off)
    k = kp_consumer(broker.bootstrap)
    try:
        r = k.offsets_for_times({KTP(t, 0): target})[KTP(t, 0)]
    finally:
        k.close()
    if want_off == -1:
        assert r is None
    else:
        assert (r.offset, r.timestamp) == (want_off, want_ts)


def test_earliest_latest(broker, ts_topic):
    t, _, _ = ts_topic
    c = confluent_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(ck.TopicPartition(t, 0), timeout=10) == (0, N)
    finally:
        c.close()
    k = kp_consumer(broker.bootstrap)
    try:
        assert k.beginning_offsets([KTP(t, 0)]) == {KTP(t, 0): 0}
        assert k.end_offsets([KTP(t, 0)]) == {KTP(t, 0): N}
    finally:
        k.close()
    with kr.Conn.to(broker.bootstrap) as conn:
        for v in (1, 2, 5):
            e = kr.parse_list_offsets(conn.request(kr.LIST_OFFSETS, v,
                                                   kr.list_offsets_body(v, t, 0, -2)), v)
            l_ = kr.parse_list_offsets(conn.request(kr.LIST_OFFSETS, v,
                                                    kr.list_offsets_body(v, t, 0, -1)), v)
            assert (e[(t, 0)][0], e[(t, 0)][2]) == (0, 0), v
            assert (l_[(t, 0)][0], l_[(t, 0)][2]) == (0, N), v


def test_max_timestamp(broker, ts_topic):
    t, base, _ = ts_topic
    with kr.Conn.to(broker.bootstrap) as conn:
        r = conn.request(kr.API_VERSIONS, 0, b'')
        _, keys = kr.parse_api_versions(r, 0)
        lo, hi = keys[kr.LIST_OFFSETS]
        if hi < 7:
            pytest.skip('ListOffsets v7 (max timestamp) not advertised')
        for v in sorted({7, hi}):
            res = kr.parse_list_offsets(conn.request(kr.LIST_OFFSETS, v,
                                                     kr.list_offsets_body(v, t, 0, -3),
                                                     flexible=True), v)
            assert res[(t, 0)] == (0, base + 100000, 60), v


def test_list_offsets_empty_and_unknown(broker, topic):
    create_topic(broker.bootstrap, topic)
    with kr.Conn.to(broker.bootstrap) as conn:
        for ts in (-2, -1, now_ms()):
            res = kr.parse_list_offsets(conn.request(kr.LIST_OFFSETS, 1,
                                                     kr.list_offsets_body(1, topic, 0, ts)), 1)
            err, _, off = res[(topic, 0)]
            assert err == 0
            assert off == (-1 if ts >= 0 else 0), ts
        res = kr.parse_list_offsets(conn.request(kr.LIST_OFFSETS, 1,
                                                 kr.list_offsets_body(1, topic, 5, -1)), 1)
        assert res[(topic, 5)][0] == kr.UNKNOWN_TOPIC_OR_PARTITION
