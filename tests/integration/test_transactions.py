"""Transactions with confluent-kafka (librdkafka): commit and abort seen
through read_committed and read_uncommitted consumers, control batches never
surfacing as records, the last stable offset in ListOffsets, consume-
transform-produce with send_offsets_to_transaction, timeouts, fencing, a
broker restart in the middle of a transaction, and DescribeTransactions /
ListTransactions / DescribeProducers on the wire."""

import time
import uuid

import confluent_kafka as ck
import pytest

import kafka_raw as kr
from helpers import (confluent_conf, consume_confluent, create_topic, produce_confluent,
                     raw_fetch_batches)

DESCRIBE_PRODUCERS = 61
DESCRIBE_TRANSACTIONS = 65
LIST_TRANSACTIONS = 66

TXN_OVERRIDES = {'transaction.state.log.num.partitions': 3, 'offsets.topic.num.partitions': 3}


@pytest.fixture
def txb(start_broker):
    return start_broker(overrides=dict(TXN_OVERRIDES))


def txn_producer(bootstrap, txn_id=None, **extra):
    conf = confluent_conf(bootstrap, **{'transactional.id': txn_id or 'tx-' + uuid.uuid4().hex[:8],
                                        'linger.ms': 5})
    conf.update(extra)
    p = ck.Producer(conf)
    p.init_transactions(30)
    return p


def values(bootstrap, topic, partition=0, iso='read_committed', timeout=30):
    return [r.value for r in consume_confluent(bootstrap, topic, partition=partition, timeout=timeout,
                                               conf={'isolation.level': iso})]


def high(bootstrap, topic, iso, partition=0):
    c = ck.Consumer(confluent_conf(bootstrap, **{'group.id': 'w-' + uuid.uuid4().hex[:6],
                                                 'isolation.level': iso}))
    try:
        return c.get_watermark_offsets(ck.TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


def test_commit_abort_and_isolation(txb, topic):
    b = txb
    create_topic(b.bootstrap, topic, partitions=2)
    p = txn_producer(b.bootstrap)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b'c%d' % i, partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=b'a%d' % i, partition=i % 2)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, value=b'last', partition=0)
    p.commit_transaction(30)
    assert values(b.bootstrap, topic, 0) == [b'c0', b'c2', b'c4', b'last']
    assert values(b.bootstrap, topic, 1) == [b'c1', b'c3']
    assert values(b.bootstrap, topic, 0, 'read_uncommitted') == [b'c0', b'c2', b'c4', b'a0', b'a2', b'last']
    assert values(b.bootstrap, topic, 1, 'read_uncommitted') == [b'c1', b'c3', b'a1', b'a3']
    # control batches are in the log (one per partition per transaction) but never records
    batches = raw_fetch_batches(b.bootstrap, topic, 0)
    controls = [bt for bt in batches if bt.attributes & 0x20]
    assert len(controls) == 3
    offsets = [r.offset for r in consume_confluent(b.bootstrap, topic, 0, conf={'isolation.level':
                                                                               'read_uncommitted'})]
    assert not set(offsets) & {bt.base_offset for bt in controls}
    # (kafka-python 2.0.2 hands control records to the application, with any broker: not checked)
    # a transaction left open holds the last stable offset back
    p.begin_transaction()
    p.produce(topic, value=b'open', partition=1)
    p.flush(30)
    hw = high(b.bootstrap, topic, 'read_uncommitted', 1)
    assert hw == 7  # c1 c3 marker a1 a3 marker open
    assert high(b.bootstrap, topic, 'read_committed', 1) == 6
    assert values(b.bootstrap, topic, 1) == [b'c1', b'c3']
    p.commit_transaction(30)
    assert values(b.bootstrap, topic, 1) == [b'c1', b'c3', b'open']
    assert high(b.bootstrap, topic, 'read_committed', 1) == high(b.bootstrap, topic, 'read_uncommitted', 1) == 8


def committed(bootstrap, group, topic, partition=0):
    c = ck.Consumer(confluent_conf(bootstrap, **{'group.id': group}))
    try:
        return c.committed([ck.TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def test_consume_transform_produce(txb, topic):
    b = txb
    src, dst, group = topic + '-in', topic + '-out', 'ctp-' + uuid.uuid4().hex[:6]
    create_topic(b.bootstrap, src)
    create_topic(b.bootstrap, dst)
    produce_confluent(b.bootstrap, src, [{'key': None, 'value': b'm%d' % i} for i in range(20)])
    c = ck.Consumer(confluent_conf(b.bootstrap, **{'group.id': group, 'enable.auto.commit': False,
                                                   'auto.offset.reset': 'earliest',
                                                   'isolation.level': 'read_committed'}))
    c.subscribe([src])
    p = txn_producer(b.bootstrap)

    def round_(n, commit):
        p.begin_transaction()
        got = 0
        end = time.monotonic() + 30
        while got < n and time.monotonic() < end:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            p.produce(dst, value=m.value().upper(), partition=0)
            got += 1
        assert got == n
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    round_(10, True)
    assert committed(b.bootstrap, group, src) == 10
    assert values(b.bootstrap, dst) == [b'M%d' % i for i in range(10)]
    round_(5, False)
    # the aborted round moved neither the offsets nor the visible output
    assert committed(b.bootstrap, group, src) == 10
    assert values(b.bootstrap, dst) == [b'M%d' % i for i in range(10)]
    c.close()


def test_timed_out_transaction_is_aborted(start_broker, topic):
    b = start_broker(overrides=dict(TXN_OVERRIDES, **{
        'transaction.abort.timed.out.transaction.cleanup.interval.ms': 300}))
    create_topic(b.bootstrap, topic)
    p = txn_producer(b.bootstrap, **{'transaction.timeout.ms': 2000, 'socket.timeout.ms': 2000})
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b'x%d' % i, partition=0)
    p.flush(30)
    assert high(b.bootstrap, topic, 'read_committed') == 0
    time.sleep(3.5)
    # aborted by the coordinator: the marker releases the last stable offset
    assert high(b.bootstrap, topic, 'read_committed') == high(b.bootstrap, topic, 'read_uncommitted') == 4
    assert values(b.bootstrap, topic) == []
    assert values(b.bootstrap, topic, iso='read_uncommitted') == [b'x0', b'x1', b'x2']
    with pytest.raises(ck.KafkaException):
        p.commit_transaction(10)
    assert values(b.bootstrap, topic) == []


def test_transaction_max_timeout(start_broker):
    b = start_broker(overrides=dict(TXN_OVERRIDES, **{'transaction.max.timeout.ms': 5000}))
    with pytest.raises(ck.KafkaException):
        txn_producer(b.bootstrap, **{'transaction.timeout.ms': 6000})


def test_second_producer_fences_the_first(txb, topic):
    b = txb
    create_topic(b.bootstrap, topic)
    tid = 'fence-' + uuid.uuid4().hex[:6]
    p1 = txn_producer(b.bootstrap, tid)
    p1.begin_transaction()
    p1.produce(topic, value=b'zombie', partition=0)
    p1.flush(30)
    p2 = txn_producer(b.bootstrap, tid)  # aborts p1's open transaction
    p2.begin_transaction()
    p2.produce(topic, value=b'new', partition=0)
    p2.commit_transaction(30)
    with pytest.raises(ck.KafkaException):
        p1.commit_transaction(10)
    assert values(b.bootstrap, topic) == [b'new']


@pytest.mark.parametrize('how', ['clean', 'kill9'])
def test_broker_restart_mid_transaction(txb, topic, how):
    b = txb
    create_topic(b.bootstrap, topic)
    tid = 'restart-' + uuid.uuid4().hex[:6]
    p = txn_producer(b.bootstrap, tid, **{'message.timeout.ms': 60000})
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b'r%d' % i, partition=0)
    p.flush(30)
    if how == 'clean':
        b.restart()
    else:
        b.kill9()
        b.start()
    # the coordinator came back with the transaction Ongoing, the partition with it open
    st = describe_transactions(b.bootstrap, [tid])[0]
    assert st['state'] == 'Ongoing' and st['topics'] == {topic: [0]}
    assert high(b.bootstrap, topic, 'read_committed') == 0
    p.produce(topic, value=b'r3', partition=0)
    p.commit_transaction(60)
    assert values(b.bootstrap, topic) == [b'r0', b'r1', b'r2', b'r3']
    assert describe_transactions(b.bootstrap, [tid])[0]['state'] == 'CompleteCommit'


# ---------------------------------------------------------------- admin APIs on the wire

def describe_transactions(bootstrap, ids):
    w = kr.Writer(True)
    w.array(ids, lambda ww, s: ww.string(s)).tags()
    with kr.Conn.to(bootstrap) as c:
        r = c.request(DESCRIBE_TRANSACTIONS, 0, w.getvalue(), flexible=True)
    r.int32()

    def topic(rr):
        name = rr.string()
        parts = rr.array(lambda x: x.int32())
        rr.tags()
        return name, parts

    def state(rr):
        d = {'error': rr.int16(), 'id': rr.string(), 'state': rr.string(), 'timeout': rr.int32(),
             'start': rr.int64(), 'pid': rr.int64(), 'epoch': rr.int16()}
        d['topics'] = dict(rr.array(topic))
        rr.tags()
        return d
    return r.array(state)


def list_transactions(bootstrap, states=(), pids=()):
    w = kr.Writer(True)
    w.array(list(states), lambda ww, s: ww.string(s))
    w.array(list(pids), lambda ww, v: ww.int64(v)).tags()
    with kr.Conn.to(bootstrap) as c:
        r = c.request(LIST_TRANSACTIONS, 0, w.getvalue(), flexible=True)
    r.int32()
    err = r.int16()
    unknown = r.array(lambda x: x.string())

    def st(rr):
        d = (rr.string(), rr.int64(), rr.string())
        rr.tags()
        return d
    return err, unknown, r.array(st)


def describe_producers(bootstrap, topic, partition=0):
    w = kr.Writer(True)

    def t(ww, name):
        ww.string(name)
        ww.array([partition], lambda x, p: x.int32(p))
        ww.tags()
    w.array([topic], t).tags()
    with kr.Conn.to(bootstrap) as c:
        r = c.request(DESCRIBE_PRODUCERS, 0, w.getvalue(), flexible=True)
    r.int32()

    def prod(rr):
        d = {'pid': rr.int64(), 'epoch': rr.int32(), 'last_seq': rr.int32(), 'last_ts': rr.int64(),
             'coord_epoch': rr.int32(), 'txn_start': rr.int64()}
        rr.tags()
        return d

    def part(rr):
        d = {'index': rr.int32(), 'error': rr.int16(), 'message': rr.string()}
        d['producers'] = rr.array(prod)
        rr.tags()
        return d

    def top(rr):
        name = rr.string()
        ps = rr.array(part)
        rr.tags()
        return name, ps
    return dict(r.array(top))[topic][0]


def test_describe_and_list_transactions_and_producers(txb, topic):
    b = txb
    create_topic(b.bootstrap, topic)
    tid = 'desc-' + uuid.uuid4().hex[:6]
    p = txn_producer(b.bootstrap, tid, **{'transaction.timeout.ms': 45000})
    p.begin_transaction()
    p.produce(topic, value=b'a', partition=0)
    p.produce(topic, value=b'b', partition=0)
    p.flush(30)
    st = describe_transactions(b.bootstrap, [tid, 'no-such-id'])
    assert st[0]['error'] == 0 and st[0]['state'] == 'Ongoing' and st[0]['timeout'] == 45000
    assert st[0]['topics'] == {topic: [0]} and st[0]['start'] > 0 and st[0]['epoch'] == 0
    assert st[1]['error'] == 105  # TRANSACTIONAL_ID_NOT_FOUND
    pid = st[0]['pid']
    err, unknown, states = list_transactions(b.bootstrap, states=['Ongoing', 'Bogus'])
    assert err == 0 and unknown == ['Bogus'] and (tid, pid, 'Ongoing') in states
    err, _, states = list_transactions(b.bootstrap, pids=[pid + 1000])
    assert states == []
    d = describe_producers(b.bootstrap, topic)
    assert d['error'] == 0
    assert [(x['pid'], x['epoch'], x['last_seq'], x['txn_start']) for x in d['producers']] == [(pid, 0, 1, 0)]
    p.commit_transaction(30)
    d = describe_producers(b.bootstrap, topic)
    assert [(x['pid'], x['txn_start']) for x in d['producers']] == [(pid, -1)]
    assert describe_transactions(b.bootstrap, [tid])[0]['state'] == 'CompleteCommit'
    assert describe_producers(b.bootstrap, 'no-such-topic')['error'] == 3


def add_partitions_v4(bootstrap, txns):
    """txns: [(txn_id, pid, epoch, verify_only, {topic: [partitions]})] -> {txn_id: {(topic, p): error}}."""
    w = kr.Writer(True)

    def topic(ww, item):
        ww.string(item[0])
        ww.array(item[1], lambda x, p: x.int32(p))
        ww.tags()

    def txn(ww, t):
        ww.string(t[0]).int64(t[1]).int16(t[2]).bool(t[3])
        ww.array(sorted(t[4].items()), topic)
        ww.tags()
    w.array(txns, txn).tags()
    with kr.Conn.to(bootstrap) as c:
        r = c.request(24, 4, w.getvalue(), flexible=True)
    r.int32()
    assert r.int16() == 0
    out = {}

    def part(rr):
        d = (rr.int32(), rr.int16())
        rr.tags()
        return d

    def top(rr):
        name = rr.string()
        ps = rr.array(part)
        rr.tags()
        return name, ps

    def res(rr):
        tid = rr.string()
        out[tid] = {(name, p): e for name, ps in rr.array(top) for p, e in ps}
        rr.tags()
    r.array(res)
    return out


def test_add_partitions_v4_batched(txb, topic):
    b = txb
    create_topic(b.bootstrap, topic, partitions=2)
    tid = 'v4-' + uuid.uuid4().hex[:6]
    p = txn_producer(b.bootstrap, tid)
    st = describe_transactions(b.bootstrap, [tid])[0]
    pid, epoch = st['pid'], st['epoch']
    out = add_partitions_v4(b.bootstrap, [(tid, pid, epoch, True, {topic: [0]}),
                                          ('no-such-' + tid, 1, 0, False, {topic: [1]})])
    assert out[tid] == {(topic, 0): 48}  # INVALID_TXN_STATE: verify only, not added
    assert out['no-such-' + tid] == {(topic, 1): 49}  # INVALID_PRODUCER_ID_MAPPING
    out = add_partitions_v4(b.bootstrap, [(tid, pid, epoch, False, {topic: [0, 1], 'missing-topic': [0]})])
    assert out[tid] == {(topic, 0): 55, (topic, 1): 55, ('missing-topic', 0): 3}
    out = add_partitions_v4(b.bootstrap, [(tid, pid, epoch, False, {topic: [0, 1]})])
    assert out[tid] == {(topic, 0): 0, (topic, 1): 0}
    assert describe_transactions(b.bootstrap, [tid])[0]['topics'] == {topic: [0, 1]}
    out = add_partitions_v4(b.bootstrap, [(tid, pid, epoch, True, {topic: [1]})])
    assert out[tid] == {(topic, 1): 0}
    assert add_partitions_v4(b.bootstrap, [(tid, pid, epoch + 1, False, {topic: [0]})])[tid] == {(topic, 0): 90}
    # the librdkafka producer itself never began a transaction: a new one aborts ours
    txn_producer(b.bootstrap, tid)
    st = describe_transactions(b.bootstrap, [tid])[0]
    assert (st['state'], st['epoch'], st['topics']) == ('Empty', epoch + 2, {})


def test_idle_transactional_id_expires(start_broker, topic):
    b = start_broker(overrides=dict(TXN_OVERRIDES, **{
        'transactional.id.expiration.ms': 1000,
        'transaction.abort.timed.out.transaction.cleanup.interval.ms': 300}))
    create_topic(b.bootstrap, topic)
    tid = 'idle-' + uuid.uuid4().hex[:6]
    p = txn_producer(b.bootstrap, tid)
    p.begin_transaction()
    p.produce(topic, value=b'v', partition=0)
    p.commit_transaction(30)
    assert describe_transactions(b.bootstrap, [tid])[0]['state'] == 'CompleteCommit'
    time.sleep(2.5)
    assert describe_transactions(b.bootstrap, [tid])[0]['error'] == 105
    b.restart()  # the tombstone keeps it gone
    assert describe_transactions(b.bootstrap, [tid])[0]['error'] == 105
    assert values(b.bootstrap, topic) == [b'v']


@pytest.mark.parametrize('how', ['clean', 'kill9'])
def test_aborted_transactions_survive_restart(txb, topic, how):
    import glob
    import os
    b = txb
    create_topic(b.bootstrap, topic, config={'segment.bytes': '400'})
    p = txn_producer(b.bootstrap)
    for i in range(6):
        p.begin_transaction()
        p.produce(topic, value=b'%s%d' % (b'c' if i % 2 == 0 else b'a', i), partition=0)
        p.flush(30)
        if i % 2 == 0:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    want = [b'c0', b'c2', b'c4']
    assert values(b.bootstrap, topic) == want
    d = b.partition_dir(topic)
    assert len(glob.glob(os.path.join(d, '*.txnindex'))) >= 1
    if how == 'clean':
        b.restart()
        assert [os.path.basename(s) for s in glob.glob(os.path.join(d, '*.snapshot'))] == ['%020d.snapshot' % 12]
    else:
        b.kill9()
        b.start()
    # the aborted list comes back from .txnindex (and the replay): read_committed still drops a1 a3 a5
    assert values(b.bootstrap, topic) == want
    assert values(b.bootstrap, topic, iso='read_uncommitted') == [b'c0', b'a1', b'c2', b'a3', b'c4', b'a5']
