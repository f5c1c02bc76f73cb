//! A plugin that misbehaves on purpose, for the fault-containment tests: it panics in
//! `on_segment` at a chosen packet number, or refuses its configuration.
//!
//! Configuration: `{"panic_at_packet": 3}` (default 3), `{"refuse": true}` (init fails),
//! `{"fail_create": true}` (every worker's `create` fails).

use std::sync::Arc;
use tcpscope_plugin_api::abi::*;
use tcpscope_plugin_api::{Detector, Emitter, Event, Severity};

/// Parsed settings.
pub struct Settings {
    panic_at_packet: u64,
    fail_create: bool,
}

/// One worker's instance.
pub struct TestPanic {
    panic_at_packet: u64,
    segments: u64,
}

impl Detector for TestPanic {
    type Shared = Settings;
    const CAPABILITIES: u32 = TCPSCOPE_CAP_SEGMENTS | TCPSCOPE_CAP_FLUSH;

    fn init_shared(config: &str, _workers: u32) -> Result<Settings, String> {
        let v: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
        if v.get("refuse").and_then(|r| r.as_bool()) == Some(true) {
            return Err("invalid configuration: refusing as asked (\"refuse\": true)".into());
        }
        let panic_at_packet = v.get("panic_at_packet").and_then(|p| p.as_u64()).unwrap_or(3);
        let fail_create = v.get("fail_create").and_then(|r| r.as_bool()) == Some(true);
        Ok(Settings { panic_at_packet, fail_create })
    }

    fn create(shared: &Arc<Settings>, _config: &str, worker: u32) -> Result<Self, String> {
        if shared.fail_create {
            return Err(format!("worker {worker} cannot start (\"fail_create\": true)"));
        }
        Ok(TestPanic { panic_at_packet: shared.panic_at_packet, segments: 0 })
    }

    fn on_segment(&mut self, seg: &TcpscopeSegment, _out: &mut Emitter<'_>) {
        self.segments += 1;
        if seg.packet_number == self.panic_at_packet {
            panic!("test-panic: deliberate panic at packet {}", seg.packet_number);
        }
    }

    fn flush(&mut self, out: &mut Emitter<'_>) {
        // Only instances that never panicked get here.
        // `undeclared` is deliberately missing from the descriptor (the host counts such events).
        out.emit(&Event::new("segments_seen", Severity::Chat, 0).count(self.segments).detail("undeclared", 1));
    }
}

tcpscope_plugin_api::export_plugin!(
    TestPanic,
    name: "test-panic",
    description: "Test plugin that panics on purpose",
    kinds: [("segments_seen", "Segments an instance saw (emitted at flush by instances that did not panic)")],
    details: [],
);
