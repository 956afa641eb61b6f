//! Where alerts leave: each queued alert posted as JSON to the webhook.
//!
//! One task, on the actix runtime the monitor runs on, takes the alerts off
//! the [`AlertQueue`] in order and posts each with awc (actix's HTTP
//! client), each try bounded by [`TRY_TIMEOUT`], retried with backoff. TLS
//! is rustls with the ring provider and Mozilla's roots, as for the
//! database. The URL is a secret (Slack's carry a token): errors never show
//! it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use registre_actors::alerts::AlertQueue;
use registre_actors::settings::WebhookUrl;

/// Bound on one try: connect, TLS, request and answer.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per alert, with [`FIRST_BACKOFF`] doubling between them.
pub const TRIES: u32 = 3;
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Starts delivering what `queue` gets to `url`, naming this instance in
/// each body.
pub fn spawn(queue: AlertQueue, url: WebhookUrl, instance: String) {
    actix_rt::spawn(deliver(queue, url, instance));
}

async fn deliver(mut queue: AlertQueue, url: WebhookUrl, instance: String) {
    let client = client();
    while let Some(queued) = queue.next().await {
        let alert = &queued.alert;
        let body = alert.body(&instance, queued.suppressed).to_string();
        let mut backoff = FIRST_BACKOFF;
        let mut outcome = post(&client, &url, &body).await;
        for _ in 1..TRIES {
            match &outcome {
                Err(failed) if failed.retry => {}
                _ => break,
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            outcome = post(&client, &url, &body).await;
        }
        let env = alert.environment.as_str();
        match outcome {
            Ok(()) => {
                queue.counters.sent.fetch_add(1, Ordering::Relaxed);
                log::debug!(environment = env, kind = alert.kind; "📮 Alert sent");
            }
            Err(failed) => {
                queue.counters.failed.fetch_add(1, Ordering::Relaxed);
                log::warn!(environment = env, kind = alert.kind;
                    "📮 Alert not delivered: {}", failed.reason);
            }
        }
    }
}

/// Why a try failed (never naming the URL), and whether another may help.
struct Failed {
    reason: String,
    retry: bool,
}

impl Failed {
    fn retry(reason: String) -> Self {
        Failed {
            reason,
            retry: true,
        }
    }
}

/// One POST.
async fn post(client: &awc::Client, url: &WebhookUrl, body: &str) -> Result<(), Failed> {
    use awc::error::SendRequestError;
    let response = client
        .post(url.url().as_str())
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_string())
        .await;
    let status = match response {
        Ok(r) => r.status(),
        Err(SendRequestError::Timeout) => {
            let reason = format!("no answer within {} s", TRY_TIMEOUT.as_secs());
            return Err(Failed::retry(reason));
        }
        Err(SendRequestError::Connect(e)) => {
            return Err(Failed::retry(format!("cannot connect to the webhook: {e}")));
        }
        Err(e) => {
            return Err(Failed::retry(format!("the webhook connection failed: {e}")));
        }
    };
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    Err(Failed {
        reason: format!("the webhook answered HTTP {code}"),
        // A request refused as such will be refused again.
        retry: !status.is_client_error() || code == 408 || code == 429,
    })
}

/// A client with the ring provider's TLS and Mozilla's roots.
fn client() -> awc::Client {
    // Connecting (TLS included) is bounded like the whole try.
    let mut connector = awc::Connector::new().timeout(TRY_TIMEOUT);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(config) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let mut config = config.with_root_certificates(roots).with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            connector = connector.rustls_0_23(Arc::new(config));
        }
        Err(e) => {
            log::error!("📮 Cannot set up TLS for the webhook ({e}): https:// alerts will fail");
        }
    }
    // A redirect is not followed (it fails the try): the alert goes to the
    // configured URL or nowhere.
    awc::Client::builder()
        .timeout(TRY_TIMEOUT)
        .disable_redirects()
        .add_default_header((
            "User-Agent",
            concat!("registre-monitor/", env!("CARGO_PKG_VERSION")),
        ))
        .connector(connector)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `https://` goes through rustls: a server that answers in plain text
    /// fails the handshake (and is retried), rather than being refused for
    /// want of TLS support.
    #[test]
    fn https_goes_through_rustls() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let url = WebhookUrl::parse(&format!("https://127.0.0.1:{port}/hooks/x")).unwrap();
        let failed = actix_rt::System::new()
            .block_on(async { post(&client(), &url, "{}").await })
            .unwrap_err();
        assert!(failed.retry);
        assert!(
            !failed.reason.contains("not supported"),
            "{}",
            failed.reason
        );
        assert!(!failed.reason.contains("/hooks/x"), "{}", failed.reason);
    }
}
