//! Wires a run together: sources → dispatcher → workers → sink, with bounded queues between them.

use crate::decode::Segment;
use crate::dispatch::{Backpressure, Dispatcher};
use crate::error::{SinkError, SourceError};
use crate::sink::{ParquetSink, SinkConfig, SinkCounters};
use crate::source::pcap::CaptureFile;
use crate::stats::{ReadCounters, WorkerCounters};
use crate::tcp::{CloseReason, EngineConfig};
use crate::plugin_host::PluginSet;
use crate::worker::{run_worker_with_plugins, SinkMessage, WorkerMessage};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

/// Batches a worker queue holds in live capture before the reader drops: room for bursts
/// (32k segments per worker) beside the ring's own.
pub const WORKER_QUEUE_BATCHES: usize = 64;
/// Batches a worker queue holds in offline analysis before the reader waits. The reader is
/// faster than the workers, so a deep queue only fills up: 8 batches keep every worker busy and
/// peak memory flat in the file's length (64 held 4.9 MB per worker on a long file).
pub const OFFLINE_QUEUE_BATCHES: usize = 8;
/// Messages the sink queue holds before workers wait. Each is up to 1,024 rows (a flow row is
/// about 600 bytes with its strings), and when the flows of a whole table end at once (end of
/// input, shutdown) the queue stays full: 16 held 7 MB more than 4 at the peak of a million-flow
/// flush, with the same run time on 1 and 2 workers.
pub const SINK_QUEUE_MESSAGES: usize = 4;

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
    /// Engine settings (its `max_flows` and `max_unpacked` are totals, split across workers).
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
    analyze_with_plugins(config, None, progress)
}

/// [`analyze`] with detector plugins, loaded for `config.workers` workers
/// ([`PluginSet::load`]).
pub fn analyze_with_plugins(
    config: &AnalyzeConfig,
    plugins: Option<Arc<PluginSet>>,
    progress: &mut dyn Progress,
) -> Result<RunReport, SinkError> {
    let workers = config.workers.max(1);
    let sources: Vec<String> = config
        .inputs
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string()))
        .collect();
    let sink = ParquetSink::create(SinkConfig::new(
        config.out_dir.clone(),
        config.sensor.clone(),
        sources.clone(),
        config.run_tag.clone(),
    ))?;
    let cores = if config.pin_workers { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    // Leave the first core to the reader when there is more than one.
    let worker_cores = (0..workers).map(|w| (!cores.is_empty()).then(|| cores[(w + 1) % cores.len()])).collect();
    let backend = Backend::start_with_plugins(sink, config.engine, workers, worker_cores, plugins, OFFLINE_QUEUE_BATCHES);

    let mut report = RunReport::default();
    let mut dispatcher = Dispatcher::new(backend.queues.clone(), Backpressure::Block, Some(backend.recycled.clone()));
    dispatcher.set_verify_checksums(config.engine.verify_checksums);
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
    drop(dispatcher);
    let (workers, sink_result) = backend.finish(CloseReason::EndOfInput);
    report.workers = workers;
    match sink_result {
        Ok(c) => report.sink = c,
        Err(e) => report.sink_error = Some(e),
    }
    Ok(report)
}

/// Live counters of a running backend, for a progress or stats line.
#[derive(Debug, Default)]
pub struct BackendGauges {
    /// Event rows the sink has received.
    pub event_rows: AtomicU64,
    /// Flow rows the sink has received.
    pub flow_rows: AtomicU64,
    /// Connections each worker tracks, as of its latest tick.
    pub active_flows: Vec<AtomicU64>,
}

impl BackendGauges {
    /// Connections tracked by all workers together.
    pub fn active_flows(&self) -> u64 {
        self.active_flows.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

/// The workers and the sink of a run, started and waiting for segments: shared by `analyze` and
/// live capture, which differ only in their readers.
pub struct Backend {
    /// One bounded queue per worker (give clones to dispatchers).
    pub queues: Vec<Sender<WorkerMessage>>,
    /// Emptied batches coming back from the workers, for the dispatchers to reuse.
    pub recycled: Receiver<Vec<Segment>>,
    /// The sink's queue, to advance its packet time on a quiet link (`SinkMessage::Tick`).
    pub sink: Sender<SinkMessage>,
    /// Live counters.
    pub gauges: Arc<BackendGauges>,
    workers: Vec<thread::JoinHandle<WorkerCounters>>,
    sink_thread: thread::JoinHandle<Result<SinkCounters, SinkError>>,
}

impl Backend {
    /// Starts `workers` workers (each pinned to its entry of `worker_cores`, if any) over `sink`.
    /// `engine.max_flows` and `engine.max_unpacked` are totals, split across workers.
    pub fn start(sink: ParquetSink, engine: EngineConfig, workers: usize, worker_cores: Vec<Option<core_affinity::CoreId>>) -> Backend {
        Backend::start_with_plugins(sink, engine, workers, worker_cores, None, OFFLINE_QUEUE_BATCHES)
    }

    /// [`Backend::start`] with detector plugins and a queue depth of `queue_batches` batches per
    /// worker ([`WORKER_QUEUE_BATCHES`] live, [`OFFLINE_QUEUE_BATCHES`] offline): each worker creates its instances of `plugins`
    /// on its own thread. `plugins` must have been loaded for `workers` workers.
    ///
    /// # Panics
    /// When `plugins` was loaded for another number of workers (a programming error).
    pub fn start_with_plugins(
        mut sink: ParquetSink,
        engine: EngineConfig,
        workers: usize,
        worker_cores: Vec<Option<core_affinity::CoreId>>,
        plugins: Option<Arc<PluginSet>>,
        queue_batches: usize,
    ) -> Backend {
        let workers = workers.max(1);
        let queue_batches = queue_batches.max(1);
        if let Some(set) = &plugins {
            assert_eq!(set.workers(), workers, "plugins were loaded for {} workers, the backend runs {workers}", set.workers());
        }
        let mut engine_config = engine;
        engine_config.max_flows = engine.max_flows.div_ceil(workers).max(1);
        engine_config.max_unpacked = engine.max_unpacked.div_ceil(workers).max(1);
        let gauges = Arc::new(BackendGauges {
            active_flows: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            ..BackendGauges::default()
        });
        let (sink_tx, sink_rx) = bounded::<SinkMessage>(SINK_QUEUE_MESSAGES);
        let (recycle_tx, recycle_rx) = bounded::<Vec<Segment>>(workers * queue_batches);
        let mut queues = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded::<WorkerMessage>(queue_batches);
            queues.push(tx);
            let sink_tx = sink_tx.clone();
            let recycle = recycle_tx.clone();
            let core = worker_cores.get(w).copied().flatten();
            let gauges = gauges.clone();
            let plugins = plugins.clone().map(|set| (set, w));
            handles.push(
                thread::Builder::new()
                    .name(format!("tcpscope-worker-{w}"))
                    .spawn(move || {
                        if let Some(core) = core {
                            core_affinity::set_for_current(core);
                        }
                        run_worker_with_plugins(engine_config, rx, sink_tx, Some(recycle), Some(&gauges.active_flows[w]), plugins)
                    })
                    .expect("spawning a worker thread"),
            );
        }
        let sink_gauges = gauges.clone();
        let sink_thread = thread::Builder::new()
            .name("tcpscope-sink".into())
            .spawn(move || -> Result<SinkCounters, SinkError> {
                let mut failure = None;
                for message in sink_rx.iter() {
                    if failure.is_some() {
                        continue; // keep draining so workers never block on a dead sink
                    }
                    let r = match message {
                        SinkMessage::Events(e) => {
                            sink_gauges.event_rows.fetch_add(e.len() as u64, Ordering::Relaxed);
                            sink.add_events(e)
                        }
                        SinkMessage::Flows(f) => {
                            sink_gauges.flow_rows.fetch_add(f.len() as u64, Ordering::Relaxed);
                            sink.add_flows(f)
                        }
                        SinkMessage::Tick(t) => sink.advance_time(t),
                    };
                    if let Err(e) = r {
                        failure = Some(e);
                    }
                }
                match failure {
                    Some(e) => Err(e),
                    None => sink.finish(),
                }
            })
            .expect("spawning the sink thread");
        Backend { queues, recycled: recycle_rx, sink: sink_tx, gauges, workers: handles, sink_thread }
    }

    /// Tells every worker to flush its flows with `reason`, waits for the workers and the sink,
    /// and returns their counters. Every dispatcher must be gone or flushed first.
    pub fn finish(self, reason: CloseReason) -> (WorkerCounters, Result<SinkCounters, SinkError>) {
        let Backend { queues, recycled, sink, workers, sink_thread, .. } = self;
        for q in &queues {
            let _ = q.send(WorkerMessage::Finish(reason));
        }
        drop(queues);
        drop(recycled);
        drop(sink);
        let mut counters = WorkerCounters::default();
        for h in workers {
            counters.add(&h.join().unwrap_or_default());
        }
        let sink_result = sink_thread.join().unwrap_or_else(|_| {
            Err(SinkError::Io { path: PathBuf::from("<sink thread>"), source: std::io::Error::other("the sink thread panicked") })
        });
        (counters, sink_result)
    }
}
