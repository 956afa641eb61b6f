//! The History section: each project's queue over the last hour and, on
//! demand, the last day, drawn by [`chart`](crate::dashboard::chart).

use registre_actors::history::{COARSE_STEP_SECS, FINE_STEP_SECS, Point};

use super::View;
use super::format::{escape, human};
use crate::dashboard::chart;

impl View<'_> {
    pub(super) fn chart(&self, name: &str) -> String {
        // Drawn as of the start of the current slot: the drawing changes
        // when a slot does, not at every tick of the event stream.
        let now = self.now_ms / 1000;
        let (now, day_now) = (now - now % FINE_STEP_SECS, now - now % COARSE_STEP_SECS);
        let series = self.dash.state.history().series(name, now);
        let n = escape(name);
        // Each chart spans what there is (a monitor started ten minutes ago
        // has ten minutes to show), in whole units, up to its full length.
        let span = |points: &[Point], unit: u64, full: u64| {
            let since = points
                .first()
                .map_or(0, |p| now.saturating_sub(u64::from(p.at)));
            (since / unit + 1).saturating_mul(unit).clamp(unit, full)
        };
        let hour = span(&series.hour, 60, 3600);
        let day = span(&series.day, 3600, 86_400);
        let axis = |span: u64| {
            format!(
                "<div class=\"axis\"><span>−{}</span><span>−{}</span><span>now</span></div>",
                human(span as i64),
                human((span / 2) as i64)
            )
        };
        format!(
            "<figure id=\"chart-{n}\" class=\"block\"><figcaption>{n}: last {}</figcaption>\
             <div class=\"legend\">{}</div>{}{}\
             <details id=\"day-{n}\"><summary>Last {}</summary><div class=\"legend\">{}</div>{}{}</details></figure>",
            human(hour as i64),
            chart::legend(&series.hour),
            chart::svg(
                &series.hour,
                now,
                hour,
                FINE_STEP_SECS,
                &format!("{name}: queue over the last {}", human(hour as i64))
            ),
            axis(hour),
            human(day as i64),
            chart::legend(&series.day),
            chart::svg(
                &series.day,
                day_now,
                day,
                COARSE_STEP_SECS,
                &format!("{name}: queue over the last {}", human(day as i64))
            ),
            axis(day),
        )
    }
}
