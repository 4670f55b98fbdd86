"""Topic-level record rules: message.timestamp.type=LogAppendTime and
max.message.bytes / message.max.bytes (MESSAGE_TOO_LARGE)."""

import confluent_kafka as ck
import pytest

import kafka_raw as kr
from conftest import unique_topic
from helpers import (TS_APPEND, TS_CREATE, assert_records, consume_confluent,
                     consume_kafka_python, consume_kcat, create_topic, make_records, now_ms,
                     produce_confluent, produce_kafka_python, raw_fetch_batches, watermarks)

SLACK = 5  # ms of clock granularity allowed around the test's time window


def test_log_append_time(broker, topic):
    create_topic(broker.bootstrap, topic, config={'message.timestamp.type': 'LogAppendTime'})
    recs = make_records(30, 'lat', base_ts=now_ms() - 3600 * 1000)  # an hour old
    before = now_ms()
    produce_confluent(broker.bootstrap, topic, recs[:20], conf={'linger.ms': 20})
    produce_kafka_python(broker.bootstrap, topic, recs[20:])
    after = now_ms()
    for got in (consume_confluent(broker.bootstrap, topic, count=30),
                consume_kafka_python(broker.bootstrap, topic, count=30)):
        assert_records(got, recs, check_ts=False)
        for g in got:
            assert g.ts_type == TS_APPEND, g
            assert before - SLACK <= g.timestamp <= after + SLACK, (g.timestamp, before, after)
        assert [g.timestamp for g in got] == sorted(g.timestamp for g in got)
    kc = consume_kcat(broker.bootstrap, topic)
    assert [k.ts_type for k in kc] == [TS_APPEND] * 30
    batches = raw_fetch_batches(broker.bootstrap, topic)
    for b in batches:
        assert b.log_append_time, 'batch attributes lack the LogAppendTime bit'
        assert before - SLACK <= b.max_timestamp <= after + SLACK
        assert b.crc_ok(), 'CRC not rewritten after setting LogAppendTime'


def test_log_append_time_in_produce_response(broker):
    t_lat = unique_topic('lat-resp')
    t_ct = unique_topic('ct-resp')
    create_topic(broker.bootstrap, t_lat, config={'message.timestamp.type': 'LogAppendTime'})
    create_topic(broker.bootstrap, t_ct)
    old = now_ms() - 86400 * 1000
    batch = kr.build_batch([(b'k', b'v', [], old)], base_timestamp=old)
    with kr.Conn.to(broker.bootstrap) as c:
        before = now_ms()
        r1 = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, t_lat, 0, batch)), 3)
        after = now_ms()
        r2 = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, t_ct, 0, batch)), 3)
    assert r1[(t_lat, 0)]['error'] == 0
    assert before - SLACK <= r1[(t_lat, 0)]['log_append_time'] <= after + SLACK
    assert r2[(t_ct, 0)]['error'] == 0
    assert r2[(t_ct, 0)]['log_append_time'] == -1
    g = consume_confluent(broker.bootstrap, t_ct, count=1)[0]
    assert (g.timestamp, g.ts_type) == (old, TS_CREATE)
    g = consume_confluent(broker.bootstrap, t_lat, count=1)[0]
    assert g.ts_type == TS_APPEND and g.timestamp == r1[(t_lat, 0)]['log_append_time']


def _too_large(broker_bootstrap, t, big, small):
    conf = {'message.max.bytes': 10_000_000, 'retries': 0}
    res = produce_confluent(broker_bootstrap, t, [{'key': b'big', 'value': b'x' * big,
                                                   'headers': [], 'timestamp': None}],
                            conf=conf, expect_errors=True, timeout=20)
    assert res[0][0] is not None, 'a %d-byte record was accepted' % big
    assert res[0][0].code() == ck.KafkaError.MSG_SIZE_TOO_LARGE, res[0][0]
    ok = [{'key': b'small', 'value': b'y' * small, 'headers': [], 'timestamp': now_ms() - 10}]
    res = produce_confluent(broker_bootstrap, t, ok, conf=conf)
    assert res[0][2] == 0, 'the refused record must not take an offset'
    assert_records(consume_confluent(broker_bootstrap, t, count=1), ok)
    assert watermarks(broker_bootstrap, t) == (0, 1)


def test_topic_max_message_bytes(broker, topic):
    create_topic(broker.bootstrap, topic, config={'max.message.bytes': '2000'})
    _too_large(broker.bootstrap, topic, 5000, 1000)
    # raw: an oversized batch gets MESSAGE_TOO_LARGE and nothing is appended
    batch = kr.build_batch([(b'k', b'z' * 3000, [], None)])
    with kr.Conn.to(broker.bootstrap) as c:
        r = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, topic, 0, batch)), 3)
    assert r[(topic, 0)]['error'] == kr.MESSAGE_TOO_LARGE
    assert watermarks(broker.bootstrap, topic) == (0, 1)


def test_default_message_max_bytes(broker, topic):
    """Broker default message.max.bytes=1048588: 1.1 MB refused, 1 MB taken."""
    create_topic(broker.bootstrap, topic)
    _too_large(broker.bootstrap, topic, 1_100_000, 1_000_000)


def test_broker_message_max_bytes_override(start_broker):
    b = start_broker(message__max__bytes=3000)
    t = unique_topic('mmb')
    create_topic(b.bootstrap, t)
    _too_large(b.bootstrap, t, 5000, 1500)


@pytest.mark.parametrize('ts_type', ['CreateTime', 'LogAppendTime'])
def test_timestamp_type_explicit(broker, ts_type):
    t = unique_topic('tst')
    create_topic(broker.bootstrap, t, config={'message.timestamp.type': ts_type})
    recs = make_records(5, 'tst')
    produce_confluent(broker.bootstrap, t, recs)
    got = consume_confluent(broker.bootstrap, t, count=5)
    if ts_type == 'CreateTime':
        assert_records(got, recs)
    else:
        assert_records(got, recs, check_ts=False)
        assert all(g.timestamp > recs[-1]['timestamp'] for g in got)


def test_min_insync_replicas_applies_to_acks_all_only(broker):
    """A single node is one in-sync replica: acks=all with min.insync.replicas=2
    is refused with NOT_ENOUGH_REPLICAS, acks=1 still appends."""
    t = unique_topic('min-isr')
    create_topic(broker.bootstrap, t, config={'min.insync.replicas': '2'})
    recs = make_records(3, 'isr')
    res = produce_confluent(broker.bootstrap, t, recs, conf={'acks': 'all', 'retries': 0},
                            timeout=10.0, expect_errors=True)
    assert [r[0].code() for r in res] == [ck.KafkaError.NOT_ENOUGH_REPLICAS] * 3
    assert watermarks(broker.bootstrap, t) == (0, 0)
    res = produce_confluent(broker.bootstrap, t, recs, conf={'acks': 1})
    assert [r[2] for r in res] == [0, 1, 2]
    assert_records(consume_confluent(broker.bootstrap, t, count=3), recs)
