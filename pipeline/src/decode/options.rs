//! TCP options that the analysis uses: MSS, window scale, SACK permitted, SACK blocks, timestamps.

/// Up to four SACK blocks (left, right edge), as a TCP header can carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlocks {
    /// Number of valid entries in `blocks`.
    pub count: u8,
    /// The blocks, `[left, right)` in sequence space.
    pub blocks: [(u32, u32); 4],
}

impl SackBlocks {
    /// Visits every field for packing (see [`crate::tcp::compact`]).
    pub(crate) fn codec(&mut self, c: &mut impl crate::tcp::compact::Codec) {
        let SackBlocks { count, blocks } = self;
        c.u8(count);
        for (left, right) in blocks.iter_mut() {
            c.seq(left);
            c.seq(right);
        }
    }

    /// The valid blocks.
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[..self.count as usize]
    }
}

/// The options of one TCP header that matter to the analysis. Unknown options are ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift as sent (kind 3); not clamped.
    pub window_scale: Option<u8>,
    /// SACK permitted (kind 4).
    pub sack_permitted: bool,
    /// SACK blocks (kind 5).
    pub sack: SackBlocks,
    /// Timestamps (kind 8): (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// Whether the option list was malformed (a length that overruns the header, …).
    pub malformed: bool,
}

/// Parses a TCP option list. Never panics: a malformed list stops the walk and sets `malformed`.
pub fn parse_tcp_options(mut bytes: &[u8]) -> TcpOptions {
    let mut out = TcpOptions::default();
    while let Some((&kind, rest)) = bytes.split_first() {
        match kind {
            0 => break,
            1 => {
                bytes = rest;
                continue;
            }
            _ => {}
        }
        let Some(&len) = rest.first() else {
            out.malformed = true;
            break;
        };
        let len = len as usize;
        if len < 2 || len > bytes.len() {
            out.malformed = true;
            break;
        }
        let body = &bytes[2..len];
        match (kind, body.len()) {
            (2, 2) => out.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => out.window_scale = Some(body[0]),
            (4, 0) => out.sack_permitted = true,
            (5, n) if n % 8 == 0 => {
                for chunk in body.chunks_exact(8).take(4) {
                    let left = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    let right = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
                    let i = out.sack.count as usize;
                    out.sack.blocks[i] = (left, right);
                    out.sack.count += 1;
                }
            }
            (8, 8) => {
                let tsval = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let tsecr = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                out.timestamps = Some((tsval, tsecr));
            }
            (2..=5, _) | (8, _) => out.malformed = true,
            _ => {}
        }
        bytes = &bytes[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_linux_syn_option_list() {
        // mss 1460, sackOK, TS val 1 ecr 0, nop, wscale 7
        let raw = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        let o = parse_tcp_options(&raw);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((1, 0)));
        assert_eq!(o.window_scale, Some(7));
        assert!(!o.malformed);
    }

    #[test]
    fn parses_sack_blocks_and_stops_on_garbage() {
        let raw = [1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40];
        let o = parse_tcp_options(&raw);
        assert_eq!(o.sack.as_slice(), &[(10, 20), (30, 40)]);
        let bad = [2, 40, 1, 2];
        assert!(parse_tcp_options(&bad).malformed);
        let zero_len = [9, 0, 1];
        assert!(parse_tcp_options(&zero_len).malformed);
        assert!(parse_tcp_options(&[3]).malformed);
    }
}
