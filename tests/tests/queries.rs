//! Runs every query of `docs/queries.sql` with DuckDB against the real output of `tcpscope
//! analyze` on a capture built for it with the project's packet builder, and checks the values.
//!
//! The capture (packet time from 2023-11-14 22:14:00 UTC, minute 0 to minute 2):
//! - minute 0: three clean HTTP connections to 10.2.0.10:80 (client data ACKed after 10 ms, so
//!   three RTT samples of 10 ms each), one of them with a timeout retransmission of the client's
//!   request; three refused attempts to 10.2.0.20:443 from two clients, one to 10.2.0.21:22;
//! - minute 1: one connection reset by its client (to 10.2.0.10:80), two reset by the server
//!   10.2.0.30:8080, and one whose client advertises a zero window for 2 s (to 10.2.0.40:9000);
//! - minute 1 too: a connection to 10.2.0.60:2049 whose first 300 response bytes the capture
//!   missed (the client ACKs them), left open;
//! - minute 2: a port-reuse storm: 10.1.0.9:40000 opens four connections to 10.2.0.50:7000 in a
//!   row, each reset by the client and followed 0.5 s later by a SYN with a new ISN.

use std::collections::BTreeMap;
use std::path::Path;
use tcpscope::decode::TcpFlags;
use tcpscope::testing::{write_ethernet_pcap, Conversation, PacketBuilder};

const T0: u64 = 1_700_000_040 * 1_000_000_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn scenario() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    // Minute 0: clean HTTP, one with a retransmitted request.
    for i in 0..3u64 {
        let t = T0 + i * S;
        let mut c = Conversation::new(&format!("10.1.0.{}:5000{}", i + 1, i + 1), "10.2.0.10:80", 1_000, 9_000);
        c.handshake(t, 20 * MS);
        let req_seq = c.client_next();
        c.client_data(t + 30 * MS, 100);
        if i == 2 {
            // The request is lost after the tap... and sent again 300 ms later.
            let again = PacketBuilder::v4(&format!("10.1.0.{}:5000{}", i + 1, i + 1), "10.2.0.10:80")
                .seq(req_seq)
                .flags(TcpFlags::ACK | TcpFlags::PSH)
                .ack(c.server_next())
                .payload_len(100)
                .window(512);
            c.push(t + 330 * MS, again);
            c.server_ack(t + 340 * MS);
        } else {
            c.server_ack(t + 40 * MS);
        }
        c.server_data(t + 400 * MS, 1_000);
        c.client_ack(t + 420 * MS);
        c.close(t + 500 * MS, 20 * MS);
        frames.extend(c.frames);
    }
    // Minute 0: refused attempts.
    for (i, (client, server)) in [
        ("10.1.0.4:41001", "10.2.0.20:443"),
        ("10.1.0.4:41002", "10.2.0.20:443"),
        ("10.1.0.5:41003", "10.2.0.20:443"),
        ("10.1.0.5:41004", "10.2.0.21:22"),
    ]
    .iter()
    .enumerate()
    {
        let t = T0 + 10 * S + i as u64 * S;
        let syn = PacketBuilder::v4(client, server).seq(7_000).flags(TcpFlags::SYN);
        let rst = PacketBuilder::v4(server, client).seq(0).flags(TcpFlags::RST).ack(7_001).window(0);
        frames.push((t, syn.ethernet()));
        frames.push((t + MS, rst.ethernet()));
    }
    // Minute 1: resets.
    let t = T0 + 60 * S;
    let mut c = Conversation::new("10.1.0.6:42001", "10.2.0.10:80", 1_000, 9_000);
    c.handshake(t, 20 * MS);
    c.client_data(t + 30 * MS, 50);
    let rst = c.from_client().flags(TcpFlags::RST | TcpFlags::ACK).window(0);
    c.push(t + 60 * MS, rst);
    frames.extend(c.frames);
    for (i, client) in ["10.1.0.7:42002", "10.1.0.7:42003"].iter().enumerate() {
        let t = T0 + 62 * S + i as u64 * S;
        let mut c = Conversation::new(client, "10.2.0.30:8080", 1_000, 9_000);
        c.handshake(t, 5 * MS);
        c.client_data(t + 10 * MS, 80);
        c.server_reset(t + 15 * MS);
        frames.extend(c.frames);
    }
    // Minute 1: a 2-second zero-window stall of the client's receive window.
    let t = T0 + 70 * S;
    let mut c = Conversation::new("10.1.0.8:43001", "10.2.0.40:9000", 1_000, 9_000);
    c.handshake(t, 10 * MS);
    c.client_data(t + 20 * MS, 20);
    c.server_data(t + 30 * MS, 1_000);
    let zero = c.from_client().flags(TcpFlags::ACK).window(0);
    c.push(t + 40 * MS, zero);
    let update = c.from_client().flags(TcpFlags::ACK).window(512);
    c.push(t + 2_040 * MS, update);
    c.server_data(t + 2_050 * MS, 500);
    c.client_ack(t + 2_060 * MS);
    c.close(t + 2_100 * MS, 10 * MS);
    frames.extend(c.frames);
    // Minute 1: capture loss.
    let t = T0 + 80 * S;
    let mut c = Conversation::new("10.1.0.10:44001", "10.2.0.60:2049", 1_000, 9_000);
    c.handshake(t, 10 * MS);
    let after_hole = c.from_server().seq(9_001 + 300).flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(200);
    c.push(t + 20 * MS, after_hole);
    let ack = c.from_client().ack(9_001 + 500).flags(TcpFlags::ACK).window(512);
    c.push(t + 30 * MS, ack);
    frames.extend(c.frames);
    // Minute 2: port-reuse storm.
    for g in 0..4u64 {
        let t = T0 + 125 * S + g * 500 * MS;
        let mut c = Conversation::new("10.1.0.9:40000", "10.2.0.50:7000", 100_000 * (g as u32 + 1), 9_000);
        c.handshake(t, 2 * MS);
        let rst = c.from_client().flags(TcpFlags::RST | TcpFlags::ACK).window(0);
        c.push(t + 10 * MS, rst);
        frames.extend(c.frames);
    }
    frames
}

/// The queries of `docs/queries.sql`, by name, with `{out}` replaced.
fn queries(out: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(tcpscope_tests::workspace_root().join("docs/queries.sql")).expect("docs/queries.sql");
    let mut map = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name: ") {
            if let Some((n, q)) = current.take() {
                map.insert(n, q);
            }
            current = Some((name.trim().to_owned(), String::new()));
        } else if let Some((_, q)) = current.as_mut() {
            if !line.starts_with("--") {
                q.push_str(line);
                q.push('\n');
            }
        }
    }
    if let Some((n, q)) = current {
        map.insert(n, q);
    }
    for q in map.values_mut() {
        *q = q.replace("{out}", &out.display().to_string());
    }
    map
}

fn row(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| if *v == "NULL" { None } else { Some(v.to_string()) }).collect()
}

#[test]
fn documented_queries_answer_the_scenario() {
    if tcpscope_tests::python_with_duckdb().is_none() {
        panic!("DuckDB's Python package is missing: run scripts/test.sh (or python3 -m venv .venv && .venv/bin/pip install duckdb)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("scenario.pcap");
    write_ethernet_pcap(&pcap, &scenario()).expect("write pcap");
    let out = dir.path().join("out");
    let run = tcpscope_tests::analyze(&[&pcap], &out, &["--workers", "2"]);
    assert!(run.status.success(), "tcpscope failed: {}", String::from_utf8_lossy(&run.stderr));

    let queries = queries(&out);
    let expected_names = [
        "capture_loss",
        "events_per_minute",
        "flows_by_conn_state",
        "handshake_latency_by_server",
        "port_reuse_storms",
        "refused_connections_by_server",
        "resets_by_side",
        "rtt_p95_by_server",
        "top_retransmitting_connections",
        "zero_window_stalls",
    ];
    assert_eq!(queries.keys().map(String::as_str).collect::<Vec<_>>(), expected_names);
    let mut results = BTreeMap::new();
    for (name, sql) in &queries {
        let rows = tcpscope_tests::duckdb_query(sql);
        println!("-- {name}");
        for r in &rows {
            println!("   {r:?}");
        }
        results.insert(name.as_str(), rows);
    }

    assert_eq!(
        results["flows_by_conn_state"],
        vec![row(&["RSTO", "5"]), row(&["REJ", "4"]), row(&["SF", "4"]), row(&["RSTR", "2"]), row(&["S1", "1"])]
    );
    // One timeout retransmission of 10.1.0.3's request, out of 11 packets.
    assert_eq!(
        results["top_retransmitting_connections"],
        vec![row(&[
            "10.1.0.3",
            "50003",
            "10.2.0.10",
            "80",
            &tcpscope::flow::community_id::tcp_community_id(
                ("10.1.0.3".parse().unwrap(), 50003),
                ("10.2.0.10".parse().unwrap(), 80)
            ),
            "1",
            "11",
            "9.1",
        ])]
    );
    assert_eq!(
        results["refused_connections_by_server"],
        vec![row(&["10.2.0.20", "443", "3", "2"]), row(&["10.2.0.21", "22", "1", "1"])]
    );
    // Samples of the clients' sequence space as Wireshark's ack_rtt counts them: the SYN (answered
    // by the SYN/ACK or the refusing RST), the data and the FIN. 10.2.0.10: three HTTP flows give
    // SYN 20 ms + request 10 ms + FIN 20 ms, except the retransmitted request (no sample, Karn's
    // rule), and the reset flow only its SYN: 9 samples, every flow's p95 is 20 ms.
    assert_eq!(
        results["rtt_p95_by_server"],
        vec![
            row(&["10.2.0.10", "80", "4", "9", "20.0", "20.0", "20.0"]),
            row(&["10.2.0.40", "9000", "1", "3", "10.0", "10.0", "10.0"]),
            row(&["10.2.0.60", "2049", "1", "1", "10.0", "10.0", "10.0"]),
            row(&["10.2.0.30", "8080", "2", "4", "5.0", "5.0", "5.0"]),
            row(&["10.2.0.50", "7000", "4", "4", "2.0", "2.0", "2.0"]),
            row(&["10.2.0.20", "443", "3", "3", "1.0", "1.0", "NULL"]),
            row(&["10.2.0.21", "22", "1", "1", "1.0", "1.0", "NULL"]),
        ]
    );
    assert_eq!(
        results["zero_window_stalls"],
        vec![row(&["10.1.0.8", "43001", "10.2.0.40", "9000", "orig", "2.0", "1", "0"])]
    );
    assert_eq!(
        results["resets_by_side"],
        vec![row(&["originator", "RSTO", "5"]), row(&["responder", "REJ", "4"]), row(&["responder", "RSTR", "2"])]
    );
    // Per-packet events: the retransmission in minute 0, the zero window in minute 1, the three
    // reused ports in minute 2 (other kinds may appear beside them).
    let events = &results["events_per_minute"];
    let has = |minute: &str, kind: &str, count: &str| {
        events.iter().any(|r| r[0].as_deref().is_some_and(|m| m.starts_with(minute)) && r[1].as_deref() == Some(kind) && r[2].as_deref() == Some(count))
    };
    assert!(has("2023-11-14 22:14:00", "retransmission", "1"), "{events:?}");
    assert!(has("2023-11-14 22:15:00", "zero_window", "1"), "{events:?}");
    assert!(has("2023-11-14 22:16:00", "port_reuse", "3"), "{events:?}");
    assert!(events.iter().all(|r| ["2023-11-14 22:14:00", "2023-11-14 22:15:00", "2023-11-14 22:16:00"]
        .iter()
        .any(|m| r[0].as_deref().is_some_and(|v| v.starts_with(m)))));
    assert_eq!(
        results["port_reuse_storms"],
        vec![row(&["10.1.0.9", "40000", "10.2.0.50", "7000", "4", "3", "1.5"])]
    );
    assert_eq!(
        results["handshake_latency_by_server"],
        vec![
            row(&["10.2.0.10", "80", "4", "20.0", "0.001"]),
            row(&["10.2.0.40", "9000", "1", "10.0", "0.001"]),
            row(&["10.2.0.60", "2049", "1", "10.0", "0.001"]),
            row(&["10.2.0.30", "8080", "2", "5.0", "0.001"]),
            row(&["10.2.0.50", "7000", "4", "2.0", "0.001"]),
        ]
    );
    // 300 of the 500 bytes of the response sequence space were ACKed but never captured.
    assert_eq!(
        results["capture_loss"],
        vec![row(&["10.1.0.10", "44001", "10.2.0.60", "2049", "300", "0", "300", "ShAdg", "60.0"])]
    );
}
