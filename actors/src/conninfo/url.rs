//! The URL form of a connection string,
//! `postgres://user:password@host:port/database?key=value&...`, read as
//! tokio-postgres reads it: credentials up to the first `@`, user and
//! password split at the first `:`, parts percent-decoded.

use std::borrow::Cow;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use super::{KNOWN_KEYS, Parts, unknown_key};
use crate::tls::TlsMode;

/// How to write a password holding characters a URL gives a meaning to.
pub const HOW_TO_ENCODE: &str = "`@` as %40, `:` %3A, `/` %2F, `?` %3F, `#` %23, \
     `%` %25, `&` %26, `=` %3D, a space %20 (python3 -c 'import urllib.parse; \
     print(urllib.parse.quote(input(), safe=\"\"))' prints the encoded form of what you type), \
     or use the key=value form: host=HOST user=USER password='PASSWORD' dbname=DATABASE";

fn decode_text(raw: &str, what: &str) -> Result<String, String> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| {
            format!(
                "has a {what} that is not valid UTF-8 once percent-decoded; expected UTF-8 text"
            )
        })
}

/// The URL form, after `postgres://`.
pub(super) fn read(rest: &str) -> Result<Parts, String> {
    // As the driver: the credentials end at the first `@`, wherever it is.
    let (credentials, after) = match rest.find('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let (hosts, tail) = after.split_at(authority_end);
    let (path, query) = match tail.strip_prefix('/') {
        Some(t) => match t.split_once('?') {
            Some((path, query)) => (Some(path), Some(query)),
            None => (Some(t), None),
        },
        None => (None, tail.strip_prefix('?')),
    };
    let pairs: Vec<&str> = query
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    // A second `@` outside a parameter's value: the first one was inside
    // the password (or user name), which then reads as part of the host.
    let stray_at = hosts.contains('@')
        || path.is_some_and(|p| p.contains('@'))
        || pairs
            .iter()
            .any(|p| p.split_once('=').map_or(*p, |(k, _)| k).contains('@'));
    if stray_at {
        return Err(format!(
            "holds an `@` that does not end the user part: a password (or user name) holding `@` \
             must be percent-encoded: {HOW_TO_ENCODE}; expected postgres://USER:PASSWORD@HOST:5432/DATABASE"
        ));
    }

    let mut parts = Parts::default();
    if let Some(credentials) = credentials {
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (credentials, None),
        };
        parts.user = Some(decode_text(user, "user name")?);
        parts.password = password.map(|p| percent_decode_str(p).collect());
    }
    let mut kept = Vec::new();
    for pair in pairs {
        let Some((key_raw, value_raw)) = pair.split_once('=') else {
            return Err(
                "has a parameter without `=` after the `?`; expected key=value pairs separated by `&` \
                 (a value holding `&` must be percent-encoded, as %26)"
                    .into(),
            );
        };
        let key = decode_text(key_raw, "parameter name")?;
        match key.as_str() {
            "password" => parts.password = Some(percent_decode_str(value_raw).collect()),
            "user" => parts.user = Some(decode_text(value_raw, "user name")?),
            "sslmode" => {
                parts.tls_mode = Some(TlsMode::parse(&decode_text(value_raw, "sslmode")?)?)
            }
            "sslrootcert" => {
                parts.root_cert = Some(PathBuf::from(decode_text(value_raw, "sslrootcert")?))
            }
            k if KNOWN_KEYS.contains(&k) => {
                // No `@` may reach the driver: it would read the text
                // before it as credentials.
                kept.push(format!("{key_raw}={}", value_raw.replace('@', "%40")));
            }
            _ => return Err(unknown_key(&key)),
        }
    }
    let mut text = format!("postgres://{hosts}");
    if let Some(path) = path {
        text.push('/');
        text.push_str(path);
    }
    if !kept.is_empty() {
        text.push('?');
        text.push_str(&kept.join("&"));
    }
    parts.rest = text;
    Ok(parts)
}
