//! Parsing of the human units the config accepts: sizes (`"10GiB"`, `"500 MB"`, `123456`),
//! percentages of a filesystem (`"15%"`) and durations (`"14d"`, `"36h"`, `"1d12h"`).
//!
//! These functions read no file and no clock: they turn text into values or into an error
//! sentence that says what was expected. The caller adds the file, line and key.

use std::fmt;

use serde::Serialize;

use crate::units::quoted;

/// A size in the config: an absolute number of bytes or a share of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeSpec {
    Bytes(u64),
    /// Percent of the filesystem's size, in `(0, 100]`.
    Percent(f64),
}

impl SizeSpec {
    /// Resolves the spec against a filesystem of `fs_bytes` bytes.
    #[must_use]
    pub fn resolve(self, fs_bytes: u64) -> u64 {
        match self {
            SizeSpec::Bytes(b) => b,
            // Truncation is intended: budgets are whole bytes and a filesystem is < 2^53 bytes.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            SizeSpec::Percent(p) => ((fs_bytes as f64) * p / 100.0) as u64,
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeSpec::Bytes(b) => f.write_str(&crate::units::human_bytes(*b)),
            SizeSpec::Percent(p) => write!(f, "{p}% of the filesystem"),
        }
    }
}

pub(crate) const SIZE_EXPECTED: &str = "a size like \"10GiB\", \"500 MB\" or \"123456 B\", or a percentage of the filesystem like \"15%\"";

/// The largest size accepted: 1 EiB (more than any filesystem; it keeps sums from wrapping).
pub(crate) const MAX_SIZE: u64 = 1 << 60;

/// The error for a number written without a unit (other than 0): `10` could mean bytes, GiB or
/// a percentage, and reading it as 10 bytes silently is how a floor of "10" frees nothing.
#[must_use]
pub(crate) fn bare_number(text: &str) -> String {
    let n = text.trim();
    if n.len() > 20 {
        return format!("invalid size {}: a number needs a unit", quoted(text));
    }
    format!(
        "invalid size {}: a number needs a unit: \"{n} B\" for bytes, \"{n}GiB\", or \"{n}%\" of the filesystem",
        quoted(text)
    )
}

/// Parses a size with its unit. Decimal units (kB, MB, GB, TB) are powers of 1000, binary
/// units (KiB, MiB, GiB, TiB) and the bare letters (K, M, G, T, like `du` and docker) are
/// powers of 1024. Units are case-insensitive. Only 0 may go without one.
pub fn parse_size(text: &str) -> Result<SizeSpec, String> {
    let q = quoted(text);
    let t = text.trim();
    if let Some(num) = t.strip_suffix('%') {
        let p: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("invalid percentage {q}: expected {SIZE_EXPECTED}"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!(
                "invalid percentage {q}: a share of the filesystem must be above 0% and at most 100%"
            ));
        }
        return Ok(SizeSpec::Percent(p));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("invalid size {q}: expected {SIZE_EXPECTED}"));
    }
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" if num.parse::<f64>().is_ok_and(|v| v == 0.0) => 1,
        "" => return Err(bare_number(text)),
        "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {q}: unknown unit {}; expected {SIZE_EXPECTED}",
                quoted(unit.trim())
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {q}: expected {SIZE_EXPECTED}"))?;
    #[allow(clippy::cast_precision_loss)]
    let bytes = value * factor as f64;
    #[allow(clippy::cast_precision_loss)]
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("invalid size {q}: too large"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(SizeSpec::Bytes(bytes.round() as u64))
}

/// How a budget chooses what goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Eviction {
    /// The least expected rebuild time for the bytes (the default).
    Cost,
    /// Least recently used first.
    Lru,
}

impl Eviction {
    /// As the config spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Eviction::Cost => "cost",
            Eviction::Lru => "lru",
        }
    }
}

/// How cache mounts are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protect {
    /// Never removed.
    Always,
    /// Removed only when the budget cannot be met otherwise (the default).
    LastResort,
    /// Removed only while the reclaimable cache is over `hard-limit`.
    UnderHardLimit,
    /// Treated like any other record.
    No,
}

impl Protect {
    /// As the config spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Protect::Always => "always",
            Protect::LastResort => "last-resort",
            Protect::UnderHardLimit => "under-hard-limit",
            Protect::No => "no",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("10GiB"), Ok(SizeSpec::Bytes(10 << 30)));
        assert_eq!(parse_size("500 MB"), Ok(SizeSpec::Bytes(500_000_000)));
        assert_eq!(parse_size("123456 B"), Ok(SizeSpec::Bytes(123_456)));
        assert_eq!(parse_size("0"), Ok(SizeSpec::Bytes(0)));
        // A bare number is refused, with what to write instead.
        let e = parse_size("10").unwrap_err();
        assert!(e.contains("\"10 B\"") && e.contains("\"10%\""), "{e}");
        assert_eq!(parse_size("1.5 kib"), Ok(SizeSpec::Bytes(1536)));
        assert_eq!(parse_size("2G"), Ok(SizeSpec::Bytes(2 << 30)));
        assert_eq!(parse_size("15%"), Ok(SizeSpec::Percent(15.0)));
        assert_eq!(parse_size(" 2.5 % "), Ok(SizeSpec::Percent(2.5)));
    }

    #[test]
    fn bad_sizes_say_what_is_expected() {
        let e = parse_size("10 parsecs").unwrap_err();
        assert!(e.contains("unknown unit \"parsecs\""), "{e}");
        assert!(e.contains("\"10GiB\""), "{e}");
        assert!(parse_size("GiB").unwrap_err().contains("invalid size"));
        assert!(parse_size("0%").unwrap_err().contains("above 0%"));
        assert!(parse_size("150%").unwrap_err().contains("at most 100%"));
        assert!(parse_size("1e30 TB").is_err());
    }

    #[test]
    fn percent_resolves_against_the_filesystem() {
        assert_eq!(SizeSpec::Percent(10.0).resolve(1000), 100);
        assert_eq!(SizeSpec::Bytes(7).resolve(1000), 7);
    }
}
