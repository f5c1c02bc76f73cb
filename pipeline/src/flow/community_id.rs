//! Community ID v1 flow hashing (corelight/community-id-spec), so flow rows join with Zeek,
//! Suricata and Elastic records of the same connection.
//!
//! `"1:" + base64(sha1(seed:u16 ‖ saddr ‖ daddr ‖ proto:u8 ‖ 0:u8 ‖ sport:u16 ‖ dport:u16))`, all
//! big-endian, with the endpoints ordered so that the smaller (address, port) comes first.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

fn addr_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Community ID v1 of a flow between two endpoints with ports (TCP, UDP, SCTP), for `seed`.
/// The result is the same whichever endpoint is given first.
pub fn community_id_v1(a: (IpAddr, u16), b: (IpAddr, u16), proto: u8, seed: u16) -> String {
    let (abytes, bbytes) = (addr_bytes(&a.0), addr_bytes(&b.0));
    // Order by address bytes, then by port.
    let a_first = (abytes.as_slice(), a.1) <= (bbytes.as_slice(), b.1);
    let ((sa, sp), (da, dp)) = if a_first { ((abytes, a.1), (bbytes, b.1)) } else { ((bbytes, b.1), (abytes, a.1)) };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&sa);
    h.update(&da);
    h.update([proto, 0]);
    h.update(sp.to_be_bytes());
    h.update(dp.to_be_bytes());
    let digest = h.finalize();
    format!("1:{}", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Community ID v1, seed 0, of a TCP connection.
pub fn tcp_community_id(a: (IpAddr, u16), b: (IpAddr, u16)) -> String {
    community_id_v1(a, b, PROTO_TCP, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> (IpAddr, u16) {
        (s.parse().unwrap(), port)
    }

    // Vectors from the specification's `baseline/baseline_deflt.json` (seed 0).
    #[test]
    fn tcp_ipv4_vector_both_directions() {
        let want = "1:LQU9qZlK+B5F3KDmev6m5PMibrg=";
        assert_eq!(tcp_community_id(ep("128.232.110.120", 34855), ep("66.35.250.204", 80)), want);
        assert_eq!(tcp_community_id(ep("66.35.250.204", 80), ep("128.232.110.120", 34855)), want);
    }

    #[test]
    fn tcp_ipv6_vector_both_directions() {
        let want = "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=";
        let a = ep("2001:470:e5bf:dead:4957:2174:e82c:4887", 63943);
        let b = ep("2607:f8b0:400c:c03::1a", 25);
        assert_eq!(tcp_community_id(a, b), want);
        assert_eq!(tcp_community_id(b, a), want);
    }

    #[test]
    fn udp_and_sctp_vectors() {
        assert_eq!(
            community_id_v1(ep("192.168.1.52", 54585), ep("8.8.8.8", 53), 17, 0),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
        // Equal addresses' order falls to the ports.
        assert_eq!(
            community_id_v1(ep("192.168.170.56", 7), ep("192.168.170.8", 7), 132, 0),
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="
        );
    }
}
