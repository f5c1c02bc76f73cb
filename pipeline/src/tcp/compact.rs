//! The packed form of a quiet connection: its whole state in a short byte string.
//!
//! Most connections open on a busy link are idle at any moment, and an idle connection's state
//! is mostly zeros, flags, and a handful of sequence numbers, packet numbers and packet times
//! that equal or lie near one another. A connection with no packet for a second
//! ([`QUIET_AFTER_NS`]) is packed into a byte string (98 bytes for an established connection,
//! against 944 in working form); its next packet or timer unpacks it. Packing loses nothing: the
//! unpacked connection is field for field the one that was packed, so output never depends on
//! whether or when a connection was packed.
//!
//! Each state type has one `codec` method that visits every field, in a fixed order, with a
//! [`Codec`]: [`Packer`] writes what it visits, [`Unpacker`] overwrites it with what it reads. The
//! same code does both, so the two cannot disagree, and each method destructures its struct
//! whole, so a new field that is not visited fails to compile.
//!
//! Coding: the packed bytes are a varint (the length of the byte part), the byte part, then the
//! bit part. Counts are a zero bit, or a one bit and a LEB128 varint. Booleans, enums and small
//! flag sets are bits. Packet times, packet numbers, durations and sequence numbers are coded
//! against the five most recent values of their kind in the same connection ([`Choice`]): two
//! bits for zero or the most recent value, four for one of the other four, else two bits and
//! the varint of a zigzag difference. Times start from an engine-wide base, so a connection's
//! first time is a difference of seconds, not 2⁶⁰ nanoseconds.
//!
//! Cost: packing and unpacking one connection take about 17,000 instructions together (about 2 µs
//! for both on this project's machine; `cargo bench -p tcpscope-benches --bench engine --
//! wake_`), paid once per connection that goes quiet for a second and wakes again.

use compact_str::CompactString;

/// Packet time without a packet after which a connection is packed.
pub(crate) const QUIET_AFTER_NS: u64 = 1_000_000_000;

/// How many recent values of each kind are kept.
const RECENT: usize = 5;

/// Recent values of one kind, most recent first.
#[derive(Clone, Copy, Default)]
struct Recent<T: Copy + Default + PartialEq> {
    values: [T; RECENT],
}

impl<T: Copy + Default + PartialEq> Recent<T> {
    fn with_first(v: T) -> Self {
        let mut r = Recent::default();
        r.values[0] = v;
        r
    }
    fn position(&self, v: T) -> Option<usize> {
        self.values.iter().position(|&r| r == v)
    }
    /// Makes the value at `i` the most recent.
    fn promote(&mut self, i: usize) {
        let v = self.values[i];
        self.values.copy_within(0..i, 1);
        self.values[0] = v;
    }
    /// Makes `v`, not among them, the most recent value; the oldest goes.
    fn push(&mut self, v: T) {
        self.values.copy_within(0..RECENT - 1, 1);
        self.values[0] = v;
    }
    /// What coding `choice` does to the recent values, in both directions: a recent value
    /// becomes the most recent, a new one (`v`) is pushed in.
    fn record(&mut self, choice: Choice, v: T) {
        match choice {
            Choice::Zero => {}
            Choice::Recent(i) => self.promote(i),
            Choice::Difference(_) => self.push(v),
        }
    }
}

/// The recent values of each kind, as packing and unpacking one connection go along.
#[derive(Clone, Copy, Default)]
struct Recents {
    times: Recent<u64>,
    packets: Recent<u64>,
    durations: Recent<u64>,
    seqs: Recent<u32>,
}

impl Recents {
    /// At the start of a connection: times are coded against `time_base` first.
    fn new(time_base: u64) -> Self {
        Recents { times: Recent::with_first(time_base), ..Recents::default() }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// How a time, packet number, duration or sequence number is coded, in the bits: `00` zero,
/// `01` the most recent value of its kind, `10` and two more bits one of the four before it, `11`
/// a difference in the bytes. For times, packet numbers and durations the difference is the
/// zigzag difference from the most recent value; for sequence numbers, from the nearest of the
/// recent values, times eight, plus which one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Choice {
    Zero,
    Recent(usize),
    Difference(u64),
}

/// What visits the fields of the connection state: a [`Packer`] or an [`Unpacker`].
pub(crate) trait Codec {
    /// Whether this codec overwrites what it visits (unpacking). Unpacking overwrites every
    /// field, so a codec that visits only part of an array (the used part) clears the rest.
    const READING: bool;
    /// An unsigned integer.
    fn u64(&mut self, v: &mut u64);
    /// A 32-bit value that is seldom small (an IPv4 address): four bytes.
    fn fixed32(&mut self, v: &mut u32);
    /// A yes/no.
    fn bool(&mut self, v: &mut bool);
    /// A packet time in nanoseconds (0: unset).
    fn time(&mut self, v: &mut u64);
    /// A packet number (0: none).
    fn packet(&mut self, v: &mut u64);
    /// A duration in nanoseconds (round-trip times and their sums).
    fn duration(&mut self, v: &mut u64);
    /// A small value that fits in `bits` bits (an enum, a few flags), as bits.
    fn small(&mut self, v: &mut u8, bits: u32);
    /// A TCP sequence or acknowledgement number.
    fn seq(&mut self, v: &mut u32);
    /// A text of up to `max` bytes.
    fn text(&mut self, v: &mut CompactString, max: usize);
    /// When unpacking, the most elements a list read now can have (each takes a byte at least);
    /// when packing, no bound.
    fn list_bound(&self) -> usize;

    /// An unsigned 32-bit integer.
    fn u32(&mut self, v: &mut u32) {
        let mut x = u64::from(*v);
        self.u64(&mut x);
        *v = x as u32;
    }
    /// An unsigned 16-bit integer.
    fn u16(&mut self, v: &mut u16) {
        let mut x = u64::from(*v);
        self.u64(&mut x);
        *v = x as u16;
    }
    /// An unsigned byte.
    fn u8(&mut self, v: &mut u8) {
        let mut x = u64::from(*v);
        self.u64(&mut x);
        *v = x as u8;
    }
    /// A signed integer (zigzag).
    fn i64(&mut self, v: &mut i64) {
        let mut x = zigzag(*v);
        self.u64(&mut x);
        *v = unzigzag(x);
    }
    /// A signed 32-bit integer.
    fn i32(&mut self, v: &mut i32) {
        let mut x = i64::from(*v);
        self.i64(&mut x);
        *v = x as i32;
    }
    /// An optional value: a presence bit, then the value. `make` builds the value to unpack into.
    fn option_with<T>(&mut self, v: &mut Option<T>, make: impl FnOnce() -> T, f: impl FnOnce(&mut Self, &mut T))
    where
        Self: Sized,
    {
        let mut present = v.is_some();
        self.bool(&mut present);
        if present {
            f(self, v.get_or_insert_with(make));
        } else {
            *v = None;
        }
    }
    /// An optional value with a default to unpack into.
    fn option<T: Default>(&mut self, v: &mut Option<T>, f: impl FnOnce(&mut Self, &mut T))
    where
        Self: Sized,
    {
        self.option_with(v, T::default, f);
    }
    /// The length of a list; when unpacking, `resize` makes the list that long.
    fn len(&mut self, len: usize, resize: impl FnOnce(usize)) -> usize {
        let mut n = len as u64;
        self.u64(&mut n);
        let n = (n as usize).min(self.list_bound().max(len));
        if n != len {
            resize(n);
        }
        n
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes what it visits. Reused from one connection to the next, so packing allocates only
/// the result.
#[derive(Default)]
pub(crate) struct Packer {
    bytes: Vec<u8>,
    /// Whole bytes of bits; the latest bits wait in `acc`, least significant first.
    bits: Vec<u8>,
    acc: u64,
    acc_len: u32,
    recent: Recents,
    /// A value this coding cannot represent was visited (a text longer than its bound, a small
    /// value wider than its bits): the connection stays unpacked.
    unrepresentable: bool,
}

impl Packer {
    /// Starts a new connection. Its times are coded against `time_base` first: a time near
    /// every connection's (the engine's first packet time) so the first takes 5 bytes, not 9.
    pub fn start(&mut self, time_base: u64) {
        self.bytes.clear();
        self.bits.clear();
        self.acc = 0;
        self.acc_len = 0;
        self.recent = Recents::new(time_base);
        self.unrepresentable = false;
    }

    /// The packed bytes of everything visited since [`Packer::start`]: the byte part's length,
    /// the byte part, the bits. `None` when something was unrepresentable.
    pub fn finish(&mut self) -> Option<Box<[u8]>> {
        if self.unrepresentable {
            return None;
        }
        let len = self.bytes.len() as u64;
        let head = (64 - len.leading_zeros()).div_ceil(7).max(1) as usize;
        let tail = self.acc_len.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(head + self.bytes.len() + self.bits.len() + tail);
        put_varint(&mut out, len);
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(&self.bits);
        out.extend_from_slice(&self.acc.to_le_bytes()[..tail]);
        debug_assert_eq!(out.len(), out.capacity());
        Some(out.into_boxed_slice())
    }

    fn near(recent: &mut Recent<u64>, v: u64) -> Choice {
        if v == 0 {
            return Choice::Zero;
        }
        let choice = match recent.position(v) {
            Some(i) => Choice::Recent(i),
            None => Choice::Difference(zigzag(v.wrapping_sub(recent.values[0]) as i64)),
        };
        recent.record(choice, v);
        choice
    }

    /// The bits in stream order: `00` is 0b00, `01` is 0b10, `10ab` is 0bba01, `11` is 0b11.
    fn put_choice(&mut self, choice: Choice) {
        match choice {
            Choice::Zero => self.put_bits(0b00, 2),
            Choice::Recent(0) => self.put_bits(0b10, 2),
            Choice::Recent(i) => self.put_bits(0b01 | (i as u64 - 1) << 2, 4),
            Choice::Difference(d) => {
                self.put_bits(0b11, 2);
                put_varint(&mut self.bytes, d);
            }
        }
    }
}

impl Packer {
    /// Appends the `n` low bits of `v` (n ≤ 32), least significant first.
    #[inline]
    fn put_bits(&mut self, v: u64, n: u32) {
        self.acc |= (v & ((1 << n) - 1)) << self.acc_len;
        self.acc_len += n;
        if self.acc_len >= 32 {
            self.bits.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.acc_len -= 32;
        }
    }
    #[inline]
    fn put_bit(&mut self, bit: bool) {
        self.put_bits(u64::from(bit), 1);
    }
    #[cfg(test)]
    fn bit_count(&self) -> usize {
        self.bits.len() * 8 + self.acc_len as usize
    }
    /// A code: a bit saying whether it is zero (most are), then the varint of one that is not.
    fn put_code(&mut self, code: u64) {
        self.put_bit(code != 0);
        if code != 0 {
            put_varint(&mut self.bytes, code);
        }
    }
}

impl Codec for Packer {
    const READING: bool = false;
    fn u64(&mut self, v: &mut u64) {
        self.put_code(*v);
    }
    fn fixed32(&mut self, v: &mut u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: &mut bool) {
        self.put_bit(*v);
    }
    fn time(&mut self, v: &mut u64) {
        let choice = Packer::near(&mut self.recent.times, *v);
        self.put_choice(choice);
    }
    fn packet(&mut self, v: &mut u64) {
        let choice = Packer::near(&mut self.recent.packets, *v);
        self.put_choice(choice);
    }
    fn duration(&mut self, v: &mut u64) {
        let choice = Packer::near(&mut self.recent.durations, *v);
        self.put_choice(choice);
    }
    fn small(&mut self, v: &mut u8, bits: u32) {
        self.unrepresentable |= u32::from(*v) >> bits != 0;
        self.put_bits(u64::from(*v), bits);
    }
    fn seq(&mut self, v: &mut u32) {
        let choice = if *v == 0 {
            Choice::Zero
        } else {
            let choice = match self.recent.seqs.position(*v) {
                Some(i) => Choice::Recent(i),
                None => {
                    let (i, diff) = (0..RECENT)
                        .map(|i| (i, zigzag(i64::from(v.wrapping_sub(self.recent.seqs.values[i]) as i32))))
                        .min_by_key(|&(_, d)| d)
                        .expect("recent values");
                    Choice::Difference(diff * 8 + i as u64)
                }
            };
            self.recent.seqs.record(choice, *v);
            choice
        };
        self.put_choice(choice);
    }
    fn text(&mut self, v: &mut CompactString, max: usize) {
        self.unrepresentable |= v.len() > max;
        let text = &v.as_bytes()[..v.len().min(max)];
        self.put_code(text.len() as u64);
        self.bytes.extend_from_slice(text);
    }
    fn list_bound(&self) -> usize {
        usize::MAX
    }

}

/// Reads what a [`Packer`] wrote, overwriting each field it visits. Never panics: reading past
/// the end gives zeros and is recorded (the packed bytes are the engine's own, so that would be
/// a bug, which tests look for).
pub(crate) struct Unpacker<'a> {
    bytes: &'a [u8],
    /// Bits not yet loaded into `acc`.
    bits: &'a [u8],
    acc: u64,
    acc_len: u32,
    recent: Recents,
    overrun: bool,
}

impl<'a> Unpacker<'a> {
    /// Reads `packed`, as [`Packer::finish`] made it after `start(time_base)`.
    pub fn new(packed: &'a [u8], time_base: u64) -> Self {
        let mut head = Unpacker::over(packed, &[]);
        let len = (head.varint() as usize).min(head.bytes.len());
        let (bytes, bits) = head.bytes.split_at(len);
        Unpacker { bytes, bits, overrun: head.overrun, recent: Recents::new(time_base), ..Unpacker::over(&[], &[]) }
    }

    fn over(bytes: &'a [u8], bits: &'a [u8]) -> Self {
        Unpacker {
            bytes,
            bits,
            acc: 0,
            acc_len: 0,
            recent: Recents::default(),
            overrun: false,
        }
    }

    /// Whether everything was read, exactly.
    pub fn read_exactly(&self) -> bool {
        !self.overrun && self.bytes.is_empty() && self.bits.is_empty() && self.acc_len < 8
    }

    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let Some((&b, rest)) = self.bytes.split_first() else {
                self.overrun = true;
                return v;
            };
            self.bytes = rest;
            if shift < 64 {
                v |= u64::from(b & 0x7F) << shift;
            }
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }

    /// The next `n` bits (n ≤ 32), least significant first; zeros past the end.
    #[inline]
    fn take_bits(&mut self, n: u32) -> u64 {
        if self.acc_len < n {
            while self.acc_len <= 56 {
                let Some((&b, rest)) = self.bits.split_first() else { break };
                self.acc |= u64::from(b) << self.acc_len;
                self.acc_len += 8;
                self.bits = rest;
            }
            if self.acc_len < n {
                self.overrun = true;
                let v = self.acc;
                (self.acc, self.acc_len) = (0, 0);
                return v;
            }
        }
        let v = self.acc & ((1 << n) - 1);
        self.acc >>= n;
        self.acc_len -= n;
        v
    }
    #[inline]
    fn bit(&mut self) -> bool {
        self.take_bits(1) != 0
    }

    fn code(&mut self) -> u64 {
        if self.bit() {
            self.varint()
        } else {
            0
        }
    }

    fn choice(&mut self) -> Choice {
        match self.take_bits(2) {
            0b00 => Choice::Zero,
            0b10 => Choice::Recent(0),
            0b01 => Choice::Recent(1 + self.take_bits(2) as usize),
            _ => Choice::Difference(self.varint()),
        }
    }

    fn near(recent: &mut Recent<u64>, choice: Choice) -> u64 {
        let v = match choice {
            Choice::Zero => return 0,
            Choice::Recent(i) => recent.values[i],
            Choice::Difference(d) => recent.values[0].wrapping_add(unzigzag(d) as u64),
        };
        recent.record(choice, v);
        v
    }
}

impl Codec for Unpacker<'_> {
    const READING: bool = true;
    fn u64(&mut self, v: &mut u64) {
        *v = self.code();
    }
    fn fixed32(&mut self, v: &mut u32) {
        match self.bytes.split_first_chunk::<4>() {
            Some((head, rest)) => {
                *v = u32::from_le_bytes(*head);
                self.bytes = rest;
            }
            None => {
                self.overrun = true;
                self.bytes = &[];
                *v = 0;
            }
        }
    }
    fn bool(&mut self, v: &mut bool) {
        *v = self.bit();
    }
    fn time(&mut self, v: &mut u64) {
        let choice = self.choice();
        *v = Unpacker::near(&mut self.recent.times, choice);
    }
    fn packet(&mut self, v: &mut u64) {
        let choice = self.choice();
        *v = Unpacker::near(&mut self.recent.packets, choice);
    }
    fn duration(&mut self, v: &mut u64) {
        let choice = self.choice();
        *v = Unpacker::near(&mut self.recent.durations, choice);
    }
    fn small(&mut self, v: &mut u8, bits: u32) {
        *v = self.take_bits(bits) as u8;
    }
    fn seq(&mut self, v: &mut u32) {
        let choice = self.choice();
        *v = match choice {
            Choice::Zero => return *v = 0,
            Choice::Recent(i) => self.recent.seqs.values[i],
            Choice::Difference(d) => self.recent.seqs.values[(d % 8) as usize % RECENT].wrapping_add(unzigzag(d / 8) as u32),
        };
        self.recent.seqs.record(choice, *v);
    }
    fn text(&mut self, v: &mut CompactString, max: usize) {
        let len = self.code() as usize;
        let take = len.min(self.bytes.len());
        self.overrun |= take < len;
        let (head, rest) = self.bytes.split_at(take);
        *v = CompactString::from_utf8_lossy(&head[..take.min(max)]);
        self.bytes = rest;
    }
    fn list_bound(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Visits one of each kind of field.
    type Fields = (u64, bool, u64, u64, u32, i32, CompactString, Option<u16>, bool, u32, u64, u8);

    fn visit(c: &mut impl Codec, v: &mut Fields) {
        c.u64(&mut v.0);
        c.bool(&mut v.1);
        c.time(&mut v.2);
        c.packet(&mut v.3);
        c.seq(&mut v.4);
        c.i32(&mut v.5);
        c.text(&mut v.6, 64);
        c.option(&mut v.7, |c, x| c.u16(x));
        c.bool(&mut v.8);
        c.fixed32(&mut v.9);
        c.duration(&mut v.10);
        c.small(&mut v.11, 5);
    }

    #[test]
    fn every_kind_of_field_comes_back_as_it_was() {
        let mut rng = crate::testing::xorshift(7);
        let mut packer = Packer::default();
        for _ in 0..2_000 {
            let mut fields: Vec<_> = (0..6)
                .map(|_| {
                    let r = rng();
                    (
                        r >> (r % 64),
                        r & 1 == 1,
                        [0, 1_700_000_000_000_000_000 + (r % 5_000_000_000), (r >> 2) & (u64::MAX >> 2)][(r % 3) as usize],
                        [0, r % 1_000_000, r >> 3][(r % 3) as usize],
                        [0, r as u32, u32::MAX, (r >> 40) as u32][(r % 4) as usize],
                        (r >> 7) as i32,
                        "SsHhADadFfRr"[..(r % 12) as usize].into(),
                        (r & 2 == 2).then_some((r >> 20) as u16),
                        r & 4 == 4,
                        (r >> 17) as u32,
                        [0, r % 300_000_000, r >> 1][(r % 3) as usize],
                        (r >> 9) as u8 & 0x1F,
                    )
                })
                .collect();
            packer.start(1_700_000_000_000_000_000);
            for f in fields.iter_mut() {
                visit(&mut packer, f);
            }
            let packed = packer.finish().expect("representable");
            let mut unpacker = Unpacker::new(&packed, 1_700_000_000_000_000_000);
            let mut back: Vec<_> = (0..fields.len()).map(|_| Default::default()).collect();
            for f in back.iter_mut() {
                visit(&mut unpacker, f);
            }
            assert!(unpacker.read_exactly());
            assert_eq!(back, fields);
        }
    }

    #[test]
    fn near_values_take_few_bytes() {
        let mut packer = Packer::default();
        packer.start(1_699_999_999_000_000_000);
        let at = |p: &Packer| (p.bytes.len(), p.bit_count());
        let (mut a, mut b, mut c) = (1_700_000_000_000_000_000u64, 1_700_000_000_000_000_000u64, 1_700_000_000_000_002_000u64);
        packer.time(&mut a);
        assert_eq!(at(&packer), (5, 2), "a first time a second after the base: two bits and 5 bytes");
        packer.time(&mut b);
        assert_eq!(at(&packer), (5, 4), "an equal time: two bits");
        packer.time(&mut c);
        assert_eq!(at(&packer), (7, 6), "2 µs later: two bits and two bytes");
        packer.time(&mut a);
        assert_eq!(at(&packer), (7, 10), "the one before: four bits");
        let mut zero = 0u64;
        packer.u64(&mut zero);
        assert_eq!(at(&packer), (7, 11), "a zero count: a bit");
        packer.time(&mut zero);
        assert_eq!(at(&packer), (7, 13), "an unset time: two bits");
        let (mut s, mut t) = (0x8000_0000u32, 0x8000_0001u32);
        packer.seq(&mut s);
        let before = packer.bytes.len();
        packer.seq(&mut t);
        assert_eq!(packer.bytes.len() - before, 1, "a sequence number one past a recent one takes a byte");
    }

    #[test]
    fn a_value_beyond_its_bound_leaves_the_connection_unpacked() {
        let mut packer = Packer::default();
        packer.start(0);
        let (mut a, mut b) = (1u64, u64::MAX);
        packer.time(&mut a);
        packer.time(&mut b);
        assert!(packer.finish().is_some(), "any time is representable");
        packer.start(0);
        let mut text = CompactString::from("ShADadFf");
        packer.text(&mut text, 4);
        assert!(packer.finish().is_none(), "a text longer than its bound");
        packer.start(0);
        packer.small(&mut 8, 3);
        assert!(packer.finish().is_none(), "a small value wider than its bits");
    }

    #[test]
    fn truncated_bytes_read_as_zeros_without_panicking() {
        let mut packer = Packer::default();
        packer.start(0);
        let mut v = (u64::MAX, true, 1_700_000_000_000_000_000, 77, 5, -3, "ShAD".into(), Some(9), true, 0xC612_0001, 2_000_000, 17);
        visit(&mut packer, &mut v);
        let packed = packer.finish().expect("representable");
        for cut in 0..packed.len() {
            let mut unpacker = Unpacker::new(&packed[..cut], 0);
            let mut back = Default::default();
            visit(&mut unpacker, &mut back);
            assert!(!unpacker.read_exactly(), "cut at {cut}");
        }
    }
}
