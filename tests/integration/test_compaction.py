"""Log compaction against a model: random keys, values and tombstones on a
cleanup.policy=compact topic with tiny segments; after the cleaner has run,
consuming from the beginning must give every key's latest value, each
surviving record at the offset its delivery report gave, and (below the
cleaned point) no key twice. Compressed batches keep their codec."""

import glob
import os
import random
import re
import time

import confluent_kafka as ck
import pytest

from helpers import (TS_CREATE, Rec, consume_confluent, create_topic, kp_consumer, now_ms,
                     produce_confluent, raw_fetch_batches, wait_for)

FAST = {'log.retention.check.interval.ms': 200, 'log.cleaner.backoff.ms': 200}
COMPACT = {'cleanup.policy': 'compact', 'segment.bytes': '2048',
           'min.cleanable.dirty.ratio': '0.01', 'delete.retention.ms': '0'}


@pytest.fixture(scope='module')
def cbroker():
    """One broker for the module with fast retention and cleaner schedules."""
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
    return sorted(int(os.path.basename(p)[:20]) for p in glob.glob(os.path.join(d, '[0-9]' * 20 + '.log')))


def wait_cleaned(broker, topic, since, timeout=30.0):
    """Until a cleaner log line for the partition says the dirty section starts
    at the active segment (everything closed has been cleaned)."""
    pat = re.compile(r'%s-0: cleaned .* dirty section now starts at (\d+)' % re.escape(topic))

    def done():
        active = segment_bases(broker, topic)[-1]
        hits = [int(m.group(1)) for m in pat.finditer(broker.log_text(since))]
        return hits and hits[-1] >= active and hits[-1]
    return wait_for(done, timeout, 0.1, 'the cleaner to reach the active segment of %s' % topic)


def produce_model(broker, topic, n, nkeys, tomb_pct, seed, codec=None):
    rnd = random.Random(seed)
    recs = []
    for i in range(n):
        k = 'key-%d' % rnd.randrange(nkeys)
        v = None if rnd.randrange(100) < tomb_pct else ('v%d-%s' % (i, 'x' * rnd.randrange(40))).encode()
        recs.append({'key': k.encode(), 'value': v, 'headers': [('i', str(i).encode())],
                     'timestamp': now_ms() - 1000})
    conf = {'linger.ms': 20, 'batch.num.messages': 7}
    if codec:
        conf['compression.type'] = codec
    res = produce_confluent(broker.bootstrap, topic, recs, conf=conf)
    by_offset = {}
    for r, d in zip(recs, res):
        by_offset[d[2]] = r
    return by_offset


def latest(by_offset):
    m = {}
    for off in sorted(by_offset):
        r = by_offset[off]
        if r['value'] is None:
            m.pop(r['key'], None)
        else:
            m[r['key']] = r['value']
    return m


def check_log(got, by_offset, clean_end):
    """got: [Rec] from offset 0. Same records at the same offsets, same latest
    values, no key twice below clean_end, fewer records than produced."""
    state = {}
    below = set()
    prev = -1
    for g in got:
        assert g.offset > prev
        prev = g.offset
        assert g.offset in by_offset, 'offset %d was never produced' % g.offset
        r = by_offset[g.offset]
        assert g.key == r['key'] and g.value == r['value'], 'offset %d changed' % g.offset
        assert list(g.headers) == r['headers']
        if g.offset < clean_end:
            assert g.key not in below, 'key %r twice below %d' % (g.key, clean_end)
            below.add(g.key)
        if g.value is None:
            state.pop(g.key, None)
        else:
            state[g.key] = g.value
    assert state == latest(by_offset)
    assert len(got) < len(by_offset)


@pytest.mark.parametrize('codec', [None, 'gzip', 'snappy', 'lz4', 'zstd'])
def test_compaction_matches_model(cbroker, topic, codec):
    create_topic(cbroker.bootstrap, topic, config=COMPACT)
    mark = cbroker.log_size()
    by_offset = produce_model(cbroker, topic, 1500, 60, 10, seed=hash(codec) & 0xffff, codec=codec)
    assert len(segment_bases(cbroker, topic)) > 5
    clean_end = wait_cleaned(cbroker, topic, mark)
    got = consume_confluent(cbroker.bootstrap, topic, offset=ck.OFFSET_BEGINNING)
    check_log(got, by_offset, clean_end)
    if codec:
        want = {'gzip': 1, 'snappy': 2, 'lz4': 3, 'zstd': 4}[codec]
        batches = raw_fetch_batches(cbroker.bootstrap, topic)
        # librdkafka sends a batch uncompressed when compressing does not pay
        assert batches and all(b.codec in (want, 0) for b in batches)
        assert sum(b.codec == want for b in batches) * 2 >= len(batches)
        assert all(b.crc_ok() for b in batches)


def consume_kp_to_end(bootstrap, topic, timeout=30.0):
    """kafka-python from the beginning until its position reaches the end
    offset (a compacted log has fewer records than offsets)."""
    from kafka import TopicPartition
    c = kp_consumer(bootstrap)
    tp = TopicPartition(topic, 0)
    got = []
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end_off = c.end_offsets([tp])[tp]
        deadline = time.monotonic() + timeout
        while c.position(tp) < end_off:
            assert time.monotonic() < deadline, 'kafka-python: timed out at %d' % c.position(tp)
            for m in c.poll(timeout_ms=300).get(tp, []):
                got.append(Rec(m.offset, m.key, m.value, list(m.headers or []), m.timestamp,
                               TS_CREATE))
    finally:
        c.close()
    return got


def test_compaction_kafka_python_reads_it(cbroker, topic):
    create_topic(cbroker.bootstrap, topic, config=COMPACT)
    mark = cbroker.log_size()
    by_offset = produce_model(cbroker, topic, 600, 25, 15, seed=7)
    clean_end = wait_cleaned(cbroker, topic, mark)
    got = consume_kp_to_end(cbroker.bootstrap, topic)
    check_log(got, by_offset, clean_end)


def test_tombstones_removed_and_new_writes_compacted(cbroker, topic):
    """delete.retention.ms=0: a second pass drops the tombstones themselves;
    later updates are compacted in further passes."""
    create_topic(cbroker.bootstrap, topic, config=COMPACT)
    mark = cbroker.log_size()
    recs = [{'key': b'k%d' % (i % 10), 'value': b'first-%d' % i} for i in range(100)]
    recs += [{'key': b'k%d' % i, 'value': None} for i in range(5)]
    recs += [{'key': b'k%d' % (i % 10), 'value': b'x' * 300} for i in range(5, 40)]
    res = produce_confluent(cbroker.bootstrap, topic, recs,
                            conf={'linger.ms': 5, 'batch.num.messages': 5})
    by_offset = {d[2]: r for r, d in zip(recs, res)}
    for r in by_offset.values():
        r['headers'] = []
    wait_cleaned(cbroker, topic, mark)

    def no_tombstones():
        got = consume_confluent(cbroker.bootstrap, topic)
        return all(g.value is not None for g in got) and got
    got = wait_for(no_tombstones, 30, 0.3, 'tombstones to go')
    state = {g.key: g.value for g in got}
    assert state == latest(by_offset)
    for g in got:
        assert by_offset[g.offset]['value'] == g.value


def test_keyless_refused_on_compacted_topic(cbroker, topic):
    create_topic(cbroker.bootstrap, topic, config=COMPACT)
    res = produce_confluent(cbroker.bootstrap, topic, [{'key': None, 'value': b'v'}],
                            conf={'retries': 0, 'message.timeout.ms': 5000}, expect_errors=True)
    err = res[0][0]
    assert err is not None and err.code() == ck.KafkaError.INVALID_RECORD


def test_compaction_survives_restart(cbroker, topic):
    """A cleaned log reopens with its gaps; the cleaner checkpoint is written
    at shutdown and the next start does not redo the work."""
    create_topic(cbroker.bootstrap, topic, config=COMPACT)
    mark = cbroker.log_size()
    by_offset = produce_model(cbroker, topic, 400, 20, 0, seed=3)
    clean_end = wait_cleaned(cbroker, topic, mark)
    cbroker.restart()
    text = open(os.path.join(cbroker.data_dir, 'cleaner-offset-checkpoint')).read()
    assert '%s 0 %d' % (topic, clean_end) in text
    got = consume_confluent(cbroker.bootstrap, topic)
    check_log(got, by_offset, clean_end)
