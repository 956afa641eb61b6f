//! Output for people: aligned columns (tabled), and colour only on a
//! terminal.
//!
//! Used by the operator commands (`diagnose`, `reset-stuck-jobs`). Colour is
//! decided once per command from stdout (`std::io::IsTerminal`) and
//! `NO_COLOR`, so piped output and files stay plain text.

use std::io::IsTerminal;

/// A colour for a cell or a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Red,
    Green,
    Yellow,
    Bold,
}

/// Whether to colour what goes to stdout.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn for_stdout() -> Style {
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// `text` in `colour`, or as is.
    pub fn paint(&self, text: &str, colour: Option<Colour>) -> String {
        match (self.colour, colour) {
            (true, Some(c)) => {
                let code = match c {
                    Colour::Red => "31",
                    Colour::Green => "32",
                    Colour::Yellow => "33",
                    Colour::Bold => "1",
                };
                format!("\x1b[{code}m{text}\x1b[0m")
            }
            _ => text.to_string(),
        }
    }
}

/// Writes a command's output to stdout; a closed pipe (`| head`) is not an
/// error worth a panic.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A cell: its text and an optional colour (which never affects alignment).
pub type Cell = (String, Option<Colour>);

/// A plain cell.
pub fn cell(text: impl Into<String>) -> Cell {
    (text.into(), None)
}

/// Rows under a header, each column as wide as its widest cell (colour
/// codes do not count), two spaces apart, indented by `indent`; every line
/// ends with a newline and no trailing space.
pub fn render(style: Style, indent: &str, header: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut table = tabled::builder::Builder::default();
    table.push_record(header.iter().map(|h| style.paint(h, Some(Colour::Bold))));
    for row in rows {
        table.push_record(row.iter().map(|(text, colour)| style.paint(text, *colour)));
    }
    let table = table
        .build()
        .with(tabled::settings::Style::empty())
        .with(tabled::settings::Padding::new(0, 2, 0, 0))
        .to_string();
    table
        .lines()
        .map(|line| format!("{indent}{}\n", line.trim_end()))
        .collect()
}

/// Whole seconds as people read them: `45s`, `3m 20s`, `2h 05m`, `3d 4h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_whatever_the_colour() {
        let rows = vec![
            vec![cell("worker-1"), ("alive".into(), Some(Colour::Green))],
            vec![cell("w2"), ("dead".into(), Some(Colour::Red))],
        ];
        let plain = render(Style { colour: false }, "  ", &["ID", "STATE"], &rows);
        assert_eq!(
            plain,
            "  ID        STATE\n  worker-1  alive\n  w2        dead\n"
        );
        let coloured = render(Style { colour: true }, "", &["ID", "STATE"], &rows);
        assert!(
            coloured.contains("w2        \x1b[31mdead\x1b[0m"),
            "{coloured:?}"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(45), "45s");
        assert_eq!(age(200), "3m 20s");
        assert_eq!(age(7500), "2h 05m");
        assert_eq!(age(90000), "1d 1h");
    }
}
