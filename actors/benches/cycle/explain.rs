//! What a cycle costs, read from `EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)`.

use postgres::{Client, SimpleQueryMessage};
use serde_json::Value;

use super::simple;
use crate::sides::Side;

/// What one statement cost, from its `EXPLAIN ANALYZE`.
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub exec_ms: f64,
    pub plan_ms: f64,
    pub rows_read: f64,
    pub buffers: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.exec_ms += o.exec_ms;
        self.plan_ms += o.plan_ms;
        self.rows_read += o.rows_read;
        self.buffers += o.buffers;
    }
}

/// Runs every statement of `side` under EXPLAIN ANALYZE in a savepoint that
/// is then rolled back.
pub fn run_cycle(c: &mut Client, side: &Side) -> (Cost, Vec<(String, Cost)>) {
    simple(c, "SAVEPOINT cycle");
    let mut total = Cost::default();
    let mut detail = Vec::new();
    for (label, prefix, statement) in &side.statements {
        let text =
            format!("{prefix}EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) {statement}");
        let json = simple(c, &text)
            .into_iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .expect("EXPLAIN returns its plan");
        let v: Value = serde_json::from_str(&json).expect("EXPLAIN JSON");
        let top = &v[0];
        let plan = &top["Plan"];
        let cost = Cost {
            exec_ms: top["Execution Time"].as_f64().unwrap_or(0.0),
            plan_ms: top["Planning Time"].as_f64().unwrap_or(0.0),
            rows_read: rows_read(plan),
            buffers: plan["Shared Hit Blocks"].as_u64().unwrap_or(0)
                + plan["Shared Read Blocks"].as_u64().unwrap_or(0),
        };
        total += cost.clone();
        detail.push((label.clone(), cost));
    }
    simple(c, "ROLLBACK TO SAVEPOINT cycle");
    (total, detail)
}

/// Rows a plan read from tables and indexes: for every node that scans a
/// relation, its rows out plus those its filter removed, over all loops
/// (EXPLAIN shows per-loop averages).
fn rows_read(node: &Value) -> f64 {
    let mut n = 0.0;
    let kind = node["Node Type"].as_str().unwrap_or("");
    if node.get("Relation Name").is_some() && kind != "ModifyTable" {
        let loops = node["Actual Loops"].as_f64().unwrap_or(1.0);
        let per_loop = node["Actual Rows"].as_f64().unwrap_or(0.0)
            + node["Rows Removed by Filter"].as_f64().unwrap_or(0.0)
            + node["Rows Removed by Index Recheck"]
                .as_f64()
                .unwrap_or(0.0);
        n += per_loop * loops;
    }
    if let Some(children) = node["Plans"].as_array() {
        n += children.iter().map(rows_read).sum::<f64>();
    }
    n
}
