//! A token from the configuration, checked once and never shown: `Debug`
//! hides it, and its parse errors name the variable, never the value.

use std::fmt;

/// A token from the configuration: a secret, so `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Shortest token accepted.
pub const TOKEN_MIN_CHARS: usize = 16;

impl Secret {
    /// Checks a token from `var`: at least [`TOKEN_MIN_CHARS`] visible ASCII
    /// characters (it travels in a header and a form field). Empty is unset.
    /// The error never repeats the value.
    pub fn parse(var: &str, value: &str) -> Result<Option<Secret>, String> {
        let t = value.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let expected = format!(
            "expected at least {TOKEN_MIN_CHARS} visible ASCII characters without spaces, \
             such as the output of `openssl rand -hex 32`"
        );
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{var} (value hidden) has spaces or characters outside visible ASCII; {expected}"
            ));
        }
        if t.len() < TOKEN_MIN_CHARS {
            return Err(format!(
                "{var} (value hidden) is too short ({} characters); {expected}",
                t.len()
            ));
        }
        Ok(Some(Secret(t.to_string())))
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::auth::testing::secret;
    use crate::dashboard::auth::{Access, Auth};

    #[test]
    fn tokens_are_checked_and_hidden() {
        assert_eq!(Secret::parse("T", "  ").unwrap(), None);
        let e = Secret::parse("MONITOR_ADMIN_TOKEN", "short").unwrap_err();
        assert!(
            e.starts_with("MONITOR_ADMIN_TOKEN (value hidden) is too short"),
            "{e}"
        );
        assert!(!e.contains("short)"), "{e}");
        let e = Secret::parse("T", "a token with spaces inside").unwrap_err();
        assert!(e.contains("spaces"), "{e}");
        let s = secret("0123456789abcdef-secret").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let access = Access {
            view_token: None,
            admin_token: Some(s),
        };
        assert!(!format!("{access:?}").contains("secret"));
        assert!(!format!("{:?}", Auth::new(access)).contains("secret"));
    }
}
