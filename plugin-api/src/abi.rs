//! The C ABI: `#[repr(C)]` types, constants and `extern "C"` function pointers, nothing else.
//!
//! This file is the single source of `include/tcpscope_plugin.h`: the test `tests/header.rs`
//! generates the header from it and fails when the committed copy differs (run it with
//! `TCPSCOPE_BLESS=1` to rewrite the header). Keep to the subset the generator understands:
//! `pub const NAME: type = value;`, `pub type Name = ...;`, and `#[repr(C)] pub struct` with
//! one `pub field: type,` per line, each item preceded by `///` doc lines.

use core::ffi::{c_char, c_void};

/// First field of every descriptor: "TCPSCOPE" in ASCII. Rejects files that are not plugins.
pub const TCPSCOPE_PLUGIN_MAGIC: u64 = 0x5443_5053_434F_5045;
/// ABI major version. A host loads only plugins of its own major; the entry symbol carries it.
pub const TCPSCOPE_ABI_MAJOR: u32 = 1;
/// ABI minor version. Minors only append fields (checked through `struct_size`) and hooks.
pub const TCPSCOPE_ABI_MINOR: u32 = 0;
/// Name of the symbol a plugin exports: a function returning its descriptor (major 1).
pub const TCPSCOPE_PLUGIN_ENTRY: &str = "tcpscope_plugin_v1";

/// Result of a hook.
pub type TcpscopeStatus = i32;
/// The hook succeeded.
pub const TCPSCOPE_OK: TcpscopeStatus = 0;
/// The hook failed; a message was given with `report_error`. Fatal at start-up (bad config);
/// counted and ignored on later hooks.
pub const TCPSCOPE_ERROR: TcpscopeStatus = 1;
/// The hook panicked (the SDK caught it). The host disables the instance.
pub const TCPSCOPE_PANICKED: TcpscopeStatus = 2;

/// Capability: call `on_segment` for every TCP segment.
pub const TCPSCOPE_CAP_SEGMENTS: u32 = 1;
/// Capability: call `on_flow_end` for every finished flow.
pub const TCPSCOPE_CAP_FLOW_END: u32 = 2;
/// Capability: call `on_tick` as packet time advances (about once per second of packet time).
pub const TCPSCOPE_CAP_TICK: u32 = 4;
/// Capability: call `flush` at the end of the run.
pub const TCPSCOPE_CAP_FLUSH: u32 = 8;
/// Capability: call `init_shared` once, and `flush_shared` once after every worker flushed.
pub const TCPSCOPE_CAP_SHARED: u32 = 16;

/// Severity `chat`: informational.
pub const TCPSCOPE_SEVERITY_CHAT: u8 = 0;
/// Severity `note`: noteworthy.
pub const TCPSCOPE_SEVERITY_NOTE: u8 = 1;
/// Severity `warn`: a problem.
pub const TCPSCOPE_SEVERITY_WARN: u8 = 2;
/// Severity `error`: a serious problem.
pub const TCPSCOPE_SEVERITY_ERROR: u8 = 3;

/// Direction unknown or not applicable.
pub const TCPSCOPE_DIRECTION_NONE: u8 = 0;
/// From the originator (the SYN sender) to the responder.
pub const TCPSCOPE_DIRECTION_ORIG: u8 = 1;
/// From the responder to the originator.
pub const TCPSCOPE_DIRECTION_RESP: u8 = 2;

/// Event field bit: `packet_number` is set.
pub const TCPSCOPE_EVENT_HAS_PACKET: u32 = 1;
/// Event field bit: `flow_id` is set.
pub const TCPSCOPE_EVENT_HAS_FLOW: u32 = 2;
/// Event field bit: `src_addr` and `ip_version` are set.
pub const TCPSCOPE_EVENT_HAS_SRC: u32 = 4;
/// Event field bit: `dst_addr` and `ip_version` are set.
pub const TCPSCOPE_EVENT_HAS_DST: u32 = 8;
/// Event field bit: `count` is set.
pub const TCPSCOPE_EVENT_HAS_COUNT: u32 = 16;
/// Event field bit: `value_ns` is set.
pub const TCPSCOPE_EVENT_HAS_VALUE_NS: u32 = 32;
/// Event field bit: `ref_packet` is set.
pub const TCPSCOPE_EVENT_HAS_REF_PACKET: u32 = 64;
/// Event field bit: `src_port` is set.
pub const TCPSCOPE_EVENT_HAS_SRC_PORT: u32 = 128;
/// Event field bit: `dst_port` is set.
pub const TCPSCOPE_EVENT_HAS_DST_PORT: u32 = 256;
/// Event field bit: `seq`, `ack` and `payload_len` (of the packet the event is about) are set;
/// `ack` only when `ack_valid` is 1.
pub const TCPSCOPE_EVENT_HAS_SEGMENT: u32 = 512;

/// Analysis flag: retransmission by timeout.
pub const TCPSCOPE_ANALYSIS_RETRANSMISSION: u32 = 1;
/// Analysis flag: fast retransmission.
pub const TCPSCOPE_ANALYSIS_FAST_RETRANSMISSION: u32 = 2;
/// Analysis flag: spurious retransmission.
pub const TCPSCOPE_ANALYSIS_SPURIOUS_RETRANSMISSION: u32 = 4;
/// Analysis flag: out of order.
pub const TCPSCOPE_ANALYSIS_OUT_OF_ORDER: u32 = 8;
/// Analysis flag: previous segment not captured.
pub const TCPSCOPE_ANALYSIS_PREVIOUS_SEGMENT_NOT_CAPTURED: u32 = 16;
/// Analysis flag: ACK of a segment the capture never saw.
pub const TCPSCOPE_ANALYSIS_ACKED_UNSEEN_SEGMENT: u32 = 32;
/// Analysis flag: duplicate ACK.
pub const TCPSCOPE_ANALYSIS_DUPLICATE_ACK: u32 = 64;
/// Analysis flag: zero window.
pub const TCPSCOPE_ANALYSIS_ZERO_WINDOW: u32 = 128;
/// Analysis flag: zero-window probe.
pub const TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE: u32 = 256;
/// Analysis flag: ACK of a zero-window probe.
pub const TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE_ACK: u32 = 512;
/// Analysis flag: window full.
pub const TCPSCOPE_ANALYSIS_WINDOW_FULL: u32 = 1024;
/// Analysis flag: window update.
pub const TCPSCOPE_ANALYSIS_WINDOW_UPDATE: u32 = 2048;
/// Analysis flag: keep-alive.
pub const TCPSCOPE_ANALYSIS_KEEP_ALIVE: u32 = 4096;
/// Analysis flag: ACK of a keep-alive.
pub const TCPSCOPE_ANALYSIS_KEEP_ALIVE_ACK: u32 = 8192;
/// Analysis flag: port reuse.
pub const TCPSCOPE_ANALYSIS_PORT_REUSE: u32 = 16384;

/// A borrowed UTF-8 string: `len` bytes at `ptr`, not NUL-terminated. Valid for the call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeStr {
    /// First byte (may be null when `len` is 0).
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

/// One key/value pair of an event's details.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeKeyValue {
    /// Key.
    pub key: TcpscopeStr,
    /// Value.
    pub value: TcpscopeStr,
}

/// A name with its documentation (static NUL-terminated strings), listed in the descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeNameDoc {
    /// The name.
    pub name: *const c_char,
    /// One line of documentation.
    pub doc: *const c_char,
}

/// One TCP segment, after the engine analysed it. Borrowed: valid only during `on_segment`.
/// Addresses are 16 bytes: IPv4 in the first 4 bytes (network order) and zeros after.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeSegment {
    /// Capture time, nanoseconds since the Unix epoch (packet time).
    pub ts_ns: u64,
    /// 1-based index of the frame in its source (Wireshark's frame.number).
    pub packet_number: u64,
    /// The flow's id (the `flow_id` column of both datasets).
    pub flow_id: u64,
    /// Sender address.
    pub src_addr: [u8; 16],
    /// Receiver address.
    pub dst_addr: [u8; 16],
    /// Raw sequence number.
    pub seq: u32,
    /// Raw acknowledgement number (meaningful when the ACK flag is set).
    pub ack: u32,
    /// TCP payload length (from the IP length).
    pub payload_len: u32,
    /// The engine's per-packet verdicts (`TCPSCOPE_ANALYSIS_*` bits).
    pub analysis_flags: u32,
    /// Index of the input (file or interface) in the run's list.
    pub source_index: u32,
    /// Sender port.
    pub src_port: u16,
    /// Receiver port.
    pub dst_port: u16,
    /// TCP flags: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80.
    pub tcp_flags: u16,
    /// Raw (unscaled) window.
    pub window: u16,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// IP TTL or hop limit.
    pub ttl: u8,
    /// `TCPSCOPE_DIRECTION_*` relative to the flow's originator.
    pub direction: u8,
    /// Zero.
    pub reserved: [u8; 7],
}

/// A finished flow (the key fields of a `flows` row). Borrowed: valid only during `on_flow_end`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeFlow {
    /// First packet, nanoseconds since the epoch.
    pub ts_start_ns: u64,
    /// Last packet, nanoseconds since the epoch.
    pub ts_end_ns: u64,
    /// The flow's id.
    pub flow_id: u64,
    /// Originator address (16 bytes as in `TcpscopeSegment`).
    pub orig_addr: [u8; 16],
    /// Responder address.
    pub resp_addr: [u8; 16],
    /// Zeek conn_state, e.g. `S0`, `SF`, `REJ`.
    pub conn_state: TcpscopeStr,
    /// Zeek history letters.
    pub history: TcpscopeStr,
    /// Why the flow ended: `fin`, `rst_orig`, `rst_resp`, `idle_timeout`, `end_of_input`, ...
    pub close_reason: TcpscopeStr,
    /// Packets from the originator.
    pub orig_pkts: u64,
    /// Packets from the responder.
    pub resp_pkts: u64,
    /// Zeek orig_bytes (sequence-space bytes from the originator).
    pub orig_bytes: u64,
    /// Zeek resp_bytes.
    pub resp_bytes: u64,
    /// TCP payload bytes from the originator, retransmissions included.
    pub orig_payload_bytes: u64,
    /// TCP payload bytes from the responder, retransmissions included.
    pub resp_payload_bytes: u64,
    /// Retransmissions (all kinds) by the originator.
    pub orig_retransmissions: u64,
    /// Retransmissions (all kinds) by the responder.
    pub resp_retransmissions: u64,
    /// Zeek missed_bytes.
    pub missed_bytes: u64,
    /// SYN to SYN/ACK in nanoseconds, or -1 when unknown.
    pub handshake_syn_synack_ns: i64,
    /// SYN/ACK to ACK in nanoseconds, or -1 when the handshake never completed.
    pub handshake_synack_ack_ns: i64,
    /// Index of the input in the run's list.
    pub source_index: u32,
    /// Originator port.
    pub orig_port: u16,
    /// Responder port.
    pub resp_port: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// Zero.
    pub reserved: [u8; 7],
}

/// An event a plugin emits. The host copies everything before `emit` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeEvent {
    /// `sizeof(TcpscopeEvent)` as the plugin knows it.
    pub struct_size: u32,
    /// Which optional fields are set (`TCPSCOPE_EVENT_HAS_*` bits).
    pub fields: u32,
    /// When it happened (packet time, nanoseconds since the epoch).
    pub ts_ns: u64,
    /// The packet it is about.
    pub packet_number: u64,
    /// The flow it is about.
    pub flow_id: u64,
    /// A related packet.
    pub ref_packet: u64,
    /// A count.
    pub count: i64,
    /// A duration in nanoseconds.
    pub value_ns: i64,
    /// The kind, e.g. `syn_flood` (the `kind` column).
    pub kind: TcpscopeStr,
    /// Key/value details (the `details` column).
    pub details: *const TcpscopeKeyValue,
    /// Number of details.
    pub n_details: usize,
    /// Source address (16 bytes as in `TcpscopeSegment`).
    pub src_addr: [u8; 16],
    /// Destination address.
    pub dst_addr: [u8; 16],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// 4 or 6 when an address is set.
    pub ip_version: u8,
    /// `TCPSCOPE_SEVERITY_*`.
    pub severity: u8,
    /// `TCPSCOPE_DIRECTION_*`.
    pub direction: u8,
    /// 1 when `ack` holds an acknowledgement number (the packet had ACK set).
    pub ack_valid: u8,
    /// Raw sequence number of the packet.
    pub seq: u32,
    /// Raw acknowledgement number of the packet.
    pub ack: u32,
    /// Payload length of the packet.
    pub payload_len: u32,
    /// Zero.
    pub reserved: u32,
}

/// Host callbacks handed to every hook; valid for that call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopeEmitter {
    /// Opaque host context: pass it back unchanged.
    pub ctx: *mut c_void,
    /// Emits one event (the host copies it; the detector column is the plugin's name).
    pub emit: unsafe extern "C" fn(ctx: *mut c_void, event: *const TcpscopeEvent),
    /// Explains a `TCPSCOPE_ERROR` or `TCPSCOPE_PANICKED` status (invalid config, panic message).
    pub report_error: unsafe extern "C" fn(ctx: *mut c_void, message: TcpscopeStr),
}

/// What the entry symbol returns: identity, capabilities and hooks. Must live as long as the
/// library (a static). Optional hooks may be null; the host also skips hooks whose capability
/// bit is clear.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpscopePluginDescriptor {
    /// `TCPSCOPE_PLUGIN_MAGIC`.
    pub magic: u64,
    /// `TCPSCOPE_ABI_MAJOR` the plugin was built for.
    pub abi_major: u32,
    /// `TCPSCOPE_ABI_MINOR` the plugin was built for.
    pub abi_minor: u32,
    /// `sizeof(TcpscopePluginDescriptor)` as the plugin knows it.
    pub struct_size: u32,
    /// `TCPSCOPE_CAP_*` bits.
    pub capabilities: u32,
    /// Plugin name: the `detector` column and the key of its configuration.
    pub name: *const c_char,
    /// Plugin version.
    pub version: *const c_char,
    /// One line saying what it detects.
    pub description: *const c_char,
    /// Event kinds it emits.
    pub event_kinds: *const TcpscopeNameDoc,
    /// Number of event kinds.
    pub n_event_kinds: usize,
    /// Detail keys it emits.
    pub detail_keys: *const TcpscopeNameDoc,
    /// Number of detail keys.
    pub n_detail_keys: usize,
    /// Once per run, before any worker: parses `config` (JSON) and creates the shared state
    /// for `workers` workers into `*shared_out`.
    pub init_shared: Option<unsafe extern "C" fn(config: TcpscopeStr, workers: u32, emitter: *const TcpscopeEmitter, shared_out: *mut *mut c_void) -> TcpscopeStatus>,
    /// Once per run, after every worker's `flush`: emits what the shared state holds.
    pub flush_shared: Option<unsafe extern "C" fn(shared: *mut c_void, emitter: *const TcpscopeEmitter) -> TcpscopeStatus>,
    /// Frees the shared state.
    pub destroy_shared: Option<unsafe extern "C" fn(shared: *mut c_void)>,
    /// Per worker, on the worker's thread: creates the instance into `*instance_out`.
    pub create: Option<unsafe extern "C" fn(shared: *mut c_void, config: TcpscopeStr, worker: u32, emitter: *const TcpscopeEmitter, instance_out: *mut *mut c_void) -> TcpscopeStatus>,
    /// One segment, after the engine.
    pub on_segment: Option<unsafe extern "C" fn(instance: *mut c_void, segment: *const TcpscopeSegment, emitter: *const TcpscopeEmitter) -> TcpscopeStatus>,
    /// One finished flow.
    pub on_flow_end: Option<unsafe extern "C" fn(instance: *mut c_void, flow: *const TcpscopeFlow, emitter: *const TcpscopeEmitter) -> TcpscopeStatus>,
    /// Packet time reached `now_ns`.
    pub on_tick: Option<unsafe extern "C" fn(instance: *mut c_void, now_ns: u64, emitter: *const TcpscopeEmitter) -> TcpscopeStatus>,
    /// End of the run on this worker: emit what is pending.
    pub flush: Option<unsafe extern "C" fn(instance: *mut c_void, emitter: *const TcpscopeEmitter) -> TcpscopeStatus>,
    /// Frees the instance.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
}

/// The type of the entry symbol `tcpscope_plugin_v1`.
pub type TcpscopeEntryFn = unsafe extern "C" fn() -> *const TcpscopePluginDescriptor;
