//! One AF_PACKET socket with its TPACKET_V3 receive ring: set-up in the documented order, the
//! block walk, kernel statistics, and a clean stop.

use super::filter::BpfProgram;
use super::sys::*;
use super::{CaptureError, RingConfig};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Kernel counters of one socket (`PACKET_STATISTICS`), as read once: the kernel zeroes them on
/// every read, so callers accumulate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets that passed the filter, delivered or dropped (`tp_packets`, drops included).
    pub packets: u64,
    /// Packets dropped because the ring was full (`tp_drops`).
    pub drops: u64,
    /// Times the ring was frozen because user space still held the next block (`tp_freeze_q_cnt`).
    pub freezes: u64,
}

impl KernelStats {
    /// Adds another reading.
    pub fn add(&mut self, o: &KernelStats) {
        self.packets += o.packets;
        self.drops += o.drops;
        self.freezes += o.freezes;
    }

    /// Packets the kernel put in the ring: `tp_packets − tp_drops`.
    pub fn delivered(&self) -> u64 {
        self.packets.saturating_sub(self.drops)
    }
}

/// One packet in a block, borrowed from the ring while its block is held.
#[derive(Clone, Copy, Debug)]
pub struct RingPacket<'a> {
    /// `tp_sec`.
    pub sec: u32,
    /// `tp_nsec`.
    pub nsec: u32,
    /// Length on the wire (`tp_len`).
    pub wire_len: u32,
    /// `tp_status` of the packet.
    pub status: u32,
    /// VLAN TCI from the ring header, when `TP_STATUS_VLAN_VALID` says the kernel stripped a tag.
    pub vlan_tci: Option<u16>,
    /// TPID of that tag (0x8100 unless `TP_STATUS_VLAN_TPID_VALID` says otherwise).
    pub vlan_tpid: u16,
    /// Captured bytes, from the link-layer header (`tp_mac`), `tp_snaplen` long.
    pub data: &'a [u8],
}

/// A socket bound to one interface, with its ring mapped.
pub struct PacketSocket {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    interface: String,
    locked: bool,
}

// SAFETY: the socket owns its mapping exclusively; the raw pointer is only dereferenced through
// `&mut self` (one thread at a time), so moving the socket to a reader thread is sound.
unsafe impl Send for PacketSocket {}

fn os_error(interface: &str, what: &'static str) -> CaptureError {
    let source = io::Error::last_os_error();
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::Permission { interface: interface.to_owned(), what },
        _ => CaptureError::Io { interface: interface.to_owned(), what, source },
    }
}

fn set_option<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` of exactly `size_of::<T>()` bytes, which is
    // the length the kernel reads.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, value as *const T as *const libc::c_void, std::mem::size_of::<T>() as libc::socklen_t)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn attach(fd: RawFd, program: &BpfProgram) -> io::Result<()> {
    let fprog = SockFprog { len: program.instructions.len() as u16, filter: program.instructions.as_ptr() };
    set_option(fd, libc::SOL_SOCKET, SO_ATTACH_FILTER, &fprog)
}

/// The interface index of `name`.
pub fn interface_index(name: &str) -> Result<u32, CaptureError> {
    let c = std::ffi::CString::new(name).map_err(|_| CaptureError::NoSuchInterface { interface: name.to_owned() })?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(CaptureError::NoSuchInterface { interface: name.to_owned() })
    } else {
        Ok(index)
    }
}

impl PacketSocket {
    /// Opens a socket on `interface`: protocol 0 (nothing is queued yet), TPACKET_V3, the filter,
    /// the ring and its mapping, then `bind` with `ETH_P_ALL`, promiscuous membership if asked,
    /// and membership of the fanout group (`fanout_id` `None`: create a new group and return its
    /// id through [`PacketSocket::fanout_id`]). `ignore_outgoing` asks the kernel not to deliver
    /// packets this host sends (on a loopback interface each packet would otherwise come twice).
    pub fn open(
        interface: &str,
        ring: &RingConfig,
        filter: Option<&BpfProgram>,
        promiscuous: bool,
        fanout_id: Option<u16>,
        ignore_outgoing: bool,
    ) -> Result<PacketSocket, CaptureError> {
        let index = interface_index(interface)?;
        ring.validate().map_err(|message| CaptureError::Ring { interface: interface.to_owned(), message })?;
        // SAFETY: plain socket(2) call; the returned descriptor is checked and owned right away.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_error(interface, "opening an AF_PACKET socket"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let raw = fd.as_raw_fd();
        let io = |what: &'static str| move |source: io::Error| CaptureError::Io { interface: interface.to_owned(), what, source };

        set_option(raw, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V3).map_err(io("selecting TPACKET_V3"))?;
        if ignore_outgoing {
            let one: libc::c_int = 1;
            set_option(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one).map_err(io("ignoring outgoing packets"))?;
        }
        if let Some(program) = filter {
            attach(raw, program).map_err(io("attaching the capture filter"))?;
        }
        let req = TpacketReq3 {
            tp_block_size: ring.block_size,
            tp_block_nr: ring.block_count,
            tp_frame_size: ring.frame_size,
            tp_frame_nr: (ring.block_size / ring.frame_size) * ring.block_count,
            tp_retire_blk_tov: ring.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(raw, libc::SOL_PACKET, PACKET_RX_RING, &req).map_err(io("creating the receive ring (PACKET_RX_RING)"))?;
        let ring_len = ring.block_size as usize * ring.block_count as usize;
        let mut locked = true;
        // SAFETY: maps the ring the kernel just allocated for this socket, shared, at a place of
        // the kernel's choosing; the result is checked against MAP_FAILED.
        let mut map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            // Locking needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK: go on without it.
            locked = false;
            // SAFETY: as above, without MAP_LOCKED.
            map = unsafe {
                libc::mmap(std::ptr::null_mut(), ring_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_POPULATE, raw, 0)
            };
            if map == libc::MAP_FAILED {
                return Err(os_error(interface, "mapping the receive ring"));
            }
        }
        let socket = PacketSocket {
            fd,
            ring: map as *mut u8,
            ring_len,
            block_size: ring.block_size as usize,
            block_count: ring.block_count as usize,
            next_block: 0,
            interface: interface.to_owned(),
            locked,
        };

        // SAFETY: an all-zero sockaddr_ll is a valid value; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                raw,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_error(interface, "binding to the interface"));
        }
        if promiscuous {
            let mreq = PacketMreq { mr_ifindex: index as i32, mr_type: PACKET_MR_PROMISC, ..PacketMreq::default() };
            set_option(raw, libc::SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq).map_err(io("entering promiscuous mode"))?;
        }
        let mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
        let arg: u32 = match fanout_id {
            Some(id) => u32::from(id) | (mode << 16),
            None => (mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        };
        set_option(raw, libc::SOL_PACKET, PACKET_FANOUT, &arg).map_err(io("joining the fanout group"))?;
        Ok(socket)
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Whether the ring is locked in memory (`MAP_LOCKED` succeeded).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// The fanout group this socket belongs to.
    pub fn fanout_id(&self) -> Result<u16, CaptureError> {
        let mut value: u32 = 0;
        let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid out-parameters of the sizes given.
        let rc = unsafe {
            libc::getsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, PACKET_FANOUT, &mut value as *mut u32 as *mut libc::c_void, &mut len)
        };
        if rc != 0 {
            return Err(os_error(&self.interface, "reading the fanout group id"));
        }
        Ok((value & 0xffff) as u16)
    }

    /// Reads and resets the kernel counters.
    pub fn statistics(&self) -> Result<KernelStats, CaptureError> {
        let mut s = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: `s` and `len` are valid out-parameters; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                &mut s as *mut TpacketStatsV3 as *mut libc::c_void,
                &mut len,
            )
        };
        if rc != 0 {
            return Err(os_error(&self.interface, "reading PACKET_STATISTICS"));
        }
        Ok(KernelStats { packets: u64::from(s.tp_packets), drops: u64::from(s.tp_drops), freezes: u64::from(s.tp_freeze_q_cnt) })
    }

    /// Replaces the filter by one that drops everything: no new packet enters the ring, so the
    /// blocks already filled can be drained and the counters read exactly.
    pub fn stop_receiving(&self) -> Result<(), CaptureError> {
        attach(self.fd.as_raw_fd(), &BpfProgram::drop_all()).map_err(|source| CaptureError::Io {
            interface: self.interface.clone(),
            what: "attaching the stop filter",
            source,
        })
    }

    fn block_status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: see `status_word`; the reference borrows `self`, so it cannot outlive the mapping.
        unsafe { &*status_word(self.ring, self.block_size, block) }
    }

    fn current_ready(&self) -> bool {
        self.block_status(self.next_block).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Reads and clears the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> Option<io::Error> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid out-parameters of the sizes given.
        let rc = unsafe {
            libc::getsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR, &mut value as *mut libc::c_int as *mut libc::c_void, &mut len)
        };
        (rc == 0 && value != 0).then(|| io::Error::from_raw_os_error(value))
    }

    /// Whether the next block is already filled (no need to wait for it).
    pub fn has_ready_block(&self) -> bool {
        self.current_ready()
    }

    /// Waits up to `timeout_ms` for the next block (returns `Ok(None)` on timeout or a signal).
    pub fn next_block(&mut self, timeout_ms: i32) -> Result<Option<Block<'_>>, CaptureError> {
        if !self.current_ready() {
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN | libc::POLLERR, revents: 0 };
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(CaptureError::Io { interface: self.interface.clone(), what: "polling the ring", source: e });
            }
            if pfd.revents & libc::POLLERR != 0 {
                // A pending socket error (ENETDOWN when the interface goes down; the kernel
                // re-attaches the socket when it comes back up): read it to clear it, or every
                // later poll would return at once.
                self.take_error();
            }
            if !self.current_ready() {
                return Ok(None);
            }
        }
        let index = self.next_block;
        // SAFETY: `status_word` points inside the mapping, which lives as long as `self`; the
        // returned block borrows `self` mutably, so the mapping outlives it.
        let status = unsafe { &*status_word(self.ring, self.block_size, index) };
        // SAFETY: the Acquire load above saw TP_STATUS_USER, so the kernel has finished writing
        // this block and will not touch it until we store TP_STATUS_KERNEL (in `Block::drop`).
        // The slice starts after the status word (which stays atomic-only) and ends at the end of
        // this block, inside the mapping; it lives no longer than the `&mut self` borrow.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                self.ring.add(index * self.block_size + BLOCK_HEAD_SKIP) as *const u8,
                self.block_size - BLOCK_HEAD_SKIP,
            )
        };
        Ok(Some(Block { bytes, status, socket_next: &mut self.next_block, block_count: self.block_count }))
    }
}

/// Bytes of a block before the part a `Block` reads as plain memory: the descriptor's `version`,
/// `offset_to_priv` and the atomic `block_status`.
const BLOCK_HEAD_SKIP: usize = BLOCK_STATUS_OFFSET + 4;

/// The status word of `block`.
///
/// # Safety
/// `ring` must be a live mapping of at least `(block + 1) * block_size` bytes, with `block_size`
/// a multiple of the page size (so the word is aligned).
unsafe fn status_word(ring: *mut u8, block_size: usize, block: usize) -> *const AtomicU32 {
    // SAFETY: in bounds of the mapping by the caller's contract; 4-byte aligned because blocks are
    // page-aligned and the word sits at offset 8. The kernel writes it concurrently, so it is only
    // ever accessed atomically.
    unsafe { ring.add(block * block_size + BLOCK_STATUS_OFFSET) as *const AtomicU32 }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `open`; no `Block` can be alive because
        // blocks borrow the socket mutably.
        unsafe {
            libc::munmap(self.ring as *mut libc::c_void, self.ring_len);
        }
    }
}

/// A block handed to user space. Dropping it gives the block back to the kernel.
pub struct Block<'a> {
    bytes: &'a [u8],
    status: &'a AtomicU32,
    socket_next: &'a mut usize,
    block_count: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

impl<'a> Block<'a> {
    /// Packets the kernel put in this block.
    pub fn packet_count(&self) -> u32 {
        u32_at(self.bytes, BLOCK_NUM_PKTS_OFFSET - BLOCK_HEAD_SKIP).unwrap_or(0)
    }

    /// The block's sequence number (increments by one per block the kernel fills).
    pub fn sequence(&self) -> u64 {
        let lo = u32_at(self.bytes, BLOCK_SEQ_OFFSET - BLOCK_HEAD_SKIP).unwrap_or(0) as u64;
        let hi = u32_at(self.bytes, BLOCK_SEQ_OFFSET + 4 - BLOCK_HEAD_SKIP).unwrap_or(0) as u64;
        if cfg!(target_endian = "little") {
            lo | (hi << 32)
        } else {
            (lo << 32) | hi
        }
    }

    /// Calls `f` for at most `limit` packets of the block, in order; returns how many it saw.
    /// Stops early (and says so through the count) at a header that does not fit the block.
    pub fn for_each_packet(&self, limit: u32, mut f: impl FnMut(RingPacket<'_>)) -> u32 {
        let count = self.packet_count().min(limit);
        // Offsets below are from the start of the block; `self.bytes` starts BLOCK_HEAD_SKIP in.
        let block_len = (u32_at(self.bytes, BLOCK_LEN_OFFSET - BLOCK_HEAD_SKIP).unwrap_or(0) as usize)
            .min(self.bytes.len() + BLOCK_HEAD_SKIP);
        let mut offset = u32_at(self.bytes, BLOCK_FIRST_PKT_OFFSET - BLOCK_HEAD_SKIP).unwrap_or(0) as usize;
        let mut seen = 0;
        while seen < count {
            if offset < BLOCK_DESC_LEN || offset + PKT_HDR_LEN > block_len {
                break;
            }
            let h = &self.bytes[offset - BLOCK_HEAD_SKIP..];
            let (Some(next), Some(sec), Some(nsec), Some(snaplen), Some(wire_len), Some(status), Some(mac)) = (
                u32_at(h, PKT_NEXT_OFFSET),
                u32_at(h, PKT_SEC),
                u32_at(h, PKT_NSEC),
                u32_at(h, PKT_SNAPLEN),
                u32_at(h, PKT_LEN),
                u32_at(h, PKT_STATUS),
                u16_at(h, PKT_MAC),
            ) else {
                break;
            };
            let start = offset + mac as usize - BLOCK_HEAD_SKIP;
            let Some(data) = self.bytes.get(start..start + snaplen as usize) else { break };
            let vlan_tci = (status & TP_STATUS_VLAN_VALID != 0).then(|| u32_at(h, PKT_VLAN_TCI).unwrap_or(0) as u16);
            let vlan_tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 { u16_at(h, PKT_VLAN_TPID).unwrap_or(0x8100) } else { 0x8100 };
            f(RingPacket { sec, nsec, wire_len, status, vlan_tci, vlan_tpid, data });
            seen += 1;
            if next == 0 {
                break;
            }
            offset += next as usize;
        }
        seen
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // Release: every read of the block's bytes happens before the kernel may reuse it.
        self.status.store(TP_STATUS_KERNEL, Ordering::Release);
        *self.socket_next = (*self.socket_next + 1) % self.block_count;
    }
}

/// Whether `TP_STATUS_LOSING` is set on a packet: the kernel dropped packets around it.
pub fn is_losing(status: u32) -> bool {
    status & TP_STATUS_LOSING != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays it out: descriptor, then packets chained by `tp_next_offset`.
    fn fake_block(packets: &[(&[u8], u32, Option<u16>)]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let put32 = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, BLOCK_STATUS_OFFSET, TP_STATUS_USER);
        put32(&mut b, BLOCK_NUM_PKTS_OFFSET, packets.len() as u32);
        put32(&mut b, BLOCK_FIRST_PKT_OFFSET, 64);
        let mut offset = 64;
        for (i, (data, wire_len, vlan)) in packets.iter().enumerate() {
            let mac = 82u16;
            let next = if i + 1 == packets.len() { 0 } else { ((mac as usize + data.len() + 15) & !15) as u32 };
            put32(&mut b, offset + PKT_NEXT_OFFSET, next);
            put32(&mut b, offset + PKT_SEC, 1_700_000_000 + i as u32);
            put32(&mut b, offset + PKT_NSEC, 5);
            put32(&mut b, offset + PKT_SNAPLEN, data.len() as u32);
            put32(&mut b, offset + PKT_LEN, *wire_len);
            let status = if vlan.is_some() { TP_STATUS_USER | TP_STATUS_VLAN_VALID } else { TP_STATUS_USER };
            put32(&mut b, offset + PKT_STATUS, status);
            b[offset + PKT_MAC..offset + PKT_MAC + 2].copy_from_slice(&mac.to_ne_bytes());
            put32(&mut b, offset + PKT_VLAN_TCI, u32::from(vlan.unwrap_or(0)));
            b[offset + mac as usize..offset + mac as usize + data.len()].copy_from_slice(data);
            offset += next as usize;
        }
        let end = offset + 200;
        put32(&mut b, BLOCK_LEN_OFFSET, end as u32);
        b
    }

    type Seen = Vec<(u32, u32, Option<u16>, Vec<u8>)>;

    fn walk(block: &[u8], limit: u32) -> (u32, Seen, usize) {
        let status = AtomicU32::new(TP_STATUS_USER);
        let mut next = 0usize;
        let b = Block { bytes: &block[BLOCK_HEAD_SKIP..], status: &status, socket_next: &mut next, block_count: 4 };
        let mut seen = Vec::new();
        let n = b.for_each_packet(limit, |p| seen.push((p.sec, p.wire_len, p.vlan_tci, p.data.to_vec())));
        drop(b);
        assert_eq!(status.load(Ordering::Relaxed), TP_STATUS_KERNEL, "dropping the block gives it back");
        (n, seen, next)
    }

    #[test]
    fn walks_packets_in_order_with_vlan_and_lengths() {
        let block = fake_block(&[(b"first-frame", 11, None), (b"second", 1500, Some(10)), (b"third", 5, None)]);
        let (n, seen, next) = walk(&block, u32::MAX);
        assert_eq!(n, 3);
        assert_eq!(next, 1, "the next block is the following one");
        assert_eq!(seen[0], (1_700_000_000, 11, None, b"first-frame".to_vec()));
        assert_eq!(seen[1], (1_700_000_001, 1500, Some(10), b"second".to_vec()));
        assert_eq!(seen[2].3, b"third".to_vec());
        let (n, seen, _) = walk(&block, 2);
        assert_eq!((n, seen.len()), (2, 2), "the packet limit is honoured");
    }

    #[test]
    fn corrupt_offsets_stop_the_walk_without_panicking() {
        let mut block = fake_block(&[(b"aaaa", 4, None), (b"bbbb", 4, None)]);
        // Snap length beyond the block.
        block[64 + PKT_SNAPLEN..64 + PKT_SNAPLEN + 4].copy_from_slice(&100_000u32.to_ne_bytes());
        assert_eq!(walk(&block, u32::MAX).0, 0);
        // First packet offset inside the descriptor, or past the end.
        for first in [0u32, 4000, u32::MAX] {
            let mut b = fake_block(&[(b"aaaa", 4, None)]);
            b[BLOCK_FIRST_PKT_OFFSET..BLOCK_FIRST_PKT_OFFSET + 4].copy_from_slice(&first.to_ne_bytes());
            assert_eq!(walk(&b, u32::MAX).0, 0);
        }
        // More packets claimed than chained.
        let mut b = fake_block(&[(b"aaaa", 4, None)]);
        b[BLOCK_NUM_PKTS_OFFSET..BLOCK_NUM_PKTS_OFFSET + 4].copy_from_slice(&50u32.to_ne_bytes());
        assert_eq!(walk(&b, u32::MAX).0, 1);
    }
}
