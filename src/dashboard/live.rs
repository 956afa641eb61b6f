//! The dashboard's own reads, made only while someone is looking.
//!
//! What the checks already know (counts, errors, the timeline) comes from
//! memory. The rest (workers, long-processing jobs, failed-job groups) is
//! one bounded statement per project
//! ([`live_read`](registre_actors::sql::dashboard::live_read)), sent only
//! when a page is drawn or an event stream is open, at most once per
//! [`REFRESH`] per project whatever the number of viewers (the answer is
//! cached, and one read at a time per project), through a pool of its own
//! of one connection, opened on first use and closed after [`IDLE_CLOSE`]
//! without a viewer. A dashboard nobody opens sends nothing and holds no
//! connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use registre_actors::identifier::Identifier;
use registre_actors::sql::dashboard::{Judging, LiveRead};
use registre_actors::{Database, DbError, Project, Settings, sql};

/// A project's live read is at most this old when shown.
pub const REFRESH: Duration = Duration::from_secs(5);
/// A pool unused for this long, with nobody looking, is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// How often idle pools are looked for (in memory only).
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// A project's last live read, or why there is none.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was read (or failed).
    pub at: Instant,
    pub result: Result<Arc<LiveRead>, DbError>,
}

/// One project's reader.
struct Reader {
    project: Project,
    pool: Mutex<Option<(Database, Instant)>>,
    /// The attempts column, once probed (`Some(None)`: the table has none).
    attempts: Mutex<Option<Option<Identifier>>>,
    cache: Mutex<Option<Snapshot>>,
    /// One read at a time.
    flight: tokio::sync::Mutex<()>,
    /// Statements sent (reads, probes and actions), for `/metrics`.
    statements: AtomicU64,
}

/// Every project's reader, and who is looking.
pub struct Live {
    readers: BTreeMap<String, Reader>,
    settings: Settings,
    judging: Judging,
    viewers: AtomicUsize,
    sweeping: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("viewers", &self.viewers())
            .field("open_pools", &self.open_pools())
            .finish_non_exhaustive()
    }
}

/// Held by an open event stream: counts a viewer while it lives.
pub struct Viewer(Arc<Live>);

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Live {
    pub fn new(projects: &[Project], settings: &Settings) -> Live {
        let readers = projects
            .iter()
            .map(|p| {
                let mut project = p.clone();
                // Told apart from the checks' sessions in pg_stat_activity.
                if project.pg.get_application_name().is_none() {
                    project.pg.application_name("registre-monitor dashboard");
                }
                let reader = Reader {
                    project,
                    pool: Mutex::new(None),
                    attempts: Mutex::new(None),
                    cache: Mutex::new(None),
                    flight: tokio::sync::Mutex::new(()),
                    statements: AtomicU64::new(0),
                };
                (p.name.clone(), reader)
            })
            .collect();
        Live {
            readers,
            settings: settings.clone(),
            judging: Judging {
                dead_after: settings.dead_worker_after,
                stale_after: settings.dead_worker_after / 2,
                long_after: settings.stuck_job_after / 2,
                stuck_after: settings.stuck_job_after,
            },
            viewers: AtomicUsize::new(0),
            sweeping: AtomicBool::new(false),
        }
    }

    /// The projects, in name order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.readers.keys().map(String::as_str)
    }

    pub fn judging(&self) -> &Judging {
        &self.judging
    }

    /// Counts a viewer until the returned guard is dropped.
    pub fn viewer(self: &Arc<Self>) -> Viewer {
        self.viewers.fetch_add(1, Ordering::SeqCst);
        self.start_sweeping();
        Viewer(self.clone())
    }

    /// Open event streams now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }

    /// Statements sent so far for `project`.
    pub fn statements(&self, project: &str) -> u64 {
        self.readers
            .get(project)
            .map_or(0, |r| r.statements.load(Ordering::Relaxed))
    }

    /// Pools open now (one connection at most each).
    pub fn open_pools(&self) -> usize {
        self.readers
            .values()
            .filter(|r| lock(&r.pool).is_some())
            .count()
    }

    /// The project's pool, opened if needed.
    pub fn database(self: &Arc<Self>, project: &str) -> Option<Database> {
        let reader = self.readers.get(project)?;
        let mut pool = lock(&reader.pool);
        if pool.is_none() {
            self.start_sweeping();
        }
        let (db, used) = pool.get_or_insert_with(|| {
            let db = Database::with_max_size(
                &reader.project,
                self.settings.connect_timeout,
                self.settings.statement_timeout,
                1,
            );
            (db, Instant::now())
        });
        *used = Instant::now();
        Some(db.clone())
    }

    /// Counts a statement sent for `project` (actions count theirs here).
    pub fn count_statement(&self, project: &str) {
        if let Some(r) = self.readers.get(project) {
            r.statements.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The project's attempts column, probed once (one catalog statement).
    pub async fn attempts_column(
        self: &Arc<Self>,
        project: &str,
    ) -> Result<Option<Identifier>, DbError> {
        let reader = self.readers.get(project).ok_or_else(|| unknown(project))?;
        if let Some(known) = lock(&reader.attempts).clone() {
            return Ok(known);
        }
        let db = self.database(project).ok_or_else(|| unknown(project))?;
        let column = &self.settings.attempts_column;
        self.count_statement(project);
        let columns = sql::probe_columns(&db, column).await?;
        let found = columns.has(column.as_str()).then(|| column.clone());
        *lock(&reader.attempts) = Some(found.clone());
        Ok(found)
    }

    /// The project's live read, no older than [`REFRESH`]: from the cache,
    /// or read now (one reader at a time; the others wait for its answer).
    pub async fn get(self: &Arc<Self>, project: &str) -> Option<Snapshot> {
        let reader = self.readers.get(project)?;
        if let Some(fresh) = fresh(reader) {
            return Some(fresh);
        }
        let _flight = reader.flight.lock().await;
        if let Some(fresh) = fresh(reader) {
            return Some(fresh);
        }
        let db = self.database(project)?;
        reader.statements.fetch_add(1, Ordering::Relaxed);
        let result = sql::dashboard::live_read(&db, &self.judging)
            .await
            .map(Arc::new);
        let snapshot = Snapshot {
            at: Instant::now(),
            result,
        };
        *lock(&reader.cache) = Some(snapshot.clone());
        Some(snapshot)
    }

    /// Every project's live read, read in parallel where stale.
    pub async fn all(self: &Arc<Self>) -> BTreeMap<String, Snapshot> {
        let reads = self.readers.keys().map(|name| async move {
            let snapshot = self.get(name).await;
            (name.clone(), snapshot)
        });
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .filter_map(|(name, s)| Some((name, s?)))
            .collect()
    }

    /// Every project's last read, however old (none for a project never read).
    pub fn cached(&self) -> BTreeMap<String, Snapshot> {
        self.readers
            .iter()
            .filter_map(|(name, r)| Some((name.clone(), lock(&r.cache).clone()?)))
            .collect()
    }

    /// Forgets the project's cached read (after an action changed rows).
    pub fn invalidate(&self, project: &str) {
        if let Some(r) = self.readers.get(project) {
            *lock(&r.cache) = None;
        }
    }

    /// Closes the pools unused for [`IDLE_CLOSE`] while nobody looks.
    pub fn sweep(&self, now: Instant) {
        if self.viewers() > 0 {
            return;
        }
        for reader in self.readers.values() {
            let mut pool = lock(&reader.pool);
            if pool
                .as_ref()
                .is_some_and(|(_, used)| now.duration_since(*used) >= IDLE_CLOSE)
            {
                *pool = None;
                *lock(&reader.attempts) = None;
            }
        }
    }

    /// Starts, once, the in-memory task that closes idle pools.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Live> = Arc::downgrade(self);
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                match weak.upgrade() {
                    Some(live) => live.sweep(Instant::now()),
                    None => return,
                }
            }
        });
    }
}

fn unknown(project: &str) -> DbError {
    DbError::Query(format!("no project named {project:?}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fresh(reader: &Reader) -> Option<Snapshot> {
    lock(&reader.cache)
        .as_ref()
        .filter(|s| s.at.elapsed() < REFRESH)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool opened for a look is closed a minute after the last use, and
    /// never while a stream is open.
    #[actix_rt::test]
    async fn idle_pools_close_unless_someone_looks() {
        let project = Project::parse("dev", "postgres://u@127.0.0.1:1/x").unwrap();
        let live = Arc::new(Live::new(&[project], &Settings::default()));
        assert_eq!(live.open_pools(), 0, "nothing is opened before a look");
        assert!(live.database("dev").is_some());
        assert!(live.database("nope").is_none());
        assert_eq!(live.open_pools(), 1);
        live.sweep(Instant::now() + IDLE_CLOSE / 2);
        assert_eq!(live.open_pools(), 1);
        let viewer = live.viewer();
        assert_eq!(live.viewers(), 1);
        live.sweep(Instant::now() + IDLE_CLOSE * 2);
        assert_eq!(live.open_pools(), 1, "a viewer keeps it");
        drop(viewer);
        assert_eq!(live.viewers(), 0);
        live.sweep(Instant::now() + IDLE_CLOSE * 2);
        assert_eq!(live.open_pools(), 0);
    }
}
