//! Statements the server keeps parsed and planned, under SQL-level
//! `PREPARE`, so that a check's statements cost the database their
//! execution alone.
//!
//! Parsing and planning were most of what a cycle cost (a read of a few
//! index pages planned in 0.4 ms, executed in 0.02 ms; a release of a dead
//! worker's two jobs planned in 0.5 ms). A prepared statement is planned
//! once per session and reused: one without parameters always, one with
//! parameters (the lists a write is given, as `EXECUTE`'s values) because
//! it is run with `plan_cache_mode = force_generic_plan` (PostgreSQL 12).
//!
//! Why SQL `PREPARE`/`EXECUTE` in the simple protocol, not the driver's
//! protocol-level statements: those are named `s0`, `s1`... by every
//! tokio-postgres client alike, so behind a transaction pooler one client
//! could run another's. Here the name is the hash of the text
//! (`registre_monitor_<hash>`): a server connection that already has a
//! statement of that name has this very text (from this instance, or from
//! another running the same version), so reusing it is always right.
//!
//! Each session's statements are remembered, so a direct connection
//! prepares each text once, in the request that first runs it, and never
//! sees an error. A pooler may send `EXECUTE` to a server connection that
//! lacks it (SQLSTATE 26000): it is then prepared and executed in one
//! request, which one server connection runs whole. If that request lands
//! where the statement already exists (42P05), the text is sent as it is.
//! (Those two errors appear in the server's log behind a pooler, a few per
//! server connection.)
//!
//! Each text prepared stays in its session until the session ends, so a
//! project prepares at most [`MAX_PREPARED`] texts; past that, statements
//! are sent as they are, their values written in place.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The most texts a project keeps prepared: the reads and writes of a
/// cycle, with a few variants each (a count cap, the rules' thresholds).
pub const MAX_PREPARED: usize = 32;

/// Sessions remembered at most: a pool keeps two, and a session replaced
/// leaves its entry behind until the map is cleared.
const MAX_SESSIONS: usize = 16;

/// The texts a project has given a name, and which sessions have which.
#[derive(Debug, Default)]
pub struct Prepared {
    names: Mutex<HashSet<u64>>,
    /// Per session (the address of its connection's statement cache, one
    /// per connection), the names prepared in it.
    sessions: Mutex<HashMap<usize, HashSet<u64>>>,
}

/// A text's name, as sent and as remembered.
pub struct Name {
    hash: u64,
    pub text: String,
}

impl Prepared {
    /// The name `sql` is prepared under, or `None` when the project keeps
    /// [`MAX_PREPARED`] others already.
    pub fn name(&self, sql: &str) -> Option<Name> {
        let hash = fnv1a(sql);
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.contains(&hash) || names.len() < MAX_PREPARED {
            names.insert(hash);
            Some(Name {
                hash,
                text: format!("registre_monitor_{hash:016x}"),
            })
        } else {
            None
        }
    }

    /// Whether `session` was seen to have `name`.
    pub fn has(&self, session: usize, name: &Name) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(&session)
            .is_some_and(|names| names.contains(&name.hash))
    }

    /// Remembers that `session` has `name` (`true`) or lacks it.
    pub fn set(&self, session: usize, name: &Name, has: bool) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if has {
            if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(&session) {
                sessions.clear();
            }
            sessions.entry(session).or_default().insert(name.hash);
        } else if let Some(names) = sessions.get_mut(&session) {
            names.remove(&name.hash);
        }
    }
}

/// The request that runs a prepared statement with `values` (SQL literals)
/// as its parameters. With values, on the plan made for any values: left
/// to choose, the server plans anew for each run the statements whose
/// plan for any values it estimates dearer (a list of 10 ids where there
/// are 3), and planning is what this saves.
pub fn execute(name: &str, values: &[String]) -> String {
    if values.is_empty() {
        format!("EXECUTE {name}")
    } else {
        format!(
            "SET LOCAL plan_cache_mode = force_generic_plan; EXECUTE {name}({})",
            values.join(", ")
        )
    }
}

/// The request that prepares `sql` under `name` and runs it, on one server
/// connection (one request is one transaction, which a pooler keeps on one
/// server connection).
pub fn prepare_and_execute(name: &str, sql: &str, values: &[String]) -> String {
    format!("PREPARE {name} AS {sql}; {}", execute(name, values))
}

/// `sql` with each `$n` replaced by its value: the statement as it is sent
/// unprepared. The monitor's texts hold no `$` but their parameters'; in
/// one pass, so that a value holding `$1` (a worker's name) stays as it is.
pub fn inline(sql: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let n: Option<usize> = rest[at + 1..at + 1 + digits].parse().ok();
        match n.and_then(|n| values.get(n.wrapping_sub(1))) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's
/// hasher, so that every instance of a version names a text alike.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_keeps_its_name_and_others_get_theirs() {
        let p = Prepared::default();
        let a = p.name("SELECT 1").unwrap();
        assert_eq!(p.name("SELECT 1").unwrap().text, a.text);
        assert_ne!(p.name("SELECT 2").unwrap().text, a.text);
        assert!(!p.has(7, &a));
        p.set(7, &a, true);
        assert!(p.has(7, &a) && !p.has(8, &a));
        p.set(7, &a, false);
        assert!(!p.has(7, &a));
        // The published FNV-1a value of "a", so names agree across builds.
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn past_the_cap_texts_go_as_they_are() {
        let p = Prepared::default();
        for i in 0..MAX_PREPARED {
            assert!(p.name(&format!("SELECT {i}")).is_some());
        }
        assert!(p.name("SELECT 'one more'").is_none());
        assert!(p.name("SELECT 0").is_some(), "a known text keeps its name");
    }

    #[test]
    fn values_go_in_their_places() {
        let values: Vec<String> = (1..=12).map(|i| format!("v{i}")).collect();
        assert_eq!(inline("$1 $12 $2", &values), "v1 v12 v2");
        let odd = ["E'{\"$2\"}'".to_string(), "x".to_string()];
        assert_eq!(
            inline("a = ANY ($1) AND $2$", &odd),
            "a = ANY (E'{\"$2\"}') AND x$"
        );
        assert!(execute("n", &values[..2]).ends_with("; EXECUTE n(v1, v2)"));
        assert_eq!(execute("n", &[]), "EXECUTE n");
    }
}
