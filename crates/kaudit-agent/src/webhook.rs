//! The receiver of the apiserver's audit webhook backend, and the small HTTP server it shares
//! with the metrics endpoint.
//!
//! The apiserver POSTs `EventList` bodies and retries on any answer but 200-206, then drops
//! the batch after its last attempt. So the receiver answers 200 only once the batch is in the
//! spool (fsynced under the default policy), and answers quickly: parsing, filtering and
//! compression run on a blocking thread, and nothing waits for the intake.
//!
//! Authentication: TLS client certificates (checked by rustls against `--tls-client-ca`)
//! and/or a bearer token; every configured mechanism must pass.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{Secret, WebhookConfig};
use crate::error::AgentError;
use crate::filter::{Filter, Verdict};
use crate::ship::Shipper;
use crate::spool::{Origin, Record};
use crate::telemetry::Metrics;

/// Deadline for a client to send its request headers, TLS handshake included.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for a client to send its whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the webhook handler needs.
pub struct WebhookContext {
    /// Where accepted batches go.
    pub shipper: Arc<Shipper>,
    /// Scope and policy, when configured.
    pub filter: Option<Arc<Filter>>,
    /// gzip level of spooled batches.
    pub gzip_level: u32,
    /// Bearer token required, when configured.
    pub token: Option<Secret>,
    /// Largest body accepted (after decompression).
    pub max_body_bytes: usize,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Binds the webhook receiver's socket; serving starts with [`serve`].
pub async fn bind(config: &WebhookConfig) -> Result<(TcpListener, Option<TlsAcceptor>), AgentError> {
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?
        .map(TlsAcceptor::from);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: config.listen,
            source,
        })?;
    Ok((listener, tls))
}

/// Serves HTTP/1.1 on `listener` (through TLS when `tls` is given), one task per connection.
pub async fn serve<H, F>(listener: TcpListener, tls: Option<TlsAcceptor>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true);
            let result = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => http.serve_connection(TokioIo::new(tls_stream), service).await,
                    Ok(Err(err)) => {
                        tracing::warn!(peer = %peer, error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                },
            };
            if let Err(err) = result {
                tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            }
        });
    }
}

/// Handles one webhook request.
pub async fn handle(context: Arc<WebhookContext>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let response = handle_inner(&context, request).await;
    if !response.status().is_success() {
        Metrics::add(&context.metrics.webhook_rejected, 1);
    }
    response
}

async fn handle_inner(context: &WebhookContext, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an audit.k8s.io/v1 EventList",
        );
    }
    if let Some(token) = &context.token {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        if !presented
            .is_some_and(|presented| constant_time_eq(presented.as_bytes(), token.expose().as_bytes()))
        {
            return text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    let gzipped = match request
        .headers()
        .get(CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?"))
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported Content-Encoding {other:?}"),
            );
        }
    };
    let limit = context.max_body_bytes;
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(request.into_body(), limit).collect()).await {
            Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "body not received in time"),
            Ok(Err(err)) => {
                if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, &format!("body over {limit} bytes"));
                }
                return text(StatusCode::BAD_REQUEST, "cannot read the body");
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
    let filter = context.filter.clone();
    let gzip_level = context.gzip_level;
    let prepared =
        tokio::task::spawn_blocking(move || prepare(&body, gzipped, limit, filter.as_deref(), gzip_level))
            .await;
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(reason)) => return text(StatusCode::BAD_REQUEST, &reason),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    Metrics::add(&context.metrics.events_filtered, prepared.filtered);
    let Some(record) = prepared.record else {
        return text(StatusCode::OK, "{}");
    };
    let events = record.events;
    match context.shipper.admit_webhook(record).await {
        Ok(()) => {
            Metrics::add(&context.metrics.webhook_events, u64::from(events));
            text(StatusCode::OK, "{}")
        }
        Err(err) => {
            tracing::error!(error = %err, events, "cannot spool a webhook batch; the apiserver will retry it");
            text(StatusCode::SERVICE_UNAVAILABLE, "cannot store the batch")
        }
    }
}

/// A webhook body turned into a spool record.
pub struct Prepared {
    /// The record, `None` when no event is left after filtering.
    pub record: Option<Record>,
    /// Events cut by the filter.
    pub filtered: u64,
}

/// Frames a webhook body (an `EventList`, an array, an event, or JSON lines), filters its
/// events and compresses them as JSON lines. Fails when the body holds no event at all but
/// is not empty.
pub fn prepare(
    body: &[u8],
    gzipped: bool,
    max_bytes: usize,
    filter: Option<&Filter>,
    gzip_level: u32,
) -> Result<Prepared, String> {
    let decoded;
    let body = if gzipped {
        decoded = gunzip_capped(body, max_bytes)?;
        &decoded[..]
    } else {
        body
    };
    let mut lines: Vec<u8> = Vec::with_capacity(body.len());
    let mut events: u32 = 0;
    let mut filtered: u64 = 0;
    let mut newest_nanos: i64 = 0;
    let mut first_skip: Option<String> = None;
    let mut skips: u64 = 0;
    kaudit_model::read_input(
        body,
        |located| {
            let raw = located.event.raw();
            let text = match filter.map(|filter| filter.apply(raw)) {
                None | Some(Verdict::Unparsed) => std::borrow::Cow::Borrowed(raw),
                Some(Verdict::Ship(text)) => text,
                Some(Verdict::Filtered) => {
                    filtered += 1;
                    return;
                }
            };
            if text.contains(['\n', '\r']) {
                lines.extend_from_slice(kaudit_model::json::minify(&text).as_bytes());
            } else {
                lines.extend_from_slice(text.as_bytes());
            }
            lines.push(b'\n');
            events += 1;
            newest_nanos = newest_nanos.max(located.time_nanos);
        },
        |skip| {
            skips += 1;
            if first_skip.is_none() {
                first_skip = Some(skip.to_string());
            }
        },
    );
    if let Some(reason) = &first_skip {
        if events == 0 && filtered == 0 {
            return Err(format!("no audit event in the body: {reason}"));
        }
        tracing::warn!(skipped = skips, first = %reason, "webhook body held pieces that are not audit events");
    }
    if events == 0 {
        return Ok(Prepared {
            record: None,
            filtered,
        });
    }
    let raw_bytes = u32::try_from(lines.len()).unwrap_or(u32::MAX);
    let body = crate::batch::gzip(&lines, gzip_level);
    Ok(Prepared {
        record: Some(Record {
            origin: Origin::Webhook,
            events,
            raw_bytes,
            newest_nanos,
            body: Bytes::from(body),
        }),
        filtered,
    })
}

fn gunzip_capped(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(body);
    let read = decoder
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|err| format!("cannot gunzip the body: {err}"))?;
    if read > max_bytes {
        return Err(format!("decompressed body over {max_bytes} bytes"));
    }
    Ok(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A plain response.
pub fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    let content_type = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// The metrics and health endpoint: `GET /metrics`, `GET /healthz`.
pub async fn handle_metrics(metrics: Arc<Metrics>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, &metrics.render(crate::telemetry::now_nanos()));
            if let Ok(value) = "text/plain; version=0.0.4".parse() {
                response.headers_mut().insert(CONTENT_TYPE, value);
            }
            response
        }
        (&Method::GET, "/healthz") => {
            if metrics.healthy.load(std::sync::atomic::Ordering::Relaxed) {
                text(StatusCode::OK, "ok\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "a component stopped\n")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "try /metrics or /healthz\n"),
    }
}

/// The address a listener really got (port 0 resolved).
pub fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}
