//! Live capture: AF_PACKET readers (one pinned thread per socket, a dispatcher each) feeding the
//! same workers and Parquet sink as `analyze`; drop accounting, the stats line and `stats.json`,
//! packet time advanced on a quiet link, and a clean stop on SIGINT/SIGTERM.
//!
//! This is the only module besides the CLI that reads the clock: wall time decides when to print
//! and when a quiet link's packet time moves on; the engine still sees packet time only.

#![allow(clippy::disallowed_methods)] // wall clock: stats cadence and quiet-link ticks only

use crate::decode::LinkType;
use crate::dispatch::{Backpressure, Dispatcher};
use crate::error::SinkError;
use crate::pipeline::Backend;
use crate::plugin_host::PluginSet;
use crate::sink::{ParquetSink, SinkConfig, SinkCounters};
use crate::source::afpacket::{os, BpfProgram, CaptureError, KernelStats, PacketSocket, RingConfig};
use crate::source::Frame;
use crate::stats::{ReadCounters, WorkerCounters};
use crate::tcp::{CloseReason, EngineConfig};
use crate::time::Timestamp;
use crate::worker::{SinkMessage, WorkerMessage};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Settings of a live capture.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interfaces to capture on.
    pub interfaces: Vec<String>,
    /// Reader threads (sockets in one fanout group) per interface.
    pub readers_per_interface: usize,
    /// Worker threads.
    pub workers: usize,
    /// CPUs the readers are pinned to, in turn (empty: every CPU).
    pub reader_cpus: Vec<usize>,
    /// Pin readers and workers to CPUs.
    pub pin: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many packets (all interfaces together).
    pub max_packets: Option<u64>,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Put the interfaces in promiscuous mode.
    pub promiscuous: bool,
    /// Capture filter in tcpdump syntax.
    pub filter: Option<String>,
    /// Switch to this user once the sockets are open.
    pub user: Option<String>,
    /// Ring geometry of each socket.
    pub ring: RingConfig,
    /// Output root.
    pub out_dir: PathBuf,
    /// The `sensor` column.
    pub sensor: String,
    /// Engine settings (`max_flows` is the total).
    pub engine: EngineConfig,
    /// A unique tag of this run for file names.
    pub run_tag: String,
    /// How often the stats line is printed on stderr (`None`: never).
    pub stats_interval: Option<Duration>,
    /// Testing aid: a reader sleeps this long after each block (simulates a slow reader).
    pub reader_block_delay: Duration,
    /// Benchmark aid: readers sleep this long before their first read, then report how fast they
    /// drained the ring that filled meanwhile.
    pub reader_start_delay: Duration,
    /// Detector plugins, loaded for `workers` workers.
    pub plugins: Option<Arc<PluginSet>>,
}

impl LiveConfig {
    /// Settings with the defaults of `tcpscope capture` for the given interfaces and output.
    pub fn new(interfaces: Vec<String>, out_dir: PathBuf) -> Self {
        LiveConfig {
            interfaces,
            readers_per_interface: 1,
            workers: 1,
            reader_cpus: Vec::new(),
            pin: true,
            duration: None,
            max_packets: None,
            snaplen: DEFAULT_SNAPLEN,
            promiscuous: false,
            filter: None,
            user: None,
            ring: RingConfig::default(),
            out_dir,
            sensor: "tcpscope".into(),
            engine: EngineConfig::default(),
            run_tag: "live".into(),
            stats_interval: Some(Duration::from_secs(5)),
            reader_block_delay: Duration::ZERO,
            reader_start_delay: Duration::ZERO,
            plugins: None,
        }
    }
}

/// Default bytes kept per packet (tcpdump's default).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// How long a reader waits in `poll` before looking at the stop flag again.
const POLL_TIMEOUT_MS: i32 = 100;
/// How often kernel counters are read and `stats.json` is rewritten.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// A link with no packet for this long gets its packet time advanced by the wall clock.
const QUIET_AFTER: Duration = Duration::from_secs(1);

/// A failure of live capture as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Setting up or running a socket failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The output could not be prepared.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Counters of one reader (one socket), as written to `stats.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReaderStats {
    /// Interface.
    pub interface: String,
    /// Reader number within its interface.
    pub reader: usize,
    /// CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Packets taken from the ring and decoded.
    pub packets: u64,
    /// Kernel: packets that passed the filter (delivered or dropped).
    pub kernel_packets: u64,
    /// Kernel: packets dropped because the ring was full.
    pub kernel_drops: u64,
    /// Kernel: times the ring froze because user space held the next block.
    pub kernel_freezes: u64,
    /// Segments dropped because a worker queue was full.
    pub queue_drops: u64,
}

/// The counters of a capture, as written to `<out>/stats.json` (while running and at the end).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LiveStats {
    /// Whether the capture is still running (false in the final file).
    pub running: bool,
    /// Interfaces captured.
    pub interfaces: Vec<String>,
    /// Seconds since the capture started.
    pub elapsed_s: f64,
    /// Packets taken from the rings and decoded (delivered to tcpscope).
    pub packets_received: u64,
    /// Bytes on the wire of those packets.
    pub bytes_received: u64,
    /// Kernel: packets that passed the capture filter (`tp_packets`, drops included).
    pub kernel_packets: u64,
    /// Kernel: packets lost because a ring was full (`tp_drops`).
    pub kernel_drops: u64,
    /// Kernel: ring freezes (`tp_freeze_q_cnt`).
    pub kernel_freezes: u64,
    /// Kernel: packets put in the rings (`kernel_packets − kernel_drops`); at the end this equals
    /// `packets_received + discarded_after_limit`.
    pub kernel_delivered: u64,
    /// TCP segments dropped because a worker queue was full.
    pub queue_drops: u64,
    /// Packets cut short by the snaplen.
    pub truncated: u64,
    /// Packets too short or malformed to decode.
    pub undecodable: u64,
    /// Packets that are not TCP.
    pub not_tcp: u64,
    /// IP fragments (not reassembled; IPv4 fragments are reassembled by the kernel's fanout).
    pub fragments: u64,
    /// TCP segments decoded and handed to workers (or dropped at a full queue).
    pub tcp_segments: u64,
    /// Packets left in the ring after `--packets` was reached.
    pub discarded_after_limit: u64,
    /// Segments the workers analysed (known at the end).
    pub segments_analysed: Option<u64>,
    /// Flows evicted because the flow table was full (known at the end).
    pub flows_evicted: Option<u64>,
    /// Quiet connections packed, and of those packed early because more than `--max-unpacked`
    /// were in working form (known at the end).
    pub connections_packed: Option<u64>,
    /// See `connections_packed`.
    pub connections_packed_early: Option<u64>,
    /// Segments stamped earlier than the packet time their worker had reached, e.g. from a
    /// reader a few milliseconds behind another (known at the end; analysed all the same).
    pub segments_behind_packet_time: Option<u64>,
    /// Event rows produced so far.
    pub events: u64,
    /// Flow rows produced so far.
    pub flows: u64,
    /// Connections tracked now.
    pub active_flows: u64,
    /// Per-reader counters.
    pub readers: Vec<ReaderStats>,
}

/// The outcome of a capture.
#[derive(Debug, Default)]
pub struct LiveReport {
    /// Final counters (also in `stats.json`).
    pub stats: LiveStats,
    /// Worker counters.
    pub workers: WorkerCounters,
    /// Sink counters.
    pub sink: SinkCounters,
    /// A sink failure, if any.
    pub sink_error: Option<SinkError>,
    /// A reader failure, if any (the capture stopped because of it).
    pub reader_errors: Vec<CaptureError>,
    /// Why the capture stopped.
    pub stopped_by: StopCause,
}

/// Why a capture stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StopCause {
    /// SIGINT or SIGTERM.
    #[default]
    Signal,
    /// `--duration` elapsed.
    Duration,
    /// `--packets` reached.
    PacketLimit,
    /// A reader failed.
    ReaderError,
}

/// What a reader publishes for the driver, updated after every block.
#[derive(Default)]
struct ReaderShared {
    packets: AtomicU64,
    wire_bytes: AtomicU64,
    tcp_segments: AtomicU64,
    not_tcp: AtomicU64,
    fragments: AtomicU64,
    undecodable: AtomicU64,
    truncated: AtomicU64,
    queue_drops: AtomicU64,
    discarded: AtomicU64,
    kernel_packets: AtomicU64,
    kernel_drops: AtomicU64,
    kernel_freezes: AtomicU64,
    last_ts: AtomicU64,
}

impl ReaderShared {
    fn publish(&self, c: &ReadCounters, wire_bytes: u64, discarded: u64, last_ts: Timestamp) {
        self.packets.store(c.packets, Ordering::Relaxed);
        self.wire_bytes.store(wire_bytes, Ordering::Relaxed);
        self.tcp_segments.store(c.tcp_segments, Ordering::Relaxed);
        self.not_tcp.store(c.not_tcp, Ordering::Relaxed);
        self.fragments.store(c.fragments, Ordering::Relaxed);
        self.undecodable.store(c.undecodable, Ordering::Relaxed);
        self.truncated.store(c.truncated, Ordering::Relaxed);
        self.queue_drops.store(c.queue_drops, Ordering::Relaxed);
        self.discarded.store(discarded, Ordering::Relaxed);
        self.last_ts.fetch_max(last_ts.as_nanos(), Ordering::Relaxed);
    }

    fn publish_kernel(&self, k: &KernelStats) {
        self.kernel_packets.store(k.packets, Ordering::Relaxed);
        self.kernel_drops.store(k.drops, Ordering::Relaxed);
        self.kernel_freezes.store(k.freezes, Ordering::Relaxed);
    }
}

/// State shared by every reader of a capture.
struct Control {
    stop: AtomicBool,
    /// Packets still allowed by `--packets` (u64::MAX: no limit).
    budget: AtomicU64,
    limit_reached: AtomicBool,
    errors: Mutex<Vec<CaptureError>>,
}

impl Control {
    /// Takes up to `n` packets from the budget; returns how many may be processed.
    fn claim(&self, n: u32) -> u32 {
        let mut current = self.budget.load(Ordering::Relaxed);
        loop {
            if current == u64::MAX {
                return n;
            }
            let take = current.min(u64::from(n));
            match self.budget.compare_exchange_weak(current, current - take, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if current - take == 0 {
                        self.limit_reached.store(true, Ordering::SeqCst);
                        self.stop.store(true, Ordering::SeqCst);
                    }
                    return take as u32;
                }
                Err(now) => current = now,
            }
        }
    }
}

struct ReaderPlan {
    socket: PacketSocket,
    source_index: u32,
    link: LinkType,
    cpu: Option<core_affinity::CoreId>,
    shared: Arc<ReaderShared>,
    packet_numbers: Arc<AtomicU64>,
}

/// Opens every socket (so that permission, interface and filter errors come before anything
/// runs), drops privileges if asked, then captures until a signal, `duration` or `max_packets`.
pub fn capture(config: &LiveConfig) -> Result<LiveReport, LiveError> {
    let started = Instant::now();
    let readers_per_interface = config.readers_per_interface.max(1);
    let workers = config.workers.max(1);

    // Filters first: a filter that does not compile is an error before any socket exists.
    let mut plans = Vec::new();
    let mut links = Vec::new();
    for interface in &config.interfaces {
        let link = os::interface_link_type(interface)?;
        links.push(link);
    }
    let programs: Vec<Option<BpfProgram>> = links
        .iter()
        .map(|&link| match &config.filter {
            Some(expression) => BpfProgram::compile(expression, link, config.snaplen).map(Some),
            None if config.snaplen < DEFAULT_SNAPLEN => Ok(Some(BpfProgram::accept_all(config.snaplen))),
            None => Ok(None),
        })
        .collect::<Result<_, _>>()?;

    let cores = if config.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    let reader_cores: Vec<core_affinity::CoreId> = if config.reader_cpus.is_empty() {
        cores.clone()
    } else {
        config.reader_cpus.iter().map(|&id| core_affinity::CoreId { id }).collect()
    };
    os::install_stop_signals()?;
    for (source_index, interface) in config.interfaces.iter().enumerate() {
        let packet_numbers = Arc::new(AtomicU64::new(0));
        let mut group = None;
        for _ in 0..readers_per_interface {
            let socket = PacketSocket::open(
                interface,
                &config.ring,
                programs[source_index].as_ref(),
                config.promiscuous,
                group,
                os::is_loopback(interface),
            )?;
            if group.is_none() {
                group = Some(socket.fanout_id()?);
            }
            let k = plans.len();
            let cpu = (config.pin && !reader_cores.is_empty()).then(|| reader_cores[k % reader_cores.len()]);
            plans.push(ReaderPlan {
                socket,
                source_index: source_index as u32,
                link: links[source_index],
                cpu,
                shared: Arc::new(ReaderShared::default()),
                packet_numbers: packet_numbers.clone(),
            });
        }
    }
    if let Some(user) = &config.user {
        os::drop_privileges(user)?;
    }

    let sink = ParquetSink::create(SinkConfig::new(
        config.out_dir.clone(),
        config.sensor.clone(),
        config.interfaces.clone(),
        config.run_tag.clone(),
    ))?;
    // Workers go on the CPUs the readers do not use, when there are any.
    let reader_ids: Vec<usize> = plans.iter().filter_map(|p| p.cpu.map(|c| c.id)).collect();
    let spare: Vec<core_affinity::CoreId> = cores.iter().copied().filter(|c| !reader_ids.contains(&c.id)).collect();
    let worker_cores = (0..workers).map(|w| (!spare.is_empty()).then(|| spare[w % spare.len()])).collect();
    let backend = Backend::start_with_plugins(
        sink,
        config.engine,
        workers,
        worker_cores,
        config.plugins.clone(),
        crate::pipeline::WORKER_QUEUE_BATCHES,
    );

    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        budget: AtomicU64::new(config.max_packets.unwrap_or(u64::MAX)),
        limit_reached: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
    });
    let mut reader_info = Vec::new();
    let mut handles = Vec::new();
    for (k, plan) in plans.into_iter().enumerate() {
        let reader = k % readers_per_interface;
        reader_info.push((config.interfaces[plan.source_index as usize].clone(), reader, plan.cpu.map(|c| c.id), plan.shared.clone()));
        let mut dispatcher = Dispatcher::new(backend.queues.clone(), Backpressure::Drop, Some(backend.recycled.clone()));
        dispatcher.set_verify_checksums(config.engine.verify_checksums);
        let control = control.clone();
        let block_timeout = Duration::from_millis(u64::from(config.ring.block_timeout_ms));
        let delay = config.reader_block_delay;
        let start_delay = config.reader_start_delay;
        let name = format!("tcpscope-reader-{}-{reader}", config.interfaces[plan.source_index as usize]);
        handles.push(
            thread::Builder::new()
                .name(name)
                .spawn(move || run_reader(plan, dispatcher, &control, block_timeout, delay, start_delay))
                .expect("spawning a reader thread"),
        );
    }

    // The driver: stop conditions, quiet-link ticks, kernel counters, stats line and file.
    let stats_path = config.out_dir.join("stats.json");
    // A first stats.json says the sockets are open and the readers run.
    let _ = write_stats(&stats_path, &collect(config, &reader_info, &backend, started, true));
    let mut last_seen_ts = 0u64;
    let mut last_seen_at = Instant::now();
    let mut next_stats = Instant::now() + STATS_PERIOD;
    let mut next_line = config.stats_interval.map(|i| Instant::now() + i);
    let mut previous_line: Option<(Instant, LiveStats)> = None;
    let stopped_by = loop {
        thread::sleep(Duration::from_millis(50));
        if os::stop_requested() {
            break StopCause::Signal;
        }
        if control.limit_reached.load(Ordering::SeqCst) {
            break StopCause::PacketLimit;
        }
        if control.stop.load(Ordering::SeqCst) || handles.iter().any(|h| h.is_finished()) {
            break StopCause::ReaderError;
        }
        if config.duration.is_some_and(|d| started.elapsed() >= d) {
            break StopCause::Duration;
        }
        let now = Instant::now();
        let newest = reader_info.iter().map(|r| r.3.last_ts.load(Ordering::Relaxed)).max().unwrap_or(0);
        if newest != last_seen_ts {
            last_seen_ts = newest;
            last_seen_at = now;
        }
        if now >= next_stats {
            next_stats = now + STATS_PERIOD;
            if last_seen_ts != 0 {
                let quiet = now.duration_since(last_seen_at) >= QUIET_AFTER;
                // On a quiet link packet time is the last packet's time plus the wall time since;
                // on a busy one the readers' own ticks move the workers, and the sink follows here.
                let tick = if quiet {
                    Timestamp(last_seen_ts).plus_nanos(now.duration_since(last_seen_at).as_nanos() as u64)
                } else {
                    Timestamp(last_seen_ts)
                };
                if quiet {
                    for q in &backend.queues {
                        let _ = q.try_send(WorkerMessage::Tick(tick));
                    }
                }
                // Files older than the rotation age are published even while traffic flows.
                let _ = backend.sink.try_send(SinkMessage::Tick(tick));
            }
            let stats = collect(config, &reader_info, &backend, started, true);
            let _ = write_stats(&stats_path, &stats);
            if let Some(at) = next_line {
                if now >= at {
                    next_line = config.stats_interval.map(|i| now + i);
                    print_line(&stats, previous_line.as_ref().map(|(t, s)| (now.duration_since(*t), s)));
                    previous_line = Some((now, stats));
                }
            }
        }
    };

    // Stop: readers detach, drain their rings, read the final kernel counters and exit.
    control.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let (workers_counters, sink_result) = backend.finish(CloseReason::Shutdown);
    let mut report = LiveReport { stopped_by, workers: workers_counters, ..LiveReport::default() };
    report.reader_errors = std::mem::take(&mut *control.errors.lock().unwrap_or_else(|e| e.into_inner()));
    match sink_result {
        Ok(c) => report.sink = c,
        Err(e) => report.sink_error = Some(e),
    }
    let mut stats = collect_readers(config, &reader_info, started, false);
    stats.segments_analysed = Some(report.workers.engine.segments);
    stats.flows_evicted = Some(report.workers.engine.flows_evicted);
    stats.connections_packed = Some(report.workers.engine.connections_packed);
    stats.connections_packed_early = Some(report.workers.engine.connections_packed_early);
    stats.segments_behind_packet_time = Some(report.workers.engine.time_went_backwards);
    stats.events = report.workers.events;
    stats.flows = report.workers.flows;
    stats.active_flows = 0;
    if let Err(e) = write_stats(&stats_path, &stats) {
        eprintln!("tcpscope: error: writing {}: {e}", stats_path.display());
    }
    report.stats = stats;
    Ok(report)
}

type ReaderInfo = (String, usize, Option<usize>, Arc<ReaderShared>);

fn collect(config: &LiveConfig, readers: &[ReaderInfo], backend: &Backend, started: Instant, running: bool) -> LiveStats {
    let mut s = collect_readers(config, readers, started, running);
    s.events = backend.gauges.event_rows.load(Ordering::Relaxed);
    s.flows = backend.gauges.flow_rows.load(Ordering::Relaxed);
    s.active_flows = backend.gauges.active_flows();
    s
}

fn collect_readers(config: &LiveConfig, readers: &[ReaderInfo], started: Instant, running: bool) -> LiveStats {
    let mut s = LiveStats {
        running,
        interfaces: config.interfaces.clone(),
        elapsed_s: started.elapsed().as_secs_f64(),
        ..LiveStats::default()
    };
    for (interface, reader, cpu, r) in readers {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let one = ReaderStats {
            interface: interface.clone(),
            reader: *reader,
            cpu: *cpu,
            packets: l(&r.packets),
            kernel_packets: l(&r.kernel_packets),
            kernel_drops: l(&r.kernel_drops),
            kernel_freezes: l(&r.kernel_freezes),
            queue_drops: l(&r.queue_drops),
        };
        s.packets_received += one.packets;
        s.bytes_received += l(&r.wire_bytes);
        s.kernel_packets += one.kernel_packets;
        s.kernel_drops += one.kernel_drops;
        s.kernel_freezes += one.kernel_freezes;
        s.queue_drops += one.queue_drops;
        s.truncated += l(&r.truncated);
        s.undecodable += l(&r.undecodable);
        s.not_tcp += l(&r.not_tcp);
        s.fragments += l(&r.fragments);
        s.tcp_segments += l(&r.tcp_segments);
        s.discarded_after_limit += l(&r.discarded);
        s.readers.push(one);
    }
    s.kernel_delivered = s.kernel_packets.saturating_sub(s.kernel_drops);
    s
}

/// Writes `stats` to `path` atomically (temporary file, then rename).
fn write_stats(path: &Path, stats: &LiveStats) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(stats).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

fn print_line(now: &LiveStats, previous: Option<(Duration, &LiveStats)>) {
    let (secs, p) = match previous {
        Some((d, p)) => (d.as_secs_f64().max(1e-3), p.clone()),
        None => (now.elapsed_s.max(1e-3), LiveStats::default()),
    };
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    eprintln!(
        "tcpscope: {:.0} packets/s, {:.2} Mbit/s, kernel drops {}, queue drops {}, {} active flows, {:.1} events/s",
        rate(now.packets_received, p.packets_received),
        rate(now.bytes_received, p.bytes_received) * 8.0 / 1e6,
        now.kernel_drops,
        now.queue_drops,
        now.active_flows,
        rate(now.events, p.events),
    );
}

fn run_reader(
    plan: ReaderPlan,
    mut dispatcher: Dispatcher,
    control: &Control,
    block_timeout: Duration,
    delay: Duration,
    start_delay: Duration,
) {
    let ReaderPlan { mut socket, source_index, link, cpu, shared, packet_numbers } = plan;
    if let Some(core) = cpu {
        core_affinity::set_for_current(core);
    }
    let tick_margin = (block_timeout * 4 + Duration::from_millis(50)).as_nanos() as u64;
    let mut drain_timer = None;
    if !start_delay.is_zero() {
        thread::sleep(start_delay);
        drain_timer = Some(Instant::now());
    }
    let mut kernel = KernelStats::default();
    let mut wire_bytes = 0u64;
    let mut discarded = 0u64;
    let mut scratch: Vec<u8> = Vec::with_capacity(2048);
    let mut next_kernel_read = Instant::now() + STATS_PERIOD;
    let mut stopping_since: Option<Instant> = None;
    let fail = |e: CaptureError| {
        control.errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        control.stop.store(true, Ordering::SeqCst);
    };
    loop {
        if stopping_since.is_none() && control.stop.load(Ordering::SeqCst) {
            // Nothing new enters the ring from here; the partly filled block is retired by the
            // kernel within one block timeout, then everything is drained.
            if let Err(e) = socket.stop_receiving() {
                fail(e);
                break;
            }
            // Nothing new can arrive: what is left in the ring waits for the workers rather than
            // being dropped at a full queue.
            dispatcher.set_backpressure(Backpressure::Block);
            stopping_since = Some(Instant::now());
        }
        let mut block_done = false;
        match socket.next_block(POLL_TIMEOUT_MS) {
            Ok(Some(block)) => {
                let in_block = block.packet_count();
                let allowed = if control.limit_reached.load(Ordering::Relaxed) { 0 } else { control.claim(in_block) };
                let first = packet_numbers.fetch_add(u64::from(allowed), Ordering::Relaxed) + 1;
                let mut number = first;
                block.for_each_packet(allowed, |p| {
                    wire_bytes += u64::from(p.wire_len);
                    let ts = Timestamp::from_secs_nanos(u64::from(p.sec), u64::from(p.nsec));
                    let frame = match p.vlan_tci {
                        // The kernel stripped the outer tag into the ring header: put it back.
                        Some(tci) if link == LinkType::Ethernet && p.data.len() >= 12 => {
                            scratch.clear();
                            scratch.extend_from_slice(&p.data[..12]);
                            scratch.extend_from_slice(&p.vlan_tpid.to_be_bytes());
                            scratch.extend_from_slice(&tci.to_be_bytes());
                            scratch.extend_from_slice(&p.data[12..]);
                            Frame { ts, packet_number: number, link, data: &scratch, wire_len: p.wire_len + 4 }
                        }
                        _ => Frame { ts, packet_number: number, link, data: p.data, wire_len: p.wire_len },
                    };
                    dispatcher.push_frame(frame, source_index);
                    number += 1;
                });
                discarded += u64::from(in_block - allowed);
                drop(block); // the block goes back to the kernel here
                block_done = true;
            }
            Ok(None) => {
                if let Some(since) = stopping_since {
                    if since.elapsed() >= block_timeout * 3 + Duration::from_millis(2 * POLL_TIMEOUT_MS as u64) {
                        break;
                    }
                }
            }
            Err(e) => {
                fail(e);
                break;
            }
        }
        if block_done {
            if !socket.has_ready_block() {
                // Caught up: hand over partial batches now (latency); under load, batches fill
                // up across blocks instead (fewer, fuller queue messages).
                dispatcher.flush_batches();
                // Workers also take packets from other readers, which may be up to a block
                // behind this one: tick a little behind, so their packets are not late.
                dispatcher.tick(Timestamp(dispatcher.last_ts().as_nanos().saturating_sub(tick_margin)));
            }
            shared.publish(&dispatcher.counters, wire_bytes, discarded, dispatcher.last_ts());
            if !delay.is_zero() {
                thread::sleep(delay);
            }
        }
        if let Some(started) = drain_timer {
            if !socket.has_ready_block() {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let packets = dispatcher.counters.packets;
                eprintln!(
                    "tcpscope: {}: drained {packets} packets from the ring in {:.1} ms: {:.2} Mpackets/s (decode, hash and enqueue included)",
                    socket.interface(),
                    secs * 1e3,
                    packets as f64 / secs / 1e6
                );
                drain_timer = None;
            }
        }
        if Instant::now() >= next_kernel_read {
            next_kernel_read = Instant::now() + STATS_PERIOD;
            match socket.statistics() {
                Ok(k) => kernel.add(&k),
                Err(e) => {
                    fail(e);
                    break;
                }
            }
            shared.publish_kernel(&kernel);
        }
    }
    if let Ok(k) = socket.statistics() {
        kernel.add(&k);
    }
    dispatcher.flush();
    shared.publish(&dispatcher.counters, wire_bytes, discarded, dispatcher.last_ts());
    shared.publish_kernel(&kernel);
}
