//! Packet sources: capture files (pcap, pcapng) and, on Linux, AF_PACKET rings. Both hand frames
//! with their capture timestamp, link type and 1-based packet number to the decoder.

#[cfg(target_os = "linux")]
pub mod afpacket;
pub mod pcap;

use crate::decode::LinkType;
use crate::time::Timestamp;

/// One captured frame, borrowed from the source's buffer for the duration of a callback.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// 1-based index of the record in its source (counts every record, TCP or not).
    pub packet_number: u64,
    /// Link-layer type of the frame.
    pub link: LinkType,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
}
