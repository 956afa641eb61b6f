//! A simulated extraction worker that misbehaves on purpose.
//!
//! It sends the real workers' statements ([`sql::register_worker`],
//! [`sql::heartbeat`], [`sql::claim_job`], [`sql::finish_job`]) so the queue
//! looks exactly as a real fleet leaves it, and with set probabilities it
//! crashes (stops heartbeating and abandons its job, then comes back under a
//! new id) or hangs (keeps heartbeating but does not finish its job for a
//! while). The demo runs several; a chaos test can run many.
//!
//! ```ignore
//! let worker = Worker::new(db, WorkerConfig::new("worker-1"));
//! let live = worker.stats();           // read while it runs
//! let stats = worker.run(cancel).await; // until the token is cancelled
//! ```

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use registre_actors::Database;

use super::sql;
use tokio_util::sync::CancellationToken;

/// What becomes of a job the worker took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Worked on, then `Complété`.
    Complete,
    /// Worked on, then failed (retried, or `Erreur` after `max_attempts`).
    Fail,
    /// The worker dies partway: no more heartbeats, the job abandoned.
    Crash,
    /// The worker stops working partway but keeps heartbeating, for
    /// [`WorkerConfig::hang_for`]; then tries to finish the job.
    Hang,
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its `worker_id`; after a crash it comes back as `<id>-r1`, `<id>-r2`...
    pub id: String,
    /// Chance that a job ends in a crash, in 0..=1.
    pub crash_probability: f64,
    /// Chance that a job ends in a hang, in 0..=1.
    pub hang_probability: f64,
    /// Chance that a job fails (an extraction error, not a fault of the worker).
    pub failure_probability: f64,
    /// Time a job takes, drawn uniformly between the two.
    pub job_duration: (Duration, Duration),
    /// Between heartbeats (real workers: 10 to 30 s).
    pub heartbeat_every: Duration,
    /// How long a hang lasts before the worker tries to finish its job;
    /// longer than the stuck threshold so the monitor has taken it back.
    pub hang_for: Duration,
    /// Delay before a crashed worker comes back under a new id; `None`:
    /// it stays dead.
    pub restart_after: Option<Duration>,
    /// Wait before asking again when no job waits or a statement failed.
    pub idle_poll: Duration,
    /// The fate of the first job, whatever the probabilities (so a short
    /// demo shows each fault at least once).
    pub first_fate: Option<Fate>,
    /// Seed of the random choices (same seed, same choices).
    pub seed: u64,
    /// How far its clock is off the database's, in milliseconds (negative:
    /// behind); the times it writes are off by as much.
    pub clock_offset_ms: i64,
}

impl WorkerConfig {
    /// A worker that never misbehaves, with real-looking but short timings.
    pub fn new(id: impl Into<String>) -> WorkerConfig {
        let id = id.into();
        let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        WorkerConfig {
            id,
            crash_probability: 0.0,
            hang_probability: 0.0,
            failure_probability: 0.0,
            job_duration: (Duration::from_millis(300), Duration::from_millis(1500)),
            heartbeat_every: Duration::from_secs(1),
            hang_for: Duration::from_secs(10),
            restart_after: Some(Duration::from_secs(2)),
            idle_poll: Duration::from_millis(200),
            first_fate: None,
            seed,
            clock_offset_ms: 0,
        }
    }
}

/// A crash or a hang while holding a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub fate: Fate,
    /// The worker id that held the job.
    pub worker: String,
    pub job: String,
    /// When it happened, by the database's clock (seconds since the epoch).
    pub at: f64,
}

/// A job this worker took that the monitor had put back in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub job: String,
    /// When the monitor put it back, by the database's clock.
    pub at: f64,
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerStats {
    /// Every id it ran under, in order.
    pub ids: Vec<String>,
    pub claimed: u64,
    pub completed: u64,
    /// Jobs it reported failed (retried or given up).
    pub failed: u64,
    pub crashes: u64,
    pub hangs: u64,
    /// Jobs it tried to finish after a hang that were no longer its own
    /// (the monitor had taken them back).
    pub lost: u64,
    /// Jobs taken from it while it was working normally, heartbeating: the
    /// monitor acting too early. Stays 0 while the stuck threshold exceeds
    /// the longest job.
    pub stolen: u64,
    /// Statements that failed (the worker waits and carries on).
    pub errors: u64,
    pub incidents: Vec<Incident>,
    pub releases: Vec<Release>,
}

/// A simulated worker; see the module documentation.
pub struct Worker {
    db: Database,
    config: WorkerConfig,
    stats: Arc<Mutex<WorkerStats>>,
    rng: Rng,
}

/// How one life of the worker ended.
enum Ending {
    Crashed,
    Stopped,
}

impl Worker {
    pub fn new(db: Database, config: WorkerConfig) -> Worker {
        let rng = Rng(config.seed);
        Worker {
            db,
            config,
            stats: Arc::default(),
            rng,
        }
    }

    /// Its statistics, updated as it runs.
    pub fn stats(&self) -> Arc<Mutex<WorkerStats>> {
        self.stats.clone()
    }

    fn note(&self) -> MutexGuard<'_, WorkerStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Works until `cancel` is cancelled (or it crashes with no restart);
    /// returns what it did. Cancelling abandons a job in hand, as a killed
    /// process would.
    pub async fn run(mut self, cancel: CancellationToken) -> WorkerStats {
        let mut life = 0u32;
        loop {
            let id = if life == 0 {
                self.config.id.clone()
            } else {
                format!("{}-r{life}", self.config.id)
            };
            self.note().ids.push(id.clone());
            let ending = tokio::select! {
                _ = cancel.cancelled() => Ending::Stopped,
                ending = self.live(&id, life == 0) => ending,
            };
            match (ending, self.config.restart_after) {
                (Ending::Crashed, Some(delay)) => {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    life += 1;
                }
                _ => break,
            }
        }
        self.note().clone()
    }

    /// One life: registered, heartbeating and taking jobs until it crashes.
    async fn live(&mut self, id: &str, first_life: bool) -> Ending {
        let offset = self.config.clock_offset_ms;
        while let Err(_e) = sql::register_worker(&self.db, id, offset).await {
            self.note().errors += 1;
            tokio::time::sleep(self.config.idle_poll).await;
        }
        let (db, every, stats) = (self.db.clone(), self.config.heartbeat_every, self.stats());
        let heartbeats = async move {
            loop {
                tokio::time::sleep(every).await;
                if sql::heartbeat(&db, id, offset).await.is_err() {
                    stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1;
                }
            }
        };
        tokio::select! {
            never = heartbeats => never,
            ending = self.work(id, first_life) => ending,
        }
    }

    /// Takes and works jobs until a crash.
    async fn work(&mut self, id: &str, first_life: bool) -> Ending {
        let offset = self.config.clock_offset_ms;
        let mut first = first_life;
        loop {
            let job = match sql::claim_job(&self.db, id, offset).await {
                Ok(Some(job)) => job,
                Ok(None) => {
                    tokio::time::sleep(self.config.idle_poll).await;
                    continue;
                }
                Err(_) => {
                    self.note().errors += 1;
                    tokio::time::sleep(self.config.idle_poll).await;
                    continue;
                }
            };
            {
                let mut s = self.note();
                s.claimed += 1;
                if let Some(at) = job.released_at {
                    s.releases.push(Release {
                        job: job.id.clone(),
                        at,
                    });
                }
            }
            let fate = match (first, self.config.first_fate) {
                (true, Some(f)) => f,
                _ => self.draw_fate(),
            };
            first = false;
            let (lo, hi) = self.config.job_duration;
            let work = self.rng.between(lo, hi);
            match fate {
                Fate::Complete | Fate::Fail => {
                    tokio::time::sleep(work).await;
                    let failure = (fate == Fate::Fail).then_some("Simulated extraction error");
                    self.finish(id, &job.id, failure, false).await;
                }
                Fate::Crash => {
                    tokio::time::sleep(work / 2).await;
                    self.incident(Fate::Crash, id, &job.id).await;
                    return Ending::Crashed;
                }
                Fate::Hang => {
                    tokio::time::sleep(work / 2).await;
                    self.incident(Fate::Hang, id, &job.id).await;
                    tokio::time::sleep(self.config.hang_for).await;
                    self.finish(id, &job.id, None, true).await;
                }
            }
        }
    }

    fn draw_fate(&mut self) -> Fate {
        let c = &self.config;
        let (crash, hang, fail) = (
            c.crash_probability,
            c.hang_probability,
            c.failure_probability,
        );
        let x = self.rng.unit();
        if x < crash {
            Fate::Crash
        } else if x < crash + hang {
            Fate::Hang
        } else if x < crash + hang + fail {
            Fate::Fail
        } else {
            Fate::Complete
        }
    }

    async fn incident(&mut self, fate: Fate, id: &str, job: &str) {
        // The database's clock, as the monitor's thresholds use it.
        let at = match sql::database_now(&self.db).await {
            Ok(at) => at,
            Err(_) => {
                self.note().errors += 1;
                return;
            }
        };
        let mut s = self.note();
        match fate {
            Fate::Crash => s.crashes += 1,
            _ => s.hangs += 1,
        }
        s.incidents.push(Incident {
            fate,
            worker: id.to_string(),
            job: job.to_string(),
            at,
        });
    }

    async fn finish(&mut self, id: &str, job: &str, failure: Option<&str>, after_hang: bool) {
        let offset = self.config.clock_offset_ms;
        let result = sql::finish_job(&self.db, id, job, failure, offset).await;
        let mut s = self.note();
        match result {
            Ok(Some(3)) => s.completed += 1,
            Ok(Some(_)) => s.failed += 1,
            Ok(None) if after_hang => s.lost += 1,
            Ok(None) => s.stolen += 1,
            Err(_) => s.errors += 1,
        }
    }
}

/// SplitMix64: enough randomness for a simulation, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + hi.saturating_sub(lo).mul_f64(self.unit())
    }
}
