//! Who may act: the actions need the admin token, from the same site, and
//! change exactly the rows the person saw.

use serde_json::json;

use crate::common::TestDb;
use crate::common::web;
use crate::{ADMIN, HTML, VIEW, WAIT, failed_jobs, start};

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
    let session = web::login(addr, ADMIN, &[]).cookie();
    let retry_group =
        |headers: &[(&str, &str)]| web::post_json(addr, "/actions/retry-group", headers, &body);

    let cases: Vec<(&str, Headers, u16)> = vec![
        ("no credentials", same.clone(), 401),
        (
            "viewing token",
            and(&same, &[("Authorization", &viewer)]),
            403,
        ),
        (
            "admin session without CSRF token",
            and(&same, &[("Cookie", &session)]),
            403,
        ),
        (
            "admin session, wrong CSRF token",
            and(&same, &[("Cookie", &session), ("X-CSRF-Token", "00")]),
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
        let r = retry_group(&headers);
        assert_eq!(r.code, code, "{what}: {}", r.body);
    }
    // A form posted by another site, as a CSRF attack would.
    let attack = web::request(
        addr,
        "POST",
        "/actions/retry-group",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://evil.example"),
            ("Cookie", &session),
        ],
        "project=dev",
    );
    assert_eq!(attack.code, 403);
    assert_eq!(failed_count(&mut db), 6, "a refused action changed rows");

    let r = retry_group(&[("Authorization", &admin)]);
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["count"], 4);
    assert_eq!(failed_count(&mut db), 2);
    assert_eq!(
        db.count("SELECT count(*) FROM extraction_queue WHERE status_id = 1 AND attemtps = 0"),
        4
    );
    let again = retry_group(&[("Authorization", &admin)]);
    assert_eq!(again.json()["count"], 0);
    let line = &monitor.wait_for(
        1,
        "🖐️  From the dashboard: retried 4 failed jobs",
        Some("dev"),
        WAIT,
    )[0];
    assert_eq!(line["action"], "retry-group");
    assert_eq!(line["count"], 4);
    assert!(
        !monitor.logged(ADMIN) && !monitor.logged(VIEW),
        "a token reached the log"
    );
    // The action is on the timeline.
    let page = web::get(addr, "/", &[HTML, ("Authorization", &viewer)]);
    assert!(
        page.body
            .contains("From the dashboard: retried 4 failed jobs")
    );
}

type Headers<'a> = Vec<(&'a str, &'a str)>;

/// The headers `base`, then `extra`.
fn and<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Headers<'a> {
    [base, extra].concat()
}
