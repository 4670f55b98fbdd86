"""Produce (acks 0/1/all) and consume back with every client: keys, values,
headers, timestamps, dense offsets from 0, null keys, tombstones, empty
values, offsets assigned by the broker."""

import pytest

import kafka_raw as kr
from conftest import unique_topic
from helpers import (TS_CREATE, assert_records, consume_confluent, consume_kafka_python,
                     consume_kcat, create_topic, make_records, now_ms, produce_confluent,
                     produce_kafka_python, produce_kcat, watermarks)


@pytest.mark.parametrize('acks', [0, 1, -1])
def test_confluent_acks(broker, topic, acks):
    create_topic(broker.bootstrap, topic)
    recs = make_records(40, 'acks%d' % acks)
    res = produce_confluent(broker.bootstrap, topic, recs, conf={'acks': acks})
    if acks != 0:
        assert [r[2] for r in res] == list(range(40)), 'broker-assigned offsets in delivery reports'
    assert_records(consume_confluent(broker.bootstrap, topic, count=40), recs)
    assert watermarks(broker.bootstrap, topic) == (0, 40)


@pytest.mark.parametrize('acks', [0, 1, 'all'])
def test_kafka_python_acks(broker, topic, acks):
    create_topic(broker.bootstrap, topic)
    recs = make_records(25, 'kpacks')
    md = produce_kafka_python(broker.bootstrap, topic, recs, acks=acks)
    if acks != 0:
        assert [m.offset for m in md] == list(range(25))
    assert_records(consume_kafka_python(broker.bootstrap, topic, count=25), recs)


@pytest.mark.parametrize('producer', ['confluent', 'kafka-python'])
def test_cross_client_roundtrip(broker, producer):
    """Records from one client read back identically by all three consumers."""
    t = unique_topic('x-' + producer)
    create_topic(broker.bootstrap, t)
    recs = make_records(60, 'x' + producer[0])
    if producer == 'confluent':
        produce_confluent(broker.bootstrap, t, recs)
    else:
        produce_kafka_python(broker.bootstrap, t, recs)
    assert_records(consume_confluent(broker.bootstrap, t, count=60), recs)
    assert_records(consume_kafka_python(broker.bootstrap, t, count=60), recs)
    assert_records(consume_kcat(broker.bootstrap, t), recs)


def test_null_keys_tombstones_empty_values_and_headers(broker, topic):
    create_topic(broker.bootstrap, topic)
    ts = now_ms() - 5000
    binary = bytes(range(256))
    recs = [
        {'key': None, 'value': b'no-key', 'headers': [], 'timestamp': ts},
        {'key': b'tomb', 'value': None, 'headers': [], 'timestamp': ts + 1},
        {'key': b'empty', 'value': b'', 'headers': [], 'timestamp': ts + 2},
        {'key': b'', 'value': b'empty-key', 'headers': [], 'timestamp': ts + 3},
        {'key': None, 'value': None, 'headers': [('only', b'header')], 'timestamp': ts + 4},
        {'key': binary, 'value': binary * 3, 'timestamp': ts + 5,
         'headers': [('dup', b'1'), ('dup', b'2'), ('nullh', None), ('emptyh', b''),
                     ('bin', binary)]},
        {'key': b'old', 'value': b'2001', 'headers': [], 'timestamp': 978307200000},
        {'key': b'k' * 1000, 'value': b'v' * 100000, 'headers': [('big', b'h' * 5000)],
         'timestamp': ts + 6},
    ]
    produce_confluent(broker.bootstrap, topic, recs)
    assert_records(consume_confluent(broker.bootstrap, topic, count=len(recs)), recs)
    got = consume_kafka_python(broker.bootstrap, topic, count=len(recs))
    assert_records(got, recs)


def test_kafka_python_null_key_and_tombstone(broker, topic):
    create_topic(broker.bootstrap, topic)
    ts = now_ms() - 1000
    recs = [{'key': None, 'value': b'v0', 'headers': [('a', b'b')], 'timestamp': ts},
            {'key': b'k1', 'value': None, 'headers': [], 'timestamp': ts + 10},
            {'key': b'k2', 'value': b'', 'headers': [], 'timestamp': ts + 20}]
    produce_kafka_python(broker.bootstrap, topic, recs)
    assert_records(consume_confluent(broker.bootstrap, topic, count=3), recs)
    assert_records(consume_kafka_python(broker.bootstrap, topic, count=3), recs)


def test_kcat_produce_with_key_and_headers(broker, topic):
    create_topic(broker.bootstrap, topic)
    before = now_ms()
    lines = [('key-%d' % i, 'value %d with spaces' % i) for i in range(30)]
    produce_kcat(broker.bootstrap, topic, lines, headers=[('src', 'kcat'), ('n', '1')])
    after = now_ms()
    for got in (consume_confluent(broker.bootstrap, topic, count=30),
                consume_kafka_python(broker.bootstrap, topic, count=30),
                consume_kcat(broker.bootstrap, topic)):
        assert [g.offset for g in got] == list(range(30))
        assert [(g.key, g.value) for g in got] == [(k.encode(), v.encode()) for k, v in lines]
        for g in got:
            assert g.headers == [('src', b'kcat'), ('n', b'1')]
            assert g.ts_type == TS_CREATE
            assert before - 1000 <= g.timestamp <= after + 1000, (g.timestamp, before, after)


def test_partitions_have_independent_dense_offsets(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=3)
    per = {p: make_records(10 + p, 'p%d' % p) for p in range(3)}
    # interleave partitions in one producer
    allrecs = []
    for i in range(12):
        for p in range(3):
            if i < len(per[p]):
                r = dict(per[p][i])
                r['partition'] = p
                allrecs.append(r)
    res = produce_confluent(broker.bootstrap, topic, allrecs)
    for p in range(3):
        offs = [r[2] for r, s in zip(res, allrecs) if s['partition'] == p]
        assert offs == list(range(len(per[p])))
        assert_records(consume_confluent(broker.bootstrap, topic, partition=p,
                                         count=len(per[p])), per[p])
        assert watermarks(broker.bootstrap, topic, p) == (0, len(per[p]))


def test_raw_produce_offsets_assigned_by_broker(broker, topic):
    """The broker assigns offsets whatever baseOffset the client wrote, and
    reports each batch's base offset."""
    create_topic(broker.bootstrap, topic)
    ts = now_ms() - 100
    with kr.Conn.to(broker.bootstrap) as c:
        for i, (n, bogus) in enumerate([(3, 0), (2, 12345), (4, -7)]):
            recs = [(b'k%d-%d' % (i, j), b'v%d-%d' % (i, j), [('h', b'%d' % j)], ts + j)
                    for j in range(n)]
            batch = kr.build_batch(recs, base_timestamp=ts, base_offset=bogus)
            res = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, topic, 0, batch, 1)), 3)
            assert res[(topic, 0)]['error'] == 0
            assert res[(topic, 0)]['base_offset'] == [0, 3, 5][i]
        # the Fetch hands the batches back with the assigned offsets and valid CRCs
        f = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 0)))
    p = f[(topic, 0)]
    assert p['error'] == 0 and p['high_watermark'] == 9
    batches = kr.parse_batches(p['records'])
    assert [(b.base_offset, b.records_count, b.last_offset_delta) for b in batches] == \
        [(0, 3, 2), (3, 2, 1), (5, 4, 3)]
    assert all(b.crc_ok() and b.magic == 2 for b in batches)
    got = [r for b in batches for r in b.records()]
    assert [r['offset'] for r in got] == list(range(9))
    assert got[4]['key'] == b'k1-1' and got[4]['headers'] == [('h', b'1')]
    assert got[8]['timestamp'] == ts + 3


def test_raw_acks0_gets_no_response(broker, topic):
    """acks=0: the broker sends no response; the next request's answer is
    the first thing on the wire."""
    create_topic(broker.bootstrap, topic)
    with kr.Conn.to(broker.bootstrap) as c:
        batch = kr.build_batch([(b'k', b'v', [], None)])
        c.send(kr.PRODUCE, 3, kr.produce_body(3, topic, 0, batch, acks=0), corr=77)
        c.send(kr.API_VERSIONS, 0, b'', corr=78)
        corr, r = c.recv()
        assert corr == 78
        assert kr.parse_api_versions(r, 0)[0] == 0
    got = consume_confluent(broker.bootstrap, topic, count=1)
    assert [(g.offset, g.key, g.value) for g in got] == [(0, b'k', b'v')]


def test_empty_partition_consumes_nothing(broker, topic):
    create_topic(broker.bootstrap, topic)
    assert consume_confluent(broker.bootstrap, topic) == []
    assert consume_kafka_python(broker.bootstrap, topic) == []
    assert consume_kcat(broker.bootstrap, topic) == []
    assert watermarks(broker.bootstrap, topic) == (0, 0)



def _advertised(bootstrap, key):
    with kr.Conn.to(bootstrap) as c:
        return kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)[1][key]


def test_raw_produce_and_fetch_every_version(broker, topic):
    """Every advertised Produce (from v3) and Fetch version, flexible ones
    included (Fetch v13+ by topic id, as the Java client sends)."""
    create_topic(broker.bootstrap, topic)
    plo, phi = _advertised(broker.bootstrap, kr.PRODUCE)
    flo, fhi = _advertised(broker.bootstrap, kr.FETCH)
    assert phi >= 9 and fhi >= 12, 'flexible Produce/Fetch versions must be served'
    ts = now_ms() - 1000
    sent = []
    with kr.Conn.to(broker.bootstrap) as c:
        for v in range(max(plo, 3), phi + 1):
            recs = [(b'v%d-k%d' % (v, j), b'v%d-val%d' % (v, j), [('ver', b'%d' % v)], ts + v)
                    for j in range(2)]
            batch = kr.build_batch(recs, base_timestamp=ts + v)
            r = c.request(kr.PRODUCE, v, kr.produce_body_any(v, topic, [(0, batch)], acks=1),
                          flexible=v >= 9)
            res = kr.parse_produce_any(r, v)[(topic, 0)]
            assert r.remaining() == 0, 'trailing bytes in Produce v%d response' % v
            assert (res['error'], res['base_offset']) == (0, len(sent)), (v, res)
            sent += recs
        tid = None
        if fhi >= 13:
            err, tid = kr.metadata_topic_id(c, topic)
            assert err == 0 and tid != b'\0' * 16, 'topic id missing from Metadata v10'
        for v in range(max(flo, 4), fhi + 1):
            r = c.request(kr.FETCH, v, kr.fetch_body_any(v, topic, [(0, 0, 1048576)], topic_id=tid),
                          flexible=v >= 12)
            top, session, parts = kr.parse_fetch_any(r, v)
            assert r.remaining() == 0, 'trailing bytes in Fetch v%d response' % v
            assert top == 0 and session == 0, (v, top, session)
            p = parts[(tid if v >= 13 else topic, 0)]
            assert p['error'] == 0 and p['high_watermark'] == len(sent), (v, p['error'])
            got = [x for b in kr.parse_batches(p['records']) for x in b.records()]
            assert [(x['offset'], x['key'], x['value'], x['headers'], x['timestamp'])
                    for x in got] == [(i, k, val, h, t) for i, (k, val, h, t) in enumerate(sent)], v
        if fhi >= 13:
            r = c.request(kr.FETCH, 13, kr.fetch_body_any(13, topic, [(0, 0, 1048576)],
                                                          topic_id=b'\x07' * 16), flexible=True)
            top, _, parts = kr.parse_fetch_any(r, 13)
            errs = {p['error'] for p in parts.values()} | {top}
            assert 100 in errs, 'unknown topic id: expected UNKNOWN_TOPIC_ID (100), got %s' % errs


def test_raw_fetch_response_max_bytes_across_partitions(broker, topic):
    """Response-level max_bytes: the first partition with data returns one
    whole batch even over the limit; the next gets nothing this time."""
    create_topic(broker.bootstrap, topic, partitions=2)
    for p in (0, 1):
        recs = make_records(6, 'mb%d' % p, value_size=800)
        for r in recs:
            r['partition'] = p
        produce_confluent(broker.bootstrap, topic, recs, conf={'linger.ms': 50})
    with kr.Conn.to(broker.bootstrap) as c:
        r = c.request(kr.FETCH, 11, kr.fetch_body_any(11, topic, [(0, 0, 1048576), (1, 0, 1048576)],
                                                      max_bytes=1))
        _, _, parts = kr.parse_fetch_any(r, 11)
    b0 = kr.parse_batches(parts[(topic, 0)]['records'])
    assert len(b0) == 1 and len(parts[(topic, 0)]['records']) == b0[0].size
    assert b0[0].base_offset == 0
    assert parts[(topic, 1)]['error'] == 0
    assert not parts[(topic, 1)]['records'], 'second partition got data past max_bytes'
