//! End-to-end: the `tcpscope` binary on the shipped sample and on generated captures, with the
//! Parquet read back by the parquet crate and by DuckDB; worker-count invariance; bad inputs.

use arrow_array::{Array, Int64Array, StringArray};
use std::path::{Path, PathBuf};
use tcpscope::decode::TcpFlags;
use tcpscope::testing::{scenarios, write_ethernet_pcap, PacketBuilder, PcapNgWriter, PcapWriter};
use tcpscope_tests::{analyze, duckdb_dataset, duckdb_query, read_dataset, workspace_root};

fn sample() -> PathBuf {
    workspace_root().join("samples/sample.pcap")
}

fn column_strings(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
        let col = col.as_any().downcast_ref::<StringArray>().expect("string column");
        out.extend((0..col.len()).map(|i| col.value(i).to_owned()));
    }
    out
}

fn column_i64(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
        let col = col.as_any().downcast_ref::<Int64Array>().expect("int64 column");
        out.extend((0..col.len()).map(|i| (!col.is_null(i)).then(|| col.value(i))));
    }
    out
}

#[test]
fn shipped_sample_is_the_generator_output() {
    // The sample in the repository is exactly what the project's own builder produces.
    let dir = tempfile::tempdir().unwrap();
    let regenerated = dir.path().join("sample.pcap");
    write_ethernet_pcap(&regenerated, &scenarios::sample()).unwrap();
    assert_eq!(std::fs::read(&regenerated).unwrap(), std::fs::read(sample()).unwrap());
}

#[test]
fn sample_yields_flows_and_events_readable_by_parquet_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = analyze(&[&sample()], &out, &["--sensor", "e2e"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    // parquet crate
    let flows = read_dataset(&out, "flows");
    let rows: usize = flows.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 35, "the sample holds 35 connections");
    let states = column_strings(&flows, "conn_state");
    assert_eq!(states.iter().filter(|s| *s == "REJ").count(), 1);
    assert_eq!(states.iter().filter(|s| *s == "S0").count(), 1);
    assert!(column_strings(&flows, "sensor").iter().all(|s| s == "e2e"));
    assert!(column_strings(&flows, "source").iter().all(|s| s == "sample.pcap"));
    let pkts: i64 = column_i64(&flows, "orig_pkts").iter().chain(column_i64(&flows, "resp_pkts").iter()).map(|v| v.unwrap()).sum();
    assert_eq!(pkts, 414, "every TCP packet of the sample lands in exactly one flow");

    let events = read_dataset(&out, "events");
    let kinds = column_strings(&events, "kind");
    assert!(kinds.contains(&"connection_refused".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"midstream_start".to_owned()), "{kinds:?}");

    // DuckDB with Hive partitioning: partition columns and types as users see them.
    let flows_sql = duckdb_dataset(&out, "flows");
    let rows = duckdb_query(&format!(
        "SELECT date::VARCHAR, hour, count(*), sum(orig_pkts + resp_pkts) FROM {flows_sql} GROUP BY ALL ORDER BY ALL"
    ));
    assert_eq!(rows, vec![vec![Some("2026-11-01".into()), Some("12".into()), Some("35".into()), Some("414".into())]]);
    let refused = duckdb_query(&format!(
        "SELECT packet_number, src_ip, src_port, count FROM {} WHERE kind = 'connection_refused'",
        duckdb_dataset(&out, "events")
    ));
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0][1].as_deref(), Some("198.18.1.2"));
    assert_eq!(refused[0][2].as_deref(), Some("8080"));
    assert_eq!(refused[0][3].as_deref(), Some("2"), "two SYNs before the RST");
    let v6 = duckdb_query(&format!("SELECT count(*) FROM {flows_sql} WHERE ip_version = 6 AND resp_h = 'fd00:198:18::1'"));
    assert_eq!(v6[0][0].as_deref(), Some("4"));
    // Nothing is left in the staging folder after a clean run.
    assert_eq!(std::fs::read_dir(out.join(".staging")).unwrap().count(), 0);
}

fn sorted_rows(out: &Path, dataset: &str) -> Vec<Vec<Option<String>>> {
    duckdb_query(&format!("SELECT * EXCLUDE (date, hour) FROM {} ORDER BY ALL", duckdb_dataset(out, dataset)))
}

#[test]
fn output_is_identical_whatever_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.pcap");
    let mut frames = scenarios::sample();
    frames.extend(scenarios::many_connections(3_000, 200));
    write_ethernet_pcap(&input, &frames).unwrap();
    let mut baseline = None;
    for workers in ["1", "2", "4", "7"] {
        let out = dir.path().join(format!("w{workers}"));
        let run = analyze(&[&input], &out, &["--workers", workers, "--sensor", "inv"]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let rows = (sorted_rows(&out, "flows"), sorted_rows(&out, "events"));
        assert_eq!(rows.0.len(), 3_035);
        match &baseline {
            None => baseline = Some(rows),
            Some(b) => assert!(b == &rows, "output with {workers} workers differs from 1 worker"),
        }
    }
}

#[test]
fn several_files_are_one_timeline_with_per_file_packet_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    let frames = scenarios::sample();
    let (first, second) = frames.split_at(200);
    write_ethernet_pcap(&a, first).unwrap();
    write_ethernet_pcap(&b, second).unwrap();
    let out = dir.path().join("out");
    let run = analyze(&[&a, &b], &out, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let rows = duckdb_query(&format!(
        "SELECT source, min(packet_number) FROM {} GROUP BY 1 ORDER BY 1",
        duckdb_dataset(&out, "events")
    ));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0].as_deref(), Some("b.pcap"));
    assert!(rows[1][1].as_deref().unwrap().parse::<u64>().unwrap() <= 214);
}

#[test]
fn pcapng_with_nanosecond_resolution_keeps_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.pcapng");
    let mut w = PcapNgWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let eth = w.add_interface(1, 9).unwrap();
    let t0 = 1_700_000_000_123_456_789u64;
    let syn = PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80").flags(TcpFlags::SYN).seq(1);
    let synack = PacketBuilder::v4("198.18.0.2:80", "198.18.0.1:40000").flags(TcpFlags::SYN).seq(9).ack(2);
    let ack = PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80").seq(2).ack(10);
    w.write_packet(eth, t0, &syn.ethernet()).unwrap();
    w.write_packet(eth, t0 + 1_001, &synack.ethernet()).unwrap();
    w.write_packet(eth, t0 + 2_003, &ack.ethernet()).unwrap();
    w.into_inner().unwrap();
    let out = dir.path().join("out");
    let run = analyze(&[&path], &out, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let flows = read_dataset(&out, "flows");
    assert_eq!(column_i64(&flows, "duration_ns"), vec![Some(2_003)]);
    assert_eq!(column_i64(&flows, "handshake_syn_synack_ns"), vec![Some(1_001)]);
}

fn write_sample_pcap(path: &Path, count: usize) -> Vec<u8> {
    let frames = &scenarios::sample()[..count];
    write_ethernet_pcap(path, frames).unwrap();
    std::fs::read(path).unwrap()
}

fn assert_error(stderr: &[u8], needles: &[&str]) {
    let text = String::from_utf8_lossy(stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected:\n{text}");
    for n in needles {
        assert!(errors[0].contains(n), "error line lacks {n:?}: {}", errors[0]);
    }
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn bad_inputs_get_one_clear_error_and_keep_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    write_ethernet_pcap(&good, &scenarios::many_connections(6, 2)).unwrap();
    let bytes = write_sample_pcap(&dir.path().join("first60.pcap"), 60);

    // A missing file.
    let missing = dir.path().join("missing.pcap");
    let run = analyze(&[&missing], &dir.path().join("o1"), &[]);
    assert_eq!(run.status.code(), Some(1));
    assert_error(&run.stderr, &["missing.pcap", "cannot open"]);

    // A file that is not a capture.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are not packets\n").unwrap();
    let run = analyze(&[&text], &dir.path().join("o2"), &[]);
    assert_eq!(run.status.code(), Some(1));
    assert_error(&run.stderr, &["notes.txt", "not a pcap"]);

    // An unknown link type (LINKTYPE_IEEE802_11 = 105).
    let mut wifi = bytes.clone();
    wifi[20..24].copy_from_slice(&105u32.to_le_bytes());
    let wifi_path = dir.path().join("wifi.pcap");
    std::fs::write(&wifi_path, &wifi).unwrap();
    let run = analyze(&[&wifi_path], &dir.path().join("o3"), &[]);
    assert_eq!(run.status.code(), Some(1));
    assert_error(&run.stderr, &["wifi.pcap", "link type 105"]);

    // Cut in the middle of a record: every complete packet before it is analysed and written.
    let cut_path = dir.path().join("cut.pcap");
    std::fs::write(&cut_path, &bytes[..bytes.len() - 7]).unwrap();
    let out = dir.path().join("o4");
    let run = analyze(&[&cut_path, &good], &out, &[]);
    assert_eq!(run.status.code(), Some(1), "an input error gives exit status 1");
    assert_error(&run.stderr, &["cut.pcap", "packet 60", "byte offset"]);
    let flows = duckdb_query(&format!(
        "SELECT source, sum(orig_pkts + resp_pkts) FROM {} GROUP BY 1 ORDER BY 1",
        duckdb_dataset(&out, "flows")
    ));
    assert_eq!(flows, vec![vec![Some("cut.pcap".into()), Some("59".into())], vec![Some("good.pcap".into()), Some("60".into())]]);

    // A record longer than the snapshot length claims.
    let mut long = bytes.clone();
    long[16..20].copy_from_slice(&64u32.to_le_bytes()); // snaplen 64
    let second_record = 24 + 16 + u32::from_le_bytes(long[32..36].try_into().unwrap()) as usize;
    long[second_record + 8..second_record + 12].copy_from_slice(&400_000u32.to_le_bytes());
    let long_path = dir.path().join("long.pcap");
    std::fs::write(&long_path, &long).unwrap();
    let out = dir.path().join("o5");
    let run = analyze(&[&long_path], &out, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert_error(&run.stderr, &["long.pcap", "packet 2", "snapshot length"]);
    let pkts = duckdb_query(&format!("SELECT sum(orig_pkts + resp_pkts) FROM {}", duckdb_dataset(&out, "flows")));
    assert_eq!(pkts[0][0].as_deref(), Some("1"));
}

#[test]
fn empty_capture_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pcap");
    PcapWriter::new(std::fs::File::create(&path).unwrap(), 1, false).unwrap().into_inner().unwrap();
    let run = analyze(&[&path], &dir.path().join("out"), &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(read_dataset(&dir.path().join("out"), "flows").is_empty());
}

#[test]
fn verify_checksums_marks_and_ignores_bad_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badsum.pcap");
    let mut syn = PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80").flags(TcpFlags::SYN).seq(5).ethernet();
    let last = syn.len() - 1;
    syn[last - 4] ^= 0x5a; // inside the TCP header: the checksum no longer matches
    write_ethernet_pcap(&path, &[(1_793_534_400_000_000_000, syn)]).unwrap();
    let plain = dir.path().join("plain");
    let run = analyze(&[&path], &plain, &[]);
    assert!(run.status.success());
    let rows = duckdb_query(&format!("SELECT history, orig_pkts, conn_state FROM {}", duckdb_dataset(&plain, "flows")));
    assert_eq!(rows, vec![vec![Some("S".into()), Some("1".into()), Some("S0".into())]]);
    let checked = dir.path().join("checked");
    let run = analyze(&[&path], &checked, &["--verify-checksums"]);
    assert!(run.status.success());
    let rows = duckdb_query(&format!("SELECT history, orig_pkts, conn_state FROM {}", duckdb_dataset(&checked, "flows")));
    assert_eq!(rows, vec![vec![Some("C".into()), Some("0".into()), Some("OTH".into())]]);
}
