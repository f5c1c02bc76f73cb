//! A plugin whose hooks do nothing: measures what a plugin call costs the host
//! (`benches/benches/plugin_dispatch.rs`).

use std::sync::Arc;
use tcpscope_plugin_api::abi::*;
use tcpscope_plugin_api::{Detector, Emitter};

/// One worker's instance.
pub struct Noop;

impl Detector for Noop {
    type Shared = ();
    const CAPABILITIES: u32 = TCPSCOPE_CAP_SEGMENTS;

    fn init_shared(_config: &str, _workers: u32) -> Result<(), String> {
        Ok(())
    }

    fn create(_shared: &Arc<()>, _config: &str, _worker: u32) -> Result<Self, String> {
        Ok(Noop)
    }

    #[inline(never)]
    fn on_segment(&mut self, _segment: &TcpscopeSegment, _out: &mut Emitter<'_>) {}
}

tcpscope_plugin_api::export_plugin!(Noop, name: "test-noop", description: "Does nothing", kinds: [], details: []);
