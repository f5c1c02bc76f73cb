-- DuckDB queries over tcpscope's `events` and `flows` datasets.
--
-- Replace {out} with the output directory of `tcpscope analyze ... --out DIR` (or of `capture`).
-- Every query reads the datasets with Hive partitioning (date=…/hour=…), e.g.
--   duckdb -c "$(sed -n '/name: flows_by_conn_state/,/;/p' docs/queries.sql | sed 's|{out}|/data/out|g')"
-- Column meanings: conn_state and history follow Zeek's conn.log; *_ns are nanoseconds;
-- orig = the connection's originator (the SYN sender), resp = the responder.
-- Each query starts with a `-- name:` line; tests/tests/queries.rs runs every one of them.

-- name: flows_by_conn_state
-- How connections ended, in Zeek's terms (SF normal, S0 unanswered, REJ refused, RSTO/RSTR reset...).
SELECT conn_state, count(*) AS flows
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
GROUP BY conn_state
ORDER BY flows DESC, conn_state;

-- name: top_retransmitting_connections
-- Connections with the most retransmitted segments (timeout + fast + spurious, both directions).
SELECT orig_h, orig_p, resp_h, resp_p, community_id,
       orig_retransmissions + orig_fast_retransmissions + orig_spurious_retransmissions
     + resp_retransmissions + resp_fast_retransmissions + resp_spurious_retransmissions AS retransmissions,
       orig_pkts + resp_pkts AS packets,
       round(100.0 * retransmissions / packets, 1) AS retransmitted_pct
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE retransmissions > 0
ORDER BY retransmissions DESC, packets DESC, orig_h, orig_p
LIMIT 20;

-- name: refused_connections_by_server
-- Servers that answered connection attempts with a RST (conn_state REJ), and how many clients tried.
SELECT resp_h, resp_p, count(*) AS refused, count(DISTINCT orig_h) AS clients
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE conn_state = 'REJ'
GROUP BY resp_h, resp_p
ORDER BY refused DESC, resp_h, resp_p;

-- name: rtt_p95_by_server
-- Round-trip time seen from the capture point towards each server: ACK-based RTT of the
-- clients' data (Karn-filtered), and the SYN -> SYN/ACK time, in milliseconds.
SELECT resp_h, resp_p,
       count(*) AS flows,
       sum(orig_rtt_samples) AS rtt_samples,
       round(quantile_cont(orig_rtt_p95_ns, 0.95) / 1e6, 3) AS rtt_p95_ms,
       round(max(orig_rtt_max_ns) / 1e6, 3) AS rtt_max_ms,
       round(quantile_cont(handshake_syn_synack_ns, 0.95) / 1e6, 3) AS handshake_p95_ms
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE orig_rtt_samples > 0
GROUP BY resp_h, resp_p
ORDER BY rtt_p95_ms DESC, resp_h, resp_p;

-- name: zero_window_stalls
-- Connections whose receiver advertised a zero window, which side stalled, and for how long.
SELECT orig_h, orig_p, resp_h, resp_p,
       CASE WHEN orig_zero_window_stall_ns >= resp_zero_window_stall_ns THEN 'orig' ELSE 'resp' END AS stalled_receiver,
       round(greatest(orig_zero_window_stall_ns, resp_zero_window_stall_ns) / 1e9, 3) AS stall_s,
       orig_zero_windows + resp_zero_windows AS zero_window_advertisements,
       orig_zero_window_probes + resp_zero_window_probes AS probes
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE orig_zero_window_stall_ns + resp_zero_window_stall_ns > 0
ORDER BY stall_s DESC, orig_h, orig_p;

-- name: resets_by_side
-- Who reset connections: the originator (RSTO, RSTOS0) or the responder (RSTR, RSTRH, REJ).
SELECT CASE WHEN conn_state IN ('RSTO', 'RSTOS0') THEN 'originator' ELSE 'responder' END AS reset_by,
       conn_state,
       count(*) AS flows
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE conn_state IN ('RSTO', 'RSTOS0', 'RSTR', 'RSTRH', 'REJ')
GROUP BY reset_by, conn_state
ORDER BY reset_by, flows DESC, conn_state;

-- name: events_per_minute
-- Event rate by kind, per minute of packet time.
SELECT date_trunc('minute', ts) AS minute, kind, count(*) AS events
FROM read_parquet('{out}/events/**/*.parquet', hive_partitioning = true)
GROUP BY minute, kind
ORDER BY minute, events DESC, kind;

-- name: port_reuse_storms
-- 4-tuples used by several connections in a row (a client reusing its source port quickly).
SELECT orig_h, orig_p, resp_h, resp_p,
       count(*) AS connections,
       count(*) FILTER (WHERE close_reason = 'port_reuse') AS ended_by_reuse,
       round(epoch(max(ts) - min(ts)), 3) AS span_s
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
GROUP BY orig_h, orig_p, resp_h, resp_p
HAVING count(*) > 1
ORDER BY connections DESC, orig_h, orig_p;

-- name: handshake_latency_by_server
-- SYN -> SYN/ACK (server and network) and SYN/ACK -> ACK (client side) medians, in milliseconds.
SELECT resp_h, resp_p, count(*) AS handshakes,
       round(median(handshake_syn_synack_ns) / 1e6, 3) AS syn_synack_ms,
       round(median(handshake_synack_ack_ns) / 1e6, 3) AS synack_ack_ms
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE handshake_syn_synack_ns IS NOT NULL
GROUP BY resp_h, resp_p
ORDER BY syn_synack_ms DESC, resp_h, resp_p;

-- name: capture_loss
-- Bytes the endpoints acknowledged but the capture never saw (Zeek's missed_bytes): tap or
-- capture drops rather than network loss.
SELECT orig_h, orig_p, resp_h, resp_p, missed_bytes, orig_missed_bytes, resp_missed_bytes, history,
       round(100.0 * missed_bytes / nullif(orig_bytes + resp_bytes, 0), 2) AS missed_pct
FROM read_parquet('{out}/flows/**/*.parquet', hive_partitioning = true)
WHERE missed_bytes > 0
ORDER BY missed_bytes DESC, orig_h, orig_p;
