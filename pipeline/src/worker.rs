//! One worker thread: batches of segments in, engine (and plugins) in the middle, batches of
//! events and flow rows out to the sink.

use crate::decode::Segment;
use crate::stats::WorkerCounters;
use crate::tcp::{CloseReason, Engine, EngineConfig, Event, FlowRecord};
use crate::time::Timestamp;
use crate::plugin_host::{PluginSet, WorkerPlugins};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a worker receives.
pub enum WorkerMessage {
    /// Segments, in capture order.
    Segments(Vec<Segment>),
    /// Packet time has reached this point (a quiet link, or another worker's packets).
    Tick(Timestamp),
    /// No more input: flush every flow with this reason and stop.
    Finish(CloseReason),
}

/// What the sink receives.
pub enum SinkMessage {
    /// Event rows.
    Events(Vec<Event>),
    /// Flow rows.
    Flows(Vec<FlowRecord>),
    /// Packet time has reached this point: rotate old files.
    Tick(Timestamp),
}

/// Rows a worker accumulates before it hands them to the sink.
pub const OUTPUT_BATCH_ROWS: usize = 1024;

/// The worker loop. Returns its counters when told to finish or when its queue closes.
pub fn run_worker(
    config: EngineConfig,
    input: Receiver<WorkerMessage>,
    sink: Sender<SinkMessage>,
    recycle: Option<Sender<Vec<Segment>>>,
) -> WorkerCounters {
    run_worker_observed(config, input, sink, recycle, None)
}

/// [`run_worker`] that also publishes its number of tracked connections to `active_flows` at every
/// tick (read by the live capture's stats line).
pub fn run_worker_observed(
    config: EngineConfig,
    input: Receiver<WorkerMessage>,
    sink: Sender<SinkMessage>,
    recycle: Option<Sender<Vec<Segment>>>,
    active_flows: Option<&AtomicU64>,
) -> WorkerCounters {
    run_worker_with_plugins(config, input, sink, recycle, active_flows, None)
}

/// [`run_worker_observed`] with detector plugins: `plugins` is the run's plugin set and this
/// worker's index. The worker creates its plugin instances here, on its own thread, and calls
/// them after the engine for each segment, on flow end, on tick, and at finish.
pub fn run_worker_with_plugins(
    config: EngineConfig,
    input: Receiver<WorkerMessage>,
    sink: Sender<SinkMessage>,
    recycle: Option<Sender<Vec<Segment>>>,
    active_flows: Option<&AtomicU64>,
    plugins: Option<(Arc<PluginSet>, usize)>,
) -> WorkerCounters {
    let mut engine = Engine::new(config);
    let mut plugins = plugins.map(|(set, worker)| WorkerPlugins::create(set, worker));
    let mut counters = WorkerCounters::default();
    let mut finish_reason = CloseReason::EndOfInput;
    for message in input.iter() {
        match message {
            WorkerMessage::Segments(mut batch) => {
                match plugins.as_mut() {
                    None => {
                        for seg in &batch {
                            engine.handle_segment(seg);
                        }
                    }
                    Some(p) => {
                        for seg in &batch {
                            let verdict = engine.handle_segment_verdict(seg);
                            p.after_segment(seg, &verdict, &mut engine.output);
                        }
                    }
                }
                batch.clear();
                if let Some(r) = &recycle {
                    let _ = r.try_send(batch);
                }
                if engine.output.events.len() >= OUTPUT_BATCH_ROWS || engine.output.flows.len() >= OUTPUT_BATCH_ROWS {
                    drain(&mut engine, &sink, &mut counters, plugins.as_mut());
                }
            }
            WorkerMessage::Tick(ts) => {
                engine.advance_time(ts);
                if let Some(p) = plugins.as_mut() {
                    p.catch_up_flows(&mut engine.output);
                    p.tick(engine.now(), &mut engine.output.events);
                }
                if let Some(gauge) = active_flows {
                    gauge.store(engine.active_flows() as u64, Ordering::Relaxed);
                }
                drain(&mut engine, &sink, &mut counters, plugins.as_mut());
            }
            WorkerMessage::Finish(reason) => {
                finish_reason = reason;
                break;
            }
        }
    }
    engine.finish_draining(finish_reason, OUTPUT_BATCH_ROWS, |output| {
        drain_output(output, &sink, &mut counters, plugins.as_mut())
    });
    if let Some(p) = plugins.as_mut() {
        p.catch_up_flows(&mut engine.output);
        p.finish(&mut engine.output.events);
    }
    drain(&mut engine, &sink, &mut counters, plugins.as_mut());
    counters.engine = engine.counters();
    counters
}

fn drain(engine: &mut Engine, sink: &Sender<SinkMessage>, counters: &mut WorkerCounters, plugins: Option<&mut WorkerPlugins>) {
    drain_output(&mut engine.output, sink, counters, plugins);
}

fn drain_output(
    output: &mut crate::tcp::EngineOutput,
    sink: &Sender<SinkMessage>,
    counters: &mut WorkerCounters,
    mut plugins: Option<&mut WorkerPlugins>,
) {
    if let Some(p) = plugins.as_deref_mut() {
        p.catch_up_flows(output);
    }
    if !output.events.is_empty() {
        let events = std::mem::take(&mut output.events);
        counters.events += events.len() as u64;
        let _ = sink.send(SinkMessage::Events(events));
    }
    if !output.flows.is_empty() {
        let flows = std::mem::take(&mut output.flows);
        if let Some(p) = plugins {
            p.flows_drained();
        }
        counters.flows += flows.len() as u64;
        let _ = sink.send(SinkMessage::Flows(flows));
    }
}
