//! `tcpscope capture`: live capture arguments, wiring and the final summary.

use super::{default_workers, host_name, run_tag, EngineArgs, PluginArgs};
use crate::live::{capture, LiveConfig, LiveReport, StopCause, DEFAULT_SNAPLEN};
use crate::source::afpacket::RingConfig;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `tcpscope capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on (repeat for several).
    #[arg(short = 'i', long = "interface", required = true, value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Output directory for the `events/` and `flows/` datasets and `stats.json`.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Reader threads per interface, one AF_PACKET socket each, in one fanout group.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub readers: usize,
    /// Worker threads [default: available cores minus one, at least one].
    #[arg(long, short, value_name = "N")]
    pub workers: Option<usize>,
    /// CPUs to pin the readers to, in turn (e.g. `2,3` or `2-5`) [default: every CPU].
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,
    /// Do not pin readers and workers to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many packets (all interfaces together).
    #[arg(long, value_name = "N")]
    pub packets: Option<u64>,
    /// Bytes kept of each packet (the kernel cuts the rest).
    #[arg(long, default_value_t = DEFAULT_SNAPLEN, value_name = "BYTES")]
    pub snaplen: u32,
    /// Put the interfaces in promiscuous mode.
    #[arg(long)]
    pub promisc: bool,
    /// Switch to this user once the sockets are open (as `tcpdump -Z`).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Ring block size in bytes (a power of two).
    #[arg(long, default_value_t = RingConfig::default().block_size, value_name = "BYTES")]
    pub block_size: u32,
    /// Ring blocks per socket.
    #[arg(long, default_value_t = RingConfig::default().block_count, value_name = "N")]
    pub block_count: u32,
    /// Ring frame size in bytes (checked by the kernel only).
    #[arg(long, default_value_t = RingConfig::default().frame_size, value_name = "BYTES")]
    pub frame_size: u32,
    /// A partly filled block is handed over after this many milliseconds.
    #[arg(long, default_value_t = RingConfig::default().block_timeout_ms, value_name = "MS")]
    pub block_timeout: u32,
    /// Name written to the `sensor` column [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub sensor: Option<String>,
    /// Seconds between stats lines on stderr (0: none).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub stats_interval: f64,
    /// No stats lines and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Testing aid: sleep this many milliseconds after each ring block (a deliberately slow reader).
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    pub debug_reader_delay: u64,
    /// Benchmark aid: readers wait this many milliseconds before reading, then report the drain rate.
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    pub debug_start_delay: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub engine: EngineArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub plugins: PluginArgs,
    /// Capture filter in tcpdump syntax (e.g. `tcp port 443`), compiled with libpcap.
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub filter: Vec<String>,
}

/// A list of CPU numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Parses `0,2-4,7`.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not a CPU number or range");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(CpuList(cpus))
}

/// Runs `tcpscope capture`.
pub fn run_capture(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let mut config = LiveConfig::new(args.interfaces.clone(), args.out.clone());
    config.readers_per_interface = args.readers.max(1);
    config.workers = args.workers.unwrap_or_else(default_workers).max(1);
    config.reader_cpus = args.cpus.clone().map(|c| c.0).unwrap_or_default();
    config.pin = !args.no_pin;
    config.duration = args.duration.filter(|d| *d > 0.0).map(Duration::from_secs_f64);
    config.max_packets = args.packets;
    config.snaplen = args.snaplen.max(1);
    config.promiscuous = args.promisc;
    config.filter = (!args.filter.is_empty()).then(|| args.filter.join(" "));
    config.user = args.user.clone();
    config.ring = RingConfig {
        block_size: args.block_size,
        block_count: args.block_count,
        frame_size: args.frame_size,
        block_timeout_ms: args.block_timeout,
    };
    config.sensor = args.sensor.clone().unwrap_or_else(host_name);
    config.engine = args.engine.engine_config();
    config.run_tag = run_tag();
    config.stats_interval =
        (!args.quiet && args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    config.reader_block_delay = Duration::from_millis(args.debug_reader_delay);
    config.reader_start_delay = Duration::from_millis(args.debug_start_delay);
    config.plugins = args.plugins.load(config.workers)?;

    if !args.quiet {
        eprintln!(
            "tcpscope: capturing on {} ({} reader(s) each, {} worker(s), ring {} x {} KiB){}; Ctrl-C stops",
            config.interfaces.join(", "),
            config.readers_per_interface,
            config.workers,
            config.ring.block_count,
            config.ring.block_size / 1024,
            config.filter.as_deref().map(|f| format!(", filter `{f}`")).unwrap_or_default(),
        );
    }
    let report = capture(&config).with_context(|| format!("live capture on {}", config.interfaces.join(", ")))?;
    for e in &report.reader_errors {
        eprintln!("tcpscope: error: {e}");
    }
    if let Some(e) = &report.sink_error {
        eprintln!("tcpscope: error: {e}");
    }
    if !args.quiet {
        print_summary(&report, &config);
    }
    for line in config.plugins.iter().flat_map(|p| p.health_report()) {
        eprintln!("tcpscope: {line}");
    }
    Ok(if report.reader_errors.is_empty() && report.sink_error.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_summary(report: &LiveReport, config: &LiveConfig) {
    let s = &report.stats;
    let why = match report.stopped_by {
        StopCause::Signal => "stopped by signal",
        StopCause::Duration => "duration reached",
        StopCause::PacketLimit => "packet limit reached",
        StopCause::ReaderError => "stopped by an error",
    };
    eprintln!(
        "tcpscope: {why}: {} packets received on {} in {:.1} s ({} passed the filter, {} kernel drops, {} ring freezes)",
        s.packets_received,
        config.interfaces.join(", "),
        s.elapsed_s,
        s.kernel_packets,
        s.kernel_drops,
        s.kernel_freezes
    );
    eprintln!(
        "tcpscope: {} TCP segments ({} dropped at full worker queues); skipped: {} not TCP, {} IP fragments; {} undecodable, {} truncated by snaplen",
        s.tcp_segments, s.queue_drops, s.not_tcp, s.fragments, s.undecodable, s.truncated
    );
    if s.discarded_after_limit > 0 {
        eprintln!("tcpscope: {} packets left in the ring after the packet limit", s.discarded_after_limit);
    }
    eprintln!(
        "tcpscope: {} flows, {} events; wrote {} event rows and {} flow rows in {} files; counters in {}",
        report.workers.flows,
        report.workers.events,
        report.sink.events_written,
        report.sink.flows_written,
        report.sink.files_published,
        config.out_dir.join("stats.json").display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2-4, 7").unwrap().0, vec![0, 2, 3, 4, 7]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }
}
