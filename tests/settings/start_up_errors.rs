//! Start-up errors beyond a bad value: the JSON form, and a port already
//! taken, both the one-line `configuration error:` (exit 2).

use crate::{PROJECT, run_binary};

/// With `LOG_FORMAT=json` a configuration error is one JSON object with
/// the fields of a log line (`timestamp`, `level`, `target`, `message`),
/// exit code 2; a bad `LOG_LEVEL` and a bad connection string too.
#[test]
fn json_start_up_errors_are_one_json_object() {
    for vars in [
        &[
            PROJECT,
            ("LOG_FORMAT", "json"),
            ("MONITOR_CHECK_INTERVAL", "0s"),
        ][..],
        &[("LOG_FORMAT", "json")],
        &[PROJECT, ("LOG_FORMAT", "json"), ("LOG_LEVEL", "loud")],
        &[
            ("LOG_FORMAT", "json"),
            ("DEV_SUPABASE_DB_URL", "postgres://u:hunter2@x@h/db"),
        ],
    ] {
        let (code, out, err) = run_binary(&["run"], vars);
        assert_eq!(code, Some(2), "{vars:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        let line: serde_json::Value =
            serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["target"], "registre_monitor", "{line}");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        let message = line["message"].as_str().unwrap();
        assert!(message.starts_with("configuration error: "), "{line}");
        assert!(message.contains("expected"), "{line}");
        assert!(!err.contains("hunter2"), "{line}");
    }
}

/// A taken `MONITOR_HTTP_ADDR` port is the one-line `configuration error:`
/// form (exit 2) like every other start-up error; one JSON object with
/// `LOG_FORMAT=json`.
#[test]
fn a_taken_port_is_a_one_line_configuration_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let vars = [PROJECT, ("MONITOR_HTTP_ADDR", addr.as_str())];
    let (code, _, err) = run_binary(&["run"], &vars);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "registre-monitor: configuration error: MONITOR_HTTP_ADDR={addr} cannot be listened on"
        )),
        "{err}"
    );
    assert!(err.contains("expected"), "{err}");

    let vars = [
        PROJECT,
        ("MONITOR_HTTP_ADDR", addr.as_str()),
        ("LOG_FORMAT", "json"),
    ];
    let (code, _, err) = run_binary(&["run"], &vars);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let line: serde_json::Value =
        serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("configuration error: MONITOR_HTTP_ADDR={addr}")),
        "{line}"
    );
}
