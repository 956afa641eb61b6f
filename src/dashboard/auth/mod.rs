//! Who may look and who may act: tokens, the session cookie, CSRF, and the
//! security headers every response carries.
//!
//! - No token configured: the page, `/status`, `/metrics` and the event
//!   stream are open, and read-only (keep the address on loopback or behind
//!   a proxy).
//! - `MONITOR_HTTP_TOKEN`: everything but `/healthz`, `/readyz`, the login
//!   form and the two static files needs it (or the admin token), as
//!   `Authorization: Bearer <token>` or through the session cookie set by
//!   `POST /login`.
//! - `MONITOR_ADMIN_TOKEN`: the actions exist only with it; each needs it
//!   as a bearer header, or the admin session cookie plus the page's CSRF
//!   token in `X-CSRF-Token`; a request another site makes (by `Origin` or
//!   `Sec-Fetch-Site`) is refused first.
//!
//! The cookie never holds a token: it holds an HMAC-SHA256 of a fixed text
//! keyed by the token (so it survives restarts and dies when the token is
//! changed), `HttpOnly` and `SameSite=Strict`. Presented tokens and cookies
//! are compared in constant time: both sides are HMAC'd under a key drawn
//! at start-up and the tags compared by `ring::hmac::verify`.
//!
//! Parts: `secret.rs` (a configured token), `request.rs` (what a request
//! presents), `admission.rs` (who may act), `gate.rs` (the middleware and
//! the headers); here, what a token or a cookie allows.

mod admission;
mod gate;
mod request;
mod secret;

use std::fmt;

use actix_web::http::header::HeaderMap;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub use admission::{Refusal, refusal};
pub use gate::{CSP, gate, secure_headers};
pub use request::{cookie, cross_site};
pub use secret::{Secret, TOKEN_MIN_CHARS};

use request::bearer;

/// The two tokens, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Needed to see anything but the probes (`MONITOR_HTTP_TOKEN`).
    pub view_token: Option<Secret>,
    /// Needed to act, and enough to see (`MONITOR_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing but the open paths (only when a viewing token is set).
    None,
    /// See everything.
    View,
    /// See everything and act.
    Admin,
}

/// The session cookie's name.
pub const COOKIE: &str = "registre_session";

/// What requests are checked against.
pub struct Auth {
    access: Access,
    /// Drawn at start-up: the key under which values are compared.
    compare_key: hmac::Key,
    view: Option<Tags>,
    admin: Option<Tags>,
    /// The page's CSRF token for an admin session.
    csrf: Option<String>,
}

/// A token's comparison tag and the cookie it gives.
struct Tags {
    token: hmac::Tag,
    cookie_value: String,
    cookie: hmac::Tag,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("access", &self.access)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of `purpose` keyed by `secret`, in hex.
fn derive(secret: &Secret, purpose: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    hex(hmac::sign(&key, purpose.as_bytes()).as_ref())
}

impl Auth {
    pub fn new(access: Access) -> Auth {
        let mut seed = [0u8; 32];
        // The system's random source; without it the key would be
        // predictable, which only weakens the timing side, so carry on.
        if SystemRandom::new().fill(&mut seed).is_err() {
            log::warn!("no system randomness: token comparison key is fixed");
        }
        let compare_key = hmac::Key::new(hmac::HMAC_SHA256, &seed);
        let tags = |secret: &Option<Secret>, level: &str| {
            secret.as_ref().map(|s| {
                let cookie_value = format!("{level}.{}", derive(s, "registre-monitor session v1"));
                Tags {
                    token: hmac::sign(&compare_key, s.expose().as_bytes()),
                    cookie: hmac::sign(&compare_key, cookie_value.as_bytes()),
                    cookie_value,
                }
            })
        };
        let view = tags(&access.view_token, "v");
        let admin = tags(&access.admin_token, "a");
        let csrf = access
            .admin_token
            .as_ref()
            .map(|s| derive(s, "registre-monitor csrf v1"));
        Auth {
            access,
            compare_key,
            view,
            admin,
            csrf,
        }
    }

    fn matches(&self, presented: &str, tag: &hmac::Tag) -> bool {
        hmac::verify(&self.compare_key, presented.as_bytes(), tag.as_ref()).is_ok()
    }

    /// Whether anyone may look without a token.
    pub fn open_viewing(&self) -> bool {
        self.access.view_token.is_none()
    }

    /// Whether the actions exist at all.
    pub fn actions_enabled(&self) -> bool {
        self.access.admin_token.is_some()
    }

    /// What a presented token allows.
    pub fn level_of_token(&self, token: &str) -> Level {
        self.level_where(token, |t| &t.token)
    }

    fn level_of_cookie(&self, value: &str) -> Level {
        self.level_where(value, |t| &t.cookie)
    }

    /// The highest level whose tag (`tag` picks which) `presented` matches.
    fn level_where(&self, presented: &str, tag: impl Fn(&Tags) -> &hmac::Tag) -> Level {
        let matches = |tags: &Option<Tags>| {
            tags.as_ref()
                .is_some_and(|t| self.matches(presented, tag(t)))
        };
        if matches(&self.admin) {
            Level::Admin
        } else if matches(&self.view) {
            Level::View
        } else {
            Level::None
        }
    }

    /// What the request's credentials allow, and whether they came as a
    /// bearer header (not sent by a browser on its own: no CSRF risk).
    pub fn credentials(&self, headers: &HeaderMap) -> (Level, bool) {
        if let Some(token) = bearer(headers) {
            return (self.level_of_token(token), true);
        }
        let level = cookie(headers, COOKIE).map_or(Level::None, |v| self.level_of_cookie(v));
        (level, false)
    }

    /// What the request may do, counting open viewing.
    pub fn level(&self, headers: &HeaderMap) -> Level {
        let (level, _) = self.credentials(headers);
        if level == Level::None && self.open_viewing() {
            Level::View
        } else {
            level
        }
    }

    /// The CSRF token the page carries for an admin session.
    pub fn csrf_token(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    /// The `Set-Cookie` value for a session at `level` (`None` clears it).
    pub fn session_cookie(&self, level: Level) -> String {
        let value = match level {
            Level::Admin => self.admin.as_ref().map(|t| t.cookie_value.as_str()),
            Level::View => self.view.as_ref().map(|t| t.cookie_value.as_str()),
            Level::None => None,
        };
        match value {
            Some(v) => format!("{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict"),
            None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        }
    }
}

/// Tokens and an [`Auth`] as the configuration would give them, for the
/// unit tests of every part.
#[cfg(test)]
mod testing {
    use super::{Access, Auth, Secret};

    pub fn secret(s: &str) -> Option<Secret> {
        Secret::parse("T", s).unwrap()
    }

    pub fn auth(view: Option<&str>, admin: Option<&str>) -> Auth {
        Auth::new(Access {
            view_token: view.and_then(secret),
            admin_token: admin.and_then(secret),
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn levels_from_tokens_and_cookies() {
        let auth = testing::auth(
            Some("view-token-0123456789"),
            Some("admin-token-0123456789"),
        );
        assert_eq!(auth.level_of_token("admin-token-0123456789"), Level::Admin);
        assert_eq!(auth.level_of_token("view-token-0123456789"), Level::View);
        assert_eq!(auth.level_of_token("admin-token-012345678"), Level::None);
        assert_eq!(auth.level_of_token(""), Level::None);

        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer view-token-0123456789"))
            .to_http_request();
        assert_eq!(auth.credentials(req.headers()), (Level::View, true));

        let cookie = auth.session_cookie(Level::Admin);
        assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains("admin-token"), "{cookie}");
        let value = cookie.split(';').next().unwrap();
        let req = TestRequest::default()
            .insert_header(("Cookie", format!("other=1; {value}")))
            .to_http_request();
        assert_eq!(auth.credentials(req.headers()), (Level::Admin, false));
        let forged = TestRequest::default()
            .insert_header(("Cookie", format!("{COOKIE}=a.00")))
            .to_http_request();
        assert_eq!(auth.level(forged.headers()), Level::None);

        let open = Auth::new(Access::default());
        assert_eq!(open.level(forged.headers()), Level::View);
        assert!(!open.actions_enabled());
    }
}
