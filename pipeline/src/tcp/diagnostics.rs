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
use crate::tcp::compact::Codec;
use crate::tcp::events::{Event, EventKind};
use crate::tcp::seq::seq_gt;
use crate::tcp::summary::CloseReason;
use crate::time::Timestamp;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The originator's (address, port) and the responder's, indexed by [`Direction::index`]: what
/// fills the addresses of events not tied to one packet.
pub type Endpoints = [(IpAddr, u16); 2];

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

/// A short list of intervals in microseconds, without heap allocation of its own.
#[derive(Clone, Copy, Debug, Default)]
struct Intervals {
    len: u8,
    micros: [u32; MAX_INTERVALS],
}

impl Intervals {
    fn codec<C: Codec>(&mut self, c: &mut C) {
        let Intervals { len, micros } = self;
        c.u8(len);
        *len = (*len).min(MAX_INTERVALS as u8);
        let (used, unused) = micros.split_at_mut(*len as usize);
        used.iter_mut().for_each(|m| c.u32(m));
        if C::READING {
            unused.fill(0);
        }
    }
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

impl Backoff {
    fn codec(&mut self, c: &mut impl Codec) {
        let Backoff { active, seq, original_packet, original_ts, last_packet, last_ts, retransmissions, intervals } = self;
        c.bool(active);
        c.seq(seq);
        c.packet(original_packet);
        c.time(original_ts);
        c.packet(last_packet);
        c.time(last_ts);
        c.u32(retransmissions);
        intervals.codec(c);
    }
}

/// A zero window advertised by one side, until it opens.
#[derive(Clone, Copy, Debug, Default)]
struct Stall {
    active: bool,
    start_packet: u64,
    start_ts: u64,
    probes: u32,
}

impl Stall {
    fn codec(&mut self, c: &mut impl Codec) {
        let Stall { active, start_packet, start_ts, probes } = self;
        c.bool(active);
        c.packet(start_packet);
        c.time(start_ts);
        c.u32(probes);
    }
}

/// Keep-alives in a row from one side with nothing back.
#[derive(Clone, Copy, Debug, Default)]
struct KeepAliveRun {
    count: u32,
    first_packet: u64,
    first_ts: u64,
}

impl KeepAliveRun {
    fn codec(&mut self, c: &mut impl Codec) {
        let KeepAliveRun { count, first_packet, first_ts } = self;
        c.u32(count);
        c.packet(first_packet);
        c.time(first_ts);
    }
}

/// The state of the rarer stories. Boxed and created only when a packet starts one of them (a
/// second SYN, a timeout retransmission, a zero window, a keep-alive, a side's packet earlier
/// than its previous one which was the flow's latest): most connections never need it, and
/// leaving it out keeps the per-flow memory small. Code that only reads it takes a missing box
/// as all defaults.
#[derive(Clone, Debug, Default)]
struct Cold {
    /// SYNs from the originator once there are two or more (0 until then: see `SYN_SENT`).
    syns_sent: u32,
    /// Time of the latest SYN once there are two or more.
    last_syn_ts: u64,
    /// Intervals between successive SYNs.
    syn_intervals: Intervals,
    /// The flow's latest packet time when neither side's `last_ts_dir` holds it any more.
    latest_ts: u64,
    /// RTO backoff per direction.
    backoff: [Backoff; 2],
    /// Zero-window stall per direction.
    stall: [Stall; 2],
    /// Unanswered keep-alives per direction.
    keep_alive: [KeepAliveRun; 2],
}

impl Cold {
    fn codec(&mut self, c: &mut impl Codec) {
        let Cold { syns_sent, last_syn_ts, syn_intervals, latest_ts, backoff, stall, keep_alive } = self;
        c.u32(syns_sent);
        c.time(last_syn_ts);
        syn_intervals.codec(c);
        c.time(latest_ts);
        backoff.iter_mut().for_each(|b| b.codec(c));
        stall.iter_mut().for_each(|s| s.codec(c));
        keep_alive.iter_mut().for_each(|k| k.codec(c));
    }
}

/// Yes/no state of a connection in one word (one lives in every connection).
#[derive(Clone, Copy, Debug, Default)]
struct Flags(u16);

impl Flags {
    /// The originator has sent a SYN (`first_syn_*` are set).
    const SYN_SENT: u16 = 1 << 0;
    /// A packet from the originator was seen (`last_ts_dir[0]` is set); `<< 1` for the
    /// responder: the responder has answered.
    const SEEN: u16 = 1 << 1;
    /// A packet from either side was seen.
    const SEEN_ANY: u16 = Flags::SEEN | Flags::SEEN << 1;
    /// The handshake was answered or timed out.
    const HANDSHAKE_DECIDED: u16 = 1 << 3;
    /// The handshake timer ran with nothing to decide yet (one SYN): no more timer for it.
    const HANDSHAKE_TIMER_SPENT: u16 = 1 << 4;
    /// The connection is established (a SYN/ACK, or mid-stream traffic).
    const ESTABLISHED: u16 = 1 << 5;
    /// The originator sent a FIN; `<< 1` for the responder.
    const FIN: u16 = 1 << 6;
    /// An RST was seen.
    const RST_SEEN: u16 = 1 << 8;
    /// A `half_open` event was emitted.
    const HALF_OPEN_REPORTED: u16 = 1 << 9;
    /// The silence run is the responder's (else the originator's).
    const SILENCE_RESP: u16 = 1 << 10;
    /// The latest data packet came from the responder (else from the originator).
    const LAST_DATA_RESP: u16 = 1 << 11;

    fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
    fn set(&mut self, bit: u16, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
    /// Whether the per-side `bit` (an originator's bit) is set for the side `dir`.
    fn has_for(self, bit: u16, dir: Direction) -> bool {
        self.has(bit << dir.index())
    }
    /// Sets the per-side `bit` (an originator's bit) for the side `dir`.
    fn set_for(&mut self, bit: u16, dir: Direction) {
        self.set(bit << dir.index(), true);
    }
}

/// Per-connection diagnostic state: what every packet touches, inline; the rarer stories in a
/// [`Cold`] box.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    /// The input the connection's first diagnosed packet came from (for events not tied to one
    /// packet; it differs from the connection's first packet when that failed its checksum).
    source_index: u32,
    /// Yes/no state.
    flags: Flags,
    /// Packet number of the first SYN (valid with `SYN_SENT`).
    first_syn_packet: u64,
    /// Time of the first SYN (valid with `SYN_SENT`, else 0).
    first_syn_ts: u64,
    /// Packet number of the latest packet (0: none yet).
    last_packet: u64,
    /// Time of each side's latest packet (valid with its `SEEN` bit, else 0). With
    /// `Cold::latest_ts` they give the flow's latest packet time.
    last_ts_dir: [u64; 2],
    /// Packet number of the latest data packet (0: none, which never matches `last_packet`
    /// where it is compared; its side is `LAST_DATA_RESP`).
    last_data_packet: u64,
    /// Time of the latest data packet.
    last_data_ts: u64,
    /// Packets that need an answer one side (`SILENCE_RESP`) sent since the other side's last
    /// packet (only one side's run can be open: a packet from the other side ends it).
    silence_count: u32,
    /// Packet number of the silence run's first packet (valid while `silence_count` is not 0).
    silence_first_packet: u64,
    /// Time of the silence run's first packet (valid while `silence_count` is not 0).
    silence_first_ts: u64,
    /// The rarer stories' state, created on first need.
    cold: Option<Box<Cold>>,
}

/// The endpoints of `seg`'s connection, `seg` being sent in direction `dir`.
fn endpoints_of(seg: &Segment, dir: Direction) -> Endpoints {
    let (src, dst) = ((seg.src_ip, seg.src_port), (seg.dst_ip, seg.dst_port));
    match dir {
        Direction::Orig => [src, dst],
        Direction::Resp => [dst, src],
    }
}

impl Diagnostics {
    /// Fresh state.
    pub fn new() -> Self {
        Diagnostics::default()
    }

    /// Visits every field for packing (see [`crate::tcp::compact`]).
    pub(crate) fn codec(&mut self, c: &mut impl Codec) {
        let Diagnostics {
            source_index,
            flags,
            first_syn_packet,
            first_syn_ts,
            last_packet,
            last_ts_dir,
            last_data_packet,
            last_data_ts,
            silence_count,
            silence_first_packet,
            silence_first_ts,
            cold,
        } = self;
        c.u32(source_index);
        c.u16(&mut flags.0);
        c.packet(first_syn_packet);
        c.time(first_syn_ts);
        c.packet(last_packet);
        last_ts_dir.iter_mut().for_each(|t| c.time(t));
        c.packet(last_data_packet);
        c.time(last_data_ts);
        c.u32(silence_count);
        c.packet(silence_first_packet);
        c.time(silence_first_ts);
        c.option(cold, |c, cold| cold.codec(c));
    }

    /// The rarer stories' state, created on first need.
    fn cold_mut(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// SYNs sent by the originator.
    fn syns_sent(&self) -> u32 {
        match &self.cold {
            Some(c) if c.syns_sent >= 2 => c.syns_sent,
            _ => self.flags.has(Flags::SYN_SENT) as u32,
        }
    }

    /// Time of the latest SYN (0 before the first).
    fn last_syn_ts(&self) -> u64 {
        match &self.cold {
            Some(c) if c.syns_sent >= 2 => c.last_syn_ts,
            _ => self.first_syn_ts,
        }
    }

    /// The flow's latest packet time (0 before the first packet).
    fn last_ts(&self) -> u64 {
        let cold = self.cold.as_ref().map_or(0, |c| c.latest_ts);
        self.last_ts_dir[0].max(self.last_ts_dir[1]).max(cold)
    }

    /// Reacts to one packet (after its per-packet analysis).
    #[inline(always)]
    pub fn on_segment(
        &mut self,
        seg: &Segment,
        dir: Direction,
        flow_id: u64,
        analysis: &PacketAnalysis,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        let plain = seg.flags.ack() && !seg.flags.any(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST);
        if plain
            && analysis.flags.0 == 0
            && self.cold.is_none()
            && self.flags.has_for(Flags::SEEN, dir)
            && self.handshake_deadline(config).is_none()
        {
            // Most packets: an ACK or data without verdicts, on a connection with no story under
            // way, from a side already seen. Of the rules below only these apply to it (the
            // property test `plain_packets_take_the_short_path_to_the_same_result` compares).
            if !self.flags.has(Flags::SYN_SENT) {
                self.flags.set(Flags::ESTABLISHED, true);
            }
            self.track_silence(seg, dir, flow_id, seg.payload_len > 0, config, out);
            self.end_packet(seg, dir);
            return;
        }
        self.on_segment_full(seg, dir, flow_id, analysis, config, out);
    }

    /// [`Diagnostics::on_segment`] for any packet.
    #[inline(never)]
    fn on_segment_full(
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
                self.handshake_timeout(flow_id, &endpoints_of(seg, dir), out);
            }
        }
        let flags = seg.flags;
        let d = dir.index();
        let peer = dir.reverse().index();
        let now = seg.ts.as_nanos();
        let first_packet = !self.flags.has(Flags::SEEN_ANY);
        if first_packet {
            self.source_index = seg.source_index;
            if !flags.syn() {
                out.push(
                    Event::tcp_packet(EventKind::MidstreamStart, seg, flow_id, dir)
                        .with_detail("first_flags", flags.letters()),
                );
            }
        }
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
            if !self.flags.has(Flags::SYN_SENT) {
                self.flags.set(Flags::SYN_SENT, true);
                self.first_syn_packet = seg.packet_number;
                self.first_syn_ts = now;
            } else {
                let last = self.last_syn_ts();
                let cold = self.cold_mut();
                cold.syn_intervals.push(now.saturating_sub(last));
                cold.syns_sent = cold.syns_sent.max(1).saturating_add(1);
                cold.last_syn_ts = now;
            }
        }
        if dir == Direction::Resp && !self.flags.has_for(Flags::SEEN, Direction::Resp) {
            // The first answer (its `SEEN` bit is set below, with its time).
            let syns_sent = self.syns_sent();
            if flags.rst() && !flags.syn() && syns_sent > 0 && !self.flags.has(Flags::HANDSHAKE_DECIDED) {
                out.push(
                    Event::tcp_packet(EventKind::ConnectionRefused, seg, flow_id, dir)
                        .with_count(syns_sent as u64)
                        .with_ref(self.first_syn_packet)
                        .with_value_ns(seg.ts.saturating_since(Timestamp(self.first_syn_ts))),
                );
            }
            self.flags.set(Flags::HANDSHAKE_DECIDED, true);
        }
        let valid = invalid.is_none();
        if valid
            && (flags.syn_ack() || (!flags.syn() && !flags.rst() && !first_packet && !self.flags.has(Flags::SYN_SENT)))
        {
            self.flags.set(Flags::ESTABLISHED, true);
        }
        let fin_seen = [Direction::Orig, Direction::Resp].map(|x| self.flags.has_for(Flags::FIN, x));

        // Resets and half-open connections.
        if valid && flags.rst() && !self.flags.has(Flags::RST_SEEN) && self.last_packet != 0 {
            self.flags.set(Flags::RST_SEEN, true);
            if self.flags.has(Flags::ESTABLISHED) {
                self.connection_reset(seg, dir, flow_id, analysis, out);
                let unclosed = !fin_seen[0] && !fin_seen[1];
                let data_dir = if self.flags.has(Flags::LAST_DATA_RESP) { Direction::Resp } else { Direction::Orig };
                let (data_packet, data_ts) = (self.last_data_packet, self.last_data_ts);
                if unclosed
                    && data_dir != dir
                    && self.last_packet == data_packet
                    && !self.flags.has(Flags::HALF_OPEN_REPORTED)
                {
                    self.flags.set(Flags::HALF_OPEN_REPORTED, true);
                    let silent =
                        if self.flags.has_for(Flags::SEEN, dir) { now.saturating_sub(self.last_ts_dir[d]) } else { 0 };
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
        // One side keeps sending what needs an answer (data, retransmissions, keep-alives) while
        // the other is silent.
        let f = analysis.flags;
        let demands_answer = seg.payload_len > 0 || f.has(EventKind::KeepAlive) || f.any_retransmission();
        self.track_silence(seg, dir, flow_id, demands_answer, config, out);

        // RTO backoff of this side's segment; the peer's ACK past it ends the story.
        if f.has(EventKind::Retransmission) {
            let same = self.cold.as_ref().is_some_and(|c| c.backoff[d].active && c.backoff[d].seq == seg.seq);
            if same {
                let b = &mut self.cold_mut().backoff[d];
                b.intervals.push(now.saturating_sub(b.last_ts));
                b.retransmissions = b.retransmissions.saturating_add(1);
                b.last_ts = now;
                b.last_packet = seg.packet_number;
            } else {
                self.flush_backoff(dir, flow_id, &endpoints_of(seg, dir), config, out);
                let rto = analysis.rto_ns.unwrap_or(0);
                let mut intervals = Intervals::default();
                intervals.push(rto);
                self.cold_mut().backoff[d] = Backoff {
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
        let peer_backoff_acked = self
            .cold
            .as_ref()
            .is_some_and(|c| c.backoff[peer].active && flags.ack() && seq_gt(seg.ack, c.backoff[peer].seq));
        if peer_backoff_acked {
            self.flush_backoff(dir.reverse(), flow_id, &endpoints_of(seg, dir), config, out);
        }

        // Zero-window stall of this side; the peer's probes are counted.
        let stalled = self.cold.as_ref().is_some_and(|c| c.stall[d].active);
        if f.has(EventKind::ZeroWindow) && !stalled {
            self.cold_mut().stall[d] =
                Stall { active: true, start_packet: seg.packet_number, start_ts: now, probes: 0 };
        } else if stalled && seg.window != 0 && !flags.any(TcpFlags::RST | TcpFlags::SYN) {
            let st = &mut self.cold_mut().stall[d];
            st.active = false;
            let st = *st;
            out.push(
                Event::tcp_packet(EventKind::ZeroWindowStall, seg, flow_id, dir)
                    .with_ref(st.start_packet)
                    .with_value_ns(now.saturating_sub(st.start_ts))
                    .with_count(st.probes as u64)
                    .with_detail("ended", "window_opened"),
            );
        }
        if f.has(EventKind::ZeroWindowProbe) {
            if let Some(st) = self.cold.as_mut().map(|c| &mut c.stall[peer]).filter(|st| st.active) {
                st.probes = st.probes.saturating_add(1);
            }
        }

        // Keep-alives in a row left unanswered, then a close by the prober.
        if let Some(c) = self.cold.as_mut() {
            if c.keep_alive[peer].count != 0 {
                c.keep_alive[peer] = KeepAliveRun::default();
            }
        }
        let run = self.cold.as_ref().map(|c| c.keep_alive[d]).unwrap_or_default();
        if (flags.rst() || flags.fin()) && run.count >= config.keep_alive_unanswered.max(1) {
            out.push(
                Event::tcp_packet(EventKind::KeepAliveTimeout, seg, flow_id, dir)
                    .with_ref(run.first_packet)
                    .with_count(run.count as u64)
                    .with_value_ns(now.saturating_sub(run.first_ts))
                    .with_detail("closed_by", if flags.rst() { "rst" } else { "fin" }),
            );
            self.cold_mut().keep_alive[d] = KeepAliveRun::default();
        } else if f.has(EventKind::KeepAlive) {
            let k = &mut self.cold_mut().keep_alive[d];
            if k.count == 0 {
                k.first_packet = seg.packet_number;
                k.first_ts = now;
            }
            k.count = k.count.saturating_add(1);
        } else if run.count != 0 {
            self.cold_mut().keep_alive[d] = KeepAliveRun::default();
        }

        self.end_packet(seg, dir);
    }


    /// Runs of packets that demand an answer (data, retransmissions, keep-alives) from one side
    /// while the other is silent: `half_open` once the run is long enough.
    #[inline(always)]
    fn track_silence(
        &mut self,
        seg: &Segment,
        dir: Direction,
        flow_id: u64,
        demands_answer: bool,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        let now = seg.ts.as_nanos();
        if self.silence_count != 0 && self.flags.has(Flags::SILENCE_RESP) != (dir == Direction::Resp) {
            // The peer's run ends (its start fields are read only while the count is not 0).
            self.silence_count = 0;
        }
        if demands_answer {
            if self.silence_count == 0 {
                self.flags.set(Flags::SILENCE_RESP, dir == Direction::Resp);
                self.silence_first_packet = seg.packet_number;
                self.silence_first_ts = now;
            }
            self.silence_count = self.silence_count.saturating_add(1);
        }
        if demands_answer
            && self.flags.has(Flags::ESTABLISHED)
            && !self.flags.has(Flags::HALF_OPEN_REPORTED)
            && self.flags.has_for(Flags::SEEN, dir.reverse())
            && !self.flags.has_for(Flags::FIN, dir.reverse())
            && !self.flags.has(Flags::RST_SEEN)
            && self.silence_count >= 2
            && now.saturating_sub(self.silence_first_ts) >= config.half_open_ns
        {
            self.flags.set(Flags::HALF_OPEN_REPORTED, true);
            out.push(
                Event::tcp_packet(EventKind::HalfOpen, seg, flow_id, dir)
                    .with_ref(self.silence_first_packet)
                    .with_value_ns(now.saturating_sub(self.silence_first_ts))
                    .with_count(self.silence_count as u64)
                    .with_detail("reason", "peer_silent")
                    .with_detail("silent_side", dir.reverse().as_str()),
            );
        }
    }

    /// What every packet leaves behind: FIN seen, the last data, the last packet and its time.
    #[inline(always)]
    fn end_packet(&mut self, seg: &Segment, dir: Direction) {
        let flags = seg.flags;
        let d = dir.index();
        let now = seg.ts.as_nanos();
        if flags.fin() {
            self.flags.set_for(Flags::FIN, dir);
        }
        if seg.payload_len > 0 && !flags.rst() {
            self.flags.set(Flags::LAST_DATA_RESP, dir == Direction::Resp);
            self.last_data_packet = seg.packet_number;
            self.last_data_ts = now;
        }
        self.last_packet = seg.packet_number;
        let latest = self.last_ts();
        self.last_ts_dir[d] = now;
        self.flags.set_for(Flags::SEEN, dir);
        if self.last_ts() < latest {
            // This side's previous packet was the flow's latest and this one is earlier: keep
            // the latest time where it is not overwritten.
            self.cold_mut().latest_ts = latest;
        }
    }

    /// The earliest packet time at which a deferred diagnostic could be decided, if any. Once
    /// its timer has run, a deadline is not offered again (the engine must not spin on it).
    pub fn deadline(&self, config: &DiagnosticsConfig) -> Option<Timestamp> {
        if self.flags.has(Flags::HANDSHAKE_TIMER_SPENT) {
            return None;
        }
        self.handshake_deadline(config)
    }

    fn handshake_deadline(&self, config: &DiagnosticsConfig) -> Option<Timestamp> {
        let f = self.flags;
        if f.has(Flags::SYN_SENT) && !f.has_for(Flags::SEEN, Direction::Resp) && !f.has(Flags::HANDSHAKE_DECIDED) {
            Some(Timestamp(self.first_syn_ts).plus_nanos(config.handshake_timeout_ns))
        } else {
            None
        }
    }

    /// Packet time has reached `now` with no packet on this connection. What is decided here
    /// is decided the same way at flow end (a timer may or may not run before the flow ends,
    /// depending on other flows' packets) and carries the time of the flow's last packet, not
    /// `now`: the same packets give the same events whatever the worker count. `endpoints` are
    /// the connection's.
    pub fn on_timeout(
        &mut self,
        now: Timestamp,
        flow_id: u64,
        endpoints: &Endpoints,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        if let Some(deadline) = self.handshake_deadline(config) {
            if now >= deadline {
                if self.syns_sent() >= 2 {
                    self.handshake_timeout(flow_id, endpoints, out);
                } else {
                    // A lone SYN is decided by a later packet of its own, or never.
                    self.flags.set(Flags::HANDSHAKE_TIMER_SPENT, true);
                }
            }
        }
    }

    /// The flow ends: emit deferred diagnostics, timed at the flow's last packet `end`.
    /// `endpoints` are the connection's.
    pub fn on_flow_end(
        &mut self,
        end: Timestamp,
        _reason: CloseReason,
        flow_id: u64,
        endpoints: &Endpoints,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        // SYNs retried and never answered; one lone SYN is a timeout only once the flow's own
        // packets reached the deadline (decided on that packet above), not when the capture or
        // the flow table ends it.
        if self.handshake_deadline(config).is_some() && self.syns_sent() >= 2 {
            self.handshake_timeout(flow_id, endpoints, out);
        }
        for dir in [Direction::Orig, Direction::Resp] {
            self.flush_backoff(dir, flow_id, endpoints, config, out);
            let d = dir.index();
            let Some(cold) = self.cold.as_mut() else { continue };
            let st = cold.stall[d];
            cold.stall[d].active = false;
            let run = cold.keep_alive[d];
            let run_timed_out = run.count >= config.keep_alive_unanswered.max(1);
            if run_timed_out {
                cold.keep_alive[d] = KeepAliveRun::default();
            }
            if st.active {
                // Not the close reason: whether a flow ends by idle expiry or at the end of the
                // input can depend on other flows' packets.
                out.push(
                    self.story_event(EventKind::ZeroWindowStall, end, dir, flow_id, endpoints)
                        .with_ref(st.start_packet)
                        .with_value_ns(end.as_nanos().saturating_sub(st.start_ts))
                        .with_count(st.probes as u64)
                        .with_detail("ended", "flow_end"),
                );
            }
            if run_timed_out {
                out.push(
                    self.story_event(EventKind::KeepAliveTimeout, end, dir, flow_id, endpoints)
                        .with_ref(run.first_packet)
                        .with_count(run.count as u64)
                        .with_value_ns(end.as_nanos().saturating_sub(run.first_ts))
                        .with_detail("closed_by", "flow_end"),
                );
            }
        }
    }

    /// Timed at the flow's last packet before the decision (at or before the deadline).
    fn handshake_timeout(&mut self, flow_id: u64, endpoints: &Endpoints, out: &mut Vec<Event>) {
        self.flags.set(Flags::HANDSHAKE_DECIDED, true);
        let at = Timestamp(self.last_ts());
        let mut e = self
            .story_event(EventKind::HandshakeTimeout, at, Direction::Orig, flow_id, endpoints)
            .with_ref(self.first_syn_packet)
            .with_count(self.syns_sent() as u64)
            .with_value_ns(self.last_syn_ts().saturating_sub(self.first_syn_ts));
        let intervals = self.cold.as_ref().map(|c| c.syn_intervals).unwrap_or_default();
        e.details.push((Cow::Borrowed("intervals"), intervals.render()));
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
        let idle = seg.ts.as_nanos().saturating_sub(self.last_ts());
        let fin = |x| self.flags.has_for(Flags::FIN, x);
        let fin_before = match (fin(Direction::Orig), fin(Direction::Resp)) {
            (true, true) => "both",
            (true, false) => "orig",
            (false, true) => "resp",
            (false, false) => "none",
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

    fn flush_backoff(
        &mut self,
        dir: Direction,
        flow_id: u64,
        endpoints: &Endpoints,
        config: &DiagnosticsConfig,
        out: &mut Vec<Event>,
    ) {
        let Some(cold) = self.cold.as_mut() else { return };
        let b = cold.backoff[dir.index()];
        cold.backoff[dir.index()].active = false;
        if !b.active || b.retransmissions < config.rto_backoff_min_retransmissions.max(1) {
            return;
        }
        let mut e = self
            .story_event(EventKind::RtoBackoff, Timestamp(b.last_ts), dir, flow_id, endpoints)
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
    fn story_event(
        &self,
        kind: EventKind,
        ts: Timestamp,
        dir: Direction,
        flow_id: u64,
        endpoints: &Endpoints,
    ) -> Event {
        let (src, dst) = (endpoints[dir.index()], endpoints[dir.reverse().index()]);
        Event {
            ts,
            source_index: self.source_index,
            packet_number: None,
            flow_id,
            detector: Cow::Borrowed("tcp"),
            kind: Cow::Borrowed(kind.as_str()),
            severity: kind.severity(),
            direction: Some(dir),
            src_ip: Some(src.0),
            src_port: Some(src.1),
            dst_ip: Some(dst.0),
            dst_port: Some(dst.1),
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
    fn plain_packets_take_the_short_path_to_the_same_result() {
        use crate::decode::{Segment, TcpOptions};
        use crate::flow::Direction;
        use crate::tcp::analysis::{AnalysisLimits, SequenceAnalysis};
        use super::{Diagnostics, DiagnosticsConfig};
        // Seeded xorshift: connections of mostly plain ACKs and data (the short path), with
        // SYNs, FINs, RSTs, odd flags, repeats, zero windows, keep-alives and long silences
        // mixed in, so every story starts and ends somewhere along the way.
        let mut next = crate::testing::xorshift(0x2545_F491_4F6C_DD1Du64);
        let config = DiagnosticsConfig { half_open_ns: 2 * S, handshake_timeout_ns: 3 * S, ..DiagnosticsConfig::default() };
        let limits = AnalysisLimits::default();
        let mut short_taken = 0;
        for _ in 0..400 {
            let mut analysis = SequenceAnalysis::new();
            let (mut short, mut full) = (Diagnostics::new(), Diagnostics::new());
            let (mut short_out, mut full_out, mut analysis_out) = (Vec::new(), Vec::new(), Vec::new());
            let mut next_seq = [next() as u32, next() as u32];
            let mut t = T0;
            for i in 0..80u64 {
                let r = next();
                let dir = if r & 1 == 0 { Direction::Orig } else { Direction::Resp };
                let d = dir.index();
                t += match r >> 8 & 7 { 0 => 3 * S, 1 => 0, _ => (next() % 50) * MS };
                let flags = match r >> 12 & 31 {
                    0 => TcpFlags(TcpFlags::SYN),
                    1 => TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
                    2 => TcpFlags(TcpFlags::FIN | TcpFlags::ACK),
                    3 => TcpFlags(TcpFlags::RST),
                    4 => TcpFlags((next() & 0x3f) as u16),
                    _ => TcpFlags(TcpFlags::ACK | if r & 2 == 0 { TcpFlags::PSH } else { 0 }),
                };
                let len = if r >> 20 & 3 == 0 { 0 } else { (next() % 1_500) as u32 };
                let seq = match r >> 24 & 7 {
                    0 => next_seq[d].wrapping_sub(len.max(1)), // a repeat
                    1 => next_seq[d].wrapping_sub(1),          // keep-alive shaped
                    _ => next_seq[d],
                };
                next_seq[d] = next_seq[d].max(seq.wrapping_add(len));
                let (src, dst) = (("198.18.0.1".parse().unwrap(), 40_000), ("198.18.0.2".parse().unwrap(), 80));
                let ((src_ip, src_port), (dst_ip, dst_port)) = if d == 0 { (src, dst) } else { (dst, src) };
                let seg = Segment {
                    ts: Timestamp(t),
                    packet_number: i + 1,
                    source_index: 0,
                    src_ip,
                    dst_ip,
                    src_port,
                    dst_port,
                    seq,
                    ack: next_seq[1 - d].wrapping_sub((r >> 28 & 1) as u32 * 100),
                    flags,
                    window: if r >> 30 & 7 == 0 { 0 } else { 1_000 },
                    payload_len: len,
                    captured_payload_len: len,
                    ip_payload_len: len,
                    checksum: Default::default(),
                    ip_len: 40 + len,
                    ttl: 64,
                    ip_id: 0,
                    vlan: None,
                    options: TcpOptions::default(),
                };
                let a = analysis.on_segment(&seg, dir, 7, &limits, &mut analysis_out);
                let before = short_out.len();
                short.on_segment(&seg, dir, 7, &a, &config, &mut short_out);
                full.on_segment_full(&seg, dir, 7, &a, &config, &mut full_out);
                short_taken += (short_out.len() == before && a.flags.0 == 0 && seg.flags.0 & TcpFlags::ACK != 0) as u32;
                assert_eq!(short_out, full_out, "packet {}", i + 1);
                assert_eq!(format!("{short:?}"), format!("{full:?}"), "packet {}", i + 1);
            }
            let endpoints = [("198.18.0.1".parse().unwrap(), 40_000), ("198.18.0.2".parse().unwrap(), 80)];
            short.on_flow_end(Timestamp(t), CloseReason::EndOfInput, 7, &endpoints, &config, &mut short_out);
            full.on_flow_end(Timestamp(t), CloseReason::EndOfInput, 7, &endpoints, &config, &mut full_out);
            assert_eq!(short_out, full_out);
        }
        assert!(short_taken > 10_000, "the mix exercises the short path: {short_taken}");
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

    /// Connections without a rarer story (handshake, data both ways, FIN or RST close, a refused
    /// SYN) never create the cold part, and the inline part stays small.
    #[test]
    fn ordinary_connections_stay_inline() {
        use super::{Diagnostics, DiagnosticsConfig};
        use crate::flow::Direction;
        use crate::tcp::analysis::{AnalysisLimits, SequenceAnalysis};
        assert!(std::mem::size_of::<Diagnostics>() <= 96, "{}", std::mem::size_of::<Diagnostics>());
        let mut closed = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        closed.handshake(0, 10 * MS);
        closed.client_data(100 * MS, 500).server_ack(110 * MS).server_data(120 * MS, 1400).client_ack(130 * MS);
        closed.close(200 * MS, 10 * MS);
        let mut reset = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 5000);
        reset.handshake(0, 10 * MS);
        reset.client_data(100 * MS, 500).server_reset(110 * MS);
        let mut refused = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1000, 0);
        refused.push(0, syn(&refused)).server_reset(MS);
        let mut kinds = Vec::new();
        for c in [closed, reset, refused] {
            let (mut analysis, mut diagnostics) = (SequenceAnalysis::new(), Diagnostics::new());
            let mut out = Vec::new();
            for (n, (t, f)) in c.frames.iter().enumerate() {
                let seg = decode(LinkType::Ethernet, f, Timestamp(T0 + t), n as u64 + 1, 0).unwrap();
                let dir = if seg.src_port == 40000 { Direction::Orig } else { Direction::Resp };
                let a = analysis.on_segment(&seg, dir, 1, &AnalysisLimits::default(), &mut out);
                diagnostics.on_segment(&seg, dir, 1, &a, &DiagnosticsConfig::default(), &mut out);
            }
            assert!(diagnostics.cold.is_none(), "{out:?}");
            kinds.extend(out.iter().map(|e| e.kind.clone()));
        }
        assert!(kinds.iter().any(|k| k == EventKind::ConnectionRefused.as_str()), "{kinds:?}");
        assert!(kinds.iter().any(|k| k == EventKind::ConnectionReset.as_str()), "{kinds:?}");
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
        let endpoints = super::endpoints_of(&seg, crate::flow::Direction::Orig);
        d.on_timeout(Timestamp(T0 + 31 * S), 1, &endpoints, &dc, &mut out);
        assert_eq!(d.deadline(&dc), None, "spent");
        assert!(out.is_empty());
    }
}
