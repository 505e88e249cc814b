//! The fixed part of a qcow2 header (versions 2 and 3), read from untrusted bytes before
//! any program opens the image: what the header promises must fit in the file, so a
//! truncated image is told at once, and what imgtest will not boot (a backing file, which
//! would let the image read another host file; encryption, which needs a key) is refused.
//! Pure: the caller reads the bytes; `qemu-img check` looks at the rest.

/// The qcow2 magic, `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// The bytes of the header this reads (version 3's fixed part).
pub const HEADER_LEN: usize = 104;

/// What a qcow2 header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// The disk size the guest sees, in bytes.
    pub virtual_size: u64,
    /// Bytes per cluster (512 to 2 MiB).
    pub cluster_size: u64,
}

/// Why a header is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not a qcow2 header, or one this does not know.
    #[error("{0}")]
    Invalid(String),
    /// The header places tables past the end of the file.
    #[error("{0}")]
    Truncated(String),
    /// The image depends on more than its own file, or on a key.
    #[error("{0}")]
    Unsupported(String),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

impl Header {
    /// Reads the header at the start of `bytes` (at least the first [`HEADER_LEN`] bytes
    /// of a file of `file_len` bytes).
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<Header, HeaderError> {
        let invalid = |m: String| Err(HeaderError::Invalid(m));
        if bytes.len() < 72 || bytes[..4] != MAGIC {
            return invalid("not a qcow2 header".into());
        }
        let version = be32(bytes, 4);
        if !(2..=3).contains(&version) || (version == 3 && bytes.len() < HEADER_LEN) {
            return invalid(format!("qcow2 version {version} is not 2 or 3"));
        }
        let cluster_bits = be32(bytes, 20);
        if !(9..=21).contains(&cluster_bits) {
            return invalid(format!(
                "cluster size 2^{cluster_bits} is not 512 B to 2 MiB"
            ));
        }
        let cluster_size = 1u64 << cluster_bits;
        let virtual_size = be64(bytes, 24);
        if virtual_size == 0 {
            return invalid("a disk of 0 bytes".into());
        }
        if be32(bytes, 16) != 0 || be64(bytes, 8) != 0 {
            return Err(HeaderError::Unsupported(
                "it has a backing file: imgtest tests one self-contained image".into(),
            ));
        }
        if be32(bytes, 32) != 0 {
            return Err(HeaderError::Unsupported(
                "it is encrypted: imgtest cannot boot it without its key".into(),
            ));
        }
        let tables = [
            ("L1 table", be64(bytes, 40), u64::from(be32(bytes, 36)) * 8),
            (
                "refcount table",
                be64(bytes, 48),
                u64::from(be32(bytes, 56)) * cluster_size,
            ),
        ];
        for (what, offset, len) in tables {
            if offset % cluster_size != 0 {
                return invalid(format!(
                    "its {what} at byte {offset} is not cluster-aligned"
                ));
            }
            match offset.checked_add(len) {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(HeaderError::Truncated(format!(
                        "its {what} at byte {offset} runs past the end of the file ({file_len} bytes)"
                    )));
                }
            }
        }
        Ok(Header {
            version,
            virtual_size,
            cluster_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header of a 64 MiB image with 64 KiB clusters: refcount table at
    /// 64 KiB (one cluster), L1 table (one entry) at 192 KiB.
    fn header() -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(64u64 << 20).to_be_bytes());
        h[36..40].copy_from_slice(&1u32.to_be_bytes());
        h[40..48].copy_from_slice(&(192u64 << 10).to_be_bytes());
        h[48..56].copy_from_slice(&(64u64 << 10).to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[100..104].copy_from_slice(&(HEADER_LEN as u32).to_be_bytes());
        h
    }

    #[test]
    fn reads_a_header_and_refuses_what_cannot_be_booted() {
        let h = header();
        let file = 256 << 10;
        assert_eq!(
            Header::parse(&h, file),
            Ok(Header {
                version: 3,
                virtual_size: 64 << 20,
                cluster_size: 64 << 10,
            })
        );
        let e = Header::parse(&h, 100 << 10).unwrap_err();
        assert!(matches!(e, HeaderError::Truncated(_)), "{e}");
        let mut backed = h.clone();
        backed[16..20].copy_from_slice(&9u32.to_be_bytes());
        backed[8..16].copy_from_slice(&200u64.to_be_bytes());
        let e = Header::parse(&backed, file).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it has a backing file: imgtest tests one self-contained image"
        );
        let mut crypt = h.clone();
        crypt[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(
            Header::parse(&crypt, file),
            Err(HeaderError::Unsupported(_))
        ));
        let mut huge = h.clone();
        huge[40..48].copy_from_slice(&(u64::MAX - 0xffff).to_be_bytes());
        huge[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Header::parse(&huge, u64::MAX),
            Err(HeaderError::Truncated(_))
        ));
        assert!(Header::parse(&h[..50], file).is_err());
        assert!(Header::parse(b"QFI\xfb", file).is_err());
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Random and damaged headers, in files of any length: a header whose tables fit
        /// in the file, or a clear error.
        #[test]
        fn any_bytes_are_a_header_or_a_clear_error(
            bytes in proptest::prop_oneof![crate::fuzz::bytes(200), crate::fuzz::mutated(header())],
            file_len in proptest::prop_oneof![0u64..(1 << 20), proptest::num::u64::ANY],
        ) {
            match crate::fuzz::within(move || Header::parse(&bytes, file_len)) {
                Ok(h) => proptest::prop_assert!(h.virtual_size > 0 && h.cluster_size >= 512),
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
