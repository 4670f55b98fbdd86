"""Process lifecycle: start/stop log lines, clean exit on SIGTERM and SIGINT
(also with clients connected and a fetch parked), server.properties plus
--override precedence, refusal of a bad config value."""

import os
import re
import signal
import subprocess
import time

import pytest

import kafka_raw as kr
from conftest import SERVER, Broker, unique_topic
from helpers import (assert_records, consume_confluent, create_topic, make_records,
                     produce_confluent, topic_partitions, wait_for)


def _check_start_stop(b, sig):
    text = b.log_text()
    start_lines = [line for line in text.splitlines()
                   if ('127.0.0.1:%d' % b.port) in line and re.search(r'\d+\.\d+', line)]
    assert start_lines, 'no start line with version and listener:\n' + text[-3000:]
    topic = unique_topic('life')
    create_topic(b.bootstrap, topic)
    recs = make_records(5, 'life')
    produce_confluent(b.bootstrap, topic, recs)
    since = b.log_size()
    rc = b.stop(sig)
    assert rc == 0
    tail = b.log_text(since)
    assert re.search(r'stop|shut', tail, re.I), 'no stop line after %s:\n%s' % (
        signal.Signals(sig).name, tail[-3000:])
    b.start()
    assert_records(consume_confluent(b.bootstrap, topic, count=5), recs)


def test_sigterm_clean_shutdown(start_broker):
    _check_start_stop(start_broker(), signal.SIGTERM)


def test_sigint_clean_shutdown(start_broker):
    _check_start_stop(start_broker(), signal.SIGINT)


def test_shutdown_with_connected_clients_and_parked_fetch(start_broker):
    b = start_broker()
    t = unique_topic('parked')
    create_topic(b.bootstrap, t)
    idle = kr.Conn.to(b.bootstrap)
    parked = kr.Conn.to(b.bootstrap)
    partial = kr.Conn.to(b.bootstrap)
    try:
        parked.send(kr.FETCH, 5, kr.fetch_body(t, 0, 0, max_wait_ms=30000, min_bytes=1))
        partial.send_raw(b'\0\0\0\x40\0\x12')  # half a frame
        time.sleep(0.2)
        start = time.monotonic()
        assert b.stop(signal.SIGTERM, deadline=15) == 0
        assert time.monotonic() - start < 15
    finally:
        for c in (idle, parked, partial):
            c.close()


def test_properties_file_and_override_precedence(start_broker, tmp_path):
    props = tmp_path / 'server.properties'
    props.write_text('# test config\n\nnum.partitions=2\nmessage.max.bytes = 5000\n'
                     'auto.create.topics.enable=true\n')
    b = start_broker(config_file=str(props), message__max__bytes=6000)
    t = unique_topic('props')
    produce_confluent(b.bootstrap, t, make_records(1, 'p'), partition=None)
    assert wait_for(lambda: topic_partitions(b.bootstrap, t), 10) == 2
    from confluent_kafka.admin import ConfigResource
    from helpers import admin, wait_futures
    fs = admin(b.bootstrap).describe_configs([ConfigResource(ConfigResource.Type.BROKER, '0')])
    cfg = list(wait_futures(fs).values())[0]
    assert cfg['message.max.bytes'].value == '6000'
    assert cfg['num.partitions'].value == '2'


def test_example_config_file_parses(start_broker):
    """config/server.properties from the repo starts a broker (our overrides
    for port and data dir win)."""
    here = os.path.dirname(os.path.abspath(__file__))
    cfg = os.path.join(here, '..', '..', 'config', 'server.properties')
    if not os.path.isfile(cfg):
        pytest.fail('config/server.properties missing')
    b = start_broker(config_file=cfg)
    t = unique_topic('example')
    create_topic(b.bootstrap, t)
    recs = make_records(3, 'ex')
    produce_confluent(b.bootstrap, t, recs)
    assert_records(consume_confluent(b.bootstrap, t, count=3), recs)


@pytest.mark.parametrize('key,value', [('num.partitions', 'abc'), ('message.max.bytes', '-5'),
                                       ('log.segment.bytes', 'lots')])
def test_bad_config_value_refused(key, value):
    if os.environ.get('RUNNEL_BOOTSTRAP'):
        pytest.skip('needs a broker started by the suite')
    b = Broker({key: value})
    try:
        proc = subprocess.Popen(b.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=b.tmp)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail('broker started with %s=%s:\n%s' % (key, value, out.decode()[-2000:]))
        assert proc.returncode != 0
        assert key in out.decode(), 'no log line naming the bad setting:\n' + out.decode()[-2000:]
    finally:
        b.cleanup()


def test_server_binary_exists():
    if os.environ.get('RUNNEL_BOOTSTRAP'):
        pytest.skip('external broker')
    assert os.access(SERVER, os.X_OK), '%s not built' % SERVER
