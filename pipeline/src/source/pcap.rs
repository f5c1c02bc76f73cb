//! Offline capture files: classic pcap (µs and ns, both byte orders, the "modified" variant) and
//! pcapng (any `if_tsresol` and `if_tsoffset`, several interfaces and sections), read from a
//! memory map without copying. Parsing of headers and blocks is `pcap-parser`'s.

use super::Frame;
use crate::decode::LinkType;
use crate::error::SourceError;
use crate::time::Timestamp;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{PcapError, PcapHeader};
use std::path::{Path, PathBuf};

/// How far reading a file got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Records delivered.
    pub packets: u64,
    /// Bytes of the file consumed.
    pub bytes: u64,
    /// Records skipped because their link type is not decodable (pcapng interfaces of other types).
    pub unsupported_link_records: u64,
}

/// An open capture file.
pub struct CaptureFile {
    path: PathBuf,
    map: Option<memmap2::Mmap>,
}

impl CaptureFile {
    /// Opens and maps a file.
    pub fn open(path: &Path) -> Result<CaptureFile, SourceError> {
        let file = std::fs::File::open(path).map_err(|source| SourceError::Open { path: path.to_owned(), source })?;
        let len = file
            .metadata()
            .map_err(|source| SourceError::Open { path: path.to_owned(), source })?
            .len();
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(SourceError::Open {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        let map = if len == 0 {
            None
        } else {
                Some(map_readonly(&file).map_err(|source| SourceError::Open { path: path.to_owned(), source })?)
        };
        Ok(CaptureFile { path: path.to_owned(), map })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every record in order, calling `on_frame` for each one. On error, every record
    /// before the fault has been delivered. `on_progress` receives the byte offset now and then.
    pub fn read(
        &self,
        mut on_frame: impl FnMut(Frame<'_>),
        mut on_progress: impl FnMut(u64),
    ) -> Result<ReadSummary, SourceError> {
        let mut window = self.map.as_ref().map(ReadWindow::new);
        let mut progress = |offset: u64| {
            on_progress(offset);
            if let Some(w) = window.as_mut() {
                w.advance(offset as usize);
            }
        };
        read_capture(&self.path, self.bytes(), &mut on_frame, &mut progress)
    }
}

/// Bytes of a file read between two releases of its pages (a multiple of the page size). Each
/// release also moves the read window, three madvise calls in all.
const RELEASE_GRANULE: usize = 512 << 10;

/// Bytes of the mapping, from the last release point on, kept in a mapping area (VMA) of their own
/// while they are read. Linux (6.18) maps a page-cache folio whole on a fault when the folio fits
/// in the faulting area, and readahead fills the cache with folios of up to 2 MiB: in one area
/// spanning the whole file a fault made 2 MiB resident (4 MiB with the next folio), which a
/// ten-times-longer capture carried on top of the sink's working set (`perf-long.pcap` peaked
/// with 2-4 MiB of it resident). In an area smaller than 2 MiB a fault maps 64 KiB, or a whole
/// smaller folio, so at most about this much plus [`RELEASE_GRANULE`] stays resident. The price
/// is more page faults: about 4 % more CPU time on a warm 3 GB capture. Records are read at most
/// [`RELEASE_GRANULE`] + [`PROGRESS_BYTES`] and one record past the release point, so this must
/// exceed that (larger records only cost memory).
const READ_WINDOW: usize = 1 << 20;
const _: () = assert!(READ_WINDOW > RELEASE_GRANULE + PROGRESS_BYTES && READ_WINDOW < 2 << 20);

/// Where reading a mapped file stands: pages before `released` are dropped from our resident set,
/// and `[released, released + READ_WINDOW)` is its own mapping area (marked `MADV_DONTDUMP`,
/// which changes nothing else: the flag only keeps it apart from its neighbours).
struct ReadWindow<'a> {
    map: &'a memmap2::Mmap,
    released: usize,
}

impl<'a> ReadWindow<'a> {
    fn new(map: &'a memmap2::Mmap) -> Self {
        let _ = map.advise(memmap2::Advice::Sequential);
        let w = ReadWindow { map, released: 0 };
        w.set_window(0, READ_WINDOW, true);
        w
    }

    /// Everything before `offset` has been read: frames are borrowed only during the callback,
    /// so it is never touched again. Drop those pages and move the window along, so memory stays
    /// flat however long the file is.
    fn advance(&mut self, offset: usize) {
        let offset = offset & !(RELEASE_GRANULE - 1);
        if offset < self.released + RELEASE_GRANULE {
            return;
        }
        let released = self.released;
        self.set_window(released + READ_WINDOW, offset + READ_WINDOW, true);
        self.set_window(released, offset, false);
        release_pages(self.map, released, offset - released);
        self.released = offset;
    }

    /// Marks (or unmarks) `[from, to)`, clipped to the file, as part of the window.
    fn set_window(&self, from: usize, to: usize, inside: bool) {
        let to = to.min(self.map.len());
        if from >= to {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let advice = if inside { memmap2::Advice::DontDump } else { memmap2::Advice::DoDump };
            let _ = self.map.advise_range(advice, from, to - from);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = inside;
    }
}

#[allow(unsafe_code)]
fn release_pages(map: &memmap2::Mmap, offset: usize, len: usize) {
    // SAFETY: the mapping is a private, read-only mapping of a file; MADV_DONTNEED only drops our
    // references to clean page-cache pages, and a later access would fault them back in from the
    // file unchanged. No slice into this range is alive: frames are borrowed for one callback.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
}

#[allow(unsafe_code)]
fn map_readonly(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this process; if another process truncates
    // the file while we read it, the kernel raises SIGBUS — the same hazard every mmap reader
    // (tcpdump -r with mmap, ripgrep) accepts for the speed of zero-copy reads.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

/// Reads a capture held in memory (the same code path as files). `path` only names it in errors.
pub fn read_capture(
    path: &Path,
    bytes: &[u8],
    on_frame: &mut dyn FnMut(Frame<'_>),
    on_progress: &mut dyn FnMut(u64),
) -> Result<ReadSummary, SourceError> {
    if bytes.len() < 4 {
        return Err(if bytes.is_empty() {
            SourceError::NotACapture { path: path.to_owned(), magic: "(empty file)".into() }
        } else {
            SourceError::HeaderTruncated { path: path.to_owned(), offset: bytes.len() as u64, needed: 24 }
        });
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34 | 0xd4c3_b2a1 | 0x4d3c_b2a1 | 0x34cd_b2a1 => {
            read_pcap(path, bytes, on_frame, on_progress)
        }
        0x0A0D_0D0A => read_pcapng(path, bytes, on_frame, on_progress),
        _ => Err(SourceError::NotACapture {
            path: path.to_owned(),
            magic: bytes.iter().take(4).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
        }),
    }
}

const PROGRESS_EVERY: u64 = 1024;
/// Bytes read between two progress reports at most, whatever the packet sizes (1024 packets of
/// 1500 bytes are 1.5 MiB): each report lets [`CaptureFile::read`] release the pages behind it
/// and move its read window.
const PROGRESS_BYTES: usize = 256 << 10;

/// Where the last progress report was: one is due every [`PROGRESS_EVERY`] packets and at least
/// every [`PROGRESS_BYTES`], whichever comes first.
struct Progress {
    reported: usize,
}

impl Progress {
    #[inline]
    fn after_record(&mut self, packets: u64, offset: usize, on_progress: &mut dyn FnMut(u64)) {
        if packets.is_multiple_of(PROGRESS_EVERY) || offset - self.reported >= PROGRESS_BYTES {
            self.reported = offset;
            on_progress(offset as u64);
        }
    }
}

fn read_pcap(
    path: &Path,
    bytes: &[u8],
    on_frame: &mut dyn FnMut(Frame<'_>),
    on_progress: &mut dyn FnMut(u64),
) -> Result<ReadSummary, SourceError> {
    let header: PcapHeader = match pcap_parser::parse_pcap_header(bytes) {
        Ok((_, h)) => h,
        Err(_) => {
            return Err(SourceError::HeaderTruncated { path: path.to_owned(), offset: bytes.len() as u64, needed: 24 })
        }
    };
    if bytes.len() < 24 {
        return Err(SourceError::HeaderTruncated { path: path.to_owned(), offset: bytes.len() as u64, needed: 24 });
    }
    if header.version_major != 2 {
        return Err(SourceError::UnsupportedVersion {
            path: path.to_owned(),
            format: "pcap",
            major: header.version_major,
            minor: header.version_minor,
        });
    }
    let link = LinkType::from_linktype(header.network.0 & 0x0FFF_FFFF).ok_or(SourceError::UnknownLinkType {
        path: path.to_owned(),
        linktype: header.network.0,
        interface: 0,
    })?;
    let nanos = header.is_nanosecond_precision();
    let big_endian = header.is_bigendian();
    let modified = header.is_modified_format() || header.magic_number == 0x34cd_b2a1;
    let record_header_len: usize = if modified { 24 } else { 16 };
    let snaplen = header.snaplen;
    let mut offset = 24usize;
    let mut progress = Progress { reported: offset };
    let mut summary = ReadSummary::default();
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let packet_number = summary.packets + 1;
        if rest.len() < record_header_len {
            return Err(SourceError::RecordTruncated { path: path.to_owned(), packet_number, offset: offset as u64 });
        }
        let field = |i: usize| {
            let b = [rest[i], rest[i + 1], rest[i + 2], rest[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (ts_sec, ts_frac, caplen, origlen) = (field(0), field(4), field(8), field(12));
        if snaplen != 0 && caplen > snaplen.max(262_144) || caplen > 0x0400_0000 {
            return Err(SourceError::RecordTooLong {
                path: path.to_owned(),
                packet_number,
                offset: offset as u64,
                caplen,
                snaplen,
            });
        }
        let end = record_header_len + caplen as usize;
        if rest.len() < end {
            return Err(SourceError::RecordTruncated { path: path.to_owned(), packet_number, offset: offset as u64 });
        }
        let frac_ns = if nanos { ts_frac as u64 } else { ts_frac as u64 * 1_000 };
        on_frame(Frame {
            ts: Timestamp::from_secs_nanos(ts_sec as u64, frac_ns),
            packet_number,
            link,
            data: &rest[record_header_len..end],
            wire_len: origlen,
        });
        summary.packets = packet_number;
        offset += end;
        progress.after_record(packet_number, offset, on_progress);
    }
    summary.bytes = offset as u64;
    on_progress(offset as u64);
    Ok(summary)
}

struct Interface {
    link: Option<LinkType>,
    linktype: i32,
    units_per_sec: u64,
    offset_secs: i64,
    snaplen: u32,
}

fn read_pcapng(
    path: &Path,
    bytes: &[u8],
    on_frame: &mut dyn FnMut(Frame<'_>),
    on_progress: &mut dyn FnMut(u64),
) -> Result<ReadSummary, SourceError> {
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut big_endian = false;
    let mut offset = 0usize;
    let mut progress = Progress { reported: offset };
    let mut summary = ReadSummary::default();
    let mut first = true;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let packet_number = summary.packets + 1;
        let is_shb = rest.len() >= 4 && rest[..4] == [0x0A, 0x0D, 0x0D, 0x0A];
        let parsed = if is_shb {
            pcap_parser::pcapng::parse_sectionheaderblock(rest).map(|(r, b)| (r, Block::SectionHeader(b)))
        } else if big_endian {
            pcap_parser::pcapng::parse_block_be(rest)
        } else {
            pcap_parser::pcapng::parse_block_le(rest)
        };
        let (remaining, block) = match parsed {
            Ok(ok) => ok,
            Err(pcap_parser::nom::Err::Incomplete(_)) => {
                return Err(if first {
                    SourceError::HeaderTruncated { path: path.to_owned(), offset: bytes.len() as u64, needed: 28 }
                } else {
                    SourceError::RecordTruncated { path: path.to_owned(), packet_number, offset: offset as u64 }
                })
            }
            Err(pcap_parser::nom::Err::Error(e)) | Err(pcap_parser::nom::Err::Failure(e)) => {
                let what = if is_shb { "section header block" } else { "block" };
                let _ = matches!(e, PcapError::Eof);
                return Err(SourceError::Malformed {
                    path: path.to_owned(),
                    what,
                    offset: offset as u64,
                    packet_number: summary.packets,
                });
            }
        };
        first = false;
        let consumed = bytes.len() - offset - remaining.len();
        match block {
            Block::SectionHeader(shb) => {
                if shb.major_version != 1 {
                    return Err(SourceError::UnsupportedVersion {
                        path: path.to_owned(),
                        format: "pcapng",
                        major: shb.major_version,
                        minor: shb.minor_version,
                    });
                }
                big_endian = shb.big_endian();
                interfaces.clear();
            }
            Block::InterfaceDescription(idb) => {
                let resol = idb.if_tsresol().and_then(|r| r.ok()).unwrap_or(6);
                let units_per_sec = pcap_parser::pcapng::build_ts_resolution(resol).unwrap_or(1_000_000).max(1);
                interfaces.push(Interface {
                    link: LinkType::from_linktype(idb.linktype.0),
                    linktype: idb.linktype.0,
                    units_per_sec,
                    offset_secs: idb.if_tsoffset().and_then(|r| r.ok()).unwrap_or(0),
                    snaplen: idb.snaplen,
                });
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = interfaces.get(epb.if_id as usize) else {
                    return Err(SourceError::UnknownInterface {
                        path: path.to_owned(),
                        packet_number,
                        offset: offset as u64,
                        interface: epb.if_id,
                    });
                };
                check_snaplen(path, iface, epb.caplen, packet_number, offset)?;
                let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let ts = units_to_timestamp(units, iface.units_per_sec, iface.offset_secs);
                let data = epb.packet_data();
                deliver(path, iface, epb.if_id, ts, packet_number, data, epb.origlen, &mut summary, on_frame)?;
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = interfaces.first() else {
                    return Err(SourceError::UnknownInterface {
                        path: path.to_owned(),
                        packet_number,
                        offset: offset as u64,
                        interface: 0,
                    });
                };
                let data = spb.packet_data();
                deliver(path, iface, 0, Timestamp::ZERO, packet_number, data, spb.origlen, &mut summary, on_frame)?;
            }
            _ => {}
        }
        offset += consumed.max(1);
        progress.after_record(summary.packets, offset, on_progress);
    }
    summary.bytes = offset as u64;
    on_progress(offset as u64);
    Ok(summary)
}

fn check_snaplen(path: &Path, iface: &Interface, caplen: u32, packet_number: u64, offset: usize) -> Result<(), SourceError> {
    if iface.snaplen != 0 && caplen > iface.snaplen.max(262_144) {
        return Err(SourceError::RecordTooLong {
            path: path.to_owned(),
            packet_number,
            offset: offset as u64,
            caplen,
            snaplen: iface.snaplen,
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    path: &Path,
    iface: &Interface,
    if_id: u32,
    ts: Timestamp,
    packet_number: u64,
    data: &[u8],
    wire_len: u32,
    summary: &mut ReadSummary,
    on_frame: &mut dyn FnMut(Frame<'_>),
) -> Result<(), SourceError> {
    summary.packets = packet_number;
    match iface.link {
        Some(link) => on_frame(Frame { ts, packet_number, link, data, wire_len }),
        None => {
            // A pcapng file may mix interfaces: count the record, keep going.
            let _ = (path, if_id, iface.linktype);
            summary.unsupported_link_records += 1;
        }
    }
    Ok(())
}

fn units_to_timestamp(units: u64, units_per_sec: u64, offset_secs: i64) -> Timestamp {
    let secs = units / units_per_sec;
    let frac = units % units_per_sec;
    let nanos = (frac as u128 * 1_000_000_000u128 / units_per_sec as u128) as u64;
    let secs = (secs as i64).saturating_add(offset_secs).max(0) as u64;
    Timestamp::from_secs_nanos(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;
    use crate::testing::{PacketBuilder, PcapNgWriter, PcapWriter};

    /// (time, packet number, captured length) of each frame.
    type Frames = Vec<(Timestamp, u64, usize)>;

    fn collect(bytes: &[u8]) -> (Frames, Result<ReadSummary, SourceError>) {
        let mut frames = Vec::new();
        let r = read_capture(Path::new("mem.pcap"), bytes, &mut |f| frames.push((f.ts, f.packet_number, f.data.len())), &mut |_| {});
        (frames, r)
    }

    fn sample_pcap(nanosecond: bool) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), 1, nanosecond).unwrap();
        for i in 0..3u64 {
            let f = PacketBuilder::v4("198.18.0.1:1", "198.18.0.2:2").flags(TcpFlags::SYN).seq(i as u32).ethernet();
            w.write_packet(1_700_000_000_000_000_000 + i * 1_234_567, &f).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn reads_microsecond_and_nanosecond_pcap() {
        let (frames, r) = collect(&sample_pcap(false));
        assert_eq!(r.unwrap().packets, 3);
        assert_eq!(frames[1].0, Timestamp(1_700_000_000_001_234_000));
        let (frames, _) = collect(&sample_pcap(true));
        assert_eq!(frames[1].0, Timestamp(1_700_000_000_001_234_567));
        assert_eq!(frames[2].1, 3);
    }

    #[test]
    fn reads_big_endian_pcap() {
        let le = sample_pcap(false);
        let mut be = Vec::new();
        for chunk in [&le[0..4], &le[8..12], &le[12..16], &le[16..20], &le[20..24]] {
            let mut c = chunk.to_vec();
            c.reverse();
            be.extend_from_slice(&c);
            if be.len() == 4 {
                be.extend_from_slice(&2u16.to_be_bytes());
                be.extend_from_slice(&4u16.to_be_bytes());
            }
        }
        let mut off = 24;
        while off < le.len() {
            let caplen = u32::from_le_bytes(le[off + 8..off + 12].try_into().unwrap()) as usize;
            for i in 0..4 {
                let mut f = le[off + 4 * i..off + 4 * i + 4].to_vec();
                f.reverse();
                be.extend_from_slice(&f);
            }
            be.extend_from_slice(&le[off + 16..off + 16 + caplen]);
            off += 16 + caplen;
        }
        let (frames, r) = collect(&be);
        assert_eq!(r.unwrap().packets, 3);
        assert_eq!(frames[1].0, Timestamp(1_700_000_000_001_234_000));
    }

    #[test]
    fn reads_pcapng_with_nanosecond_tsresol_and_two_interfaces() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let us = w.add_interface(1, 6).unwrap();
        let ns = w.add_interface(1, 9).unwrap();
        let f = PacketBuilder::v4("198.18.0.1:1", "198.18.0.2:2").flags(TcpFlags::SYN).ethernet();
        w.write_packet(us, 1_700_000_000_123_456_000, &f).unwrap();
        w.write_packet(ns, 1_700_000_000_123_456_789, &f).unwrap();
        let bytes = w.into_inner().unwrap();
        let (frames, r) = collect(&bytes);
        assert_eq!(r.unwrap().packets, 2);
        assert_eq!(frames[0].0, Timestamp(1_700_000_000_123_456_000));
        assert_eq!(frames[1].0, Timestamp(1_700_000_000_123_456_789));
        assert_eq!(frames[1].2, f.len());
    }

    #[test]
    fn truncated_record_reports_packet_number_and_keeps_earlier_packets() {
        let bytes = sample_pcap(false);
        let cut = &bytes[..bytes.len() - 10];
        let (frames, r) = collect(cut);
        assert_eq!(frames.len(), 2);
        match r {
            Err(SourceError::RecordTruncated { packet_number: 3, offset, .. }) => assert!(offset > 24),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_non_captures_and_bad_versions_and_long_records() {
        let (_, r) = collect(b"hello world, not a capture");
        assert!(matches!(r, Err(SourceError::NotACapture { .. })));
        let mut bytes = sample_pcap(false);
        bytes[4] = 1;
        assert!(matches!(collect(&bytes).1, Err(SourceError::UnsupportedVersion { major: 1, .. })));
        let mut bytes = sample_pcap(false);
        bytes[16..20].copy_from_slice(&64u32.to_le_bytes());
        // first record claims 300000 bytes: beyond any snaplen
        bytes[24 + 8..24 + 12].copy_from_slice(&300_000u32.to_le_bytes());
        assert!(matches!(collect(&bytes).1, Err(SourceError::RecordTooLong { packet_number: 1, .. })));
        assert!(matches!(collect(&bytes[..20]).1, Err(SourceError::HeaderTruncated { .. })));
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let i = w.add_interface(1, 9).unwrap();
        let f = PacketBuilder::v4("198.18.0.1:1", "198.18.0.2:2").flags(TcpFlags::SYN).ethernet();
        w.write_packet(i, 5, &f).unwrap();
        let ng = w.into_inner().unwrap();
        for bytes in [ng, sample_pcap(true)] {
            for len in 0..bytes.len() {
                let _ = collect(&bytes[..len]);
            }
        }
    }
}
