//! Durations as operators write them: `250ms`, `30s`, `3m`, `1h`, `1.5s`.

use std::time::Duration;

/// What every duration setting accepts, for error messages.
pub const EXPECTED: &str = "a positive duration such as 250ms, 30s, 3m or 1h";

/// Parses a positive duration with a unit (`ms`, `s`, `m`, `h`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number = number.trim();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    if !value.is_finite() {
        return Err("is not a finite number".into());
    }
    if value <= 0.0 {
        return Err("must be positive".into());
    }
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err("has no unit".into()),
        other => return Err(format!("has an unknown unit {other:?}")),
    };
    let duration = Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| "is too large".to_string())?;
    if duration < Duration::from_millis(1) {
        return Err("is shorter than 1ms".into());
    }
    Ok(duration)
}

/// Whether `text` is zero in any unit (`0`, `0s`, `0ms`), which [`parse`]
/// refuses but a setting may mean as "none".
pub fn is_zero(text: &str) -> bool {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    matches!(unit, "" | "ms" | "s" | "m" | "h") && number.trim().parse::<f64>() == Ok(0.0)
}

/// Formats a duration the way [`parse`] reads it, for messages.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refuses_what_is_not_a_positive_duration() {
        for bad in [
            "", "0s", "-5s", "30", "abc", "5x", "1.5.2s", "0.1ms", "nans",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn shows_the_largest_whole_unit() {
        assert_eq!(show(Duration::from_secs(180)), "3m");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
    }
}
