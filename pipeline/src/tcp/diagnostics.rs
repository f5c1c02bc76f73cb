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
    /// The input the connection came from (for events not tied to one packet).
    source_index: u32,
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
    /// The handshake timer ran with nothing to decide yet (one SYN): no more timer for it.
    handshake_timer_spent: bool,
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
        // A handshake deadline that passed before this packet is decided first: the flow's own
        // packets reach past it.
        if let Some(deadline) = self.handshake_deadline(config) {
            if seg.ts >= deadline {
                self.handshake_timeout(flow_id, out);
            }
        }
        let flags = seg.flags;
        let d = dir.index();
        let peer = dir.reverse().index();
        let now = seg.ts.as_nanos();
        if self.packets_seen == 0 {
            let (a, b) = ((seg.src_ip, seg.src_port), (seg.dst_ip, seg.dst_port));
            self.endpoints = Some(if dir == Direction::Orig { (a, b) } else { (b, a) });
            self.source_index = seg.source_index;
            if !flags.syn() {
                out.push(
                    Event::tcp_packet(EventKind::MidstreamStart, seg, flow_id, dir)
                        .with_detail("first_flags", flags.letters()),
                );
            }
        }
        self.packets_seen += 1;
        let invalid = invalid_combination(flags);
        if let Some(combination) = invalid {
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
            self.syns_sent = self.syns_sent.saturating_add(1);
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
        let valid = invalid.is_none();
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
        if self.silence[peer].count != 0 {
            self.silence[peer] = Silence::default();
        }
        if demands_answer {
            let s = &mut self.silence[d];
            if s.count == 0 {
                s.first_packet = seg.packet_number;
                s.first_ts = now;
            }
            s.count = s.count.saturating_add(1);
        }
        let s = &self.silence[d];
        if demands_answer
            && self.established
            && !self.half_open_reported
            && self.last_ts_dir[peer].is_some()
            && !self.fin_seen[peer]
            && !self.rst_seen
            && s.count >= 2
            && now.saturating_sub(s.first_ts) >= config.half_open_ns
        {
            let s = *s;
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
                b.retransmissions = b.retransmissions.saturating_add(1);
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
        let pb = &self.backoff[peer];
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
            self.stall[peer].probes = self.stall[peer].probes.saturating_add(1);
        }

        // Keep-alives in a row left unanswered, then a close by the prober.
        if self.keep_alive[peer].count != 0 {
            self.keep_alive[peer] = KeepAliveRun::default();
        }
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
            k.count = k.count.saturating_add(1);
        } else if run.count != 0 {
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

    /// The earliest packet time at which a deferred diagnostic could be decided, if any. Once
    /// its timer has run, a deadline is not offered again (the engine must not spin on it).
    pub fn deadline(&self, config: &DiagnosticsConfig) -> Option<Timestamp> {
        if self.handshake_timer_spent {
            return None;
        }
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

    /// Packet time has reached `now` with no packet on this connection. What is decided here
    /// is decided the same way at flow end (a timer may or may not run before the flow ends,
    /// depending on other flows' packets) and carries the time of the flow's last packet, not
    /// `now`: the same packets give the same events whatever the worker count.
    pub fn on_timeout(&mut self, now: Timestamp, flow_id: u64, config: &DiagnosticsConfig, out: &mut Vec<Event>) {
        if let Some(deadline) = self.handshake_deadline(config) {
            if now >= deadline {
                if self.syns_sent >= 2 {
                    self.handshake_timeout(flow_id, out);
                } else {
                    // A lone SYN is decided by a later packet of its own, or never.
                    self.handshake_timer_spent = true;
                }
            }
        }
    }

    /// The flow ends: emit deferred diagnostics, timed at the flow's last packet `end`.
    pub fn on_flow_end(
        &mut self,
        end: Timestamp,
        _reason: CloseReason,
        flow_id: u64,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        // SYNs retried and never answered; one lone SYN is a timeout only once the flow's own
        // packets reached the deadline (decided on that packet above), not when the capture or
        // the flow table ends it.
        if self.handshake_deadline(config).is_some() && self.syns_sent >= 2 {
            self.handshake_timeout(flow_id, out);
        }
        for dir in [Direction::Orig, Direction::Resp] {
            self.flush_backoff(dir, flow_id, config, out);
            let d = dir.index();
            let st = self.stall[d];
            if st.active {
                self.stall[d].active = false;
                // Not the close reason: whether a flow ends by idle expiry or at the end of the
                // input can depend on other flows' packets.
                out.push(
                    self.story_event(EventKind::ZeroWindowStall, end, dir, flow_id)
                        .with_ref(st.start_packet)
                        .with_value_ns(end.as_nanos().saturating_sub(st.start_ts))
                        .with_count(st.probes as u64)
                        .with_detail("ended", "flow_end"),
                );
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

    /// Timed at the flow's last packet before the decision (at or before the deadline).
    fn handshake_timeout(&mut self, flow_id: u64, out: &mut Vec<Event>) {
        self.handshake_decided = true;
        let at = Timestamp(self.last_ts);
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
            source_index: self.source_index,
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

#[cfg(test)]
mod tests {
    use crate::decode::{decode, LinkType, TcpFlags};
    use crate::tcp::{CloseReason, Engine, EngineConfig, Event, EventKind};
    use crate::testing::{Conversation, PacketBuilder};
    use crate::time::Timestamp;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_600_000_000 * S;

    /// Feeds frames (ts relative to T0) to an engine; returns it (not finished).
    fn feed(engine: &mut Engine, frames: &[(u64, Vec<u8>)]) {
        let mut sorted: Vec<&(u64, Vec<u8>)> = frames.iter().collect();
        sorted.sort_by_key(|(t, _)| *t);
        for (n, (t, f)) in sorted.into_iter().enumerate() {
            let seg = decode(LinkType::Ethernet, f, Timestamp(T0 + t), n as u64 + 1, 0).expect("frame decodes");
            engine.handle_segment(&seg);
        }
    }

    fn run(frames: &[(u64, Vec<u8>)], config: EngineConfig) -> Vec<Event> {
        let mut engine = Engine::new(config);
        feed(&mut engine, frames);
        engine.finish(CloseReason::EndOfInput);
        std::mem::take(&mut engine.output.events)
    }

    fn of(events: &[Event], kind: EventKind) -> Vec<&Event> {
        events.iter().filter(|e| e.is(kind)).collect()
    }

    fn detail<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
        e.details.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn syn(c: &Conversation) -> PacketBuilder {
        PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80").seq(c.client_next()).flags(TcpFlags::SYN)
    }

    #[test]
    fn refused_counts_the_syns_before_the_rst() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 0);
        c.push(0, syn(&c));
        c.push(S, syn(&c));
        let rst = PacketBuilder::v4("198.18.0.2:80", "198.18.0.1:40000").flags(TcpFlags::RST).ack(1001).window(0);
        c.push(S + 2 * MS, rst);
        let ev = run(&c.frames, EngineConfig::default());
        let refused = of(&ev, EventKind::ConnectionRefused);
        assert_eq!(refused.len(), 1);
        assert_eq!((refused[0].count, refused[0].ref_packet, refused[0].value_ns), (Some(2), Some(1), Some(S as i64 + 2_000_000)));
        assert!(of(&ev, EventKind::HandshakeTimeout).is_empty() && of(&ev, EventKind::ConnectionReset).is_empty());
    }

    /// A handshake timeout decided by the timer carries the deadline as its time, whatever packet
    /// time the engine had reached: the same packets give the same events.
    #[test]
    fn handshake_timeout_by_timer_is_timed_at_the_deadline() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 0);
        for t in [0, S, 3 * S] {
            c.push(t, syn(&c));
        }
        let mut config = EngineConfig { attempt_timeout_ns: 0, ..EngineConfig::default() };
        config.diagnostics.handshake_timeout_ns = 10 * S;
        let mut outcomes = Vec::new();
        for later in [11 * S, 500 * S] {
            let mut engine = Engine::new(config);
            feed(&mut engine, &c.frames);
            engine.advance_time(Timestamp(T0 + later));
            engine.finish(CloseReason::EndOfInput);
            let timeouts: Vec<Event> = of(&engine.output.events, EventKind::HandshakeTimeout).into_iter().cloned().collect();
            assert_eq!(timeouts.len(), 1, "{:?}", engine.output.events);
            outcomes.push(timeouts);
        }
        assert_eq!(outcomes[0], outcomes[1], "independent of how far packet time went");
        let e = &outcomes[0][0];
        assert_eq!(e.ts, Timestamp(T0 + 3 * S), "the flow's last packet, whatever the engine's clock");
        assert_eq!((e.count, e.ref_packet, e.packet_number), (Some(3), Some(1), None));
        assert_eq!(detail(e, "intervals"), Some("1.000s,2.000s"));
        assert_eq!(e.value_ns, Some(3 * S as i64));
    }

    #[test]
    fn lone_syn_cut_off_by_end_of_capture_is_no_timeout() {
        let c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 0);
        let frames = vec![(0, syn(&c).ethernet())];
        let config = EngineConfig { attempt_timeout_ns: 0, ..EngineConfig::default() };
        assert!(of(&run(&frames, config), EventKind::HandshakeTimeout).is_empty());
    }

    #[test]
    fn rto_backoff_lists_the_intervals() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        c.handshake(0, 10 * MS);
        let seq = c.client_next();
        c.client_data(100 * MS, 500);
        let mut t = 100 * MS;
        for rto in [200, 400, 800, 1600] {
            t += rto * MS;
            c.push(t, c.from_client().seq(seq).flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(500).window(512));
        }
        c.server_ack(t + 10 * MS);
        let ev = run(&c.frames, EngineConfig::default());
        let b = of(&ev, EventKind::RtoBackoff);
        assert_eq!(b.len(), 1, "{ev:?}");
        assert_eq!(b[0].count, Some(4));
        assert_eq!(b[0].ref_packet, Some(4), "the original transmission");
        assert_eq!(detail(b[0], "intervals"), Some("0.200s,0.400s,0.800s,1.600s"));
        assert_eq!(b[0].value_ns, Some(3_000 * MS as i64));
    }

    #[test]
    fn zero_window_stall_counts_probes_until_the_window_opens() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        c.handshake(0, 10 * MS);
        c.client_data(100 * MS, 1000);
        c.push(110 * MS, c.from_server().flags(TcpFlags::ACK).window(0)); // packet 5: zero window
        let probe_seq = c.client_next();
        for i in 1..=3 {
            c.push(110 * MS + i * S, c.from_client().seq(probe_seq).flags(TcpFlags::ACK).payload_len(1).window(512));
            c.push(110 * MS + i * S + MS, c.from_server().flags(TcpFlags::ACK).window(0));
        }
        c.push(5 * S, c.from_server().flags(TcpFlags::ACK).window(512));
        let ev = run(&c.frames, EngineConfig::default());
        let st = of(&ev, EventKind::ZeroWindowStall);
        assert_eq!(st.len(), 1, "{ev:?}");
        assert_eq!((st[0].ref_packet, st[0].count), (Some(5), Some(3)));
        assert_eq!(st[0].value_ns, Some((5 * S - 110 * MS) as i64));
        assert_eq!(detail(st[0], "ended"), Some("window_opened"));
        assert_eq!(of(&ev, EventKind::ZeroWindowProbe).len(), 3);
        assert!(of(&ev, EventKind::PreviousSegmentNotCaptured).is_empty(), "a probe is not a gap");
    }

    #[test]
    fn keep_alive_timeout_then_half_open_at_flow_end() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        c.handshake(0, 10 * MS);
        c.client_data(100 * MS, 10);
        c.server_ack(110 * MS);
        let ka_seq = c.client_next().wrapping_sub(1);
        for i in 1..=4u64 {
            c.push(i * 20 * S, c.from_client().seq(ka_seq).flags(TcpFlags::ACK).window(512));
        }
        let mut config = EngineConfig::default();
        config.diagnostics.half_open_ns = 30 * S;
        let ev = run(&c.frames, config);
        let k = of(&ev, EventKind::KeepAliveTimeout);
        assert_eq!(k.len(), 1, "{ev:?}");
        assert_eq!((k[0].count, k[0].ref_packet), (Some(4), Some(6)));
        assert_eq!(detail(k[0], "closed_by"), Some("flow_end"));
        assert_eq!(k[0].ts, Timestamp(T0 + 80 * S), "timed at the last packet, not at the engine's clock");
        let h = of(&ev, EventKind::HalfOpen);
        assert_eq!(h.len(), 1, "{ev:?}");
        assert_eq!((h[0].packet_number, h[0].ref_packet), (Some(8), Some(6)));
        assert_eq!(detail(h[0], "silent_side"), Some("resp"));
    }

    #[test]
    fn keep_alive_timeout_closed_by_rst_and_answered_keep_alives_are_fine() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        c.handshake(0, 10 * MS);
        let ka_seq = c.client_next().wrapping_sub(1);
        for i in 1..=3u64 {
            c.push(i * S, c.from_client().seq(ka_seq).flags(TcpFlags::ACK).window(512));
            c.server_ack(i * S + MS); // answered
        }
        for i in 4..=6u64 {
            c.push(i * S, c.from_client().seq(ka_seq).flags(TcpFlags::ACK).window(512));
        }
        c.push(7 * S, c.from_client().flags(TcpFlags::RST | TcpFlags::ACK).window(0));
        let ev = run(&c.frames, EngineConfig::default());
        let k = of(&ev, EventKind::KeepAliveTimeout);
        assert_eq!(k.len(), 1, "{ev:?}");
        assert_eq!(k[0].count, Some(3));
        assert_eq!(detail(k[0], "closed_by"), Some("rst"));
        let r = of(&ev, EventKind::ConnectionReset);
        assert_eq!(r.len(), 1);
        assert_eq!((detail(r[0], "by"), detail(r[0], "fin_before")), (Some("orig"), Some("none")));
        assert_eq!(r[0].value_ns, Some(S as i64), "idle before the RST");
    }

    #[test]
    fn rst_answering_data_on_an_open_connection_is_half_open() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        c.handshake(0, 10 * MS);
        c.client_data(100 * MS, 100);
        c.server_ack(110 * MS);
        c.client_data(60 * S, 100); // packet 6, an hour of silence would do as well
        let rst = c.from_server().ack(c.client_next() - 100).flags(TcpFlags::RST | TcpFlags::ACK).window(0);
        c.push(60 * S + 5 * MS, rst);
        let ev = run(&c.frames, EngineConfig::default());
        let h = of(&ev, EventKind::HalfOpen);
        assert_eq!(h.len(), 1, "{ev:?}");
        assert_eq!((h[0].packet_number, h[0].ref_packet), (Some(7), Some(6)));
        assert_eq!(detail(h[0], "reason"), Some("rst_answers_data"));
        let r = of(&ev, EventKind::ConnectionReset);
        assert_eq!(r.len(), 1);
        assert_eq!(detail(r[0], "unacked_orig_bytes"), Some("100"));
    }

    #[test]
    fn invalid_flag_combinations_are_reported_and_survived() {
        let base = PacketBuilder::v4("198.18.0.1:40001", "198.18.0.2:80").seq(7);
        let all = TcpFlags::FIN | TcpFlags::SYN | TcpFlags::RST | TcpFlags::PSH | TcpFlags::ACK | TcpFlags::URG;
        let cases = [
            (0u16, "null"),
            (TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG, "xmas"),
            (TcpFlags::SYN | TcpFlags::FIN, "syn_fin"),
            (TcpFlags::SYN | TcpFlags::RST, "syn_rst"),
            (TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK, "fin_rst"),
            (all, "all"),
            (TcpFlags::FIN, "fin_without_ack"),
        ];
        let frames: Vec<(u64, Vec<u8>)> =
            cases.iter().enumerate().map(|(i, (f, _))| (i as u64 * MS, base.clone().flags(*f).ethernet())).collect();
        let ev = run(&frames, EngineConfig::default());
        let inv = of(&ev, EventKind::InvalidFlags);
        let names: Vec<&str> = inv.iter().map(|e| detail(e, "combination").unwrap()).collect();
        assert_eq!(names, cases.iter().map(|(_, n)| *n).collect::<Vec<_>>());
        // Ordinary combinations are not reported.
        for ok in [TcpFlags::SYN, TcpFlags::SYN | TcpFlags::ACK, TcpFlags::ACK, TcpFlags::RST, TcpFlags::RST | TcpFlags::ACK] {
            assert_eq!(super::invalid_combination(TcpFlags(ok)), None, "{ok:#x}");
        }
    }

    #[test]
    fn midstream_start_once_and_not_for_a_handshake() {
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        c.client_data(0, 100);
        c.server_ack(MS);
        c.client_data(2 * MS, 100);
        let ev = run(&c.frames, EngineConfig::default());
        let m = of(&ev, EventKind::MidstreamStart);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].packet_number, Some(1));
        let mut h = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        h.handshake(0, MS);
        assert!(of(&run(&h.frames, EngineConfig::default()), EventKind::MidstreamStart).is_empty());
    }

    /// A lone SYN's handshake timer runs once and is not offered again (an engine rescheduling
    /// on a past deadline would spin); a later packet of the flow past the deadline decides.
    #[test]
    fn lone_syn_timer_runs_once() {
        use super::{Diagnostics, DiagnosticsConfig};
        let c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 0);
        let config = EngineConfig { attempt_timeout_ns: 0, ..EngineConfig::default() };
        let mut engine = Engine::new(config);
        feed(&mut engine, &[(0, syn(&c).ethernet())]);
        // Other flows move packet time far past the deadline: the engine must come back.
        engine.advance_time(Timestamp(T0 + 100 * S));
        engine.advance_time(Timestamp(T0 + 200 * S));
        assert!(of(&engine.output.events, EventKind::HandshakeTimeout).is_empty());
        let mut d = Diagnostics::new();
        let dc = DiagnosticsConfig::default();
        let seg = decode(LinkType::Ethernet, &syn(&c).ethernet(), Timestamp(T0), 1, 0).unwrap();
        let mut out = Vec::new();
        d.on_segment(&seg, crate::flow::Direction::Orig, 1, &Default::default(), &dc, &mut out);
        assert!(d.deadline(&dc).is_some());
        d.on_timeout(Timestamp(T0 + 31 * S), 1, &dc, &mut out);
        assert_eq!(d.deadline(&dc), None, "spent");
        assert!(out.is_empty());
    }
}
