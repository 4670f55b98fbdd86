"""Admin APIs: CreateTopics (configs, -1 defaults, validate_only, name rules,
errors), DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, DescribeLogDirs, DeleteRecords."""

import os

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, NewTopic

import kafka_raw as kr
from conftest import unique_topic
from helpers import (admin, assert_records, consume_confluent, consume_kafka_python,
                     create_topic, kafka_exc_code, make_records, produce_confluent,
                     topic_partitions, wait_for, wait_futures, watermarks)

E = ck.KafkaError

TOPIC_DEFAULTS = {
    'cleanup.policy': 'delete', 'retention.ms': '604800000', 'retention.bytes': '-1',
    'segment.bytes': '1073741824', 'segment.ms': '604800000', 'min.insync.replicas': '1',
    'compression.type': 'producer', 'message.timestamp.type': 'CreateTime',
    'max.message.bytes': '1048588',
    # the rest of Kafka's topic-level configs with their defaults
    'delete.retention.ms': '86400000', 'file.delete.delay.ms': '60000',
    'flush.messages': '9223372036854775807', 'flush.ms': '9223372036854775807',
    'index.interval.bytes': '4096', 'max.compaction.lag.ms': '9223372036854775807',
    'min.cleanable.dirty.ratio': '0.5', 'min.compaction.lag.ms': '0', 'preallocate': 'false',
    'segment.index.bytes': '10485760', 'segment.jitter.ms': '0',
    'unclean.leader.election.enable': 'false',
}


def create(bootstrap, topics, validate_only=False):
    fs = admin(bootstrap).create_topics(topics, operation_timeout=10, validate_only=validate_only)
    return wait_futures(fs)


def raw_create(bootstrap, topics, version=2, validate_only=False):
    with kr.Conn.to(bootstrap) as c:
        return kr.parse_create_topics(c.request(
            kr.CREATE_TOPICS, version, kr.create_topics_body(topics, validate_only=validate_only,
                                                             version=version),
            flexible=version >= 5), version)


def describe_topic_configs(bootstrap, name):
    fs = admin(bootstrap).describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)])
    res = list(wait_futures(fs).values())[0]
    assert not isinstance(res, Exception), res
    return res


def describe_broker_configs(bootstrap):
    fs = admin(bootstrap).describe_configs([ConfigResource(ConfigResource.Type.BROKER, '0')])
    res = list(wait_futures(fs).values())[0]
    assert not isinstance(res, Exception), res
    return res


def src(entry):
    s = entry.source
    return s if isinstance(s, ConfigSource) else ConfigSource(s)


# ---------------------------------------------------------------- CreateTopics

def test_create_topic_with_configs(broker, topic):
    res = create(broker.bootstrap, [NewTopic(topic, 4, 1, config={
        'retention.ms': '1234567', 'cleanup.policy': 'compact', 'segment.bytes': '1048576'})])
    assert res[topic] is None
    assert wait_for(lambda: topic_partitions(broker.bootstrap, topic), 10) == 4
    cfg = describe_topic_configs(broker.bootstrap, topic)
    for name, value in (('retention.ms', '1234567'), ('cleanup.policy', 'compact'),
                        ('segment.bytes', '1048576')):
        assert cfg[name].value == value
        assert src(cfg[name]) == ConfigSource.DYNAMIC_TOPIC_CONFIG, (name, cfg[name].source)
    assert cfg['compression.type'].value == 'producer'
    assert src(cfg['compression.type']) == ConfigSource.DEFAULT_CONFIG
    if not broker.external:
        for p in range(4):
            assert os.path.isdir(broker.partition_dir(topic, p))


def test_create_topic_defaults_minus_one(start_broker):
    b = start_broker(num__partitions=3)
    t1, t2 = unique_topic('m1'), unique_topic('m1b')
    res = create(b.bootstrap, [NewTopic(t1, -1, -1), NewTopic(t2, 2, -1)])
    assert res == {t1: None, t2: None}
    assert wait_for(lambda: topic_partitions(b.bootstrap, t1), 10) == 3
    assert wait_for(lambda: topic_partitions(b.bootstrap, t2), 10) == 2
    # raw CreateTopics v4 with -1/-1 as well
    t3 = unique_topic('m1raw')
    assert raw_create(b.bootstrap, [(t3, -1, -1, {})], version=4)[t3][0] == 0
    assert wait_for(lambda: topic_partitions(b.bootstrap, t3), 10) == 3


def test_create_validate_only_creates_nothing(broker, topic):
    res = create(broker.bootstrap, [NewTopic(topic, 2, 1)], validate_only=True)
    assert res[topic] is None
    assert topic_partitions(broker.bootstrap, topic) is None
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert topic not in md.topics
    if not broker.external:
        assert not os.path.exists(broker.partition_dir(topic, 0))
    # invalid names still fail in validate_only
    r = raw_create(broker.bootstrap, [('bad/name', 1, 1, {})], validate_only=True)
    assert r['bad/name'][0] == kr.INVALID_TOPIC_EXCEPTION
    # and a real creation afterwards works
    create_topic(broker.bootstrap, topic, partitions=2)


def test_create_existing_topic(broker, topic):
    create_topic(broker.bootstrap, topic)
    res = create(broker.bootstrap, [NewTopic(topic, 1, 1)])
    assert kafka_exc_code(res[topic]) == E.TOPIC_ALREADY_EXISTS
    assert raw_create(broker.bootstrap, [(topic, 3, 1, {})])[topic][0] == kr.TOPIC_ALREADY_EXISTS
    assert topic_partitions(broker.bootstrap, topic) == 1


INVALID_NAMES = ['', '.', '..', 'a' * 250, 'a/b', 'a b', 'a\\b', 'topic:1', 'caf\u00e9', 'a*',
                 '__consumer_offsets', '__transaction_state']


@pytest.mark.parametrize('name', INVALID_NAMES,
                         ids=['empty', 'dot', 'dotdot', '250chars', 'slash', 'space', 'backslash',
                              'colon', 'non-ascii', 'star', 'consumer-offsets', 'txn-state'])
def test_invalid_topic_names(broker, name):
    res = raw_create(broker.bootstrap, [(name, 1, 1, {})])
    assert res[name][0] == kr.INVALID_TOPIC_EXCEPTION, res
    if name:
        assert topic_partitions(broker.bootstrap, name) is None


def test_invalid_name_via_confluent(broker):
    res = create(broker.bootstrap, [NewTopic('bad name', 1, 1), NewTopic('x' * 250, 1, 1)])
    for v in res.values():
        assert kafka_exc_code(v) == E.TOPIC_EXCEPTION


def test_topic_name_249_chars_and_mixed_dot_underscore(broker):
    long_name = unique_topic('long')
    long_name = long_name + 'x' * (249 - len(long_name))
    assert len(long_name) == 249
    create_topic(broker.bootstrap, long_name)
    recs = make_records(3, 'long')
    produce_confluent(broker.bootstrap, long_name, recs)
    assert_records(consume_confluent(broker.bootstrap, long_name, count=3), recs)
    if not broker.external:
        assert os.path.isdir(broker.partition_dir(long_name))
    mixed = unique_topic('mix') + '.a_b'
    since = broker.log_size()
    create_topic(broker.bootstrap, mixed)
    if not broker.external:
        text = broker.log_text(since)
        assert any(mixed in line and 'warn' in line.lower() for line in text.splitlines()), \
            'no warning logged for a name with both . and _:\n' + text[-2000:]


def test_dot_underscore_collision(broker):
    base = unique_topic('coll')
    create_topic(broker.bootstrap, base + '.x')
    res = raw_create(broker.bootstrap, [(base + '_x', 1, 1, {})])
    assert res[base + '_x'][0] == kr.INVALID_TOPIC_EXCEPTION
    assert topic_partitions(broker.bootstrap, base + '_x') is None
    create_topic(broker.bootstrap, base + '_y')
    res = create(broker.bootstrap, [NewTopic(base + '.y', 1, 1)])
    assert kafka_exc_code(res[base + '.y']) == E.TOPIC_EXCEPTION


def test_create_errors(broker):
    t1, t2, t3, t4 = (unique_topic(x) for x in ('rf', 'np', 'cfg', 'val'))
    res = raw_create(broker.bootstrap, [(t1, 1, 2, {}), (t2, 0, 1, {}),
                                        (t3, 1, 1, {'no.such.config': '1'}),
                                        (t4, 1, 1, {'retention.ms': 'soon'})])
    assert res[t1][0] == kr.INVALID_REPLICATION_FACTOR
    assert res[t2][0] == kr.INVALID_PARTITIONS
    assert res[t3][0] == kr.INVALID_CONFIG
    assert res[t4][0] == kr.INVALID_CONFIG
    for t in (t1, t2, t3, t4):
        assert topic_partitions(broker.bootstrap, t) is None


def test_create_topics_flexible_version(broker):
    with kr.Conn.to(broker.bootstrap) as c:
        _, keys = kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)
    if keys[kr.CREATE_TOPICS][1] < 5:
        pytest.skip('CreateTopics v5 not advertised')
    t = unique_topic('flex')
    res = raw_create(broker.bootstrap, [(t, 2, 1, {'retention.ms': '3600000'})], version=5)
    assert res[t][0] == 0
    assert wait_for(lambda: topic_partitions(broker.bootstrap, t), 10) == 2
    assert describe_topic_configs(broker.bootstrap, t)['retention.ms'].value == '3600000'


# ---------------------------------------------------------------- DeleteTopics

def test_delete_topic(broker, topic):
    create_topic(broker.bootstrap, topic, partitions=2)
    produce_confluent(broker.bootstrap, topic, make_records(5, 'del'))
    fs = admin(broker.bootstrap).delete_topics([topic], operation_timeout=10)
    assert wait_futures(fs)[topic] is None
    wait_for(lambda: topic_partitions(broker.bootstrap, topic) is None, 10, what='topic gone')
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert topic not in md.topics
    if not broker.external:
        wait_for(lambda: not os.path.exists(broker.partition_dir(topic, 0)) and
                 not os.path.exists(broker.partition_dir(topic, 1)), 10,
                 what='partition directories removed')
    # deleting again: unknown
    fs = admin(broker.bootstrap).delete_topics([topic], operation_timeout=10)
    assert kafka_exc_code(wait_futures(fs)[topic]) == E.UNKNOWN_TOPIC_OR_PART
    # the name can be reused and starts from offset 0
    create_topic(broker.bootstrap, topic)
    recs = make_records(2, 'again')
    res = produce_confluent(broker.bootstrap, topic, recs)
    assert [r[2] for r in res] == [0, 1]
    assert_records(consume_confluent(broker.bootstrap, topic, count=2), recs)


def test_delete_topics_raw(broker):
    t = unique_topic('rawdel')
    create_topic(broker.bootstrap, t)
    with kr.Conn.to(broker.bootstrap) as c:
        res = kr.parse_delete_topics(c.request(kr.DELETE_TOPICS, 1,
                                               kr.delete_topics_body([t, t + '-nope'])))
    assert res == {t: 0, t + '-nope': kr.UNKNOWN_TOPIC_OR_PARTITION}


# ---------------------------------------------------------------- CreatePartitions

def test_create_partitions(broker, topic):
    create_topic(broker.bootstrap, topic)
    a = admin(broker.bootstrap)
    r = wait_futures(a.create_partitions([NewPartitions(topic, 3)], validate_only=True))
    assert r[topic] is None
    assert topic_partitions(broker.bootstrap, topic) == 1
    r = wait_futures(a.create_partitions([NewPartitions(topic, 3)], operation_timeout=10))
    assert r[topic] is None
    assert wait_for(lambda: topic_partitions(broker.bootstrap, topic) == 3, 10)
    for p in (1, 2):
        recs = make_records(4, 'np%d' % p)
        res = produce_confluent(broker.bootstrap, topic, recs, partition=p)
        assert [x[1:3] for x in res] == [(p, i) for i in range(4)]
        assert_records(consume_confluent(broker.bootstrap, topic, partition=p, count=4), recs)
        assert_records(consume_kafka_python(broker.bootstrap, topic, partition=p, count=4), recs)
        if not broker.external:
            assert os.path.isdir(broker.partition_dir(topic, p))
    for bad in (2, 3):
        r = wait_futures(a.create_partitions([NewPartitions(topic, bad)]))
        assert kafka_exc_code(r[topic]) == E.INVALID_PARTITIONS, bad
    r = wait_futures(a.create_partitions([NewPartitions(topic + '-none', 4)]))
    assert kafka_exc_code(r[topic + '-none']) == E.UNKNOWN_TOPIC_OR_PART
    assert topic_partitions(broker.bootstrap, topic) == 3


def test_kafka_python_create_delete_partitions(broker):
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions as KNP, NewTopic as KNT
    t = unique_topic('kpadm')
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        r = a.create_topics([KNT(t, 2, 1, topic_configs={'retention.ms': '7200000'})])
        assert [(x[0], x[1]) for x in r.topic_errors] == [(t, 0)]
        wait_for(lambda: topic_partitions(broker.bootstrap, t) == 2, 10)
        r = a.create_partitions({t: KNP(5)})
        assert [(x[0], x[1]) for x in r.topic_errors] == [(t, 0)]
        wait_for(lambda: topic_partitions(broker.bootstrap, t) == 5, 10)
        r = a.delete_topics([t])
        assert [(x[0], x[1]) for x in r.topic_error_codes] == [(t, 0)]
        wait_for(lambda: topic_partitions(broker.bootstrap, t) is None, 10)
    finally:
        a.close()


# ---------------------------------------------------------------- DescribeConfigs

def test_describe_topic_configs_defaults(broker, topic):
    create_topic(broker.bootstrap, topic, config={'retention.ms': '86400000'})
    cfg = describe_topic_configs(broker.bootstrap, topic)
    for name, value in TOPIC_DEFAULTS.items():
        assert name in cfg, 'topic config %s missing from DescribeConfigs' % name
        if name == 'retention.ms':
            assert cfg[name].value == '86400000'
            assert src(cfg[name]) == ConfigSource.DYNAMIC_TOPIC_CONFIG
            assert not cfg[name].is_default
        else:
            assert cfg[name].value == value, (name, cfg[name].value)
            assert src(cfg[name]) == ConfigSource.DEFAULT_CONFIG, (name, cfg[name].source)
            assert cfg[name].is_default, name
    for e in cfg.values():
        assert not e.is_sensitive


def test_describe_broker_configs(broker):
    broker.require_local()
    cfg = describe_broker_configs(broker.bootstrap)
    want = {'num.partitions': '1', 'log.segment.bytes': '1073741824',
            'message.max.bytes': '1048588', 'auto.create.topics.enable': 'true',
            'default.replication.factor': '1', 'log.retention.hours': '168',
            'socket.request.max.bytes': '104857600'}
    for name, value in want.items():
        assert name in cfg, 'broker config %s missing' % name
        assert cfg[name].value == value, (name, cfg[name].value)
        assert src(cfg[name]) == ConfigSource.DEFAULT_CONFIG, (name, cfg[name].source)
    assert cfg['log.dirs'].value == broker.data_dir
    assert src(cfg['log.dirs']) == ConfigSource.STATIC_BROKER_CONFIG
    assert cfg['broker.id'].value == '0'


def test_broker_overrides_show_as_static(start_broker):
    b = start_broker(num__partitions=3, message__max__bytes=3000, log__retention__hours=2)
    cfg = describe_broker_configs(b.bootstrap)
    assert (cfg['num.partitions'].value, src(cfg['num.partitions'])) == \
        ('3', ConfigSource.STATIC_BROKER_CONFIG)
    assert (cfg['message.max.bytes'].value, src(cfg['message.max.bytes'])) == \
        ('3000', ConfigSource.STATIC_BROKER_CONFIG)
    t = unique_topic('static')
    create_topic(b.bootstrap, t, partitions=1)
    tc = describe_topic_configs(b.bootstrap, t)
    assert (tc['max.message.bytes'].value, src(tc['max.message.bytes'])) == \
        ('3000', ConfigSource.STATIC_BROKER_CONFIG)
    assert (tc['retention.ms'].value, src(tc['retention.ms'])) == \
        ('7200000', ConfigSource.STATIC_BROKER_CONFIG)
    assert (tc['segment.bytes'].value, src(tc['segment.bytes'])) == \
        ('1073741824', ConfigSource.DEFAULT_CONFIG)


def test_kafka_python_describe_and_alter_configs(broker, topic):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KCR, ConfigResourceType
    create_topic(broker.bootstrap, topic, config={'retention.ms': '5555000'})
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        def describe():
            resp = a.describe_configs([KCR(ConfigResourceType.TOPIC, topic)])
            res = resp[0].resources
            assert len(res) == 1 and res[0][0] == 0, res
            assert res[0][3] == topic
            return {e[0]: e[1] for e in res[0][4]}
        cfg = describe()
        assert cfg['retention.ms'] == '5555000'
        assert cfg['cleanup.policy'] == 'delete'
        resp = a.alter_configs([KCR(ConfigResourceType.TOPIC, topic,
                                    configs={'retention.ms': '7777000'})])
        assert [(r[0], r[3]) for r in resp.resources] == [(0, topic)]
        assert describe()['retention.ms'] == '7777000'
    finally:
        a.close()


def test_describe_configs_unknown_topic(broker):
    fs = admin(broker.bootstrap).describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, unique_topic('nope'))])
    res = list(wait_futures(fs).values())[0]
    assert kafka_exc_code(res) == E.UNKNOWN_TOPIC_OR_PART


# ---------------------------------------------------------------- AlterConfigs

def test_alter_configs_replaces_set(broker, topic):
    create_topic(broker.bootstrap, topic)
    a = admin(broker.bootstrap)
    r = wait_futures(a.alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        set_config={'retention.ms': '86400000', 'cleanup.policy': 'compact'})]))
    assert list(r.values()) == [None]
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert (cfg['retention.ms'].value, src(cfg['retention.ms'])) == \
        ('86400000', ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert (cfg['cleanup.policy'].value, src(cfg['cleanup.policy'])) == \
        ('compact', ConfigSource.DYNAMIC_TOPIC_CONFIG)
    # AlterConfigs replaces the whole set: cleanup.policy goes back to its default
    r = wait_futures(a.alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic, set_config={'retention.ms': '1000'})]))
    assert list(r.values()) == [None]
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg['retention.ms'].value == '1000'
    assert (cfg['cleanup.policy'].value, src(cfg['cleanup.policy'])) == \
        ('delete', ConfigSource.DEFAULT_CONFIG)
    # validate_only changes nothing
    r = wait_futures(a.alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic, set_config={'retention.ms': '5000'})],
        validate_only=True))
    assert list(r.values()) == [None]
    assert describe_topic_configs(broker.bootstrap, topic)['retention.ms'].value == '1000'


@pytest.mark.parametrize('name,value', [('no.such.config', '1'), ('retention.ms', 'abc'),
                                        ('cleanup.policy', 'sometimes'),
                                        ('compression.type', 'brotli'),
                                        ('message.timestamp.type', 'Tomorrow')])
def test_alter_configs_invalid(broker, topic, name, value):
    create_topic(broker.bootstrap, topic, config={'retention.ms': '4000000'})
    r = wait_futures(admin(broker.bootstrap).alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic, set_config={name: value})]))
    assert kafka_exc_code(list(r.values())[0]) == E.INVALID_CONFIG
    assert describe_topic_configs(broker.bootstrap, topic)['retention.ms'].value == '4000000'


def incremental(bootstrap, topic, cfgs, version=0, validate_only=False):
    with kr.Conn.to(bootstrap) as c:
        r = c.request(kr.INCREMENTAL_ALTER_CONFIGS, version,
                      kr.incremental_alter_configs_body([(kr.RESOURCE_TOPIC, topic, cfgs)],
                                                        validate_only, version),
                      flexible=version >= 1)
        return kr.parse_incremental_alter_configs(r, version)[(kr.RESOURCE_TOPIC, topic)][0]


@pytest.mark.parametrize('version', [0, 1])
def test_incremental_alter_configs(broker, topic, version):
    create_topic(broker.bootstrap, topic, config={'cleanup.policy': 'compact'})
    assert incremental(broker.bootstrap, topic, [('retention.ms', kr.OP_SET, '3600000'),
                                                 ('max.message.bytes', kr.OP_SET, '50000')],
                       version) == 0
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg['retention.ms'].value == '3600000'
    assert src(cfg['retention.ms']) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert cfg['max.message.bytes'].value == '50000'
    # incremental: the untouched override stays
    assert cfg['cleanup.policy'].value == 'compact'
    assert incremental(broker.bootstrap, topic, [('retention.ms', kr.OP_DELETE, None)], version) == 0
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert (cfg['retention.ms'].value, src(cfg['retention.ms'])) == \
        ('604800000', ConfigSource.DEFAULT_CONFIG)
    assert cfg['cleanup.policy'].value == 'compact'
    assert incremental(broker.bootstrap, topic, [('segment.ms', kr.OP_SET, '1000000')],
                       version, validate_only=True) == 0
    assert describe_topic_configs(broker.bootstrap, topic)['segment.ms'].value == '604800000'
    assert incremental(broker.bootstrap, topic, [('no.such.thing', kr.OP_SET, '1')],
                       version) == kr.INVALID_CONFIG
    assert incremental(broker.bootstrap, topic, [('retention.ms', kr.OP_SET, 'xyz')],
                       version) == kr.INVALID_CONFIG
    assert describe_topic_configs(broker.bootstrap, topic)['max.message.bytes'].value == '50000'


def test_config_changes_survive_restart(start_broker):
    b = start_broker()
    t = unique_topic('cfgrestart')
    create_topic(b.bootstrap, t, config={'cleanup.policy': 'compact'})
    a = admin(b.bootstrap)
    r = wait_futures(a.alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, t, set_config={'retention.ms': '999000',
                                                  'cleanup.policy': 'compact'})]))
    assert list(r.values()) == [None]
    assert incremental(b.bootstrap, t, [('max.message.bytes', kr.OP_SET, '2000')]) == 0
    b.restart()
    cfg = describe_topic_configs(b.bootstrap, t)
    assert (cfg['retention.ms'].value, src(cfg['retention.ms'])) == \
        ('999000', ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert cfg['cleanup.policy'].value == 'compact'
    assert cfg['max.message.bytes'].value == '2000'
    # the restored limit is enforced
    batch = kr.build_batch([(b'k', b'z' * 3000, [], None)])
    with kr.Conn.to(b.bootstrap) as c:
        res = kr.parse_produce(c.request(kr.PRODUCE, 3, kr.produce_body(3, t, 0, batch)), 3)
    assert res[(t, 0)]['error'] == kr.MESSAGE_TOO_LARGE


# ---------------------------------------------------------------- DescribeLogDirs

def test_describe_log_dirs(broker, topic):
    broker.require_local()
    create_topic(broker.bootstrap, topic, partitions=2)
    produce_confluent(broker.bootstrap, topic, make_records(50, 'ld'))
    with kr.Conn.to(broker.bootstrap) as c:
        _, keys = kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)
        lo, hi = keys[kr.DESCRIBE_LOG_DIRS]
        for v in sorted({max(lo, 1), hi}):
            for req in (None, {topic: [0, 1]}):
                top, results = kr.parse_describe_log_dirs(c.request(
                    kr.DESCRIBE_LOG_DIRS, v, kr.describe_log_dirs_body(req, v),
                    flexible=v >= 2), v)
                assert top in (None, 0)
                assert len(results) == 1
                d = results[0]
                assert d['error'] == 0
                assert os.path.realpath(d['log_dir']) == os.path.realpath(broker.data_dir)
                sizes = d['topics'][topic]
                for p in (0, 1):
                    pdir = broker.partition_dir(topic, p)
                    on_disk = sum(os.path.getsize(os.path.join(pdir, f))
                                  for f in os.listdir(pdir) if f.endswith('.log'))
                    assert sizes[p] == on_disk, (v, p, sizes[p], on_disk)
                assert sizes[0] > 0 and sizes[1] == 0


# ---------------------------------------------------------------- DeleteRecords

def delete_records(bootstrap, topic, offsets, version=1):
    with kr.Conn.to(bootstrap) as c:
        return kr.parse_delete_records(c.request(
            kr.DELETE_RECORDS, version, kr.delete_records_body(topic, offsets, version=version),
            flexible=version >= 2), version)


@pytest.mark.parametrize('version', [1, 2])
def test_delete_records(broker, topic, version):
    with kr.Conn.to(broker.bootstrap) as c:
        _, keys = kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)
    if keys[kr.DELETE_RECORDS][1] < version:
        pytest.skip('DeleteRecords v%d not advertised' % version)
    create_topic(broker.bootstrap, topic, partitions=2)
    recs = make_records(10, 'dr')
    produce_confluent(broker.bootstrap, topic, recs, conf={'linger.ms': 50})
    res = delete_records(broker.bootstrap, topic, {0: 4}, version)
    assert res == {(topic, 0): (4, 0)}
    assert watermarks(broker.bootstrap, topic) == (4, 10)
    assert_records(consume_confluent(broker.bootstrap, topic, count=6), recs[4:], first_offset=4)
    assert_records(consume_kafka_python(broker.bootstrap, topic, count=6), recs[4:],
                   first_offset=4)
    with kr.Conn.to(broker.bootstrap) as c:
        f = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 2)))[(topic, 0)]
        assert f['error'] == kr.OFFSET_OUT_OF_RANGE
        f = kr.parse_fetch(c.request(kr.FETCH, 5, kr.fetch_body(topic, 0, 4)))[(topic, 0)]
        assert f['error'] == 0 and f['log_start_offset'] == 4
        lo = kr.parse_list_offsets(c.request(kr.LIST_OFFSETS, 1,
                                             kr.list_offsets_body(1, topic, 0, -2)), 1)
        assert lo[(topic, 0)][2] == 4
    # lower than the current start: no change; beyond the end: out of range
    assert delete_records(broker.bootstrap, topic, {0: 2}, version) == {(topic, 0): (4, 0)}
    res = delete_records(broker.bootstrap, topic, {0: 11}, version)
    assert res[(topic, 0)][1] == kr.OFFSET_OUT_OF_RANGE
    # -1 means up to the high watermark
    assert delete_records(broker.bootstrap, topic, {0: -1}, version) == {(topic, 0): (10, 0)}
    assert watermarks(broker.bootstrap, topic) == (10, 10)
    assert consume_confluent(broker.bootstrap, topic) == []
    # new records continue at the old end
    more = make_records(2, 'dr2')
    res = produce_confluent(broker.bootstrap, topic, more)
    assert [r[2] for r in res] == [10, 11]
    assert_records(consume_confluent(broker.bootstrap, topic, count=2), more, first_offset=10)
    res = delete_records(broker.bootstrap, topic, {5: 0}, version)
    assert res[(topic, 5)][1] == kr.UNKNOWN_TOPIC_OR_PARTITION
