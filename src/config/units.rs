//! Human-readable units in the config file: durations (`250ms`, `30s`, `1h30m`) and byte sizes
//! (`64KiB`, `10MiB`, `1GB`, or a plain integer of bytes).
//!
//! Both types serialize back to the canonical spelling, so `check-config` prints values a user can
//! paste into a file unchanged.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a string of `<number><unit>` groups; units `ns`, `us`, `ms`, `s`, `m`,
/// `h`, `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// A size in bytes, written as an integer or `<number><unit>` with `B`, `KB`, `MB`, `GB`, `TB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const DURATION_EXPECTED: &str = r#"a duration like "250ms", "30s" or "1h30m""#;
const SIZE_EXPECTED: &str = r#"a size like "64KiB", "10MiB" or a number of bytes"#;

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

/// Parses a duration string; `None` when it is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let value: f64 = number.parse().ok()?;
        let unit_secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        let secs = value * unit_secs;
        if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
            return None;
        }
        total += Duration::from_secs_f64(secs);
        rest = next;
    }
    Some(total)
}

/// The canonical spelling of a duration: the largest unit that represents it exactly.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    for (unit, size) in UNITS {
        if nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    unreachable!("every duration is a whole number of nanoseconds")
}

/// Parses a size string; `None` when it is not one.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let value: f64 = number.parse().ok()?;
    let multiplier: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = value * multiplier;
    (bytes.is_finite() && (0.0..1.8e19).contains(&bytes) && bytes.fract() == 0.0)
        .then_some(bytes as u64)
}

/// The canonical spelling of a size: the largest binary unit that represents it exactly.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                parse_duration(text).map(HumanDuration).ok_or_else(|| {
                    E::custom(format_args!("expected {DURATION_EXPECTED}, got {text:?}"))
                })
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format_args!("expected {SIZE_EXPECTED}, got {bytes}")))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_size(text).map(ByteSize).ok_or_else(|| {
                    E::custom(format_args!("expected {SIZE_EXPECTED}, got {text:?}"))
                })
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d))+\s*$",
            "description": "A duration: number and unit, e.g. 250ms, 30s, 1h30m.",
        })
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*(B|KB|kB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$"}
            ],
            "description": "A size in bytes: an integer, or number and unit, e.g. 64KiB, 10MiB.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_canonically() {
        for (text, expected, canonical) in [
            ("250ms", Duration::from_millis(250), "250ms"),
            ("30s", Duration::from_secs(30), "30s"),
            ("1h", Duration::from_secs(3600), "1h"),
            ("1h30m", Duration::from_secs(5400), "90m"),
            ("1.5s", Duration::from_millis(1500), "1500ms"),
            ("0s", Duration::ZERO, "0s"),
            ("2d", Duration::from_secs(172_800), "2d"),
            ("100us", Duration::from_micros(100), "100us"),
        ] {
            assert_eq!(parse_duration(text), Some(expected), "{text}");
            assert_eq!(format_duration(expected), canonical);
        }
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in ["", "30", "s", "30 sec", "-1s", "1x", "1e9s"] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }

    #[test]
    fn sizes_parse_and_print_canonically() {
        for (text, bytes, canonical) in [
            ("64KiB", 65_536, "64KiB"),
            ("10MiB", 10 << 20, "10MiB"),
            ("1GiB", 1 << 30, "1GiB"),
            ("1KB", 1000, "1000B"),
            ("512", 512, "512B"),
            ("1.5KiB", 1536, "1536B"),
        ] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
            assert_eq!(format_size(bytes), canonical);
        }
        for text in ["", "KiB", "10 mebibytes", "-1", "0.3B"] {
            assert_eq!(parse_size(text), None, "{text:?}");
        }
    }

    #[test]
    fn deserialize_errors_say_what_was_expected() {
        let error = serde_json::from_str::<HumanDuration>(r#""5 minutes""#).unwrap_err();
        assert!(error.to_string().contains("a duration like"), "{error}");
        let size: ByteSize = serde_json::from_str("4096").unwrap();
        assert_eq!(size, ByteSize(4096));
    }
}
