//! Zero-block detection: the only per-byte work in the copy loop.
//!
//! A block is compared against zero 256 bytes at a time by OR-ing `u128`
//! lanes, which LLVM turns into vector instructions; the first non-zero
//! stretch ends the scan, so data blocks cost almost nothing and zero blocks
//! run at memory bandwidth.

/// Whether every byte of `buf` is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    const LANE: usize = 16;
    const STRIDE: usize = 16 * LANE;
    let lane = |b: &[u8]| u128::from_ne_bytes(b.try_into().expect("16-byte lane"));
    // Cheap early exit for data: most data blocks have a non-zero first lane.
    if let Some(head) = buf.get(..LANE)
        && lane(head) != 0
    {
        return false;
    }
    let mut strides = buf.chunks_exact(STRIDE);
    for stride in &mut strides {
        if stride.chunks_exact(LANE).fold(0, |acc, l| acc | lane(l)) != 0 {
            return false;
        }
    }
    strides.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_single_non_zero_byte_anywhere() {
        for len in [
            0usize, 1, 7, 15, 16, 63, 64, 65, 255, 256, 257, 4095, 4096, 4097,
        ] {
            let mut buf = vec![0u8; len];
            assert!(is_zero(&buf), "len {len}");
            for pos in 0..len {
                buf[pos] = 0x80;
                assert!(!is_zero(&buf), "len {len} pos {pos}");
                buf[pos] = 0;
            }
        }
    }
}
