//! The `events` and `flows` Parquet schemas (the contract with users; additive changes only) and
//! the conversion of rows into Arrow record batches.

use crate::tcp::{DirectionMetrics, Event, FlowRecord};
use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

/// Version of both schemas, written to each file's key-value metadata as `tcpscope.schema_version`.
pub const SCHEMA_VERSION: &str = "1";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn details_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

/// The `events` schema.
pub fn events_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("ts", ts_type(), false),
                Field::new("sensor", DataType::Utf8, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("packet_number", DataType::Int64, true),
                Field::new("flow_id", DataType::Int64, false),
                Field::new("detector", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("severity", DataType::Utf8, false),
                Field::new("direction", DataType::Utf8, true),
                Field::new("src_ip", DataType::Utf8, true),
                Field::new("src_port", DataType::Int32, true),
                Field::new("dst_ip", DataType::Utf8, true),
                Field::new("dst_port", DataType::Int32, true),
                Field::new("seq", DataType::Int64, true),
                Field::new("ack", DataType::Int64, true),
                Field::new("payload_len", DataType::Int64, true),
                Field::new("ref_packet", DataType::Int64, true),
                Field::new("value_ns", DataType::Int64, true),
                Field::new("count", DataType::Int64, true),
                Field::new("details", details_type(), true),
            ]))
        })
        .clone()
}

/// Per-direction metric columns, without the `orig_`/`resp_` prefix, in schema order.
pub const DIRECTION_COLUMNS: &[(&str, DataType)] = &[
    ("payload_bytes", DataType::Int64),
    ("unique_bytes", DataType::Int64),
    ("retransmissions", DataType::Int64),
    ("fast_retransmissions", DataType::Int64),
    ("spurious_retransmissions", DataType::Int64),
    ("out_of_order", DataType::Int64),
    ("lost_segments", DataType::Int64),
    ("acked_unseen", DataType::Int64),
    ("duplicate_acks", DataType::Int64),
    ("zero_windows", DataType::Int64),
    ("zero_window_probes", DataType::Int64),
    ("zero_window_stall_ns", DataType::Int64),
    ("keep_alives", DataType::Int64),
    ("window_full", DataType::Int64),
    ("mss", DataType::Int32),
    ("window_scale", DataType::Int32),
    ("sack_permitted", DataType::Boolean),
    ("timestamps", DataType::Boolean),
    ("max_bytes_in_flight", DataType::Int64),
    ("rtt_samples", DataType::Int64),
    ("rtt_min_ns", DataType::Int64),
    ("rtt_mean_ns", DataType::Int64),
    ("rtt_max_ns", DataType::Int64),
    ("rtt_p50_ns", DataType::Int64),
    ("rtt_p95_ns", DataType::Int64),
];

/// Per-direction columns added later, appended after every other column as `orig_<name>`,
/// `resp_<name>` pairs: `missed_bytes` (this direction's share of Zeek's `missed_bytes`) and
/// `rtt_ambiguous_acks` (ACKs of retransmitted data, which Karn's rule keeps out of the RTT).
pub const LATER_DIRECTION_COLUMNS: &[(&str, DataType)] =
    &[("missed_bytes", DataType::Int64), ("rtt_ambiguous_acks", DataType::Int64)];

/// The `flows` schema.
pub fn flows_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![
                Field::new("ts", ts_type(), false),
                Field::new("ts_end", ts_type(), false),
                Field::new("duration_ns", DataType::Int64, false),
                Field::new("sensor", DataType::Utf8, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("flow_id", DataType::Int64, false),
                Field::new("community_id", DataType::Utf8, true),
                Field::new("orig_h", DataType::Utf8, false),
                Field::new("orig_p", DataType::Int32, false),
                Field::new("resp_h", DataType::Utf8, false),
                Field::new("resp_p", DataType::Int32, false),
                Field::new("ip_version", DataType::Int32, false),
                Field::new("vlan", DataType::Int32, true),
                Field::new("conn_state", DataType::Utf8, false),
                Field::new("history", DataType::Utf8, false),
                Field::new("close_reason", DataType::Utf8, false),
                Field::new("orig_pkts", DataType::Int64, false),
                Field::new("resp_pkts", DataType::Int64, false),
                Field::new("orig_bytes", DataType::Int64, false),
                Field::new("resp_bytes", DataType::Int64, false),
                Field::new("orig_ip_bytes", DataType::Int64, false),
                Field::new("resp_ip_bytes", DataType::Int64, false),
                Field::new("missed_bytes", DataType::Int64, false),
                Field::new("handshake_syn_synack_ns", DataType::Int64, true),
                Field::new("handshake_synack_ack_ns", DataType::Int64, true),
            ];
            for prefix in ["orig", "resp"] {
                for (name, ty) in DIRECTION_COLUMNS {
                    fields.push(Field::new(format!("{prefix}_{name}"), ty.clone(), true));
                }
            }
            // Added after the first release of the schema, so appended at the end.
            for (name, ty) in LATER_DIRECTION_COLUMNS {
                for prefix in ["orig", "resp"] {
                    fields.push(Field::new(format!("{prefix}_{name}"), ty.clone(), true));
                }
            }
            Arc::new(Schema::new(fields))
        })
        .clone()
}

fn i64s<T>(rows: &[T], f: impl Fn(&T) -> Option<i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(rows.iter().map(f)))
}
fn i32s<T>(rows: &[T], f: impl Fn(&T) -> Option<i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter(rows.iter().map(f)))
}
fn strs<'a, T: 'a>(rows: &'a [T], f: impl Fn(&'a T) -> Option<&'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter(rows.iter().map(f)))
}
fn owned_strs<T>(rows: &[T], f: impl Fn(&T) -> Option<String>) -> ArrayRef {
    Arc::new(StringArray::from_iter(rows.iter().map(f)))
}
fn times<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"))
}

/// Builds an `events` batch. `sources` maps `source_index` to the source's name.
pub fn events_batch(rows: &[Event], sensor: &str, sources: &[String]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let source_name = |i: u32| sources.get(i as usize).map(String::as_str).unwrap_or("");
    let mut details = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for e in rows {
        if e.details.is_empty() {
            details.append(false)?;
        } else {
            for (k, v) in &e.details {
                details.keys().append_value(k);
                details.values().append_value(v);
            }
            details.append(true)?;
        }
    }
    let columns: Vec<ArrayRef> = vec![
        times(rows, |e| e.ts.as_micros()),
        strs(rows, |_| Some(sensor)),
        strs(rows, |e| Some(source_name(e.source_index))),
        i64s(rows, |e| e.packet_number.map(|n| n as i64)),
        i64s(rows, |e| Some(e.flow_id as i64)),
        strs(rows, |e| Some(e.detector.as_ref())),
        strs(rows, |e| Some(e.kind.as_ref())),
        strs(rows, |e| Some(e.severity.as_str())),
        strs(rows, |e| e.direction.map(|d| d.as_str())),
        owned_strs(rows, |e| e.src_ip.map(|ip| ip.to_string())),
        i32s(rows, |e| e.src_port.map(i32::from)),
        owned_strs(rows, |e| e.dst_ip.map(|ip| ip.to_string())),
        i32s(rows, |e| e.dst_port.map(i32::from)),
        i64s(rows, |e| e.seq.map(i64::from)),
        i64s(rows, |e| e.ack.map(i64::from)),
        i64s(rows, |e| e.payload_len.map(i64::from)),
        i64s(rows, |e| e.ref_packet.map(|n| n as i64)),
        i64s(rows, |e| e.value_ns),
        i64s(rows, |e| e.count),
        Arc::new(details.finish()),
    ];
    RecordBatch::try_new(events_schema(), columns)
}

fn direction_columns(rows: &[FlowRecord], pick: fn(&FlowRecord) -> &DirectionMetrics) -> Vec<ArrayRef> {
    let c = |f: fn(&DirectionMetrics) -> i64| i64s(rows, move |r| Some(f(pick(r))));
    let opt = |f: fn(&DirectionMetrics) -> Option<i64>| i64s(rows, move |r| f(pick(r)));
    vec![
        c(|m| m.payload_bytes as i64),
        c(|m| m.unique_bytes as i64),
        c(|m| m.retransmissions as i64),
        c(|m| m.fast_retransmissions as i64),
        c(|m| m.spurious_retransmissions as i64),
        c(|m| m.out_of_order as i64),
        c(|m| m.lost_segments as i64),
        c(|m| m.acked_unseen as i64),
        c(|m| m.duplicate_acks as i64),
        c(|m| m.zero_windows as i64),
        c(|m| m.zero_window_probes as i64),
        c(|m| m.zero_window_stall_ns),
        c(|m| m.keep_alives as i64),
        c(|m| m.window_full as i64),
        i32s(rows, move |r| pick(r).mss.map(i32::from)),
        i32s(rows, move |r| pick(r).window_scale.map(i32::from)),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(pick(r).sack_permitted)))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(pick(r).timestamps)))),
        c(|m| m.max_bytes_in_flight as i64),
        c(|m| m.rtt.samples as i64),
        opt(|m| m.rtt.min_ns),
        opt(|m| m.rtt.mean_ns),
        opt(|m| m.rtt.max_ns),
        opt(|m| m.rtt.p50_ns),
        opt(|m| m.rtt.p95_ns),
    ]
}

/// Builds a `flows` batch.
pub fn flows_batch(rows: &[FlowRecord], sensor: &str, sources: &[String]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let source_name = |i: u32| sources.get(i as usize).map(String::as_str).unwrap_or("");
    let mut columns: Vec<ArrayRef> = vec![
        times(rows, |r| r.ts.as_micros()),
        times(rows, |r| r.ts_end.as_micros()),
        i64s(rows, |r| Some(r.duration_ns())),
        strs(rows, |_| Some(sensor)),
        strs(rows, |r| Some(source_name(r.source_index))),
        i64s(rows, |r| Some(r.flow_id as i64)),
        strs(rows, |r| (!r.community_id.is_empty()).then_some(r.community_id.as_str())),
        owned_strs(rows, |r| Some(r.orig_h.to_string())),
        i32s(rows, |r| Some(r.orig_p as i32)),
        owned_strs(rows, |r| Some(r.resp_h.to_string())),
        i32s(rows, |r| Some(r.resp_p as i32)),
        i32s(rows, |r| Some(r.ip_version() as i32)),
        i32s(rows, |r| r.vlan.map(i32::from)),
        strs(rows, |r| Some(r.conn_state)),
        strs(rows, |r| Some(r.history.as_str())),
        strs(rows, |r| Some(r.close_reason.as_str())),
        i64s(rows, |r| Some(r.orig.pkts as i64)),
        i64s(rows, |r| Some(r.resp.pkts as i64)),
        i64s(rows, |r| Some(r.orig.seq_bytes as i64)),
        i64s(rows, |r| Some(r.resp.seq_bytes as i64)),
        i64s(rows, |r| Some(r.orig.ip_bytes as i64)),
        i64s(rows, |r| Some(r.resp.ip_bytes as i64)),
        i64s(rows, |r| Some(r.missed_bytes as i64)),
        i64s(rows, |r| r.handshake_syn_synack_ns),
        i64s(rows, |r| r.handshake_synack_ack_ns),
    ];
    columns.extend(direction_columns(rows, |r| &r.orig));
    columns.extend(direction_columns(rows, |r| &r.resp));
    columns.push(i64s(rows, |r| Some(r.orig.missed_bytes as i64)));
    columns.push(i64s(rows, |r| Some(r.resp.missed_bytes as i64)));
    columns.push(i64s(rows, |r| Some(r.orig.rtt_ambiguous_acks as i64)));
    columns.push(i64s(rows, |r| Some(r.resp.rtt_ambiguous_acks as i64)));
    RecordBatch::try_new(flows_schema(), columns)
}
