"""Replication in cluster mode: a real ZooKeeper and three runnel-server
brokers on loopback, driven by librdkafka (confluent_kafka), kafka-python and
raw requests.

Covered: topics with replication factor 3 whose followers fetch from the
leader (same bytes in every replica's log, full ISR in Metadata); the high
watermark bounding what consumers see (Fetch and ListOffsets); acks=all with
min.insync.replicas (NOT_ENOUGH_REPLICAS before the append when the ISR is too
small, NOT_ENOUGH_REPLICAS_AFTER_APPEND when it shrinks while waiting, acks=1
still taken); leader election from the ISR when a leader or the controller is
killed with an idempotent producer running (every acknowledged record kept
once, at its offset, in order); an old leader truncating what only it had;
a restarted broker catching up and rejoining the ISR; a consumer group and
its committed offsets across the loss of its coordinator; and coordinators
placed on Kafka's partition of __consumer_offsets / __transaction_state.

Followers are frozen with SIGSTOP (and resumed with SIGCONT) where a test
needs replication to stop without the broker leaving ZooKeeper.

Synchronisation is by polling observable state (Metadata, watermarks,
acknowledgements, log bytes) with helpers.wait_for, never by sleeping.
"""

import contextlib
import os
import signal
import threading
import time
import uuid

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import NewTopic

import helpers
import kafka_raw as kr
from zk import start_cluster, zookeeper  # noqa: F401 (fixtures)

NOT_LEADER_OR_FOLLOWER = 6
NOT_ENOUGH_REPLICAS = 19
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20

# Followers out of the ISR after 3 s without catching up; ZooKeeper sessions (harness) 6 s.
FAST = {'replica__lag__time__max__ms': '3000'}


# ----------------------------------------------------------------- helpers

def chroot():
    return '/runnel-repl-' + uuid.uuid4().hex[:8]


def bid(b):
    return int(b.overrides['broker.id'])


def metadata(b, topics=None, version=9):
    with kr.Conn.to(b.bootstrap) as c:
        return kr.parse_metadata(c.request(kr.METADATA, version,
                                           kr.metadata_body(version, topics, False),
                                           flexible=version >= 9), version)


def try_metadata(b, topics=None):
    """Metadata from b, or None while it is down or starting."""
    if not b.alive():
        return None
    try:
        return metadata(b, topics)
    except (OSError, EOFError, ValueError, AssertionError):
        return None


def parts(b, topic):
    """{partition: (error, leader, replicas, isr)} as b sees the topic, or None."""
    md = try_metadata(b, [topic])
    if md is None:
        return None
    t = md['topics'].get(topic)
    if t is None or t[0] != 0:
        return None
    return t[1]


def alive(cl):
    return [b for b in cl.brokers if b.alive()]


def wait_brokers(cl, n=None, timeout=20):
    n = len(cl.brokers) if n is None else n

    def agreed():
        mds = [try_metadata(b) for b in alive(cl)]
        if any(md is None or len(md['brokers']) != n or md['controller_id'] in (None, -1) for md in mds):
            return None
        return len({md['controller_id'] for md in mds}) == 1 and mds[0]['controller_id']
    return helpers.wait_for(agreed, timeout=timeout, interval=0.1, what='%d live brokers and a controller' % n)


def leader_isr(b, topic, p=0):
    """(leader, sorted isr) of a partition as b sees it, or None."""
    ps = parts(b, topic)
    if ps is None or p not in ps or ps[p][0] not in (0, 5):
        return None
    return ps[p][1], sorted(ps[p][3])


def controller(cl):
    md = helpers.wait_for(lambda: try_metadata(alive(cl)[0]), timeout=10, what='metadata')
    return md['controller_id']


def create_rf_topic(cl, name, partitions=3, rf=3, config=None, via=None):
    via = via or alive(cl)[0]
    fs = helpers.admin(via.bootstrap).create_topics([NewTopic(name, partitions, rf, config=config or {})],
                                                   operation_timeout=15)
    res = helpers.wait_futures(fs, timeout=30)[name]
    assert res is None, 'create_topics(%s, rf=%d) failed: %r' % (name, rf, res)
    wait_full_isr(cl, name, partitions, rf)


def full_isr_state(cl, topic, partitions, rf=3):
    """Every alive broker agrees that every partition has a leader and ISR == replicas (rf of them)."""
    seen = None
    for b in alive(cl):
        ps = parts(b, topic)
        if ps is None or sorted(ps) != list(range(partitions)):
            return None
        for p, (err, leader, reps, isr) in ps.items():
            if err != 0 or leader < 0 or len(reps) != rf or sorted(isr) != sorted(reps) or leader not in reps:
                return None
        view = {p: (v[1], sorted(v[3])) for p, v in ps.items()}
        if seen is not None and view != seen:
            return None
        seen = view
    return seen


def wait_full_isr(cl, topic, partitions, rf=3, timeout=30):
    return helpers.wait_for(lambda: full_isr_state(cl, topic, partitions, rf), timeout=timeout, interval=0.1,
                            what='a full ISR (%d replicas) for every partition of %s on every live broker'
                                 % (rf, topic))


def leader_of(cl, topic, p):
    ps = helpers.wait_for(lambda: parts(alive(cl)[0], topic), timeout=10, what='metadata for %s' % topic)
    return ps[p][1]


def log_bytes(b, topic, p):
    """Concatenated .log segment files of one partition in b's data dir (segments in offset order)."""
    d = b.partition_dir(topic, p)
    if not os.path.isdir(d):
        return None
    out = b''
    for f in sorted(x for x in os.listdir(d) if x.endswith('.log')):
        with open(os.path.join(d, f), 'rb') as fh:
            out += fh.read()
    return out


def wait_same_logs(cl, topic, p, min_bytes=1, timeout=20):
    """Wait until every broker's .log bytes of the partition are equal and non-empty; returns them."""
    state = {}

    def same():
        logs = {bid(b): log_bytes(b, topic, p) for b in cl.brokers}
        state['sizes'] = {k: (None if v is None else len(v)) for k, v in logs.items()}
        vals = list(logs.values())
        return (all(v is not None and len(v) >= min_bytes for v in vals) and
                all(v == vals[0] for v in vals) and vals[0])
    try:
        return helpers.wait_for(same, timeout=timeout, interval=0.1,
                                what='identical log bytes of %s-%d on every replica' % (topic, p))
    except AssertionError as e:
        raise AssertionError('%s; sizes per broker: %s' % (e, state.get('sizes')))


def batches_in(data):
    """Batch headers of raw log bytes (a segment file's content)."""
    out = []
    pos = 0
    data = memoryview(data)
    while pos + 12 <= len(data):
        b = kr.Batch(data[pos:])
        out.append(b)
        pos += b.size
    return out


def raw_produce(b, topic, p, records, acks, version=7, timeout_ms=5000):
    batch = kr.build_batch([(k, v, [], None) for k, v in records])
    with kr.Conn.to(b.bootstrap, timeout=timeout_ms / 1000.0 + 10) as c:
        r = c.request(kr.PRODUCE, version, kr.produce_body(version, topic, p, batch, acks=acks,
                                                         timeout_ms=timeout_ms))
        d = kr.parse_produce(r, version)[(topic, p)]
    return d['error'], d['base_offset']


def raw_fetch(b, topic, p, offset):
    with kr.Conn.to(b.bootstrap) as c:
        f = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, p, offset, max_wait_ms=0,
                                                                min_bytes=0)))
    return f[(topic, p)]


def raw_list_latest(b, topic, p, version=2):
    """ListOffsets(LATEST, read_uncommitted) from b: (error, offset)."""
    with kr.Conn.to(b.bootstrap) as c:
        r = kr.parse_list_offsets(c.request(kr.LIST_OFFSETS, version,
                                            kr.list_offsets_body(version, topic, p, -1)), version)
    err, _, off = r[(topic, p)]
    return err, off


@contextlib.contextmanager
def frozen(*brokers):
    """SIGSTOP the brokers (they neither fetch nor answer) and SIGCONT them on leaving."""
    stopped = []
    try:
        for b in brokers:
            os.kill(b.proc.pid, signal.SIGSTOP)
            stopped.append(b)
        yield
    finally:
        for b in stopped:
            if b.proc is not None:
                os.kill(b.proc.pid, signal.SIGCONT)


def records_of(data):
    """(offset, value) of every record in raw log bytes."""
    out = []
    for b in batches_in(data):
        for r in b.records():
            out.append((r['offset'], r['value']))
    return out


def consume_all(cl, topic, p, count, timeout=60):
    return helpers.consume_confluent(cl.bootstrap, topic, partition=p, count=count, timeout=timeout)


class ContinuousProducer:
    """An idempotent librdkafka producer (acks=all) in a thread, producing to
    each partition in turn. Values are b'p<partition>-<sequence in that
    partition>'; every delivery report is kept."""

    def __init__(self, bootstrap, topic, partitions, rate_sleep=0.01, max_unacked=3000):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.rate_sleep = rate_sleep
        self.max_unacked = max_unacked
        self.lock = threading.Lock()
        self.acked = {p: [] for p in range(partitions)}  # p -> [(seq, offset)]
        self.failed = []
        self.sent = {p: 0 for p in range(partitions)}
        self.stop_ev = threading.Event()
        self.undelivered = None
        self.exc = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def value(p, seq):
        return b'p%d-%08d' % (p, seq)

    def _cb(self, err, msg):
        p = msg.partition()
        seq = int(msg.value().split(b'-')[1])
        with self.lock:
            if err is None:
                self.acked[p].append((seq, msg.offset()))
            else:
                self.failed.append((p, seq, err))

    def n_acked(self, p=None):
        with self.lock:
            if p is None:
                return sum(len(v) for v in self.acked.values())
            return len(self.acked[p])

    def _run(self):
        try:
            prod = ck.Producer(helpers.confluent_conf(self.bootstrap, **{
                'enable.idempotence': True, 'acks': 'all', 'linger.ms': 2,
                'message.timeout.ms': 120000, 'max.in.flight.requests.per.connection': 5,
                'reconnect.backoff.ms': 20, 'reconnect.backoff.max.ms': 300, 'retry.backoff.ms': 50,
                'topic.metadata.refresh.interval.ms': 1000}))
            i = 0
            while not self.stop_ev.is_set():
                total_sent = sum(self.sent.values())
                if total_sent - self.n_acked() - len(self.failed) < self.max_unacked:
                    p = i % self.partitions
                    seq = self.sent[p]
                    try:
                        prod.produce(self.topic, key=b'k%d' % seq, value=self.value(p, seq), partition=p,
                                     on_delivery=self._cb)
                        self.sent[p] += 1
                        i += 1
                    except BufferError:
                        pass
                prod.poll(self.rate_sleep if i % self.partitions == 0 else 0)
            self.undelivered = prod.flush(120)
        except BaseException as e:  # reported by stop()
            self.exc = e

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(150)
        assert not self.thread.is_alive(), 'producer thread did not finish'
        if self.exc is not None:
            raise self.exc
        assert self.undelivered == 0, '%s records undelivered after flush' % self.undelivered

    def wait_more(self, n, timeout, what, per_partition=True):
        """Wait until every partition (or the total) got n more acknowledgements than now."""
        if per_partition:
            base = {p: self.n_acked(p) for p in range(self.partitions)}
            return helpers.wait_for(lambda: all(self.n_acked(p) >= base[p] + n for p in base) and
                                    self.exc is None, timeout=timeout, interval=0.05,
                                    what='%s (acked per partition %s, was %s, errors %s)'
                                         % (what, {p: self.n_acked(p) for p in base}, base, self.failed[:3]))
        base = self.n_acked()
        return helpers.wait_for(lambda: self.n_acked() >= base + n, timeout=timeout, interval=0.05, what=what)


FIND_COORDINATOR = 10


def find_coordinator(b, group):
    """FindCoordinator v0 (group) asked of broker b: (error, node id)."""
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(FIND_COORDINATOR, 0, kr.Writer(False).string(group).getvalue())
        return r.int16(), r.int32()


def kp_committed(bootstrap, group):
    """Committed offsets of a group via kafka-python's admin client: {partition: offset}, or None."""
    from kafka import KafkaAdminClient
    adm = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        return {tp.partition: om.offset for tp, om in adm.list_consumer_group_offsets(group).items()}
    except Exception:  # noqa: coordinator moving; the caller polls
        return None
    finally:
        adm.close()


def kafka_abs(n):
    """Kafka's Utils.abs: Math.abs, except Integer.MIN_VALUE -> 0 (not n & 0x7fffffff)."""
    return 0 if n == -(1 << 31) else abs(n)


def coordinator_partition(key, n):
    """Kafka's partitionFor: Utils.abs(key.hashCode()) % n (groups and transactional ids)."""
    return kafka_abs(java_hash(key)) % n


def java_hash(s):
    """Java's String.hashCode (over UTF-16 code units), as a signed 32-bit int."""
    data = s.encode('utf-16-be')
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


# ----------------------------------------------------------------- tests

def test_rf3_topic_replicates_to_every_broker(start_cluster, topic):
    cl = start_cluster(3, chroot(), **FAST)
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=3, rf=3)
    md = metadata(cl.by_id(2), [topic])
    for p, (err, leader, reps, isr) in md['topics'][topic][1].items():
        assert err == 0 and sorted(reps) == [1, 2, 3] and sorted(isr) == [1, 2, 3], (p, reps, isr)
    # Leaders are spread over the brokers (first replica of each partition leads).
    assert sorted(v[1] for v in md['topics'][topic][1].values()) == [1, 2, 3]

    n = 600
    recs = [{'key': b'key-%d' % i, 'value': b'value-%d' % i, 'headers': [('i', b'%d' % i)],
             'timestamp': helpers.now_ms() - 10000 + i} for i in range(n)]
    results = helpers.produce_confluent(cl.by_id(1).bootstrap, topic, recs, partition=None,
                                        conf={'acks': 'all'})
    by_part = {}
    for r, (err, p, off, _) in zip(recs, results):
        by_part.setdefault(p, []).append((off, r))
    assert sorted(by_part) == [0, 1, 2], 'keys did not spread over the partitions: %s' % sorted(by_part)

    ls = {p: v[1] for p, v in md['topics'][topic][1].items()}
    for p in range(3):
        sent = sorted(by_part[p], key=lambda x: x[0])
        assert [o for o, _ in sent] == list(range(len(sent))), 'partition %d offsets' % p
        # Read from the leader; the high watermark covers every acks=all record.
        leader = cl.by_id(ls[p])
        assert helpers.watermarks(leader.bootstrap, topic, p) == (0, len(sent))
        got = helpers.consume_confluent(leader.bootstrap, topic, partition=p, count=len(sent))
        helpers.assert_records(got, [r for _, r in sent])
        # kafka-python agrees.
        kp = helpers.consume_kafka_python(leader.bootstrap, topic, partition=p)
        assert [(g.offset, g.key, g.value) for g in kp] == [(o, r['key'], r['value']) for o, r in sent]

    # Followers do not serve consumers (Fetch v5 from a non-leader replica).
    follower = next(b for b in cl.brokers if bid(b) != ls[0])
    assert raw_fetch(follower, topic, 0, 0)['error'] == NOT_LEADER_OR_FOLLOWER
    # The ISR is still full everywhere, and every replica holds the same bytes.
    wait_full_isr(cl, topic, 3)
    for p in range(3):
        data = wait_same_logs(cl, topic, p)
        bs = batches_in(data)
        assert sum(b.records_count for b in bs) == len(by_part[p])
        assert bs[0].base_offset == 0 and bs[-1].base_offset + bs[-1].last_offset_delta + 1 == len(by_part[p])
        assert all(b.crc_ok() for b in bs)


def test_hw_bounds_consumers_until_isr_shrinks(start_cluster, topic):
    # A long lag time: the dead follower stays in the ISR until its ZooKeeper session expires (6 s).
    cl = start_cluster(3, chroot(), replica__lag__time__max__ms='20000')
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=1, rf=3)
    leader = cl.by_id(leader_of(cl, topic, 0))
    assert raw_produce(leader, topic, 0, [(b'k%d' % i, b'v%d' % i) for i in range(5)], acks=-1) == (0, 0)
    helpers.wait_for(lambda: raw_fetch(leader, topic, 0, 0)['high_watermark'] == 5, timeout=10,
                     what='high watermark 5')
    ctl = controller(cl)
    victim = next((b for b in cl.brokers if bid(b) not in (bid(leader), ctl)),
                  next(b for b in cl.brokers if bid(b) != bid(leader)))
    victim.kill9()
    # acks=1 is taken by the leader alone, but the dead follower (still in the ISR) never fetches
    # it: the high watermark stays, and consumers do not see the record.
    t0 = time.monotonic()
    assert raw_produce(leader, topic, 0, [(b'late', b'beyond-hw')], acks=1) == (0, 5)
    f = raw_fetch(leader, topic, 0, 5)
    isr_now = parts(leader, topic)[0][3]
    if time.monotonic() - t0 < 4 and bid(victim) in isr_now:
        assert f['error'] == 0 and f['high_watermark'] == 5, f
        assert not kr.parse_batches(f['records']), 'records above the high watermark were served'
        # ListOffsets(LATEST) answers the high watermark too (Kafka: read_uncommitted -> HW,
        # read_committed -> LSO <= HW), so clients do not position themselves past it.
        assert raw_list_latest(leader, topic, 0) == (0, 5), 'ListOffsets LATEST is past the high watermark'
        assert helpers.watermarks(leader.bootstrap, topic, 0) == (0, 5)
    # Once the controller drops the dead broker from the ISR, the high watermark moves on.
    helpers.wait_for(lambda: (leader_isr(leader, topic) or (0, [bid(victim)]))[1] and
                     bid(victim) not in leader_isr(leader, topic)[1],
                     timeout=25, what='the dead follower to leave the ISR')
    helpers.wait_for(lambda: raw_fetch(leader, topic, 0, 0)['high_watermark'] == 6, timeout=10,
                     what='the high watermark to cover the acks=1 record')
    got = consume_all(cl, topic, 0, 6)
    assert [g.value for g in got] == [b'v%d' % i for i in range(5)] + [b'beyond-hw']
    victim.start()
    wait_full_isr(cl, topic, 1)
    wait_same_logs(cl, topic, 0)


def test_idempotent_producer_through_leader_and_controller_failover(start_cluster, topic):
    cl = start_cluster(3, chroot(), **FAST)
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=3, rf=3, config={'min.insync.replicas': '2'})
    prod = ContinuousProducer(cl.bootstrap, topic, 3).start()
    events = []
    try:
        prod.wait_more(100, 30, 'acknowledgements before any kill')
        # 1. SIGKILL the leader of partition 0 while producing.
        v1 = cl.by_id(leader_of(cl, topic, 0))
        v1.kill9()
        events.append('killed leader of p0: broker %d' % bid(v1))
        prod.wait_more(100, 40, 'acknowledgements on every partition after killing the leader of p0')
        ps = parts(alive(cl)[0], topic)
        assert ps[0][1] not in (bid(v1), -1), 'p0 still led by %s' % ps[0][1]
        assert bid(v1) not in ps[0][3], 'dead broker %d still in the ISR of p0: %s' % (bid(v1), ps[0][3])
        # 2. Bring it back: it truncates/catches up and rejoins the ISR everywhere.
        v1.start()
        wait_full_isr(cl, topic, 3, timeout=40)
        events.append('broker %d back in the ISR' % bid(v1))
        prod.wait_more(50, 30, 'acknowledgements with the full ISR again')
        # 3. SIGKILL the controller (it leads partitions too): a new controller elects new leaders.
        ctl = controller(cl)
        v2 = cl.by_id(ctl)
        v2.kill9()
        events.append('killed controller: broker %d' % ctl)
        prod.wait_more(100, 40, 'acknowledgements on every partition after killing the controller')
        new_ctl = helpers.wait_for(lambda: (try_metadata(alive(cl)[0]) or {}).get('controller_id') not in
                                   (None, -1, ctl) and try_metadata(alive(cl)[0])['controller_id'],
                                   timeout=20, what='a new controller')
        events.append('new controller %d' % new_ctl)
    finally:
        prod.stop()
    assert not prod.failed, 'delivery errors: %s (events %s)' % (prod.failed[:5], events)
    v2.start()
    wait_full_isr(cl, topic, 3, timeout=40)

    for p in range(3):
        acked = sorted(prod.acked[p])
        n = prod.sent[p]
        assert [s for s, _ in acked] == list(range(n)), 'partition %d: not every record acknowledged' % p
        lo, hi = helpers.watermarks(cl.bootstrap, topic, p)
        assert (lo, hi) == (0, n), 'partition %d: watermarks %s, %d records acknowledged' % (p, (lo, hi), n)
        got = consume_all(cl, topic, p, n, timeout=90)
        offsets = [g.offset for g in got]
        assert offsets == list(range(n)), 'partition %d: offsets with gaps or extra records' % p
        values = [g.value for g in got]
        assert len(set(values)) == len(values), 'partition %d: duplicates %s' % (
            p, [v for v in set(values) if values.count(v) > 1][:5])
        seqs = [int(v.split(b'-')[1]) for v in values]
        assert all(v.startswith(b'p%d-' % p) for v in values)
        assert seqs == list(range(n)), 'partition %d: records out of order or missing' % p
        for seq, off in acked:
            assert got[off].value == ContinuousProducer.value(p, seq), \
                'partition %d: acknowledged seq %d at offset %d, log has %r' % (p, seq, off, got[off].value)
        # Every replica ends with the same log, including the two that were killed (truncated and caught up).
        wait_same_logs(cl, topic, p, timeout=30)


def test_restarted_follower_catches_up_and_rejoins_isr(start_cluster, topic):
    cl = start_cluster(3, chroot(), **FAST)
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=1, rf=3, config={'min.insync.replicas': '2'})
    leader = cl.by_id(leader_of(cl, topic, 0))
    ctl = controller(cl)
    # A follower that is not the controller if possible (no controller failover in this test).
    victim = next((b for b in cl.brokers if bid(b) not in (bid(leader), ctl)),
                  next(b for b in cl.brokers if bid(b) != bid(leader)))
    a = helpers.make_records(200, prefix='a')
    helpers.produce_confluent(cl.bootstrap, topic, a, conf={'acks': 'all'})
    victim.kill9()
    # The ISR shrinks (lag or session expiry); acks=all works with the two left.
    helpers.wait_for(lambda: all(leader_isr(b, topic) is not None and
                                 bid(victim) not in leader_isr(b, topic)[1] for b in alive(cl)),
                     timeout=25, what='broker %d out of the ISR' % bid(victim))
    helpers.wait_for(lambda: metric_value(scrape_metrics(leader), 'runnel_under_replicated_partitions') == 1,
                     timeout=10, what='the partition counted as under-replicated')
    b_recs = helpers.make_records(500, prefix='b', value_size=300)
    res = helpers.produce_confluent(cl.bootstrap, topic, b_recs, conf={'acks': 'all'})
    assert [r[2] for r in res] == list(range(200, 700))
    victim.start()
    # Produce more while it catches up.
    c_recs = helpers.make_records(100, prefix='c')
    helpers.produce_confluent(cl.bootstrap, topic, c_recs, conf={'acks': 'all'})
    wait_full_isr(cl, topic, 1, timeout=40)
    data = wait_same_logs(cl, topic, 0, timeout=20)
    assert sum(b.records_count for b in batches_in(data)) == 800
    assert log_bytes(victim, topic, 0) == log_bytes(leader, topic, 0)
    got = consume_all(cl, topic, 0, 800)
    helpers.assert_records(got, a + b_recs + c_recs)
    # Still leading the same partition, and acks=all goes to three replicas again.
    d = helpers.make_records(10, prefix='d')
    helpers.produce_confluent(cl.bootstrap, topic, d, conf={'acks': 'all'})
    wait_same_logs(cl, topic, 0)
    # The leader's metrics saw the follower leave and come back.
    text = scrape_metrics(leader)
    assert metric_value(text, 'runnel_isr_shrinks_total') >= 1
    assert metric_value(text, 'runnel_isr_expands_total') >= 1
    helpers.wait_for(lambda: metric_value(scrape_metrics(leader), 'runnel_under_replicated_partitions') == 0,
                     timeout=10, what='no under-replicated partition')


def scrape_metrics(b):
    import urllib.request
    port = int(b.overrides['metrics.listener'].rsplit(':', 1)[1])
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5) as r:
        return r.read().decode()


def metric_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' '):
            return float(line.split()[1])
    raise AssertionError('%s not in the metrics' % name)


def test_old_leader_truncates_its_unreplicated_suffix(start_cluster, topic):
    # Lag time long enough that the leader keeps the frozen followers in its ISR.
    cl = start_cluster(3, chroot(), replica__lag__time__max__ms='10000')
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=1, rf=3)
    old = cl.by_id(leader_of(cl, topic, 0))
    followers = [b for b in cl.brokers if b is not old]
    a = helpers.make_records(50, prefix='a')
    helpers.produce_confluent(cl.bootstrap, topic, a, conf={'acks': 'all'})
    wait_same_logs(cl, topic, 0)
    # Followers frozen: acks=1 records reach the old leader only (a fetch already waiting at the
    # leader may still carry the first one to them, never the later ones), then it dies.
    with frozen(*followers):
        xs = []
        for i in range(3):
            err, off = raw_produce(old, topic, 0, [(b'x%d' % i, b'unreplicated-%d' % i)], acks=1)
            assert (err, off) == (0, 50 + i)
            xs.append(b'unreplicated-%d' % i)
        old.kill9()
    assert len(records_of(log_bytes(old, topic, 0))) == 53
    # A follower (still in the ISR) is elected once the old leader's session expires.
    new_id = helpers.wait_for(lambda: (leader_isr(followers[0], topic) or (-1,))[0] in
                              [bid(b) for b in followers] and leader_isr(followers[0], topic)[0],
                              timeout=30, what='a new leader from the ISR')
    new = cl.by_id(new_id)
    b_recs = helpers.make_records(20, prefix='b')
    res = helpers.produce_confluent(cl.bootstrap, topic, b_recs, conf={'acks': 'all'})
    kept = [v for _, v in records_of(log_bytes(new, topic, 0)) if v.startswith(b'unreplicated')]
    assert kept in ([], xs[:1]), 'the new leader holds %s' % kept
    assert res[0][2] == 50 + len(kept)
    # The old leader comes back as a follower: it drops what it alone had and copies the new
    # leader's records at those offsets.
    old.start()
    wait_full_isr(cl, topic, 1, timeout=40)
    data = wait_same_logs(cl, topic, 0, timeout=30)
    recs = records_of(data)
    assert [o for o, _ in recs] == list(range(50 + len(kept) + 20))
    assert [v for _, v in recs] == [r['value'] for r in a] + kept + [r['value'] for r in b_recs]
    got = consume_all(cl, topic, 0, 70 + len(kept))
    assert [g.value for g in got] == [v for _, v in recs]
    # Leader epochs in the batches: the new leader's records carry a newer epoch than the first ones.
    bs = batches_in(data)
    assert bs[-1].leader_epoch > bs[0].leader_epoch


def test_acks_all_not_enough_replicas_after_append(start_cluster, topic):
    # Followers out of the ISR 1.5 s after they stop fetching (well within the 6 s ZooKeeper session).
    cl = start_cluster(3, chroot(), replica__lag__time__max__ms='1500')
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=1, rf=3, config={'min.insync.replicas': '2'})
    leader = cl.by_id(leader_of(cl, topic, 0))
    followers = [b for b in cl.brokers if b is not leader]
    helpers.produce_confluent(cl.bootstrap, topic, helpers.make_records(10), conf={'acks': 'all'})
    wait_same_logs(cl, topic, 0)
    with frozen(*followers):
        # Appended with a full ISR, then the ISR shrinks below min.insync.replicas while waiting.
        err, _ = raw_produce(leader, topic, 0, [(b'late', b'after-append')], acks=-1, timeout_ms=15000)
        assert err == NOT_ENOUGH_REPLICAS_AFTER_APPEND
        # And now it is refused before the append.
        assert raw_produce(leader, topic, 0, [(b'no', b'refused')], acks=-1)[0] == NOT_ENOUGH_REPLICAS
    # The appended record stays (it is in the log); the followers come back and copy it.
    wait_full_isr(cl, topic, 1, timeout=30)
    got = consume_all(cl, topic, 0, 11)
    assert got[-1].value == b'after-append' and len(got) == 11
    data = wait_same_logs(cl, topic, 0)
    assert [v for _, v in records_of(data)][-1] == b'after-append'
    assert raw_produce(leader, topic, 0, [(b'ok', b'accepted')], acks=-1) == (0, 11)


def test_min_insync_replicas_with_two_brokers_down(start_cluster, topic):
    cl = start_cluster(3, chroot(), **FAST)
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=1, rf=3, config={'min.insync.replicas': '2'})
    leader = cl.by_id(leader_of(cl, topic, 0))
    a = helpers.make_records(20, prefix='a')
    helpers.produce_confluent(cl.bootstrap, topic, a, conf={'acks': 'all'})
    others = [b for b in cl.brokers if b is not leader]
    for b in others:
        b.kill9()
    # The leader shrinks the ISR to itself (lag), and/or the controller drops the dead brokers.
    helpers.wait_for(lambda: leader_isr(leader, topic) == (bid(leader), [bid(leader)]),
                     timeout=30, what='an ISR of the leader alone')
    # acks=all: refused before the append.
    assert raw_produce(leader, topic, 0, [(b'x', b'refused')], acks=-1)[0] == NOT_ENOUGH_REPLICAS
    # kafka-python without retries sees the same error.
    from kafka.errors import NotEnoughReplicasError
    p = helpers.kp_producer(leader.bootstrap, acks='all', retries=0)
    try:
        with pytest.raises(NotEnoughReplicasError):
            p.send(topic, key=b'x', value=b'refused-too', partition=0).get(timeout=20)
    finally:
        p.close(5)
    # acks=1 still works, and the high watermark covers it (the ISR is the leader alone).
    assert raw_produce(leader, topic, 0, [(b'one', b'acks-1')], acks=1) == (0, 20)
    res = helpers.produce_confluent(leader.bootstrap, topic, [{'key': b'one2', 'value': b'acks-1-confluent'}],
                                    conf={'acks': 1})
    assert res[0][2] == 21
    got = consume_all(cl, topic, 0, 22)
    assert [g.value for g in got] == [r['value'] for r in a] + [b'acks-1', b'acks-1-confluent']
    # Back to three: a full ISR, acks=all works again, and the refused records were never stored.
    for b in others:
        b.start()
    wait_full_isr(cl, topic, 1, timeout=40)
    assert raw_produce(leader, topic, 0, [(b'y', b'accepted')], acks=-1) == (0, 22)
    c = helpers.make_records(10, prefix='c')
    helpers.produce_confluent(cl.bootstrap, topic, c, conf={'acks': 'all'})
    got = consume_all(cl, topic, 0, 33)
    assert [g.value for g in got] == ([r['value'] for r in a] + [b'acks-1', b'acks-1-confluent', b'accepted'] +
                                      [r['value'] for r in c])
    data = wait_same_logs(cl, topic, 0)
    assert sum(b.records_count for b in batches_in(data)) == 33


def test_consumer_group_through_failover(start_cluster, topic):
    cl = start_cluster(3, chroot(), offsets__topic__num__partitions='3',
                       offsets__topic__replication__factor='3', **FAST)
    wait_brokers(cl)
    create_rf_topic(cl, topic, partitions=3, rf=3, config={'min.insync.replicas': '2'})
    # A group id with a non-negative hashCode: its __consumer_offsets partition does not depend on
    # how abs() is taken (see test_coordinator_partitions_follow_kafkas_formula).
    group = next(g for g in ('g-' + uuid.uuid4().hex[:8] for _ in range(100)) if java_hash(g) >= 0)
    a = {p: helpers.make_records(30, prefix='a%d' % p) for p in range(3)}
    for p in range(3):
        helpers.produce_confluent(cl.bootstrap, topic, a[p], partition=p, conf={'acks': 'all'})
    cons = ck.Consumer(helpers.confluent_conf(cl.bootstrap, **{
        'group.id': group, 'enable.auto.commit': False, 'auto.offset.reset': 'earliest',
        'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500, 'topic.metadata.refresh.interval.ms': 1000,
        'reconnect.backoff.ms': 20, 'reconnect.backoff.max.ms': 300}))
    got = []

    def poll_until(pred, timeout, what):
        end = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < end, 'timed out waiting for %s: %d records' % (what, len(got))
            m = cons.poll(0.2)
            if m is None or m.error():
                continue
            got.append((m.partition(), m.offset(), m.value()))
    try:
        cons.subscribe([topic])
        poll_until(lambda: len(got) >= 90, 40, 'the first 90 records')
        cons.commit(asynchronous=False)
        tps = [ck.TopicPartition(topic, p) for p in range(3)]
        assert [t.offset for t in cons.committed(tps, timeout=10)] == [30, 30, 30]

        # Every broker names the same coordinator for the group.
        answers = {bid(b): find_coordinator(b, group) for b in cl.brokers}
        assert len(set(answers.values())) == 1 and list(answers.values())[0][0] == 0, \
            'brokers disagree on the coordinator of %s: %s' % (group, answers)
        coord = list(answers.values())[0][1]
        assert kp_committed(cl.bootstrap, group) == {0: 30, 1: 30, 2: 30}
        md = metadata(cl.by_id(coord), ['__consumer_offsets'])
        co = md['topics'].get('__consumer_offsets')
        if co is not None and co[0] == 0 and co[1]:
            gp = coordinator_partition(group, len(co[1]))
            assert co[1][gp][1] == coord, 'coordinator %d is not the leader of __consumer_offsets-%d (%s)' % (
                coord, gp, co[1][gp])
        ls = {p: v[1] for p, v in parts(cl.by_id(coord), topic).items()}
        victim = cl.by_id(coord)
        assert coord in ls.values(), 'coordinator %d leads none of %s' % (coord, ls)
        victim.kill9()
        rest = alive(cl)

        # The committed offsets survive on the new coordinator.
        def committed_via_admin():
            return kp_committed(rest[0].bootstrap, group)

        # Keep the consumer polling (heartbeats, coordinator rediscovery) while the cluster fails over.
        poll_until(lambda: all((leader_isr(rest[0], topic, p) or (-1, []))[0] not in (-1, coord)
                               for p in range(3)),
                   40, 'new leaders for the partitions of broker %d' % coord)
        assert helpers.wait_for(committed_via_admin, timeout=30, what='committed offsets on a live coordinator') == \
            {0: 30, 1: 30, 2: 30}
        b_recs = {p: helpers.make_records(20, prefix='b%d' % p) for p in range(3)}
        for p in range(3):
            helpers.produce_confluent(cl.bootstrap, topic, b_recs[p], partition=p, conf={'acks': 'all'})
        poll_until(lambda: len(got) >= 150, 60, 'the records produced after the kill')
        cons.commit(asynchronous=False)
        assert [t.offset for t in cons.committed(tps, timeout=10)] == [50, 50, 50]
        assert helpers.wait_for(committed_via_admin, timeout=20, what='committed offsets') == {0: 50, 1: 50, 2: 50}
    finally:
        cons.close()
    want = sorted((p, o, r['value']) for p in range(3) for o, r in enumerate(a[p] + b_recs[p]))
    assert sorted(got) == want, 'consumed %d records (%d distinct), expected %d' % (
        len(got), len(set(got)), len(want))
    victim.start()
    wait_full_isr(cl, topic, 3, timeout=40)


def find_coordinator_v1(b, key, key_type):
    """FindCoordinator v1 asked of b: (error, node id); key_type 0 group, 1 transaction."""
    with kr.Conn.to(b.bootstrap) as c:
        r = c.request(FIND_COORDINATOR, 1, kr.Writer(False).string(key).int8(key_type).getvalue())
        r.int32()
        err = r.int16()
        r.string()
        return err, r.int32()


def test_coordinator_partitions_follow_kafkas_formula(start_cluster):
    """Coordinators are the leaders of partition Utils.abs(id.hashCode()) % 50 of
    __consumer_offsets / __transaction_state, as in Kafka (Math.abs, so e.g.
    "my-group" -> 12 and "kafka-txn-0" -> 30), so data and tools carried over
    from Kafka agree. Ids with a negative hashCode are the ones where taking
    hash & 0x7fffffff instead gives another partition."""
    assert coordinator_partition('my-group', 50) == 12 and coordinator_partition('kafka-txn-0', 50) == 30
    cl = start_cluster(3, chroot(), **FAST)
    wait_brokers(cl)
    for kt, internal in ((0, '__consumer_offsets'), (1, '__transaction_state')):
        # The first FindCoordinator creates the internal topic.
        helpers.wait_for(lambda: find_coordinator_v1(cl.by_id(1), 'warm-up', kt)[0] == 0, timeout=30,
                         interval=0.2, what='a coordinator for %s' % internal)
        ps = helpers.wait_for(lambda: parts(cl.by_id(1), internal), timeout=15, what=internal)
        assert len(ps) == 50, '%s has %d partitions' % (internal, len(ps))
        leaders = {p: v[1] for p, v in ps.items()}
        # Ids for which the two ways of taking abs() land on partitions with different leaders,
        # plus one with a non-negative hash (the same partition either way).
        neg = [k for k in ('id-%d' % i for i in range(2000)) if java_hash(k) < 0 and
               leaders[coordinator_partition(k, 50)] != leaders[(java_hash(k) & 0x7fffffff) % 50]][:3]
        pos = next(k for k in ('id-%d' % i for i in range(2000)) if java_hash(k) >= 0)
        assert neg
        for key in neg + [pos]:
            part = coordinator_partition(key, 50)

            def agreed():
                answers = {find_coordinator_v1(b, key, kt) for b in cl.brokers}
                return len(answers) == 1 and list(answers)[0][0] == 0 and list(answers)[0][1]
            coord = helpers.wait_for(agreed, timeout=30, interval=0.2,
                                     what='every broker to name one coordinator for %r' % key)
            masked = (java_hash(key) & 0x7fffffff) % 50
            assert coord == leaders[part], \
                'coordinator of %r (hashCode %d) is broker %d; Kafka maps it to %s-%d, led by %d ' \
                '(%s-%d, from hash & 0x7fffffff, is led by %d)' % (
                    key, java_hash(key), coord, internal, part, leaders[part], internal, masked, leaders[masked])
