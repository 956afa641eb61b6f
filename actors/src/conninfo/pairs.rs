//! The `key=value` form of a connection string (`host=h user=u
//! password='a b'`), read as tokio-postgres reads it: spaces around `=`
//! allowed, values in single quotes, backslash escapes.

use std::path::PathBuf;

use super::{EXAMPLE, KNOWN_KEYS, Parts, unknown_key};
use crate::tls::TlsMode;

/// The `key=value` form, read as the driver reads it.
pub(super) fn read(text: &str) -> Result<Parts, String> {
    const EXPECTED: &str = "expected key=value pairs separated by spaces, a value holding spaces or \
         quotes written in single quotes with \\' for a quote (password='it\\'s here')";
    if text.is_empty() {
        return Err(format!("is empty; expected {EXAMPLE}"));
    }
    let mut chars = text.chars().peekable();
    let mut pairs: Vec<(String, String)> = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            if chars.peek().is_none() {
                break;
            }
            return Err(format!(
                "has a `=` with no parameter name before it; {EXPECTED}"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "is neither a postgres:// URL nor key=value pairs (a word without `=` after it); \
                 {EXPECTED}; or {EXAMPLE}"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "has a quoted value with no closing quote; {EXPECTED}"
                        ));
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(format!("has a parameter with no value; {EXPECTED}"));
            }
        }
        pairs.push((key, value));
    }

    let mut parts = Parts::default();
    let mut kept = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "password" => parts.password = Some(value.into_bytes()),
            "sslmode" => parts.tls_mode = Some(TlsMode::parse(&value)?),
            "sslrootcert" => parts.root_cert = Some(PathBuf::from(value)),
            k if KNOWN_KEYS.contains(&k) => {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push(format!("{key}='{quoted}'"));
            }
            _ => return Err(unknown_key(&key)),
        }
    }
    parts.rest = kept.join(" ");
    Ok(parts)
}
