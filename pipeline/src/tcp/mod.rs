//! The sans-IO TCP analysis engine: a bounded table of connections driven by segments and packet time.
//!
//! [`Engine::handle_segment`] takes one decoded segment; [`Engine::advance_time`] moves packet time
//! forward on a quiet link; [`Engine::finish`] flushes every open flow. Output (events and finished
//! flow rows) accumulates in an [`EngineOutput`] that the caller drains. No clocks, no I/O.

pub mod analysis;
pub(crate) mod compact;
mod connection;
pub mod diagnostics;
pub mod events;
pub mod seq;
pub mod summary;

pub use connection::Connection;
pub use events::{Event, EventKind, Severity};
pub use summary::{CloseReason, DirectionMetrics, FlowRecord, RttStats};

use crate::decode::{Segment, TcpFlags};
use crate::flow::FlowKey;
use crate::time::Timestamp;
use analysis::AnalysisLimits;
use diagnostics::DiagnosticsConfig;
use compact::{Packer, QUIET_AFTER_NS};
use connection::PackedHeader;
use hashbrown::HashTable;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;

/// Engine settings; every duration is packet time in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// A flow with no packet for this long is closed (`close_reason = idle_timeout`). Zeek: 5 min.
    pub idle_timeout_ns: u64,
    /// After both FINs or an RST, late packets still join the flow for this long (Zeek: 5 s).
    pub close_linger_ns: u64,
    /// A SYN still unanswered this long after it was sent ends its flow (`close_reason =
    /// attempt_timeout`); later packets start a new row. 0 (the default) keeps a retried attempt
    /// in one row; Zeek's conn.log uses 5 s (`tcp_attempt_delay`).
    pub attempt_timeout_ns: u64,
    /// Bound on concurrent flows in this engine; the longest-idle flow is evicted beyond it.
    pub max_flows: usize,
    /// Connections kept in their working form (about 1 KiB each) at most: beyond this, the least
    /// recently active are packed before their second of quiet is up (`compact`).
    pub max_unpacked: usize,
    /// Bounds of the per-packet analysis.
    pub analysis: AnalysisLimits,
    /// Thresholds of the connection diagnostics.
    pub diagnostics: DiagnosticsConfig,
    /// Verify TCP checksums when decoding (`--verify-checksums`): off by default, as tshark and
    /// `zeek -C`, since offloading NICs leave outgoing checksums unset in captures.
    pub verify_checksums: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            idle_timeout_ns: 300 * crate::time::NANOS_PER_SEC,
            close_linger_ns: 5 * crate::time::NANOS_PER_SEC,
            attempt_timeout_ns: 0,
            max_flows: 1_000_000,
            max_unpacked: 32_768,
            analysis: AnalysisLimits::default(),
            diagnostics: DiagnosticsConfig::default(),
            verify_checksums: false,
        }
    }
}

/// What the engine counted, besides its output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Segments handled.
    pub segments: u64,
    /// Flows created.
    pub flows_created: u64,
    /// Flows evicted because the table was full.
    pub flows_evicted: u64,
    /// Flows closed by the idle timeout.
    pub flows_idle_expired: u64,
    /// Segments whose timestamp was earlier than packet time already reached.
    pub time_went_backwards: u64,
    /// Segments not remembered because a direction already tracked the maximum of
    /// unacknowledged segments (`AnalysisLimits::max_unacked_segments`).
    pub unacked_segments_refused: u64,
    /// Segments whose TCP checksum was checked and found wrong (ignored but for history `C`).
    pub bad_checksums: u64,
    /// Quiet connections packed (see `compact`).
    pub connections_packed: u64,
    /// Of those, packed before a second of quiet because too many were unpacked.
    pub connections_packed_early: u64,
    /// Packed connections unpacked again by a packet or a timer.
    pub connections_unpacked: u64,
}

/// Events and finished flows, drained by the caller.
#[derive(Debug, Default)]
pub struct EngineOutput {
    /// Events, in the order they were decided.
    pub events: Vec<Event>,
    /// Finished flow rows.
    pub flows: Vec<FlowRecord>,
}

impl EngineOutput {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.flows.is_empty()
    }
}

/// What the engine decided about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentVerdict {
    /// The flow it belongs to.
    pub flow_id: u64,
    /// Its direction relative to the flow's originator.
    pub direction: crate::flow::Direction,
    /// The per-packet analysis verdicts.
    pub analysis: analysis::PacketAnalysis,
}

/// A closed connection whose close linger ends within this much packet time is not packed for
/// being quiet (only when the table is crowded): it would be unpacked again soon to be written.
const CLOSED_ENDS_SOON_NS: u64 = 10 * crate::time::NANOS_PER_SEC;

/// Boxes of ended or packed connections kept for the next connection or unpacking, rather than
/// freed and allocated again.
const SPARE_BOXES: usize = 32;

/// One place in the engine's table of connections.
enum Slot {
    Free,
    /// A connection as the analysis uses it. Boxed so the table stays small and growing it
    /// never copies connection state.
    Full(Box<Connection>),
    /// A quiet connection, packed (see [`compact`]): unpacked by its next packet or timer.
    Packed(Box<[u8]>),
}

impl Slot {
    /// The fields the engine reads without unpacking (`time_base` as packed with).
    fn header(&self, time_base: u64) -> Option<PackedHeader> {
        match self {
            Slot::Free => None,
            Slot::Full(conn) => Some(conn.header()),
            Slot::Packed(packed) => Some(Connection::packed_header(packed, time_base)),
        }
    }
    fn has_key(&self, key: &FlowKey, time_base: u64) -> bool {
        match self {
            Slot::Free => false,
            Slot::Full(conn) => conn.key() == key,
            Slot::Packed(packed) => Connection::packed_header(packed, time_base).key == *key,
        }
    }
    fn key(&self, time_base: u64) -> FlowKey {
        self.header(time_base).expect("indexed slot is live").key
    }
}

/// One worker's engine.
pub struct Engine {
    config: EngineConfig,
    now: Timestamp,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// Slot of each live connection, found by its key's hash. The table holds only slot numbers
    /// (the key lives in the connection), so a million flows cost 10 MB here rather than 170.
    index: HashTable<u32>,
    /// Flow keys are chosen by whoever sends packets: foldhash with a per-table random seed is
    /// fast and resists collision flooding (output order never depends on it).
    hasher: foldhash::fast::RandomState,
    /// One entry per live connection: (deadline, slot, generation). Entries may be stale (a
    /// later packet moved the deadline); they are re-checked when popped.
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    /// Flows by last packet time, for eviction: (last packet ns, slot, generation). Built when
    /// the table first fills, then one entry per inserted flow; entries may be early (the flow
    /// was active since) or dead, and are checked when popped.
    idle_order: Option<BinaryHeap<Reverse<(u64, u32, u32)>>>,
    /// Unpacked connections by when they may be packed: (due ns, slot, generation), one entry
    /// per unpacked connection, in packet-time order. An entry whose connection had a packet
    /// since is pushed again for a second after that packet.
    quiet_queue: VecDeque<(u64, u32, u32)>,
    /// Connections in the unpacked form.
    unpacked: usize,
    /// Whether quiet connections are packed (always, but in tests that compare with a run that
    /// never packs).
    packing: bool,
    packer: Packer,
    /// Connection boxes to reuse (at most [`SPARE_BOXES`]): the boxes themselves are what is
    /// kept, so the allocation moves back into a slot without a copy or a new one.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Connection>>,
    /// The time every packed connection's times are coded against: the packet time of the first
    /// packing, fixed from then on.
    time_base: Option<u64>,
    generation: u32,
    counters: EngineCounters,
    /// Output not yet drained.
    pub output: EngineOutput,
}

impl Engine {
    /// An engine with the given settings.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            now: Timestamp::ZERO,
            slots: Vec::new(),
            free_slots: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            timers: BinaryHeap::new(),
            idle_order: None,
            quiet_queue: VecDeque::new(),
            unpacked: 0,
            packing: true,
            packer: Packer::default(),
            spare: Vec::new(),
            time_base: None,
            generation: 0,
            counters: EngineCounters::default(),
            output: EngineOutput::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Packet time reached so far.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Counters so far.
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// Connections currently tracked.
    pub fn active_flows(&self) -> usize {
        self.index.len()
    }

    /// Packs every unpacked connection now, however recent its last packet, and checks that each
    /// unpacks to exactly the state it had: for tests that drive the packed form hard (after
    /// every packet, say) and compare the output with a run that never packs. Returns how many
    /// connections it packed, or the first one whose state did not come back, both forms printed.
    #[doc(hidden)]
    pub fn pack_all_checked(&mut self) -> Result<usize, String> {
        let mut packed_now = 0;
        let time_base = *self.time_base.get_or_insert(self.now.as_nanos());
        for slot in 0..self.slots.len() as u32 {
            let Slot::Full(conn) = &mut self.slots[slot as usize] else { continue };
            let Some(packed) = conn.pack(&mut self.packer, time_base) else { continue };
            let before = format!("{conn:#?}");
            // Unpacked into a box that held another connection, as production does, so a
            // field the codec failed to overwrite shows.
            let check = self.unpack_boxed(&packed);
            let after = format!("{check:#?}");
            self.recycle(check);
            if before != after {
                return Err(format!("packed:\n{before}\nunpacked:\n{after}"));
            }
            self.store_packed(slot, packed);
            packed_now += 1;
        }
        Ok(packed_now)
    }

    /// Never packs a connection: for tests that compare with a run that packs.
    #[doc(hidden)]
    pub fn never_pack(&mut self) {
        self.packing = false;
    }

    /// Bytes held by packed connections, and how many there are.
    #[doc(hidden)]
    pub fn packed_bytes(&self) -> (usize, usize) {
        self.slots.iter().fold((0, 0), |(bytes, n), s| match s {
            Slot::Packed(p) => (bytes + p.len(), n + 1),
            _ => (bytes, n),
        })
    }

    /// Handles one segment.
    pub fn handle_segment(&mut self, seg: &Segment) {
        self.handle(seg);
    }

    /// Handles one segment and returns what the engine decided about it (flow, direction,
    /// per-packet analysis), for the plugins that run after the engine.
    pub fn handle_segment_verdict(&mut self, seg: &Segment) -> SegmentVerdict {
        self.handle(seg)
    }

    /// Both of the above: inlined into each, so `handle_segment` never builds the verdict.
    #[inline(always)]
    fn handle(&mut self, seg: &Segment) -> SegmentVerdict {
        self.counters.segments += 1;
        self.counters.bad_checksums += (seg.checksum == crate::decode::ChecksumStatus::Bad) as u64;
        if seg.ts < self.now {
            self.counters.time_went_backwards += 1;
        }
        self.advance_time(seg.ts);
        let (key, side) = FlowKey::of(seg);
        let hash = self.hasher.hash_one(key);
        let (slots, time_base) = (&self.slots, self.time_base());
        let found = self.index.find(hash, |&s| slots[s as usize].has_key(&key, time_base)).copied();
        let slot = match found {
            Some(slot) => {
                if matches!(self.slots[slot as usize], Slot::Packed(_)) {
                    self.unpack_slot(slot, true);
                }
                let conn = self.full(slot);
                let dir = conn.direction_of(side);
                if seg.flags.pure_syn() && conn.is_port_reuse(seg, dir) {
                    let old = self.remove(slot);
                    let previous = old.first_packet();
                    self.finish_connection(old, CloseReason::PortReuse);
                    let slot = self.insert(key, hash, seg, side);
                    self.full(slot).mark_port_reuse(previous);
                    slot
                } else {
                    slot
                }
            }
            None => {
                if self.index.len() >= self.config.max_flows.max(1) {
                    self.evict_one();
                }
                self.insert(key, hash, seg, side)
            }
        };
        let config = &self.config;
        let Slot::Full(conn) = &mut self.slots[slot as usize] else { unreachable!("unpacked above") };
        let flow_id = conn.flow_id();
        // Only SYN, FIN and RST can bring a deadline forward (a close, an attempt or handshake
        // timer); any other packet moves the flow's last activity, and so its deadline, later.
        // (A flow that gave back its buffers and woke up again releases them next when its
        // pending timer runs, at the latest its idle deadline: rescheduling on every wake-up
        // would leave a stale timer entry each time.)
        let may_advance_deadline = seg.flags.any(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST);
        let before = if may_advance_deadline { conn.deadline(config) } else { Timestamp::ZERO };
        let (direction, analysis) = conn.on_segment(seg, side, config, &mut self.output.events);
        // Timer entries may run early (they are re-checked) but never late: when this packet
        // brought the deadline forward, schedule it.
        if may_advance_deadline {
            let after = conn.deadline(config);
            if after < before {
                let generation = conn.generation();
                self.timers.push(Reverse((after.as_nanos(), slot, generation)));
            }
        }
        SegmentVerdict { flow_id, direction, analysis }
    }

    /// Moves packet time to `ts` (if later) and runs every timer that falls due.
    pub fn advance_time(&mut self, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
        let now = self.now.as_nanos();
        while let Some(&Reverse((deadline, slot, generation))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let config = self.config;
            if self.slots[slot as usize].header(self.time_base()).is_none_or(|h| h.generation != generation) {
                continue;
            }
            let was_packed = matches!(self.slots[slot as usize], Slot::Packed(_));
            self.unpack_slot(slot, false);
            let Slot::Full(conn) = &mut self.slots[slot as usize] else { unreachable!("unpacked above") };
            match conn.on_timer(self.now, &config, &mut self.output.events) {
                connection::TimerOutcome::Reschedule(next) => {
                    // Never again at or before now: a timer that asked for a past deadline would
                    // otherwise spin here forever.
                    let next = next.as_nanos().max(now + 1);
                    self.timers.push(Reverse((next, slot, generation)));
                    if was_packed {
                        // No packet came: still quiet.
                        self.pack(slot);
                    }
                }
                connection::TimerOutcome::Close(reason) => {
                    if reason == CloseReason::IdleTimeout {
                        self.counters.flows_idle_expired += 1;
                    }
                    let conn = self.remove(slot);
                    self.finish_connection(conn, reason);
                }
            }
        }
        // Checked here, inline: almost every packet finds nothing to pack.
        let due = self.quiet_queue.front().is_some_and(|&(due, _, _)| due <= now);
        if due || self.unpacked > self.config.max_unpacked {
            self.pack_quiet(now);
        }
    }

    /// Packs the connections quiet for [`QUIET_AFTER_NS`], and while more than
    /// `max_unpacked` are unpacked, the least recently active ones.
    #[inline(never)]
    fn pack_quiet(&mut self, now: u64) {
        while let Some(&(due, slot, generation)) = self.quiet_queue.front() {
            let crowded = self.unpacked > self.config.max_unpacked;
            if due > now && !crowded {
                break;
            }
            self.quiet_queue.pop_front();
            let Slot::Full(conn) = &self.slots[slot as usize] else { continue };
            if conn.generation() != generation {
                continue;
            }
            let last = conn.last_ts().as_nanos();
            let quiet_from = last.saturating_add(QUIET_AFTER_NS);
            // Active since the entry was queued: queue it again for a second after its latest
            // packet (also when crowded, so the least recently active go first).
            if quiet_from > due && quiet_from > now {
                self.quiet_queue.push_back((quiet_from, slot, generation));
                continue;
            }
            // Closed and ending within CLOSED_ENDS_SOON_NS (the close linger): packing it would
            // only be undone to write its row, so unless the table is crowded it waits as it is
            // and is looked at again a second later.
            if !crowded && conn.is_closed() && last.saturating_add(self.config.close_linger_ns) <= now.saturating_add(CLOSED_ENDS_SOON_NS) {
                self.quiet_queue.push_back((now.saturating_add(QUIET_AFTER_NS), slot, generation));
                continue;
            }
            if self.pack(slot) && quiet_from > now {
                self.counters.connections_packed_early += 1;
            }
        }
    }

    /// The connection in `slot`, unpacked if it was packed. A packet (`for_packet`) queues it to
    /// be packed again once quiet; a timer packs it again itself.
    #[inline(never)]
    fn unpack_slot(&mut self, slot: u32, for_packet: bool) {
        if !matches!(self.slots[slot as usize], Slot::Packed(_)) {
            return;
        }
        let Slot::Packed(packed) = std::mem::replace(&mut self.slots[slot as usize], Slot::Free) else { unreachable!("checked above") };
        let conn = self.unpack_boxed(&packed);
        if for_packet {
            let due = self.now.as_nanos().saturating_add(QUIET_AFTER_NS);
            self.quiet_queue.push_back((due, slot, conn.generation()));
        }
        self.slots[slot as usize] = Slot::Full(conn);
        self.unpacked += 1;
        self.counters.connections_unpacked += 1;
    }

    /// A packed connection unpacked into a spare box (or a new one).
    fn unpack_boxed(&mut self, packed: &[u8]) -> Box<Connection> {
        let mut conn = self.spare.pop().unwrap_or_else(|| Box::new(Connection::blank()));
        conn.unpack_into(packed, self.time_base());
        conn
    }

    /// The time packed connections are coded against (see `time_base`; 0 before any packing,
    /// when there is nothing packed to read).
    fn time_base(&self) -> u64 {
        self.time_base.unwrap_or(0)
    }

    #[inline]
    fn full(&mut self, slot: u32) -> &mut Connection {
        match &mut self.slots[slot as usize] {
            Slot::Full(conn) => conn,
            _ => unreachable!("slot {slot} holds an unpacked connection"),
        }
    }

    /// Packs the connection in `slot`; false if it stays unpacked (its state cannot be packed).
    fn pack(&mut self, slot: u32) -> bool {
        let Slot::Full(conn) = &mut self.slots[slot as usize] else { return false };
        if !self.packing {
            return false;
        }
        let time_base = *self.time_base.get_or_insert(self.now.as_nanos());
        let Some(packed) = conn.pack(&mut self.packer, time_base) else { return false };
        self.store_packed(slot, packed);
        true
    }

    /// Puts `packed` in place of the unpacked connection in `slot`, whose box is kept to reuse.
    fn store_packed(&mut self, slot: u32, packed: Box<[u8]>) {
        if let Slot::Full(conn) = std::mem::replace(&mut self.slots[slot as usize], Slot::Packed(packed)) {
            self.recycle(conn);
        }
        self.unpacked -= 1;
        self.counters.connections_packed += 1;
    }

    /// Ends every open flow (`close_reason` = `reason`, e.g. end of input or shutdown), in the
    /// order the flows began, so output order does not depend on hashing.
    pub fn finish(&mut self, reason: CloseReason) {
        self.finish_draining(reason, usize::MAX, |_| {});
    }

    /// Like [`Engine::finish`], but hands the output to `drain` every `batch` flows, so a table
    /// of a million flows never holds a million finished rows at once.
    pub fn finish_draining(&mut self, reason: CloseReason, batch: usize, mut drain: impl FnMut(&mut EngineOutput)) {
        // Nothing runs after this but the finish: the timers, queues and index go first, so the
        // list below reuses their memory rather than adding to the peak.
        self.timers = BinaryHeap::new();
        self.idle_order = None;
        self.quiet_queue = VecDeque::new();
        self.index = HashTable::new();
        self.free_slots = Vec::new();
        self.unpacked = 0;
        let mut slots = std::mem::take(&mut self.slots);
        let time_base = self.time_base();
        let mut open: Vec<(Timestamp, u64, u32)> = slots
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.header(time_base).map(|h| (h.first_ts, h.first_packet, slot as u32)))
            .collect();
        open.sort_unstable();
        for (_, _, slot) in open {
            let conn = match std::mem::replace(&mut slots[slot as usize], Slot::Free) {
                Slot::Full(conn) => conn,
                Slot::Packed(packed) => self.unpack_boxed(&packed),
                Slot::Free => continue,
            };
            let reason = conn.natural_close_reason().unwrap_or(reason);
            self.finish_connection(conn, reason);
            if self.output.flows.len() >= batch {
                drain(&mut self.output);
            }
        }
        drain(&mut self.output);
    }

    fn insert(&mut self, key: FlowKey, hash: u64, seg: &Segment, side: crate::flow::Side) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        let conn = match self.spare.pop() {
            Some(mut spare) => {
                *spare = Connection::new(key, seg, side, self.generation);
                spare
            }
            None => Box::new(Connection::new(key, seg, side, self.generation)),
        };
        let deadline = conn.deadline(&self.config);
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Slot::Full(conn);
                slot
            }
            None => {
                self.slots.push(Slot::Full(conn));
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher, time_base) = (&self.slots, &self.hasher, self.time_base());
        self.index.insert_unique(hash, slot, |&s| hasher.hash_one(slots[s as usize].key(time_base)));
        self.timers.push(Reverse((deadline.as_nanos(), slot, self.generation)));
        let quiet_from = seg.ts.as_nanos().max(self.now.as_nanos()).saturating_add(QUIET_AFTER_NS);
        self.quiet_queue.push_back((quiet_from, slot, self.generation));
        self.unpacked += 1;
        if let Some(idle) = self.idle_order.as_mut() {
            idle.push(Reverse((seg.ts.as_nanos(), slot, self.generation)));
        }
        self.counters.flows_created += 1;
        slot
    }

    fn remove(&mut self, slot: u32) -> Box<Connection> {
        let conn = match std::mem::replace(&mut self.slots[slot as usize], Slot::Free) {
            Slot::Full(conn) => {
                self.unpacked -= 1;
                conn
            }
            Slot::Packed(packed) => self.unpack_boxed(&packed),
            Slot::Free => unreachable!("removing a free slot"),
        };
        if let Ok(entry) = self.index.find_entry(self.hasher.hash_one(conn.key()), |&s| s == slot) {
            entry.remove();
        }
        self.free_slots.push(slot);
        conn
    }

    /// Ends the flow whose last packet is the oldest (`close_reason = evicted`).
    fn evict_one(&mut self) {
        let time_base = self.time_base();
        let live = self.index.len();
        let rebuild = self.idle_order.as_ref().is_none_or(|h| h.len() > 2 * live + 64);
        if rebuild {
            // First eviction, or too many dead entries: one entry per live flow.
            let heap = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(slot, c)| c.header(time_base).map(|h| Reverse((h.last_ts.as_nanos(), slot as u32, h.generation))))
                .collect();
            self.idle_order = Some(heap);
        }
        let idle = self.idle_order.as_mut().expect("built above");
        while let Some(Reverse((last, slot, generation))) = idle.pop() {
            let Some(header) = self.slots[slot as usize].header(time_base).filter(|h| h.generation == generation) else {
                continue;
            };
            let actual = header.last_ts.as_nanos();
            if actual > last {
                idle.push(Reverse((actual, slot, generation)));
                continue;
            }
            let conn = self.remove(slot);
            self.counters.flows_evicted += 1;
            self.finish_connection(conn, CloseReason::Evicted);
            return;
        }
    }

    fn finish_connection(&mut self, mut conn: Box<Connection>, reason: CloseReason) {
        self.counters.unacked_segments_refused += conn.unacked_segments_refused();
        let config = self.config;
        let record = conn.finish(reason, &config, &mut self.output.events);
        self.output.flows.push(record);
        self.recycle(conn);
    }

    fn recycle(&mut self, conn: Box<Connection>) {
        if self.spare.len() < SPARE_BOXES {
            self.spare.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, LinkType};
    use crate::testing::Conversation;

    #[test]
    fn segments_beyond_the_unacked_bound_are_counted() {
        let config = EngineConfig { analysis: AnalysisLimits { max_unacked_segments: 4 }, ..EngineConfig::default() };
        let mut engine = Engine::new(config);
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1_000, 9_000);
        c.handshake(1_000_000_000, 1_000_000);
        for k in 0..10u64 {
            c.client_data(1_010_000_000 + k * 1_000, 100);
        }
        for (n, (t, f)) in c.frames.iter().enumerate() {
            engine.handle_segment(&decode(LinkType::Ethernet, f, Timestamp(*t), n as u64 + 1, 0).unwrap());
        }
        engine.finish(CloseReason::EndOfInput);
        // The SYN and the first three data segments fit; seven data segments do not.
        assert!(engine.counters().unacked_segments_refused >= 6, "{:?}", engine.counters());
        assert_eq!(engine.output.flows.len(), 1);
    }

    #[test]
    fn a_quiet_connection_is_packed_and_keeps_its_results() {
        let s = 1_000_000_000u64;
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1_000, 9_000);
        c.handshake(s, 1_000_000);
        c.client_data(s + 10_000_000, 100);
        c.server_ack(s + 20_000_000);
        c.client_data(s + 10 * s, 100);
        c.server_ack(s + 10 * s + 10_000_000);
        c.client_data(s + 10 * s + 20_000_000, 100);
        let forms = |engine: &Engine| engine.slots.iter().map(|slot| match slot {
            Slot::Free => "free",
            Slot::Full(_) => "full",
            Slot::Packed(_) => "packed",
        }).collect::<Vec<_>>().join(",");
        let run = |look_in_the_gap: bool| {
            let mut engine = Engine::new(EngineConfig::default());
            let mut seen = Vec::new();
            for (n, (t, f)) in c.frames.iter().enumerate() {
                if look_in_the_gap && n == 5 {
                    // Packets 0-4 are the handshake, the data and its ACK; then 10 s of quiet.
                    seen.push(forms(&engine));
                    engine.advance_time(Timestamp(s + s + 20_000_000 - 1));
                    seen.push(forms(&engine));
                    engine.advance_time(Timestamp(s + s + 20_000_000));
                    seen.push(forms(&engine));
                }
                engine.handle_segment(&decode(LinkType::Ethernet, f, Timestamp(*t), n as u64 + 1, 0).unwrap());
            }
            seen.push(forms(&engine));
            engine.finish(CloseReason::EndOfInput);
            (seen, std::mem::take(&mut engine.output.flows), std::mem::take(&mut engine.output.events))
        };
        let (seen, flows, events) = run(true);
        assert_eq!(seen, ["full", "full", "packed", "full"], "packed after a second without packets, unpacked by the next");
        let (_, flows_unobserved, events_unobserved) = run(false);
        assert_eq!(flows, flows_unobserved);
        assert_eq!(events, events_unobserved);
        assert_eq!((flows[0].orig.pkts, flows[0].resp.pkts), (5, 3), "SYN, ACK, 3 data; SYN/ACK, 2 ACKs");
    }
}
