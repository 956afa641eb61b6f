//! The whole documents: the dashboard page around its sections, and the
//! login form.

use std::collections::BTreeMap;

use super::View;
use super::format::{escape, when};
use crate::dashboard::auth::Level;

impl View<'_> {
    /// Who is looking, and the way to log in or out.
    fn account(&self) -> String {
        let auth = &self.dash.auth;
        let logout = "<form method=\"post\" action=\"/logout\" class=\"inline\"><button type=\"submit\">Log out</button></form>";
        match self.level {
            Level::Admin => format!("<span class=\"who\">admin: actions on</span> {logout}"),
            Level::View if auth.actions_enabled() && auth.open_viewing() => {
                "<span class=\"who\">read-only</span> <a href=\"/login\">Log in to act</a>".into()
            }
            Level::View if auth.actions_enabled() => format!(
                "<span class=\"who\">viewer</span> <a href=\"/login\">Log in as admin</a> {logout}"
            ),
            Level::View if !auth.open_viewing() => {
                format!("<span class=\"who\">viewer</span> {logout}")
            }
            _ => "<span class=\"who\">read-only</span>".into(),
        }
    }

    /// The whole document.
    pub fn page(&self) -> String {
        let sections: BTreeMap<String, String> = self.sections().into_iter().collect();
        let take = |id: &str| sections.get(id).cloned().unwrap_or_default();
        let names: Vec<&String> = self.projects.keys().collect();
        let group = |prefix: &str| -> String {
            names
                .iter()
                .map(|n| take(&format!("{prefix}-{n}")))
                .collect()
        };
        let csrf = match (self.admin(), self.dash.auth.csrf_token()) {
            (true, Some(token)) => format!("<meta name=\"csrf-token\" content=\"{token}\">"),
            _ => String::new(),
        };
        let query = {
            let mut q = Vec::new();
            if let Some(p) = &self.filter.project {
                q.push(format!("project={}", escape(p)));
            }
            if let Some(k) = &self.filter.kind {
                q.push(format!("kind={k}"));
            }
            q.join("&amp;")
        };
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"color-scheme\" content=\"light dark\">{csrf}\
             <title>registre-monitor</title><link rel=\"icon\" href=\"data:,\">\
             <link rel=\"stylesheet\" href=\"/dashboard.css\"><script src=\"/dashboard.js\" defer></script></head>\
             <body data-filter=\"{query}\"><header><h1>registre-monitor</h1>{summary}\
             <p class=\"bar\"><span id=\"conn\" class=\"conn\">static page: reload for news</span> {account}</p></header>\
             <p id=\"notice\" class=\"notice\" role=\"status\" hidden></p><main>\
             <section aria-labelledby=\"h-fleet\"><h2 id=\"h-fleet\">Fleet</h2><div class=\"cards\">{cards}</div></section>\
             <section aria-labelledby=\"h-history\"><h2 id=\"h-history\">History</h2><div class=\"charts\">{charts}</div></section>\
             <section aria-labelledby=\"h-timeline\"><h2 id=\"h-timeline\">What the monitor did</h2>{form}{timeline}</section>\
             <section aria-labelledby=\"h-workers\"><h2 id=\"h-workers\">Workers</h2>{workers}</section>\
             <section aria-labelledby=\"h-jobs\"><h2 id=\"h-jobs\">Jobs that need a person</h2>{jobs}</section>\
             </main><footer>Instance {instance} · registre-monitor {version} · drawn at {drawn}</footer></body></html>\n",
            summary = take("summary"),
            account = self.account(),
            cards = group("card"),
            charts = group("chart"),
            form = self.filter_form(),
            timeline = take("timeline"),
            workers = group("workers"),
            jobs = group("jobs"),
            instance = escape(&self.dash.settings.instance_id),
            version = env!("CARGO_PKG_VERSION"),
            drawn = when(self.now_ms),
        )
    }
}

/// The login form (`GET /login`, and the answer to a page asked for
/// without the viewing token).
pub fn login_page(error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"err\" role=\"alert\">{}</p>", escape(e))
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><title>registre-monitor: log in</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/dashboard.css\"></head>\
         <body class=\"login\"><main><h1>registre-monitor</h1>{error}\
         <form method=\"post\" action=\"/login\"><label>Token <input type=\"password\" name=\"token\" \
         autocomplete=\"current-password\" required autofocus></label> <button type=\"submit\">Log in</button></form>\
         <p class=\"muted\">The viewing token (MONITOR_HTTP_TOKEN) shows the dashboard; the admin token \
         (MONITOR_ADMIN_TOKEN) also allows its actions.</p></main></body></html>\n"
    )
}
