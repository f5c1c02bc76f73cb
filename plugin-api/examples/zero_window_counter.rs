//! The example plugin of the README's "Writing a plugin in Rust" section: flows that advertise a zero window many times.
//! Build: `cargo build --example zero_window_counter -p tcpscope-plugin-api`.

use std::sync::Arc;
use tcpscope_plugin_api::abi::*;
use tcpscope_plugin_api::{Detector, Emitter, Event, Severity};

pub struct ZeroWindowCounter { threshold: u64, zero_windows: std::collections::HashMap<u64, u64> }

impl Detector for ZeroWindowCounter {
    type Shared = u64; // the threshold, parsed once
    const CAPABILITIES: u32 = TCPSCOPE_CAP_SEGMENTS | TCPSCOPE_CAP_FLOW_END;

    fn init_shared(config: &str, _workers: u32) -> Result<u64, String> {
        // `config` is the JSON given with --plugin-config (or "null").
        Ok(config.trim().parse().unwrap_or(10))
    }
    fn create(threshold: &Arc<u64>, _config: &str, _worker: u32) -> Result<Self, String> {
        Ok(ZeroWindowCounter { threshold: **threshold, zero_windows: Default::default() })
    }
    fn on_segment(&mut self, seg: &TcpscopeSegment, out: &mut Emitter<'_>) {
        if seg.analysis_flags & TCPSCOPE_ANALYSIS_ZERO_WINDOW != 0 {
            let n = self.zero_windows.entry(seg.flow_id).or_default();
            *n += 1;
            if *n == self.threshold {
                out.emit(&Event::about_segment("many_zero_windows", Severity::Warn, seg).count(*n));
            }
        }
    }
    fn on_flow_end(&mut self, flow: &TcpscopeFlow, _out: &mut Emitter<'_>) {
        self.zero_windows.remove(&flow.flow_id);
    }
}

tcpscope_plugin_api::export_plugin!(ZeroWindowCounter, name: "zero-window-counter",
    description: "Flows that advertise a zero window many times",
    kinds: [("many_zero_windows", "A flow advertised a zero window `threshold` times")],
    details: []);
