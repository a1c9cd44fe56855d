//! The HTTP client of the intake: one POST per batch, every wait under a deadline, and the
//! classification of the answer into delivered, retry, or rejected for good.
//!
//! Protocol: `POST <intake>/intake/v1/events`, `Content-Encoding: gzip`, body JSON lines,
//! key in `X-Intake-Key`. A 2xx means the intake committed the whole batch. The intake
//! collapses redeliveries, so retrying after a lost answer is safe.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::IntakeConfig;
use crate::error::AgentError;

/// Header carrying the intake key.
pub const INTAKE_KEY_HEADER: &str = "x-intake-key";
/// Content type of a JSON lines body.
pub const JSON_LINES: &str = "application/x-ndjson";
/// The longest answer body read (only its status matters; the body goes into logs).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How a delivery attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx: committed by the intake.
    Delivered,
    /// Worth retrying: network error, timeout, 5xx, 401/403 (a key being rotated), 429.
    Retry(String),
    /// The intake refuses this batch's content for good (400, 413, 415, 422): retrying
    /// cannot help.
    Rejected(String),
}

/// A client of one intake.
#[derive(Clone)]
pub struct IntakeClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    config: Arc<IntakeConfig>,
}

impl IntakeClient {
    /// Builds the client: TLS through rustls with the ring provider, trusting the public
    /// roots plus `ca_file`.
    pub fn new(config: &IntakeConfig) -> Result<IntakeClient, AgentError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.ca_file {
            for cert in crate::tls::read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|err| AgentError::Tls(format!("{}: {err}", path.display())))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| AgentError::Tls(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        Ok(IntakeClient {
            client,
            config: Arc::new(config.clone()),
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// POSTs one gzip-compressed JSON lines batch.
    pub async fn send(&self, gzip_body: Bytes) -> Outcome {
        self.post(gzip_body, Some("gzip"), JSON_LINES).await
    }

    /// POSTs an empty JSON array, proving the intake is reachable and accepts the key.
    pub async fn check(&self) -> Result<(), AgentError> {
        match self
            .post(Bytes::from_static(b"[]"), None, "application/json")
            .await
        {
            Outcome::Delivered => Ok(()),
            Outcome::Retry(reason) | Outcome::Rejected(reason) => Err(AgentError::Intake(reason)),
        }
    }

    async fn post(&self, body: Bytes, encoding: Option<&str>, content_type: &str) -> Outcome {
        let mut request = Request::post(self.config.url.as_str())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, concat!("kaudit-agent/", env!("CARGO_PKG_VERSION")))
            .header(INTAKE_KEY_HEADER, self.config.key.expose());
        if let Some(encoding) = encoding {
            request = request.header(CONTENT_ENCODING, encoding);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(err) => return Outcome::Rejected(format!("cannot build the request: {err}")),
        };
        let deadline = Duration::from_millis(self.config.request_timeout_ms);
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| describe_client_error(&err))?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, answer))
        };
        match tokio::time::timeout(deadline, exchange).await {
            Err(_) => Outcome::Retry(format!("no answer within {} ms", self.config.request_timeout_ms)),
            Ok(Err(reason)) => Outcome::Retry(reason),
            Ok(Ok((status, answer))) => classify(status, &answer),
        }
    }
}

fn classify(status: StatusCode, answer: &[u8]) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let text = String::from_utf8_lossy(&answer[..answer.len().min(512)])
        .trim()
        .to_string();
    let reason = format!("intake answered {status}: {text}");
    match status.as_u16() {
        400 | 413 | 415 | 422 => Outcome::Rejected(reason),
        _ => Outcome::Retry(reason),
    }
}

fn describe_client_error(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
