"""Idempotent producers: InitProducerId, per-partition sequence checks
(duplicates answered with their original offset and not stored again, gaps
refused, old epochs fenced), producer ids unique across restarts, producer
state surviving clean restarts (.snapshot) and kill -9 (rebuilt from the
log), and librdkafka's idempotent producer with the broker killed while it
produces."""

import glob
import os
import threading
import time

import confluent_kafka as ck
import pytest

import kafka_raw as kr
from helpers import (confluent_conf, consume_confluent, create_topic, raw_fetch_batches, wait_for,
                     watermarks)

INIT_PRODUCER_ID = 22
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def init_producer_id(bootstrap, txn_id=None, timeout_ms=60000):
    with kr.Conn.to(bootstrap) as c:
        w = kr.Writer(False).string(txn_id).int32(timeout_ms)
        r = c.request(INIT_PRODUCER_ID, 0, w.getvalue())
        r.int32()
        err, pid, epoch = r.int16(), r.int64(), r.int16()
    return err, pid, epoch


def produce_seq(bootstrap, topic, pid, epoch, seq, n, tag=b'r', partition=0):
    recs = [(b'k%d' % (seq + i), tag + b'-%d' % (seq + i), [], None) for i in range(n)]
    batch = kr.build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    with kr.Conn.to(bootstrap) as c:
        r = c.request(kr.PRODUCE, 3, kr.produce_body(3, topic, partition, batch))
        d = kr.parse_produce(r, 3)[(topic, partition)]
    return d['error'], d['base_offset']


def test_sequences_duplicates_gaps_and_epochs(start_broker, topic):
    b = start_broker()
    create_topic(b.bootstrap, topic)
    err, pid, epoch = init_producer_id(b.bootstrap)
    assert err == 0 and pid >= 0 and epoch == 0
    assert produce_seq(b.bootstrap, topic, pid, 0, 0, 3) == (0, 0)
    assert produce_seq(b.bootstrap, topic, pid, 0, 3, 2) == (0, 3)
    # the first batch again: acknowledged with its original offset, not stored
    assert produce_seq(b.bootstrap, topic, pid, 0, 0, 3) == (0, 0)
    assert produce_seq(b.bootstrap, topic, pid, 0, 3, 2) == (0, 3)
    assert watermarks(b.bootstrap, topic) == (0, 5)
    # a gap
    assert produce_seq(b.bootstrap, topic, pid, 0, 7, 1)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    # a new epoch must start at 0; after it the old epoch is fenced
    assert produce_seq(b.bootstrap, topic, pid, 1, 5, 1)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_seq(b.bootstrap, topic, pid, 1, 0, 1) == (0, 5)
    assert produce_seq(b.bootstrap, topic, pid, 0, 5, 1)[0] == INVALID_PRODUCER_EPOCH
    assert watermarks(b.bootstrap, topic) == (0, 6)
    got = consume_confluent(b.bootstrap, topic)
    assert [r.value for r in got] == [b'r-0', b'r-1', b'r-2', b'r-3', b'r-4', b'r-0']


def test_producer_ids_unique_across_restarts(start_broker):
    b = start_broker()
    seen = set()
    for _ in range(3):
        for _ in range(3):
            err, pid, epoch = init_producer_id(b.bootstrap)
            assert err == 0 and epoch == 0
            assert pid not in seen
            seen.add(pid)
        b.kill9()
        b.start()
    b.restart()
    err, pid, _ = init_producer_id(b.bootstrap)
    assert err == 0 and pid not in seen
    assert os.path.exists(os.path.join(b.data_dir, 'runnel-metadata', 'producer-id-block'))


@pytest.mark.parametrize('how', ['clean', 'kill9'])
def test_producer_state_survives_restart(start_broker, topic, how):
    b = start_broker()
    create_topic(b.bootstrap, topic, config={'segment.bytes': '2000'})
    _, pid, _ = init_producer_id(b.bootstrap)
    seq = 0
    for i in range(30):
        assert produce_seq(b.bootstrap, topic, pid, 0, seq, 2) == (0, seq)
        seq += 2
    if how == 'clean':
        b.restart()
        snaps = glob.glob(os.path.join(b.partition_dir(topic, 0), '*.snapshot'))
        assert [os.path.basename(s) for s in snaps] == ['%020d.snapshot' % 60]
    else:
        b.kill9()
        b.start()
    # the last batch again is a duplicate; a gap is still a gap; the next one goes on
    assert produce_seq(b.bootstrap, topic, pid, 0, 58, 2) == (0, 58)
    assert produce_seq(b.bootstrap, topic, pid, 0, 61, 1)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_seq(b.bootstrap, topic, pid, 0, 60, 1) == (0, 60)
    assert watermarks(b.bootstrap, topic) == (0, 61)


def test_librdkafka_idempotent_producer_with_broker_kills(start_broker, topic):
    b = start_broker()
    create_topic(b.bootstrap, topic, partitions=2, config={'segment.bytes': '65536'})
    acked = []
    failed = []
    stop = threading.Event()
    sent = [0]

    def cb(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            failed.append(err)

    def produce():
        p = ck.Producer(confluent_conf(b.bootstrap, **{
            'enable.idempotence': True, 'linger.ms': 2, 'message.timeout.ms': 120000,
            'reconnect.backoff.ms': 20, 'reconnect.backoff.max.ms': 200, 'retry.backoff.ms': 20,
            'max.in.flight.requests.per.connection': 5}))
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b'v-%08d' % i, partition=i % 2, on_delivery=cb)
                i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0.001 if i % 50 else 0.01)
        left = p.flush(120)
        sent[0] = i
        assert left == 0, '%d records undelivered' % left

    t = threading.Thread(target=produce)
    t.start()
    try:
        for _ in range(3):
            n = len(acked)
            wait_for(lambda: len(acked) > n + 500, 30, 0.02, 'acknowledgements before the kill')
            b.kill9()
            time.sleep(0.3)
            b.start()
        n = len(acked)
        wait_for(lambda: len(acked) > n + 500, 60, 0.02, 'acknowledgements after the last restart')
    finally:
        stop.set()
        t.join(180)
    assert not t.is_alive()
    assert not failed, failed[:5]
    assert len(acked) == sent[0]
    for part in (0, 1):
        got = [r.value for r in consume_confluent(b.bootstrap, topic, partition=part, timeout=60)]
        want = [b'v-%08d' % i for i in range(part, sent[0], 2)]
        assert len(got) == len(set(got)), 'partition %d holds duplicates' % part
        assert got == want, 'partition %d: %d records, %d expected' % (part, len(got), len(want))
        pids = {bt.producer_id for bt in raw_fetch_batches(b.bootstrap, topic, part)}
        assert pids and min(pids) >= 0, 'batches without a producer id: %s' % pids


def test_kafka_python_idempotence():
    import kafka
    if 'enable_idempotence' not in kafka.KafkaProducer.DEFAULT_CONFIG:
        pytest.skip('kafka-python %s has no enable_idempotence' % kafka.__version__)
