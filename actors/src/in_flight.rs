//! The statements in flight, in every project, so that shutdown can cancel
//! them.
//!
//! A statement waiting on a lock does not end when the process does: the
//! server runs it until its own timeout, and it could still commit with
//! nobody left to see it. Every statement a [`Database`](crate::Database)
//! sends is tracked here while it runs ([`InFlight::track`]);
//! [`InFlight::cancel_all`] sends each one a cancel request (the driver's
//! `CancelToken`, over the same TLS as the project's connections), waits
//! for them to end, and from then on no statement is sent.
//!
//! Through a transaction pooler the cancel request goes to the pooler,
//! which may or may not pass it on: there the statement timeout remains
//! the bound.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::{CancelToken, Client};
use tokio_postgres_rustls::MakeRustlsConnect;

/// One statement being run: what it takes to cancel it.
struct Statement {
    project: Arc<str>,
    token: CancelToken,
    tls: MakeRustlsConnect,
}

/// The statements in flight (see the module's documentation).
#[derive(Default)]
pub struct InFlight {
    next: AtomicU64,
    closed: AtomicBool,
    statements: Mutex<HashMap<u64, Statement>>,
    /// Told each time a statement ends.
    ended: Notify,
}

/// What [`InFlight::cancel_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cancelled {
    /// Statements cancelled: the server took the cancel request.
    pub count: usize,
    /// Their projects, sorted, each once.
    pub environments: Vec<String>,
    /// Statements whose cancel request could not be delivered in time (the
    /// server ends them at their statement timeout).
    pub failed: usize,
}

static EVERY_PROJECT: LazyLock<InFlight> = LazyLock::new(InFlight::default);

/// The statements in flight of every [`Database`](crate::Database) of the
/// process.
pub fn every_project() -> &'static InFlight {
    &EVERY_PROJECT
}

/// Forgets a statement when its future ends or is dropped.
struct Ends<'a> {
    registry: &'a InFlight,
    id: u64,
}

impl Drop for Ends<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.ended.notify_waiters();
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Statement>> {
        // A panic while holding this lock leaves the map consistent.
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many statements are running now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`InFlight::cancel_all`] has been called: nothing is sent
    /// any more.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Runs `statement`, sent on `client` for `project`, tracked. Once
    /// shutdown has begun, a statement not yet sent never is, and one that
    /// failed (cancelled) never reports it: the future stays pending until
    /// the runtime drops it, so nothing is logged as an error of a check.
    /// A statement that succeeded still reports it.
    pub async fn track<T, E>(
        &self,
        project: &Arc<str>,
        client: &Client,
        tls: &MakeRustlsConnect,
        statement: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if self.is_closed() {
            return std::future::pending().await;
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.lock().insert(
            id,
            Statement {
                project: project.clone(),
                token: client.cancel_token(),
                tls: tls.clone(),
            },
        );
        let ends = Ends { registry: self, id };
        let outcome = statement.await;
        drop(ends);
        if outcome.is_err() && self.is_closed() {
            return std::future::pending().await;
        }
        outcome
    }

    /// Stops sending statements, sends a cancel request for each one in
    /// flight, and waits for them to end, all within `within`.
    pub async fn cancel_all(&self, within: Duration) -> Cancelled {
        let deadline = Instant::now() + within;
        self.closed.store(true, Ordering::SeqCst);
        let running: Vec<(u64, Arc<str>, CancelToken, MakeRustlsConnect)> = self
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.project.clone(), s.token.clone(), s.tls.clone()))
            .collect();
        let mut requests: FuturesUnordered<_> = running
            .into_iter()
            .map(|(id, project, token, tls)| async move {
                let sent = token.cancel_query(tls).await;
                (id, project, sent.is_ok())
            })
            .collect();
        let total = requests.len();
        let mut cancelled: Vec<u64> = Vec::new();
        let mut environments = BTreeSet::new();
        while let Ok(Some((id, project, sent))) =
            tokio::time::timeout_at(deadline, requests.next()).await
        {
            if sent {
                cancelled.push(id);
                environments.insert(project.to_string());
            }
        }
        // The server answers a cancelled statement with an error at once:
        // wait for those answers, so that what is reported has ended.
        loop {
            let ended = self.ended.notified();
            if !cancelled.iter().any(|id| self.lock().contains_key(id)) {
                break;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        Cancelled {
            count: cancelled.len(),
            environments: environments.into_iter().collect(),
            failed: total - cancelled.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn with_nothing_in_flight_nothing_is_cancelled_and_nothing_more_is_sent() {
        let registry = InFlight::default();
        assert!(!registry.is_closed());
        let cancelled = registry.cancel_all(Duration::from_secs(2)).await;
        assert_eq!(cancelled, Cancelled::default());
        assert!(registry.is_closed() && registry.is_empty());
    }
}
