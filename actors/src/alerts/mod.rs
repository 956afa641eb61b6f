//! Alerts that reach people: what an alert is, and how it leaves the tree.
//!
//! The checks hand an [`Alert`] to [`MonitorState::alert`](crate::MonitorState::alert),
//! which drops it when this instance stands by for the project; otherwise
//! it goes to the [`queue`] (rate-limited, bounded, never waited on), which
//! the program empties by posting each alert to the webhook. The body is
//! what Slack's incoming webhooks accept (`{"text": ...}`) plus structured
//! fields. The URL is a secret: it is never logged.

pub mod queue;

use std::sync::atomic::AtomicU64;

use serde_json::{Map, Value};

pub use queue::{AlertQueue, AlertSink, QUEUE_CAPACITY, Queued};

/// One alert.
#[derive(Debug, Clone)]
pub struct Alert {
    pub environment: String,
    /// What happened: `anomaly`, `anomaly_cleared`, `unreachable`,
    /// `recovered`, `jobs_reset`, `jobs_failed`, `ocr_jobs_reset`,
    /// `workers_reaped`, `jobs_released`.
    pub kind: &'static str,
    /// Rate-limit key within the kind (the anomaly's name), or empty.
    pub subject: String,
    /// The line people read.
    pub text: String,
    /// Structured fields, merged into the body.
    pub fields: Map<String, Value>,
}

impl Alert {
    pub fn new(environment: &str, kind: &'static str, text: String) -> Self {
        Alert {
            environment: environment.to_string(),
            kind,
            subject: String::new(),
            text,
            fields: Map::new(),
        }
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = subject.to_string();
        self
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The JSON body: Slack's `text`, then the fields.
    pub fn body(&self, instance: &str, suppressed: u64) -> Value {
        let mut body = Map::new();
        body.insert("text".into(), self.text.clone().into());
        body.insert("environment".into(), self.environment.clone().into());
        body.insert("kind".into(), self.kind.into());
        if !self.subject.is_empty() {
            body.insert("subject".into(), self.subject.clone().into());
        }
        body.insert("instance".into(), instance.into());
        if suppressed > 0 {
            body.insert("suppressedSinceLast".into(), suppressed.into());
        }
        for (k, v) in &self.fields {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }
}

/// Counters for metrics and `/status`.
#[derive(Debug, Default)]
pub struct AlertCounters {
    /// Delivered (2xx).
    pub sent: AtomicU64,
    /// Given up on after every try.
    pub failed: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Held back by the rate limit.
    pub suppressed: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_slack_text_plus_fields() {
        let a = Alert::new("prod", "jobs_reset", "3 jobs".into()).field("count", 3);
        let body = a.body("host:1", 2);
        assert_eq!(body["text"], "3 jobs");
        assert_eq!(body["environment"], "prod");
        assert_eq!(body["kind"], "jobs_reset");
        assert_eq!(body["count"], 3);
        assert_eq!(body["suppressedSinceLast"], 2);
    }
}
