//! The indexes the monitor's statements want, read from `sql/indexes.sql`
//! (the one list: the file operators run, and what `diagnose` checks).

/// The recommended indexes' file, compiled in.
pub const INDEXES_SQL: &str = include_str!("../../sql/indexes.sql");

/// One recommended index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendedIndex {
    /// The index's name, as in `pg_indexes.indexname`.
    pub name: String,
    /// The comment above it: which statement uses it.
    pub purpose: String,
    /// The exact `CREATE INDEX CONCURRENTLY ...` to run.
    pub create: String,
}

/// Every index in `sql/indexes.sql`, in file order.
pub fn recommended() -> Vec<RecommendedIndex> {
    let mut out = Vec::new();
    let mut comment = Vec::new();
    let mut statement = String::new();
    for line in INDEXES_SQL.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("--") {
            if statement.is_empty() {
                comment.push(c.trim().to_string());
            }
            continue;
        }
        if t.is_empty() {
            if statement.is_empty() {
                comment.clear();
            }
            continue;
        }
        if !statement.is_empty() {
            statement.push(' ');
        }
        statement.push_str(t);
        if t.ends_with(';') {
            let name = statement
                .split_whitespace()
                .skip_while(|w| *w != "EXISTS")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            out.push(RecommendedIndex {
                name,
                purpose: comment.join(" "),
                create: std::mem::take(&mut statement),
            });
            comment.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_purposes_and_statements() {
        let all = recommended();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].name, "extraction_queue_processing_idx");
        assert!(all[0].purpose.contains("WorkerReaper"));
        assert!(all[2].purpose.contains("StuckJobResetter"));
        assert!(all[0].create.starts_with(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS extraction_queue_processing_idx ON"
        ));
        assert!(all[1].create.ends_with("WHERE status_id IN (1, 2, 4);"));
    }
}
