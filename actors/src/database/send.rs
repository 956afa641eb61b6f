//! How one request goes out on a session (pooled, or the election's): as
//! a prepared statement or as it is, with the server's timeout and the
//! commit mode in front, and what its failure says about the session.

use std::sync::Arc;

use tokio_postgres::SimpleQueryMessage;

use super::{Database, DbError, prepared};

/// Why [`Database::send_json`] failed: an answer that was an error, or no
/// answer at all (the connection is then unusable); or, for a prepared
/// statement, that this server connection lacks it or has it already.
pub(super) enum SendError {
    Failed(DbError),
    NoAnswer(DbError),
    NotPrepared(DbError),
    AlreadyPrepared(DbError),
}

impl SendError {
    /// Whether the session must be closed, not used again: a request may
    /// still be in flight on it (no answer), or it was opened read-only
    /// (by default, or on a replica) and stays so, where a fresh one sees
    /// the setting changed or the primary after a failover.
    pub(super) fn spoils_session(&self) -> bool {
        matches!(
            self,
            SendError::NoAnswer(_) | SendError::Failed(DbError::ReadOnly(_))
        )
    }

    /// The error as the caller sees it.
    pub(super) fn into_error(self) -> DbError {
        match self {
            SendError::Failed(e)
            | SendError::NoAnswer(e)
            | SendError::NotPrepared(e)
            | SendError::AlreadyPrepared(e) => e,
        }
    }
}

/// Whether a request's commit waits until it is on disk.
#[derive(Clone, Copy)]
pub(super) enum Commit {
    /// The server's setting (on, by default): the answer comes after.
    Durable,
    /// Not waited for: see [`Database::write_redoable`].
    Redoable,
}

impl Database {
    /// Sends `sql` with `values` on `client`: prepared as `prepared_as`
    /// when named, else with the values written in place.
    pub(super) async fn send_on<T: serde::de::DeserializeOwned>(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        sql: &str,
        values: &[String],
        prepared_as: Option<prepared::Name>,
        commit: Commit,
    ) -> Result<T, SendError> {
        match prepared_as {
            Some(name) => self.send_prepared(client, sql, values, &name, commit).await,
            None => {
                let request = prepared::inline(sql, values);
                self.send_json(client, &request, commit).await
            }
        }
    }

    /// Runs `sql` with `values` prepared as `name` on this session: executed
    /// where the session has it, else prepared and executed in one
    /// request; else (a pooler moved the request to a server connection
    /// that has it already) sent as it is.
    async fn send_prepared<T: serde::de::DeserializeOwned>(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        sql: &str,
        values: &[String],
        name: &prepared::Name,
        commit: Commit,
    ) -> Result<T, SendError> {
        let session = Arc::as_ptr(&client.statement_cache) as usize;
        if self.prepared.has(session, name) {
            let execute = prepared::execute(&name.text, values);
            match self.send_json(client, &execute, commit).await {
                Err(SendError::NotPrepared(_)) => self.prepared.set(session, name, false),
                other => return other,
            }
        }
        let prepare = prepared::prepare_and_execute(&name.text, sql, values);
        match self.send_json(client, &prepare, commit).await {
            Err(SendError::AlreadyPrepared(_)) => {
                self.prepared.set(session, name, true);
                let request = prepared::inline(sql, values);
                self.send_json(client, &request, commit).await
            }
            Ok(value) => {
                self.prepared.set(session, name, true);
                Ok(value)
            }
            other => other,
        }
    }

    pub(super) async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
        commit: Commit,
    ) -> Result<T, SendError> {
        let request = format!(
            "SET LOCAL statement_timeout = {}; {}{sql}",
            self.statement_timeout.as_millis().max(1),
            match commit {
                Commit::Durable => "",
                Commit::Redoable => "SET LOCAL synchronous_commit = off; ",
            }
        );
        // The server's timeout should fire first; this one is for a network
        // that stopped answering.
        let deadline = self.statement_timeout + self.connect_timeout;
        let sent = client.simple_query(&request);
        let sent = crate::in_flight::every_project().track(&self.project, client, &self.tls, sent);
        let result = tokio::time::timeout(deadline, sent).await;
        let messages = match result {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                use tokio_postgres::error::SqlState;
                return Err(match e.code() {
                    Some(&SqlState::INVALID_SQL_STATEMENT_NAME) => SendError::NotPrepared(e.into()),
                    Some(&SqlState::DUPLICATE_PSTATEMENT) => SendError::AlreadyPrepared(e.into()),
                    _ => SendError::Failed(e.into()),
                });
            }
            Err(_) => {
                return Err(SendError::NoAnswer(DbError::Timeout(format!(
                    "no answer from the server within {} ms",
                    deadline.as_millis()
                ))));
            }
        };
        let text = messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row.get(0)),
                _ => None,
            })
            .flatten()
            .ok_or_else(|| {
                SendError::Failed(DbError::Query("the statement returned no row".into()))
            })?;
        serde_json::from_str(text)
            .map_err(|e| SendError::Failed(DbError::Query(format!("unexpected result shape: {e}"))))
    }
}
