//! The `.env` file: `NAME=value` lines, read before anything else.
//!
//! Read by dotenvy, in its (and docker compose's) format: blank lines and
//! `#` comments are skipped, `export NAME=` and quoted values are accepted,
//! and `$NAME` or `${NAME}` in an unquoted or double-quoted value is
//! replaced by that variable (single quotes keep a value as written, which
//! a password holding `$` needs). Values never override the real
//! environment (docker's and systemd's variables win). A line dotenvy
//! cannot read is refused with its number, so a typo cannot silently drop
//! a setting; nothing is set then.

use std::path::Path;

/// Reads `path` if it exists: `Ok(None)` when it does not.
pub fn read(path: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot be read: {e}", path.display())),
    }
}

/// Parses the text of a `.env` file.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    dotenvy::from_read_iter(text.as_bytes())
        .map(|item| item.map_err(|e| describe(text, e)))
        .collect()
}

/// Copies `.env` (in the working directory) into the environment, never
/// over a variable already set. Call before any other thread exists.
pub fn load() -> Result<(), String> {
    let Some(vars) = read(Path::new(".env"))? else {
        return Ok(());
    };
    for (name, value) in vars {
        if std::env::var_os(&name).is_none() {
            // SAFETY: the caller runs this before any other thread exists.
            unsafe { std::env::set_var(name, value) };
        }
    }
    Ok(())
}

/// dotenvy's error, with the line's number (dotenvy gives its text, which
/// may hold a password: it is not repeated).
fn describe(text: &str, error: dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(line, _) => {
            let number = text
                .find(line.as_str())
                .map_or(0, |at| text[..at].matches('\n').count() + 1);
            format!(".env line {number} cannot be read; expected NAME=value")
        }
        other => format!(".env: {other}; expected NAME=value lines"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_values_quotes_and_comments() {
        let vars =
            parse("# c\n\nA=1\nexport B = \"two words\"\nC='x#y'\nD=v # note\nE=\n").unwrap();
        let expect = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "x#y"),
            ("D", "v"),
            ("E", ""),
        ];
        let got: Vec<(&str, &str)> = vars.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn refuses_malformed_lines_with_their_number() {
        assert!(parse("A=1\nnonsense\n").unwrap_err().contains("line 2"));
        assert!(parse("1A=1").is_err());
        assert!(parse("A=\"open").is_err());
    }

    #[test]
    fn single_quotes_keep_a_dollar() {
        let vars = parse("P='pa$word'\n").unwrap();
        assert_eq!(vars, [("P".to_string(), "pa$word".to_string())]);
    }
}
