"""Connection edge cases: a client that resets its connection while a request
of its waits must not cost the broker CPU or leave the request behind."""

import os
import socket
import struct
import time

import kafka_raw as kr
from conftest import unique_topic
from helpers import consume_confluent, create_topic, make_records, produce_confluent


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def test_reset_during_long_poll_closes_quietly(start_broker):
    b = start_broker()
    t = unique_topic('rst')
    create_topic(b.bootstrap, t)
    c = kr.Conn.to(b.bootstrap)
    c.send(1, 5, kr.fetch_body(t, 0, 0, max_wait_ms=20000, min_bytes=1))
    # The fetch is parked (nothing to read). Reset the connection (RST, not FIN).
    time.sleep(0.2)  # let the broker park the fetch: nothing outside can observe it
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.sock.close()
    before = cpu_seconds(b.proc.pid)
    t0 = time.monotonic()
    time.sleep(1.0)  # measuring CPU over an interval is the point here
    used = cpu_seconds(b.proc.pid) - before
    assert used < 0.3, 'broker used %.2f s of CPU in %.2f s after a reset' % (used, time.monotonic() - t0)
    # Appends still work, and do not try to answer the dead fetch.
    recs = make_records(3, 'after')
    produce_confluent(b.bootstrap, t, recs)
    assert [g.key for g in consume_confluent(b.bootstrap, t, count=3)] == [r['key'] for r in recs]
    assert 'ERROR' not in b.log_text()


def test_pipelined_requests_answered_in_order_while_produces_wait(start_broker):
    """A produce waiting for its flush (flush.messages=1) does not hold up the
    connection: the next requests are read and handled meanwhile, and every
    answer still leaves in request order."""
    b = start_broker()
    t = unique_topic('pipe')
    create_topic(b.bootstrap, t, config={'flush.messages': '1'})
    n = 12
    with kr.Conn.to(b.bootstrap) as c:
        sent = []
        for i in range(n):
            recs = kr.build_batch([(b"k%d" % i, b"v%d" % i, [], None)])
            sent.append(('produce', c.send(kr.PRODUCE, 7, kr.produce_body(7, t, 0, recs, acks=1))))
            if i % 4 == 3:  # answered at once, so it would overtake a waiting produce
                sent.append(('metadata', c.send(kr.METADATA, 1, kr.metadata_body(1, [t]))))
        offsets = []
        for kind, corr in sent:
            got, r = c.recv()
            assert got == corr, 'answer %d came where %d (%s) was due' % (got, corr, kind)
            if kind == 'produce':
                res = kr.parse_produce(r, 7)[(t, 0)]
                assert res['error'] == 0, res
                offsets.append(res['base_offset'])
            else:
                assert t in kr.parse_metadata(r, 1)['topics']
    assert offsets == list(range(n))
    assert [g.key for g in consume_confluent(b.bootstrap, t, count=n)] == [b'k%d' % i for i in range(n)]
