//! What a request presents: its bearer token, its cookies, and whether a
//! browser says another site made it.

use actix_web::http::header::{self, HeaderMap};

/// The token of an `Authorization: Bearer` header.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
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
