//! Detector plugins: loads them ([`PluginSet::load`]), creates one instance per worker on the
//! worker's thread ([`WorkerPlugins`]), calls their hooks after the engine, turns what they emit
//! into `events` rows, and contains their faults. The only module with `unsafe` besides live
//! capture; every block says why it is sound.
//!
//! Lifecycle: `dlopen` → descriptor checks → `init_shared(config, workers)` once (on the
//! loading thread) → per worker `create` → `on_segment` / `on_flow_end` / `on_tick` → `flush`
//! → `destroy` → after the last worker, `flush_shared` and `destroy_shared`. Libraries are
//! never unloaded.

mod loader;

pub use loader::{capability_names, check_permissions, PluginInfo};

use crate::decode::Segment;
use crate::flow::Direction;
use crate::tcp::{EngineOutput, Event, FlowRecord, SegmentVerdict, Severity};
use crate::time::Timestamp;
use std::borrow::Cow;
use std::ffi::c_void;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tcpscope_plugin_api::abi::*;

/// Packet time between two `on_tick` calls while segments flow (1 s).
pub const TICK_INTERVAL_NS: u64 = 1_000_000_000;

/// Most details the host copies from one event.
const MAX_DETAILS: usize = 256;

/// Why a plugin was refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not a regular file, or writable by group or others.
    #[error("refusing plugin {path}: {reason}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `dlopen` failed (not a shared library, missing dependency, wrong architecture, ...).
    #[error("refusing plugin {path}: expected a loadable shared library, found: {found}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message (`dlerror`).
        found: String,
    },
    /// No entry symbol.
    #[error("refusing plugin {path}: expected the entry symbol `{expected}`, found {found}")]
    MissingEntry {
        /// The file.
        path: PathBuf,
        /// The symbol looked for.
        expected: &'static str,
        /// What was there instead.
        found: String,
    },
    /// Not a tcpscope descriptor.
    #[error("refusing plugin {path}: expected descriptor magic {expected:#018x}, found {found:#018x}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// `TCPSCOPE_PLUGIN_MAGIC`.
        expected: u64,
        /// The value read.
        found: u64,
    },
    /// Built for another ABI major.
    #[error(
        "refusing plugin {path}: expected plugin ABI major {expected}, found {found} \
         (rebuild the plugin against tcpscope-plugin-api {expected}.x)"
    )]
    AbiMajor {
        /// The file.
        path: PathBuf,
        /// The host's major.
        expected: u32,
        /// The plugin's major.
        found: u32,
    },
    /// Built for a newer ABI minor than this host knows.
    #[error(
        "refusing plugin {path}: expected plugin ABI minor at most {expected}, found {found} \
         (the plugin needs a newer tcpscope)"
    )]
    AbiMinor {
        /// The host's minor.
        expected: u32,
        /// The plugin's minor.
        found: u32,
        /// The file.
        path: PathBuf,
    },
    /// The descriptor is smaller than this ABI's.
    #[error("refusing plugin {path}: expected a descriptor of at least {expected} bytes, found struct_size {found}")]
    StructTooSmall {
        /// The file.
        path: PathBuf,
        /// Bytes needed.
        expected: u32,
        /// `struct_size` declared.
        found: u32,
    },
    /// Another descriptor fault.
    #[error("refusing plugin {path}: {reason}")]
    BadDescriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two plugins with one name.
    #[error("refusing plugin {path}: expected a unique plugin name, found `{name}` again (already loaded from {first})")]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
        /// The first file with that name.
        first: PathBuf,
    },
    /// A configuration names no loaded plugin.
    #[error("plugin configuration for `{name}`: expected the name of a loaded plugin, found none (loaded: {loaded})")]
    UnknownConfig {
        /// The name configured.
        name: String,
        /// Names loaded.
        loaded: String,
    },
    /// A configuration that is not JSON.
    #[error("plugin configuration for `{name}`: expected a JSON value, found: {reason}")]
    ConfigSyntax {
        /// The plugin.
        name: String,
        /// The parser's message.
        reason: String,
    },
    /// The plugin refused its configuration (or failed to start).
    #[error("plugin `{name}` ({path}) refused to start: {message}")]
    InitFailed {
        /// The plugin.
        name: String,
        /// The file.
        path: PathBuf,
        /// The plugin's message.
        message: String,
    },
}

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct PluginOptions {
    /// Plugin files, in order.
    pub paths: Vec<PathBuf>,
    /// Configuration per plugin name: a JSON value (text).
    pub configs: Vec<(String, String)>,
    /// Load files that group or others may write.
    pub allow_unsafe_permissions: bool,
}

/// Health counters of one plugin, summed over workers.
#[derive(Debug, Default)]
pub struct PluginHealth {
    /// Hooks that panicked (each disabled an instance).
    pub panics: AtomicU64,
    /// Hooks that returned an error.
    pub errors: AtomicU64,
    /// Instances disabled (panic or failed `create`).
    pub disabled_instances: AtomicU64,
    /// Events emitted.
    pub events: AtomicU64,
    /// Events refused (too small a struct).
    pub events_refused: AtomicU64,
    /// Events whose kind or a detail key the plugin did not declare in its descriptor.
    pub events_undeclared: AtomicU64,
}

/// Hooks copied from the descriptor, already masked by the capability bits.
#[derive(Clone, Copy)]
struct Hooks {
    init_shared: Option<unsafe extern "C" fn(TcpscopeStr, u32, *const TcpscopeEmitter, *mut *mut c_void) -> TcpscopeStatus>,
    flush_shared: Option<unsafe extern "C" fn(*mut c_void, *const TcpscopeEmitter) -> TcpscopeStatus>,
    destroy_shared: Option<unsafe extern "C" fn(*mut c_void)>,
    create: Option<unsafe extern "C" fn(*mut c_void, TcpscopeStr, u32, *const TcpscopeEmitter, *mut *mut c_void) -> TcpscopeStatus>,
    on_segment: Option<unsafe extern "C" fn(*mut c_void, *const TcpscopeSegment, *const TcpscopeEmitter) -> TcpscopeStatus>,
    on_flow_end: Option<unsafe extern "C" fn(*mut c_void, *const TcpscopeFlow, *const TcpscopeEmitter) -> TcpscopeStatus>,
    on_tick: Option<unsafe extern "C" fn(*mut c_void, u64, *const TcpscopeEmitter) -> TcpscopeStatus>,
    flush: Option<unsafe extern "C" fn(*mut c_void, *const TcpscopeEmitter) -> TcpscopeStatus>,
    destroy: Option<unsafe extern "C" fn(*mut c_void)>,
}

impl Hooks {
    fn from(d: &TcpscopePluginDescriptor) -> Hooks {
        let caps = d.capabilities;
        let has = |bit: u32| caps & bit != 0;
        Hooks {
            init_shared: d.init_shared.filter(|_| has(TCPSCOPE_CAP_SHARED)),
            flush_shared: d.flush_shared.filter(|_| has(TCPSCOPE_CAP_SHARED)),
            destroy_shared: d.destroy_shared,
            create: d.create,
            on_segment: d.on_segment.filter(|_| has(TCPSCOPE_CAP_SEGMENTS)),
            on_flow_end: d.on_flow_end.filter(|_| has(TCPSCOPE_CAP_FLOW_END)),
            on_tick: d.on_tick.filter(|_| has(TCPSCOPE_CAP_TICK)),
            flush: d.flush.filter(|_| has(TCPSCOPE_CAP_FLUSH)),
            destroy: d.destroy,
        }
    }
}

/// One loaded plugin.
pub struct LoadedPlugin {
    /// What it declares.
    pub info: PluginInfo,
    /// Its configuration (JSON text; `null` when none was given).
    pub config: String,
    /// Health counters.
    pub health: PluginHealth,
    hooks: Hooks,
    /// Event kinds and detail keys the descriptor declares.
    declared: std::collections::HashSet<String>,
    /// The plugin's shared state; null before `init_shared` and after `destroy_shared`. The ABI
    /// requires it to be usable from every worker thread at once (the SDK requires
    /// `Send + Sync`); the host only passes it back to the plugin.
    shared: AtomicPtr<c_void>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("info", &self.info).field("config", &self.config).finish()
    }
}

/// Every plugin of a run, loaded and initialised for a fixed number of workers.
#[derive(Debug)]
pub struct PluginSet {
    plugins: Vec<LoadedPlugin>,
    workers: u32,
    workers_left: AtomicUsize,
}

/// Opens `path` and reads its descriptor without initialising it (for `plugin inspect`).
pub fn inspect(path: &Path, allow_unsafe_permissions: bool) -> Result<PluginInfo, PluginError> {
    loader::open(path, allow_unsafe_permissions).map(|p| p.info)
}

/// The host side of one hook call: where emitted events go and what error was reported.
struct CallContext<'a> {
    plugin: &'a LoadedPlugin,
    out: &'a mut Vec<Event>,
    source_index: u32,
    error: Option<String>,
}

impl<'a> CallContext<'a> {
    fn new(plugin: &'a LoadedPlugin, out: &'a mut Vec<Event>, source_index: u32) -> Self {
        CallContext { plugin, out, source_index, error: None }
    }
    fn emitter(&mut self) -> TcpscopeEmitter {
        TcpscopeEmitter { ctx: (self as *mut Self).cast(), emit: host_emit, report_error: host_report_error }
    }
}

fn ip_of(bytes: &[u8; 16], version: u8) -> Option<IpAddr> {
    match version {
        4 => Some(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])),
        6 => Some(IpAddr::from(*bytes)),
        _ => None,
    }
}

/// # Safety
/// `s` must be a view the plugin keeps valid for the current call.
unsafe fn copy_str(s: TcpscopeStr) -> String {
    if s.ptr.is_null() || s.len == 0 {
        return String::new();
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr` for this call.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(s.ptr, s.len.min(1 << 20)) }).into_owned()
}

unsafe extern "C" fn host_emit(ctx: *mut c_void, event: *const TcpscopeEvent) {
    // Never unwind into the plugin's frames.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if ctx.is_null() || event.is_null() {
            return;
        }
        // SAFETY: `ctx` is the `CallContext` of the hook call in progress (built by the host on
        // its stack for this call); the plugin calls back on the same thread during the call.
        let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
        // SAFETY: the plugin passes an event valid for this call; `struct_size` is read first
        // so that an older, smaller event is refused rather than over-read.
        let size = unsafe { std::ptr::read_unaligned(event.cast::<u32>()) };
        if (size as usize) < std::mem::size_of::<TcpscopeEvent>() {
            cx.plugin.health.events_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // SAFETY: as above, the full v1 event is readable.
        let e = unsafe { std::ptr::read_unaligned(event) };
        let has = |bit: u32| e.fields & bit != 0;
        let details: Vec<(Cow<'static, str>, String)> = if e.details.is_null() || e.n_details == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin passes `n_details` valid pairs for this call.
            let pairs = unsafe { std::slice::from_raw_parts(e.details, e.n_details.min(MAX_DETAILS)) };
            // SAFETY: each pair's strings are valid for this call.
            pairs.iter().map(|kv| unsafe { (Cow::Owned(copy_str(kv.key)), copy_str(kv.value)) }).collect()
        };
        // SAFETY: the kind is valid for this call.
        let kind = unsafe { copy_str(e.kind) };
        let declared = &cx.plugin.declared;
        if !declared.contains(&kind) || details.iter().any(|(k, _)| !declared.contains(k.as_ref())) {
            cx.plugin.health.events_undeclared.fetch_add(1, Ordering::Relaxed);
        }
        let src = has(TCPSCOPE_EVENT_HAS_SRC).then(|| ip_of(&e.src_addr, e.ip_version)).flatten();
        let dst = has(TCPSCOPE_EVENT_HAS_DST).then(|| ip_of(&e.dst_addr, e.ip_version)).flatten();
        cx.plugin.health.events.fetch_add(1, Ordering::Relaxed);
        cx.out.push(Event {
            ts: Timestamp(e.ts_ns),
            source_index: cx.source_index,
            packet_number: has(TCPSCOPE_EVENT_HAS_PACKET).then_some(e.packet_number),
            flow_id: if has(TCPSCOPE_EVENT_HAS_FLOW) { e.flow_id } else { 0 },
            detector: Cow::Owned(cx.plugin.info.name.clone()),
            kind: Cow::Owned(if kind.is_empty() { "unnamed".to_owned() } else { kind }),
            severity: match e.severity {
                TCPSCOPE_SEVERITY_CHAT => Severity::Chat,
                TCPSCOPE_SEVERITY_NOTE => Severity::Note,
                TCPSCOPE_SEVERITY_WARN => Severity::Warn,
                _ => Severity::Error,
            },
            direction: match e.direction {
                TCPSCOPE_DIRECTION_ORIG => Some(Direction::Orig),
                TCPSCOPE_DIRECTION_RESP => Some(Direction::Resp),
                _ => None,
            },
            src_ip: src,
            src_port: has(TCPSCOPE_EVENT_HAS_SRC_PORT).then_some(e.src_port),
            dst_ip: dst,
            dst_port: has(TCPSCOPE_EVENT_HAS_DST_PORT).then_some(e.dst_port),
            seq: has(TCPSCOPE_EVENT_HAS_SEGMENT).then_some(e.seq),
            ack: (has(TCPSCOPE_EVENT_HAS_SEGMENT) && e.ack_valid == 1).then_some(e.ack),
            payload_len: has(TCPSCOPE_EVENT_HAS_SEGMENT).then_some(e.payload_len),
            ref_packet: has(TCPSCOPE_EVENT_HAS_REF_PACKET).then_some(e.ref_packet),
            value_ns: has(TCPSCOPE_EVENT_HAS_VALUE_NS).then_some(e.value_ns),
            count: has(TCPSCOPE_EVENT_HAS_COUNT).then_some(e.count),
            details,
        });
    }));
}

unsafe extern "C" fn host_report_error(ctx: *mut c_void, message: TcpscopeStr) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if ctx.is_null() {
            return;
        }
        // SAFETY: as in `host_emit`.
        let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
        // SAFETY: the message is valid for this call.
        cx.error = Some(unsafe { copy_str(message) });
    }));
}

fn str_view(s: &str) -> TcpscopeStr {
    TcpscopeStr { ptr: s.as_ptr(), len: s.len() }
}

impl PluginSet {
    /// Loads every plugin of `options` for a run of `workers` workers: checks each file,
    /// reads its descriptor, and runs `init_shared` with its configuration. Any fault refuses
    /// the whole set.
    pub fn load(options: &PluginOptions, workers: usize) -> Result<Arc<PluginSet>, PluginError> {
        let workers = workers.max(1) as u32;
        let mut plugins: Vec<LoadedPlugin> = Vec::new();
        for path in &options.paths {
            let opened = loader::open(path, options.allow_unsafe_permissions)?;
            if let Some(first) = plugins.iter().find(|p| p.info.name == opened.info.name) {
                return Err(PluginError::DuplicateName {
                    path: path.clone(),
                    name: opened.info.name,
                    first: first.info.path.clone(),
                });
            }
            let declared = opened.info.event_kinds.iter().chain(&opened.info.detail_keys).map(|(n, _)| n.clone()).collect();
            plugins.push(LoadedPlugin {
                declared,
                hooks: Hooks::from(&opened.descriptor),
                info: opened.info,
                config: "null".into(),
                health: PluginHealth::default(),
                shared: AtomicPtr::new(std::ptr::null_mut()),
            });
        }
        for (name, config) in &options.configs {
            let Some(plugin) = plugins.iter_mut().find(|p| &p.info.name == name) else {
                return Err(PluginError::UnknownConfig {
                    name: name.clone(),
                    loaded: plugins.iter().map(|p| p.info.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            };
            serde_json::from_str::<serde_json::Value>(config)
                .map_err(|e| PluginError::ConfigSyntax { name: name.clone(), reason: e.to_string() })?;
            plugin.config = config.clone();
        }
        for plugin in &mut plugins {
            let Some(init) = plugin.hooks.init_shared else { continue };
            let mut scratch = Vec::new();
            let mut shared: *mut c_void = std::ptr::null_mut();
            let (status, error) = {
                let plugin_ref: &LoadedPlugin = plugin;
                let mut cx = CallContext::new(plugin_ref, &mut scratch, 0);
                let emitter = cx.emitter();
                // SAFETY: a hook of a checked descriptor, called with a config view and an
                // emitter that live for the call, and a valid out-pointer.
                let status = unsafe { init(str_view(&plugin_ref.config), workers, &emitter, &mut shared) };
                (status, cx.error.take())
            };
            if status != TCPSCOPE_OK {
                let message = error.unwrap_or_else(|| match status {
                    TCPSCOPE_PANICKED => "init_shared panicked".into(),
                    s => format!("init_shared returned status {s}"),
                });
                return Err(PluginError::InitFailed { name: plugin.info.name.clone(), path: plugin.info.path.clone(), message });
            }
            plugin.shared = AtomicPtr::new(shared);
        }
        Ok(Arc::new(PluginSet { plugins, workers, workers_left: AtomicUsize::new(workers as usize) }))
    }

    /// The plugins.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// The number of workers the set was initialised for.
    pub fn workers(&self) -> usize {
        self.workers as usize
    }

    /// One line per plugin that had trouble (panics, errors, events it did not declare or that
    /// were refused), for the run summary.
    pub fn health_report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for p in &self.plugins {
            let h = &p.health;
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let (panics, errors, disabled) = (load(&h.panics), load(&h.errors), load(&h.disabled_instances));
            if panics + errors + disabled > 0 {
                lines.push(format!(
                    "plugin {}: {panics} panics, {errors} errors, disabled on {disabled} of {} workers",
                    p.info.name, self.workers
                ));
            }
            let (undeclared, refused) = (load(&h.events_undeclared), load(&h.events_refused));
            if undeclared > 0 {
                lines.push(format!(
                    "plugin {}: {undeclared} events with a kind or detail key its descriptor does not declare",
                    p.info.name
                ));
            }
            if refused > 0 {
                lines.push(format!("plugin {}: {refused} events refused (struct_size too small)", p.info.name));
            }
        }
        lines
    }
}

/// A plugin's instance on one worker.
struct Instance {
    ptr: *mut c_void,
    enabled: bool,
}

/// A segment hook ready to call: function, instance, plugin index.
#[derive(Clone, Copy)]
struct SegmentHook {
    call: unsafe extern "C" fn(*mut c_void, *const TcpscopeSegment, *const TcpscopeEmitter) -> TcpscopeStatus,
    instance: *mut c_void,
    plugin: usize,
}

/// The plugins of one worker: one instance each, created on (and used only by) this thread.
pub struct WorkerPlugins {
    set: Arc<PluginSet>,
    worker: u32,
    instances: Vec<Instance>,
    segment_hooks: Vec<SegmentHook>,
    flow_cursor: usize,
    next_tick_ns: u64,
    source_index: u32,
    now: Timestamp,
    finished: bool,
    /// Fault events from `create`, waiting for the first packet time.
    pending_faults: Vec<Event>,
}

fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [o[0], o[1], o[2], o[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn direction_code(d: Direction) -> u8 {
    match d {
        Direction::Orig => TCPSCOPE_DIRECTION_ORIG,
        Direction::Resp => TCPSCOPE_DIRECTION_RESP,
    }
}

/// The ABI view of a segment and the engine's verdict on it.
#[inline]
pub fn segment_view(seg: &Segment, verdict: &SegmentVerdict) -> TcpscopeSegment {
    TcpscopeSegment {
        ts_ns: seg.ts.as_nanos(),
        packet_number: seg.packet_number,
        flow_id: verdict.flow_id,
        src_addr: addr16(seg.src_ip),
        dst_addr: addr16(seg.dst_ip),
        seq: seg.seq,
        ack: seg.ack,
        payload_len: seg.payload_len,
        analysis_flags: verdict.analysis.flags.0,
        source_index: seg.source_index,
        src_port: seg.src_port,
        dst_port: seg.dst_port,
        tcp_flags: seg.flags.0,
        window: seg.window,
        ip_id: seg.ip_id,
        ip_version: seg.ip_version(),
        ttl: seg.ttl,
        direction: direction_code(verdict.direction),
        reserved: [0; 7],
    }
}

impl WorkerPlugins {
    /// Creates this worker's instances; call it on the worker's own thread. A failed `create`
    /// disables that plugin on this worker and is reported as a `plugin_error` event, stamped
    /// with the first packet time this worker sees.
    pub fn create(set: Arc<PluginSet>, worker: usize) -> WorkerPlugins {
        let mut pending_faults = Vec::new();
        let out = &mut pending_faults;
        let worker = worker as u32;
        let mut instances = Vec::with_capacity(set.plugins.len());
        for plugin in &set.plugins {
            let Some(create) = plugin.hooks.create else {
                instances.push(Instance { ptr: std::ptr::null_mut(), enabled: true });
                continue;
            };
            let mut ptr: *mut c_void = std::ptr::null_mut();
            let mut cx = CallContext::new(plugin, out, 0);
            let emitter = cx.emitter();
            // SAFETY: a checked hook, with the shared state from `init_shared`, a config view and
            // an emitter that live for the call, and a valid out-pointer; on this worker's thread.
            let status = unsafe { create(plugin.shared.load(Ordering::Acquire), str_view(&plugin.config), worker, &emitter, &mut ptr) };
            let error = cx.error.take();
            if status == TCPSCOPE_OK {
                instances.push(Instance { ptr, enabled: true });
            } else {
                let panicked = status == TCPSCOPE_PANICKED;
                report_fault(plugin, worker, "create", panicked, error, Timestamp::ZERO, None, 0, out);
                instances.push(Instance { ptr: std::ptr::null_mut(), enabled: false });
            }
        }
        let mut w = WorkerPlugins {
            set,
            worker,
            instances,
            segment_hooks: Vec::new(),
            flow_cursor: 0,
            next_tick_ns: 0,
            source_index: 0,
            now: Timestamp::ZERO,
            finished: false,
            pending_faults,
        };
        w.rebuild_segment_hooks();
        w
    }

    fn rebuild_segment_hooks(&mut self) {
        self.segment_hooks = self
            .set
            .plugins
            .iter()
            .enumerate()
            .filter(|(i, _)| self.instances[*i].enabled)
            .filter_map(|(i, p)| p.hooks.on_segment.map(|call| SegmentHook { call, instance: self.instances[i].ptr, plugin: i }))
            .collect();
    }

    /// Handles a status other than OK from plugin `index`'s `hook`.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn fault(&mut self, index: usize, hook: &str, status: TcpscopeStatus, error: Option<String>, ts: Timestamp, packet: Option<u64>, flow_id: u64, out: &mut Vec<Event>) {
        let plugin = &self.set.plugins[index];
        if status == TCPSCOPE_PANICKED {
            self.instances[index].enabled = false;
            report_fault(plugin, self.worker, hook, true, error, ts, packet, flow_id, out);
            self.rebuild_segment_hooks();
        } else {
            plugin.health.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs the hooks for one segment the engine just handled: first `on_flow_end` for flows the
    /// engine finished meanwhile, then `on_segment`, then `on_tick` when a second of packet time
    /// has passed. Emitted events go to `output.events`.
    #[inline]
    pub fn after_segment(&mut self, seg: &Segment, verdict: &SegmentVerdict, output: &mut EngineOutput) {
        if output.flows.len() > self.flow_cursor {
            self.catch_up_flows(output);
        }
        self.source_index = seg.source_index;
        if seg.ts > self.now {
            self.now = seg.ts;
        }
        if !self.pending_faults.is_empty() {
            self.release_faults(&mut output.events);
        }
        if !self.segment_hooks.is_empty() {
            let view = segment_view(seg, verdict);
            self.dispatch_segment(&view, &mut output.events);
        }
        if self.now.as_nanos() >= self.next_tick_ns {
            self.tick(self.now, &mut output.events);
        }
    }

    /// Calls every enabled `on_segment` hook with `view`.
    #[inline]
    pub fn dispatch_segment(&mut self, view: &TcpscopeSegment, events: &mut Vec<Event>) {
        let mut i = 0;
        while i < self.segment_hooks.len() {
            let hook = self.segment_hooks[i];
            let plugin = &self.set.plugins[hook.plugin];
            let mut cx = CallContext::new(plugin, events, view.source_index);
            let emitter = cx.emitter();
            // SAFETY: an enabled instance of this worker, its checked hook, and a view and
            // emitter that outlive the call; on the thread that created the instance.
            let status = unsafe { (hook.call)(hook.instance, view, &emitter) };
            if status != TCPSCOPE_OK {
                let error = cx.error.take();
                let (ts, packet, flow) = (Timestamp(view.ts_ns), Some(view.packet_number), view.flow_id);
                self.fault(hook.plugin, "on_segment", status, error, ts, packet, flow, events);
                if status == TCPSCOPE_PANICKED {
                    continue; // the hook list was rebuilt without it; `i` is the next one
                }
            }
            i += 1;
        }
    }

    /// Calls `on_flow_end` for every flow the engine finished since the last call.
    pub fn catch_up_flows(&mut self, output: &mut EngineOutput) {
        while self.flow_cursor < output.flows.len() {
            let record = &output.flows[self.flow_cursor];
            self.flow_cursor += 1;
            self.flow_end(record, &mut output.events);
        }
    }

    /// The engine's finished flows were drained: the next one starts at index 0.
    pub fn flows_drained(&mut self) {
        self.flow_cursor = 0;
    }

    fn flow_end(&mut self, record: &FlowRecord, events: &mut Vec<Event>) {
        let view = FlowView::new(record);
        for index in 0..self.instances.len() {
            let plugin = &self.set.plugins[index];
            let (Some(hook), true) = (plugin.hooks.on_flow_end, self.instances[index].enabled) else { continue };
            let mut cx = CallContext::new(plugin, events, record.source_index);
            let emitter = cx.emitter();
            // SAFETY: as in `dispatch_segment`; the flow view borrows `record` for the call.
            let status = unsafe { hook(self.instances[index].ptr, &view.raw, &emitter) };
            if status != TCPSCOPE_OK {
                let error = cx.error.take();
                self.fault(index, "on_flow_end", status, error, record.ts_end, None, record.flow_id, events);
            }
        }
    }

    #[cold]
    fn release_faults(&mut self, events: &mut Vec<Event>) {
        for mut e in self.pending_faults.drain(..) {
            e.ts = self.now;
            e.source_index = self.source_index;
            events.push(e);
        }
    }

    /// Packet time reached `now`: calls `on_tick` hooks.
    pub fn tick(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        if now > self.now {
            self.now = now;
        }
        if !self.pending_faults.is_empty() {
            self.release_faults(events);
        }
        self.next_tick_ns = self.now.as_nanos().saturating_add(TICK_INTERVAL_NS);
        for index in 0..self.instances.len() {
            let plugin = &self.set.plugins[index];
            let (Some(hook), true) = (plugin.hooks.on_tick, self.instances[index].enabled) else { continue };
            let mut cx = CallContext::new(plugin, events, self.source_index);
            let emitter = cx.emitter();
            // SAFETY: as in `dispatch_segment`.
            let status = unsafe { hook(self.instances[index].ptr, self.now.as_nanos(), &emitter) };
            if status != TCPSCOPE_OK {
                let error = cx.error.take();
                self.fault(index, "on_tick", status, error, self.now, None, 0, events);
            }
        }
    }

    /// End of the run on this worker: `flush` and `destroy` every instance; the last worker to
    /// finish also runs `flush_shared` and `destroy_shared`. Call after the engine's `finish`
    /// and [`WorkerPlugins::catch_up_flows`].
    pub fn finish(&mut self, events: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.release_faults(events);
        for index in 0..self.instances.len() {
            let plugin = &self.set.plugins[index];
            let (Some(hook), true) = (plugin.hooks.flush, self.instances[index].enabled) else { continue };
            let mut cx = CallContext::new(plugin, events, self.source_index);
            let emitter = cx.emitter();
            // SAFETY: as in `dispatch_segment`.
            let status = unsafe { hook(self.instances[index].ptr, &emitter) };
            if status != TCPSCOPE_OK {
                let error = cx.error.take();
                self.fault(index, "flush", status, error, self.now, None, 0, events);
            }
        }
        self.destroy_instances();
        let left = self.set.workers_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if left == Ok(1) {
            for plugin in &self.set.plugins {
                // Taken once: a set reused for another run gets null (its `create` then fails
                // cleanly) instead of freed state.
                let shared = plugin.shared.swap(std::ptr::null_mut(), Ordering::AcqRel);
                if shared.is_null() {
                    continue;
                }
                if let Some(hook) = plugin.hooks.flush_shared {
                    let mut cx = CallContext::new(plugin, events, self.source_index);
                    let emitter = cx.emitter();
                    // SAFETY: the shared state from `init_shared`; every worker has flushed, so
                    // this is its last use besides `destroy_shared`.
                    let status = unsafe { hook(shared, &emitter) };
                    if status != TCPSCOPE_OK {
                        let error = cx.error.take();
                        if status == TCPSCOPE_PANICKED {
                            report_fault(plugin, self.worker, "flush_shared", true, error, self.now, None, 0, events);
                        } else {
                            plugin.health.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if let Some(destroy) = plugin.hooks.destroy_shared {
                    // SAFETY: last use of the shared state; no instance is left.
                    unsafe { destroy(shared) };
                }
            }
        }
    }

    fn destroy_instances(&mut self) {
        self.segment_hooks.clear();
        for (index, instance) in self.instances.iter_mut().enumerate() {
            if instance.ptr.is_null() {
                continue;
            }
            if let Some(destroy) = self.set.plugins[index].hooks.destroy {
                // SAFETY: the instance `create` returned on this thread, destroyed once (the
                // pointer is cleared below). A panicked instance is destroyed too; the SDK shim
                // contains a second panic.
                unsafe { destroy(instance.ptr) };
            }
            instance.ptr = std::ptr::null_mut();
            instance.enabled = false;
        }
    }
}

impl Drop for WorkerPlugins {
    fn drop(&mut self) {
        // A worker that stops without `finish` still frees its instances (not the shared state,
        // which another worker may still use).
        if !self.finished {
            self.destroy_instances();
        }
    }
}

/// Records a plugin fault: counters, and an event of the plugin's detector.
#[allow(clippy::too_many_arguments)]
fn report_fault(
    plugin: &LoadedPlugin,
    worker: u32,
    hook: &str,
    panicked: bool,
    message: Option<String>,
    ts: Timestamp,
    packet: Option<u64>,
    flow_id: u64,
    out: &mut Vec<Event>,
) {
    if panicked {
        plugin.health.panics.fetch_add(1, Ordering::Relaxed);
    } else {
        plugin.health.errors.fetch_add(1, Ordering::Relaxed);
    }
    plugin.health.disabled_instances.fetch_add(1, Ordering::Relaxed);
    let message = message.unwrap_or_else(|| if panicked { "panicked".into() } else { "failed".into() });
    eprintln!(
        "tcpscope: plugin {} {} in {hook} on worker {worker}: {message}; disabled on this worker, the run goes on",
        plugin.info.name,
        if panicked { "panicked" } else { "failed" }
    );
    out.push(Event {
        ts,
        source_index: 0,
        packet_number: packet,
        flow_id,
        detector: Cow::Owned(plugin.info.name.clone()),
        kind: Cow::Borrowed(if panicked { "plugin_panic" } else { "plugin_error" }),
        severity: Severity::Error,
        direction: None,
        src_ip: None,
        src_port: None,
        dst_ip: None,
        dst_port: None,
        seq: None,
        ack: None,
        payload_len: None,
        ref_packet: None,
        value_ns: None,
        count: Some(1),
        details: vec![
            (Cow::Borrowed("hook"), hook.to_owned()),
            (Cow::Borrowed("worker"), worker.to_string()),
            (Cow::Borrowed("message"), message),
            (Cow::Borrowed("plugin_version"), plugin.info.version.clone()),
        ],
    });
}

/// A flow row as the ABI sees it, borrowing the row's strings.
struct FlowView<'a> {
    raw: TcpscopeFlow,
    _record: std::marker::PhantomData<&'a FlowRecord>,
}

impl<'a> FlowView<'a> {
    fn new(r: &'a FlowRecord) -> Self {
        let retrans = |m: &crate::tcp::DirectionMetrics| m.retransmissions + m.fast_retransmissions + m.spurious_retransmissions;
        FlowView {
            raw: TcpscopeFlow {
                ts_start_ns: r.ts.as_nanos(),
                ts_end_ns: r.ts_end.as_nanos(),
                flow_id: r.flow_id,
                orig_addr: addr16(r.orig_h),
                resp_addr: addr16(r.resp_h),
                conn_state: str_view(r.conn_state),
                history: str_view(&r.history),
                close_reason: str_view(r.close_reason.as_str()),
                orig_pkts: r.orig.pkts,
                resp_pkts: r.resp.pkts,
                orig_bytes: r.orig.seq_bytes,
                resp_bytes: r.resp.seq_bytes,
                orig_payload_bytes: r.orig.payload_bytes,
                resp_payload_bytes: r.resp.payload_bytes,
                orig_retransmissions: retrans(&r.orig),
                resp_retransmissions: retrans(&r.resp),
                missed_bytes: r.missed_bytes,
                handshake_syn_synack_ns: r.handshake_syn_synack_ns.unwrap_or(-1),
                handshake_synack_ack_ns: r.handshake_synack_ack_ns.unwrap_or(-1),
                source_index: r.source_index,
                orig_port: r.orig_p,
                resp_port: r.resp_p,
                ip_version: r.ip_version(),
                reserved: [0; 7],
            },
            _record: std::marker::PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::analysis::AnalysisFlags;
    use crate::tcp::EventKind;

    #[test]
    fn analysis_bits_match_the_abi() {
        let pairs = [
            (EventKind::Retransmission, TCPSCOPE_ANALYSIS_RETRANSMISSION),
            (EventKind::FastRetransmission, TCPSCOPE_ANALYSIS_FAST_RETRANSMISSION),
            (EventKind::SpuriousRetransmission, TCPSCOPE_ANALYSIS_SPURIOUS_RETRANSMISSION),
            (EventKind::OutOfOrder, TCPSCOPE_ANALYSIS_OUT_OF_ORDER),
            (EventKind::PreviousSegmentNotCaptured, TCPSCOPE_ANALYSIS_PREVIOUS_SEGMENT_NOT_CAPTURED),
            (EventKind::AckedUnseenSegment, TCPSCOPE_ANALYSIS_ACKED_UNSEEN_SEGMENT),
            (EventKind::DuplicateAck, TCPSCOPE_ANALYSIS_DUPLICATE_ACK),
            (EventKind::ZeroWindow, TCPSCOPE_ANALYSIS_ZERO_WINDOW),
            (EventKind::ZeroWindowProbe, TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE),
            (EventKind::ZeroWindowProbeAck, TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE_ACK),
            (EventKind::WindowFull, TCPSCOPE_ANALYSIS_WINDOW_FULL),
            (EventKind::WindowUpdate, TCPSCOPE_ANALYSIS_WINDOW_UPDATE),
            (EventKind::KeepAlive, TCPSCOPE_ANALYSIS_KEEP_ALIVE),
            (EventKind::KeepAliveAck, TCPSCOPE_ANALYSIS_KEEP_ALIVE_ACK),
            (EventKind::PortReuse, TCPSCOPE_ANALYSIS_PORT_REUSE),
        ];
        for (kind, bit) in pairs {
            assert_eq!(AnalysisFlags::bit(kind), bit, "{kind:?}");
        }
    }

    #[test]
    fn permissions_refuse_group_writable_and_directories() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"junk").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = check_permissions(&file, false).unwrap_err().to_string();
        assert!(e.contains("0664") && e.contains("--allow-unsafe-plugin-permissions"), "{e}");
        assert!(check_permissions(&file, true).is_ok());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_permissions(&file, false).is_ok());
        let e = check_permissions(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("regular file"), "{e}");
    }

    /// The host's emit callback is the one path where a plugin hands data back: fuzz it with
    /// whatever a buggy or hostile plugin could pass (short structs, invalid UTF-8, absurd detail
    /// counts, any field bits and enum values). It must never panic, over-read or let text that
    /// is not UTF-8 into the events.
    #[test]
    fn host_emit_survives_arbitrary_events() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let plugin = LoadedPlugin {
            info: PluginInfo {
                path: std::path::PathBuf::from("fuzz.so"),
                name: "fuzz".into(),
                version: "0".into(),
                description: String::new(),
                abi_major: 1,
                abi_minor: 0,
                capabilities: 0,
                event_kinds: vec![("declared".into(), String::new())],
                detail_keys: Vec::new(),
            },
            config: "null".into(),
            health: PluginHealth::default(),
            hooks: Hooks {
                init_shared: None,
                flush_shared: None,
                destroy_shared: None,
                create: None,
                on_segment: None,
                on_flow_end: None,
                on_tick: None,
                flush: None,
                destroy: None,
            },
            declared: ["declared".to_owned()].into_iter().collect(),
            shared: AtomicPtr::new(std::ptr::null_mut()),
        };
        let full = std::mem::size_of::<TcpscopeEvent>() as u32;
        let strategy = (
            prop_oneof![Just(full), Just(full + 64), 0u32..full],
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)), 0..80),
            (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u64>(), any::<i64>()),
        );
        let mut runner = TestRunner::new_with_rng(
            Config { cases: 4_000, failure_persistence: None, ..Config::default() },
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let executions = std::cell::Cell::new(0u64);
        runner
            .run(&strategy, |(size, fields, kind, details, (ipv, sev, dir, ackv, ts, count))| {
                let pairs: Vec<TcpscopeKeyValue> = details
                    .iter()
                    .map(|(k, v)| TcpscopeKeyValue {
                        key: TcpscopeStr { ptr: k.as_ptr(), len: k.len() },
                        value: TcpscopeStr { ptr: v.as_ptr(), len: v.len() },
                    })
                    .collect();
                // The event lives in a buffer large enough for any claimed size.
                let mut buffer = vec![0u8; full as usize + 64];
                let event = TcpscopeEvent {
                    struct_size: size,
                    fields,
                    ts_ns: ts,
                    packet_number: ts.rotate_left(7),
                    flow_id: ts.rotate_left(13),
                    ref_packet: 0,
                    count,
                    value_ns: count.wrapping_neg(),
                    kind: TcpscopeStr { ptr: kind.as_ptr(), len: kind.len() },
                    details: if pairs.is_empty() { std::ptr::null() } else { pairs.as_ptr() },
                    n_details: pairs.len(),
                    src_addr: [ipv; 16],
                    dst_addr: [sev; 16],
                    src_port: 1,
                    dst_port: 2,
                    ip_version: ipv % 8,
                    severity: sev,
                    direction: dir,
                    ack_valid: ackv,
                    seq: 1,
                    ack: 2,
                    payload_len: 3,
                    reserved: 0,
                };
                // SAFETY: the buffer holds at least one TcpscopeEvent; unaligned write.
                unsafe { std::ptr::write_unaligned(buffer.as_mut_ptr().cast::<TcpscopeEvent>(), event) };
                let mut out = Vec::new();
                let mut cx = CallContext::new(&plugin, &mut out, 0);
                let emitter = cx.emitter();
                // SAFETY: ctx is the live CallContext; the event buffer and its strings outlive the call.
                unsafe { (emitter.emit)(emitter.ctx, buffer.as_ptr().cast::<TcpscopeEvent>()) };
                drop(cx);
                prop_assert_eq!(out.len(), usize::from(size >= full));
                for e in &out {
                    prop_assert_eq!(e.detector.as_ref(), "fuzz");
                    prop_assert!(!e.kind.is_empty());
                    prop_assert!(e.details.len() <= MAX_DETAILS);
                }
                executions.set(executions.get() + 1);
                Ok(())
            })
            .unwrap();
        eprintln!("host_emit_survives_arbitrary_events: {} executions", executions.get());
    }
}
