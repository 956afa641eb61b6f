//! Which projects to watch, found in the environment.
//!
//! Every `<NAME>_SUPABASE_DB_URL` holding a Postgres connection string is a
//! project named `<name>` in lower case; a `<NAME>_SUPABASE_URL` counts too
//! when it holds a `postgres://` string (an `https://` API URL does not: the
//! monitor talks to Postgres directly, and start-up says which variable to
//! add).

use std::collections::BTreeMap;

use registre_actors::Project;

use super::ConfigError;

/// The variable suffix that names a project's Postgres connection string.
const DB_URL_SUFFIX: &str = "_SUPABASE_DB_URL";
/// The Supabase client libraries' variable: an HTTPS API URL, or sometimes
/// a Postgres string.
const API_URL_SUFFIX: &str = "_SUPABASE_URL";

/// Whether `value` is a web address (Supabase's API URL) rather than a
/// Postgres connection string.
fn is_api_url(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// `var` holds an API URL; `want` is the variable to set instead (or the
/// same one, with another value).
fn api_url_error(var: &str, want: &str) -> ConfigError {
    ConfigError(format!(
        "{var} is an HTTPS API URL, but registre-monitor talks to Postgres directly; expected {want} \
         set to the project's Postgres connection string (Supabase dashboard, Connect), such as \
         postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres"
    ))
}

/// Finds the projects in `env`, with warnings for variables that name
/// none; see the module documentation.
pub fn projects(env: &[(String, String)]) -> Result<(Vec<Project>, Vec<String>), ConfigError> {
    // Lower-case name -> (variable, value), Postgres strings only.
    let mut found: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut api_only: BTreeMap<String, String> = BTreeMap::new();
    let mut sorted: Vec<&(String, String)> = env.iter().collect();
    // `_DB_URL` first, so it wins over a Postgres `_SUPABASE_URL` of the same project.
    sorted.sort_by_key(|(k, _)| (!k.ends_with(DB_URL_SUFFIX), k.clone()));
    for (var, value) in sorted {
        let (prefix, is_db_url) = if let Some(p) = var.strip_suffix(DB_URL_SUFFIX) {
            (p, true)
        } else if let Some(p) = var.strip_suffix(API_URL_SUFFIX) {
            (p, false)
        } else {
            continue;
        };
        let is_postgres = value.starts_with("postgres://") || value.starts_with("postgresql://");
        if !is_db_url && !is_postgres {
            api_only.insert(prefix.to_ascii_lowercase(), var.clone());
            continue;
        }
        if is_db_url && is_api_url(value) {
            return Err(api_url_error(var, var));
        }
        let valid_name = prefix.starts_with(|c: char| c.is_ascii_alphabetic())
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(ConfigError(format!(
                "{var}: {prefix:?} is not a valid project name; expected letters, digits and underscores, \
                 starting with a letter (as in PROD_SUPABASE_DB_URL)"
            )));
        }
        if value.trim().is_empty() {
            return Err(ConfigError(format!(
                "{var} is empty; expected a Postgres connection string such as \
                 postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres"
            )));
        }
        let name = prefix.to_ascii_lowercase();
        match found.get(&name) {
            Some((other, _)) if other.ends_with(DB_URL_SUFFIX) && !is_db_url => continue,
            Some((other, _)) => {
                return Err(ConfigError(format!(
                    "{var} and {other} both name the project {name:?}; expected one variable per project \
                     (names are compared in lower case)"
                )));
            }
            None => {}
        }
        found.insert(name, (var.clone(), value.clone()));
    }

    let mut warnings = Vec::new();
    for (name, var) in &api_only {
        if !found.contains_key(name) {
            let want = format!("{}{DB_URL_SUFFIX}", name.to_ascii_uppercase());
            if found.is_empty() {
                return Err(api_url_error(var, &want));
            }
            warnings.push(format!(
                "{var} is set but {want} is not: project {name} is not watched"
            ));
        }
    }
    if found.is_empty() {
        return Err(ConfigError(
            "no project configured; expected at least one <NAME>_SUPABASE_DB_URL variable (in the environment \
             or a .env file) holding a Postgres connection string, such as \
             DEV_SUPABASE_DB_URL=postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres"
                .into(),
        ));
    }
    let projects = found
        .into_iter()
        .map(|(name, (var, url))| {
            Project::parse(&name, &url).map_err(|e| ConfigError(format!("{var} {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((projects, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_projects_by_suffix_in_lower_case() {
        let (p, w) = projects(&env(&[
            ("PROD_SUPABASE_DB_URL", "postgres://u:p@h/db"),
            ("STAGING_SUPABASE_URL", "postgresql://u@h2/db"),
            ("DEV_SUPABASE_URL", "https://x.supabase.co"),
            ("PROD_SUPABASE_URL", "https://y.supabase.co"),
        ]))
        .unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["prod", "staging"]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("DEV_SUPABASE_DB_URL"));
    }

    #[test]
    fn the_db_url_wins_over_a_postgres_api_url() {
        let (p, _) = projects(&env(&[
            ("PROD_SUPABASE_URL", "postgres://u@other/db"),
            ("PROD_SUPABASE_DB_URL", "postgres://u@h/db"),
        ]))
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].shown, "postgres://u@h:5432/db");
    }

    #[test]
    fn https_only_names_the_variable_to_add() {
        let e = projects(&env(&[("DEV_SUPABASE_URL", "https://x.supabase.co")])).unwrap_err();
        assert!(e.0.contains("DEV_SUPABASE_DB_URL"), "{e}");
        let same = projects(&env(&[("DEV_SUPABASE_DB_URL", "https://x.supabase.co")])).unwrap_err();
        assert_eq!(
            same.0,
            e.0.replacen("DEV_SUPABASE_URL", "DEV_SUPABASE_DB_URL", 1),
            "the same message"
        );
    }

    #[test]
    fn an_unencoded_at_names_the_variable_and_shows_how() {
        let e = projects(&env(&[(
            "DEV_SUPABASE_DB_URL",
            "postgres://u:p@ss@host/db",
        )]))
        .unwrap_err();
        assert!(e.0.starts_with("DEV_SUPABASE_DB_URL holds an `@`"), "{e}");
        assert!(
            e.0.contains("percent-encoded") && e.0.contains("%40"),
            "{e}"
        );
        assert!(!e.0.contains("p@ss") && !e.0.contains("ss@host"), "{e}");
    }
}
