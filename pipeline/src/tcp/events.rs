//! Events: what the engine (detector `tcp`) and plugins report, one row of the `events` dataset each.

use crate::flow::Direction;
use crate::time::Timestamp;
use std::borrow::Cow;
use std::net::IpAddr;

/// Severity, as Wireshark's expert levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Informational, normal behaviour worth seeing (window update, keep-alive).
    Chat,
    /// Noteworthy (duplicate ACK, retransmission).
    Note,
    /// A problem (zero window, lost segment, reset).
    Warn,
    /// A serious problem (malformed, refused).
    Error,
}

impl Severity {
    /// The name written to Parquet.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Chat => "chat",
            Severity::Note => "note",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// Event kinds of the built-in `tcp` detector. Names are Wireshark's words where Wireshark has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A retransmission by timeout (Wireshark `retransmission` that is neither fast nor spurious).
    Retransmission,
    /// A fast retransmission after duplicate ACKs.
    FastRetransmission,
    /// A retransmission of data the peer had already acknowledged.
    SpuriousRetransmission,
    /// A segment that fills a hole soon after it opened.
    OutOfOrder,
    /// A gap: a segment beyond the next expected sequence number.
    PreviousSegmentNotCaptured,
    /// An ACK for data the capture never saw.
    AckedUnseenSegment,
    /// A duplicate ACK.
    DuplicateAck,
    /// A zero receive window.
    ZeroWindow,
    /// A zero-window probe.
    ZeroWindowProbe,
    /// The ACK of a zero-window probe.
    ZeroWindowProbeAck,
    /// A segment that fills the peer's advertised window.
    WindowFull,
    /// A pure window update.
    WindowUpdate,
    /// A keep-alive.
    KeepAlive,
    /// The ACK of a keep-alive.
    KeepAliveAck,
    /// A new connection on the 4-tuple of an earlier one.
    PortReuse,
    /// A SYN answered by RST.
    ConnectionRefused,
    /// The first RST of an established connection.
    ConnectionReset,
    /// SYNs never answered.
    HandshakeTimeout,
    /// One side lost the connection and the other does not know.
    HalfOpen,
    /// Successive timeout retransmissions of one segment.
    RtoBackoff,
    /// A zero window that lasted, from closing to opening (or flow end).
    ZeroWindowStall,
    /// Keep-alives left unanswered, then a close.
    KeepAliveTimeout,
    /// An impossible flag combination.
    InvalidFlags,
    /// The connection's first packet is not part of a handshake.
    MidstreamStart,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 24] = [
        EventKind::Retransmission,
        EventKind::FastRetransmission,
        EventKind::SpuriousRetransmission,
        EventKind::OutOfOrder,
        EventKind::PreviousSegmentNotCaptured,
        EventKind::AckedUnseenSegment,
        EventKind::DuplicateAck,
        EventKind::ZeroWindow,
        EventKind::ZeroWindowProbe,
        EventKind::ZeroWindowProbeAck,
        EventKind::WindowFull,
        EventKind::WindowUpdate,
        EventKind::KeepAlive,
        EventKind::KeepAliveAck,
        EventKind::PortReuse,
        EventKind::ConnectionRefused,
        EventKind::ConnectionReset,
        EventKind::HandshakeTimeout,
        EventKind::HalfOpen,
        EventKind::RtoBackoff,
        EventKind::ZeroWindowStall,
        EventKind::KeepAliveTimeout,
        EventKind::InvalidFlags,
        EventKind::MidstreamStart,
    ];

    /// Wireshark's per-packet verdicts: the first 15 kinds of [`EventKind::ALL`], one bit each in
    /// an analysis result.
    pub const PER_PACKET: &'static [EventKind] = Self::ALL.split_at(15).0;

    /// The connection diagnostics: one event per connection and story, beyond Wireshark's
    /// per-packet verdicts (the rest of [`EventKind::ALL`]).
    pub const DIAGNOSTICS: &'static [EventKind] = Self::ALL.split_at(15).1;

    /// The name written to the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Retransmission => "retransmission",
            EventKind::FastRetransmission => "fast_retransmission",
            EventKind::SpuriousRetransmission => "spurious_retransmission",
            EventKind::OutOfOrder => "out_of_order",
            EventKind::PreviousSegmentNotCaptured => "previous_segment_not_captured",
            EventKind::AckedUnseenSegment => "acked_unseen_segment",
            EventKind::DuplicateAck => "duplicate_ack",
            EventKind::ZeroWindow => "zero_window",
            EventKind::ZeroWindowProbe => "zero_window_probe",
            EventKind::ZeroWindowProbeAck => "zero_window_probe_ack",
            EventKind::WindowFull => "window_full",
            EventKind::WindowUpdate => "window_update",
            EventKind::KeepAlive => "keep_alive",
            EventKind::KeepAliveAck => "keep_alive_ack",
            EventKind::PortReuse => "port_reuse",
            EventKind::ConnectionRefused => "connection_refused",
            EventKind::ConnectionReset => "connection_reset",
            EventKind::HandshakeTimeout => "handshake_timeout",
            EventKind::HalfOpen => "half_open",
            EventKind::RtoBackoff => "rto_backoff",
            EventKind::ZeroWindowStall => "zero_window_stall",
            EventKind::KeepAliveTimeout => "keep_alive_timeout",
            EventKind::InvalidFlags => "invalid_flags",
            EventKind::MidstreamStart => "midstream_start",
        }
    }

    /// The default severity of this kind (Wireshark's expert level where it has one).
    pub fn severity(self) -> Severity {
        use EventKind::*;
        match self {
            WindowUpdate | KeepAlive | KeepAliveAck | MidstreamStart => Severity::Chat,
            Retransmission | FastRetransmission | SpuriousRetransmission | OutOfOrder
            | DuplicateAck | ZeroWindowProbe | ZeroWindowProbeAck | PortReuse => Severity::Note,
            PreviousSegmentNotCaptured | AckedUnseenSegment | ZeroWindow | WindowFull
            | ConnectionReset | HandshakeTimeout | HalfOpen | RtoBackoff | ZeroWindowStall
            | KeepAliveTimeout | InvalidFlags => Severity::Warn,
            ConnectionRefused => Severity::Error,
        }
    }

    /// Looks a kind up by its column name.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

/// One event row. Per-packet events carry the packet's fields; deferred diagnostics point back
/// with `ref_packet` to the packet where the story began.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened (packet time).
    pub ts: Timestamp,
    /// Index of the source in the run's list (file or interface).
    pub source_index: u32,
    /// The packet this event is about; `None` for events not tied to one packet.
    pub packet_number: Option<u64>,
    /// The flow.
    pub flow_id: u64,
    /// `tcp` for the engine, the plugin's name otherwise.
    pub detector: Cow<'static, str>,
    /// The kind, e.g. `retransmission`.
    pub kind: Cow<'static, str>,
    /// Severity.
    pub severity: Severity,
    /// Direction of the packet (or of the side the story is about).
    pub direction: Option<Direction>,
    /// Sender of the packet (or of the side the story is about).
    pub src_ip: Option<std::net::IpAddr>,
    /// Sender port.
    pub src_port: Option<u16>,
    /// Receiver address.
    pub dst_ip: Option<IpAddr>,
    /// Receiver port.
    pub dst_port: Option<u16>,
    /// Raw sequence number of the packet.
    pub seq: Option<u32>,
    /// Raw acknowledgement number of the packet.
    pub ack: Option<u32>,
    /// Payload length of the packet.
    pub payload_len: Option<u32>,
    /// A related packet: the original transmission, the ACK being duplicated, the first SYN, …
    pub ref_packet: Option<u64>,
    /// A duration in nanoseconds: RTO, age of the hole, stall length, …
    pub value_ns: Option<i64>,
    /// A count: duplicate-ACK number, attempts, probes, …
    pub count: Option<i64>,
    /// Further evidence as key/value pairs.
    pub details: Vec<(Cow<'static, str>, String)>,
}

impl Event {
    /// An event of the `tcp` detector about one packet, with its fields filled in.
    pub fn tcp_packet(kind: EventKind, seg: &crate::decode::Segment, flow_id: u64, dir: Direction) -> Event {
        Event {
            ts: seg.ts,
            source_index: seg.source_index,
            packet_number: Some(seg.packet_number),
            flow_id,
            detector: Cow::Borrowed("tcp"),
            kind: Cow::Borrowed(kind.as_str()),
            severity: kind.severity(),
            direction: Some(dir),
            src_ip: Some(seg.src_ip),
            src_port: Some(seg.src_port),
            dst_ip: Some(seg.dst_ip),
            dst_port: Some(seg.dst_port),
            seq: Some(seg.seq),
            ack: if seg.flags.ack() { Some(seg.ack) } else { None },
            payload_len: Some(seg.payload_len),
            ref_packet: None,
            value_ns: None,
            count: None,
            details: Vec::new(),
        }
    }

    /// Sets `ref_packet`.
    pub fn with_ref(mut self, packet: u64) -> Event {
        self.ref_packet = Some(packet);
        self
    }
    /// Sets `value_ns`.
    pub fn with_value_ns(mut self, nanos: u64) -> Event {
        self.value_ns = Some(nanos.min(i64::MAX as u64) as i64);
        self
    }
    /// Sets `count`.
    pub fn with_count(mut self, count: u64) -> Event {
        self.count = Some(count.min(i64::MAX as u64) as i64);
        self
    }
    /// Adds one detail.
    pub fn with_detail(mut self, key: &'static str, value: impl ToString) -> Event {
        self.details.push((Cow::Borrowed(key), value.to_string()));
        self
    }
    /// Whether this is the engine's event of `kind`.
    pub fn is(&self, kind: EventKind) -> bool {
        self.detector == "tcp" && self.kind == kind.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.as_str()), Some(k));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len());
    }
}
