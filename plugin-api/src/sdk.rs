//! The safe side for plugin authors: the [`Detector`] trait, call-scoped views, an [`Emitter`]
//! for events, helpers for worker-count-independent aggregation, and the `catch_unwind` shims
//! that [`export_plugin!`](crate::export_plugin) wires into the descriptor.

use crate::abi::*;
use core::ffi::c_void;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

// SAFETY: the descriptor and its name/doc tables are immutable statics that point only at
// other immutable statics (string literals, tables, functions), so sharing them is sound.
unsafe impl Sync for TcpscopePluginDescriptor {}
// SAFETY: as above: two pointers to static NUL-terminated literals.
unsafe impl Sync for TcpscopeNameDoc {}

/// A detector plugin. One value per worker thread (created on that thread, never shared), plus
/// one [`Detector::Shared`] per run for state that spans workers.
///
/// Hooks run inside `catch_unwind`: a panic disables this worker's instance and is reported,
/// the sensor goes on. Build plugins with `panic = "unwind"` (the default).
pub trait Detector: Sized + 'static {
    /// State shared by every worker's instance (an aggregator behind a `Mutex`, for example).
    type Shared: Send + Sync + 'static;
    /// `TCPSCOPE_CAP_*` bits of the hooks to call (`TCPSCOPE_CAP_SHARED` is always added).
    const CAPABILITIES: u32;

    /// Once per run, before any worker starts: parse `config` (a JSON value; `null` when none
    /// was given) and build the shared state. An `Err` refuses the run with its text.
    fn init_shared(config: &str, workers: u32) -> Result<Self::Shared, String>;
    /// Once per worker, on the worker's thread.
    fn create(shared: &Arc<Self::Shared>, config: &str, worker: u32) -> Result<Self, String>;
    /// One segment, after the engine analysed it.
    fn on_segment(&mut self, _segment: &TcpscopeSegment, _out: &mut Emitter<'_>) {}
    /// One finished flow.
    fn on_flow_end(&mut self, _flow: &TcpscopeFlow, _out: &mut Emitter<'_>) {}
    /// Packet time reached `now_ns`.
    fn on_tick(&mut self, _now_ns: u64, _out: &mut Emitter<'_>) {}
    /// End of the run on this worker.
    fn flush(&mut self, _out: &mut Emitter<'_>) {}
    /// After every worker flushed: emit what the shared state holds.
    fn flush_shared(_shared: &Self::Shared, _out: &mut Emitter<'_>) {}
}

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    Chat,
    /// Noteworthy.
    Note,
    /// A problem.
    Warn,
    /// A serious problem.
    Error,
}

/// An event under construction. The host fills `detector` with the plugin's name.
#[derive(Clone, Debug)]
pub struct Event {
    kind: Cow<'static, str>,
    severity: Severity,
    ts_ns: u64,
    packet_number: Option<u64>,
    flow_id: Option<u64>,
    ref_packet: Option<u64>,
    count: Option<i64>,
    value_ns: Option<i64>,
    src: Option<(IpAddr, Option<u16>)>,
    dst: Option<(IpAddr, Option<u16>)>,
    direction: u8,
    segment: Option<(u32, Option<u32>, u32)>,
    details: Vec<(Cow<'static, str>, String)>,
}

impl Event {
    /// An event of `kind` at packet time `ts_ns`.
    pub fn new(kind: impl Into<Cow<'static, str>>, severity: Severity, ts_ns: u64) -> Self {
        Event {
            kind: kind.into(),
            severity,
            ts_ns,
            packet_number: None,
            flow_id: None,
            ref_packet: None,
            count: None,
            value_ns: None,
            src: None,
            dst: None,
            direction: TCPSCOPE_DIRECTION_NONE,
            segment: None,
            details: Vec::new(),
        }
    }
    /// An event about one segment: its packet, flow, direction and endpoints filled in.
    pub fn about_segment(kind: impl Into<Cow<'static, str>>, severity: Severity, seg: &TcpscopeSegment) -> Self {
        let mut e = Event::new(kind, severity, seg.ts_ns);
        e.packet_number = Some(seg.packet_number);
        e.flow_id = Some(seg.flow_id);
        e.src = Some((seg.src_ip(), Some(seg.src_port)));
        e.dst = Some((seg.dst_ip(), Some(seg.dst_port)));
        e.direction = seg.direction;
        let ack = (seg.tcp_flags & flags::ACK != 0).then_some(seg.ack);
        e.segment = Some((seg.seq, ack, seg.payload_len));
        e
    }
    /// Sets the packet.
    pub fn packet(mut self, packet_number: u64) -> Self {
        self.packet_number = Some(packet_number);
        self
    }
    /// Sets the flow.
    pub fn flow(mut self, flow_id: u64) -> Self {
        self.flow_id = Some(flow_id);
        self
    }
    /// Sets a related packet.
    pub fn ref_packet(mut self, packet_number: u64) -> Self {
        self.ref_packet = Some(packet_number);
        self
    }
    /// Sets the count.
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count.min(i64::MAX as u64) as i64);
        self
    }
    /// Sets a duration in nanoseconds.
    pub fn value_ns(mut self, nanos: u64) -> Self {
        self.value_ns = Some(nanos.min(i64::MAX as u64) as i64);
        self
    }
    /// Sets the source endpoint.
    pub fn src(mut self, ip: IpAddr, port: u16) -> Self {
        self.src = Some((ip, Some(port)));
        self
    }
    /// Sets the source address alone (no port).
    pub fn src_addr(mut self, ip: IpAddr) -> Self {
        self.src = Some((ip, None));
        self
    }
    /// Sets the destination endpoint.
    pub fn dst(mut self, ip: IpAddr, port: u16) -> Self {
        self.dst = Some((ip, Some(port)));
        self
    }
    /// Sets the destination address alone (no port).
    pub fn dst_addr(mut self, ip: IpAddr) -> Self {
        self.dst = Some((ip, None));
        self
    }
    /// Adds a detail.
    pub fn detail(mut self, key: impl Into<Cow<'static, str>>, value: impl ToString) -> Self {
        self.details.push((key.into(), value.to_string()));
        self
    }
}

/// Sends events and errors to the host during one hook call.
pub struct Emitter<'a> {
    raw: &'a TcpscopeEmitter,
}

fn str_view(s: &str) -> TcpscopeStr {
    TcpscopeStr { ptr: s.as_ptr(), len: s.len() }
}

impl<'a> Emitter<'a> {
    /// Wraps the host's emitter.
    pub fn new(raw: &'a TcpscopeEmitter) -> Self {
        Emitter { raw }
    }

    /// Emits one event.
    pub fn emit(&mut self, event: &Event) {
        let details: Vec<TcpscopeKeyValue> =
            event.details.iter().map(|(k, v)| TcpscopeKeyValue { key: str_view(k), value: str_view(v) }).collect();
        let mut fields = 0;
        let mut raw = TcpscopeEvent {
            struct_size: std::mem::size_of::<TcpscopeEvent>() as u32,
            fields: 0,
            ts_ns: event.ts_ns,
            packet_number: 0,
            flow_id: 0,
            ref_packet: 0,
            count: 0,
            value_ns: 0,
            kind: str_view(&event.kind),
            details: details.as_ptr(),
            n_details: details.len(),
            src_addr: [0; 16],
            dst_addr: [0; 16],
            src_port: 0,
            dst_port: 0,
            ip_version: 0,
            severity: match event.severity {
                Severity::Chat => TCPSCOPE_SEVERITY_CHAT,
                Severity::Note => TCPSCOPE_SEVERITY_NOTE,
                Severity::Warn => TCPSCOPE_SEVERITY_WARN,
                Severity::Error => TCPSCOPE_SEVERITY_ERROR,
            },
            direction: event.direction,
            ack_valid: 0,
            seq: 0,
            ack: 0,
            payload_len: 0,
            reserved: 0,
        };
        if let Some((seq, ack, payload_len)) = event.segment {
            raw.seq = seq;
            raw.ack = ack.unwrap_or(0);
            raw.ack_valid = ack.is_some() as u8;
            raw.payload_len = payload_len;
            fields |= TCPSCOPE_EVENT_HAS_SEGMENT;
        }
        if let Some(p) = event.packet_number {
            raw.packet_number = p;
            fields |= TCPSCOPE_EVENT_HAS_PACKET;
        }
        if let Some(f) = event.flow_id {
            raw.flow_id = f;
            fields |= TCPSCOPE_EVENT_HAS_FLOW;
        }
        if let Some(r) = event.ref_packet {
            raw.ref_packet = r;
            fields |= TCPSCOPE_EVENT_HAS_REF_PACKET;
        }
        if let Some(c) = event.count {
            raw.count = c;
            fields |= TCPSCOPE_EVENT_HAS_COUNT;
        }
        if let Some(v) = event.value_ns {
            raw.value_ns = v;
            fields |= TCPSCOPE_EVENT_HAS_VALUE_NS;
        }
        if let Some((ip, port)) = event.src {
            let (bytes, version) = addr_bytes(ip);
            raw.src_addr = bytes;
            raw.ip_version = version;
            fields |= TCPSCOPE_EVENT_HAS_SRC;
            if let Some(port) = port {
                raw.src_port = port;
                fields |= TCPSCOPE_EVENT_HAS_SRC_PORT;
            }
        }
        if let Some((ip, port)) = event.dst {
            let (bytes, version) = addr_bytes(ip);
            raw.dst_addr = bytes;
            raw.ip_version = version;
            fields |= TCPSCOPE_EVENT_HAS_DST;
            if let Some(port) = port {
                raw.dst_port = port;
                fields |= TCPSCOPE_EVENT_HAS_DST_PORT;
            }
        }
        raw.fields = fields;
        // SAFETY: the host gave this emitter for the current call; `raw` and the strings it
        // points to outlive the call, and the host copies them before returning.
        unsafe { (self.raw.emit)(self.raw.ctx, &raw) }
    }

    /// Tells the host why a hook failed.
    pub fn error(&mut self, message: &str) {
        // SAFETY: as in `emit`; the host copies the message.
        unsafe { (self.raw.report_error)(self.raw.ctx, str_view(message)) }
    }
}

/// An address as the ABI carries it: 16 bytes (IPv4 in the first four) and the IP version.
pub fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (bytes, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 6),
    }
}

/// The address of 16 ABI bytes and an IP version.
pub fn addr_from(bytes: &[u8; 16], ip_version: u8) -> IpAddr {
    if ip_version == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

/// TCP flag bits as in `TcpscopeSegment::tcp_flags`.
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x01;
    /// SYN.
    pub const SYN: u16 = 0x02;
    /// RST.
    pub const RST: u16 = 0x04;
    /// PSH.
    pub const PSH: u16 = 0x08;
    /// ACK.
    pub const ACK: u16 = 0x10;
    /// URG.
    pub const URG: u16 = 0x20;
}

impl TcpscopeSegment {
    /// Sender address.
    pub fn src_ip(&self) -> IpAddr {
        addr_from(&self.src_addr, self.ip_version)
    }
    /// Receiver address.
    pub fn dst_ip(&self) -> IpAddr {
        addr_from(&self.dst_addr, self.ip_version)
    }
    /// Whether every bit of `mask` is set in the TCP flags.
    pub fn has_flags(&self, mask: u16) -> bool {
        self.tcp_flags & mask == mask
    }
    /// SYN without ACK.
    pub fn is_pure_syn(&self) -> bool {
        self.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN
    }
    /// RST set.
    pub fn is_rst(&self) -> bool {
        self.tcp_flags & flags::RST != 0
    }
    /// Sent by the flow's originator.
    pub fn from_originator(&self) -> bool {
        self.direction == TCPSCOPE_DIRECTION_ORIG
    }
    /// Sent by the flow's responder.
    pub fn from_responder(&self) -> bool {
        self.direction == TCPSCOPE_DIRECTION_RESP
    }
}

fn str_of<'a>(s: TcpscopeStr) -> &'a str {
    if s.ptr.is_null() || s.len == 0 {
        return "";
    }
    // SAFETY: the host passes valid, call-scoped UTF-8 (it builds these from Rust strings);
    // `from_utf8` checks anyway, so a bad view yields "" rather than undefined behaviour.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(bytes).unwrap_or("")
}

impl TcpscopeFlow {
    /// Originator address.
    pub fn orig_ip(&self) -> IpAddr {
        addr_from(&self.orig_addr, self.ip_version)
    }
    /// Responder address.
    pub fn resp_ip(&self) -> IpAddr {
        addr_from(&self.resp_addr, self.ip_version)
    }
    /// Zeek conn_state.
    pub fn conn_state(&self) -> &str {
        str_of(self.conn_state)
    }
    /// Zeek history.
    pub fn history(&self) -> &str {
        str_of(self.history)
    }
    /// Why the flow ended.
    pub fn close_reason(&self) -> &str {
        str_of(self.close_reason)
    }
}

/// Packet-time progress of every worker, for shared state whose output must not depend on the
/// number of workers. Each worker calls [`Watermarks::advance`] with a time before which it will
/// submit nothing more; [`Watermarks::low`] is then a time before which the aggregate is final.
#[derive(Debug)]
pub struct Watermarks {
    done: Vec<AtomicU64>,
}

impl Watermarks {
    /// One watermark per worker, all at zero.
    pub fn new(workers: u32) -> Self {
        Watermarks { done: (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect() }
    }
    /// Worker `worker` will submit nothing older than `ts_ns` any more.
    pub fn advance(&self, worker: u32, ts_ns: u64) {
        if let Some(w) = self.done.get(worker as usize) {
            w.fetch_max(ts_ns, Ordering::AcqRel);
        }
    }
    /// The lowest watermark: every worker has passed it.
    pub fn low(&self) -> u64 {
        self.done.iter().map(|w| w.load(Ordering::Acquire)).min().unwrap_or(0)
    }
}

/// A set that keeps the `cap` smallest values it was given and remembers whether it dropped
/// any: its content does not depend on insertion order (hence not on the number of workers).
#[derive(Clone, Debug)]
pub struct SmallestSet<T: Ord> {
    values: BTreeSet<T>,
    cap: usize,
    overflowed: bool,
}

impl<T: Ord> SmallestSet<T> {
    /// An empty set keeping at most `cap` values.
    pub fn new(cap: usize) -> Self {
        SmallestSet { values: BTreeSet::new(), cap: cap.max(1), overflowed: false }
    }
    /// Adds a value.
    pub fn insert(&mut self, value: T) {
        if self.values.len() >= self.cap {
            match self.values.last() {
                Some(last) if value < *last => {
                    if self.values.insert(value) {
                        self.values.pop_last();
                        self.overflowed = true;
                    }
                }
                Some(last) if value == *last => {}
                _ => self.overflowed = true,
            }
        } else {
            self.values.insert(value);
        }
    }
    /// Adds every value of another set.
    pub fn merge(&mut self, other: SmallestSet<T>) {
        self.overflowed |= other.overflowed;
        for v in other.values {
            self.insert(v);
        }
    }
    /// Values kept.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Whether no value was kept.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// Whether values beyond the cap were dropped (the true count is larger than `len`).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
    /// The values, smallest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }
}

/// The packet-time window of length `window_ns` that holds `ts_ns`: its start.
pub fn window_start(ts_ns: u64, window_ns: u64) -> u64 {
    let w = window_ns.max(1);
    ts_ns - ts_ns % w
}

/// A value that can absorb another of its kind in any order with the same result (sums, minima,
/// maxima, [`SmallestSet`]s).
pub trait Merge {
    /// Adds `other` into `self`.
    fn merge(&mut self, other: Self);
}

/// Cross-worker aggregation by packet-time window whose output does not depend on the number of
/// workers: each worker builds a local map of `(window start, key) → aggregate`, submits it,
/// and advances its watermark; windows every worker has passed are taken in key order.
///
/// Keep this in the detector's `Shared`. A worker's instance calls [`WindowedAggregate::submit`]
/// then [`WindowedAggregate::advance`] in `on_tick` and (with `u64::MAX`) in `flush`, and emits
/// what [`WindowedAggregate::take_closed`] returns; `flush_shared` emits
/// [`WindowedAggregate::take_all`].
#[derive(Debug)]
pub struct WindowedAggregate<K: Ord, A: Merge> {
    window_ns: u64,
    marks: Watermarks,
    state: std::sync::Mutex<AggregateState<K, A>>,
}

#[derive(Debug)]
struct AggregateState<K, A> {
    windows: std::collections::BTreeMap<(u64, K), A>,
    /// Windows that start before this were taken already.
    closed_before: u64,
    late: u64,
}

impl<K: Ord, A: Merge> WindowedAggregate<K, A> {
    /// Windows of `window_ns` for `workers` workers.
    pub fn new(window_ns: u64, workers: u32) -> Self {
        WindowedAggregate {
            window_ns: window_ns.max(1),
            marks: Watermarks::new(workers),
            state: std::sync::Mutex::new(AggregateState {
                windows: std::collections::BTreeMap::new(),
                closed_before: 0,
                late: 0,
            }),
        }
    }

    /// The window length.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// The start of the window holding `ts_ns`.
    pub fn window_of(&self, ts_ns: u64) -> u64 {
        window_start(ts_ns, self.window_ns)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AggregateState<K, A>> {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Merges a worker's local aggregates (and empties the map). Entries of windows already
    /// taken are counted as late and dropped (only out-of-order input produces them).
    pub fn submit(&self, local: &mut std::collections::BTreeMap<(u64, K), A>) {
        if local.is_empty() {
            return;
        }
        let mut st = self.lock();
        for ((start, key), agg) in std::mem::take(local) {
            if start < st.closed_before {
                st.late += 1;
                continue;
            }
            match st.windows.entry((start, key)) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(agg),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(agg);
                }
            }
        }
    }

    /// Worker `worker` will submit nothing for windows holding times before `ts_ns`.
    pub fn advance(&self, worker: u32, ts_ns: u64) {
        self.marks.advance(worker, ts_ns);
    }

    /// Takes the windows that every worker has passed, in (window, key) order.
    pub fn take_closed(&self) -> Vec<((u64, K), A)> {
        let low = self.marks.low();
        // Windows ending at or before `low` are complete.
        let boundary = window_start(low, self.window_ns);
        let mut st = self.lock();
        if boundary <= st.closed_before {
            return Vec::new();
        }
        st.closed_before = boundary;
        let mut taken = Vec::new();
        while let Some(entry) = st.windows.first_entry() {
            if entry.key().0 >= boundary {
                break;
            }
            let (k, v) = entry.remove_entry();
            taken.push((k, v));
        }
        taken
    }

    /// Takes every window left, in (window, key) order.
    pub fn take_all(&self) -> Vec<((u64, K), A)> {
        let mut st = self.lock();
        st.closed_before = u64::MAX;
        std::mem::take(&mut st.windows).into_iter().collect()
    }

    /// Submissions dropped because their window was already taken.
    pub fn late(&self) -> u64 {
        self.lock().late
    }
}

/// The `catch_unwind` shims the descriptor points at. Used by [`export_plugin!`](crate::export_plugin).
#[doc(hidden)]
pub mod shim {
    use super::*;

    fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_owned()
        }
    }

    fn guard(emitter: *const TcpscopeEmitter, hook: &str, f: impl FnOnce(&mut Emitter<'_>) -> TcpscopeStatus) -> TcpscopeStatus {
        if emitter.is_null() {
            return TCPSCOPE_ERROR;
        }
        // SAFETY: the host passes a valid emitter for the duration of the call.
        let raw = unsafe { &*emitter };
        match catch_unwind(AssertUnwindSafe(|| f(&mut Emitter::new(raw)))) {
            Ok(status) => status,
            Err(payload) => {
                let text = format!("panic in {hook}: {}", panic_text(&*payload));
                // Reporting must not unwind either.
                let _ = catch_unwind(AssertUnwindSafe(|| Emitter::new(raw).error(&text)));
                // Dropping the payload could panic in its Drop: leak it.
                std::mem::forget(payload);
                TCPSCOPE_PANICKED
            }
        }
    }

    /// Shim of `init_shared`.
    pub unsafe extern "C" fn init_shared<D: Detector>(
        config: TcpscopeStr,
        workers: u32,
        emitter: *const TcpscopeEmitter,
        shared_out: *mut *mut c_void,
    ) -> TcpscopeStatus {
        guard(emitter, "init_shared", |out| match D::init_shared(str_of(config), workers) {
            Ok(shared) => {
                let boxed: Box<Arc<D::Shared>> = Box::new(Arc::new(shared));
                // SAFETY: the host passes a valid out-pointer.
                unsafe { *shared_out = Box::into_raw(boxed).cast() };
                TCPSCOPE_OK
            }
            Err(e) => {
                out.error(&e);
                TCPSCOPE_ERROR
            }
        })
    }

    /// Shim of `flush_shared`.
    pub unsafe extern "C" fn flush_shared<D: Detector>(shared: *mut c_void, emitter: *const TcpscopeEmitter) -> TcpscopeStatus {
        guard(emitter, "flush_shared", |out| {
            // SAFETY: `shared` came from `init_shared` above and is alive until `destroy_shared`.
            let shared = unsafe { &*(shared as *const Arc<D::Shared>) };
            D::flush_shared(shared, out);
            TCPSCOPE_OK
        })
    }

    /// Shim of `destroy_shared`.
    pub unsafe extern "C" fn destroy_shared<D: Detector>(shared: *mut c_void) {
        if !shared.is_null() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `shared` came from `Box::into_raw` in `init_shared`, freed once.
                drop(unsafe { Box::from_raw(shared as *mut Arc<D::Shared>) });
            }));
        }
    }

    /// Shim of `create`.
    pub unsafe extern "C" fn create<D: Detector>(
        shared: *mut c_void,
        config: TcpscopeStr,
        worker: u32,
        emitter: *const TcpscopeEmitter,
        instance_out: *mut *mut c_void,
    ) -> TcpscopeStatus {
        guard(emitter, "create", |out| {
            if shared.is_null() {
                out.error("create called before init_shared");
                return TCPSCOPE_ERROR;
            }
            // SAFETY: as in `flush_shared`.
            let shared = unsafe { &*(shared as *const Arc<D::Shared>) };
            match D::create(shared, str_of(config), worker) {
                Ok(instance) => {
                    // SAFETY: the host passes a valid out-pointer.
                    unsafe { *instance_out = Box::into_raw(Box::new(instance)).cast() };
                    TCPSCOPE_OK
                }
                Err(e) => {
                    out.error(&e);
                    TCPSCOPE_ERROR
                }
            }
        })
    }

    /// Shim of `on_segment`.
    pub unsafe extern "C" fn on_segment<D: Detector>(
        instance: *mut c_void,
        segment: *const TcpscopeSegment,
        emitter: *const TcpscopeEmitter,
    ) -> TcpscopeStatus {
        guard(emitter, "on_segment", |out| {
            // SAFETY: `instance` came from `create` and is used by one thread only; `segment` is
            // valid for the call.
            let (d, seg) = unsafe { (&mut *(instance as *mut D), &*segment) };
            d.on_segment(seg, out);
            TCPSCOPE_OK
        })
    }

    /// Shim of `on_flow_end`.
    pub unsafe extern "C" fn on_flow_end<D: Detector>(
        instance: *mut c_void,
        flow: *const TcpscopeFlow,
        emitter: *const TcpscopeEmitter,
    ) -> TcpscopeStatus {
        guard(emitter, "on_flow_end", |out| {
            // SAFETY: as in `on_segment`.
            let (d, flow) = unsafe { (&mut *(instance as *mut D), &*flow) };
            d.on_flow_end(flow, out);
            TCPSCOPE_OK
        })
    }

    /// Shim of `on_tick`.
    pub unsafe extern "C" fn on_tick<D: Detector>(instance: *mut c_void, now_ns: u64, emitter: *const TcpscopeEmitter) -> TcpscopeStatus {
        guard(emitter, "on_tick", |out| {
            // SAFETY: as in `on_segment`.
            let d = unsafe { &mut *(instance as *mut D) };
            d.on_tick(now_ns, out);
            TCPSCOPE_OK
        })
    }

    /// Shim of `flush`.
    pub unsafe extern "C" fn flush<D: Detector>(instance: *mut c_void, emitter: *const TcpscopeEmitter) -> TcpscopeStatus {
        guard(emitter, "flush", |out| {
            // SAFETY: as in `on_segment`.
            let d = unsafe { &mut *(instance as *mut D) };
            d.flush(out);
            TCPSCOPE_OK
        })
    }

    /// Shim of `destroy`.
    pub unsafe extern "C" fn destroy<D: Detector>(instance: *mut c_void) {
        if !instance.is_null() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `instance` came from `Box::into_raw` in `create`, freed once.
                drop(unsafe { Box::from_raw(instance as *mut D) });
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_set_is_order_independent() {
        let mut a = SmallestSet::new(3);
        let mut b = SmallestSet::new(3);
        for v in [5, 1, 9, 3, 7, 2] {
            a.insert(v);
        }
        for v in [2, 7, 3, 9, 1, 5] {
            b.insert(v);
        }
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![&1, &2, &3]);
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        assert!(a.overflowed() && b.overflowed());
        let mut c = SmallestSet::new(3);
        c.insert(1);
        c.insert(1);
        assert!(!c.overflowed());
    }

    #[test]
    fn addresses_round_trip() {
        for ip in ["198.18.0.1", "fd00:198:18::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let (b, v) = addr_bytes(ip);
            assert_eq!(addr_from(&b, v), ip);
        }
    }

    #[derive(Debug, PartialEq)]
    struct Sum(u64);
    impl Merge for Sum {
        fn merge(&mut self, other: Sum) {
            self.0 += other.0;
        }
    }

    #[test]
    fn windowed_aggregate_closes_windows_every_worker_passed() {
        let agg: WindowedAggregate<u32, Sum> = WindowedAggregate::new(10, 2);
        let mut local = std::collections::BTreeMap::new();
        local.insert((0, 7), Sum(1));
        local.insert((10, 7), Sum(2));
        agg.submit(&mut local);
        assert!(local.is_empty());
        agg.advance(0, 25);
        assert!(agg.take_closed().is_empty(), "worker 1 has not passed anything");
        let mut local = std::collections::BTreeMap::new();
        local.insert((0, 7), Sum(4));
        local.insert((0, 3), Sum(8));
        agg.submit(&mut local);
        agg.advance(1, 12);
        // Low watermark 12: only the window [0, 10) is complete, taken in key order.
        assert_eq!(agg.take_closed(), vec![((0, 3), Sum(8)), ((0, 7), Sum(5))]);
        let mut late = std::collections::BTreeMap::new();
        late.insert((0, 9), Sum(1));
        agg.submit(&mut late);
        assert_eq!(agg.late(), 1);
        assert_eq!(agg.take_all(), vec![((10, 7), Sum(2))]);
    }

    #[test]
    fn watermarks_take_the_minimum() {
        let w = Watermarks::new(3);
        w.advance(0, 10);
        w.advance(1, 5);
        assert_eq!(w.low(), 0);
        w.advance(2, 7);
        assert_eq!(w.low(), 5);
        w.advance(1, 3); // never goes back
        assert_eq!(w.low(), 5);
    }
}
