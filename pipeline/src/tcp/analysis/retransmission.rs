//! The retransmission family (Wireshark 4.0 §1.4): spurious, fast, out-of-order, and plain
//! (timeout) retransmission, mutually exclusive, in Wireshark's precedence.

use super::state::DirectionState;
use crate::decode::Segment;
use crate::tcp::seq::{seq_le, seq_lt};

/// Fast retransmission window after the peer's last (duplicate) ACK.
const FAST_RETRANSMISSION_NS: u64 = 20_000_000;
/// Out-of-order threshold when no initial RTT is known.
const DEFAULT_OOO_NS: u64 = 3_000_000;

/// The verdict of the family for one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a retransmission of any kind.
    None,
    /// Every byte was already acknowledged by the peer.
    Spurious,
    /// ≥ 2 duplicate ACKs asked for this sequence number less than 20 ms ago.
    Fast,
    /// Fills a hole soon after the highest segment.
    OutOfOrder,
    /// Anything else below `nextseq`: a timeout retransmission.
    Retransmission,
}

/// Classifies a segment with payload, SYN or FIN (the caller checks that, and that it is not a
/// keep-alive). `now` and the times are packet time in nanoseconds; `irtt_ns` 0 means unknown.
#[inline]
pub(crate) fn classify(seg: &Segment, fwd: &DirectionState, rev: &DirectionState, now: u64, irtt_ns: u64) -> Verdict {
    let seq = seg.seq;
    let len = seg.payload_len;
    let mut seq_not_advanced = fwd.nextseq != 0 && seq_lt(seq, fwd.nextseq);
    // Data right after a zero-window probe whose byte was dropped is new data.
    if len > 1 && fwd.nextseq.wrapping_sub(1) == seq {
        seq_not_advanced = false;
    }
    if len > 0 && rev.lastack != 0 && seq_le(seq.wrapping_add(len), rev.lastack) {
        return Verdict::Spurious;
    }
    // Fast retransmission first (Wireshark's default `tcp.fastrt_supersedes_ooo`).
    let since_peer = now.wrapping_sub(rev.lastack_time);
    // Wireshark 4.0 keeps `dupacknum` in a guint32: the -1 that neutralises an "ACKed unseen
    // segment" compares as ≥ 2 here, so a retransmission right after one is fast.
    let dup_acks = rev.dupacknum as u32;
    if seq_not_advanced && dup_acks >= 2 && rev.lastack == seq && since_peer < FAST_RETRANSMISSION_NS {
        return Verdict::Fast;
    }
    let since_highest = now.wrapping_sub(fwd.nextseq_time);
    let threshold = if irtt_ns == 0 { DEFAULT_OOO_NS } else { irtt_ns };
    let end = seq.wrapping_add(len).wrapping_add((seg.flags.syn() || seg.flags.fin()) as u32);
    if seq_not_advanced && since_highest < threshold && fwd.nextseq != end {
        return Verdict::OutOfOrder;
    }
    if seq_not_advanced {
        Verdict::Retransmission
    } else {
        Verdict::None
    }
}

/// Wireshark 4.0's RTO reference: the oldest unacknowledged segment of this direction, else the
/// packet that last advanced `nextseq`. Returns (packet, sent at ns).
#[inline]
pub(crate) fn rto_reference(fwd: &DirectionState) -> (u64, u64) {
    match fwd.segments.front() {
        Some(u) => (u.packet, u.ts),
        None => (fwd.nextseq_packet, fwd.nextseq_time),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::tcp::EventKind::*;

    #[test]
    fn timeout_retransmission_carries_rto_and_reference() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        let base = t.next[0];
        t.c(30, 100, "PA").go(); // packet 4
        let r = t.c(330, 100, "PA").seq(base).go();
        assert!(r.has(Retransmission) && !r.has(OutOfOrder));
        let ev = t.events.iter().find(|e| e.is(Retransmission)).unwrap();
        assert_eq!(ev.ref_packet, Some(4));
        assert_eq!(ev.value_ns, Some(300_000_000));
        assert_eq!(ev.count, Some(1));
        let r2 = t.c(930, 100, "PA").seq(base).go();
        assert!(r2.has(Retransmission));
        assert_eq!(t.events.iter().rfind(|e| e.is(Retransmission)).unwrap().count, Some(2));
    }

    #[test]
    fn out_of_order_within_irtt_and_gap_before_it() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        let base = t.next[0];
        let gap = t.c(30, 100, "PA").seq(base + 100).go();
        assert!(gap.has(PreviousSegmentNotCaptured));
        let ooo = t.c(31, 100, "PA").seq(base).go();
        assert!(ooo.has(OutOfOrder) && !ooo.any_retransmission());
        // 100 ms later (> iRTT of 20 ms) a hole filled is a retransmission.
        t.c(40, 100, "PA").seq(base + 300).go();
        let late = t.c(140, 100, "PA").seq(base + 200).go();
        assert!(late.has(Retransmission));
    }

    #[test]
    fn spurious_retransmission_of_acked_data() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        let base = t.next[0];
        t.c(30, 100, "PA").go();
        t.s(40, 0, "A").go();
        let s = t.c(240, 100, "PA").seq(base).go();
        assert!(s.has(SpuriousRetransmission) && !s.has(Retransmission));
    }

    #[test]
    fn syn_retransmission_is_a_retransmission() {
        let mut t = Flow::new(1000, 5000);
        t.c(0, 0, "S").ack(0).go();
        let r = t.c(1000, 0, "S").seq(1000).ack(0).go();
        assert!(r.has(Retransmission));
        let ev = t.events.iter().find(|e| e.is(Retransmission)).unwrap();
        assert_eq!(ev.value_ns, Some(1_000_000_000));
        assert_eq!(ev.ref_packet, Some(1));
    }

    #[test]
    fn sequence_wrap_is_handled() {
        let mut t = Flow::handshake(u32::MAX - 150, 5000, Some(7));
        let base = t.next[0];
        assert!(t.c(30, 100, "PA").go().0 == 0);
        let across = t.c(31, 100, "PA").go(); // crosses 2^32
        assert!(across.0 == 0, "{across:?}");
        let after = t.c(32, 100, "PA").go();
        assert!(after.0 == 0);
        let r = t.c(500, 100, "PA").seq(base.wrapping_add(100)).go();
        assert!(r.has(Retransmission));
        let gap = t.c(501, 10, "PA").seq(base.wrapping_add(1000)).go();
        assert!(gap.has(PreviousSegmentNotCaptured));
    }

    #[test]
    fn rst_sequence_never_creates_a_gap() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        t.c(30, 100, "PA").go();
        let rst = t.s(40, 0, "R").seq(123_456_789).go();
        assert!(!rst.has(PreviousSegmentNotCaptured));
    }
}
