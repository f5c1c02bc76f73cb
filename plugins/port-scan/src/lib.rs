//! Port scan detector: per source address and packet-time window, the distinct destination
//! ports and hosts it tried where the attempt was refused (reset) or unanswered, counting SYN,
//! NULL, FIN and XMAS probes.
//!
//! Each attempt (a flow whose first packet is a probe from its originator) is decided from the
//! flow's own packets on the worker that owns it: `refused` when the responder resets within
//! `answer_timeout_secs`, `answered` when it sends anything else in time, `unanswered`
//! otherwise. Decisions go to a shared [`WindowedAggregate`] keyed by (window, source), reported
//! once every worker has passed the window: the output does not depend on `--workers`.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use tcpscope_plugin_api::abi::*;
use tcpscope_plugin_api::sdk::{flags, Merge, SmallestSet, WindowedAggregate};
use tcpscope_plugin_api::{Detector, Emitter, Event, Severity};

/// Settings (`--plugin-config port-scan='{"min_ports":10}'`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Length of a packet-time window, seconds.
    pub window_secs: f64,
    /// A probe the responder has not answered within this time is unanswered, seconds.
    pub answer_timeout_secs: f64,
    /// Distinct destination ports with failed attempts (on any hosts) needed to report.
    pub min_ports: u64,
    /// Distinct destination hosts with failed attempts needed to report.
    pub min_hosts: u64,
    /// Ports and hosts remembered per source and window (the lowest are kept).
    pub max_tracked: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { window_secs: 60.0, answer_timeout_secs: 3.0, min_ports: 15, min_hosts: 15, max_tracked: 4096 }
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
    if c.window_secs.is_nan() || c.window_secs <= 0.0 || c.answer_timeout_secs.is_nan() || c.answer_timeout_secs <= 0.0 {
        return Err("invalid configuration: window_secs and answer_timeout_secs must be positive".into());
    }
    if c.min_ports == 0 || c.min_hosts == 0 {
        return Err("invalid configuration: min_ports and min_hosts must be at least 1".into());
    }
    Ok(c)
}

/// The kind of probe that opened an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A SYN (connect or half-open scan).
    Syn,
    /// No flags at all.
    Null,
    /// FIN alone.
    Fin,
    /// FIN, PSH and URG.
    Xmas,
}

/// Classifies a first packet; `None` when it is not a probe.
pub fn classify(tcp_flags: u16) -> Option<Probe> {
    let f = tcp_flags & 0x3F;
    if f & (flags::SYN | flags::ACK | flags::RST) == flags::SYN {
        Some(Probe::Syn)
    } else if f == 0 {
        Some(Probe::Null)
    } else if f == flags::FIN {
        Some(Probe::Fin)
    } else if f == flags::FIN | flags::PSH | flags::URG {
        Some(Probe::Xmas)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Answered,
    Refused,
    Unanswered,
}

/// What one window holds about one source.
#[derive(Clone, Debug)]
pub struct Window {
    refused: u64,
    unanswered: u64,
    answered: u64,
    probes: [u64; 4],
    first_ns: u64,
    last_ns: u64,
    ports: SmallestSet<u16>,
    hosts: SmallestSet<IpAddr>,
}

impl Window {
    fn new(cap: usize) -> Self {
        Window {
            refused: 0,
            unanswered: 0,
            answered: 0,
            probes: [0; 4],
            first_ns: u64::MAX,
            last_ns: 0,
            ports: SmallestSet::new(cap),
            hosts: SmallestSet::new(cap),
        }
    }
}

impl Merge for Window {
    fn merge(&mut self, o: Window) {
        self.refused += o.refused;
        self.unanswered += o.unanswered;
        self.answered += o.answered;
        for i in 0..4 {
            self.probes[i] += o.probes[i];
        }
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
        self.ports.merge(o.ports);
        self.hosts.merge(o.hosts);
    }
}

/// Shared state: the configuration and the cross-worker aggregate.
pub struct Shared {
    config: Config,
    aggregate: WindowedAggregate<IpAddr, Window>,
}

struct Attempt {
    ts_ns: u64,
    src: IpAddr,
    dst: IpAddr,
    dst_port: u16,
    probe: Option<Probe>,
    decided: bool,
}

/// One worker's detector.
pub struct PortScan {
    shared: Arc<Shared>,
    worker: u32,
    timeout_ns: u64,
    attempts: HashMap<u64, Attempt>,
    deadlines: VecDeque<(u64, u64)>,
    local: BTreeMap<(u64, IpAddr), Window>,
}

impl PortScan {
    fn decide(&mut self, flow_id: u64, outcome: Outcome) {
        let Some(a) = self.attempts.get_mut(&flow_id) else { return };
        let Some(probe) = a.probe else { return };
        if a.decided {
            return;
        }
        a.decided = true;
        let cap = self.shared.config.max_tracked;
        let start = self.shared.aggregate.window_of(a.ts_ns);
        let w = self.local.entry((start, a.src)).or_insert_with(|| Window::new(cap));
        w.probes[probe as usize] += 1;
        match outcome {
            Outcome::Answered => w.answered += 1,
            Outcome::Refused | Outcome::Unanswered => {
                if outcome == Outcome::Refused {
                    w.refused += 1;
                } else {
                    w.unanswered += 1;
                }
                w.first_ns = w.first_ns.min(a.ts_ns);
                w.last_ns = w.last_ns.max(a.ts_ns);
                w.ports.insert(a.dst_port);
                w.hosts.insert(a.dst);
            }
        }
    }

    fn expire(&mut self, now: u64) {
        while let Some(&(deadline, flow_id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            self.decide(flow_id, Outcome::Unanswered);
        }
    }

    fn publish(&mut self, done_before: u64, out: &mut Emitter<'_>) {
        self.shared.aggregate.submit(&mut self.local);
        self.shared.aggregate.advance(self.worker, done_before);
        let closed = self.shared.aggregate.take_closed();
        report(&self.shared, closed, out);
    }
}

fn list<T: ToString>(values: impl Iterator<Item = T>, n: usize) -> String {
    values.take(n).map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

fn report(shared: &Shared, windows: Vec<((u64, IpAddr), Window)>, out: &mut Emitter<'_>) {
    let c = &shared.config;
    for ((start, src), w) in windows {
        let (ports, hosts) = (w.ports.len() as u64, w.hosts.len() as u64);
        let vertical = ports >= c.min_ports;
        let horizontal = hosts >= c.min_hosts;
        if !vertical && !horizontal {
            continue;
        }
        let scan_type = match (vertical, horizontal) {
            (true, true) => "block",
            (true, false) => "vertical",
            _ => "horizontal",
        };
        let event = Event::new("port_scan", Severity::Warn, w.first_ns)
            .src_addr(src)
            .count(w.refused + w.unanswered)
            .value_ns(w.last_ns.saturating_sub(w.first_ns))
            .detail("scan_type", scan_type)
            .detail("window_start_ns", start)
            .detail("window_secs", c.window_secs)
            .detail("ports", ports)
            .detail("hosts", hosts)
            .detail("capped", w.ports.overflowed() || w.hosts.overflowed())
            .detail("refused", w.refused)
            .detail("unanswered", w.unanswered)
            .detail("answered", w.answered)
            .detail("syn_probes", w.probes[Probe::Syn as usize])
            .detail("null_probes", w.probes[Probe::Null as usize])
            .detail("fin_probes", w.probes[Probe::Fin as usize])
            .detail("xmas_probes", w.probes[Probe::Xmas as usize])
            .detail("sample_ports", list(w.ports.iter(), 20))
            .detail("sample_hosts", list(w.hosts.iter(), 10));
        out.emit(&event);
    }
}

impl Detector for PortScan {
    type Shared = Shared;
    const CAPABILITIES: u32 = TCPSCOPE_CAP_SEGMENTS | TCPSCOPE_CAP_FLOW_END | TCPSCOPE_CAP_TICK | TCPSCOPE_CAP_FLUSH;

    fn init_shared(config: &str, workers: u32) -> Result<Shared, String> {
        let config = parse_config(config)?;
        let aggregate = WindowedAggregate::new(secs_to_ns(config.window_secs), workers);
        Ok(Shared { config, aggregate })
    }

    fn create(shared: &Arc<Shared>, _config: &str, worker: u32) -> Result<Self, String> {
        Ok(PortScan {
            timeout_ns: secs_to_ns(shared.config.answer_timeout_secs),
            shared: shared.clone(),
            worker,
            attempts: HashMap::new(),
            deadlines: VecDeque::new(),
            local: BTreeMap::new(),
        })
    }

    fn on_segment(&mut self, seg: &TcpscopeSegment, _out: &mut Emitter<'_>) {
        let ts = seg.ts_ns;
        let Some(a) = self.attempts.get(&seg.flow_id) else {
            // The flow's first packet: an attempt when it is a probe from the originator.
            let probe = if seg.from_originator() { classify(seg.tcp_flags) } else { None };
            self.attempts.insert(
                seg.flow_id,
                Attempt { ts_ns: ts, src: seg.src_ip(), dst: seg.dst_ip(), dst_port: seg.dst_port, probe, decided: probe.is_none() },
            );
            if probe.is_some() {
                self.deadlines.push_back((ts.saturating_add(self.timeout_ns), seg.flow_id));
            }
            return;
        };
        if a.decided || !seg.from_responder() {
            return;
        }
        let outcome = if ts > a.ts_ns.saturating_add(self.timeout_ns) {
            Outcome::Unanswered
        } else if seg.is_rst() {
            Outcome::Refused
        } else {
            Outcome::Answered
        };
        self.decide(seg.flow_id, outcome);
    }

    fn on_flow_end(&mut self, flow: &TcpscopeFlow, _out: &mut Emitter<'_>) {
        self.decide(flow.flow_id, Outcome::Unanswered);
        self.attempts.remove(&flow.flow_id);
    }

    fn on_tick(&mut self, now_ns: u64, out: &mut Emitter<'_>) {
        self.expire(now_ns);
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
    PortScan,
    name: "port-scan",
    description: "Port scans: per source and packet-time window, distinct ports and hosts with refused or unanswered SYN/NULL/FIN/XMAS probes",
    kinds: [("port_scan", "A source probed many ports (vertical), many hosts (horizontal) or both (block) without success in one window")],
    details: [
        ("scan_type", "vertical (many ports), horizontal (many hosts) or block (both)"),
        ("window_start_ns", "Start of the packet-time window, nanoseconds since the epoch"),
        ("window_secs", "Window length, seconds"),
        ("ports", "Distinct destination ports with refused or unanswered attempts"),
        ("hosts", "Distinct destination hosts with refused or unanswered attempts"),
        ("capped", "true when ports or hosts exceeded max_tracked (counts are lower bounds)"),
        ("refused", "Attempts answered by a reset"),
        ("unanswered", "Attempts never answered within answer_timeout_secs"),
        ("answered", "Attempts answered otherwise (open ports)"),
        ("syn_probes", "Attempts opened by a SYN"),
        ("null_probes", "Attempts opened by a packet with no flags"),
        ("fin_probes", "Attempts opened by a lone FIN"),
        ("xmas_probes", "Attempts opened by FIN+PSH+URG"),
        ("sample_ports", "Up to 20 failed destination ports (the lowest)"),
        ("sample_hosts", "Up to 10 failed destination hosts (the lowest)"),
    ],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_classified() {
        assert_eq!(classify(flags::SYN), Some(Probe::Syn));
        assert_eq!(classify(0), Some(Probe::Null));
        assert_eq!(classify(flags::FIN), Some(Probe::Fin));
        assert_eq!(classify(flags::FIN | flags::PSH | flags::URG), Some(Probe::Xmas));
        assert_eq!(classify(flags::SYN | flags::ACK), None);
        assert_eq!(classify(flags::ACK | flags::PSH), None);
    }

    #[test]
    fn config_checks() {
        assert_eq!(parse_config("null").unwrap().min_ports, 15);
        assert!(parse_config(r#"{"min_ports": 0}"#).is_err());
        assert!(parse_config("[").is_err());
    }
}
