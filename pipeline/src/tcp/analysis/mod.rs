//! Per-packet sequence analysis with Wireshark 4.0 semantics (`tcp.analysis.*`), per connection.
//!
//! The rules of `tcp_analyze_sequence_number()` in Wireshark's order; see
//! `research/tcp-analysis.md` §1.3–1.6. One [`SequenceAnalysis`] per connection holds both
//! directions' state.

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::events::{Event, EventKind};

/// The per-packet verdicts, one bit per per-packet event kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnalysisFlags(pub u32);

impl AnalysisFlags {
    /// Bit of a per-packet kind (the first 15 kinds of [`EventKind::ALL`]).
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
}

/// Wireshark-grade sequence analysis of one connection (both directions).
#[derive(Clone, Debug, Default)]
pub struct SequenceAnalysis {}

impl SequenceAnalysis {
    /// Fresh state for a new connection.
    pub fn new() -> Self {
        SequenceAnalysis {}
    }

    /// Analyses one segment sent in direction `dir`, pushing its per-packet events into `out`.
    pub fn on_segment(
        &mut self,
        _seg: &Segment,
        _dir: Direction,
        _flow_id: u64,
        _limits: &AnalysisLimits,
        _out: &mut Vec<Event>,
    ) -> PacketAnalysis {
        PacketAnalysis::default()
    }

    /// Whether a pure SYN starts a new connection on this 4-tuple (Wireshark's `reused_ports`):
    /// the direction's base sequence is known and differs from the SYN's sequence number.
    pub fn is_port_reuse(&self, _seg: &Segment, _dir: Direction) -> bool {
        false
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
