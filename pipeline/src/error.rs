//! Error types of the library, one enum per layer.

use std::path::PathBuf;

/// A capture file that cannot be read (fully). Every complete packet before the fault has been
/// delivered when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or mapped.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file does not start with a pcap or pcapng header.
    #[error("{path}: not a pcap or pcapng capture (first bytes {magic})")]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// The first bytes, hex.
        magic: String,
    },
    /// The header is cut short.
    #[error("{path}: file header cut short at byte offset {offset} (needs {needed} bytes)")]
    HeaderTruncated {
        /// The file.
        path: PathBuf,
        /// Bytes present.
        offset: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// A pcap or pcapng version tcpscope does not read.
    #[error("{path}: unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// `pcap` or `pcapng`.
        format: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A link type the decoder does not handle.
    #[error("{path}: unsupported link type {linktype} (interface {interface})")]
    UnknownLinkType {
        /// The file.
        path: PathBuf,
        /// LINKTYPE_ number.
        linktype: i32,
        /// Interface index (0 for pcap).
        interface: u32,
    },
    /// The file ends inside a record.
    #[error("{path}: packet {packet_number} cut short at byte offset {offset}: the file ends inside the record")]
    RecordTruncated {
        /// The file.
        path: PathBuf,
        /// 1-based number the record would have had.
        packet_number: u64,
        /// Byte offset of the record.
        offset: u64,
    },
    /// A record claims more captured bytes than the snapshot length allows.
    #[error("{path}: packet {packet_number} at byte offset {offset} claims {caplen} captured bytes, more than the snapshot length {snaplen}")]
    RecordTooLong {
        /// The file.
        path: PathBuf,
        /// 1-based packet number.
        packet_number: u64,
        /// Byte offset of the record.
        offset: u64,
        /// Captured length claimed.
        caplen: u32,
        /// Snapshot length of the file or interface.
        snaplen: u32,
    },
    /// A malformed record or block.
    #[error("{path}: malformed {what} at byte offset {offset} (after packet {packet_number})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: &'static str,
        /// Byte offset.
        offset: u64,
        /// Packets read before it.
        packet_number: u64,
    },
    /// A packet refers to an interface that was never described.
    #[error("{path}: packet {packet_number} at byte offset {offset} names interface {interface}, which no interface block describes")]
    UnknownInterface {
        /// The file.
        path: PathBuf,
        /// 1-based packet number.
        packet_number: u64,
        /// Byte offset.
        offset: u64,
        /// Interface id.
        interface: u32,
    },
}

/// A failure of the Parquet sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Arrow or Parquet refused the data.
    #[error("writing {path}: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
}
