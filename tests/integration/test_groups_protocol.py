"""The group coordinator at the wire level, with raw requests: the join/sync
barrier, MEMBER_ID_REQUIRED, error codes, static members, session and sync
timeouts, cancelled joins, offsets (metadata round trip, multi-group fetch,
OffsetDelete), ListGroups state filter, DescribeGroups, DeleteGroups, and
the __consumer_offsets record format (Kafka's, at the partition given by
Java's String.hashCode)."""

import struct
import time
import uuid

import pytest

import conftest
import helpers
import kafka_raw
from kafka_raw import Conn, Reader, Writer

OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
JOIN, HEARTBEAT, LEAVE, SYNC, DESCRIBE, LIST = 11, 12, 13, 14, 15, 16
DELETE_GROUPS, OFFSET_DELETE = 42, 47

ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86

OVERRIDES = {'group.initial.rebalance.delay.ms': 0, 'group.min.session.timeout.ms': 500,
             'offsets.topic.num.partitions': 7}


@pytest.fixture(scope='module')
def gb():
    """A broker with quick group settings (7 offsets partitions, 0 initial delay)."""
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
    return 'g-' + uuid.uuid4().hex[:10]


def java_hash(s):
    h = 0
    for unit in struct.unpack('>%dH' % (len(s.encode('utf-16-be')) // 2), s.encode('utf-16-be')):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


# ---------------------------------------------------------------- request helpers

def subscription(topics, version=0):
    """ConsumerProtocolSubscription: version, topics, user data."""
    w = Writer().int16(version).array(list(topics), lambda w, t: w.string(t)).bytes_(b'')
    if version >= 1:
        w.int32(0)  # owned partitions
    return w.getvalue()


def join(c, group, member='', instance=None, session=6000, rebalance=10000, ptype='consumer',
         protocols=(('range', b'm1'),), v=5, send_only=False):
    w = Writer().string(group).int32(session)
    if v >= 1:
        w.int32(rebalance)
    w.string(member)
    if v >= 5:
        w.string(instance)
    w.string(ptype)
    w.array(list(protocols), lambda w, p: w.string(p[0]).bytes_(p[1]))
    if send_only:
        return c.send(JOIN, v, w.getvalue())
    return parse_join(c.request(JOIN, v, w.getvalue()), v)


def parse_join(r, v=5):
    if v >= 2:
        r.int32()
    out = {'error': r.int16(), 'generation': r.int32(), 'protocol': r.string(),
           'leader': r.string(), 'member': r.string()}
    out['members'] = r.array(lambda rr: (rr.string(), rr.string() if v >= 5 else None, rr.bytes_()))
    return out


def recv_join(c, v=5):
    _, r = c.recv()
    return parse_join(r, v)


def join_full(c, group, **kw):
    """JoinGroup v5 with the MEMBER_ID_REQUIRED round trip."""
    j = join(c, group, **kw)
    if j['error'] == MEMBER_ID_REQUIRED:
        assert j['member'], 'MEMBER_ID_REQUIRED without a member id'
        kw['member'] = j['member']
        j = join(c, group, **kw)
    return j


def sync(c, group, gen, member, assignments=(), instance=None, send_only=False):
    body = (Writer().string(group).int32(gen).string(member).string(instance)
            .array(list(assignments), lambda w, a: w.string(a[0]).bytes_(a[1])).getvalue())
    if send_only:
        return c.send(SYNC, 3, body)
    return parse_sync(c.request(SYNC, 3, body))


def parse_sync(r):
    r.int32()
    return r.int16(), r.bytes_()


def recv_sync(c):
    _, r = c.recv()
    return parse_sync(r)


def heartbeat(c, group, gen, member, instance=None):
    r = c.request(HEARTBEAT, 3, Writer().string(group).int32(gen).string(member).string(instance).getvalue())
    r.int32()
    return r.int16()


def leave(c, group, members):
    """LeaveGroup v3: members = [(member_id, instance_id)] -> (error, [errors])."""
    r = c.request(LEAVE, 3, Writer().string(group).array(
        members, lambda w, m: w.string(m[0]).string(m[1])).getvalue())
    r.int32()
    err = r.int16()
    return err, r.array(lambda rr: (rr.string(), rr.string(), rr.int16()))


def commit(c, group, offsets, gen=-1, member='', instance=None):
    """OffsetCommit v7; offsets = {(topic, partition): (offset, epoch, metadata)}."""
    by_topic = {}
    for (t, p), v in offsets.items():
        by_topic.setdefault(t, []).append((p,) + tuple(v))
    body = (Writer().string(group).int32(gen).string(member).string(instance)
            .array(sorted(by_topic.items()), lambda w, t: w.string(t[0]).array(
                t[1], lambda w, p: w.int32(p[0]).int64(p[1]).int32(p[2]).string(p[3])))
            .getvalue())
    r = c.request(OFFSET_COMMIT, 7, body)
    r.int32()
    out = {}
    for name, parts in r.array(lambda rr: (rr.string(), rr.array(lambda r3: (r3.int32(), r3.int16())))):
        for p, e in parts:
            out[(name, p)] = e
    return out


def fetch_offsets(c, group, topics=None):
    """OffsetFetch v5: topics = {topic: [partitions]} or None (all) ->
    (error, {(t, p): (offset, epoch, metadata, error)})."""
    w = Writer().string(group)
    w.array(None if topics is None else sorted(topics.items()),
            lambda w, t: w.string(t[0]).array(t[1], lambda w, p: w.int32(p)))
    r = c.request(OFFSET_FETCH, 5, w.getvalue())
    r.int32()
    out = {}
    for name, parts in r.array(lambda rr: (rr.string(), rr.array(
            lambda r3: (r3.int32(), r3.int64(), r3.int32(), r3.string(), r3.int16())))):
        for p, off, ep, md, e in parts:
            out[(name, p)] = (off, ep, md, e)
    return r.int16(), out


def fetch_offsets_v8(c, groups, require_stable=True):
    """OffsetFetch v8 (flexible): groups = {group: {topic: [p]} or None}."""
    w = Writer(True)

    def one_group(w, g):
        w.string(g[0])
        w.array(None if g[1] is None else sorted(g[1].items()),
                lambda w, t: w.string(t[0]).array(t[1], lambda w, p: w.int32(p)).tags())
        w.tags()
    w.array(sorted(groups.items(), key=lambda x: x[0]), one_group).bool(require_stable).tags()
    r = c.request(OFFSET_FETCH, 8, w.getvalue(), flexible=True)
    r.int32()

    def part(rr):
        v = (rr.int32(), rr.int64(), rr.int32(), rr.string(), rr.int16())
        rr.tags()
        return v

    def topic(rr):
        v = (rr.string(), rr.array(part))
        rr.tags()
        return v

    def group(rr):
        v = (rr.string(), rr.array(topic), rr.int16())
        rr.tags()
        return v
    out = {}
    for g, topics, err in r.array(group):
        out[g] = (err, {(t, p[0]): p[1:] for t, ps in topics for p in ps})
    return out


def list_groups(c, states=None):
    """ListGroups v4 (flexible) -> {group: (protocol_type, state)}."""
    r = c.request(LIST, 4, Writer(True).array(states or [], lambda w, s: w.string(s)).tags().getvalue(),
                  flexible=True)
    r.int32()
    assert r.int16() == 0

    def one(rr):
        v = (rr.string(), rr.string(), rr.string())
        rr.tags()
        return v
    return {g: (pt, st) for g, pt, st in r.array(one)}


def describe(c, group):
    """DescribeGroups v4 -> dict."""
    r = c.request(DESCRIBE, 4, Writer().array([group], lambda w, g: w.string(g)).bool(False).getvalue())
    r.int32()

    def member(rr):
        return {'member': rr.string(), 'instance': rr.string(), 'client_id': rr.string(),
                'client_host': rr.string(), 'metadata': rr.bytes_(), 'assignment': rr.bytes_()}

    def one(rr):
        d = {'error': rr.int16(), 'group': rr.string(), 'state': rr.string(), 'protocol_type': rr.string(),
             'protocol': rr.string(), 'members': rr.array(member)}
        d['ops'] = rr.int32()
        return d
    return r.array(one)[0]


def delete_groups(c, groups):
    r = c.request(DELETE_GROUPS, 1, Writer().array(groups, lambda w, g: w.string(g)).getvalue())
    r.int32()
    return dict(r.array(lambda rr: (rr.string(), rr.int16())))


def offset_delete(c, group, parts):
    """OffsetDelete v0: parts = {topic: [p]} -> (error, {(t, p): error})."""
    r = c.request(OFFSET_DELETE, 0, Writer().string(group).array(
        sorted(parts.items()), lambda w, t: w.string(t[0]).array(t[1], lambda w, p: w.int32(p))).getvalue())
    err = r.int16()
    r.int32()
    out = {}
    for name, ps in r.array(lambda rr: (rr.string(), rr.array(lambda r3: (r3.int32(), r3.int16())))):
        for p, e in ps:
            out[(name, p)] = e
    return err, out


def stable_group(b, group, n=2, **kw):
    """n raw members joined and synced: returns (conns, members, generation,
    leader), the leader's connection and id first."""
    conns = [Conn.to(b.bootstrap, timeout=20) for _ in range(n)]
    ids = []
    for c in conns:
        j = join(c, group, **kw)
        assert j['error'] == MEMBER_ID_REQUIRED
        ids.append(j['member'])
    # every member joins with its id; the barrier answers them all together
    for c, m in zip(conns, ids):
        join(c, group, member=m, send_only=True, **kw)
    joins = [recv_join(c) for c in conns]
    assert all(j['error'] == 0 for j in joins), joins
    gen = joins[0]['generation']
    leader = joins[0]['leader']
    assert all(j['generation'] == gen and j['leader'] == leader for j in joins)
    lc = conns[ids.index(leader)]
    for c, m in zip(conns, ids):
        if m != leader:
            sync(c, group, gen, m, send_only=True)
    err, a = sync(lc, group, gen, leader, [(m, ('assign-' + m).encode()) for m in ids])
    assert err == 0 and a == ('assign-' + leader).encode()
    for c, m in zip(conns, ids):
        if m != leader:
            assert recv_sync(c) == (0, ('assign-' + m).encode())
    # the leader first (whichever second join the broker saw first)
    order = sorted(range(n), key=lambda i: ids[i] != leader)
    return [conns[i] for i in order], [ids[i] for i in order], gen, leader


# ---------------------------------------------------------------- tests

def test_find_coordinator_batched_and_internal_topic(gb):
    with Conn.to(gb.bootstrap) as c:
        r = c.request(FIND_COORDINATOR, 4, Writer(True).int8(0).array(
            ['a', 'b'], lambda w, k: w.string(k)).tags().getvalue(), flexible=True)
        r.int32()

        def one(rr):
            v = (rr.string(), rr.int32(), rr.string(), rr.int32(), rr.int16(), rr.string())
            rr.tags()
            return v
        got = r.array(one)
        assert [(k, n, p, e) for k, n, _, p, e, _ in got] == [('a', 0, gb.port, 0), ('b', 0, gb.port, 0)]
        md = kafka_raw.parse_metadata(c.request(kafka_raw.METADATA, 1, kafka_raw.metadata_body(
            1, ['__consumer_offsets'])), 1)
    err, parts = md['topics']['__consumer_offsets'][:2]
    assert err == 0 and len(parts) == 7


def test_join_sync_heartbeat_leave_cycle(gb):
    g = gid()
    conns, ids, gen, leader = stable_group(gb, g, n=2)
    a, b = conns
    try:
        assert gen == 1 and leader == ids[0]
        for c, m in zip(conns, ids):
            assert heartbeat(c, g, gen, m) == 0
        assert heartbeat(a, g, gen + 1, ids[0]) == ILLEGAL_GENERATION
        assert heartbeat(a, g, gen, 'nobody') == UNKNOWN_MEMBER_ID
        assert heartbeat(a, 'no-such-group-' + g, gen, ids[0]) == UNKNOWN_MEMBER_ID
        d = describe(a, g)
        assert d['state'] == 'Stable' and d['protocol_type'] == 'consumer' and d['protocol'] == 'range'
        assert sorted(m['member'] for m in d['members']) == sorted(ids)
        for m in d['members']:
            assert m['client_id'] == 'runnel-raw' and m['client_host'] == '/127.0.0.1'
            assert m['metadata'] == b'm1' and m['assignment'] == ('assign-' + m['member']).encode()
        # the follower leaves: the leader learns through its heartbeat and rejoins alone
        err, res = leave(b, g, [(ids[1], None)])
        assert err == 0 and res == [(ids[1], None, 0)]
        assert heartbeat(a, g, gen, ids[0]) == REBALANCE_IN_PROGRESS
        assert describe(a, g)['state'] == 'PreparingRebalance'
        j = join(a, g, member=ids[0])
        assert j['error'] == 0 and j['generation'] == gen + 1 and j['leader'] == ids[0]
        assert [m[0] for m in j['members']] == [ids[0]]
        assert sync(a, g, gen + 1, ids[0], [(ids[0], b'all')]) == (0, b'all')
        # leaving twice: unknown; then the group is empty
        assert leave(a, g, [(ids[0], None)])[1][0][2] == 0
        assert leave(a, g, [(ids[0], None)])[1][0][2] == UNKNOWN_MEMBER_ID
        d = describe(a, g)
        assert d['state'] == 'Empty' and d['members'] == []
    finally:
        for c in conns:
            c.close()


def test_join_errors(gb):
    g = gid()
    with Conn.to(gb.bootstrap) as c:
        assert join(c, g, session=100)['error'] == INVALID_SESSION_TIMEOUT
        assert join(c, g, session=2000000)['error'] == INVALID_SESSION_TIMEOUT
        assert join(c, '')['error'] == INVALID_GROUP_ID
        assert join(c, g, member='made-up')['error'] == UNKNOWN_MEMBER_ID
        # v0-v3 joins get their member id at once
        j = join(c, g, v=1)
        assert j['error'] == 0 and j['member'].startswith('runnel-raw-') and j['generation'] == 1
        # another protocol type, or no protocol in common: refused
        with Conn.to(gb.bootstrap) as d:
            assert join(d, g, ptype='connect', v=1)['error'] == INCONSISTENT_GROUP_PROTOCOL
            assert join(d, g, protocols=(('roundrobin', b''),), v=1)['error'] == INCONSISTENT_GROUP_PROTOCOL
        assert sync(c, g, 1, j['member'], [(j['member'], b'x')]) == (0, b'x')
        assert sync(c, g, 5, j['member'])[0] == ILLEGAL_GENERATION
        assert sync(c, g, 1, 'other')[0] == UNKNOWN_MEMBER_ID


def test_protocol_selected_by_vote(gb):
    g = gid()
    a, b, c = (Conn.to(gb.bootstrap, timeout=20) for _ in range(3))
    try:
        ja = join(a, g, v=1, protocols=(('range', b'a'), ('roundrobin', b'A')))
        assert ja['protocol'] == 'range'
        sync(a, g, 1, ja['member'])
        # two members prefer roundrobin: the rebalance picks it
        join(b, g, v=1, protocols=(('roundrobin', b'B'), ('range', b'b')), send_only=True)
        join(c, g, v=1, protocols=(('roundrobin', b'C'), ('range', b'c'), ('sticky', b'')), send_only=True)
        time.sleep(0.2)
        assert heartbeat(a, g, 1, ja['member']) == REBALANCE_IN_PROGRESS
        j1 = join(a, g, member=ja['member'], v=1, protocols=(('range', b'a'), ('roundrobin', b'A')))
        j2, j3 = recv_join(b, 1), recv_join(c, 1)
        assert {j1['protocol'], j2['protocol'], j3['protocol']} == {'roundrobin'}
        assert j1['generation'] == j2['generation'] == j3['generation'] == 2
        assert j1['leader'] == ja['member']
        assert sorted(m[2] for m in j1['members']) == [b'A', b'B', b'C']
        assert j2['members'] == [] and j3['members'] == []
    finally:
        for x in (a, b, c):
            x.close()


def test_follower_sync_waits_for_leader(gb):
    g = gid()
    conns, ids, gen, leader = stable_group(gb, g, n=2)
    a, b = conns
    try:
        # new metadata from the follower starts a rebalance; its SyncGroup then
        # waits for the leader's
        join(b, g, member=ids[1], protocols=(('range', b'm2'),), send_only=True)
        time.sleep(0.1)
        assert heartbeat(a, g, gen, ids[0]) == REBALANCE_IN_PROGRESS
        j = join(a, g, member=ids[0])
        assert j['error'] == 0 and j['generation'] == gen + 1
        assert recv_join(b)['generation'] == gen + 1
        sync(b, g, gen + 1, ids[1], send_only=True)
        b.sock.settimeout(0.5)
        with pytest.raises(OSError):
            b.recv_frame()  # nothing yet: the leader has not sent its assignment
        b.sock.settimeout(20)
        assert describe(a, g)['state'] == 'CompletingRebalance'
        assert heartbeat(a, g, gen + 1, ids[0]) == 0
        assert sync(a, g, gen + 1, ids[0], [(ids[1], b'for-b')]) == (0, b'')
        assert recv_sync(b) == (0, b'for-b')
        assert describe(a, g)['state'] == 'Stable'
    finally:
        for c in conns:
            c.close()


def test_session_timeout_evicts_silent_member(gb):
    g = gid()
    conns, ids, gen, leader = stable_group(gb, g, n=2, session=1000)
    a, b = conns
    try:
        # b stops heartbeating (and disconnects without LeaveGroup); a keeps going
        b.close()
        deadline = time.monotonic() + 10
        err = 0
        while time.monotonic() < deadline:
            err = heartbeat(a, g, gen, ids[0])
            if err:
                break
            time.sleep(0.2)
        assert err == REBALANCE_IN_PROGRESS
        j = join(a, g, member=ids[0], session=1000)
        assert j['error'] == 0 and [m[0] for m in j['members']] == [ids[0]]
        assert sync(a, g, j['generation'], ids[0], [(ids[0], b'x')]) == (0, b'x')
        # now a goes silent too: the group ends up empty
        a.close()
        with Conn.to(gb.bootstrap) as c:
            helpers.wait_for(lambda: describe(c, g)['state'] == 'Empty', 10, what='empty group')
    finally:
        for c in conns:
            c.close()


def test_member_that_never_syncs_is_removed(gb):
    """After the join barrier every member must send SyncGroup within the
    rebalance timeout: a follower that never does is removed and the group
    rebalances without it."""
    g = gid()
    a, b = Conn.to(gb.bootstrap, timeout=20), Conn.to(gb.bootstrap, timeout=20)
    try:
        ma = join_full(a, g, rebalance=1500)['member']
        sync(a, g, 1, ma)
        mb = join(b, g, rebalance=1500)['member']
        join(b, g, member=mb, rebalance=1500, send_only=True)
        time.sleep(0.1)
        ja = join(a, g, member=ma, rebalance=1500)
        jb = recv_join(b)
        assert ja['generation'] == jb['generation'] == 2
        # b heartbeats but never syncs; a syncs as leader
        assert sync(a, g, 2, ma, [(ma, b'a'), (mb, b'b')]) == (0, b'a')
        t0 = time.monotonic()
        err = 0
        while time.monotonic() - t0 < 10:
            heartbeat(b, g, 2, mb)
            err = heartbeat(a, g, 2, ma)
            if err:
                break
            time.sleep(0.2)
        assert err == REBALANCE_IN_PROGRESS
        assert heartbeat(b, g, 2, mb) == UNKNOWN_MEMBER_ID
    finally:
        a.close()
        b.close()


def test_closed_member_is_evicted_after_the_barrier(gb):
    """A member whose connection closes quietly while its join waits (the
    broker cannot see it: the socket is not read meanwhile, as in Kafka)
    takes part in the barrier, never syncs nor heartbeats, and is evicted
    after its session timeout; the group then rebalances without it."""
    g = gid()
    a, b = Conn.to(gb.bootstrap, timeout=20), Conn.to(gb.bootstrap, timeout=20)
    try:
        ma = join_full(a, g, session=1000)['member']
        sync(a, g, 1, ma)
        mb = join(b, g, session=1000)['member']
        join(b, g, member=mb, session=1000, send_only=True)
        time.sleep(0.1)
        b.close()
        assert heartbeat(a, g, 1, ma) == REBALANCE_IN_PROGRESS
        j = join(a, g, member=ma, session=1000)
        assert j['error'] == 0 and j['generation'] == 2
        sync(a, g, 2, ma, [(ma, b'a'), (mb, b'b')])
        err = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and err == 0:
            time.sleep(0.2)
            err = heartbeat(a, g, 2, ma)
        assert err == REBALANCE_IN_PROGRESS
        j = join(a, g, member=ma, session=1000)
        assert j['generation'] == 3 and [m[0] for m in j['members']] == [ma]
    finally:
        a.close()
        b.close()


def test_shutdown_with_waiting_join_and_sync(start_broker):
    """SIGTERM while a JoinGroup and a SyncGroup wait: the closing
    connections cancel them and the broker exits cleanly (exit 0 is checked)."""
    b = start_broker(overrides=OVERRIDES)
    g1, g2 = gid(), gid()
    a, w1, w2 = (Conn.to(b.bootstrap, timeout=20) for _ in range(3))
    ma = join_full(a, g1)['member']
    sync(a, g1, 1, ma)
    m1 = join(w1, g1)['member']
    join(w1, g1, member=m1, send_only=True)  # waits for a to rejoin
    c2, c3 = Conn.to(b.bootstrap, timeout=20), Conn.to(b.bootstrap, timeout=20)
    x = join_full(c2, g2)['member']
    join(c3, g2, v=1, send_only=True)
    time.sleep(0.1)
    jx = join(c2, g2, member=x)
    jy = recv_join(c3, 1)
    follower = jy['member'] if jx['leader'] == x else x
    fconn = c3 if follower == jy['member'] else c2
    sync(fconn, g2, jx['generation'], follower, send_only=True)  # waits for the leader
    time.sleep(0.2)
    b.stop()
    for c in (a, w1, w2, c2, c3):
        c.close()


def test_static_member_replaces_without_rebalance(gb):
    g = gid()
    a, b = Conn.to(gb.bootstrap, timeout=20), Conn.to(gb.bootstrap, timeout=20)
    try:
        # static members get their id at once (no MEMBER_ID_REQUIRED)
        ja = join(a, g, instance='inst-a')
        assert ja['error'] == 0 and ja['member'].startswith('inst-a-')
        assert sync(a, g, 1, ja['member'], [(ja['member'], b'A')], instance='inst-a') == (0, b'A')
        jb = join(b, g, instance='inst-b', send_only=True)
        time.sleep(0.1)
        join(a, g, member=ja['member'], instance='inst-a', send_only=True)
        j1, j2 = recv_join(a), recv_join(b)
        gen = j1['generation']
        assert gen == 2 and j1['leader'] == ja['member']
        mb = j2['member']
        sync(b, g, gen, mb, instance='inst-b', send_only=True)
        assert sync(a, g, gen, ja['member'], [(ja['member'], b'A2'), (mb, b'B2')], instance='inst-a') == (0, b'A2')
        assert recv_sync(b) == (0, b'B2')
        # b "restarts": same instance id, no member id, same metadata -> new id, same generation
        with Conn.to(gb.bootstrap, timeout=20) as b2:
            j = join(b2, g, instance='inst-b')
            assert j['error'] == 0 and j['generation'] == gen and j['member'] != mb
            assert j['leader'] == ja['member'] and j['members'] == []
            assert sync(b2, g, gen, j['member'], instance='inst-b') == (0, b'B2')
            # the old member id is fenced, the leader saw no rebalance
            assert heartbeat(b, g, gen, mb, instance='inst-b') == FENCED_INSTANCE_ID
            assert heartbeat(a, g, gen, ja['member'], instance='inst-a') == 0
            assert heartbeat(b2, g, gen, j['member'], instance='inst-b') == 0
            d = describe(a, g)
            assert d['state'] == 'Stable'
            assert sorted((m['instance'], m['member']) for m in d['members']) == sorted(
                [('inst-a', ja['member']), ('inst-b', j['member'])])
            # batch leave by instance id (v3+), one unknown
            err, res = leave(a, g, [('', 'inst-b'), ('', 'inst-zzz')])
            assert err == 0 and [e for _, _, e in res] == [0, UNKNOWN_MEMBER_ID]
            assert heartbeat(a, g, gen, ja['member'], instance='inst-a') == REBALANCE_IN_PROGRESS
    finally:
        a.close()
        b.close()


def test_offsets_commit_fetch_metadata_and_generation_checks(gb):
    g = gid()
    topic = helpers.create_topic(gb.bootstrap, conftest.unique_topic('goff'), partitions=3)
    with Conn.to(gb.bootstrap) as c:
        # simple (standalone) commits: generation -1, no member
        res = commit(c, g, {(topic, 0): (5, 3, 'meta-0'), (topic, 1): (7, -1, None),
                            (topic, 9): (1, -1, ''), ('no-such-topic-x', 0): (1, -1, '')})
        assert res == {(topic, 0): 0, (topic, 1): 0, (topic, 9): 3, ('no-such-topic-x', 0): 3}
        err, got = fetch_offsets(c, g, {topic: [0, 1, 2]})
        assert err == 0
        assert got == {(topic, 0): (5, 3, 'meta-0', 0), (topic, 1): (7, -1, '', 0), (topic, 2): (-1, -1, '', 0)}
        err, got = fetch_offsets(c, g, None)
        assert got == {(topic, 0): (5, 3, 'meta-0', 0), (topic, 1): (7, -1, '', 0)}
        assert fetch_offsets(c, 'never-' + g, None) == (0, {})
        assert commit(c, g, {(topic, 0): (1, -1, 'x' * 5000)}) == {(topic, 0): 12}
        assert list_groups(c)[g] == ('', 'Empty')
        # multi-group fetch (v8)
        g2 = gid()
        assert commit(c, g2, {(topic, 2): (42, -1, 'two')}) == {(topic, 2): 0}
        multi = fetch_offsets_v8(c, {g: {topic: [0]}, g2: None, 'nope-' + g: {topic: [1]}})
        assert multi[g] == (0, {(topic, 0): (5, 3, 'meta-0', 0)})
        assert multi[g2] == (0, {(topic, 2): (42, -1, 'two', 0)})
        assert multi['nope-' + g] == (0, {(topic, 1): (-1, -1, '', 0)})
    # group commits: member and generation are checked
    conns, ids, gen, leader = stable_group(gb, g, n=2)
    try:
        a = conns[0]
        assert commit(a, g, {(topic, 0): (11, -1, 'g')}, gen=gen, member=ids[0]) == {(topic, 0): 0}
        assert commit(a, g, {(topic, 0): (12, -1, 'g')}, gen=gen - 1, member=ids[0]) == {(topic, 0): ILLEGAL_GENERATION}
        assert commit(a, g, {(topic, 0): (12, -1, 'g')}, gen=gen, member='x') == {(topic, 0): UNKNOWN_MEMBER_ID}
        # a simple commit to a group that has members is refused
        assert commit(a, g, {(topic, 0): (12, -1, 'g')}) == {(topic, 0): UNKNOWN_MEMBER_ID}
        assert fetch_offsets(a, g, {topic: [0]})[1][(topic, 0)][0] == 11
        # OffsetDelete: refused for subscribed topics of a non-empty consumer group
        # (the raw members' metadata is not a consumer subscription: unknown = subscribed)
        err, res = offset_delete(a, g, {topic: [0]})
        assert err == 0 and res == {(topic, 0): GROUP_SUBSCRIBED_TO_TOPIC}
        assert delete_groups(a, [g]) == {g: NON_EMPTY_GROUP}
        for c, m in zip(conns, ids):
            leave(c, g, [(m, None)])
        err, res = offset_delete(a, g, {topic: [0, 7]})
        assert err == 0 and res == {(topic, 0): 0, (topic, 7): 3}
        assert fetch_offsets(a, g, None)[1] == {(topic, 1): (7, -1, '', 0)}
        assert offset_delete(a, 'nope-' + g, {topic: [0]})[0] == GROUP_ID_NOT_FOUND
        assert delete_groups(a, [g, 'nope-' + g]) == {g: 0, 'nope-' + g: GROUP_ID_NOT_FOUND}
        assert fetch_offsets(a, g, None)[1] == {}
        assert g not in list_groups(a)
    finally:
        for c in conns:
            c.close()


def test_offset_delete_checks_consumer_subscriptions(gb):
    g = gid()
    t1 = helpers.create_topic(gb.bootstrap, conftest.unique_topic('sub1'), partitions=1)
    t2 = helpers.create_topic(gb.bootstrap, conftest.unique_topic('sub2'), partitions=1)
    sub = subscription([t1])
    with Conn.to(gb.bootstrap, timeout=20) as c:
        j = join_full(c, g, protocols=(('range', sub),))
        assert sync(c, g, j['generation'], j['member'], [(j['member'], b'')])[0] == 0
        assert commit(c, g, {(t1, 0): (1, -1, ''), (t2, 0): (2, -1, '')}, gen=j['generation'],
                      member=j['member']) == {(t1, 0): 0, (t2, 0): 0}
        err, res = offset_delete(c, g, {t1: [0], t2: [0]})
        assert err == 0 and res == {(t1, 0): GROUP_SUBSCRIBED_TO_TOPIC, (t2, 0): 0}
        assert fetch_offsets(c, g, None)[1] == {(t1, 0): (1, -1, '', 0)}


def test_list_groups_state_filter(gb):
    g_stable, g_empty = gid(), gid()
    topic = helpers.create_topic(gb.bootstrap, conftest.unique_topic('lg'), partitions=1)
    with Conn.to(gb.bootstrap, timeout=20) as c:
        j = join_full(c, g_stable)
        sync(c, g_stable, j['generation'], j['member'])
        commit(c, g_empty, {(topic, 0): (1, -1, '')})
        all_groups = list_groups(c)
        assert all_groups[g_stable] == ('consumer', 'Stable') and all_groups[g_empty] == ('', 'Empty')
        stable = list_groups(c, ['stable'])
        assert g_stable in stable and g_empty not in stable
        empty = list_groups(c, ['Empty', 'Dead'])
        assert g_empty in empty and g_stable not in empty
        assert describe(c, 'unknown-' + g_stable)['state'] == 'Dead'


def test_consumer_offsets_record_format(gb):
    """Offsets land in __consumer_offsets at abs(hashCode(group)) % 7 in
    Kafka's format: key v1 (group, topic, partition), value v3 (offset,
    leader epoch, metadata, commit timestamp); group metadata key v2."""
    g = 'fmt-\u00e9\u4e2d-' + uuid.uuid4().hex[:6]  # non-ASCII: UTF-16 hashing
    topic = helpers.create_topic(gb.bootstrap, conftest.unique_topic('fmt'), partitions=2)
    h = java_hash(g)
    part = (0 if h == -2 ** 31 else abs(h)) % 7  # Kafka's Utils.abs(hashCode) % partitions
    before = helpers.now_ms()
    with Conn.to(gb.bootstrap, timeout=20) as c:
        assert commit(c, g, {(topic, 1): (99, 4, 'md')}) == {(topic, 1): 0}
        j = join_full(c, g, protocols=(('range', b'sub'),))
        sync(c, g, j['generation'], j['member'], [(j['member'], b'asg')])
    recs = []
    for b in helpers.raw_fetch_batches(gb.bootstrap, '__consumer_offsets', part):
        recs.extend(b.records())
    gbytes = g.encode()
    offs = [r for r in recs if r['key'][:2] == b'\x00\x01' and gbytes in r['key']]
    assert len(offs) == 1
    k = Reader(offs[0]['key'])
    assert (k.int16(), k.string(), k.string(), k.int32()) == (1, g, topic, 1)
    v = Reader(offs[0]['value'])
    assert (v.int16(), v.int64(), v.int32(), v.string()) == (3, 99, 4, 'md')
    ts = v.int64()
    assert before <= ts <= helpers.now_ms() and v.remaining() == 0
    metas = [r for r in recs if r['key'][:2] == b'\x00\x02' and Reader(r['key'][2:]).string() == g]
    assert metas, 'no group metadata record'
    v = Reader(metas[-1]['value'])
    assert v.int16() == 3 and v.string() == 'consumer' and v.int32() == 1
    assert v.string() == 'range' and v.string() == j['member']
    v.int64()
    members = v.array(lambda r: (r.string(), r.string(), r.string(), r.string(), r.int32(), r.int32(),
                                 r.bytes_(), r.bytes_()))
    assert members == [(j['member'], None, 'runnel-raw', '/127.0.0.1', 10000, 6000, b'sub', b'asg')]


def test_restart_reloads_groups_and_offsets(start_broker):
    b = start_broker(overrides=OVERRIDES)
    topic = helpers.create_topic(b.bootstrap, conftest.unique_topic('rl'), partitions=2)
    g_simple, g_members, g_deleted = gid(), gid(), gid()
    with Conn.to(b.bootstrap, timeout=20) as c:
        commit(c, g_simple, {(topic, 0): (10, 2, 'keep'), (topic, 1): (20, -1, '')})
        commit(c, g_simple, {(topic, 1): (21, -1, 'newer')})
        commit(c, g_deleted, {(topic, 0): (5, -1, '')})
        assert delete_groups(c, [g_deleted]) == {g_deleted: 0}
        j = join_full(c, g_members, session=3000)
        sync(c, g_members, j['generation'], j['member'], [(j['member'], b'mine')])
        commit(c, g_members, {(topic, 0): (3, -1, '')}, gen=j['generation'], member=j['member'])
    b.restart()
    with Conn.to(b.bootstrap, timeout=20) as c:
        assert fetch_offsets(c, g_simple, None)[1] == {(topic, 0): (10, 2, 'keep', 0),
                                                       (topic, 1): (21, -1, 'newer', 0)}
        assert fetch_offsets(c, g_deleted, None)[1] == {}
        groups = list_groups(c)
        assert groups[g_simple] == ('', 'Empty') and g_deleted not in groups
        assert groups[g_members] == ('consumer', 'Stable')
        d = describe(c, g_members)
        assert [(m['member'], m['assignment']) for m in d['members']] == [(j['member'], b'mine')]
        # the member is still known (heartbeats work) until its session ends
        assert heartbeat(c, g_members, j['generation'], j['member']) == 0
        helpers.wait_for(lambda: describe(c, g_members)['state'] == 'Empty', 15, what='member expiry')
        assert fetch_offsets(c, g_members, None)[1] == {(topic, 0): (3, -1, '', 0)}
    b.restart()
    with Conn.to(b.bootstrap, timeout=20) as c:
        assert list_groups(c)[g_members] == ('consumer', 'Empty')
        assert describe(c, g_members)['members'] == []


def test_offsets_retention_expires_empty_groups(start_broker):
    b = start_broker(overrides=dict(OVERRIDES, **{'offsets.retention.minutes': 1,
                                                  'offsets.retention.check.interval.ms': 300}))
    topic = helpers.create_topic(b.bootstrap, conftest.unique_topic('exp'), partitions=1)
    g = gid()
    with Conn.to(b.bootstrap, timeout=20) as c:
        # OffsetCommit v2's retention time gives this offset an explicit expiry
        body = (Writer().string(g).int32(-1).string('').int64(500)
                .array([topic], lambda w, t: w.string(t).array([0], lambda w, p: w.int32(p).int64(8).string('')))
                .getvalue())
        r = c.request(OFFSET_COMMIT, 2, body)
        assert r.array(lambda rr: (rr.string(), rr.array(lambda r3: (r3.int32(), r3.int16())))) == [
            (topic, [(0, 0)])]
        assert fetch_offsets(c, g, None)[1] == {(topic, 0): (8, -1, '', 0)}
        helpers.wait_for(lambda: g not in list_groups(c), 10, what='expired group')
        assert fetch_offsets(c, g, None)[1] == {}
    b.restart()
    with Conn.to(b.bootstrap, timeout=20) as c:
        assert g not in list_groups(c)
