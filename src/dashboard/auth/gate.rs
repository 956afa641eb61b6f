//! The middleware in front of every route, and the security headers
//! every response carries.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::Level;
use super::admission::refusal;
use super::request::cross_site;

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
    let dashboard = req
        .app_data::<web::Data<crate::dashboard::Dashboard>>()
        .cloned();
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
                .body(crate::dashboard::render::login_page(None))
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
