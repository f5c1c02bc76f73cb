//! Keep-alive rules (Wireshark 4.0 rules 4 and 7): a keep-alive sits one byte before the next
//! expected sequence number with 0 or 1 byte; its ACK repeats the last ACK and window.

use super::state::DirectionState;
use super::window::repeats_last_ack;
use crate::decode::{Segment, TcpFlags};
use crate::tcp::EventKind;

/// Rule 4. When `nextseq` is unknown (0) Wireshark compares with 0xFFFFFFFF; so do we.
#[inline]
pub(crate) fn is_keep_alive(seg: &Segment, fwd: &DirectionState) -> bool {
    seg.payload_len <= 1
        && seg.seq == fwd.nextseq.wrapping_sub(1)
        && !seg.flags.any(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST)
}

/// Rule 7: the peer's last packet was a keep-alive and this one repeats the last ACK and window.
#[inline]
pub(crate) fn is_keep_alive_ack(seg: &Segment, fwd: &DirectionState, rev: &DirectionState) -> bool {
    seg.window != 0
        && seg.window as u32 == fwd.window
        && rev.last_flags.has(EventKind::KeepAlive)
        && repeats_last_ack(seg, fwd)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::tcp::EventKind::*;

    #[test]
    fn keep_alive_with_zero_and_one_byte_is_not_a_retransmission() {
        let mut t = Flow::handshake(100, 900, Some(7));
        t.c(30, 100, "PA").go();
        t.s(40, 0, "A").go();
        let next = t.next[0];
        let ka = t.c(10_000, 0, "A").seq(next - 1).go();
        assert!(ka.has(KeepAlive));
        assert!(!ka.any_retransmission() && !ka.has(PreviousSegmentNotCaptured));
        let kaa = t.s(10_001, 0, "A").go();
        assert!(kaa.has(KeepAliveAck) && !kaa.has(DuplicateAck));
        let ka1 = t.c(20_000, 1, "A").seq(next - 1).go();
        assert!(ka1.has(KeepAlive) && !ka1.any_retransmission());
        let kaa = t.s(20_001, 0, "A").go();
        assert!(kaa.has(KeepAliveAck));
        assert_eq!(t.count(KeepAlive), 2);
        let ev = t.events.iter().filter(|e| e.is(KeepAlive)).nth(1).unwrap();
        assert_eq!(ev.count, Some(2), "second keep-alive in a row");
    }
}
