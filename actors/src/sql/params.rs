//! A statement's parameters: the lists a write is given (ids, workers, clock
//! offsets) go as `$n` in its text, so that the text stays the same from
//! run to run and the server keeps it planned (see `database/prepared.rs`).
//!
//! Each value is an SQL literal, given to `EXECUTE` as it is (or written in
//! place of its `$n` where the statement is sent unprepared, see
//! [`Database::query_json_prepared_with`](crate::database::Database::query_json_prepared_with)). A list is an
//! array literal without a type: the parameter takes the type its place in
//! the text gives it (`id = ANY ($1)` makes it an array of the id column's
//! type, whatever that is), or the one a cast names.

use super::literal;

/// The parameters of one statement, in the order of their `$n`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<String>);

impl Params {
    /// Adds the array of `items` (`None`: an SQL null element) and returns
    /// its place in the text, `$n`.
    pub fn array<'a>(&mut self, items: impl IntoIterator<Item = Option<&'a str>>) -> String {
        let elements: Vec<String> = items
            .into_iter()
            .map(|item| item.map_or_else(|| "NULL".to_string(), array_element))
            .collect();
        self.0.push(literal(&format!("{{{}}}", elements.join(","))));
        format!("${}", self.0.len())
    }

    /// Adds the array of `items`, none null.
    pub fn strings<S: AsRef<str>>(&mut self, items: &[S]) -> String {
        self.array(items.iter().map(|s| Some(s.as_ref())))
    }

    /// Adds `items` as a set of texts to test rows against, `x IN <set>`:
    /// a subquery over the array, which the server can hash or join. (A
    /// parameter after `= ANY` is searched element by element for every
    /// row, where a constant array is hashed: a thousand dead workers
    /// against a table with no index on them took seconds.)
    pub fn text_set<S: AsRef<str>>(&mut self, items: &[S]) -> String {
        format!("(SELECT unnest({}::text[]))", self.strings(items))
    }

    /// The values, as SQL literals.
    pub fn values(&self) -> &[String] {
        &self.0
    }
}

/// One element of an array literal: always quoted (so that `NULL`, commas
/// and braces in a worker's name stay text), `"` and `\` escaped.
fn array_element(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_stay_whole_elements() {
        let mut p = Params::default();
        assert_eq!(p.strings(&["a\"b\\c,{}'", "NULL"]), "$1");
        assert_eq!(p.array([Some("x"), None]), "$2");
        assert_eq!(
            p.values(),
            [
                r#"E'{"a\\"b\\\\c,{}''","NULL"}'"#.to_string(),
                r#"E'{"x",NULL}'"#.to_string()
            ]
        );
    }
}
