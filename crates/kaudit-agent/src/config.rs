//! The agent's configuration: the TOML file, the command-line overrides, and the validated
//! [`AgentConfig`] the rest of the crate runs on.
//!
//! Layering: built-in defaults, then the TOML file (`--config`), then the environment for the
//! intake key (`KAUDIT_INTAKE_KEY`), then flags. Unknown keys in the file are rejected with their
//! place, so a typo never silently falls back to a default.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::AgentError;
use crate::filter::ScopeRule;

/// Environment variable holding the intake key when neither flag nor file gives one.
pub const INTAKE_KEY_ENV: &str = "KAUDIT_INTAKE_KEY";

/// Path of the intake endpoint, appended to `--intake` when the URL has no path.
pub const INTAKE_PATH: &str = "/intake/v1/events";

/// A secret string (intake key, bearer token). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the tail source starts on a file it has no checkpoint for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Read existing content (the default: nothing written before the first start is skipped).
    #[default]
    Beginning,
    /// Skip what is already in the files; read only what is written from now on.
    End,
}

impl std::str::FromStr for StartAt {
    type Err = String;
    fn from_str(text: &str) -> Result<StartAt, String> {
        match text {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            other => Err(format!("expected beginning or end, got {other:?}")),
        }
    }
}

/// When the spool forces appended records to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync every webhook batch before answering the apiserver (survives power loss).
    #[default]
    Always,
    /// Leave flushing to the kernel: survives a crash of the agent, not of the machine.
    Never,
}

/// The validated configuration the agent runs on.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Audit log files or globs to tail (`--file`).
    pub files: Vec<String>,
    /// Where to start on files without a checkpoint.
    pub start_at: StartAt,
    /// The longest line accepted from a log file; longer lines are reported and skipped.
    pub max_line_bytes: usize,
    /// How often the tail source looks for new data when it reached the end of the files.
    pub poll_interval_ms: u64,
    /// Where checkpoints and the spool live.
    pub state_dir: PathBuf,
    /// The intake to ship to.
    pub intake: IntakeConfig,
    /// The webhook receiver, when enabled.
    pub webhook: Option<WebhookConfig>,
    /// Address of the metrics and health endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Batching and compression.
    pub batch: BatchConfig,
    /// The disk spool.
    pub spool: SpoolConfig,
    /// Retries of failed deliveries.
    pub retry: RetryConfig,
    /// An audit policy applied to every event before shipping.
    pub policy_file: Option<PathBuf>,
    /// Resource scope: when non-empty, only events matching one rule are shipped.
    pub scope: Vec<ScopeRule>,
}

/// Where and how to reach the intake.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    /// Full endpoint URL (`http://host:8080/intake/v1/events`).
    pub url: String,
    /// The intake key.
    pub key: Secret,
    /// Extra CA certificates (PEM) trusted for an `https` intake, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Deadline of one delivery attempt: connect, send and read the answer.
    pub request_timeout_ms: u64,
    /// Deadline of establishing a connection.
    pub connect_timeout_ms: u64,
}

/// The webhook receiver.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// TLS, when configured.
    pub tls: Option<TlsConfig>,
    /// Bearer token the apiserver must present, when configured.
    pub token: Option<Secret>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
}

/// TLS for the webhook receiver.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle (PEM) that client certificates must chain to; when set, a client
    /// certificate is required.
    pub client_ca: Option<PathBuf>,
}

/// When a batch is cut and how it is compressed.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// Cut a batch at this many events.
    pub max_events: usize,
    /// Cut a batch when its uncompressed body reaches this size.
    pub max_bytes: usize,
    /// Cut a non-empty batch this long after its first event.
    pub flush_interval_ms: u64,
    /// gzip level, 0 to 9.
    pub gzip_level: u32,
}

/// The disk spool.
#[derive(Clone, Copy, Debug)]
pub struct SpoolConfig {
    /// Upper bound of the spool's size on disk; the oldest segments are dropped beyond it.
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started.
    pub segment_bytes: u64,
    /// fsync policy for webhook batches.
    pub fsync: FsyncPolicy,
}

/// Retries of failed deliveries: exponential backoff with full jitter.
#[derive(Clone, Copy, Debug)]
pub struct RetryConfig {
    /// Upper bound of the first wait.
    pub initial_backoff_ms: u64,
    /// Upper bound of any wait.
    pub max_backoff_ms: u64,
}

/// Values given on the command line; each one that is set overrides the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--file`, repeatable; replaces the file's list when non-empty.
    pub files: Vec<String>,
    /// `--start-at`.
    pub start_at: Option<StartAt>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--intake`.
    pub intake_url: Option<String>,
    /// `--intake-key`.
    pub intake_key: Option<Secret>,
    /// `--intake-key-file`.
    pub intake_key_file: Option<PathBuf>,
    /// `--intake-ca`.
    pub intake_ca: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-client-ca`.
    pub tls_client_ca: Option<PathBuf>,
    /// `--webhook-token-file`.
    pub webhook_token_file: Option<PathBuf>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--policy`.
    pub policy_file: Option<PathBuf>,
    /// `--scope`, repeatable; replaces the file's scope when non-empty.
    pub scope: Vec<ScopeRule>,
    /// `--batch-max-events`.
    pub batch_max_events: Option<usize>,
    /// `--batch-max-bytes`.
    pub batch_max_bytes: Option<usize>,
    /// `--flush-interval-ms`.
    pub flush_interval_ms: Option<u64>,
    /// `--spool-max-bytes`.
    pub spool_max_bytes: Option<u64>,
    /// `--max-line-bytes`.
    pub max_line_bytes: Option<usize>,
    /// `--poll-interval-ms`.
    pub poll_interval_ms: Option<u64>,
}

/// The TOML file, as written by the operator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    files: Vec<String>,
    start_at: Option<StartAt>,
    max_line_bytes: Option<usize>,
    poll_interval_ms: Option<u64>,
    state_dir: Option<PathBuf>,
    metrics_listen: Option<String>,
    policy_file: Option<PathBuf>,
    #[serde(default)]
    scope: Vec<ScopeRule>,
    #[serde(default)]
    intake: FileIntake,
    webhook: Option<FileWebhook>,
    #[serde(default)]
    batch: FileBatch,
    #[serde(default)]
    spool: FileSpool,
    #[serde(default)]
    retry: FileRetry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIntake {
    url: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    request_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    token_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBatch {
    max_events: Option<usize>,
    max_bytes: Option<usize>,
    flush_interval_ms: Option<u64>,
    gzip_level: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpool {
    max_bytes: Option<u64>,
    segment_bytes: Option<u64>,
    fsync: Option<FsyncPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetry {
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
}

/// Default state directory, matching the DaemonSet's hostPath.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kaudit-agent";
const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_POLL_INTERVAL_MS: u64 = 100;
const DEFAULT_BATCH_MAX_EVENTS: usize = 1000;
const DEFAULT_BATCH_MAX_BYTES: usize = 1024 * 1024;
const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;
const DEFAULT_GZIP_LEVEL: u32 = 1;
const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_INITIAL_BACKOFF_MS: u64 = 200;
const DEFAULT_MAX_BACKOFF_MS: u64 = 30_000;
const DEFAULT_WEBHOOK_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

impl AgentConfig {
    /// Builds the configuration from an optional TOML file and the command-line overrides.
    /// `environment_key` is the value of [`INTAKE_KEY_ENV`], passed in so that tests stay
    /// independent of the process environment.
    pub fn load(
        file: Option<&Path>,
        overrides: Overrides,
        environment_key: Option<String>,
    ) -> Result<AgentConfig, AgentError> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })?;
                parse_file(path, &text)?
            }
            None => FileConfig::default(),
        };
        let base = file.and_then(Path::parent).unwrap_or(Path::new(""));
        build(parsed, base, overrides, environment_key)
    }

    /// Directory of the tail checkpoints.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.state_dir.join("checkpoints")
    }

    /// Directory of the spool segments.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, AgentError> {
    toml::from_str::<FileConfig>(text).map_err(|err| {
        let (line, column) = match err.span() {
            Some(span) => line_column(text, span.start),
            None => (0, 0),
        };
        AgentError::Config {
            place: format!("{}:{line}:{column}", path.display()),
            message: err.message().to_string(),
        }
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

fn invalid(place: &str, message: impl Into<String>) -> AgentError {
    AgentError::Config {
        place: place.to_string(),
        message: message.into(),
    }
}

/// Relative paths in the file are relative to the file's folder.
fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() || base.as_os_str().is_empty() {
        path
    } else {
        base.join(path)
    }
}

fn build(
    file: FileConfig,
    base: &Path,
    overrides: Overrides,
    environment_key: Option<String>,
) -> Result<AgentConfig, AgentError> {
    let files = if overrides.files.is_empty() {
        file.files
    } else {
        overrides.files
    };
    let state_dir = overrides
        .state_dir
        .or_else(|| file.state_dir.map(|dir| relative_to(base, dir)))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));

    let url = overrides
        .intake_url
        .or(file.intake.url)
        .ok_or_else(|| invalid("intake.url", "no intake given: use --intake URL or intake.url"))?;
    let url = intake_endpoint(&url)?;
    let key = resolve_key(
        overrides.intake_key,
        overrides.intake_key_file,
        environment_key,
        file.intake.key,
        file.intake.key_file.map(|path| relative_to(base, path)),
    )?;
    let intake = IntakeConfig {
        url,
        key,
        ca_file: overrides
            .intake_ca
            .or_else(|| file.intake.ca_file.map(|path| relative_to(base, path))),
        request_timeout_ms: positive(
            "intake.request_timeout_ms",
            file.intake
                .request_timeout_ms
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
        )?,
        connect_timeout_ms: positive(
            "intake.connect_timeout_ms",
            file.intake
                .connect_timeout_ms
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
        )?,
    };

    let file_webhook = file.webhook.unwrap_or_default();
    let listen = match overrides.listen {
        Some(addr) => Some(addr),
        None => file_webhook
            .listen
            .as_deref()
            .map(|text| socket_addr("webhook.listen", text))
            .transpose()?,
    };
    let tls_cert = overrides
        .tls_cert
        .or_else(|| file_webhook.tls_cert.map(|path| relative_to(base, path)));
    let tls_key = overrides
        .tls_key
        .or_else(|| file_webhook.tls_key.map(|path| relative_to(base, path)));
    let tls_client_ca = overrides
        .tls_client_ca
        .or_else(|| file_webhook.tls_client_ca.map(|path| relative_to(base, path)));
    let token_file = overrides
        .webhook_token_file
        .or_else(|| file_webhook.token_file.map(|path| relative_to(base, path)));
    let webhook = match listen {
        None => {
            if tls_cert.is_some() || tls_key.is_some() || tls_client_ca.is_some() || token_file.is_some() {
                return Err(invalid(
                    "webhook.listen",
                    "TLS or token settings given without an address to listen on (--listen)",
                ));
            }
            None
        }
        Some(listen) => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig {
                    cert,
                    key,
                    client_ca: tls_client_ca,
                }),
                (None, None) => {
                    if tls_client_ca.is_some() {
                        return Err(invalid(
                            "webhook.tls_client_ca",
                            "client-certificate auth needs TLS: give --tls-cert and --tls-key too",
                        ));
                    }
                    None
                }
                _ => {
                    return Err(invalid(
                        "webhook.tls_cert",
                        "--tls-cert and --tls-key go together",
                    ));
                }
            };
            let token = token_file
                .map(|path| read_secret_file("webhook.token_file", &path))
                .transpose()?;
            Some(WebhookConfig {
                listen,
                tls,
                token,
                max_body_bytes: positive_usize(
                    "webhook.max_body_bytes",
                    file_webhook
                        .max_body_bytes
                        .unwrap_or(DEFAULT_WEBHOOK_MAX_BODY_BYTES),
                )?,
            })
        }
    };
    if files.is_empty() && webhook.is_none() {
        return Err(invalid(
            "files",
            "nothing to collect: give --file PATH_OR_GLOB and/or --listen ADDR",
        ));
    }

    let metrics_listen = match overrides.metrics_listen {
        Some(addr) => Some(addr),
        None => file
            .metrics_listen
            .as_deref()
            .map(|text| socket_addr("metrics_listen", text))
            .transpose()?,
    };

    let batch = BatchConfig {
        max_events: positive_usize(
            "batch.max_events",
            overrides
                .batch_max_events
                .or(file.batch.max_events)
                .unwrap_or(DEFAULT_BATCH_MAX_EVENTS),
        )?,
        max_bytes: positive_usize(
            "batch.max_bytes",
            overrides
                .batch_max_bytes
                .or(file.batch.max_bytes)
                .unwrap_or(DEFAULT_BATCH_MAX_BYTES),
        )?,
        flush_interval_ms: positive(
            "batch.flush_interval_ms",
            overrides
                .flush_interval_ms
                .or(file.batch.flush_interval_ms)
                .unwrap_or(DEFAULT_FLUSH_INTERVAL_MS),
        )?,
        gzip_level: file.batch.gzip_level.unwrap_or(DEFAULT_GZIP_LEVEL),
    };
    if batch.gzip_level > 9 {
        return Err(invalid(
            "batch.gzip_level",
            format!("must be 0 to 9, got {}", batch.gzip_level),
        ));
    }

    let spool_max_bytes = overrides
        .spool_max_bytes
        .or(file.spool.max_bytes)
        .unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
    if spool_max_bytes < 1024 * 1024 {
        return Err(invalid(
            "spool.max_bytes",
            format!("must be at least 1 MiB, got {spool_max_bytes}"),
        ));
    }
    let segment_bytes = file
        .spool
        .segment_bytes
        .unwrap_or((spool_max_bytes / 16).clamp(256 * 1024, 64 * 1024 * 1024));
    if segment_bytes == 0 || segment_bytes > spool_max_bytes {
        return Err(invalid(
            "spool.segment_bytes",
            format!("must be between 1 and spool.max_bytes ({spool_max_bytes}), got {segment_bytes}"),
        ));
    }
    let spool = SpoolConfig {
        max_bytes: spool_max_bytes,
        segment_bytes,
        fsync: file.spool.fsync.unwrap_or_default(),
    };

    let retry = RetryConfig {
        initial_backoff_ms: positive(
            "retry.initial_backoff_ms",
            file.retry
                .initial_backoff_ms
                .unwrap_or(DEFAULT_INITIAL_BACKOFF_MS),
        )?,
        max_backoff_ms: positive(
            "retry.max_backoff_ms",
            file.retry.max_backoff_ms.unwrap_or(DEFAULT_MAX_BACKOFF_MS),
        )?,
    };

    let scope = if overrides.scope.is_empty() {
        file.scope
    } else {
        overrides.scope
    };
    for (idx, rule) in scope.iter().enumerate() {
        rule.validate()
            .map_err(|message| invalid(&format!("scope[{idx}]"), message))?;
    }

    Ok(AgentConfig {
        files,
        start_at: overrides.start_at.or(file.start_at).unwrap_or_default(),
        max_line_bytes: positive_usize(
            "max_line_bytes",
            overrides
                .max_line_bytes
                .or(file.max_line_bytes)
                .unwrap_or(DEFAULT_MAX_LINE_BYTES),
        )?,
        poll_interval_ms: positive(
            "poll_interval_ms",
            overrides
                .poll_interval_ms
                .or(file.poll_interval_ms)
                .unwrap_or(DEFAULT_POLL_INTERVAL_MS),
        )?,
        state_dir,
        intake,
        webhook,
        metrics_listen,
        batch,
        spool,
        retry,
        policy_file: overrides
            .policy_file
            .or_else(|| file.policy_file.map(|path| relative_to(base, path))),
        scope,
    })
}

fn positive(place: &str, value: u64) -> Result<u64, AgentError> {
    if value == 0 {
        Err(invalid(place, "must be greater than 0"))
    } else {
        Ok(value)
    }
}

fn positive_usize(place: &str, value: usize) -> Result<usize, AgentError> {
    if value == 0 {
        Err(invalid(place, "must be greater than 0"))
    } else {
        Ok(value)
    }
}

fn socket_addr(place: &str, text: &str) -> Result<SocketAddr, AgentError> {
    text.parse()
        .map_err(|_| invalid(place, format!("not an address like 0.0.0.0:9808: {text:?}")))
}

/// The intake URL as given, with the intake path appended when it has none.
fn intake_endpoint(url: &str) -> Result<String, AgentError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                "intake.url",
                format!("must start with http:// or https://: {url:?}"),
            )
        })?;
    let (authority, path) = match rest.find('/') {
        Some(idx) => (&rest[..idx], &rest[idx..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(invalid("intake.url", format!("no host in {url:?}")));
    }
    if path.is_empty() || path == "/" {
        Ok(format!("{}{INTAKE_PATH}", url.trim_end_matches('/')))
    } else {
        Ok(url.to_string())
    }
}

fn resolve_key(
    flag_key: Option<Secret>,
    flag_key_file: Option<PathBuf>,
    environment_key: Option<String>,
    file_key: Option<String>,
    file_key_file: Option<PathBuf>,
) -> Result<Secret, AgentError> {
    let key = if let Some(key) = flag_key {
        key
    } else if let Some(path) = flag_key_file {
        read_secret_file("intake.key_file", &path)?
    } else if let Some(key) = environment_key.filter(|key| !key.trim().is_empty()) {
        Secret::new(key.trim().to_string())
    } else if let Some(key) = file_key {
        Secret::new(key)
    } else if let Some(path) = file_key_file {
        read_secret_file("intake.key_file", &path)?
    } else {
        return Err(invalid(
            "intake.key",
            format!("no intake key: use --intake-key, --intake-key-file or the {INTAKE_KEY_ENV} variable"),
        ));
    };
    if key.expose().is_empty() {
        return Err(invalid("intake.key", "the intake key is empty"));
    }
    if key.expose().bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(invalid(
            "intake.key",
            "the intake key contains spaces or control characters",
        ));
    }
    Ok(key)
}

fn read_secret_file(place: &str, path: &Path) -> Result<Secret, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(invalid(place, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value.to_string()))
}

#[cfg(test)]
mod tests;
