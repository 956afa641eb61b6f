//! A project's history as a small SVG chart, drawn by hand.
//!
//! Four lines (waiting, processing, failed, active workers) over the last
//! hour or day, a band underneath with a tick wherever the monitor acted
//! (its `<title>` says what it did), and no script: the chart is part of
//! the server-rendered page, and the event stream sends it again when a new
//! slot is written. Colours come from the stylesheet (classes only: the
//! Content-Security-Policy allows no inline style).

use std::fmt::Write;

use registre_actors::history::Point;

use super::render::{escape, utc_hm};

/// The drawing's width and the lines' height, in SVG units.
const W: f64 = 600.0;
const H: f64 = 120.0;
/// The band of action ticks under the lines.
const BAND: f64 = 18.0;

/// How a series reads its value from a slot.
type Value = fn(&Point) -> u32;

/// The series a chart draws: CSS class, legend, value.
const SERIES: [(&str, &str, Value); 4] = [
    ("s-waiting", "waiting", |p| p.waiting),
    ("s-processing", "processing", |p| p.processing),
    ("s-failed", "failed", |p| p.failed),
    ("s-workers", "active workers", |p| p.active_workers),
];

/// The smallest 1, 2 or 5 × 10ⁿ at or above `n` (at least 1).
fn nice_ceiling(n: u32) -> u32 {
    let mut step: u32 = 1;
    loop {
        for m in [1u32, 2, 5] {
            let v = step.saturating_mul(m);
            if v >= n {
                return v.max(1);
            }
        }
        if step > u32::MAX / 10 {
            return u32::MAX;
        }
        step *= 10;
    }
}

/// What the monitor did in a slot, in words, or `None`.
fn actions(p: &Point) -> Option<String> {
    let parts: Vec<String> = [
        (p.resets, "reset"),
        (p.reaps, "worker reaped"),
        (p.releases, "released"),
        (p.failed_out, "failed out of attempts"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The class of a slot's tick: its most serious action.
fn tick_class(p: &Point) -> &'static str {
    if p.failed_out > 0 {
        "mk-failed"
    } else if p.reaps > 0 || p.releases > 0 {
        "mk-reap"
    } else {
        "mk-reset"
    }
}

/// An SVG of `points` over the `span` seconds ending at `now` (Unix
/// seconds), a slot being `step` seconds wide; `label` names it for
/// screen readers.
pub fn svg(points: &[Point], now: u64, span: u64, step: u64, label: &str) -> String {
    let from = now.saturating_sub(span) as f64;
    let x = |at: u32| ((f64::from(at) - from) / span as f64 * W).clamp(0.0, W);
    let counted: Vec<&Point> = points.iter().filter(|p| p.counted).collect();
    let top = nice_ceiling(
        counted
            .iter()
            .flat_map(|p| SERIES.iter().map(move |(_, _, v)| v(p)))
            .max()
            .unwrap_or(0),
    );
    let y = |v: u32| H - f64::from(v) / f64::from(top) * (H - 4.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">",
        H + BAND,
        escape(label)
    );
    for frac in [0.0, 0.5, 1.0] {
        let gy = H - frac * (H - 4.0);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"0\" x2=\"{W}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" vector-effect=\"non-scaling-stroke\"/>"
        );
    }
    for (class, name, value) in SERIES {
        let mut d = String::new();
        let mut last: Option<u32> = None;
        for p in &counted {
            // A gap of more than two slots (no count: the project was not
            // reached) breaks the line.
            let joined = last.is_some_and(|at| u64::from(p.at - at) <= 2 * step);
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if joined { "L" } else { "M" },
                x(p.at),
                y(value(p))
            );
            last = Some(p.at);
        }
        if !d.is_empty() {
            let _ = write!(
                out,
                "<path class=\"{class}\" d=\"{d}\" vector-effect=\"non-scaling-stroke\"><title>{name}</title></path>"
            );
        }
    }
    for p in points {
        if let Some(what) = actions(p) {
            let tx = x(p.at);
            let _ = write!(
                out,
                "<line class=\"mk {}\" x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" vector-effect=\"non-scaling-stroke\"><title>{} UTC: {}</title></line>",
                tick_class(p),
                H + 3.0,
                H + BAND - 1.0,
                utc_hm(u64::from(p.at)),
                escape(&what)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The legend and scale above a chart: the top of the scale, then each
/// series' swatch.
pub fn legend(points: &[Point]) -> String {
    let top = nice_ceiling(
        points
            .iter()
            .filter(|p| p.counted)
            .flat_map(|p| SERIES.iter().map(move |(_, _, v)| v(p)))
            .max()
            .unwrap_or(0),
    );
    let mut out = format!("<span class=\"scale\">scale 0–{top}</span>");
    for (class, name, _) in SERIES {
        let _ = write!(out, "<span class=\"key {class}\">{name}</span>");
    }
    out.push_str("<span class=\"key mk-reset\">reset</span><span class=\"key mk-reap\">reaped/released</span><span class=\"key mk-failed\">failed out</span>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_a_round_number() {
        assert_eq!(
            [0, 1, 3, 7, 10, 11, 260].map(nice_ceiling),
            [1, 1, 5, 10, 10, 20, 500]
        );
    }

    #[test]
    fn lines_break_on_gaps_and_actions_get_ticks() {
        let now = 1_800_000_000u64;
        let p = |ago: u64, waiting: u32, resets: u16| Point {
            at: (now - ago) as u32,
            waiting,
            resets,
            counted: true,
            ..Point::default()
        };
        let points = [p(100, 5, 0), p(90, 6, 2), p(30, 4, 0)];
        let svg = svg(&points, now, 3600, 10, "dev <last hour>");
        assert!(
            svg.contains("aria-label=\"dev &lt;last hour&gt;\""),
            "{svg}"
        );
        let waiting = svg
            .split("class=\"s-waiting\" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(waiting.matches('M').count(), 2, "{waiting}");
        assert_eq!(svg.matches("class=\"mk mk-reset\"").count(), 1);
        assert!(svg.contains("2 reset</title>"), "{svg}");
        assert!(!svg.contains("style="));
    }
}
