//! Connection diagnostics: one event per connection and story (refused, reset, handshake timeout,
//! half-open, RTO backoff, zero-window stall, keep-alive timeout, invalid flags, mid-stream start).
//!
//! Stories decided on a packet carry that packet's time. Stories decided later (at flow end or by
//! the handshake timer) carry a time taken from packet data — the deadline, or the flow's last
//! packet — never the engine's `now`, so the output does not depend on how packet time advanced
//! on a worker. `ref_packet` points at the packet where the story began.

use crate::decode::{Segment, TcpFlags};
use crate::flow::Direction;
use crate::tcp::analysis::PacketAnalysis;
use crate::tcp::events::{Event, EventKind};
use crate::tcp::seq::seq_gt;
use crate::tcp::summary::CloseReason;
use crate::time::Timestamp;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Thresholds of the diagnostics, all in packet time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagnosticsConfig {
    /// SYNs unanswered for this long are a `handshake_timeout` even before the flow ends.
    pub handshake_timeout_ns: u64,
    /// One side sending with nothing back for this long is `half_open`.
    pub half_open_ns: u64,
    /// Unanswered keep-alives in a row before `keep_alive_timeout` can fire.
    pub keep_alive_unanswered: u32,
    /// Timeout retransmissions of one segment before they are an `rto_backoff`.
    pub rto_backoff_min_retransmissions: u32,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        DiagnosticsConfig {
            handshake_timeout_ns: 30_000_000_000,
            half_open_ns: 30_000_000_000,
            keep_alive_unanswered: 3,
            rto_backoff_min_retransmissions: 2,
        }
    }
}

/// Intervals kept for the `details` of a story (later ones are counted, not listed).
const MAX_INTERVALS: usize = 10;

/// A short list of intervals in microseconds, without heap allocation (kept small: one lives
/// in every connection).
#[derive(Clone, Copy, Debug, Default)]
struct Intervals {
    len: u8,
    micros: [u32; MAX_INTERVALS],
}

impl Intervals {
    fn push(&mut self, ns: u64) {
        if (self.len as usize) < MAX_INTERVALS {
            self.micros[self.len as usize] = (ns / 1_000).min(u32::MAX as u64) as u32;
            self.len += 1;
        }
    }
    /// `1.000s,2.000s,…` (milliseconds precision).
    fn render(&self) -> String {
        let mut s = String::new();
        for (i, us) in self.micros[..self.len as usize].iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{}.{:03}s", us / 1_000_000, (us % 1_000_000) / 1_000);
        }
        s
    }
}

/// Successive timeout retransmissions of one segment, per direction.
#[derive(Clone, Copy, Debug, Default)]
struct Backoff {
    active: bool,
    seq: u32,
    original_packet: u64,
    original_ts: u64,
    last_packet: u64,
    last_ts: u64,
    retransmissions: u32,
    intervals: Intervals,
}

/// A zero window advertised by one side, until it opens.
#[derive(Clone, Copy, Debug, Default)]
struct Stall {
    active: bool,
    start_packet: u64,
    start_ts: u64,
    probes: u32,
}

/// Keep-alives in a row from one side with nothing back.
#[derive(Clone, Copy, Debug, Default)]
struct KeepAliveRun {
    count: u32,
    first_packet: u64,
    first_ts: u64,
}

/// Packets one side sent since the other side's last packet.
#[derive(Clone, Copy, Debug, Default)]
struct Silence {
    count: u32,
    first_packet: u64,
    first_ts: u64,
}

/// Per-connection diagnostic state.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    packets_seen: u64,
    /// Originator's (address, port) and responder's, from the first packet.
    endpoints: Option<((IpAddr, u16), (IpAddr, u16))>,
    syns_sent: u32,
    first_syn_packet: u64,
    first_syn_ts: Option<Timestamp>,
    last_syn_ts: u64,
    syn_intervals: Intervals,
    /// The responder has sent something.
    answered: bool,
    handshake_decided: bool,
    established: bool,
    last_packet: u64,
    last_ts: u64,
    last_ts_dir: [Option<u64>; 2],
    last_data: Option<(Direction, u64, u64)>,
    fin_seen: [bool; 2],
    rst_seen: bool,
    half_open_reported: bool,
    silence: [Silence; 2],
    backoff: [Backoff; 2],
    stall: [Stall; 2],
    keep_alive: [KeepAliveRun; 2],
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
        analysis: &PacketAnalysis,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        // A handshake deadline that passed before this packet is decided first.
        if let Some(deadline) = self.handshake_deadline(config) {
            if seg.ts >= deadline {
                self.handshake_timeout(deadline, flow_id, out);
            }
        }
        let flags = seg.flags;
        let d = dir.index();
        let peer = dir.reverse().index();
        let now = seg.ts.as_nanos();
        if self.packets_seen == 0 {
            let (a, b) = ((seg.src_ip, seg.src_port), (seg.dst_ip, seg.dst_port));
            self.endpoints = Some(if dir == Direction::Orig { (a, b) } else { (b, a) });
            if !flags.syn() {
                out.push(
                    Event::tcp_packet(EventKind::MidstreamStart, seg, flow_id, dir)
                        .with_detail("first_flags", flags.letters()),
                );
            }
        }
        self.packets_seen += 1;
        if let Some(combination) = invalid_combination(flags) {
            out.push(
                Event::tcp_packet(EventKind::InvalidFlags, seg, flow_id, dir)
                    .with_detail("combination", combination)
                    .with_detail("flags", flags.letters()),
            );
        }

        // Handshake: SYNs from the originator, the first answer from the responder.
        if flags.pure_syn() && dir == Direction::Orig {
            if self.syns_sent == 0 {
                self.first_syn_packet = seg.packet_number;
                self.first_syn_ts = Some(seg.ts);
            } else {
                self.syn_intervals.push(now.saturating_sub(self.last_syn_ts));
            }
            self.syns_sent += 1;
            self.last_syn_ts = now;
        }
        if dir == Direction::Resp && !self.answered {
            self.answered = true;
            if flags.rst() && !flags.syn() && self.syns_sent > 0 && !self.handshake_decided {
                let first = self.first_syn_ts.unwrap_or(seg.ts);
                out.push(
                    Event::tcp_packet(EventKind::ConnectionRefused, seg, flow_id, dir)
                        .with_count(self.syns_sent as u64)
                        .with_ref(self.first_syn_packet)
                        .with_value_ns(seg.ts.saturating_since(first)),
                );
            }
            self.handshake_decided = true;
        }
        let valid = invalid_combination(flags).is_none();
        if valid && (flags.syn_ack() || (!flags.syn() && !flags.rst() && self.packets_seen > 1 && self.syns_sent == 0)) {
            self.established = true;
        }

        // Resets and half-open connections.
        if valid && flags.rst() && !self.rst_seen && self.last_packet != 0 {
            self.rst_seen = true;
            if self.established {
                self.connection_reset(seg, dir, flow_id, analysis, out);
                let unclosed = !self.fin_seen[0] && !self.fin_seen[1];
                if let Some((data_dir, data_packet, data_ts)) = self.last_data {
                    if unclosed && data_dir != dir && self.last_packet == data_packet && !self.half_open_reported {
                        self.half_open_reported = true;
                        let silent = self.last_ts_dir[d].map(|t| now.saturating_sub(t)).unwrap_or(0);
                        out.push(
                            Event::tcp_packet(EventKind::HalfOpen, seg, flow_id, dir)
                                .with_ref(data_packet)
                                .with_value_ns(silent)
                                .with_detail("reason", "rst_answers_data")
                                .with_detail("lost_state", dir.as_str())
                                .with_detail("data_sent_ns_before", now.saturating_sub(data_ts)),
                        );
                    }
                }
            }
        }
        // One side keeps sending what needs an answer (data, retransmissions, keep-alives) while
        // the other is silent.
        let f = analysis.flags;
        let demands_answer = seg.payload_len > 0 || f.has(EventKind::KeepAlive) || f.any_retransmission();
        self.silence[peer] = Silence::default();
        if demands_answer {
            let s = &mut self.silence[d];
            if s.count == 0 {
                s.first_packet = seg.packet_number;
                s.first_ts = now;
            }
            s.count += 1;
        }
        let s = self.silence[d];
        if demands_answer
            && self.established
            && !self.half_open_reported
            && self.last_ts_dir[peer].is_some()
            && !self.fin_seen[peer]
            && !self.rst_seen
            && s.count >= 2
            && now.saturating_sub(s.first_ts) >= config.half_open_ns
        {
            self.half_open_reported = true;
            out.push(
                Event::tcp_packet(EventKind::HalfOpen, seg, flow_id, dir)
                    .with_ref(s.first_packet)
                    .with_value_ns(now.saturating_sub(s.first_ts))
                    .with_count(s.count as u64)
                    .with_detail("reason", "peer_silent")
                    .with_detail("silent_side", dir.reverse().as_str()),
            );
        }

        // RTO backoff of this side's segment; the peer's ACK past it ends the story.
        if f.has(EventKind::Retransmission) {
            let b = &mut self.backoff[d];
            if b.active && b.seq == seg.seq {
                b.intervals.push(now.saturating_sub(b.last_ts));
                b.retransmissions += 1;
                b.last_ts = now;
                b.last_packet = seg.packet_number;
            } else {
                self.flush_backoff(dir, flow_id, config, out);
                let rto = analysis.rto_ns.unwrap_or(0);
                let mut intervals = Intervals::default();
                intervals.push(rto);
                self.backoff[d] = Backoff {
                    active: true,
                    seq: seg.seq,
                    original_packet: analysis.rto_ref_packet.unwrap_or(0),
                    original_ts: now.saturating_sub(rto),
                    last_packet: seg.packet_number,
                    last_ts: now,
                    retransmissions: 1,
                    intervals,
                };
            }
        }
        let pb = self.backoff[peer];
        if pb.active && flags.ack() && seq_gt(seg.ack, pb.seq) {
            self.flush_backoff(dir.reverse(), flow_id, config, out);
        }

        // Zero-window stall of this side; the peer's probes are counted.
        if f.has(EventKind::ZeroWindow) && !self.stall[d].active {
            self.stall[d] = Stall { active: true, start_packet: seg.packet_number, start_ts: now, probes: 0 };
        } else if self.stall[d].active && seg.window != 0 && !flags.any(TcpFlags::RST | TcpFlags::SYN) {
            let st = self.stall[d];
            self.stall[d].active = false;
            out.push(
                Event::tcp_packet(EventKind::ZeroWindowStall, seg, flow_id, dir)
                    .with_ref(st.start_packet)
                    .with_value_ns(now.saturating_sub(st.start_ts))
                    .with_count(st.probes as u64)
                    .with_detail("ended", "window_opened"),
            );
        }
        if f.has(EventKind::ZeroWindowProbe) && self.stall[peer].active {
            self.stall[peer].probes += 1;
        }

        // Keep-alives in a row left unanswered, then a close by the prober.
        self.keep_alive[peer] = KeepAliveRun::default();
        let run = self.keep_alive[d];
        if (flags.rst() || flags.fin()) && run.count >= config.keep_alive_unanswered.max(1) {
            out.push(
                Event::tcp_packet(EventKind::KeepAliveTimeout, seg, flow_id, dir)
                    .with_ref(run.first_packet)
                    .with_count(run.count as u64)
                    .with_value_ns(now.saturating_sub(run.first_ts))
                    .with_detail("closed_by", if flags.rst() { "rst" } else { "fin" }),
            );
            self.keep_alive[d] = KeepAliveRun::default();
        } else if f.has(EventKind::KeepAlive) {
            let k = &mut self.keep_alive[d];
            if k.count == 0 {
                k.first_packet = seg.packet_number;
                k.first_ts = now;
            }
            k.count += 1;
        } else {
            self.keep_alive[d] = KeepAliveRun::default();
        }

        if flags.fin() {
            self.fin_seen[d] = true;
        }
        if seg.payload_len > 0 && !flags.rst() {
            self.last_data = Some((dir, seg.packet_number, now));
        }
        self.last_packet = seg.packet_number;
        self.last_ts = self.last_ts.max(now);
        self.last_ts_dir[d] = Some(now);
    }

    /// The earliest packet time at which a deferred diagnostic could be decided, if any.
    pub fn deadline(&self, config: &DiagnosticsConfig) -> Option<Timestamp> {
        self.handshake_deadline(config)
    }

    fn handshake_deadline(&self, config: &DiagnosticsConfig) -> Option<Timestamp> {
        match self.first_syn_ts {
            Some(first) if !self.answered && !self.handshake_decided => {
                Some(first.plus_nanos(config.handshake_timeout_ns))
            }
            _ => None,
        }
    }

    /// Packet time has reached `now` with no packet on this connection. Events decided here
    /// carry the deadline's time, not `now`.
    pub fn on_timeout(&mut self, now: Timestamp, flow_id: u64, config: &DiagnosticsConfig, out: &mut Vec<Event>) {
        if let Some(deadline) = self.handshake_deadline(config) {
            if now >= deadline {
                self.handshake_timeout(deadline, flow_id, out);
            }
        }
    }

    /// The flow ends: emit deferred diagnostics, timed at the flow's last packet `end`.
    pub fn on_flow_end(
        &mut self,
        end: Timestamp,
        reason: CloseReason,
        flow_id: u64,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        if let Some(deadline) = self.handshake_deadline(config) {
            // One SYN cut off by the end of the capture is no timeout yet.
            let cut_off = matches!(reason, CloseReason::EndOfInput | CloseReason::Shutdown) && self.syns_sent < 2;
            if !cut_off || end >= deadline {
                self.handshake_timeout(deadline.min(end), flow_id, out);
            }
        }
        for dir in [Direction::Orig, Direction::Resp] {
            self.flush_backoff(dir, flow_id, config, out);
            let d = dir.index();
            let st = self.stall[d];
            if st.active {
                self.stall[d].active = false;
                let mut e = self
                    .story_event(EventKind::ZeroWindowStall, end, dir, flow_id)
                    .with_ref(st.start_packet)
                    .with_value_ns(end.as_nanos().saturating_sub(st.start_ts))
                    .with_count(st.probes as u64)
                    .with_detail("ended", "flow_end");
                e.details.push((Cow::Borrowed("close_reason"), reason.as_str().to_owned()));
                out.push(e);
            }
            let run = self.keep_alive[d];
            if run.count >= config.keep_alive_unanswered.max(1) {
                self.keep_alive[d] = KeepAliveRun::default();
                out.push(
                    self.story_event(EventKind::KeepAliveTimeout, end, dir, flow_id)
                        .with_ref(run.first_packet)
                        .with_count(run.count as u64)
                        .with_value_ns(end.as_nanos().saturating_sub(run.first_ts))
                        .with_detail("closed_by", "flow_end"),
                );
            }
        }
    }

    fn handshake_timeout(&mut self, at: Timestamp, flow_id: u64, out: &mut Vec<Event>) {
        self.handshake_decided = true;
        let first = self.first_syn_ts.map(|t| t.as_nanos()).unwrap_or(0);
        let mut e = self
            .story_event(EventKind::HandshakeTimeout, at, Direction::Orig, flow_id)
            .with_ref(self.first_syn_packet)
            .with_count(self.syns_sent as u64)
            .with_value_ns(self.last_syn_ts.saturating_sub(first));
        e.details.push((Cow::Borrowed("intervals"), self.syn_intervals.render()));
        out.push(e);
    }

    fn connection_reset(
        &self,
        seg: &Segment,
        dir: Direction,
        flow_id: u64,
        analysis: &PacketAnalysis,
        out: &mut Vec<Event>,
    ) {
        let idle = seg.ts.as_nanos().saturating_sub(self.last_ts);
        let fin_before = match self.fin_seen {
            [true, true] => "both",
            [true, false] => "orig",
            [false, true] => "resp",
            [false, false] => "none",
        };
        let [orig, resp] = analysis.unacked_bytes;
        let mut e = Event::tcp_packet(EventKind::ConnectionReset, seg, flow_id, dir)
            .with_value_ns(idle)
            .with_count(orig.unwrap_or(0) as u64 + resp.unwrap_or(0) as u64)
            .with_detail("by", dir.as_str())
            .with_detail("fin_before", fin_before)
            .with_detail("idle_ns", idle);
        if self.last_packet != 0 {
            e = e.with_ref(self.last_packet);
        }
        if let Some(b) = orig {
            e = e.with_detail("unacked_orig_bytes", b);
        }
        if let Some(b) = resp {
            e = e.with_detail("unacked_resp_bytes", b);
        }
        out.push(e);
    }

    fn flush_backoff(&mut self, dir: Direction, flow_id: u64, config: &DiagnosticsConfig, out: &mut Vec<Event>) {
        let b = self.backoff[dir.index()];
        self.backoff[dir.index()].active = false;
        if !b.active || b.retransmissions < config.rto_backoff_min_retransmissions.max(1) {
            return;
        }
        let mut e = self
            .story_event(EventKind::RtoBackoff, Timestamp(b.last_ts), dir, flow_id)
            .with_count(b.retransmissions as u64)
            .with_value_ns(b.last_ts.saturating_sub(b.original_ts));
        if b.original_packet != 0 {
            e = e.with_ref(b.original_packet);
        }
        e.packet_number = Some(b.last_packet);
        e.seq = Some(b.seq);
        e.details.push((Cow::Borrowed("intervals"), b.intervals.render()));
        out.push(e);
    }

    /// An event about the connection rather than one packet, for the side `dir`.
    fn story_event(&self, kind: EventKind, ts: Timestamp, dir: Direction, flow_id: u64) -> Event {
        let (src, dst) = match (self.endpoints, dir) {
            (Some((o, r)), Direction::Orig) => (Some(o), Some(r)),
            (Some((o, r)), Direction::Resp) => (Some(r), Some(o)),
            (None, _) => (None, None),
        };
        Event {
            ts,
            source_index: 0,
            packet_number: None,
            flow_id,
            detector: Cow::Borrowed("tcp"),
            kind: Cow::Borrowed(kind.as_str()),
            severity: kind.severity(),
            direction: Some(dir),
            src_ip: src.map(|s| s.0),
            src_port: src.map(|s| s.1),
            dst_ip: dst.map(|s| s.0),
            dst_port: dst.map(|s| s.1),
            seq: None,
            ack: None,
            payload_len: None,
            ref_packet: None,
            value_ns: None,
            count: None,
            details: Vec::new(),
        }
    }
}

/// The name of an impossible flag combination, if `flags` is one.
pub fn invalid_combination(flags: TcpFlags) -> Option<&'static str> {
    use TcpFlags as F;
    let core = flags.0 & (F::FIN | F::SYN | F::RST | F::PSH | F::ACK | F::URG);
    Some(if core == F::FIN | F::SYN | F::RST | F::PSH | F::ACK | F::URG {
        "all"
    } else if core & (F::FIN | F::PSH | F::URG) == F::FIN | F::PSH | F::URG && !flags.ack() {
        "xmas"
    } else if flags.syn() && flags.fin() {
        "syn_fin"
    } else if flags.syn() && flags.rst() {
        "syn_rst"
    } else if flags.fin() && flags.rst() {
        "fin_rst"
    } else if core == 0 {
        "null"
    } else if flags.fin() && !flags.ack() {
        "fin_without_ack"
    } else {
        return None;
    })
}
