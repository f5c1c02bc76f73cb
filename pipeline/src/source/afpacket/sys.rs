//! Linux AF_PACKET ABI: the constants and `#[repr(C)]` layouts of `<linux/if_packet.h>` and
//! `<linux/filter.h>` that the ring reader needs, written out so they do not depend on which of
//! them a given `libc` release exports. Values are part of the stable kernel ABI.

#![allow(missing_docs)]

pub const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub const PACKET_RX_RING: libc::c_int = 5;
pub const PACKET_STATISTICS: libc::c_int = 6;
pub const PACKET_VERSION: libc::c_int = 10;
pub const PACKET_FANOUT: libc::c_int = 18;
pub const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub const PACKET_MR_PROMISC: libc::c_ushort = 1;
pub const TPACKET_V3: libc::c_int = 2;

pub const PACKET_FANOUT_HASH: u32 = 0;
pub const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
pub const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;

pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1 << 0;
pub const TP_STATUS_LOSING: u32 = 1 << 2;
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

pub const SO_ATTACH_FILTER: libc::c_int = 26;
pub const ETH_P_ALL: u16 = 0x0003;

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TpacketReq3 {
    pub tp_block_size: u32,
    pub tp_block_nr: u32,
    pub tp_frame_size: u32,
    pub tp_frame_nr: u32,
    pub tp_retire_blk_tov: u32,
    pub tp_sizeof_priv: u32,
    pub tp_feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TpacketStatsV3 {
    pub tp_packets: u32,
    pub tp_drops: u32,
    pub tp_freeze_q_cnt: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketMreq {
    pub mr_ifindex: libc::c_int,
    pub mr_type: libc::c_ushort,
    pub mr_alen: libc::c_ushort,
    pub mr_address: [u8; 8],
}

/// `struct sock_filter`: one classic BPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
#[derive(Debug)]
pub struct SockFprog {
    pub len: libc::c_ushort,
    pub filter: *const SockFilter,
}

/// `BPF_RET | BPF_K`.
pub const BPF_RET_K: u16 = 0x06;

// Offsets inside `struct tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`).
pub const BLOCK_STATUS_OFFSET: usize = 8;
pub const BLOCK_NUM_PKTS_OFFSET: usize = 12;
pub const BLOCK_FIRST_PKT_OFFSET: usize = 16;
pub const BLOCK_LEN_OFFSET: usize = 20;
pub const BLOCK_SEQ_OFFSET: usize = 24;
/// Size of the block descriptor the kernel writes at the start of each block.
pub const BLOCK_DESC_LEN: usize = 48;

// Offsets inside `struct tpacket3_hdr`.
pub const PKT_NEXT_OFFSET: usize = 0;
pub const PKT_SEC: usize = 4;
pub const PKT_NSEC: usize = 8;
pub const PKT_SNAPLEN: usize = 12;
pub const PKT_LEN: usize = 16;
pub const PKT_STATUS: usize = 20;
pub const PKT_MAC: usize = 24;
pub const PKT_VLAN_TCI: usize = 32;
pub const PKT_VLAN_TPID: usize = 36;
/// `sizeof(struct tpacket3_hdr)`.
pub const PKT_HDR_LEN: usize = 48;
/// `TPACKET3_HDRLEN`: the aligned header plus a `sockaddr_ll`; the smallest valid frame size.
pub const TPACKET3_HDRLEN: usize = 48 + 20;
