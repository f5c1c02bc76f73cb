//! Detector plugins end to end: start-up refusals (junk file, missing entry symbol, wrong ABI
//! major, descriptor too small, bad magic, unsafe permissions, bad configuration), a panicking
//! plugin contained, a plugin written in C against the generated header, `plugin inspect`, and
//! the three shipped detectors: each fires on a capture that shows its behaviour, stays silent
//! on clean traffic, and gives identical results with 1 and 4 workers.
//!
//! Captures are built with the project's own packet builder (198.18.0.0/15 addresses), so the
//! tests need no network. Plugins are built by the tests with `cargo build -p ...`.

use arrow_array::{Array, Int32Array, Int64Array, MapArray, StringArray, StructArray, TimestampMicrosecondArray};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use tcpscope::decode::TcpFlags;
use tcpscope::testing::{write_ethernet_pcap, Conversation, PacketBuilder};
use tcpscope_tests::{analyze, read_dataset, run_tcpscope, target_dir, workspace_root};

const PLUGINS: [&str; 4] = ["syn-flood", "port-scan", "rst-injection", "test-panic"];
/// 2023-11-14T22:13:20Z: a multiple of 60 s, so test windows line up.
const BASE: u64 = 1_700_000_040 * 1_000_000_000;
const MS: u64 = 1_000_000;

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Builds the plugin packages once per test process; returns the path of `name`'s library.
fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace_root()).args(["build", "-q"]);
        for p in PLUGINS {
            cmd.args(["-p", &format!("tcpscope-plugin-{p}")]);
        }
        if profile() == "release" {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("running cargo build").success(), "building the plugins failed");
    });
    let file = format!("{}tcpscope_plugin_{}{}", std::env::consts::DLL_PREFIX, name.replace('-', "_"), std::env::consts::DLL_SUFFIX);
    target_dir().join(profile()).join(file)
}

const C_PLUGIN: &str = r#"
#include "tcpscope_plugin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint64_t segments; uint64_t syns; } Counter;

static TcpscopeStatus create(void *shared, TcpscopeStr config, uint32_t worker, const TcpscopeEmitter *em, void **out) {
    (void)shared; (void)config; (void)worker; (void)em;
    Counter *c = calloc(1, sizeof *c);
    if (!c) return TCPSCOPE_ERROR;
    *out = c;
    return TCPSCOPE_OK;
}

static TcpscopeStatus on_segment(void *inst, const TcpscopeSegment *s, const TcpscopeEmitter *em) {
    Counter *c = inst;
    (void)em;
    c->segments++;
    if ((s->tcp_flags & 0x12) == 0x02) c->syns++;
    return TCPSCOPE_OK;
}

static TcpscopeStatus on_flow_end(void *inst, const TcpscopeFlow *f, const TcpscopeEmitter *em) {
    (void)inst;
    TcpscopeKeyValue kv[1] = {{ TCPSCOPE_STR("conn_state"), f->conn_state }};
    TcpscopeEvent e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    e.fields = TCPSCOPE_EVENT_HAS_FLOW | TCPSCOPE_EVENT_HAS_SRC | TCPSCOPE_EVENT_HAS_SRC_PORT
             | TCPSCOPE_EVENT_HAS_DST | TCPSCOPE_EVENT_HAS_DST_PORT | TCPSCOPE_EVENT_HAS_COUNT;
    e.ts_ns = f->ts_end_ns;
    e.flow_id = f->flow_id;
    e.count = (int64_t)(f->orig_pkts + f->resp_pkts);
    e.kind = TCPSCOPE_STR("flow_seen");
    e.details = kv;
    e.n_details = 1;
    memcpy(e.src_addr, f->orig_addr, 16);
    memcpy(e.dst_addr, f->resp_addr, 16);
    e.src_port = f->orig_port;
    e.dst_port = f->resp_port;
    e.ip_version = f->ip_version;
    e.severity = TCPSCOPE_SEVERITY_CHAT;
    em->emit(em->ctx, &e);
    return TCPSCOPE_OK;
}

static TcpscopeStatus flush(void *inst, const TcpscopeEmitter *em) {
    Counter *c = inst;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->syns);
    TcpscopeStr syns = { (const uint8_t *)buf, (size_t)n };
    TcpscopeKeyValue kv[1] = {{ TCPSCOPE_STR("syns"), syns }};
    TcpscopeEvent e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    e.fields = TCPSCOPE_EVENT_HAS_COUNT;
    e.count = (int64_t)c->segments;
    e.kind = TCPSCOPE_STR("segments_total");
    e.details = kv;
    e.n_details = 1;
    e.severity = TCPSCOPE_SEVERITY_NOTE;
    em->emit(em->ctx, &e);
    return TCPSCOPE_OK;
}

static void destroy(void *inst) { free(inst); }

static const TcpscopeNameDoc kinds[] = {{"flow_seen", "One per finished flow"}, {"segments_total", "Segments one worker saw"}};
static const TcpscopeNameDoc keys[] = {{"conn_state", "Zeek conn_state"}, {"syns", "Pure SYNs seen"}};

#ifndef MAGIC
#define MAGIC TCPSCOPE_PLUGIN_MAGIC
#endif
#ifndef MAJOR
#define MAJOR TCPSCOPE_ABI_MAJOR
#endif
#ifndef SIZE
#define SIZE sizeof(TcpscopePluginDescriptor)
#endif
#ifndef ENTRY
#define ENTRY tcpscope_plugin_v1
#endif

static const TcpscopePluginDescriptor descriptor = {
    .magic = MAGIC,
    .abi_major = MAJOR,
    .abi_minor = TCPSCOPE_ABI_MINOR,
    .struct_size = SIZE,
    .capabilities = TCPSCOPE_CAP_SEGMENTS | TCPSCOPE_CAP_FLOW_END | TCPSCOPE_CAP_FLUSH,
    .name = "c-counter",
    .version = "1.2.3",
    .description = "Counts segments; written in C",
    .event_kinds = kinds,
    .n_event_kinds = 2,
    .detail_keys = keys,
    .n_detail_keys = 2,
    .create = create,
    .on_segment = on_segment,
    .on_flow_end = on_flow_end,
    .flush = flush,
    .destroy = destroy,
};

const TcpscopePluginDescriptor *ENTRY(void);
const TcpscopePluginDescriptor *ENTRY(void) { return &descriptor; }
"#;

/// Compiles the C plugin with `defines` into `dir/name.so` with the system C compiler.
fn build_c_plugin(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let src = dir.join("c_plugin.c");
    std::fs::write(&src, C_PLUGIN).unwrap();
    let out = dir.join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(cc);
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg("-I")
        .arg(workspace_root().join("plugin-api/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let result = cmd.arg(&src).output().expect("running the C compiler (cc)");
    assert!(result.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&result.stderr));
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small clean capture: two complete conversations.
fn clean_capture(dir: &Path) -> PathBuf {
    let mut frames = Vec::new();
    for (i, client) in ["198.18.0.1:40000", "198.18.0.2:40001"].iter().enumerate() {
        let t = BASE + i as u64 * 100 * MS;
        let mut c = Conversation::new(client, "198.18.1.1:80", 1000, 5000);
        c.handshake(t, MS).client_data(t + 3 * MS, 100).server_ack(t + 4 * MS).server_data(t + 5 * MS, 500);
        c.client_ack(t + 6 * MS).close(t + 10 * MS, MS);
        frames.extend(c.frames);
    }
    let path = dir.join("clean.pcap");
    write_ethernet_pcap(&path, &frames).unwrap();
    path
}

/// One event row, as read back from Parquet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    detector: String,
    kind: String,
    ts_us: i64,
    packet_number: Option<i64>,
    src_ip: Option<String>,
    src_port: Option<i32>,
    dst_ip: Option<String>,
    dst_port: Option<i32>,
    count: Option<i64>,
    seq: Option<i64>,
    payload_len: Option<i64>,
    details: BTreeMap<String, String>,
}

fn col<'a, T: 'static>(b: &'a arrow_array::RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name).unwrap_or_else(|| panic!("column {name}")).as_any().downcast_ref::<T>().expect(name)
}

/// Every event row not written by the engine (detector != "tcp"), sorted.
fn plugin_events(out: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in read_dataset(out, "events") {
        let detector = col::<StringArray>(&b, "detector");
        let kind = col::<StringArray>(&b, "kind");
        let ts = col::<TimestampMicrosecondArray>(&b, "ts");
        let packet = col::<Int64Array>(&b, "packet_number");
        let src_ip = col::<StringArray>(&b, "src_ip");
        let src_port = col::<Int32Array>(&b, "src_port");
        let dst_ip = col::<StringArray>(&b, "dst_ip");
        let dst_port = col::<Int32Array>(&b, "dst_port");
        let count = col::<Int64Array>(&b, "count");
        let seq = col::<Int64Array>(&b, "seq");
        let payload_len = col::<Int64Array>(&b, "payload_len");
        let details = col::<MapArray>(&b, "details");
        for i in 0..b.num_rows() {
            if detector.value(i) == "tcp" {
                continue;
            }
            let opt_s = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_owned());
            let mut map = BTreeMap::new();
            if !details.is_null(i) {
                let entries: StructArray = details.value(i);
                let keys = entries.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                let values = entries.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                for j in 0..entries.len() {
                    map.insert(keys.value(j).to_owned(), values.value(j).to_owned());
                }
            }
            rows.push(Row {
                detector: detector.value(i).to_owned(),
                kind: kind.value(i).to_owned(),
                ts_us: ts.value(i),
                packet_number: (!packet.is_null(i)).then(|| packet.value(i)),
                src_ip: opt_s(src_ip),
                src_port: (!src_port.is_null(i)).then(|| src_port.value(i)),
                dst_ip: opt_s(dst_ip),
                dst_port: (!dst_port.is_null(i)).then(|| dst_port.value(i)),
                count: (!count.is_null(i)).then(|| count.value(i)),
                seq: (!seq.is_null(i)).then(|| seq.value(i)),
                payload_len: (!payload_len.is_null(i)).then(|| payload_len.value(i)),
                details: map,
            });
        }
    }
    rows.sort();
    rows
}

/// Runs `analyze` with `extra` flags; asserts success.
fn run_ok(files: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let o = analyze(files, out, extra);
    assert!(o.status.success(), "tcpscope analyze failed ({:?}):\n{}", o.status, stderr(&o));
    o
}

/// Runs `analyze` with `extra` flags; asserts a refusal whose message holds every `needles`.
fn assert_refused(files: &[&Path], out: &Path, extra: &[&str], needles: &[&str]) {
    let o = analyze(files, out, extra);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected a refusal, got success:\n{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in the error:\n{err}");
    }
    assert!(read_dataset(out, "events").is_empty(), "a refused run must write nothing");
}

#[test]
fn junk_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let junk = dir.path().join("libjunk.so");
    std::fs::write(&junk, b"junk\n").unwrap();
    let junk_s = junk.display().to_string();
    assert_refused(
        &[&capture],
        &dir.path().join("out"),
        &["--plugin", &junk_s],
        &[&junk_s, "expected a loadable shared library", "found"],
    );
}

#[test]
fn missing_entry_symbol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let lib = build_c_plugin(dir.path(), "noentry", &["ENTRY=some_other_function"]);
    let lib_s = lib.display().to_string();
    assert_refused(
        &[&capture],
        &dir.path().join("out"),
        &["--plugin", &lib_s],
        &[&lib_s, "expected the entry symbol `tcpscope_plugin_v1`", "found no tcpscope_plugin_v* symbol"],
    );
}

#[test]
fn wrong_abi_major_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    // A v1 entry symbol whose descriptor says major 2.
    let lib = build_c_plugin(dir.path(), "major2", &["MAJOR=2"]);
    let lib_s = lib.display().to_string();
    assert_refused(&[&capture], &dir.path().join("out"), &["--plugin", &lib_s], &[&lib_s, "expected plugin ABI major 1, found 2"]);
    // A plugin built for ABI 2 exports only `tcpscope_plugin_v2`.
    let lib = build_c_plugin(dir.path(), "entry2", &["ENTRY=tcpscope_plugin_v2"]);
    let lib_s = lib.display().to_string();
    assert_refused(&[&capture], &dir.path().join("out2"), &["--plugin", &lib_s], &[&lib_s, "expected plugin ABI major 1, found 2"]);
}

#[test]
fn descriptor_too_small_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let lib = build_c_plugin(dir.path(), "small", &["SIZE=24"]);
    let lib_s = lib.display().to_string();
    // 152 bytes on 64-bit targets (the header's static assertions say so too).
    let expected = "expected a descriptor of at least 152 bytes, found struct_size 24";
    assert_refused(&[&capture], &dir.path().join("out"), &["--plugin", &lib_s], &[&lib_s, expected]);
}

#[test]
fn bad_magic_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let lib = build_c_plugin(dir.path(), "magic", &["MAGIC=0x1234"]);
    let lib_s = lib.display().to_string();
    assert_refused(
        &[&capture],
        &dir.path().join("out"),
        &["--plugin", &lib_s],
        &[&lib_s, "expected descriptor magic 0x54435053434f5045, found 0x0000000000001234"],
    );
}

#[test]
fn writable_plugin_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let lib = dir.path().join("libtcpscope_plugin_copy.so");
    std::fs::copy(plugin("rst-injection"), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    let lib_s = lib.display().to_string();
    assert_refused(
        &[&capture],
        &dir.path().join("out"),
        &["--plugin", &lib_s],
        &[&lib_s, "not writable by group or others, found mode 0666", "--allow-unsafe-plugin-permissions"],
    );
    run_ok(&[&capture], &dir.path().join("out2"), &["--plugin", &lib_s, "--allow-unsafe-plugin-permissions"]);
    // A directory is not a plugin.
    let d = dir.path().display().to_string();
    assert_refused(&[&capture], &dir.path().join("out3"), &["--plugin", &d], &["expected a regular file"]);
}

#[test]
fn bad_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let syn = plugin("syn-flood").display().to_string();
    assert_refused(
        &[&capture],
        &dir.path().join("out"),
        &["--plugin", &syn, "--plugin-config", r#"syn-flood={"min_incomplet":5}"#],
        &["plugin `syn-flood`", "refused to start", "unknown field `min_incomplet`"],
    );
    assert_refused(
        &[&capture],
        &dir.path().join("out2"),
        &["--plugin", &syn, "--plugin-config", "syn-flood={not json"],
        &["plugin configuration for `syn-flood`: expected a JSON value"],
    );
    assert_refused(
        &[&capture],
        &dir.path().join("out3"),
        &["--plugin", &syn, "--plugin-config", "port-scan={}"],
        &["plugin configuration for `port-scan`: expected the name of a loaded plugin"],
    );
}

#[test]
fn panicking_plugin_is_disabled_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let out = dir.path().join("out");
    let panicky = plugin("test-panic").display().to_string();
    let rst = plugin("rst-injection").display().to_string();
    let o = run_ok(
        &[&capture],
        &out,
        &["--plugin", &panicky, "--plugin", &rst, "--plugin-config", r#"test-panic={"panic_at_packet":3}"#, "--workers", "1"],
    );
    let err = stderr(&o);
    assert!(err.contains("plugin test-panic panicked in on_segment on worker 0"), "{err}");
    let events = plugin_events(&out);
    let panics: Vec<&Row> = events.iter().filter(|r| r.kind == "plugin_panic").collect();
    assert_eq!(panics.len(), 1, "{events:#?}");
    let p = panics[0];
    assert_eq!(p.detector, "test-panic");
    assert_eq!(p.packet_number, Some(3));
    assert_eq!(p.details["hook"], "on_segment");
    assert!(p.details["message"].contains("deliberate panic at packet 3"), "{p:?}");
    // The disabled instance never flushed; the run went on and wrote every flow.
    assert!(!events.iter().any(|r| r.kind == "segments_seen"), "{events:#?}");
    let flows: usize = read_dataset(&out, "flows").iter().map(|b| b.num_rows()).sum();
    assert_eq!(flows, 2);
    // Without a panic, the instance flushes.
    let out2 = dir.path().join("out2");
    let o = run_ok(&[&capture], &out2, &["--plugin", &panicky, "--plugin-config", r#"test-panic={"panic_at_packet":1000}"#, "--workers", "1"]);
    // test-panic adds a detail key it does not declare: counted and reported.
    assert!(stderr(&o).contains("plugin test-panic: 1 events with a kind or detail key its descriptor does not declare"), "{}", stderr(&o));
    let seen: Vec<Row> = plugin_events(&out2).into_iter().filter(|r| r.kind == "segments_seen").collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].count, Some(20));
    // A `create` that fails disables the plugin on that worker, reported at the first packet time.
    let out3 = dir.path().join("out3");
    let o = run_ok(&[&capture], &out3, &["--plugin", &panicky, "--plugin-config", r#"test-panic={"fail_create":true}"#, "--workers", "2"]);
    assert!(stderr(&o).contains("plugin test-panic: 0 panics, 2 errors, disabled on 2 of 2 workers"), "{}", stderr(&o));
    let errors: Vec<Row> = plugin_events(&out3).into_iter().filter(|r| r.kind == "plugin_error").collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|r| r.details["hook"] == "create" && r.details["message"].contains("cannot start")));
    assert!(errors.iter().all(|r| r.ts_us >= (BASE / 1000) as i64), "stamped with packet time: {errors:#?}");
}

#[test]
fn plugin_written_in_c_works() {
    let dir = tempfile::tempdir().unwrap();
    let capture = clean_capture(dir.path());
    let lib = build_c_plugin(dir.path(), "ccounter", &[]);
    let lib_s = lib.display().to_string();
    let out = dir.path().join("out");
    run_ok(&[&capture], &out, &["--plugin", &lib_s, "--workers", "2"]);
    let events = plugin_events(&out);
    assert!(events.iter().all(|r| r.detector == "c-counter"), "{events:#?}");
    let flows: Vec<&Row> = events.iter().filter(|r| r.kind == "flow_seen").collect();
    assert_eq!(flows.len(), 2, "{events:#?}");
    for f in &flows {
        assert_eq!(f.details["conn_state"], "SF");
        assert_eq!(f.dst_ip.as_deref(), Some("198.18.1.1"));
        assert_eq!(f.dst_port, Some(80));
        assert_eq!(f.count, Some(10));
    }
    let totals: Vec<&Row> = events.iter().filter(|r| r.kind == "segments_total").collect();
    assert_eq!(totals.len(), 2, "one per worker");
    assert_eq!(totals.iter().map(|r| r.count.unwrap()).sum::<i64>(), 20);
    assert_eq!(totals.iter().map(|r| r.details["syns"].parse::<u64>().unwrap()).sum::<u64>(), 2);

    let o = run_tcpscope(&["plugin", "inspect", &lib_s]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    for needle in ["name:         c-counter", "version:      1.2.3", "abi:          1.0", "segments, flow_end, flush", "conn_state", "syns"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn plugin_inspect_prints_what_the_plugin_declares() {
    let path = plugin("syn-flood").display().to_string();
    let o = run_tcpscope(&["plugin", "inspect", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "name:         syn-flood",
        "version:      0.1.0",
        "abi:          1.0 (host 1.0)",
        "capabilities: segments, flow_end, tick, flush, shared",
        "syn_flood",
        "incomplete_ratio",
        "sample_sources",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let junk = tempfile::NamedTempFile::new().unwrap();
    let o = run_tcpscope(&["plugin", "inspect", &junk.path().display().to_string()]);
    assert!(!o.status.success());
}

// ---- captures showing each behaviour ----

/// 300 SYNs from 150 spoofed sources to 198.18.2.10:80 within 3 s from `start`; none completes.
fn syn_flood_frames(start: u64, port_base: u64) -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    for i in 0..300u64 {
        let src = format!("198.19.0.{}:{}", 1 + i % 150, port_base + i);
        let t = start + i * 10 * MS;
        frames.push((t, PacketBuilder::v4(&src, "198.18.2.10:80").seq(i as u32 * 7919).flags(TcpFlags::SYN).ethernet()));
        // The server answers some; nobody completes.
        if i % 3 == 0 {
            let synack = PacketBuilder::v4("198.18.2.10:80", &src).seq(42).flags(TcpFlags::SYN).ack(i as u32 * 7919 + 1);
            frames.push((t + MS, synack.ethernet()));
        }
    }
    frames
}

/// 300 complete handshakes from 30 clients to 198.18.2.11:443.
fn busy_server_frames() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    for i in 0..300u64 {
        let client = format!("198.18.3.{}:{}", 1 + i % 30, 20000 + i);
        let t = BASE + i * 10 * MS;
        let mut c = Conversation::new(&client, "198.18.2.11:443", 100, 900);
        c.handshake(t, MS).client_data(t + 2 * MS, 50).server_ack(t + 3 * MS).close(t + 4 * MS, MS);
        frames.extend(c.frames);
    }
    frames
}

/// 198.18.4.5 SYN-scans ports 1..=100 of 198.18.2.20 (closed ports answer RST, 22 and 80 open);
/// 198.18.4.6 sends NULL, FIN and XMAS probes to ports 1000..1030 of 198.18.2.21 (no answer).
fn port_scan_frames() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    for port in 1..=100u16 {
        let t = BASE + port as u64 * 5 * MS;
        let src = format!("198.18.4.5:{}", 50000 + port);
        let dst = format!("198.18.2.20:{port}");
        frames.push((t, PacketBuilder::v4(&src, &dst).seq(777).flags(TcpFlags::SYN).ethernet()));
        let reply = if port == 22 || port == 80 {
            PacketBuilder::v4(&dst, &src).seq(1).flags(TcpFlags::SYN).ack(778)
        } else {
            PacketBuilder::v4(&dst, &src).seq(0).flags(TcpFlags::RST).ack(778)
        };
        frames.push((t + MS / 2, reply.ethernet()));
    }
    for (i, port) in (1000..1030u16).enumerate() {
        let t = BASE + 2_000 * MS + i as u64 * 20 * MS;
        let flags = [0, TcpFlags::FIN, TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG][i % 3];
        let p = PacketBuilder::v4(&format!("198.18.4.6:{}", 40000 + i), &format!("198.18.2.21:{port}")).seq(9).flags(flags);
        frames.push((t, p.ethernet()));
    }
    frames
}

/// A client that connects to 40 ports of one host, all successfully, and a few refused
/// attempts to 3 ports: normal behaviour, no scan.
fn normal_client_frames() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    for i in 0..40u64 {
        let t = BASE + i * 20 * MS;
        let mut c = Conversation::new(&format!("198.18.5.1:{}", 30000 + i), &format!("198.18.2.30:{}", 8000 + i), 5, 50);
        c.handshake(t, MS).close(t + 5 * MS, MS);
        frames.extend(c.frames);
    }
    for i in 0..3u64 {
        let t = BASE + 1_000 * MS + i * 20 * MS;
        let src = format!("198.18.5.1:{}", 31000 + i);
        let dst = format!("198.18.2.31:{}", 9000 + i);
        frames.push((t, PacketBuilder::v4(&src, &dst).seq(1).flags(TcpFlags::SYN).ethernet()));
        frames.push((t + MS, PacketBuilder::v4(&dst, &src).seq(0).flags(TcpFlags::RST).ack(2).ethernet()));
    }
    frames
}

/// A conversation whose server side sends TTL 57 and IP IDs counting up from `id0`.
struct Server {
    conv: Conversation,
    client: String,
    server: String,
    ip_id: u16,
}

impl Server {
    fn new(client: &str, server: &str, id0: u16) -> Self {
        Server { conv: Conversation::new(client, server, 1000, 7000), client: client.into(), server: server.into(), ip_id: id0 }
    }
    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }
    fn open(&mut self, t: u64) {
        self.conv.push(t, PacketBuilder::v4(&self.client, &self.server).seq(999).flags(TcpFlags::SYN));
        let id = self.next_id();
        let synack = PacketBuilder::v4(&self.server, &self.client).seq(6999).flags(TcpFlags::SYN).ack(1000).ttl(57).ip_id(id);
        self.conv.push(t + MS, synack);
        self.conv.client_ack(t + 2 * MS);
    }
    /// Server data with the given TTL and the next IP ID (or the given one).
    fn data(&mut self, t: u64, len: usize, ttl: u8, ip_id: Option<u16>) {
        let id = ip_id.unwrap_or_else(|| self.next_id());
        let p = self.conv.from_server().flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(len).ttl(ttl).ip_id(id);
        self.conv.push(t, p);
    }
    fn rst(&mut self, t: u64, ttl: u8, ip_id: Option<u16>) {
        let id = ip_id.unwrap_or_else(|| self.next_id());
        let p = self.conv.from_server().flags(TcpFlags::RST | TcpFlags::ACK).window(0).ttl(ttl).ip_id(id);
        self.conv.push(t, p);
    }
}

/// Timestamped frames.
type Frames = Vec<(u64, Vec<u8>)>;

/// Three connections with forged packets (198.18.6.x) and one clean one ending in a genuine
/// reset (198.18.7.1).
fn injection_frames() -> (Frames, Frames) {
    let mut forged = Vec::new();
    // 1. A reset with a foreign TTL and IP ID after five normal server packets.
    let mut a = Server::new("198.18.6.1:41000", "198.18.8.1:443", 100);
    a.open(BASE);
    for k in 0..5 {
        a.data(BASE + (10 + k) * MS, 100, 57, None);
    }
    a.rst(BASE + 20 * MS, 44, Some(31337));
    forged.extend(a.conv.frames);
    // 2. A reset that races the server's own data (same TTL and IDs: only the race shows).
    let mut b = Server::new("198.18.6.2:41001", "198.18.8.1:443", 2000);
    b.open(BASE + 100 * MS);
    for k in 0..4 {
        b.data(BASE + (110 + k) * MS, 100, 57, None);
    }
    b.rst(BASE + 120 * MS, 57, None);
    b.data(BASE + 125 * MS, 1400, 57, None);
    forged.extend(b.conv.frames);
    // 3. One data packet with another TTL and IP ID between normal ones.
    let mut c = Server::new("198.18.6.3:41002", "198.18.8.1:443", 5000);
    c.open(BASE + 200 * MS);
    for k in 0..4 {
        c.data(BASE + (210 + k) * MS, 100, 57, None);
    }
    c.data(BASE + 215 * MS, 300, 50, Some(777));
    for k in 0..2 {
        c.data(BASE + (216 + k) * MS, 100, 57, None);
    }
    forged.extend(c.conv.frames);
    // 4. Over IPv6: a reset with a foreign hop limit (IPv6 has no ID: only the TTL speaks).
    let mut v6 = Server::new("[fd00:198:18::6]:41003", "[fd00:198:18::8]:443", 0);
    v6.open(BASE + 250 * MS);
    for k in 0..5 {
        v6.data(BASE + (260 + k) * MS, 100, 57, None);
    }
    v6.rst(BASE + 270 * MS, 30, None);
    forged.extend(v6.conv.frames);

    // Clean: normal data, then a genuine reset that follows the server's TTL and IDs, nothing after.
    let mut clean = Vec::new();
    let mut d = Server::new("198.18.7.1:42000", "198.18.8.2:443", 60000);
    d.open(BASE + 300 * MS);
    for k in 0..6 {
        d.data(BASE + (310 + k) * MS, 100, 57, None);
    }
    d.rst(BASE + 320 * MS, 57, None);
    clean.extend(d.conv.frames);
    (forged, clean)
}

fn write(dir: &Path, name: &str, frames: &[(u64, Vec<u8>)]) -> PathBuf {
    let p = dir.join(name);
    write_ethernet_pcap(&p, frames).unwrap();
    p
}

fn detector_args(names: &[&str]) -> Vec<String> {
    names.iter().flat_map(|n| ["--plugin".to_owned(), plugin(n).display().to_string()]).collect()
}

fn run_detectors(capture: &Path, out: &Path, names: &[&str], workers: usize, extra: &[&str]) -> Vec<Row> {
    let mut args = detector_args(names);
    args.extend(["--workers".to_owned(), workers.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_ok(&[capture], out, &refs);
    assert!(!stderr(&o).contains("does not declare"), "the shipped detectors declare every kind and key:\n{}", stderr(&o));
    plugin_events(out)
}

#[test]
fn syn_flood_fires_on_a_flood_and_not_on_a_busy_server() {
    let dir = tempfile::tempdir().unwrap();
    let flood = write(dir.path(), "flood.pcap", &syn_flood_frames(BASE, 1024));
    let events = run_detectors(&flood, &dir.path().join("out"), &["syn-flood"], 2, &[]);
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!((e.detector.as_str(), e.kind.as_str()), ("syn-flood", "syn_flood"));
    assert_eq!(e.dst_ip.as_deref(), Some("198.18.2.10"));
    assert_eq!(e.dst_port, Some(80));
    assert_eq!(e.count, Some(300));
    assert_eq!(e.details["sources"], "150");
    assert_eq!(e.details["completed"], "0");
    assert_eq!(e.details["syn_packets"], "300");
    assert_eq!(e.ts_us, (BASE / 1000) as i64);

    let busy = write(dir.path(), "busy.pcap", &busy_server_frames());
    let events = run_detectors(&busy, &dir.path().join("out2"), &["syn-flood"], 2, &[]);
    assert!(events.is_empty(), "{events:#?}");

    // Thresholds are configurable: 300 incomplete attempts are not enough at 500.
    let events = run_detectors(&flood, &dir.path().join("out3"), &["syn-flood"], 2, &["--plugin-config", r#"syn-flood={"min_incomplete":500}"#]);
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn port_scan_fires_on_scans_and_not_on_a_normal_client() {
    let dir = tempfile::tempdir().unwrap();
    let scan = write(dir.path(), "scan.pcap", &port_scan_frames());
    let events = run_detectors(&scan, &dir.path().join("out"), &["port-scan"], 2, &[]);
    assert_eq!(events.len(), 2, "{events:#?}");
    let syn = events.iter().find(|r| r.src_ip.as_deref() == Some("198.18.4.5")).expect("SYN scan reported");
    assert_eq!(syn.kind, "port_scan");
    assert_eq!(syn.src_port, None);
    assert_eq!(syn.details["scan_type"], "vertical");
    assert_eq!(syn.details["ports"], "98");
    assert_eq!(syn.details["refused"], "98");
    assert_eq!(syn.details["answered"], "2");
    assert_eq!(syn.details["syn_probes"], "100");
    let stealth = events.iter().find(|r| r.src_ip.as_deref() == Some("198.18.4.6")).expect("NULL/FIN/XMAS scan reported");
    assert_eq!(stealth.details["ports"], "30");
    assert_eq!(stealth.details["unanswered"], "30");
    assert_eq!(
        (&stealth.details["null_probes"][..], &stealth.details["fin_probes"][..], &stealth.details["xmas_probes"][..]),
        ("10", "10", "10")
    );

    let normal = write(dir.path(), "normal.pcap", &normal_client_frames());
    let events = run_detectors(&normal, &dir.path().join("out2"), &["port-scan"], 2, &[]);
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn rst_injection_fires_on_forged_packets_and_not_on_a_genuine_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (forged, clean) = injection_frames();
    let capture = write(dir.path(), "forged.pcap", &forged);
    let events = run_detectors(&capture, &dir.path().join("out"), &["rst-injection"], 2, &[]);
    let kinds: Vec<(&str, Option<&str>)> = events.iter().map(|r| (r.kind.as_str(), r.dst_ip.as_deref())).collect();
    assert_eq!(kinds.len(), 4, "{events:#?}");
    let forged_rst = events.iter().find(|r| r.kind == "forged_rst" && r.dst_ip.as_deref() == Some("198.18.6.1")).expect("forged_rst");
    assert_eq!(forged_rst.dst_ip.as_deref(), Some("198.18.6.1"));
    assert_eq!(forged_rst.details["reasons"], "ttl,ip_id");
    assert_eq!(forged_rst.details["expected_ttl"], "57");
    assert_eq!(forged_rst.details["ttl"], "44");
    let v6 = events.iter().find(|r| r.kind == "forged_rst" && r.dst_ip.as_deref() == Some("fd00:198:18::6")).expect("IPv6 forged_rst");
    assert_eq!((v6.src_ip.as_deref(), v6.src_port, v6.dst_port), (Some("fd00:198:18::8"), Some(443), Some(41003)));
    assert_eq!(v6.details["reasons"], "ttl");
    assert_eq!(v6.details["expected_ttl"], "57");
    let race = events.iter().find(|r| r.kind == "rst_race").expect("rst_race");
    assert_eq!(race.dst_ip.as_deref(), Some("198.18.6.2"));
    let injected = events.iter().find(|r| r.kind == "injected_data").expect("injected_data");
    assert_eq!(injected.dst_ip.as_deref(), Some("198.18.6.3"));
    assert_eq!(injected.details["payload_len"], "300");
    assert_eq!((injected.seq, injected.payload_len), (Some(7000), Some(300)), "the packet's columns are filled");
    assert_eq!(injected.details["reasons"], "ttl,ip_id");

    let clean = write(dir.path(), "clean.pcap", &clean);
    let events = run_detectors(&clean, &dir.path().join("out2"), &["rst-injection"], 2, &[]);
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn detectors_are_silent_on_clean_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = busy_server_frames();
    frames.extend(normal_client_frames());
    frames.extend(injection_frames().1);
    let capture = write(dir.path(), "clean.pcap", &frames);
    let events = run_detectors(&capture, &dir.path().join("out"), &["syn-flood", "port-scan", "rst-injection"], 2, &[]);
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn results_do_not_depend_on_the_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = syn_flood_frames(BASE, 1024);
    frames.extend(busy_server_frames());
    frames.extend(port_scan_frames());
    frames.extend(normal_client_frames());
    let (forged, clean) = injection_frames();
    frames.extend(forged);
    frames.extend(clean);
    // A second flood 20 s later, in another window, so windows close mid-run too.
    frames.extend(syn_flood_frames(BASE + 20_000 * MS, 2048));
    let capture = write(dir.path(), "all.pcap", &frames);
    let names = ["syn-flood", "port-scan", "rst-injection"];
    let one = run_detectors(&capture, &dir.path().join("w1"), &names, 1, &[]);
    let four = run_detectors(&capture, &dir.path().join("w4"), &names, 4, &[]);
    assert_eq!(one, four);
    let count = |d: &str| one.iter().filter(|r| r.detector == d).count();
    assert_eq!((count("syn-flood"), count("port-scan"), count("rst-injection")), (2, 2, 4), "{one:#?}");
}

// ---- real captures from the shared corpus (skipped when it is absent) ----

#[test]
fn detectors_on_the_corpus_fire_only_where_the_behaviour_is() {
    let Some(corpus) = tcpscope_tests::corpus_dir("detectors_on_the_corpus_fire_only_where_the_behaviour_is") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let names = ["syn-flood", "port-scan", "rst-injection"];
    let mut fired: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, capture) in tcpscope_tests::corpus_pcaps(&corpus).iter().enumerate() {
        let mut args = detector_args(&names);
        args.extend(["--workers".to_owned(), "2".to_owned()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = dir.path().join(format!("out{i}"));
        // Some corpus files are deliberately broken: only the plugin events matter here.
        let _ = analyze(&[capture], &out, &refs);
        for r in plugin_events(&out) {
            let file = capture.file_name().unwrap().to_string_lossy().into_owned();
            fired.entry(file).or_default().push(format!("{}/{}", r.detector, r.kind));
        }
    }
    // The Zeek trace of a RST injected right after a SYN, before the real SYN/ACK, and the
    // nmap SYN scan of ~1000 ports; nothing else in the corpus is an attack.
    let expected: BTreeMap<String, Vec<String>> = [
        ("rst_inject_reused_ports.pcap", vec!["rst-injection/rst_race"]),
        ("syn_scan.pcapng", vec!["port-scan/port_scan"]),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(fired, expected);
}

// ---- traffic recorded between two network namespaces (root only) ----

use tcpscope_tests::NamespaceLab as Lab;

/// Echoes on 198.18.0.2:8080 for 20 s at most; every other port is closed.
const NS_SERVER: &str = r#"
import socket, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", 8080))
s.listen(512)
s.settimeout(20)
def serve(c):
    try:
        c.sendall(c.recv(100))
    finally:
        c.close()
end = time.time() + 20
while time.time() < end:
    try:
        c, _ = s.accept()
    except OSError:
        break
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// 20 echo connections; a connect scan of ports 1-100 (closed: refused by the kernel); 250 SYNs
/// from a raw socket to 8080 whose SYN/ACKs the client's kernel resets (half-open handshakes).
const NS_CLIENT: &str = r#"
import socket, struct, time
for i in range(20):
    c = socket.create_connection(("198.18.0.2", 8080), timeout=2)
    c.sendall(b"x" * 100); c.recv(100); c.close()
for port in range(1, 101):
    s = socket.socket(); s.settimeout(0.5)
    try:
        s.connect(("198.18.0.2", port))
    except OSError:
        pass
    s.close()
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(250):
    tcp = struct.pack("!HHIIBBHHH", 40000 + i, 8080, (i * 7919) & 0xffffffff, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton("198.18.0.1") + socket.inet_aton("198.18.0.2") + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    raw.sendto(tcp, ("198.18.0.2", 0))
    time.sleep(0.002)
time.sleep(1)
print("done", flush=True)
"#;

/// Records the scenario above; `None` (with a visible skip message) without root or tools.
fn record_attacks(dir: &Path) -> Option<PathBuf> {
    let (mut lab, pair) = Lab::veth_pair("p", &["tcpdump", "python3"])?;
    let (client_ns, server_ns) = (pair.client_ns.clone(), pair.server_ns.clone());
    let veth_c = pair.client_dev.as_str();
    let capture = dir.join("attacks.pcap");
    let tcpdump = Command::new("ip")
        .args(["netns", "exec", &client_ns, "tcpdump", "-i", veth_c, "-U", "-n", "-c", "5000", "-w"])
        .arg(&capture)
        .arg("tcp")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    lab.children.push(tcpdump);
    let server = Command::new("ip")
        .args(["netns", "exec", &server_ns, "timeout", "25", "python3", "-c", NS_SERVER])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("server");
    lab.children.push(server);
    std::thread::sleep(std::time::Duration::from_millis(1500)); // tcpdump and the listener get ready
    let client = Command::new("ip")
        .args(["netns", "exec", &client_ns, "timeout", "25", "python3", "-c", NS_CLIENT])
        .output()
        .expect("client");
    assert!(String::from_utf8_lossy(&client.stdout).contains("done"), "client failed: {}", stderr(&client));
    std::thread::sleep(std::time::Duration::from_millis(500)); // the last packets reach the capture
    drop(lab);
    Some(capture)
}

#[test]
fn detectors_on_traffic_recorded_in_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let Some(capture) = record_attacks(dir.path()) else { return };
    let names = ["syn-flood", "port-scan", "rst-injection"];
    // One-minute windows: the whole recording falls in at most two of them.
    let config = ["--plugin-config", r#"syn-flood={"window_secs":60}"#];
    let one = run_detectors(&capture, &dir.path().join("w1"), &names, 1, &config);
    let four = run_detectors(&capture, &dir.path().join("w4"), &names, 4, &config);
    assert_eq!(one, four, "1 vs 4 workers");
    let floods: Vec<&Row> = one.iter().filter(|r| r.kind == "syn_flood").collect();
    assert!(!floods.is_empty(), "{one:#?}");
    assert!(floods.iter().all(|r| r.dst_ip.as_deref() == Some("198.18.0.2") && r.dst_port == Some(8080)), "{floods:#?}");
    // 250 half-open handshakes (a minute boundary inside the half-second flood may split them
    // into two windows, of which only one may pass `min_incomplete`).
    let half_open: i64 = floods.iter().map(|r| r.count.unwrap()).sum();
    assert!((125..=250).contains(&half_open), "250 half-open handshakes: {floods:#?}");
    let scans: Vec<&Row> = one.iter().filter(|r| r.kind == "port_scan").collect();
    assert!(!scans.is_empty(), "{one:#?}");
    assert!(scans.iter().all(|r| r.src_ip.as_deref() == Some("198.18.0.1") && r.details["scan_type"] == "vertical"));
    let refused: u64 = scans.iter().map(|r| r.details["refused"].parse::<u64>().unwrap()).sum();
    assert!((50..=100).contains(&refused), "100 refused ports (split by at most one window boundary): {scans:#?}");
    assert!(!one.iter().any(|r| r.detector == "rst-injection"), "genuine kernel resets only: {one:#?}");
}
