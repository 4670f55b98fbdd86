"""All four codecs produced by librdkafka, kafka-python (what it can) and
kcat -z, consumed back by the other clients; topic compression.type
recompresses on append (checked on the raw batches)."""

import pytest
from kafka import codec as kp_codec

import kafka_raw as kr
from conftest import unique_topic
from helpers import (assert_records, consume_confluent, consume_kafka_python, consume_kcat,
                     create_topic, make_records, now_ms, produce_confluent,
                     produce_kafka_python, produce_kcat, raw_fetch_batches)

CODECS = {'gzip': kr.CODEC_GZIP, 'snappy': kr.CODEC_SNAPPY, 'lz4': kr.CODEC_LZ4,
          'zstd': kr.CODEC_ZSTD}
KP_HAS = {'gzip': kp_codec.has_gzip(), 'snappy': kp_codec.has_snappy(),
          'lz4': kp_codec.has_lz4(), 'zstd': kp_codec.has_zstd()}


def compressible_records(n, prefix):
    recs = make_records(n, prefix)
    for r in recs:
        r['value'] = r['value'] + b' lorem ipsum dolor sit amet' * 20
    return recs


def check_batches(bootstrap, topic, codec, n):
    batches = raw_fetch_batches(bootstrap, topic)
    assert batches, 'no batches stored'
    assert sum(b.records_count for b in batches) == n
    assert {b.codec for b in batches} == {codec}, \
        'stored codecs %s, expected %d' % ({b.codec for b in batches}, codec)
    assert all(b.crc_ok() for b in batches)
    assert [b.base_offset for b in batches] == sorted(b.base_offset for b in batches)
    return batches


@pytest.mark.parametrize('name', sorted(CODECS))
def test_librdkafka_codec(broker, name):
    t = unique_topic('rdk-' + name)
    create_topic(broker.bootstrap, t)
    recs = compressible_records(300, name)
    produce_confluent(broker.bootstrap, t, recs,
                      conf={'compression.type': name, 'linger.ms': 50, 'batch.num.messages': 100})
    check_batches(broker.bootstrap, t, CODECS[name], 300)
    assert_records(consume_confluent(broker.bootstrap, t, count=300), recs)
    assert_records(consume_kcat(broker.bootstrap, t), recs)
    if KP_HAS[name]:
        assert_records(consume_kafka_python(broker.bootstrap, t, count=300), recs)


@pytest.mark.parametrize('name', sorted(CODECS))
def test_kafka_python_codec(broker, name):
    if not KP_HAS[name]:
        pytest.skip('kafka-python here lacks the %s module' % name)
    t = unique_topic('kp-' + name)
    create_topic(broker.bootstrap, t)
    recs = compressible_records(200, 'kp' + name)
    produce_kafka_python(broker.bootstrap, t, recs, compression_type=name, linger_ms=50)
    check_batches(broker.bootstrap, t, CODECS[name], 200)
    assert_records(consume_confluent(broker.bootstrap, t, count=200), recs)
    assert_records(consume_kcat(broker.bootstrap, t), recs)
    assert_records(consume_kafka_python(broker.bootstrap, t, count=200), recs)


@pytest.mark.parametrize('name', sorted(CODECS))
def test_kcat_codec(broker, name):
    t = unique_topic('kcat-' + name)
    create_topic(broker.bootstrap, t)
    lines = [('k%d' % i, 'value-%d %s' % (i, 'abc' * 50)) for i in range(150)]
    produce_kcat(broker.bootstrap, t, lines, headers=[('codec', name)], compression=name,
                 extra=['-X', 'linger.ms=50'])
    check_batches(broker.bootstrap, t, CODECS[name], 150)
    got = consume_confluent(broker.bootstrap, t, count=150)
    assert [(g.offset, g.key, g.value, g.headers) for g in got] == \
        [(i, k.encode(), v.encode(), [('codec', name.encode())]) for i, (k, v) in enumerate(lines)]
    if KP_HAS[name]:
        got = consume_kafka_python(broker.bootstrap, t, count=150)
        assert [(g.key, g.value) for g in got] == [(k.encode(), v.encode()) for k, v in lines]


def test_xerial_snappy_from_raw_producer(broker, topic):
    """Snappy in the Java client's xerial framing (built here by hand) is
    accepted and read back by librdkafka."""
    create_topic(broker.bootstrap, topic)
    ts = now_ms() - 1000
    recs = [(b'xk%d' % i, b'xerial value %d ' % i * 30, [('h', b'%d' % i)], ts + i)
            for i in range(50)]
    batch = kr.build_batch(recs, base_timestamp=ts, codec=kr.CODEC_SNAPPY)
    with kr.Conn.to(broker.bootstrap) as c:
        res = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, topic, 0, batch)), 3)
    assert res[(topic, 0)]['error'] == 0 and res[(topic, 0)]['base_offset'] == 0
    got = consume_confluent(broker.bootstrap, topic, count=50)
    assert [(g.offset, g.key, g.value, g.headers, g.timestamp) for g in got] == \
        [(i, k, v, h, t) for i, (k, v, h, t) in enumerate(recs)]


@pytest.mark.parametrize('topic_codec,producer_codec', [
    ('gzip', 'none'), ('gzip', 'lz4'), ('gzip', 'xerial-snappy'), ('zstd', 'gzip'),
    ('uncompressed', 'gzip'), ('lz4', 'zstd'), ('snappy', 'none')])
def test_topic_compression_type_recompresses(broker, topic_codec, producer_codec):
    t = unique_topic('recomp-%s-%s' % (topic_codec, producer_codec))
    create_topic(broker.bootstrap, t, config={'compression.type': topic_codec})
    recs = compressible_records(120, 'rc')
    if producer_codec == 'xerial-snappy':
        batch = kr.build_batch([(r['key'], r['value'], r['headers'], r['timestamp']) for r in recs],
                               base_timestamp=recs[0]['timestamp'], codec=kr.CODEC_SNAPPY)
        with kr.Conn.to(broker.bootstrap) as c:
            res = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, t, 0, batch)), 3)
        assert res[(t, 0)]['error'] == 0
    else:
        produce_confluent(broker.bootstrap, t, recs,
                          conf={'compression.type': producer_codec, 'linger.ms': 50})
    want = 0 if topic_codec == 'uncompressed' else CODECS[topic_codec]
    batches = check_batches(broker.bootstrap, t, want, 120)
    if want in (kr.CODEC_NONE, kr.CODEC_GZIP):
        got = [r for b in batches for r in b.records()]
        assert [(r['offset'], r['key'], r['value'], r['headers'], r['timestamp']) for r in got] == \
            [(i, r['key'], r['value'], r['headers'], r['timestamp']) for i, r in enumerate(recs)]
    assert_records(consume_confluent(broker.bootstrap, t, count=120), recs)
    assert_records(consume_kcat(broker.bootstrap, t), recs)
