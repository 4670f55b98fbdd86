"""Storage: Kafka's partition directory layout, .log holding the wire
batches, segment rolls by size and time, restarts (clean, kill -9, in the
middle of a run) keeping every record and offset, torn-tail recovery."""

import os
import re
import struct
import time

import pytest

import kafka_raw as kr
from conftest import unique_topic
from helpers import (assert_records, consume_confluent, consume_kafka_python, consume_kcat,
                     create_topic, make_records, produce_confluent, produce_kafka_python,
                     raw_fetch_batches, watermarks)

SEG_RE = re.compile(r'^(\d{20})\.log$')


def segments(pdir):
    """Sorted base offsets of the .log files in a partition directory."""
    out = []
    for f in os.listdir(pdir):
        m = SEG_RE.match(f)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def seg_path(pdir, base, ext):
    return os.path.join(pdir, '%020d.%s' % (base, ext))


def read_log(pdir, base):
    with open(seg_path(pdir, base, 'log'), 'rb') as f:
        return f.read()


def read_checkpoint(path):
    with open(path) as f:
        lines = [x.rstrip('\n') for x in f]
    assert lines[0] == '0', 'checkpoint version line %r' % lines[0]
    n = int(lines[1])
    entries = {}
    for line in lines[2:2 + n]:
        t, p, off = line.rsplit(' ', 2)
        entries[(t, int(p))] = int(off)
    assert len(entries) == n
    return entries


def test_partition_directory_layout(start_broker):
    b = start_broker()
    t = unique_topic('layout')
    create_topic(b.bootstrap, t, partitions=2)
    recs = make_records(30, 'lay')
    produce_confluent(b.bootstrap, t, recs[:10], conf={'linger.ms': 50})
    produce_confluent(b.bootstrap, t, recs[10:], conf={'linger.ms': 50})
    pdir = b.partition_dir(t, 0)
    assert os.path.isdir(pdir) and os.path.isdir(b.partition_dir(t, 1))
    for ext in ('log', 'index', 'timeindex'):
        assert os.path.isfile(seg_path(pdir, 0, ext)), ext
    assert segments(pdir) == [0]
    data = read_log(pdir, 0)
    batches = kr.parse_batches(data, allow_partial=False)
    assert sum(len(x.raw) for x in batches) == len(data), 'trailing bytes in the .log'
    first = batches[0]
    assert (first.base_offset, first.magic) == (0, 2)
    assert first.crc_ok()
    got = [r for x in batches for r in x.records()]
    assert [(r['offset'], r['key'], r['value'], r['headers'], r['timestamp']) for r in got] == \
        [(i, r['key'], r['value'], r['headers'], r['timestamp']) for i, r in enumerate(recs)]
    # the .log holds the batches exactly as served by Fetch
    assert [x.raw for x in raw_fetch_batches(b.bootstrap, t)] == [x.raw for x in batches]
    assert os.path.isfile(os.path.join(b.data_dir, 'meta.properties'))
    b.stop()
    b.start()
    assert_records(consume_confluent(b.bootstrap, t, count=30), recs)


CHECKPOINTS = ['recovery-point-offset-checkpoint', 'log-start-offset-checkpoint',
               'replication-offset-checkpoint']


@pytest.mark.parametrize('name', CHECKPOINTS + ['leader-epoch-checkpoint', 'partition.metadata'])
def test_checkpoint_files_after_clean_shutdown(start_broker, name):
    b = start_broker()
    t = unique_topic('ckpt')
    create_topic(b.bootstrap, t, partitions=2)
    produce_confluent(b.bootstrap, t, make_records(30, 'ck'))
    b.stop()
    if name in CHECKPOINTS:
        entries = read_checkpoint(os.path.join(b.data_dir, name))
        if name == 'recovery-point-offset-checkpoint':
            assert entries[(t, 0)] == 30 and entries[(t, 1)] == 0
        if name == 'replication-offset-checkpoint':  # high watermarks
            assert entries[(t, 0)] == 30 and entries[(t, 1)] == 0
    else:
        for p in (0, 1):
            assert os.path.isfile(os.path.join(b.partition_dir(t, p), name))


def test_segment_roll_by_size(broker, topic):
    broker.require_local()
    seg = 1048576
    create_topic(broker.bootstrap, topic, config={'segment.bytes': str(seg)})
    recs = make_records(350, 'roll', value_size=10000)
    for i in range(0, 350, 50):
        produce_confluent(broker.bootstrap, topic, recs[i:i + 50],
                          conf={'linger.ms': 20, 'batch.num.messages': 10})
    pdir = broker.partition_dir(topic, 0)
    bases = segments(pdir)
    assert len(bases) >= 3, bases
    assert bases[0] == 0
    expect_next = 0
    for base in bases:
        data = read_log(pdir, base)
        assert len(data) <= seg, 'segment %d is %d bytes > segment.bytes' % (base, len(data))
        batches = kr.parse_batches(data, allow_partial=False)
        assert batches and batches[0].base_offset == base == expect_next, (base, expect_next)
        assert all(x.crc_ok() for x in batches)
        expect_next = batches[-1].base_offset + batches[-1].last_offset_delta + 1
        assert os.path.isfile(seg_path(pdir, base, 'index'))
        assert os.path.isfile(seg_path(pdir, base, 'timeindex'))
    assert expect_next == 350
    assert_records(consume_confluent(broker.bootstrap, topic, count=350), recs)
    # a fetch in the middle of a later segment
    mid = bases[-1] + 1
    assert_records(consume_kafka_python(broker.bootstrap, topic, offset=mid, count=350 - mid),
                   recs[mid:], first_offset=mid)


def test_segment_roll_by_time(broker, topic):
    broker.require_local()
    create_topic(broker.bootstrap, topic, config={'segment.ms': '1000'})
    recs = make_records(3, 'time', base_ts=None)
    now = int(time.time() * 1000)
    for i, r in enumerate(recs):
        r['timestamp'] = now + i
    produce_confluent(broker.bootstrap, topic, recs[:1])
    time.sleep(1.6)  # the point of the test: let segment.ms pass
    recs[1]['timestamp'] = int(time.time() * 1000)
    recs[2]['timestamp'] = recs[1]['timestamp'] + 1
    produce_confluent(broker.bootstrap, topic, recs[1:])
    bases = segments(broker.partition_dir(topic, 0))
    assert bases[:2] == [0, 1], bases
    assert_records(consume_confluent(broker.bootstrap, topic, count=3), recs)


def test_segment_roll_by_broker_log_roll_ms(start_broker):
    b = start_broker(log__roll__ms=1000)
    t = unique_topic('rollms')
    create_topic(b.bootstrap, t)
    r1 = make_records(1, 'rollms1', base_ts=int(time.time() * 1000))
    produce_confluent(b.bootstrap, t, r1)
    time.sleep(1.6)  # the point of the test: let log.roll.ms pass
    r2 = make_records(2, 'rollms2', base_ts=int(time.time() * 1000))
    produce_confluent(b.bootstrap, t, r2)
    assert segments(b.partition_dir(t, 0))[:2] == [0, 1]
    assert_records(consume_confluent(b.bootstrap, t, count=3), r1 + r2)


def test_restart_keeps_everything(start_broker):
    b = start_broker()
    t = unique_topic('restart')
    create_topic(b.bootstrap, t, partitions=2)
    r0 = make_records(500, 'rs0')
    r1 = make_records(100, 'rs1')
    produce_confluent(b.bootstrap, t, r0, conf={'linger.ms': 10})
    produce_kafka_python(b.bootstrap, t, r1, partition=1)
    with kr.Conn.to(b.bootstrap) as c:
        dr = kr.parse_delete_records(c.request(kr.DELETE_RECORDS, 1,
                                               kr.delete_records_body(t, {1: 3})))
    assert dr == {(t, 1): (3, 0)}
    b.restart()
    assert watermarks(b.bootstrap, t, 0) == (0, 500)
    assert watermarks(b.bootstrap, t, 1) == (3, 100)
    assert_records(consume_confluent(b.bootstrap, t, count=500), r0)
    assert_records(consume_kafka_python(b.bootstrap, t, count=500), r0)
    assert_records(consume_confluent(b.bootstrap, t, partition=1, count=97), r1[3:], first_offset=3)
    more = make_records(10, 'after')
    res = produce_confluent(b.bootstrap, t, more)
    assert [x[2] for x in res] == list(range(500, 510))
    assert_records(consume_confluent(b.bootstrap, t, offset=500, count=10), more, first_offset=500)
    # a second restart right away keeps the appended tail too
    b.restart()
    assert watermarks(b.bootstrap, t, 0) == (0, 510)
    assert_records(consume_kcat(b.bootstrap, t, offset=495), (r0 + more)[495:], first_offset=495)


def test_kill9_after_acks1_loses_nothing(start_broker):
    b = start_broker()
    t = unique_topic('kill9')
    create_topic(b.bootstrap, t)
    recs = make_records(300, 'k9')
    res = produce_confluent(b.bootstrap, t, recs, conf={'acks': 1, 'linger.ms': 5})
    assert [x[2] for x in res] == list(range(300))
    b.kill9()
    b.start()
    assert watermarks(b.bootstrap, t) == (0, 300)
    assert_records(consume_confluent(b.bootstrap, t, count=300), recs)
    more = make_records(5, 'k9b')
    res = produce_confluent(b.bootstrap, t, more, conf={'acks': 1})
    assert [x[2] for x in res] == list(range(300, 305))
    b.kill9()
    b.start()
    assert_records(consume_kafka_python(b.bootstrap, t, count=305), recs + more)


def test_restart_in_the_middle_of_a_run(start_broker):
    b = start_broker()
    t = unique_topic('mid')
    create_topic(b.bootstrap, t)
    recs = make_records(400, 'mid')
    produce_confluent(b.bootstrap, t, recs[:200])
    assert_records(consume_confluent(b.bootstrap, t, count=200), recs[:200])
    b.restart()
    md = produce_kafka_python(b.bootstrap, t, recs[200:])
    assert [m.offset for m in md] == list(range(200, 400))
    assert_records(consume_confluent(b.bootstrap, t, count=400), recs)
    assert_records(consume_kcat(b.bootstrap, t), recs)


@pytest.mark.parametrize('tail', ['partial-header', 'partial-batch', 'bad-crc', 'zeros'])
def test_torn_tail_is_truncated_on_recovery(start_broker, tail):
    """After a crash, garbage at the end of the active segment is cut off:
    acknowledged records stay and appends continue at the next offset."""
    b = start_broker()
    t = unique_topic('torn')
    create_topic(b.bootstrap, t)
    recs = make_records(50, 'torn')
    produce_confluent(b.bootstrap, t, recs, conf={'linger.ms': 20})
    b.kill9()
    path = seg_path(b.partition_dir(t, 0), 0, 'log')
    good_size = os.path.getsize(path)
    extra = kr.build_batch([(b'ghost', b'never acknowledged', [], None)], base_offset=50)
    if tail == 'partial-header':
        extra = extra[:30]
    elif tail == 'partial-batch':
        extra = extra[:len(extra) - 5]
    elif tail == 'bad-crc':
        extra = extra[:-1] + bytes([extra[-1] ^ 0xFF])
    else:
        extra = b'\0' * 4096
    with open(path, 'ab') as f:
        f.write(extra)
    b.start()
    assert watermarks(b.bootstrap, t) == (0, 50)
    assert_records(consume_confluent(b.bootstrap, t, count=50), recs)
    more = make_records(3, 'torn2')
    res = produce_confluent(b.bootstrap, t, more)
    assert [x[2] for x in res] == [50, 51, 52]
    assert_records(consume_confluent(b.bootstrap, t, count=53), recs + more)
    data = read_log(b.partition_dir(t, 0), 0)
    batches = kr.parse_batches(data, allow_partial=False)
    assert sum(len(x.raw) for x in batches) == len(data)
    assert len(data) > good_size
    assert all(x.crc_ok() for x in batches)


def read_offset_index(path, base):
    """[(absolute offset, position)] up to the first empty (preallocated) slot."""
    with open(path, 'rb') as f:
        data = f.read()
    assert len(data) % 8 == 0, 'index size %d not a multiple of 8' % len(data)
    out = []
    for i in range(0, len(data), 8):
        rel, pos = struct.unpack_from('>ii', data, i)
        if i > 0 and rel == 0 and pos == 0:
            break
        out.append((base + rel, pos))
    return out, len(data)


def read_time_index(path, base):
    with open(path, 'rb') as f:
        data = f.read()
    assert len(data) % 12 == 0, 'timeindex size %d not a multiple of 12' % len(data)
    out = []
    for i in range(0, len(data), 12):
        ts, rel = struct.unpack_from('>qi', data, i)
        if ts == 0 and rel == 0:
            break
        out.append((ts, base + rel))
    return out, len(data)


def test_index_files_match_log_and_survive_restart(start_broker):
    """Sparse .index entries point at batch starts in the .log, .timeindex
    entries are ordered, rolled segments' indexes are trimmed; after a
    restart every segment still serves reads and timestamp lookups."""
    import confluent_kafka as ck
    b = start_broker()
    t = unique_topic('idx')
    create_topic(b.bootstrap, t, config={'segment.bytes': '1048576'})
    base_ts = int(time.time() * 1000) - 3600 * 1000
    recs = make_records(600, 'idx', value_size=3000, base_ts=base_ts, ts_step=7)
    for i in range(0, 600, 100):
        produce_confluent(b.bootstrap, t, recs[i:i + 100],
                          conf={'linger.ms': 20, 'batch.num.messages': 5})
    pdir = b.partition_dir(t, 0)
    bases = segments(pdir)
    assert len(bases) >= 2

    def check_indexes():
        for n, base in enumerate(bases):
            data = read_log(pdir, base)
            batches = kr.parse_batches(data, allow_partial=False)
            starts = {}
            pos = 0
            for x in batches:
                starts[pos] = x
                pos += x.size
            entries, size = read_offset_index(seg_path(pdir, base, 'index'), base)
            if len(data) > 3 * 4096:
                assert entries, 'segment %d (%d bytes) has no index entries' % (base, len(data))
            prev = (-1, -1)
            for off, p in entries:
                assert p in starts, 'index entry (%d, %d) not at a batch start' % (off, p)
                x = starts[p]
                assert x.base_offset <= off <= x.base_offset + x.last_offset_delta, (off, p)
                assert off > prev[0] and p > prev[1]
                prev = (off, p)
            if n < len(bases) - 1:
                assert size == 8 * len(entries), 'rolled segment index not trimmed'
            tentries, tsize = read_time_index(seg_path(pdir, base, 'timeindex'), base)
            last = bases[n + 1] if n + 1 < len(bases) else 600
            prev_ts = -1
            for ts, off in tentries:
                assert base <= off < last
                assert ts >= prev_ts
                prev_ts = ts
                assert ts == max(r['timestamp'] for r in recs[base:off + 1]), (ts, off)
            if n < len(bases) - 1:
                assert tsize == 12 * len(tentries), 'rolled segment timeindex not trimmed'

    check_indexes()
    b.restart()
    check_indexes()
    c = ck.Consumer({'bootstrap.servers': b.bootstrap, 'group.id': 'idx',
                     'enable.auto.commit': False})
    try:
        for i in (0, 1, 99, bases[1], bases[1] + 3, bases[-1] - 1, 599):
            res = c.offsets_for_times([ck.TopicPartition(t, 0, recs[i]['timestamp'])], timeout=10)
            assert res[0].offset == i, (i, res[0].offset)
    finally:
        c.close()
    for start in (bases[1] - 1, bases[-1] + 2):
        assert_records(consume_confluent(b.bootstrap, t, offset=start, count=600 - start),
                       recs[start:], first_offset=start)
