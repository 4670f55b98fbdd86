"""Minimal raw Kafka wire-protocol helper for the integration tests.

Our own small encoder/decoder for just the requests the tests send by hand
(bad input, APIs the Python clients lack, checks of exact bytes): request
header v1/v2, size-prefixed frames, compact (flexible) and classic types,
RecordBatch v2 building/parsing and a pure-Python CRC-32C.
"""

import gzip
import socket
import struct
import time

# ---------------------------------------------------------------- CRC-32C

def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli) as used by RecordBatch v2."""
    crc ^= 0xFFFFFFFF
    tbl = _CRC_TABLE
    for b in data:
        crc = tbl[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------- API keys
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
DESCRIBE_CONFIGS = 32
DESCRIBE_LOG_DIRS = 35
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CLUSTER = 60

# Kafka error codes used by the tests
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
INVALID_RECORD = 87


# ---------------------------------------------------------------- encoder

class Writer:
    """Big-endian writer; `flexible` selects compact strings/arrays."""

    def __init__(self, flexible=False):
        self.flexible = flexible
        self.parts = []

    def raw(self, b):
        self.parts.append(bytes(b))
        return self

    def int8(self, v):
        return self.raw(struct.pack('>b', v))

    def bool(self, v):
        return self.int8(1 if v else 0)

    def int16(self, v):
        return self.raw(struct.pack('>h', v))

    def int32(self, v):
        return self.raw(struct.pack('>i', v))

    def uint32(self, v):
        return self.raw(struct.pack('>I', v))

    def int64(self, v):
        return self.raw(struct.pack('>q', v))

    def uvarint(self, v):
        return self.raw(encode_uvarint(v))

    def varint(self, v):
        return self.raw(encode_varint(v))

    def string(self, s):
        """STRING / NULLABLE_STRING (None = null), compact when flexible."""
        if s is None:
            return self.uvarint(0) if self.flexible else self.int16(-1)
        b = s.encode() if isinstance(s, str) else bytes(s)
        if self.flexible:
            self.uvarint(len(b) + 1)
        else:
            self.int16(len(b))
        return self.raw(b)

    def bytes_(self, b):
        """BYTES / NULLABLE_BYTES / RECORDS."""
        if b is None:
            return self.uvarint(0) if self.flexible else self.int32(-1)
        if self.flexible:
            self.uvarint(len(b) + 1)
        else:
            self.int32(len(b))
        return self.raw(b)

    def array(self, items, fn):
        if items is None:
            return self.uvarint(0) if self.flexible else self.int32(-1)
        if self.flexible:
            self.uvarint(len(items) + 1)
        else:
            self.int32(len(items))
        for it in items:
            fn(self, it)
        return self

    def tags(self):
        """Empty tagged-field section (flexible versions only)."""
        if self.flexible:
            self.uvarint(0)
        return self

    def getvalue(self):
        return b''.join(self.parts)


def encode_uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_varint(v):
    """Zigzag varint/varlong (as in records)."""
    return encode_uvarint((v << 1) ^ (v >> 63))


# ---------------------------------------------------------------- decoder

class Reader:
    def __init__(self, data, flexible=False):
        self.data = bytes(data)
        self.pos = 0
        self.flexible = flexible

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError('short read: want %d at %d of %d' % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def int8(self):
        return self._unpack('>b', 1)

    def bool(self):
        return self.int8() != 0

    def int16(self):
        return self._unpack('>h', 2)

    def int32(self):
        return self._unpack('>i', 4)

    def uint32(self):
        return self._unpack('>I', 4)

    def int64(self):
        return self._unpack('>q', 8)

    def uvarint(self):
        shift = 0
        v = 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise ValueError('varint too long')

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def string(self):
        if self.flexible:
            n = self.uvarint() - 1
        else:
            n = self.int16()
        if n < 0:
            return None
        return self.take(n).decode('utf-8', 'replace')

    def bytes_(self):
        if self.flexible:
            n = self.uvarint() - 1
        else:
            n = self.int32()
        if n < 0:
            return None
        return self.take(n)

    def array(self, fn):
        if self.flexible:
            n = self.uvarint() - 1
        else:
            n = self.int32()
        if n < 0:
            return None
        return [fn(self) for _ in range(n)]

    def tags(self):
        """Skip a tagged-field section; returns {tag: bytes}."""
        out = {}
        if self.flexible:
            for _ in range(self.uvarint()):
                tag = self.uvarint()
                out[tag] = self.take(self.uvarint())
        return out


# ---------------------------------------------------------------- connection

def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError('connection closed after %d of %d bytes' % (len(buf), n))
        buf += chunk
    return bytes(buf)


class Conn:
    """One raw TCP connection speaking Kafka frames."""

    def __init__(self, host, port, timeout=10.0, client_id='runnel-raw'):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.client_id = client_id
        self.next_corr = 1

    @classmethod
    def to(cls, bootstrap, timeout=10.0):
        host, port = bootstrap.rsplit(':', 1)
        return cls(host, int(port), timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, b):
        self.sock.sendall(b)

    def header(self, api_key, version, corr, flexible):
        w = Writer(False).int16(api_key).int16(version).int32(corr).string(self.client_id)
        if flexible:
            w.uvarint(0)  # request header v2: empty tagged fields
        return w.getvalue()

    def send(self, api_key, version, body, flexible=False, corr=None):
        """Send one request; returns its correlation id."""
        if corr is None:
            corr = self.next_corr
            self.next_corr += 1
        payload = self.header(api_key, version, corr, flexible) + body
        self.sock.sendall(struct.pack('>i', len(payload)) + payload)
        return corr

    def recv_frame(self):
        size = struct.unpack('>i', recv_exact(self.sock, 4))[0]
        if size < 0 or size > 256 * 1024 * 1024:
            raise ValueError('bad response size %d' % size)
        return recv_exact(self.sock, size)

    def recv(self, flexible_header=False, flexible_body=None):
        """Read one response: returns (correlation id, Reader over the body)."""
        frame = self.recv_frame()
        r = Reader(frame, False)
        corr = r.int32()
        if flexible_header:
            r.flexible = True
            r.tags()
        r.flexible = flexible_header if flexible_body is None else flexible_body
        return corr, r

    def request(self, api_key, version, body, flexible=False):
        corr = self.send(api_key, version, body, flexible)
        # ApiVersions responses always use response header v0
        hdr_flex = flexible and api_key != API_VERSIONS
        got, r = self.recv(flexible_header=hdr_flex, flexible_body=flexible)
        if got != corr:
            raise AssertionError('correlation id %d != %d' % (got, corr))
        return r

    def is_closed(self, timeout=5.0):
        """True when the peer closes the connection (EOF/reset) within timeout."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                b = self.sock.recv(65536)
                if not b:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False


# ---------------------------------------------------------------- requests

def api_versions_body(version):
    if version >= 3:
        return (Writer(True).string('runnel-tests').string('1.0').tags().getvalue())
    return b''


def parse_api_versions(r, version):
    """Returns (error_code, {api_key: (min, max)}). Handles the v0 fallback
    body a broker sends for an unsupported version."""
    flex = version >= 3
    r.flexible = flex
    err = r.int16()

    def one(rr):
        k, lo, hi = rr.int16(), rr.int16(), rr.int16()
        rr.tags()
        return k, (lo, hi)
    keys = dict(r.array(one))
    if version >= 1:
        r.int32()  # throttle
    r.tags()
    return err, keys


def metadata_body(version, topics, allow_auto=True):
    flex = version >= 9
    w = Writer(flex)
    if topics is None:
        if version == 0:
            w.int32(0)
        else:
            w.array(None, None)
    else:
        def t(wr, name):
            if version >= 10:
                wr.raw(b'\0' * 16)
            wr.string(name)
            wr.tags()
        w.array(list(topics), t)
    if version >= 4:
        w.bool(allow_auto)
    if 8 <= version <= 10:
        w.bool(False)
    if version >= 8:
        w.bool(False)
    w.tags()
    return w.getvalue()


def parse_metadata(r, version):
    """Returns dict with brokers, cluster_id, controller_id, topics
    {name: (error, {partition: (error, leader, replicas, isr)})}."""
    r.flexible = version >= 9
    out = {}
    if version >= 3:
        out['throttle'] = r.int32()

    def broker(rr):
        nid, host, port = rr.int32(), rr.string(), rr.int32()
        rack = rr.string() if version >= 1 else None
        rr.tags()
        return (nid, host, port, rack)
    out['brokers'] = r.array(broker)
    out['cluster_id'] = r.string() if version >= 2 else None
    out['controller_id'] = r.int32() if version >= 1 else None

    def partition(rr):
        err, idx, leader = rr.int16(), rr.int32(), rr.int32()
        if version >= 7:
            rr.int32()
        reps = rr.array(lambda x: x.int32())
        isr = rr.array(lambda x: x.int32())
        if version >= 5:
            rr.array(lambda x: x.int32())
        rr.tags()
        return idx, (err, leader, reps, isr)

    def topic(rr):
        err, name = rr.int16(), rr.string()
        if version >= 10:
            rr.take(16)
        internal = rr.bool() if version >= 1 else False
        parts = dict(rr.array(partition))
        if version >= 8:
            rr.int32()
        rr.tags()
        return name, (err, parts, internal)
    out['topics'] = dict(r.array(topic))
    if 8 <= version <= 10:
        r.int32()
    r.tags()
    return out


def produce_body(version, topic, partition, records, acks=-1, timeout_ms=5000):
    """Produce v3..v8 (non-flexible): one topic, one partition."""
    assert 3 <= version <= 8
    w = Writer(False)
    w.string(None)  # transactional id
    w.int16(acks).int32(timeout_ms)
    w.int32(1).string(topic)
    w.int32(1).int32(partition).bytes_(records)
    return w.getvalue()


def parse_produce(r, version):
    """Returns {(topic, partition): dict(error, base_offset, log_append_time,
    log_start_offset, error_message)}."""
    out = {}
    for _ in range(r.int32()):
        name = r.string()
        for _ in range(r.int32()):
            p = r.int32()
            d = {'error': r.int16(), 'base_offset': r.int64()}
            if version >= 2:
                d['log_append_time'] = r.int64()
            if version >= 5:
                d['log_start_offset'] = r.int64()
            if version >= 8:
                r.array(lambda x: (x.int32(), x.string()))
                d['error_message'] = r.string()
            out[(name, p)] = d
    if version >= 1:
        r.int32()
    return out


def fetch_body(topic, partition, offset, max_wait_ms=0, min_bytes=1,
               max_bytes=0x7fffffff, partition_max_bytes=1048576, version=5):
    """Fetch v4/v5 (non-flexible, no sessions)."""
    assert version in (4, 5)
    w = Writer(False)
    w.int32(-1).int32(max_wait_ms).int32(min_bytes).int32(max_bytes).int8(0)
    w.int32(1).string(topic).int32(1).int32(partition).int64(offset)
    if version >= 5:
        w.int64(-1)
    w.int32(partition_max_bytes)
    return w.getvalue()


def parse_fetch(r, version=5):
    """Returns {(topic, partition): dict(error, high_watermark,
    last_stable_offset, log_start_offset, records)}."""
    r.int32()  # throttle
    out = {}
    for _ in range(r.int32()):
        name = r.string()
        for _ in range(r.int32()):
            p = r.int32()
            d = {'error': r.int16(), 'high_watermark': r.int64(),
                 'last_stable_offset': r.int64()}
            if version >= 5:
                d['log_start_offset'] = r.int64()
            r.array(lambda x: (x.int64(), x.int64()))
            d['records'] = r.bytes_()
            out[(name, p)] = d
    return out


def list_offsets_body(version, topic, partition, timestamp):
    flex = version >= 6
    w = Writer(flex)
    w.int32(-1)
    if version >= 2:
        w.int8(0)

    def t(wr, _):
        wr.string(topic)

        def p(wp, _):
            wp.int32(partition)
            if version >= 4:
                wp.int32(-1)
            wp.int64(timestamp)
            if version == 0:
                wp.int32(1)
            wp.tags()
        wr.array([0], p)
        wr.tags()
    w.array([0], t)
    if version >= 10:
        w.int32(5000)
    w.tags()
    return w.getvalue()


def parse_list_offsets(r, version):
    """Returns {(topic, partition): (error, timestamp, offset)}."""
    r.flexible = version >= 6
    if version >= 2:
        r.int32()
    out = {}

    def p(rr, name):
        idx, err = rr.int32(), rr.int16()
        if version == 0:
            offs = rr.array(lambda x: x.int64())
            ts, off = -1, (offs[0] if offs else -1)
        else:
            ts, off = rr.int64(), rr.int64()
        if version >= 4:
            rr.int32()
        rr.tags()
        out[(name, idx)] = (err, ts, off)

    def t(rr):
        name = rr.string()
        rr.array(lambda x: p(x, name))
        rr.tags()
    r.array(t)
    r.tags()
    return out


def delete_records_body(topic, partition_offsets, timeout_ms=5000, version=1):
    flex = version >= 2
    w = Writer(flex)

    def t(wr, _):
        wr.string(topic)

        def p(wp, po):
            wp.int32(po[0]).int64(po[1]).tags()
        wr.array(list(partition_offsets.items()), p)
        wr.tags()
    w.array([0], t)
    w.int32(timeout_ms).tags()
    return w.getvalue()


def parse_delete_records(r, version=1):
    """Returns {(topic, partition): (low_watermark, error)}."""
    r.flexible = version >= 2
    r.int32()
    out = {}

    def t(rr):
        name = rr.string()

        def p(x):
            idx, low, err = x.int32(), x.int64(), x.int16()
            x.tags()
            out[(name, idx)] = (low, err)
        rr.array(p)
        rr.tags()
    r.array(t)
    r.tags()
    return out


def describe_cluster_body(version=0):
    w = Writer(True).bool(False)
    if version >= 1:
        w.int8(1)
    return w.tags().getvalue()


def parse_describe_cluster(r, version=0):
    r.flexible = True
    d = {'throttle': r.int32(), 'error': r.int16(), 'error_message': r.string()}
    if version >= 1:
        d['endpoint_type'] = r.int8()
    d['cluster_id'] = r.string()
    d['controller_id'] = r.int32()

    def b(rr):
        v = (rr.int32(), rr.string(), rr.int32(), rr.string())
        rr.tags()
        return v
    d['brokers'] = r.array(b)
    d['cluster_authorized_operations'] = r.int32()
    r.tags()
    return d


def describe_log_dirs_body(topics=None, version=1):
    """topics: None for all, else {topic: [partitions]}."""
    w = Writer(version >= 2)
    if topics is None:
        w.array(None, None)
    else:
        def t(wr, item):
            wr.string(item[0])
            wr.array(item[1], lambda x, p: x.int32(p))
            wr.tags()
        w.array(list(topics.items()), t)
    w.tags()
    return w.getvalue()


def parse_describe_log_dirs(r, version=1):
    """Returns (top error or None, [dict(error, log_dir, topics {name: {p: size}})])."""
    r.flexible = version >= 2
    r.int32()
    top_err = r.int16() if version >= 3 else None

    def res(rr):
        d = {'error': rr.int16(), 'log_dir': rr.string(), 'topics': {}}

        def t(x):
            name = x.string()

            def p(y):
                idx, size, lag, fut = y.int32(), y.int64(), y.int64(), y.bool()
                y.tags()
                d['topics'].setdefault(name, {})[idx] = size
            x.array(p)
            x.tags()
        rr.array(t)
        if version >= 4:
            rr.int64()
            rr.int64()
        rr.tags()
        return d
    results = r.array(res)
    r.tags()
    return top_err, results


def incremental_alter_configs_body(resources, validate_only=False, version=0):
    """resources: list of (resource_type, name, [(config, op, value)])."""
    w = Writer(version >= 1)

    def res(wr, item):
        rtype, name, cfgs = item
        wr.int8(rtype).string(name)

        def c(wc, cfg):
            wc.string(cfg[0]).int8(cfg[1]).string(cfg[2]).tags()
        wr.array(cfgs, c)
        wr.tags()
    w.array(resources, res)
    w.bool(validate_only).tags()
    return w.getvalue()


def parse_incremental_alter_configs(r, version=0):
    """Returns {(resource_type, name): (error, message)}."""
    r.flexible = version >= 1
    r.int32()
    out = {}

    def res(rr):
        err, msg, rtype, name = rr.int16(), rr.string(), rr.int8(), rr.string()
        rr.tags()
        out[(rtype, name)] = (err, msg)
    r.array(res)
    r.tags()
    return out


RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
OP_SET = 0
OP_DELETE = 1


# ---------------------------------------------------------------- record batches

ATTR_CODEC_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4


def encode_record(offset_delta, ts_delta, key, value, headers=()):
    body = bytearray()
    body += b'\0'  # attributes
    body += encode_varint(ts_delta)
    body += encode_varint(offset_delta)
    for field in (key, value):
        if field is None:
            body += encode_varint(-1)
        else:
            body += encode_varint(len(field)) + field
    body += encode_varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode()
        body += encode_varint(len(hkb)) + hkb
        if hv is None:
            body += encode_varint(-1)
        else:
            body += encode_varint(len(hv)) + hv
    return encode_varint(len(body)) + bytes(body)


def build_batch(records, base_timestamp=None, base_offset=0, codec=CODEC_NONE,
                attributes_extra=0, record_count=None, producer_id=-1,
                producer_epoch=-1, base_sequence=-1):
    """records: list of (key, value, headers, timestamp_ms or None).
    Returns a complete RecordBatch v2 (magic 2) with a correct CRC-32C.
    record_count overrides the declared count (to build lying batches)."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    body = bytearray()
    max_ts = base_timestamp
    for i, (k, v, h, ts) in enumerate(records):
        ts = base_timestamp if ts is None else ts
        max_ts = max(max_ts, ts)
        body += encode_record(i, ts - base_timestamp, k, v, h or ())
    if codec == CODEC_GZIP:
        body = gzip.compress(bytes(body))
    elif codec == CODEC_SNAPPY:
        body = snappy_xerial(bytes(body))
    elif codec != CODEC_NONE:
        raise ValueError('only none/gzip/snappy can be built in pure Python')
    count = len(records) if record_count is None else record_count
    after_crc = struct.pack('>hiqqqhii', codec | attributes_extra, max(len(records) - 1, 0),
                            base_timestamp, max_ts, producer_id, producer_epoch,
                            base_sequence, count) + bytes(body)
    crc = crc32c(after_crc)
    after_len = struct.pack('>ibI', 0, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack('>qi', base_offset, len(after_len)) + after_len


class Batch:
    HEADER = struct.Struct('>qiibIhiqqqhii')  # 61 bytes

    def __init__(self, data):
        (self.base_offset, self.batch_length, self.leader_epoch, self.magic, self.crc,
         self.attributes, self.last_offset_delta, self.base_timestamp, self.max_timestamp,
         self.producer_id, self.producer_epoch, self.base_sequence,
         self.records_count) = self.HEADER.unpack_from(data, 0)
        self.raw = bytes(data[:12 + self.batch_length])
        self.payload = self.raw[61:]

    @property
    def codec(self):
        return self.attributes & ATTR_CODEC_MASK

    @property
    def log_append_time(self):
        return bool(self.attributes & ATTR_LOG_APPEND_TIME)

    @property
    def size(self):
        return 12 + self.batch_length

    def crc_ok(self):
        return crc32c(self.raw[21:]) == self.crc

    def records(self):
        """Decoded records (codec none or gzip): list of dicts with offset,
        timestamp, key, value, headers."""
        if self.codec == CODEC_NONE:
            data = self.payload
        elif self.codec == CODEC_GZIP:
            data = gzip.decompress(self.payload)
        else:
            raise ValueError('cannot decode codec %d in pure Python' % self.codec)
        r = Reader(data)
        out = []
        for _ in range(self.records_count):
            length = r.varint()
            rr = Reader(r.take(length))
            rr.int8()
            ts_delta = rr.varint()
            off_delta = rr.varint()
            kl = rr.varint()
            key = rr.take(kl) if kl >= 0 else None
            vl = rr.varint()
            value = rr.take(vl) if vl >= 0 else None
            headers = []
            for _ in range(rr.varint()):
                hk = rr.take(rr.varint()).decode()
                hl = rr.varint()
                headers.append((hk, rr.take(hl) if hl >= 0 else None))
            ts = self.max_timestamp if self.log_append_time else self.base_timestamp + ts_delta
            out.append({'offset': self.base_offset + off_delta, 'timestamp': ts,
                        'key': key, 'value': value, 'headers': headers})
        return out


def parse_batches(data, allow_partial=True):
    """Split a records blob (Fetch response or .log file) into Batch objects.
    A trailing partial batch is dropped when allow_partial."""
    out = []
    pos = 0
    data = bytes(data or b'')
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from('>i', data, pos + 8)
        if length < 49 or pos + 12 + length > len(data):
            if allow_partial:
                break
            raise ValueError('partial batch at %d' % pos)
        out.append(Batch(data[pos:pos + 12 + length]))
        pos += 12 + length
    return out


# ---------------------------------------------------------------- snappy (literal-only)

XERIAL_MAGIC = b'\x82SNAPPY\x00'


def snappy_raw_literal(data):
    """A valid raw snappy stream holding data as literals only (no matches):
    enough for a broker or client to decode, no compressor needed."""
    out = bytearray(encode_uvarint(len(data)))
    pos = 0
    while pos < len(data):
        chunk = data[pos:pos + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, 'little')
        out += chunk
        pos += len(chunk)
    return bytes(out)


def snappy_xerial(data, block=32768):
    """The Java client's xerial framing around raw snappy blocks."""
    out = bytearray(XERIAL_MAGIC + struct.pack('>ii', 1, 1))
    for pos in range(0, max(len(data), 1), block):
        raw = snappy_raw_literal(data[pos:pos + block])
        out += struct.pack('>i', len(raw)) + raw
    return bytes(out)


# ---------------------------------------------------------------- CreateTopics / DeleteTopics

def create_topics_body(topics, timeout_ms=10000, validate_only=False, version=2):
    """topics: list of (name, num_partitions, replication_factor, {config: value}).
    v2..v4 non-flexible, v5+ flexible."""
    flex = version >= 5
    w = Writer(flex)

    def t(wr, item):
        name, parts, rf, cfg = item
        wr.string(name).int32(parts).int16(rf)
        wr.array([], None)  # no manual assignments

        def c(wc, kv):
            wc.string(kv[0]).string(kv[1]).tags()
        wr.array(list((cfg or {}).items()), c)
        wr.tags()
    w.array(topics, t)
    w.int32(timeout_ms).bool(validate_only).tags()
    return w.getvalue()


def parse_create_topics(r, version=2):
    """Returns {name: (error_code, error_message)}."""
    r.flexible = version >= 5
    r.int32()
    out = {}

    def t(rr):
        name, err = rr.string(), rr.int16()
        msg = rr.string() if version >= 1 else None
        if version >= 7:
            rr.take(16)
        if version >= 5:
            rr.int32()
            rr.int16()
            rr.array(lambda x: (x.string(), x.string(), x.bool(), x.int8(), x.bool(), x.tags()))
        rr.tags()
        out[name] = (err, msg)
    r.array(t)
    r.tags()
    return out


def delete_topics_body(names, timeout_ms=10000, version=1):
    """DeleteTopics v1..v3 (non-flexible)."""
    w = Writer(False)
    w.array(names, lambda wr, n: wr.string(n))
    w.int32(timeout_ms)
    return w.getvalue()


def parse_delete_topics(r, version=1):
    r.int32()
    out = {}
    for _ in range(r.int32()):
        name, err = r.string(), r.int16()
        out[name] = err
    return out


# ---------------------------------------------------------------- any-version Produce / Fetch

def produce_body_any(version, topic, partitions, acks=-1, timeout_ms=5000):
    """Produce v3..v11; partitions: [(index, records bytes)]. v9+ flexible."""
    w = Writer(version >= 9)
    w.string(None).int16(acks).int32(timeout_ms)

    def t(wr, _):
        wr.string(topic)

        def p(wp, pr):
            wp.int32(pr[0]).bytes_(pr[1]).tags()
        wr.array(partitions, p)
        wr.tags()
    w.array([0], t)
    w.tags()
    return w.getvalue()


def parse_produce_any(r, version):
    r.flexible = version >= 9
    out = {}

    def t(rr):
        name = rr.string()

        def p(x):
            idx = x.int32()
            d = {'error': x.int16(), 'base_offset': x.int64()}
            if version >= 2:
                d['log_append_time'] = x.int64()
            if version >= 5:
                d['log_start_offset'] = x.int64()
            if version >= 8:
                x.array(lambda y: (y.int32(), y.string(), y.tags()))
                d['error_message'] = x.string()
            x.tags()
            out[(name, idx)] = d
        rr.array(p)
        rr.tags()
    r.array(t)
    if version >= 1:
        r.int32()
    r.tags()
    return out


def fetch_body_any(version, topic, partitions, max_wait_ms=0, min_bytes=1,
                   max_bytes=0x7fffffff, topic_id=None, session_id=0, session_epoch=-1):
    """Fetch v4..v17; partitions: [(partition, offset, partition_max_bytes)].
    v13+ names the topic by topic_id (16 bytes)."""
    w = Writer(version >= 12)
    if version <= 14:
        w.int32(-1)
    w.int32(max_wait_ms).int32(min_bytes).int32(max_bytes).int8(0)
    if version >= 7:
        w.int32(session_id).int32(session_epoch)

    def t(wr, _):
        if version >= 13:
            wr.raw(topic_id)
        else:
            wr.string(topic)

        def p(wp, pr):
            wp.int32(pr[0])
            if version >= 9:
                wp.int32(-1)
            wp.int64(pr[1])
            if version >= 12:
                wp.int32(-1)
            if version >= 5:
                wp.int64(-1)
            wp.int32(pr[2]).tags()
        wr.array(partitions, p)
        wr.tags()
    w.array([0], t)
    if version >= 7:
        w.array([], None)
    if version >= 11:
        w.string('')
    w.tags()
    return w.getvalue()


def parse_fetch_any(r, version):
    """Returns (top error, session id, {(topic name or topic id, partition): dict})."""
    r.flexible = version >= 12
    r.int32()
    top_err, session = 0, 0
    if version >= 7:
        top_err, session = r.int16(), r.int32()
    out = {}

    def t(rr):
        name = rr.take(16) if version >= 13 else rr.string()

        def p(x):
            idx = x.int32()
            d = {'error': x.int16(), 'high_watermark': x.int64(),
                 'last_stable_offset': x.int64()}
            if version >= 5:
                d['log_start_offset'] = x.int64()
            x.array(lambda y: (y.int64(), y.int64(), y.tags()))
            if version >= 11:
                d['preferred_read_replica'] = x.int32()
            d['records'] = x.bytes_()
            d['tags'] = x.tags()
            out[(name, idx)] = d
        rr.array(p)
        rr.tags()
    r.array(t)
    r.tags()
    return top_err, session, out


def metadata_topic_id(conn, topic, version=10):
    """The topic's 16-byte id from Metadata v10+ (flexible)."""
    body = metadata_body(version, [topic], False)
    r = conn.request(METADATA, version, body, flexible=True)
    r.flexible = True
    r.int32()
    r.array(lambda x: (x.int32(), x.string(), x.int32(), x.string(), x.tags()))
    r.string()
    r.int32()
    found = {}

    def t(rr):
        err, name, tid = rr.int16(), rr.string(), rr.take(16)
        rr.bool()
        rr.array(lambda x: (x.int16(), x.int32(), x.int32(), x.int32(),
                            x.array(lambda y: y.int32()), x.array(lambda y: y.int32()),
                            x.array(lambda y: y.int32()), x.tags()))
        rr.int32()
        rr.tags()
        found[name] = (err, tid)
    r.array(t)
    return found[topic]
