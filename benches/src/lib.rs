//! Fixtures shared by the tcpscope benchmarks and the capture generator.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use tcpscope::source::pcap::CaptureFile;
use tcpscope::testing::PcapWriter;

/// Writes `input`'s records `times` over into a microsecond Ethernet pcap, each copy shifted past
/// the previous one in time and with its ports shifted so copies are distinct connections.
pub fn repeat_capture(input: &Path, out: &Path, times: u32) -> io::Result<()> {
    let file = CaptureFile::open(input).map_err(io::Error::other)?;
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    file.read(|f| frames.push((f.ts.as_nanos(), f.data.to_vec())), |_| {}).map_err(io::Error::other)?;
    let (first, last) = match (frames.first(), frames.last()) {
        (Some(a), Some(b)) => (a.0, b.0),
        _ => return Ok(()),
    };
    let span = last - first + 1_000_000_000;
    let mut w = PcapWriter::new(BufWriter::new(std::fs::File::create(out)?), 1, false)?;
    for copy in 0..times as u64 {
        for (ts, frame) in &frames {
            let mut frame = frame.clone();
            shift_ports(&mut frame, copy as u16);
            w.write_packet(ts + copy * span, &frame)?;
        }
    }
    w.into_inner()?.flush()
}

/// Adds `delta` to both TCP ports of an untagged Ethernet/IPv4 frame (others are left alone).
fn shift_ports(frame: &mut [u8], delta: u16) {
    if delta == 0 || frame.len() < 14 + 20 + 4 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return;
    }
    let ihl = ((frame[14] & 0x0F) as usize) * 4;
    let tcp = 14 + ihl;
    if frame.len() < tcp + 4 {
        return;
    }
    for off in [tcp, tcp + 2] {
        let port = u16::from_be_bytes([frame[off], frame[off + 1]]);
        // keep well-known server ports, shift ephemeral client ports
        if port >= 1024 {
            let shifted = 1024 + (port - 1024).wrapping_add(delta.wrapping_mul(7)) % 64_000;
            frame[off..off + 2].copy_from_slice(&shifted.to_be_bytes());
        }
    }
}
