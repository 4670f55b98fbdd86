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
