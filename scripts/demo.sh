#!/usr/bin/env bash
# Sets up a fresh machine, builds tcpscope, analyses the shipped sample capture and queries the
# result with DuckDB. Usage: scripts/demo.sh [OUT_DIR]   (default: out/sample)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/sample}"

if ! .venv/bin/python -c 'import duckdb, pytz' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'duckdb>=1.1' pytz
fi
cargo build --release -q -p tcpscope
rm -rf "$out"
./target/release/tcpscope analyze samples/sample.pcap --out "$out" --sensor demo

.venv/bin/python - "$out" <<'PY'
import duckdb, sys
out = sys.argv[1]
flows = f"read_parquet('{out}/flows/**/*.parquet', hive_partitioning=true)"
events = f"read_parquet('{out}/events/**/*.parquet', hive_partitioning=true)"
print("\nFlows by Zeek conn_state:")
duckdb.sql(f"SELECT conn_state, count(*) AS flows, sum(orig_pkts + resp_pkts) AS packets FROM {flows} GROUP BY ALL ORDER BY flows DESC").show()
print("Events by kind:")
duckdb.sql(f"SELECT kind, severity, count(*) AS n FROM {events} GROUP BY ALL ORDER BY n DESC, kind").show()
print("Connections with trouble:")
duckdb.sql(f"""SELECT orig_h || ':' || orig_p AS client, resp_h || ':' || resp_p AS server, conn_state, history,
                      orig_retransmissions + resp_retransmissions + orig_fast_retransmissions + resp_fast_retransmissions AS retrans,
                      orig_zero_windows + resp_zero_windows AS zero_windows
               FROM {flows} WHERE conn_state <> 'SF' OR retrans > 0 OR zero_windows > 0 ORDER BY ts""").show()
PY
