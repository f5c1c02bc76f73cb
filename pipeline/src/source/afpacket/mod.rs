//! Live capture on Linux: an AF_PACKET TPACKET_V3 reader of our own over `libc`.
//!
//! One [`PacketSocket`] per reader thread; all sockets of an interface share one
//! `PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG` group, so each reader owns whole connections
//! (the kernel's fanout hash is symmetric) and IPv4 fragments follow their flow. Socket set-up
//! follows `research/capture.md` §3.4: protocol 0, TPACKET_V3, filter, ring, mmap, then `bind`
//! with `ETH_P_ALL`, promiscuous membership and fanout. Readers walk the mmap'd blocks in ring order
//! and give each block back as soon as its packets are decoded into batches.
//!
//! The `afpacket` crate was not used: it only offers `read()` on a raw socket (one syscall and
//! one copy per packet, no ring, no fanout, no statistics).
//!
//! This is one of the two places of the crate with `unsafe` (the other is the plugin host); every
//! block carries a `// SAFETY:` comment.

#![allow(unsafe_code)]

pub mod filter;
pub mod os;
pub mod ring;
mod sys;

pub use filter::BpfProgram;
pub use ring::{interface_index, Block, KernelStats, PacketSocket, RingPacket};

/// Ring geometry of one socket. Defaults from `research/capture.md` §3.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes per block (a power of two, at least one page): 1 MiB.
    pub block_size: u32,
    /// Blocks per ring: 128 (128 MiB per socket).
    pub block_count: u32,
    /// Frame size, only checked by the kernel in V3: 2048.
    pub frame_size: u32,
    /// A block that is not full is handed to user space after this many milliseconds: 10.
    pub block_timeout_ms: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { block_size: 1 << 20, block_count: 128, frame_size: 2048, block_timeout_ms: 10 }
    }
}

impl RingConfig {
    /// Checks the geometry the kernel will insist on, with a readable message.
    pub fn validate(&self) -> Result<(), String> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
        if !self.block_size.is_power_of_two() || self.block_size < page {
            return Err(format!("block size {} must be a power of two of at least {page} bytes", self.block_size));
        }
        if self.frame_size < sys::TPACKET3_HDRLEN as u32 || !self.frame_size.is_multiple_of(16) || self.frame_size > self.block_size {
            return Err(format!("frame size {} must be a multiple of 16 between 80 and the block size", self.frame_size));
        }
        if self.block_count == 0 {
            return Err("the ring needs at least one block".into());
        }
        if (self.block_size as u64) * (self.block_count as u64) > (1u64 << 40) {
            return Err("ring larger than 1 TiB".into());
        }
        if self.block_timeout_ms == 0 {
            return Err("block timeout must be at least 1 ms".into());
        }
        Ok(())
    }

    /// Bytes of one ring.
    pub fn ring_bytes(&self) -> u64 {
        self.block_size as u64 * self.block_count as u64
    }
}

/// A failure to set up or run live capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The process lacks the privilege.
    #[error("{interface}: {what}: permission denied: live capture needs CAP_NET_RAW (run as root, or grant it with `setcap cap_net_raw,cap_ipc_lock=eip $(command -v tcpscope)`)")]
    Permission {
        /// The interface.
        interface: String,
        /// The step that failed.
        what: &'static str,
    },
    /// No such interface.
    #[error("{interface}: no such network interface (see `ip link`)")]
    NoSuchInterface {
        /// The interface.
        interface: String,
    },
    /// A link type we cannot decode.
    #[error("{interface}: unsupported link type (ARPHRD {arphrd}); tcpscope captures on Ethernet, loopback and raw-IP interfaces")]
    UnsupportedLink {
        /// The interface.
        interface: String,
        /// Its ARPHRD_ type.
        arphrd: u32,
    },
    /// Bad ring geometry.
    #[error("{interface}: ring settings: {message}")]
    Ring {
        /// The interface.
        interface: String,
        /// What is wrong.
        message: String,
    },
    /// A socket call failed.
    #[error("{interface}: {what}: {source}")]
    Io {
        /// The interface.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The capture filter does not compile.
    #[error("capture filter `{expression}` does not compile: {message}")]
    Filter {
        /// The expression.
        expression: String,
        /// libpcap's message.
        message: String,
    },
    /// libpcap is missing.
    #[error("{message}")]
    Libpcap {
        /// What happened.
        message: String,
    },
    /// `--user` failed.
    #[error("cannot switch to user `{user}`: {message}")]
    User {
        /// The user.
        user: String,
        /// What went wrong.
        message: String,
    },
    /// A process-level call failed.
    #[error("{what}: {source}")]
    Process {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
