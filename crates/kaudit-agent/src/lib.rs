//! The kaudit agent: collects kube-apiserver audit events from the audit log files and from
//! the webhook backend, and ships them to a kaudit intake without losing any.
//!
//! Owns: the agent's configuration ([`config`]), its sources (the tail source over
//! `kaudit-tail`, the [`webhook`] receiver), the bounded disk [`spool`], batching and
//! compression ([`batch`]), delivery with retries ([`ship`], [`intake`]), the optional
//! scope and policy [`filter`], and its [`telemetry`].
//!
//! Must never: acknowledge a log position (advance a tail checkpoint) before the intake
//! answered 2xx for every event up to it; answer the apiserver's webhook with 2xx before the
//! batch is in the spool; drop an event without counting it and saying so in an error log;
//! log the intake key or a bearer token; depend on the detection rules or any store.
//!
//! Entry points: [`run`] (the `kaudit agent` command) and [`check`] (`kaudit agent --check`).

#![deny(missing_docs)]

pub mod batch;
pub mod config;
mod error;
pub mod filter;
pub mod intake;
pub mod policy;
pub mod ship;
pub mod spool;
mod tail_source;
pub mod telemetry;
mod tls;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

pub use config::AgentConfig;
pub use error::AgentError;
use telemetry::Metrics;

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(config: AgentConfig) -> Result<(), AgentError> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let shutdown = async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match terminate.as_mut() {
                        Some(signal) => { signal.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
            tracing::info!("shutting down");
        };
        run_until(config, Arc::new(Metrics::new()), shutdown).await
    })
}

/// Runs the agent until `shutdown` completes, updating `metrics`. Must be called inside a
/// tokio runtime with the time and I/O drivers enabled.
pub async fn run_until(
    config: AgentConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| AgentError::Io {
        context: format!("cannot create the state directory {}", config.state_dir.display()),
        source,
    })?;
    let _lock = lock_state_dir(&config)?;
    let policy = config
        .policy_file
        .as_deref()
        .map(policy::LoadedPolicy::load)
        .transpose()?;
    let filter = filter::Filter::new(config.scope.clone(), policy).map(Arc::new);
    let client = intake::IntakeClient::new(&config.intake)?;
    let spool_dir = config.spool_dir();
    let spool_config = config.spool;
    let spool = tokio::task::spawn_blocking(move || spool::Spool::open(&spool_dir, spool_config))
        .await
        .map_err(|err| AgentError::Io {
            context: "spool open".into(),
            source: std::io::Error::other(err),
        })??;
    if !spool.is_empty() {
        tracing::info!(
            events = spool.pending_events(),
            bytes = spool.bytes(),
            "spool holds batches from an earlier run; sending them first"
        );
    }
    let run_id = (telemetry::now_nanos() as u64).rotate_left(17) ^ u64::from(std::process::id());
    let shipper = ship::Shipper::new(
        spool,
        config.spool.max_bytes,
        config.spool.fsync,
        config.retry,
        metrics.clone(),
        run_id,
    );

    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Listen { addr, source })?;
        tracing::info!(addr = %webhook::local_addr(&listener, addr), "metrics and health endpoint listening");
        let metrics = metrics.clone();
        tokio::spawn(webhook::serve(listener, None, move |request| {
            webhook::handle_metrics(metrics.clone(), request)
        }));
    }
    if let Some(webhook_config) = &config.webhook {
        let (listener, tls) = webhook::bind(webhook_config).await?;
        tracing::info!(
            addr = %webhook::local_addr(&listener, webhook_config.listen),
            tls = tls.is_some(),
            token = webhook_config.token.is_some(),
            "webhook receiver listening"
        );
        let context = Arc::new(webhook::WebhookContext {
            shipper: shipper.clone(),
            filter: filter.clone(),
            gzip_level: config.batch.gzip_level,
            token: webhook_config.token.clone(),
            max_body_bytes: webhook_config.max_body_bytes,
            metrics: metrics.clone(),
        });
        tokio::spawn(webhook::serve(listener, tls, move |request| {
            webhook::handle(context.clone(), request)
        }));
    }
    let tail = if config.files.is_empty() {
        None
    } else {
        let (ack_sender, ack_receiver) = std::sync::mpsc::channel();
        shipper.set_tail_acks(ack_sender);
        let (record_sender, mut record_receiver) = tokio::sync::mpsc::channel::<spool::Record>(2);
        let admitting = shipper.clone();
        let admit_metrics = metrics.clone();
        tokio::spawn(async move {
            while let Some(record) = record_receiver.recv().await {
                if let Err(err) = admitting.admit_tail(record).await {
                    // The batch is not acknowledged, so the tail reads it again after a restart.
                    admit_metrics
                        .healthy
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(error = %err, "cannot queue a tail batch; restart the agent");
                }
            }
        });
        let tail_config = config.clone();
        let tail_metrics = metrics.clone();
        let handles = tokio::task::spawn_blocking(move || {
            tail_source::start(
                &tail_config,
                filter,
                tail_metrics,
                run_id,
                record_sender,
                ack_receiver,
            )
        })
        .await
        .map_err(|err| AgentError::Io {
            context: "tail start".into(),
            source: std::io::Error::other(err),
        })??;
        Some(handles)
    };
    tracing::info!(intake = %client.url(), files = ?config.files, "agent started");
    let sender = tokio::spawn(shipper.clone().run_sender(client));
    let outcome = tokio::select! {
        _ = shutdown => Ok(()),
        result = sender => {
            metrics.healthy.store(false, std::sync::atomic::Ordering::Relaxed);
            Err(AgentError::Io { context: "the sender stopped".into(), source: std::io::Error::other(format!("{result:?}")) })
        }
    };
    if let Some(handles) = tail {
        // Writes the final checkpoint.
        let _ = tokio::task::spawn_blocking(move || handles.stop()).await;
    }
    outcome
}

/// What `kaudit agent --check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// One line per verified item.
    pub lines: Vec<String>,
}

/// Validates what the configuration names (files, TLS material, state directory) and proves
/// the intake is reachable and accepts the key with a real (empty) request.
pub fn check(config: &AgentConfig) -> Result<CheckReport, AgentError> {
    let mut lines = Vec::new();
    lines.push(format!("intake endpoint: {}", config.intake.url));
    if let Some(webhook) = &config.webhook {
        if let Some(tls) = &webhook.tls {
            tls::server_config(tls)?;
            lines.push(format!("webhook TLS material loads: {}", tls.cert.display()));
        }
        lines.push(format!("webhook receiver: {}", webhook.listen));
    }
    for pattern in &config.files {
        lines.push(format!("tails {pattern}"));
    }
    if let Some(path) = &config.policy_file {
        policy::LoadedPolicy::load(path)?;
        lines.push(format!("audit policy loads: {}", path.display()));
    }
    std::fs::create_dir_all(&config.state_dir).map_err(|source| AgentError::Io {
        context: format!("cannot create the state directory {}", config.state_dir.display()),
        source,
    })?;
    lines.push(format!(
        "state directory writable: {}",
        config.state_dir.display()
    ));
    let runtime = runtime()?;
    let client = intake::IntakeClient::new(&config.intake)?;
    runtime.block_on(client.check())?;
    lines.push("intake reachable and the key is accepted".to_string());
    Ok(CheckReport { lines })
}

fn runtime() -> Result<tokio::runtime::Runtime, AgentError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .map_err(|source| AgentError::Io {
            context: "cannot start the async runtime".into(),
            source,
        })
}

/// Holds an exclusive lock on `<state_dir>/lock` so that two agents never share checkpoints
/// and spool.
fn lock_state_dir(config: &AgentConfig) -> Result<std::fs::File, AgentError> {
    let path = config.state_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AgentError::Io {
            context: format!("cannot open {}", path.display()),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AgentError::Config {
            place: "state_dir".into(),
            message: format!("{} is in use by another agent", config.state_dir.display()),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(AgentError::Io {
            context: format!("cannot lock {}", path.display()),
            source,
        }),
    }
}
