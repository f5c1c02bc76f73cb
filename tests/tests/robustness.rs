//! Hostile input and faults: arbitrary and mutated capture bytes, arbitrary frames for every link
//! type, arbitrary segment sequences for the engine, the corpus's malformed files and seeded
//! mutations of every corpus capture, SIGKILL in the middle of a run, and a SYN flood against a
//! bounded flow table. Nothing may panic or hang; outputs must stay readable.
//!
//! This is the stable-toolchain stand-in for `cargo fuzz` (which needs nightly): proptest with a
//! fixed seed per case, run by `cargo test`. Each property prints how many executions it made.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tcpscope::decode::{decode, decode_frame, LinkType, Segment, TcpFlags, TcpOptions};
use tcpscope::source::pcap::read_capture;
use tcpscope::tcp::{CloseReason, Engine, EngineConfig};
use tcpscope::testing::{scenarios, write_ethernet_pcap, PacketBuilder, PcapNgWriter, PcapWriter};
use tcpscope::time::Timestamp;
use tcpscope_tests::{corpus_dir, corpus_pcaps, duckdb_query, parquet_files, tcpscope_bin};

fn runner(cases: u32, seed: u8) -> TestRunner {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]))
}

/// Reads a capture fully through decode and one engine; returns the packets read.
fn full_path(bytes: &[u8]) -> u64 {
    let mut engine = Engine::new(EngineConfig { max_flows: 64, ..EngineConfig::default() });
    let mut packets = 0;
    let _ = read_capture(
        Path::new("fuzz.pcap"),
        bytes,
        &mut |frame| {
            packets += 1;
            if let Ok(seg) = decode_frame(frame.link, frame.data, frame.wire_len, frame.ts, frame.packet_number, 0) {
                engine.handle_segment(&seg);
            }
        },
        &mut |_| {},
    );
    engine.finish(CloseReason::EndOfInput);
    packets
}

fn valid_pcap() -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), 1, false).unwrap();
    for (t, f) in scenarios::sample().iter().take(40) {
        w.write_packet(*t, f).unwrap();
    }
    w.into_inner().unwrap()
}

fn valid_pcapng() -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let a = w.add_interface(1, 9).unwrap();
    let b = w.add_interface(113, 6).unwrap();
    for (i, (t, f)) in scenarios::sample().iter().take(40).enumerate() {
        if i % 2 == 0 {
            w.write_packet(a, *t, f).unwrap();
        } else {
            let ip = &f[14..];
            let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
            sll.extend_from_slice(ip);
            w.write_packet(b, *t, &sll).unwrap();
        }
    }
    w.into_inner().unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    AbsurdLength(usize, u32),
    Insert(usize, Vec<u8>),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let m = prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop_oneof![Just(u32::MAX), Just(0x7FFF_FFFF), Just(65_536), any::<u32>()])
            .prop_map(|(i, v)| Mutation::AbsurdLength(i, v)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
    ];
    proptest::collection::vec(m, 1..6)
}

fn apply(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match m {
            Mutation::Flip(i, b) => bytes[i % n] ^= b,
            Mutation::Truncate(i) => bytes.truncate(i % n),
            Mutation::AbsurdLength(i, v) => {
                let at = (i % n) & !3;
                if at + 4 <= n {
                    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            Mutation::Insert(i, v) => {
                let at = i % n;
                bytes.splice(at..at, v.iter().copied());
            }
        }
    }
    bytes
}

#[test]
fn readers_survive_arbitrary_bytes() {
    let mut runner = runner(3_000, 1);
    let executions = std::cell::Cell::new(0u64);
    let headers: Vec<Vec<u8>> = vec![valid_pcap()[..24].to_vec(), valid_pcapng()[..28].to_vec(), Vec::new()];
    runner
        .run(&(0..3usize, proptest::collection::vec(any::<u8>(), 0..600)), |(h, tail)| {
            let mut bytes = headers[h].clone();
            bytes.extend_from_slice(&tail);
            full_path(&bytes);
            executions.set(executions.get() + 1);
            Ok(())
        })
        .unwrap();
    eprintln!("readers_survive_arbitrary_bytes: {executions} executions", executions = executions.get());
}

#[test]
fn readers_survive_mutated_captures() {
    let mut runner = runner(1_500, 2);
    let executions = std::cell::Cell::new(0u64);
    let bases = [valid_pcap(), valid_pcapng()];
    runner
        .run(&(0..2usize, mutations()), |(which, ms)| {
            let bytes = apply(bases[which].clone(), &ms);
            let started = Instant::now();
            full_path(&bytes);
            prop_assert!(started.elapsed() < Duration::from_secs(5), "a mutated capture took too long");
            executions.set(executions.get() + 1);
            Ok(())
        })
        .unwrap();
    eprintln!("readers_survive_mutated_captures: {executions} executions", executions = executions.get());
}

#[test]
fn decoder_survives_arbitrary_frames_on_every_link_type() {
    let links = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Nflog,
    ];
    let template = PacketBuilder::v4("198.18.0.1:1000", "198.18.0.2:80")
        .flags(TcpFlags::SYN)
        .mss(1460)
        .wscale(7)
        .sack(&[(1, 2), (3, 4)])
        .timestamps(1, 2)
        .ethernet();
    let mut runner = runner(6_000, 3);
    let executions = std::cell::Cell::new(0u64);
    runner
        .run(&(0..links.len(), proptest::collection::vec(any::<u8>(), 0..200), mutations()), |(l, random, ms)| {
            let _ = decode(links[l], &random, Timestamp(1), 1, 0);
            let mutated = apply(template.clone(), &ms);
            let _ = decode(links[l], &mutated, Timestamp(1), 1, 0);
            executions.set(executions.get() + 2);
            Ok(())
        })
        .unwrap();
    eprintln!("decoder_survives_arbitrary_frames_on_every_link_type: {executions} executions", executions = executions.get());
}

fn arbitrary_segment() -> impl Strategy<Value = Segment> {
    (
        (0u64..2_000_000_000_000, 0u8..4, 0u8..4, any::<u32>(), any::<u32>()),
        (0u16..0x0FFF, prop_oneof![Just(0u16), any::<u16>()], prop_oneof![Just(0u32), Just(1), 0u32..70_000]),
        (proptest::option::of(0u8..20), proptest::collection::vec((any::<u32>(), any::<u32>()), 0..5)),
    )
        .prop_map(|((ts, a, b, seq, ack), (flags, window, len), (wscale, sack))| {
            let mut options = TcpOptions { window_scale: wscale, ..TcpOptions::default() };
            for (i, blk) in sack.iter().take(4).enumerate() {
                options.sack.blocks[i] = *blk;
                options.sack.count = i as u8 + 1;
            }
            Segment {
                ts: Timestamp(ts),
                packet_number: 0,
                source_index: 0,
                src_ip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, a)),
                dst_ip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, b)),
                src_port: 1000 + a as u16,
                dst_port: 1000 + b as u16,
                seq,
                ack,
                flags: TcpFlags(flags),
                window,
                payload_len: len,
                captured_payload_len: 0,
                ip_payload_len: len,
                checksum: Default::default(),
                ip_len: 40 + len,
                ttl: 64,
                ip_id: 0,
                vlan: None,
                options,
            }
        })
}

#[test]
fn engine_survives_arbitrary_segment_sequences() {
    let mut runner = runner(600, 4);
    let executions = std::cell::Cell::new(0u64);
    runner
        .run(&proptest::collection::vec(arbitrary_segment(), 1..300), |mut segs| {
            // Near-sorted time with jitter, as captures are; some sequences stay unsorted.
            if segs.len() % 3 != 0 {
                segs.sort_by_key(|s| s.ts);
            }
            // Keep sequence numbers close together in half the cases so the rules engage.
            if segs.len() % 2 == 0 {
                let base = segs[0].seq;
                for (i, s) in segs.iter_mut().enumerate() {
                    s.seq = base.wrapping_add((s.seq % 8_000).wrapping_mul(if i % 5 == 0 { 0 } else { 1 }));
                    s.ack = base.wrapping_add(s.ack % 8_000);
                }
            }
            let mut engine = Engine::new(EngineConfig { max_flows: 3, ..EngineConfig::default() });
            for (i, s) in segs.iter_mut().enumerate() {
                s.packet_number = i as u64 + 1;
                engine.handle_segment(s);
            }
            engine.finish(CloseReason::EndOfInput);
            let pkts: u64 = engine.output.flows.iter().map(|f| f.orig.pkts + f.resp.pkts).sum();
            prop_assert_eq!(pkts, segs.len() as u64, "every segment lands in exactly one flow row");
            prop_assert_eq!(engine.active_flows(), 0);
            executions.set(executions.get() + 1);
            Ok(())
        })
        .unwrap();
    eprintln!("engine_survives_arbitrary_segment_sequences: {executions} executions", executions = executions.get());
}

#[test]
fn packing_after_every_segment_changes_nothing_on_arbitrary_sequences() {
    // Arbitrary sequences reach states real traffic seldom does (wrapped sequence numbers, SACK
    // blocks anywhere, held blocks above holes): packing every connection after every segment,
    // checked field for field, must still give the output of a run that never packs.
    let mut runner = runner(300, 5);
    let executions = std::cell::Cell::new(0u64);
    runner
        .run(&proptest::collection::vec(arbitrary_segment(), 1..200), |mut segs| {
            segs.sort_by_key(|s| s.ts);
            if segs.len() % 2 == 0 {
                let base = segs[0].seq;
                for s in segs.iter_mut() {
                    s.seq = base.wrapping_add(s.seq % 8_000);
                    s.ack = base.wrapping_add(s.ack % 8_000);
                }
            }
            let config = EngineConfig { max_flows: 3, ..EngineConfig::default() };
            let (mut plain, mut packed) = (Engine::new(config), Engine::new(config));
            plain.never_pack();
            for (i, s) in segs.iter_mut().enumerate() {
                s.packet_number = i as u64 + 1;
                plain.handle_segment(s);
                packed.handle_segment(s);
                if let Err(diff) = packed.pack_all_checked() {
                    return Err(TestCaseError::fail(format!("segment {}: {diff}", i + 1)));
                }
            }
            plain.finish(CloseReason::EndOfInput);
            packed.finish(CloseReason::EndOfInput);
            prop_assert_eq!(&packed.output.events, &plain.output.events);
            prop_assert_eq!(&packed.output.flows, &plain.output.flows);
            executions.set(executions.get() + 1);
            Ok(())
        })
        .unwrap();
    eprintln!(
        "packing_after_every_segment_changes_nothing_on_arbitrary_sequences: {executions} executions",
        executions = executions.get()
    );
}

#[test]
fn corpus_files_and_their_mutations_never_panic() {
    let Some(corpus) = corpus_dir("corpus_files_and_their_mutations_never_panic") else { return };
    let executions = std::cell::Cell::new(0u64);
    for path in corpus_pcaps(&corpus) {
        let bytes = std::fs::read(&path).unwrap();
        full_path(&bytes);
        if bytes.len() > 200_000 {
            continue; // large files: the unmutated pass is enough here
        }
        let mut runner = runner(12, bytes.len() as u8);
        runner
            .run(&mutations(), |ms| {
                full_path(&apply(bytes.clone(), &ms));
                executions.set(executions.get() + 1);
                Ok(())
            })
            .unwrap();
    }
    eprintln!("corpus_files_and_their_mutations_never_panic: {executions} mutated executions", executions = executions.get());
}

#[test]
fn sigkill_mid_run_leaves_only_complete_readable_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.pcap");
    // Long enough in packet time for several hourly partitions, so files are published mid-run.
    let mut frames = Vec::new();
    for hour in 0..4u64 {
        for (t, f) in scenarios::many_connections(6_000, 300) {
            frames.push((t + hour * 3_600_000_000_000, f));
        }
    }
    write_ethernet_pcap(&input, &frames).unwrap();
    let out = dir.path().join("out");
    let bin = tcpscope_bin();
    for delay_ms in [150u64, 400, 900] {
        let mut child = Command::new(&bin)
            .args(["analyze", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--workers", "2", "--no-pin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGKILL: no chance to clean up.
        let _ = child.kill();
        let _ = child.wait();
        for dataset in ["events", "flows"] {
            let files = parquet_files(&out, dataset);
            for f in &files {
                let rows = duckdb_query(&format!("SELECT count(*) FROM read_parquet('{}')", f.display()));
                assert!(rows[0][0].is_some(), "{} unreadable", f.display());
            }
            if !files.is_empty() {
                duckdb_query(&format!(
                    "SELECT count(*) FROM read_parquet('{}/{dataset}/**/*.parquet', hive_partitioning=true)",
                    out.display()
                ));
            }
        }
    }
    // The next run clears what the killed runs left in staging and says so.
    let leftovers = std::fs::read_dir(out.join(".staging")).map(|d| d.count()).unwrap_or(0);
    let run = Command::new(&bin)
        .args(["analyze", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--workers", "2", "--no-pin"])
        .output()
        .unwrap();
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    if leftovers > 0 {
        assert!(stderr.contains("incomplete file(s) that an interrupted run left"), "{stderr}");
    }
    assert_eq!(std::fs::read_dir(out.join(".staging")).unwrap().count(), 0);
}

/// Runs a command to completion and returns (exit status, stderr, peak RSS of that process in KiB).
// The child is reaped by wait4 (by pid), which also reports its peak RSS; clippy cannot see it.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (i32, String, i64) {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr_pipe = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr_pipe, &mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: plain FFI calls on structs we own; wait4 reaps exactly this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, reader.join().unwrap(), usage.ru_maxrss)
}

#[test]
fn syn_flood_stays_within_the_flow_table_bound() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("flood.pcap");
    // 400k spoofed sources, one SYN each, 1 µs apart.
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut w = PcapWriter::new(file, 1, false).unwrap();
        for i in 0..400_000u32 {
            let src = format!("198.{}.{}.{}:{}", 18 + (i >> 16 & 1), (i >> 8) & 0xFF, i & 0xFF, 1024 + (i % 60_000));
            let f = PacketBuilder::v4(&src, "198.19.255.1:443").flags(TcpFlags::SYN).seq(i).ethernet();
            w.write_packet(1_793_534_400_000_000_000 + i as u64 * 1_000, &f).unwrap();
        }
        w.into_inner().unwrap();
    }
    let out = dir.path().join("out");
    let (code, stderr, rss_kib) = run_measured(
        Command::new(tcpscope_bin())
            .args(["analyze", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--workers", "2", "--no-pin"])
            .args(["--max-flows", "20000"]),
    );
    assert_eq!(code, 0, "{stderr}");
    let evicted: u64 = stderr
        .lines()
        .find(|l| l.contains("flows evicted"))
        .and_then(|l| l.split("tcpscope: ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count in:\n{stderr}"));
    assert!(evicted >= 380_000 - 1, "evicted {evicted}");
    let rss_mib = rss_kib / 1024;
    eprintln!("syn flood: 400000 sources, --max-flows 20000, {evicted} evicted, peak RSS {rss_mib} MiB");
    // The bound: a fixed part (mapped input, bounded queues, one Parquet row group per open file)
    // plus 8 KiB per tracked flow, far below what 400,000 unbounded flows would take.
    let bound_mib = 128 + 20_000 * 8 / 1024;
    assert!(rss_mib < bound_mib, "peak RSS {rss_mib} MiB above {bound_mib} MiB");
    let rows = duckdb_query(&format!(
        "SELECT close_reason, count(*) FROM read_parquet('{}/flows/**/*.parquet') GROUP BY 1 ORDER BY 1",
        out.display()
    ));
    assert_eq!(rows.iter().map(|r| r[1].as_deref().unwrap().parse::<u64>().unwrap()).sum::<u64>(), 400_000);
}
