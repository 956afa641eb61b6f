//! A column or database name that can only be built valid, written into
//! statements always quoted.
//!
//! Names that come from outside (the `MONITOR_ATTEMPTS_COLUMN` setting) are
//! checked once, where the settings are read, and reach the statements as
//! an [`Identifier`]: the actors crate cannot be handed an unchecked name.
//! Only plain lower-case names are accepted (the only kind an unquoted name
//! in `sql/schema.sql` can produce), and they are written quoted, so a
//! reserved word such as `order` works as a column name.

use std::fmt;

/// PostgreSQL truncates longer names (`NAMEDATALEN - 1`).
pub const MAX_LEN: usize = 63;

/// What an identifier may be, for error messages.
pub const EXPECTED: &str = "lower-case letters, digits and underscores, starting with a letter or underscore (as attemtps)";

/// A valid identifier: `as_str` gives the bare name (for logs and catalog
/// lookups), `Display` the quoted form (for statements).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identifier(std::borrow::Cow<'static, str>);

/// Why a name is not an [`Identifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidIdentifier {
    Empty,
    TooLong,
    NotPlain,
}

impl fmt::Display for InvalidIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidIdentifier::Empty => "is empty",
            InvalidIdentifier::TooLong => "is longer than 63 characters",
            InvalidIdentifier::NotPlain => "is not a plain lower-case name",
        })
    }
}

/// The one rule, usable in constants.
const fn check(name: &str) -> Result<(), InvalidIdentifier> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(InvalidIdentifier::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(InvalidIdentifier::TooLong);
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let ok = b.is_ascii_lowercase() || b == b'_' || (i > 0 && b.is_ascii_digit());
        if !ok {
            return Err(InvalidIdentifier::NotPlain);
        }
        i += 1;
    }
    Ok(())
}

impl Identifier {
    /// Checks `name` (surrounding spaces ignored).
    pub fn new(name: &str) -> Result<Identifier, InvalidIdentifier> {
        let name = name.trim();
        check(name)?;
        Ok(Identifier(name.to_string().into()))
    }

    /// A name known when the program is written; an invalid one does not
    /// compile when used in a constant, and panics otherwise.
    pub const fn from_static(name: &'static str) -> Identifier {
        match check(name) {
            Ok(()) => Identifier(std::borrow::Cow::Borrowed(name)),
            Err(_) => panic!("not a plain lower-case identifier"),
        }
    }

    /// The bare name, as the catalog stores it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The quoted form, for statements: `"attemtps"`.
impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only lower-case letters, digits and `_`: nothing to escape.
        write!(f, "\"{}\"", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_quotes_them() {
        assert_eq!(Identifier::new(" attemtps ").unwrap().as_str(), "attemtps");
        assert_eq!(Identifier::new("order").unwrap().to_string(), "\"order\"");
        assert_eq!(Identifier::new("_n2").unwrap().to_string(), "\"_n2\"");
        const OCR: Identifier = Identifier::from_static("ocr_attempts");
        assert_eq!(OCR.to_string(), "\"ocr_attempts\"");
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "Attemtps",
            "2x",
            "a-b",
            "a b",
            "attemtps; DROP TABLE x",
            "a\"b",
        ] {
            assert!(Identifier::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Identifier::new(&"a".repeat(64)),
            Err(InvalidIdentifier::TooLong)
        );
    }
}
