//! ACK rules: duplicate ACK (rule 9), ACKed unseen segment (rule 10), the ACK walk over the peer's
//! unacknowledged segments (RTT samples, Karn's rule) and Wireshark's bytes in flight.

use super::state::DirectionState;
use super::window::repeats_last_ack;
use crate::decode::{SackBlocks, Segment};
use crate::tcp::seq::{seq_gt, seq_lt};

/// Rule 9: a zero-length segment repeating the last ACK, window and sequence number.
#[inline]
pub(crate) fn is_duplicate_ack(seg: &Segment, fwd: &DirectionState) -> bool {
    seg.window != 0 && seg.window as u32 == fwd.window && repeats_last_ack(seg, fwd)
}

/// Counts one duplicate ACK (a neutralised -1 becomes 1, as Wireshark 4.0).
#[inline]
pub(crate) fn count_duplicate_ack(fwd: &mut DirectionState) -> i32 {
    fwd.dupacknum = if fwd.dupacknum == -1 { 1 } else { fwd.dupacknum.saturating_add(1) };
    fwd.dupacknum
}

/// Rule 10: an ACK beyond the peer's highest contiguous sequence number. Updates the peer's
/// state the way Wireshark 4.0 does to report one hole once; returns whether to flag it and
/// how many bytes were never seen.
#[inline]
pub(crate) fn acked_unseen(seg: &Segment, rev: &mut DirectionState) -> Option<u32> {
    if !seg.flags.ack() || rev.maxseqtobeacked == 0 || !seq_gt(seg.ack, rev.maxseqtobeacked) {
        return None;
    }
    let unseen = seg.ack.wrapping_sub(rev.maxseqtobeacked);
    if seq_lt(rev.maxseqtobeacked, rev.nextseq) {
        rev.maxseqtobeacked = rev.nextseq;
        Some(unseen)
    } else {
        let flag = rev.dupacknum == 0;
        rev.dupacknum = -1;
        flag.then_some(unseen)
    }
}

/// Wireshark 4.0's bytes in flight for a data segment of `fwd`, after the ACK walk: the span of
/// `fwd`'s unacknowledged segments minus the peer's last SACK blocks, minus one for SYN/FIN.
#[inline]
pub(crate) fn bytes_in_flight(seg: &Segment, fwd: &DirectionState, rev: &DirectionState) -> Option<u32> {
    if seg.payload_len == 0 || !fwd.valid_bif {
        return None;
    }
    let mut in_flight = fwd.span_in_flight()?;
    for &(l, r) in rev.sack.as_deref().map_or(&[][..], SackBlocks::as_slice) {
        in_flight = in_flight.wrapping_sub(r.wrapping_sub(l));
    }
    if in_flight > 0 && in_flight < 2_000_000_000 {
        if seg.flags.syn() || seg.flags.fin() {
            in_flight -= 1;
        }
        Some(in_flight)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::flow::Direction;
    use crate::tcp::EventKind::*;

    #[test]
    fn duplicate_acks_count_and_reference_the_original_ack() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        t.c(30, 100, "PA").go();
        let base = t.next[0];
        t.s(40, 0, "A").go(); // packet 5: the ACK being duplicated
        t.c(41, 100, "PA").seq(base + 100).go(); // a gap
        for i in 0..3 {
            let d = t.s(42 + i, 0, "A").ack(base).go();
            assert!(d.has(DuplicateAck));
        }
        let dups: Vec<_> = t.events.iter().filter(|e| e.is(DuplicateAck)).collect();
        assert_eq!(dups.iter().map(|e| e.count.unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(dups.iter().all(|e| e.ref_packet == Some(5)));
        // The hole is filled within 20 ms of the last dup ACK: a fast retransmission.
        let fr = t.c(46, 100, "PA").seq(base).go();
        assert!(fr.has(FastRetransmission) && !fr.has(Retransmission));
    }

    #[test]
    fn ack_of_unseen_data_is_reported_once() {
        let mut t = Flow::midstream(1000, 5000);
        t.c(0, 100, "PA").go();
        let a = t.s(1, 0, "A").ack(1100 + 500).go();
        assert!(a.has(AckedUnseenSegment));
        let b = t.s(2, 0, "A").ack(1100 + 500).go();
        assert!(!b.has(AckedUnseenSegment));
    }

    #[test]
    fn rtt_sample_follows_karns_rule() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        t.c(30, 100, "PA").go();
        let r = t.s(45, 0, "A").full();
        assert_eq!(r.rtt_sample, Some((Direction::Orig, 15_000_000, true)));
        let base = t.next[0];
        t.c(50, 100, "PA").go();
        t.c(350, 100, "PA").seq(base).go(); // timeout retransmission
        let r = t.s(360, 0, "A").full();
        let (dir, _, karn_ok) = r.rtt_sample.unwrap();
        assert_eq!(dir, Direction::Orig);
        assert!(!karn_ok, "the ACK of a retransmitted segment is ambiguous");
    }

    #[test]
    fn bytes_in_flight_and_sack() {
        let mut t = Flow::handshake(1000, 5000, Some(7));
        assert_eq!(t.c(30, 100, "PA").full().bytes_in_flight, Some(100));
        assert_eq!(t.c(31, 100, "PA").full().bytes_in_flight, Some(200));
        let base = t.next[0];
        t.s(40, 0, "A").ack(base - 200).sack(&[(base - 100, base)]).go();
        assert_eq!(t.c(41, 100, "PA").full().bytes_in_flight, Some(200));
    }
}
