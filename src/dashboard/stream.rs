//! `GET /events`: the parts of the page that changed, as server-sent events.
//!
//! On connect the stream sends every part once; then, at each [`TICK`] or
//! as soon as the timeline has news, it draws the page again (from memory,
//! and from the live reads, refreshed at most every [`super::live::REFRESH`])
//! and sends only the parts whose HTML differs from what this client last
//! got: `event: update` with `{"sections": [[id, html], ...]}`. A comment
//! line goes out when nothing changed, so a client that went away is
//! noticed at the next write. While the stream is open it counts as a
//! viewer: the live reads happen only then (and on page requests).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::watch;

use super::Dashboard;
use super::auth::Level;
use super::live::Viewer;
use super::render::Filter;

/// How often the page is drawn again for an open stream.
pub const TICK: Duration = Duration::from_secs(2);
/// How long a tick waits for the live reads before drawing with what it has.
const LIVE_WAIT: Duration = Duration::from_millis(1500);
/// After news in the timeline, a short wait so a burst goes out as one update.
const SETTLE: Duration = Duration::from_millis(100);
/// How long the browser waits before reconnecting a dropped stream.
const RETRY_MS: u64 = 3000;

/// One client's stream.
struct Stream {
    dash: web::Data<Dashboard>,
    filter: Filter,
    level: Level,
    /// Hash of the HTML last sent, by section id.
    sent: HashMap<String, u64>,
    news: watch::Receiver<u64>,
    first: bool,
    _viewer: Viewer,
}

fn hash(html: &str) -> u64 {
    let mut h = DefaultHasher::new();
    html.hash(&mut h);
    h.finish()
}

impl Stream {
    /// The next bytes to send: an update, or a keep-alive comment.
    async fn next_chunk(&mut self) -> String {
        if self.first {
            self.first = false;
            let update = self.update().await.unwrap_or_default();
            return format!("retry: {RETRY_MS}\n\n{update}");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            changed = self.news.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(TICK).await;
                }
                tokio::time::sleep(SETTLE).await;
            }
        }
        self.news.mark_unchanged();
        match self.update().await {
            Some(update) => update,
            None => ": no change\n\n".to_string(),
        }
    }

    /// The sections that changed since the last update, if any.
    async fn update(&mut self) -> Option<String> {
        let live = self.dash.live_within(LIVE_WAIT).await;
        let view = self.dash.view(live, self.filter.clone(), self.level);
        let changed: Vec<(String, String)> = view
            .sections()
            .into_iter()
            .filter(|(id, html)| {
                let h = hash(html);
                self.sent.insert(id.clone(), h) != Some(h)
            })
            .collect();
        if changed.is_empty() {
            return None;
        }
        let data = serde_json::json!({ "sections": changed });
        Some(format!("event: update\ndata: {data}\n\n"))
    }
}

/// The handler.
pub async fn events(
    dash: web::Data<Dashboard>,
    req: HttpRequest,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let level = dash.auth.level(req.headers());
    let stream = Stream {
        _viewer: dash.live.viewer(),
        news: dash.state.timeline().subscribe(),
        dash,
        filter: filter.into_inner(),
        level,
        sent: HashMap::new(),
        first: true,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let chunk = s.next_chunk().await;
        Some((Ok::<_, Infallible>(web::Bytes::from(chunk)), s))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
