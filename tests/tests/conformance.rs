//! Conformance with Wireshark 4.0.17: runs the engine on every capture of the shared corpus and
//! compares its per-packet verdicts with tshark's `tcp.analysis.*` flags, packet by packet.
//!
//! Mapping: Wireshark `retransmission` = our `retransmission ∪ fast_retransmission ∪
//! spurious_retransmission`; `lost_segment` = `previous_segment_not_captured`; `ack_lost_segment`
//! = `acked_unseen_segment`; `reused_ports` = `port_reuse`; the others by the same name.
//! Deliberate differences are explained in `tests/CONFORMANCE.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use tcpscope::decode::decode_frame;
use tcpscope::source::pcap::CaptureFile;
use tcpscope::tcp::{CloseReason, Engine, EngineConfig, Event, EventKind};

/// Wireshark columns and the event kinds of ours that map onto each.
const KINDS: &[(&str, &[EventKind])] = &[
    (
        "retransmission",
        &[EventKind::Retransmission, EventKind::FastRetransmission, EventKind::SpuriousRetransmission],
    ),
    ("fast_retransmission", &[EventKind::FastRetransmission]),
    ("spurious_retransmission", &[EventKind::SpuriousRetransmission]),
    ("out_of_order", &[EventKind::OutOfOrder]),
    ("lost_segment", &[EventKind::PreviousSegmentNotCaptured]),
    ("ack_lost_segment", &[EventKind::AckedUnseenSegment]),
    ("duplicate_ack", &[EventKind::DuplicateAck]),
    ("zero_window", &[EventKind::ZeroWindow]),
    ("zero_window_probe", &[EventKind::ZeroWindowProbe]),
    ("zero_window_probe_ack", &[EventKind::ZeroWindowProbeAck]),
    ("window_full", &[EventKind::WindowFull]),
    ("window_update", &[EventKind::WindowUpdate]),
    ("keep_alive", &[EventKind::KeepAlive]),
    ("keep_alive_ack", &[EventKind::KeepAliveAck]),
    ("reused_ports", &[EventKind::PortReuse]),
];

/// A kind with at least this many tshark occurrences must reach the precision/recall goal.
const MAJOR_KIND_MIN_OCCURRENCES: u64 = 20;
const GOAL: f64 = 0.995;
/// The minor kinds together may disagree on at most this many packets.
const MINOR_DISAGREEMENT_BUDGET: u64 = 10;

#[derive(Clone, Copy, Default, Debug)]
struct Score {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Score {
    fn add(&mut self, o: Score) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
    fn expected(&self) -> u64 {
        self.tp + self.fn_
    }
}

/// tshark's verdicts for one packet: the set of flag columns, and `duplicate_ack_num`.
#[derive(Default, Debug)]
struct Expected {
    flags: BTreeSet<&'static str>,
    dup_ack_num: Option<u64>,
    bytes_in_flight: Option<u32>,
}

fn read_expected(csv: &Path) -> HashMap<u64, Expected> {
    let text = std::fs::read_to_string(csv).unwrap_or_default();
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return HashMap::new() };
    let columns: Vec<String> = header.split(',').map(|c| c.trim_matches('"').to_owned()).collect();
    let index = |name: &str| columns.iter().position(|c| c == name);
    let frame_col = index("frame.number").expect("frame.number column");
    let dup_num_col = index("tcp.analysis.duplicate_ack_num");
    let bif_col = index("tcp.analysis.bytes_in_flight");
    let flag_cols: Vec<(usize, &'static str)> = KINDS
        .iter()
        .filter_map(|(name, _)| index(&format!("tcp.analysis.{name}")).map(|i| (i, *name)))
        .collect();
    let mut out = HashMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let Some(frame) = cells.get(frame_col).and_then(|c| c.parse::<u64>().ok()) else { continue };
        let mut e = Expected::default();
        for &(i, name) in &flag_cols {
            if cells.get(i).is_some_and(|c| !c.is_empty()) {
                e.flags.insert(name);
            }
        }
        e.dup_ack_num = dup_num_col.and_then(|i| cells.get(i)).and_then(|c| c.parse().ok());
        e.bytes_in_flight = bif_col.and_then(|i| cells.get(i)).and_then(|c| c.parse().ok());
        out.insert(frame, e);
    }
    out
}

fn read_nested(path: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The engine settings of the comparison: the defaults, except that flows never end by idle or
/// attempt timeout. Wireshark keeps a conversation's state for the whole file; those two timers
/// are flow-accounting choices (Zeek's), not analysis rules (see CONFORMANCE.md).
fn wireshark_conversations() -> EngineConfig {
    EngineConfig { idle_timeout_ns: u64::MAX / 4, attempt_timeout_ns: 0, ..EngineConfig::default() }
}

/// Runs the engine over one capture and returns its events, and each packet's bytes in flight.
fn run_engine(path: &Path, config: EngineConfig) -> (Vec<Event>, HashMap<u64, u32>) {
    let mut engine = Engine::new(config);
    let mut bytes_in_flight = HashMap::new();
    let Ok(file) = CaptureFile::open(path) else { return (Vec::new(), bytes_in_flight) };
    let _ = file.read(
        |frame| {
            if let Ok(seg) = decode_frame(frame.link, frame.data, frame.wire_len, frame.ts, frame.packet_number, 0) {
                let verdict = engine.handle_segment_verdict(&seg);
                if let Some(b) = verdict.analysis.bytes_in_flight {
                    bytes_in_flight.insert(seg.packet_number, b);
                }
            }
        },
        |_| {},
    );
    engine.finish(CloseReason::EndOfInput);
    (std::mem::take(&mut engine.output.events), bytes_in_flight)
}

struct FileResult {
    name: String,
    scores: BTreeMap<&'static str, Score>,
    dup_num_checked: u64,
    dup_num_mismatch: Vec<(u64, u64, u64)>,
    disagreements: Vec<String>,
}

fn compare(name: &str, expected: &HashMap<u64, Expected>, nested: &BTreeSet<u64>, events: &[Event]) -> FileResult {
    let mut ours: HashMap<u64, (BTreeSet<&'static str>, Option<u64>)> = HashMap::new();
    for e in events {
        let Some(packet) = e.packet_number else { continue };
        for (column, kinds) in KINDS {
            if kinds.iter().any(|k| e.is(*k)) {
                let entry = ours.entry(packet).or_default();
                entry.0.insert(column);
                if e.is(EventKind::DuplicateAck) {
                    entry.1 = e.count.map(|c| c as u64);
                }
            }
        }
    }
    let mut packets: BTreeSet<u64> = expected.keys().copied().collect();
    packets.extend(ours.keys().copied());
    let mut scores: BTreeMap<&'static str, Score> = KINDS.iter().map(|(n, _)| (*n, Score::default())).collect();
    let mut result = FileResult {
        name: name.to_owned(),
        scores: BTreeMap::new(),
        dup_num_checked: 0,
        dup_num_mismatch: Vec::new(),
        disagreements: Vec::new(),
    };
    let empty = BTreeSet::new();
    for packet in packets {
        if nested.contains(&packet) {
            continue;
        }
        let theirs = expected.get(&packet).map(|e| &e.flags).unwrap_or(&empty);
        let (mine, my_dup) = ours.get(&packet).map(|(s, d)| (s, *d)).unwrap_or((&empty, None));
        for (column, _) in KINDS {
            let s = scores.get_mut(column).expect("kind");
            match (theirs.contains(column), mine.contains(column)) {
                (true, true) => s.tp += 1,
                (false, true) => {
                    s.fp += 1;
                    result.disagreements.push(format!("{name} #{packet}: extra {column}"));
                }
                (true, false) => {
                    s.fn_ += 1;
                    result.disagreements.push(format!("{name} #{packet}: missing {column}"));
                }
                (false, false) => {}
            }
        }
        if let (Some(n), Some(mine)) = (expected.get(&packet).and_then(|e| e.dup_ack_num), my_dup) {
            result.dup_num_checked += 1;
            if n != mine {
                result.dup_num_mismatch.push((packet, n, mine));
            }
        }
    }
    result.scores = scores;
    result
}

/// `CONFORMANCE_DUMP=<capture stem>` prints every decoded segment of that capture with our
/// verdicts, to investigate a disagreement.
fn dump_if_asked(pcap: &Path, stem: &str) {
    if std::env::var("CONFORMANCE_DUMP").ok().as_deref() != Some(stem) {
        return;
    }
    let mut engine = Engine::new(wireshark_conversations());
    let file = CaptureFile::open(pcap).expect("open");
    let _ = file.read(
        |frame| match decode_frame(frame.link, frame.data, frame.wire_len, frame.ts, frame.packet_number, 0) {
            Ok(seg) => {
                let before = engine.output.events.len();
                engine.handle_segment(&seg);
                let kinds: Vec<String> =
                    engine.output.events[before..].iter().map(|e| format!("{}{:?}", e.kind, e.count)).collect();
                println!(
                    "#{} {} {}:{} > {}:{} {} seq={} ack={} len={} win={} {}",
                    seg.packet_number,
                    seg.ts,
                    seg.src_ip,
                    seg.src_port,
                    seg.dst_ip,
                    seg.dst_port,
                    seg.flags.letters(),
                    seg.seq,
                    seg.ack,
                    seg.payload_len,
                    seg.window,
                    kinds.join(" ")
                );
            }
            Err(skip) => println!("#{} skipped {skip:?}", frame.packet_number),
        },
        |_| {},
    );
}

#[test]
fn wireshark_conformance() {
    let Some(corpus) = tcpscope_tests::corpus_dir("conformance") else { return };
    let expected_dir = corpus.join("expected");
    let mut results = Vec::new();
    let mut default_config_disagreements = 0u64;
    let mut default_config_files = Vec::new();
    let (mut bif_agree, mut bif_differ, mut bif_examples) = (0u64, 0u64, Vec::new());
    for pcap in tcpscope_tests::corpus_pcaps(&corpus) {
        let stem = pcap.file_stem().and_then(|s| s.to_str()).expect("utf-8 file name").to_owned();
        let expected = read_expected(&expected_dir.join(format!("{stem}.tcp_analysis.csv")));
        let nested = read_nested(&expected_dir.join(format!("{stem}.nested_tcp_frames.txt")));
        dump_if_asked(&pcap, &stem);
        let (events, bif) = run_engine(&pcap, wireshark_conversations());
        for (packet, e) in &expected {
            if nested.contains(packet) {
                continue;
            }
            match (e.bytes_in_flight, bif.get(packet)) {
                (None, None) => {}
                (Some(a), Some(&b)) if a == b => bif_agree += 1,
                (a, b) => {
                    bif_differ += 1;
                    if bif_examples.len() < 10 {
                        bif_examples.push(format!("{stem} #{packet}: tshark {a:?}, ours {b:?}"));
                    }
                }
            }
        }
        results.push(compare(&stem, &expected, &nested, &events));
        let (with_defaults, _) = run_engine(&pcap, EngineConfig::default());
        let n = compare(&stem, &expected, &nested, &with_defaults).disagreements.len() as u64;
        default_config_disagreements += n;
        if n > 0 {
            default_config_files.push(format!("{stem} {n}"));
        }
    }

    // Per file: only the files where tshark or we flagged something.
    println!("\nPer file (kind: expected / TP / FP / FN), files with any flag:");
    for r in &results {
        let busy: Vec<String> = r
            .scores
            .iter()
            .filter(|(_, s)| s.tp + s.fp + s.fn_ > 0)
            .map(|(k, s)| format!("{k} {}/{}/{}/{}", s.expected(), s.tp, s.fp, s.fn_))
            .collect();
        if !busy.is_empty() {
            println!("  {:<32} {}", r.name, busy.join(", "));
        }
    }

    let mut total: BTreeMap<&'static str, Score> = KINDS.iter().map(|(n, _)| (*n, Score::default())).collect();
    for r in &results {
        for (k, s) in &r.scores {
            total.get_mut(k).expect("kind").add(*s);
        }
    }
    println!("\nWhole corpus ({} captures):", results.len());
    println!("  {:<26} {:>8} {:>6} {:>6} {:>6} {:>10} {:>8}", "kind", "tshark", "TP", "FP", "FN", "precision", "recall");
    let mut failures = Vec::new();
    let mut minor_disagreements = 0;
    for (kind, _) in KINDS {
        let s = total[kind];
        println!(
            "  {:<26} {:>8} {:>6} {:>6} {:>6} {:>10.4} {:>8.4}",
            kind,
            s.expected(),
            s.tp,
            s.fp,
            s.fn_,
            s.precision(),
            s.recall()
        );
        if s.expected() >= MAJOR_KIND_MIN_OCCURRENCES {
            if s.precision() < GOAL || s.recall() < GOAL {
                failures.push(format!(
                    "{kind}: precision {:.4}, recall {:.4} (goal {GOAL})",
                    s.precision(),
                    s.recall()
                ));
            }
        } else {
            minor_disagreements += s.fp + s.fn_;
        }
    }
    println!("  minor kinds (< {MAJOR_KIND_MIN_OCCURRENCES} in tshark) disagree on {minor_disagreements} packets (budget {MINOR_DISAGREEMENT_BUDGET})");
    if minor_disagreements > MINOR_DISAGREEMENT_BUDGET {
        failures.push(format!("minor kinds disagree on {minor_disagreements} packets"));
    }

    let checked: u64 = results.iter().map(|r| r.dup_num_checked).sum();
    let mismatched: Vec<String> = results
        .iter()
        .flat_map(|r| r.dup_num_mismatch.iter().map(move |(p, n, m)| format!("{} #{p}: tshark {n}, ours {m}", r.name)))
        .collect();
    println!("  duplicate_ack_num: {checked} compared, {} differ", mismatched.len());
    println!(
        "  bytes_in_flight (information): {bif_agree} packets agree, {bif_differ} differ or are present on one side only{}",
        if bif_examples.is_empty() { String::new() } else { format!(", e.g. {}", bif_examples.join("; ")) }
    );
    if !mismatched.is_empty() {
        failures.push(format!("duplicate_ack_num differs: {}", mismatched.join("; ")));
    }

    let here: u64 = results.iter().map(|r| r.disagreements.len() as u64).sum();
    println!(
        "  (for information: with EngineConfig::default(), whose idle and attempt timeouts split some \
         Wireshark conversations, {default_config_disagreements} flag disagreements instead of {here}: {})",
        default_config_files.join(", ")
    );

    let disagreements: Vec<&String> = results.iter().flat_map(|r| r.disagreements.iter()).collect();
    if !disagreements.is_empty() {
        println!("\nDisagreements ({}):", disagreements.len());
        for d in disagreements.iter().take(200) {
            println!("  {d}");
        }
    }
    assert!(failures.is_empty(), "conformance goal missed:\n  {}", failures.join("\n  "));
}

