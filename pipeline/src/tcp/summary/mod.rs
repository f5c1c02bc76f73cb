//! The per-connection summary: Zeek-compatible conn_state and history, byte and packet counters,
//! per-direction TCP health metrics, handshake timings and RTT; one `flows` row per connection.

pub mod rtt;
pub mod zeek;

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::analysis::{AnalysisFlags, PacketAnalysis};
use crate::tcp::compact::Codec;
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
    /// ACKs of this direction's data that gave no RTT sample because the data had been
    /// retransmitted (Karn's rule; tcptrace's "ambiguous acks").
    pub rtt_ambiguous_acks: u64,
    /// Bytes of this direction acknowledged or skipped but never captured (its share of Zeek's
    /// `missed_bytes`).
    pub missed_bytes: u64,
}

/// The per-direction counters every packet touches: kept inline in each connection.
#[derive(Clone, Copy, Debug, Default)]
struct HotMetrics {
    pkts: u64,
    ip_bytes: u64,
    payload_bytes: u64,
    unique_bytes: u64,
    /// Sequence number one past the highest payload byte seen.
    high_seq: Option<u32>,
    max_bytes_in_flight: u32,
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    timestamps: bool,
}

impl HotMetrics {
    fn codec(&mut self, c: &mut impl Codec) {
        let HotMetrics {
            pkts,
            ip_bytes,
            payload_bytes,
            unique_bytes,
            high_seq,
            max_bytes_in_flight,
            mss,
            window_scale,
            sack_permitted,
            timestamps,
        } = self;
        c.u64(pkts);
        c.u64(ip_bytes);
        c.u64(payload_bytes);
        c.u64(unique_bytes);
        c.option(high_seq, |c, s| c.seq(s));
        c.u32(max_bytes_in_flight);
        c.option(mss, |c, m| c.u16(m));
        c.option(window_scale, |c, w| c.u8(w));
        c.bool(sack_permitted);
        c.bool(timestamps);
    }
}

/// The per-direction counters of trouble. Most connections never need them, so they live in a
/// box made by the first packet that does (a retransmission, a zero window, ...): per-flow memory
/// stays small with millions of flows open.
#[derive(Clone, Copy, Debug, Default)]
struct TroubleMetrics {
    retransmissions: u64,
    fast_retransmissions: u64,
    spurious_retransmissions: u64,
    out_of_order: u64,
    lost_segments: u64,
    acked_unseen: u64,
    duplicate_acks: u64,
    zero_windows: u64,
    zero_window_probes: u64,
    keep_alives: u64,
    window_full: u64,
    zero_window_stall_ns: i64,
    rtt_ambiguous_acks: u64,
    /// Since when this direction has been advertising a zero window.
    zero_window_since: Option<Timestamp>,
}

impl TroubleMetrics {
    fn codec(&mut self, c: &mut impl Codec) {
        let TroubleMetrics {
            retransmissions,
            fast_retransmissions,
            spurious_retransmissions,
            out_of_order,
            lost_segments,
            acked_unseen,
            duplicate_acks,
            zero_windows,
            zero_window_probes,
            keep_alives,
            window_full,
            zero_window_stall_ns,
            rtt_ambiguous_acks,
            zero_window_since,
        } = self;
        for v in [
            retransmissions,
            fast_retransmissions,
            spurious_retransmissions,
            out_of_order,
            lost_segments,
            acked_unseen,
            duplicate_acks,
            zero_windows,
            zero_window_probes,
            keep_alives,
            window_full,
            rtt_ambiguous_acks,
        ] {
            c.u64(v);
        }
        c.i64(zero_window_stall_ns);
        c.option(zero_window_since, |c, t| c.time(&mut t.0));
    }
}

/// The verdicts [`TroubleMetrics`] counts.
const TROUBLE_KINDS: [EventKind; 11] = [
    EventKind::Retransmission,
    EventKind::FastRetransmission,
    EventKind::SpuriousRetransmission,
    EventKind::OutOfOrder,
    EventKind::PreviousSegmentNotCaptured,
    EventKind::AckedUnseenSegment,
    EventKind::DuplicateAck,
    EventKind::ZeroWindow,
    EventKind::ZeroWindowProbe,
    EventKind::KeepAlive,
    EventKind::WindowFull,
];

const fn trouble_mask() -> u32 {
    let mut mask = 0;
    let mut i = 0;
    while i < TROUBLE_KINDS.len() {
        mask |= AnalysisFlags::bit(TROUBLE_KINDS[i]);
        i += 1;
    }
    mask
}
const TROUBLE_MASK: u32 = trouble_mask();

impl TroubleMetrics {
    /// Counts one packet's verdicts.
    fn count_flags(&mut self, f: AnalysisFlags) {
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
    metrics: [HotMetrics; 2],
    /// Counters of trouble, per direction, boxed on first use.
    trouble: Option<Box<[TroubleMetrics; 2]>>,
    zeek: Option<ZeekConnection>,
    first_syn: Option<Timestamp>,
    first_synack: Option<Timestamp>,
    handshake_ack: Option<Timestamp>,
    rtt: [RttSketch; 2],
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

    /// Visits every field for packing (see [`crate::tcp::compact`]).
    pub(crate) fn codec(&mut self, c: &mut impl Codec) {
        let FlowSummary {
            metrics,
            trouble,
            zeek,
            first_syn,
            first_synack,
            handshake_ack,
            rtt,
            attempt_start,
            attempt_timer_spent,
        } = self;
        metrics.iter_mut().for_each(|m| m.codec(c));
        c.option(trouble, |c, t| t.iter_mut().for_each(|t| t.codec(c)));
        c.option_with(zeek, ZeekConnection::blank, |c, z| z.codec(c));
        for t in [first_syn, first_synack, handshake_ack] {
            c.option(t, |c, t| c.time(&mut t.0));
        }
        rtt.iter_mut().for_each(|r| r.codec(c));
        c.option(attempt_start, |c, t| c.time(&mut t.0));
        c.bool(attempt_timer_spent);
    }

    /// A packet whose TCP checksum is wrong: Zeek's history letter, nothing else (Zeek drops it).
    pub fn on_bad_checksum(&mut self, seg: &Segment, dir: Direction) {
        self.zeek.get_or_insert_with(|| ZeekConnection::new(seg, dir)).on_bad_checksum(dir);
    }

    /// Counts one packet sent in `dir`, with the analysis verdicts it received.
    #[inline(always)]
    pub fn on_segment(&mut self, seg: &Segment, dir: Direction, analysis: &PacketAnalysis) {
        let d = dir.index();
        let flags = seg.flags;
        {
            let m = &mut self.metrics[d];
            m.pkts += 1;
            m.ip_bytes += seg.ip_len as u64;
            m.payload_bytes += seg.payload_len as u64;
            if let Some(bif) = analysis.bytes_in_flight {
                m.max_bytes_in_flight = m.max_bytes_in_flight.max(bif);
            }
            if seg.options.timestamps.is_some() {
                m.timestamps = true;
            }
            if flags.syn() {
                m.mss = seg.options.mss.or(m.mss);
                m.window_scale = seg.options.window_scale.or(m.window_scale);
                m.sack_permitted |= seg.options.sack_permitted;
            }
        }
        if analysis.flags.0 & TROUBLE_MASK != 0 {
            self.trouble_mut()[d].count_flags(analysis.flags);
        }
        self.count_unique_bytes(seg, d, analysis);
        self.track_zero_window(seg, d);
        if let Some((data_dir, ns, karn_ok)) = analysis.rtt_sample {
            if karn_ok {
                self.rtt[data_dir.index()].add(ns);
            } else {
                self.trouble_mut()[data_dir.index()].rtt_ambiguous_acks += 1;
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
            if self.attempt_start.is_some() && !z.attempt_expired() {
                // Answered (or closed): the attempt timer can no longer end the flow.
                self.attempt_start = None;
                self.attempt_timer_spent = true;
            }
        }
    }

    fn trouble_mut(&mut self) -> &mut [TroubleMetrics; 2] {
        self.trouble.get_or_insert_with(Default::default)
    }

    fn count_unique_bytes(&mut self, seg: &Segment, d: usize, analysis: &PacketAnalysis) {
        if seg.payload_len == 0 || seg.flags.rst() {
            return;
        }
        let start = seg.seq.wrapping_add(seg.flags.syn() as u32);
        let end = start.wrapping_add(seg.payload_len);
        let m = &mut self.metrics[d];
        match m.high_seq {
            None => {
                m.unique_bytes += seg.payload_len as u64;
                m.high_seq = Some(end);
            }
            Some(high) => {
                let beyond = end.wrapping_sub(high) as i32;
                if beyond > 0 {
                    // New sequence space; the part below the old high edge is new too when the
                    // analysis says this segment fills a hole (out of order) rather than repeats.
                    let below = (seg.payload_len as i64 - beyond as i64).max(0) as u64;
                    let fills_hole = analysis.flags.has(EventKind::OutOfOrder);
                    m.unique_bytes += beyond as u64 + if fills_hole { below } else { 0 };
                    m.high_seq = Some(end);
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
            self.trouble_mut()[d].zero_window_since.get_or_insert(seg.ts);
        } else if let Some(t) = &mut self.trouble {
            if let Some(since) = t[d].zero_window_since.take() {
                t[d].zero_window_stall_ns += seg.ts.saturating_since(since) as i64;
            }
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
        let trouble = self.trouble.as_deref().copied().unwrap_or_default();
        let mut metrics = [0, 1].map(|d| {
            let (h, t) = (&self.metrics[d], &trouble[d]);
            DirectionMetrics {
                pkts: h.pkts,
                ip_bytes: h.ip_bytes,
                payload_bytes: h.payload_bytes,
                unique_bytes: h.unique_bytes,
                seq_bytes: 0,
                retransmissions: t.retransmissions,
                fast_retransmissions: t.fast_retransmissions,
                spurious_retransmissions: t.spurious_retransmissions,
                out_of_order: t.out_of_order,
                lost_segments: t.lost_segments,
                acked_unseen: t.acked_unseen,
                duplicate_acks: t.duplicate_acks,
                zero_windows: t.zero_windows,
                zero_window_probes: t.zero_window_probes,
                zero_window_stall_ns: t.zero_window_stall_ns
                    + t.zero_window_since.map_or(0, |since| ts_end.saturating_since(since) as i64),
                keep_alives: t.keep_alives,
                window_full: t.window_full,
                mss: h.mss,
                window_scale: h.window_scale,
                sack_permitted: h.sack_permitted,
                timestamps: h.timestamps,
                max_bytes_in_flight: h.max_bytes_in_flight as u64,
                rtt: self.rtt[d].stats(),
                rtt_ambiguous_acks: t.rtt_ambiguous_acks,
                missed_bytes: 0,
            }
        });
        let (mut orig, mut resp) = (orig, resp);
        let mut missed_bytes = 0;
        if let Some(z) = &self.zeek {
            let missed = z.missed_bytes_by_engine_direction();
            missed_bytes = missed[0] + missed[1];
            metrics[0].missed_bytes = missed[0];
            metrics[1].missed_bytes = missed[1];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, LinkType, TcpFlags};
    use crate::tcp::{Engine, EngineConfig};
    use crate::testing::{Conversation, PacketBuilder};

    const T0: u64 = 1_700_000_000 * 1_000_000_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn feed(engine: &mut Engine, frames: &[(u64, Vec<u8>)]) {
        let mut frames: Vec<&(u64, Vec<u8>)> = frames.iter().collect();
        frames.sort_by_key(|(t, _)| *t);
        for (i, (t, f)) in frames.into_iter().enumerate() {
            let ts = Timestamp::from_secs_nanos(t / S, t % S);
            let seg = decode(LinkType::Ethernet, f, ts, i as u64 + 1, 0).expect("decodable test frame");
            engine.handle_segment(&seg);
        }
    }

    fn flows(config: EngineConfig, frames: &[(u64, Vec<u8>)]) -> (Vec<FlowRecord>, crate::tcp::EngineCounters) {
        let mut engine = Engine::new(config);
        feed(&mut engine, frames);
        engine.finish(CloseReason::EndOfInput);
        let mut out = std::mem::take(&mut engine.output.flows);
        out.sort_by_key(|f| f.ts);
        (out, engine.counters())
    }

    fn frame(t: u64, p: PacketBuilder) -> (u64, Vec<u8>) {
        (t, p.ethernet())
    }

    #[test]
    fn clean_connection_row() {
        let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:80", 1_000, 9_000);
        c.handshake(T0, 20 * MS);
        c.client_data(T0 + 30 * MS, 100);
        c.server_ack(T0 + 40 * MS);
        c.server_data(T0 + 50 * MS, 1_000);
        c.client_ack(T0 + 65 * MS);
        c.close(T0 + 100 * MS, 20 * MS);
        let (rows, _) = flows(EngineConfig::default(), &c.frames);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.conn_state, r.history.as_str(), r.close_reason), ("SF", "ShADadFf", CloseReason::Fin));
        assert_eq!((r.orig.seq_bytes, r.resp.seq_bytes, r.missed_bytes), (100, 1_000, 0));
        assert_eq!((r.orig.pkts, r.resp.pkts), (6, 4));
        assert_eq!((r.orig.payload_bytes, r.orig.unique_bytes, r.resp.unique_bytes), (100, 100, 1_000));
        assert_eq!(r.handshake_syn_synack_ns, Some(20 * MS as i64));
        assert_eq!(r.handshake_synack_ack_ns, Some(1_000));
        assert_eq!(r.orig.mss, Some(1460));
        assert_eq!(r.orig.window_scale, Some(7));
        assert!(r.orig.sack_permitted && r.resp.sack_permitted);
        assert_eq!(r.community_id, "1:".to_owned() + &r.community_id[2..]);
        assert_eq!(
            r.community_id,
            crate::flow::community_id::tcp_community_id(("10.0.0.2".parse().unwrap(), 80), ("10.0.0.1".parse().unwrap(), 40000))
        );
        // The responder's SYN/ACK and FIN were ACKed 1 µs later, its 1000 bytes 15 ms later.
        assert_eq!(r.resp.rtt.samples, 3);
        assert_eq!((r.resp.rtt.min_ns, r.resp.rtt.max_ns), (Some(1_000), Some(15 * MS as i64)));
        assert_eq!(r.resp.rtt.p50_ns, Some(1_000));
        assert_eq!(r.ts_end.as_nanos(), T0 + 120 * MS + 1_000);
    }

    #[test]
    fn karn_rule_drops_samples_of_retransmitted_data() {
        let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:5001", 1_000, 9_000);
        c.handshake(T0, 20 * MS);
        let seq = c.client_next();
        c.client_data(T0 + 30 * MS, 100);
        let again = c.from_client().seq(seq).flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(100);
        c.push(T0 + 330 * MS, again);
        c.server_ack(T0 + 340 * MS);
        let (rows, _) = flows(EngineConfig::default(), &c.frames);
        let r = &rows[0];
        // The SYN gave a sample (20 ms); the retransmitted request none.
        assert_eq!(r.orig.rtt.samples, 1);
        assert_eq!(r.orig.rtt.max_ns, Some(20 * MS as i64));
        assert_eq!(r.orig.retransmissions, 1);
        assert_eq!((r.orig.rtt_ambiguous_acks, r.resp.rtt_ambiguous_acks), (1, 0));
        assert_eq!((r.orig.payload_bytes, r.orig.unique_bytes), (200, 100));
        assert_eq!(r.history, "ShADTa");
    }

    #[test]
    fn missed_bytes_per_direction() {
        let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:5001", 1_000, 9_000);
        c.handshake(T0, 10 * MS);
        c.client_data(T0 + 20 * MS, 100);
        // 300 bytes of the server's are never captured, then 200 are, and the client ACKs all.
        let unseen = c.from_server().seq(9_001 + 300).flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(200);
        c.push(T0 + 30 * MS, unseen);
        let ack = c.from_client().ack(9_001 + 500).flags(TcpFlags::ACK);
        c.push(T0 + 40 * MS, ack);
        let (rows, _) = flows(EngineConfig::default(), &c.frames);
        let r = &rows[0];
        assert_eq!((r.missed_bytes, r.orig.missed_bytes, r.resp.missed_bytes), (300, 0, 300));
        assert_eq!(r.resp.seq_bytes, 500);
        assert_eq!(r.history, "ShADdg");
    }

    #[test]
    fn zero_window_stall_time_per_direction() {
        let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:5001", 1_000, 9_000);
        c.handshake(T0, 10 * MS);
        c.server_data(T0 + 20 * MS, 1_000);
        let zero = c.from_client().flags(TcpFlags::ACK).window(0);
        c.push(T0 + 30 * MS, zero);
        let update = c.from_client().flags(TcpFlags::ACK).window(512);
        c.push(T0 + 2_030 * MS, update);
        // A second stall that lasts to the end of the flow.
        let zero = c.from_client().flags(TcpFlags::ACK).window(0);
        c.push(T0 + 3_000 * MS, zero);
        c.server_data(T0 + 3_500 * MS, 1);
        let (rows, _) = flows(EngineConfig::default(), &c.frames);
        let r = &rows[0];
        assert_eq!(r.orig.zero_window_stall_ns, (2_000 + 500) * MS as i64);
        assert_eq!(r.resp.zero_window_stall_ns, 0);
        assert_eq!(r.history, "ShAdW");
    }

    #[test]
    fn close_linger_then_a_new_row() {
        let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:5001", 1_000, 9_000);
        c.handshake(T0, 10 * MS);
        c.close(T0 + 100 * MS, 10 * MS);
        let mut frames = c.frames.clone();
        // A late ACK within the linger joins the flow; a packet after it starts a new row.
        let late = PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_002).ack(9_002).window(512);
        frames.push(frame(T0 + 2 * S, late.clone()));
        frames.push(frame(T0 + 9 * S, late));
        let (rows, counters) = flows(EngineConfig::default(), &frames);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].close_reason, rows[0].orig.pkts), (CloseReason::Fin, 4 + 1));
        assert_eq!((rows[1].close_reason, rows[1].history.as_str()), (CloseReason::EndOfInput, "A"));
        assert_eq!(counters.flows_created, 2);
    }

    #[test]
    fn idle_timeout_is_configurable_and_counted() {
        let config = EngineConfig { idle_timeout_ns: 10 * S, ..EngineConfig::default() };
        let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:5001", 1_000, 9_000);
        c.handshake(T0, 10 * MS);
        c.client_data(T0 + 11 * S, 10);
        let (rows, counters) = flows(config, &c.frames);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].close_reason, CloseReason::IdleTimeout);
        assert_eq!(rows[0].conn_state, "S1");
        assert_eq!((rows[1].conn_state, rows[1].history.as_str()), ("OTH", "D"));
        assert_eq!(counters.flows_idle_expired, 1);
    }

    #[test]
    fn unanswered_attempt_ends_after_the_attempt_timeout() {
        let syn = PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_000).flags(TcpFlags::SYN);
        let data = PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_001).ack(1).payload_len(10);
        let frames = vec![frame(T0, syn.clone()), frame(T0 + 3 * S, data.clone()), frame(T0 + 6 * S, data)];
        let zeek = EngineConfig { attempt_timeout_ns: 5 * S, ..EngineConfig::default() };
        let (rows, _) = flows(zeek, &frames);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].conn_state, rows[0].history.as_str()), ("S0", "SD"));
        assert_eq!(rows[0].close_reason, CloseReason::AttemptTimeout);
        // Disabled (the default): one row.
        let config = EngineConfig::default();
        let frames = vec![frame(T0, syn), frame(T0 + 6 * S, PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_001).ack(1))];
        let (rows, _) = flows(config, &frames);
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn full_table_evicts_the_longest_idle_flow() {
        let config = EngineConfig { max_flows: 2, ..EngineConfig::default() };
        let mut frames = Vec::new();
        for (i, port) in [40001u16, 40002, 40003].iter().enumerate() {
            let mut c = Conversation::new(&format!("10.0.0.1:{port}"), "10.0.0.2:5001", 1_000, 9_000);
            c.handshake(T0 + i as u64 * S, 10 * MS);
            frames.extend(c.frames);
        }
        // Flow 1 is busy again before flow 3 arrives, so flow 2 is the longest idle.
        let busy = PacketBuilder::v4("10.0.0.1:40001", "10.0.0.2:5001").seq(1_001).ack(9_001).payload_len(5);
        frames.push(frame(T0 + 1_500 * MS, busy));
        let (rows, counters) = flows(config, &frames);
        assert_eq!(counters.flows_evicted, 1);
        let evicted: Vec<u16> = rows.iter().filter(|r| r.close_reason == CloseReason::Evicted).map(|r| r.orig_p).collect();
        assert_eq!(evicted, vec![40002]);
        assert_eq!(rows.iter().filter(|r| r.close_reason == CloseReason::EndOfInput).count(), 2);
    }

    #[test]
    fn eviction_follows_idleness_not_the_next_timer() {
        // Flow A is quiet since T0; flow B's SYN (T0 + 1.9 s) has a timer due soon (the attempt
        // timeout). Flow C needs room: A, the longest idle, goes.
        let config = EngineConfig { max_flows: 2, attempt_timeout_ns: 5 * S, ..EngineConfig::default() };
        let mut a = Conversation::new("10.0.0.1:40001", "10.0.0.2:5001", 1_000, 9_000);
        a.handshake(T0, 10 * MS);
        let mut frames = a.frames;
        let syn = PacketBuilder::v4("10.0.0.1:40002", "10.0.0.2:5001").seq(7).flags(TcpFlags::SYN);
        frames.push(frame(T0 + 1_900 * MS, syn));
        let syn = PacketBuilder::v4("10.0.0.1:40003", "10.0.0.2:5001").seq(7).flags(TcpFlags::SYN);
        frames.push(frame(T0 + 2 * S, syn));
        let (rows, counters) = flows(config, &frames);
        assert_eq!(counters.flows_evicted, 1);
        let evicted: Vec<u16> = rows.iter().filter(|r| r.close_reason == CloseReason::Evicted).map(|r| r.orig_p).collect();
        assert_eq!(evicted, vec![40001]);
    }

    #[test]
    fn port_reuse_starts_a_new_row() {
        let mut frames = Vec::new();
        for g in 0..2u32 {
            let mut c = Conversation::new("10.0.0.1:40000", "10.0.0.2:5001", 1_000 + g * 50_000, 9_000);
            c.handshake(T0 + g as u64 * S, 10 * MS);
            c.close(T0 + g as u64 * S + 100 * MS, 10 * MS);
            frames.extend(c.frames);
        }
        let (rows, _) = flows(EngineConfig::default(), &frames);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].close_reason, CloseReason::PortReuse);
        assert_eq!((rows[1].close_reason, rows[1].conn_state), (CloseReason::Fin, "SF"));
    }

    #[test]
    fn a_lone_syn_ack_row_keeps_zeeks_orientation() {
        // From a port Zeek does not know as a server, nothing but the SYN/ACK and a RST from its
        // receiver: Zeek keeps the SYN/ACK sender as originator (a stealth-scan reply).
        let synack = PacketBuilder::v4("10.0.0.2:5001", "10.0.0.1:40000").seq(9_000).flags(TcpFlags::SYN).ack(1_001);
        let rst = PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_001).flags(TcpFlags::RST);
        let (rows, _) = flows(EngineConfig::default(), &[frame(T0, synack), frame(T0 + MS, rst)]);
        let r = &rows[0];
        assert_eq!((r.orig_h.to_string(), r.orig_p), ("10.0.0.2".to_owned(), 5001));
        assert_eq!((r.conn_state, r.history.as_str()), ("REJ", "Hr"));
        assert_eq!((r.orig.pkts, r.resp.pkts), (1, 1));
    }

    #[test]
    fn half_closed_one_sided_flow_lingers_then_closes() {
        let data = PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_000).ack(1).payload_len(10);
        let fin = PacketBuilder::v4("10.0.0.1:40000", "10.0.0.2:5001").seq(1_010).ack(1).flags(TcpFlags::FIN | TcpFlags::ACK);
        let (rows, _) = flows(EngineConfig::default(), &[frame(T0, data.clone()), frame(T0 + MS, fin), frame(T0 + 10 * S, data)]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].conn_state, rows[0].history.as_str(), rows[0].close_reason), ("SH", "DF", CloseReason::FinOrig));
    }
}
