//! Quiet connections are packed into a short byte string and unpacked by their next packet or
//! timer (`pipeline/src/tcp/compact.rs`). Packing must lose nothing: these tests run the engine
//! three ways on the same packets and require the same events and flow rows from each:
//!
//! - never packing;
//! - packing as it does in production (after a second of quiet, or when too many connections
//!   are unpacked);
//! - packing every connection after every packet, so every packet and every timer meets a packed
//!   connection, and checking at each packing that the unpacked state is the packed one, field
//!   for field.
//!
//! On the whole shared corpus (real traffic: retransmissions, SACK, zero windows, keep-alives,
//! port reuse, resets, IPv6, VLANs) and on the generated sample.

use std::path::Path;
use tcpscope::decode::{decode, decode_frame, LinkType, Segment};
use tcpscope::source::pcap::CaptureFile;
use tcpscope::tcp::{CloseReason, Engine, EngineConfig, Event, FlowRecord};
use tcpscope::testing::scenarios;
use tcpscope::time::Timestamp;
use tcpscope_tests::{corpus_dir, corpus_pcaps};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Packing {
    Never,
    AsInProduction,
    AfterEveryPacket,
}

/// Runs one engine over `segments` with the given packing; returns its output and how many
/// connections were packed after single packets (only for `AfterEveryPacket`).
fn run(segments: &[Segment], config: EngineConfig, packing: Packing) -> (Vec<Event>, Vec<FlowRecord>, usize) {
    let mut engine = Engine::new(config);
    if packing == Packing::Never {
        engine.never_pack();
    }
    let mut packed = 0;
    for seg in segments {
        engine.handle_segment(seg);
        if packing == Packing::AfterEveryPacket {
            match engine.pack_all_checked() {
                Ok(n) => packed += n,
                Err(diff) => panic!("packet {}: a connection did not unpack as it was packed\n{diff}", seg.packet_number),
            }
        }
    }
    engine.finish(CloseReason::EndOfInput);
    (std::mem::take(&mut engine.output.events), std::mem::take(&mut engine.output.flows), packed)
}

/// Compares the three runs; returns how many connections the hardest one packed.
fn same_output_however_packed(name: &str, segments: &[Segment], config: EngineConfig) -> usize {
    let (events, flows, _) = run(segments, config, Packing::Never);
    let (events_prod, flows_prod, _) = run(segments, config, Packing::AsInProduction);
    let (events_every, flows_every, packed) = run(segments, config, Packing::AfterEveryPacket);
    assert_eq!(events_prod, events, "{name}: events differ when packing as in production");
    assert_eq!(flows_prod, flows, "{name}: flow rows differ when packing as in production");
    assert_eq!(events_every.len(), events.len(), "{name}: event count differs when packing after every packet");
    for (a, b) in events_every.iter().zip(&events) {
        assert_eq!(a, b, "{name}: first event that differs when packing after every packet");
    }
    assert_eq!(flows_every, flows, "{name}: flow rows differ when packing after every packet");
    packed
}

fn segments_of(path: &Path) -> Vec<Segment> {
    let mut segments = Vec::new();
    let file = CaptureFile::open(path).expect("open capture");
    let _ = file.read(
        |frame| {
            if let Ok(seg) = decode_frame(frame.link, frame.data, frame.wire_len, frame.ts, frame.packet_number, 0) {
                segments.push(seg);
            }
        },
        |_| {},
    );
    segments
}

#[test]
fn packing_changes_nothing_on_the_corpus() {
    let Some(corpus) = corpus_dir("packing_changes_nothing_on_the_corpus") else { return };
    // The defaults, and Wireshark's view where flows never time out (as the conformance test).
    let configs = [
        EngineConfig::default(),
        EngineConfig { idle_timeout_ns: u64::MAX / 4, attempt_timeout_ns: 0, ..EngineConfig::default() },
    ];
    let (mut captures, mut packets, mut packed) = (0, 0, 0);
    for path in corpus_pcaps(&corpus) {
        let segments = segments_of(&path);
        if segments.is_empty() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for config in configs {
            packed += same_output_however_packed(&name, &segments, config);
        }
        captures += 1;
        packets += segments.len();
    }
    eprintln!("packing_changes_nothing_on_the_corpus: {captures} captures, {packets} segments, {packed} connections packed");
    assert!(captures > 20, "the corpus has its captures");
    assert!(packed > packets, "about one packing per packet and configuration");
}

#[test]
fn packing_changes_nothing_on_the_sample() {
    let segments: Vec<Segment> = scenarios::sample()
        .iter()
        .enumerate()
        .map(|(n, (t, frame))| decode(LinkType::Ethernet, frame, Timestamp(*t), n as u64 + 1, 0).expect("sample decodes"))
        .collect();
    let packed = same_output_however_packed("sample", &segments, EngineConfig::default());
    assert!(packed >= segments.len(), "{packed} packings for {} segments", segments.len());
}

#[test]
fn a_crowded_table_packs_early_and_still_changes_nothing() {
    // 4,000 connections opened 13 µs apart, each done in a few milliseconds and then lingering:
    // all are in the table at once, well within a second, so only the bound on unpacked
    // connections (500 here) gets any of them packed: the least recently active, early.
    let segments: Vec<Segment> = scenarios::many_connections(4_000, 4_000)
        .iter()
        .enumerate()
        .map(|(n, (t, frame))| decode(LinkType::Ethernet, frame, Timestamp(*t), n as u64 + 1, 0).expect("decodes"))
        .collect();
    let config = EngineConfig { max_unpacked: 500, ..EngineConfig::default() };
    let (events, flows, _) = run(&segments, config, Packing::Never);
    let mut engine = Engine::new(config);
    for seg in &segments {
        engine.handle_segment(seg);
    }
    let (_, packed_now) = engine.packed_bytes();
    engine.finish(CloseReason::EndOfInput);
    let counters = engine.counters();
    assert!(packed_now >= 3_000, "{packed_now} packed at the end of input, {counters:?}");
    assert_eq!(counters.connections_packed_early, counters.connections_packed, "none had a second of quiet: {counters:?}");
    assert_eq!(engine.output.events, events);
    assert_eq!(engine.output.flows, flows);
}
