#!/usr/bin/env bash
# bench/run.sh - Runnel's benchmark (issue 8): runnel-server and librdkafka's
# mock cluster under the identical librdkafka workload, plus the machine's own
# limits, in one run. See bench/README.md.
#
#   bench/run.sh                  full run (BENCH_RUNS=5 repetitions, ~9 min)
#   BENCH_QUICK=1 bench/run.sh    smoke version with small counts (~1 min)
#   BENCH_ONLY=5 bench/run.sh     only workload 5 (3 brokers on ZooKeeper)
#
# Environment: BENCH_RUNS (repetitions, default 5, quick 1), BENCH_QUICK,
# BENCH_ONLY (comma-separated workloads to run: 1-7 and "machine" for the
# machine's limits; default all), BENCH_KEEP=1 (keep the temp dir with logs
# and data), BENCH_OUT (where the raw results and the summary are copied,
# default build/bench), ZOOKEEPER_JAR (workload 5, default Debian's
# /usr/share/java/zookeeper.jar).
# Everything runs on 127.0.0.1 and in one temp dir; every process started here
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    RUNS=${BENCH_RUNS:-1}
    N1=200000 N2=20000 N6=10000 E2E_S=2 W7_TOPICS=10 W7_PARTS=100 N7=20000
    DISK_MB=128 TCP_S=1 FLOOR_MB=64
else
    RUNS=${BENCH_RUNS:-5}
    N1=2000000 N2=200000 N6=500000 E2E_S=10 W7_TOPICS=100 W7_PARTS=100 N7=200000
    DISK_MB=512 TCP_S=3 FLOOR_MB=256
fi
OUT_DIR=${BENCH_OUT:-build/bench}

# BENCH_ONLY=4,5: only these workloads ("machine": the machine's limits).
ONLY=$(printf '%s' "${BENCH_ONLY:-}" | tr ' ;' ',,')
case ",$ONLY," in
    ,,) ;;
    *) for w in ${ONLY//,/ }; do
           case $w in [1-7] | machine) ;; *) echo "bench: BENCH_ONLY: unknown workload '$w' (1-7, machine)" >&2; exit 2 ;; esac
       done ;;
esac
want() { # want N...: whether any of the workloads is selected
    local w
    [ -z "$ONLY" ] && return 0
    for w in "$@"; do
        case ",$ONLY," in *",$w,"*) return 0 ;; esac
    done
    return 1
}

# Several people share the working tree: if someone's file in progress
# breaks the build, measure the broker binary that is already there.
BUILD=fresh
if ! make -s build/runnel-server >/dev/null; then
    [ -x build/runnel-server ] || { echo "bench: cannot build build/runnel-server" >&2; exit 1; }
    echo "bench: WARNING: make failed; measuring the existing build/runnel-server" >&2
    BUILD=stale
fi
make -s -f bench/Makefile >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-bench.XXXXXX")
# Private copies: a rebuild in the working tree during the run must not
# swap (or briefly remove) the binaries under test.
# (A copy taken while the linker rewrites the file is not executable or
# differs from it afterwards: retry then.)
for i in 1 2 3 4 5 6 7 8 9 10; do
    cp build/runnel-server build/bench/rkbench "$WORK/"
    if [ -x "$WORK/runnel-server" ] && cmp -s build/runnel-server "$WORK/runnel-server"; then break; fi
    sleep 2
done
[ -x "$WORK/runnel-server" ] || { echo "bench: no usable build/runnel-server" >&2; exit 1; }
RK=$WORK/rkbench
SERVER=$WORK/runnel-server
RES=$WORK/results.txt
PROBLEMS=$WORK/problems.txt
: >"$RES"
: >"$PROBLEMS"
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
        fi
    done
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
problem() { echo "$*" >>"$PROBLEMS"; say "PROBLEM: $*"; }

# record TAGS... -- CMD...: runs an rkbench command, appends its RESULT line
# with the tags to the results file; a failure is recorded, not fatal.
record() {
    local tags=()
    while [ "$1" != "--" ]; do tags+=("$1"); shift; done
    shift
    local out rc=0 errf=$WORK/last.err
    out=$("$@" 2>"$errf") || rc=$?
    local line
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1 | sed 's/^RESULT //' || true)
    echo "${tags[*]} status=$([ $rc = 0 ] && echo ok || echo fail) $line" >>"$RES"
    say "${tags[*]} $line"
    if [ $rc != 0 ]; then
        problem "${tags[*]}: rc=$rc: $(grep -v '^%' "$errf" | tail -3 | tr '\n' ' ')"
        local cmd="$*"
        problem "  reproduce: ${cmd//$WORK\/rkbench/build/bench/rkbench}"
    fi
}

# ---------------------------------------------------------------- brokers
BROKER_PID=0
BOOT=
BROKER_LOG=

# start_runnel NAME [overrides...]: fresh or existing data dir $WORK/NAME.
start_runnel() {
    local name=$1; shift
    local port ov=() t0
    port=$($RK freeport)
    for o in "$@"; do ov+=(--override "$o"); done
    BROKER_LOG=$WORK/$name.log
    t0=$(date +%s%N)
    # NOFILE: the open-file limit for this broker (the subshell execs it)
    (
        if [ -n "${NOFILE:-}" ]; then ulimit -n "$NOFILE" 2>/dev/null || true; fi
        exec $SERVER --override "listeners=PLAINTEXT://127.0.0.1:$port" \
            --override "log.dirs=$WORK/$name" "${ov[@]}" >>"$BROKER_LOG" 2>&1
    ) &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    BOOT=127.0.0.1:$port
    READY=$($RK waitport --port "$port" --since-ns "$t0" --timeout-ms 60000 | sed 's/^RESULT //') || {
        problem "runnel-server ($name) did not accept connections on $port within 60 s; log: $(tail -2 "$BROKER_LOG" | tr '\n' ' ')"
        stop_broker KILL
        return 1
    }
}

# stop_broker [KILL]: SIGTERM (or SIGKILL) and wait; a non-zero exit after
# SIGTERM is a problem. Sets STOP_MS to the time the broker took to exit.
STOP_MS=0
stop_broker() {
    local sig=${1:-TERM} rc=0 t0 t1 p keep=()
    t0=$(date +%s%N)
    kill -"$sig" "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || rc=$?
    t1=$(date +%s%N)
    STOP_MS=$(( (t1 - t0) / 1000000 ))
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$p" = "$BROKER_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
    if [ "$sig" = TERM ] && [ $rc != 0 ]; then
        problem "broker pid $BROKER_PID exited $rc after SIGTERM; log $BROKER_LOG: $(tail -3 "$BROKER_LOG" | tr '\n' ' ')"
    fi
}

# start_mock TOPIC:PARTS...: librdkafka's mock cluster (1 broker) in its own process.
start_mock() {
    local tops=() i
    for t in "$@"; do tops+=(--topic "$t"); done
    BROKER_LOG=$WORK/mock.log
    $RK mock --brokers 1 "${tops[@]}" >"$WORK/mock.boot" 2>>"$BROKER_LOG" &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    for i in $(seq 100); do
        [ -s "$WORK/mock.boot" ] && break
        sleep 0.05
    done
    BOOT=$(head -1 "$WORK/mock.boot")
    [ -n "$BOOT" ] || { problem "mock cluster did not start"; exit 1; }
}

check_log() { # name: counts WARN/ERROR lines of a runnel log
    local n
    n=$(grep -cE ' (WARN|ERROR) ' "$BROKER_LOG" || true)
    if [ "$n" != 0 ]; then
        problem "$1: $n WARN/ERROR lines in the broker log, e.g. $(grep -E ' (WARN|ERROR) ' "$BROKER_LOG" | head -2 | tr '\n' ' ')"
    fi
}

TOPICS=(w1:8 w2:8 w2rr:64 e2e500:1 e2e1:1)

# ---------------------------------------------------------------- one run
machine_limits() {
    local r=$1
    record run="$r" wl=tcp broker=machine -- $RK tcp --seconds "$TCP_S"
    record run="$r" wl=disk_nosync broker=machine -- $RK disk --dir "$WORK" --mb "$DISK_MB" --block 1024 --sync none
    record run="$r" wl=disk_fdatasync_end broker=machine -- $RK disk --dir "$WORK" --mb "$DISK_MB" --block 1024 --sync end
    record run="$r" wl=disk_fdatasync_1m broker=machine -- $RK disk --dir "$WORK" --mb $((DISK_MB / 2)) --block 1024 --sync each
    record run="$r" wl=disk_fdatasync_64k broker=machine -- $RK disk --dir "$WORK" --mb $((DISK_MB / 8)) --block 64 --sync each
}

# The floor of a persisting broker (kernel only: loopback TCP receive, and
# pwrite into the page cache), per workload-1 record of W1_BPR bytes in the
# log: the size Runnel's w1 logs had in this repetition, else rkbench's
# default (110 B).
W1_BPR=
machine_floor() {
    local r=$1 rb=()
    if [ -n "$W1_BPR" ]; then rb=(--record-bytes "$W1_BPR"); fi
    record run="$r" wl=floor broker=machine -- $RK floor --dir "$WORK" --mb "$FLOOR_MB" --chunk-kib 1024 "${rb[@]+"${rb[@]}"}"
}

# w1_log_size RUN: bytes of the w1 partitions' .log files in the running
# broker's data dir, per record produced (only after a complete w1 run).
w1_log_size() {
    local r=$1 bytes
    grep -q "^run=$r broker=runnel wl=w1 status=ok " "$RES" || return 0
    bytes=$(find "$WORK/runnel" -path '*/w1-*' -name '*.log' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}')
    [ "${bytes:-0}" -gt 0 ] || return 0
    W1_BPR=$(awk -v b="$bytes" -v n="$N1" 'BEGIN {printf "%.2f", b / n}')
    echo "run=$r broker=runnel wl=w1_log status=ok log_bytes=$bytes records=$N1 bytes_per_rec=$W1_BPR" >>"$RES"
}

# e2e WL BOOT PIDS TOPIC WAIT TAGS...: workload 4's end-to-end latency run
# (also workload 5's, against the cluster).
e2e() {
    local wl=$1 boot=$2 pids=$3 topic=$4 wait=$5; shift 5
    record "$@" wl="$wl" -- $RK e2e -b "$boot" --topic "$topic" --rate 10000 --seconds "$E2E_S" --size 100 --acks all --linger-ms 1 --fetch-wait-ms "$wait" --pid "$pids"
}

workloads() { # run broker
    local r=$1 b=$2 pid=$BROKER_PID
    local c=(run="$r" broker="$b")
    # workload 3 reads what 1 and 2 wrote
    if want 1 3; then
        record "${c[@]}" wl=w1 -- $RK produce -b "$BOOT" --topic w1 --count "$N1" --size 100 --acks 1 --linger-ms 5 --pid "$pid"
    fi
    if want 2 3; then
        record "${c[@]}" wl=w2 -- $RK produce -b "$BOOT" --topic w2 --count "$N2" --size 1024 --acks 1 --linger-ms 5 --pid "$pid"
    fi
    if want 2; then
        record "${c[@]}" wl=w2rr64 -- $RK produce -b "$BOOT" --topic w2rr --count "$N2" --size 1024 --acks 1 --linger-ms 5 --rr 64 --pid "$pid"
    fi
    if want 3; then
        record "${c[@]}" wl=w3_1k -- $RK consume -b "$BOOT" --topic w2 --partitions 8 --count 0 --pid "$pid"
        record "${c[@]}" wl=w3_100 -- $RK consume -b "$BOOT" --topic w1 --partitions 8 --count 0 --pid "$pid"
    fi
    if want 4; then
        e2e w4_wait500 "$BOOT" "$pid" e2e500 500 "${c[@]}"
        e2e w4_wait1 "$BOOT" "$pid" e2e1 1 "${c[@]}"
    fi
}

one_run() {
    local r=$1
    W1_BPR=
    # other processes on the machine make the numbers noisy: note the load
    echo "run=$r broker=machine wl=load status=ok loadavg1=$(cut -d' ' -f1 /proc/loadavg)" >>"$RES"
    # workload 6's target compares with the disk's limits
    if want machine 6; then
        say "run $r/$RUNS: machine limits"
        machine_limits "$r"
    fi

    if want 1 2 3 4; then
        say "run $r/$RUNS: runnel-server"
        rm -rf "$WORK/runnel"
        start_runnel runnel || return 0
        local targs=()
        for t in "${TOPICS[@]}"; do targs+=(--topic "$t"); done
        record run="$r" broker=runnel wl=create -- $RK create -b "$BOOT" "${targs[@]}"
        workloads "$r" runnel
        w1_log_size "$r"
        check_log "run $r runnel"
        stop_broker

        say "run $r/$RUNS: librdkafka mock cluster"
        start_mock "${TOPICS[@]}"
        workloads "$r" mock
        stop_broker
    fi
    # after the brokers: it needs the size of this repetition's w1 log
    if want machine; then
        say "run $r/$RUNS: machine limits: floor of a persisting broker"
        machine_floor "$r"
    fi

    if want 6; then
        say "run $r/$RUNS: runnel-server, durable (log.flush.interval.messages=1)"
        rm -rf "$WORK/durable"
        start_runnel durable log.flush.interval.messages=1 || return 0
        record run="$r" broker=runnel wl=create -- $RK create -b "$BOOT" --topic w6:8
        record run="$r" broker=runnel wl=w6 -- $RK produce -b "$BOOT" --topic w6 --count "$N6" --size 1024 --acks 1 --linger-ms 5 --pid "$BROKER_PID"
        check_log "run $r durable"
        stop_broker
    fi
    rm -rf "$WORK/runnel" "$WORK/durable"
}

# Workload 7: memory with many partitions and startup time with data.
# Runnel keeps three files open per partition (log, index, timeindex), so
# 10,000 partitions need more than the common 20,000 open-file limit: the
# broker runs with BENCH_NOFILE (default 65536) when the shell may raise it.
workload7() {
    local parts=$((W7_TOPICS * W7_PARTS)) r
    local NOFILE=${BENCH_NOFILE:-65536}
    say "workload 7: $parts partitions"
    rm -rf "$WORK/w7"
    start_runnel w7 || return 0
    echo "run=1 broker=runnel wl=w7_start_empty status=ok $READY fd_limit=$(awk '/^Max open files/{print $4}' /proc/$BROKER_PID/limits)" >>"$RES"
    record run=1 broker=runnel wl=w7_create -- $RK create -b "$BOOT" --prefix t --topics "$W7_TOPICS" --partitions "$W7_PARTS"
    sleep 2
    echo "run=1 broker=runnel wl=w7_idle status=ok partitions=$parts broker_rss_kb=$(awk '/^VmRSS/{print $2}' /proc/$BROKER_PID/status) broker_hwm_kb=$(awk '/^VmHWM/{print $2}' /proc/$BROKER_PID/status) fds=$(ls /proc/$BROKER_PID/fd | wc -l)" >>"$RES"
    record run=1 broker=runnel wl=w7_fill -- $RK produce -b "$BOOT" --prefix t --topics "$W7_TOPICS" --rr "$W7_PARTS" --count "$N7" --size 1024 --acks 1 --linger-ms 5 --timeout-ms 20000 --pid "$BROKER_PID"
    sleep 1
    echo "run=1 broker=runnel wl=w7_after_fill status=ok partitions=$parts broker_rss_kb=$(awk '/^VmRSS/{print $2}' /proc/$BROKER_PID/status) broker_hwm_kb=$(awk '/^VmHWM/{print $2}' /proc/$BROKER_PID/status) fds=$(ls /proc/$BROKER_PID/fd | wc -l)" >>"$RES"
    check_log "w7"
    stop_broker
    echo "run=1 broker=runnel wl=w7_shutdown_fill status=ok shutdown_ms=$STOP_MS" >>"$RES"
    for r in $(seq "$RUNS"); do
        start_runnel w7 || return 0
        sleep 1
        echo "run=$r broker=runnel wl=w7_start_data status=ok $READY partitions=$parts broker_rss_kb=$(awk '/^VmRSS/{print $2}' /proc/$BROKER_PID/status)" >>"$RES"
        say "w7 restart $r: $READY"
        stop_broker
        echo "run=$r broker=runnel wl=w7_shutdown status=ok shutdown_ms=$STOP_MS" >>"$RES"
    done
    # after a crash: every log has unflushed data to scan
    start_runnel w7 || return 0
    record run=1 broker=runnel wl=w7_more -- $RK produce -b "$BOOT" --prefix t --topics "$W7_TOPICS" --rr "$W7_PARTS" --count "$N7" --size 1024 --acks 1 --linger-ms 5 --timeout-ms 20000
    stop_broker KILL
    start_runnel w7 || return 0
    echo "run=1 broker=runnel wl=w7_start_crash status=ok $READY partitions=$parts" >>"$RES"
    say "w7 restart after SIGKILL: $READY"
    check_log "w7 after crash"
    stop_broker
    rm -rf "$WORK/w7"
}

# ---------------------------------------------------------------- workload 5
# A standalone ZooKeeper (Debian's zookeeper package, as tests/integration/zk.py
# starts it; never the system service) on a free port with its own data dir,
# and three runnel-server brokers registered in it.
ZK_JAR=${ZOOKEEPER_JAR:-/usr/share/java/zookeeper.jar}
ZK_CONNECT=

# zk_ok PORT: ZooKeeper answers the "srvr" four-letter word (serving).
zk_ok() {
    local out
    out=$(exec 2>/dev/null; exec 3<>"/dev/tcp/127.0.0.1/$1" && printf srvr >&3 && timeout 2 cat <&3) || return 1
    case $out in *Mode:*) return 0 ;; esac
    return 1
}

start_zookeeper() {
    local port i
    if ! command -v java >/dev/null || [ ! -r "$ZK_JAR" ]; then
        problem "workload 5: needs java and $ZK_JAR (Debian package zookeeper; tools/deps.sh test installs it)"
        return 1
    fi
    port=$($RK freeport)
    mkdir -p "$WORK/zookeeper"
    java -Xmx256m -Dzookeeper.admin.enableServer=false -cp "$ZK_JAR" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$port" "$WORK/zookeeper" \
        >"$WORK/zookeeper.log" 2>&1 </dev/null &
    ZK_PID=$!
    PIDS+=("$ZK_PID")
    for i in $(seq 300); do
        if zk_ok "$port"; then
            ZK_CONNECT=127.0.0.1:$port
            return 0
        fi
        kill -0 "$ZK_PID" 2>/dev/null || break
        sleep 0.1
    done
    problem "workload 5: ZooKeeper did not start on port $port; log: $(tail -3 "$WORK/zookeeper.log" | tr '\n' ' ')"
    return 1
}

# start_cluster RUN: three brokers (broker.id 1-3, fresh log dirs and logs
# $WORK/w5rRUN-bN) under the ZooKeeper chroot /bench-RUN. Sets C_PIDS,
# C_LOGS, C_BOOT (all three), C_PIDLIST.
start_cluster() {
    local r=$1 i boots=()
    C_PIDS=() C_LOGS=()
    for i in 1 2 3; do
        rm -rf "$WORK/w5r$r-b$i"
        start_runnel "w5r$r-b$i" "broker.id=$i" "zookeeper.connect=$ZK_CONNECT/bench-$r" || return 1
        C_PIDS+=("$BROKER_PID")
        C_LOGS+=("$BROKER_LOG")
        boots+=("$BOOT")
    done
    C_BOOT=$(IFS=,; echo "${boots[*]}")
    C_PIDLIST=$(IFS=,; echo "${C_PIDS[*]}")
}

stop_cluster() {
    local i
    for i in "${!C_PIDS[@]}"; do
        BROKER_PID=${C_PIDS[$i]} BROKER_LOG=${C_LOGS[$i]}
        stop_broker
    done
    C_PIDS=() C_LOGS=()
}

# Workload 5: workload 4's e2e run on 3 brokers, replication factor 3,
# min.insync.replicas=2, every replica in sync before it starts.
workload5() {
    local r i
    say "workload 5: ZooKeeper and 3 brokers, replication factor 3"
    start_zookeeper || return 0
    for r in $(seq "$RUNS"); do
        echo "run=$r broker=machine wl=w5_load status=ok loadavg1=$(cut -d' ' -f1 /proc/loadavg)" >>"$RES"
        say "workload 5, run $r/$RUNS"
        if ! start_cluster "$r"; then
            stop_cluster
            return 0
        fi
        local c=(run="$r" broker=cluster)
        record "${c[@]}" wl=w5_create -- $RK create -b "$C_BOOT" --brokers 3 --replication-factor 3 \
            --config min.insync.replicas=2 --topic e2e500:1 --topic e2e1:1
        e2e w5_wait500 "$C_BOOT" "$C_PIDLIST" e2e500 500 "${c[@]}"
        e2e w5_wait1 "$C_BOOT" "$C_PIDLIST" e2e1 1 "${c[@]}"
        for i in "${!C_LOGS[@]}"; do
            BROKER_LOG=${C_LOGS[$i]}
            check_log "w5 run $r broker $((i + 1))"
        done
        stop_cluster
        rm -rf "$WORK/w5r$r-b1" "$WORK/w5r$r-b2" "$WORK/w5r$r-b3"
    done
}

say "bench: quick=$QUICK runs=$RUNS only=${ONLY:-all} work dir $WORK"
echo "run=0 broker=info wl=info status=ok commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) src_changes=$(git status --porcelain src 2>/dev/null | wc -l) nproc=$(nproc) quick=$QUICK runs=$RUNS build=$BUILD only=${ONLY:-all}" >>"$RES"
if want machine 1 2 3 4 6; then
    for r in $(seq "$RUNS"); do
        one_run "$r"
    done
fi
if want 7; then
    workload7
fi
if want 5; then
    workload5
fi

mkdir -p "$OUT_DIR"
cp "$RES" "$OUT_DIR/results.txt"
cp "$PROBLEMS" "$OUT_DIR/problems.txt"
python3 bench/summarize.py "$RES" "$PROBLEMS" | tee "$OUT_DIR/summary.md"
