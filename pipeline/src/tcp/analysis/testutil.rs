//! Test helpers: a scripted two-sided flow fed straight into [`SequenceAnalysis`], with explicit
//! packet times in milliseconds.

use super::{AnalysisFlags, AnalysisLimits, PacketAnalysis, SequenceAnalysis};
use crate::decode::{Segment, TcpFlags, TcpOptions};
use crate::flow::Direction;
use crate::tcp::events::Event;
use crate::time::Timestamp;
use std::net::{IpAddr, Ipv4Addr};

/// A flow under test.
pub(crate) struct Flow {
    pub analysis: SequenceAnalysis,
    pub next: [u32; 2],
    pub packet: u64,
    pub events: Vec<Event>,
    pub limits: AnalysisLimits,
    pub last: PacketAnalysis,
}

/// One packet being built.
pub(crate) struct Pkt<'a> {
    flow: &'a mut Flow,
    dir: Direction,
    seg: Segment,
}

/// `flags` as letters: S, A, F, R, P, U.
pub(crate) fn flags_of(letters: &str) -> u16 {
    let mut f = 0;
    for c in letters.chars() {
        f |= match c {
            'S' => TcpFlags::SYN,
            'A' => TcpFlags::ACK,
            'F' => TcpFlags::FIN,
            'R' => TcpFlags::RST,
            'P' => TcpFlags::PSH,
            'U' => TcpFlags::URG,
            _ => 0,
        };
    }
    f
}

impl Flow {
    /// A flow with nothing seen yet; the client's next sequence is `client`, the server's `server`.
    pub fn new(client: u32, server: u32) -> Flow {
        Flow {
            analysis: SequenceAnalysis::new(),
            next: [client, server],
            packet: 0,
            events: Vec::new(),
            limits: AnalysisLimits::default(),
            last: PacketAnalysis::default(),
        }
    }

    /// SYN at 0 ms, SYN/ACK at 10 ms, ACK at 20 ms (iRTT 20 ms); `wscale` on both SYNs if given.
    pub fn handshake(client_isn: u32, server_isn: u32, wscale: Option<u8>) -> Flow {
        let mut f = Flow::new(client_isn, server_isn);
        let mut syn = f.c(0, 0, "S");
        syn.seg.options.window_scale = wscale;
        syn.seg.ack = 0;
        syn.go();
        let mut sa = f.s(10, 0, "SA");
        sa.seg.options.window_scale = wscale;
        sa.go();
        f.c(20, 0, "A").go();
        f
    }

    /// A flow picked up mid-stream (nothing sent yet).
    pub fn midstream(client: u32, server: u32) -> Flow {
        Flow::new(client, server)
    }

    fn pkt(&mut self, dir: Direction, t_ms: u64, len: u32, letters: &str) -> Pkt<'_> {
        let d = dir.index();
        let (src, dst) = if dir == Direction::Orig { ((198, 18, 0, 1), (198, 18, 0, 2)) } else { ((198, 18, 0, 2), (198, 18, 0, 1)) };
        let seg = Segment {
            ts: Timestamp(1_000_000_000_000 + t_ms * 1_000_000),
            packet_number: 0,
            source_index: 0,
            src_ip: IpAddr::V4(Ipv4Addr::new(src.0, src.1, src.2, src.3)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(dst.0, dst.1, dst.2, dst.3)),
            src_port: if dir == Direction::Orig { 40000 } else { 80 },
            dst_port: if dir == Direction::Orig { 80 } else { 40000 },
            seq: self.next[d],
            ack: self.next[1 - d],
            flags: TcpFlags(flags_of(letters)),
            window: 65535,
            payload_len: len,
            captured_payload_len: len,
            ip_payload_len: len,
            checksum: Default::default(),
            ip_len: 40 + len,
            ttl: 64,
            ip_id: 0,
            vlan: None,
            options: TcpOptions::default(),
        };
        Pkt { flow: self, dir, seg }
    }

    /// A client → server packet at the client's next sequence number, ACKing the server's.
    pub fn c(&mut self, t_ms: u64, len: u32, letters: &str) -> Pkt<'_> {
        self.pkt(Direction::Orig, t_ms, len, letters)
    }
    /// A server → client packet.
    pub fn s(&mut self, t_ms: u64, len: u32, letters: &str) -> Pkt<'_> {
        self.pkt(Direction::Resp, t_ms, len, letters)
    }
    /// A pure ACK from the server advertising `window` at 21 ms.
    pub fn s_window_only(&mut self, window: u16) {
        self.s(21, 0, "A").window(window).go();
    }
    /// Events of `kind` so far.
    pub fn count(&self, kind: crate::tcp::EventKind) -> usize {
        self.events.iter().filter(|e| e.is(kind)).count()
    }
}

impl Pkt<'_> {
    pub fn seq(mut self, seq: u32) -> Self {
        self.seg.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.seg.ack = ack;
        self
    }
    pub fn window(mut self, window: u16) -> Self {
        self.seg.window = window;
        self
    }
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        for &(l, r) in blocks.iter().take(4) {
            let i = self.seg.options.sack.count as usize;
            self.seg.options.sack.blocks[i] = (l, r);
            self.seg.options.sack.count += 1;
        }
        self
    }
    /// The segment as built (not sent).
    pub fn segment(self) -> Segment {
        self.seg
    }
    /// Sends the packet; the sender's next sequence number advances past it.
    pub fn go(self) -> AnalysisFlags {
        self.full().flags
    }
    /// Sends the packet and returns the whole analysis.
    pub fn full(mut self) -> PacketAnalysis {
        let flow = self.flow;
        flow.packet += 1;
        self.seg.packet_number = flow.packet;
        let d = self.dir.index();
        let end = self.seg.seq.wrapping_add(self.seg.seq_len());
        if crate::tcp::seq::seq_gt(end, flow.next[d]) {
            flow.next[d] = end;
        }
        let limits = flow.limits;
        let r = flow.analysis.on_segment(&self.seg, self.dir, 7, &limits, &mut flow.events);
        flow.last = r;
        r
    }
}
