//! The `.env` file: `NAME=value` lines, read before anything else.
//!
//! Values never override the real environment (docker's and systemd's
//! variables win). Blank lines and `#` comments are skipped; `export NAME=`
//! and quoted values are accepted. Anything else is refused with its line
//! number, so a typo cannot silently drop a setting.

use std::path::Path;

/// Reads `path` if it exists: `Ok(None)` when it does not.
pub fn read(path: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot be read: {e}", path.display())),
    }
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

/// Parses the text of a `.env` file.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |what: &str| format!(".env line {}: {what}; expected NAME=value", i + 1);
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(at("has no '='"));
        };
        let name = name.trim();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(at(&format!("{name:?} is not a variable name")));
        }
        let value = unquote(value.trim())
            .ok_or_else(|| at(&format!("the value of {name} has an unclosed quote")))?;
        vars.push((name.to_string(), value));
    }
    Ok(vars)
}

/// Strips matching quotes; `None` when a quote is left open.
fn unquote(value: &str) -> Option<String> {
    for q in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(q) {
            return rest.strip_suffix(q).map(str::to_string);
        }
    }
    // An unquoted value ends at a ` #` comment.
    Some(
        value
            .split(" #")
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string(),
    )
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
}
