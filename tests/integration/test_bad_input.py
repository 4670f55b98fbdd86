"""Bad input on raw sockets: oversized, truncated and garbage frames, unknown
API keys and versions, corrupt batches. The broker answers with a Kafka
error code or closes that one connection; it never crashes, other
connections keep working and stored data stays intact."""

import os
import socket
import struct

import pytest

import kafka_raw as kr
from conftest import unique_topic
from helpers import (assert_records, consume_confluent, create_topic, make_records, now_ms,
                     produce_confluent, watermarks)


@pytest.fixture(scope='module')
def good(broker):
    """A topic with known records that must survive everything below."""
    t = unique_topic('good')
    create_topic(broker.bootstrap, t)
    recs = make_records(20, 'good')
    produce_confluent(broker.bootstrap, t, recs)
    return t, recs


@pytest.fixture(autouse=True)
def still_serving(broker):
    yield
    assert broker.alive(), 'broker process died'
    with kr.Conn.to(broker.bootstrap) as c:
        err, keys = kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)
        assert err == 0 and kr.PRODUCE in keys


def raw_socket(broker):
    return socket.create_connection((broker.host, broker.port), timeout=10)


def closed_by_peer(sock, timeout=5.0):
    sock.settimeout(timeout)
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def header(api_key, version, corr=1, client_id=b'bad'):
    return struct.pack('>hhih', api_key, version, corr, len(client_id)) + client_id


def frame(payload):
    return struct.pack('>i', len(payload)) + payload


def test_frame_over_socket_request_max_bytes(start_broker):
    b = start_broker(socket__request__max__bytes=2000)
    s = raw_socket(b)
    try:
        s.sendall(struct.pack('>i', 5000) + header(kr.API_VERSIONS, 0) + b'x' * 100)
        assert closed_by_peer(s), 'oversized frame did not close the connection'
    finally:
        s.close()
    # a request under the limit on another connection is served
    with kr.Conn.to(b.bootstrap) as c:
        assert kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)[0] == 0
    assert b.alive()


@pytest.mark.parametrize('size', [0x7fffffff, -1, -100000, 0])
def test_absurd_frame_sizes_close(broker, size):
    s = raw_socket(broker)
    try:
        s.sendall(struct.pack('>i', size) + b'\0' * 16)
        assert closed_by_peer(s), 'frame size %d did not close the connection' % size
    finally:
        s.close()


def test_truncated_frame_then_close(broker, good):
    for cut in (1, 3, 4, 10):
        s = raw_socket(broker)
        payload = header(kr.METADATA, 1) + struct.pack('>i', -1)
        s.sendall(frame(payload)[:cut])
        s.close()
    t, recs = good
    assert_records(consume_confluent(broker.bootstrap, t, count=20), recs)


def test_stalled_partial_frame_does_not_block_others(broker):
    s = raw_socket(broker)
    try:
        s.sendall(struct.pack('>i', 200) + header(kr.API_VERSIONS, 0))  # never completed
        for _ in range(3):
            with kr.Conn.to(broker.bootstrap, timeout=5) as c:
                assert kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)[0] == 0
    finally:
        s.close()


@pytest.mark.parametrize('garbage', [
    b'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + b'\x11' * 64,   # a TLS hello
    struct.pack('>i', 12) + os.urandom(12),
    struct.pack('>i', 3) + b'\x00\x12\x00',                        # shorter than a header
    struct.pack('>i', 10) + struct.pack('>hhih', 18, 0, 1, 50),    # client id longer than frame
], ids=['http', 'tls', 'random', 'short-header', 'lying-client-id'])
def test_garbage_closes_connection(broker, garbage):
    s = raw_socket(broker)
    try:
        s.sendall(garbage)
        assert closed_by_peer(s)
    finally:
        s.close()


@pytest.mark.parametrize('api_key', [999, 32767, -1, 5000])
def test_unknown_api_key_closes(broker, api_key):
    s = raw_socket(broker)
    try:
        s.sendall(frame(header(api_key, 0, corr=5) + b'\0' * 8))
        assert closed_by_peer(s), 'unknown API key %d: connection not closed' % api_key
    finally:
        s.close()


def test_unsupported_version_of_known_api_closes(broker):
    s = raw_socket(broker)
    try:
        s.sendall(frame(header(kr.METADATA, 99, corr=5) + b'\0' * 8))
        assert closed_by_peer(s)
    finally:
        s.close()


@pytest.mark.parametrize('version', [99, 5, 32767])
def test_api_versions_unknown_version(broker, version):
    """A v0-format body with UNSUPPORTED_VERSION and the API list; the
    connection stays usable for the client's retry at a lower version."""
    with kr.Conn.to(broker.bootstrap) as c:
        c.send(kr.API_VERSIONS, version, b'', corr=4242, flexible=version >= 3)
        # ApiVersions answers use response header v0 at every version
        corr, r = c.recv()
        assert corr == 4242
        err, keys = kr.parse_api_versions(r, 0)
        assert err == kr.UNSUPPORTED_VERSION
        assert kr.API_VERSIONS in keys and keys[kr.API_VERSIONS][0] == 0
        assert kr.PRODUCE in keys and kr.FETCH in keys
        err, keys2 = kr.parse_api_versions(c.request(kr.API_VERSIONS, 0, b''), 0)
        assert err == 0 and keys2 == keys


def test_truncated_request_body_closes(broker):
    s = raw_socket(broker)
    try:
        # Metadata v1 claiming 5 topics but carrying none
        s.sendall(frame(header(kr.METADATA, 1) + struct.pack('>i', 5)))
        assert closed_by_peer(s)
    finally:
        s.close()


# ---------------------------------------------------------------- bad batches

def produce_raw(broker, topic, records_blob, version=3, conn=None):
    body = kr.produce_body(version, topic, 0, records_blob, acks=1)
    if conn is not None:
        return kr.parse_produce(conn.request(kr.PRODUCE, version, body), version)[(topic, 0)]
    with kr.Conn.to(broker.bootstrap) as c:
        return kr.parse_produce(c.request(kr.PRODUCE, version, body), version)[(topic, 0)]


def good_batch(n=3, prefix=b'ok', codec=kr.CODEC_NONE):
    ts = now_ms() - 1000
    return kr.build_batch([(prefix + b'-k%d' % i, prefix + b'-v%d' % i, [('h', b'%d' % i)], ts + i)
                           for i in range(n)], base_timestamp=ts, codec=codec)


def flip(blob, pos):
    b = bytearray(blob)
    b[pos] ^= 0x5A
    return bytes(b)


def set_count(blob, count):
    b = bytearray(blob)
    struct.pack_into('>i', b, 57, count)
    # keep the CRC right so only the count lies
    struct.pack_into('>I', b, 17, kr.crc32c(bytes(b[21:])))
    return bytes(b)


def recrc(blob):
    b = bytearray(blob)
    struct.pack_into('>I', b, 17, kr.crc32c(bytes(b[21:])))
    return bytes(b)


def _bad_gzip():
    b = bytearray(good_batch(5, codec=kr.CODEC_GZIP))
    b[61 + 12] ^= 0xFF   # damage the deflate stream, then fix the CRC
    b[-6] ^= 0xFF
    return recrc(b)


def _magic(m):
    b = bytearray(good_batch())
    b[16] = m
    return recrc(b)


def _length(delta):
    b = bytearray(good_batch())
    struct.pack_into('>i', b, 8, struct.unpack_from('>i', b, 8)[0] + delta)
    return bytes(b)


BAD_BATCHES = {
    'crc-flip-value': (lambda: flip(good_batch(), -3), {kr.CORRUPT_MESSAGE}),
    'crc-flip-header': (lambda: flip(good_batch(), 30), {kr.CORRUPT_MESSAGE}),
    'crc-field': (lambda: flip(good_batch(), 18), {kr.CORRUPT_MESSAGE}),
    'count-too-high': (lambda: set_count(good_batch(), 5), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'count-too-low': (lambda: set_count(good_batch(), 2), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'count-negative': (lambda: set_count(good_batch(), -1), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'length-too-long': (lambda: _length(+40), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'length-too-short': (lambda: _length(-7), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'truncated-batch': (lambda: good_batch()[:-10], {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'header-only': (lambda: good_batch()[:40], {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    # Kafka may map a broken deflate stream to UNKNOWN_SERVER_ERROR (-1)
    'bad-gzip': (_bad_gzip, {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD, -1}),
    'magic-1': (lambda: _magic(1), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD, 43}),
    'magic-7': (lambda: _magic(7), {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD, 43}),
    'empty-records': (lambda: b'', {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'good-then-bad': (lambda: good_batch(2) + flip(good_batch(2, b'two'), -2),
                      {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
    'two-good-batches': (lambda: good_batch(2) + good_batch(2, b'two'),
                         {kr.CORRUPT_MESSAGE, kr.INVALID_RECORD}),
}


@pytest.mark.parametrize('kind', sorted(BAD_BATCHES))
def test_bad_batch_refused_and_nothing_appended(broker, topic, kind):
    create_topic(broker.bootstrap, topic)
    blob_fn, allowed = BAD_BATCHES[kind]
    with kr.Conn.to(broker.bootstrap) as c:
        first = produce_raw(broker, topic, good_batch(2, b'first'), conn=c)
        assert (first['error'], first['base_offset']) == (0, 0)
        res = produce_raw(broker, topic, blob_fn(), conn=c)
        assert res['error'] in allowed, '%s: error %d, expected one of %s' % (
            kind, res['error'], sorted(allowed))
        # the connection stays usable and offsets continue where they were
        after = produce_raw(broker, topic, good_batch(1, b'after'), conn=c)
        assert (after['error'], after['base_offset']) == (0, 2)
    got = consume_confluent(broker.bootstrap, topic, count=3)
    assert [(g.offset, g.key) for g in got] == [(0, b'first-k0'), (1, b'first-k1'),
                                                (2, b'after-k0')]
    assert watermarks(broker.bootstrap, topic) == (0, 3)


def test_produce_to_unknown_partition(broker, topic):
    create_topic(broker.bootstrap, topic)
    with kr.Conn.to(broker.bootstrap) as c:
        body = kr.produce_body(3, topic, 9, good_batch(), acks=1)
        res = kr.parse_produce(c.request(kr.PRODUCE, 3, body), 3)
    assert res[(topic, 9)]['error'] == kr.UNKNOWN_TOPIC_OR_PARTITION


def test_zz_stored_data_intact(broker, good):
    """Runs last in this module: after all of the above, the first topic's
    records are unchanged and a normal client still works."""
    t, recs = good
    assert watermarks(broker.bootstrap, t) == (0, 20)
    assert_records(consume_confluent(broker.bootstrap, t, count=20), recs)
    more = make_records(2, 'final')
    res = produce_confluent(broker.bootstrap, t, more)
    assert [r[2] for r in res] == [20, 21]
