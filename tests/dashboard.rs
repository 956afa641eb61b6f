//! The dashboard over HTTP: the real binary against fresh databases. What
//! the page shows and how it is locked down, who may look and who may act,
//! and what an open or a closed page costs the database.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{addr, metrics};
use common::web::{self, EventStream};
use common::{Monitor, TempDir, TestDb, command, eventually, fast, output_within};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const VIEW: &str = "view-token-for-tests-0123";
const ADMIN: &str = "admin-token-for-tests-4567";

fn vars(dbs: &[(&str, &TestDb)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = fast(extra);
    for (name, db) in dbs {
        vars.push((
            format!("{}_SUPABASE_DB_URL", name.to_uppercase()),
            db.url.clone(),
        ));
    }
    vars
}

fn start(dbs: &[(&str, &TestDb)], extra: &[(&str, &str)]) -> (Monitor, SocketAddr) {
    let monitor = Monitor::start(&vars(dbs, extra));
    let addr = addr(&monitor);
    (monitor, addr)
}

const HTML: (&str, &str) = ("Accept", "text/html");

/// Failed jobs with `message`, failed a minute ago.
fn failed_jobs(db: &mut TestDb, n: u32, message: &str) {
    db.exec(&format!(
        "INSERT INTO extraction_queue (status_id, error_message, document_source, document_number, attemtps, updated_at)
         SELECT 4, '{message}', 'acte', (1000 + i)::text, 3, now() - interval '1 minute'
         FROM generate_series(1, {n}) AS i"
    ));
}

/// The group key and last failure of the jobs failed with `message`, as
/// the page gives them.
fn group(db: &mut TestDb, message: &str) -> (String, String) {
    let key = db.text(&format!("SELECT md5('{message}')")).unwrap();
    let last = db
        .text(&format!(
            "SELECT to_json(max(updated_at))#>>'{{}}' FROM extraction_queue
             WHERE status_id = 4 AND error_message = '{message}'"
        ))
        .unwrap();
    (key, last)
}

fn failed_count(db: &mut TestDb) -> i64 {
    db.count("SELECT count(*) FROM extraction_queue WHERE status_id = 4")
}

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

/// With `MONITOR_HTTP_TOKEN`, the page, `/status`, `/metrics` and the event
/// stream answer 401 without it (the page with a login form), and 200 with
/// it as a bearer header or through the session cookie `POST /login` sets;
/// `/healthz` and `/readyz` stay open. A wrong token is refused, and no
/// token ever reaches the log or the cookie; the cookie is `Secure` behind
/// an HTTPS proxy. Another site can neither log a browser in nor post to
/// any other route.
#[test]
fn a_viewing_token_guards_everything_but_the_probes() {
    let db = TestDb::new("dash_view");
    let (monitor, addr) = start(&[("dev", &db)], &[("MONITOR_HTTP_TOKEN", VIEW)]);
    eventually("ready", WAIT, || web::get(addr, "/readyz", &[]).code == 200);
    assert_eq!(web::get(addr, "/healthz", &[]).code, 200);

    let page = web::get(addr, "/", &[HTML]);
    assert_eq!(page.code, 401);
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"/login\"")
    );
    assert!(page.header("content-security-policy").is_some());
    for path in ["/status", "/metrics", "/events", "/?project=dev"] {
        let r = web::get(addr, path, &[]);
        assert_eq!(r.code, 401, "{path}: {}", r.body);
        assert!(r.header("www-authenticate").is_some(), "{path}");
    }
    let wrong = format!("Bearer {ADMIN}");
    assert_eq!(
        web::get(addr, "/status", &[("Authorization", &wrong)]).code,
        401
    );
    let bearer = format!("Bearer {VIEW}");
    assert_eq!(
        web::get(addr, "/status", &[("Authorization", &bearer)]).code,
        200
    );
    assert_eq!(
        web::get(addr, "/metrics", &[("Authorization", &bearer)]).code,
        200
    );
    let mut events = EventStream::open(addr, "/events", &[("Authorization", &bearer)]);
    assert_eq!(events.code(), 200);
    drop(events);

    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let refused = web::request(addr, "POST", "/login", &form, "token=not-the-token-at-all");
    assert_eq!(refused.code, 401);
    let login = web::request(addr, "POST", "/login", &form, &format!("token={VIEW}"));
    assert_eq!(login.code, 303, "{}", login.body);
    let set_cookie = login.header("set-cookie").unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    assert!(!set_cookie.contains(VIEW));
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP: the cookie would never come back"
    );
    let proxied = web::request(
        addr,
        "POST",
        "/login",
        &[form[0], ("X-Forwarded-Proto", "https")],
        &format!("token={VIEW}"),
    );
    assert!(proxied.header("set-cookie").unwrap().ends_with("; Secure"));
    let cookie = login.cookie();
    let page = web::get(addr, "/", &[HTML, ("Cookie", &cookie)]);
    assert_eq!(page.code, 200);
    assert!(page.body.contains("id=\"card-dev\""));
    assert!(
        !page.body.contains("csrf-token"),
        "a viewer gets no CSRF token"
    );

    // Another site cannot log a browser in.
    let cross = web::request(
        addr,
        "POST",
        "/login",
        &[form[0], ("Origin", "http://evil.example")],
        &format!("token={VIEW}"),
    );
    assert_eq!(cross.code, 403);
    // Nor post anything else: the drill hook, even with the token.
    let hook = web::request(
        addr,
        "POST",
        "/debug/fault?environment=dev&actor=WorkerReaper&fault=hang",
        &[("Authorization", &bearer), ("Sec-Fetch-Site", "cross-site")],
        "",
    );
    assert_eq!(hook.code, 403, "{}", hook.body);
    monitor.wait_for(1, "🔒 Dashboard login refused", None, WAIT);
    let log = monitor.raw_lines().join("\n");
    assert!(!log.contains(VIEW), "the token reached the log");
}

/// The actions: without `MONITOR_ADMIN_TOKEN` they do not exist (403); with
/// it, a request without credentials gets 401, the viewing token or the
/// admin session without the CSRF token 403, another site 403 even with the
/// admin token; the rows stay as they were. The admin token (bearer) then
/// retries the group: exactly its rows, once, logged without the token.
#[test]
fn actions_need_the_admin_token_from_the_same_site() {
    let mut db = TestDb::new("dash_actions");
    failed_jobs(&mut db, 4, "timeout");
    failed_jobs(&mut db, 2, "bad pdf");
    let (key, last) = group(&mut db, "timeout");
    let body = json!({ "project": "dev", "key": key, "seen": last, "count": "4" });

    let (off, off_addr) = start(&[("dev", &db)], &[]);
    let r = web::post_json(off_addr, "/actions/retry-group", &[], &body);
    assert_eq!(r.code, 403, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("MONITOR_ADMIN_TOKEN")
    );
    drop(off);

    let (monitor, addr) = start(
        &[("dev", &db)],
        &[("MONITOR_HTTP_TOKEN", VIEW), ("MONITOR_ADMIN_TOKEN", ADMIN)],
    );
    let admin = format!("Bearer {ADMIN}");
    let viewer = format!("Bearer {VIEW}");
    let host = addr.to_string();
    let same_site = [
        ("Origin", format!("http://{host}")),
        ("Sec-Fetch-Site", "same-origin".into()),
    ];
    let same: Vec<(&str, &str)> = same_site.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let session = web::request(addr, "POST", "/login", &form, &format!("token={ADMIN}")).cookie();

    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("no credentials", same.clone(), 401),
        (
            "viewing token",
            [same.clone(), vec![("Authorization", &viewer)]].concat(),
            403,
        ),
        (
            "admin session without CSRF token",
            [same.clone(), vec![("Cookie", &session)]].concat(),
            403,
        ),
        (
            "admin session, wrong CSRF token",
            [
                same.clone(),
                vec![("Cookie", &session), ("X-CSRF-Token", "00")],
            ]
            .concat(),
            403,
        ),
        (
            "another origin, admin token",
            vec![("Authorization", &admin), ("Origin", "http://evil.example")],
            403,
        ),
        (
            "cross-site, admin token",
            vec![("Authorization", &admin), ("Sec-Fetch-Site", "cross-site")],
            403,
        ),
    ];
    for (what, headers, code) in cases {
        let r = web::post_json(addr, "/actions/retry-group", &headers, &body);
        assert_eq!(r.code, code, "{what}: {}", r.body);
    }
    // A form posted by another site, as a CSRF attack would.
    let attack = web::request(
        addr,
        "POST",
        "/actions/retry-group",
        &[
            form[0],
            ("Origin", "http://evil.example"),
            ("Cookie", &session),
        ],
        "project=dev",
    );
    assert_eq!(attack.code, 403);
    assert_eq!(failed_count(&mut db), 6, "a refused action changed rows");

    let r = web::post_json(
        addr,
        "/actions/retry-group",
        &[("Authorization", &admin)],
        &body,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["count"], 4);
    assert_eq!(failed_count(&mut db), 2);
    assert_eq!(
        db.count("SELECT count(*) FROM extraction_queue WHERE status_id = 1 AND attemtps = 0"),
        4
    );
    let again = web::post_json(
        addr,
        "/actions/retry-group",
        &[("Authorization", &admin)],
        &body,
    );
    assert_eq!(again.json()["count"], 0);
    let line = &monitor.wait_for(
        1,
        "🖐️  From the dashboard: retried 4 failed jobs",
        Some("dev"),
        WAIT,
    )[0];
    assert_eq!(line["action"], "retry-group");
    assert_eq!(line["count"], 4);
    let log = monitor.raw_lines().join("\n");
    assert!(
        !log.contains(ADMIN) && !log.contains(VIEW),
        "a token reached the log"
    );
    // The action is on the timeline.
    let page = web::get(addr, "/", &[HTML, ("Authorization", &viewer)]);
    assert!(
        page.body
            .contains("From the dashboard: retried 4 failed jobs")
    );
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

/// A dashboard nobody opens costs the database nothing: with no page and
/// no stream, the dashboard sends no statement and holds no session, and
/// the database's transactions (`pg_stat_database`) are the checks' own
/// runs; with a stream open, its reads come at most once per 5 s and are
/// all the database sees beyond the checks; once it closes they stop.
/// Prints the figures per minute.
#[test]
fn a_closed_dashboard_costs_the_database_nothing() {
    let mut db = TestDb::new("dash_cost");
    db.worker("w-1", "busy", "1 second");
    db.job(2, Some("w-1"), Some("5 seconds"), "acte:1");
    failed_jobs(&mut db, 3, "timeout");
    // This session's own statistics would otherwise reach the server once
    // it has been idle for 10 s, in the middle of a window.
    db.exec("SELECT pg_stat_force_next_flush()");
    let (monitor, addr) = start(
        &[("dev", &db)],
        &[
            ("MONITOR_CHECK_INTERVAL", "1s"),
            // No election: every check run is exactly one statement.
            ("MONITOR_LEADER_ELECTION", "off"),
            ("LOG_LEVEL", "info"),
        ],
    );
    // Asked from another database, so that asking adds nothing there.
    let mut admin = postgres::Client::connect(&common::admin_url(), postgres::NoTls).unwrap();
    let name = db.name.clone();
    let mut database = move || -> (i64, i64) {
        let row = admin
            .query_one(
                "SELECT (SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1),
                        (SELECT count(*) FROM pg_stat_activity
                         WHERE datname = $1 AND application_name = 'registre-monitor dashboard')",
                &[&name],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let check_runs = || -> i64 {
        let (_, s) = common::http::get_json(addr, "/status");
        ["StuckJobResetter", "WorkerReaper", "HealthReporter"]
            .iter()
            .map(|c| {
                s["projects"]["dev"]["checks"][c]["runs"]
                    .as_i64()
                    .unwrap_or(0)
            })
            .sum()
    };
    let dashboard_statements = || {
        metrics(addr)
            .get("registre_monitor_dashboard_statements_total{environment=\"dev\"}")
            .copied()
            .unwrap_or(0.0) as i64
    };
    eventually("the checks run", WAIT, || check_runs() >= 9);

    // (transactions, check runs, dashboard statements, dashboard sessions
    // at the end) over a window, the stream open or not.
    const SECONDS: u64 = 20;
    let mut window = |open: bool| {
        let ((tx0, _), runs0, dash0) = (database(), check_runs(), dashboard_statements());
        let mut stream = open.then(|| EventStream::open(addr, "/events", &[]));
        match &mut stream {
            Some(s) => s.read_for(Duration::from_secs(SECONDS - 2)),
            None => std::thread::sleep(Duration::from_secs(SECONDS - 2)),
        }
        drop(stream);
        // The last statistics reach the server about a second late.
        std::thread::sleep(Duration::from_secs(2));
        let ((tx1, sessions), runs1, dash1) = (database(), check_runs(), dashboard_statements());
        (tx1 - tx0, runs1 - runs0, dash1 - dash0, sessions)
    };

    let closed = window(false);
    let open = window(true);
    let after = window(false);
    let per_minute = |n: i64| n * 60 / SECONDS as i64;
    for (what, (tx, runs, dash, sessions)) in
        [("closed", closed), ("open", open), ("closed again", after)]
    {
        eprintln!(
            "{what}: {} transactions a minute: {} check runs, {} dashboard statements ({sessions} dashboard session)",
            per_minute(tx),
            per_minute(runs),
            per_minute(dash)
        );
    }
    let (tx, runs, dash, sessions) = closed;
    assert_eq!(
        (dash, sessions),
        (0, 0),
        "the dashboard used the database while closed"
    );
    assert!(
        (tx - runs).abs() <= 3,
        "closed: {tx} transactions for {runs} check runs"
    );
    assert_eq!(metrics(addr)["registre_monitor_dashboard_viewers"], 0.0);

    let (tx, runs, dash, _) = open;
    assert!(
        (2..=5).contains(&dash),
        "open: {dash} dashboard statements in {SECONDS} s"
    );
    assert!(
        (tx - runs - dash).abs() <= 3,
        "open: {tx} transactions for {runs} check runs and {dash} dashboard statements"
    );

    let (tx, runs, dash, _) = after;
    assert_eq!(dash, 0, "statements after the stream closed");
    assert!(
        (tx - runs).abs() <= 3,
        "closed again: {tx} transactions for {runs} check runs"
    );
    drop(monitor);
}

/// A token that is too short, or the same for viewing and acting, stops
/// start-up with one line naming the variable, never showing the value.
#[test]
fn bad_tokens_stop_start_up_with_one_line() {
    let db = TestDb::new("dash_tokens");
    for (vars, var) in [
        (
            vec![("MONITOR_ADMIN_TOKEN", "hunter2")],
            "MONITOR_ADMIN_TOKEN",
        ),
        (
            vec![("MONITOR_HTTP_TOKEN", "hunter2 hunter2 hunter2")],
            "MONITOR_HTTP_TOKEN",
        ),
        (
            vec![
                ("MONITOR_HTTP_TOKEN", "hunter2-hunter2-hunter2"),
                ("MONITOR_ADMIN_TOKEN", "hunter2-hunter2-hunter2"),
            ],
            "MONITOR_ADMIN_TOKEN",
        ),
    ] {
        let mut all = vec![("DEV_SUPABASE_DB_URL", db.url.as_str())];
        all.extend(vars);
        let dir = TempDir::new();
        let out = output_within(command(&["run"], &all, &dir), WAIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(var), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
