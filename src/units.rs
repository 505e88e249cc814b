//! Byte sizes as people write them (`2G`, `512K`, `4096`) and read them (`4.0 GiB`).
//! The bottom of the crate: every tool's flags and messages use these. Pure functions:
//! no I/O, and no dependency on any other module.

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{value}': {reason}")]
pub struct SizeError {
    /// The text as given.
    pub value: String,
    /// Why it is not a size.
    pub reason: String,
}

/// Parse a byte count with an optional binary suffix: K, M, G, T (any case,
/// optionally followed by `iB`), e.g. `2G` = 2 GiB.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let bad = |reason: String| SizeError {
        value: text.to_string(),
        reason,
    };
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    if num.is_empty() {
        return Err(bad("expected a number of bytes, e.g. 4096, 512K, 2G".into()));
    }
    let num: u64 = num.parse().map_err(|_| bad("number too large".into()))?;
    let unit = suffix.strip_suffix("iB").unwrap_or(suffix);
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => {
            return Err(bad(format!(
                "unknown size suffix '{suffix}' (use K, M, G or T)"
            )));
        }
    };
    num.checked_mul(1u64 << shift)
        .ok_or_else(|| bad("size too large".into()))
}

/// A byte count for people: `4.0 GiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary_and_case_insensitive() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("3MiB").unwrap(), 3 << 20);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("0").unwrap(), 0);
    }

    #[test]
    fn bad_sizes_say_why() {
        let msg = |s| parse_size(s).unwrap_err().to_string();
        assert_eq!(
            msg("2Q"),
            "invalid size '2Q': unknown size suffix 'Q' (use K, M, G or T)"
        );
        assert!(msg("G").contains("expected a number"));
        assert!(msg("-1").contains("expected a number"));
        assert!(msg("99999999999T").contains("too large"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(4 << 30), "4.0 GiB");
    }
}
