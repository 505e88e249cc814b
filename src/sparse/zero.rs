//! Zero-block detection: the only per-byte work in the copy loop.
//!
//! A block is compared against zero 64 bytes at a time by OR-ing eight `u64`
//! lanes, which LLVM turns into vector instructions; the first non-zero lane
//! ends the scan, so data blocks cost almost nothing and zero blocks run at
//! memory bandwidth.

/// Whether every byte of `buf` is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    const LANES: usize = 8;
    const CHUNK: usize = LANES * 8;
    // Cheap early exit for data: most data blocks have a non-zero first word.
    if let Some(head) = buf.get(..16)
        && head.iter().any(|&b| b != 0)
    {
        return false;
    }
    let mut chunks = buf.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        let mut acc = 0u64;
        for lane in chunk.chunks_exact(8) {
            acc |= u64::from_ne_bytes(lane.try_into().expect("8-byte lane"));
        }
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_single_non_zero_byte_anywhere() {
        for len in [0usize, 1, 7, 15, 16, 63, 64, 65, 4095, 4096, 4097] {
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
