#!/usr/bin/env bash
# bench/profile-w5.sh - where the end-to-end latency of workload 5 goes: a
# 3-broker cluster on ZooKeeper (as bench/run.sh starts it), a topic with
# replication factor 3, and workload 5's e2e run while perf records the
# tcp:tcp_probe tracepoint on the leader's connections (one event per
# segment, on loopback at the time it is sent, timestamps on CLOCK_MONOTONIC
# like rkbench's). bench/e2e_stages.py lines each message up with the
# segments: producer client -> leader -> followers -> leader -> consumer ->
# client, and prints p50/p99/max per stage.
#
#   bench/profile-w5.sh                  fetch.wait.max.ms=500, 10 s
#   PROFILE_WAIT=1 PROFILE_RF=1 bench/profile-w5.sh   (RF 1 on the same cluster: no follower stages)
#
# Needs perf (Debian linux-perf) with access to tracepoints (root), java and
# Debian's zookeeper package. Output: the table on stdout, raw data in
# build/bench/profile-w5/.
set -euo pipefail
cd "$(dirname "$0")/.."

WAIT=${PROFILE_WAIT:-500}
RF=${PROFILE_RF:-3}
SECS=${PROFILE_SECONDS:-10}
ZK_JAR=${ZOOKEEPER_JAR:-/usr/share/java/zookeeper.jar}
OUT=build/bench/profile-w5
make -s build/runnel-server >/dev/null
make -s -f bench/Makefile >/dev/null
RK=build/bench/rkbench
mkdir -p "$OUT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-profile-w5.XXXXXX")
cp build/runnel-server "$WORK/"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

zport=$($RK freeport)
mkdir "$WORK/zk"
java -Xmx256m -Dzookeeper.admin.enableServer=false -cp "$ZK_JAR" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$zport" "$WORK/zk" >"$WORK/zk.log" 2>&1 </dev/null &
PIDS+=($!)
for i in $(seq 300); do
    out=$(exec 2>/dev/null; exec 3<>"/dev/tcp/127.0.0.1/$zport" && printf srvr >&3 && timeout 2 cat <&3) &&
        [[ $out == *Mode:* ]] && break
    sleep 0.1
done
boots=() bpids=() ports=()
for i in 1 2 3; do
    port=$($RK freeport)
    "$WORK/runnel-server" --override "broker.id=$i" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
        --override "log.dirs=$WORK/b$i" --override "zookeeper.connect=127.0.0.1:$zport/profile" \
        >"$WORK/b$i.log" 2>&1 </dev/null &
    PIDS+=($!)
    bpids+=($!)
    ports+=("$port")
    boots+=("127.0.0.1:$port")
    $RK waitport --port "$port" >/dev/null
done
BOOT=$(IFS=,; echo "${boots[*]}")
$RK create -b "$BOOT" --brokers 3 --replication-factor "$RF" --config min.insync.replicas=$((RF > 1 ? 2 : 1)) --topic e2e:1
sleep 1
leader=
for i in 0 1 2; do
    grep -q '\] e2e-0: leader' "$WORK/b$((i + 1)).log" && leader=${ports[$i]}
done
[ -n "$leader" ] || { echo "profile-w5: no leader found in the broker logs" >&2; exit 1; }
# the followers' fetch connections to the leader (their local ports)
foll=$(ss -tnp 2>/dev/null | awk -v lp=":$leader" '$5 ~ lp"$" && /runnel-server/ {n=split($4,a,":"); print a[n]}' | paste -sd,)
[ -n "$foll" ] || foll=none

perf record -k CLOCK_MONOTONIC -e tcp:tcp_probe --filter "sport == $leader || dport == $leader" -a \
    -o "$WORK/tcp.data" -- sleep $((SECS + 4)) >"$WORK/perf.log" 2>&1 &
PERF=$!
sleep 0.5
$RK e2e -b "$BOOT" --topic e2e --rate 10000 --seconds "$SECS" --size 100 --acks all --linger-ms 1 \
    --fetch-wait-ms "$WAIT" --dump "$OUT/messages.txt" --pid "$(IFS=,; echo "${bpids[*]}")" | tee "$OUT/result.txt"
wait "$PERF" || true
perf script -i "$WORK/tcp.data" -F time,trace 2>/dev/null >"$OUT/segments.txt"
echo "leader port $leader, follower connections from ports $foll; replication factor $RF, fetch.wait.max.ms=$WAIT;" \
    "1-min load average $(cut -d' ' -f1 /proc/loadavg)"
python3 bench/e2e_stages.py "$leader" "$foll" "$OUT/messages.txt" <"$OUT/segments.txt"
