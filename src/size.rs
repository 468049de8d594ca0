//! Byte counts as people write them: `4096`, `64K`, `32M`, `1G`, `1T`.
//!
//! One parser for every place that takes a size: `shmbusd --size` and
//! `--pipe NAME:CAPACITY`, the daemon's config file, and the `shmbus`
//! command's `--capacity` and `--slot-size`.

/// Parses a byte count with an optional binary suffix: `4096`, `64K`, `32M`,
/// `1G`, `1T` (also `KB`/`KiB`, `MB`/`MiB`, ..., in any case; `B` alone means
/// bytes). Suffixes are powers of 1024; surrounding spaces are ignored.
///
/// # Errors
/// A message saying what is wrong: no digits, an unknown suffix, or a count
/// that does not fit in a `u64`.
///
/// # Examples
/// ```
/// use shmbus::size::parse_size;
/// assert_eq!(parse_size("64M"), Ok(64 << 20));
/// assert_eq!(parse_size("64m"), Ok(64 << 20));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("12Q").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "{s:?} is not a size: expected a number of bytes like 4096 or 64M"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is too large for a size"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{s:?} has an unknown suffix {suffix:?}: use K, M, G or T (powers of 1024)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large for a size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("0", 0),
            ("4096", 4096),
            (" 4096 ", 4096),
            ("12B", 12),
            ("12b", 12),
            ("64k", 64 << 10),
            ("64K", 64 << 10),
            ("64KB", 64 << 10),
            ("64KiB", 64 << 10),
            ("256K", 256 << 10),
            ("32M", 32 << 20),
            ("64m", 64 << 20),
            ("64mib", 64 << 20),
            ("1G", 1 << 30),
            ("1g", 1 << 30),
            ("1T", 1 << 40),
            ("16777215T", 16_777_215 << 40),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s:?}");
        }
        for bad in [
            "",
            " ",
            "M",
            "-1",
            "+1",
            "1.5M",
            "12Q",
            "1 2",
            "1P",
            "99999999999999999999",
            "16777216T",
            "20000000T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let e = parse_size("12Q").unwrap_err();
        assert!(e.contains("suffix") && e.contains("12Q"), "{e}");
    }
}
