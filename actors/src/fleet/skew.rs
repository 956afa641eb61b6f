//! A worker's clock offset, measured from its heartbeats: one written
//! between two reads was written, by the database's clock, between their
//! two `now()`s, which bounds the writer's offset.

use std::collections::BTreeMap;

/// Clock offsets within this many seconds are heartbeat jitter, not skew.
pub const SKEW_TOLERANCE: f64 = 30.0;

/// A worker whose clock is off, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Skew {
    pub project: String,
    pub worker: String,
    /// Seconds ahead of the database (negative: behind), the bound
    /// nearest zero.
    pub offset: f64,
}

/// Notes a worker's clock offset, known to lie between `low` and `high`
/// seconds: beyond the tolerance it is kept (as `low`, which makes its jobs
/// look youngest) and reported once.
pub(super) fn note_offset(
    offsets: &mut BTreeMap<String, f64>,
    reported_before: &mut bool,
    id: &str,
    low: f64,
    high: f64,
) -> Option<Skew> {
    let reported = if low > SKEW_TOLERANCE {
        low
    } else if high < -SKEW_TOLERANCE {
        high
    } else {
        return None;
    };
    if !low.is_finite() {
        return None;
    }
    offsets.insert(id.to_string(), low);
    if *reported_before {
        return None;
    }
    *reported_before = true;
    Some(Skew {
        project: String::new(),
        worker: id.to_string(),
        offset: reported,
    })
}
