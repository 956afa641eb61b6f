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

use std::fmt;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

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

    fn expose(&self) -> &str {
        &self.0
    }
}

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
        if self
            .admin
            .as_ref()
            .is_some_and(|t| self.matches(token, &t.token))
        {
            Level::Admin
        } else if self
            .view
            .as_ref()
            .is_some_and(|t| self.matches(token, &t.token))
        {
            Level::View
        } else {
            Level::None
        }
    }

    fn level_of_cookie(&self, value: &str) -> Level {
        if self
            .admin
            .as_ref()
            .is_some_and(|t| self.matches(value, &t.cookie))
        {
            Level::Admin
        } else if self
            .view
            .as_ref()
            .is_some_and(|t| self.matches(value, &t.cookie))
        {
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

    /// Lets a state-changing request through, or says why not: actions on,
    /// not cross-site, the admin token as a bearer header, or the admin
    /// session with the CSRF token.
    pub fn admit_action(&self, req: &HttpRequest) -> Result<(), Refusal> {
        if !self.actions_enabled() {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "actions are off: set MONITOR_ADMIN_TOKEN to enable them",
            ));
        }
        if let Some(why) = cross_site(req.headers()) {
            return Err(Refusal::new(StatusCode::FORBIDDEN, why));
        }
        let (level, bearer) = self.credentials(req.headers());
        match level {
            Level::None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "this action needs the admin token",
            )),
            Level::View => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "this action needs the admin token; the viewing token only shows",
            )),
            Level::Admin if bearer => Ok(()),
            Level::Admin => {
                let presented = req
                    .headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let expected = self.csrf.as_deref().unwrap_or_default();
                let tag = hmac::sign(&self.compare_key, expected.as_bytes());
                if self.matches(presented, &tag) {
                    Ok(())
                } else {
                    Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "missing or wrong CSRF token: reload the page",
                    ))
                }
            }
        }
    }
}

/// Why a request is refused, and with what status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: StatusCode,
    pub why: String,
}

impl Refusal {
    pub fn new(code: StatusCode, why: impl Into<String>) -> Refusal {
        Refusal {
            code,
            why: why.into(),
        }
    }

    /// The answer: `{"error": why}`.
    pub fn response(&self) -> HttpResponse {
        refusal(self.code, &self.why)
    }
}

/// A JSON refusal.
pub fn refusal(code: StatusCode, why: &str) -> HttpResponse {
    let mut res = HttpResponse::build(code);
    if code == StatusCode::UNAUTHORIZED {
        res.insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"registre-monitor\"",
        ));
    }
    res.json(serde_json::json!({ "error": why }))
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Why a request looks made by another site, if it does: a browser says so
/// in `Sec-Fetch-Site`, and its `Origin` names the page that sent it. Under
/// `Referrer-Policy: no-referrer` browsers send `Origin: null` even for the
/// page's own requests, so `null` says nothing and `Sec-Fetch-Site` (sent
/// by every current browser) decides; a request with neither (a script, or
/// a very old browser) still needs the bearer token, or the `SameSite=Strict`
/// cookie and the CSRF token, to act.
pub fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Some("cross-site request refused (Sec-Fetch-Site)");
    }
    if let Some(origin) = text("origin").filter(|o| *o != "null") {
        let host = text("host").unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
        if !same {
            return Some("cross-site request refused (Origin does not match Host)");
        }
    }
    None
}

/// Paths anyone may ask: the probes, the login form and the static files.
fn open_path(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/login" | "/dashboard.css" | "/dashboard.js"
    )
}

/// The Content-Security-Policy of every response: nothing but this server's
/// own files, no inline script or style, no framing, forms post here only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to a response.
pub fn secure_headers(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-frame-options", "DENY");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
}

/// The middleware in front of every route: asks for the viewing token
/// where one is configured, and adds the security headers.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let dashboard = req.app_data::<web::Data<super::Dashboard>>().cloned();
    let refused = dashboard.as_ref().and_then(|d| {
        let auth = &d.auth;
        // Whatever it changes, nothing is changed for another site (the
        // drill hook included; login and actions check this themselves).
        if req.method() == actix_web::http::Method::POST
            && let Some(why) = cross_site(req.headers())
        {
            return Some(refusal(StatusCode::FORBIDDEN, why));
        }
        if open_path(req.path()) || auth.level(req.headers()) >= Level::View {
            return None;
        }
        let wants_html = req.method() == actix_web::http::Method::GET
            && req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        Some(if wants_html {
            HttpResponse::Unauthorized()
                .content_type("text/html; charset=utf-8")
                .body(super::render::login_page(None))
        } else {
            refusal(
                StatusCode::UNAUTHORIZED,
                "this needs MONITOR_HTTP_TOKEN (Authorization: Bearer <token>)",
            )
        })
    });
    let mut res = match refused {
        Some(response) => req.into_response(response).map_into_right_body(),
        None => next.call(req).await?.map_into_left_body(),
    };
    secure_headers(res.headers_mut());
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn secret(s: &str) -> Option<Secret> {
        Secret::parse("T", s).unwrap()
    }

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

    #[test]
    fn levels_from_tokens_and_cookies() {
        let auth = Auth::new(Access {
            view_token: secret("view-token-0123456789"),
            admin_token: secret("admin-token-0123456789"),
        });
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

    fn admin_auth() -> Auth {
        Auth::new(Access {
            view_token: None,
            admin_token: secret("admin-token-0123456789"),
        })
    }

    #[test]
    fn actions_need_the_admin_token_and_csrf_from_the_same_site() {
        let auth = admin_auth();
        let status = |req: TestRequest| match auth.admit_action(&req.to_http_request()) {
            Ok(()) => 200,
            Err(refused) => refused.code.as_u16(),
        };
        let cookie = auth.session_cookie(Level::Admin);
        let cookie = cookie.split(';').next().unwrap().to_string();
        let csrf = auth.csrf_token().unwrap().to_string();
        let same = || {
            TestRequest::post()
                .insert_header(("Host", "127.0.0.1:9464"))
                .insert_header(("Origin", "http://127.0.0.1:9464"))
                .insert_header(("Sec-Fetch-Site", "same-origin"))
        };
        assert_eq!(status(same()), 401, "no credentials");
        assert_eq!(
            status(same().insert_header(("Cookie", cookie.clone()))),
            403,
            "cookie without CSRF token"
        );
        assert_eq!(
            status(
                same()
                    .insert_header(("Cookie", cookie.clone()))
                    .insert_header(("X-CSRF-Token", "0".repeat(64)))
            ),
            403,
            "wrong CSRF token"
        );
        assert_eq!(
            status(
                same()
                    .insert_header(("Cookie", cookie.clone()))
                    .insert_header(("X-CSRF-Token", csrf.clone()))
            ),
            200
        );
        assert_eq!(
            status(
                TestRequest::post()
                    .insert_header(("Authorization", "Bearer admin-token-0123456789"))
            ),
            200,
            "a script with the bearer token"
        );
        let evil = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:9464"))
            .insert_header(("Origin", "http://evil.example"))
            .insert_header(("Cookie", cookie.clone()))
            .insert_header(("X-CSRF-Token", csrf.clone()));
        assert_eq!(status(evil), 403, "another origin");
        let evil = TestRequest::post()
            .insert_header(("Sec-Fetch-Site", "cross-site"))
            .insert_header(("Authorization", "Bearer admin-token-0123456789"));
        assert_eq!(status(evil), 403, "cross-site, even with the token");
        let evil = TestRequest::post()
            .insert_header(("Origin", "null"))
            .insert_header(("Sec-Fetch-Site", "cross-site"))
            .insert_header(("Authorization", "Bearer admin-token-0123456789"));
        assert_eq!(status(evil), 403, "a hidden origin, cross-site");
        // What a browser sends for the page's own request under no-referrer.
        let own = TestRequest::post()
            .insert_header(("Host", "127.0.0.1:9464"))
            .insert_header(("Origin", "null"))
            .insert_header(("Sec-Fetch-Site", "same-origin"))
            .insert_header(("Cookie", cookie.clone()))
            .insert_header(("X-CSRF-Token", csrf.clone()));
        assert_eq!(status(own), 200);

        let off = Auth::new(Access::default());
        let refused = off.admit_action(&same().to_http_request()).unwrap_err();
        assert_eq!(refused.code, StatusCode::FORBIDDEN);
    }

    #[test]
    fn every_response_gets_the_security_headers() {
        let mut h = HeaderMap::new();
        secure_headers(&mut h);
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
    }
}
