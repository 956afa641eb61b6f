//! A worker's heartbeat, as the real workers send it: an update of its
//! `worker_status` row every 100 ms, written by its own clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Beats until stopped or dropped.
pub struct Heartbeat(Arc<AtomicBool>);

impl Heartbeat {
    /// Starts beating for `worker` on the database at `url`, its clock
    /// `offset` off (an SQL interval: `0 seconds`, `-5 minutes`).
    pub fn start(url: &str, worker: &str, offset: &str) -> Heartbeat {
        let beating = Arc::new(AtomicBool::new(true));
        let flag = beating.clone();
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let sql = format!(
            "UPDATE worker_status SET last_heartbeat = clock_timestamp() + interval '{offset}' \
             WHERE worker_id = '{worker}'"
        );
        std::thread::spawn(move || {
            while flag.load(Ordering::SeqCst) {
                if client.batch_execute(&sql).is_err() {
                    return; // the database is gone: the test is over
                }
                // The worker's own period, not a wait for something.
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Heartbeat(beating)
    }

    /// The worker dies: no more heartbeats.
    pub fn stop(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}
