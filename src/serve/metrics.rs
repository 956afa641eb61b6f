//! `/metrics`: the monitor's state in the Prometheus text format.
//!
//! Nothing is counted twice: the checks already keep their figures in
//! [`MonitorState`], so one [`Collector`] reads a snapshot of it at each
//! scrape and writes every family, prefixed `registre_monitor_`. Counter
//! names are given without `_total`: the encoder appends it.
//!
//! Families (labels `environment`, and `check`, `actor`, `status` or
//! `anomaly` where said):
//! - `jobs{status=pending|processing|error}`, `active_workers`: the last counts
//!   (gauges; finished jobs are not counted: production tables hold millions);
//! - `stuck_jobs_reset_total`, `workers_reaped_total`, `jobs_released_total`;
//! - `check_runs_total{check}`, `check_errors_total{check}`,
//!   `check_duration_seconds{check}` (histogram);
//! - `project_reachable` (1 or 0), `project_healthy` (1 or 0: ready, as
//!   `/readyz` says), `anomaly_active{anomaly}`;
//! - `actor_restarts_total{actor}`;
//! - `jobs_failed_out_of_attempts_total`, `ocr_jobs_reset_total`,
//!   `skewed_workers_total`, `acting` (1 or 0: speaks), `healing` (1 or 0:
//!   resets and reaps); and, with a webhook, `alerts_sent_total`, `alerts_failed_total`,
//!   `alerts_dropped_total`, `alerts_suppressed_total` (no labels);
//! - `last_success_timestamp_seconds{check}` (Unix time of the last
//!   successful run).

use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use registre_actors::state::DURATION_BUCKETS;
use registre_actors::{ChildKind, MonitorState};

/// The `Content-Type` of what [`Metrics::render`] returns.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry with its one collector.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(state: MonitorState) -> Self {
        let mut registry = Registry::with_prefix("registre_monitor");
        registry.register_collector(Box::new(StateCollector { state }));
        Metrics { registry }
    }

    /// Adds another collector (the dashboard's).
    pub fn with(mut self, collector: Box<dyn Collector>) -> Self {
        self.registry.register_collector(collector);
        self
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[derive(Debug)]
struct StateCollector {
    state: MonitorState,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One family: its samples, encoded under one descriptor.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.state.snapshot();
        let projects: Vec<(&str, _)> = snapshot.iter().map(|(n, p)| (n.as_str(), p)).collect();
        let env = |name| vec![("environment", name)];
        // Every check of every project, with its labels.
        let checks = || {
            projects.iter().flat_map(|(env, p)| {
                ChildKind::ALL.into_iter().map(move |kind| {
                    let c = p.check(kind).cloned().unwrap_or_default();
                    (vec![("environment", *env), ("check", kind.name())], c)
                })
            })
        };

        family(
            &mut encoder,
            "jobs",
            "Jobs by status at the last health check (pending, processing, error)",
            MetricType::Gauge,
            projects.iter().flat_map(|(name, p)| {
                p.last_counts.into_iter().flat_map(move |c| {
                    [
                        ("pending", c.pending_jobs),
                        ("processing", c.processing_jobs),
                        ("error", c.error_jobs),
                    ]
                    .map(|(status, n)| {
                        (
                            vec![("environment", *name), ("status", status)],
                            ConstGauge::new(n as i64),
                        )
                    })
                })
            }),
        )?;
        family(
            &mut encoder,
            "active_workers",
            "Workers with a recent heartbeat in this project at the last health check",
            MetricType::Gauge,
            projects.iter().filter_map(|(name, p)| {
                p.last_counts
                    .map(|c| (env(*name), ConstGauge::new(c.active_workers as i64)))
            }),
        )?;
        for (metric, help, value) in [
            (
                "stuck_jobs_reset",
                "Jobs stuck in processing put back in the queue",
                (|p| p.jobs_reset) as fn(&registre_actors::state::ProjectState) -> u64,
            ),
            (
                "workers_reaped",
                "Workers found dead and marked offline",
                |p| p.workers_reaped,
            ),
            (
                "jobs_released",
                "Jobs released because their worker died",
                |p| p.jobs_released,
            ),
            (
                "jobs_failed_out_of_attempts",
                "Stuck or released jobs sent to failed: out of attempts",
                |p| p.jobs_failed,
            ),
            (
                "ocr_jobs_reset",
                "OCR jobs stuck in processing put back to ready for OCR",
                |p| p.ocr_jobs_reset,
            ),
            (
                "skewed_workers",
                "Workers found with a clock off by more than 30 s (each once)",
                |p| p.skewed_workers,
            ),
        ] {
            family(
                &mut encoder,
                metric,
                help,
                MetricType::Counter,
                projects
                    .iter()
                    .map(|(name, p)| (env(*name), ConstCounter::new(value(p)))),
            )?;
        }
        family(
            &mut encoder,
            "check_runs",
            "Check runs finished, successful or not",
            MetricType::Counter,
            checks().map(|(l, c)| (l, ConstCounter::new(c.runs))),
        )?;
        family(
            &mut encoder,
            "check_errors",
            "Check runs that failed",
            MetricType::Counter,
            checks().map(|(l, c)| (l, ConstCounter::new(c.errors))),
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "check_duration_seconds",
                "Time one check run took",
                None,
                MetricType::Histogram,
            )?;
            for (labels, c) in checks() {
                let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                    .iter()
                    .copied()
                    .zip(c.durations.buckets)
                    .collect();
                metric.encode_family(&labels)?.encode_histogram::<Labels>(
                    c.durations.sum,
                    c.durations.count,
                    &buckets,
                    None,
                )?;
            }
        }
        family(
            &mut encoder,
            "last_success_timestamp_seconds",
            "Unix time of the check's last successful run",
            MetricType::Gauge,
            checks().filter_map(|(l, c)| {
                let at = c.last_success?.duration_since(UNIX_EPOCH).ok()?;
                Some((l, ConstGauge::new(at.as_secs_f64())))
            }),
        )?;
        family(
            &mut encoder,
            "project_reachable",
            "1 when the last statement sent to the project's database reached it, else 0",
            MetricType::Gauge,
            projects.iter().map(|(name, p)| {
                (
                    env(*name),
                    ConstGauge::new(i64::from(p.reachable == Some(true))),
                )
            }),
        )?;
        family(
            &mut encoder,
            "project_healthy",
            "1 when the project is ready: reached, and no check failing for a reason retrying \
             will not fix (schema, permission, read-only, credentials); else 0",
            MetricType::Gauge,
            projects.iter().map(|(name, p)| {
                (
                    env(*name),
                    ConstGauge::new(i64::from(p.not_ready().is_none())),
                )
            }),
        )?;
        family(
            &mut encoder,
            "anomaly_active",
            "1 while the health check's anomaly holds",
            MetricType::Gauge,
            projects.iter().flat_map(|(name, p)| {
                p.anomalies.iter().map(move |a| {
                    (
                        vec![("environment", *name), ("anomaly", a.as_str())],
                        ConstGauge::new(1i64),
                    )
                })
            }),
        )?;
        family(
            &mut encoder,
            "acting",
            "1 while this instance speaks for the project (warns and alerts about anomalies)",
            MetricType::Gauge,
            projects
                .iter()
                .map(|(name, p)| (env(*name), ConstGauge::new(i64::from(p.role.speaks())))),
        )?;
        family(
            &mut encoder,
            "healing",
            "1 while this instance resets and reaps for the project, 0 while another holds the lease",
            MetricType::Gauge,
            projects
                .iter()
                .map(|(name, p)| (env(*name), ConstGauge::new(i64::from(p.role.acts())))),
        )?;
        if let Some(alerts) = self.state.alert_counters() {
            for (metric, help, value) in [
                (
                    "alerts_sent",
                    "Alerts delivered to the webhook",
                    &alerts.sent,
                ),
                (
                    "alerts_failed",
                    "Alerts given up on after every try",
                    &alerts.failed,
                ),
                (
                    "alerts_dropped",
                    "Alerts dropped because the queue was full",
                    &alerts.dropped,
                ),
                (
                    "alerts_suppressed",
                    "Alerts held back by the repeat limit",
                    &alerts.suppressed,
                ),
            ] {
                let n = value.load(std::sync::atomic::Ordering::Relaxed);
                family(
                    &mut encoder,
                    metric,
                    help,
                    MetricType::Counter,
                    std::iter::once((Vec::<(&str, &str)>::new(), ConstCounter::new(n))),
                )?;
            }
        }
        family(
            &mut encoder,
            "actor_restarts",
            "Times an actor died and was restarted (Environment or a check)",
            MetricType::Counter,
            projects.iter().flat_map(|(name, p)| {
                p.checks.iter().map(move |(actor, c)| {
                    (
                        vec![("environment", *name), ("actor", actor.name())],
                        ConstCounter::new(c.restarts),
                    )
                })
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn renders_every_family_with_the_prefix() {
        let state = MonitorState::new();
        state.add_project("dev");
        state.run_succeeded(
            "dev",
            registre_actors::ChildKind::StuckJobResetter,
            Duration::from_millis(20),
        );
        state.update("dev", |p| p.jobs_reset = 3);
        let text = Metrics::new(state).render();
        for line in [
            "registre_monitor_stuck_jobs_reset_total{environment=\"dev\"} 3",
            "registre_monitor_check_runs_total{environment=\"dev\",check=\"StuckJobResetter\"} 1",
            "registre_monitor_check_duration_seconds_bucket{environment=\"dev\",check=\"StuckJobResetter\",le=\"0.025\"} 1",
            "registre_monitor_project_reachable{environment=\"dev\"} 1",
            "registre_monitor_project_healthy{environment=\"dev\"} 1",
            "# TYPE registre_monitor_check_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
