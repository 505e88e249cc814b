//! Reads the few ext2/3/4 superblock fields fsmaker needs (UUID, size, free space, kind)
//! straight from the image bytes. It never writes: changes go through e2fsprogs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::BuildError;

const MAGIC: u16 = 0xEF53;
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_FLEX_BG: u32 = 0x200;

crate::named_enum! {
    /// Which member of the ext family a filesystem is, judged by its feature flags.
    pub enum ExtKind("ext filesystem kind") {
        /// No journal, no ext4 feature.
        Ext2 = "ext2",
        /// A journal, no ext4 feature.
        Ext3 = "ext3",
        /// Extents, flex_bg or 64bit.
        Ext4 = "ext4",
    }
}

/// The superblock facts fsmaker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// ext2, ext3 or ext4.
    pub kind: ExtKind,
    /// The filesystem UUID (what `root=UUID=` names).
    pub uuid: [u8; 16],
    /// Bytes per block.
    pub block_size: u64,
    /// The filesystem's length in blocks.
    pub blocks: u64,
    /// Blocks free for new files.
    pub free_blocks: u64,
    /// Inodes free for new files.
    pub free_inodes: u64,
    /// Last write time (seconds since 1970).
    pub wtime: i64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Superblock {
    /// Parses the 1024-byte superblock (as found at byte 1024 of the filesystem); None
    /// unless it is one, with a size in bytes that a `u64` holds.
    pub fn parse(sb: &[u8]) -> Option<Superblock> {
        if sb.len() < 1024 || u16_at(sb, 0x38) != MAGIC {
            return None;
        }
        let log = u32_at(sb, 0x18);
        if log > 6 {
            return None;
        }
        let compat = u32_at(sb, 0x5C);
        let incompat = u32_at(sb, 0x60);
        let wide = incompat & INCOMPAT_64BIT != 0;
        let hi = |o: usize| {
            if wide {
                u64::from(u32_at(sb, o)) << 32
            } else {
                0
            }
        };
        let kind = if incompat & (INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG | INCOMPAT_64BIT) != 0 {
            ExtKind::Ext4
        } else if compat & COMPAT_HAS_JOURNAL != 0 {
            ExtKind::Ext3
        } else {
            ExtKind::Ext2
        };
        let mut uuid = [0; 16];
        uuid.copy_from_slice(&sb[0x68..0x78]);
        let blocks = u64::from(u32_at(sb, 0x04)) | hi(0x150);
        blocks.checked_mul(1024 << log)?;
        Some(Superblock {
            kind,
            uuid,
            block_size: 1024 << log,
            blocks,
            free_blocks: u64::from(u32_at(sb, 0x0C)) | hi(0x158),
            free_inodes: u64::from(u32_at(sb, 0x10)),
            wtime: i64::from(u32_at(sb, 0x30)),
        })
    }

    /// Reads the superblock of the filesystem image at `path`.
    pub fn read(path: &Path) -> Result<Superblock, BuildError> {
        let io = |e| BuildError::io(format!("cannot read {}", path.display()), e);
        let mut f = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BuildError::RootfsMissing(path.to_owned())
            } else {
                io(e)
            }
        })?;
        let mut buf = vec![0; 1024];
        f.seek(SeekFrom::Start(1024)).map_err(io)?;
        let got = f.read(&mut buf).map_err(io)?;
        buf.truncate(got);
        Superblock::parse(&buf).ok_or_else(|| BuildError::NotExt(path.to_owned()))
    }

    /// The filesystem size in bytes.
    pub fn size(&self) -> u64 {
        self.blocks * self.block_size
    }

    /// The UUID in its usual text form.
    pub fn uuid_string(&self) -> String {
        let h = hex::encode(self.uuid);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(incompat: u32, compat: u32) -> Vec<u8> {
        let mut sb = vec![0u8; 1024];
        sb[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        sb[0x18..0x1C].copy_from_slice(&2u32.to_le_bytes());
        sb[0x04..0x08].copy_from_slice(&1000u32.to_le_bytes());
        sb[0x0C..0x10].copy_from_slice(&600u32.to_le_bytes());
        sb[0x5C..0x60].copy_from_slice(&compat.to_le_bytes());
        sb[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
        sb[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        for (i, b) in sb[0x68..0x78].iter_mut().enumerate() {
            *b = i as u8;
        }
        sb
    }

    #[test]
    fn parses_kind_size_and_uuid() {
        let ext2 = Superblock::parse(&sample(0, 0)).unwrap();
        assert_eq!(ext2.kind, ExtKind::Ext2);
        assert_eq!(ext2.block_size, 4096);
        assert_eq!(ext2.blocks, 1000, "high word ignored without 64bit");
        assert_eq!(ext2.free_blocks, 600);
        assert_eq!(ext2.uuid_string(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(
            Superblock::parse(&sample(0, COMPAT_HAS_JOURNAL))
                .unwrap()
                .kind,
            ExtKind::Ext3
        );
        let wide = Superblock::parse(&sample(INCOMPAT_64BIT | INCOMPAT_EXTENTS, 4)).unwrap();
        assert_eq!(wide.kind, ExtKind::Ext4);
        assert_eq!(wide.blocks, (1 << 32) + 1000);
    }

    #[test]
    fn rejects_other_bytes() {
        assert!(Superblock::parse(&[0u8; 1024]).is_none());
        assert!(Superblock::parse(&[0u8; 100]).is_none());
        let mut huge = sample(INCOMPAT_64BIT, 0);
        huge[0x150..0x154].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Superblock::parse(&huge).is_none(), "a size past 2^64 bytes");
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Random and damaged superblocks: a superblock whose numbers hold, or None.
        #[test]
        fn any_bytes_are_a_superblock_or_none(
            sb in proptest::prop_oneof![
                crate::fuzz::bytes(1100),
                crate::fuzz::mutated(sample(INCOMPAT_64BIT | INCOMPAT_EXTENTS, 4)),
            ]
        ) {
            if let Some(s) = crate::fuzz::within(move || Superblock::parse(&sb)) {
                proptest::prop_assert!(s.block_size >= 1024);
                let _ = (s.size(), s.uuid_string());
            }
        }
    }
}
