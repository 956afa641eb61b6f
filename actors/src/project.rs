//! One watched project: a name and how to reach its database.

use std::fmt;

use crate::conninfo::{self, ConnInfo};
use crate::tls::TlsSettings;

/// A Supabase project (an "environment" in the logs).
///
/// Holds the parsed connection settings, never the connection string: the
/// driver's `Config` hides the password in its `Debug`, and our `Debug`
/// shows only [`Project::shown`].
#[derive(Clone)]
pub struct Project {
    /// Lower-case name, as in `environment=prod`.
    pub name: String,
    /// Connection settings, password included: never format it.
    pub pg: tokio_postgres::Config,
    /// The connection as people are shown it (`postgres://user@host:5432/db`),
    /// built from the parsed settings: it cannot hold the password.
    pub shown: String,
    /// `sslmode` and `sslrootcert`, taken out of the string.
    pub tls: TlsSettings,
}

impl fmt::Debug for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Project")
            .field("name", &self.name)
            .field("shown", &self.shown)
            .field("tls", &self.tls)
            .finish()
    }
}

/// What a connection string looks like, for error messages.
pub const EXAMPLE_URL: &str = conninfo::EXAMPLE;

impl Project {
    /// Reads a Postgres connection string (`postgres://user:pass@host:port/db?...`
    /// or libpq `key=value` form). The error quotes no part of `text`.
    pub fn parse(name: &str, text: &str) -> Result<Project, String> {
        let info = ConnInfo::parse(text)?;
        let tls = TlsSettings::new(info.tls_mode, info.root_cert)?;
        let mut project = Project {
            name: name.to_string(),
            pg: info.pg,
            shown: String::new(),
            tls,
        };
        project.reshow();
        Ok(project)
    }

    /// The same project on another database of the same server.
    pub fn on_database(&self, database: &str) -> Project {
        let mut project = self.clone();
        project.pg.dbname(database);
        project.reshow();
        project
    }

    fn reshow(&mut self) {
        self.shown = conninfo::shown(&self.pg, self.tls.mode, self.tls.root_cert.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_hide_the_password() {
        let p = Project::parse("dev", "postgres://u:hunter2@localhost/db").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(p.shown, "postgres://u@localhost:5432/db");
        assert_eq!(
            p.on_database("other").shown,
            "postgres://u@localhost:5432/other"
        );
        let e = Project::parse("dev", "postgres://u:hunter2@localhost:notaport/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
