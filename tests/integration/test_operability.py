"""Operability of runnel-server: the Prometheus metrics endpoint and
--check-config / --version / --help."""

import re
import subprocess
import urllib.error
import urllib.request

from conftest import SERVER, free_port, unique_topic
from helpers import consume_confluent, create_topic, make_records, produce_confluent


def scrape(port, path='/metrics'):
    with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=5) as r:
        assert r.status == 200
        assert r.headers['Content-Type'].startswith('text/plain')
        return r.read().decode()


def metric(text, name, **labels):
    """The value of one sample, or None."""
    want = ','.join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith('#'):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, 'malformed exposition line: %r' % line
        got = ','.join(sorted((m.group(3) or '').split(','))) if m.group(3) else ''
        if m.group(1) == name and got == want:
            return float(m.group(4))
    return None


def test_metrics_after_known_traffic(start_broker):
    mport = free_port()
    b = start_broker(overrides={'metrics.listener': '127.0.0.1:%d' % mport})
    assert 'metrics at http://127.0.0.1:%d/metrics' % mport in b.log_text()
    t = unique_topic('metrics')
    create_topic(b.bootstrap, t, partitions=2)
    recs = make_records(50, 'm', value_size=100)
    produce_confluent(b.bootstrap, t, recs, conf={'linger.ms': 0, 'batch.num.messages': 1})
    got = consume_confluent(b.bootstrap, t, count=50)
    assert len(got) == 50
    text = scrape(mport)
    assert metric(text, 'runnel_topic_messages_in_total', topic=t) == 50
    bytes_in = metric(text, 'runnel_topic_bytes_in_total', topic=t)
    bytes_out = metric(text, 'runnel_topic_bytes_out_total', topic=t)
    assert bytes_in >= 50 * 100 and bytes_out >= bytes_in  # everything read back at least once
    assert metric(text, 'runnel_log_size_bytes', topic=t, partition='0') == bytes_in
    assert metric(text, 'runnel_log_size_bytes', topic=t, partition='1') == 0
    produces = metric(text, 'runnel_requests_total', api='Produce')
    assert produces >= 50  # one batch per request with batch.num.messages=1
    assert metric(text, 'runnel_request_latency_seconds_count', api='Produce') == produces
    assert metric(text, 'runnel_request_latency_seconds_bucket', api='Produce', le='+Inf') == produces
    assert metric(text, 'runnel_requests_total', api='Fetch') >= 1
    assert metric(text, 'runnel_requests_total', api='CreateTopics') == 1
    assert metric(text, 'runnel_partitions') >= 2
    assert metric(text, 'runnel_under_replicated_partitions') == 0
    assert metric(text, 'runnel_connections') >= 0
    rss = metric(text, 'process_resident_memory_bytes')
    assert 1 << 20 < rss < 1 << 30
    # Counters only grow.
    produce_confluent(b.bootstrap, t, make_records(5, 'm2'))
    text2 = scrape(mport)
    assert metric(text2, 'runnel_topic_messages_in_total', topic=t) == 55
    assert metric(text2, 'runnel_requests_total', api='Produce') > produces
    try:
        scrape(mport, '/nothing')
        assert False, 'expected 404'
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_metrics_off_by_default(start_broker):
    b = start_broker()
    assert 'metrics at' not in b.log_text()


def test_check_config_prints_effective_config_with_sources():
    r = subprocess.run([SERVER, '--check-config', '--override', 'num.partitions=3',
                        '--override', 'log.retention.hours=1'],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        rows[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else '')
    assert rows['num.partitions'] == ('static', '3')
    assert rows['log.retention.hours'] == ('static', '1')
    assert rows['log.segment.bytes'] == ('default', '1073741824')
    assert rows['auto.create.topics.enable'] == ('default', 'true')


def test_check_config_refuses_bad_value():
    r = subprocess.run([SERVER, '--check-config', '--override', 'num.partitions=abc'],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert 'num.partitions' in r.stderr and 'abc' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_version_and_help():
    r = subprocess.run([SERVER, '--version'], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.match(r'^runnel-server \d+\.\d+\.\d+$', r.stdout.strip())
    r = subprocess.run([SERVER, '--help'], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and 'usage: runnel-server' in r.stdout and '--override' in r.stdout
