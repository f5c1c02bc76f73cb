//! Readers → workers: decodes each frame once, hashes its flow symmetrically, and fills one batch
//! per worker; full batches go to bounded per-worker queues.

use crate::decode::{decode_frame_checked, Segment, Skip};
use crate::flow::{worker_for, FlowKey};
use crate::source::Frame;
use crate::stats::ReadCounters;
use crate::time::Timestamp;
use crate::worker::WorkerMessage;
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Segments per batch.
pub const BATCH_SEGMENTS: usize = 512;

/// What to do when a worker's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait (offline input: nothing may be lost).
    Block,
    /// Drop the batch and count it (live input: never stall the ring).
    Drop,
}

/// Routes decoded segments to workers in batches.
pub struct Dispatcher {
    queues: Vec<Sender<WorkerMessage>>,
    batches: Vec<Vec<Segment>>,
    recycled: Option<Receiver<Vec<Segment>>>,
    backpressure: Backpressure,
    /// Counters of this dispatcher.
    pub counters: ReadCounters,
    last_ts: Timestamp,
    verify_checksums: bool,
}

impl Dispatcher {
    /// A dispatcher over one queue per worker.
    pub fn new(queues: Vec<Sender<WorkerMessage>>, backpressure: Backpressure, recycled: Option<Receiver<Vec<Segment>>>) -> Self {
        let batches = (0..queues.len()).map(|_| Vec::with_capacity(BATCH_SEGMENTS)).collect();
        Dispatcher {
            queues,
            batches,
            recycled,
            backpressure,
            counters: ReadCounters::default(),
            last_ts: Timestamp::ZERO,
            verify_checksums: false,
        }
    }

    /// Verify TCP checksums of segments captured whole (`--verify-checksums`).
    pub fn set_verify_checksums(&mut self, verify: bool) {
        self.verify_checksums = verify;
    }

    /// Decodes and routes one frame.
    #[inline]
    pub fn push_frame(&mut self, frame: Frame<'_>, source_index: u32) {
        self.counters.packets += 1;
        self.counters.bytes += frame.data.len() as u64;
        if (frame.data.len() as u32) < frame.wire_len {
            self.counters.truncated += 1;
        }
        if frame.ts > self.last_ts {
            self.last_ts = frame.ts;
        }
        match decode_frame_checked(
            frame.link,
            frame.data,
            frame.wire_len,
            frame.ts,
            frame.packet_number,
            source_index,
            self.verify_checksums,
        ) {
            Ok(seg) => self.push_segment(seg),
            Err(Skip::NotTcp) => self.counters.not_tcp += 1,
            Err(Skip::Fragment) => self.counters.fragments += 1,
            Err(Skip::Undecodable) => self.counters.undecodable += 1,
        }
    }

    /// Routes one decoded segment.
    #[inline]
    pub fn push_segment(&mut self, seg: Segment) {
        self.counters.tcp_segments += 1;
        let (key, _) = FlowKey::of(&seg);
        let w = worker_for(&key, self.queues.len());
        self.batches[w].push(seg);
        if self.batches[w].len() >= BATCH_SEGMENTS {
            self.send_batch(w);
        }
    }

    fn send_batch(&mut self, w: usize) {
        let batch = std::mem::take(&mut self.batches[w]);
        let n = batch.len() as u64;
        match self.backpressure {
            Backpressure::Block => {
                let _ = self.queues[w].send(WorkerMessage::Segments(batch));
            }
            Backpressure::Drop => match self.queues[w].try_send(WorkerMessage::Segments(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) | Err(TrySendError::Disconnected(message)) => {
                    self.counters.queue_drops += n;
                    // Keep the refused batch's allocation: an overloaded reader allocates nothing.
                    if let WorkerMessage::Segments(mut refused) = message {
                        refused.clear();
                        self.batches[w] = refused;
                        return;
                    }
                }
            },
        }
        self.batches[w] = self
            .recycled
            .as_ref()
            .and_then(|r| r.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(BATCH_SEGMENTS));
    }

    /// Sends every partial batch, then tells every worker how far packet time has come.
    pub fn flush(&mut self) {
        self.flush_batches();
        self.tick(self.last_ts);
    }

    /// Sends every partial batch, without a tick (live capture ticks with a margin of its own).
    pub fn flush_batches(&mut self) {
        for w in 0..self.queues.len() {
            if !self.batches[w].is_empty() {
                self.send_batch(w);
            }
        }
    }

    /// Advances every worker's packet time to `ts`.
    pub fn tick(&mut self, ts: Timestamp) {
        if ts == Timestamp::ZERO {
            return;
        }
        for q in &self.queues {
            match self.backpressure {
                Backpressure::Block => {
                    let _ = q.send(WorkerMessage::Tick(ts));
                }
                Backpressure::Drop => {
                    let _ = q.try_send(WorkerMessage::Tick(ts));
                }
            }
        }
    }

    /// Packet time of the latest frame seen.
    pub fn last_ts(&self) -> Timestamp {
        self.last_ts
    }

    /// Changes what a full queue does (live capture waits for the workers while it drains its
    /// rings at shutdown, when nothing new arrives any more).
    pub fn set_backpressure(&mut self, backpressure: Backpressure) {
        self.backpressure = backpressure;
    }
}

impl Dispatcher {
    /// Gives the worker queues back (to send `Finish`).
    pub fn into_queues(self) -> Vec<Sender<WorkerMessage>> {
        self.queues
    }
}
