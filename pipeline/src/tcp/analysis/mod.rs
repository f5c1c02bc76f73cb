//! Per-packet sequence analysis with Wireshark 4.0 semantics (`tcp.analysis.*`), per connection.
//!
//! The rules of `tcp_analyze_sequence_number()` in Wireshark's order; see
//! `research/tcp-analysis.md` §1.3–1.6. One [`SequenceAnalysis`] per connection holds both
//! directions' state. The rule families live in their own files: [`window`] (zero window, probes,
//! updates, window full), [`keep_alive`], [`ack`] (duplicate ACKs, ACKed unseen data, the ACK
//! walk, bytes in flight) and [`retransmission`]; [`state`] holds the per-direction state.

mod ack;
mod keep_alive;
mod retransmission;
mod state;
#[cfg(test)]
pub(crate) mod testutil;
mod window;

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::events::{Event, EventKind};
use retransmission::Verdict;
use state::{DirectionState, Unacked, WSCALE_NOT_USED, WSCALE_UNKNOWN};

/// The per-packet verdicts, one bit per per-packet event kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnalysisFlags(pub u32);

impl AnalysisFlags {
    /// Bit of a per-packet kind (one of [`EventKind::PER_PACKET`]).
    pub const fn bit(kind: EventKind) -> u32 {
        1 << (kind as u32)
    }
    /// Whether `kind` was raised.
    pub fn has(self, kind: EventKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
    /// Raises `kind`.
    pub fn set(&mut self, kind: EventKind) {
        self.0 |= Self::bit(kind);
    }
    /// Any of the three retransmission kinds (Wireshark's `tcp.analysis.retransmission`).
    pub fn any_retransmission(self) -> bool {
        self.has(EventKind::Retransmission)
            || self.has(EventKind::FastRetransmission)
            || self.has(EventKind::SpuriousRetransmission)
    }
}

/// What the analysis learnt from one packet, besides its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketAnalysis {
    /// Verdicts raised on this packet.
    pub flags: AnalysisFlags,
    /// Wireshark's `bytes_in_flight` for this packet's sender, where defined.
    pub bytes_in_flight: Option<u32>,
    /// An RTT sample this packet completed: (direction of the acknowledged data, nanoseconds,
    /// whether the acknowledged data was never retransmitted, so Karn's rule admits the sample).
    pub rtt_sample: Option<(Direction, u64, bool)>,
    /// For a retransmission: nanoseconds since the reference transmission (Wireshark's `rto`).
    pub rto_ns: Option<u64>,
    /// For a retransmission: the reference transmission's packet number (Wireshark's `rto_frame`).
    pub rto_ref_packet: Option<u64>,
    /// On RST packets only: sequence space each direction (index = `Direction::index`) sent and
    /// has not had acknowledged, from the remembered unacknowledged segments.
    pub unacked_bytes: [Option<u32>; 2],
}

/// Wireshark-grade sequence analysis of one connection (both directions).
#[derive(Clone, Debug, Default)]
pub struct SequenceAnalysis {
    dirs: [DirectionState; 2],
    /// Time of the most recent pure SYN (0: none), Wireshark's `ts_mru_syn`.
    last_syn_ns: u64,
    /// Initial RTT (0: unknown), Wireshark's `ts_first_rtt`.
    irtt_ns: u64,
    /// Set by [`SequenceAnalysis::mark_port_reuse`]: the next packet reused the 4-tuple of the
    /// connection that began at this packet.
    pending_port_reuse: Option<u64>,
}

impl SequenceAnalysis {
    /// Fresh state for a new connection.
    pub fn new() -> Self {
        SequenceAnalysis::default()
    }

    /// Visits every field for packing (see [`crate::tcp::compact`]).
    pub(crate) fn codec(&mut self, c: &mut impl crate::tcp::compact::Codec) {
        let SequenceAnalysis { dirs, last_syn_ns, irtt_ns, pending_port_reuse } = self;
        dirs.iter_mut().for_each(|d| d.codec(c));
        c.time(last_syn_ns);
        c.duration(irtt_ns);
        c.option(pending_port_reuse, |c, p| c.packet(p));
    }

    /// The initial RTT (last SYN → first pure ACK), when known.
    pub fn initial_rtt_ns(&self) -> Option<u64> {
        (self.irtt_ns != 0).then_some(self.irtt_ns)
    }

    /// Transmissions not remembered because a direction's unacknowledged list was full.
    pub fn refused_segments(&self, dir: Direction) -> u64 {
        self.dirs[dir.index()].refused
    }

    /// Gives back buffers that hold nothing, once the connection has gone quiet.
    pub fn release_idle_buffers(&mut self) {
        self.dirs.iter_mut().for_each(DirectionState::release_idle_buffers);
    }

    /// Unacknowledged segments remembered now for `dir`.
    pub fn tracked_segments(&self, dir: Direction) -> usize {
        self.dirs[dir.index()].segments.len()
    }

    /// The next packet is the first of a connection that reuses the 4-tuple of the connection
    /// whose first packet was `previous_first_packet`: it gets a `port_reuse` event.
    pub fn mark_port_reuse(&mut self, previous_first_packet: u64) {
        self.pending_port_reuse = Some(previous_first_packet);
    }

    /// Whether a pure SYN starts a new connection on this 4-tuple (Wireshark's `reused_ports`):
    /// the direction's base sequence is known and differs from the SYN's sequence number.
    pub fn is_port_reuse(&self, seg: &Segment, dir: Direction) -> bool {
        let fwd = &self.dirs[dir.index()];
        seg.flags.pure_syn() && fwd.base_set && seg.seq != fwd.base_seq
    }

    /// Analyses one segment sent in direction `dir`, pushing its per-packet events into `out`.
    #[inline(always)]
    pub fn on_segment(
        &mut self,
        seg: &Segment,
        dir: Direction,
        flow_id: u64,
        limits: &AnalysisLimits,
        out: &mut Vec<Event>,
    ) -> PacketAnalysis {
        let now = seg.ts.as_nanos();
        let flags_in = seg.flags;
        let (fwd, rev) = split(&mut self.dirs, dir);
        let mut result = PacketAnalysis::default();
        let mut ev = Evidence::default();

        // Port reuse (dissect_tcp, before the analysis).
        if let Some(previous) = self.pending_port_reuse.take() {
            result.flags.set(EventKind::PortReuse);
            ev.port_reuse_ref = Some(previous);
        }
        if flags_in.pure_syn() && fwd.base_set && seg.seq == fwd.base_seq {
            // A retransmitted SYN: restore nextseq (an RST may have moved it; Wireshark 17616).
            fwd.nextseq = fwd.maxseqtobeacked;
        }
        if flags_in.syn_ack() && fwd.base_set && seg.seq != fwd.base_seq {
            fwd.base_seq = seg.seq;
            result.flags.set(EventKind::PortReuse);
        }

        // Base sequence numbers.
        if !fwd.base_set {
            fwd.base_seq = if flags_in.syn() { seg.seq } else { seg.seq.wrapping_sub(1) };
            fwd.base_set = true;
        }
        if !rev.base_set && flags_in.ack() {
            rev.base_seq = seg.ack.wrapping_sub(1);
            rev.base_set = true;
        }
        if flags_in.ack() {
            rev.valid_bif = true;
        }

        let flags = &mut result.flags;
        // Rules 1–9; a zero-window probe, keep-alive ACK or zero-window-probe ACK skips the rest.
        'forward: {
            if window::is_zero_window_probe(seg, fwd, rev) {
                flags.set(EventKind::ZeroWindowProbe);
                break 'forward;
            }
            if window::is_zero_window(seg) {
                flags.set(EventKind::ZeroWindow);
            }
            if fwd.nextseq != 0 && crate::tcp::seq::seq_gt(seg.seq, fwd.nextseq) && !flags_in.rst() {
                flags.set(EventKind::PreviousSegmentNotCaptured);
                ev.gap = Some((seg.seq.wrapping_sub(fwd.nextseq), fwd.nextseq_packet));
                fwd.valid_bif = false;
            }
            if keep_alive::is_keep_alive(seg, fwd) {
                flags.set(EventKind::KeepAlive);
            }
            if window::is_window_update(seg, fwd) {
                flags.set(EventKind::WindowUpdate);
                ev.previous_window = Some(fwd.window);
            }
            if window::is_window_full(seg, rev) {
                flags.set(EventKind::WindowFull);
            }
            if keep_alive::is_keep_alive_ack(seg, fwd, rev) {
                flags.set(EventKind::KeepAliveAck);
                ev.answered_packet = Some(rev.last_packet);
                break 'forward;
            }
            if window::is_zero_window_probe_ack(seg, fwd, rev) {
                flags.set(EventKind::ZeroWindowProbeAck);
                ev.answered_packet = Some(rev.last_packet);
                break 'forward;
            }
            if ack::is_duplicate_ack(seg, fwd) {
                let n = ack::count_duplicate_ack(fwd);
                flags.set(EventKind::DuplicateAck);
                ev.duplicate = Some((n, fwd.lastnondupack));
            }
        }
        if seg.ack != fwd.lastack {
            fwd.lastnondupack = seg.packet_number;
            fwd.dupacknum = 0;
        }
        if let Some(unseen) = ack::acked_unseen(seg, rev) {
            flags.set(EventKind::AckedUnseenSegment);
            ev.unseen_bytes = Some(unseen);
        }

        // The retransmission family.
        let occupies = seg.payload_len > 0 || flags_in.syn() || flags_in.fin();
        let seq_end = seg.seq.wrapping_add(seg.payload_len);
        let mut is_retransmission = false;
        if occupies && !flags.has(EventKind::KeepAlive) {
            let verdict = retransmission::classify(seg, fwd, rev, now, self.irtt_ns);
            match verdict {
                Verdict::None => {}
                Verdict::Spurious => {
                    flags.set(EventKind::SpuriousRetransmission);
                    ev.spurious_acked_by = Some(rev.lastack);
                }
                Verdict::Fast => {
                    flags.set(EventKind::FastRetransmission);
                    ev.fast = Some((rev.dupacknum, rev.lastnondupack));
                }
                Verdict::OutOfOrder => {
                    flags.set(EventKind::OutOfOrder);
                    ev.hole = Some((now.wrapping_sub(fwd.nextseq_time), fwd.nextseq_packet));
                }
                Verdict::Retransmission => {
                    flags.set(EventKind::Retransmission);
                    let (packet, sent) = retransmission::rto_reference(fwd);
                    result.rto_ns = Some(now.saturating_sub(sent));
                    result.rto_ref_packet = Some(packet);
                }
            }
            if matches!(verdict, Verdict::Spurious | Verdict::Fast | Verdict::Retransmission) {
                is_retransmission = true;
                let end = seq_end.wrapping_add((flags_in.syn() || flags_in.fin()) as u32);
                ev.attempt = fwd.mark_retransmitted(seg.seq, end);
            }
        }

        // Bookkeeping (§1.5).
        let mut nextseq = seq_end;
        if occupies {
            let mut end = seq_end;
            if flags_in.syn() || flags_in.fin() {
                end = end.wrapping_add(1);
            }
            let unacked = Unacked {
                seq: seg.seq,
                nextseq: end,
                packet: seg.packet_number,
                ts: now,
                retransmitted: is_retransmission,
            };
            if fwd.remember(unacked, limits.max_unacked_segments) {
                // Wireshark counts SYN/FIN in nextseq only when the segment was remembered.
                nextseq = end;
            }
        }
        let is_probe = flags.has(EventKind::ZeroWindowProbe);
        if (crate::tcp::seq::seq_gt(nextseq, fwd.nextseq) || fwd.nextseq == 0) && !is_probe {
            fwd.nextseq = nextseq;
            fwd.nextseq_packet = seg.packet_number;
            fwd.nextseq_time = now;
        }
        if (seg.seq == fwd.maxseqtobeacked || fwd.maxseqtobeacked == 0) && !is_probe {
            fwd.maxseqtobeacked = fwd.nextseq;
        }
        fwd.window = seg.window as u32;
        fwd.lastack = seg.ack;
        fwd.lastack_time = now;
        fwd.last_flags = *flags;
        fwd.last_packet = seg.packet_number;
        fwd.keep_alive_run = if flags.has(EventKind::KeepAlive) { fwd.keep_alive_run.saturating_add(1) } else { 0 };

        // The ACK walk over the peer's segments.
        let acked = rev.acknowledge(seg.ack);
        if let Some((_packet, sent, ambiguous)) = acked.matched {
            if flags_in.ack() {
                result.rtt_sample = Some((dir.reverse(), now.saturating_sub(sent), !ambiguous));
            }
        }
        result.bytes_in_flight = ack::bytes_in_flight(seg, fwd, rev);

        // SACK blocks and options are dissected after the analysis in Wireshark.
        let mut sack = seg.options.sack;
        sack.count = sack.count.min(3);
        match &mut fwd.sack {
            Some(kept) => **kept = sack,
            None if sack.count > 0 => fwd.sack = Some(Box::new(sack)),
            None => {}
        }
        if let Some(shift) = seg.options.window_scale {
            fwd.win_scale = shift.min(14) as i8;
        }
        if flags_in.syn() {
            if fwd.win_scale == WSCALE_UNKNOWN {
                fwd.win_scale = WSCALE_NOT_USED;
                rev.win_scale = WSCALE_NOT_USED;
            } else if flags_in.ack() && rev.win_scale == WSCALE_NOT_USED {
                fwd.win_scale = WSCALE_NOT_USED;
            }
            fwd.is_first_ack = true;
            if !flags_in.ack() {
                self.last_syn_ns = now;
            }
        }
        let pure_ack = flags_in.ack() && !flags_in.syn();
        if pure_ack {
            if self.last_syn_ns != 0 && self.irtt_ns == 0 {
                self.irtt_ns = now - self.last_syn_ns.min(now);
            }
            fwd.is_first_ack = false;
        }
        if flags_in.rst() {
            // Only where a story needs it (a reset): the span of what each side has not had
            // acknowledged, from the remembered segments.
            for d in [Direction::Orig, Direction::Resp] {
                let this = &self.dirs[d.index()];
                result.unacked_bytes[d.index()] = Some(this.span_in_flight().unwrap_or(0));
            }
        }

        if result.flags.0 != 0 {
            let fwd = &self.dirs[dir.index()];
            emit(seg, dir, flow_id, &result, &ev, fwd, out);
        }
        result
    }
}

/// Evidence gathered while the rules ran, for the events' fields.
#[derive(Default)]
struct Evidence {
    port_reuse_ref: Option<u64>,
    gap: Option<(u32, u64)>,
    previous_window: Option<u32>,
    answered_packet: Option<u64>,
    duplicate: Option<(i32, u64)>,
    unseen_bytes: Option<u32>,
    spurious_acked_by: Option<u32>,
    fast: Option<(i32, u64)>,
    hole: Option<(u64, u64)>,
    attempt: u32,
}

fn split(dirs: &mut [DirectionState; 2], dir: Direction) -> (&mut DirectionState, &mut DirectionState) {
    let [orig, resp] = dirs;
    match dir {
        Direction::Orig => (orig, resp),
        Direction::Resp => (resp, orig),
    }
}

/// Pushes one event per raised per-packet kind, in [`EventKind::ALL`] order, with evidence.
#[cold]
fn emit(
    seg: &Segment,
    dir: Direction,
    flow_id: u64,
    result: &PacketAnalysis,
    ev: &Evidence,
    fwd: &DirectionState,
    out: &mut Vec<Event>,
) {
    for &kind in EventKind::PER_PACKET {
        if !result.flags.has(kind) {
            continue;
        }
        let mut e = Event::tcp_packet(kind, seg, flow_id, dir);
        match kind {
            EventKind::Retransmission => {
                if let (Some(rto), Some(r)) = (result.rto_ns, result.rto_ref_packet) {
                    e = e.with_ref(r).with_value_ns(rto);
                }
                e = e.with_count(ev.attempt.max(1) as u64);
            }
            EventKind::FastRetransmission => {
                if let Some((n, r)) = ev.fast {
                    e = e.with_ref(r).with_count(n.max(0) as u64);
                }
                e = e.with_detail("attempt", ev.attempt.max(1));
            }
            EventKind::SpuriousRetransmission => {
                if let Some(acked) = ev.spurious_acked_by {
                    e = e.with_detail("peer_ack", acked);
                }
                e = e.with_count(ev.attempt.max(1) as u64);
            }
            EventKind::OutOfOrder => {
                if let Some((age, r)) = ev.hole {
                    e = e.with_ref(r).with_value_ns(age);
                }
            }
            EventKind::PreviousSegmentNotCaptured => {
                if let Some((bytes, r)) = ev.gap {
                    e = e.with_ref(r).with_detail("gap_bytes", bytes);
                }
            }
            EventKind::AckedUnseenSegment => {
                if let Some(bytes) = ev.unseen_bytes {
                    e = e.with_detail("unseen_bytes", bytes);
                }
            }
            EventKind::DuplicateAck => {
                if let Some((n, r)) = ev.duplicate {
                    e = e.with_ref(r).with_count(n.max(0) as u64);
                }
            }
            EventKind::WindowUpdate => {
                if let Some(w) = ev.previous_window {
                    e = e.with_detail("previous_window", w);
                }
            }
            EventKind::WindowFull => {
                if let Some(b) = result.bytes_in_flight {
                    e = e.with_detail("bytes_in_flight", b);
                }
            }
            EventKind::KeepAlive => {
                e = e.with_count(fwd.keep_alive_run as u64);
            }
            EventKind::KeepAliveAck | EventKind::ZeroWindowProbeAck => {
                if let Some(r) = ev.answered_packet.filter(|&p| p != 0) {
                    e = e.with_ref(r);
                }
            }
            EventKind::PortReuse => {
                if let Some(r) = ev.port_reuse_ref {
                    e = e.with_ref(r);
                } else {
                    e = e.with_detail("reason", "syn_ack_new_isn");
                }
            }
            _ => {}
        }
        out.push(e);
    }
}

/// Bounds on what the analysis tracks per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnalysisLimits {
    /// Maximum unacknowledged segments remembered per direction (Wireshark: 10000).
    pub max_unacked_segments: usize,
}

impl Default for AnalysisLimits {
    fn default() -> Self {
        AnalysisLimits { max_unacked_segments: 10_000 }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::tcp::EventKind::*;

    #[test]
    fn clean_transfer_raises_nothing() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        for i in 0..20 {
            t.c(30 + i * 2, 1000, "PA").go();
            t.s(31 + i * 2, 0, "A").go();
        }
        assert!(t.events.is_empty(), "{:?}", t.events);
        assert_eq!(t.analysis.initial_rtt_ns(), Some(20_000_000));
    }

    #[test]
    fn unacked_tracking_is_bounded_and_counts_refusals() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        t.limits.max_unacked_segments = 4;
        for i in 0..10 {
            t.c(30 + i, 100, "PA").go();
        }
        assert_eq!(t.analysis.tracked_segments(Direction::Orig), 4);
        assert_eq!(t.analysis.refused_segments(Direction::Orig), 6);
    }

    #[test]
    fn midstream_window_scale_unknown_and_no_false_loss() {
        let mut t = Flow::midstream(7_000_000, 9_000_000);
        let first = t.c(0, 500, "PA").go();
        assert_eq!(first.0, 0);
        let ack = t.s(1, 0, "A").go();
        assert_eq!(ack.0, 0);
        let more = t.c(2, 500, "PA").window(10).go();
        assert!(!more.has(WindowFull) && !more.has(PreviousSegmentNotCaptured));
    }

    #[test]
    fn syn_ack_with_a_new_isn_is_port_reuse() {
        let mut t = Flow::handshake(1000, 5000, None);
        let r = t.s(100, 0, "SA").seq(777).go();
        assert!(r.has(PortReuse));
    }

    #[test]
    fn port_reuse_decision_and_mark() {
        let t = Flow::handshake(1000, 5000, None);
        let syn = |seq: u32| Flow::new(seq, 0).c(0, 0, "S").segment();
        assert!(!SequenceAnalysis::new().is_port_reuse(&syn(99_999), Direction::Orig));
        assert!(t.analysis.is_port_reuse(&syn(99_999), Direction::Orig));
        assert!(!t.analysis.is_port_reuse(&syn(1000), Direction::Orig), "a retransmitted SYN");
        let mut fresh = Flow::new(99_999, 0);
        fresh.analysis.mark_port_reuse(1);
        let r = fresh.c(5000, 0, "S").go();
        assert!(r.has(PortReuse));
        assert_eq!(fresh.events[0].ref_packet, Some(1));
    }

    #[test]
    fn fast_retransmission_needs_the_dup_acks_within_20_ms() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        t.c(30, 100, "PA").go();
        let base = t.next[0] - 100;
        t.c(31, 100, "PA").seq(base + 200).go(); // the segment at base+100 is missing
        for i in 0..2 {
            t.s(40 + i, 0, "A").ack(base + 100).go();
        }
        let late = t.c(100, 100, "PA").seq(base + 100).go();
        assert!(late.has(Retransmission) && !late.has(FastRetransmission), "{late:?}");
    }

    #[test]
    fn out_of_order_threshold_is_3_ms_without_initial_rtt() {
        let mut t = Flow::midstream(1000, 5000);
        t.c(0, 100, "PA").go();
        t.c(1, 100, "PA").seq(1200).go(); // a hole at 1100
        let ooo = t.c(3, 100, "PA").seq(1100).go();
        assert!(ooo.has(OutOfOrder), "{ooo:?}");
        t.c(4, 100, "PA").seq(1400).go(); // a hole at 1300
        let late = t.c(8, 100, "PA").seq(1300).go();
        assert!(late.has(Retransmission), "{late:?}");
    }

    #[test]
    fn window_full_is_scaled_after_the_peers_first_pure_ack() {
        let mut t = Flow::handshake(1000, 5000, Some(2));
        t.s(21, 0, "A").window(250).go(); // 250 << 2 = 1000 bytes
        let full = t.c(30, 1000, "PA").go();
        assert!(full.has(WindowFull), "{full:?}");
    }

    #[test]
    fn neutralised_dup_ack_counter_restarts_at_one() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        t.s(30, 100, "PA").go();
        let ack = t.next[1];
        // The client ACKs data the capture never saw, twice: reported once.
        assert!(t.c(31, 0, "A").ack(ack + 500).go().has(AckedUnseenSegment));
        let again = t.c(32, 0, "A").ack(ack + 500).go();
        assert!(!again.has(AckedUnseenSegment) && again.has(DuplicateAck));
        let dup = t.events.iter().rfind(|e| e.is(DuplicateAck)).unwrap();
        assert_eq!(dup.count, Some(1));
    }

    #[test]
    fn engine_marks_port_reuse_on_the_new_syn() {
        use crate::decode::{decode, LinkType};
        use crate::tcp::{CloseReason, Engine, EngineConfig};
        use crate::testing::Conversation;
        use crate::time::Timestamp;
        let mut a = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        a.handshake(0, 1_000_000);
        a.client_data(2_000_000, 10);
        let mut b = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 777_777, 9000);
        b.handshake(3_000_000, 1_000_000);
        let mut engine = Engine::new(EngineConfig::default());
        for (n, (t, f)) in a.frames.iter().chain(&b.frames).enumerate() {
            engine.handle_segment(&decode(LinkType::Ethernet, f, Timestamp(1_000_000_000 + t), n as u64 + 1, 0).unwrap());
        }
        engine.finish(CloseReason::EndOfInput);
        let reuse: Vec<_> = engine.output.events.iter().filter(|e| e.is(PortReuse)).collect();
        assert_eq!(reuse.len(), 1, "{:?}", engine.output.events);
        assert_eq!((reuse[0].packet_number, reuse[0].ref_packet), (Some(5), Some(1)));
        assert_eq!(engine.output.flows.len(), 2);
    }

    /// Seeded random segments (any flags, sequence numbers, windows, SACK blocks, times going
    /// backwards) through the whole engine: nothing panics, and the tracking stays bounded.
    #[test]
    fn random_segments_never_panic() {
        use crate::decode::TcpFlags;
        use crate::tcp::{CloseReason, Engine, EngineConfig};
        let mut next = crate::testing::xorshift(0x2545_F491_4F6C_DD1Du64);
        let mut config = EngineConfig::default();
        config.analysis.max_unacked_segments = 64;
        let mut engine = Engine::new(config);
        let template = Flow::new(0, 0).c(0, 0, "").segment();
        let mut ts = 1_000_000_000u64;
        for n in 0..200_000u64 {
            let r = next();
            let mut seg = template;
            ts = if r.is_multiple_of(97) { ts.saturating_sub(r % 1_000_000_000) } else { ts + (r >> 40) % 50_000_000 };
            seg.ts = crate::time::Timestamp(ts);
            seg.packet_number = n + 1;
            if r & 1 == 1 {
                std::mem::swap(&mut seg.src_ip, &mut seg.dst_ip);
                std::mem::swap(&mut seg.src_port, &mut seg.dst_port);
            }
            seg.src_port = seg.src_port.wrapping_add((r >> 8) as u16 % 4);
            let base = (r >> 16) as u32 % 3;
            seg.seq = match base {
                0 => next() as u32,
                _ => (next() as u32 % 4096).wrapping_add(0xFFFF_F000),
            };
            seg.ack = if r & 2 == 0 { next() as u32 } else { (next() as u32 % 4096).wrapping_add(0xFFFF_F000) };
            seg.flags = TcpFlags((next() & 0x1FF) as u16);
            seg.window = if r & 4 == 0 { 0 } else { next() as u16 };
            seg.payload_len = match r % 5 {
                0 => 0,
                1 => 1,
                _ => (next() % 70_000) as u32,
            };
            seg.options.window_scale = if r.is_multiple_of(11) { Some((next() % 20) as u8) } else { None };
            if r.is_multiple_of(13) {
                seg.options.sack.count = 4;
                for b in seg.options.sack.blocks.iter_mut() {
                    *b = (next() as u32, next() as u32);
                }
            }
            engine.handle_segment(&seg);
            if n % 10_000 == 0 {
                engine.output.events.clear();
            }
        }
        engine.finish(CloseReason::EndOfInput);
    }

    /// Wireshark 4.0's `dupacknum` is unsigned: after an "ACKed unseen segment" neutralised it
    /// (-1), a retransmission that repeats the peer's last ACK within 20 ms counts as fast
    /// (`lost_segments_reassembly` frames 8, 10 and 12 in the corpus).
    #[test]
    fn neutralised_dup_ack_counter_makes_the_next_retransmission_fast() {
        let mut t = Flow::handshake(1000, 5000, None);
        let fin_seq = t.next[1];
        t.s(30, 0, "FA").go();
        t.c(40, 100, "A").ack(fin_seq).go(); // data that does not ACK the FIN
        let unseen = t.next[0] + 8;
        let again = t.s(41, 0, "FA").seq(fin_seq).ack(unseen).go();
        assert!(again.has(AckedUnseenSegment), "{again:?}");
        assert!(again.has(FastRetransmission) && !again.has(Retransmission), "{again:?}");
    }
}
