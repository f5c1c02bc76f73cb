//! The whole offline pipeline (read, decode, dispatch, engine, Parquet) on a generated capture,
//! in packets/s, with 1 and 2 workers.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tcpscope::pipeline::{analyze, AnalyzeConfig, NoProgress};
use tcpscope::tcp::EngineConfig;
use tcpscope::testing::{scenarios, write_ethernet_pcap};

fn bench_pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bench.pcap");
    let frames = scenarios::many_connections(10_000, 1_000);
    let packets = frames.len() as u64;
    write_ethernet_pcap(&input, &frames).unwrap();
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(packets));
    for workers in [1usize, 2] {
        group.bench_function(format!("analyze_{workers}_workers"), |b| {
            let mut run = 0u32;
            b.iter(|| {
                run += 1;
                let config = AnalyzeConfig {
                    inputs: vec![input.clone()],
                    out_dir: dir.path().join(format!("out-{workers}-{run}")),
                    workers,
                    sensor: "bench".into(),
                    engine: EngineConfig::default(),
                    pin_workers: false,
                    run_tag: format!("{run}"),
                };
                let report = analyze(&config, &mut NoProgress).unwrap();
                assert_eq!(report.read.packets, packets);
                let _ = std::fs::remove_dir_all(&config.out_dir);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
