"""Retention by time and by size with tiny segments: closed segments go, the
active one stays, the log start offset moves, each deletion is logged with
topic, partition, segment and reason; consumers asking below the start get
OFFSET_OUT_OF_RANGE and auto.offset.reset earliest/latest works (librdkafka
and kafka-python, assign()); retention and segment configs changed through
IncrementalAlterConfigs take effect without a restart."""

import glob
import os
import re
import time

import confluent_kafka as ck
import pytest

import kafka_raw
from helpers import (confluent_consumer, consume_confluent, create_topic, kp_consumer, make_records,
                     now_ms, produce_confluent, wait_for, watermarks)

FAST = {'log.retention.check.interval.ms': 200, 'log.cleaner.backoff.ms': 200}
SMALL = {'segment.bytes': '1024'}
SMALL_BATCHES = {'linger.ms': 2, 'batch.num.messages': 4}


@pytest.fixture(scope='module')
def rbroker():
    from conftest import Broker, BrokerDied, EXTERNAL, _finish
    if EXTERNAL:
        pytest.skip('needs a broker started by the suite (RUNNEL_BOOTSTRAP is set)')
    b = Broker(dict(FAST))
    try:
        b.start()
    except BrokerDied as e:
        b.cleanup()
        pytest.fail(str(e))
    yield b
    _finish(b)


def segment_bases(broker, topic, partition=0):
    d = broker.partition_dir(topic, partition)
    return sorted(int(os.path.basename(p)[:20])
                  for p in glob.glob(os.path.join(d, '[0-9]' * 20 + '.log')))


def log_bytes(broker, topic):
    d = broker.partition_dir(topic, 0)
    total = 0
    for p in glob.glob(os.path.join(d, '*.log')):
        try:
            total += os.path.getsize(p)
        except FileNotFoundError:  # deleted by retention meanwhile
            pass
    return total


def low(broker, topic):
    return watermarks(broker.bootstrap, topic)[0]


def raw_fetch_error(bootstrap, topic, offset):
    with kafka_raw.Conn.to(bootstrap) as c:
        f = kafka_raw.parse_fetch(c.request(kafka_raw.FETCH, 5, kafka_raw.fetch_body(
            topic, 0, offset, max_wait_ms=0, min_bytes=0)))
    p = f[(topic, 0)]
    return p['error'], p['log_start_offset'], p['high_watermark']


def test_time_retention_deletes_closed_segments(rbroker, topic):
    create_topic(rbroker.bootstrap, topic, config=dict(SMALL, **{'retention.ms': '60000'}))
    mark = rbroker.log_size()
    old = make_records(200, 'old', base_ts=now_ms() - 3600 * 1000, value_size=40)
    produce_confluent(rbroker.bootstrap, topic, old, conf=SMALL_BATCHES)
    end = watermarks(rbroker.bootstrap, topic)[1]
    assert end == 200
    # Everything is an hour old: all closed segments go, the active one stays.
    wait_for(lambda: len(segment_bases(rbroker, topic)) == 1, 15, 0.1, 'one segment left')
    active = segment_bases(rbroker, topic)[0]
    assert 0 < active < 200
    assert low(rbroker, topic) == active
    text = rbroker.log_text(mark)
    lines = [ln for ln in text.splitlines() if 'deleting segment' in ln and topic in ln]
    assert len(lines) >= 2
    assert re.search(r'topic %s partition 0: deleting segment 00000000000000000000 '
                     r'\(retention\.ms 60000 breached' % re.escape(topic), text)
    # The active segment's records are intact and readable.
    got = consume_confluent(rbroker.bootstrap, topic, offset=active)
    assert [g.value for g in got] == [r['value'] for r in old[active:]]
    # Below the start offset: OFFSET_OUT_OF_RANGE on the wire.
    err, start, hw = raw_fetch_error(rbroker.bootstrap, topic, 0)
    assert (err, start, hw) == (kafka_raw.OFFSET_OUT_OF_RANGE, active, 200)
    # New records keep flowing; recent ones are not deleted.
    produce_confluent(rbroker.bootstrap, topic, make_records(50, 'new', base_ts=now_ms(), value_size=40),
                      conf=SMALL_BATCHES)
    # The formerly active segment may now also hold new records (its largest
    # timestamp is then recent and it stays, as in Kafka): only check that
    # nothing recent goes.
    time.sleep(0.6)  # three more retention checks: nothing recent may go
    assert active <= low(rbroker, topic) <= 200
    got = consume_confluent(rbroker.bootstrap, topic, offset=200)
    assert [g.offset for g in got] == list(range(200, 250))


def test_size_retention(rbroker, topic):
    create_topic(rbroker.bootstrap, topic,
                 config=dict(SMALL, **{'retention.bytes': '4000', 'retention.ms': '-1'}))
    recs = make_records(400, 'sz', value_size=60)
    produce_confluent(rbroker.bootstrap, topic, recs, conf=SMALL_BATCHES)
    wait_for(lambda: log_bytes(rbroker, topic) < 4000 + 1100, 15, 0.1, 'size retention')
    assert log_bytes(rbroker, topic) >= 4000 - 1100
    start = low(rbroker, topic)
    assert start == segment_bases(rbroker, topic)[0] and start > 0
    got = consume_confluent(rbroker.bootstrap, topic, offset=ck.OFFSET_BEGINNING)
    assert got[0].offset == start
    assert [g.value for g in got] == [r['value'] for r in recs[start:]]
    assert 'retention.bytes 4000 breached' in rbroker.log_text()


def _produce_old_and_expire(broker, topic, n=120):
    create_topic(broker.bootstrap, topic, config=dict(SMALL, **{'retention.ms': '60000'}))
    recs = make_records(n, 'x', base_ts=now_ms() - 3600 * 1000, value_size=40)
    produce_confluent(broker.bootstrap, topic, recs, conf=SMALL_BATCHES)
    wait_for(lambda: low(broker, topic) > 0, 15, 0.1, 'retention to move the log start')
    return recs, low(broker, topic)


@pytest.mark.parametrize('reset', ['earliest', 'latest'])
def test_confluent_reset_below_start(rbroker, topic, reset):
    recs, start = _produce_old_and_expire(rbroker, topic)
    c = confluent_consumer(rbroker.bootstrap, **{'auto.offset.reset': reset})
    got = []
    try:
        c.assign([ck.TopicPartition(topic, 0, 0)])  # below the start offset
        if reset == 'latest':
            # Once the reset happened (end of partition reached at the end), new records arrive.
            def at_end():
                m = c.poll(0.1)
                return m is not None and m.error() is not None and \
                    m.error().code() == ck.KafkaError._PARTITION_EOF and m.offset() == len(recs)
            wait_for(at_end, 15, 0.01, 'reset to latest')
            produce_confluent(rbroker.bootstrap, topic, make_records(3, 'after', value_size=5))
        want = len(recs) - start if reset == 'earliest' else 3
        end = time.monotonic() + 20
        while len(got) < want and time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.offset(), m.value()))
    finally:
        c.close()
    if reset == 'earliest':
        assert got[0][0] == start
        assert [v for _, v in got] == [r['value'] for r in recs[start:]]
    else:
        assert [o for o, _ in got] == [len(recs), len(recs) + 1, len(recs) + 2]


@pytest.mark.parametrize('reset', ['earliest', 'latest'])
def test_kafka_python_reset_below_start(rbroker, topic, reset):
    from kafka import TopicPartition
    recs, start = _produce_old_and_expire(rbroker, topic)
    c = kp_consumer(rbroker.bootstrap, auto_offset_reset=reset)
    tp = TopicPartition(topic, 0)
    got = []
    try:
        c.assign([tp])
        c.seek(tp, 0)
        if reset == 'latest':
            wait_for(lambda: (c.poll(timeout_ms=100) or True) and c.position(tp) == len(recs),
                     15, 0.05, 'kafka-python reset to latest')
            produce_confluent(rbroker.bootstrap, topic, make_records(3, 'after', value_size=5))
        want = len(recs) - start if reset == 'earliest' else 3
        end = time.monotonic() + 20
        while len(got) < want and time.monotonic() < end:
            for m in c.poll(timeout_ms=200).get(tp, []):
                got.append((m.offset, m.value))
    finally:
        c.close()
    if reset == 'earliest':
        assert got[0][0] == start
        assert [v for _, v in got] == [r['value'] for r in recs[start:]]
    else:
        assert [o for o, _ in got] == [len(recs), len(recs) + 1, len(recs) + 2]


def alter_topic(bootstrap, topic, configs):
    with kafka_raw.Conn.to(bootstrap) as c:
        body = kafka_raw.incremental_alter_configs_body(
            [(kafka_raw.RESOURCE_TOPIC, topic, [(k, kafka_raw.OP_SET, v) for k, v in configs.items()])])
        res = kafka_raw.parse_incremental_alter_configs(
            c.request(kafka_raw.INCREMENTAL_ALTER_CONFIGS, 0, body), 0)
    assert res[(kafka_raw.RESOURCE_TOPIC, topic)][0] == 0, res


def test_configs_changed_at_runtime(rbroker, topic):
    create_topic(rbroker.bootstrap, topic)  # defaults: 1 GiB segments, 7 days
    recs = make_records(100, 'rt', base_ts=now_ms() - 3600 * 1000, value_size=40)
    produce_confluent(rbroker.bootstrap, topic, recs, conf=SMALL_BATCHES)
    assert len(segment_bases(rbroker, topic)) == 1
    # segment.bytes takes effect at the next append.
    alter_topic(rbroker.bootstrap, topic, {'segment.bytes': '1024'})
    produce_confluent(rbroker.bootstrap, topic, make_records(100, 'rt2', base_ts=now_ms() - 3600 * 1000,
                                                             value_size=40), conf=SMALL_BATCHES)
    assert len(segment_bases(rbroker, topic)) > 3
    time.sleep(0.5)
    assert low(rbroker, topic) == 0  # 7 days: nothing old enough
    # retention.ms at the next check, no restart.
    mark = rbroker.log_size()
    alter_topic(rbroker.bootstrap, topic, {'retention.ms': '1000'})
    wait_for(lambda: len(segment_bases(rbroker, topic)) == 1, 15, 0.1, 'retention after the change')
    assert low(rbroker, topic) == segment_bases(rbroker, topic)[0]
    assert 'retention.ms 1000 breached' in rbroker.log_text(mark)
    # And back to forever: new old-stamped segments stay.
    alter_topic(rbroker.bootstrap, topic, {'retention.ms': '-1'})
    start = low(rbroker, topic)
    produce_confluent(rbroker.bootstrap, topic, make_records(60, 'rt3', base_ts=now_ms() - 3600 * 1000,
                                                            value_size=40), conf=SMALL_BATCHES)
    time.sleep(0.6)
    assert low(rbroker, topic) == start
    assert len(segment_bases(rbroker, topic)) > 1


def test_delete_records_logs_deletion(rbroker, topic):
    create_topic(rbroker.bootstrap, topic, config=SMALL)
    produce_confluent(rbroker.bootstrap, topic, make_records(150, 'dr', value_size=40), conf=SMALL_BATCHES)
    bases = segment_bases(rbroker, topic)
    assert len(bases) > 3
    mark = rbroker.log_size()
    with kafka_raw.Conn.to(rbroker.bootstrap) as c:
        res = kafka_raw.parse_delete_records(c.request(
            kafka_raw.DELETE_RECORDS, 1, kafka_raw.delete_records_body(topic, {0: bases[2] + 1})))
    assert res
    wait_for(lambda: segment_bases(rbroker, topic)[0] == bases[2], 5, 0.05, 'segments below gone')
    text = rbroker.log_text(mark)
    assert re.search(r'topic %s partition 0: deleting segment %020d \(DeleteRecords' % (
        re.escape(topic), bases[0]), text)
    assert low(rbroker, topic) == bases[2] + 1


def test_fetch_in_flight_survives_segment_deletion(rbroker, topic):
    """A Fetch answer is being sent from a segment (the reader reads slowly)
    when retention deletes that segment: the answer still arrives whole,
    because the broker sends from a dup() of the segment's descriptor."""
    import socket
    import struct
    create_topic(rbroker.bootstrap, topic, config={'segment.bytes': str(12 << 20)})
    recs = make_records(14000, 'big', base_ts=now_ms() - 7200 * 1000, value_size=1000, headers=False)
    produce_confluent(rbroker.bootstrap, topic, recs, conf={'linger.ms': 5})
    bases = segment_bases(rbroker, topic)
    assert len(bases) == 2
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(20)
    s.connect((rbroker.host, rbroker.port))
    conn = kafka_raw.Conn.__new__(kafka_raw.Conn)
    conn.sock, conn.client_id, conn.next_corr = s, 'slow-reader', 1
    try:
        conn.send(kafka_raw.FETCH, 5, kafka_raw.fetch_body(
            topic, 0, 0, max_wait_ms=0, min_bytes=1, max_bytes=64 << 20,
            partition_max_bytes=64 << 20))
        head = kafka_raw.recv_exact(s, 4 + 4096)
        size = struct.unpack('>i', head[:4])[0]
        assert size > 10 << 20  # the whole first segment is on its way
        mark = rbroker.log_size()
        alter_topic(rbroker.bootstrap, topic, {'retention.ms': '60000'})
        wait_for(lambda: 'deleting segment 00000000000000000000' in rbroker.log_text(mark),
                 10, 0.05, 'the segment being sent to be deleted')
        assert not os.path.exists(os.path.join(rbroker.partition_dir(topic), '%020d.log' % 0))
        rest = kafka_raw.recv_exact(s, size - 4096)
    finally:
        conn.close()
    r = kafka_raw.Reader(head[4:] + rest, False)
    r.int32()  # correlation id
    p = kafka_raw.parse_fetch(r)[(topic, 0)]
    assert p['error'] == 0
    batches = kafka_raw.parse_batches(p['records'], allow_partial=False)
    assert all(b.crc_ok() for b in batches)
    assert batches[0].base_offset == 0
    assert batches[-1].base_offset + batches[-1].last_offset_delta + 1 == bases[1]
