//! One watched project: a name and how to reach its database.

use std::fmt;

use crate::tls::{TlsSettings, split_tls_params};

/// A Supabase project (an "environment" in the logs).
///
/// Holds the parsed connection settings, never the connection string: the
/// driver's `Config` hides the password in its `Debug`, and our `Debug` shows
/// only the redacted string.
#[derive(Clone)]
pub struct Project {
    /// Lower-case name, as in `environment=prod`.
    pub name: String,
    /// Connection settings, password included: never format it.
    pub pg: tokio_postgres::Config,
    /// The connection string with its password replaced by `***`.
    pub redacted_url: String,
    /// `sslmode` and `sslrootcert`, taken out of the string.
    pub tls: TlsSettings,
}

impl fmt::Debug for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Project")
            .field("name", &self.name)
            .field("url", &self.redacted_url)
            .field("tls", &self.tls)
            .finish()
    }
}

/// What a connection string looks like, for error messages.
pub const EXAMPLE_URL: &str =
    "a string such as postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres";

impl Project {
    /// Reads a Postgres connection string (`postgres://user:pass@host:port/db?...`
    /// or libpq `key=value` form). The error never contains the password.
    pub fn parse(name: &str, url: &str) -> Result<Project, String> {
        let redacted_url = redact_url(url);
        let (url, tls) = split_tls_params(url)?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            format!(
                "is not a valid Postgres connection string ({redacted_url}): {}; expected {EXAMPLE_URL}",
                redact_url(&reason)
            )
        })?;
        if pg.get_hosts().is_empty() {
            return Err(format!(
                "names no host ({redacted_url}); expected {EXAMPLE_URL}"
            ));
        }
        pg.ssl_mode(tls.mode.driver_mode());
        Ok(Project {
            name: name.to_string(),
            pg,
            redacted_url,
            tls,
        })
    }
}

/// The connection string with any password replaced by `***`, in the URL's
/// user part, a `password=` parameter or a `password=` key-value pair.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    // `password=...` up to the next separator, in a query string or key-value form.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        let value_start = i + "password=".len();
        result.push_str(&rest[..value_start]);
        result.push_str("***");
        let tail = &rest[value_start..];
        let end = if let Some(quoted) = tail.strip_prefix('\'') {
            quoted.find('\'').map_or(tail.len(), |j| j + 2)
        } else {
            tail.find(['&', ' ']).unwrap_or(tail.len())
        };
        rest = &tail[end..];
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_form_of_password() {
        assert_eq!(
            redact_url("postgres://postgres:s3cr%40t@db.abc.supabase.co:5432/postgres"),
            "postgres://postgres:***@db.abc.supabase.co:5432/postgres"
        );
        assert_eq!(
            redact_url("postgresql://u@h/db?password=x&sslmode=require"),
            "postgresql://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("host=h password='a b' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn debug_and_errors_hide_the_password() {
        let p = Project::parse("dev", "postgres://u:hunter2@localhost/db").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        let e = Project::parse("dev", "postgres://u:hunter2@localhost:notaport/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
