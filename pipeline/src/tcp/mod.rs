//! The sans-IO TCP analysis engine: a bounded table of connections driven by segments and packet time.
//!
//! [`Engine::handle_segment`] takes one decoded segment; [`Engine::advance_time`] moves packet time
//! forward on a quiet link; [`Engine::finish`] flushes every open flow. Output (events and finished
//! flow rows) accumulates in an [`EngineOutput`] that the caller drains. No clocks, no I/O.

pub mod analysis;
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
use std::cmp::Reverse;
use hashbrown::HashTable;
use std::collections::BinaryHeap;
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

/// One worker's engine.
pub struct Engine {
    config: EngineConfig,
    now: Timestamp,
    /// Boxed so the slab stays small and growing it never copies connection state.
    slots: Vec<Option<Box<Connection>>>,
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
        let slots = &self.slots;
        let found = self.index.find(hash, |&s| slots[s as usize].as_ref().is_some_and(|c| *c.key() == key));
        let slot = match found {
            Some(&slot) => {
                let conn = self.slots[slot as usize].as_mut().expect("indexed slot is live");
                let dir = conn.direction_of(side);
                if seg.flags.pure_syn() && conn.is_port_reuse(seg, dir) {
                    let old = self.remove(slot);
                    let previous = old.first_packet();
                    self.finish_connection(old, CloseReason::PortReuse);
                    let slot = self.insert(key, hash, seg, side);
                    let conn = self.slots[slot as usize].as_mut().expect("just inserted");
                    conn.mark_port_reuse(previous);
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
        let conn = self.slots[slot as usize].as_mut().expect("live slot");
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
            let Some(conn) = self.slots[slot as usize].as_mut().filter(|c| c.generation() == generation) else {
                continue;
            };
            match conn.on_timer(self.now, &config, &mut self.output.events) {
                connection::TimerOutcome::Reschedule(next) => {
                    // Never again at or before now: a timer that asked for a past deadline would
                    // otherwise spin here forever.
                    let next = next.as_nanos().max(now + 1);
                    self.timers.push(Reverse((next, slot, generation)));
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
    }

    /// Ends every open flow (`close_reason` = `reason`, e.g. end of input or shutdown), in the
    /// order the flows began, so output order does not depend on hashing.
    pub fn finish(&mut self, reason: CloseReason) {
        self.finish_draining(reason, usize::MAX, |_| {});
    }

    /// Like [`Engine::finish`], but hands the output to `drain` every `batch` flows, so a table
    /// of a million flows never holds a million finished rows at once.
    pub fn finish_draining(&mut self, reason: CloseReason, batch: usize, mut drain: impl FnMut(&mut EngineOutput)) {
        let mut open: Vec<(Timestamp, u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (c.first_ts(), c.first_packet(), slot as u32)))
            .collect();
        open.sort_unstable();
        for (_, _, slot) in open {
            let conn = self.remove(slot);
            let reason = conn.natural_close_reason().unwrap_or(reason);
            self.finish_connection(conn, reason);
            if self.output.flows.len() >= batch {
                drain(&mut self.output);
            }
        }
        self.timers.clear();
        self.idle_order = None;
        drain(&mut self.output);
    }

    fn insert(&mut self, key: FlowKey, hash: u64, seg: &Segment, side: crate::flow::Side) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        let conn = Box::new(Connection::new(key, seg, side, self.generation));
        let deadline = conn.deadline(&self.config);
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| hasher.hash_one(slots[s as usize].as_ref().expect("indexed slot is live").key()));
        self.timers.push(Reverse((deadline.as_nanos(), slot, self.generation)));
        if let Some(idle) = self.idle_order.as_mut() {
            idle.push(Reverse((seg.ts.as_nanos(), slot, self.generation)));
        }
        self.counters.flows_created += 1;
        slot
    }

    fn remove(&mut self, slot: u32) -> Box<Connection> {
        let conn = self.slots[slot as usize].take().expect("removing a live slot");
        if let Ok(entry) = self.index.find_entry(self.hasher.hash_one(conn.key()), |&s| s == slot) {
            entry.remove();
        }
        self.free_slots.push(slot);
        conn
    }

    /// Ends the flow whose last packet is the oldest (`close_reason = evicted`).
    fn evict_one(&mut self) {
        let live = self.index.len();
        let rebuild = self.idle_order.as_ref().is_none_or(|h| h.len() > 2 * live + 64);
        if rebuild {
            // First eviction, or too many dead entries: one entry per live flow.
            let heap = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(slot, c)| c.as_ref().map(|c| Reverse((c.last_ts().as_nanos(), slot as u32, c.generation()))))
                .collect();
            self.idle_order = Some(heap);
        }
        let idle = self.idle_order.as_mut().expect("built above");
        while let Some(Reverse((last, slot, generation))) = idle.pop() {
            let Some(conn) = self.slots[slot as usize].as_ref().filter(|c| c.generation() == generation) else {
                continue;
            };
            let actual = conn.last_ts().as_nanos();
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
    fn a_quiet_connection_gives_back_its_segment_buffers_and_keeps_its_results() {
        let s = 1_000_000_000u64;
        let mut c = Conversation::new("198.18.0.1:40000", "198.18.0.2:80", 1_000, 9_000);
        c.handshake(s, 1_000_000);
        c.client_data(s + 10_000_000, 100);
        c.server_ack(s + 20_000_000);
        c.client_data(s + 10 * s, 100);
        c.server_ack(s + 10 * s + 10_000_000);
        c.client_data(s + 10 * s + 20_000_000, 100);
        let run = |look_in_the_gap: bool| {
            let mut engine = Engine::new(EngineConfig::default());
            let mut capacities = Vec::new();
            for (n, (t, f)) in c.frames.iter().enumerate() {
                if look_in_the_gap && n == 5 {
                    // Packets 0-4 are the handshake, the data and its ACK; then 10 s of quiet.
                    let conn = engine.slots.iter().flatten().next().expect("one connection");
                    capacities.push(conn.segment_capacity());
                    engine.advance_time(Timestamp(s + 5 * s));
                    let conn = engine.slots.iter().flatten().next().expect("one connection");
                    capacities.push(conn.segment_capacity());
                }
                engine.handle_segment(&decode(LinkType::Ethernet, f, Timestamp(*t), n as u64 + 1, 0).unwrap());
            }
            let conn = engine.slots.iter().flatten().next().expect("one connection");
            capacities.push(conn.segment_capacity());
            engine.finish(CloseReason::EndOfInput);
            (capacities, std::mem::take(&mut engine.output.flows), std::mem::take(&mut engine.output.events))
        };
        let (capacities, flows, events) = run(true);
        assert!(capacities[0] > 0, "the buffer stays while the connection is busy: {capacities:?}");
        assert_eq!(capacities[1], 0, "and goes after a second of quiet: {capacities:?}");
        assert!(capacities[2] > 0, "new data brings it back (one segment unacknowledged): {capacities:?}");
        let (_, flows_unobserved, events_unobserved) = run(false);
        assert_eq!(flows, flows_unobserved);
        assert_eq!(events, events_unobserved);
        assert_eq!((flows[0].orig.pkts, flows[0].resp.pkts), (5, 3), "SYN, ACK, 3 data; SYN/ACK, 2 ACKs");
    }
}
