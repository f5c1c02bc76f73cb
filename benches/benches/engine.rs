//! The TCP analysis engine alone, in nanoseconds per segment, on a realistic mix: many
//! interleaved connections with handshakes, bulk data ACKed every second segment, a little loss
//! (duplicate ACKs, fast and timeout retransmissions), window updates, keep-alives and closes.
//! Segments are decoded once, before measuring; the engine (flow table, per-packet analysis,
//! diagnostics, summaries) is what is timed.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tcpscope::decode::{decode, LinkType, Segment, TcpFlags};
use tcpscope::flow::{Direction, FlowKey};
use tcpscope::tcp::analysis::{AnalysisLimits, SequenceAnalysis};
use tcpscope::tcp::diagnostics::{Diagnostics, DiagnosticsConfig};
use tcpscope::tcp::{CloseReason, Engine, EngineConfig};
use tcpscope::testing::Conversation;
use tcpscope::time::Timestamp;

/// A small deterministic generator (xorshift), so the mix is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

const MS: u64 = 1_000_000;

/// One connection's frames: (time ns, Ethernet frame).
fn connection(index: u32, start: u64, rng: &mut Rng) -> Vec<(u64, Vec<u8>)> {
    let client = format!("198.18.{}.{}:{}", (index >> 8) & 0xff, index & 0xff, 20_000 + (index % 40_000));
    let mut c = Conversation::new(&client, "198.19.0.1:443", rng.next() as u32, rng.next() as u32);
    let rtt = (1 + rng.next() % 40) * MS;
    let mut t = start;
    c.handshake(t, rtt);
    t += rtt + 2 * MS;
    c.client_data(t, 300);
    t += rtt / 2;
    c.server_ack(t);
    let segments = 20 + rng.next() % 120;
    let mut i = 0;
    while i < segments {
        t += 100_000;
        if rng.chance(15) {
            // A lost segment: the next ones arrive, the client sends duplicate ACKs, the server
            // retransmits fast (or after a timeout).
            let lost_seq = c.server_next();
            let hole = c.clone(); // the client's view: it keeps ACKing the hole
            c.server_data(t, 1448); // lost before the capture point: the frame is dropped
            c.frames.pop();
            for _ in 0..3 {
                t += 100_000;
                c.server_data(t, 1448);
                let dup = hole.from_client().flags(TcpFlags::ACK).window(512);
                c.push(t + 10_000, dup);
            }
            let late = if rng.chance(500) { 5 * MS } else { 300 * MS };
            t += late;
            let retrans = hole.from_server().seq(lost_seq).flags(TcpFlags::ACK).payload_len(1448).window(512);
            c.push(t, retrans);
            t += rtt;
            c.client_ack(t);
            i += 4;
            continue;
        }
        c.server_data(t, 1448);
        if i % 2 == 1 {
            c.client_ack(t + rtt / 2);
        }
        i += 1;
    }
    t += rtt;
    c.client_ack(t);
    if rng.chance(100) {
        // An idle keep-alive and its ACK, then a window update.
        t += 10 * MS;
        let ka = c.from_client().seq(c.client_next().wrapping_sub(1)).flags(TcpFlags::ACK).window(512);
        c.push(t, ka);
        c.server_ack(t + rtt);
        c.push(t + rtt + MS, c.from_client().flags(TcpFlags::ACK).window(1024));
    }
    t += 5 * MS;
    c.close(t, rtt);
    c.frames
}

/// Frames sorted by time and decoded once, numbered from 1.
fn decoded(mut frames: Vec<(u64, Vec<u8>)>) -> Vec<Segment> {
    frames.sort_by_key(|(t, _)| *t);
    frames
        .iter()
        .enumerate()
        .filter_map(|(n, (t, f))| decode(LinkType::Ethernet, f, Timestamp(*t), n as u64 + 1, 0).ok())
        .collect()
}

/// About 200,000 segments from 2,000 connections started 0.5 ms apart, in time order.
fn realistic_mix() -> Vec<Segment> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut frames = Vec::new();
    for i in 0..2_000u32 {
        frames.extend(connection(i, 1_700_000_000_000_000_000 + i as u64 * MS / 2, &mut rng));
    }
    decoded(frames)
}

/// 2,000 established connections that each exchange a request and its ACK every `gap_ns`, ten
/// times: with gaps over a second each round meets every connection packed (the request unpacks
/// it; a second later it is packed again), with gaps under a second never.
fn rounds(gap_ns: u64) -> Vec<Segment> {
    let mut frames = Vec::new();
    for i in 0..2_000u32 {
        let client = format!("198.18.{}.{}:{}", (i >> 8) & 0xff, i & 0xff, 30_000 + i % 30_000);
        let mut c = Conversation::new(&client, "198.19.0.2:443", i.wrapping_mul(7_919), i.wrapping_mul(104_729));
        let start = 1_700_000_000_000_000_000 + i as u64 * 100_000;
        c.handshake(start, MS);
        for round in 1..=10 {
            let t = start + round * gap_ns;
            c.client_data(t, 100);
            c.server_ack(t + MS);
        }
        frames.extend(c.frames);
    }
    decoded(frames)
}

/// Each segment's flow number (in order of first appearance) and direction, and the flow count:
/// the flow lookup done once, so the analysis-only benches measure the analysis alone.
fn route(segments: &[Segment]) -> (Vec<(usize, Direction)>, usize) {
    let mut index = std::collections::HashMap::new();
    let routed = segments
        .iter()
        .map(|s| {
            let (key, side) = FlowKey::of(s);
            let next = index.len();
            let (i, orig_side) = *index.entry(key).or_insert((next, side));
            (i, if side == orig_side { Direction::Orig } else { Direction::Resp })
        })
        .collect();
    (routed, index.len())
}

/// `ENGINE_PASSES=N ENGINE_PART=engine|analysis|diagnostics|wake_packed|wake_unpacked` runs N
/// plain passes (the wake parts over their own segments) and exits, for
/// `perf stat -e instructions` (instruction counts do not suffer from a loaded machine the way
/// times do): instructions per segment = (count(N) − count(0)) / (N × segments).
fn plain_passes(segments: &[Segment]) {
    let Some(passes) = std::env::var("ENGINE_PASSES").ok().and_then(|v| v.parse::<u32>().ok()) else { return };
    let part = std::env::var("ENGINE_PART").unwrap_or_else(|_| "engine".into());
    let wake = match part.as_str() {
        "wake_packed" => Some(rounds(1_500 * MS)),
        "wake_unpacked" => Some(rounds(500 * MS)),
        _ => None,
    };
    let segments = wake.as_deref().unwrap_or(segments);
    let (routed, flows) = route(segments);
    let mut events = 0usize;
    for _ in 0..passes {
        match part.as_str() {
            "engine" | "wake_packed" | "wake_unpacked" => {
                let mut engine = Engine::new(EngineConfig::default());
                for s in segments {
                    engine.handle_segment(s);
                }
                engine.finish(CloseReason::EndOfInput);
                events += engine.output.events.len();
            }
            _ => {
                let limits = AnalysisLimits::default();
                let diag_config = DiagnosticsConfig::default();
                let mut analyses = vec![SequenceAnalysis::new(); flows];
                let mut diagnostics = vec![Diagnostics::new(); flows];
                let mut out = Vec::new();
                for (s, &(i, dir)) in segments.iter().zip(&routed) {
                    let a = analyses[i].on_segment(s, dir, 1, &limits, &mut out);
                    if part == "diagnostics" {
                        diagnostics[i].on_segment(s, dir, 1, &a, &diag_config, &mut out);
                    }
                }
                events += out.len();
            }
        }
    }
    eprintln!("{passes} passes of {part} over {} segments: {events} events", segments.len());
    std::process::exit(0);
}

fn bench_engine(c: &mut Criterion) {
    let segments = realistic_mix();
    plain_passes(&segments);
    let mut probe = Engine::new(EngineConfig::default());
    for s in &segments {
        probe.handle_segment(s);
    }
    probe.finish(CloseReason::EndOfInput);
    eprintln!(
        "engine bench mix: {} segments, {} flows, {} events",
        segments.len(),
        probe.output.flows.len(),
        probe.output.events.len()
    );
    let mut group = c.benchmark_group("engine");
    group.sample_size(20);
    // The reported time is per segment (the custom timing divides by the segment count).
    group.bench_function("realistic_mix_per_segment", |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iterations {
                let mut engine = Engine::new(EngineConfig::default());
                let mut handed_over = 0usize;
                let started = std::time::Instant::now();
                // As `worker::run_worker` does: batches of 512 segments, output handed to the
                // sink (here: dropped) once it holds OUTPUT_BATCH_ROWS rows.
                for batch in segments.chunks(tcpscope::dispatch::BATCH_SEGMENTS) {
                    for s in batch {
                        engine.handle_segment(black_box(s));
                    }
                    let out = &mut engine.output;
                    if out.events.len() >= tcpscope::worker::OUTPUT_BATCH_ROWS || out.flows.len() >= tcpscope::worker::OUTPUT_BATCH_ROWS {
                        handed_over += std::mem::take(&mut out.events).len() + std::mem::take(&mut out.flows).len();
                    }
                }
                engine.finish(CloseReason::EndOfInput);
                total += started.elapsed();
                black_box(handed_over + engine.output.events.len());
            }
            // Report per segment: criterion divides by the iterations only.
            total / segments.len() as u32
        })
    });
    // The per-packet analysis alone (flow lookup done beforehand), to see its share.
    let (routed, flows) = route(&segments);
    group.bench_function("analysis_only_per_segment", |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            let limits = AnalysisLimits::default();
            for _ in 0..iterations {
                let mut analyses = vec![SequenceAnalysis::new(); flows];
                let mut events = Vec::new();
                let started = std::time::Instant::now();
                for (s, &(i, dir)) in segments.iter().zip(&routed) {
                    black_box(analyses[i].on_segment(black_box(s), dir, 1, &limits, &mut events));
                }
                total += started.elapsed();
                black_box(events.len());
            }
            total / segments.len() as u32
        })
    });
    // The analysis and the connection diagnostics together (what `tcp::analysis` and
    // `tcp::diagnostics` cost inside the engine), flow lookup done beforehand.
    group.bench_function("analysis_and_diagnostics_per_segment", |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            let limits = AnalysisLimits::default();
            let diag_config = DiagnosticsConfig::default();
            for _ in 0..iterations {
                let mut analyses = vec![SequenceAnalysis::new(); flows];
                let mut diagnostics = vec![Diagnostics::new(); flows];
                let mut events = Vec::new();
                let started = std::time::Instant::now();
                for (s, &(i, dir)) in segments.iter().zip(&routed) {
                    let a = analyses[i].on_segment(black_box(s), dir, 1, &limits, &mut events);
                    diagnostics[i].on_segment(s, dir, 1, &a, &diag_config, &mut events);
                }
                total += started.elapsed();
                black_box(events.len());
            }
            total / segments.len() as u32
        })
    });
    // What the engine's flow index costs per segment with std's SipHash (what `Engine` uses)
    // and with a multiply-rotate hasher over the same keys: the difference is what a faster
    // hasher would save the engine.
    let keys: Vec<FlowKey> = segments.iter().map(|s| FlowKey::of(s).0).collect();
    let sip: std::collections::HashMap<FlowKey, u32> = keys.iter().enumerate().map(|(i, k)| (*k, i as u32)).collect();
    let fx: std::collections::HashMap<FlowKey, u32, std::hash::BuildHasherDefault<FxLike>> =
        keys.iter().enumerate().map(|(i, k)| (*k, i as u32)).collect();
    group.bench_function("flow_lookup_siphash_per_segment", |b| {
        b.iter_custom(|iterations| {
            let started = std::time::Instant::now();
            for _ in 0..iterations {
                for k in &keys {
                    black_box(sip.get(black_box(k)));
                }
            }
            started.elapsed() / keys.len() as u32
        })
    });
    group.bench_function("flow_lookup_fxlike_per_segment", |b| {
        b.iter_custom(|iterations| {
            let started = std::time::Instant::now();
            for _ in 0..iterations {
                for k in &keys {
                    black_box(fx.get(black_box(k)));
                }
            }
            started.elapsed() / keys.len() as u32
        })
    });
    // Waking packed connections: the same segments, with rounds 1.5 s apart (every request
    // unpacks its connection, every connection is packed again a second later) and 0.5 s apart
    // (never packed). The difference per round trip, twice the per-segment difference, is what
    // one pack and one unpack cost.
    for (name, gap) in [("wake_packed_per_segment", 1_500 * MS), ("wake_unpacked_per_segment", 500 * MS)] {
        let segments = rounds(gap);
        let mut probe = Engine::new(EngineConfig::default());
        for s in &segments {
            probe.handle_segment(s);
        }
        eprintln!("{name}: {} segments, {} packings", segments.len(), probe.counters().connections_packed);
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iterations {
                    let mut engine = Engine::new(EngineConfig::default());
                    let started = std::time::Instant::now();
                    for s in &segments {
                        engine.handle_segment(black_box(s));
                    }
                    total += started.elapsed();
                    black_box(engine.output.events.len());
                }
                total / segments.len() as u32
            })
        });
    }
    group.finish();
}

/// A multiply-rotate hasher (FxHash's scheme) for the comparison above.
#[derive(Default)]
struct FxLike(u64);
impl std::hash::Hasher for FxLike {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
