//! The per-connection summary: Zeek-compatible conn_state and history, byte and packet counters,
//! per-direction TCP health metrics, handshake timings and RTT; one `flows` row per connection.

pub mod rtt;
pub mod zeek;

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::analysis::PacketAnalysis;
use crate::tcp::events::EventKind;
use crate::time::Timestamp;
use rtt::RttSketch;
use std::net::IpAddr;
use zeek::ZeekConnection;

/// Why a flow row was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Both sides sent FIN.
    Fin,
    /// The originator sent FIN and the responder never sent anything (Zeek's half-closed `SH`).
    FinOrig,
    /// The responder sent FIN and the originator never sent anything (`SHR`).
    FinResp,
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
    /// An unanswered connection attempt ended (Zeek's `tcp_attempt_delay`, 5 s after the SYN).
    AttemptTimeout,
    /// Live capture was stopped (SIGINT/SIGTERM).
    Shutdown,
}

impl CloseReason {
    /// The name written to the `close_reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::FinOrig => "fin_orig",
            CloseReason::FinResp => "fin_resp",
            CloseReason::AttemptTimeout => "attempt_timeout",
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

/// Accumulates a connection's summary as packets arrive.
#[derive(Clone, Debug, Default)]
pub struct FlowSummary {
    metrics: [DirectionMetrics; 2],
    zeek: Option<ZeekConnection>,
    first_syn: Option<Timestamp>,
    first_synack: Option<Timestamp>,
    handshake_ack: Option<Timestamp>,
    rtt: [RttSketch; 2],
    /// Sequence number one past the highest payload byte seen, per direction.
    high_seq: [Option<u32>; 2],
    /// Since when each direction has been advertising a zero window.
    zero_window_since: [Option<Timestamp>; 2],
    /// Start of a pending connection attempt (the originator's first SYN), until it is answered
    /// or its timer has run.
    attempt_start: Option<Timestamp>,
    /// The attempt timer ran (Zeek runs it once per connection).
    attempt_timer_spent: bool,
}

impl FlowSummary {
    /// An empty summary.
    pub fn new() -> Self {
        FlowSummary::default()
    }

    /// Counts one packet sent in `dir`, with the analysis verdicts it received.
    pub fn on_segment(&mut self, seg: &Segment, dir: Direction, analysis: &PacketAnalysis) {
        let d = dir.index();
        let flags = seg.flags;
        {
            let m = &mut self.metrics[d];
            m.pkts += 1;
            m.ip_bytes += seg.ip_len as u64;
            m.payload_bytes += seg.payload_len as u64;
            m.count_flags(analysis);
            if seg.options.timestamps.is_some() {
                m.timestamps = true;
            }
            if flags.syn() {
                m.mss = seg.options.mss.or(m.mss);
                m.window_scale = seg.options.window_scale.or(m.window_scale);
                m.sack_permitted |= seg.options.sack_permitted;
            }
        }
        self.count_unique_bytes(seg, d, analysis);
        self.track_zero_window(seg, d);
        if let Some((data_dir, ns, karn_ok)) = analysis.rtt_sample {
            if karn_ok {
                self.rtt[data_dir.index()].add(ns);
            }
        }

        if flags.pure_syn() {
            self.first_syn.get_or_insert(seg.ts);
        } else if flags.syn_ack() {
            self.first_synack.get_or_insert(seg.ts);
        } else if flags.ack()
            && !flags.rst()
            && !flags.fin()
            && dir == Direction::Orig
            && self.first_synack.is_some()
            && self.handshake_ack.is_none()
        {
            self.handshake_ack = Some(seg.ts);
        }

        match &mut self.zeek {
            Some(z) => z.on_segment(seg, dir),
            None => {
                let mut z = ZeekConnection::new(seg, dir);
                z.on_segment(seg, dir);
                self.zeek = Some(z);
            }
        }
        if let Some(z) = &self.zeek {
            if self.attempt_start.is_none() && !self.attempt_timer_spent {
                self.attempt_start = z.attempt_started();
            }
        }
    }

    fn count_unique_bytes(&mut self, seg: &Segment, d: usize, analysis: &PacketAnalysis) {
        if seg.payload_len == 0 || seg.flags.rst() {
            return;
        }
        let start = seg.seq.wrapping_add(seg.flags.syn() as u32);
        let end = start.wrapping_add(seg.payload_len);
        let m = &mut self.metrics[d];
        match self.high_seq[d] {
            None => {
                m.unique_bytes += seg.payload_len as u64;
                self.high_seq[d] = Some(end);
            }
            Some(high) => {
                let beyond = end.wrapping_sub(high) as i32;
                if beyond > 0 {
                    // New sequence space; the part below the old high edge is new too when the
                    // analysis says this segment fills a hole (out of order) rather than repeats.
                    let below = (seg.payload_len as i64 - beyond as i64).max(0) as u64;
                    let fills_hole = analysis.flags.has(EventKind::OutOfOrder);
                    m.unique_bytes += beyond as u64 + if fills_hole { below } else { 0 };
                    self.high_seq[d] = Some(end);
                } else if analysis.flags.has(EventKind::OutOfOrder) {
                    m.unique_bytes += seg.payload_len as u64;
                }
            }
        }
    }

    fn track_zero_window(&mut self, seg: &Segment, d: usize) {
        if seg.flags.rst() || seg.flags.syn() {
            return;
        }
        if seg.window == 0 {
            self.zero_window_since[d].get_or_insert(seg.ts);
        } else if let Some(since) = self.zero_window_since[d].take() {
            self.metrics[d].zero_window_stall_ns += seg.ts.saturating_since(since) as i64;
        }
    }

    /// Zeek's `conn_state`.
    pub fn conn_state(&self) -> &'static str {
        self.zeek.as_ref().map_or("OTH", ZeekConnection::conn_state)
    }

    /// Zeek's `history`.
    pub fn history(&self) -> &str {
        self.zeek.as_ref().map_or("", ZeekConnection::history)
    }

    /// Whether Zeek would consider the connection finished (both sides closed, a RST, or one
    /// side closed while the other never sent anything), so only a short linger remains.
    pub fn is_closed(&self) -> bool {
        self.zeek.as_ref().is_some_and(ZeekConnection::close_complete)
    }

    /// The originator's first SYN, while the attempt timer is pending.
    pub fn attempt_start(&self) -> Option<Timestamp> {
        self.attempt_start
    }

    /// Runs the attempt timer: true when the attempt is still unanswered (the flow ends as Zeek's
    /// `S0`); otherwise the timer is spent and never runs again.
    pub fn attempt_timer_expires(&mut self) -> bool {
        let expired = self.zeek.as_ref().is_some_and(ZeekConnection::attempt_expired);
        if !expired {
            self.attempt_start = None;
            self.attempt_timer_spent = true;
        }
        expired
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
        let mut metrics = self.metrics;
        for (d, m) in metrics.iter_mut().enumerate() {
            if let Some(since) = self.zero_window_since[d] {
                m.zero_window_stall_ns += ts_end.saturating_since(since) as i64;
            }
            m.rtt = self.rtt[d].stats();
        }
        let (mut orig, mut resp) = (orig, resp);
        let mut missed_bytes = 0;
        if let Some(z) = &self.zeek {
            let missed = z.missed_bytes_by_engine_direction();
            missed_bytes = missed[0] + missed[1];
            if z.flipped_against_engine() {
                // Zeek kept the SYN/ACK sender as the originator (no reply traffic followed):
                // write the row in Zeek's orientation.
                std::mem::swap(&mut orig, &mut resp);
                metrics.swap(0, 1);
            }
            let (orig_bytes, resp_bytes) = z.sizes();
            metrics[0].seq_bytes = orig_bytes;
            metrics[1].seq_bytes = resp_bytes;
        }
        FlowRecord {
            ts,
            ts_end,
            source_index,
            flow_id,
            community_id: crate::flow::community_id::tcp_community_id(orig, resp),
            orig_h: orig.0,
            orig_p: orig.1,
            resp_h: resp.0,
            resp_p: resp.1,
            vlan,
            conn_state: self.conn_state(),
            history: self.history().to_owned(),
            close_reason,
            missed_bytes,
            handshake_syn_synack_ns: match (self.first_syn, self.first_synack) {
                (Some(a), Some(b)) if b >= a => Some(b.saturating_since(a) as i64),
                _ => None,
            },
            handshake_synack_ack_ns: match (self.first_synack, self.handshake_ack) {
                (Some(a), Some(b)) => Some(b.saturating_since(a) as i64),
                _ => None,
            },
            orig: metrics[0],
            resp: metrics[1],
        }
    }
}
