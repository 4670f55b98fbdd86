"""Controller duties in cluster mode, on a real ZooKeeper and three
runnel-server brokers on loopback: preferred leader election (the periodic
rebalance, the ElectLeaders API, Kafka's /admin/preferred_replica_election
znode), controlled shutdown on SIGTERM, CreatePartitions through ZooKeeper,
and unclean leader election (topic and broker config, ElectLeaders type 1).

Synchronisation is by polling observable state (Metadata with leader epochs,
znodes, the brokers' logs) with helpers.wait_for, never by sleeping. The one
negative check (no leader without unclean election) watches for two seconds
after the controller has seen the returning broker.
"""

import signal
import threading
import time
import uuid

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import NewPartitions, NewTopic

import helpers
import kafka_raw as kr
from zk import start_cluster, zk_cli, zookeeper  # noqa: F401 (fixtures)

ELECT_LEADERS = 43
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
INVALID_PARTITIONS = 37
INVALID_REPLICA_ASSIGNMENT = 39
PREFERRED_LEADER_NOT_AVAILABLE = 80
ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
ELECTION_NOT_NEEDED = 84

PREFERRED, UNCLEAN = 0, 1


# ----------------------------------------------------------------- helpers

def chroot():
    return '/runnel-ctl-' + uuid.uuid4().hex[:8]


def bid(b):
    return int(b.overrides['broker.id'])


def alive(cl):
    return [b for b in cl.brokers if b.alive()]


def metadata(b, topics=None):
    """Metadata v9 with leader epochs: {'brokers': [ids], 'controller_id': id,
    'topics': {name: (error, {partition: (error, leader, epoch, replicas, isr)})}}."""
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(kr.METADATA, 9, kr.metadata_body(9, topics, False), flexible=True)
    r.flexible = True
    r.int32()

    def broker(x):
        nid = x.int32()
        x.string(), x.int32(), x.string(), x.tags()
        return nid

    def partition(x):
        err, idx, leader, epoch = x.int16(), x.int32(), x.int32(), x.int32()
        reps = x.array(lambda y: y.int32())
        isr = x.array(lambda y: y.int32())
        x.array(lambda y: y.int32())
        x.tags()
        return idx, (err, leader, epoch, reps, isr)

    def topic(x):
        err, name = x.int16(), x.string()
        x.bool()
        ps = dict(x.array(partition))
        x.int32()
        x.tags()
        return name, (err, ps)
    out = {'brokers': sorted(r.array(broker))}
    r.string()
    out['controller_id'] = r.int32()
    out['topics'] = dict(r.array(topic))
    return out


def try_metadata(b, topics=None):
    if not b.alive():
        return None
    try:
        return metadata(b, topics)
    except (OSError, EOFError, ValueError, AssertionError):
        return None


def parts(b, topic):
    """{partition: (error, leader, epoch, replicas, isr)} as b sees the topic, or None."""
    md = try_metadata(b, [topic])
    t = md and md['topics'].get(topic)
    if not t or t[0] not in (NONE, LEADER_NOT_AVAILABLE):
        return None
    return t[1]


def wait_brokers(cl, n=3, timeout=20):
    def agreed():
        mds = [try_metadata(b) for b in alive(cl)]
        if any(md is None or len(md['brokers']) != n or md['controller_id'] < 0 for md in mds):
            return None
        return len({md['controller_id'] for md in mds}) == 1 and mds[0]['controller_id']
    return helpers.wait_for(agreed, timeout=timeout, interval=0.1, what='%d live brokers and a controller' % n)


def same_everywhere(cl, topic, pred):
    """The topic's partitions when every live broker sees the same leaders and ISRs and pred holds."""
    seen = None
    for b in alive(cl):
        ps = parts(b, topic)
        if ps is None or not pred(ps):
            return None
        view = {p: (v[1], v[2], sorted(v[4])) for p, v in ps.items()}
        if seen is not None and view != seen:
            return None
        seen = view
    return ps


def full_isr(ps, n, rf):
    return sorted(ps) == list(range(n)) and all(
        v[0] == NONE and v[1] >= 0 and len(v[3]) == rf and sorted(v[4]) == sorted(v[3]) for v in ps.values())


def wait_full_isr(cl, topic, n, rf=3, timeout=40):
    return helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: full_isr(ps, n, rf)), timeout=timeout,
                            interval=0.1, what='%s: %d partitions, every ISR full, on every live broker' % (topic, n))


def create_topic(cl, name, partitions, rf, config=None):
    fs = helpers.admin(alive(cl)[0].bootstrap).create_topics([NewTopic(name, partitions, rf, config=config or {})],
                                                            operation_timeout=15)
    assert helpers.wait_futures(fs, timeout=30)[name] is None
    return wait_full_isr(cl, name, partitions, rf)


def elect_leaders(b, election_type, topic_partitions, version=2, timeout_ms=15000):
    """A raw ElectLeaders request (confluent_kafka 1.7 has no elect_leaders): returns
    (top-level error, {topic: {partition: (error, message)}})."""
    flex = version >= 2
    w = kr.Writer(flex)
    if version >= 1:
        w.int8(election_type)

    def topic(wr, item):
        wr.string(item[0])
        wr.array(item[1], lambda x, p: x.int32(p))
        wr.tags()
    w.array(None if topic_partitions is None else list(topic_partitions.items()), topic)
    w.int32(timeout_ms)
    w.tags()
    with kr.Conn.to(b.bootstrap, timeout=timeout_ms / 1000.0 + 10) as c:
        r = c.request(ELECT_LEADERS, version, w.getvalue(), flexible=flex)
    r.flexible = flex
    r.int32()
    err = r.int16() if version >= 1 else 0

    def presult(x):
        pid, e, msg = x.int32(), x.int16(), x.string()
        x.tags()
        return pid, (e, msg)

    def tresult(x):
        name = x.string()
        ps = dict(x.array(presult))
        x.tags()
        return name, ps
    res = {}
    for name, ps in r.array(tresult):
        res.setdefault(name, {}).update(ps)
    r.tags()
    return err, res


def codes(res):
    return {t: {p: e for p, (e, _) in ps.items()} for t, ps in res.items()}


def log_since(b, pos):
    return b.log_text(pos)


class AckedProducer:
    """An idempotent acks=all librdkafka producer in a thread, round robin over the partitions;
    values b'p<partition>-<seq>'; keeps every delivery report."""

    def __init__(self, bootstrap, topic, partitions):
        self.topic, self.partitions = topic, partitions
        self.conf = helpers.confluent_conf(bootstrap, **{
            'enable.idempotence': True, 'acks': 'all', 'linger.ms': 2, 'message.timeout.ms': 60000,
            'reconnect.backoff.ms': 20, 'reconnect.backoff.max.ms': 300, 'retry.backoff.ms': 50,
            'topic.metadata.refresh.interval.ms': 1000})
        self.lock = threading.Lock()
        self.acked = {p: [] for p in range(partitions)}
        self.failed = []
        self.sent = {p: 0 for p in range(partitions)}
        self.stop_ev = threading.Event()
        self.exc = None
        self.undelivered = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _cb(self, err, msg):
        with self.lock:
            if err is None:
                self.acked[msg.partition()].append((msg.value(), msg.offset()))
            else:
                self.failed.append((msg.partition(), msg.value(), err))

    def n_acked(self):
        with self.lock:
            return sum(len(v) for v in self.acked.values())

    def _run(self):
        try:
            prod = ck.Producer(self.conf)
            i = 0
            while not self.stop_ev.is_set():
                p = i % self.partitions
                if sum(self.sent.values()) - self.n_acked() < 2000:
                    try:
                        prod.produce(self.topic, value=b'p%d-%08d' % (p, self.sent[p]), partition=p,
                                     on_delivery=self._cb)
                        self.sent[p] += 1
                        i += 1
                    except BufferError:
                        pass
                prod.poll(0.005 if p == 0 else 0)
            self.undelivered = prod.flush(60)
        except BaseException as e:  # reported by stop()
            self.exc = e

    def start(self):
        self.thread.start()
        return self

    def wait_more(self, n, timeout, what):
        base = self.n_acked()
        helpers.wait_for(lambda: self.n_acked() >= base + n, timeout=timeout, interval=0.05,
                         what='%s (errors %s)' % (what, self.failed[:3]))

    def stop(self):
        self.stop_ev.set()
        self.thread.join(90)
        assert not self.thread.is_alive(), 'producer thread did not finish'
        if self.exc is not None:
            raise self.exc
        assert self.undelivered == 0, '%s records undelivered' % self.undelivered


# ----------------------------------------------------------------- tests

def test_preferred_leaders_restored_automatically(start_cluster, topic):
    # Leader balance checked every second (Kafka's leader.imbalance.check.interval.seconds).
    cl = start_cluster(3, chroot(), leader__imbalance__check__interval__seconds='1',
                       replica__lag__time__max__ms='3000')
    ctl = wait_brokers(cl)
    ps = create_topic(cl, topic, 3, 3)
    preferred = {p: v[3][0] for p, v in ps.items()}
    assert {p: v[1] for p, v in ps.items()} == preferred and sorted(preferred.values()) == [1, 2, 3]
    vid = next(i for i in (1, 2, 3) if i != ctl)
    pv = next(p for p, b in preferred.items() if b == vid)
    first = {p: helpers.make_records(20, prefix='a%d' % p) for p in range(3)}
    for p in range(3):
        helpers.produce_confluent(cl.bootstrap, topic, first[p], partition=p, conf={'acks': 'all'})

    # kill -9: when its session expires the controller moves its partition to another ISR member.
    cl.by_id(vid).kill9()
    moved = helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: ps[pv][1] not in (vid, -1) and
                                                     vid not in ps[pv][4]),
                             timeout=25, what='partition %d to leave broker %d' % (pv, vid))
    assert moved[pv][2] == 1
    second = helpers.make_records(10, prefix='b')
    helpers.produce_confluent(cl.bootstrap, topic, second, partition=pv, conf={'acks': 'all'})

    # Back: it catches up, rejoins the ISR, and the periodic rebalance gives its partition back.
    cl.by_id(vid).start()
    back = helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: full_isr(ps, 3, 3) and
                                                    {p: v[1] for p, v in ps.items()} == preferred),
                            timeout=40, what='every partition led by its preferred replica again')
    # One new epoch for the failover, one for the move back; the others never changed leader.
    assert {p: v[2] for p, v in back.items()} == {p: 2 if p == pv else 0 for p in range(3)}
    assert 'leader rebalance moved' in cl.by_id(ctl).log_text()
    state = zk_cli(cl.zk, 'get', '%s/brokers/topics/%s/partitions/%d/state' % (cl.chroot, topic, pv))
    assert '"leader":%d' % vid in state and '"leader_epoch":2' in state
    third = helpers.make_records(10, prefix='c')
    helpers.produce_confluent(cl.bootstrap, topic, third, partition=pv, conf={'acks': 'all'})
    got = helpers.consume_confluent(cl.bootstrap, topic, partition=pv, count=40)
    assert [g.value for g in got] == [r['value'] for r in first[pv] + second + third]


def test_elect_leaders_api_and_preferred_election_znode(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot(), auto__leader__rebalance__enable='false')
    ctl = wait_brokers(cl)
    ps = create_topic(cl, topic, 3, 3)
    preferred = {p: v[3][0] for p, v in ps.items()}
    vid = next(i for i in (1, 2, 3) if i != ctl)
    pv = next(p for p, b in preferred.items() if b == vid)
    other = next(p for p in range(3) if p != pv)
    victim = cl.by_id(vid)
    # Another broker answers: neither the controller nor the victim.
    asked = next(b for b in cl.brokers if bid(b) not in (ctl, vid))

    def away_and_back():
        victim.stop(signal.SIGTERM)  # controlled shutdown hands its partition over
        helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: ps[pv][1] not in (vid, -1)), timeout=20,
                         what='partition %d led elsewhere' % pv)
        victim.start()
        return wait_full_isr(cl, topic, 3)

    victim.stop(signal.SIGTERM)
    helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: ps[pv][1] not in (vid, -1)), timeout=20,
                     what='partition %d led elsewhere' % pv)
    # The preferred replica is down.
    err, res = elect_leaders(asked, PREFERRED, {topic: [pv]})
    assert err == 0 and codes(res) == {topic: {pv: PREFERRED_LEADER_NOT_AVAILABLE}}
    victim.start()
    ps = wait_full_isr(cl, topic, 3)
    # No automatic rebalance here: the partition stays where it went.
    assert ps[pv][1] != vid
    epoch = ps[pv][2]

    err, res = elect_leaders(asked, PREFERRED, {topic: [pv, other, 7], 'no-such-topic': [0]})
    assert err == 0
    assert codes(res) == {topic: {pv: NONE, other: ELECTION_NOT_NEEDED, 7: UNKNOWN_TOPIC_OR_PARTITION},
                          'no-such-topic': {0: UNKNOWN_TOPIC_OR_PARTITION}}
    assert res[topic][pv][1] is None
    # Answered once the answering broker's metadata shows it; the others follow.
    now = parts(asked, topic)
    assert now[pv][1] == vid and now[pv][2] == epoch + 1 and sorted(now[pv][4]) == sorted(now[pv][3])
    helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: {p: v[1] for p, v in ps.items()} == preferred),
                     timeout=15, what='the preferred leaders everywhere')
    # Nothing to do any more: every partition (null list) leaves out those needing no election;
    # v0 (no election type) is a preferred election too. An unclean election with live leaders is
    # not needed either.
    assert elect_leaders(asked, PREFERRED, None) == (0, {})
    assert elect_leaders(asked, PREFERRED, None, version=0) == (0, {})
    err, res = elect_leaders(cl.by_id(ctl), UNCLEAN, {topic: [0, 1, 2]}, version=1)
    assert err == 0 and codes(res) == {topic: {0: ELECTION_NOT_NEEDED, 1: ELECTION_NOT_NEEDED,
                                               2: ELECTION_NOT_NEEDED}}
    recs = helpers.make_records(10)
    helpers.produce_confluent(cl.bootstrap, topic, recs, partition=pv, conf={'acks': 'all'})
    assert [g.value for g in helpers.consume_confluent(cl.bootstrap, topic, partition=pv, count=10)] == \
        [r['value'] for r in recs]

    # Kafka's older tools write /admin/preferred_replica_election; the controller acts on it and
    # deletes it.
    ps = away_and_back()
    assert ps[pv][1] != vid
    out = zk_cli(zookeeper, 'create', cl.chroot + '/admin/preferred_replica_election',
                 '{"version":1,"partitions":[{"topic":"%s","partition":%d}]}' % (topic, pv))
    assert 'Created' in out, out
    helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: ps[pv][1] == vid), timeout=15,
                     what='the preferred leader back through the znode')
    assert 'preferred_replica_election' not in zk_cli(zookeeper, 'ls', cl.chroot + '/admin')


def test_controlled_shutdown_moves_leadership_before_exit(start_cluster, topic):
    cl = start_cluster(3, chroot(), auto__leader__rebalance__enable='false')
    wait_brokers(cl)
    ps = create_topic(cl, topic, 3, 3, config={'min.insync.replicas': '2'})
    victim = cl.by_id(ps[0][1])
    vid = bid(victim)
    led = {p: v[2] for p, v in ps.items() if v[1] == vid}
    prod = AckedProducer(cl.bootstrap, topic, 3).start()
    try:
        prod.wait_more(300, 30, 'acknowledgements before the shutdown')
        pos = victim.log_size()
        t0 = time.monotonic()
        assert victim.stop(signal.SIGTERM) == 0
        took = time.monotonic() - t0
        log = victim.log_text(pos)
        # The victim's own worker moved every partition it led, then it stopped.
        done = log.find('controlled shutdown complete')
        assert done >= 0, log[-3000:]
        assert done < log.find('Runnel 0.1.0 stopping')
        for p in led:
            assert '%s-%d: controlled shutdown: leader %d -> ' % (topic, p, vid) in log[:done]
        assert took < 15, 'controlled shutdown took %.1fs' % took
        after = helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: all(v[1] not in (vid, -1) and
                                                                                   vid not in v[4]
                                                                                   for v in ps.values())),
                                 timeout=15, what='no partition led by or in sync with broker %d' % vid)
        for p, epoch in led.items():
            assert after[p][2] == epoch + 1 and sorted(after[p][4]) == sorted(set(after[p][3]) - {vid})
        prod.wait_more(300, 30, 'acknowledgements after the shutdown')
    finally:
        prod.stop()
    assert not prod.failed, 'delivery errors: %s' % prod.failed[:5]
    # Every acknowledged record is there once, at its offset.
    for p in range(3):
        got = helpers.consume_confluent(cl.bootstrap, topic, partition=p, count=prod.sent[p], timeout=60)
        values = [g.value for g in got]
        assert len(values) == len(set(values)) == prod.sent[p]
        for v, off in prod.acked[p]:
            assert values[off] == v


def test_create_partitions_through_zookeeper(start_cluster, zookeeper, topic):
    cl = start_cluster(3, chroot())
    wait_brokers(cl)
    create_topic(cl, topic, 2, 3)
    via = cl.by_id(2)
    a = helpers.admin(via.bootstrap)
    assert helpers.wait_futures(a.create_partitions([NewPartitions(topic, 5)]), timeout=30)[topic] is None
    # Answered once the answering broker has them.
    now = parts(via, topic)
    assert sorted(now) == [0, 1, 2, 3, 4]
    ps = wait_full_isr(cl, topic, 5)
    for p, v in ps.items():
        assert sorted(v[3]) == [1, 2, 3] and v[1] == v[3][0]
    # Kafka's assignment continues the round robin: the new first replicas rotate too.
    assert sorted(ps[p][3][0] for p in (2, 3, 4)) == [1, 2, 3]

    # An explicit assignment is honoured; bad ones are refused.
    fs = a.create_partitions([NewPartitions(topic, 6, replica_assignment=[[3, 1, 2]])])
    assert helpers.wait_futures(fs, timeout=30)[topic] is None
    ps = wait_full_isr(cl, topic, 6)
    assert ps[5][3] == [3, 1, 2] and ps[5][1] == 3
    for bad in ([[1, 1, 2]], [[1, 2]], [[1, 2, 9]], [[1, 2, 3], [2, 3, 1]]):
        res = helpers.wait_futures(a.create_partitions([NewPartitions(topic, 7, replica_assignment=bad)]))[topic]
        assert helpers.kafka_exc_code(res) == INVALID_REPLICA_ASSIGNMENT, bad
    res = helpers.wait_futures(a.create_partitions([NewPartitions(topic, 4)]))[topic]
    assert helpers.kafka_exc_code(res) == INVALID_PARTITIONS
    fs = a.create_partitions([NewPartitions(topic, 9)], validate_only=True)
    assert helpers.wait_futures(fs)[topic] is None
    assert sorted(parts(via, topic)) == list(range(6))
    assign = zk_cli(zookeeper, 'get', '%s/brokers/topics/%s' % (cl.chroot, topic))
    assert '"5":[3,1,2]' in assign and '"topic_id":"' in assign

    # Every new partition takes writes (acks=all: all three replicas) and serves them.
    for p in range(2, 6):
        recs = helpers.make_records(20, prefix='n%d' % p)
        helpers.produce_confluent(cl.by_id(1).bootstrap, topic, recs, partition=p, conf={'acks': 'all'})
        got = helpers.consume_confluent(cl.by_id(3).bootstrap, topic, partition=p, count=20)
        helpers.assert_records(got, recs)


def offline_on_two_replicas(cl, topic):
    """Topic with two partitions on the same two brokers [a, b]: b stops (leaving the ISRs), records
    go to a alone, a stops, b comes back. Returns (a, b, records b has, records only a had)."""
    ps = create_topic(cl, topic, 1, 2)
    a_id, b_id = ps[0][3]
    fs = helpers.admin(alive(cl)[0].bootstrap).create_partitions(
        [NewPartitions(topic, 2, replica_assignment=[[a_id, b_id]])])
    assert helpers.wait_futures(fs, timeout=30)[topic] is None
    wait_full_isr(cl, topic, 2, rf=2)
    a, b = cl.by_id(a_id), cl.by_id(b_id)
    kept = {p: helpers.make_records(10, prefix='kept%d' % p) for p in range(2)}
    for p in range(2):
        helpers.produce_confluent(cl.bootstrap, topic, kept[p], partition=p, conf={'acks': 'all'})
    b.stop(signal.SIGTERM)
    helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: all(v[4] == [a_id] for v in ps.values())),
                     timeout=15, what='broker %d out of the ISRs' % b_id)
    lost = {p: helpers.make_records(5, prefix='lost%d' % p) for p in range(2)}
    for p in range(2):
        helpers.produce_confluent(cl.bootstrap, topic, lost[p], partition=p, conf={'acks': 'all'})
    a.stop(signal.SIGTERM)
    helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: all(v[1] == -1 for v in ps.values())),
                     timeout=15, what='both partitions offline')
    b.start()
    helpers.wait_for(lambda: all((try_metadata(x) or {}).get('brokers') == sorted(bid(y) for y in alive(cl))
                                 for x in alive(cl)), timeout=20, what='broker %d back' % b_id)
    return a, b, kept, lost


def test_unclean_leader_election(start_cluster, topic):
    cl = start_cluster(3, chroot(), auto__leader__rebalance__enable='false')
    wait_brokers(cl)
    a, b, kept, lost = offline_on_two_replicas(cl, topic)
    a_id, b_id = bid(a), bid(b)
    # unclean.leader.election.enable is false: the partitions stay without a leader, though b is live.
    end = time.monotonic() + 2
    while time.monotonic() < end:
        ps = same_everywhere(cl, topic, lambda ps: True)
        assert ps is None or all(v[1] == -1 and v[4] == [a_id] for v in ps.values()), ps
    err, res = elect_leaders(b, PREFERRED, {topic: [0, 1]})
    assert codes(res) == {topic: {0: PREFERRED_LEADER_NOT_AVAILABLE, 1: PREFERRED_LEADER_NOT_AVAILABLE}}

    # ElectLeaders with ElectionType 1 (unclean) elects b for partition 0 only.
    err, res = elect_leaders(b, UNCLEAN, {topic: [0]})
    assert err == 0 and codes(res) == {topic: {0: NONE}}
    ps = helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: ps[0][1] == b_id), timeout=15,
                          what='b leading partition 0')
    assert ps[0][4] == [b_id] and ps[1][1] == -1
    # The topic override: the controller elects b for partition 1 as well.
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(kr.INCREMENTAL_ALTER_CONFIGS, 0, kr.incremental_alter_configs_body(
            [(kr.RESOURCE_TOPIC, topic, [('unclean.leader.election.enable', kr.OP_SET, 'true')])]))
        assert kr.parse_incremental_alter_configs(r, 0)[(kr.RESOURCE_TOPIC, topic)][0] == 0
    ps = helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: ps[1][1] == b_id), timeout=15,
                          what='b leading partition 1 after the topic config change')
    assert ps[1][4] == [b_id] and ps[1][2] == 2
    # What only a had is gone; b's records are served and it takes new ones.
    for p in range(2):
        more = helpers.make_records(5, prefix='new%d' % p)
        helpers.produce_confluent(cl.bootstrap, topic, more, partition=p, conf={'acks': 'all'})
        got = helpers.consume_confluent(cl.bootstrap, topic, partition=p, count=15)
        assert [g.value for g in got] == [r['value'] for r in kept[p] + more]
    # The old leader comes back as a follower, drops what it alone had, and rejoins the ISR.
    a.start()
    wait_full_isr(cl, topic, 2, rf=2)
    a.stop(signal.SIGTERM)  # its partitions move back to b by controlled shutdown; nothing lost
    for p in range(2):
        got = helpers.consume_confluent(cl.bootstrap, topic, partition=p, count=15)
        assert len(got) == 15 and not any(g.value.startswith(b'lost') for g in got)


def test_unclean_leader_election_by_broker_config(start_cluster, topic):
    cl = start_cluster(3, chroot(), auto__leader__rebalance__enable='false',
                       unclean__leader__election__enable='true')
    wait_brokers(cl)
    a, b, kept, lost = offline_on_two_replicas(cl, topic)
    ps = helpers.wait_for(lambda: same_everywhere(cl, topic, lambda ps: all(v[1] == bid(b) for v in ps.values())),
                          timeout=15, what='b leading both partitions once it is back')
    assert all(v[4] == [bid(b)] for v in ps.values())
    got = helpers.consume_confluent(cl.bootstrap, topic, partition=0, count=10)
    assert [g.value for g in got] == [r['value'] for r in kept[0]]
