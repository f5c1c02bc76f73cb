//! Wires a run together: sources → dispatcher → workers → sink, with bounded queues between them.

use crate::decode::Segment;
use crate::dispatch::{Backpressure, Dispatcher};
use crate::error::{SinkError, SourceError};
use crate::sink::{ParquetSink, SinkConfig, SinkCounters};
use crate::source::pcap::CaptureFile;
use crate::stats::{ReadCounters, WorkerCounters};
use crate::tcp::{CloseReason, EngineConfig};
use crate::worker::{run_worker, SinkMessage, WorkerMessage};
use crossbeam_channel::bounded;
use std::path::PathBuf;
use std::thread;

/// Batches a worker queue holds before the reader waits (offline) or drops (live).
pub const WORKER_QUEUE_BATCHES: usize = 64;
/// Messages the sink queue holds before workers wait.
pub const SINK_QUEUE_MESSAGES: usize = 256;

/// Settings of an offline run.
#[derive(Clone, Debug)]
pub struct AnalyzeConfig {
    /// Capture files, analysed in order as one timeline.
    pub inputs: Vec<PathBuf>,
    /// Output root.
    pub out_dir: PathBuf,
    /// Worker threads.
    pub workers: usize,
    /// The `sensor` column.
    pub sensor: String,
    /// Engine settings (its `max_flows` is the total, split across workers).
    pub engine: EngineConfig,
    /// Pin workers to cores.
    pub pin_workers: bool,
    /// A unique tag of this run for file names.
    pub run_tag: String,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Reader and decoder counters.
    pub read: ReadCounters,
    /// Worker counters.
    pub workers: WorkerCounters,
    /// Sink counters.
    pub sink: SinkCounters,
    /// Input files that failed, each after its readable part was analysed.
    pub source_errors: Vec<SourceError>,
    /// A sink failure, if any.
    pub sink_error: Option<SinkError>,
}

/// Progress callbacks of a run (the CLI draws a bar with them).
pub trait Progress: Send {
    /// A new input file of `len` bytes begins.
    fn start_file(&mut self, _name: &str, _len: u64) {}
    /// `offset` bytes of the current file are read.
    fn position(&mut self, _offset: u64) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Runs the offline pipeline over `config.inputs`.
pub fn analyze(config: &AnalyzeConfig, progress: &mut dyn Progress) -> Result<RunReport, SinkError> {
    let workers = config.workers.max(1);
    let sources: Vec<String> = config
        .inputs
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string()))
        .collect();
    let mut sink = ParquetSink::create(SinkConfig::new(
        config.out_dir.clone(),
        config.sensor.clone(),
        sources.clone(),
        config.run_tag.clone(),
    ))?;
    let mut engine_config = config.engine;
    engine_config.max_flows = config.engine.max_flows.div_ceil(workers).max(1);

    let (sink_tx, sink_rx) = bounded::<SinkMessage>(SINK_QUEUE_MESSAGES);
    let (recycle_tx, recycle_rx) = bounded::<Vec<Segment>>(workers * WORKER_QUEUE_BATCHES);
    let cores = if config.pin_workers { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    let mut queues = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let (tx, rx) = bounded::<WorkerMessage>(WORKER_QUEUE_BATCHES);
        queues.push(tx);
        let sink_tx = sink_tx.clone();
        let recycle = recycle_tx.clone();
        // Leave the first core to the reader when there is more than one.
        let core = (!cores.is_empty()).then(|| cores[(w + 1) % cores.len()]);
        handles.push(
            thread::Builder::new()
                .name(format!("tcpscope-worker-{w}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    run_worker(engine_config, rx, sink_tx, Some(recycle))
                })
                .expect("spawning a worker thread"),
        );
    }
    drop(sink_tx);

    let sink_thread = thread::Builder::new()
        .name("tcpscope-sink".into())
        .spawn(move || -> (Result<SinkCounters, SinkError>, ParquetSink) {
            let mut failure = None;
            for message in sink_rx.iter() {
                if failure.is_some() {
                    continue; // keep draining so workers never block on a dead sink
                }
                let r = match message {
                    SinkMessage::Events(e) => sink.add_events(e),
                    SinkMessage::Flows(f) => sink.add_flows(f),
                    SinkMessage::Tick(t) => sink.advance_time(t),
                };
                if let Err(e) = r {
                    failure = Some(e);
                }
            }
            let result = match failure {
                Some(e) => Err(e),
                None => sink.finish(),
            };
            (result, sink)
        })
        .expect("spawning the sink thread");

    let mut report = RunReport::default();
    let mut dispatcher = Dispatcher::new(queues, Backpressure::Block, Some(recycle_rx));
    for (index, path) in config.inputs.iter().enumerate() {
        let file = match CaptureFile::open(path) {
            Ok(f) => f,
            Err(e) => {
                report.source_errors.push(e);
                continue;
            }
        };
        progress.start_file(&sources[index], file.bytes().len() as u64);
        let result = file.read(|frame| dispatcher.push_frame(frame, index as u32), |offset| progress.position(offset));
        match result {
            Ok(summary) => dispatcher.counters.unsupported_link += summary.unsupported_link_records,
            Err(e) => report.source_errors.push(e),
        }
        dispatcher.flush();
    }
    dispatcher.flush();
    report.read = dispatcher.counters;
    let queues = dispatcher.into_queues();
    for q in &queues {
        let _ = q.send(WorkerMessage::Finish(CloseReason::EndOfInput));
    }
    drop(queues);
    for h in handles {
        let counters = h.join().unwrap_or_default();
        report.workers.add(&counters);
    }
    let (sink_result, _sink) = sink_thread.join().expect("sink thread");
    match sink_result {
        Ok(c) => report.sink = c,
        Err(e) => report.sink_error = Some(e),
    }
    Ok(report)
}
