//! Recognise what a byte stream is from its first bytes (magic numbers).
//!
//! Pure functions over a prefix of the data: no I/O here. Today this knows the
//! compression formats sparsecopy decompresses on the fly; image formats
//! (qcow2, vmdk, ISO 9660) belong beside it.

/// How many leading bytes [`compression`] needs to decide.
pub const MAGIC_LEN: usize = 6;

crate::named_enum! {
    /// A compression format recognised by its magic number.
    pub enum Compression("compression") {
        /// gzip (also several concatenated members).
        Gzip = "gzip",
        /// Zstandard.
        Zstd = "zstd",
        /// xz (LZMA2).
        Xz = "xz",
    }
}

/// The compression format whose magic number `head` starts with, if any.
pub fn compression(head: &[u8]) -> Option<Compression> {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
    if head.starts_with(GZIP) {
        Some(Compression::Gzip)
    } else if head.starts_with(ZSTD) {
        Some(Compression::Zstd)
    } else if head.starts_with(XZ) {
        Some(Compression::Xz)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_magic_and_nothing_else() {
        assert_eq!(compression(&[0x1f, 0x8b, 8, 0]), Some(Compression::Gzip));
        assert_eq!(
            compression(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        assert_eq!(compression(b"\xfd7zXZ\0rest"), Some(Compression::Xz));
        assert_eq!(
            compression(b"\xfd7zXZ"),
            None,
            "a truncated xz magic is not xz"
        );
        assert_eq!(compression(&[0u8; 512]), None);
        assert_eq!(compression(&[0x1f]), None);
        assert_eq!(compression(b""), None);
    }
}
