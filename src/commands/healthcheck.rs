//! `registre-monitor healthcheck`: asks a running monitor's `/healthz`.
//!
//! For container health checks, where there is no shell and no curl: a
//! plain HTTP/1.0 request over TCP with a short timeout. Exit 0 on a 200,
//! 1 on anything else, a bad setting included (Docker reserves exit code 2).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config;
use crate::config::cli::SettingsArgs;

/// Bound on connecting, and on each read and write.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the subcommand.
pub fn run(args: &SettingsArgs) -> ExitCode {
    let addr = match config::http_settings(args) {
        Ok(http) => http.addr,
        Err(e) => {
            eprintln!("registre-monitor healthcheck: configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(addr) = addr else {
        eprintln!("registre-monitor healthcheck: MONITOR_HTTP_ADDR=off: no /healthz to ask");
        return ExitCode::FAILURE;
    };
    let target = reachable(addr);
    match get(target, "/healthz", TIMEOUT) {
        Ok((200, body)) => {
            println!("healthy: {}", body.trim());
            ExitCode::SUCCESS
        }
        Ok((code, body)) => {
            eprintln!("unhealthy: HTTP {code}: {}", body.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: cannot ask http://{target}/healthz: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where to connect to reach a server listening on `addr`: a server on
/// every interface (0.0.0.0 or ::) is asked on loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// `GET path` over HTTP/1.0; returns the status code and the body.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, timeout)
}

/// One HTTP/1.0 request without a body; returns the status code and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {:?}", head.lines().next()),
            )
        })?;
    Ok((code, body.to_string()))
}
