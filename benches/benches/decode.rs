//! Decoding throughput: Ethernet/IPv4/TCP frames with options → `Segment`, in packets/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tcpscope::decode::{decode, LinkType};
use tcpscope::testing::scenarios;
use tcpscope::time::Timestamp;

fn bench_decode(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = scenarios::many_connections(200, 50).into_iter().map(|(_, f)| f).collect();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("ethernet_ipv4_tcp", |b| {
        b.iter(|| {
            let mut ok = 0u64;
            for (i, f) in frames.iter().enumerate() {
                if decode(LinkType::Ethernet, black_box(f), Timestamp(i as u64), i as u64 + 1, 0).is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
