//! The page itself: what it draws, how it is locked down, and how it
//! follows the monitor live.

use std::time::Duration;

use crate::common::web::{self, EventStream};
use crate::common::{TestDb, eventually};
use crate::{HTML, WAIT, start};

/// The page draws a card per project with its counts, in one HTML file,
/// one script and one stylesheet of its own: no inline script, nothing from
/// elsewhere, values from the database escaped, and every answer carries a
/// Content-Security-Policy that forbids framing, `nosniff` and
/// `Referrer-Policy: no-referrer`. Prints the page's weight.
#[test]
fn the_page_draws_each_project_and_is_locked_down() {
    let mut dev = TestDb::new("dash_page_dev");
    let prod = TestDb::new("dash_page_prod");
    dev.job(1, None, None, "acte:1");
    dev.job(1, None, None, "acte:2");
    dev.worker("<script>alert(1)</script>", "busy", "1 second");
    let (monitor, addr) = start(&[("dev", &dev), ("prod", &prod)], &[]);
    let mut page = web::get(addr, "/", &[HTML]);
    eventually("the counts are drawn", WAIT, || {
        page = web::get(addr, "/", &[HTML]);
        page.body.contains("data-count=\"waiting\">2<")
    });
    assert_eq!(page.code, 200);
    assert!(page.body.contains("id=\"card-dev\""));
    assert!(page.body.contains("id=\"card-prod\""));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.body.matches("<script").count(), 1);
    assert!(
        page.body
            .contains("<script src=\"/dashboard.js\" defer></script>")
    );
    assert!(!page.body.contains("style="));
    assert!(!page.body.contains("https://") && !page.body.contains("http://"));
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the worker id is escaped"
    );

    let js = web::get(addr, "/dashboard.js", &[]);
    let css = web::get(addr, "/dashboard.css", &[]);
    assert_eq!(js.code, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(js.header("content-security-policy").is_some());
    eprintln!(
        "page weight: HTML {} + JS {} + CSS {} = {} bytes (2 projects)",
        page.body.len(),
        js.body.len(),
        css.body.len(),
        page.body.len() + js.body.len() + css.body.len()
    );
    drop(monitor);
}

/// A job made stuck in the database reaches an open event stream within
/// seconds, without a new request: the reset, on the timeline.
#[test]
fn a_stuck_job_reaches_an_open_event_stream() {
    let mut db = TestDb::new("dash_stream");
    let (_monitor, addr) = start(&[("dev", &db)], &[("MONITOR_STUCK_JOB_AFTER", "2s")]);
    let mut events = EventStream::open(addr, "/events", &[]);
    assert!(events.wait_for("event: update", WAIT), "{}", events.text);
    assert!(events.text.contains("\"timeline\""));
    let id = db.job(2, Some("worker-hung"), Some("10 minutes"), "index:777");
    assert!(
        events.wait_for("Auto-reset stuck jobs", Duration::from_secs(10)),
        "{}",
        events.text
    );
    assert!(events.text.contains(&id[..8]));
    assert!(events.text.contains("index:777"));
}
