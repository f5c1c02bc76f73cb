//! Zeek's view of one TCP connection: endpoint states, `conn_state`, `history`, the sequence-span
//! sizes (`orig_bytes`/`resp_bytes`) and content gaps (`missed_bytes`, `g`/`G`).
//!
//! A behavioural model of Zeek's `TCPSessionAdapter::Process`, `TCP_Endpoint` and
//! `TCP_Reassembler` (see `research/tcp-analysis.md` §2.2–2.3), written from their documented and
//! observed behaviour, step for step in Zeek's order, because the order decides the letters:
//! history first, then the window, then sequence bookkeeping, then the state machine, then the ACK
//! that may reveal a content gap, then the payload.
//!
//! Endpoints are stored by *physical* side (index 0 = the side the engine calls `orig`, 1 = the
//! other); `zeek_orig` says which of them Zeek currently treats as the originator. A flip (`^`)
//! only changes `zeek_orig`, as Zeek's `FlipRoles` swaps its endpoint pointers while a packet in
//! flight keeps its `is_orig`.
//!
//! Memory: the model is embedded in every tracked connection, so what most connections never
//! need (blocks above a hole, gap bytes, the `T`/`W`/`G`/`C` counters) lives in a box created by
//! the first packet that needs it (`Cold`).
//!
//! Checksums are checked only with `--verify-checksums` (Zeek without `-C`): a bad one adds
//! `C`/`c` on the 1/10/100 rule and the packet is otherwise ignored, as Zeek drops it.
//! Not modelled: `X` (analyzer limits), deferred closes while reassembled data
//! is pending, and application analyzers that make Zeek skip a connection.

use compact_str::CompactString;
use crate::decode::{Segment, TcpFlags};
use crate::tcp::compact::Codec;
use crate::flow::Direction;
use crate::time::Timestamp;

/// Zeek's `TOO_LARGE_SEQ_DELTA`.
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;
/// Zeek's `tcp_max_initial_window`.
const MAX_INITIAL_WINDOW: u64 = 16_384;
/// Zeek's `tcp_max_above_hole_without_any_acks`.
const MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS: u64 = 16_384;
/// Zeek's `tcp_excessive_data_without_further_acks`.
const EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS: u64 = 10 * 1024 * 1024;
/// Bound on buffered out-of-order blocks per direction (Zeek's list is unbounded; beyond this the
/// direction stops reassembling, as Zeek does for excessive data).
const MAX_BLOCKS: usize = 512;

/// TCP ports Zeek's default scripts register as likely servers (`likely_server_ports`): every
/// TCP port of the protocol analyzers loaded by `base/init-default.zeek`.
const LIKELY_SERVER_PORTS: &[u16] = &[
    21, 22, 25, 53, 79, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587, 614, 631,
    636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222, 5223, 5269, 5432, 6379,
    6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

/// Whether Zeek's default configuration treats `port` as a likely server port.
pub fn is_likely_server_port(port: u16) -> bool {
    LIKELY_SERVER_PORTS.binary_search(&port).is_ok()
}

/// Zeek's `TCPAnalyzer::WantConnection` role guess for a connection whose first packet is not a
/// pure SYN: whether the sender of `seg` should be made the responder.
pub fn wants_flip(seg: &Segment) -> bool {
    let flags = seg.flags;
    if flags.pure_syn() {
        return false;
    }
    if !is_likely_server_port(seg.src_port) {
        return false;
    }
    if is_likely_server_port(seg.dst_port) {
        !flags.syn() && seg.src_port < seg.dst_port
    } else {
        true
    }
}

/// The longest history a packed connection keeps (Zeek's scaled counters keep real ones far
/// shorter); a longer one leaves its connection unpacked.
const MAX_HISTORY_PACKED: usize = 4096;

/// Zeek's endpoint states (`TCP_ENDPOINT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointState {
    /// Nothing seen.
    #[default]
    Inactive,
    /// Sent a SYN.
    SynSent,
    /// Sent a SYN/ACK as the originator.
    SynAckSent,
    /// Active without a handshake seen.
    Partial,
    /// Handshake seen.
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

#[inline]
fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Which of an endpoint's logarithmic history counters.
#[derive(Clone, Copy, Debug)]
enum Counter {
    /// Retransmitted data (`T`).
    Retransmission,
    /// A zero window (`W`).
    ZeroWindow,
    /// A content gap (`G`).
    Gap,
    /// A bad checksum (`C`).
    BadChecksum,
}

impl EndpointState {
    const ALL: [EndpointState; 7] = [
        EndpointState::Inactive,
        EndpointState::SynSent,
        EndpointState::SynAckSent,
        EndpointState::Partial,
        EndpointState::Established,
        EndpointState::Closed,
        EndpointState::Reset,
    ];
    fn codec(&mut self, c: &mut impl Codec) {
        let mut i = *self as u8;
        c.small(&mut i, 3);
        *self = EndpointState::ALL.get(usize::from(i)).copied().unwrap_or_default();
    }
}

/// Zeek's logarithmic history counters of one endpoint, one per [`Counter`]: each is true at its
/// 1st, 10th, 100th… hit.
#[derive(Clone, Debug, Default)]
struct ScaledCounters {
    /// Hits since the last letter's threshold was raised, per counter.
    count: [u32; 4],
    /// Each counter's threshold as a power of ten: `10u32.wrapping_pow(exp)` is exactly what Zeek's
    /// wrapping `threshold * 10` reaches (1, 10, … 10⁹, then 10¹⁰ mod 2³², where it stays), so
    /// `exp` never exceeds 10.
    exp: [u8; 4],
}

impl ScaledCounters {
    /// Counts one hit of `which`; true when a history letter is due.
    fn hit(&mut self, which: Counter) -> bool {
        let i = which as usize;
        let threshold = 10u32.wrapping_pow(u32::from(self.exp[i]));
        self.count[i] = self.count[i].wrapping_add(1);
        if self.count[i] != threshold {
            return false;
        }
        let next = threshold.wrapping_mul(10);
        if next <= threshold {
            self.count[i] = 0;
        } else {
            self.exp[i] += 1;
        }
        true
    }
}

impl ScaledCounters {
    fn codec(&mut self, c: &mut impl Codec) {
        let ScaledCounters { count, exp } = self;
        count.iter_mut().for_each(|n| c.u32(n));
        exp.iter_mut().for_each(|e| c.u8(e));
    }
}

/// Blocks above holes that one direction's reassembly model remembers.
const MAX_PENDING_BLOCKS: usize = 256;

/// The part of Zeek's `TCP_Reassembler` that every connection needs to decide content gaps: what
/// was delivered and what was trimmed by ACKs. Blocks held above a hole are in [`PendingBlocks`].
#[derive(Clone, Copy, Debug)]
struct Reassembly {
    /// Relative sequence number up to which data was delivered (Zeek's `last_reassem_seq`).
    last_reassem_seq: u64,
    /// Relative sequence number up to which ACKs trimmed the buffer (Zeek's `trim_seq`).
    trim_seq: u64,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly { last_reassem_seq: 1, trim_seq: 1 }
    }
}

/// The blocks one direction's reassembly model holds above a hole (out-of-order data).
///
/// Zeek's `LastBlock().upper` is not stored: wherever it matters it equals the last held block's
/// upper edge, or lies at or below `last_reassem_seq` when none is held.
#[derive(Clone, Debug, Default)]
struct PendingBlocks {
    /// Blocks not yet delivered, sorted, non-overlapping: `[seq, upper)`.
    blocks: Vec<(u64, u64)>,
    /// Blocks merged into a neighbour because `blocks` was full.
    merged_at_limit: u64,
}

impl PendingBlocks {
    /// Bytes in the held blocks.
    fn held_bytes(&self) -> u64 {
        self.blocks.iter().map(|&(s, u)| u - s).sum()
    }

    /// Bytes above `last_reassem_seq` up to the highest block (Zeek's `LastBlock().upper` minus
    /// `last_reassem_seq`).
    fn undelivered_bytes(&self, last_reassem_seq: u64) -> u64 {
        self.blocks.last().map_or(0, |&(_, upper)| upper.saturating_sub(last_reassem_seq))
    }

    /// Delivers blocks that now start at or below `last_reassem_seq` (`BlockInserted`).
    fn deliver_contiguous(&mut self, last_reassem_seq: &mut u64) {
        while let Some(&(seq, upper)) = self.blocks.first() {
            if seq > *last_reassem_seq {
                break;
            }
            if upper > *last_reassem_seq {
                *last_reassem_seq = upper;
            }
            self.blocks.remove(0);
        }
    }

    /// Inserts `[seq, upper)`, keeping only bytes not already covered.
    fn insert(&mut self, seq: u64, upper: u64) {
        // Merge with every overlapping or adjacent block.
        let mut lo = seq;
        let mut hi = upper;
        let mut i = 0;
        while i < self.blocks.len() {
            let (s, u) = self.blocks[i];
            if u < lo || s > hi {
                i += 1;
                continue;
            }
            lo = lo.min(s);
            hi = hi.max(u);
            self.blocks.remove(i);
        }
        if self.blocks.len() >= MAX_PENDING_BLOCKS {
            // Bounded: a sender that leaves hundreds of holes gets its newest block merged into
            // the nearest block at or below it (the held-bytes figure over-approximates), never
            // a longer list.
            let at = self.blocks.partition_point(|&(s, _)| s <= lo).saturating_sub(1);
            let block = &mut self.blocks[at];
            block.0 = block.0.min(lo);
            block.1 = block.1.max(hi);
            self.merged_at_limit += 1;
            return;
        }
        let at = self.blocks.partition_point(|&(s, _)| s < lo);
        self.blocks.insert(at, (lo, hi));
    }
}

impl PendingBlocks {
    fn codec(&mut self, c: &mut impl Codec) {
        let PendingBlocks { blocks, merged_at_limit } = self;
        let n = c.len(blocks.len(), |n| blocks.resize(n.min(MAX_PENDING_BLOCKS), (0, 0)));
        for (seq, upper) in blocks.iter_mut().take(n) {
            c.u64(seq);
            // The block's length: small where the edge itself is not.
            let mut len = upper.wrapping_sub(*seq);
            c.u64(&mut len);
            *upper = seq.wrapping_add(len);
        }
        c.u64(merged_at_limit);
    }
}

/// Endpoint flag: the endpoint sent a FIN (Zeek's `FIN_cnt > 0`).
const EP_FIN_SEEN: u8 = 0x1;
/// Endpoint flag: a packet of this endpoint closed the connection (`ConnectionClosed` ran).
const EP_DID_CLOSE: u8 = 0x2;
/// Endpoint flag: reassembly gave up on this direction (Zeek's `skip_deliveries`).
const EP_SKIP_DELIVERIES: u8 = 0x4;

/// One side of the connection, in Zeek's terms: the part every connection uses (the rest is in
/// [`EndpointCold`]).
#[derive(Clone, Debug, Default)]
struct Endpoint {
    /// Zeek's endpoint state.
    state: EndpointState,
    /// The state before the last change.
    prev_state: EndpointState,
    /// `EP_*` bits.
    flags: u8,
    /// Zeek's `start_seq` (always a 32-bit sequence number).
    start_seq: u32,
    /// One past the highest sequence number sent.
    last_seq: u32,
    /// Highest sequence number of this side's data that the peer acknowledged.
    ack_seq: u32,
    /// Times `last_seq` wrapped.
    seq_wraps: u32,
    /// Times `ack_seq` wrapped.
    ack_wraps: u32,
    /// Relative sequence number one past the last FIN (meaningful with `EP_FIN_SEEN`).
    fin_seq: u64,
    /// Relative end of the last lone FIN, for the repeated-`F` rule.
    hist_last_fin: u64,
    /// Relative sequence number of the last lone RST, for the repeated-`R` rule.
    hist_last_rst: u64,
    /// Delivery and trim points of this direction's reassembly model.
    reassembly: Reassembly,
}

impl Endpoint {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
    fn set(&mut self, flag: u8) {
        self.flags |= flag;
    }
    fn set_state(&mut self, state: EndpointState) {
        if state != self.state {
            self.prev_state = self.state;
            self.state = state;
        }
    }
    fn init_start_seq(&mut self, seq: u32) {
        self.start_seq = seq;
    }
    fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps = self.seq_wraps.wrapping_add(1);
        }
        self.last_seq = seq;
    }
    fn update_ack_seq(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps = self.ack_wraps.wrapping_add(1);
        }
        self.ack_seq = seq;
    }
    fn full(seq: u32, wraps: u32) -> u64 {
        ((wraps as u64) << 32).wrapping_add(seq as u64)
    }
    fn relative(&self, seq: u32, wraps: u32) -> u64 {
        Self::full(seq, wraps).wrapping_sub(self.start_seq as u64)
    }
    fn no_data_acked(&self) -> bool {
        let ack = Self::full(self.ack_seq, self.ack_wraps);
        let start = self.start_seq as u64;
        ack == start || ack == start.wrapping_add(1)
    }
    fn is_clean(&self) -> bool {
        self.state == EndpointState::Established
            || (self.state == EndpointState::Closed && self.prev_state == EndpointState::Established)
    }

    /// Zeek's `get_relative_seq`.
    fn relative_seq(&self, cur_base: u32, last: u32, wraps: u32, underflow: &mut bool) -> u64 {
        let mut wraps = wraps;
        let delta = seq_delta(cur_base, last);
        if delta < 0 {
            if wraps != 0 && cur_base > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur_base < last {
            wraps = wraps.wrapping_add(1);
        }
        if wraps == 0 {
            let delta = seq_delta(cur_base, self.start_seq);
            if delta < 0 {
                *underflow = true;
            }
            return delta as i64 as u64;
        }
        self.relative(cur_base, wraps)
    }
}

impl Endpoint {
    fn codec(&mut self, c: &mut impl Codec) {
        let Endpoint {
            state,
            prev_state,
            flags,
            start_seq,
            last_seq,
            ack_seq,
            seq_wraps,
            ack_wraps,
            fin_seq,
            hist_last_fin,
            hist_last_rst,
            reassembly: Reassembly { last_reassem_seq, trim_seq },
        } = self;
        state.codec(c);
        prev_state.codec(c);
        c.small(flags, 3);
        c.seq(start_seq);
        c.seq(last_seq);
        c.seq(ack_seq);
        c.u32(seq_wraps);
        c.u32(ack_wraps);
        c.u64(fin_seq);
        c.u64(hist_last_fin);
        c.u64(hist_last_rst);
        c.u64(last_reassem_seq);
        c.u64(trim_seq);
    }
}

/// The part of an endpoint that most connections never need (see [`Cold`]).
#[derive(Clone, Debug, Default)]
struct EndpointCold {
    /// Blocks held above a hole.
    pending: PendingBlocks,
    /// Bytes acknowledged but never seen (Zeek's `missed_bytes`).
    missed_bytes: u64,
    /// Relative sequence number of the last lone SYN, for the repeated-`S` rule: 0 for an
    /// ordinary first SYN, so only a SYN elsewhere stores it.
    hist_last_syn: u64,
    /// Retransmission, zero-window, gap and bad-checksum counters.
    counters: ScaledCounters,
}

impl EndpointCold {
    fn codec(&mut self, c: &mut impl Codec) {
        let EndpointCold { pending, missed_bytes, hist_last_syn, counters } = self;
        pending.codec(c);
        c.u64(missed_bytes);
        c.u64(hist_last_syn);
        counters.codec(c);
    }
}

/// Both endpoints' rarely needed state, by physical side. Boxed and created only by the first
/// packet that needs it (data above a hole, a content gap, a retransmission, a zero window, a bad
/// checksum, a SYN at a non-zero relative sequence number): an ordinary connection, even one
/// closed by a RST, never does, and with millions of flows each carries an 8-byte pointer instead
/// of these 144 bytes. Code that only reads it treats a missing box as all defaults.
#[derive(Clone, Debug, Default)]
struct Cold {
    /// Indexed by physical side, as `ZeekConnection::ep`.
    ep: [EndpointCold; 2],
}

/// Sizes: `TCP_Endpoint::Size`, which needs the peer's state.
fn endpoint_size(ep: &Endpoint, peer: &Endpoint) -> u64 {
    if ep.prev_state == EndpointState::SynSent
        && ep.state == EndpointState::Reset
        && peer.state == EndpointState::Inactive
        && !ep.no_data_acked()
    {
        return 0;
    }
    let last = Endpoint::full(ep.last_seq, ep.seq_wraps);
    let ack = Endpoint::full(ep.ack_seq, ep.ack_wraps);
    let top = if last > ack { last } else { ack };
    let mut size = top.wrapping_sub(ep.start_seq as u64);
    if size != 0 {
        size = size.wrapping_sub(1);
    }
    if ep.has(EP_FIN_SEEN) && size != 0 {
        size -= 1;
    }
    size
}

const HIST_SYN: u32 = 0x1;
const HIST_FIN: u32 = 0x2;
const HIST_RST: u32 = 0x4;
const HIST_FIN_RST: u32 = 0x8;
const HIST_DATA: u32 = 0x10;
const HIST_ACK: u32 = 0x20;
const HIST_MULTI_FLAG: u32 = 0x40;

const FIRST_ORIG: u8 = 1;
const FIRST_RESP: u8 = 2;

/// Zeek's model of one connection, embedded in every tracked connection: kept small, with what
/// few connections need boxed in `Cold`.
#[derive(Clone, Debug)]
pub struct ZeekConnection {
    /// Indexed by physical side: 0 = the engine's originator.
    ep: [Endpoint; 2],
    /// Inline up to 24 letters (almost every connection): no heap block per flow.
    history: CompactString,
    /// Rarely needed endpoint state, created by the first packet that needs it.
    cold: Option<Box<Cold>>,
    /// When the originator's first SYN started Zeek's `AttemptTimer` (meaningful with
    /// `attempt_timer`; an `Option` would take 8 bytes more).
    attempt_started: Timestamp,
    /// Zeek's `hist_seen`: `HIST_*` bits of the originator, the responder's shifted by 16.
    hist_seen: u32,
    /// Physical index (0 or 1) of Zeek's current originator.
    zeek_orig: u8,
    /// `FIRST_ORIG`/`FIRST_RESP`: whose first packet Zeek saw (`first_packet_seen`).
    first_packet_seen: u8,
    /// Zeek's `is_partial`: the connection is treated as begun without a handshake.
    is_partial: bool,
    /// Whether `attempt_started` is set.
    attempt_timer: bool,
}

impl ZeekConnection {
    /// A connection whose first packet is `seg`, sent by the engine's direction `dir`.
    pub fn new(seg: &Segment, dir: Direction) -> Self {
        let mut zc = ZeekConnection {
            ep: [Endpoint::default(), Endpoint::default()],
            history: CompactString::const_new(""),
            cold: None,
            attempt_started: Timestamp::ZERO,
            hist_seen: 0,
            zeek_orig: dir.index() as u8,
            first_packet_seen: 0,
            is_partial: false,
            attempt_timer: false,
        };
        if wants_flip(seg) {
            zc.flip_roles();
        }
        zc
    }

    /// An empty model to unpack into (see [`crate::tcp::compact`]).
    pub(crate) fn blank() -> Self {
        ZeekConnection {
            ep: [Endpoint::default(), Endpoint::default()],
            history: CompactString::const_new(""),
            cold: None,
            attempt_started: Timestamp::ZERO,
            hist_seen: 0,
            zeek_orig: 0,
            first_packet_seen: 0,
            is_partial: false,
            attempt_timer: false,
        }
    }

    /// Visits every field for packing (see [`crate::tcp::compact`]).
    pub(crate) fn codec(&mut self, c: &mut impl Codec) {
        let ZeekConnection {
            ep,
            history,
            cold,
            attempt_started,
            hist_seen,
            zeek_orig,
            first_packet_seen,
            is_partial,
            attempt_timer,
        } = self;
        ep.iter_mut().for_each(|e| e.codec(c));
        c.text(history, MAX_HISTORY_PACKED);
        c.option(cold, |c, cold| {
            let Cold { ep } = &mut **cold;
            ep.iter_mut().for_each(|e| e.codec(c));
        });
        c.time(&mut attempt_started.0);
        // The originator's bits and the responder's (shifted by 16), each a byte.
        let (mut orig, mut resp) = (*hist_seen as u16, (*hist_seen >> 16) as u16);
        c.u16(&mut orig);
        c.u16(&mut resp);
        *hist_seen = u32::from(orig) | u32::from(resp) << 16;
        c.small(zeek_orig, 1);
        c.small(first_packet_seen, 2);
        c.bool(is_partial);
        c.bool(attempt_timer);
    }

    /// The history string, as Zeek writes it.
    pub fn history(&self) -> &str {
        &self.history
    }

    /// Whether Zeek's originator is the engine's responder (the row must be swapped to match Zeek).
    pub fn flipped_against_engine(&self) -> bool {
        self.zeek_orig != 0
    }

    /// Physical index of Zeek's current originator.
    fn orig_side(&self) -> usize {
        self.zeek_orig as usize
    }
    fn orig(&self) -> &Endpoint {
        &self.ep[self.orig_side()]
    }
    fn resp(&self) -> &Endpoint {
        &self.ep[1 - self.orig_side()]
    }

    /// The rarely needed state of `side`, if it was ever created.
    fn cold(&self, side: usize) -> Option<&EndpointCold> {
        self.cold.as_deref().map(|c| &c.ep[side])
    }

    /// The rarely needed state of `side`, created on first use.
    fn cold_mut(&mut self, side: usize) -> &mut EndpointCold {
        &mut self.cold.get_or_insert_with(Box::default).ep[side]
    }

    /// `orig_bytes`, `resp_bytes` in Zeek's orientation.
    pub fn sizes(&self) -> (u64, u64) {
        let o = self.orig_side();
        (endpoint_size(&self.ep[o], &self.ep[1 - o]), endpoint_size(&self.ep[1 - o], &self.ep[o]))
    }

    /// Content-gap bytes of each engine direction (orig, resp).
    pub fn missed_bytes_by_engine_direction(&self) -> [u64; 2] {
        let missed = |side| self.cold(side).map_or(0, |c| c.missed_bytes);
        [missed(0), missed(1)]
    }

    /// Whether Zeek considers the connection closed and schedules its removal (`close_complete`
    /// in `ConnectionClosed`): a side closed and either it reset, or the peer closed too, or the
    /// peer never sent anything.
    pub fn close_complete(&self) -> bool {
        (0..2).any(|i| {
            let ep = &self.ep[i];
            let peer = &self.ep[1 - i];
            ep.has(EP_DID_CLOSE)
                && (ep.state == EndpointState::Reset || peer.has(EP_DID_CLOSE) || peer.state == EndpointState::Inactive)
        })
    }

    /// When the originator's SYN started the attempt timer (Zeek ends the connection
    /// `tcp_attempt_delay` later if the responder is still silent).
    pub fn attempt_started(&self) -> Option<Timestamp> {
        self.attempt_timer.then_some(self.attempt_started)
    }

    /// Whether the attempt timer, firing now, removes the connection.
    pub fn attempt_expired(&self) -> bool {
        matches!(self.orig().state, EndpointState::SynSent | EndpointState::SynAckSent)
            && self.resp().state == EndpointState::Inactive
    }

    /// Zeek's `conn_state`, from the endpoint states, sizes and history.
    pub fn conn_state(&self) -> &'static str {
        use EndpointState::*;
        let (os, rs) = (self.orig().state, self.resp().state);
        let o_inactive = matches!(os, Inactive | Partial);
        let r_inactive = matches!(rs, Inactive | Partial);
        if rs == Reset {
            let (osize, rsize) = self.sizes();
            if matches!(os, SynSent | SynAckSent) || (os == Reset && osize == 0 && rsize == 0) {
                "REJ"
            } else if o_inactive {
                "RSTRH"
            } else {
                "RSTR"
            }
        } else if os == Reset {
            if r_inactive {
                if history_is_rstos0(&self.history) {
                    "RSTOS0"
                } else {
                    "OTH"
                }
            } else {
                "RSTO"
            }
        } else if os == Closed && rs == Closed {
            "SF"
        } else if os == Closed {
            if r_inactive {
                "SH"
            } else {
                "S2"
            }
        } else if rs == Closed {
            if o_inactive {
                "SHR"
            } else {
                "S3"
            }
        } else if os == SynSent && rs == Inactive {
            "S0"
        } else if os == Established && rs == Established {
            "S1"
        } else {
            "OTH"
        }
    }

    fn flip_roles(&mut self) {
        self.zeek_orig = 1 - self.zeek_orig;
        let f = self.first_packet_seen;
        self.first_packet_seen =
            (if f & FIRST_ORIG != 0 { FIRST_RESP } else { 0 }) | (if f & FIRST_RESP != 0 { FIRST_ORIG } else { 0 });
        self.is_partial = false;
        self.history.push('^');
    }

    fn is_orig(&self, side: usize) -> bool {
        side == self.orig_side()
    }

    fn add_history(&mut self, side: usize, code: char) {
        let code = if self.is_orig(side) { code } else { code.to_ascii_lowercase() };
        self.history.push(code);
    }

    /// `TCP_Endpoint::CheckHistory`: adds `code` the first time; true if already seen.
    #[inline]
    fn check_history(&mut self, side: usize, mask: u32, code: char) -> bool {
        // Seen already, the usual case: then the history is not a lone "H" (that has only its
        // SYN bit set), so nothing in `check_history_first` can apply.
        if self.hist_seen & if self.is_orig(side) { mask } else { mask << 16 } != 0 {
            return true;
        }
        self.check_history_first(side, mask, code)
    }

    #[inline(never)]
    fn check_history_first(&mut self, side: usize, mask: u32, code: char) -> bool {
        if (code == 'A' || code == 'D') && self.history == "H" {
            // A connection that began with a SYN/ACK now carries productive traffic: flip it.
            self.flip_roles();
            self.history = CompactString::const_new("^h");
            self.set_first_packet_seen(true);
        }
        let (mask, code) =
            if self.is_orig(side) { (mask, code) } else { (mask << 16, code.to_ascii_lowercase()) };
        if self.hist_seen & mask == 0 {
            self.hist_seen |= mask;
            self.history.push(code);
            false
        } else {
            true
        }
    }

    /// A packet whose TCP checksum is wrong (Zeek's `bad_TCP_checksum`): `C`/`c` on the
    /// 1/10/100 rule; Zeek analyses nothing else of it.
    pub fn on_bad_checksum(&mut self, dir: Direction) {
        self.scaled_history(dir.index(), 'C', Counter::BadChecksum);
    }

    /// Counts a hit of `side`'s counter `which` and adds `code` when one is due.
    fn scaled_history(&mut self, side: usize, code: char, which: Counter) {
        if self.cold_mut(side).counters.hit(which) {
            self.add_history(side, code);
        }
    }

    fn set_first_packet_seen(&mut self, is_orig: bool) {
        self.first_packet_seen |= if is_orig { FIRST_ORIG } else { FIRST_RESP };
    }

    fn set_partial_status(&mut self, flags: TcpFlags, is_orig: bool) {
        if is_orig {
            if self.first_packet_seen & FIRST_ORIG == 0 {
                self.is_partial = !flags.syn() || flags.ack();
            }
        } else if self.first_packet_seen & FIRST_RESP == 0 && !self.is_partial {
            self.is_partial = !flags.syn();
        }
    }

    /// Processes one packet sent by the engine's direction `dir` (Zeek's `Process`).
    pub fn on_segment(&mut self, seg: &Segment, dir: Direction) {
        let side = dir.index();
        let peer_side = 1 - side;
        let is_orig = self.is_orig(side);
        let flags = seg.flags;
        // Zeek takes the payload length from the IP header alone (padding an overlong IPv4 length
        // covers counts as data), where the Wireshark rules use the bounded `payload_len`.
        let len = seg.ip_payload_len;
        let base_seq = seg.seq;
        let ack_seq = seg.ack;

        self.set_partial_status(flags, is_orig);

        // get_segment_len: SYN and FIN take one octet each; a RST's payload is not stream data.
        let mut seg_len = len.wrapping_add(flags.syn() as u32).wrapping_add(flags.fin() as u32);
        if flags.rst() {
            seg_len = seg_len.wrapping_sub(len);
        }
        let seq_one_past_segment = base_seq.wrapping_add(seg_len);

        self.init_endpoint(side, flags, base_seq, seq_one_past_segment);

        let mut seq_underflow = false;
        let rel_seq = {
            let ep = &self.ep[side];
            ep.relative_seq(base_seq, ep.last_seq, ep.seq_wraps, &mut seq_underflow)
        };

        self.update_history(side, flags, rel_seq, len as u64);
        self.update_window(side, seg.window, flags);

        if flags.fin() {
            let ep = &mut self.ep[side];
            ep.set(EP_FIN_SEEN);
            ep.fin_seq = rel_seq.wrapping_add(seg_len as u64);
        }

        let mut rel_ack = 0u64;
        if flags.ack() {
            if self.ep[peer_side].state == EndpointState::Inactive {
                rel_ack = 1;
                let peer = &mut self.ep[peer_side];
                let start = ack_seq.wrapping_sub(1);
                peer.init_start_seq(start);
                peer.ack_seq = start;
                peer.last_seq = start;
            } else {
                let mut ack_underflow = false;
                let peer = &self.ep[peer_side];
                rel_ack = peer.relative_seq(ack_seq, peer.ack_seq, peer.ack_wraps, &mut ack_underflow);
                if ack_underflow {
                    rel_ack = 0;
                } else if !flags.rst() {
                    let peer = &mut self.ep[peer_side];
                    let delta_ack = seq_delta(ack_seq, peer.ack_seq);
                    if ack_seq == 0 && delta_ack > TOO_LARGE_SEQ_DELTA {
                        // A broken ACK rather than a wrap onto 0.
                    } else if delta_ack > 0 {
                        peer.update_ack_seq(ack_seq);
                    }
                }
            }
        }

        let delta_last = self.update_last_seq(side, seq_one_past_segment, flags, len);

        // Without SYN, FIN or RST, only an inactive endpoint changes state.
        let do_close = if flags.any(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST)
            || self.ep[side].state == EndpointState::Inactive
        {
            self.update_state_machine(seg.ts, side, base_seq, len, delta_last, is_orig, flags).0
        } else {
            false
        };

        if flags.ack() {
            self.ack_received(peer_side, rel_ack);
        }

        // CheckPIA_FirstPacket, with the (possibly stale) is_orig of this packet.
        if is_orig {
            self.first_packet_seen |= FIRST_ORIG;
        } else {
            self.first_packet_seen |= FIRST_RESP;
        }

        let rel_data_seq = if flags.syn() { rel_seq.wrapping_add(1) } else { rel_seq };
        if len > 0 && !flags.rst() && !seq_underflow && seg.captured_payload_len >= seg.payload_len {
            self.data_sent(side, rel_data_seq, len as u64);
        }

        if do_close {
            // ConnectionClosed, without deferral for pending reassembly.
            self.ep[side].set(EP_DID_CLOSE);
        }
    }

    fn init_endpoint(&mut self, side: usize, flags: TcpFlags, first_seg_seq: u32, last_seq: u32) {
        let ep = &mut self.ep[side];
        match ep.state {
            EndpointState::Inactive => {
                let mut last_seq = last_seq;
                if flags.syn() {
                    ep.ack_seq = first_seg_seq;
                    ep.init_start_seq(first_seg_seq);
                } else {
                    ep.ack_seq = first_seg_seq.wrapping_sub(1);
                    ep.init_start_seq(first_seg_seq.wrapping_sub(1));
                    last_seq = first_seg_seq;
                }
                ep.last_seq = last_seq;
            }
            EndpointState::SynSent | EndpointState::SynAckSent => {
                if flags.syn() && first_seg_seq != ep.start_seq {
                    ep.init_start_seq(first_seg_seq);
                    ep.ack_seq = first_seg_seq;
                    ep.last_seq = last_seq;
                }
            }
            EndpointState::Established | EndpointState::Partial => {
                if flags.syn() {
                    ep.init_start_seq(first_seg_seq);
                    ep.ack_seq = first_seg_seq;
                    ep.last_seq = last_seq;
                }
            }
            EndpointState::Reset => {
                if flags.syn() && ep.prev_state == EndpointState::Inactive {
                    ep.init_start_seq(first_seg_seq);
                    ep.ack_seq = first_seg_seq;
                    ep.last_seq = last_seq;
                }
            }
            EndpointState::Closed => {}
        }
    }

    fn update_history(&mut self, side: usize, flags: TcpFlags, rel_seq: u64, len: u64) {
        let bits = flags.syn() as u8 + flags.fin() as u8 + flags.rst() as u8;
        if bits > 1 {
            if flags.fin() && flags.rst() {
                self.check_history(side, HIST_FIN_RST, 'I');
            } else {
                self.check_history(side, HIST_MULTI_FLAG, 'Q');
            }
        } else if bits == 1 {
            if flags.syn() {
                let code = if flags.ack() { 'H' } else { 'S' };
                let last_syn = self.cold(side).map_or(0, |c| c.hist_last_syn);
                if self.check_history(side, HIST_SYN, code) && rel_seq != last_syn {
                    self.add_history(side, code);
                }
                if rel_seq != last_syn {
                    // A missing box holds 0: the usual first SYN, at relative 0, needs none.
                    self.cold_mut(side).hist_last_syn = rel_seq;
                }
            }
            if flags.fin() {
                let at = rel_seq.wrapping_add(len);
                if self.check_history(side, HIST_FIN, 'F') && at != self.ep[side].hist_last_fin {
                    self.add_history(side, 'F');
                }
                self.ep[side].hist_last_fin = at;
            }
            if flags.rst() {
                if self.check_history(side, HIST_RST, 'R') && rel_seq != self.ep[side].hist_last_rst {
                    self.add_history(side, 'R');
                }
                self.ep[side].hist_last_rst = rel_seq;
            }
        } else if len > 0 {
            self.check_history(side, HIST_DATA, 'D');
        } else if flags.ack() {
            self.check_history(side, HIST_ACK, 'A');
        }
    }

    fn update_window(&mut self, side: usize, window: u16, flags: TcpFlags) {
        // Zeek scales the window first; a scaled window is zero exactly when the raw one is.
        let peer_closed = self.ep[1 - side].state == EndpointState::Closed;
        if window == 0 && !flags.rst() && !peer_closed && self.ep[side].state != EndpointState::Reset {
            self.scaled_history(side, 'W', Counter::ZeroWindow);
        }
    }

    fn update_last_seq(&mut self, side: usize, last_seq: u32, flags: TcpFlags, len: u32) -> i32 {
        let ep = &mut self.ep[side];
        let delta_last = seq_delta(last_seq, ep.last_seq);
        if (flags.syn() || flags.rst()) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last) {
            // Not trusted.
        } else if flags.fin() && ep.last_seq == ep.start_seq.wrapping_add(1) {
            ep.update_last_seq(last_seq);
        } else if ep.state == EndpointState::Reset {
            // Nothing after a RST is trusted.
        } else if delta_last > 0 {
            ep.update_last_seq(last_seq);
        } else if len > 0 {
            self.scaled_history(side, 'T', Counter::Retransmission);
        }
        delta_last
    }

    #[allow(clippy::too_many_arguments)]
    fn update_state_machine(
        &mut self,
        ts: Timestamp,
        side: usize,
        base_seq: u32,
        len: u32,
        delta_last: i32,
        is_orig: bool,
        flags: TcpFlags,
    ) -> (bool, bool) {
        use EndpointState::*;
        let peer_side = 1 - side;
        let mut do_close = false;
        let mut gen_event = false;
        match self.ep[side].state {
            Inactive => {
                if flags.syn() {
                    if is_orig {
                        if flags.ack() {
                            self.ep[side].set_state(SynAckSent);
                        } else {
                            self.ep[side].set_state(SynSent);
                        }
                        if !self.attempt_timer {
                            self.attempt_timer = true;
                            self.attempt_started = ts;
                        }
                    } else {
                        if !flags.ack() && self.ep[peer_side].state == SynAckSent && base_seq == self.ep[side].start_seq
                        {
                            // A SYN/SYN-ACK reversal: flip and establish.
                            self.is_partial = false;
                            self.flip_roles();
                            self.ep[peer_side].set_state(Established);
                            self.set_first_packet_seen(true);
                        }
                        if self.ep[peer_side].state == SynSent {
                            self.ep[peer_side].set_state(Established);
                        }
                        self.ep[side].set_state(Established);
                    }
                }
                if flags.fin() {
                    self.ep[side].set_state(Closed);
                    do_close = true;
                    gen_event = true;
                }
                if flags.rst() {
                    self.ep[side].set_state(Reset);
                    do_close = true;
                }
                if self.ep[side].state == Inactive {
                    let orig_state = self.orig().state;
                    if !is_orig && len == 0 && orig_state == SynSent {
                        // An ACK of the SYN before the SYN/ACK: not a partial connection.
                    } else if flags.ack() && self.ep[peer_side].state == Established {
                        self.ep[side].set_state(Established);
                        self.is_partial = false;
                        self.set_first_packet_seen(is_orig);
                    } else {
                        self.ep[side].set_state(Partial);
                    }
                }
            }
            SynSent | SynAckSent => {
                if flags.fin() {
                    self.ep[side].set_state(Closed);
                    do_close = true;
                    gen_event = true;
                }
                if flags.rst() {
                    self.ep[side].set_state(Reset);
                    do_close = true;
                }
            }
            Established | Partial => {
                if flags.syn()
                    && self.ep[side].state == Partial
                    && self.ep[peer_side].state == Inactive
                    && !flags.ack()
                {
                    self.ep[side].set_state(SynSent);
                }
                if flags.fin() && !flags.rst() {
                    self.ep[side].set_state(Closed);
                    let peer = &mut self.ep[peer_side];
                    if peer.state == Reset && peer.prev_state == Closed {
                        // FIN then RST from the peer: a normal termination after all.
                        peer.set_state(Closed);
                    }
                    do_close = true;
                    gen_event = true;
                }
                if flags.rst() {
                    self.ep[side].set_state(Reset);
                    do_close = true;
                }
            }
            Closed => {
                let _ = delta_last;
                if flags.rst() && self.ep[peer_side].state != Closed {
                    self.ep[side].set_state(Reset);
                    if !self.ep[side].has(EP_DID_CLOSE) {
                        do_close = true;
                    }
                }
            }
            Reset => {}
        }
        (do_close, gen_event)
    }

    /// `TCP_Endpoint::AckReceived` on the data sender `side` (`TCP_Reassembler::AckReceived`).
    fn ack_received(&mut self, side: usize, seq: u64) {
        let mut seq = seq;
        {
            let ep = &self.ep[side];
            if ep.has(EP_FIN_SEEN) && seq >= ep.fin_seq {
                seq = ep.fin_seq.wrapping_sub(1);
            }
            if seq <= ep.reassembly.trim_seq {
                return;
            }
        }
        self.trim_to_seq(side, seq);
    }

    fn trim_to_seq(&mut self, side: usize, seq: u64) {
        if seq > self.ep[side].reassembly.last_reassem_seq {
            self.undelivered(side, seq);
        }
        let r = &mut self.ep[side].reassembly;
        if let Some(cold) = self.cold.as_deref_mut() {
            let pending = &mut cold.ep[side].pending;
            pending.blocks.retain(|&(_, upper)| upper > seq);
            if pending.blocks.first().is_some_and(|&(s, _)| s == r.last_reassem_seq) {
                pending.deliver_contiguous(&mut r.last_reassem_seq);
            }
        }
        r.trim_seq = seq;
    }

    /// `TCP_Reassembler::Undelivered`: data up to `up_to_seq` is acknowledged but never seen.
    fn undelivered(&mut self, side: usize, up_to_seq: u64) {
        if up_to_seq <= 2 && self.is_partial {
            // The first ACK of a partial connection (or one octet past a keep-alive): ignored,
            // without moving the delivery point, as Zeek does.
            return;
        }
        if !self.ep[side].has(EP_SKIP_DELIVERIES) {
            loop {
                let last = self.ep[side].reassembly.last_reassem_seq;
                let next = self
                    .cold(side)
                    .and_then(|c| c.pending.blocks.iter().copied().find(|&(s, _)| s >= last && s < up_to_seq));
                let Some((block_seq, _)) = next else { break };
                self.gap(side, last, block_seq - last);
                let r = &mut self.ep[side].reassembly;
                r.last_reassem_seq = block_seq;
                // The block came from the box, so it exists.
                if let Some(cold) = self.cold.as_deref_mut() {
                    cold.ep[side].pending.deliver_contiguous(&mut r.last_reassem_seq);
                }
            }
            let last = self.ep[side].reassembly.last_reassem_seq;
            if up_to_seq > last {
                self.gap(side, last, up_to_seq - last);
            }
        }
        let r = &mut self.ep[side].reassembly;
        if up_to_seq > r.last_reassem_seq {
            r.last_reassem_seq = up_to_seq;
        }
    }

    /// `TCP_Reassembler::Gap`: counted only while both sides are cleanly established or closing.
    fn gap(&mut self, side: usize, _seq: u64, len: u64) {
        if len == 0 {
            return;
        }
        if self.ep[side].is_clean() && self.ep[1 - side].is_clean() {
            self.scaled_history(side, 'G', Counter::Gap);
            self.cold_mut(side).missed_bytes += len;
        }
    }

    /// `TCP_Reassembler::DataSent` for payload at relative `seq`.
    fn data_sent(&mut self, side: usize, seq: u64, len: u64) {
        let (ack, no_data_acked) = {
            let ep = &self.ep[side];
            (ep.relative(ep.ack_seq, ep.ack_wraps), ep.no_data_acked())
        };
        if self.ep[side].has(EP_SKIP_DELIVERIES) {
            return;
        }
        // Only while no data is acknowledged (rare) is the endpoint's size needed.
        let no_data_acked_and_big =
            no_data_acked && endpoint_size(&self.ep[side], &self.ep[1 - side]) > MAX_INITIAL_WINDOW;
        let r = &mut self.ep[side].reassembly;
        let mut seq = seq;
        let upper = seq.saturating_add(len);
        if seq < ack {
            if upper <= ack {
                return;
            }
            seq = ack;
        }
        // NewBlock.
        if upper <= r.trim_seq {
            return;
        }
        if seq < r.trim_seq {
            seq = r.trim_seq;
        }
        if seq <= r.last_reassem_seq && upper > r.last_reassem_seq {
            r.last_reassem_seq = upper;
            if let Some(cold) = self.cold.as_deref_mut() {
                cold.ep[side].pending.deliver_contiguous(&mut r.last_reassem_seq);
            }
        } else if seq > r.last_reassem_seq {
            // Data above a hole: the one place the block list is created.
            self.cold.get_or_insert_with(Box::default).ep[side].pending.insert(seq, upper);
        }
        if no_data_acked_and_big {
            // Much data and no ACK: the peer's ACKs are not visible; stop holding delivered data.
            let at = r.last_reassem_seq;
            if at > r.trim_seq {
                r.trim_seq = at;
            }
        }
        let r = *r;
        let pending = self.cold.as_deref().map(|c| &c.ep[side].pending);
        // Zeek's `DataSize`: delivered but not yet acknowledged, plus the blocks above a hole.
        let held_bytes =
            || r.last_reassem_seq.saturating_sub(r.trim_seq) + pending.map_or(0, PendingBlocks::held_bytes);
        if (no_data_acked
            && pending.map_or(0, |p| p.undelivered_bytes(r.last_reassem_seq)) > MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS)
            || held_bytes() > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
            || pending.map_or(0, |p| p.blocks.len()) > MAX_BLOCKS
        {
            if let Some(cold) = self.cold.as_deref_mut() {
                // Never used again: free it.
                cold.ep[side].pending.blocks = Vec::new();
            }
            self.ep[side].set(EP_SKIP_DELIVERIES);
        }
    }
}

/// Zeek's `/^\^?S[^HAFGIQ]*R.*/` on the whole history.
fn history_is_rstos0(history: &str) -> bool {
    let h = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = h.strip_prefix('S') else { return false };
    for c in rest.chars() {
        if c == 'R' {
            return true;
        }
        if "HAFGIQ".contains(c) {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpOptions;

    const CLIENT: &str = "10.0.0.1";
    const SERVER: &str = "10.0.0.2";
    const CISN: u32 = 1000;
    const SISN: u32 = 5000;

    /// One packet of a scripted conversation.
    struct P {
        from_client: bool,
        flags: &'static str,
        seq: u32,
        ack: u32,
        len: u32,
        window: u16,
    }

    fn p(from_client: bool, flags: &'static str, seq: u32, ack: u32, len: u32) -> P {
        P { from_client, flags, seq, ack, len, window: 1000 }
    }
    fn c(flags: &'static str, seq: u32, ack: u32, len: u32) -> P {
        p(true, flags, seq, ack, len)
    }
    fn s(flags: &'static str, seq: u32, ack: u32, len: u32) -> P {
        p(false, flags, seq, ack, len)
    }

    fn flags_of(text: &str) -> u16 {
        text.chars()
            .map(|ch| match ch {
                'S' => TcpFlags::SYN,
                'A' => TcpFlags::ACK,
                'F' => TcpFlags::FIN,
                'R' => TcpFlags::RST,
                'P' => TcpFlags::PSH,
                _ => panic!("flag {ch}"),
            })
            .fold(0, |a, b| a | b)
    }

    /// Runs packets 1 ms apart between CLIENT:`cport` and SERVER:`sport`. The engine's originator
    /// is the client, as `Connection` would choose for these scripts.
    fn run_ports(cport: u16, sport: u16, packets: &[P]) -> ZeekConnection {
        let mut zc: Option<ZeekConnection> = None;
        for (i, pk) in packets.iter().enumerate() {
            let (src, sp, dst, dp) =
                if pk.from_client { (CLIENT, cport, SERVER, sport) } else { (SERVER, sport, CLIENT, cport) };
            let seg = Segment {
                ts: Timestamp::from_secs_nanos(1_000, i as u64 * 1_000_000),
                packet_number: i as u64 + 1,
                source_index: 0,
                src_ip: src.parse().unwrap(),
                dst_ip: dst.parse().unwrap(),
                src_port: sp,
                dst_port: dp,
                seq: pk.seq,
                ack: pk.ack,
                flags: TcpFlags(flags_of(pk.flags)),
                window: pk.window,
                payload_len: pk.len,
                captured_payload_len: pk.len,
                ip_payload_len: pk.len,
                checksum: Default::default(),
                ip_len: 40 + pk.len,
                ttl: 64,
                ip_id: 0,
                vlan: None,
                options: TcpOptions::default(),
            };
            let dir = if pk.from_client { Direction::Orig } else { Direction::Resp };
            zc.get_or_insert_with(|| ZeekConnection::new(&seg, dir)).on_segment(&seg, dir);
        }
        zc.expect("at least one packet")
    }

    fn run(packets: &[P]) -> ZeekConnection {
        run_ports(40000, 5001, packets)
    }

    fn handshake() -> Vec<P> {
        vec![c("S", CISN, 0, 0), s("SA", SISN, CISN + 1, 0), c("A", CISN + 1, SISN + 1, 0)]
    }

    fn with(mut v: Vec<P>, more: Vec<P>) -> Vec<P> {
        v.extend(more);
        v
    }

    fn check(packets: &[P], state: &str, history: &str) {
        let z = run(packets);
        assert_eq!((z.conn_state(), z.history()), (state, history));
    }

    // ---- conn_state -------------------------------------------------------------------------

    #[test]
    fn reassembly_pending_list_is_bounded() {
        let mut r = PendingBlocks::default();
        for k in 0..10_000u64 {
            // one byte every other byte above a hole at 1: a hole after every block
            r.insert(100 + 2 * k, 101 + 2 * k);
        }
        assert_eq!(r.blocks.len(), MAX_PENDING_BLOCKS);
        assert!(r.merged_at_limit > 0);
        assert!(r.blocks.windows(2).all(|w| w[0].1 <= w[1].0), "sorted, non-overlapping");
        assert_eq!(r.blocks.last().unwrap().1, 100 + 2 * 9_999 + 1);
    }

    #[test]
    fn s0_attempt_without_reply() {
        check(&[c("S", CISN, 0, 0)], "S0", "S");
    }

    #[test]
    fn s1_established_not_closed() {
        check(&handshake(), "S1", "ShA");
        // The SYN/ACK alone already moves both sides to established.
        check(&[c("S", CISN, 0, 0), s("SA", SISN, CISN + 1, 0)], "S1", "Sh");
    }

    #[test]
    fn sf_normal_close() {
        let v = with(
            handshake(),
            vec![
                c("FA", CISN + 1, SISN + 1, 0),
                s("FA", SISN + 1, CISN + 2, 0),
                c("A", CISN + 2, SISN + 2, 0),
            ],
        );
        check(&v, "SF", "ShAFf");
    }

    #[test]
    fn rej_syn_answered_by_rst() {
        check(&[c("S", CISN, 0, 0), s("RA", 0, CISN + 1, 0)], "REJ", "Sr");
    }

    #[test]
    fn s2_and_s3_half_closes() {
        check(&with(handshake(), vec![c("FA", CISN + 1, SISN + 1, 0)]), "S2", "ShAF");
        check(&with(handshake(), vec![s("FA", SISN + 1, CISN + 1, 0)]), "S3", "ShAf");
    }

    #[test]
    fn rsto_and_rstr_aborts() {
        check(&with(handshake(), vec![c("RA", CISN + 1, SISN + 1, 0)]), "RSTO", "ShAR");
        check(&with(handshake(), vec![s("RA", SISN + 1, CISN + 1, 0)]), "RSTR", "ShAr");
    }

    #[test]
    fn rstos0_syn_then_rst_from_originator() {
        check(&[c("S", CISN, 0, 0), c("R", CISN + 1, 0, 0)], "RSTOS0", "SR");
    }

    #[test]
    fn oth_midstream_and_originator_rst_without_syn() {
        check(&[c("PA", CISN, SISN, 10), s("A", SISN, CISN + 10, 0)], "OTH", "Da");
        // A RST from a mid-stream originator is not RSTOS0: the history has no leading S.
        check(&[c("PA", CISN, SISN, 10), c("R", CISN + 10, 0, 0)], "OTH", "DR");
    }

    #[test]
    fn rstrh_and_shr_responder_without_syn() {
        // A SYN/ACK from port 80 first: Zeek makes its receiver the originator at once (`^`).
        let z = run_ports(40000, 80, &[s("SA", SISN, CISN + 1, 0), s("R", SISN + 1, 0, 0)]);
        assert_eq!((z.conn_state(), z.history()), ("RSTRH", "^hr"));
        let z = run_ports(40000, 80, &[s("SA", SISN, CISN + 1, 0), s("FA", SISN + 1, CISN + 1, 0)]);
        assert_eq!((z.conn_state(), z.history()), ("SHR", "^hf"));
    }

    #[test]
    fn sh_originator_syn_then_fin() {
        check(&[c("S", CISN, 0, 0), c("F", CISN + 1, 0, 0)], "SH", "SF");
    }

    // ---- history letters ----------------------------------------------------------------------

    #[test]
    fn syn_letters_repeat_only_with_a_new_sequence_number() {
        check(&[c("S", CISN, 0, 0), c("S", CISN, 0, 0)], "S0", "S");
        // A SYN with a new ISN while the attempt is pending restarts the sequence space (Zeek's
        // SYN_seq_jump), so it is not a new letter; after a RST it is.
        check(&[c("S", CISN, 0, 0), c("S", CISN + 77, 0, 0)], "S0", "S");
        assert_eq!(run(&[c("S", CISN, 0, 0), c("R", CISN + 1, 0, 0), c("S", CISN + 77, 0, 0)]).history(), "SRS");
        // The responder's own pure SYN is a lower-case s (simultaneous open).
        let z = run(&[c("S", CISN, 0, 0), s("S", SISN, 0, 0)]);
        assert_eq!(z.history(), "Ss");
        let z = run(&[c("S", CISN, 0, 0), s("SA", SISN, CISN + 1, 0), s("SA", SISN, CISN + 1, 0)]);
        assert_eq!(z.history(), "Sh");
        let z = run(&[
            c("S", CISN, 0, 0),
            s("SA", SISN, CISN + 1, 0),
            s("R", SISN + 1, 0, 0),
            s("SA", SISN + 9, CISN + 1, 0),
        ]);
        assert_eq!(z.history(), "Shrh");
    }

    #[test]
    fn ack_and_data_letters_appear_once_per_direction() {
        let v = with(
            handshake(),
            vec![
                c("A", CISN + 1, SISN + 1, 0),
                c("PA", CISN + 1, SISN + 1, 10),
                c("PA", CISN + 11, SISN + 1, 10),
                s("PA", SISN + 1, CISN + 21, 5),
                s("PA", SISN + 6, CISN + 21, 5),
                s("A", SISN + 11, CISN + 21, 0),
            ],
        );
        check(&v, "S1", "ShADda");
        let z = run(&[c("PA", CISN, SISN, 10), s("A", SISN, CISN + 10, 0), s("A", SISN, CISN + 10, 0)]);
        assert_eq!(z.history(), "Da");
    }

    #[test]
    fn fin_letters_repeat_when_the_fin_moves() {
        let v = with(handshake(), vec![c("FA", CISN + 1, SISN + 1, 0), c("FA", CISN + 1, SISN + 1, 0)]);
        check(&v, "S2", "ShAF");
        // A FIN after more data is a new FIN.
        let v = with(
            handshake(),
            vec![c("FA", CISN + 1, SISN + 1, 0), c("FPA", CISN + 1, SISN + 1, 5)],
        );
        assert_eq!(run(&v).history(), "ShAFF");
    }

    #[test]
    fn rst_letters_repeat_when_the_sequence_number_changes() {
        let v = with(handshake(), vec![c("R", CISN + 1, 0, 0), c("R", CISN + 1, 0, 0), c("R", CISN + 50, 0, 0)]);
        check(&v, "RSTO", "ShARR");
    }

    #[test]
    fn fin_rst_together_is_i_and_other_flag_mixes_are_q() {
        let z = run(&with(handshake(), vec![c("FRA", CISN + 1, SISN + 1, 0)]));
        assert_eq!(z.history(), "ShAI");
        let z = run(&[c("SF", CISN, 0, 0)]);
        assert_eq!(z.history(), "Q");
        let z = run(&[c("S", CISN, 0, 0), s("SRA", SISN, CISN + 1, 0)]);
        assert_eq!(z.history(), "Sq");
    }

    fn retransmissions(n: usize) -> String {
        let mut v = with(handshake(), vec![c("PA", CISN + 1, SISN + 1, 100)]);
        for _ in 0..n {
            v.push(c("PA", CISN + 1, SISN + 1, 100));
        }
        run(&v).history().to_owned()
    }

    #[test]
    fn retransmission_letters_follow_the_power_of_ten_rule() {
        assert_eq!(retransmissions(1), "ShADT");
        assert_eq!(retransmissions(9), "ShADT");
        assert_eq!(retransmissions(10), "ShADTT");
        assert_eq!(retransmissions(99), "ShADTT");
        assert_eq!(retransmissions(100), "ShADTTT");
        // The responder's retransmissions are lower case.
        let v = with(
            handshake(),
            vec![s("PA", SISN + 1, CISN + 1, 10), s("PA", SISN + 1, CISN + 1, 10)],
        );
        assert_eq!(run(&v).history(), "ShAdt");
    }

    #[test]
    fn zero_window_letters_follow_the_power_of_ten_rule() {
        let mut v = handshake();
        for _ in 0..10 {
            v.push(P { window: 0, ..s("A", SISN + 1, CISN + 1, 0) });
        }
        // The pure-ACK letter comes first (history before window), then w at the 1st and 10th.
        assert_eq!(run(&v).history(), "ShAaww");
        // Not with a RST.
        let v = with(handshake(), vec![P { window: 0, ..c("RA", CISN + 1, SISN + 1, 0) }]);
        assert_eq!(run(&v).history(), "ShAR");
    }

    #[test]
    fn content_gap_letter_and_missed_bytes() {
        let v = with(
            handshake(),
            vec![
                c("PA", CISN + 1, SISN + 1, 100),
                // 100 bytes never captured, then the next segment.
                c("PA", CISN + 201, SISN + 1, 100),
                s("A", SISN + 1, CISN + 301, 0),
            ],
        );
        let z = run(&v);
        assert_eq!(z.history(), "ShADaG");
        assert_eq!(z.missed_bytes_by_engine_direction(), [100, 0]);
        // orig_bytes come from the sequence span, so the unseen bytes count too.
        assert_eq!(z.sizes(), (300, 0));
    }

    #[test]
    fn no_gap_is_counted_for_an_ack_in_a_rst() {
        let v = with(
            handshake(),
            vec![c("PA", CISN + 1, SISN + 1, 100), s("RA", SISN + 1, CISN + 501, 0)],
        );
        let z = run(&v);
        assert_eq!(z.history(), "ShADr");
        assert_eq!(z.missed_bytes_by_engine_direction(), [0, 0]);
    }

    #[test]
    fn flip_letter_for_a_syn_ack_first_connection() {
        // From a likely server port: flipped at once.
        let z = run_ports(40000, 80, &[s("SA", SISN, CISN + 1, 0)]);
        assert_eq!((z.history(), z.conn_state(), z.flipped_against_engine()), ("^h", "OTH", false));
        // From another port: the SYN/ACK sender stays originator until productive traffic.
        let z = run(&[s("SA", SISN, CISN + 1, 0)]);
        assert_eq!((z.history(), z.flipped_against_engine()), ("H", true));
        let z = run(&[s("SA", SISN, CISN + 1, 0), c("A", CISN + 1, SISN + 1, 0)]);
        assert_eq!((z.history(), z.flipped_against_engine()), ("^hA", false));
    }

    #[test]
    fn midstream_port_heuristic() {
        let seg_from = |sp: u16, dp: u16, flags: u16| Segment {
            ts: Timestamp::ZERO,
            packet_number: 1,
            source_index: 0,
            src_ip: SERVER.parse().unwrap(),
            dst_ip: CLIENT.parse().unwrap(),
            src_port: sp,
            dst_port: dp,
            seq: 1,
            ack: 1,
            flags: TcpFlags(flags),
            window: 1,
            payload_len: 1,
            captured_payload_len: 1,
            ip_payload_len: 1,
            checksum: Default::default(),
            ip_len: 41,
            ttl: 64,
            ip_id: 0,
            vlan: None,
            options: TcpOptions::default(),
        };
        assert!(wants_flip(&seg_from(80, 40000, TcpFlags::ACK)));
        assert!(!wants_flip(&seg_from(40000, 80, TcpFlags::ACK)));
        assert!(!wants_flip(&seg_from(80, 40000, TcpFlags::SYN)));
        // Both likely: flip only a non-SYN from the lower port.
        assert!(wants_flip(&seg_from(22, 80, TcpFlags::ACK)));
        assert!(!wants_flip(&seg_from(80, 22, TcpFlags::ACK)));
        assert!(!wants_flip(&seg_from(22, 80, TcpFlags::SYN | TcpFlags::ACK)));
    }

    #[test]
    fn attempt_timer_expires_only_while_unanswered() {
        let z = run(&[c("S", CISN, 0, 0), c("PA", CISN + 1, 0, 10)]);
        assert!(z.attempt_started().is_some());
        assert!(z.attempt_expired());
        let z = run(&[c("S", CISN, 0, 0), s("SA", SISN, CISN + 1, 0)]);
        assert!(!z.attempt_expired());
    }

    #[test]
    fn arbitrary_packets_never_panic() {
        // Seeded xorshift: random flags, sequence and acknowledgement numbers (often near the
        // wrap and near each other), lengths and windows, in both directions.
        let mut next = crate::testing::xorshift(0x9E37_79B9_7F4A_7C15u64);
        for _ in 0..200 {
            let mut zc: Option<ZeekConnection> = None;
            let base = next() as u32;
            for i in 0..60 {
                let r = next();
                let from_client = r & 1 == 0;
                let near = |x: u64| base.wrapping_add((x % 5_000) as u32).wrapping_sub(2_500);
                let seq = if r & 2 == 0 { near(next()) } else { next() as u32 };
                let ack = if r & 4 == 0 { near(next()) } else { next() as u32 };
                let len = if r & 8 == 0 { 0 } else { (next() % 3_000) as u32 };
                let seg = Segment {
                    ts: Timestamp::from_secs_nanos(1_000 + i, 0),
                    packet_number: i + 1,
                    source_index: 0,
                    src_ip: (if from_client { CLIENT } else { SERVER }).parse().unwrap(),
                    dst_ip: (if from_client { SERVER } else { CLIENT }).parse().unwrap(),
                    src_port: if from_client { 40000 } else { 80 },
                    dst_port: if from_client { 80 } else { 40000 },
                    seq,
                    ack,
                    flags: TcpFlags((next() & 0x1ff) as u16),
                    window: if r & 16 == 0 { 0 } else { 1000 },
                    payload_len: len,
                    captured_payload_len: if r & 32 == 0 { len } else { len / 2 },
                    ip_payload_len: len,
                    checksum: Default::default(),
                    ip_len: 40 + len,
                    ttl: 64,
                    ip_id: 0,
                    vlan: None,
                    options: TcpOptions::default(),
                };
                let dir = if from_client { Direction::Orig } else { Direction::Resp };
                zc.get_or_insert_with(|| ZeekConnection::new(&seg, dir)).on_segment(&seg, dir);
            }
            let z = zc.unwrap();
            let _ = (z.conn_state(), z.sizes(), z.missed_bytes_by_engine_direction(), z.close_complete());
            assert!(z.history().chars().all(|ch| "^SHADFRIQTWGshadfriqtwg".contains(ch)), "{}", z.history());
        }
    }

    #[test]
    fn ordinary_connections_stay_small_and_never_box_state() {
        assert!(std::mem::size_of::<ZeekConnection>() <= 176, "{}", std::mem::size_of::<ZeekConnection>());
        // Handshake, data both ways, FIN both ways.
        let v = with(
            handshake(),
            vec![
                c("PA", CISN + 1, SISN + 1, 100),
                s("PA", SISN + 1, CISN + 101, 50),
                c("A", CISN + 101, SISN + 51, 0),
                c("FA", CISN + 101, SISN + 51, 0),
                s("FA", SISN + 51, CISN + 102, 0),
                c("A", CISN + 102, SISN + 52, 0),
            ],
        );
        let z = run(&v);
        assert_eq!((z.conn_state(), z.history(), z.sizes()), ("SF", "ShADdFf", (100, 50)));
        assert!(z.cold.is_none());
        // Nor a plain RST close.
        let v = with(
            handshake(),
            vec![
                c("PA", CISN + 1, SISN + 1, 100),
                s("PA", SISN + 1, CISN + 101, 50),
                c("RA", CISN + 101, SISN + 51, 0),
            ],
        );
        let z = run(&v);
        assert_eq!((z.conn_state(), z.history()), ("RSTO", "ShADdR"));
        assert!(z.cold.is_none());
        // A retransmission does, and the counter lives there.
        let z = run(&with(handshake(), vec![c("PA", CISN + 1, SISN + 1, 10), c("PA", CISN + 1, SISN + 1, 10)]));
        assert!(z.cold.is_some());
    }

    #[test]
    fn close_complete_rules() {
        assert!(!run(&handshake()).close_complete());
        assert!(run(&with(handshake(), vec![c("RA", CISN + 1, SISN + 1, 0)])).close_complete());
        assert!(!run(&with(handshake(), vec![c("FA", CISN + 1, SISN + 1, 0)])).close_complete());
        // One side closed and the other never sent anything (half-duplex capture).
        assert!(run(&[c("PA", CISN, SISN, 10), c("FA", CISN + 10, SISN, 0)]).close_complete());
    }
}
