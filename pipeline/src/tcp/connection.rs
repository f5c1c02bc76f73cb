//! One TCP connection: its originator, both directions' analysis state, diagnostics and summary.

use super::analysis::SequenceAnalysis;
use super::compact::{Codec, Packer, Unpacker};
use super::diagnostics::Diagnostics;
use super::events::Event;
use super::summary::{CloseReason, FlowRecord, FlowSummary};
use super::EngineConfig;
use crate::decode::Segment;
use crate::flow::{Direction, FlowKey, Side, StableHasher};
use crate::time::Timestamp;

/// What a due timer did to a connection.
pub(crate) enum TimerOutcome {
    /// Still open: look again at this packet time.
    Reschedule(Timestamp),
    /// Ended for this reason.
    Close(CloseReason),
}

/// What the engine reads of a packed connection without unpacking it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PackedHeader {
    pub key: FlowKey,
    pub generation: u32,
    pub first_ts: Timestamp,
    pub first_packet: u64,
    pub last_ts: Timestamp,
}

/// The flow id: a stable hash of the key and the first packet, kept positive because Parquet
/// stores INT64, so ids read the same everywhere.
fn flow_id_of(key: &FlowKey, first_ts: Timestamp, first_packet: u64, source_index: u32) -> u64 {
    let mut h = StableHasher::default();
    key.write_to(&mut h);
    h.write_u64(first_ts.as_nanos());
    h.write_u64(first_packet);
    h.write_u64(source_index as u64);
    h.finish() >> 1
}

/// A tracked connection.
#[derive(Debug)]
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
        let flow_id = flow_id_of(&key, seg.ts, seg.packet_number, seg.source_index);
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
            analysis: SequenceAnalysis::new(),
            diagnostics: Diagnostics::new(),
            summary: FlowSummary::new(),
        }
    }

    /// Visits the fields the engine reads without unpacking, first in the packed form.
    #[inline(always)]
    fn codec_header(
        c: &mut impl Codec,
        key: &mut FlowKey,
        generation: &mut u32,
        first_ts: &mut Timestamp,
        first_packet: &mut u64,
        last_ts: &mut Timestamp,
    ) {
        key.codec(c);
        c.u32(generation);
        c.time(&mut first_ts.0);
        c.packet(first_packet);
        c.time(&mut last_ts.0);
    }

    /// Visits every field for packing (see [`super::compact`]). The flow id is not packed: it is
    /// computed again from the key and the first packet.
    #[inline(always)]
    fn codec(&mut self, c: &mut impl Codec) {
        let Connection {
            key,
            orig_side,
            flow_id: _,
            generation,
            source_index,
            first_ts,
            first_packet,
            last_ts,
            vlan,
            fin_seen,
            rst_by,
            analysis,
            diagnostics,
            summary,
        } = self;
        Connection::codec_header(c, key, generation, first_ts, first_packet, last_ts);
        c.u32(source_index);
        let mut orig_high = *orig_side == Side::High;
        c.bool(&mut orig_high);
        *orig_side = if orig_high { Side::High } else { Side::Low };
        c.option(vlan, |c, v| c.u16(v));
        fin_seen.iter_mut().for_each(|f| c.bool(f));
        let mut rst = rst_by.map_or(0, |d| 1 + d.index() as u8);
        c.small(&mut rst, 2);
        *rst_by = [None, Some(Direction::Orig), Some(Direction::Resp)].get(usize::from(rst)).copied().flatten();
        analysis.codec(c);
        diagnostics.codec(c);
        summary.codec(c);
    }

    /// The packed form of this connection, written with `packer`; `None` where the state holds
    /// something the packed form cannot (the connection then stays as it is). Empty buffers are
    /// given back first.
    pub(crate) fn pack(&mut self, packer: &mut Packer, time_base: u64) -> Option<Box<[u8]>> {
        self.analysis.release_idle_buffers();
        // Packed through a local copy, which the optimiser can keep in registers.
        let mut local = std::mem::take(packer);
        local.start(time_base);
        self.codec(&mut local);
        let packed = local.finish();
        *packer = local;
        packed
    }

    /// Overwrites this connection with the one that [`Connection::pack`] packed, reusing its box
    /// and whatever boxes and buffers it holds: the codec overwrites every field.
    pub(crate) fn unpack_into(&mut self, packed: &[u8], time_base: u64) {
        let mut unpacker = Unpacker::new(packed, time_base);
        self.codec(&mut unpacker);
        debug_assert!(unpacker.read_exactly(), "a packed connection reads back exactly");
        self.flow_id = flow_id_of(&self.key, self.first_ts, self.first_packet, self.source_index);
    }

    /// An empty connection, to unpack into.
    pub(crate) fn blank() -> Connection {
        Connection {
            key: FlowKey::default(),
            orig_side: Side::Low,
            flow_id: 0,
            generation: 0,
            source_index: 0,
            first_ts: Timestamp::ZERO,
            first_packet: 0,
            last_ts: Timestamp::ZERO,
            vlan: None,
            fin_seen: [false; 2],
            rst_by: None,
            analysis: SequenceAnalysis::new(),
            diagnostics: Diagnostics::new(),
            summary: FlowSummary::new(),
        }
    }

    /// What the engine reads of a packed connection without unpacking it.
    pub(crate) fn packed_header(packed: &[u8], time_base: u64) -> PackedHeader {
        let mut h = PackedHeader::default();
        let c = &mut Unpacker::new(packed, time_base);
        Connection::codec_header(c, &mut h.key, &mut h.generation, &mut h.first_ts, &mut h.first_packet, &mut h.last_ts);
        h
    }

    /// The same fields of this connection.
    pub(crate) fn header(&self) -> PackedHeader {
        PackedHeader {
            key: self.key,
            generation: self.generation,
            first_ts: self.first_ts,
            first_packet: self.first_packet,
            last_ts: self.last_ts,
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

    /// The packet time at which this connection's timer must next run.
    pub(crate) fn deadline(&self, config: &EngineConfig) -> Timestamp {
        let idle = if self.is_closed() { config.close_linger_ns } else { config.idle_timeout_ns };
        let mut expiry = self.last_ts.plus_nanos(idle);
        if let Some(attempt) = self.attempt_deadline(config) {
            expiry = expiry.min(attempt);
        }
        match self.diagnostics.deadline(&config.diagnostics) {
            Some(d) if d < expiry => d,
            _ => expiry,
        }
    }

    pub(crate) fn on_timer(&mut self, now: Timestamp, config: &EngineConfig, events: &mut Vec<Event>) -> TimerOutcome {
        let idle = if self.is_closed() { config.close_linger_ns } else { config.idle_timeout_ns };
        if now >= self.last_ts.plus_nanos(idle) {
            return TimerOutcome::Close(self.natural_close_reason().unwrap_or(CloseReason::IdleTimeout));
        }
        if self.attempt_deadline(config).is_some_and(|d| now >= d) && self.summary.attempt_timer_expires() {
            return TimerOutcome::Close(CloseReason::AttemptTimeout);
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
