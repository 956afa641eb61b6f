//! Who may act: the checks a state-changing request passes (actions on,
//! not cross-site, the admin token as a bearer header or the admin session
//! with the CSRF token), and the JSON refusal when it does not.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use ring::hmac;

use super::request::cross_site;
use super::{Auth, Level};

impl Auth {
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

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::dashboard::auth::{Access, testing};

    #[test]
    fn actions_need_the_admin_token_and_csrf_from_the_same_site() {
        let auth = testing::auth(None, Some("admin-token-0123456789"));
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
}
