"""ApiVersions, Metadata (incl. auto topic creation), DescribeCluster,
pipelined requests: every client connects and sees the one broker."""

import os

import confluent_kafka as ck
import pytest

import kafka_raw as kr
from conftest import unique_topic
from helpers import (admin, create_topic, kcat_metadata, produce_confluent,
                     produce_kafka_python, make_records, consume_confluent, topic_partitions,
                     wait_for, assert_records)

# APIs issue 2 requires, with the lowest max version a supported client needs
REQUIRED_APIS = {
    kr.PRODUCE: 3, kr.FETCH: 4, kr.LIST_OFFSETS: 1, kr.METADATA: 1, kr.API_VERSIONS: 2,
    kr.CREATE_TOPICS: 2, 20: 1, kr.DELETE_RECORDS: 0, kr.DESCRIBE_CONFIGS: 1, 33: 0,
    kr.DESCRIBE_LOG_DIRS: 0, 37: 0, kr.INCREMENTAL_ALTER_CONFIGS: 0, kr.DESCRIBE_CLUSTER: 0,
}


def api_versions(bootstrap, version):
    with kr.Conn.to(bootstrap) as c:
        r = c.request(kr.API_VERSIONS, version, kr.api_versions_body(version),
                      flexible=version >= 3)
        return kr.parse_api_versions(r, version)


@pytest.mark.parametrize('version', [0, 1, 2, 3])
def test_api_versions_lists_required_apis(broker, version):
    err, keys = api_versions(broker.bootstrap, version)
    assert err == 0
    for key, need in REQUIRED_APIS.items():
        assert key in keys, 'API key %d not advertised: %s' % (key, sorted(keys))
        lo, hi = keys[key]
        assert 0 <= lo <= hi, (key, lo, hi)
        assert hi >= need, 'API %d max version %d < %d' % (key, hi, need)
    # traps from FORMATS.md: Produce from v0 (librdkafka compression), Metadata from v0
    assert keys[kr.PRODUCE][0] == 0
    assert keys[kr.METADATA][0] == 0
    assert keys[kr.API_VERSIONS][0] == 0


def test_metadata_raw_versions(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=2)
    _, keys = api_versions(broker.bootstrap, 0)
    lo, hi = keys[kr.METADATA]
    versions = sorted({v for v in (0, 1, 2, 4, 5, 7, 9, 10, 12) if lo <= v <= hi})
    assert 0 in versions and 9 in versions, 'Metadata v0 and flexible v9 must be served'
    cluster_ids = set()
    with kr.Conn.to(broker.bootstrap) as c:
        for v in versions:
            md = kr.parse_metadata(c.request(kr.METADATA, v, kr.metadata_body(v, [topic]),
                                             flexible=v >= 9), v)
            assert [b[:3] for b in md['brokers']] == [(0, broker.host, broker.port)], (v, md)
            if v >= 1:
                assert md['controller_id'] == 0
            if v >= 2:
                assert md['cluster_id'], 'v%d: no cluster id' % v
                cluster_ids.add(md['cluster_id'])
            err, parts, internal = md['topics'][topic]
            assert err == 0 and not internal
            assert sorted(parts) == [0, 1]
            for p, (perr, leader, reps, isr) in parts.items():
                assert (perr, leader, reps, isr) == (0, 0, [0], [0]), (v, p)
    assert len(cluster_ids) == 1
    if not broker.external:
        with open(os.path.join(broker.data_dir, 'meta.properties')) as f:
            props = dict(line.strip().split('=', 1) for line in f
                         if '=' in line and not line.startswith('#'))
        assert props.get('broker.id') == '0'
        assert props.get('cluster.id') == cluster_ids.pop()


def test_metadata_all_topics_lists_created(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=3)
    with kr.Conn.to(broker.bootstrap) as c:
        md = kr.parse_metadata(c.request(kr.METADATA, 1, kr.metadata_body(1, None)), 1)
        assert topic in md['topics']
        assert sorted(md['topics'][topic][1]) == [0, 1, 2]
        md0 = kr.parse_metadata(c.request(kr.METADATA, 0, kr.metadata_body(0, None)), 0)
        assert topic in md0['topics']


def test_confluent_client_connects(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=2)
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {0: (broker.host, broker.port)}
    assert md.controller_id == 0
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1]
    for p in t.partitions.values():
        assert (p.leader, list(p.replicas), list(p.isrs)) == (0, [0], [0])


def test_kafka_python_client_connects(broker, topic):
    """kafka-python's first connection pipelines ApiVersions and Metadata."""
    from kafka import KafkaAdminClient, KafkaConsumer
    create_topic(broker.bootstrap, topic, partitions=2)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        assert topic in a.list_topics()
        cl = a.describe_cluster()
        assert [(b['node_id'], b['host'], b['port']) for b in cl['brokers']] == \
            [(0, broker.host, broker.port)]
        assert cl['controller_id'] == 0
        assert cl['cluster_id']
    finally:
        a.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      request_timeout_ms=10000)
    try:
        assert topic in c.topics()
        assert c.partitions_for_topic(topic) == {0, 1}
    finally:
        c.close()


def test_kcat_lists_brokers_and_topics(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=3)
    md = kcat_metadata(broker.bootstrap)
    assert [(b['id'], b['name']) for b in md['brokers']] == [(0, broker.bootstrap)]
    ts = {t['topic']: t for t in md['topics']}
    assert topic in ts
    t = ts[topic]
    assert not t.get('error')
    parts = sorted(t['partitions'], key=lambda p: p['partition'])
    assert [p['partition'] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p['leader'] == 0
        assert [r['id'] for r in p['replicas']] == [0]
        assert [r['id'] for r in p['isrs']] == [0]


def test_describe_cluster_raw(broker):
    _, keys = api_versions(broker.bootstrap, 0)
    lo, hi = keys[kr.DESCRIBE_CLUSTER]
    with kr.Conn.to(broker.bootstrap) as c:
        md = kr.parse_metadata(c.request(kr.METADATA, 2, kr.metadata_body(2, [])), 2)
        for v in range(lo, min(hi, 1) + 1):
            d = kr.parse_describe_cluster(
                c.request(kr.DESCRIBE_CLUSTER, v, kr.describe_cluster_body(v), flexible=True), v)
            assert d['error'] == 0 and d['error_message'] is None
            assert d['cluster_id'] == md['cluster_id']
            assert d['controller_id'] == 0
            assert [b[:3] for b in d['brokers']] == [(0, broker.host, broker.port)]
            if v >= 1:
                assert d['endpoint_type'] == 1


def test_pipelined_requests_answered_in_order(broker):
    """Several requests written back to back in one send: the answers come
    back in request order with their own correlation ids."""
    with kr.Conn.to(broker.bootstrap) as c:
        reqs = [(kr.API_VERSIONS, 0, b'', False),
                (kr.METADATA, 0, kr.metadata_body(0, None), False),
                (kr.API_VERSIONS, 3, kr.api_versions_body(3), True),
                (kr.METADATA, 9, kr.metadata_body(9, None), True),
                (kr.API_VERSIONS, 1, b'', False)]
        frames = b''
        corrs = []
        for i, (key, ver, body, flex) in enumerate(reqs):
            corr = 1000 + i * 7
            payload = c.header(key, ver, corr, flex) + body
            frames += len(payload).to_bytes(4, 'big') + payload
            corrs.append(corr)
        c.send_raw(frames)
        for (key, ver, body, flex), corr in zip(reqs, corrs):
            got, r = c.recv(flexible_header=flex and key != kr.API_VERSIONS, flexible_body=flex)
            assert got == corr
            if key == kr.API_VERSIONS:
                err, keys = kr.parse_api_versions(r, ver)
                assert err == 0 and kr.PRODUCE in keys
            else:
                md = kr.parse_metadata(r, ver)
                assert [b[0] for b in md['brokers']] == [0]
            assert r.remaining() == 0, 'trailing bytes in response to key %d v%d' % (key, ver)


# ---------------------------------------------------------------- auto creation

def test_auto_create_on_produce_default_partitions(broker):
    """Producing to an unknown topic creates it with num.partitions (1)."""
    t = unique_topic('auto')
    recs = make_records(3, 'auto')
    res = produce_confluent(broker.bootstrap, t, recs, partition=None)
    assert [r[2] for r in res] == [0, 1, 2]
    assert topic_partitions(broker.bootstrap, t) == 1
    assert_records(consume_confluent(broker.bootstrap, t, count=3), recs)


def test_auto_create_with_num_partitions_override(start_broker):
    b = start_broker(num__partitions=3)
    t = unique_topic('auto3')
    recs = make_records(4, 'a3')
    for r in recs:
        r['partition'] = 2
    md = produce_kafka_python(b.bootstrap, t, recs, partition=2)
    assert [(m.partition, m.offset) for m in md] == [(2, 0), (2, 1), (2, 2), (2, 3)]
    assert topic_partitions(b.bootstrap, t) == 3
    assert_records(consume_confluent(b.bootstrap, t, partition=2, count=4), recs)
    # Metadata with allow_auto_topic_creation=false must not create
    t2 = unique_topic('noauto')
    with kr.Conn.to(b.bootstrap) as c:
        md = kr.parse_metadata(c.request(kr.METADATA, 4, kr.metadata_body(4, [t2], False)), 4)
        assert md['topics'][t2][0] == kr.UNKNOWN_TOPIC_OR_PARTITION
    assert topic_partitions(b.bootstrap, t2) is None


def test_auto_create_via_metadata_request(broker):
    t = unique_topic('mdauto')
    with kr.Conn.to(broker.bootstrap) as c:
        md = kr.parse_metadata(c.request(kr.METADATA, 4, kr.metadata_body(4, [t], True)), 4)
        # Kafka answers LEADER_NOT_AVAILABLE while the new topic is being set up
        assert md['topics'][t][0] in (0, kr.LEADER_NOT_AVAILABLE)
    assert wait_for(lambda: topic_partitions(broker.bootstrap, t), 10,
                    what='auto-created topic') == 1


def test_auto_create_disabled(start_broker):
    b = start_broker(auto__create__topics__enable='false')
    t = unique_topic('disabled')
    with kr.Conn.to(b.bootstrap) as c:
        for v in (1, 4, 9):
            md = kr.parse_metadata(c.request(kr.METADATA, v, kr.metadata_body(v, [t], True),
                                             flexible=v >= 9), v)
            assert md['topics'][t][0] == kr.UNKNOWN_TOPIC_OR_PARTITION, v
    md = kcat_metadata(b.bootstrap)
    assert t not in [x['topic'] for x in md['topics']]
    # a producer cannot create it either: delivery fails, topic stays absent
    res = produce_confluent(b.bootstrap, t, make_records(1, 'x'), partition=None,
                            conf={'message.timeout.ms': 3000}, timeout=10, expect_errors=True)
    assert res[0][0] is not None
    assert res[0][0].code() in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC,
                                ck.KafkaError._MSG_TIMED_OUT)
    assert topic_partitions(b.bootstrap, t) is None
    # explicit creation still works
    create_topic(b.bootstrap, t, partitions=2)


def test_request_sent_byte_by_byte(broker):
    """Frames arriving in tiny pieces are reassembled."""
    with kr.Conn.to(broker.bootstrap) as c:
        body = kr.metadata_body(1, None)
        payload = c.header(kr.METADATA, 1, 99, False) + body
        frame = len(payload).to_bytes(4, 'big') + payload
        for i in range(len(frame)):
            c.send_raw(frame[i:i + 1])
        corr, r = c.recv()
        assert corr == 99
        md = kr.parse_metadata(r, 1)
        assert [b[0] for b in md['brokers']] == [0]


def test_many_concurrent_connections(broker):
    conns = [kr.Conn.to(broker.bootstrap) for _ in range(200)]
    try:
        for i, c in enumerate(conns):
            c.send(kr.API_VERSIONS, i % 3, b'', corr=i)
        for i, c in enumerate(conns):
            corr, r = c.recv()
            assert corr == i
            assert kr.parse_api_versions(r, i % 3)[0] == 0
    finally:
        for c in conns:
            c.close()
