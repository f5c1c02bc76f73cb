//! Canonical flow keys, direction, and the symmetric hash that sends both directions to one worker.

pub mod community_id;

use crate::decode::Segment;
use std::net::IpAddr;

/// One endpoint packed into integers, so comparing and hashing keys costs a few instructions:
/// the address as 128 bits (IPv4 in the low 32), the port and the address family beside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PackedEndpoint {
    address: u128,
    /// Port in the low 16 bits; bit 16 set for IPv6.
    port_and_family: u32,
}

impl PackedEndpoint {
    #[inline]
    fn new(ip: IpAddr, port: u16) -> Self {
        match ip {
            IpAddr::V4(v4) => PackedEndpoint { address: u32::from(v4) as u128, port_and_family: port as u32 },
            IpAddr::V6(v6) => PackedEndpoint { address: u128::from(v6), port_and_family: port as u32 | 1 << 16 },
        }
    }
    #[inline]
    fn unpack(self) -> (IpAddr, u16) {
        let port = self.port_and_family as u16;
        if self.port_and_family >> 16 == 0 {
            (IpAddr::V4((self.address as u32).into()), port)
        } else {
            (IpAddr::V6(self.address.into()), port)
        }
    }
}

/// The canonical 5-tuple of a TCP connection (protocol implied): the lower endpoint first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    low: PackedEndpoint,
    high: PackedEndpoint,
}

/// Which canonical endpoint sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Sent by `FlowKey::low`.
    Low,
    /// Sent by `FlowKey::high`.
    High,
}

/// A packet's direction relative to the connection's originator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the originator (the SYN sender) to the responder.
    Orig,
    /// From the responder to the originator.
    Resp,
}

impl Direction {
    /// `orig` or `resp`, as written in the `events.direction` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Orig => "orig",
            Direction::Resp => "resp",
        }
    }
    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Orig => Direction::Resp,
            Direction::Resp => Direction::Orig,
        }
    }
    /// 0 for orig, 1 for resp: an index into per-direction arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

impl FlowKey {
    /// The canonical key of a segment, and which side sent it.
    #[inline]
    pub fn of(seg: &Segment) -> (FlowKey, Side) {
        let a = PackedEndpoint::new(seg.src_ip, seg.src_port);
        let b = PackedEndpoint::new(seg.dst_ip, seg.dst_port);
        if a <= b {
            (FlowKey { low: a, high: b }, Side::Low)
        } else {
            (FlowKey { low: b, high: a }, Side::High)
        }
    }

    /// The lower (address, port) endpoint.
    #[inline]
    pub fn low(&self) -> (IpAddr, u16) {
        self.low.unpack()
    }

    /// The higher (address, port) endpoint.
    #[inline]
    pub fn high(&self) -> (IpAddr, u16) {
        self.high.unpack()
    }

    /// Visits the key for packing (see [`crate::tcp::compact`]): an IPv4 address takes its 32 bits.
    pub(crate) fn codec(&mut self, c: &mut impl crate::tcp::compact::Codec) {
        for e in [&mut self.low, &mut self.high] {
            c.u32(&mut e.port_and_family);
            if e.port_and_family >> 16 == 0 {
                let mut v4 = e.address as u32;
                c.fixed32(&mut v4);
                e.address = u128::from(v4);
            } else {
                let (mut lo, mut hi) = (e.address as u64, (e.address >> 64) as u64);
                c.u64(&mut lo);
                c.u64(&mut hi);
                e.address = u128::from(hi) << 64 | u128::from(lo);
            }
        }
    }

    /// A hash of the canonical key: the same for both directions, the same on every run and
    /// every machine (it decides the worker, and seeds `flow_id`).
    #[inline]
    pub fn symmetric_hash(&self) -> u64 {
        let mut h = StableHasher::default();
        self.write_to(&mut h);
        h.finish()
    }

    /// Mixes the key into a [`StableHasher`].
    #[inline]
    pub fn write_to(&self, h: &mut StableHasher) {
        for e in [self.low, self.high] {
            h.write_u64(e.address as u64);
            h.write_u64((e.address >> 64) as u64);
            h.write_u64(e.port_and_family as u64);
        }
    }
}

/// A small, fixed-seed, non-cryptographic hasher (multiply-xorshift) whose result never changes
/// between runs or releases, unlike `std`'s `DefaultHasher`.
#[derive(Default)]
pub struct StableHasher {
    state: u64,
}

impl StableHasher {
    /// Mixes in one 64-bit word.
    #[inline]
    pub fn write_u64(&mut self, word: u64) {
        self.state = mix(self.state ^ word.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    /// The hash.
    #[inline]
    pub fn finish(&self) -> u64 {
        mix(self.state)
    }
}

#[inline]
fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The worker that owns a flow, from its symmetric hash.
#[inline]
pub fn worker_for(key: &FlowKey, workers: usize) -> usize {
    if workers <= 1 {
        0
    } else {
        // Lemire's fast range reduction: uniform and cheaper than `%`.
        ((key.symmetric_hash() as u128 * workers as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, LinkType, TcpFlags};
    use crate::testing::PacketBuilder;
    use crate::time::Timestamp;

    fn seg(src: &str, dst: &str) -> Segment {
        let f = PacketBuilder::new(src, dst).flags(TcpFlags::SYN).ethernet();
        decode(LinkType::Ethernet, &f, Timestamp(0), 1, 0).unwrap()
    }

    #[test]
    fn both_directions_share_key_and_worker() {
        for (a, b) in [("198.18.0.1:1000", "198.18.0.2:80"), ("[fd00:198:18::9]:443", "[fd00:198:18::1]:5")] {
            let (k1, s1) = FlowKey::of(&seg(a, b));
            let (k2, s2) = FlowKey::of(&seg(b, a));
            assert_eq!(k1, k2);
            assert_ne!(s1, s2);
            assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
            for w in 1..9 {
                assert_eq!(worker_for(&k1, w), worker_for(&k2, w));
                assert!(worker_for(&k1, w) < w);
            }
        }
    }

    #[test]
    fn keys_unpack_to_their_endpoints() {
        let (k, side) = FlowKey::of(&seg("198.18.0.9:1000", "198.18.0.2:80"));
        assert_eq!(side, Side::High);
        assert_eq!(k.low(), ("198.18.0.2".parse().unwrap(), 80));
        assert_eq!(k.high(), ("198.18.0.9".parse().unwrap(), 1000));
        let (k6, _) = FlowKey::of(&seg("[::ffff:198.18.0.2]:80", "[fd00:198:18::1]:5"));
        assert_eq!(k6.low(), ("::ffff:198.18.0.2".parse().unwrap(), 80), "IPv4-mapped IPv6 stays IPv6");
        assert_ne!(k6, k);
    }

    #[test]
    fn hash_spreads_ports_across_workers() {
        let mut counts = [0usize; 4];
        for port in 1000..5000u16 {
            let (k, _) = FlowKey::of(&seg(&format!("198.18.0.1:{port}"), "198.18.0.2:80"));
            counts[worker_for(&k, 4)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
