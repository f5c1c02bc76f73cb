//! What a detector plugin costs on the hot path: one `on_segment` call into a plugin that does
//! nothing (`plugins/test-noop`, loaded with `dlopen` like any plugin), and the per-segment cost
//! of the worker's engine step without plugins and with that plugin.
//!
//! Run: `cargo bench -p tcpscope-benches --bench plugin_dispatch` (builds the plugin in release).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use tcpscope::decode::{decode, LinkType, Segment};
use tcpscope::plugin_host::{segment_view, PluginOptions, PluginSet, WorkerPlugins};
use tcpscope::tcp::{Engine, EngineConfig};
use tcpscope::testing::Conversation;
use tcpscope::time::Timestamp;

fn noop_plugin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "-q", "--release", "-p", "tcpscope-plugin-test-noop"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building tcpscope-plugin-test-noop failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    target.join("release").join(format!(
        "{}tcpscope_plugin_test_noop{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// 200 short conversations (handshake, data both ways, close): 2 200 segments.
fn segments() -> Vec<Segment> {
    let mut frames = Vec::new();
    for i in 0..200u64 {
        let t = 1_700_000_000_000_000_000 + i * 1_000_000;
        let mut c = Conversation::new(&format!("198.18.0.{}:{}", 1 + i % 200, 30000 + i), "198.18.1.1:80", 1, 1000);
        c.handshake(t, 100_000).client_data(t + 200_000, 100).server_ack(t + 300_000);
        c.server_data(t + 400_000, 1000).client_ack(t + 500_000).close(t + 600_000, 100_000);
        frames.extend(c.frames);
    }
    frames.sort_by_key(|(t, _)| *t);
    frames
        .iter()
        .enumerate()
        .map(|(i, (t, f))| decode(LinkType::Ethernet, f, Timestamp(*t), i as u64 + 1, 0).expect("decodable"))
        .collect()
}

fn bench_dispatch(c: &mut Criterion) {
    let set = PluginSet::load(&PluginOptions { paths: vec![noop_plugin()], ..PluginOptions::default() }, 1)
        .expect("loading the noop plugin");
    let segs = segments();
    let mut events = Vec::new();
    let mut plugins = WorkerPlugins::create(set.clone(), 0);

    // The plugin call alone: host loop, emitter set-up, indirect call, SDK shim (catch_unwind).
    let mut engine = Engine::new(EngineConfig::default());
    let views: Vec<_> = segs.iter().map(|s| segment_view(s, &engine.handle_segment_verdict(s))).collect();
    let mut group = c.benchmark_group("plugin_dispatch");
    group.throughput(Throughput::Elements(views.len() as u64));
    group.bench_function("noop_on_segment_call", |b| {
        b.iter(|| {
            for v in &views {
                plugins.dispatch_segment(black_box(v), &mut events);
            }
        })
    });
    // Everything the worker adds per segment when a plugin is loaded: the segment view, the
    // flow-end and tick checks, and the call.
    let verdicts: Vec<_> = {
        let mut engine = Engine::new(EngineConfig::default());
        segs.iter().map(|s| engine.handle_segment_verdict(s)).collect()
    };
    let mut output = tcpscope::tcp::EngineOutput::default();
    group.bench_function("after_segment_noop", |b| {
        b.iter(|| {
            for (s, v) in segs.iter().zip(&verdicts) {
                plugins.after_segment(black_box(s), v, &mut output);
            }
        })
    });
    group.finish();

    // The worker's per-segment step, without plugins and with the noop plugin.
    let mut group = c.benchmark_group("engine_step");
    group.throughput(Throughput::Elements(segs.len() as u64));
    group.bench_function("no_plugins", |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default());
            for s in &segs {
                engine.handle_segment(black_box(s));
            }
            engine.finish(tcpscope::tcp::CloseReason::EndOfInput);
            engine.output.flows.len()
        })
    });
    group.bench_function("noop_plugin", |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default());
            for s in &segs {
                let verdict = engine.handle_segment_verdict(black_box(s));
                plugins.after_segment(s, &verdict, &mut engine.output);
            }
            engine.finish(tcpscope::tcp::CloseReason::EndOfInput);
            plugins.catch_up_flows(&mut engine.output);
            plugins.flows_drained();
            engine.output.events.clear();
            engine.output.flows.len()
        })
    });
    group.finish();
    plugins.finish(&mut events);
}

criterion_group!(benches, bench_dispatch);
criterion_main!(benches);
