#!/bin/sh
# The whole test suite: C unit tests (plain and under ASan+UBSan), a bounded
# fuzzing run of the decoders, and the integration tests that drive a real
# runnel-server with real clients (kcat, confluent-kafka, kafka-python).
# FUZZ_SECONDS (default 30 per target) bounds the fuzzing.
set -eu
cd "$(dirname "$0")/.."
tools/deps.sh test
jobs=$(nproc)
make -j"$jobs" all
echo "== unit tests"
make -j"$jobs" unit
echo "== fuzzing (${FUZZ_SECONDS:-30}s per target)"
make -j"$jobs" fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
echo "== integration tests"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
