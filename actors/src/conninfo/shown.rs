//! The connection as people are shown it: written from the parsed
//! settings, never cut out of the text, so it cannot hold the password
//! whatever characters that has.

use std::path::PathBuf;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio_postgres::config::Host;

use crate::tls::TlsMode;

/// What percent-encoding writes as is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The connection as people are shown it, from the parsed settings only:
/// `postgres://user@host:port/database`, with `?sslmode=` when it is not
/// the default (`prefer`) and `sslrootcert=` when given. Never a password.
pub fn shown(
    pg: &tokio_postgres::Config,
    tls_mode: TlsMode,
    root_cert: Option<&PathBuf>,
) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = pg.get_user() {
        out.push_str(&encode(user));
        out.push('@');
    }
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                Host::Tcp(name) => encode(name),
                Host::Unix(path) => encode(&path.to_string_lossy()),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    out.push_str(&hosts.join(","));
    if let Some(db) = pg.get_dbname() {
        out.push('/');
        out.push_str(&encode(db));
    }
    let mut params = Vec::new();
    if tls_mode != TlsMode::default() {
        params.push(format!("sslmode={}", tls_mode.name()));
    }
    if let Some(root) = root_cert {
        params.push(format!("sslrootcert={}", encode(&root.to_string_lossy())));
    }
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}
