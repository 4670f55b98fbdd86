"""Fetch: long poll, mid-batch offsets, tiny max bytes still progress, empty
partitions, out-of-range offsets."""

import threading
import time

import confluent_kafka as ck

import kafka_raw as kr
from helpers import (assert_records, confluent_consumer, consume_confluent, consume_kafka_python,
                     consume_kcat, create_topic, make_records, produce_confluent,
                     raw_fetch_batches, _confluent_rec)


def test_raw_long_poll_wakes_on_produce(broker, topic):
    create_topic(broker.bootstrap, topic)
    recs = make_records(1, 'lp')
    with kr.Conn.to(broker.bootstrap, timeout=30) as c:
        start = time.monotonic()
        c.send(kr.FETCH, 5, kr.fetch_body(topic, 0, 0, max_wait_ms=20000, min_bytes=1))
        # give the broker a moment to park the fetch (not a correctness sync)
        time.sleep(0.3)
        produce_confluent(broker.bootstrap, topic, recs)
        _, r = c.recv()
        elapsed = time.monotonic() - start
        p = kr.parse_fetch(r)[(topic, 0)]
    assert p['error'] == 0
    batches = kr.parse_batches(p['records'])
    got = [x for b in batches for x in b.records()]
    assert [(x['offset'], x['key'], x['value'], x['headers'], x['timestamp']) for x in got] == \
        [(0, recs[0]['key'], recs[0]['value'], recs[0]['headers'], recs[0]['timestamp'])]
    assert elapsed < 15, 'long poll answered only after %.1fs (max wait 20s)' % elapsed


def test_raw_fetch_empty_partition(broker, topic):
    create_topic(broker.bootstrap, topic)
    with kr.Conn.to(broker.bootstrap) as c:
        f = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 0, max_wait_ms=200)))
        f4 = kr.parse_fetch(c.request(kr.FETCH, 4, kr.fetch_body(topic, 0, 0, max_wait_ms=0,
                                                                 version=4)), 4)
    for x in (f, f4):
        p = x[(topic, 0)]
        assert p['error'] == 0
        assert p['high_watermark'] == 0
        assert p['records'] is not None and p['records'] == b'', p['records']


def test_raw_fetch_min_bytes_not_reached_returns_data_after_max_wait(broker, topic):
    create_topic(broker.bootstrap, topic)
    recs = make_records(2, 'minb')
    produce_confluent(broker.bootstrap, topic, recs)
    with kr.Conn.to(broker.bootstrap, timeout=20) as c:
        p = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(
            topic, 0, 0, max_wait_ms=300, min_bytes=10 * 1024 * 1024)))[(topic, 0)]
    assert p['error'] == 0 and p['high_watermark'] == 2
    got = [x for b in kr.parse_batches(p['records']) for x in b.records()]
    assert [(x['offset'], x['key'], x['value']) for x in got] == \
        [(i, r['key'], r['value']) for i, r in enumerate(recs)]


def test_consumer_long_poll_receives_later_record(broker, topic):
    create_topic(broker.bootstrap, topic)
    recs = make_records(3, 'later')
    c = confluent_consumer(broker.bootstrap, **{'fetch.wait.max.ms': 5000})
    try:
        c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        end = time.monotonic() + 15
        eof = False
        while not eof and time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is not None, 'unexpected record on an empty partition'
                eof = m.error().code() == ck.KafkaError._PARTITION_EOF
        assert eof, 'no end-of-partition on the empty partition'
        th = threading.Thread(target=produce_confluent, args=(broker.bootstrap, topic, recs))
        th.start()
        got = []
        end = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(_confluent_rec(m))
        th.join(20)
        assert_records(got, recs)
    finally:
        c.close()


def _many_per_batch(broker, topic, n=100):
    recs = make_records(n, 'mid')
    produce_confluent(broker.bootstrap, topic, recs,
                      conf={'linger.ms': 500, 'batch.num.messages': 10000})
    batches = raw_fetch_batches(broker.bootstrap, topic)
    assert sum(b.records_count for b in batches) == n
    assert max(b.records_count for b in batches) >= 10, 'test needs batches of many records'
    return recs, batches


def test_fetch_mid_batch_offset(broker, topic):
    create_topic(broker.bootstrap, topic)
    recs, batches = _many_per_batch(broker, topic)
    big = max(batches, key=lambda b: b.records_count)
    mids = sorted({big.base_offset + 1, big.base_offset + big.records_count // 2,
                   big.base_offset + big.last_offset_delta, 37, 99})
    for n in mids:
        got = consume_confluent(broker.bootstrap, topic, offset=n, count=100 - n)
        assert_records(got, recs[n:], first_offset=n)
    got = consume_kafka_python(broker.bootstrap, topic, offset=37, count=63)
    assert_records(got, recs[37:], first_offset=37)
    got = consume_kcat(broker.bootstrap, topic, offset=37)
    assert_records(got, recs[37:], first_offset=37)
    # raw: the batch holding the offset comes back whole
    n = big.base_offset + 3
    with kr.Conn.to(broker.bootstrap) as c:
        p = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, n)))[(topic, 0)]
    first = kr.parse_batches(p['records'])[0]
    assert first.base_offset == big.base_offset
    assert first.raw == big.raw


def test_tiny_fetch_max_bytes_still_progresses(broker, topic):
    create_topic(broker.bootstrap, topic)
    recs = make_records(40, 'tiny', value_size=1500)
    produce_confluent(broker.bootstrap, topic, recs,
                      conf={'linger.ms': 200, 'batch.num.messages': 5})
    batches = raw_fetch_batches(broker.bootstrap, topic)
    assert all(b.size > 1000 for b in batches)
    got = consume_confluent(broker.bootstrap, topic, count=40,
                            conf={'fetch.max.bytes': 1000, 'message.max.bytes': 1000,
                                  'max.partition.fetch.bytes': 1})
    assert_records(got, recs)
    got = consume_kafka_python(broker.bootstrap, topic, count=40,
                               max_partition_fetch_bytes=1, fetch_max_bytes=1)
    assert_records(got, recs)
    # raw: exactly the first whole batch comes back when it exceeds both limits
    with kr.Conn.to(broker.bootstrap) as c:
        for off in (0, batches[1].base_offset):
            p = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(
                topic, 0, off, max_bytes=1, partition_max_bytes=1)))[(topic, 0)]
            assert p['error'] == 0
            got_b = kr.parse_batches(p['records'])
            want = [b for b in batches if b.base_offset == off][0]
            assert len(got_b) == 1 and got_b[0].raw == want.raw
            assert len(p['records']) == want.size


def test_fetch_out_of_range_and_at_end(broker, topic):
    create_topic(broker.bootstrap, topic)
    produce_confluent(broker.bootstrap, topic, make_records(5, 'oor'))
    with kr.Conn.to(broker.bootstrap) as c:
        at_end = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 5)))[(topic, 0)]
        past = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 1000)))[(topic, 0)]
        neg = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, -5)))[(topic, 0)]
        unknown = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 7, 0)))[(topic, 7)]
    assert (at_end['error'], at_end['high_watermark'], at_end['records']) == (0, 5, b'')
    assert past['error'] == kr.OFFSET_OUT_OF_RANGE
    assert neg['error'] == kr.OFFSET_OUT_OF_RANGE
    assert unknown['error'] == kr.UNKNOWN_TOPIC_OR_PARTITION


def test_consumer_out_of_range_resets_to_earliest(broker, topic):
    create_topic(broker.bootstrap, topic)
    recs = make_records(5, 'reset')
    produce_confluent(broker.bootstrap, topic, recs)
    got = consume_confluent(broker.bootstrap, topic, offset=500, count=5)
    assert_records(got, recs)
