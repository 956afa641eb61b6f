//! Variables that look like the monitor's but are not: a misspelled
//! setting (`MONITOR_CHECK_INTERVALL`) or project (`DEV_SUPABASE_DBURL`)
//! would otherwise be ignored in silence.
//!
//! Only names that start with `MONITOR_`, contain `SUPABASE`, or are within
//! two edits of a known variable are judged: the environment holds plenty
//! of other programs' variables. Each is named with the nearest known name
//! (its value is never shown).

use registre_actors::spelling::{distance, nearest};

/// Variables of the deployment files that the monitor does not read but
/// that are no mistake (docker compose's `env_file` choice).
const ALSO_KNOWN: &[&str] = &["MONITOR_ENV_FILE", "RUST_LOG", "NO_COLOR"];

/// What a project's variable ends with.
const DB_URL: &str = "SUPABASE_DB_URL";

/// One line per suspicious variable of `env`: the name and what it is
/// probably meant to be. `known` are the variables the flags read.
pub fn misspelled(env: &[(String, String)], known: &[String]) -> Vec<String> {
    let known: Vec<&str> = known
        .iter()
        .map(String::as_str)
        .chain(ALSO_KNOWN.iter().copied())
        .collect();
    let mut warnings = Vec::new();
    let mut names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    for name in names {
        if known.contains(&name)
            || name.ends_with("_SUPABASE_DB_URL")
            || name.ends_with("_SUPABASE_URL")
        {
            continue;
        }
        if let Some(project) = project_variable(name) {
            warnings.push(format!(
                "{name} is not a variable the monitor reads (ignored); did you mean {project}?"
            ));
        } else if name == DB_URL {
            warnings.push(format!(
                "{name} names no project (ignored); expected <NAME>_{DB_URL}, such as DEV_{DB_URL}"
            ));
        } else if name.starts_with("MONITOR_") {
            let near = nearest(name, known.iter().copied(), usize::MAX)
                .unwrap_or("MONITOR_CHECK_INTERVAL");
            warnings.push(format!(
                "{name} is not a setting (ignored); did you mean {near}? (settings: docs/configuration.md)"
            ));
        } else if name.len() >= 6
            && let Some(near) = nearest(name, known.iter().copied(), 2)
        {
            warnings.push(format!(
                "{name} is not a variable the monitor reads (ignored); did you mean {near}?"
            ));
        }
    }
    warnings
}

/// The project variable `name` is a misspelling of, if it looks like one:
/// `DEV_SUPABASE_DBURL`, `DEV_SUPABSE_DB_URL` or `DEVSUPABASE_DB_URL` is
/// `DEV_SUPABASE_DB_URL`.
fn project_variable(name: &str) -> Option<String> {
    let valid = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    // A project name, then something close to `_SUPABASE_DB_URL`.
    let by_underscore = name.match_indices('_').find_map(|(i, _)| {
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        (valid(prefix) && distance(rest, DB_URL) <= 2).then(|| prefix.to_string())
    });
    // `SUPABASE` spelt right, what is around it not.
    let by_word = || {
        let at = name.find("SUPABASE")?;
        let prefix = name[..at].trim_end_matches('_');
        let rest = &name[at + "SUPABASE".len()..];
        (valid(prefix) && distance(rest, "_DB_URL") <= 2).then(|| prefix.to_string())
    };
    by_underscore
        .or_else(by_word)
        .map(|prefix| format!("{prefix}_{DB_URL}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(names: &[&str]) -> Vec<String> {
        let env: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.to_string(), "x".to_string()))
            .collect();
        let known = ["MONITOR_CHECK_INTERVAL", "MONITOR_HTTP_ADDR", "LOG_LEVEL"].map(String::from);
        misspelled(&env, &known)
    }

    #[test]
    fn names_the_misspelled_variable_and_the_nearest_known_one() {
        let w = warnings(&["MONITOR_CHECK_INTERVALL"]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("MONITOR_CHECK_INTERVALL is not a setting"),
            "{w:?}"
        );
        assert!(
            w[0].contains("did you mean MONITOR_CHECK_INTERVAL?"),
            "{w:?}"
        );
        for (typo, meant) in [
            ("DEV_SUPABASE_DBURL", "DEV_SUPABASE_DB_URL"),
            ("DEV_SUPABSE_DB_URL", "DEV_SUPABASE_DB_URL"),
            ("DEVSUPABASE_DB_URL", "DEV_SUPABASE_DB_URL"),
            ("MY_APP_SUPABASE_DB_URI", "MY_APP_SUPABASE_DB_URL"),
        ] {
            let w = warnings(&[typo]);
            assert_eq!(w.len(), 1, "{typo}: {w:?}");
            assert!(
                w[0].contains(&format!("did you mean {meant}?")),
                "{typo}: {w:?}"
            );
        }
        assert!(warnings(&["LOG_LEVLE"])[0].contains("did you mean LOG_LEVEL?"));
        assert!(warnings(&["SUPABASE_DB_URL"])[0].contains("names no project"));
    }

    #[test]
    fn leaves_other_programs_variables_alone() {
        let w = warnings(&[
            "PATH",
            "HOME",
            "HOSTNAME",
            "DEV_SUPABASE_DB_URL",
            "DEV_SUPABASE_URL",
            "DEV_SUPABASE_ANON_KEY",
            "DEV_SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_URL",
            "MONITOR_ENV_FILE",
            "JOURNAL_STREAM",
            "INVOCATION_ID",
            "MONITOR_HTTP_ADDR",
        ]);
        assert!(w.is_empty(), "{w:?}");
    }
}
