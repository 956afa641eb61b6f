//! A Postgres connection string, read once into its parts.
//!
//! Both forms libpq accepts are read here, the way tokio-postgres reads
//! them: a URL (`postgres://user:password@host:port/database?key=value&...`:
//! credentials up to the first `@`, user and password split at the first
//! `:`, parts percent-decoded) and `key=value` pairs (`host=h user=u
//! password='a b'`: spaces around `=` allowed, quoted values, backslash
//! escapes). Then:
//!
//! - the password is taken out and handed to the driver as bytes, never as
//!   text to parse, so no parse error can quote it;
//! - `sslmode` and `sslrootcert` are taken out (the driver knows neither
//!   `verify-ca`, `verify-full` nor `sslrootcert`; [`crate::tls`] maps them);
//! - the rest is written back for the driver without the credentials;
//! - what people are shown ([`shown`]) is built from the parsed settings
//!   (user, hosts, ports, database, `sslmode`, `sslrootcert`), never cut out
//!   of the text, so it cannot hold the password whatever characters that has.
//!
//! Errors never quote the string nor any piece of it (a malformed string may
//! have split a password anywhere): they say what is wrong and how to write it.

use std::borrow::Cow;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio_postgres::config::Host;

use crate::spelling;
use crate::tls::TlsMode;

/// What a connection string looks like, for error messages.
pub const EXAMPLE: &str =
    "a string such as postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres";

/// The parameters tokio-postgres knows, and `sslrootcert` (ours).
const KNOWN_KEYS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslrootcert",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// What percent-encoding writes as is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How to write a password holding characters a URL gives a meaning to.
pub const HOW_TO_ENCODE: &str = "`@` as %40, `:` %3A, `/` %2F, `?` %3F, `#` %23, \
     `%` %25, `&` %26, `=` %3D, a space %20 (python3 -c 'import urllib.parse; \
     print(urllib.parse.quote(input(), safe=\"\"))' prints the encoded form of what you type), \
     or use the key=value form: host=HOST user=USER password='PASSWORD' dbname=DATABASE";

/// A connection string, read: what the driver needs, and the TLS settings.
#[derive(Clone)]
pub struct ConnInfo {
    /// For the driver, password included: never format it.
    pub pg: tokio_postgres::Config,
    pub tls_mode: TlsMode,
    pub root_cert: Option<PathBuf>,
}

/// What is left for the driver once credentials and TLS are taken out.
struct Parts {
    /// The text the driver parses: no password, no `sslmode`, no `sslrootcert`.
    rest: String,
    user: Option<String>,
    password: Option<Vec<u8>>,
    tls_mode: Option<TlsMode>,
    root_cert: Option<PathBuf>,
}

impl ConnInfo {
    /// Reads `text`; the error names the problem, never a piece of `text`.
    pub fn parse(text: &str) -> Result<ConnInfo, String> {
        let text = text.trim();
        let parts = match ["postgres://", "postgresql://"]
            .iter()
            .find_map(|p| text.strip_prefix(p))
        {
            Some(rest) => read_url(rest)?,
            None => read_pairs(text)?,
        };
        let mut pg: tokio_postgres::Config = parts.rest.parse().map_err(|e| {
            // The driver never saw the password; its messages name an
            // option (`invalid value for option `port``), never a value.
            format!(
                "is not a valid Postgres connection string ({}); expected {EXAMPLE}",
                cause_chain(&e)
            )
        })?;
        if let Some(user) = parts.user {
            pg.user(user);
        }
        if let Some(password) = parts.password {
            pg.password(password);
        }
        if pg.get_hosts().is_empty() {
            return Err(format!("names no host; expected {EXAMPLE}"));
        }
        let tls_mode = parts.tls_mode.unwrap_or_default();
        pg.ssl_mode(tls_mode.driver_mode());
        Ok(ConnInfo {
            pg,
            tls_mode,
            root_cert: parts.root_cert,
        })
    }
}

/// The error and its sources, once each.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// An unknown parameter: named only by the known one it is nearest to, as
/// the unknown text may be a piece of a password.
fn unknown_key(key: &str) -> String {
    let hint = match spelling::nearest(key, KNOWN_KEYS.iter().copied(), 2) {
        Some(near) => format!(" (perhaps {near}, misspelled?)"),
        None => String::new(),
    };
    format!(
        "has a parameter that is not a Postgres connection parameter{hint}; expected parameters such as \
         host, port, user, password, dbname, sslmode, sslrootcert, application_name, options, connect_timeout"
    )
}

fn decode_text(raw: &str, what: &str) -> Result<String, String> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| {
            format!(
                "has a {what} that is not valid UTF-8 once percent-decoded; expected UTF-8 text"
            )
        })
}

/// The URL form, after `postgres://`.
fn read_url(rest: &str) -> Result<Parts, String> {
    // As the driver: the credentials end at the first `@`, wherever it is.
    let (credentials, after) = match rest.find('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let (hosts, tail) = after.split_at(authority_end);
    let (path, query) = match tail.strip_prefix('/') {
        Some(t) => match t.split_once('?') {
            Some((path, query)) => (Some(path), Some(query)),
            None => (Some(t), None),
        },
        None => (None, tail.strip_prefix('?')),
    };
    let pairs: Vec<&str> = query
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    // A second `@` outside a parameter's value: the first one was inside
    // the password (or user name), which then reads as part of the host.
    let stray_at = hosts.contains('@')
        || path.is_some_and(|p| p.contains('@'))
        || pairs
            .iter()
            .any(|p| p.split_once('=').map_or(*p, |(k, _)| k).contains('@'));
    if stray_at {
        return Err(format!(
            "holds an `@` that does not end the user part: a password (or user name) holding `@` \
             must be percent-encoded: {HOW_TO_ENCODE}; expected postgres://USER:PASSWORD@HOST:5432/DATABASE"
        ));
    }

    let mut parts = Parts {
        rest: String::new(),
        user: None,
        password: None,
        tls_mode: None,
        root_cert: None,
    };
    if let Some(credentials) = credentials {
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (credentials, None),
        };
        parts.user = Some(decode_text(user, "user name")?);
        parts.password = password.map(|p| percent_decode_str(p).collect());
    }
    let mut kept = Vec::new();
    for pair in pairs {
        let Some((key_raw, value_raw)) = pair.split_once('=') else {
            return Err(
                "has a parameter without `=` after the `?`; expected key=value pairs separated by `&` \
                 (a value holding `&` must be percent-encoded, as %26)"
                    .into(),
            );
        };
        let key = decode_text(key_raw, "parameter name")?;
        match key.as_str() {
            "password" => parts.password = Some(percent_decode_str(value_raw).collect()),
            "user" => parts.user = Some(decode_text(value_raw, "user name")?),
            "sslmode" => {
                parts.tls_mode = Some(TlsMode::parse(&decode_text(value_raw, "sslmode")?)?)
            }
            "sslrootcert" => {
                parts.root_cert = Some(PathBuf::from(decode_text(value_raw, "sslrootcert")?))
            }
            k if KNOWN_KEYS.contains(&k) => {
                // No `@` may reach the driver: it would read the text
                // before it as credentials.
                kept.push(format!("{key_raw}={}", value_raw.replace('@', "%40")));
            }
            _ => return Err(unknown_key(&key)),
        }
    }
    let mut text = format!("postgres://{hosts}");
    if let Some(path) = path {
        text.push('/');
        text.push_str(path);
    }
    if !kept.is_empty() {
        text.push('?');
        text.push_str(&kept.join("&"));
    }
    parts.rest = text;
    Ok(parts)
}

/// The `key=value` form, read as the driver reads it.
fn read_pairs(text: &str) -> Result<Parts, String> {
    const EXPECTED: &str = "expected key=value pairs separated by spaces, a value holding spaces or \
         quotes written in single quotes with \\' for a quote (password='it\\'s here')";
    if text.is_empty() {
        return Err(format!("is empty; expected {EXAMPLE}"));
    }
    let mut chars = text.chars().peekable();
    let mut pairs: Vec<(String, String)> = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            if chars.peek().is_none() {
                break;
            }
            return Err(format!(
                "has a `=` with no parameter name before it; {EXPECTED}"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "is neither a postgres:// URL nor key=value pairs (a word without `=` after it); \
                 {EXPECTED}; or {EXAMPLE}"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "has a quoted value with no closing quote; {EXPECTED}"
                        ));
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(format!("has a parameter with no value; {EXPECTED}"));
            }
        }
        pairs.push((key, value));
    }

    let mut parts = Parts {
        rest: String::new(),
        user: None,
        password: None,
        tls_mode: None,
        root_cert: None,
    };
    let mut kept = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "password" => parts.password = Some(value.into_bytes()),
            "sslmode" => parts.tls_mode = Some(TlsMode::parse(&value)?),
            "sslrootcert" => parts.root_cert = Some(PathBuf::from(value)),
            k if KNOWN_KEYS.contains(&k) => {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push(format!("{key}='{quoted}'"));
            }
            _ => return Err(unknown_key(&key)),
        }
    }
    parts.rest = kept.join(" ");
    Ok(parts)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> ConnInfo {
        ConnInfo::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn show(text: &str) -> String {
        let c = read(text);
        shown(&c.pg, c.tls_mode, c.root_cert.as_ref())
    }

    #[test]
    fn reads_credentials_as_the_driver_does_and_never_shows_them() {
        for (text, password) in [
            (
                "postgres://app:Slash/Secret1@127.0.0.1:5432/db",
                "Slash/Secret1",
            ),
            (
                "postgres://app:Quest?Secret2@127.0.0.1:5432/db",
                "Quest?Secret2",
            ),
            (
                "postgres://app:At%40Secret3@127.0.0.1:5432/db",
                "At@Secret3",
            ),
            (
                "postgres://app:Hash#Amp&Eq=Sp ace@127.0.0.1:5432/db",
                "Hash#Amp&Eq=Sp ace",
            ),
            (
                "postgresql://app@127.0.0.1:5432/db?password=P%26Q%3DR",
                "P&Q=R",
            ),
            (
                "host=127.0.0.1 port=5432 user=app password = Spacey3 dbname=db",
                "Spacey3",
            ),
            (
                "host=127.0.0.1 user=app password='it\\'s a\\\\b' dbname=db",
                "it's a\\b",
            ),
            (
                "postgres://app:%C3%9Cn%C3%AF%E2%82%AC@127.0.0.1:5432/db",
                "Ünï€",
            ),
        ] {
            let c = read(text);
            assert_eq!(c.pg.get_password(), Some(password.as_bytes()), "{text}");
            assert_eq!(c.pg.get_user(), Some("app"), "{text}");
            assert_eq!(c.pg.get_dbname(), Some("db"), "{text}");
            assert_eq!(show(text), "postgres://app@127.0.0.1:5432/db", "{text}");
        }
    }

    #[test]
    fn shows_hosts_ports_and_the_tls_options_that_matter() {
        assert_eq!(
            show("postgres://u:p@h1:6543,[::1]/my%20db?sslmode=verify-full&application_name=x%40y"),
            "postgres://u@h1:6543,[::1]:5432/my%20db?sslmode=verify-full"
        );
        assert_eq!(
            show("postgres://h/db?sslmode=disable"),
            "postgres://h:5432/db?sslmode=disable"
        );
        assert_eq!(
            show("host=h user=u sslmode=require sslrootcert=/etc/ca.pem"),
            "postgres://u@h:5432?sslmode=require&sslrootcert=%2Fetc%2Fca.pem"
        );
        let c = read("postgres://u@h/db?application_name=a%40b&options=-c%20x%3D1");
        assert_eq!(c.pg.get_application_name(), Some("a@b"));
        assert_eq!(c.pg.get_options(), Some("-c x=1"));
        let c = read("postgres://u@h/db?application_name=a@b");
        assert_eq!(c.pg.get_application_name(), Some("a@b"));
    }

    #[test]
    fn errors_never_quote_the_string() {
        for (text, says) in [
            ("postgres://u:p@ssHidden1@host/db", "percent-encoded"),
            ("postgres://u:p@ss/Hidden1@host/db", "percent-encoded"),
            ("postgres://u:p@s?sHidden1@host/db", "percent-encoded"),
            ("postgres://u:Hidden1@host:notaport/db", "port"),
            ("postgres://u:Hidden1@host/db?sslmode=Hidden1", "sslmode"),
            (
                "postgres://u:Hidden1@host/db?Hidden1=x",
                "not a Postgres connection parameter",
            ),
            (
                "postgres://u:Hidden1@host/db?pasword=Hidden1",
                "perhaps password",
            ),
            ("postgres://u:pw@host/db?Hidden1", "without `=`"),
            ("host=h password=Hid den1", "without `=`"),
            ("host=h password='Hidden1", "closing quote"),
            ("host=h password=", "no value"),
            ("host=h =Hidden1", "no parameter name"),
            ("Hidden1", "neither"),
            ("user=u password=Hidden1", "no host"),
        ] {
            let e = ConnInfo::parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text} parsed"));
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.contains("expected"), "{text}: {e}");
            for piece in ["Hidden1", "Hid", "den1", "ssHidden", "p@s"] {
                assert!(!e.contains(piece), "{text}: {e}");
            }
        }
    }

    #[test]
    fn takes_tls_parameters_out() {
        let c = read("postgres://u:p@h/db?sslmode=verify-full&application_name=x");
        assert_eq!(c.tls_mode, TlsMode::VerifyFull);
        assert_eq!(c.pg.get_application_name(), Some("x"));
        let c = read("host=h sslmode=require user=u");
        assert_eq!(c.tls_mode, TlsMode::Require);
        assert_eq!(read("postgres://h/db").tls_mode, TlsMode::Prefer);
        let e = ConnInfo::parse("postgres://h/db?sslmode=verify_full")
            .err()
            .unwrap();
        assert!(e.contains("perhaps verify-full"), "{e}");
    }
}
