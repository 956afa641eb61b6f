//! Alerts that reach people: JSON posted to a webhook, never in the way.
//!
//! The checks hand an [`Alert`] to [`MonitorState::alert`]; it is
//! rate-limited per project and kind, then put on a bounded queue with
//! `try_send` (a full queue drops it and counts the drop), so a check never
//! waits for the network. One sender task posts them in order, each try
//! bounded by [`TRY_TIMEOUT`], retried with backoff. The body is what
//! Slack's incoming webhooks accept (`{"text": ...}`) plus structured
//! fields. The URL is a secret (Slack's carry a token): it is never logged,
//! and errors about it never show it.
//!
//! HTTP: a minimal HTTP/1.1 `POST` with `Connection: close` over tokio's
//! `TcpStream`, through rustls (ring, webpki roots: already the database's
//! TLS stack) for `https://`. One request a connection, a status line read
//! back; nothing more is needed, and no HTTP client stack is pulled in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Alerts waiting to be sent; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 64;
/// Bound on one try: connect, TLS, request and status line.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per alert, with [`FIRST_BACKOFF`] doubling between them.
pub const TRIES: u32 = 3;
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// One alert.
#[derive(Debug, Clone)]
pub struct Alert {
    pub environment: String,
    /// What happened: `anomaly`, `anomaly_cleared`, `unreachable`,
    /// `recovered`, `jobs_reset`, `jobs_failed`, `ocr_jobs_reset`,
    /// `workers_reaped`, `jobs_released`.
    pub kind: &'static str,
    /// Rate-limit key within the kind (the anomaly's name), or empty.
    pub subject: String,
    /// The line people read.
    pub text: String,
    /// Structured fields, merged into the body.
    pub fields: Map<String, Value>,
}

impl Alert {
    pub fn new(environment: &str, kind: &'static str, text: String) -> Self {
        Alert {
            environment: environment.to_string(),
            kind,
            subject: String::new(),
            text,
            fields: Map::new(),
        }
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = subject.to_string();
        self
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The JSON body: Slack's `text`, then the fields.
    pub fn body(&self, instance: &str, suppressed: u64) -> Value {
        let mut body = Map::new();
        body.insert("text".into(), self.text.clone().into());
        body.insert("environment".into(), self.environment.clone().into());
        body.insert("kind".into(), self.kind.into());
        if !self.subject.is_empty() {
            body.insert("subject".into(), self.subject.clone().into());
        }
        body.insert("instance".into(), instance.into());
        if suppressed > 0 {
            body.insert("suppressedSinceLast".into(), suppressed.into());
        }
        for (k, v) in &self.fields {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }
}

/// Counters for metrics and `/status`.
#[derive(Debug, Default)]
pub struct AlertCounters {
    /// Delivered (2xx).
    pub sent: AtomicU64,
    /// Given up on after every try.
    pub failed: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Held back by the rate limit.
    pub suppressed: AtomicU64,
}

/// What the repeat limit is kept per: project, kind, subject.
type LimitKey = (String, &'static str, String);

/// Where the checks hand alerts over; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertSink {
    tx: mpsc::Sender<(Alert, u64)>,
    repeat_after: Duration,
    /// Last sent, and held back since, per (project, kind, subject).
    limits: Arc<Mutex<HashMap<LimitKey, (Instant, u64)>>>,
    pub counters: Arc<AlertCounters>,
    /// A drop is logged once per run of drops.
    dropping: Arc<std::sync::atomic::AtomicBool>,
}

impl AlertSink {
    /// Starts the sender task (on the current runtime) for `endpoint`.
    pub fn start(endpoint: Endpoint, instance: String, repeat_after: Duration) -> AlertSink {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::new(AlertCounters::default());
        actix_rt::spawn(send_loop(endpoint, instance, rx, counters.clone()));
        AlertSink {
            tx,
            repeat_after,
            limits: Arc::default(),
            counters,
            dropping: Arc::default(),
        }
    }

    /// Queues `alert` unless one of its kind went out for its project
    /// within the repeat period. Never waits.
    pub fn send(&self, alert: Alert) {
        let suppressed = {
            let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            let key = (alert.environment.clone(), alert.kind, alert.subject.clone());
            let now = Instant::now();
            match limits.get_mut(&key) {
                Some((last, held)) if now.duration_since(*last) < self.repeat_after => {
                    *held += 1;
                    self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
                    log::debug!(environment = alert.environment.as_str(), kind = alert.kind;
                        "📮 Alert held back by the repeat limit");
                    return;
                }
                Some((last, held)) => {
                    *last = now;
                    std::mem::take(held)
                }
                None => {
                    limits.insert(key, (now, 0));
                    0
                }
            }
        };
        let (environment, kind) = (alert.environment.clone(), alert.kind);
        match self.tx.try_send((alert, suppressed)) {
            Ok(()) => self.dropping.store(false, Ordering::Relaxed),
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    log::warn!(environment = environment.as_str(), kind = kind,
                        capacity = QUEUE_CAPACITY;
                        "📮 Alert queue full (webhook slow or down): dropping alerts");
                }
            }
        }
    }
}

async fn send_loop(
    endpoint: Endpoint,
    instance: String,
    mut rx: mpsc::Receiver<(Alert, u64)>,
    counters: Arc<AlertCounters>,
) {
    while let Some((alert, suppressed)) = rx.recv().await {
        let body = alert.body(&instance, suppressed).to_string();
        let mut backoff = FIRST_BACKOFF;
        let mut last_error = String::new();
        let mut delivered = false;
        for attempt in 1..=TRIES {
            match tokio::time::timeout(TRY_TIMEOUT, post(&endpoint, body.as_bytes())).await {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    delivered = true;
                    break;
                }
                Ok(Ok(status)) => {
                    last_error = format!("the webhook answered HTTP {status}");
                    // A request refused as such will be refused again.
                    if (400..500).contains(&status) && status != 408 && status != 429 {
                        break;
                    }
                }
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = format!("no answer within {} s", TRY_TIMEOUT.as_secs()),
            }
            if attempt < TRIES {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        if delivered {
            counters.sent.fetch_add(1, Ordering::Relaxed);
            log::debug!(environment = alert.environment.as_str(), kind = alert.kind; "📮 Alert sent");
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            log::warn!(environment = alert.environment.as_str(), kind = alert.kind;
                "📮 Alert not delivered: {last_error}");
        }
    }
}

/// A parsed webhook URL. Its `Debug` hides everything but the scheme.
#[derive(Clone)]
pub struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, sent in the request line.
    target: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "Endpoint({scheme}://***)")
    }
}

impl Endpoint {
    /// Parses `http://host[:port]/path` or `https://...`. Errors never
    /// repeat the URL.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("does not start with http:// or https://".into());
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let target = target.split('#').next().unwrap_or("/").to_string();
        if authority.contains('@') {
            return Err("has a user name or password in it, which is not supported".into());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("has an unclosed [ in its host")?;
            match after.strip_prefix(':') {
                Some(p) => (host, p),
                None if after.is_empty() => (host, ""),
                None => return Err("has an invalid host".into()),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, ""),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace()) {
            return Err("has no valid host".into());
        }
        let port = if port.is_empty() {
            default_port
        } else {
            port.parse::<u16>().map_err(|_| "has an invalid port")?
        };
        if target.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err("has spaces or control characters in its path".into());
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            target,
        })
    }
}

/// One POST; returns the status code. Errors never name the URL.
async fn post(endpoint: &Endpoint, body: &[u8]) -> Result<u16, String> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("cannot connect to the webhook: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if endpoint.tls {
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|_| "the webhook host is not a valid TLS name".to_string())?;
        let stream = tls_connector()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with the webhook failed: {e}"))?;
        exchange(stream, endpoint, body).await
    } else {
        exchange(tcp, endpoint, body).await
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    endpoint: &Endpoint,
    body: &[u8],
) -> Result<u16, String> {
    let default_port = if endpoint.tls { 443 } else { 80 };
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    let host = if endpoint.port == default_port {
        host
    } else {
        format!("{host}:{}", endpoint.port)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: registre-monitor/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.target,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let io = |e: std::io::Error| format!("the webhook connection failed: {e}");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < 8192 {
        let n = stream.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    let status = line
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|l| l.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| "the webhook did not answer HTTP".to_string())?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_webhook_urls_and_hides_them() {
        let e = Endpoint::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert!(e.tls);
        assert_eq!((e.host.as_str(), e.port), ("hooks.slack.com", 443));
        assert_eq!(e.target, "/services/T0/B0/secret");
        assert!(!format!("{e:?}").contains("secret"));
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!((e.port, e.target.as_str()), (9000, "/"));
        let e = Endpoint::parse("http://[::1]:81/a?b=c").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 81));
        for bad in [
            "ftp://x/y",
            "https://",
            "http://u:secret@h/",
            "http://h:notaport/",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    /// Handing over never waits: past the queue's capacity alerts are
    /// dropped and counted, and repeats within the period are held back.
    #[test]
    fn a_full_queue_drops_and_counts_and_repeats_are_held_back() {
        // Accepts connections (into the backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", silent.local_addr().unwrap());
        actix_rt::System::new().block_on(async move {
            let sink = AlertSink::start(
                Endpoint::parse(&url).unwrap(),
                "test:1".into(),
                Duration::from_secs(60),
            );
            let alert = |n: usize| Alert::new("dev", "anomaly", "x".into()).subject(&n.to_string());
            for n in 0..QUEUE_CAPACITY + 10 {
                sink.send(alert(n));
            }
            // Nothing yielded to the sender yet: exactly the excess dropped.
            assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 10);
            sink.send(alert(0));
            sink.send(alert(1));
            assert_eq!(sink.counters.suppressed.load(Ordering::Relaxed), 2);
            assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 10);
        });
    }

    #[test]
    fn the_body_is_slack_text_plus_fields() {
        let a = Alert::new("prod", "jobs_reset", "3 jobs".into()).field("count", 3);
        let body = a.body("host:1", 2);
        assert_eq!(body["text"], "3 jobs");
        assert_eq!(body["environment"], "prod");
        assert_eq!(body["kind"], "jobs_reset");
        assert_eq!(body["count"], 3);
        assert_eq!(body["suppressedSinceLast"], 2);
    }
}
