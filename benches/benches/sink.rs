//! Parquet sink cost: flow and event rows → Arrow record batch → ZSTD Parquet into `io::sink()`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tcpscope::decode::{decode, LinkType};
use tcpscope::sink::schema::{events_batch, events_schema, flows_batch, flows_schema};
use tcpscope::tcp::{CloseReason, Engine, EngineConfig};
use tcpscope::testing::scenarios;

fn engine_output() -> (Vec<tcpscope::tcp::Event>, Vec<tcpscope::tcp::FlowRecord>) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut frames = scenarios::many_connections(8_192, 500);
    frames.extend(scenarios::sample());
    for (i, (ts, f)) in frames.iter().enumerate() {
        if let Ok(seg) = decode(LinkType::Ethernet, f, tcpscope::time::Timestamp(*ts), i as u64 + 1, 0) {
            engine.handle_segment(&seg);
        }
    }
    engine.finish(CloseReason::EndOfInput);
    let mut events = std::mem::take(&mut engine.output.events);
    // pad the events to a realistic batch size by repetition
    while !events.is_empty() && events.len() < 8_192 {
        let more = events.clone();
        events.extend(more);
    }
    (events, std::mem::take(&mut engine.output.flows))
}

fn props() -> WriterProperties {
    WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap())).build()
}

fn bench_sink(c: &mut Criterion) {
    let (events, flows) = engine_output();
    let sources = vec!["bench.pcap".to_owned()];
    let mut group = c.benchmark_group("sink");
    group.throughput(Throughput::Elements(flows.len() as u64));
    group.bench_function("flows_to_parquet", |b| {
        b.iter(|| {
            let batch = flows_batch(&flows, "bench", &sources).unwrap();
            let mut w = ArrowWriter::try_new(std::io::sink(), flows_schema(), Some(props())).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        })
    });
    if !events.is_empty() {
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function("events_to_parquet", |b| {
            b.iter(|| {
                let batch = events_batch(&events, "bench", &sources).unwrap();
                let mut w = ArrowWriter::try_new(std::io::sink(), events_schema(), Some(props())).unwrap();
                w.write(&batch).unwrap();
                w.close().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sink);
criterion_main!(benches);
