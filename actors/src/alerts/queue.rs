//! The alert queue: rate-limited per project, kind and subject, bounded,
//! and never in the checks' way.
//!
//! [`AlertSink::send`] holds back an alert of a kind already sent for its
//! project within the repeat period, then hands it over with `try_send`: a
//! full queue drops it and counts the drop, so a check never waits for the
//! network. Whoever delivers them reads the [`AlertQueue`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Alert, AlertCounters};

/// Alerts waiting to be sent; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 64;

/// An alert to deliver, and how many of its kind were held back since the
/// last one went out.
#[derive(Debug, Clone)]
pub struct Queued {
    pub alert: Alert,
    pub suppressed: u64,
}

/// What the repeat limit is kept per: project, kind, subject.
type LimitKey = (String, &'static str, String);

/// Where the checks hand alerts over; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertSink {
    tx: mpsc::Sender<Queued>,
    repeat_after: Duration,
    /// Last sent, and held back since, per (project, kind, subject).
    limits: Arc<Mutex<HashMap<LimitKey, (Instant, u64)>>>,
    pub counters: Arc<AlertCounters>,
    /// A drop is logged once per run of drops.
    dropping: Arc<AtomicBool>,
}

/// The delivering end of the queue.
#[derive(Debug)]
pub struct AlertQueue {
    rx: mpsc::Receiver<Queued>,
    /// Shared with the sink: the deliverer counts what it sent or gave up.
    pub counters: Arc<AlertCounters>,
}

impl AlertQueue {
    /// The next alert, in order; `None` once every sink is gone.
    pub async fn next(&mut self) -> Option<Queued> {
        self.rx.recv().await
    }
}

impl AlertSink {
    /// A queue: the sink for the checks, the other end for the deliverer.
    pub fn new(repeat_after: Duration) -> (AlertSink, AlertQueue) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::new(AlertCounters::default());
        let sink = AlertSink {
            tx,
            repeat_after,
            limits: Arc::default(),
            counters: counters.clone(),
            dropping: Arc::default(),
        };
        (sink, AlertQueue { rx, counters })
    }

    /// Queues `alert` unless one of its kind went out for its project
    /// within the repeat period. Never waits.
    pub fn send(&self, alert: Alert) {
        let Some(suppressed) = self.admit(&alert) else {
            return;
        };
        let (environment, kind) = (alert.environment.clone(), alert.kind);
        match self.tx.try_send(Queued { alert, suppressed }) {
            Ok(()) => self.dropping.store(false, Ordering::Relaxed),
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    log::warn!(environment = environment.as_str(), kind = kind,
                        capacity = QUEUE_CAPACITY;
                        "📮 Alert queue full (webhook slow or down): dropping alerts");
                }
            }
        }
    }

    /// The repeat limit: `None` when `alert` is held back, else how many of
    /// its kind were held back since the last one.
    fn admit(&self, alert: &Alert) -> Option<u64> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let key = (alert.environment.clone(), alert.kind, alert.subject.clone());
        let now = Instant::now();
        match limits.get_mut(&key) {
            Some((last, held)) if now.duration_since(*last) < self.repeat_after => {
                *held += 1;
                self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
                log::debug!(environment = alert.environment.as_str(), kind = alert.kind;
                    "📮 Alert held back by the repeat limit");
                None
            }
            Some((last, held)) => {
                *last = now;
                Some(std::mem::take(held))
            }
            None => {
                limits.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handing over never waits: past the queue's capacity alerts are
    /// dropped and counted, and repeats within the period are held back.
    #[test]
    fn a_full_queue_drops_and_counts_and_repeats_are_held_back() {
        // Nobody reads the queue.
        let (sink, _queue) = AlertSink::new(Duration::from_secs(60));
        let alert = |n: usize| Alert::new("dev", "anomaly", "x".into()).subject(&n.to_string());
        for n in 0..QUEUE_CAPACITY + 10 {
            sink.send(alert(n));
        }
        assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 10);
        sink.send(alert(0));
        sink.send(alert(1));
        assert_eq!(sink.counters.suppressed.load(Ordering::Relaxed), 2);
        assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 10);
    }
}
