#!/usr/bin/env python3
"""bench/e2e_stages.py - splits each e2e message's latency into stages.

Usage: e2e_stages.py LEADER_PORT FOLLOWER_PORTS|none MESSAGES < SEGMENTS

SEGMENTS: `perf script -F time,trace` of tcp:tcp_probe recorded with
`-k CLOCK_MONOTONIC` on the leader's connections (bench/profile-w5.sh).
tcp_probe fires on the receiving socket, so its src is the receiver and
dest the sender; on loopback that happens while the sender transmits.
MESSAGES: `rkbench e2e --dump` (seq, send time, produce->ack and e2e latency
in ns, CLOCK_MONOTONIC).

For each message: the first producer request reaching the leader after the
send; the first data each follower gets after that and its next fetch at
the leader (the high watermark moves when the slower one arrives); the
first data the consumer and the producer get after that. The matching is
by time, not by offsets: good for distributions, approximate per message.
"""
import bisect
import collections
import re
import sys


def main():
    leader = sys.argv[1]
    foll = [f for f in sys.argv[2].split(',') if f and f != 'none']
    seg = collections.defaultdict(list)
    nbytes = collections.Counter()
    pat = re.compile(r'^\s*([\d.]+): .*src=[\d.]+:(\d+) dest=[\d.]+:(\d+) .*data_len=(\d+)')
    for line in sys.stdin:
        m = pat.search(line)
        if not m or m.group(4) == '0':
            continue
        t, rcv, snd = float(m.group(1)) * 1e9, m.group(2), m.group(3)
        seg[(snd, rcv)].append(t)
        nbytes[(snd, rcv)] += int(m.group(4))
    clients = {s for s, r in seg if r == leader and s not in foll}
    if not clients:
        sys.exit("e2e_stages: no client connections to port %s in the trace" % leader)
    # producer: sends the most to the leader; consumer: receives the most
    prod = max(clients, key=lambda c: nbytes[(c, leader)])
    cons = max(clients, key=lambda c: nbytes[(leader, c)])

    def after(lst, t):
        i = bisect.bisect_left(lst, t)
        return lst[i] if i < len(lst) else None

    req, cdata, resp = seg[(prod, leader)], seg[(leader, cons)], seg[(leader, prod)]
    fout = [seg[(leader, f)] for f in foll]
    fin = [seg[(f, leader)] for f in foll]
    rows = []
    with open(sys.argv[3]) as f:
        for line in f:
            _, sent, ack, e2e = map(int, line.split())
            if e2e < 0 or ack < 0:
                continue
            a = after(req, sent)
            if a is None:
                continue
            if foll:
                f1 = [after(x, a) for x in fout]
                if None in f1:
                    continue
                f2 = [after(x, t) for x, t in zip(fin, f1)]
                if None in f2:
                    continue
            else:
                f1 = f2 = [a]  # one replica: the high watermark moves with the append
            hw = max(f2)
            b, c = after(cdata, hw), after(resp, hw)
            if b is None or c is None:
                continue
            rows.append({
                'e2e': e2e / 1e6,
                'send': (a - sent) / 1e6,
                'to_followers': (max(f1) - a) / 1e6,
                'follower_turn': max(y - x for x, y in zip(f1, f2)) / 1e6,
                'to_consumer': (b - hw) / 1e6,
                'consumer_client': (sent + e2e - b) / 1e6,
                'to_ack': (c - hw) / 1e6,
                'producer_client': (sent + ack - c) / 1e6,
            })
    if not rows:
        sys.exit("e2e_stages: no message could be lined up with the trace")

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(p / 100 * (len(v) - 1) + 0.5))]

    stages = [
        ('e2e', 'end to end (rkbench)', False),
        ('send', 'producer client: produce() -> request at the leader (incl. linger.ms=1)', True),
        ('to_followers', 'leader: request in -> both followers have the data (append, wake-up of their fetch)', True),
        ('follower_turn', 'followers: data in -> next fetch at the leader (the slower one; moves the HW)', True),
        ('to_consumer', 'leader: HW moved -> consumer has the records (wake-up of its fetch)', True),
        ('consumer_client', 'consumer client: records in -> rkbench callback', True),
        ('to_ack', 'leader: HW moved -> produce response (acks=all answer)', False),
        ('producer_client', 'producer client: response in -> delivery report', False),
    ]
    slow = [r for r in rows if r['e2e'] > 5]
    tot = sum(r['e2e'] for r in slow) or 1
    print(f"{len(rows)} messages lined up; {len(slow)} ({100 * len(slow) / len(rows):.2f} %) took > 5 ms end to end")
    print()
    print("| stage | p50 ms | p99 ms | max ms | share of the time of messages > 5 ms |")
    print("|---|---|---|---|---|")
    for k, label, on_path in stages:
        v = [r[k] for r in rows]
        share = f"{100 * sum(r[k] for r in slow) / tot:.0f} %" if on_path and slow else ''
        print(f"| {label} | {pct(v, 50):.3f} | {pct(v, 99):.3f} | {max(v):.3f} | {share} |")


if __name__ == '__main__':
    main()
