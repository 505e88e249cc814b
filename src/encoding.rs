//! Base64 as OpenSSH writes key blobs: what SSH public keys look like in files, and how
//! imgtest compares them with the keys an SSH handshake shows (also the HTML report's
//! embedded screenshots). The `base64` crate does the work.

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Standard base64 that reads text with or without its padding.
const PADDING_OPTIONAL: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding, as OpenSSH's public key lines write key blobs.
pub fn base64(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// The bytes of standard base64 text (padding optional), None if it is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    PADDING_OPTIONAL.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_padding() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        for bytes in [&b""[..], b"M", b"Ma", b"Man", b"\x00\xff\x10any bytes"] {
            assert_eq!(base64_decode(&base64(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64_decode("TWE").as_deref(), Some(&b"Ma"[..]));
        assert_eq!(base64_decode("T"), None);
        assert_eq!(base64_decode("not base64!"), None);
    }
}
