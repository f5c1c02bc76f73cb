//! Window rules: zero window, zero-window probe and its ACK, window update, window full
//! (Wireshark 4.0 rules 1, 2, 5, 6 and 8; raw-window comparisons).

use super::state::{DirectionState, WSCALE_NOT_USED, WSCALE_UNKNOWN};
use crate::decode::{Segment, TcpFlags};

const SYN_FIN_RST: u16 = TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST;

/// Rule 1: one byte at the next expected sequence number while the peer advertises a zero window.
#[inline]
pub(crate) fn is_zero_window_probe(seg: &Segment, fwd: &DirectionState, rev: &DirectionState) -> bool {
    seg.payload_len == 1 && seg.seq == fwd.nextseq && rev.window == 0
}

/// Rule 2: a zero raw window on a packet without SYN, FIN or RST.
#[inline]
pub(crate) fn is_zero_window(seg: &Segment) -> bool {
    seg.window == 0 && !seg.flags.any(SYN_FIN_RST)
}

/// Whether a segment repeats this direction's last ACK without advancing (the common test of
/// window update, keep-alive ACK, zero-window-probe ACK and duplicate ACK).
#[inline]
pub(crate) fn repeats_last_ack(seg: &Segment, fwd: &DirectionState) -> bool {
    seg.payload_len == 0 && seg.seq == fwd.nextseq && seg.ack == fwd.lastack && !seg.flags.any(SYN_FIN_RST)
}

/// Rule 5: a new non-zero window on a segment that otherwise repeats the last ACK.
#[inline]
pub(crate) fn is_window_update(seg: &Segment, fwd: &DirectionState) -> bool {
    seg.window != 0 && seg.window as u32 != fwd.window && repeats_last_ack(seg, fwd)
}

/// Rule 6: data reaching exactly the right edge of the peer's window (never while the peer's
/// scale is unknown; the peer's SYN/ACK window is used unscaled until it sends a pure ACK).
#[inline]
pub(crate) fn is_window_full(seg: &Segment, rev: &DirectionState) -> bool {
    if seg.payload_len == 0 || rev.win_scale == WSCALE_UNKNOWN || seg.flags.any(SYN_FIN_RST) {
        return false;
    }
    let shift = if rev.is_first_ack || rev.win_scale == WSCALE_NOT_USED { 0 } else { rev.win_scale as u32 };
    let edge = rev.lastack.wrapping_add(rev.window.wrapping_shl(shift));
    seg.seq.wrapping_add(seg.payload_len) == edge
}

/// Rule 8: a zero window repeated with the last ACK right after the peer's zero-window probe.
#[inline]
pub(crate) fn is_zero_window_probe_ack(seg: &Segment, fwd: &DirectionState, rev: &DirectionState) -> bool {
    seg.window == 0
        && fwd.window == 0
        && rev.last_flags.has(crate::tcp::EventKind::ZeroWindowProbe)
        && repeats_last_ack(seg, fwd)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::tcp::EventKind::*;

    #[test]
    fn zero_window_probe_and_ack_and_update() {
        let mut t = Flow::handshake(1000, 5000, None);
        t.c(10, 1000, "PA").go(); // client sends 1000 bytes
        t.s(11, 0, "A").window(0).go(); // zero window
        let before_probe = t.next[0];
        let probe = t.c(12, 1, "A").go();
        assert!(probe.has(ZeroWindowProbe));
        assert!(!probe.has(PreviousSegmentNotCaptured) && !probe.any_retransmission());
        let ack = t.s(13, 0, "A").window(0).ack(before_probe).go();
        assert!(ack.has(ZeroWindowProbeAck) && ack.has(ZeroWindow));
        let upd = t.s(14, 0, "A").window(100).ack(before_probe).go();
        assert!(upd.has(WindowUpdate));
        assert!(!upd.has(DuplicateAck));
    }

    #[test]
    fn window_full_uses_unscaled_synack_window_until_first_ack() {
        // No window scaling at all: the peer's window is the raw value.
        let mut t = Flow::handshake(1000, 5000, None);
        t.s_window_only(1000); // server advertises 1000 in a pure ACK
        let full = t.c(10, 1000, "PA").go();
        assert!(full.has(WindowFull));
        let next = t.c(11, 10, "PA").go();
        assert!(!next.has(WindowFull));
    }

    #[test]
    fn window_full_never_flagged_when_scale_unknown() {
        let mut t = Flow::midstream(1000, 5000);
        t.s(1, 0, "A").window(1000).go();
        let p = t.c(2, 1000, "PA").go();
        assert!(!p.has(WindowFull));
    }
}
