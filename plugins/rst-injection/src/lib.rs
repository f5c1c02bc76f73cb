//! Forged packet detector: resets or data whose IP TTL or IPv4 ID breaks with the rest of the
//! connection, and resets that race legitimate data from the same side. These are the marks of
//! packets injected by a third party (a censor, a hijacker or a middlebox) rather than sent by
//! the endpoint whose address they carry.
//!
//! Per connection and direction the detector learns a baseline: the TTL (hop limit) and the
//! IPv4 ID sequence of the sender's first packets. Then:
//! * `forged_rst`: a reset whose TTL differs from the baseline by more than `ttl_tolerance`, or
//!   whose IP ID does not follow the sender's sequence;
//! * `injected_data`: a data packet that breaks the baseline while the packet after it returns
//!   to it (one odd packet between normal ones; a lasting change is a route change, not
//!   reported);
//! * `rst_race`: data (or a SYN/ACK) from a side within `race_window_secs` after that same
//!   side's reset: the reset did not come from the endpoint.
//!
//! IPv4 ID breaks alone are not reported unless `ip_id_alone` is set: they only add to a TTL
//! break by default (real kernels send some genuine resets with IDs from another counter).
//!
//! Everything is decided per flow, on the worker that owns it: the output does not depend on
//! `--workers`.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tcpscope_plugin_api::abi::*;
use tcpscope_plugin_api::{Detector, Emitter, Event, Severity};

/// Settings (`--plugin-config rst-injection='{"ttl_tolerance":2}'`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Packets from a side before its TTL and IP ID baseline is trusted.
    pub min_baseline_packets: u32,
    /// TTL difference tolerated (path changes by a hop or two happen).
    pub ttl_tolerance: u8,
    /// Largest forward step between consecutive IPv4 IDs of one sender that still follows
    /// its sequence (per-connection counters step by 1; global counters by more).
    pub max_ip_id_step: u16,
    /// Data from a side this soon after its own reset makes the reset a forgery, seconds.
    pub race_window_secs: f64,
    /// Check IPv4 IDs (turn off for senders with random IDs).
    pub check_ip_id: bool,
    /// Also report packets whose only anomaly is the IPv4 ID. Off by default: kernels send
    /// some genuine resets (from no socket, after close) with IDs from another counter.
    pub ip_id_alone: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_baseline_packets: 3,
            ttl_tolerance: 1,
            max_ip_id_step: 512,
            race_window_secs: 2.0,
            check_ip_id: true,
            ip_id_alone: false,
        }
    }
}

/// Parses the JSON configuration (`null` gives the defaults).
pub fn parse_config(text: &str) -> Result<Config, String> {
    let text = text.trim();
    let c: Config = if text.is_empty() || text == "null" {
        Config::default()
    } else {
        serde_json::from_str(text).map_err(|e| format!("invalid configuration: {e}"))?
    };
    if c.min_baseline_packets == 0 {
        return Err("invalid configuration: min_baseline_packets must be at least 1".into());
    }
    if c.race_window_secs.is_nan() || c.race_window_secs < 0.0 {
        return Err("invalid configuration: race_window_secs must not be negative".into());
    }
    Ok(c)
}

#[derive(Clone, Copy, Default)]
struct Side {
    ttl_base: Option<u8>,
    ttl_run: u32,
    last_ip_id: Option<u16>,
    id_run: u32,
    suspect: Option<Suspect>,
    rst: Option<TcpscopeSegment>,
    raced: bool,
}

#[derive(Clone, Copy)]
struct Suspect {
    seg: TcpscopeSegment,
    breaks: Breaks,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Breaks {
    ttl: Option<u8>,
    ip_id: Option<u16>,
}

impl Breaks {
    fn any(self) -> bool {
        self.ttl.is_some() || self.ip_id.is_some()
    }
    fn reasons(self) -> &'static str {
        match (self.ttl.is_some(), self.ip_id.is_some()) {
            (true, true) => "ttl,ip_id",
            (true, false) => "ttl",
            _ => "ip_id",
        }
    }
}

/// One worker's detector.
pub struct RstInjection {
    config: Config,
    flows: HashMap<u64, [Side; 2]>,
}

impl RstInjection {
    fn in_sequence(&self, previous: u16, current: u16) -> bool {
        let step = current.wrapping_sub(previous);
        // Forward by at most `max_ip_id_step`, or back by a little (reordering).
        step <= self.config.max_ip_id_step || step >= u16::MAX - 15
    }

    /// How `seg` breaks its side's baseline (with the expected TTL / previous ID).
    fn breaks(&self, side: &Side, seg: &TcpscopeSegment) -> Breaks {
        let n = self.config.min_baseline_packets;
        let mut b = Breaks::default();
        if let Some(base) = side.ttl_base {
            if side.ttl_run >= n && seg.ttl.abs_diff(base) > self.config.ttl_tolerance {
                b.ttl = Some(base);
            }
        }
        // ID 0 carries no information (Linux sends it on some DF packets).
        if self.config.check_ip_id && seg.ip_version == 4 && seg.ip_id != 0 {
            if let Some(prev) = side.last_ip_id.filter(|p| *p != 0) {
                if side.id_run + 1 >= n && !self.in_sequence(prev, seg.ip_id) {
                    b.ip_id = Some(prev);
                }
            }
        }
        if b.ttl.is_none() && !self.config.ip_id_alone {
            b.ip_id = None;
        }
        b
    }

    fn learn(&self, side: &mut Side, seg: &TcpscopeSegment) {
        match side.ttl_base {
            Some(base) if seg.ttl.abs_diff(base) <= self.config.ttl_tolerance => side.ttl_run += 1,
            _ => {
                side.ttl_base = Some(seg.ttl);
                side.ttl_run = 1;
            }
        }
        if seg.ip_version == 4 {
            match side.last_ip_id {
                Some(prev) if self.in_sequence(prev, seg.ip_id) => side.id_run += 1,
                _ => side.id_run = 0,
            }
            side.last_ip_id = Some(seg.ip_id);
        }
    }
}

fn with_breaks(mut e: Event, seg: &TcpscopeSegment, b: Breaks, baseline: u32) -> Event {
    e = e.detail("reasons", b.reasons()).detail("ttl", seg.ttl).detail("baseline_packets", baseline);
    if let Some(t) = b.ttl {
        e = e.detail("expected_ttl", t);
    }
    if seg.ip_version == 4 {
        e = e.detail("ip_id", seg.ip_id);
    }
    if let Some(p) = b.ip_id {
        e = e.detail("previous_ip_id", p);
    }
    e.detail("seq", seg.seq)
}

fn letters(f: u16) -> String {
    use tcpscope_plugin_api::sdk::flags::*;
    let mut s = String::new();
    for (bit, c) in [(FIN, 'F'), (SYN, 'S'), (RST, 'R'), (PSH, 'P'), (URG, 'U'), (ACK, '.')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

fn severity(b: Breaks) -> Severity {
    if b.ttl.is_some() {
        Severity::Warn
    } else {
        Severity::Note
    }
}

impl Detector for RstInjection {
    type Shared = Config;
    const CAPABILITIES: u32 = TCPSCOPE_CAP_SEGMENTS | TCPSCOPE_CAP_FLOW_END;

    fn init_shared(config: &str, _workers: u32) -> Result<Config, String> {
        parse_config(config)
    }

    fn create(shared: &Arc<Config>, _config: &str, _worker: u32) -> Result<Self, String> {
        Ok(RstInjection { config: (**shared).clone(), flows: HashMap::new() })
    }

    fn on_segment(&mut self, seg: &TcpscopeSegment, out: &mut Emitter<'_>) {
        let d = match seg.direction {
            TCPSCOPE_DIRECTION_ORIG => 0,
            TCPSCOPE_DIRECTION_RESP => 1,
            _ => return,
        };
        let mut sides = self.flows.get(&seg.flow_id).copied().unwrap_or_default();
        let side = &mut sides[d];
        let breaks = self.breaks(side, seg);
        let baseline = side.ttl_run;
        if seg.is_rst() {
            if breaks.any() {
                out.emit(&with_breaks(Event::about_segment("forged_rst", severity(breaks), seg), seg, breaks, baseline));
            }
            if side.rst.is_none() {
                side.rst = Some(*seg);
            }
        } else {
            // Data, or a SYN/ACK, from the side that just reset: that reset was not its own.
            let speaks = seg.payload_len > 0 || seg.tcp_flags & tcpscope_plugin_api::sdk::flags::SYN != 0;
            if let (Some(rst), false, true) = (side.rst, side.raced, speaks) {
                let delay = seg.ts_ns.saturating_sub(rst.ts_ns);
                if delay as f64 <= self.config.race_window_secs * 1e9 {
                    side.raced = true;
                    let e = Event::about_segment("rst_race", Severity::Warn, seg)
                        .ref_packet(rst.packet_number)
                        .value_ns(delay)
                        .detail("rst_seq", rst.seq)
                        .detail("data_seq", seg.seq)
                        .detail("rst_ttl", rst.ttl)
                        .detail("data_ttl", seg.ttl)
                        .detail("data_flags", letters(seg.tcp_flags))
                        .detail("payload_len", seg.payload_len);
                    out.emit(&e);
                }
            }
            if let Some(suspect) = side.suspect.take() {
                if breaks.any() {
                    // The odd values persist: a route or stack change, not an injection.
                    side.ttl_base = None;
                    side.last_ip_id = None;
                    side.id_run = 0;
                    self.learn(side, seg);
                } else {
                    let s = &suspect.seg;
                    let e = with_breaks(Event::about_segment("injected_data", severity(suspect.breaks), s), s, suspect.breaks, baseline)
                        .ref_packet(seg.packet_number)
                        .detail("payload_len", s.payload_len);
                    out.emit(&e);
                    self.learn(side, seg);
                }
            } else if breaks.any() && seg.payload_len > 0 {
                side.suspect = Some(Suspect { seg: *seg, breaks });
            } else {
                self.learn(side, seg);
            }
        }
        self.flows.insert(seg.flow_id, sides);
    }

    fn on_flow_end(&mut self, flow: &TcpscopeFlow, _out: &mut Emitter<'_>) {
        self.flows.remove(&flow.flow_id);
    }
}

tcpscope_plugin_api::export_plugin!(
    RstInjection,
    name: "rst-injection",
    description: "Forged resets and injected data: TTL or IP ID breaks within a connection, and resets that race the same side's data",
    kinds: [
        ("forged_rst", "A reset whose TTL or IPv4 ID does not match the sender's other packets"),
        ("injected_data", "One packet whose TTL or IPv4 ID breaks the sender's pattern between normal packets"),
        ("rst_race", "Data or a SYN/ACK from a side shortly after that side's own reset: the reset was not sent by the endpoint"),
    ],
    details: [
        ("reasons", "Which pattern broke: ttl, ip_id or ttl,ip_id"),
        ("ttl", "TTL (hop limit) of the packet"),
        ("expected_ttl", "The sender's baseline TTL"),
        ("ip_id", "IPv4 ID of the packet"),
        ("previous_ip_id", "The sender's previous IPv4 ID"),
        ("baseline_packets", "Packets behind the TTL baseline"),
        ("seq", "Sequence number of the packet"),
        ("payload_len", "Payload bytes of the packet"),
        ("rst_seq", "Sequence number of the reset (rst_race)"),
        ("data_seq", "Sequence number of the data after it (rst_race)"),
        ("rst_ttl", "TTL of the reset (rst_race)"),
        ("data_ttl", "TTL of the data (rst_race)"),
        ("data_flags", "TCP flags of the packet after the reset, tcpdump letters (rst_race)"),
    ],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_id_sequence_tolerates_small_steps_and_wrap() {
        let d = RstInjection { config: Config::default(), flows: HashMap::new() };
        assert!(d.in_sequence(10, 11));
        assert!(d.in_sequence(65535, 3));
        assert!(d.in_sequence(100, 95));
        assert!(!d.in_sequence(100, 40000));
    }

    #[test]
    fn config_checks() {
        assert_eq!(parse_config("null").unwrap().ttl_tolerance, 1);
        assert!(parse_config(r#"{"min_baseline_packets":0}"#).is_err());
    }
}
