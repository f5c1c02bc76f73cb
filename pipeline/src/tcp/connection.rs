//! One TCP connection: its originator, both directions' analysis state, diagnostics and summary.

use super::analysis::SequenceAnalysis;
use super::diagnostics::Diagnostics;
use super::events::Event;
use super::summary::{CloseReason, FlowRecord, FlowSummary};
use super::EngineConfig;
use crate::decode::Segment;
use crate::flow::{Direction, FlowKey, Side, StableHasher};
use crate::time::Timestamp;

/// Packet time without a packet after which a connection gives back its empty buffers.
const RELEASE_IDLE_BUFFERS_NS: u64 = 1_000_000_000;

/// What a due timer did to a connection.
pub(crate) enum TimerOutcome {
    /// Still open: look again at this packet time.
    Reschedule(Timestamp),
    /// Ended for this reason.
    Close(CloseReason),
}

/// A tracked connection.
pub struct Connection {
    key: FlowKey,
    orig_side: Side,
    flow_id: u64,
    generation: u32,
    source_index: u32,
    first_ts: Timestamp,
    first_packet: u64,
    last_ts: Timestamp,
    vlan: Option<u16>,
    fin_seen: [bool; 2],
    rst_by: Option<Direction>,
    /// Empty buffers were given back since the last packet (see [`RELEASE_IDLE_BUFFERS_NS`]).
    buffers_released: bool,
    analysis: SequenceAnalysis,
    diagnostics: Diagnostics,
    summary: FlowSummary,
}

impl Connection {
    /// Starts tracking with `seg` as the first packet. The originator is the sender of the first
    /// packet, except that a SYN/ACK seen first makes its receiver the originator, and a
    /// mid-stream first packet sent from a likely server port makes its receiver the originator
    /// (Zeek's `WantConnection` port heuristic).
    pub(crate) fn new(key: FlowKey, seg: &Segment, side: Side, generation: u32) -> Self {
        let orig_side = if seg.flags.syn_ack() || super::summary::zeek::wants_flip(seg) {
            match side {
                Side::Low => Side::High,
                Side::High => Side::Low,
            }
        } else {
            side
        };
        let mut h = StableHasher::default();
        key.write_to(&mut h);
        h.write_u64(seg.ts.as_nanos());
        h.write_u64(seg.packet_number);
        h.write_u64(seg.source_index as u64);
        // Parquet stores INT64: keep ids positive so they read the same everywhere.
        let flow_id = h.finish() >> 1;
        Connection {
            key,
            orig_side,
            flow_id,
            generation,
            source_index: seg.source_index,
            first_ts: seg.ts,
            first_packet: seg.packet_number,
            last_ts: seg.ts,
            vlan: seg.vlan,
            fin_seen: [false; 2],
            rst_by: None,
            buffers_released: false,
            analysis: SequenceAnalysis::new(),
            diagnostics: Diagnostics::new(),
            summary: FlowSummary::new(),
        }
    }

    /// The canonical key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }
    /// The flow id.
    pub fn flow_id(&self) -> u64 {
        self.flow_id
    }
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }
    /// Time of the first packet.
    pub fn first_ts(&self) -> Timestamp {
        self.first_ts
    }
    /// Packet number of the first packet.
    pub fn first_packet(&self) -> u64 {
        self.first_packet
    }
    /// Segments the analysis did not remember because the unacknowledged list was full.
    pub fn unacked_segments_refused(&self) -> u64 {
        self.analysis.refused_segments(Direction::Orig) + self.analysis.refused_segments(Direction::Resp)
    }

    /// Time of the latest packet.
    pub fn last_ts(&self) -> Timestamp {
        self.last_ts
    }

    /// Direction of a packet sent by `side`.
    #[inline]
    pub fn direction_of(&self, side: Side) -> Direction {
        if side == self.orig_side {
            Direction::Orig
        } else {
            Direction::Resp
        }
    }

    fn endpoint(&self, dir: Direction) -> (std::net::IpAddr, u16) {
        let orig_is_low = self.orig_side == Side::Low;
        match (dir, orig_is_low) {
            (Direction::Orig, true) | (Direction::Resp, false) => self.key.low(),
            _ => self.key.high(),
        }
    }

    pub(crate) fn is_port_reuse(&self, seg: &Segment, dir: Direction) -> bool {
        self.analysis.is_port_reuse(seg, dir)
    }

    /// The first packet of this connection reused the 4-tuple of the flow that began at `previous`.
    /// Its first packet (the SYN about to be analysed) gets a `port_reuse` event, as Wireshark's
    /// `reused_ports`, with `ref_packet` = `previous_first_packet`.
    pub(crate) fn mark_port_reuse(&mut self, previous_first_packet: u64) {
        self.analysis.mark_port_reuse(previous_first_packet);
    }

    /// Whether both FINs or an RST were seen, or one side closed while the other never sent a
    /// packet (Zeek's complete close).
    pub fn is_closed(&self) -> bool {
        self.rst_by.is_some() || (self.fin_seen[0] && self.fin_seen[1]) || self.summary.is_closed()
    }

    pub(crate) fn natural_close_reason(&self) -> Option<CloseReason> {
        match self.rst_by {
            Some(Direction::Orig) => Some(CloseReason::RstOrig),
            Some(Direction::Resp) => Some(CloseReason::RstResp),
            None if self.fin_seen[0] && self.fin_seen[1] => Some(CloseReason::Fin),
            None if self.summary.is_closed() && self.fin_seen[0] => Some(CloseReason::FinOrig),
            None if self.summary.is_closed() && self.fin_seen[1] => Some(CloseReason::FinResp),
            None => None,
        }
    }

    /// When the attempt timer (an unanswered SYN) runs, if it is pending.
    fn attempt_deadline(&self, config: &EngineConfig) -> Option<Timestamp> {
        match (self.summary.attempt_start(), config.attempt_timeout_ns) {
            (Some(start), ns) if ns > 0 => Some(start.plus_nanos(ns)),
            _ => None,
        }
    }

    /// Handles one segment; returns its direction and the analysis verdicts (for plugins).
    #[inline(always)]
    pub(crate) fn on_segment(
        &mut self,
        seg: &Segment,
        side: Side,
        config: &EngineConfig,
        events: &mut Vec<Event>,
    ) -> (Direction, super::analysis::PacketAnalysis) {
        let dir = self.direction_of(side);
        self.buffers_released = false;
        if seg.ts > self.last_ts {
            self.last_ts = seg.ts;
        }
        if seg.checksum == crate::decode::ChecksumStatus::Bad {
            // Checked and wrong (--verify-checksums): the receiver would drop it, so only Zeek's
            // history letter records it.
            self.summary.on_bad_checksum(seg, dir);
            return (dir, super::analysis::PacketAnalysis::default());
        }
        let analysis = self.analysis.on_segment(seg, dir, self.flow_id, &config.analysis, events);
        self.diagnostics.on_segment(seg, dir, self.flow_id, &analysis, &config.diagnostics, events);
        self.summary.on_segment(seg, dir, &analysis);
        if seg.flags.rst() && self.rst_by.is_none() {
            self.rst_by = Some(dir);
        }
        if seg.flags.fin() {
            self.fin_seen[dir.index()] = true;
        }
        (dir, analysis)
    }

    /// Room allocated for unacknowledged segments.
    #[cfg(test)]
    pub(crate) fn segment_capacity(&self) -> usize {
        self.analysis.segment_capacity()
    }

    /// The packet time at which this connection's timer must next run.
    pub(crate) fn deadline(&self, config: &EngineConfig) -> Timestamp {
        let idle = if self.is_closed() { config.close_linger_ns } else { config.idle_timeout_ns };
        let mut expiry = self.last_ts.plus_nanos(idle);
        if let Some(attempt) = self.attempt_deadline(config) {
            expiry = expiry.min(attempt);
        }
        if let Some(release) = self.buffer_release_due() {
            expiry = expiry.min(release);
        }
        match self.diagnostics.deadline(&config.diagnostics) {
            Some(d) if d < expiry => d,
            _ => expiry,
        }
    }

    /// When empty buffers are to be given back, unless they were since the last packet.
    fn buffer_release_due(&self) -> Option<Timestamp> {
        (!self.buffers_released).then(|| self.last_ts.plus_nanos(RELEASE_IDLE_BUFFERS_NS))
    }

    pub(crate) fn on_timer(&mut self, now: Timestamp, config: &EngineConfig, events: &mut Vec<Event>) -> TimerOutcome {
        let idle = if self.is_closed() { config.close_linger_ns } else { config.idle_timeout_ns };
        if now >= self.last_ts.plus_nanos(idle) {
            return TimerOutcome::Close(self.natural_close_reason().unwrap_or(CloseReason::IdleTimeout));
        }
        if self.attempt_deadline(config).is_some_and(|d| now >= d) && self.summary.attempt_timer_expires() {
            return TimerOutcome::Close(CloseReason::AttemptTimeout);
        }
        if self.buffer_release_due().is_some_and(|due| now >= due) {
            self.analysis.release_idle_buffers();
            self.buffers_released = true;
        }
        if let Some(d) = self.diagnostics.deadline(&config.diagnostics) {
            if now >= d {
                let endpoints = [self.endpoint(Direction::Orig), self.endpoint(Direction::Resp)];
                self.diagnostics.on_timeout(now, self.flow_id, &endpoints, &config.diagnostics, events);
            }
        }
        TimerOutcome::Reschedule(self.deadline(config))
    }

    pub(crate) fn finish(&mut self, reason: CloseReason, config: &EngineConfig, events: &mut Vec<Event>) -> FlowRecord {
        let orig = self.endpoint(Direction::Orig);
        let resp = self.endpoint(Direction::Resp);
        self.diagnostics.on_flow_end(self.last_ts, reason, self.flow_id, &[orig, resp], &config.diagnostics, events);
        self.summary.finish(
            self.first_ts,
            self.last_ts,
            self.source_index,
            self.flow_id,
            orig,
            resp,
            self.vlan,
            reason,
        )
    }
}
