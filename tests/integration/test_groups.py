"""Consumer groups with real clients: librdkafka (confluent-kafka), kafka-python
and kcat -G. Subscribe/poll/commit, committed offsets and positions, seeks,
resuming after the last commit, eager and cooperative rebalances with three
members on six partitions (close, SIGKILL), static membership, admin APIs
(list/describe/delete groups, group offsets, lag) and a broker restart."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import confluent_kafka as ck
import pytest

import conftest
import helpers

OVERRIDES = {'group.initial.rebalance.delay.ms': 0, 'group.min.session.timeout.ms': 1000,
             'offsets.topic.num.partitions': 10}


@pytest.fixture(scope='module')
def gb():
    """A broker with quick group settings."""
    if conftest.EXTERNAL:
        pytest.skip('needs a broker started with group overrides')
    b = conftest.Broker(OVERRIDES)
    try:
        b.start()
    except conftest.BrokerDied as e:
        b.cleanup()
        pytest.fail(str(e))
    yield b
    conftest._finish(b)


def gid():
    return 'cg-' + uuid.uuid4().hex[:10]


def new_topic(b, partitions):
    return helpers.create_topic(b.bootstrap, conftest.unique_topic('grp'), partitions=partitions)


def produce(b, topic, per_partition, partitions, tag='r'):
    recs = []
    for p in range(partitions):
        for i in range(per_partition):
            recs.append({'key': ('%s-%d-%d' % (tag, p, i)).encode(), 'value': ('%s-v-%d-%d' % (tag, p, i)).encode(),
                         'partition': p, 'headers': [], 'timestamp': None})
    helpers.produce_confluent(b.bootstrap, topic, recs, partition=0)
    return recs


def consumer(b, group, **extra):
    conf = helpers.confluent_conf(b.bootstrap, **{
        'group.id': group, 'auto.offset.reset': 'earliest', 'enable.auto.commit': False,
        'session.timeout.ms': 6000, 'heartbeat.interval.ms': 300, 'enable.partition.eof': False})
    conf.update(extra)
    return ck.Consumer(conf)


def poll_until(consumers, cond, timeout=30.0, what='condition', on_msg=None):
    end = time.monotonic() + timeout
    while True:
        for c in consumers:
            m = c.poll(0.05)
            if m is not None and not m.error() and on_msg:
                on_msg(c, m)
        if cond():
            return
        if time.monotonic() > end:
            raise AssertionError('timed out after %.0fs waiting for %s' % (timeout, what))


def parts_of(c):
    return sorted(tp.partition for tp in c.assignment())


# ---------------------------------------------------------------- librdkafka basics

def test_commit_sync_async_committed_position_seek_resume(gb):
    topic = new_topic(gb, 2)
    produce(gb, topic, 10, 2)
    g = gid()
    commits = []
    c = consumer(gb, g, on_commit=lambda err, parts: commits.append(
        (err, [(p.partition, p.offset, p.error) for p in parts])))
    got = []
    try:
        c.subscribe([topic])
        poll_until([c], lambda: len(got) >= 20, what='20 records',
                   on_msg=lambda _c, m: got.append((m.partition(), m.offset())))
        assert sorted(got) == [(p, o) for p in range(2) for o in range(10)]
        c.commit(offsets=[ck.TopicPartition(topic, 0, 10)], asynchronous=True)
        poll_until([c], lambda: commits, what='async commit callback')
        assert commits == [(None, [(0, 10, None)])]
        res = c.commit(offsets=[ck.TopicPartition(topic, 1, 7)], asynchronous=False)
        assert [(p.partition, p.offset, p.error) for p in res] == [(1, 7, None)]
        tps = [ck.TopicPartition(topic, 0), ck.TopicPartition(topic, 1)]
        assert [(p.partition, p.offset) for p in c.committed(tps, timeout=10)] == [(0, 10), (1, 7)]
        assert [(p.partition, p.offset) for p in c.position(tps)] == [(0, 10), (1, 10)]
        # seek back on partition 1: the next records come from offset 3
        c.seek(ck.TopicPartition(topic, 1, 3))
        again = []
        poll_until([c], lambda: len(again) >= 7, what='records after seek',
                   on_msg=lambda _c, m: again.append((m.partition(), m.offset())))
        assert again == [(1, o) for o in range(3, 10)]
    finally:
        c.close()
    # a new member of the group resumes after the last commit: no re-delivery
    c2 = consumer(gb, g)
    got2 = []
    try:
        c2.subscribe([topic])
        poll_until([c2], lambda: len(got2) >= 3, what='records after the commit',
                   on_msg=lambda _c, m: got2.append((m.partition(), m.offset(), m.value())))
        t_end = time.monotonic() + 1.0
        poll_until([c2], lambda: time.monotonic() > t_end,
                   on_msg=lambda _c, m: got2.append((m.partition(), m.offset(), m.value())))
        assert got2 == [(1, o, ('r-v-1-%d' % o).encode()) for o in (7, 8, 9)]
        produce(gb, topic, 2, 1, tag='late')
        poll_until([c2], lambda: len(got2) >= 5, what='new records',
                   on_msg=lambda _c, m: got2.append((m.partition(), m.offset(), m.value())))
        assert got2[3:] == [(0, 10, b'late-v-0-0'), (0, 11, b'late-v-0-1')]
        c2.commit(asynchronous=False)
    finally:
        c2.close()


# ---------------------------------------------------------------- three members, close and SIGKILL

WORKER = r'''
import json, signal, sys, confluent_kafka as ck
bootstrap, group, topic, conf = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
def out(**kw):
    sys.stdout.write(json.dumps(kw) + '\n')
    sys.stdout.flush()
base = {'bootstrap.servers': bootstrap, 'group.id': group, 'auto.offset.reset': 'earliest',
        'enable.auto.commit': False, 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 300}
base.update(conf)
c = ck.Consumer(base)
c.subscribe([topic], on_assign=lambda c, ps: out(ev='assign', parts=[p.partition for p in ps]),
            on_revoke=lambda c, ps: out(ev='revoke', parts=[p.partition for p in ps]))
out(ev='ready')
while not stop:
    m = c.poll(0.1)
    if m is None or m.error():
        continue
    out(ev='got', p=m.partition(), o=m.offset())
    try:
        c.commit(message=m, asynchronous=False)
        out(ev='committed', p=m.partition(), o=m.offset())
    except ck.KafkaException as e:
        out(ev='commit_failed', p=m.partition(), o=m.offset(), err=str(e))
c.close()
out(ev='closed')
'''


class Worker:
    """A consumer in its own process, reporting JSON events on stdout."""

    def __init__(self, b, group, topic, conf=None):
        self.events = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, '-c', WORKER, b.bootstrap, group, topic,
                                      json.dumps(conf or {})], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def evs(self, kind=None):
        with self.lock:
            return [e for e in self.events if kind is None or e['ev'] == kind]

    def assignment(self):
        """Current partitions from eager assign/revoke callbacks."""
        cur = set()
        for e in self.evs():
            if e['ev'] == 'assign':
                cur = set(e['parts'])
            elif e['ev'] == 'revoke':
                cur -= set(e['parts'])
        return sorted(cur)

    def got(self):
        return [(e['p'], e['o']) for e in self.evs('got')]

    def kill(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=30):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(5)


def committed_offsets(b, group, topic, partitions):
    c = consumer(b, group)
    try:
        return [p.offset for p in c.committed([ck.TopicPartition(topic, i) for i in range(partitions)],
                                              timeout=10)]
    finally:
        c.close()


def test_three_members_close_and_sigkill(gb):
    topic = new_topic(gb, 6)
    g = gid()
    produce(gb, topic, 10, 6, tag='a')
    workers = [Worker(gb, g, topic) for _ in range(3)]
    try:
        def all_committed(n):
            done = set()
            for w in workers:
                done |= {(e['p'], e['o']) for e in w.evs('committed')}
            return len(done) >= n

        helpers.wait_for(lambda: all(len(w.assignment()) == 2 for w in workers), 40,
                         what='2 partitions per member')
        assert sorted(p for w in workers for p in w.assignment()) == list(range(6))
        helpers.wait_for(lambda: all_committed(60), 30, what='60 records committed')
        # SIGKILL one member: no LeaveGroup; the others take over after its session timeout
        killed = workers[0]
        killed_parts = killed.assignment()
        killed.kill(signal.SIGKILL)
        killed.wait()
        t0 = time.monotonic()
        produce(gb, topic, 5, 6, tag='b')
        live = workers[1:]
        helpers.wait_for(lambda: all(len(w.assignment()) == 3 for w in live), 40,
                         what='3 partitions per survivor')
        assert time.monotonic() - t0 >= 4.0, 'rebalanced before the session timeout'
        assert sorted(p for w in live for p in w.assignment()) == list(range(6))
        assert set(killed_parts) <= set(live[0].assignment()) | set(live[1].assignment())
        helpers.wait_for(lambda: all_committed(90), 30, what='90 records committed')
        # close one member: LeaveGroup, its partitions move at once
        closing = workers[1]
        closing.kill(signal.SIGTERM)
        closing.wait()
        assert closing.evs('closed')
        produce(gb, topic, 5, 6, tag='c')
        helpers.wait_for(lambda: workers[2].assignment() == list(range(6)), 20, what='last member owns all')
        helpers.wait_for(lambda: all_committed(120), 30, what='120 records committed')
        # every record consumed; only records the killed member had not committed came twice
        seen = {}
        for i, w in enumerate(workers):
            for key in w.got():
                seen.setdefault(key, []).append(i)
        assert sorted(seen) == [(p, o) for p in range(6) for o in range(20)]
        dups = {k: v for k, v in seen.items() if len(v) > 1}
        killed_committed = {(e['p'], e['o']) for e in killed.evs('committed')}
        for k, who in dups.items():
            assert 0 in who and len(who) == 2 and k not in killed_committed, (k, who)
        assert all(len(v) == 1 for k, v in seen.items() if k[0] not in killed_parts)
        assert committed_offsets(gb, g, topic, 6) == [20] * 6
    finally:
        for w in workers:
            w.kill(signal.SIGTERM)
        for w in workers:
            w.wait()


# ---------------------------------------------------------------- cooperative-sticky and static members

def test_cooperative_sticky_incremental_rebalance(gb):
    topic = new_topic(gb, 6)
    g = gid()
    events = {'A': [], 'B': []}

    def mk(name):
        c = consumer(gb, g, **{'partition.assignment.strategy': 'cooperative-sticky'})
        c.subscribe([topic], on_assign=lambda c, ps: events[name].append(('assign', sorted(p.partition for p in ps))),
                    on_revoke=lambda c, ps: events[name].append(('revoke', sorted(p.partition for p in ps))))
        return c
    a = mk('A')
    b = None
    try:
        poll_until([a], lambda: len(parts_of(a)) == 6, what='A owns all')
        assert events['A'] == [('assign', list(range(6)))]
        b = mk('B')
        poll_until([a, b], lambda: len(parts_of(a)) == 3 and len(parts_of(b)) == 3, what='3 + 3')
        # A gave up exactly the partitions B got, and kept the others all along
        revoked = [e[1] for e in events['A'] if e[0] == 'revoke']
        assert len(revoked) == 1 and len(revoked[0]) == 3
        assert sorted(revoked[0]) == parts_of(b)
        assert sorted(set(range(6)) - set(revoked[0])) == parts_of(a)
        # B gets (incrementally, possibly after an empty first round while A still
        # owned them) exactly the partitions A gave up, and loses none
        assert [e for e in events['B'] if e[0] == 'assign' and e[1]] == [('assign', parts_of(b))]
        assert [e for e in events['B'] if e[0] == 'revoke' and e[1]] == []
        kept = parts_of(a)
        # B leaves: A gets B's partitions incrementally, revoking nothing
        b.close()
        b = None
        n = len(events['A'])
        poll_until([a], lambda: len(parts_of(a)) == 6, what='A owns all again')
        assert events['A'][n:] == [('assign', sorted(set(range(6)) - set(kept)))]
    finally:
        if b is not None:
            b.close()
        a.close()


def test_static_member_restart_keeps_partitions(gb):
    topic = new_topic(gb, 4)
    g = gid()
    b_events = []
    conf = {'session.timeout.ms': 10000}
    a = consumer(gb, g, **dict(conf, **{'group.instance.id': 'static-a'}))
    b = consumer(gb, g, **dict(conf, **{'group.instance.id': 'static-b'}))
    a2 = None
    try:
        a.subscribe([topic])
        b.subscribe([topic], on_assign=lambda c, ps: b_events.append(('assign', sorted(p.partition for p in ps))),
                    on_revoke=lambda c, ps: b_events.append(('revoke', sorted(p.partition for p in ps))))
        poll_until([a, b], lambda: len(parts_of(a)) == 2 and len(parts_of(b)) == 2, what='2 + 2')
        a_parts, b_parts = parts_of(a), parts_of(b)
        n = len(b_events)
        a.close()  # a static member does not leave the group
        a = None
        a2 = consumer(gb, g, **dict(conf, **{'group.instance.id': 'static-a'}))
        a2.subscribe([topic])
        poll_until([a2, b], lambda: parts_of(a2) == a_parts, what='restarted member gets its partitions')
        t_end = time.monotonic() + 1.5
        poll_until([a2, b], lambda: time.monotonic() > t_end)
        assert b_events[n:] == [] and parts_of(b) == b_parts, 'the other member saw a rebalance'
        groups = {gm.id: gm for gm in helpers.admin(gb.bootstrap).list_groups(g, timeout=10)}
        assert groups[g].state == 'Stable' and len(groups[g].members) == 2
    finally:
        for c in (a, a2, b):
            if c is not None:
                c.close()


# ---------------------------------------------------------------- kafka-python, admin APIs, lag

def test_kafka_python_group_admin_and_lag(gb):
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.errors import NonEmptyGroupError, NoError
    from kafka.structs import OffsetAndMetadata
    topic = new_topic(gb, 3)
    produce(gb, topic, 8, 3)
    g = gid()
    c = KafkaConsumer(topic, bootstrap_servers=gb.bootstrap, group_id=g, client_id='kp-member',
                      auto_offset_reset='earliest', enable_auto_commit=False, session_timeout_ms=6000,
                      heartbeat_interval_ms=500, request_timeout_ms=30000, fetch_max_wait_ms=100)
    adm = KafkaAdminClient(bootstrap_servers=gb.bootstrap, request_timeout_ms=15000)
    try:
        got = []
        end = time.monotonic() + 30
        while len(got) < 24 and time.monotonic() < end:
            for recs in c.poll(timeout_ms=200).values():
                got.extend((r.partition, r.offset) for r in recs)
        assert sorted(got) == [(p, o) for p in range(3) for o in range(8)]
        c.commit()  # sync, the positions
        tps = [TopicPartition(topic, p) for p in range(3)]
        assert [c.committed(tp) for tp in tps] == [8, 8, 8]
        assert [c.position(tp) for tp in tps] == [8, 8, 8]
        done = []
        c.commit_async({tps[0]: OffsetAndMetadata(5, 'half-way')}, callback=lambda o, r: done.append(r))
        end = time.monotonic() + 10
        while not done and time.monotonic() < end:
            c.poll(timeout_ms=100)
        assert done and not isinstance(done[0], Exception), done
        c.commit({tps[1]: OffsetAndMetadata(2, 'two')})
        # admin: list, describe, group offsets and lag
        listed = dict(adm.list_consumer_groups())
        assert listed.get(g) == 'consumer'
        (desc,) = adm.describe_consumer_groups([g])
        assert desc.group == g and desc.state == 'Stable' and desc.protocol_type == 'consumer'
        assert desc.protocol == 'range' and len(desc.members) == 1
        m = desc.members[0]
        assert m.client_id == 'kp-member' and m.client_host == '/127.0.0.1'
        assert [(t, sorted(ps)) for t, ps in m.member_assignment.assignment] == [(topic, [0, 1, 2])]
        offs = adm.list_consumer_group_offsets(g)
        assert {tp.partition: (om.offset, om.metadata) for tp, om in offs.items()} == {
            0: (5, 'half-way'), 1: (2, 'two'), 2: (8, '')}
        ends = c.end_offsets(tps)
        lag = {tp.partition: ends[tp] - offs[tp].offset for tp in tps}
        assert lag == {0: 3, 1: 6, 2: 0}
        assert adm.delete_consumer_groups([g]) == [(g, NonEmptyGroupError)]
        c.close()
        c = None
        helpers.wait_for(lambda: adm.describe_consumer_groups([g])[0].state == 'Empty', 10, what='empty group')
        assert adm.delete_consumer_groups([g]) == [(g, NoError)]
        assert g not in dict(adm.list_consumer_groups())
        assert adm.list_consumer_group_offsets(g) == {}
    finally:
        if c is not None:
            c.close()
        adm.close()


def test_kcat_balanced_consumer_commits(gb):
    topic = new_topic(gb, 2)
    produce(gb, topic, 5, 2)
    g = gid()
    args = ['-b', gb.bootstrap, '-G', g, topic, '-e', '-q', '-f', '%p:%o:%s\\n',
            '-X', 'auto.offset.reset=earliest', '-X', 'session.timeout.ms=6000']
    out = helpers.kcat(args, timeout=60).stdout.decode().split()
    assert sorted(out) == sorted('%d:%d:r-v-%d-%d' % (p, o, p, o) for p in range(2) for o in range(5))
    assert committed_offsets(gb, g, topic, 2) == [5, 5]
    produce(gb, topic, 1, 2, tag='more')
    out = helpers.kcat(args, timeout=60).stdout.decode().split()
    assert sorted(out) == ['0:5:more-v-0-0', '1:5:more-v-1-0']
    groups = {gm.id: gm for gm in helpers.admin(gb.bootstrap).list_groups(g, timeout=10)}
    assert groups[g].state == 'Empty' and groups[g].protocol_type == 'consumer'


# ---------------------------------------------------------------- restart

def test_broker_restart_keeps_offsets_and_groups(start_broker):
    b = start_broker(overrides=OVERRIDES)
    topic = new_topic(b, 2)
    produce(b, topic, 5, 2)
    g = gid()
    events = []
    c = consumer(b, g)
    try:
        c.subscribe([topic], on_assign=lambda c, ps: events.append('assign'),
                    on_revoke=lambda c, ps: events.append('revoke'))
        got = []
        poll_until([c], lambda: len(got) >= 10, what='10 records',
                   on_msg=lambda _c, m: got.append((m.partition(), m.offset())))
        c.commit(asynchronous=False)
        helpers.drop_admin(b.bootstrap)
        b.restart()
        assert committed_offsets(b, g, topic, 2) == [5, 5]
        groups = {gm.id: gm for gm in helpers.admin(b.bootstrap).list_groups(g, timeout=10)}
        assert groups[g].state == 'Stable' and len(groups[g].members) == 1
        # the live member carries on: new records only, no rebalance
        produce(b, topic, 2, 2, tag='after')
        poll_until([c], lambda: len(got) >= 14, what='records after the restart',
                   on_msg=lambda _c, m: got.append((m.partition(), m.offset())))
        assert sorted(got[10:]) == [(0, 5), (0, 6), (1, 5), (1, 6)]
        assert events == ['assign']
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert committed_offsets(b, g, topic, 2) == [7, 7]
    groups = {gm.id: gm for gm in helpers.admin(b.bootstrap).list_groups(g, timeout=10)}
    assert groups[g].state == 'Empty' and groups[g].members == []
