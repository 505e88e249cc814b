//! Property tests: over random extent layouts (data, explicit zeros, holes,
//! unaligned tails) the copy equals its input and allocates no more than the
//! non-zero data rounded to blocks, from a file and from a compressed stream.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};

use imgtest::sparsecopy::{CopyPlan, Source, copy};
use proptest::prelude::*;

const BS: usize = 4096;

#[derive(Debug, Clone)]
enum Segment {
    /// Non-zero bytes (seeded), possibly with a zero block inside.
    Data(usize, u8),
    /// Written zeros: allocated in SRC, must become holes.
    Zeros(usize),
    /// Never written.
    Hole(usize),
}

fn segment() -> impl Strategy<Value = Segment> {
    // Lengths both block-multiples and unaligned, up to 96 KiB.
    let len = prop_oneof![(1usize..24).prop_map(|b| b * BS), 1usize..98_304];
    prop_oneof![
        (len.clone(), 1u8..=255).prop_map(|(l, s)| Segment::Data(l, s)),
        len.clone().prop_map(Segment::Zeros),
        len.prop_map(Segment::Hole),
    ]
}

/// Write SRC; return its bytes.
fn build(path: &std::path::Path, layout: &[Segment]) -> Vec<u8> {
    let f = File::create(path).unwrap();
    let mut bytes = Vec::new();
    for seg in layout {
        let at = bytes.len() as u64;
        match *seg {
            Segment::Data(len, seed) => {
                let mut d: Vec<u8> = (0..len)
                    .map(|i| seed.wrapping_add((i % 251) as u8) | 1)
                    .collect();
                if len > 3 * BS {
                    d[BS..2 * BS].fill(0);
                }
                f.write_all_at(&d, at).unwrap();
                bytes.extend_from_slice(&d);
            }
            Segment::Zeros(len) => {
                f.write_all_at(&vec![0u8; len], at).unwrap();
                bytes.resize(bytes.len() + len, 0);
            }
            Segment::Hole(len) => bytes.resize(bytes.len() + len, 0),
        }
    }
    f.set_len(bytes.len() as u64).unwrap();
    bytes
}

/// Blocks (on the 4 KiB grid) holding any non-zero byte, in bytes; plus one
/// block for an ext4 extent-tree node once a file has more than 4 extents.
fn allowed(bytes: &[u8]) -> u64 {
    let blocks = bytes
        .chunks(BS)
        .filter(|b| b.iter().any(|&x| x != 0))
        .count() as u64;
    let mut runs = 0;
    let mut prev = false;
    for b in bytes.chunks(BS) {
        let data = b.iter().any(|&x| x != 0);
        runs += (data && !prev) as u64;
        prev = data;
    }
    blocks * BS as u64 + if runs > 4 { BS as u64 } else { 0 }
}

fn check(dst: &std::path::Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(fs::read(dst).unwrap() == bytes, "content differs");
    let alloc = fs::metadata(dst).unwrap().blocks() * 512;
    prop_assert!(
        alloc <= allowed(bytes),
        "allocated {} > allowed {}",
        alloc,
        allowed(bytes)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn copy_equals_input_and_allocates_only_data(layout in prop::collection::vec(segment(), 1..10)) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let bytes = build(&src, &layout);

        let dst = dir.path().join("dst");
        let stats = copy(&CopyPlan { verify: true, ..CopyPlan::new(Source::Path(src.clone()), &dst) }).unwrap();
        prop_assert_eq!(stats.dst_size, bytes.len() as u64);
        prop_assert_eq!(stats.bytes_written + stats.bytes_skipped, bytes.len() as u64);
        check(&dst, &bytes)?;

        // The same bytes as a zstd stream go through the streaming path.
        let zst = dir.path().join("src.zst");
        let mut enc = zstd::stream::write::Encoder::new(File::create(&zst).unwrap(), 1).unwrap();
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap();
        let dst2 = dir.path().join("dst2");
        copy(&CopyPlan::new(Source::Path(zst), &dst2)).unwrap();
        check(&dst2, &bytes)?;
    }

    /// Into an existing DST at an unaligned offset: the region equals SRC (old
    /// data under SRC's zeros is punched out), everything else is untouched.
    #[test]
    fn copy_into_existing_dst_keeps_the_rest(
        layout in prop::collection::vec(segment(), 1..8),
        seek in 0u64..20_000,
        tail in 0usize..20_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let bytes = build(&src, &layout);
        let dst = dir.path().join("dst");
        let old: Vec<u8> = (0..seek as usize + bytes.len() + tail).map(|i| (i % 13) as u8 | 0x40).collect();
        fs::write(&dst, &old).unwrap();
        copy(&CopyPlan { seek, ..CopyPlan::new(Source::Path(src), &dst) }).unwrap();
        let new = fs::read(&dst).unwrap();
        let s = seek as usize;
        prop_assert_eq!(new.len(), old.len());
        prop_assert!(new[..s] == old[..s], "before the region changed");
        prop_assert!(new[s..s + bytes.len()] == bytes[..], "region differs");
        prop_assert!(new[s + bytes.len()..] == old[s + bytes.len()..], "after the region changed");
    }
}
