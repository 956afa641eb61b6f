//! Who may look: the viewing token, the login form and its cookie, and
//! the tokens checked at start-up.

use crate::common::web::{self, EventStream};
use crate::common::{TestDb, eventually, run_binary};
use crate::{ADMIN, HTML, VIEW, WAIT, start};

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

    let refused = web::login(addr, "not-the-token-at-all", &[]);
    assert_eq!(refused.code, 401);
    let login = web::login(addr, VIEW, &[]);
    assert_eq!(login.code, 303, "{}", login.body);
    let set_cookie = login.header("set-cookie").unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    assert!(!set_cookie.contains(VIEW));
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP: the cookie would never come back"
    );
    let proxied = web::login(addr, VIEW, &[("X-Forwarded-Proto", "https")]);
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
    let cross = web::login(addr, VIEW, &[("Origin", "http://evil.example")]);
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
    assert!(!monitor.logged(VIEW), "the token reached the log");
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
        let (code, _, err) = run_binary(&["run"], &all, WAIT);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(var), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
