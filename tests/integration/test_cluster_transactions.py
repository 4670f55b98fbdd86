"""Transactions in cluster mode: a real ZooKeeper and three runnel-server
brokers, driven by confluent-kafka (librdkafka) transactional producers and
raw requests.

Covered: the transaction coordinator is the leader of the transactional
id's __transaction_state partition (others answer NOT_COORDINATOR; an
idempotent producer's id comes from any broker); commit and abort across
partitions led by different brokers (markers through WriteTxnMarkers), seen
exactly by read_committed consumers; consume-transform-produce with
send_offsets_to_transaction where the group coordinator and the transaction
coordinator are different brokers (offsets pending at the group coordinator
until the commit marker, dropped on abort); and the transaction coordinator
killed with kill -9, between transactions (another broker takes over the
partition, loads the state and completes the open transaction; a
re-initialised producer fences the old one) and with markers still pending
behind a frozen partition leader (the new coordinator completes the
transaction from PrepareCommit).

Synchronisation is by polling observable state, never by sleeping.
"""

import os
import re
import signal
import struct
import uuid

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import NewTopic

import helpers
import kafka_raw as kr
from zk import start_cluster, zookeeper  # noqa: F401 (fixtures)

UNSTABLE_OFFSET_COMMIT = 88

FIND_COORDINATOR = 10
INIT_PRODUCER_ID = 22
WRITE_TXN_MARKERS = 27
DESCRIBE_TRANSACTIONS = 65
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
NOT_COORDINATOR = 16
INVALID_PRODUCER_EPOCH = 47
TRANSACTION_COORDINATOR_FENCED = 52
KEY_GROUP = 0
KEY_TXN = 1

NPART = 5  # partitions of __transaction_state and __consumer_offsets here
OVERRIDES = {'transaction__state__log__num__partitions': str(NPART),
             'offsets__topic__num__partitions': str(NPART),
             'replica__lag__time__max__ms': '3000'}


# ----------------------------------------------------------------- helpers

def chroot():
    return '/runnel-txn-' + uuid.uuid4().hex[:8]


def bid(b):
    return int(b.overrides['broker.id'])


def metadata(b, topics=None, version=9):
    with kr.Conn.to(b.bootstrap) as c:
        return kr.parse_metadata(c.request(kr.METADATA, version, kr.metadata_body(version, topics, False),
                                           flexible=version >= 9), version)


def alive(cl):
    return [b for b in cl.brokers if b.alive()]


def wait_brokers(cl, n=3, timeout=20):
    helpers.wait_for(lambda: all(len(metadata(b)['brokers']) == n for b in alive(cl)), timeout=timeout,
                     what='%d live brokers' % n)


def bootstrap(cl):
    return ','.join(b.bootstrap for b in alive(cl))


def create_topic(cl, name, partitions=3, rf=3):
    a = helpers.admin(alive(cl)[0].bootstrap)
    helpers.wait_futures(a.create_topics([NewTopic(name, partitions, rf)]), timeout=30)
    helpers.wait_for(lambda: leaders(cl, name) is not None, timeout=20, what='leaders of %s' % name)


def leaders(cl, topic):
    """{partition: leader} once every live broker agrees and every partition has a full ISR."""
    seen = []
    for b in alive(cl):
        md = metadata(b, [topic])
        t = md['topics'].get(topic)
        if t is None or t[0] != 0 or not t[1]:
            return None
        if any(err or leader < 0 or sorted(isr) != sorted(reps) for err, leader, reps, isr in t[1].values()):
            return None
        seen.append({p: v[1] for p, v in t[1].items()})
    return seen[0] if seen and all(s == seen[0] for s in seen) else None


def by_id(cl, node):
    return next(b for b in cl.brokers if bid(b) == node)


def find_coordinator(b, key, key_type):
    """(error, node id) from FindCoordinator v1 sent to broker b."""
    body = kr.Writer().string(key).int8(key_type).getvalue()
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(FIND_COORDINATOR, 1, body)
    r.int32()  # throttle
    err = r.int16()
    r.string()
    return err, r.int32()


def coordinator(cl, key, key_type, timeout=30):
    """The node every live broker names as the key's coordinator (creating the internal topic)."""
    def agreed():
        got = set()
        for b in alive(cl):
            err, node = find_coordinator(b, key, key_type)
            if err:
                return None
            got.add(node)
        return got.pop() if len(got) == 1 else None
    return helpers.wait_for(agreed, timeout=timeout, what='the coordinator of %r' % key)


def java_hash(s):
    h = 0
    for unit in struct.unpack('>%dH' % (len(s.encode('utf-16-be')) // 2), s.encode('utf-16-be')):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def internal_partition(key):
    """Kafka's Utils.abs(hashCode) % partitions (not hash & 0x7fffffff)."""
    h = java_hash(key)
    return (0 if h == -(1 << 31) else abs(h)) % NPART


def init_producer_id(b, txn_id, timeout_ms=60000):
    """(error, producer id, epoch) from InitProducerId v1 sent to broker b."""
    body = kr.Writer().string(txn_id).int32(timeout_ms).getvalue()
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(INIT_PRODUCER_ID, 1, body)
    r.int32()
    return r.int16(), r.int64(), r.int16()


def describe_transaction(b, txn_id):
    """(error, state, producer id, epoch, {topic: [partitions]}) from DescribeTransactions v0."""
    body = kr.Writer(True).array([txn_id], lambda w, s: w.string(s)).tags().getvalue()
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(DESCRIBE_TRANSACTIONS, 0, body, flexible=True)
    r.int32()

    def one(r):
        err, tid, state = r.int16(), r.string(), r.string()
        r.int32()
        r.int64()
        pid, epoch = r.int64(), r.int16()
        topics = r.array(lambda r: (r.string(), r.array(lambda r: r.int32()), r.tags())[:2])
        r.tags()
        return err, state, pid, epoch, dict(topics or [])
    return r.array(one)[0]


def write_txn_markers(b, markers):
    """WriteTxnMarkers v1 to broker b. markers: [(producer id, epoch, commit, coordinator epoch,
    {topic: [partitions]})]; returns {(producer id, topic, partition): error}."""
    def marker(w, m):
        pid, epoch, commit, coord_epoch, topics = m
        w.int64(pid).int16(epoch).bool(commit)
        w.array(sorted(topics.items()), lambda w, t: w.string(t[0]).array(t[1], lambda w, p: w.int32(p)).tags())
        w.int32(coord_epoch).tags()
    body = kr.Writer(True).array(markers, marker).tags().getvalue()
    with kr.Conn.to(b.bootstrap, timeout=40) as c:
        r = c.request(WRITE_TXN_MARKERS, 1, body, flexible=True)
    out = {}

    def result(r):
        pid = r.int64()

        def topic(r):
            name = r.string()

            def part(r):
                p, err = r.int32(), r.int16()
                r.tags()
                out[(pid, name, p)] = err
            r.array(part)
            r.tags()
        r.array(topic)
        r.tags()
    r.array(result)
    return out


def txn_producer(cl, txn_id, **extra):
    conf = helpers.confluent_conf(bootstrap(cl), **{'transactional.id': txn_id, 'linger.ms': 5,
                                                    'transaction.timeout.ms': 60000})
    conf.update(extra)
    p = ck.Producer(conf)
    p.init_transactions(60)
    return p


def values(cl, topic, partition, iso='read_committed', timeout=60):
    return [r.value for r in helpers.consume_confluent(bootstrap(cl), topic, partition=partition, timeout=timeout,
                                                       conf={'isolation.level': iso})]


def control_batches(cl, topic, partition, leader):
    return [bt for bt in helpers.raw_fetch_batches(by_id(cl, leader).bootstrap, topic, partition)
            if bt.attributes & 0x20]


def layout(cl, topic):
    """{partition: (leader, replicas)} once every partition has its full ISR."""
    md = metadata(alive(cl)[0], [topic])
    t = md['topics'].get(topic)
    if t is None or t[0] != 0 or not t[1]:
        return None
    if any(err or leader < 0 or sorted(isr) != sorted(reps) for err, leader, reps, isr in t[1].values()):
        return None
    return {p: (v[1], v[2]) for p, v in t[1].items()}


def txn_id_led_by(cl, prefix, want=None, avoid=None):
    """A transactional id whose coordinator partition is led by broker `want` (or not by `avoid`)."""
    coordinator(cl, prefix + '-probe', KEY_TXN)
    ls = helpers.wait_for(lambda: leaders(cl, '__transaction_state'), timeout=20,
                          what='__transaction_state leaders')
    for i in range(1000):
        tid = '%s-%d' % (prefix, i)
        node = ls[internal_partition(tid)]
        if (want is None or node == want) and (avoid is None or node != avoid):
            return tid, node
    raise AssertionError('no transactional id found')


# ----------------------------------------------------------------- tests

def test_coordinator_ownership(start_cluster, topic):
    cl = start_cluster(3, chroot(), **OVERRIDES)
    wait_brokers(cl)
    tid, node = txn_id_led_by(cl, 'own-' + uuid.uuid4().hex[:6])
    assert coordinator(cl, tid, KEY_TXN) == node
    # Only the coordinator takes the transactional id; any broker hands out idempotent producer ids.
    ids = set()
    for b in cl.brokers:
        err, pid, epoch = init_producer_id(b, tid)
        if bid(b) == node:
            assert (err, epoch) == (0, 0) and pid >= 0
        else:
            assert err == NOT_COORDINATOR, (bid(b), err)
        err, pid, epoch = init_producer_id(b, None)
        assert (err, epoch) == (0, 0)
        ids.add(pid)
    assert len(ids) == 3
    err, state, _, _, _ = describe_transaction(by_id(cl, node), tid)
    assert (err, state) == (0, 'Empty')
    other = next(b for b in cl.brokers if bid(b) != node)
    assert describe_transaction(other, tid)[0] == NOT_COORDINATOR


def test_write_txn_markers_checks(start_cluster, topic):
    """The server side of WriteTxnMarkers, per partition: leadership, producer and coordinator epochs."""
    cl = start_cluster(3, chroot(), **OVERRIDES)
    wait_brokers(cl)
    create_topic(cl, topic, partitions=3, rf=3)
    ls = leaders(cl, topic)
    leader = by_id(cl, ls[0])
    other = next(b for b in cl.brokers if bid(b) != ls[0])
    pid = 987654321
    got = write_txn_markers(leader, [(pid, 3, False, 5, {topic: [0, 1, 2], 'no-such-topic': [0]})])
    assert got[(pid, topic, 0)] == 0
    assert got[(pid, 'no-such-topic', 0)] == UNKNOWN_TOPIC_OR_PARTITION
    for p in (1, 2):
        assert got[(pid, topic, p)] == (0 if ls[p] == ls[0] else NOT_LEADER_OR_FOLLOWER)
    assert write_txn_markers(other, [(pid, 3, True, 5, {topic: [0]})]) == {(pid, topic, 0): NOT_LEADER_OR_FOLLOWER}
    # An older producer epoch, then an older coordinator epoch, are refused; the same again is fine.
    assert write_txn_markers(leader, [(pid, 2, True, 5, {topic: [0]})]) == {(pid, topic, 0): INVALID_PRODUCER_EPOCH}
    assert write_txn_markers(leader, [(pid, 3, True, 4, {topic: [0]})]) == \
        {(pid, topic, 0): TRANSACTION_COORDINATOR_FENCED}
    assert write_txn_markers(leader, [(pid, 3, True, 5, {topic: [0]}), (pid + 1, 0, True, 0, {topic: [0]})]) == \
        {(pid, topic, 0): 0, (pid + 1, topic, 0): 0}
    # Three markers in the log, on every replica; no record for a consumer.
    assert len(control_batches(cl, topic, 0, ls[0])) == 3
    assert values(cl, topic, 0, 'read_uncommitted') == []


def test_commit_and_abort_across_brokers(start_cluster, topic):
    cl = start_cluster(3, chroot(), **OVERRIDES)
    wait_brokers(cl)
    create_topic(cl, topic, partitions=3, rf=3)
    ls = leaders(cl, topic)
    assert len(set(ls.values())) >= 2, ls  # the markers go to several brokers
    tid, coord = txn_id_led_by(cl, 'x-' + uuid.uuid4().hex[:6])
    p = txn_producer(cl, tid)
    p.begin_transaction()
    for i in range(9):
        p.produce(topic, value=b'c%d' % i, partition=i % 3)
    p.commit_transaction(60)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b'a%d' % i, partition=i % 3)
    p.flush(60)
    p.abort_transaction(60)
    p.begin_transaction()
    for part in range(3):
        p.produce(topic, value=b'last%d' % part, partition=part)
    p.commit_transaction(60)

    for part in range(3):
        committed = [b'c%d' % i for i in range(9) if i % 3 == part] + [b'last%d' % part]
        aborted = [b'a%d' % i for i in range(6) if i % 3 == part]
        assert values(cl, topic, part) == committed
        assert values(cl, topic, part, 'read_uncommitted') == committed[:3] + aborted + committed[3:]
        # One marker per transaction in every partition, on every replica's log through its leader.
        assert len(control_batches(cl, topic, part, ls[part])) == 3
    # The coordinator finished: CompleteCommit, nothing left open.
    err, state, _, _, parts = helpers.wait_for(
        lambda: (lambda d: d if d[1] == 'CompleteCommit' else None)(describe_transaction(by_id(cl, coord), tid)),
        timeout=20, what='CompleteCommit')
    assert err == 0 and parts == {}


def test_consume_transform_produce_across_coordinators(start_cluster, topic):
    cl = start_cluster(3, chroot(), **OVERRIDES)
    wait_brokers(cl)
    src, dst = topic + '-in', topic + '-out'
    create_topic(cl, src, partitions=3, rf=3)
    create_topic(cl, dst, partitions=3, rf=3)
    # A group and a transactional id coordinated by different brokers.
    coordinator(cl, 'probe-group', KEY_GROUP)
    gls = helpers.wait_for(lambda: leaders(cl, '__consumer_offsets'), timeout=20, what='__consumer_offsets leaders')
    group = next(g for g in ('ctp-%s-%d' % (uuid.uuid4().hex[:6], i) for i in range(1000)))
    gnode = gls[internal_partition(group)]
    tid, tnode = txn_id_led_by(cl, 'ctp-' + uuid.uuid4().hex[:6], avoid=gnode)
    assert coordinator(cl, group, KEY_GROUP) == gnode
    assert coordinator(cl, tid, KEY_TXN) == tnode != gnode

    n = 60
    for part in range(3):
        helpers.produce_confluent(bootstrap(cl), src, helpers.make_records(n // 3, prefix='p%d-' % part),
                                  partition=part, conf={'acks': 'all'})
    producer = txn_producer(cl, tid)
    gconf = helpers.confluent_conf(bootstrap(cl), **{
        'group.id': group, 'enable.auto.commit': False, 'auto.offset.reset': 'earliest',
        'isolation.level': 'read_committed'})
    # An aborted transaction's offsets never become the group's.
    consumer = ck.Consumer(gconf)
    try:
        consumer.subscribe([src])
        helpers.wait_for(lambda: consumer.poll(0.5) is not None or None, timeout=60, what='a first record')
        producer.begin_transaction()
        producer.produce(dst, value=b'aborted', partition=0)
        producer.send_offsets_to_transaction([ck.TopicPartition(src, 0, 7)], consumer.consumer_group_metadata(), 60)
        # While the transaction is open its offset is unstable: RequireStable readers are told to
        # retry (UNSTABLE_OFFSET_COMMIT), others see the committed value (none yet).
        from test_groups_protocol import fetch_offsets_v8
        with kr.Conn.to(by_id(cl, gnode).bootstrap) as c:
            err, parts = fetch_offsets_v8(c, {group: {src: [0]}}, require_stable=True)[group]
            assert err == 0 and parts[(src, 0)][0] == -1 and parts[(src, 0)][3] == UNSTABLE_OFFSET_COMMIT
            err, parts = fetch_offsets_v8(c, {group: {src: [0]}}, require_stable=False)[group]
            assert err == 0 and parts[(src, 0)][0] == -1 and parts[(src, 0)][3] == 0
        producer.abort_transaction(60)
        got = consumer.committed([ck.TopicPartition(src, 0)], timeout=20)
        assert got[0].offset < 0, got
    finally:
        consumer.close()

    # The loop: a new member starts from the beginning (nothing was committed).
    consumer = ck.Consumer(gconf)
    try:
        consumer.subscribe([src])
        done = 0
        rounds = 0
        while done < n:
            msgs = consumer.consume(20, 5)
            msgs = [m for m in msgs if not m.error()]
            if not msgs:
                continue
            rounds += 1
            producer.begin_transaction()
            for m in msgs:
                producer.produce(dst, key=m.key(), value=b'T:' + m.value(), partition=m.partition())
            offsets = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 60)
            producer.commit_transaction(60)
            done += len(msgs)
        assert done == n and rounds >= 1
        # The group's committed offsets are the ends of the input once the last commit marker has
        # reached the group coordinator (the markers follow the EndTxn answer).
        want = [(part, n // 3) for part in range(3)]
        helpers.wait_for(lambda: sorted((tp.partition, tp.offset) for tp in consumer.committed(
            [ck.TopicPartition(src, part) for part in range(3)], timeout=20)) == want, timeout=20,
            what='the committed offsets')
    finally:
        consumer.close()
    for part in range(3):
        want = [b'T:' + r['value'] for r in helpers.make_records(n // 3, prefix='p%d-' % part)]
        assert values(cl, dst, part) == want
    # At the group coordinator the offsets went in as the producer's transactional batches, each
    # closed by a marker from the other broker's transaction coordinator (the aborted one too).
    batches = helpers.raw_fetch_batches(by_id(cl, gnode).bootstrap, '__consumer_offsets', internal_partition(group))
    txn = [bt for bt in batches if bt.attributes & 0x10 and not bt.attributes & 0x20]
    markers = [bt for bt in batches if bt.attributes & 0x20]
    assert len(txn) >= rounds + 1 and len(markers) == len(txn)
    # A new member of the group starts where the transactions left it.
    c2 = ck.Consumer(helpers.confluent_conf(bootstrap(cl), **{'group.id': group, 'enable.auto.commit': False}))
    try:
        got = c2.committed([ck.TopicPartition(src, part) for part in range(3)], timeout=20)
        assert [tp.offset for tp in got] == [n // 3] * 3
    finally:
        c2.close()


def test_coordinator_killed_between_transactions(start_cluster, topic):
    cl = start_cluster(3, chroot(), **OVERRIDES)
    wait_brokers(cl)
    create_topic(cl, topic, partitions=3, rf=3)
    tid, coord = txn_id_led_by(cl, 'k-' + uuid.uuid4().hex[:6])
    helpers.wait_for(lambda: leaders(cl, '__transaction_state'), timeout=20, what='a full ISR')
    p = txn_producer(cl, tid)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b'one%d' % i, partition=i % 3)
    p.commit_transaction(60)
    # The next transaction is open (its partitions added, its records written) when the
    # coordinator dies.
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b'two%d' % i, partition=i % 3)
    assert p.flush(60) == 0
    by_id(cl, coord).kill9()
    new = helpers.wait_for(lambda: (lambda c: c if c != coord else None)(coordinator(cl, tid, KEY_TXN, timeout=60)),
                           timeout=60, what='a new transaction coordinator')
    assert new != coord
    assert 'coordinating the transactional ids of __transaction_state-%d' % internal_partition(tid) in \
        by_id(cl, new).log_text()
    err, state, pid, epoch, parts = describe_transaction(by_id(cl, new), tid)
    assert (err, state) == (0, 'Ongoing') and sorted(parts[topic]) == [0, 1, 2]
    p.commit_transaction(60)
    p.begin_transaction()
    p.produce(topic, value=b'three', partition=0)
    p.commit_transaction(60)
    for part in range(3):
        want = [b'one%d' % i for i in range(6) if i % 3 == part] + [b'two%d' % i for i in range(6) if i % 3 == part]
        if part == 0:
            want.append(b'three')
        assert values(cl, topic, part) == want
    # A producer re-initialised with the same id fences the old one.
    p2 = txn_producer(cl, tid)
    err, state, pid2, epoch2, _ = describe_transaction(by_id(cl, new), tid)
    assert (err, pid2) == (0, pid) and epoch2 > epoch
    p.begin_transaction()
    p.produce(topic, value=b'zombie', partition=1)
    with pytest.raises(ck.KafkaException) as e:
        p.commit_transaction(30)
    assert e.value.args[0].fatal() or e.value.args[0].txn_requires_abort(), e.value.args[0]
    p2.begin_transaction()
    p2.produce(topic, value=b'four', partition=1)
    p2.commit_transaction(60)
    assert values(cl, topic, 1)[-1] == b'four'
    assert b'zombie' not in values(cl, topic, 1)
    p.purge()


def test_coordinator_killed_with_markers_pending(start_cluster, topic):
    # __transaction_state on two replicas, so freezing the third broker stalls only the markers.
    cl = start_cluster(3, chroot(), transaction__state__log__replication__factor='2', **OVERRIDES)
    wait_brokers(cl)
    create_topic(cl, topic, partitions=3, rf=3)
    coordinator(cl, 'probe-' + uuid.uuid4().hex[:6], KEY_TXN)
    tl = helpers.wait_for(lambda: layout(cl, '__transaction_state'), timeout=20, what='__transaction_state ISR')
    dl = helpers.wait_for(lambda: layout(cl, topic), timeout=20, what='the topic ISR')
    for i in range(1000):
        tid = 'mp-%s-%d' % (uuid.uuid4().hex[:6], i)
        coord, reps = tl[internal_partition(tid)]
        frozen_id = ({1, 2, 3} - set(reps)).pop()
        p_frozen = [p for p, (leader, _) in dl.items() if leader == frozen_id]
        p_other = [p for p, (leader, _) in dl.items() if leader != frozen_id]
        if p_frozen and p_other:
            break
    survivor = next(r for r in reps if r != coord)
    assert coordinator(cl, tid, KEY_TXN) == coord
    pf, po = p_frozen[0], p_other[0]

    p = txn_producer(cl, tid)
    p.begin_transaction()
    p.produce(topic, value=b'behind-frozen', partition=pf)
    p.produce(topic, value=b'elsewhere', partition=po)
    assert p.flush(60) == 0
    frozen = by_id(cl, frozen_id)
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    try:
        # Answered once PrepareCommit is on the ISR; the marker for pf cannot land yet.
        p.commit_transaction(60)
        err, state, _, _, parts = describe_transaction(by_id(cl, coord), tid)
        assert (err, state) == (0, 'PrepareCommit') and sorted(parts[topic]) == sorted([pf, po])
        by_id(cl, coord).kill9()
        # The surviving replica takes the partition over, finds PrepareCommit and writes the markers
        # again, pf's to its new leader once ZooKeeper has dropped the frozen broker.
        helpers.wait_for(lambda: describe_transaction(by_id(cl, survivor), tid)[1] == 'CompleteCommit',
                         timeout=90, what='the new coordinator to complete the transaction')
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
    assert re.search(r'coordinating the transactional ids of __transaction_state-%d \(coordinator epoch [1-9]\d*\): '
                     r'\d+ ids, 1 transactions to complete' % internal_partition(tid), by_id(cl, survivor).log_text())
    assert values(cl, topic, pf) == [b'behind-frozen']
    assert values(cl, topic, po) == [b'elsewhere']
    # The producer goes on with the new coordinator.
    p.begin_transaction()
    p.produce(topic, value=b'after', partition=po)
    p.commit_transaction(60)
    assert values(cl, topic, po) == [b'elsewhere', b'after']
