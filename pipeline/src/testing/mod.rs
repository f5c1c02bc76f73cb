//! Builds real TCP/IP frames and writes them as pcap or pcapng files: the project's own test-packet
//! builder, used by unit tests, end-to-end tests, benches and the shipped sample capture.

use crate::decode::TcpFlags;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// A TCP segment to serialise. Defaults: ACK-less, window 65535, no options, TTL 64.
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u16,
    window: u16,
    ttl: u8,
    ip_id: u16,
    options: Vec<u8>,
    payload: Vec<u8>,
    vlan: Option<u16>,
}

impl PacketBuilder {
    /// A segment between two `ip:port` endpoints (IPv4 or bracketed IPv6).
    ///
    /// # Panics
    /// Panics when an endpoint is not a socket address literal (test input only).
    pub fn new(src: &str, dst: &str) -> Self {
        PacketBuilder {
            src: src.parse().expect("source endpoint literal"),
            dst: dst.parse().expect("destination endpoint literal"),
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65535,
            ttl: 64,
            ip_id: 0,
            options: Vec::new(),
            payload: Vec::new(),
            vlan: None,
        }
    }
    /// Same as [`PacketBuilder::new`]; reads better for IPv4.
    pub fn v4(src: &str, dst: &str) -> Self {
        Self::new(src, dst)
    }
    /// Same as [`PacketBuilder::new`]; reads better for IPv6.
    pub fn v6(src: &str, dst: &str) -> Self {
        Self::new(src, dst)
    }
    /// From socket addresses.
    pub fn between(src: SocketAddr, dst: SocketAddr) -> Self {
        let mut b = Self::new("0.0.0.0:0", "0.0.0.0:0");
        b.src = src;
        b.dst = dst;
        b
    }
    /// Sets the flags (e.g. `TcpFlags::SYN | TcpFlags::ACK`).
    pub fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }
    /// Sets the sequence number.
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    /// Sets the acknowledgement number (and the ACK flag).
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self.flags |= TcpFlags::ACK;
        self
    }
    /// Sets the raw window.
    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }
    /// Sets the IP TTL / hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    /// Sets the IPv4 identification.
    pub fn ip_id(mut self, id: u16) -> Self {
        self.ip_id = id;
        self
    }
    /// Sets the payload.
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }
    /// Sets a payload of `len` bytes.
    pub fn payload_len(mut self, len: usize) -> Self {
        self.payload = vec![0x61; len];
        self
    }
    /// Adds an 802.1Q tag.
    pub fn vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }
    /// Adds an MSS option.
    pub fn mss(mut self, mss: u16) -> Self {
        self.options.extend_from_slice(&[2, 4]);
        self.options.extend_from_slice(&mss.to_be_bytes());
        self
    }
    /// Adds a window scale option.
    pub fn wscale(mut self, shift: u8) -> Self {
        self.options.extend_from_slice(&[1, 3, 3, shift]);
        self
    }
    /// Adds SACK permitted.
    pub fn sack_permitted(mut self) -> Self {
        self.options.extend_from_slice(&[1, 1, 4, 2]);
        self
    }
    /// Adds SACK blocks.
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        self.options.extend_from_slice(&[1, 1, 5, 2 + 8 * blocks.len() as u8]);
        for (l, r) in blocks {
            self.options.extend_from_slice(&l.to_be_bytes());
            self.options.extend_from_slice(&r.to_be_bytes());
        }
        self
    }
    /// Adds a timestamps option.
    pub fn timestamps(mut self, tsval: u32, tsecr: u32) -> Self {
        self.options.extend_from_slice(&[1, 1, 8, 10]);
        self.options.extend_from_slice(&tsval.to_be_bytes());
        self.options.extend_from_slice(&tsecr.to_be_bytes());
        self
    }

    fn tcp_bytes(&self) -> Vec<u8> {
        let mut options = self.options.clone();
        while !options.len().is_multiple_of(4) {
            options.push(0);
        }
        let header_len = 20 + options.len();
        let mut tcp = Vec::with_capacity(header_len + self.payload.len());
        tcp.extend_from_slice(&self.src.port().to_be_bytes());
        tcp.extend_from_slice(&self.dst.port().to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        let offset_flags = ((header_len as u16 / 4) << 12) | (self.flags & 0x0FFF);
        tcp.extend_from_slice(&offset_flags.to_be_bytes());
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum (filled below), urgent pointer
        tcp.extend_from_slice(&options);
        tcp.extend_from_slice(&self.payload);
        let checksum = self.tcp_checksum(&tcp);
        tcp[16..18].copy_from_slice(&checksum.to_be_bytes());
        tcp
    }

    fn tcp_checksum(&self, tcp: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut add = |bytes: &[u8]| {
            for chunk in bytes.chunks(2) {
                let word = if chunk.len() == 2 {
                    u16::from_be_bytes([chunk[0], chunk[1]])
                } else {
                    u16::from_be_bytes([chunk[0], 0])
                };
                sum = sum.wrapping_add(word as u32);
            }
        };
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                add(&s.octets());
                add(&d.octets());
                add(&[0, 6]);
                add(&(tcp.len() as u16).to_be_bytes());
            }
            (s, d) => {
                add(&to_v6(s).octets());
                add(&to_v6(d).octets());
                add(&(tcp.len() as u32).to_be_bytes());
                add(&[0, 0, 0, 6]);
            }
        }
        add(tcp);
        while sum >> 16 != 0 {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The IP packet (IPv4 or IPv6 header + TCP).
    pub fn ip(&self) -> Vec<u8> {
        let tcp = self.tcp_bytes();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = (20 + tcp.len()) as u16;
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&self.ip_id.to_be_bytes());
                ip.extend_from_slice(&[0x40, 0, self.ttl, 6, 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let mut sum: u32 = ip.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
                while sum >> 16 != 0 {
                    sum = (sum & 0xFFFF) + (sum >> 16);
                }
                ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
                ip.extend_from_slice(&tcp);
                ip
            }
            (s, d) => {
                let mut ip = vec![0x60, 0, 0, 0];
                ip.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                ip.extend_from_slice(&[6, self.ttl]);
                ip.extend_from_slice(&to_v6(s).octets());
                ip.extend_from_slice(&to_v6(d).octets());
                ip.extend_from_slice(&tcp);
                ip
            }
        }
    }

    fn ether_type(&self) -> [u8; 2] {
        if self.src.is_ipv4() {
            [0x08, 0x00]
        } else {
            [0x86, 0xDD]
        }
    }

    /// An Ethernet II frame (with the VLAN tag, if any).
    pub fn ethernet(&self) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        if let Some(vlan) = self.vlan {
            frame.extend_from_slice(&[0x81, 0x00]);
            frame.extend_from_slice(&(vlan & 0x0FFF).to_be_bytes());
        }
        frame.extend_from_slice(&self.ether_type());
        frame.extend_from_slice(&self.ip());
        frame
    }
    /// A Linux cooked (SLL) frame.
    pub fn linux_sll(&self) -> Vec<u8> {
        let mut frame = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        frame.extend_from_slice(&self.ether_type());
        frame.extend_from_slice(&self.ip());
        frame
    }
    /// A Linux cooked v2 (SLL2) frame.
    pub fn linux_sll2(&self) -> Vec<u8> {
        let mut frame = self.ether_type().to_vec();
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        frame.extend_from_slice(&self.ip());
        frame
    }
    /// A BSD loopback (NULL) frame, family in little-endian host order.
    pub fn null_loopback(&self) -> Vec<u8> {
        let family: u32 = if self.src.is_ipv4() { 2 } else { 30 };
        let mut frame = family.to_le_bytes().to_vec();
        frame.extend_from_slice(&self.ip());
        frame
    }
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}

/// Writes a classic pcap file (little-endian, microsecond or nanosecond resolution).
pub struct PcapWriter<W: Write> {
    out: W,
    nanosecond: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header. `linktype` is a LINKTYPE_ number (1 = Ethernet).
    pub fn new(mut out: W, linktype: u32, nanosecond: bool) -> io::Result<Self> {
        let magic: u32 = if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        out.write_all(&magic.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { out, nanosecond })
    }
    /// Writes one record with timestamp `ts_ns` (nanoseconds since the epoch).
    pub fn write_packet(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        self.write_packet_with_wire_len(ts_ns, frame, frame.len() as u32)
    }
    /// Writes one record whose original length differs from the captured bytes.
    pub fn write_packet_with_wire_len(&mut self, ts_ns: u64, frame: &[u8], wire_len: u32) -> io::Result<()> {
        let secs = (ts_ns / 1_000_000_000) as u32;
        let frac = if self.nanosecond {
            (ts_ns % 1_000_000_000) as u32
        } else {
            ((ts_ns % 1_000_000_000) / 1_000) as u32
        };
        self.out.write_all(&secs.to_le_bytes())?;
        self.out.write_all(&frac.to_le_bytes())?;
        self.out.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.out.write_all(&wire_len.to_le_bytes())?;
        self.out.write_all(frame)
    }
    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a pcapng file with one section and one interface per call to [`PcapNgWriter::add_interface`].
pub struct PcapNgWriter<W: Write> {
    out: W,
    resolutions: Vec<u8>,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the section header block.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut body = Vec::new();
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        write_block(&mut out, 0x0A0D_0D0A, &body)?;
        Ok(PcapNgWriter { out, resolutions: Vec::new() })
    }
    /// Adds an interface; `tsresol` is the pcapng `if_tsresol` byte (6 = µs, 9 = ns). Returns its id.
    pub fn add_interface(&mut self, linktype: u16, tsresol: u8) -> io::Result<u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&linktype.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&262_144u32.to_le_bytes());
        // if_tsresol option (code 9, length 1) + padding, then opt_endofopt.
        body.extend_from_slice(&9u16.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&[tsresol, 0, 0, 0]);
        body.extend_from_slice(&[0, 0, 0, 0]);
        write_block(&mut self.out, 1, &body)?;
        self.resolutions.push(tsresol);
        Ok(self.resolutions.len() as u32 - 1)
    }
    /// Writes an enhanced packet block on interface `if_id`.
    pub fn write_packet(&mut self, if_id: u32, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let resol = self.resolutions.get(if_id as usize).copied().unwrap_or(6);
        let units = if resol & 0x80 != 0 {
            // binary resolution 2^-n
            ((ts_ns as u128) << (resol & 0x7F)) / 1_000_000_000
        } else {
            let per_sec = 10u128.pow(resol as u32);
            (ts_ns as u128) * per_sec / 1_000_000_000
        } as u64;
        let mut body = Vec::new();
        body.extend_from_slice(&if_id.to_le_bytes());
        body.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(units as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(frame);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        write_block(&mut self.out, 6, &body)
    }
    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_block<W: Write>(out: &mut W, block_type: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    out.write_all(&block_type.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// A scripted TCP conversation between a client and a server, producing Ethernet frames with
/// explicit timestamps. Sequence numbers follow the bytes sent; ACKs follow the bytes received.
#[derive(Clone, Debug)]
pub struct Conversation {
    client: SocketAddr,
    server: SocketAddr,
    client_next: u32,
    server_next: u32,
    /// Frames produced so far: (timestamp ns, Ethernet frame).
    pub frames: Vec<(u64, Vec<u8>)>,
}

impl Conversation {
    /// A conversation with the given initial sequence numbers.
    pub fn new(client: &str, server: &str, client_isn: u32, server_isn: u32) -> Self {
        Conversation {
            client: client.parse().expect("client endpoint literal"),
            server: server.parse().expect("server endpoint literal"),
            client_next: client_isn,
            server_next: server_isn,
            frames: Vec::new(),
        }
    }
    /// A builder for a client → server segment at the client's current sequence number.
    pub fn from_client(&self) -> PacketBuilder {
        PacketBuilder::between(self.client, self.server).seq(self.client_next).ack(self.server_next)
    }
    /// A builder for a server → client segment at the server's current sequence number.
    pub fn from_server(&self) -> PacketBuilder {
        PacketBuilder::between(self.server, self.client).seq(self.server_next).ack(self.client_next)
    }
    /// Appends a frame as built.
    pub fn push(&mut self, ts_ns: u64, packet: PacketBuilder) -> &mut Self {
        self.frames.push((ts_ns, packet.ethernet()));
        self
    }
    /// SYN, SYN/ACK, ACK at `t`, `t + rtt`, `t + rtt + 1 µs`.
    pub fn handshake(&mut self, t: u64, rtt: u64) -> &mut Self {
        let syn = PacketBuilder::between(self.client, self.server)
            .seq(self.client_next)
            .flags(TcpFlags::SYN)
            .mss(1460)
            .wscale(7)
            .sack_permitted();
        self.frames.push((t, syn.ethernet()));
        self.client_next = self.client_next.wrapping_add(1);
        let synack = PacketBuilder::between(self.server, self.client)
            .seq(self.server_next)
            .flags(TcpFlags::SYN)
            .ack(self.client_next)
            .mss(1460)
            .wscale(7)
            .sack_permitted();
        self.frames.push((t + rtt, synack.ethernet()));
        self.server_next = self.server_next.wrapping_add(1);
        let ack = self.from_client().window(512);
        self.frames.push((t + rtt + 1_000, ack.ethernet()));
        self
    }
    /// Client sends `len` bytes at `t`.
    pub fn client_data(&mut self, t: u64, len: usize) -> &mut Self {
        let p = self.from_client().flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(len).window(512);
        self.frames.push((t, p.ethernet()));
        self.client_next = self.client_next.wrapping_add(len as u32);
        self
    }
    /// Server sends `len` bytes at `t`.
    pub fn server_data(&mut self, t: u64, len: usize) -> &mut Self {
        let p = self.from_server().flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(len).window(512);
        self.frames.push((t, p.ethernet()));
        self.server_next = self.server_next.wrapping_add(len as u32);
        self
    }
    /// Client acknowledges everything received, at `t`.
    pub fn client_ack(&mut self, t: u64) -> &mut Self {
        let p = self.from_client().flags(TcpFlags::ACK).window(512);
        self.frames.push((t, p.ethernet()));
        self
    }
    /// Server acknowledges everything received, at `t`.
    pub fn server_ack(&mut self, t: u64) -> &mut Self {
        let p = self.from_server().flags(TcpFlags::ACK).window(512);
        self.frames.push((t, p.ethernet()));
        self
    }
    /// Client FIN at `t`, server FIN/ACK at `t + rtt`, client ACK right after.
    pub fn close(&mut self, t: u64, rtt: u64) -> &mut Self {
        let fin = self.from_client().flags(TcpFlags::ACK | TcpFlags::FIN).window(512);
        self.frames.push((t, fin.ethernet()));
        self.client_next = self.client_next.wrapping_add(1);
        let fin2 = self.from_server().flags(TcpFlags::ACK | TcpFlags::FIN).window(512);
        self.frames.push((t + rtt, fin2.ethernet()));
        self.server_next = self.server_next.wrapping_add(1);
        let ack = self.from_client().flags(TcpFlags::ACK).window(512);
        self.frames.push((t + rtt + 1_000, ack.ethernet()));
        self
    }
    /// Server answers with RST at `t`.
    pub fn server_reset(&mut self, t: u64) -> &mut Self {
        let rst = self.from_server().flags(TcpFlags::RST | TcpFlags::ACK).window(0);
        self.frames.push((t, rst.ethernet()));
        self
    }
    /// The client's next sequence number.
    pub fn client_next(&self) -> u32 {
        self.client_next
    }
    /// The server's next sequence number.
    pub fn server_next(&self) -> u32 {
        self.server_next
    }
}

/// A seeded xorshift64 generator: the same numbers on every run, for tests and benches that need
/// varied but reproducible input. `seed` must not be 0.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Writes `(ts_ns, frame)` pairs, sorted by time (stable), as an Ethernet pcap.
pub fn write_ethernet_pcap(path: &std::path::Path, frames: &[(u64, Vec<u8>)]) -> io::Result<()> {
    let mut sorted: Vec<&(u64, Vec<u8>)> = frames.iter().collect();
    sorted.sort_by_key(|(t, _)| *t);
    let file = io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::new(file, 1, false)?;
    for (t, f) in sorted {
        w.write_packet(*t, f)?;
    }
    w.into_inner()?.flush()
}

pub mod scenarios;
