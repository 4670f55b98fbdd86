#!/usr/bin/env python3
"""bench/summarize.py - turns bench/run.sh's raw results into markdown.

Input: results.txt, one line per measurement of space-separated key=value
tokens (run, wl, broker, status, then rkbench's RESULT fields), and the
problems file. Output (stdout): a table of medians with min-max over the
runs, Runnel/mock ratios, and the issue's targets marked met / not met.
"""
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            kv = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    kv[k] = v
            if kv:
                rows.append(kv)
    return rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class Data:
    def __init__(self, rows):
        self.vals = defaultdict(list)
        self.fails = defaultdict(int)
        for r in rows:
            key = (r.get("wl"), r.get("broker"))
            if r.get("status") == "fail":
                self.fails[key] += 1
            for k, v in r.items():
                x = num(v)
                if x is not None and k != "run":
                    self.vals[key + (k,)].append(x)

    def get(self, wl, broker, metric):
        return self.vals.get((wl, broker, metric), [])

    def med(self, wl, broker, metric):
        v = self.get(wl, broker, metric)
        return statistics.median(v) if v else None


def fmt(x):
    if x is None:
        return "–"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.2f} M"
    if a >= 1e4:
        return f"{x / 1e3:.0f} k"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def cell(vals):
    if not vals:
        return "–"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(vals))}–{fmt(max(vals))})"


# The client's (rkbench's) own CPU over the measured window, all threads: on
# 2 cores the client competes with the broker; a utilisation near 1.0 means
# the client kept a whole core busy and was likely the limit.
CLIENT = ["client_cpu_us_per_rec", "client_cpu_util"]

ROWS = [
    # workload, label, metrics
    ("w1", "1: produce 100 B ×N, acks=1, linger 5 ms, 8 partitions, keyless",
     ["rec_per_s", "mb_per_s", "broker_cpu_us_per_rec"] + CLIENT),
    ("w2", "2: produce 1 KiB, acks=1, linger 5 ms, 8 partitions, keyless",
     ["rec_per_s", "mb_per_s", "broker_cpu_us_per_rec", "broker_hwm_kb"] + CLIENT),
    ("w2rr64", "2: produce 1 KiB, round-robin over 64 partitions",
     ["rec_per_s", "mb_per_s", "broker_cpu_us_per_rec", "broker_hwm_kb"] + CLIENT),
    ("w3_1k", "3: consume the 1 KiB records from the start",
     ["records", "first_ms", "rec_per_s", "mb_per_s", "steady_rec_per_s", "steady_mb_per_s",
      "broker_cpu_us_per_rec"] + CLIENT),
    ("w3_100", "3: consume the 100 B records from the start",
     ["records", "first_ms", "rec_per_s", "mb_per_s", "steady_rec_per_s", "steady_mb_per_s",
      "broker_cpu_us_per_rec"] + CLIENT),
    ("w4_wait500", "4: e2e 10k msg/s, 100 B, acks=all, linger 1 ms, fetch.wait.max.ms=500",
     ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "lost", "broker_cpu_us_per_rec"]),
    ("w4_wait1", "4: e2e, fetch.wait.max.ms=1",
     ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "lost", "broker_cpu_us_per_rec"]),
]

UNITS = {
    "rec_per_s": "records/s", "mb_per_s": "MB/s (payload)",
    "broker_cpu_us_per_rec": "broker CPU µs/record", "broker_hwm_kb": "broker peak RSS KiB",
    "records": "records read", "first_ms": "ms to the first record",
    "steady_rec_per_s": "records/s, first to last record", "steady_mb_per_s": "MB/s, first to last record", "p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms",
    "p999_ms": "p99.9 ms", "max_ms": "max ms", "lost": "messages not received",
    "p95_ms": "p95 ms", "ack_p50_ms": "produce→ack p50 ms", "ack_p99_ms": "produce→ack p99 ms",
    "ack_max_ms": "produce→ack max ms", "after_ack_p50_ms": "ack→consumer p50 ms",
    "after_ack_p99_ms": "ack→consumer p99 ms",
    "client_cpu_us_per_rec": "client CPU µs/record (rkbench, all threads)",
    "client_cpu_util": "client CPU utilisation (CPU s / wall s; 1 = one core)",
}

# Workload 5: the e2e run of workload 4 on a 3-broker cluster (broker tag
# "cluster"), next to workload 4 on one broker from the same bench run.
W5_ROWS = [
    ("w5_wait500", "w4_wait500", "e2e 10k msg/s, 100 B, acks=all, linger 1 ms, fetch.wait.max.ms=500"),
    ("w5_wait1", "w4_wait1", "same, fetch.wait.max.ms=1"),
]
W5_METRICS = ["rec_per_s", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "lost",
              "ack_p50_ms", "ack_p99_ms", "ack_max_ms", "after_ack_p50_ms", "after_ack_p99_ms",
              "broker_cpu_us_per_rec"]


def main():
    rows = load(sys.argv[1])
    problems = []
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            problems = [l.rstrip() for l in f if l.strip()]
    d = Data(rows)
    runs = sorted({int(r["run"]) for r in rows if num(r.get("run")) and r.get("status") != "skipped"})
    out = []
    p = out.append
    info = next((r for r in rows if r.get("wl") == "info"), {})
    loads = d.get("load", "machine", "loadavg1") or d.get("w5_load", "machine", "loadavg1")
    p(f"Commit {info.get('commit', '?')} (uncommitted changes under src/: {info.get('src_changes', '?')}), "
      f"broker build {info.get('build', '?')}, nproc {info.get('nproc', '?')}, quick={info.get('quick', '?')}, "
      f"workloads {info.get('only', 'all')}; "
      f"1-min load average at the start "
      f"of each run: {', '.join(fmt(x) for x in loads) or '?'}.")
    main_rows = any(d.get(wl, b, m) for wl, _, ms in ROWS for m in ms
                    for b in ("runnel", "mock")) or d.get("w6", "runnel", "rec_per_s")
    p(f"Runs: {len(runs)}; cells are median (min–max)."
      + (" Ratio = Runnel median / mock median." if main_rows else ""))
    p("")
    if main_rows:
        p("| workload | metric | Runnel | librdkafka mock | Runnel/mock |")
        p("|---|---|---|---|---|")
    for wl, label, metrics in ROWS:
        first = True
        for m in metrics:
            rv, mv = d.get(wl, "runnel", m), d.get(wl, "mock", m)
            if not rv and not mv:
                continue
            ratio = "–"
            if rv and mv and statistics.median(mv) != 0:
                ratio = f"{statistics.median(rv) / statistics.median(mv):.2f}×"
            p(f"| {label if first else ''} | {UNITS.get(m, m)} | {cell(rv)} | {cell(mv)} | {ratio} |")
            first = False
        nf = d.fails.get((wl, "runnel"), 0) + d.fails.get((wl, "mock"), 0)
        if nf:
            p(f"| | **failed runs** | {d.fails.get((wl, 'runnel'), 0)} | {d.fails.get((wl, 'mock'), 0)} | |")
    if main_rows and any(d.get("w5_wait500", "cluster", m) for m in W5_METRICS):
        p("| 5: e2e on a 3-broker cluster | | see the workload 5 table | | |")
    if d.get("w6", "runnel", "rec_per_s"):
        for m in ["rec_per_s", "mb_per_s", "broker_cpu_us_per_rec"]:
            p(f"| {'6: durable (flush per produce), 1 KiB, acks=1, 8 partitions' if m == 'rec_per_s' else ''}"
              f" | {UNITS[m]} | {cell(d.get('w6', 'runnel', m))} | | |")
    if main_rows:
        p("")
    if any(d.get(wl, "cluster", m) for wl, _, _ in W5_ROWS for m in W5_METRICS):
        loads5 = d.get("w5_load", "machine", "loadavg1")
        p("Workload 5 (3 runnel-server brokers on ZooKeeper, topics with replication factor 3 and "
          "min.insync.replicas=2, bootstrap = all three; broker CPU summed over the three; "
          "1-min load average at the start of each run: "
          f"{', '.join(fmt(x) for x in loads5) or '?'}):")
        p("")
        p("| workload | metric | 3 brokers, RF 3 | 1 broker (workload 4) | 3 brokers/1 broker |")
        p("|---|---|---|---|---|")
        for wl5, wl4, label in W5_ROWS:
            first = True
            for m in W5_METRICS:
                cv, sv = d.get(wl5, "cluster", m), d.get(wl4, "runnel", m)
                if not cv and not sv:
                    continue
                ratio = "–"
                if cv and sv and statistics.median(sv) > 0 and statistics.median(cv) > 0:
                    ratio = f"{statistics.median(cv) / statistics.median(sv):.2f}×"
                p(f"| {label if first else ''} | {UNITS.get(m, m)} | {cell(cv)} | {cell(sv)} | {ratio} |")
                first = False
            nf = d.fails.get((wl5, "cluster"), 0)
            if nf:
                p(f"| | **failed runs** | {nf} | | |")
        isr = d.get("w5_create", "cluster", "in_sync_ms")
        if isr:
            p(f"| topic creation | ms until every replica is in sync | {cell(isr)} | | |")
        p("")
    w7_any = any(d.get(wl, "runnel", m) for wl, m in [("w7_start_empty", "ready_ms"), ("w7_idle", "partitions")])
    if w7_any:
        p("Workload 7 (Runnel only):")
        p("")
        p("| measurement | value |")
        p("|---|---|")
    w7 = [
        ("w7_start_empty", "fd_limit", "open-file limit of the broker"),
        ("w7_start_empty", "ready_ms", "startup, empty data dir (ms)"),
        ("w7_create", "create_ms", "CreateTopics of all partitions (ms)"),
        ("w7_idle", "partitions", "partitions"),
        ("w7_idle", "broker_rss_kb", "RSS idle with all partitions (KiB)"),
        ("w7_idle", "fds", "open fds idle"),
        ("w7_fill", "rec_per_s", "fill: 1 KiB records round-robin over all partitions (records/s)"),
        ("w7_fill", "failed", "fill: records not delivered"),
        ("w7_after_fill", "broker_rss_kb", "RSS after the fill (KiB)"),
        ("w7_after_fill", "broker_hwm_kb", "peak RSS during the fill (KiB)"),
        ("w7_after_fill", "fds", "open fds after the fill"),
        ("w7_shutdown_fill", "shutdown_ms", "clean shutdown after the fill (ms)"),
        ("w7_start_data", "ready_ms", "startup with data, after a clean shutdown (ms)"),
        ("w7_start_data", "broker_rss_kb", "RSS after that startup (KiB)"),
        ("w7_shutdown", "shutdown_ms", "clean shutdown, idle (ms)"),
        ("w7_start_crash", "ready_ms", "startup after SIGKILL with unflushed data (ms)"),
    ]
    for wl, m, label in w7 if w7_any else []:
        p(f"| {label} | {cell(d.get(wl, 'runnel', m))} |")
    if w7_any:
        p("")
    floor_any = d.get("floor", "machine", "recv_write_cpu_us_per_rec")
    machine_any = (d.get("tcp", "machine", "mb_per_s") or d.get("disk_nosync", "machine", "mb_per_s")
                   or floor_any)
    if machine_any:
        p("Machine limits:")
        p("")
        p("| measurement | MB/s | per fdatasync (ms) | CPU µs per w1 record |")
        p("|---|---|---|---|")
    for wl, label in [] if not machine_any else [
        ("tcp", "loopback TCP, one stream, 256 KiB writes"),
        ("disk_nosync", "sequential write 1 MiB blocks, no sync (page cache)"),
        ("disk_fdatasync_end", "sequential write 1 MiB blocks + one fdatasync at the end"),
        ("disk_fdatasync_1m", "write + fdatasync every 1 MiB"),
        ("disk_fdatasync_64k", "write + fdatasync every 64 KiB"),
    ]:
        if not d.get(wl, "machine", "mb_per_s"):
            continue
        sync = d.get(wl, "machine", "sync_ms") if wl.startswith("disk_fdatasync") else []
        p(f"| {label} | {cell(d.get(wl, 'machine', 'mb_per_s'))} | {cell(sync)} | |")
    # The floor (rkbench floor): the receiving thread's CPU only, per
    # workload-1 record of the size it has in Runnel's log.
    for prefix, label in [] if not floor_any else [
        ("recv_write", "socket read + pwrite to page cache (floor of a persisting broker), "
                       "receiver CPU"),
        ("pwrite", "… of which in pwrite"),
        ("recv_only", "socket read only"),
        ("send", "the sender's write() (the client's share, for comparison)"),
    ]:
        mb = d.get("floor", "machine", f"{prefix}_mb_per_s")
        p(f"| {label} | {cell(mb)} | | {cell(d.get('floor', 'machine', f'{prefix}_cpu_us_per_rec'))} |")
    if machine_any:
        p("")
    if floor_any:
        bpr = d.get("floor", "machine", "record_bytes")
        measured = d.get("w1_log", "runnel", "bytes_per_rec")
        mib = d.med("floor", "machine", "bytes")
        passes = d.med("floor", "machine", "passes")
        p(f"Floor (rkbench floor): {'?' if mib is None else f'{mib / 2**20:.0f}'} MiB per pass over "
          f"loopback TCP (1 MiB writes; reads of up to 1 MiB into one reused buffer), medians of "
          f"{'?' if passes is None else f'{passes:.0f}'} passes; no Kafka parsing, no fsync; CPU of the "
          f"receiving thread only. One w1 record = {cell(bpr)} B "
          + ("(Runnel's w1 log size / records produced)." if measured else
             "(rkbench's default; Runnel's w1 log was not measured in this run).")
          + " On loopback much of the TCP receive processing runs in the sender's context — as it does "
          "for the brokers in workload 1.")
        p("")

    # targets
    def ratio(wl, m):
        r, mk = d.med(wl, "runnel", m), d.med(wl, "mock", m)
        return r / mk if r is not None and mk else None

    def mark(ok):
        return "–" if ok is None else ("met" if ok else "**not met**")

    p("Targets (issue 8):")
    p("")
    p("| target | measured | |")
    p("|---|---|---|")
    r1 = ratio("w1", "rec_per_s")
    c1 = ratio("w1", "broker_cpu_us_per_rec")
    if r1:
        p(f"| 1: throughput ≥ 1.0× mock | {fmt(r1)}× | {mark(r1 >= 1.0)} |")
    if c1:
        cr, cm = d.med("w1", "runnel", "broker_cpu_us_per_rec"), d.med("w1", "mock", "broker_cpu_us_per_rec")
        fl = d.med("floor", "machine", "recv_write_cpu_us_per_rec")
        floor_txt = ""
        if fl is not None:
            floor_txt = (f"; target 0.7× mock = {fmt(0.7 * cm)} µs; floor (socket read + pwrite, kernel "
                         f"only) {fmt(fl)} µs = {fmt(fl / cm)}× mock")
        p(f"| 1: broker CPU/record ≤ 0.7× mock | {fmt(c1)}× (Runnel {fmt(cr)} µs, mock {fmt(cm)} µs"
          f"{floor_txt}) | {mark(c1 <= 0.7)} |")
    r2 = ratio("w2rr64", "rec_per_s")
    if r2:
        p(f"| 2 (64 partitions): ≥ 2× mock | {fmt(r2)}× | {mark(r2 >= 2.0)} |")
    r3 = ratio("w3_1k", "steady_rec_per_s")
    r3s = ratio("w3_1k", "rec_per_s")
    if r3:
        p(f"| 3 (1 KiB): ≥ 2× mock | {fmt(r3)}× first-to-last record ({fmt(r3s)}× from the start) | "
          f"{mark(r3 >= 2.0)} |")
    p50, p99 = d.med("w4_wait500", "runnel", "p50_ms"), d.med("w4_wait500", "runnel", "p99_ms")
    if p50 is not None:
        ok4 = p50 < 2 and p99 < 5
        p(f"| 4: p50 < 2 ms and p99 < 5 ms with fetch.wait.max.ms=500 | p50 {fmt(p50)} ms, p99 {fmt(p99)} ms | {mark(ok4)} |")
    p5a, p5b = d.med("w5_wait500", "cluster", "p99_ms"), d.med("w5_wait1", "cluster", "p99_ms")
    if p5a is not None or p5b is not None:
        ok5 = all(x is not None and x < 10 for x in (p5a, p5b))
        p(f"| 5: p99 < 10 ms on 3 brokers, replication factor 3 | p99 {fmt(p5a)} ms (fetch.wait.max.ms=500), "
          f"{fmt(p5b)} ms (1) | {mark(ok5)} |")
    w6 = d.med("w6", "runnel", "mb_per_s")
    ref = d.med("disk_fdatasync_end", "machine", "mb_per_s")
    ref1m = d.med("disk_fdatasync_1m", "machine", "mb_per_s")
    if w6 is not None and ref:
        p(f"| 6: ≥ 50 % of sequential write+fdatasync bandwidth | {fmt(w6)} MB/s = {100 * w6 / ref:.0f} % of "
          f"{fmt(ref)} MB/s (write+one fdatasync; {100 * w6 / ref1m:.0f} % of fdatasync per 1 MiB) | "
          f"{mark(w6 >= 0.5 * ref)} |")
    rss = d.med("w7_idle", "runnel", "broker_rss_kb")
    parts = d.med("w7_idle", "runnel", "partitions")
    if rss is not None and parts:
        p(f"| 7: RSS < 100 MiB with {fmt(parts)} partitions | {rss / 1024:.1f} MiB idle | {mark(rss < 100 * 1024)} |")
    st = d.med("w7_start_data", "runnel", "ready_ms")
    if st is not None:
        p(f"| 7: startup < 2 s with {fmt(parts)} partitions holding data | {fmt(st)} ms | {mark(st < 2000)} |")
    p("")
    if problems:
        p("Problems seen during the run:")
        p("")
        for l in problems:
            p(f"    {l}")
    else:
        p("No problems seen (every command succeeded, no WARN/ERROR lines in the broker logs, "
          "clean exits).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
