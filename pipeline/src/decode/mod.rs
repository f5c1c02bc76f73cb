//! Bytes of one captured frame → one compact [`Segment`] record; never panics, counts what it skips.
//!
//! Link layers: Ethernet (with 802.1Q / QinQ tags), Linux cooked SLL and SLL2, raw IPv4/IPv6,
//! BSD loopback (NULL and LOOP). Network: IPv4 (fragments counted and skipped) and IPv6
//! (extension headers skipped). Transport: TCP with its options parsed. The TCP payload length
//! comes from the IP length, not from the captured length, so snaplen-truncated frames keep their
//! true sequence space (as Wireshark's `tcp.len`).

mod options;

pub use options::{parse_tcp_options, SackBlocks, TcpOptions};

use crate::time::Timestamp;
use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::IpAddr;

/// The link-layer header type of a capture, as in the tcpdump.org LINKTYPE_ registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// LINKTYPE_RAW (101) and DLT_RAW (12, 14): an IPv4 or IPv6 packet.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_NULL (0): a 4-byte address family in host byte order.
    Null,
    /// LINKTYPE_LOOP (108): a 4-byte address family in network byte order.
    Loop,
    /// LINKTYPE_NFLOG (239): Linux netfilter log messages carrying the IP packet in a TLV.
    Nflog,
}

impl LinkType {
    /// Maps a LINKTYPE_ number; `None` for a link type tcpscope cannot decode.
    pub fn from_linktype(value: i32) -> Option<LinkType> {
        Some(match value {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            239 => LinkType::Nflog,
            _ => return None,
        })
    }
}

/// TCP header flags, as the 12 low bits of the data-offset/flags word (0x100 = AE, 0xE00 reserved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
    /// ECE.
    pub const ECE: u16 = 0x040;
    /// CWR.
    pub const CWR: u16 = 0x080;
    /// AE (formerly NS).
    pub const AE: u16 = 0x100;

    /// Whether every bit of `mask` is set.
    #[inline]
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
    /// Whether any bit of `mask` is set.
    #[inline]
    pub fn any(self, mask: u16) -> bool {
        self.0 & mask != 0
    }
    /// SYN set.
    #[inline]
    pub fn syn(self) -> bool {
        self.any(Self::SYN)
    }
    /// ACK set.
    #[inline]
    pub fn ack(self) -> bool {
        self.any(Self::ACK)
    }
    /// FIN set.
    #[inline]
    pub fn fin(self) -> bool {
        self.any(Self::FIN)
    }
    /// RST set.
    #[inline]
    pub fn rst(self) -> bool {
        self.any(Self::RST)
    }
    /// A SYN without ACK.
    #[inline]
    pub fn pure_syn(self) -> bool {
        self.syn() && !self.ack()
    }
    /// SYN and ACK together.
    #[inline]
    pub fn syn_ack(self) -> bool {
        self.syn() && self.ack()
    }
    /// Renders the flags as tcpdump letters, e.g. `S.` for SYN/ACK.
    pub fn letters(self) -> String {
        let mut s = String::new();
        for (bit, c) in [
            (Self::FIN, 'F'),
            (Self::SYN, 'S'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
            (Self::AE, 'e'),
            (Self::ACK, '.'),
        ] {
            if self.any(bit) {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

/// Whether the TCP checksum was checked, and its verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// Not checked (the default, as tshark and `zeek -C`: offloading NICs leave outgoing
    /// checksums unset in captures), or the segment is not captured whole.
    #[default]
    Unverified,
    /// Checked and right.
    Good,
    /// Checked and wrong: the engine marks it (Zeek's `C`) and otherwise ignores the packet.
    Bad,
}

/// One TCP segment as the engine sees it: compact, `Copy`, decoded once on the reader thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Capture time.
    pub ts: Timestamp,
    /// 1-based index of the frame in its source (Wireshark's `frame.number`).
    pub packet_number: u64,
    /// Index of the input (file or interface) in the run's source list.
    pub source_index: u32,
    /// Sender address.
    pub src_ip: IpAddr,
    /// Receiver address.
    pub dst_ip: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver port.
    pub dst_port: u16,
    /// Raw sequence number.
    pub seq: u32,
    /// Raw acknowledgement number (meaningful only with ACK set).
    pub ack: u32,
    /// TCP flags.
    pub flags: TcpFlags,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// TCP payload length from the IP length (true length, even when the capture is truncated).
    pub payload_len: u32,
    /// Bytes of payload actually captured (≤ `payload_len`).
    pub captured_payload_len: u32,
    /// TCP payload length as the IP header alone claims it, before the enclosing layers' bounds
    /// (PPPoE length, wire length): what Zeek counts, e.g. Ethernet padding inside an overlong
    /// IPv4 total length. Equal to `payload_len` on every well-formed packet.
    pub ip_payload_len: u32,
    /// TCP checksum verdict (`Unverified` unless the decoder was asked to check).
    pub checksum: ChecksumStatus,
    /// IP total length (IPv4 total length, or IPv6 40 + payload length), Zeek's `ip_bytes`.
    pub ip_len: u32,
    /// IP TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// Outer VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// TCP options that matter to the analysis.
    pub options: TcpOptions,
}

impl Segment {
    /// Sequence space this segment occupies: payload plus one for SYN and one for FIN.
    #[inline]
    pub fn seq_len(&self) -> u32 {
        self.payload_len
            .wrapping_add(self.flags.syn() as u32)
            .wrapping_add(self.flags.fin() as u32)
    }

    /// The IP version, 4 or 6.
    pub fn ip_version(&self) -> u8 {
        if self.src_ip.is_ipv4() {
            4
        } else {
            6
        }
    }
}

/// Why a frame produced no segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A valid frame that carries something other than TCP (ARP, UDP, ICMP, …).
    NotTcp,
    /// An IPv4 or IPv6 fragment (counted; not reassembled).
    Fragment,
    /// The frame is cut before the TCP header ends, or its headers are malformed.
    Undecodable,
}

/// Decodes one frame whose length on the wire is unknown (or equal to the captured bytes).
/// `packet_number` and `ts` are copied into the record.
pub fn decode(
    link: LinkType,
    data: &[u8],
    ts: Timestamp,
    packet_number: u64,
    source_index: u32,
) -> Result<Segment, Skip> {
    decode_frame(link, data, 0, ts, packet_number, source_index)
}

/// Decodes one frame of `wire_len` bytes on the wire (0: unknown). The TCP payload length is the
/// IP length bounded by every enclosing layer, as tshark's `tcp.len`: the PPPoE length, and the
/// wire length when a capture says the frame was shorter than its IP header claims.
pub fn decode_frame(
    link: LinkType,
    data: &[u8],
    wire_len: u32,
    ts: Timestamp,
    packet_number: u64,
    source_index: u32,
) -> Result<Segment, Skip> {
    decode_frame_checked(link, data, wire_len, ts, packet_number, source_index, false)
}

/// [`decode_frame`], verifying the TCP checksum of segments captured whole when
/// `verify_checksum` is set (`--verify-checksums`).
pub fn decode_frame_checked(
    link: LinkType,
    data: &[u8],
    wire_len: u32,
    ts: Timestamp,
    packet_number: u64,
    source_index: u32,
    verify_checksum: bool,
) -> Result<Segment, Skip> {
    let mut bound = Bound { frame_start: data.as_ptr() as usize, wire_len, ip_len_limit: u32::MAX, verify_checksum };
    if (wire_len as usize) < data.len() {
        bound.wire_len = 0; // a record claiming fewer bytes on the wire than it holds: ignore the claim
    }
    let sliced = match link {
        LinkType::Ethernet => {
            let sliced = LaxSlicedPacket::from_ethernet(data).map_err(|_| Skip::Undecodable)?;
            if sliced.net.is_none() {
                if let Some((ether_type, inner, vlan, limit)) = ip_behind_pppoe_or_mpls(data) {
                    bound.ip_len_limit = limit;
                    let inner = LaxSlicedPacket::from_ether_type(ether_type, inner);
                    let mut seg = segment_from_sliced(&inner, bound, ts, packet_number, source_index)?;
                    seg.vlan = seg.vlan.or(vlan);
                    return Ok(seg);
                }
            }
            sliced
        }
        LinkType::LinuxSll => {
            // 16-byte header; protocol type at offset 14 (big-endian), ARPHRD type at offset 2.
            if data.len() < 16 {
                return Err(Skip::Undecodable);
            }
            let proto = u16::from_be_bytes([data[14], data[15]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[16..])
        }
        LinkType::LinuxSll2 => {
            // 20-byte header; protocol type at offset 0 (big-endian).
            if data.len() < 20 {
                return Err(Skip::Undecodable);
            }
            let proto = u16::from_be_bytes([data[0], data[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[20..])
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {
            LaxSlicedPacket::from_ip(data).map_err(|_| Skip::Undecodable)?
        }
        LinkType::Null | LinkType::Loop => {
            if data.len() < 4 {
                return Err(Skip::Undecodable);
            }
            let family = if link == LinkType::Null {
                // Host byte order of the capturing machine: accept either.
                let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                le.min(be)
            } else {
                u32::from_be_bytes([data[0], data[1], data[2], data[3]])
            };
            match family {
                2 => LaxSlicedPacket::from_ether_type(EtherType::IPV4, &data[4..]),
                // AF_INET6 differs by OS: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS.
                10 | 24 | 28 | 30 => LaxSlicedPacket::from_ether_type(EtherType::IPV6, &data[4..]),
                _ => return Err(Skip::NotTcp),
            }
        }
        LinkType::Nflog => {
            let (family, packet) = nflog_payload(data).ok_or(Skip::Undecodable)?;
            match family {
                2 => LaxSlicedPacket::from_ether_type(EtherType::IPV4, packet),
                10 => LaxSlicedPacket::from_ether_type(EtherType::IPV6, packet),
                _ => return Err(Skip::NotTcp),
            }
        }
    };
    segment_from_sliced(&sliced, bound, ts, packet_number, source_index)
}

/// What limits the IP packet's length besides its own header.
#[derive(Clone, Copy)]
struct Bound {
    /// Address of the frame's first byte, to find where the IP header starts.
    frame_start: usize,
    /// Bytes on the wire (0: unknown).
    wire_len: u32,
    /// Length allowed by an enclosing layer (PPPoE), `u32::MAX` when none.
    ip_len_limit: u32,
    /// Verify the TCP checksum.
    verify_checksum: bool,
}

impl Bound {
    /// The largest IP packet length allowed for an IP header starting at `ip_start`.
    fn limit(&self, ip_start: usize) -> u32 {
        let mut limit = self.ip_len_limit;
        if self.wire_len != 0 {
            let offset = ip_start.saturating_sub(self.frame_start) as u32;
            limit = limit.min(self.wire_len.saturating_sub(offset));
        }
        limit
    }
}

/// The IP packet inside a PPPoE session frame (ethertype 0x8864, PPP protocol 0x0021/0x0057) or
/// behind an MPLS label stack (0x8847/0x8848, IP told by its version nibble), after any 802.1Q /
/// 802.1ad tags, which the Ethernet slicer does not enter; with the outer VLAN id.
fn ip_behind_pppoe_or_mpls(data: &[u8]) -> Option<(EtherType, &[u8], Option<u16>, u32)> {
    let mut at = 12;
    let mut vlan = None;
    loop {
        let ether_type = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
        match ether_type {
            0x8100 | 0x88a8 | 0x9100 => {
                let tci = u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?]);
                vlan.get_or_insert(tci & 0x0fff);
                at += 4;
            }
            0x8864 => {
                // Version/type, code, session id, length, then the 2-byte PPP protocol.
                let body = data.get(at + 2..)?;
                let protocol = u16::from_be_bytes([*body.get(6)?, *body.get(7)?]);
                // The PPPoE length counts the PPP protocol field and what follows it.
                let limit = (u16::from_be_bytes([*body.get(4)?, *body.get(5)?]) as u32).saturating_sub(2);
                let inner = body.get(8..)?;
                return match protocol {
                    0x0021 => Some((EtherType::IPV4, inner, vlan, limit)),
                    0x0057 => Some((EtherType::IPV6, inner, vlan, limit)),
                    _ => None,
                };
            }
            0x8847 | 0x8848 => {
                let mut label = at + 2;
                loop {
                    let bottom_of_stack = data.get(label + 2)? & 1 == 1;
                    label += 4;
                    if bottom_of_stack {
                        break;
                    }
                }
                let inner = data.get(label..)?;
                return match inner.first()? >> 4 {
                    4 => Some((EtherType::IPV4, inner, vlan, u32::MAX)),
                    6 => Some((EtherType::IPV6, inner, vlan, u32::MAX)),
                    _ => None,
                };
            }
            _ => return None,
        }
    }
}

/// The address family and the packet of an NFLOG record (TLVs, lengths in host order, 4-aligned;
/// type 9 is NFULA_PAYLOAD).
fn nflog_payload(data: &[u8]) -> Option<(u8, &[u8])> {
    let family = *data.first()?;
    let mut rest = data.get(4..)?;
    while rest.len() >= 4 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_le_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == 9 {
            return Some((family, &rest[4..len]));
        }
        let padded = (len + 3) & !3;
        rest = rest.get(padded.min(rest.len())..)?;
    }
    None
}

fn segment_from_sliced(
    sliced: &LaxSlicedPacket<'_>,
    bound: Bound,
    ts: Timestamp,
    packet_number: u64,
    source_index: u32,
) -> Result<Segment, Skip> {
    let vlan = sliced.link_exts.iter().find_map(|ext| match ext {
        etherparse::LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
        _ => None,
    });
    let (src_ip, dst_ip, ttl, ip_id, ip_len, (tcp_len_declared, tcp_len_ip), payload) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let header = v4.header();
            let payload = v4.payload();
            if payload.ip_number != IpNumber::TCP {
                return Err(Skip::NotTcp);
            }
            if payload.fragmented {
                return Err(Skip::Fragment);
            }
            let header_len = header.slice().len() as u32;
            let total_len = header.total_len() as u32;
            let effective_len = total_len.min(bound.limit(header.slice().as_ptr() as usize));
            let declared = if total_len == 0 || total_len < header_len {
                // TSO / BIG TCP captures carry total length 0: trust the captured bytes.
                let captured = payload.payload.len() as u32;
                (captured, captured)
            } else {
                let auth_len = v4.extensions().auth.map(|a| a.slice().len() as u32).unwrap_or(0);
                (effective_len.saturating_sub(header_len + auth_len), total_len.saturating_sub(header_len + auth_len))
            };
            let ip_len = if total_len == 0 {
                header_len + payload.payload.len() as u32
            } else {
                total_len
            };
            (
                IpAddr::V4(header.source_addr()),
                IpAddr::V4(header.destination_addr()),
                header.ttl(),
                header.identification(),
                ip_len,
                declared,
                payload.payload,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let header = v6.header();
            let payload = v6.payload();
            if payload.ip_number != IpNumber::TCP {
                return Err(Skip::NotTcp);
            }
            if payload.fragmented {
                return Err(Skip::Fragment);
            }
            let payload_length = header.payload_length() as u32;
            let bounded_length = payload_length.min(bound.limit(header.slice().as_ptr() as usize).saturating_sub(40));
            let ext_len = v6.extensions().slice().len() as u32;
            let declared = if payload_length == 0 {
                // Jumbogram or offloaded capture: trust the captured bytes.
                let captured = payload.payload.len() as u32;
                (captured, captured)
            } else {
                (bounded_length.saturating_sub(ext_len), payload_length.saturating_sub(ext_len))
            };
            let ip_len = if payload_length == 0 {
                40 + ext_len + payload.payload.len() as u32
            } else {
                40 + payload_length
            };
            (
                IpAddr::V6(header.source_addr()),
                IpAddr::V6(header.destination_addr()),
                header.hop_limit(),
                0,
                ip_len,
                declared,
                payload.payload,
            )
        }
        Some(_) => return Err(Skip::NotTcp),
        None => {
            return Err(match &sliced.stop_err {
                Some(_) => Skip::Undecodable,
                None => Skip::NotTcp,
            })
        }
    };
    let tcp = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp.clone(),
        _ => match etherparse::TcpSlice::from_slice(payload) {
            Ok(tcp) => tcp,
            Err(_) => return Err(Skip::Undecodable),
        },
    };
    let header_len = tcp.header_slice().len() as u32;
    let payload_len = tcp_len_declared.saturating_sub(header_len);
    let ip_payload_len = tcp_len_ip.saturating_sub(header_len).max(payload_len);
    let captured_payload_len = (tcp.payload().len() as u32).min(payload_len);
    let raw = tcp.header_slice();
    let flags = u16::from_be_bytes([raw[12], raw[13]]) & 0x0FFF;
    let checksum = if bound.verify_checksum && tcp.slice().len() as u32 == header_len + payload_len {
        let expected = match (src_ip, dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp.calc_checksum_ipv4(s.octets(), d.octets()).ok(),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp.calc_checksum_ipv6(s.octets(), d.octets()).ok(),
            _ => None,
        };
        match expected {
            Some(sum) if sum == tcp.checksum() => ChecksumStatus::Good,
            Some(_) => ChecksumStatus::Bad,
            None => ChecksumStatus::Unverified,
        }
    } else {
        ChecksumStatus::Unverified
    };
    Ok(Segment {
        ts,
        packet_number,
        source_index,
        src_ip,
        dst_ip,
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: TcpFlags(flags),
        window: tcp.window_size(),
        payload_len,
        captured_payload_len,
        ip_payload_len,
        checksum,
        ip_len,
        ttl,
        ip_id,
        vlan,
        options: parse_tcp_options(tcp.options()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PacketBuilder;

    fn ethernet_header(ether_types_and_tags: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        f.extend_from_slice(ether_types_and_tags);
        f
    }

    #[test]
    fn tcp_inside_pppoe_behind_qinq() {
        let p = PacketBuilder::v4("1.1.1.1:20394", "2.2.2.2:443").seq(7).flags(TcpFlags::SYN);
        let ip = p.ip();
        let mut f = ethernet_header(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x88, 0x64]);
        f.extend_from_slice(&[0x11, 0x00, 0x12, 0x34]);
        f.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        f.extend_from_slice(&[0x00, 0x21]);
        f.extend_from_slice(&ip);
        let seg = decode(LinkType::Ethernet, &f, Timestamp::ZERO, 1, 0).expect("PPPoE segment");
        assert_eq!((seg.src_port, seg.dst_port, seg.seq, seg.vlan), (20394, 443, 7, Some(100)));
        // Another PPP protocol (LCP) is not TCP.
        let n = f.len();
        let mut lcp = f.clone();
        lcp[n - ip.len() - 2..n - ip.len()].copy_from_slice(&[0xc0, 0x21]);
        assert_eq!(decode(LinkType::Ethernet, &lcp, Timestamp::ZERO, 1, 0), Err(Skip::NotTcp));
        // An IP header that claims 6 bytes more than the PPPoE session carries (the rest is
        // Ethernet padding): the payload is what PPPoE says, as tshark's tcp.len.
        let mut padded = f.clone();
        let ip_start = n - ip.len();
        let total = u16::from_be_bytes([padded[ip_start + 2], padded[ip_start + 3]]) + 6;
        padded[ip_start + 2..ip_start + 4].copy_from_slice(&total.to_be_bytes());
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(decode(LinkType::Ethernet, &padded, Timestamp::ZERO, 1, 0).unwrap().payload_len, 0);
    }

    #[test]
    fn tcp_behind_an_mpls_label_stack() {
        let p = PacketBuilder::v4("10.1.2.1:11001", "10.34.0.1:23").seq(9).flags(TcpFlags::SYN);
        let mut f = ethernet_header(&[0x88, 0x47]);
        f.extend_from_slice(&[0x00, 0x01, 0x00, 0x40]); // label 16, not bottom
        f.extend_from_slice(&[0x00, 0x02, 0x01, 0x40]); // label 32, bottom of stack
        f.extend_from_slice(&p.ip());
        let seg = decode(LinkType::Ethernet, &f, Timestamp::ZERO, 1, 0).expect("MPLS segment");
        assert_eq!((seg.src_port, seg.dst_port, seg.seq, seg.vlan), (11001, 23, 9, None));
        // A truncated label stack is not a segment.
        assert!(decode(LinkType::Ethernet, &f[..18], Timestamp::ZERO, 1, 0).is_err());
    }

    #[test]
    fn decodes_ethernet_ipv4_tcp_with_options() {
        let frame = PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80")
            .flags(TcpFlags::SYN)
            .seq(1000)
            .window(64240)
            .mss(1460)
            .wscale(7)
            .sack_permitted()
            .timestamps(11, 0)
            .ethernet();
        let seg = decode(LinkType::Ethernet, &frame, Timestamp(5), 3, 0).unwrap();
        assert_eq!(seg.src_port, 40000);
        assert_eq!(seg.dst_port, 80);
        assert_eq!(seg.seq, 1000);
        assert!(seg.flags.pure_syn());
        assert_eq!(seg.payload_len, 0);
        assert_eq!(seg.seq_len(), 1);
        assert_eq!(seg.packet_number, 3);
        assert_eq!(seg.options.mss, Some(1460));
        assert_eq!(seg.options.window_scale, Some(7));
        assert!(seg.options.sack_permitted);
        assert_eq!(seg.options.timestamps, Some((11, 0)));
    }

    #[test]
    fn payload_length_comes_from_ip_length_when_truncated() {
        let frame = PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80")
            .flags(TcpFlags::ACK | TcpFlags::PSH)
            .payload(&[7u8; 1000])
            .ethernet();
        let cut = &frame[..14 + 20 + 20 + 10];
        let seg = decode(LinkType::Ethernet, cut, Timestamp(0), 1, 0).unwrap();
        assert_eq!(seg.payload_len, 1000);
        assert_eq!(seg.captured_payload_len, 10);
        assert_eq!(seg.ip_len, 1040);
    }

    #[test]
    fn checksums_are_verified_only_when_asked() {
        for builder in [
            PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80"),
            PacketBuilder::v6("[fd00:198:18::1]:40000", "[fd00:198:18::2]:80"),
        ] {
            let frame = builder.flags(TcpFlags::ACK).payload(b"hello").ethernet();
            let check = |f: &[u8], verify| decode_frame_checked(LinkType::Ethernet, f, 0, Timestamp(0), 1, 0, verify).unwrap().checksum;
            assert_eq!(check(&frame, false), ChecksumStatus::Unverified);
            assert_eq!(check(&frame, true), ChecksumStatus::Good);
            let mut bad = frame.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x20;
            assert_eq!(check(&bad, true), ChecksumStatus::Bad);
            // A segment not captured whole cannot be checked.
            assert_eq!(check(&frame[..frame.len() - 2], true), ChecksumStatus::Unverified);
        }
    }

    #[test]
    fn payload_length_is_bounded_by_the_wire_length() {
        let frame = PacketBuilder::v4("198.18.0.1:40000", "198.18.0.2:80")
            .flags(TcpFlags::ACK)
            .payload(&[7u8; 100])
            .ethernet();
        let full = decode_frame(LinkType::Ethernet, &frame, frame.len() as u32, Timestamp(0), 1, 0).unwrap();
        assert_eq!(full.payload_len, 100);
        // The capture says the frame was 8 bytes shorter on the wire than its IP header claims.
        let short = decode_frame(LinkType::Ethernet, &frame, frame.len() as u32 - 8, Timestamp(0), 1, 0);
        assert!(short.is_err() || short.unwrap().payload_len == 100, "a wire length below caplen is ignored");
        let cut = &frame[..frame.len() - 20];
        let seg = decode_frame(LinkType::Ethernet, cut, frame.len() as u32 - 8, Timestamp(0), 1, 0).unwrap();
        assert_eq!(seg.payload_len, 92);
        // Unknown wire length: the IP length rules.
        assert_eq!(decode(LinkType::Ethernet, cut, Timestamp(0), 1, 0).unwrap().payload_len, 100);
    }

    #[test]
    fn decodes_vlan_and_ipv6() {
        let frame = PacketBuilder::v6("[fd00:198:18::1]:5000", "[fd00:198:18::2]:443")
            .flags(TcpFlags::ACK)
            .payload(b"hello")
            .vlan(42)
            .ethernet();
        let seg = decode(LinkType::Ethernet, &frame, Timestamp(0), 1, 0).unwrap();
        assert_eq!(seg.vlan, Some(42));
        assert_eq!(seg.payload_len, 5);
        assert_eq!(seg.ip_version(), 6);
        assert_eq!(seg.src_ip.to_string(), "fd00:198:18::1");
    }

    #[test]
    fn decodes_cooked_and_null_and_raw() {
        let b = PacketBuilder::v4("198.18.0.1:1", "198.18.0.2:2").flags(TcpFlags::SYN);
        for (link, frame) in [
            (LinkType::LinuxSll, b.clone().linux_sll()),
            (LinkType::LinuxSll2, b.clone().linux_sll2()),
            (LinkType::Null, b.clone().null_loopback()),
            (LinkType::RawIp, b.clone().ip()),
        ] {
            let seg = decode(link, &frame, Timestamp(0), 1, 0).unwrap();
            assert_eq!((seg.src_port, seg.dst_port), (1, 2), "{link:?}");
        }
    }

    #[test]
    fn skips_what_is_not_tcp_and_never_panics_on_short_frames() {
        let frame = PacketBuilder::v4("198.18.0.1:1", "198.18.0.2:2").ethernet();
        for len in 0..frame.len() {
            let _ = decode(LinkType::Ethernet, &frame[..len], Timestamp(0), 1, 0);
            let _ = decode(LinkType::LinuxSll, &frame[..len], Timestamp(0), 1, 0);
            let _ = decode(LinkType::Null, &frame[..len], Timestamp(0), 1, 0);
            let _ = decode(LinkType::RawIp, &frame[..len], Timestamp(0), 1, 0);
        }
        assert_eq!(
            decode(LinkType::Ethernet, &frame[..14 + 20 + 5], Timestamp(0), 1, 0),
            Err(Skip::Undecodable)
        );
        let mut arp = frame.clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(decode(LinkType::Ethernet, &arp, Timestamp(0), 1, 0).is_err());
    }
}
