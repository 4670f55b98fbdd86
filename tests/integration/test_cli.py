"""The `runnel` command-line tool (build/runnel) against a real broker: every
subcommand, its JSON and table output, exit codes (0 ok, 1 failed, 2 usage) and
the one-line errors for an unreachable broker, a missing topic or group, and
bad flags."""

import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

import helpers
from conftest import REPO, free_port, unique_topic

RUNNEL = os.environ.get('RUNNEL_CLI', os.path.join(REPO, 'build', 'runnel'))

COMMANDS = ['topic create', 'topic list', 'topic describe', 'topic delete', 'topic alter',
            'produce', 'consume', 'group list', 'group describe', 'group delete',
            'group reset-offsets', 'cluster info', 'config describe', 'config alter',
            'perf produce', 'perf consume']


def run(args, bootstrap=None, stdin=None, timeout=60, env=None, check=None):
    """Runs runnel; returns CompletedProcess with text stdout/stderr. check=N asserts
    the exit code."""
    if not os.access(RUNNEL, os.X_OK):
        pytest.fail('%s missing (build it with make build/runnel)' % RUNNEL)
    argv = [RUNNEL] + args.split() if isinstance(args, str) else [RUNNEL] + list(args)
    if bootstrap:
        argv += ['--bootstrap-server', bootstrap]
    e = dict(os.environ)
    e.pop('RUNNEL_BOOTSTRAP_SERVER', None)
    if env:
        e.update(env)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, env=e,
                       text=not isinstance(stdin, bytes))
    if isinstance(stdin, bytes):
        p.stdout = p.stdout.decode('utf-8', 'replace')
        p.stderr = p.stderr.decode('utf-8', 'replace')
    if check is not None:
        assert p.returncode == check, 'runnel %s: exit %d, expected %d\nstdout:%s\nstderr:%s' % (
            ' '.join(argv[1:]), p.returncode, check, p.stdout, p.stderr)
    return p


def runj(args, bootstrap, stdin=None, timeout=60):
    p = run(list(args) + ['--format', 'json'], bootstrap, stdin=stdin, timeout=timeout, check=0)
    return json.loads(p.stdout)


def one_error_line(p, *needles):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, 'expected one error line, got %r' % p.stderr
    for n in needles:
        assert n in lines[0], '%r not in %r' % (n, lines[0])
    return lines[0]


def consume_json(bootstrap, topic, *extra):
    start = [] if {'--offset', '--timestamp'} & set(extra) else ['--from-beginning']
    p = run(['consume', '--topic', topic, '--exit-at-end', '--format', 'json'] + start
            + list(extra), bootstrap, check=0)
    return [json.loads(line) for line in p.stdout.splitlines()]


def create(bootstrap, topic, partitions=1, *extra):
    run(['topic', 'create', '--topic', topic, '--partitions', str(partitions)] + list(extra),
        bootstrap, check=0)


def java_murmur2_partition(key, n):
    """Kafka's Utils.murmur2 + toPositive, modulo the partition count."""
    data = key if isinstance(key, bytes) else key.encode()
    length = len(data)
    m, r = 0x5bd1e995, 24
    h = (0x9747b28c ^ length) & 0xffffffff
    for i in range(length // 4):
        k = struct.unpack_from('<I', data, i * 4)[0]
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff
        h ^= k
    tail = length & ~3
    rem = length % 4
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return (h & 0x7fffffff) % n


# ------------------------------------------------------------------ usage and help

def test_help_for_every_command():
    p = run('--help', check=0)
    for c in COMMANDS:
        assert c in p.stdout
    for c in COMMANDS:
        p = run(c.split() + ['--help'], check=0)
        assert p.stdout.startswith('Usage: runnel %s' % c)
        assert 'Examples:' in p.stdout and '--bootstrap-server' in p.stdout
        assert 'Exit codes: 0 ok, 1 operation failed, 2 usage error.' in p.stdout
    assert run('--version', check=0).stdout.startswith('runnel ')


@pytest.mark.parametrize('args,needle', [
    ('', None),
    ('frob', "unknown command 'frob'"),
    ('topic', 'missing subcommand'),
    ('topic frob', "unknown subcommand 'frob'"),
    ('topic create', '--topic is required'),
    ('topic create --topic x --partitions abc', '--partitions must be an integer'),
    ('topic list --bogus', "unknown option '--bogus'"),
    ('topic list --format yaml', '--format must be plain or json'),
    ('topic list --timeout 0', '--timeout must be an integer'),
    ('consume --topic x --offset nope', '--offset must be a number'),
    ('consume --topic x --from-beginning --offset 3', 'only one of'),
    ('consume --topic x --property print.nothing=true', "unknown --property 'print.nothing'"),
    ('produce', '--topic is required'),
    ('produce --topic x --partitioner fancy', '--partitioner must be'),
    ('produce --topic x --compression-type brotli', '--compression-type must be'),
    ('produce --topic x --acks 2', '--acks must be'),
    ('produce --topic x --producer-property nonsense.key=1', 'nonsense.key'),
    ('group reset-offsets --group g --topic t', 'exactly one of'),
    ('group reset-offsets --group g --topic t --to-earliest --dry-run --execute', 'not both'),
    ('config describe --entity-type users --entity-name x', '--entity-type must be'),
    ('config alter --topic t', '--add-config and/or --delete-config'),
    ('config describe --entity-type brokers --entity-name zero', 'broker id'),
    ('perf produce --topic x', '--num-records is required'),
    ('perf produce --topic x --num-records 10 --throughput 0', '--throughput'),
    ('topic list --timeout', 'needs a value'),
])
def test_bad_usage_exits_2(args, needle):
    # no broker is contacted: usage is checked first
    p = run(args, env={'RUNNEL_BOOTSTRAP_SERVER': '127.0.0.1:1'})
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    if needle:
        assert needle in p.stderr, (needle, p.stderr)
        assert p.stdout == ''


@pytest.mark.parametrize('args', [
    'topic list', 'topic describe --topic x', 'topic create --topic x',
    'topic delete --topic x', 'cluster info', 'config describe --topic x',
    'group list', 'group describe --group g', 'consume --topic x --max-messages 1',
    'perf produce --topic x --num-records 10', 'perf consume --topic x',
])
def test_broker_down_is_one_line_exit_1(args):
    port = free_port()
    t0 = time.monotonic()
    p = run(args.split() + ['--timeout', '3000'], bootstrap='127.0.0.1:%d' % port)
    took = time.monotonic() - t0
    assert p.returncode == 1
    one_error_line(p, 'cannot reach broker at 127.0.0.1:%d' % port, 'Connection refused')
    assert p.stdout == ''
    assert took < 6.0, took


def test_produce_broker_down():
    port = free_port()
    p = run(['produce', '--topic', 'x', '--timeout', '2000'], '127.0.0.1:%d' % port, stdin='a\n')
    assert p.returncode == 1
    one_error_line(p, 'cannot reach broker')


def test_silent_broker_times_out_with_one_line():
    # a listener that never answers: the --timeout decides
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(16)
    try:
        t0 = time.monotonic()
        p = run(['topic', 'list', '--timeout', '1500'], '127.0.0.1:%d' % s.getsockname()[1])
        took = time.monotonic() - t0
    finally:
        s.close()
    assert p.returncode == 1
    one_error_line(p, 'cannot reach broker')
    assert 1.0 < took < 8.0, took


def test_bootstrap_from_environment(broker):
    j = json.loads(run('cluster info --format json', env={'RUNNEL_BOOTSTRAP_SERVER': broker.bootstrap},
                       check=0).stdout)
    assert j['brokers'][0]['port'] == broker.port
    # the flag wins over the variable
    p = run(['cluster', 'info', '--bootstrap-server', broker.bootstrap],
            env={'RUNNEL_BOOTSTRAP_SERVER': '127.0.0.1:1'}, check=0)
    assert 'Cluster ID:' in p.stdout
    # and the variable is used (here: a dead address)
    p = run(['cluster', 'info', '--timeout', '2000'], env={'RUNNEL_BOOTSTRAP_SERVER': '127.0.0.1:1'})
    assert p.returncode == 1 and 'cannot reach broker at 127.0.0.1:1' in p.stderr


# ------------------------------------------------------------------ cluster and topics

def test_cluster_info(broker):
    j = runj(['cluster', 'info'], broker.bootstrap)
    assert j['cluster_id'] and len(j['cluster_id']) >= 22
    ids = [b['id'] for b in j['brokers']]
    assert j['controller_id'] in ids
    assert [b for b in j['brokers'] if b['controller']][0]['id'] == j['controller_id']
    if not broker.external:
        assert j['brokers'] == [{'id': 0, 'host': '127.0.0.1', 'port': broker.port,
                                 'controller': True}]
    p = run('cluster info', broker.bootstrap, check=0)
    lines = p.stdout.splitlines()
    assert lines[0] == 'Cluster ID:  %s' % j['cluster_id']
    assert lines[1] == 'Controller:  %d' % j['controller_id']
    hdr = [l for l in lines if l.startswith('BROKER')][0]
    assert hdr.split() == ['BROKER', 'HOST', 'PORT', 'ROLE']


def test_topic_lifecycle(broker, topic):
    b = broker.bootstrap
    j = runj(['topic', 'create', '--topic', topic, '--partitions', '3', '--config', 'retention.ms=600000',
              '--config', 'cleanup.policy=compact,delete'], b)
    assert j == {'topic': topic, 'created': True, 'partitions': 3}
    p = run(['topic', 'create', '--topic', topic], b)
    assert p.returncode == 1
    one_error_line(p, "topic '%s' already exists" % topic)
    j = runj(['topic', 'create', '--topic', topic, '--if-not-exists'], b)
    assert j['created'] is False

    topics = runj(['topic', 'list'], b)['topics']
    assert {'topic': topic, 'partitions': 3, 'replication_factor': 1} in topics
    assert [t['topic'] for t in topics] == sorted(t['topic'] for t in topics)
    p = run('topic list', b, check=0)
    lines = p.stdout.splitlines()
    assert lines[0].split() == ['TOPIC', 'PARTITIONS', 'REPLICATION-FACTOR']
    row = [l for l in lines if l.split()[0] == topic][0]
    assert row.split() == [topic, '3', '1']
    # columns line up: each cell starts where its header starts
    assert lines[0].index('PARTITIONS') == row.index('3', len(topic))

    d = runj(['topic', 'describe', '--topic', topic], b)['topics']
    assert len(d) == 1 and d[0]['topic'] == topic and d[0]['partition_count'] == 3
    assert [p['partition'] for p in d[0]['partitions']] == [0, 1, 2]
    for part in d[0]['partitions']:
        assert part['leader'] == 0 or broker.external
        assert part['replicas'] == [part['leader']] and part['isr'] == [part['leader']]
    cfg = {c['name']: c for c in d[0]['configs']}
    assert cfg['retention.ms']['value'] == '600000'
    assert cfg['retention.ms']['source'] == 'DYNAMIC_TOPIC_CONFIG'
    assert cfg['cleanup.policy']['value'] == 'compact,delete'
    assert cfg['segment.bytes']['source'] in ('DEFAULT_CONFIG', 'STATIC_BROKER_CONFIG')
    assert cfg['max.message.bytes']['read_only'] is False
    p = run(['topic', 'describe', '--topic', topic], b, check=0)
    assert p.stdout.startswith('Topic: %s\tPartitionCount: 3\tReplicationFactor: 1\n' % topic)
    assert 'PARTITION  LEADER  REPLICAS  ISR' in p.stdout
    over = run(['topic', 'describe', '--topic', topic, '--overrides-only'], b, check=0).stdout
    cfg_lines = over.split('Configs:\n')[1].splitlines()
    assert cfg_lines[0].split() == ['NAME', 'VALUE', 'SOURCE']
    assert sorted(l.split()[0] for l in cfg_lines[1:]) == ['cleanup.policy', 'retention.ms']

    # alter: more partitions, incremental config changes
    j = runj(['topic', 'alter', '--topic', topic, '--partitions', '5', '--config', 'segment.bytes=1048576',
              '--delete-config', 'cleanup.policy'], b)
    assert j == {'topic': topic, 'partitions': 5, 'set': {'segment.bytes': '1048576'},
                 'deleted': ['cleanup.policy']}
    d = runj(['topic', 'describe', '--topic', topic, '--overrides-only'], b)['topics'][0]
    assert d['partition_count'] == 5
    assert {c['name']: c['value'] for c in d['configs'] if c['source'] == 'DYNAMIC_TOPIC_CONFIG'} == \
        {'retention.ms': '600000', 'segment.bytes': '1048576'}
    p = run(['topic', 'alter', '--topic', topic, '--partitions', '2'], b)
    assert p.returncode == 1
    one_error_line(p, 'can only grow')
    p = run(['topic', 'alter', '--topic', topic], b)
    assert p.returncode == 2

    # delete
    assert runj(['topic', 'delete', '--topic', topic], b) == {'deleted': [topic]}
    assert topic not in [t['topic'] for t in runj(['topic', 'list'], b)['topics']]
    p = run(['topic', 'delete', '--topic', topic], b)
    assert p.returncode == 1
    one_error_line(p, "topic '%s' does not exist" % topic)
    assert runj(['topic', 'delete', '--topic', topic, '--if-exists'], b) == {'deleted': []}


@pytest.mark.parametrize('args', [
    'topic describe --topic {t}', 'topic alter --topic {t} --partitions 4',
    'config describe --topic {t}', 'config alter --topic {t} --add-config retention.ms=1',
    'consume --topic {t} --max-messages 1', 'perf produce --topic {t} --num-records 5',
    'perf consume --topic {t}', 'group reset-offsets --group g --topic {t} --to-earliest',
])
def test_missing_topic_is_one_line_exit_1(broker, args):
    t = unique_topic('missing')
    p = run(args.format(t=t).split(), broker.bootstrap)
    if 'group' in args and 'consumer groups' in p.stderr:
        pytest.skip('broker has no consumer groups')
    assert p.returncode == 1, p.stderr
    one_error_line(p, "topic '%s' does not exist" % t)
    # and it was not auto-created by asking
    assert t not in [x['topic'] for x in runj(['topic', 'list'], broker.bootstrap)['topics']]


def test_topic_create_broker_defaults(broker, topic):
    j = runj(['topic', 'create', '--topic', topic], broker.bootstrap)
    assert j['partitions'] is None
    d = runj(['topic', 'describe', '--topic', topic], broker.bootstrap)['topics'][0]
    assert d['partition_count'] == 1  # num.partitions default


def test_topic_create_invalid_config(broker, topic):
    p = run(['topic', 'create', '--topic', topic, '--config', 'segment.bytes=abc'], broker.bootstrap)
    assert p.returncode == 1
    one_error_line(p, 'segment.bytes')


# ------------------------------------------------------------------ configs

def test_config_describe_alter_topic(broker, topic):
    b = broker.bootstrap
    create(b, topic, 1, '--config', 'retention.ms=100000')
    j = runj(['config', 'describe', '--entity-type', 'topics', '--entity-name', topic], b)
    assert j['entity_type'] == 'topics' and j['entity_name'] == topic
    assert [(c['name'], c['value'], c['source']) for c in j['configs']] == \
        [('retention.ms', '100000', 'DYNAMIC_TOPIC_CONFIG')]
    every = runj(['config', 'describe', '--topic', topic, '--all'], b)['configs']
    assert len(every) > 20 and {'DEFAULT_CONFIG', 'DYNAMIC_TOPIC_CONFIG'} <= {c['source'] for c in every}

    # incremental: the existing override stays
    j = runj(['config', 'alter', '--topic', topic, '--add-config',
              'segment.bytes=2097152,cleanup.policy=[compact,delete]'], b)
    assert j['set'] == {'segment.bytes': '2097152', 'cleanup.policy': 'compact,delete'}
    got = {c['name']: c['value'] for c in runj(['config', 'describe', '--topic', topic], b)['configs']}
    assert got == {'retention.ms': '100000', 'segment.bytes': '2097152',
                   'cleanup.policy': 'compact,delete'}
    p = run(['config', 'alter', '--entity-type', 'topics', '--entity-name', topic,
             '--delete-config', 'retention.ms,cleanup.policy'], b, check=0)
    assert p.stdout == 'Completed updating config for topic %s.\n' % topic
    got = {c['name']: c['value'] for c in runj(['config', 'describe', '--topic', topic], b)['configs']}
    assert got == {'segment.bytes': '2097152'}
    p = run('config describe --topic %s' % topic, b, check=0)
    assert p.stdout.splitlines()[0] == 'Dynamic configs for topic %s:' % topic
    assert p.stdout.splitlines()[1].split() == ['NAME', 'VALUE', 'SOURCE', 'READ-ONLY']
    assert p.stdout.splitlines()[2].split() == ['segment.bytes', '2097152', 'DYNAMIC_TOPIC_CONFIG', 'no']

    # errors: a bad value changes nothing, an unknown key to delete is refused
    p = run(['config', 'alter', '--topic', topic, '--add-config', 'segment.bytes=lots'], b)
    assert p.returncode == 1
    one_error_line(p, 'Invalid value lots for configuration segment.bytes')
    p = run(['config', 'alter', '--topic', topic, '--delete-config', 'no.such.config'], b)
    assert p.returncode == 1
    one_error_line(p, 'no.such.config')
    got = {c['name']: c['value'] for c in runj(['config', 'describe', '--topic', topic], b)['configs']}
    assert got == {'segment.bytes': '2097152'}


def test_config_broker(start_broker):
    b = start_broker().bootstrap
    j = runj(['config', 'describe', '--entity-type', 'brokers', '--entity-name', '0', '--all'], b)
    byname = {c['name']: c for c in j['configs']}
    assert byname['log.retention.hours']['value'] == '168'
    assert byname['log.dirs']['read_only'] is True
    assert runj(['config', 'describe', '--broker', '0'], b)['configs'] == []
    runj(['config', 'alter', '--entity-type', 'brokers', '--entity-name', '0', '--add-config',
          'log.retention.ms=3600000'], b)
    runj(['config', 'alter', '--broker', '0', '--add-config', 'log.segment.bytes=2000000'], b)
    dyn = {c['name']: (c['value'], c['source'])
           for c in runj(['config', 'describe', '--broker', '0'], b)['configs']}
    assert dyn == {'log.retention.ms': ('3600000', 'DYNAMIC_BROKER_CONFIG'),
                   'log.segment.bytes': ('2000000', 'DYNAMIC_BROKER_CONFIG')}
    p = run(['config', 'alter', '--broker', '0', '--add-config', 'listeners=PLAINTEXT://:1'], b)
    assert p.returncode == 1
    one_error_line(p, 'listeners')


def test_config_broker_delete(start_broker):
    b = start_broker().bootstrap
    runj(['config', 'alter', '--broker', '0', '--add-config',
          'log.retention.ms=3600000,log.segment.bytes=2000000'], b)
    runj(['config', 'alter', '--broker', '0', '--delete-config', 'log.retention.ms'], b)
    dyn = [c['name'] for c in runj(['config', 'describe', '--broker', '0'], b)['configs']]
    assert dyn == ['log.segment.bytes']


# ------------------------------------------------------------------ produce / consume

def test_produce_consume_keys_and_headers(broker, topic):
    b = broker.bootstrap
    create(b, topic, 1)
    lines = 'k1:v1\nk2:v:with:colons\n:empty-key\nk4:\n'
    j = runj(['produce', '--topic', topic, '--property', 'parse.key=true', '--property',
              'key.separator=:'], b, stdin=lines)
    assert j == {'topic': topic, 'records': 4, 'delivered': 4, 'failed': 0,
                 'partitions': [{'partition': 0, 'count': 4, 'first_offset': 0, 'last_offset': 3}]}
    hl = 'h1:a,h2:b\tk5\tv5\nNOHDR\tk6\tv6\n'
    p = run(['produce', '--topic', topic, '--property', 'parse.key=true', '--property',
             'parse.headers=true', '--header', 'src=cli'], b, stdin=hl, check=0)
    assert p.stdout == 'Produced 2 records to topic %s.\n' % topic
    recs = consume_json(b, topic)
    assert [(r['offset'], r['key'], r['value']) for r in recs] == [
        (0, 'k1', 'v1'), (1, 'k2', 'v:with:colons'), (2, '', 'empty-key'), (3, 'k4', ''),
        (4, 'k5', 'v5'), (5, 'k6', 'v6')]
    assert [r['headers'] for r in recs[4:]] == [
        [{'key': 'h1', 'value': 'a'}, {'key': 'h2', 'value': 'b'}, {'key': 'src', 'value': 'cli'}],
        [{'key': 'NOHDR', 'value': None}, {'key': 'src', 'value': 'cli'}]]
    assert all(r['headers'] == [] for r in recs[:4])
    assert all(r['topic'] == topic and r['partition'] == 0 and r['timestamp_type'] == 'CreateTime'
               for r in recs)
    now = helpers.now_ms()
    assert all(now - 60000 < r['timestamp'] <= now for r in recs)

    # Kafka's console-consumer layout
    p = run(['consume', '--topic', topic, '--from-beginning', '--max-messages', '5',
             '--property', 'print.key=true', '--property', 'print.offset=true',
             '--property', 'print.partition=true', '--property', 'print.headers=true',
             '--property', 'print.timestamp=true', '--property', 'key.separator= | '], b, check=0)
    out = p.stdout.splitlines()
    assert out[0] == 'CreateTime:%d | Partition:0 | Offset:0 | NO_HEADERS | k1 | v1' % recs[0]['timestamp']
    assert out[4] == 'CreateTime:%d | Partition:0 | Offset:4 | h1:a,h2:b,src:cli | k5 | v5' % \
        recs[4]['timestamp']
    assert p.stderr == 'Processed a total of 5 messages\n'
    p = run(['consume', '--topic', topic, '--from-beginning', '--max-messages', '2',
             '--property', 'print.value=false', '--property', 'print.key=true'], b, check=0)
    assert p.stdout == 'k1\nk2\n'


def test_produce_reports_failed_lines(broker, topic):
    b = broker.bootstrap
    create(b, topic, 1)
    p = run(['produce', '--topic', topic, '--property', 'parse.key=true', '--format', 'json'], b,
            stdin='a\tb\nno separator here\nc\td\n')
    assert p.returncode == 1
    one_error_line(p, 'line 2', 'no key separator')
    j = json.loads(p.stdout)
    assert (j['records'], j['delivered'], j['failed']) == (3, 2, 1)
    assert [(r['key'], r['value']) for r in consume_json(b, topic)] == [('a', 'b'), ('c', 'd')]
    # ignore.error takes the whole line as the value, as Kafka does
    run(['produce', '--topic', topic, '--property', 'parse.key=true', '--property', 'ignore.error=true'],
        b, stdin='whole line\n', check=0)
    assert consume_json(b, topic)[-1]['key'] is None
    # null.marker
    run(['produce', '--topic', topic, '--property', 'parse.key=true', '--property', 'null.marker=NULL'],
        b, stdin='NULL\tx\nk\tNULL\n', check=0)
    last = consume_json(b, topic)[-2:]
    assert [(r['key'], r['value']) for r in last] == [(None, 'x'), ('k', None)]


def test_produce_too_large_record_fails_per_record(broker, topic):
    b = broker.bootstrap
    create(b, topic, 1, '--config', 'max.message.bytes=2000')
    stdin = 'small\n' + 'x' * 5000 + '\nsmall2\n'
    p = run(['produce', '--topic', topic, '--format', 'json', '--producer-property', 'batch.num.messages=1'],
            b, stdin=stdin)
    assert p.returncode == 1
    err = one_error_line(p, 'record 2 (line 2) failed')
    assert 'too large' in err.lower()
    j = json.loads(p.stdout)
    assert (j['delivered'], j['failed']) == (2, 1)
    assert [r['value'] for r in consume_json(b, topic)] == ['small', 'small2']


def test_produce_from_file_partition_acks_compression(broker, topic, tmp_path):
    b = broker.bootstrap
    create(b, topic, 3)
    f = tmp_path / 'in.txt'
    f.write_text(''.join('line-%d\n' % i for i in range(20)))
    j = runj(['produce', '--topic', topic, '--file', str(f), '--partition', '2', '--acks', '1'], b)
    assert j['partitions'] == [{'partition': 2, 'count': 20, 'first_offset': 0, 'last_offset': 19}]
    for codec in ('none', 'gzip', 'snappy', 'lz4', 'zstd'):
        for acks in ('all', '0'):
            payload = ''.join('%s-%s-%d-%s\n' % (codec, acks, i, 'y' * 50) for i in range(30))
            run(['produce', '--topic', topic, '--partition', '1', '--compression-type', codec,
                 '--acks', acks], b, stdin=payload, check=0)
    vals = [r['value'] for r in consume_json(b, topic, '--partition', '1')]
    assert len(vals) == 300
    assert vals[:30] == ['none-all-%d-%s' % (i, 'y' * 50) for i in range(30)]
    assert vals[-30:] == ['zstd-0-%d-%s' % (i, 'y' * 50) for i in range(30)]
    p = run(['produce', '--topic', topic, '--partition', '3'], b, stdin='x\n')
    assert p.returncode == 1
    one_error_line(p, 'has no partition 3')
    p = run(['produce', '--topic', topic, '--file', str(tmp_path / 'absent.txt')], b)
    assert p.returncode == 1
    one_error_line(p, 'cannot open')


def test_produce_murmur2_matches_java(broker, topic):
    b = broker.bootstrap
    create(b, topic, 5)
    keys = ['key-%d' % i for i in range(60)] + ['', 'a', 'ab', 'abc', 'abcd', 'ünïcode']
    stdin = ''.join('%s:%d\n' % (k, i) for i, k in enumerate(keys))
    for part in (None, 'murmur2'):
        extra = ['--partitioner', part] if part else []
        run(['produce', '--topic', topic, '--property', 'parse.key=true', '--property', 'key.separator=:']
            + extra, b, stdin=stdin, check=0)
    recs = consume_json(b, topic)
    assert len(recs) == 2 * len(keys)
    for r in recs:
        assert r['partition'] == java_murmur2_partition(r['key'], 5), r
    used = {r['partition'] for r in recs}
    assert len(used) == 5


def test_produce_partitioners(broker, topic):
    b = broker.bootstrap
    create(b, topic, 4)

    def counts(partitioner, n, keyed=False):
        stdin = ''.join(('k%d:' % (i % 3) if keyed else '') + 'v%d\n' % i for i in range(n))
        args = ['produce', '--topic', topic]
        if partitioner:
            args += ['--partitioner', partitioner]
        if keyed:
            args += ['--property', 'parse.key=true', '--property', 'key.separator=:']
        j = runj(args, b, stdin=stdin)
        assert j['delivered'] == n
        return {p['partition']: p['count'] for p in j['partitions']}

    assert counts('round-robin', 12) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert counts('round-robin', 8, keyed=True) == {0: 2, 1: 2, 2: 2, 3: 2}  # keys ignored
    # sticky: small keyless records stay on one partition (16 KiB per partition before moving)
    assert len(counts('sticky', 50)) == 1
    assert len(counts(None, 50)) == 1
    # keys ignored by sticky: three keys, one partition
    assert len(counts('sticky', 30, keyed=True)) == 1
    # sticky moves on after 16 KiB
    big = ''.join('%s\n' % ('z' * 1000) for _ in range(100))
    j = runj(['produce', '--topic', topic, '--partitioner', 'sticky'], b, stdin=big)
    # runs of 17 records (17 x 1000 bytes passes 16 KiB), the last run 100 - 5 x 17 = 15
    assert len(j['partitions']) >= 2
    rest = sorted(p['count'] % 17 for p in j['partitions'])
    assert rest[-1] in (0, 15) and all(r == 0 for r in rest[:-1]), j['partitions']
    # random: 400 records over 4 partitions reach all of them
    c = counts('random', 400)
    assert set(c) == {0, 1, 2, 3} and sum(c.values()) == 400


def test_produce_auto_create_and_missing_topic(start_broker):
    b = start_broker(auto__create__topics__enable='false').bootstrap
    t = unique_topic('nocreate')
    p = run(['produce', '--topic', t, '--timeout', '5000'], b, stdin='x\n')
    assert p.returncode == 1
    one_error_line(p, "topic '%s' does not exist" % t)


def test_produce_auto_creates_when_broker_allows(broker):
    t = unique_topic('autocreate')
    j = runj(['produce', '--topic', t], broker.bootstrap, stdin='x\ny\n')
    assert j['delivered'] == 2
    assert [r['value'] for r in consume_json(broker.bootstrap, t)] == ['x', 'y']


@pytest.mark.parametrize('flag', [['--enable-idempotence'], ['--transactional-id', 'cli-tx']])
def test_idempotence_and_transactions(broker, topic, flag):
    b = broker.bootstrap
    create(b, topic, 1)
    p = run(['produce', '--topic', topic] + flag, b, stdin='a\nb\n', timeout=90)
    if p.returncode == 0:
        assert [r['value'] for r in consume_json(b, topic, '--isolation-level', 'read_committed')] == ['a', 'b']
    else:
        # a broker without InitProducerId: one clean line, nothing written
        assert p.returncode == 1
        one_error_line(p, 'not supported')
        assert p.stdout == ''
        assert consume_json(b, topic) == []


def test_consume_start_positions(broker, topic):
    b = broker.bootstrap
    create(b, topic, 2)
    base = helpers.now_ms() - 100000
    recs = helpers.make_records(10, base_ts=base, ts_step=1000)
    helpers.produce_confluent(b, topic, recs, partition=0)
    helpers.produce_confluent(b, topic, recs[:4], partition=1)

    def offsets(*args):
        return [(r['partition'], r['offset']) for r in consume_json(b, topic, *args)]

    assert offsets('--partition', '0', '--offset', '7') == [(0, 7), (0, 8), (0, 9)]
    assert offsets('--partition', '0', '--offset', '-2') == [(0, 8), (0, 9)]
    assert offsets('--partition', '1', '--offset', 'earliest') == [(1, i) for i in range(4)]
    assert offsets('--offset', 'latest') == []
    # --from-beginning over both partitions
    got = offsets()
    assert sorted(got) == sorted([(0, i) for i in range(10)] + [(1, i) for i in range(4)])
    # by timestamp (ms and ISO forms): first record at or after it
    assert offsets('--partition', '0', '--timestamp', str(base + 5000))[0] == (0, 5)
    assert offsets('--partition', '0', '--timestamp', str(base + 4500))[0] == (0, 5)
    iso = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime((base + 6000) // 1000)) + \
        '.%03dZ' % ((base + 6000) % 1000)
    assert offsets('--partition', '0', '--timestamp', iso)[0] == (0, 6)
    # a time after every record: nothing
    assert offsets('--timestamp', str(base + 10 ** 7)) == []
    # json carries the record exactly
    r = consume_json(b, topic, '--partition', '0', '--offset', '3', '--max-messages', '1')[0]
    assert r['key'] == recs[3]['key'].decode() and r['value'] == recs[3]['value'].decode()
    assert r['timestamp'] == recs[3]['timestamp']
    assert r['headers'] == [{'key': k, 'value': v.decode()} for k, v in recs[3]['headers']]
    # default (no start flag): the end, so with --exit-at-end nothing
    p = run(['consume', '--topic', topic, '--exit-at-end'], b, check=0)
    assert p.stdout == '' and p.stderr == 'Processed a total of 0 messages\n'
    p = run(['consume', '--topic', topic, '--partition', '5'], b)
    assert p.returncode == 1
    one_error_line(p, 'has no partition 5')
    p = run(['consume', '--topic', topic, '--partition', 'x'], b)
    assert p.returncode == 2


def test_consume_max_messages_and_idle_timeout(broker, topic):
    b = broker.bootstrap
    create(b, topic, 1)
    run(['produce', '--topic', topic], b, stdin=''.join('m%d\n' % i for i in range(10)), check=0)
    p = run(['consume', '--topic', topic, '--from-beginning', '--max-messages', '4'], b, check=0)
    assert p.stdout == 'm0\nm1\nm2\nm3\n'
    t0 = time.monotonic()
    p = run(['consume', '--topic', topic, '--from-beginning', '--timeout-ms', '700'], b, check=0)
    assert p.stdout.splitlines() == ['m%d' % i for i in range(10)]
    assert time.monotonic() - t0 < 10


def test_consume_json_escaping(broker, topic, tmp_path):
    b = broker.bootstrap
    create(b, topic, 1)
    f = tmp_path / 'bin.txt'
    f.write_bytes('quote " backslash \\ tab\there é 日本\n'.encode() + b'bad \xff byte\n' +
                  b'ctl \x01\x1f end\n')
    run(['produce', '--topic', topic, '--file', str(f)], b, check=0)
    vals = [r['value'] for r in consume_json(b, topic)]
    assert vals == ['quote " backslash \\ tab\there é 日本', 'bad \u00ff byte', 'ctl \x01\x1f end']


def test_consume_sigint_exits_cleanly(broker, topic):
    b = broker.bootstrap
    create(b, topic, 1)
    run(['produce', '--topic', topic], b, stdin='a\nb\nc\n', check=0)
    proc = subprocess.Popen([RUNNEL, 'consume', '--topic', topic, '--from-beginning',
                             '--bootstrap-server', b], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        got = [proc.stdout.readline() for _ in range(3)]
        assert got == ['a\n', 'b\n', 'c\n']
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert err == 'Processed a total of 3 messages\n'


# ------------------------------------------------------------------ groups

@pytest.fixture
def group_broker(start_broker):
    """A broker without the 3 s initial rebalance delay; skips if it has no groups."""
    b = start_broker(group__initial__rebalance__delay__ms=0)
    p = run('group list', b.bootstrap)
    if p.returncode == 1 and 'does not support consumer groups' in p.stderr:
        one_error_line(p)
        pytest.skip('broker has no consumer groups yet')
    assert p.returncode == 0, p.stderr
    return b


def test_groups_without_broker_support_fail_cleanly(broker):
    p = run('group list', broker.bootstrap)
    if p.returncode == 0:
        pytest.skip('broker supports consumer groups')
    one_error_line(p, 'does not support consumer groups')
    for args in ('group describe --group g', 'group delete --group g',
                 'group reset-offsets --group g --all-topics --to-earliest'):
        p = run(args, broker.bootstrap, timeout=20)
        assert p.returncode == 1
        one_error_line(p, 'does not support consumer groups')


def test_group_consume_describe_reset_delete(group_broker):
    b = group_broker.bootstrap
    topic = unique_topic('grp')
    create(b, topic, 2)
    run(['produce', '--topic', topic, '--partition', '0'], b, stdin=''.join('a%d\n' % i for i in range(6)), check=0)
    run(['produce', '--topic', topic, '--partition', '1'], b, stdin=''.join('b%d\n' % i for i in range(4)), check=0)
    g = unique_topic('g')
    p = run(['consume', '--topic', topic, '--group', g, '--from-beginning', '--exit-at-end'], b, check=0)
    assert sorted(p.stdout.split()) == sorted(['a%d' % i for i in range(6)] + ['b%d' % i for i in range(4)])

    groups = runj(['group', 'list'], b)['groups']
    assert {'group': g, 'state': 'Empty', 'simple': False} in groups
    d = runj(['group', 'describe', '--group', g], b)
    assert d['group'] == g and d['state'] == 'Empty' and d['members'] == []
    assert [(o['partition'], o['current_offset'], o['log_end_offset'], o['lag']) for o in d['offsets']] == \
        [(0, 6, 6, 0), (1, 4, 4, 0)]
    p = run(['group', 'describe', '--group', g], b, check=0)
    hdr = p.stdout.splitlines()[2]
    assert hdr.split() == ['TOPIC', 'PARTITION', 'CURRENT-OFFSET', 'LOG-END-OFFSET', 'LAG',
                           'CONSUMER-ID', 'HOST', 'CLIENT-ID']

    # dry run changes nothing
    j = runj(['group', 'reset-offsets', '--group', g, '--topic', topic, '--shift-by', '-2'], b)
    assert j['executed'] is False
    assert [(o['partition'], o['previous_offset'], o['new_offset']) for o in j['offsets']] == \
        [(0, 6, 4), (1, 4, 2)]
    assert [o['current_offset'] for o in runj(['group', 'describe', '--group', g], b)['offsets']] == [6, 4]
    # execute
    j = runj(['group', 'reset-offsets', '--group', g, '--topic', '%s:0' % topic, '--to-offset', '99',
              '--execute'], b)
    assert [(o['partition'], o['new_offset']) for o in j['offsets']] == [(0, 6)]  # clamped to the end
    runj(['group', 'reset-offsets', '--group', g, '--all-topics', '--to-earliest', '--execute'], b)
    d = runj(['group', 'describe', '--group', g], b)
    assert [(o['current_offset'], o['lag']) for o in d['offsets']] == [(0, 6), (0, 4)]
    runj(['group', 'reset-offsets', '--group', g, '--topic', topic, '--shift-by', '3', '--execute'], b)
    # the group resumes from the committed offsets
    p = run(['consume', '--topic', topic, '--group', g, '--exit-at-end'], b, check=0)
    assert sorted(p.stdout.split()) == ['a3', 'a4', 'a5', 'b3']
    runj(['group', 'reset-offsets', '--group', g, '--topic', topic, '--to-latest', '--execute'], b)
    assert [o['lag'] for o in runj(['group', 'describe', '--group', g], b)['offsets']] == [0, 0]

    # delete, then it is gone
    assert runj(['group', 'delete', '--group', g], b) == {'deleted': [g]}
    p = run(['group', 'describe', '--group', g], b)
    assert p.returncode == 1
    one_error_line(p, "group '%s' does not exist" % g)
    p = run(['group', 'delete', '--group', g], b)
    assert p.returncode == 1
    one_error_line(p, "group '%s' does not exist" % g)


def test_group_consume_sigint_commits(group_broker):
    b = group_broker.bootstrap
    topic = unique_topic('grpsig')
    create(b, topic, 1)
    run(['produce', '--topic', topic], b, stdin='x\ny\nz\n', check=0)
    g = unique_topic('gs')
    proc = subprocess.Popen([RUNNEL, 'consume', '--topic', topic, '--group', g, '--from-beginning',
                             '--bootstrap-server', b], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert [proc.stdout.readline() for _ in range(3)] == ['x\n', 'y\n', 'z\n']
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err == 'Processed a total of 3 messages\n'
    d = runj(['group', 'describe', '--group', g], b)
    assert [o['current_offset'] for o in d['offsets']] == [3]
    # an active group refuses resets
    proc = subprocess.Popen([RUNNEL, 'consume', '--topic', topic, '--group', g, '--bootstrap-server', b],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        helpers.wait_for(lambda: runj(['group', 'describe', '--group', g], b)['state'] == 'Stable',
                         timeout=20, what='group Stable')
        d = runj(['group', 'describe', '--group', g], b)
        assert len(d['members']) == 1
        assert d['members'][0]['partitions'] == [{'topic': topic, 'partition': 0}]
        assert d['offsets'][0]['consumer_id'] == d['members'][0]['consumer_id']
        p = run(['group', 'reset-offsets', '--group', g, '--topic', topic, '--to-earliest'], b)
        assert p.returncode == 1
        one_error_line(p, 'inactive')
        p = run(['group', 'delete', '--group', g], b)
        assert p.returncode == 1
        one_error_line(p, 'active members')
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


# ------------------------------------------------------------------ perf

def test_perf_produce_and_consume(broker, topic):
    b = broker.bootstrap
    create(b, topic, 2)
    j = runj(['perf', 'produce', '--topic', topic, '--num-records', '5000', '--record-size', '200',
              '--throughput', '-1', '--producer-props', 'acks=1', 'linger.ms=2'], b)
    assert j['records'] == 5000 and j['failed'] == 0 and j['bytes'] == 5000 * 200
    lat = j['latency_ms']
    assert 0 <= lat['p50'] <= lat['p95'] <= lat['p99'] <= lat['p99_9'] <= lat['max']
    assert lat['avg'] <= lat['max'] and j['records_per_sec'] > 0 and j['mb_per_sec'] > 0
    lo_hi = [helpers.watermarks(b, topic, p) for p in (0, 1)]
    assert sum(hi - lo for lo, hi in lo_hi) == 5000

    # throttled: ~2 s at 1500 records/s, with progress lines at least every second
    t0 = time.monotonic()
    p = run(['perf', 'produce', '--topic', topic, '--num-records', '3000', '--record-size', '50',
             '--throughput', '1500', '--reporting-interval', '500'], b, check=0)
    took = time.monotonic() - t0
    assert 1.7 < took < 10, took
    lines = p.stdout.splitlines()
    progress = [l for l in lines[:-1] if l.endswith('ms max latency.')]
    assert len(progress) >= 3, lines
    assert lines[-1].startswith('3000 records sent, ') and '99.9th.' in lines[-1]
    assert sum(int(l.split()[0]) for l in progress) == 3000

    # consume everything (8000 records), then a fixed count
    j = runj(['perf', 'consume', '--topic', topic], b)
    assert j['records'] == 8000 and j['bytes'] == 5000 * 200 + 3000 * 50
    j = runj(['perf', 'consume', '--topic', topic, '--messages', '1000'], b)
    assert j['records'] == 1000 and j['latency_kind'] == 'end_to_end'
    p = run(['perf', 'consume', '--topic', topic, '--messages', '100'], b, check=0)
    assert p.stdout.splitlines()[-1].startswith('100 records received, ')
    # asking for more than there is: exit 1 after --timeout without records
    p = run(['perf', 'consume', '--topic', topic, '--messages', '9000', '--timeout', '3000'], b)
    assert p.returncode == 1
    assert 'only 8000 of 9000 records' in p.stderr
