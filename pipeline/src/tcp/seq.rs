//! Modular (RFC 1982 / RFC 9293) sequence-number arithmetic that never panics.

/// `a < b` in sequence space.
#[inline]
pub fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
/// `a <= b` in sequence space.
#[inline]
pub fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}
/// `a > b` in sequence space.
#[inline]
pub fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}
/// `a >= b` in sequence space.
#[inline]
pub fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}
/// The later of two sequence numbers.
#[inline]
pub fn seq_max(a: u32, b: u32) -> u32 {
    if seq_gt(a, b) {
        a
    } else {
        b
    }
}
/// Signed distance `b - a` in sequence space.
#[inline]
pub fn seq_diff(a: u32, b: u32) -> i32 {
    b.wrapping_sub(a) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap() {
        assert!(seq_lt(0xFFFF_FFF0, 5));
        assert!(seq_gt(5, 0xFFFF_FFF0));
        assert!(seq_le(7, 7) && seq_ge(7, 7));
        assert_eq!(seq_max(0xFFFF_FFFF, 1), 1);
        assert_eq!(seq_diff(0xFFFF_FFFE, 2), 4);
        assert_eq!(seq_diff(2, 0xFFFF_FFFE), -4);
    }
}
