//! Command-line interface: argument parsing and wiring; the only place that reads the clock.

#[cfg(target_os = "linux")]
pub mod capture;
pub mod plugins;

pub use plugins::PluginArgs;

use crate::pipeline::{analyze_with_plugins, AnalyzeConfig, Progress, RunReport};
use crate::tcp::EngineConfig;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// tcpscope: watches TCP and tells what went wrong, keeping the answer in Parquet.
#[derive(Debug, Parser)]
#[command(name = "tcpscope", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse pcap/pcapng files and write Parquet `events` and `flows` datasets.
    Analyze(AnalyzeArgs),
    /// Capture live on network interfaces (AF_PACKET, Linux) and write the same datasets.
    #[cfg(target_os = "linux")]
    Capture(capture::CaptureArgs),
    /// Detector plugins: `tcpscope plugin inspect PATH`.
    Plugin(plugins::PluginCommandArgs),
}

/// Engine settings shared by `analyze` and `capture`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Close a flow after this many seconds without a packet (packet time; Zeek's
    /// tcp_inactivity_timeout is also 5 minutes).
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub idle_timeout: f64,
    /// After both FINs, a RST, or a FIN from a side whose peer never spoke, late packets still
    /// join the flow for this many seconds (Zeek's tcp_close_delay).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub close_linger: f64,
    /// End a connection attempt whose SYN is still unanswered after this many seconds
    /// (close_reason attempt_timeout); later packets start a new row. 0 (the default) keeps a
    /// retried attempt in one row; 5 reproduces Zeek's conn.log rows (tcp_attempt_delay).
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub attempt_timeout: f64,
    /// Maximum concurrent flows (all workers together); the longest-idle flow is evicted beyond it.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,
    /// Connections kept in their working form (about 1 KiB each; all workers together). A
    /// connection quiet for a second is packed into about 100 bytes; beyond this many unpacked,
    /// the least recently active are packed sooner. Lower saves memory, higher saves the
    /// packing and unpacking work (about 2 µs per quiet connection woken).
    #[arg(long, default_value_t = 32_768, value_name = "N")]
    pub max_unpacked: usize,
    /// Verify TCP checksums (off by default, as tshark and `zeek -C`: offloading NICs leave
    /// outgoing checksums unset). A bad one marks the flow's history `C`/`c`, as Zeek does, and
    /// the packet is otherwise ignored.
    #[arg(long)]
    pub verify_checksums: bool,
}

impl EngineArgs {
    /// The engine configuration these flags describe.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            idle_timeout_ns: (self.idle_timeout.max(0.0) * 1e9) as u64,
            close_linger_ns: (self.close_linger.max(0.0) * 1e9) as u64,
            attempt_timeout_ns: (self.attempt_timeout.max(0.0) * 1e9) as u64,
            max_flows: self.max_flows.max(1),
            max_unpacked: self.max_unpacked.max(1),
            verify_checksums: self.verify_checksums,
            ..EngineConfig::default()
        }
    }
}

/// Arguments of `tcpscope analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), analysed in order as one timeline.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output directory for the `events/` and `flows/` datasets.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Worker threads [default: available cores minus one, at least one].
    #[arg(long, short, value_name = "N")]
    pub workers: Option<usize>,
    /// Name written to the `sensor` column [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub sensor: Option<String>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not pin worker threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub engine: EngineArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub plugins: PluginArgs,
}

/// Parses arguments and runs; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tcpscope: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Analyze(args) => run_analyze(args),
        #[cfg(target_os = "linux")]
        Command::Capture(args) => capture::run_capture(args),
        Command::Plugin(args) => plugins::run_plugin_command(args),
    }
}

/// The default number of workers: available cores minus one, at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).saturating_sub(1).max(1)
}

/// The host name, for the `sensor` column.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tcpscope".to_owned())
}

/// A tag unique to this run, for output file names.
#[allow(clippy::disallowed_methods)] // the CLI may read the clock: file names only, never analysis
pub fn run_tag() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}{:04x}", now.as_secs(), (now.subsec_nanos() ^ std::process::id()) & 0xFFFF)
}

struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start_file(&mut self, name: &str, len: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(len);
            bar.set_position(0);
            bar.set_message(name.to_owned());
        }
    }
    fn position(&mut self, offset: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(offset);
        }
    }
}

#[allow(clippy::disallowed_methods)] // elapsed time of the run, for the summary only
fn run_analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let config = AnalyzeConfig {
        inputs: args.files.clone(),
        out_dir: args.out.clone(),
        workers: args.workers.unwrap_or_else(default_workers).max(1),
        sensor: args.sensor.clone().unwrap_or_else(host_name),
        engine: args.engine.engine_config(),
        pin_workers: !args.no_pin,
        run_tag: run_tag(),
    };
    let plugins = args.plugins.load(config.workers)?;
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let mut progress = Bar(bar.clone());
    let started = std::time::Instant::now();
    let report = analyze_with_plugins(&config, plugins.clone(), &mut progress).with_context(|| format!("preparing output in {}", args.out.display()))?;
    let elapsed = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if report.sink.stale_staging_files_removed > 0 {
        eprintln!(
            "tcpscope: removed {} incomplete file(s) that an interrupted run left in {}",
            report.sink.stale_staging_files_removed,
            args.out.join(".staging").display()
        );
    }
    for e in &report.source_errors {
        eprintln!("tcpscope: error: {e}");
    }
    if let Some(e) = &report.sink_error {
        eprintln!("tcpscope: error: {e}");
    }
    if !args.quiet {
        print_summary(&report, elapsed, config.workers);
    }
    for line in plugins.iter().flat_map(|p| p.health_report()) {
        eprintln!("tcpscope: {line}");
    }
    Ok(if report.source_errors.is_empty() && report.sink_error.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_summary(report: &RunReport, elapsed: std::time::Duration, workers: usize) {
    let r = &report.read;
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "tcpscope: {} packets ({} TCP) in {:.3} s, {:.0} packets/s, {} workers",
        r.packets,
        r.tcp_segments,
        secs,
        r.packets as f64 / secs,
        workers
    );
    eprintln!(
        "tcpscope: {} flows, {} events; skipped: {} not TCP, {} IP fragments, {} unsupported link; {} undecodable, {} truncated by snaplen",
        report.workers.flows, report.workers.events, r.not_tcp, r.fragments, r.unsupported_link, r.undecodable, r.truncated
    );
    let e = &report.workers.engine;
    if e.bad_checksums > 0 {
        eprintln!("tcpscope: {} packets with a wrong TCP checksum ignored (--verify-checksums)", e.bad_checksums);
    }
    if e.connections_packed_early > 0 {
        eprintln!(
            "tcpscope: {} quiet connections packed, {} of them early (more than --max-unpacked in working form), {} unpacked again",
            e.connections_packed, e.connections_packed_early, e.connections_unpacked
        );
    }
    if e.flows_evicted > 0 || e.time_went_backwards > 0 || e.unacked_segments_refused > 0 {
        eprintln!(
            "tcpscope: {} flows evicted (table full), {} packets earlier than packet time, {} segments beyond the unacknowledged-segment bound",
            e.flows_evicted, e.time_went_backwards, e.unacked_segments_refused
        );
    }
    eprintln!(
        "tcpscope: wrote {} event rows and {} flow rows in {} files",
        report.sink.events_written, report.sink.flows_written, report.sink.files_published
    );
}
