//! The dashboard in a real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` by fantoccini), against the real binary and real
//! databases: what a person sees and does. Screenshots (desktop and phone
//! width) are written to `target/browser/`; with `UPDATE_DOCS_SCREENSHOT=1`
//! the fleet in trouble also goes to `docs/dashboard.png`.

#[path = "../common/mod.rs"]
mod common;
mod driver;
mod fleet;
mod other_site;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::http::{metrics, serve};
use common::{Monitor, TestDb};
use driver::Browser;
use fleet::{Activity, fleet_in_trouble};
use other_site::OtherSite;

const WAIT: Duration = Duration::from_secs(30);
const ADMIN: &str = "admin-token-for-the-browser-test";

/// The monitor watching `projects` (name, URL), checking every second.
fn monitor_for(projects: &[(&str, &str)], settings: &[(&str, &str)]) -> (Monitor, SocketAddr) {
    let base = [
        ("MONITOR_CHECK_INTERVAL", "1s"),
        ("MONITOR_STUCK_JOB_AFTER", "2m"),
        ("MONITOR_DEAD_WORKER_AFTER", "1m"),
        ("LOG_LEVEL", "info"),
    ];
    serve(projects, &[&base[..], settings].concat())
}

/// Runs `f` on a thread of its own: the synchronous Postgres client cannot
/// run inside the browser's async runtime.
fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn failed(db: &mut TestDb, message: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) FROM extraction_queue WHERE status_id = 4 AND error_message = '{message}'"
    ))
}

/// The page loads with each project's card and counts and goes live; a job
/// made stuck in the database appears in the timeline within seconds, in
/// the same document (no reload); hiding the tab closes the event stream
/// and showing it opens it again; without an admin token the page has no
/// action and a POST from it is refused, the rows unchanged. Screenshots
/// of the fleet in trouble, desktop and phone width.
#[test]
fn the_page_shows_the_fleet_and_follows_it_live() {
    let Some((chromium, chromedriver)) = driver::find() else {
        return;
    };
    let (mut prod, staging) = fleet_in_trouble();
    let _activity = Activity::start(vec![
        (
            prod.url.clone(),
            vec!["extract-7f3a", "extract-91c2", "extract-0d44"],
        ),
        (staging.url.clone(), vec!["extract-a11e", "extract-c3d9"]),
    ]);
    let started = Instant::now();
    let (monitor, addr) = monitor_for(
        &[
            ("prod", &prod.url),
            ("staging", &staging.url),
            ("dev", "postgres://monitor:secret@127.0.0.1:1/postgres"),
        ],
        &[],
    );
    let url = format!("http://{addr}/");
    driver::runtime().block_on(async {
        let b = Browser::launch(&chromium, &chromedriver).await;
        b.client.goto(&url).await.unwrap();
        b.until("the stream is live", WAIT, "return document.getElementById('conn').textContent === 'live';")
            .await;
        b.js("window.sameDocument = true; return true;").await;
        for card in ["card-prod", "card-staging", "card-dev"] {
            assert!(
                b.js(&format!("return !!document.getElementById('{card}');")).await == true,
                "{card} missing"
            );
        }
        b.until(
            "staging's counts",
            WAIT,
            "return document.querySelector('#card-staging dd[data-count=waiting]').textContent === '12';",
        )
        .await;
        b.until(
            "prod's failed count",
            WAIT,
            "return document.querySelector('#card-prod dd[data-count=failed]').textContent === '45';",
        )
        .await;
        b.until(
            "dev shown unreachable",
            WAIT,
            "const c = document.getElementById('card-dev'); \
             return c.classList.contains('t-bad') && c.textContent.includes('Unreachable');",
        )
        .await;
        assert!(!b.text("#card-dev").await.contains("secret"), "a password on the page");

        // A job made stuck now, in the database: on the timeline within
        // seconds, the page never reloaded.
        let id = off(|| prod.job(2, Some("extract-91c2"), Some("30 minutes"), "acte:424242"));
        let short = &id[..8];
        let found = Instant::now();
        b.until(
            "the reset on the timeline",
            Duration::from_secs(10),
            &format!("return document.getElementById('timeline').textContent.includes('{short}');"),
        )
        .await;
        eprintln!("stuck job on the timeline {:.1} s after it was made stuck", found.elapsed().as_secs_f64());
        assert!(b.js("return window.sameDocument === true;").await == true, "the page reloaded");
        assert!(b.text("#timeline").await.contains("acte:424242"));

        // The tab hidden: the stream closes; shown again: it reopens.
        let viewers = || metrics(addr)["registre_monitor_dashboard_viewers"];
        assert_eq!(viewers(), 1.0);
        let visibility = |hidden: bool| {
            format!(
                "Object.defineProperty(document, 'hidden', {{value: {hidden}, configurable: true}}); \
                 Object.defineProperty(document, 'visibilityState', {{value: '{}', configurable: true}}); \
                 document.dispatchEvent(new Event('visibilitychange')); return true;",
                if hidden { "hidden" } else { "visible" }
            )
        };
        b.js(&visibility(true)).await;
        common::eventually("the stream closed", Duration::from_secs(10), || viewers() == 0.0);
        assert_eq!(b.text("#conn").await, "paused while the tab is hidden");
        b.js(&visibility(false)).await;
        b.until("live again", WAIT, "return document.getElementById('conn').textContent === 'live';")
            .await;
        common::eventually("the stream reopened", Duration::from_secs(10), || viewers() == 1.0);

        // No admin token: no action on the page, and one sent anyway from
        // it is refused; the rows stay.
        assert!(b.js("return document.querySelectorAll('button.act').length;").await == 0);
        let status = b
            .js("return fetch('/actions/retry-group', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
                 body: JSON.stringify({project: 'prod', key: 'null', seen: '2100-01-01T00:00:00Z'})}).then(r => r.status);")
            .await;
        assert_eq!(status, 403);
        assert_eq!(off(|| failed(&mut prod, "Timeout waiting for OCR service after 30000 ms")), 37);

        // Let the history draw a little (more for the documentation's
        // picture), then the pictures.
        let docs = std::env::var_os("UPDATE_DOCS_SCREENSHOT").is_some();
        let settle = Duration::from_secs(if docs { 75 } else { 20 })
            .saturating_sub(started.elapsed());
        tokio::time::sleep(settle).await;
        b.client.goto(&url).await.unwrap();
        b.until("live", WAIT, "return document.getElementById('conn').textContent === 'live';")
            .await;
        b.until(
            "the workers and jobs read",
            WAIT,
            "return document.getElementById('jobs-prod').textContent.includes('Timeout waiting');",
        )
        .await;
        let dir = driver::artifacts();
        b.screenshot(1280, 6000, &dir.join("dashboard-desktop.png")).await;
        b.screenshot(390, 9000, &dir.join("dashboard-phone.png")).await;
        b.screenshot(1280, 1500, &dir.join("dashboard-top.png")).await;
        if docs {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
            std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
            std::fs::copy(dir.join("dashboard-top.png"), &docs).unwrap();
            eprintln!("screenshot: {}", docs.display());
        }
        let weight = b
            .js("return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')) \
                 .filter(e => !e.name.includes('/events')).map(e => [e.name, e.decodedBodySize]);")
            .await;
        eprintln!("page weight as the browser got it (3 projects): {weight}");
        b.close().await;
    });
    drop(monitor);
}

/// With an admin token: before logging in, an action sent from the page is
/// refused and changes nothing; logged in through the form, retrying a
/// failed-job group through the page (button, confirmation) changes exactly
/// that group's rows; a form another site posts to the monitor, with the
/// admin's session open in the same browser, is refused and changes
/// nothing.
#[test]
fn actions_through_the_page_change_exactly_what_was_seen() {
    let Some((chromium, chromedriver)) = driver::find() else {
        return;
    };
    let (mut prod, staging) = fleet_in_trouble();
    let (monitor, addr) = monitor_for(
        &[("prod", &prod.url), ("staging", &staging.url)],
        &[("MONITOR_ADMIN_TOKEN", ADMIN)],
    );
    let url = format!("http://{addr}/");
    let timeout = "Timeout waiting for OCR service after 30000 ms";
    let pdf = "PDF parse error: unexpected end of file";
    driver::runtime().block_on(async {
        let b = Browser::launch(&chromium, &chromedriver).await;
        b.client.goto(&url).await.unwrap();
        b.until("live", WAIT, "return document.getElementById('conn').textContent === 'live';")
            .await;
        assert!(b.text(".who").await.contains("read-only"));
        let status = b
            .js("return fetch('/actions/retry-group', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
                 body: JSON.stringify({project: 'prod', key: 'null', seen: '2100-01-01T00:00:00Z'})}).then(r => r.status);")
            .await;
        assert_eq!(status, 401, "an action without the admin session");
        assert_eq!((off(|| failed(&mut prod, timeout)), off(|| failed(&mut prod, pdf))), (37, 8));

        // Log in through the form.
        b.client.goto(&format!("{url}login")).await.unwrap();
        b.client
            .find(fantoccini::Locator::Css("input[name=token]"))
            .await
            .unwrap()
            .send_keys(ADMIN)
            .await
            .unwrap();
        b.click("form button[type=submit]").await;
        b.until("the admin page", WAIT, "return !!document.querySelector('meta[name=csrf-token]');")
            .await;
        assert!(b.text(".who").await.contains("admin"));
        b.until(
            "the retry buttons",
            WAIT,
            "return !!document.querySelector('button.act[data-action=retry-group][data-count=\"37\"]');",
        )
        .await;

        // Retry the 37 timeouts, confirming in the page.
        b.click("button.act[data-action=retry-group][data-count=\"37\"]").await;
        b.until("the confirmation", WAIT, "return !!document.querySelector('.confirm .act-yes');")
            .await;
        assert!(b.text(".confirm").await.contains("Retry the 37 jobs of prod"));
        let dir = driver::artifacts();
        b.screenshot(1280, 6000, &dir.join("dashboard-admin-confirm.png")).await;
        b.click(".confirm .act-yes").await;
        b.until(
            "the answer",
            WAIT,
            "return document.getElementById('notice').textContent.includes('retried 37 failed jobs');",
        )
        .await;
        assert_eq!(off(|| failed(&mut prod, timeout)), 0);
        assert_eq!(off(|| failed(&mut prod, pdf)), 8, "another group changed");
        let retried = off(|| {
            prod.count(&format!(
                "SELECT count(*) FROM extraction_queue WHERE status_id = 1 AND attemtps = 0
                 AND error_message = 'Retried from the dashboard; last error: {timeout}'"
            ))
        });
        assert_eq!(retried, 37);
        monitor.wait_for(1, "🖐️  From the dashboard: retried 37 failed jobs", Some("prod"), WAIT);
        b.until(
            "the action on the timeline",
            WAIT,
            "return document.getElementById('timeline').textContent.includes('From the dashboard: retried 37');",
        )
        .await;

        // Another site's form, the admin's session open in this browser.
        let other = OtherSite::start(&format!("http://{addr}/actions/retry-group"));
        let still_failed =
            |db: &mut TestDb| db.count("SELECT count(*) FROM extraction_queue WHERE status_id = 4");
        let before = off(|| still_failed(&mut prod));
        b.client
            .goto(&format!("http://localhost:{}/", other.addr.port()))
            .await
            .unwrap();
        b.until(
            "the monitor's refusal",
            WAIT,
            "return location.pathname === '/actions/retry-group' && document.body.textContent.includes('refused');",
        )
        .await;
        let refusal = b.text("body").await;
        assert!(refusal.contains("cross-site request refused"), "{refusal}");
        assert_eq!(off(|| still_failed(&mut prod)), before);
        drop(other);
        b.close().await;
    });
}
