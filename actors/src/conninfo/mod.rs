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
//! Parts: `url.rs` and `pairs.rs` read the two forms, `shown.rs` writes what
//! people see.
//!
//! Errors never quote the string nor any piece of it (a malformed string may
//! have split a password anywhere): they say what is wrong and how to write it.

mod pairs;
mod shown;
mod url;

use std::path::PathBuf;

pub use shown::shown;
pub use url::HOW_TO_ENCODE;

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

/// A connection string, read: what the driver needs, and the TLS settings.
#[derive(Clone)]
pub struct ConnInfo {
    /// For the driver, password included: never format it.
    pub pg: tokio_postgres::Config,
    pub tls_mode: TlsMode,
    pub root_cert: Option<PathBuf>,
}

/// What is left for the driver once credentials and TLS are taken out.
#[derive(Default)]
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
            Some(rest) => url::read(rest)?,
            None => pairs::read(text)?,
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
