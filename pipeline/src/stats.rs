//! Run counters: what was read, decoded, skipped, refused and written. Plain integers, summed at the end.

use crate::tcp::EngineCounters;

/// Counters of the reader and decoder side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounters {
    /// Records read (every frame, TCP or not).
    pub packets: u64,
    /// Bytes of captured frames.
    pub bytes: u64,
    /// TCP segments decoded and dispatched.
    pub tcp_segments: u64,
    /// Valid frames that are not TCP.
    pub not_tcp: u64,
    /// IP fragments (counted, not reassembled).
    pub fragments: u64,
    /// Frames too short or malformed to decode.
    pub undecodable: u64,
    /// Frames whose captured length is below their wire length.
    pub truncated: u64,
    /// Records on interfaces whose link type is not decodable.
    pub unsupported_link: u64,
    /// Segments dropped because a worker queue was full (live capture only).
    pub queue_drops: u64,
}

impl ReadCounters {
    /// Adds another set.
    pub fn add(&mut self, o: &ReadCounters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.tcp_segments += o.tcp_segments;
        self.not_tcp += o.not_tcp;
        self.fragments += o.fragments;
        self.undecodable += o.undecodable;
        self.truncated += o.truncated;
        self.unsupported_link += o.unsupported_link;
        self.queue_drops += o.queue_drops;
    }
}

/// Counters of the workers, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Engine counters.
    pub engine: EngineCounters,
    /// Events produced.
    pub events: u64,
    /// Flow rows produced.
    pub flows: u64,
}

impl WorkerCounters {
    /// Adds another set.
    pub fn add(&mut self, o: &WorkerCounters) {
        self.events += o.events;
        self.flows += o.flows;
        let (a, b) = (&mut self.engine, &o.engine);
        a.segments += b.segments;
        a.flows_created += b.flows_created;
        a.flows_evicted += b.flows_evicted;
        a.flows_idle_expired += b.flows_idle_expired;
        a.time_went_backwards += b.time_went_backwards;
        a.unacked_segments_refused += b.unacked_segments_refused;
        a.bad_checksums += b.bad_checksums;
        a.connections_packed += b.connections_packed;
        a.connections_packed_early += b.connections_packed_early;
        a.connections_unpacked += b.connections_unpacked;
    }
}
