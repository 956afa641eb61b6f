//! The fleet the browser tests look at: databases in trouble, and workers
//! and jobs that keep moving while a test runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::{Client, NoTls};

use crate::common::TestDb;

/// Workers that heartbeat while a test runs, and jobs that come and go.
pub struct Activity {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Activity {
    /// Every second, the `alive` workers of each database heartbeat; in
    /// the first, a few waiting jobs are done and new ones arrive.
    pub fn start(urls: Vec<(String, Vec<&'static str>)>) -> Activity {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut clients: Vec<(Client, Vec<&str>)> = urls
                .iter()
                .map(|(url, alive)| (Client::connect(url, NoTls).unwrap(), alive.clone()))
                .collect();
            let mut tick = 0u64;
            while !flag.load(Ordering::SeqCst) {
                for (i, (client, alive)) in clients.iter_mut().enumerate() {
                    let ids: Vec<String> = alive.iter().map(|w| format!("'{w}'")).collect();
                    let _ = client.batch_execute(&format!(
                        "UPDATE worker_status SET last_heartbeat = now() WHERE worker_id IN ({})",
                        ids.join(", ")
                    ));
                    if i == 0 {
                        let done = 3 + tick % 4;
                        let new = 2 + (tick / 5) % 5;
                        let _ = client.batch_execute(&format!(
                            "UPDATE extraction_queue SET status_id = 3, updated_at = now()
                             WHERE id IN (SELECT id FROM extraction_queue WHERE status_id = 1 ORDER BY created_at LIMIT {done});
                             INSERT INTO extraction_queue (status_id, document_source, document_number)
                             SELECT 1, 'index', (50000 + {tick} * 10 + i)::text FROM generate_series(1, {new}) i"
                        ));
                    }
                }
                tick += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Activity {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fleet in trouble: prod with a dead worker holding jobs, a job stuck
/// and one processing for long, 45 failed jobs in two groups and a queue;
/// staging healthy; dev unreachable.
pub fn fleet_in_trouble() -> (TestDb, TestDb) {
    let mut prod = TestDb::new("browser_prod");
    for w in ["extract-7f3a", "extract-91c2", "extract-0d44"] {
        prod.worker(w, "busy", "2 seconds");
    }
    prod.worker("extract-5be1", "busy", "10 minutes");
    prod.job(2, Some("extract-5be1"), Some("4 minutes"), "acte:310442");
    prod.job(2, Some("extract-5be1"), Some("90 seconds"), "index:88121");
    prod.job(
        2,
        Some("extract-7f3a"),
        Some("80 seconds"),
        "plan_cadastraux:7704",
    );
    prod.job(2, Some("extract-91c2"), Some("20 seconds"), "acte:310501");
    prod.exec(
        "INSERT INTO extraction_queue (status_id, document_source, document_number, created_at)
         SELECT 1, (ARRAY['acte', 'index', 'plan_cadastraux'])[1 + i % 3], (200000 + i)::text,
                now() - interval '1 minute' + i * interval '1 millisecond'
         FROM generate_series(1, 140) AS i;
         INSERT INTO extraction_queue (status_id, error_message, document_source, document_number, attemtps, updated_at)
         SELECT 4, 'Timeout waiting for OCR service after 30000 ms', 'acte', (310000 + i)::text, 3,
                now() - i * interval '40 seconds'
         FROM generate_series(1, 37) AS i;
         INSERT INTO extraction_queue (status_id, error_message, document_source, document_number, attemtps, updated_at)
         SELECT 4, 'PDF parse error: unexpected end of file', 'plan_cadastraux', (7000 + i)::text, 3,
                now() - i * interval '7 minutes'
         FROM generate_series(1, 8) AS i;",
    );
    let mut staging = TestDb::new("browser_staging");
    staging.worker("extract-a11e", "busy", "1 second");
    staging.worker("extract-c3d9", "idle", "1 second");
    staging.exec(
        "INSERT INTO extraction_queue (status_id, document_source, document_number)
         SELECT 1, 'index', (900 + i)::text FROM generate_series(1, 12) AS i",
    );
    staging.job(2, Some("extract-a11e"), Some("15 seconds"), "acte:991");
    (prod, staging)
}
