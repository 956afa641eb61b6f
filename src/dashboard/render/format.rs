//! How values are written on the page: escaped text, moments and
//! durations a person reads at a glance, job ids.
//!
//! Every value from the database or a log goes through [`escape`]. Times
//! are written as `<time data-at>` in UTC, which the script shows as
//! "12 s ago".

/// Text made safe for HTML, in text and in quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-29T14:02:11Z`.
pub fn iso(unix_secs: u64) -> String {
    let (y, m, d) = civil((unix_secs / 86_400) as i64);
    let s = unix_secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `14:02` (UTC).
pub fn utc_hm(unix_secs: u64) -> String {
    let s = unix_secs % 86_400;
    format!("{:02}:{:02}", s / 3600, s / 60 % 60)
}

/// `14:02:11` (UTC).
fn utc_hms(unix_secs: u64) -> String {
    let s = unix_secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A duration in words a person reads at a glance: `45 s`, `3 min 5 s`,
/// `2 h 5 min`, `3 d 4 h`.
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s % 60 == 0 || s >= 600 => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 if s % 3600 < 60 => format!("{} h", s / 3600),
        3600..86_400 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ if s % 86_400 < 3600 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

/// A moment, as `<time>`: UTC clock time, which the script turns into
/// "… ago" (and keeps up to date).
pub(super) fn when(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    format!(
        "<time data-at=\"{at_ms}\" datetime=\"{iso}\" title=\"{iso}\">{} UTC</time>",
        utc_hms(secs),
        iso = iso(secs)
    )
}

/// A name (a worker's) as code, escaped.
pub(super) fn code(name: &str) -> String {
    format!("<code>{}</code>", escape(name))
}

/// A job id as shown: its first 8 characters, the whole in the tooltip.
pub(super) fn job_id(id: &str) -> String {
    format!(
        "<code title=\"{}\">{}</code>",
        escape(id),
        escape(id.get(..8).unwrap_or(id))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn dates_and_durations() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_hm(1_795_000_000), "11:06");
        assert_eq!(
            [5, 60, 65, 600, 3700, 90_000].map(human),
            [
                "5 s",
                "1 min",
                "1 min 5 s",
                "10 min",
                "1 h 1 min",
                "1 d 1 h"
            ]
        );
    }
}
