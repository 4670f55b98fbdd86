"""Client wrappers shared by the integration tests: produce/consume with
confluent-kafka (librdkafka), kafka-python and kcat, normalised to one
record shape so tests can compare every key, value, header and timestamp."""

import json
import os
import subprocess
import time
import uuid
from collections import namedtuple

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient

import kafka_raw

KCAT = os.environ.get('KCAT', 'kcat')

TS_CREATE = 'create'
TS_APPEND = 'append'

# offset, key, value, headers [(str, bytes|None)], timestamp ms, ts type
Rec = namedtuple('Rec', 'offset key value headers timestamp ts_type')


def now_ms():
    return int(time.time() * 1000)


def wait_for(fn, timeout=10.0, interval=0.05, what='condition'):
    """Poll fn() until it returns a truthy value; fail after timeout."""
    end = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > end:
            raise AssertionError('timed out after %.1fs waiting for %s (last: %r)'
                                 % (timeout, what, last))
        time.sleep(interval)


def make_records(n, prefix='r', base_ts=None, headers=True, value_size=0, ts_step=1):
    """n records as dicts key/value/headers/timestamp, every field distinct."""
    if base_ts is None:
        base_ts = now_ms() - 60000
    out = []
    for i in range(n):
        v = ('%s-value-%d' % (prefix, i)).encode()
        if value_size and len(v) < value_size:
            v = v + (b'%d' % (i % 10)) * (value_size - len(v))
        h = [('h1', ('%s-%d' % (prefix, i)).encode()), ('idx', str(i).encode())] if headers else []
        out.append({'key': ('%s-key-%d' % (prefix, i)).encode(), 'value': v,
                    'headers': h, 'timestamp': base_ts + i * ts_step})
    return out


def assert_records(got, sent, first_offset=0, check_ts=True, ts_type=TS_CREATE):
    """Every record: dense offsets from first_offset, exact key/value/headers
    and (optionally) timestamp and type."""
    assert len(got) == len(sent), 'got %d records, expected %d' % (len(got), len(sent))
    for i, (g, s) in enumerate(zip(got, sent)):
        where = 'record %d' % i
        assert g.offset == first_offset + i, '%s: offset %d != %d' % (where, g.offset, first_offset + i)
        assert g.key == s['key'], '%s: key %r != %r' % (where, g.key, s['key'])
        assert g.value == s['value'], '%s: value %r != %r' % (where, g.value[:80] if g.value else g.value,
                                                               s['value'][:80] if s['value'] else s['value'])
        assert list(g.headers) == list(s.get('headers') or []), \
            '%s: headers %r != %r' % (where, g.headers, s.get('headers'))
        if check_ts:
            assert g.timestamp == s['timestamp'], '%s: timestamp %r != %r' % (where, g.timestamp, s['timestamp'])
            assert g.ts_type == ts_type, '%s: timestamp type %r != %r' % (where, g.ts_type, ts_type)


# ---------------------------------------------------------------- confluent-kafka

def confluent_conf(bootstrap, **extra):
    conf = {'bootstrap.servers': bootstrap, 'socket.timeout.ms': 10000,
            'api.version.request.timeout.ms': 5000}
    conf.update(extra)
    return conf


def produce_confluent(bootstrap, topic, records, partition=0, conf=None, timeout=60.0,
                      expect_errors=False):
    """Produce records (dicts) with librdkafka; returns one delivery result
    (error, partition, offset, timestamp) per record, in send order. Fails on
    any delivery error unless expect_errors."""
    c = confluent_conf(bootstrap, **{'linger.ms': 5, 'message.timeout.ms': int(timeout * 1000) - 1000})
    c.update(conf or {})
    p = ck.Producer(c)
    results = [None] * len(records)

    def cb_for(i):
        def cb(err, msg):
            results[i] = (err, msg.partition(), msg.offset(), msg.timestamp())
        return cb
    for i, r in enumerate(records):
        kw = {'value': r['value'], 'key': r['key'], 'on_delivery': cb_for(i)}
        if partition is not None:
            kw['partition'] = r.get('partition', partition)
        if r.get('headers'):
            kw['headers'] = r['headers']
        if r.get('timestamp') is not None:
            kw['timestamp'] = r['timestamp']
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, '%d records still undelivered after %.0fs' % (left, timeout)
    assert all(r is not None for r in results), 'missing delivery reports'
    if not expect_errors:
        errs = [r[0] for r in results if r[0] is not None]
        assert not errs, 'delivery errors: %s' % errs[:5]
    return results


def _confluent_rec(m):
    tstype, ts = m.timestamp()
    t = {ck.TIMESTAMP_CREATE_TIME: TS_CREATE, ck.TIMESTAMP_LOG_APPEND_TIME: TS_APPEND}.get(tstype, tstype)
    return Rec(m.offset(), m.key(), m.value(), list(m.headers() or []), ts, t)


def confluent_consumer(bootstrap, **extra):
    c = confluent_conf(bootstrap, **{'group.id': 'runnel-it-' + uuid.uuid4().hex[:8],
                                     'enable.auto.commit': False,
                                     'enable.auto.offset.store': False,
                                     'enable.partition.eof': True,
                                     'auto.offset.reset': 'earliest'})
    c.update(extra)
    return ck.Consumer(c)


def consume_confluent(bootstrap, topic, partition=0, offset=ck.OFFSET_BEGINNING, count=None,
                      timeout=30.0, conf=None):
    """Read one partition from offset (assign, no group) until count records
    and end of partition were seen, or (count None) until end of partition.
    Returns [Rec]; raises on timeout with what was read."""
    c = confluent_consumer(bootstrap, **(conf or {}))
    got = []
    errors = []
    try:
        c.assign([ck.TopicPartition(topic, partition, offset)])
        end = time.monotonic() + timeout
        eof = False
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                    eof = True
                    if count is None or len(got) >= count:
                        break
                else:
                    errors.append(m.error())
                continue
            eof = False
            got.append(_confluent_rec(m))
        else:
            raise AssertionError('confluent consumer: timed out after %.0fs with %d records '
                                 '(wanted %s, eof %s), errors %s' % (timeout, len(got), count,
                                                                      eof, errors[:5]))
    finally:
        c.close()
    return got


_ADMINS = {}


def admin(bootstrap):
    """One AdminClient per bootstrap, kept alive: a client dropped while its
    futures are pending fails them with _DESTROY."""
    a = _ADMINS.get(bootstrap)
    if a is None:
        a = _ADMINS[bootstrap] = AdminClient(confluent_conf(bootstrap))
    return a


def drop_admin(bootstrap):
    _ADMINS.pop(bootstrap, None)


def wait_futures(fs, timeout=20.0):
    """{key: future} -> {key: result or exception}."""
    out = {}
    for k, f in fs.items():
        try:
            out[k] = f.result(timeout=timeout)
        except Exception as e:  # noqa: the exception is the result
            out[k] = e
    return out


def kafka_exc_code(e):
    """Kafka error code of a confluent admin exception (KafkaException)."""
    assert isinstance(e, ck.KafkaException), 'expected an error, got %r' % (e,)
    return e.args[0].code()


def create_topic(bootstrap, name, partitions=1, config=None, timeout=20.0):
    from confluent_kafka.admin import NewTopic
    fs = admin(bootstrap).create_topics([NewTopic(name, partitions, 1, config=config or {})],
                                        operation_timeout=10)
    res = wait_futures(fs, timeout)[name]
    assert res is None, 'create_topics(%s) failed: %r' % (name, res)
    wait_for(lambda: topic_partitions(bootstrap, name) == partitions, 10,
             what='topic %s with %d partitions in metadata' % (name, partitions))
    return name


def topic_partitions(bootstrap, name):
    """Number of partitions Metadata reports for a topic (None if absent)."""
    with kafka_raw.Conn.to(bootstrap) as c:
        # v4+ with allow_auto_topic_creation=false: v0-v3 would create the topic
        md = kafka_raw.parse_metadata(c.request(kafka_raw.METADATA, 4,
                                                kafka_raw.metadata_body(4, [name], False)), 4)
    t = md['topics'].get(name)
    if t is None or t[0] != 0:
        return None
    return len(t[1])


def watermarks(bootstrap, topic, partition=0):
    c = confluent_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(ck.TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


# ---------------------------------------------------------------- kafka-python

def kp_producer(bootstrap, **cfg):
    from kafka import KafkaProducer
    base = dict(bootstrap_servers=bootstrap, request_timeout_ms=10000, max_block_ms=15000,
                linger_ms=5)
    base.update(cfg)
    return KafkaProducer(**base)


def produce_kafka_python(bootstrap, topic, records, partition=0, timeout=30.0, **cfg):
    """Produce with kafka-python; returns [RecordMetadata] in send order."""
    p = kp_producer(bootstrap, **cfg)
    try:
        futs = []
        for r in records:
            futs.append(p.send(topic, value=r['value'], key=r['key'],
                               headers=r.get('headers') or None,
                               partition=r.get('partition', partition),
                               timestamp_ms=r.get('timestamp')))
        p.flush(timeout)
        return [f.get(timeout=timeout) for f in futs]
    finally:
        p.close(5)


def kp_consumer(bootstrap, **cfg):
    from kafka import KafkaConsumer
    base = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset='earliest', request_timeout_ms=15000,
                fetch_max_wait_ms=200)
    base.update(cfg)
    return KafkaConsumer(**base)


def consume_kafka_python(bootstrap, topic, partition=0, offset=None, count=None,
                         timeout=30.0, **cfg):
    """Read one partition with kafka-python (assign, no group) from offset
    (None = beginning) until count records (count None: up to the end
    offset at the time of the call)."""
    from kafka import TopicPartition
    c = kp_consumer(bootstrap, **cfg)
    tp = TopicPartition(topic, partition)
    got = []
    try:
        c.assign([tp])
        if offset is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, offset)
        if count is None:
            end_off = c.end_offsets([tp])[tp]
            start = c.position(tp)
            count = max(end_off - start, 0)
        end = time.monotonic() + timeout
        while len(got) < count:
            if time.monotonic() > end:
                raise AssertionError('kafka-python consumer: timed out after %.0fs with %d of %d '
                                     'records' % (timeout, len(got), count))
            batch = c.poll(timeout_ms=300)
            for m in batch.get(tp, []):
                got.append(Rec(m.offset, m.key, m.value, list(m.headers or []), m.timestamp,
                               TS_APPEND if m.timestamp_type == 1 else TS_CREATE))
    finally:
        c.close()
    return got


# ---------------------------------------------------------------- kcat

def kcat(args, stdin=None, timeout=60.0, check=True):
    p = subprocess.run([KCAT] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check:
        assert p.returncode == 0, 'kcat %s exited %d\nstdout: %s\nstderr: %s' % (
            ' '.join(args), p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p


def produce_kcat(bootstrap, topic, records, partition=0, headers=(), compression=None,
                 extra=()):
    """records: [(key str, value str)] produced as 'key:value' lines with -K:
    and the same -H headers on every record."""
    args = ['-b', bootstrap, '-P', '-t', topic, '-p', str(partition), '-K:']
    for hk, hv in headers:
        args += ['-H', '%s=%s' % (hk, hv)]
    if compression:
        args += ['-z', compression]
    args += list(extra)
    data = ''.join('%s:%s\n' % kv for kv in records).encode()
    return kcat(args, stdin=data)


def consume_kcat(bootstrap, topic, partition=0, offset='beginning', count=None, extra=()):
    """kcat -C -J -e: returns [Rec]."""
    args = ['-b', bootstrap, '-C', '-t', topic, '-p', str(partition), '-o', str(offset),
            '-e', '-J', '-q']
    if count is not None:
        args += ['-c', str(count)]
    args += list(extra)
    p = kcat(args)
    out = []
    for line in p.stdout.decode().splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        hs = j.get('headers') or []
        headers = [(hs[i], None if hs[i + 1] is None else hs[i + 1].encode())
                   for i in range(0, len(hs), 2)]
        key = j.get('key')
        val = j.get('payload')
        tstype = {'create': TS_CREATE, 'logappend': TS_APPEND}.get(j.get('tstype'), j.get('tstype'))
        out.append(Rec(j['offset'], None if key is None else key.encode(),
                       None if val is None else val.encode(), headers, j.get('ts'), tstype))
    return out


def kcat_metadata(bootstrap, topic=None):
    args = ['-b', bootstrap, '-L', '-J']
    if topic:
        args += ['-t', topic]
    return json.loads(kcat(args, timeout=30).stdout.decode())


# ---------------------------------------------------------------- raw fetch

def raw_fetch_batches(bootstrap, topic, partition=0, offset=0, max_rounds=1000):
    """Every stored batch from offset to the high watermark, via raw Fetch v5
    (so tests can see codecs, timestamp types and batch boundaries)."""
    out = []
    with kafka_raw.Conn.to(bootstrap) as c:
        for _ in range(max_rounds):
            f = kafka_raw.parse_fetch(c.request(kafka_raw.FETCH, 5, kafka_raw.fetch_body(
                topic, partition, offset, max_wait_ms=0, min_bytes=0)))
            p = f[(topic, partition)]
            assert p['error'] == 0, 'fetch error %d' % p['error']
            batches = [b for b in kafka_raw.parse_batches(p['records'])
                       if b.base_offset + b.last_offset_delta >= offset]
            if not batches:
                assert offset >= p['high_watermark'], \
                    'no batch returned at offset %d below high watermark %d' % (
                        offset, p['high_watermark'])
                return out
            out.extend(batches)
            offset = batches[-1].base_offset + batches[-1].last_offset_delta + 1
    raise AssertionError('raw fetch did not reach the end')
