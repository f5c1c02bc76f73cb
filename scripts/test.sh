#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs it.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: libpcap (BPF filter compiler for live capture), iproute2 (network namespaces
# for the live tests), tcpdump/tcpreplay (replay and comparison), curl and ethtool (live HTTP test,
# veth offloads off), a C compiler (the C plugin test).
APT_PACKAGES="libpcap-dev iproute2 tcpdump tcpreplay gcc python3-venv curl ethtool"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "scripts/test.sh: installing$missing" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "scripts/test.sh: missing packages:$missing (run as root, or install them)" >&2
  fi
fi

# DuckDB's Python package in a local virtualenv: the output tests read Parquet back with it.
if ! .venv/bin/python -c 'import duckdb, pytz' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'duckdb>=1.1' pytz
fi
export TCPSCOPE_PYTHON="$PWD/.venv/bin/python"

cargo test --workspace "$@"
