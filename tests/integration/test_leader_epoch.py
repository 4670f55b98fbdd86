"""OffsetForLeaderEpoch (API key 23, v0-4) with raw requests.

On one broker: the end offset of the current epoch is the log end, a
CurrentLeaderEpoch newer than the broker's is UNKNOWN_LEADER_EPOCH, unknown
topics and partitions are UNKNOWN_TOPIC_OR_PARTITION, each partition is
answered on its own, at every version. In cluster mode (real ZooKeeper, three
brokers, replication factor 3): after the leader is killed and more records
are produced, the new leader answers the old epoch with the offset where its
own epoch starts, fences stale callers (FENCED_LEADER_EPOCH), and followers
refuse (NOT_LEADER_OR_FOLLOWER), as Apache Kafka's brokers do.
"""

import uuid

import pytest
from confluent_kafka.admin import NewTopic

import helpers
import kafka_raw as kr
from zk import start_cluster, zookeeper  # noqa: F401 (fixtures)

OFFSET_FOR_LEADER_EPOCH = 23
NOT_LEADER_OR_FOLLOWER = 6
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75

VERSIONS = [0, 1, 2, 3, 4]


# ----------------------------------------------------------------- wire helpers

def ofle_body(version, topics, replica_id=-1):
    """topics: [(name, [(partition, current_leader_epoch, leader_epoch)])]."""
    w = kr.Writer(version >= 4)
    if version >= 3:
        w.int32(replica_id)

    def part(wp, p):
        idx, current, epoch = p
        wp.int32(idx)
        if version >= 2:
            wp.int32(current)
        wp.int32(epoch)
        wp.tags()

    def topic(wt, t):
        wt.string(t[0])
        wt.array(t[1], part)
        wt.tags()
    w.array(topics, topic)
    w.tags()
    return w.getvalue()


def parse_ofle(r, version):
    """Returns [(topic, partition, error, leader_epoch, end_offset)] in answer order; the leader
    epoch is None before v1 (not in the answer)."""
    r.flexible = version >= 4
    if version >= 2:
        assert r.int32() == 0  # throttle
    out = []

    def part(rp, name):
        err, idx = rp.int16(), rp.int32()
        epoch = rp.int32() if version >= 1 else None
        end = rp.int64()
        rp.tags()
        out.append((name, idx, err, epoch, end))

    def topic(rt):
        name = rt.string()
        rt.array(lambda x: part(x, name))
        rt.tags()
    r.array(topic)
    r.tags()
    assert r.remaining() == 0, 'bytes left after the answer'
    return out


def ofle(bootstrap, version, topics, replica_id=-1):
    with kr.Conn.to(bootstrap) as c:
        r = c.request(OFFSET_FOR_LEADER_EPOCH, version, ofle_body(version, topics, replica_id),
                      flexible=version >= 4)
        return parse_ofle(r, version)


def one(bootstrap, version, topic, partition, epoch, current=-1, replica_id=-1):
    """(error, leader epoch, end offset) of one partition."""
    res = ofle(bootstrap, version, [(topic, [(partition, current, epoch)])], replica_id)
    assert len(res) == 1 and res[0][:2] == (topic, partition), res
    return res[0][2:]


def expect(version, err, epoch, end):
    """What a version can carry of (error, leader epoch, end offset)."""
    return (err, epoch if version >= 1 else None, end)


def produce(bootstrap, topic, n, partition=0, prefix='r', acks='all'):
    res = helpers.produce_confluent(bootstrap, topic, helpers.make_records(n, prefix=prefix),
                                    partition=partition, conf={'acks': acks})
    return [r[2] for r in res]


# ----------------------------------------------------------------- one broker

def test_advertised(broker):
    with kr.Conn.to(broker.bootstrap) as c:
        _, keys = kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)
    assert keys[OFFSET_FOR_LEADER_EPOCH] == (0, 4)


@pytest.mark.parametrize('version', VERSIONS)
def test_current_epoch_ends_at_log_end(broker, topic, version):
    helpers.create_topic(broker.bootstrap, topic, partitions=2)
    assert produce(broker.bootstrap, topic, 7, prefix='a') == list(range(7))
    assert produce(broker.bootstrap, topic, 5, prefix='b') == list(range(7, 12))
    # Epoch 0 (a single broker never changes leader) ends at the log end; an empty partition's at 0.
    assert one(broker.bootstrap, version, topic, 0, 0) == expect(version, 0, 0, 12)
    assert one(broker.bootstrap, version, topic, 1, 0) == expect(version, 0, 0, 0)
    if version >= 2:  # the caller's current epoch matches
        assert one(broker.bootstrap, version, topic, 0, 0, current=0) == expect(version, 0, 0, 12)
    if version >= 3:  # ReplicaId changes nothing (a debug consumer -2, or a broker id)
        for rid in (-2, 0, 7):
            assert one(broker.bootstrap, version, topic, 0, 0, replica_id=rid) == expect(version, 0, 0, 12)
    # The end moves with the log.
    assert produce(broker.bootstrap, topic, 3, prefix='c') == [12, 13, 14]
    assert one(broker.bootstrap, version, topic, 0, 0) == expect(version, 0, 0, 15)
    # UNDEFINED_EPOCH asked: both UNDEFINED, no error.
    assert one(broker.bootstrap, version, topic, 0, -1) == expect(version, 0, -1, -1)


@pytest.mark.parametrize('version', [2, 3, 4])
def test_current_leader_epoch_too_new(broker, topic, version):
    helpers.create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 4)
    for current in (1, 5):
        assert one(broker.bootstrap, version, topic, 0, 0, current=current) == \
            expect(version, UNKNOWN_LEADER_EPOCH, -1, -1)
    # -1: the caller gives none, nothing is checked.
    assert one(broker.bootstrap, version, topic, 0, 0, current=-1) == expect(version, 0, 0, 4)


@pytest.mark.parametrize('version', VERSIONS)
def test_unknown_topic_or_partition(broker, topic, version):
    helpers.create_topic(broker.bootstrap, topic, partitions=2)
    produce(broker.bootstrap, topic, 3)
    missing = topic + '-missing'
    res = ofle(broker.bootstrap, version, [
        (topic, [(5, -1, 0), (0, -1, 0), (-1, -1, 0), (1, -1, 0)]),
        (missing, [(0, -1, 0)]),
    ])
    e = expect
    assert res == [
        (topic, 5) + e(version, kr.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
        (topic, 0) + e(version, 0, 0, 3),
        (topic, -1) + e(version, kr.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
        (topic, 1) + e(version, 0, 0, 0),
        (missing, 0) + e(version, kr.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
    ]
    # Asking does not create the topic.
    with kr.Conn.to(broker.bootstrap) as c:
        md = kr.parse_metadata(c.request(kr.METADATA, 4, kr.metadata_body(4, [missing], allow_auto=False)), 4)
    assert md['topics'][missing][0] == kr.UNKNOWN_TOPIC_OR_PARTITION


def test_empty_request(broker):
    for v in VERSIONS:
        assert ofle(broker.bootstrap, v, []) == []


# ----------------------------------------------------------------- cluster mode

def chroot():
    return '/runnel-ofle-' + uuid.uuid4().hex[:8]


def bid(b):
    return int(b.overrides['broker.id'])


def alive(cl):
    return [b for b in cl.brokers if b.alive()]


def live_brokers(b):
    """How many live brokers b lists (0 while it cannot answer)."""
    try:
        with kr.Conn.to(b.bootstrap) as c:
            return len(kr.parse_metadata(c.request(kr.METADATA, 1, kr.metadata_body(1, None)), 1)['brokers'])
    except (OSError, EOFError, ValueError):
        return 0


def partition_states(b, topic):
    """(controller id, {partition: (error, leader, leader epoch, replicas, isr)}) from Metadata v9 sent
    to b, or None while b cannot answer or does not know the topic."""
    v = 9
    try:
        with kr.Conn.to(b.bootstrap) as c:
            r = c.request(kr.METADATA, v, kr.metadata_body(v, [topic], False), flexible=True)
    except (OSError, EOFError, ValueError):
        return None
    r.flexible = True
    r.int32()  # throttle

    def broker_(rr):
        rr.int32(), rr.string(), rr.int32(), rr.string()
        rr.tags()
    r.array(broker_)
    r.string()  # cluster id
    ctl = r.int32()
    out = {}

    def part(rr):
        err, idx, leader, epoch = rr.int16(), rr.int32(), rr.int32(), rr.int32()
        reps = rr.array(lambda x: x.int32())
        isr = rr.array(lambda x: x.int32())
        rr.array(lambda x: x.int32())  # offline replicas
        rr.tags()
        out[idx] = (err, leader, epoch, sorted(reps), sorted(isr))

    errs = []

    def topic_(rr):
        errs.append(rr.int16())
        rr.string()
        rr.bool()
        rr.array(part)
        rr.int32()  # authorized operations
        rr.tags()
    r.array(topic_)
    if errs != [0]:
        return None
    return ctl, out


def settled(cl, topic, partitions, rf, exclude=()):
    """Every alive broker agrees on leader, epoch and a full ISR (the replicas not in exclude) of
    every partition; returns (controller, that view)."""
    seen = None
    for b in alive(cl):
        st = partition_states(b, topic)
        if st is None or sorted(st[1]) != list(range(partitions)):
            return None
        ctl, ps = st
        for err, leader, _, reps, isr in ps.values():
            want = sorted(r for r in reps if r not in exclude)
            if err != 0 or leader not in want or len(reps) != rf or isr != want:
                return None
        if seen is not None and (ctl, ps) != seen:
            return None
        seen = (ctl, ps)
    return seen


def test_new_leader_answers_where_the_old_epoch_ends(start_cluster, topic):
    cl = start_cluster(3, chroot(), replica__lag__time__max__ms='3000')
    helpers.wait_for(lambda: all(live_brokers(b) == 3 for b in cl.brokers), timeout=20,
                     what='three live brokers seen by each')
    fs = helpers.admin(cl.by_id(1).bootstrap).create_topics([NewTopic(topic, 3, 3)], operation_timeout=15)
    assert helpers.wait_futures(fs, timeout=30)[topic] is None
    ctl, ps = helpers.wait_for(lambda: settled(cl, topic, 3, 3), timeout=30,
                               what='leaders and a full ISR for every partition')
    # A partition whose leader is not the controller: only the leader changes when it dies.
    p = next((i for i, s in sorted(ps.items()) if s[1] != ctl), 0)
    old = cl.by_id(ps[p][1])
    e0 = ps[p][2]
    followers = [b for b in cl.brokers if b is not old]

    n = 40
    assert produce(cl.bootstrap, topic, n, partition=p, prefix='a') == list(range(n))
    for v in VERSIONS:
        assert one(old.bootstrap, v, topic, p, e0) == expect(v, 0, e0, n)
        # Followers do not answer, whoever asks (Kafka: fetchOnlyFromLeader for every caller).
        for f in followers:
            assert one(f.bootstrap, v, topic, p, e0) == expect(v, NOT_LEADER_OR_FOLLOWER, -1, -1)
            if v >= 3:
                assert one(f.bootstrap, v, topic, p, e0, replica_id=bid(old)) == \
                    expect(v, NOT_LEADER_OR_FOLLOWER, -1, -1)

    old.kill9()
    ctl, ps = helpers.wait_for(lambda: settled(cl, topic, 3, 3, exclude=(bid(old),)), timeout=30,
                               what='a new leader of partition %d without broker %d' % (p, bid(old)))
    new = cl.by_id(ps[p][1])
    e1 = ps[p][2]
    assert new is not old and e1 > e0, (bid(new), e0, e1)
    follower = next(b for b in alive(cl) if b is not new)

    m = 25
    assert produce(cl.bootstrap, topic, m, partition=p, prefix='b') == list(range(n, n + m))
    for v in VERSIONS:
        cur = e1 if v >= 2 else -1
        # The old epoch ends where the new leader's epoch starts: the log end when it took over.
        assert one(new.bootstrap, v, topic, p, e0, current=cur) == expect(v, 0, e0, n)
        # The current epoch ends at the log end; an epoch in between belongs to the one before it.
        assert one(new.bootstrap, v, topic, p, e1, current=cur) == expect(v, 0, e1, n + m)
        if e1 > e0 + 1:
            assert one(new.bootstrap, v, topic, p, e1 - 1, current=cur) == expect(v, 0, e0, n)
        assert one(follower.bootstrap, v, topic, p, e0, current=cur) == \
            expect(v, NOT_LEADER_OR_FOLLOWER, -1, -1)
        if v >= 2:
            # A caller that still knows the old epoch is fenced, one from the future is told to wait;
            # a replica checks the epoch before its leadership, as Kafka's Partition does.
            for b in (new, follower):
                assert one(b.bootstrap, v, topic, p, e0, current=e0) == \
                    expect(v, FENCED_LEADER_EPOCH, -1, -1)
                assert one(b.bootstrap, v, topic, p, e0, current=e1 + 1) == \
                    expect(v, UNKNOWN_LEADER_EPOCH, -1, -1)
    # Consumers read every record through the new leader.
    got = helpers.consume_confluent(cl.bootstrap, topic, partition=p, count=n + m)
    assert [g.offset for g in got] == list(range(n + m))
