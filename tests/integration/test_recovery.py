"""Crash recovery: librdkafka produces with acks=1 while the broker is killed
with SIGKILL and restarted several times; afterwards every acknowledged record
is exactly at the offset its delivery report gave. A garbled or torn segment
tail is truncated on restart (logged with the bytes dropped) and the broker
serves the intact part and takes new records after it."""

import glob
import os
import re
import threading
import time

import confluent_kafka as ck
import pytest

import conftest
from conftest import unique_topic
from helpers import (confluent_conf, consume_confluent, create_topic, make_records,
                     produce_confluent, wait_for, watermarks)


def last_segment(broker, topic):
    d = broker.partition_dir(topic, 0)
    return sorted(glob.glob(os.path.join(d, '[0-9]' * 20 + '.log')))[-1]


def test_kill9_loop_loses_no_acknowledged_record(start_broker, topic):
    b = start_broker(log__flush__offset__checkpoint__interval__ms=1000)
    create_topic(b.bootstrap, topic, partitions=2, config={'segment.bytes': '65536'})
    acked = {}   # (partition, offset) -> value
    failed = []
    stop = threading.Event()
    sent = [0]

    def cb(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed.append(err)

    def produce():
        p = ck.Producer(confluent_conf(b.bootstrap, **{
            'acks': 1, 'linger.ms': 2, 'message.timeout.ms': 60000,
            'enable.idempotence': False, 'reconnect.backoff.ms': 20,
            'reconnect.backoff.max.ms': 200, 'retry.backoff.ms': 20}))
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b'v-%08d-%s' % (i, b'p' * (i % 200)), key=b'k%d' % i,
                          partition=i % 2, on_delivery=cb)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 50 else 0.01)
        left = p.flush(90)
        sent[0] = i
        assert left == 0, '%d records undelivered' % left

    t = threading.Thread(target=produce)
    t.start()
    try:
        for _ in range(5):
            n = len(acked)
            wait_for(lambda: len(acked) > n + 300, 30, 0.02, 'acknowledgements before the kill')
            b.kill9()
            time.sleep(0.2)
            b.start()
        n = len(acked)
        wait_for(lambda: len(acked) > n + 300, 30, 0.02, 'acknowledgements after the last restart')
    finally:
        stop.set()
        t.join(120)
    assert not t.is_alive()
    assert len(acked) > 1500
    for part in (0, 1):
        lo, hi = watermarks(b.bootstrap, topic, part)
        assert lo == 0
        got = {r.offset: r.value for r in consume_confluent(b.bootstrap, topic, partition=part)}
        assert len(got) == hi
        mine = {o: v for (p, o), v in acked.items() if p == part}
        missing = [o for o in mine if got.get(o) != mine[o]]
        assert not missing, 'partition %d: %d acknowledged records missing or moved, e.g. %s' % (
            part, len(missing), sorted(missing)[:5])
    assert b.starts == 6


def _produce_then_kill(b, topic, n):
    create_topic(b.bootstrap, topic, config={'segment.bytes': '1000000'})
    recs = make_records(n, 'c', value_size=100)
    res = produce_confluent(b.bootstrap, topic, recs, conf={'linger.ms': 2, 'batch.num.messages': 10})
    # kill -9: the checkpointed recovery point stays behind, so the restart scans the tail
    b.kill9()
    return recs, res


def test_corrupt_tail_is_truncated(start_broker, topic):
    b = start_broker()
    recs, res = _produce_then_kill(b, topic, 200)
    path = last_segment(b, topic)
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:  # garble the last bytes: the last batch's CRC fails
        f.seek(size - 16)
        f.write(b'\xde\xad\xbe\xef' * 4)
    mark = b.log_size()
    b.start()
    text = b.log_text(mark)
    m = re.search(r'CRC mismatch at position (\d+), truncating: (\d+) bytes dropped', text)
    assert m, text
    pos, dropped = int(m.group(1)), int(m.group(2))
    assert pos + dropped == size and 0 < dropped < 2000
    assert os.path.getsize(path) == pos
    lo, hi = watermarks(b.bootstrap, topic)
    assert 190 <= hi < 200  # exactly the last batch went
    got = consume_confluent(b.bootstrap, topic)
    assert [g.value for g in got] == [r['value'] for r in recs[:hi]]
    # Service goes on after the cut: new records continue at the new end.
    more = produce_confluent(b.bootstrap, topic, make_records(5, 'after', value_size=10))
    assert [d[2] for d in more] == list(range(hi, hi + 5))
    assert len(consume_confluent(b.bootstrap, topic)) == hi + 5


def test_torn_tail_is_truncated(start_broker, topic):
    b = start_broker()
    recs, res = _produce_then_kill(b, topic, 50)
    path = last_segment(b, topic)
    size = os.path.getsize(path)
    with open(path, 'ab') as f:  # half a batch header, as a crash mid-write leaves it
        f.write(b'\x00' * 7 + b'\x00\x00\x10')
    mark = b.log_size()
    b.start()
    text = b.log_text(mark)
    assert re.search(r'torn batch header at position %d, truncating: 10 bytes dropped' % size, text), text
    assert os.path.getsize(path) == size
    assert watermarks(b.bootstrap, topic) == (0, 50)
    got = consume_confluent(b.bootstrap, topic)
    assert [g.offset for g in got] == [d[2] for d in res]


def test_flush_messages_one(start_broker, topic):
    """flush.messages=1 fsyncs every append (power-failure durability): the data
    is still all there after kill -9, and the topic works normally."""
    b = start_broker()
    create_topic(b.bootstrap, topic, config={'flush.messages': '1'})
    recs = make_records(100, 'f', value_size=20)
    res = produce_confluent(b.bootstrap, topic, recs, conf={'linger.ms': 0})
    b.kill9()
    b.start()
    got = consume_confluent(b.bootstrap, topic)
    assert [g.value for g in got] == [r['value'] for r in recs]
    assert [g.offset for g in got] == [d[2] for d in res]


@pytest.fixture
def few_fds(monkeypatch, tmp_path):
    """Brokers started in the test run with 256 descriptors. The broker raises
    its soft limit to the hard one, so a wrapper lowers both (the test process
    keeps its own limits)."""
    wrapper = tmp_path / 'runnel-server-256fds'
    wrapper.write_text('#!/bin/sh\nulimit -n 256\nexec %s "$@"\n' % conftest.SERVER)
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, 'SERVER', str(wrapper))


def _one_record_per_partition(b, t, nparts):
    p = ck.Producer(confluent_conf(b.bootstrap, **{'linger.ms': 20}))
    acked = []
    for i in range(nparts):
        p.produce(t, value=b'v%d' % i, partition=i,
                  on_delivery=lambda err, msg: acked.append((err, msg.partition(), msg.offset())))
    assert p.flush(60) == 0
    assert sorted((a[0], a[1], a[2]) for a in acked) == [(None, i, 0) for i in range(nparts)]


def test_durable_mode_flushes_many_partitions_within_the_open_file_limit(start_broker, few_fds):
    """flush.messages=1 on more partitions than free descriptors: the flushes
    queue for the flusher instead of all holding descriptors at once, every
    produce is acknowledged once flushed, and nothing is lost to kill -9."""
    b = start_broker()
    t = unique_topic('durable-many')
    nparts = 300
    create_topic(b.bootstrap, t, partitions=nparts, config={'flush.messages': '1'})
    mark = b.log_size()
    _one_record_per_partition(b, t, nparts)
    text = b.log_text(mark)
    assert 'Too many open files' not in text and 'flush failed' not in text, text
    b.kill9()
    b.start()
    for i in (0, nparts // 2, nparts - 1):
        got = consume_confluent(b.bootstrap, t, partition=i)
        assert [(g.offset, g.value) for g in got] == [(0, b'v%d' % i)]


def test_clean_shutdown_flushes_every_partition_within_the_open_file_limit(start_broker, few_fds):
    """A clean shutdown syncs every partition on the flusher threads; with far
    more partitions holding new data than free descriptors, each flush must
    still succeed (no "Too many open files"), and the recovery-point
    checkpoint then covers every record, so the restart scans nothing."""
    b = start_broker()
    t = unique_topic('many')
    nparts = 300
    create_topic(b.bootstrap, t, partitions=nparts)
    _one_record_per_partition(b, t, nparts)
    mark = b.log_size()
    b.stop()
    text = b.log_text(mark)
    assert 'Too many open files' not in text and 'flush failed' not in text, text
    ckpt = {}
    with open(os.path.join(b.data_dir, 'recovery-point-offset-checkpoint')) as f:
        for line in f.read().splitlines()[2:]:
            name, part, off = line.rsplit(' ', 2)
            ckpt[(name, int(part))] = int(off)
    assert {i: ckpt.get((t, i)) for i in range(nparts)} == {i: 1 for i in range(nparts)}
    b.start()
    for i in (0, nparts // 2, nparts - 1):
        got = consume_confluent(b.bootstrap, t, partition=i)
        assert [(g.offset, g.value) for g in got] == [(0, b'v%d' % i)]
