#!/usr/bin/env bash
# bench/profile.sh - where runnel-server spends its time under workloads 1
# (produce 100 B records) and 3 (consume them, and 1 KiB records, from the
# start): perf record with call graphs on a frame-pointer build of the broker.
#
#   bench/profile.sh              reports in build/bench/profile-*.txt
#
# Needs perf (Debian: linux-perf). On machines without hardware counters
# (most VMs) it samples the cpu-clock software event. PROFILE_N1 / PROFILE_N2
# set the record counts (default 2,000,000 × 100 B and 200,000 × 1 KiB).
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${PROFILE_N1:-2000000}
N2=${PROFILE_N2:-200000}
OUT=build/bench
FP=build/bench/fp

# The Makefile's build dir and flags are variables, so a second build with
# frame pointers lives apart from the normal one.
make -s B=$FP CFLAGS="-O2 -fno-omit-frame-pointer" $FP/runnel-server >/dev/null
make -s -f bench/Makefile >/dev/null
RK=build/bench/rkbench

WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-profile.XXXXXX")
BPID=0
PPID_PERF=0
cleanup() {
    [ "$PPID_PERF" != 0 ] && kill -INT "$PPID_PERF" 2>/dev/null && wait "$PPID_PERF" 2>/dev/null
    [ "$BPID" != 0 ] && kill -TERM "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$($RK freeport)
$FP/runnel-server --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$WORK/data" >"$WORK/broker.log" 2>&1 &
BPID=$!
$RK waitport --port "$port" >/dev/null
B=127.0.0.1:$port
$RK create -b "$B" --topic w1:8 --topic w2:8 >/dev/null

# profile NAME CMD...: perf samples the broker while CMD runs.
profile() {
    local name=$1; shift
    perf record -e cpu-clock -F 4000 -g -p "$BPID" -o "$WORK/$name.data" 2>"$WORK/$name.perf.log" &
    PPID_PERF=$!
    sleep 0.5
    "$@" | sed "s/^RESULT/$name:/"
    kill -INT "$PPID_PERF"
    wait "$PPID_PERF" || true
    PPID_PERF=0
    {
        echo "# $name: $*"
        echo "## kernel vs broker code (self time by object)"
        perf report -i "$WORK/$name.data" --no-children --sort dso --stdio -g none 2>/dev/null |
            grep '%'
        echo "## self time by symbol"
        perf report -i "$WORK/$name.data" --no-children --sort sym --stdio -g none --percent-limit 0.7 2>/dev/null |
            grep -v '^$'
        echo "## inclusive time (children) by symbol"
        perf report -i "$WORK/$name.data" --children --sort sym --stdio -g none --percent-limit 3 2>/dev/null |
            grep -v '^$'
        echo "## call graph (caller view), top entries"
        perf report -i "$WORK/$name.data" --no-children --sort sym --stdio -g caller,0.5,callee,function,percent \
            --percent-limit 3 2>/dev/null | grep -v '^$' | head -250
    } >"$OUT/profile-$name.txt"
    echo "profile: $OUT/profile-$name.txt"
}

# syscall counts tell per-request overheads apart from per-byte ones
strace_counts() {
    local name=$1; shift
    command -v strace >/dev/null || return 0
    strace -c -p "$BPID" -o "$OUT/strace-$name.txt" 2>/dev/null &
    local sp=$!
    sleep 0.5
    "$@" >/dev/null
    kill -INT "$sp"
    wait "$sp" || true
    echo "syscalls: $OUT/strace-$name.txt"
}

profile w1_produce $RK produce -b "$B" --topic w1 --count "$N1" --size 100 --acks 1 --linger-ms 5 --pid "$BPID"
$RK produce -b "$B" --topic w2 --count "$N2" --size 1024 --acks 1 --linger-ms 5 >/dev/null
profile w3_consume_100 $RK consume -b "$B" --topic w1 --partitions 8 --count 0 --pid "$BPID"
profile w3_consume_1k $RK consume -b "$B" --topic w2 --partitions 8 --count 0 --pid "$BPID"
strace_counts w1_produce $RK produce -b "$B" --topic w1 --count "$N1" --size 100 --acks 1 --linger-ms 5
strace_counts w3_consume_1k $RK consume -b "$B" --topic w2 --partitions 8 --count 0
