//! SYN flood detector: per destination address and port over a packet-time window, connection
//! attempts (SYNs) that never completed the handshake, and from how many sources.
//!
//! Per flow (on the worker that owns it) an attempt is decided from the flow's own packets: it
//! completes when the originator ACKs within `handshake_timeout_secs` of its first SYN, and is
//! incomplete otherwise (no answer, a SYN/ACK never acknowledged, or a reset). Decisions go to a
//! shared [`WindowedAggregate`] keyed by (window of the first SYN, destination); a window is
//! reported once every worker has passed it, so the output does not depend on `--workers`.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use tcpscope_plugin_api::abi::*;
use tcpscope_plugin_api::sdk::{flags, Merge, SmallestSet, WindowedAggregate};
use tcpscope_plugin_api::{Detector, Emitter, Event, Severity};

/// Settings (`--plugin-config syn-flood='{"min_incomplete":50}'`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Length of a packet-time window, seconds.
    pub window_secs: f64,
    /// An attempt not acknowledged by the originator within this time is incomplete, seconds.
    pub handshake_timeout_secs: f64,
    /// Incomplete attempts to one destination in one window needed to report.
    pub min_incomplete: u64,
    /// Distinct source addresses needed to report.
    pub min_sources: u64,
    /// Share of the window's attempts that must be incomplete (0..1) to report.
    pub min_incomplete_ratio: f64,
    /// Source addresses remembered per destination and window (the smallest are kept).
    pub max_tracked_sources: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_secs: 10.0,
            handshake_timeout_secs: 3.0,
            min_incomplete: 100,
            min_sources: 1,
            min_incomplete_ratio: 0.5,
            max_tracked_sources: 4096,
        }
    }
}

fn secs_to_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// Parses the JSON configuration (`null` gives the defaults).
pub fn parse_config(text: &str) -> Result<Config, String> {
    let text = text.trim();
    let c: Config = if text.is_empty() || text == "null" {
        Config::default()
    } else {
        serde_json::from_str(text).map_err(|e| format!("invalid configuration: {e}"))?
    };
    if c.window_secs.is_nan() || c.window_secs <= 0.0 || c.handshake_timeout_secs.is_nan() || c.handshake_timeout_secs <= 0.0 {
        return Err("invalid configuration: window_secs and handshake_timeout_secs must be positive".into());
    }
    if !(0.0..=1.0).contains(&c.min_incomplete_ratio) {
        return Err("invalid configuration: min_incomplete_ratio must be within 0..1".into());
    }
    Ok(c)
}

/// What one window holds about one destination.
#[derive(Clone, Debug)]
pub struct Window {
    incomplete: u64,
    completed: u64,
    refused: u64,
    syn_packets: u64,
    first_ns: u64,
    last_ns: u64,
    sources: SmallestSet<IpAddr>,
}

impl Window {
    fn new(cap: usize) -> Self {
        Window {
            incomplete: 0,
            completed: 0,
            refused: 0,
            syn_packets: 0,
            first_ns: u64::MAX,
            last_ns: 0,
            sources: SmallestSet::new(cap),
        }
    }
}

impl Merge for Window {
    fn merge(&mut self, o: Window) {
        self.incomplete += o.incomplete;
        self.completed += o.completed;
        self.refused += o.refused;
        self.syn_packets += o.syn_packets;
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
        self.sources.merge(o.sources);
    }
}

type Key = (IpAddr, u16);

/// Shared state: the configuration and the cross-worker aggregate.
pub struct Shared {
    config: Config,
    aggregate: WindowedAggregate<Key, Window>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    Incomplete,
    Refused,
}

struct Attempt {
    first_syn_ns: u64,
    src: IpAddr,
    dst: Key,
    syns: u64,
    decided: bool,
}

/// One worker's detector.
pub struct SynFlood {
    shared: Arc<Shared>,
    worker: u32,
    timeout_ns: u64,
    attempts: HashMap<u64, Attempt>,
    deadlines: VecDeque<(u64, u64)>,
    local: BTreeMap<(u64, Key), Window>,
}

impl SynFlood {
    fn decide(&mut self, flow_id: u64, outcome: Outcome) {
        let Some(a) = self.attempts.get_mut(&flow_id) else { return };
        if a.decided {
            return;
        }
        a.decided = true;
        let cap = self.shared.config.max_tracked_sources;
        let start = self.shared.aggregate.window_of(a.first_syn_ns);
        let w = self.local.entry((start, a.dst)).or_insert_with(|| Window::new(cap));
        w.syn_packets += a.syns;
        match outcome {
            Outcome::Completed => w.completed += 1,
            Outcome::Incomplete | Outcome::Refused => {
                w.incomplete += 1;
                w.refused += (outcome == Outcome::Refused) as u64;
                w.first_ns = w.first_ns.min(a.first_syn_ns);
                w.last_ns = w.last_ns.max(a.first_syn_ns);
                w.sources.insert(a.src);
            }
        }
    }

    /// Decides every attempt whose deadline is at or before `now`.
    fn expire(&mut self, now: u64) {
        while let Some(&(deadline, flow_id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            self.decide(flow_id, Outcome::Incomplete);
        }
    }

    fn publish(&mut self, done_before: u64, out: &mut Emitter<'_>) {
        self.shared.aggregate.submit(&mut self.local);
        self.shared.aggregate.advance(self.worker, done_before);
        let closed = self.shared.aggregate.take_closed();
        report(&self.shared, closed, out);
    }
}

fn report(shared: &Shared, windows: Vec<((u64, Key), Window)>, out: &mut Emitter<'_>) {
    let c = &shared.config;
    for ((start, (dst, port)), w) in windows {
        let attempts = w.incomplete + w.completed;
        let ratio = if attempts == 0 { 0.0 } else { w.incomplete as f64 / attempts as f64 };
        if w.incomplete < c.min_incomplete || (w.sources.len() as u64) < c.min_sources || ratio < c.min_incomplete_ratio {
            continue;
        }
        let sample: Vec<String> = w.sources.iter().take(5).map(|a| a.to_string()).collect();
        let event = Event::new("syn_flood", Severity::Warn, w.first_ns)
            .dst(dst, port)
            .count(w.incomplete)
            .value_ns(w.last_ns.saturating_sub(w.first_ns))
            .detail("window_start_ns", start)
            .detail("window_secs", c.window_secs)
            .detail("incomplete", w.incomplete)
            .detail("completed", w.completed)
            .detail("refused", w.refused)
            .detail("syn_packets", w.syn_packets)
            .detail("incomplete_ratio", format!("{ratio:.3}"))
            .detail("sources", w.sources.len())
            .detail("sources_capped", w.sources.overflowed())
            .detail("sample_sources", sample.join(","));
        out.emit(&event);
    }
}

impl Detector for SynFlood {
    type Shared = Shared;
    const CAPABILITIES: u32 = TCPSCOPE_CAP_SEGMENTS | TCPSCOPE_CAP_FLOW_END | TCPSCOPE_CAP_TICK | TCPSCOPE_CAP_FLUSH;

    fn init_shared(config: &str, workers: u32) -> Result<Shared, String> {
        let config = parse_config(config)?;
        let aggregate = WindowedAggregate::new(secs_to_ns(config.window_secs), workers);
        Ok(Shared { config, aggregate })
    }

    fn create(shared: &Arc<Shared>, _config: &str, worker: u32) -> Result<Self, String> {
        Ok(SynFlood {
            timeout_ns: secs_to_ns(shared.config.handshake_timeout_secs),
            shared: shared.clone(),
            worker,
            attempts: HashMap::new(),
            deadlines: VecDeque::new(),
            local: BTreeMap::new(),
        })
    }

    fn on_segment(&mut self, seg: &TcpscopeSegment, _out: &mut Emitter<'_>) {
        let ts = seg.ts_ns;
        if seg.from_originator() && seg.is_pure_syn() {
            if let Some(a) = self.attempts.get_mut(&seg.flow_id) {
                if !a.decided {
                    a.syns += 1;
                }
            } else {
                self.attempts.insert(
                    seg.flow_id,
                    Attempt { first_syn_ns: ts, src: seg.src_ip(), dst: (seg.dst_ip(), seg.dst_port), syns: 1, decided: false },
                );
                self.deadlines.push_back((ts.saturating_add(self.timeout_ns), seg.flow_id));
            }
            return;
        }
        let Some(a) = self.attempts.get(&seg.flow_id) else { return };
        if a.decided {
            return;
        }
        let in_time = ts <= a.first_syn_ns.saturating_add(self.timeout_ns);
        if seg.is_rst() {
            self.decide(seg.flow_id, if seg.from_responder() { Outcome::Refused } else { Outcome::Incomplete });
        } else if seg.from_originator() && seg.tcp_flags & flags::ACK != 0 && seg.tcp_flags & flags::SYN == 0 {
            self.decide(seg.flow_id, if in_time { Outcome::Completed } else { Outcome::Incomplete });
        }
    }

    fn on_flow_end(&mut self, flow: &TcpscopeFlow, _out: &mut Emitter<'_>) {
        // The flow ended undecided (reset, idle, evicted): the handshake never completed.
        self.decide(flow.flow_id, Outcome::Incomplete);
        self.attempts.remove(&flow.flow_id);
    }

    fn on_tick(&mut self, now_ns: u64, out: &mut Emitter<'_>) {
        self.expire(now_ns);
        // Every attempt whose first SYN is older than `now - timeout` is decided and submitted.
        self.publish(now_ns.saturating_sub(self.timeout_ns), out);
    }

    fn flush(&mut self, out: &mut Emitter<'_>) {
        self.expire(u64::MAX);
        self.publish(u64::MAX, out);
    }

    fn flush_shared(shared: &Shared, out: &mut Emitter<'_>) {
        let rest = shared.aggregate.take_all();
        report(shared, rest, out);
    }
}

tcpscope_plugin_api::export_plugin!(
    SynFlood,
    name: "syn-flood",
    description: "SYN floods: per destination and packet-time window, handshakes that never complete, and from how many sources",
    kinds: [("syn_flood", "A destination received many connection attempts that never completed the handshake in one window")],
    details: [
        ("window_start_ns", "Start of the packet-time window, nanoseconds since the epoch"),
        ("window_secs", "Window length, seconds"),
        ("incomplete", "Attempts (flows) whose handshake never completed in time"),
        ("completed", "Attempts that completed the handshake in the same window"),
        ("refused", "Incomplete attempts answered by a reset"),
        ("syn_packets", "SYN packets of all attempts, retransmissions included"),
        ("incomplete_ratio", "incomplete / (incomplete + completed)"),
        ("sources", "Distinct source addresses of incomplete attempts (at most max_tracked_sources)"),
        ("sources_capped", "true when there were more sources than max_tracked_sources"),
        ("sample_sources", "Up to five source addresses (the lowest)"),
    ],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        assert_eq!(parse_config("null").unwrap().min_incomplete, 100);
        assert_eq!(parse_config(r#"{"min_incomplete": 5}"#).unwrap().min_incomplete, 5);
        assert!(parse_config(r#"{"nope": 1}"#).unwrap_err().contains("nope"));
        assert!(parse_config(r#"{"window_secs": 0}"#).is_err());
    }
}
