//! Per-direction sequence state (Wireshark's `tcp_flow_t` + `tcp_analyze_seq_flow_info_t`) and
//! the bounded list of unacknowledged segments.

use super::AnalysisFlags;
use crate::decode::SackBlocks;
use crate::tcp::compact::Codec;
use crate::tcp::seq::{seq_gt, seq_le};
use std::collections::VecDeque;

/// Window scale of a direction: a shift 0–14, or one of these markers (Wireshark's values).
pub(crate) const WSCALE_UNKNOWN: i8 = -1;
/// Window scaling is known not to be in use.
pub(crate) const WSCALE_NOT_USED: i8 = -2;

/// One segment sent and not yet acknowledged.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Unacked {
    /// First sequence number not yet acknowledged (moved up by partial ACKs).
    pub seq: u32,
    /// Sequence number after the segment (SYN and FIN count one).
    pub nextseq: u32,
    /// Packet number of the transmission.
    pub packet: u64,
    /// Packet time of the transmission, nanoseconds.
    pub ts: u64,
    /// Whether this range was sent more than once (Karn's rule refuses its RTT sample).
    pub retransmitted: bool,
}

/// The state of one direction of a connection.
#[derive(Clone, Debug)]
pub(crate) struct DirectionState {
    /// Whether `base_seq` is known.
    pub base_set: bool,
    /// The ISN (or `seq - 1` of the first packet when no SYN was seen).
    pub base_seq: u32,
    /// Highest `seq + len` seen (SYN/FIN count one); 0 means unknown, as in Wireshark.
    pub nextseq: u32,
    /// Time of the packet that last advanced `nextseq`.
    pub nextseq_time: u64,
    /// Packet number of the packet that last advanced `nextseq`.
    pub nextseq_packet: u64,
    /// Highest contiguous sequence number (0: unknown).
    pub maxseqtobeacked: u32,
    /// The ACK field of the last packet sent in this direction (raw, even without the ACK flag).
    pub lastack: u32,
    /// Time of the last packet sent in this direction.
    pub lastack_time: u64,
    /// Raw window of the last packet (u32::MAX before any packet, as Wireshark).
    pub window: u32,
    /// Window scale shift, or [`WSCALE_UNKNOWN`] / [`WSCALE_NOT_USED`].
    pub win_scale: i8,
    /// From a SYN until this direction's first pure ACK (the window is not scaled yet).
    pub is_first_ack: bool,
    /// Duplicate-ACK counter (-1 after an "ACKed unseen segment" neutralised it).
    pub dupacknum: i32,
    /// Packet number of the last ACK that changed the ACK value.
    pub lastnondupack: u64,
    /// The analysis verdicts of the last packet in this direction.
    pub last_flags: AnalysisFlags,
    /// Whether bytes in flight may be computed (false after a gap until the peer ACKs).
    pub valid_bif: bool,
    /// SACK blocks of the last packet in this direction (at most 3, as Wireshark 4.0 keeps),
    /// boxed by the first packet that carries any: most connections never do.
    pub sack: Option<Box<SackBlocks>>,
    /// Unacknowledged segments, oldest first.
    pub segments: VecDeque<Unacked>,
    /// Whether `segments` is sorted by sequence number without overlap (the common case), so an
    /// ACK acknowledges a prefix and the span in flight is first-to-last.
    pub in_order: bool,
    /// Segments not remembered because `segments` was full.
    pub refused: u64,
    /// Keep-alives in a row from this direction.
    pub keep_alive_run: u32,
    /// Packet number of the last packet in this direction (0: none yet).
    pub last_packet: u64,
}

impl Default for DirectionState {
    fn default() -> Self {
        DirectionState {
            base_set: false,
            base_seq: 0,
            nextseq: 0,
            nextseq_time: 0,
            nextseq_packet: 0,
            maxseqtobeacked: 0,
            lastack: 0,
            lastack_time: 0,
            window: u32::MAX,
            win_scale: WSCALE_UNKNOWN,
            is_first_ack: false,
            dupacknum: 0,
            lastnondupack: 0,
            last_flags: AnalysisFlags(0),
            valid_bif: true,
            sack: None,
            segments: VecDeque::new(),
            in_order: true,
            refused: 0,
            keep_alive_run: 0,
            last_packet: 0,
        }
    }
}

/// What an ACK did to the peer's unacknowledged segments.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AckOutcome {
    /// The segment whose end the ACK matches exactly: (packet, sent at ns, ambiguous by Karn).
    pub matched: Option<(u64, u64, bool)>,
}

impl Unacked {
    fn codec(&mut self, c: &mut impl Codec) {
        let Unacked { seq, nextseq, packet, ts, retransmitted } = self;
        c.seq(seq);
        c.seq(nextseq);
        c.packet(packet);
        c.time(ts);
        c.bool(retransmitted);
    }
}

impl DirectionState {
    /// Visits every field for packing (see [`crate::tcp::compact`]).
    pub fn codec(&mut self, c: &mut impl Codec) {
        let DirectionState {
            base_set,
            base_seq,
            nextseq,
            nextseq_time,
            nextseq_packet,
            maxseqtobeacked,
            lastack,
            lastack_time,
            window,
            win_scale,
            is_first_ack,
            dupacknum,
            lastnondupack,
            last_flags,
            valid_bif,
            sack,
            segments,
            in_order,
            refused,
            keep_alive_run,
            last_packet,
        } = self;
        c.bool(base_set);
        c.seq(base_seq);
        c.seq(nextseq);
        c.time(nextseq_time);
        c.packet(nextseq_packet);
        c.seq(maxseqtobeacked);
        c.seq(lastack);
        c.time(lastack_time);
        // u32::MAX (no packet yet) as 0: a byte, not five.
        let mut w = window.wrapping_add(1);
        c.u32(&mut w);
        *window = w.wrapping_sub(1);
        // -2..=14 as 0..=16, in five bits.
        let mut scale = (*win_scale as u8).wrapping_add(2);
        c.small(&mut scale, 5);
        *win_scale = scale.wrapping_sub(2) as i8;
        c.bool(is_first_ack);
        c.i32(dupacknum);
        c.packet(lastnondupack);
        c.u32(&mut last_flags.0);
        c.bool(valid_bif);
        c.option(sack, |c, s| s.codec(c));
        let n = c.len(segments.len(), |n| segments.resize(n, Unacked::default()));
        segments.iter_mut().take(n).for_each(|u| u.codec(c));
        c.bool(in_order);
        c.u64(refused);
        c.u32(keep_alive_run);
        c.packet(last_packet);
    }

    /// Appends a transmission unless the list is full (then counts the refusal).
    #[inline]
    pub fn remember(&mut self, unacked: Unacked, limit: usize) -> bool {
        if self.segments.len() < limit {
            match self.segments.back() {
                Some(last) => {
                    if !seq_le(last.nextseq, unacked.seq) || !seq_le(unacked.seq, unacked.nextseq) {
                        self.in_order = false;
                    }
                }
                None => self.in_order = true,
            }
            self.segments.push_back(unacked);
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Marks every remembered transmission overlapping `[seq, end)` as retransmitted; returns how
    /// many there were (the earlier transmissions of this range still unacknowledged).
    pub fn mark_retransmitted(&mut self, seq: u32, end: u32) -> u32 {
        let mut n = 0;
        for u in self.segments.iter_mut() {
            // Overlap in sequence space: u.seq < end && seq < u.nextseq (empty ranges compare by start).
            let overlaps = if seq == end { u.seq == seq || (seq_le(u.seq, seq) && seq_gt(u.nextseq, seq)) } else {
                seq_gt(end, u.seq) && seq_gt(u.nextseq, seq)
            };
            if overlaps {
                u.retransmitted = true;
                n += 1;
            }
        }
        n
    }

    /// Wireshark's ACK walk over this direction's segments (acknowledged by `ack` from the peer):
    /// exact matches give the RTT reference, partial ACKs trim, acknowledged entries are freed.
    pub fn acknowledge(&mut self, ack: u32) -> AckOutcome {
        if self.segments.is_empty() {
            self.in_order = true;
            return AckOutcome::default();
        }
        let outcome = if self.in_order { self.acknowledge_prefix(ack) } else { self.acknowledge_unordered(ack) };
        if self.segments.is_empty() {
            self.in_order = true;
        }
        outcome
    }

    /// Gives back buffers that hold nothing (the connection went quiet): an idle connection,
    /// like most of those open on a busy link, then holds no heap memory here. Not done on every
    /// ACK that empties the list, where the next segment would allocate again.
    pub fn release_idle_buffers(&mut self) {
        if self.segments.is_empty() && self.segments.capacity() > 0 {
            self.segments = VecDeque::new();
        }
        if self.sack.as_ref().is_some_and(|s| s.count == 0) {
            self.sack = None;
        }
    }

    /// The walk when the segments may be out of order or overlap.
    fn acknowledge_unordered(&mut self, ack: u32) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        let mut ambiguous = false;
        // Wireshark walks newest first and the last match wins: that is the oldest match.
        self.segments.retain_mut(|u| {
            if ack == u.nextseq {
                ambiguous |= u.retransmitted;
                if outcome.matched.is_none() {
                    outcome.matched = Some((u.packet, u.ts, false));
                }
                return false;
            }
            if seq_gt(ack, u.seq) && seq_le(ack, u.nextseq) {
                u.seq = ack;
                return true;
            }
            if seq_gt(u.nextseq, ack) {
                return true;
            }
            false
        });
        if let Some(m) = outcome.matched.as_mut() {
            m.2 = ambiguous;
        }
        outcome
    }

    /// The same walk when the segments are in order without overlap: what the ACK covers is a
    /// prefix, and only the first segment left can be partly acknowledged.
    #[inline]
    fn acknowledge_prefix(&mut self, ack: u32) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        while let Some(u) = self.segments.front_mut() {
            if ack == u.nextseq {
                outcome.matched = Some((u.packet, u.ts, u.retransmitted));
                self.segments.pop_front();
                break;
            }
            if seq_gt(ack, u.seq) && seq_le(ack, u.nextseq) {
                u.seq = ack;
                break;
            }
            if seq_gt(u.nextseq, ack) {
                break;
            }
            self.segments.pop_front();
        }
        outcome
    }

    /// Wireshark 4.0's payload-based bytes in flight of this direction (before the SACK and
    /// SYN/FIN corrections): highest end minus lowest start, relative to the base sequence.
    pub fn span_in_flight(&self) -> Option<u32> {
        let first = self.segments.front()?;
        let base = self.base_seq;
        let mut lo = first.seq.wrapping_sub(base);
        let mut hi = first.nextseq.wrapping_sub(base);
        if self.in_order {
            let last = self.segments.back()?.nextseq.wrapping_sub(base);
            if last >= hi {
                return Some(last.wrapping_sub(lo));
            }
        }
        for u in self.segments.iter().skip(1) {
            let s = u.seq.wrapping_sub(base);
            let e = u.nextseq.wrapping_sub(base);
            if e > hi {
                hi = e;
            }
            if s < lo {
                lo = s;
            }
        }
        Some(hi.wrapping_sub(lo))
    }
}
