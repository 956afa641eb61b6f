//! Talking to a running monitor's HTTP endpoints: where it listens (read
//! from its log), plain requests, and the Prometheus text read back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use registre_monitor::commands::healthcheck;
use serde_json::Value;

use super::Monitor;

/// Waits for the `🌐 HTTP endpoints listening` line; returns its `addr`.
pub fn addr(monitor: &Monitor) -> SocketAddr {
    let line = monitor.wait_for(
        1,
        "🌐 HTTP endpoints listening",
        None,
        Duration::from_secs(20),
    );
    line[0]["addr"]
        .as_str()
        .expect("addr field")
        .parse()
        .expect("a socket address")
}

/// Starts the monitor watching `projects` (see [`super::watching`]) and
/// waits until it listens; returns it and its address.
pub fn serve(projects: &[(&str, &str)], settings: &[(&str, &str)]) -> (Monitor, SocketAddr) {
    let monitor = Monitor::start(&super::watching(projects, settings));
    let addr = addr(&monitor);
    (monitor, addr)
}

fn send(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    healthcheck::request(addr, method, path, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    send(addr, "GET", path)
}

pub fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    send(addr, "POST", path)
}

/// A GET whose body is JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (code, body) = get(addr, path);
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (code, json)
}

/// One figure of one check in `/status` (`runs`, `errors`, ...); 0 before
/// the check's first run.
pub fn check_figure(addr: SocketAddr, project: &str, check: &str, figure: &str) -> u64 {
    get_json(addr, "/status").1["projects"][project]["checks"][check][figure]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until a check's figure has grown by `n` from what it is now: the
/// positive sign that time passed with the check at work (or failing).
pub fn wait_more(addr: SocketAddr, project: &str, check: &str, figure: &str, n: u64) {
    let start = check_figure(addr, project, check, figure);
    super::eventually(
        &format!("{n} more {figure} of {project}/{check}"),
        Duration::from_secs(30),
        || check_figure(addr, project, check, figure) >= start + n,
    );
}

/// Every sample of a Prometheus text exposition, `name{labels}` -> value;
/// panics on a line that is neither a comment nor a sample.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            };
            assert!(series.starts_with("registre_monitor_"), "unprefixed: {l}");
            (series.to_string(), value)
        })
        .collect()
}

/// The scrape of `/metrics`, parsed.
pub fn metrics(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    samples(&body)
}
