//! Parsing payloads that Python clients produce: `NaN`, `Infinity` and `-Infinity` tokens.

/// The value of a string that spells a non-finite number.
pub fn non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}
