//! Deterministic traffic scenarios built with [`Conversation`]: the shipped sample capture, the
//! many-connections benchmark capture, and test inputs. Addresses are from 198.18.0.0/15 and
//! fd00:198:18::/64 (benchmarking ranges), timestamps are explicit.

use super::{Conversation, PacketBuilder};
use crate::decode::TcpFlags;

/// 2026-11-01T12:00:00Z in nanoseconds.
pub const SAMPLE_START_NS: u64 = 1_793_534_400 * 1_000_000_000;
const MS: u64 = 1_000_000;

/// A clean request/response exchange: handshake, request, response in `response_segments`
/// segments of 1448 bytes, ACKs, FIN close. Returns the frames.
pub fn clean_exchange(client: &str, server: &str, t0: u64, rtt: u64, response_segments: usize) -> Vec<(u64, Vec<u8>)> {
    let mut c = Conversation::new(client, server, 1_000_000 + (t0 / MS) as u32, 2_000_000 + (t0 / 7) as u32);
    c.handshake(t0, rtt);
    let mut t = t0 + rtt + 2 * MS;
    c.client_data(t, 320);
    t += rtt;
    c.server_ack(t);
    for _ in 0..response_segments {
        t += MS / 10;
        c.server_data(t, 1448);
    }
    t += rtt;
    c.client_ack(t);
    t += 5 * MS;
    c.close(t, rtt);
    c.frames
}

/// The sample capture shipped in `samples/sample.pcap`: clean HTTP-like exchanges over IPv4 and
/// IPv6, a refused connection (two SYNs, then RST), an unanswered SYN with back-off, a
/// timeout retransmission, a lost segment, duplicate ACKs with a fast retransmission, a zero
/// window that stalls and opens again, a reset of an established connection, and a flow that
/// starts mid-stream.
pub fn sample() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    let t0 = SAMPLE_START_NS;
    // 1. Clean exchanges.
    for i in 0..24u64 {
        let client = format!("198.18.0.{}:{}", 10 + i % 5, 40_000 + i);
        frames.extend(clean_exchange(&client, "198.18.1.1:80", t0 + i * 250 * MS, 12 * MS, 1 + (i as usize % 6)));
    }
    for i in 0..4u64 {
        let client = format!("[fd00:198:18::10]:{}", 50_000 + i);
        frames.extend(clean_exchange(&client, "[fd00:198:18::1]:443", t0 + 300 * MS + i * 400 * MS, 8 * MS, 3));
    }
    // 2. Refused: two SYNs one second apart, then RST/ACK.
    {
        let syn = PacketBuilder::v4("198.18.0.20:41000", "198.18.1.2:8080").flags(TcpFlags::SYN).seq(7_000).mss(1460);
        frames.push((t0 + 1_000 * MS, syn.ethernet()));
        frames.push((t0 + 2_000 * MS, syn.ethernet()));
        let rst = PacketBuilder::v4("198.18.1.2:8080", "198.18.0.20:41000").flags(TcpFlags::RST).ack(7_001).window(0);
        frames.push((t0 + 2_000 * MS + 300_000, rst.ethernet()));
    }
    // 3. Unanswered SYN with exponential back-off: 0, 1, 3, 7 s.
    {
        let syn = PacketBuilder::v4("198.18.0.21:41001", "198.18.1.3:22").flags(TcpFlags::SYN).seq(9_000).mss(1460);
        for dt in [0u64, 1_000, 3_000, 7_000] {
            frames.push((t0 + 500 * MS + dt * MS, syn.ethernet()));
        }
    }
    // 4. Timeout retransmission: a server segment retransmitted 300 ms later, before any ACK.
    {
        let mut c = Conversation::new("198.18.0.22:41002", "198.18.1.1:80", 100_000, 200_000);
        c.handshake(t0 + 3_000 * MS, 10 * MS);
        c.client_data(t0 + 3_020 * MS, 200);
        let seg = c.from_server().flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(1000).window(512);
        c.push(t0 + 3_030 * MS, seg.clone());
        c.push(t0 + 3_330 * MS, seg);
        c.server_data(t0 + 3_030 * MS, 0); // advance the server's sequence bookkeeping (no frame kept)
        c.frames.pop();
        let mut after = Conversation::new("198.18.0.22:41002", "198.18.1.1:80", c.client_next(), c.server_next() + 1000);
        after.client_ack(t0 + 3_345 * MS);
        after.close(t0 + 3_400 * MS, 10 * MS);
        frames.extend(c.frames);
        frames.extend(after.frames);
    }
    // 5. Lost segment, duplicate ACKs and a fast retransmission.
    {
        let mut c = Conversation::new("198.18.0.23:41003", "198.18.1.1:80", 300_000, 400_000);
        c.handshake(t0 + 4_000 * MS, 10 * MS);
        c.client_data(t0 + 4_020 * MS, 100);
        let base = c.server_next();
        let seg = |k: u32| {
            PacketBuilder::v4("198.18.1.1:80", "198.18.0.23:41003")
                .seq(base + k * 1448)
                .ack(c.client_next())
                .flags(TcpFlags::ACK)
                .payload_len(1448)
                .window(512)
        };
        let ack = |a: u32| {
            PacketBuilder::v4("198.18.0.23:41003", "198.18.1.1:80").seq(c.client_next()).ack(a).window(512)
        };
        frames.extend(c.frames.clone());
        frames.push((t0 + 4_030 * MS, seg(0).ethernet()));
        // segment 1 is lost before the capture point
        for k in 2..6u32 {
            frames.push((t0 + 4_030 * MS + k as u64 * 100_000, seg(k).ethernet()));
        }
        frames.push((t0 + 4_040 * MS, ack(base + 1448).ethernet()));
        for k in 0..3u64 {
            frames.push((t0 + 4_041 * MS + k * 200_000, ack(base + 1448).ethernet()));
        }
        frames.push((t0 + 4_042 * MS, seg(1).ethernet()));
        frames.push((t0 + 4_055 * MS, ack(base + 6 * 1448).ethernet()));
        let mut after = Conversation::new("198.18.0.23:41003", "198.18.1.1:80", c.client_next(), base + 6 * 1448);
        after.close(t0 + 4_100 * MS, 10 * MS);
        frames.extend(after.frames);
    }
    // 6. Zero window: the client stops reading; the server probes; the window opens 2.5 s later.
    {
        let mut c = Conversation::new("198.18.0.24:41004", "198.18.1.1:80", 500_000, 600_000);
        c.handshake(t0 + 5_000 * MS, 10 * MS);
        c.client_data(t0 + 5_020 * MS, 100);
        c.server_data(t0 + 5_030 * MS, 1448);
        let zero = c.from_client().flags(TcpFlags::ACK).window(0);
        c.push(t0 + 5_040 * MS, zero.clone());
        for k in 0..3u64 {
            let probe = c.from_server().seq(c.server_next() - 1).flags(TcpFlags::ACK).window(512);
            c.push(t0 + 5_300 * MS + k * 600 * MS, probe);
            c.push(t0 + 5_301 * MS + k * 600 * MS, zero.clone());
        }
        let open = c.from_client().flags(TcpFlags::ACK).window(512);
        c.push(t0 + 7_540 * MS, open);
        c.server_data(t0 + 7_550 * MS, 1448);
        c.client_ack(t0 + 7_560 * MS);
        c.close(t0 + 7_600 * MS, 10 * MS);
        frames.extend(c.frames);
    }
    // 7. Reset of an established connection by the server, with data unacknowledged.
    {
        let mut c = Conversation::new("198.18.0.25:41005", "198.18.1.4:5432", 700_000, 800_000);
        c.handshake(t0 + 6_000 * MS, 5 * MS);
        c.client_data(t0 + 6_010 * MS, 500);
        c.server_reset(t0 + 6_020 * MS);
        frames.extend(c.frames);
    }
    // 8. Mid-stream: the capture starts inside an established transfer.
    {
        let mut c = Conversation::new("198.18.0.26:41006", "198.18.1.5:873", 900_000, 950_000);
        for k in 0..4u64 {
            c.server_data(t0 + 6_500 * MS + k * MS, 1448);
        }
        c.client_ack(t0 + 6_510 * MS);
        c.close(t0 + 6_600 * MS, 3 * MS);
        frames.extend(c.frames);
    }
    frames.sort_by_key(|(t, _)| *t);
    frames
}

/// Many short connections (handshake, small request and response, close), `connections` in all,
/// `concurrent` overlapping at a time, on distinct client ports across several client addresses.
pub fn many_connections(connections: usize, concurrent: usize) -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::with_capacity(connections * 10);
    let concurrent = concurrent.max(1) as u64;
    for i in 0..connections as u64 {
        let client = format!("198.18.{}.{}:{}", 2 + (i / 60_000) % 200, 1 + (i / 600) % 100, 1024 + i % 600);
        let server = format!("198.19.0.{}:{}", 1 + i % 50, 80 + (i % 3) * 363);
        let t = SAMPLE_START_NS + (i / concurrent) * 20 * MS + (i % concurrent) * 13_000;
        frames.extend(clean_exchange(&client, &server, t, 2 * MS, 1));
    }
    frames.sort_by_key(|(t, _)| *t);
    frames
}

/// `connections` established connections that stay open and idle: a three-way handshake each,
/// 10 µs apart, never closed. Written straight to `out` (a million flows would not fit in a Vec
/// of frames comfortably). For measuring what an idle flow costs.
pub fn write_established(out: &std::path::Path, connections: u32) -> std::io::Result<()> {
    use std::io::Write;
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut w = super::PcapWriter::new(file, 1, false)?;
    for i in 0..connections {
        let client = std::net::SocketAddr::from(([198, 18 + (i >> 24) as u8 % 2, (i >> 16) as u8, (i >> 8) as u8], 1024 + (i & 0xFF) as u16));
        let server = std::net::SocketAddr::from(([198, 19, 0, 1], 443));
        let t = SAMPLE_START_NS + i as u64 * 10_000;
        let syn = PacketBuilder::between(client, server).flags(TcpFlags::SYN).seq(i).mss(1460).wscale(7).sack_permitted();
        let synack = PacketBuilder::between(server, client).flags(TcpFlags::SYN).seq(!i).ack(i.wrapping_add(1)).mss(1460).wscale(7).sack_permitted();
        let ack = PacketBuilder::between(client, server).seq(i.wrapping_add(1)).ack((!i).wrapping_add(1)).window(512);
        w.write_packet(t, &syn.ethernet())?;
        w.write_packet(t + 2_000, &synack.ethernet())?;
        w.write_packet(t + 4_000, &ack.ethernet())?;
    }
    w.into_inner()?.flush()
}
