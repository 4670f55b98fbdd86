#!/bin/sh
# Builds runnel-server and runs a single-node broker on localhost:9092 with its
# data in ./data (no ZooKeeper, no config file). Extra arguments are passed on,
# e.g. --override num.partitions=3.
set -eu
cd "$(dirname "$0")/.."
tools/deps.sh build
make -j"$(nproc)" build/runnel-server >/dev/null
exec build/runnel-server config/server.properties "$@"
