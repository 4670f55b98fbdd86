#!/bin/sh
# Installs the Debian packages Runnel needs when they are missing.
#   tools/deps.sh build   - compiler and libraries for runnel-server
#   tools/deps.sh test    - plus the real clients, ZooKeeper and the fuzzer the tests use
set -eu
what=${1:-build}
pkgs="gcc make zlib1g-dev liblz4-dev libzstd-dev libsnappy-dev librdkafka-dev libzookeeper-mt-dev"
if [ "$what" = test ]; then
    pkgs="$pkgs kcat python3-confluent-kafka python3-kafka python3-pytest python3-snappy python3-lz4 \
python3-zstandard clang libclang-rt-14-dev zookeeper"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
