//! The per-connection summary: Zeek-compatible conn_state and history, byte and packet counters,
//! per-direction TCP health metrics, handshake timings and RTT; one `flows` row per connection.

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::analysis::PacketAnalysis;
use crate::tcp::events::EventKind;
use crate::time::Timestamp;
use std::net::IpAddr;

/// Why a flow row was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Both sides sent FIN.
    Fin,
    /// The originator sent RST.
    RstOrig,
    /// The responder sent RST.
    RstResp,
    /// No packet for the idle timeout.
    IdleTimeout,
    /// The input ended with the flow open.
    EndOfInput,
    /// A new connection reused the 4-tuple.
    PortReuse,
    /// The flow table was full and this flow was the longest idle.
    Evicted,
    /// Live capture was stopped (SIGINT/SIGTERM).
    Shutdown,
}

impl CloseReason {
    /// The name written to the `close_reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::RstOrig => "rst_orig",
            CloseReason::RstResp => "rst_resp",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::EndOfInput => "end_of_input",
            CloseReason::PortReuse => "port_reuse",
            CloseReason::Evicted => "evicted",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// RTT statistics of one direction's data (ACK-based, Karn-filtered).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RttStats {
    /// Number of samples.
    pub samples: u64,
    /// Minimum, nanoseconds.
    pub min_ns: Option<i64>,
    /// Mean, nanoseconds.
    pub mean_ns: Option<i64>,
    /// Maximum, nanoseconds.
    pub max_ns: Option<i64>,
    /// Median estimate, nanoseconds.
    pub p50_ns: Option<i64>,
    /// 95th percentile estimate, nanoseconds.
    pub p95_ns: Option<i64>,
}

/// Per-direction metrics of a flow row (`orig_*` and `resp_*` columns).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirectionMetrics {
    /// Packets sent.
    pub pkts: u64,
    /// Sum of IP total lengths.
    pub ip_bytes: u64,
    /// Sum of TCP payload lengths, retransmissions included.
    pub payload_bytes: u64,
    /// Payload bytes never sent before (sequence space covered for the first time).
    pub unique_bytes: u64,
    /// Zeek-style bytes from the sequence-number span (`orig_bytes` / `resp_bytes`).
    pub seq_bytes: u64,
    /// Timeout retransmissions.
    pub retransmissions: u64,
    /// Fast retransmissions.
    pub fast_retransmissions: u64,
    /// Spurious retransmissions.
    pub spurious_retransmissions: u64,
    /// Out-of-order segments.
    pub out_of_order: u64,
    /// Gaps before a segment (previous segment not captured).
    pub lost_segments: u64,
    /// ACKs of data the capture never saw, sent by this direction.
    pub acked_unseen: u64,
    /// Duplicate ACKs sent by this direction.
    pub duplicate_acks: u64,
    /// Zero-window advertisements sent by this direction.
    pub zero_windows: u64,
    /// Zero-window probes sent by this direction.
    pub zero_window_probes: u64,
    /// Total time this direction advertised a zero window, nanoseconds.
    pub zero_window_stall_ns: i64,
    /// Keep-alives sent.
    pub keep_alives: u64,
    /// Segments that filled the peer's window.
    pub window_full: u64,
    /// MSS option from this side's SYN.
    pub mss: Option<u16>,
    /// Window scale shift from this side's SYN (`None`: unknown or not offered).
    pub window_scale: Option<u8>,
    /// SACK permitted offered on this side's SYN.
    pub sack_permitted: bool,
    /// Timestamps option seen from this side.
    pub timestamps: bool,
    /// Largest Wireshark bytes-in-flight seen for this side.
    pub max_bytes_in_flight: u64,
    /// RTT of this direction's data.
    pub rtt: RttStats,
}

impl DirectionMetrics {
    /// Counts one packet's verdicts.
    pub fn count_flags(&mut self, analysis: &PacketAnalysis) {
        let f = analysis.flags;
        self.retransmissions += f.has(EventKind::Retransmission) as u64;
        self.fast_retransmissions += f.has(EventKind::FastRetransmission) as u64;
        self.spurious_retransmissions += f.has(EventKind::SpuriousRetransmission) as u64;
        self.out_of_order += f.has(EventKind::OutOfOrder) as u64;
        self.lost_segments += f.has(EventKind::PreviousSegmentNotCaptured) as u64;
        self.acked_unseen += f.has(EventKind::AckedUnseenSegment) as u64;
        self.duplicate_acks += f.has(EventKind::DuplicateAck) as u64;
        self.zero_windows += f.has(EventKind::ZeroWindow) as u64;
        self.zero_window_probes += f.has(EventKind::ZeroWindowProbe) as u64;
        self.keep_alives += f.has(EventKind::KeepAlive) as u64;
        self.window_full += f.has(EventKind::WindowFull) as u64;
        if let Some(bif) = analysis.bytes_in_flight {
            self.max_bytes_in_flight = self.max_bytes_in_flight.max(bif as u64);
        }
    }
}

/// One row of the `flows` dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRecord {
    /// First packet.
    pub ts: Timestamp,
    /// Last packet.
    pub ts_end: Timestamp,
    /// Index of the source in the run's list.
    pub source_index: u32,
    /// Stable flow id (also in `events.flow_id`).
    pub flow_id: u64,
    /// Community ID v1 (seed 0).
    pub community_id: String,
    /// Originator address.
    pub orig_h: IpAddr,
    /// Originator port.
    pub orig_p: u16,
    /// Responder address.
    pub resp_h: IpAddr,
    /// Responder port.
    pub resp_p: u16,
    /// Outer VLAN id of the first packet.
    pub vlan: Option<u16>,
    /// Zeek conn_state.
    pub conn_state: &'static str,
    /// Zeek history.
    pub history: String,
    /// Why the row was written.
    pub close_reason: CloseReason,
    /// Zeek missed_bytes (both directions).
    pub missed_bytes: u64,
    /// SYN → SYN/ACK, nanoseconds.
    pub handshake_syn_synack_ns: Option<i64>,
    /// SYN/ACK → ACK, nanoseconds.
    pub handshake_synack_ack_ns: Option<i64>,
    /// Originator → responder metrics.
    pub orig: DirectionMetrics,
    /// Responder → originator metrics.
    pub resp: DirectionMetrics,
}

impl FlowRecord {
    /// `ts_end - ts` in nanoseconds.
    pub fn duration_ns(&self) -> i64 {
        self.ts_end.saturating_since(self.ts) as i64
    }
    /// 4 or 6.
    pub fn ip_version(&self) -> u8 {
        if self.orig_h.is_ipv4() {
            4
        } else {
            6
        }
    }
}

/// Per-endpoint TCP state in Zeek's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// Accumulates a connection's summary as packets arrive.
#[derive(Clone, Debug, Default)]
pub struct FlowSummary {
    metrics: [DirectionMetrics; 2],
    state: [EndpointState; 2],
    history: String,
    first_syn: Option<Timestamp>,
    first_synack: Option<Timestamp>,
    handshake_ack: Option<Timestamp>,
}

impl FlowSummary {
    /// An empty summary.
    pub fn new() -> Self {
        FlowSummary::default()
    }

    /// Counts one packet sent in `dir`, with the analysis verdicts it received.
    pub fn on_segment(&mut self, seg: &Segment, dir: Direction, analysis: &PacketAnalysis) {
        let d = dir.index();
        let m = &mut self.metrics[d];
        m.pkts += 1;
        m.ip_bytes += seg.ip_len as u64;
        m.payload_bytes += seg.payload_len as u64;
        m.count_flags(analysis);
        if seg.options.timestamps.is_some() {
            m.timestamps = true;
        }
        let flags = seg.flags;
        if flags.syn() {
            m.mss = seg.options.mss.or(m.mss);
            m.window_scale = seg.options.window_scale.or(m.window_scale);
            m.sack_permitted |= seg.options.sack_permitted;
        }
        if flags.pure_syn() {
            self.first_syn.get_or_insert(seg.ts);
            if self.state[d] == EndpointState::Inactive {
                self.state[d] = EndpointState::SynSent;
            }
        } else if flags.syn_ack() {
            if self.first_synack.is_none() {
                self.first_synack = Some(seg.ts);
            }
            self.state[d] = EndpointState::Established;
            self.state[1 - d] = EndpointState::Established;
        } else if flags.rst() {
            self.state[d] = EndpointState::Reset;
        } else if flags.fin() {
            self.state[d] = EndpointState::Closed;
        } else if flags.ack() && self.first_synack.is_some() && self.handshake_ack.is_none() && dir == Direction::Orig {
            self.handshake_ack = Some(seg.ts);
        }
        if self.state[d] == EndpointState::Inactive {
            self.state[d] = EndpointState::Partial;
        }
    }

    /// The final row fields that depend on the whole story.
    pub fn conn_state(&self) -> &'static str {
        use EndpointState::*;
        let (o, r) = (self.state[0], self.state[1]);
        let o_inactive = matches!(o, Inactive | Partial);
        let r_inactive = matches!(r, Inactive | Partial);
        if r == Reset {
            if matches!(o, SynSent | SynAckSent) {
                "REJ"
            } else if o_inactive {
                "RSTRH"
            } else {
                "RSTR"
            }
        } else if o == Reset {
            if r_inactive {
                "RSTOS0"
            } else {
                "RSTO"
            }
        } else if o == Closed && r == Closed {
            "SF"
        } else if o == Closed {
            if r_inactive {
                "SH"
            } else {
                "S2"
            }
        } else if r == Closed {
            if o_inactive {
                "SHR"
            } else {
                "S3"
            }
        } else if o == SynSent && r == Inactive {
            "S0"
        } else if o == Established && r == Established {
            "S1"
        } else {
            "OTH"
        }
    }

    /// Builds the flow row.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        ts: Timestamp,
        ts_end: Timestamp,
        source_index: u32,
        flow_id: u64,
        orig: (IpAddr, u16),
        resp: (IpAddr, u16),
        vlan: Option<u16>,
        close_reason: CloseReason,
    ) -> FlowRecord {
        FlowRecord {
            ts,
            ts_end,
            source_index,
            flow_id,
            community_id: String::new(),
            orig_h: orig.0,
            orig_p: orig.1,
            resp_h: resp.0,
            resp_p: resp.1,
            vlan,
            conn_state: self.conn_state(),
            history: self.history.clone(),
            close_reason,
            missed_bytes: 0,
            handshake_syn_synack_ns: match (self.first_syn, self.first_synack) {
                (Some(a), Some(b)) if b >= a => Some(b.saturating_since(a) as i64),
                _ => None,
            },
            handshake_synack_ack_ns: match (self.first_synack, self.handshake_ack) {
                (Some(a), Some(b)) => Some(b.saturating_since(a) as i64),
                _ => None,
            },
            orig: self.metrics[0],
            resp: self.metrics[1],
        }
    }
}
