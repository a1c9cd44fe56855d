//! `kaudit serve`: open the store, bootstrap a new data directory, load the rules, start the
//! outputs and the retention task, listen, and shut down gracefully on SIGINT or SIGTERM
//! (in-flight batches finish and are answered; outputs get a few seconds to drain).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kaudit_store::Store;
use kaudit_store_postgres::{PgConfig, PgStore};
use kaudit_store_sqlite::{SqliteConfig, SqliteStore};

use crate::admin::{FirstStart, bootstrap, now_ns};
use crate::api::rules::load_detector;
use crate::body::BodyLimits;
use crate::config::Config;
use crate::detect::Detector;
use crate::outputs::{OutputTasks, Outputs};
use crate::state::{AppState, StateParts};

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "kaudit.db";

/// Opens the configured store: PostgreSQL when `database` is set, else SQLite in the data
/// directory (created if missing). Blocking: call it off the async runtime (the PostgreSQL
/// client runs its own).
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.database {
        return open_postgres(url, config.database_schema.as_deref());
    }
    open_sqlite(&config.data_dir)
}

/// Opens (creating if needed) the SQLite store of a data directory. Blocking.
pub fn open_sqlite(data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("while creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join(SQLITE_FILE);
    let store = SqliteStore::open(&path, SqliteConfig::default())
        .with_context(|| format!("while opening {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Connects to PostgreSQL (`postgres://...` URL or libpq key=value string), creating the
/// schema when given and applying pending migrations. Blocking, as [`open_store`].
pub fn open_postgres(url: &str, schema: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
    let mut config = PgConfig::new(url);
    config.schema = schema.map(str::to_owned);
    // The URL can hold a password: name only the host part in errors.
    let store = PgStore::connect(config)
        .with_context(|| format!("while opening the PostgreSQL store at {}", redact_url(url)))?;
    if !store.has_trigram_index() {
        tracing::warn!(
            "the pg_trgm extension is not available: free-text event search scans (install pg_trgm for an index)"
        );
    }
    Ok(Arc::new(store))
}

/// A database URL without its password (`postgres://user:***@host/db`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(connection string)".to_owned();
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => format!("{scheme}://{credentials}@{host}{path}"),
        },
        None => format!("{scheme}://{authority}{path}"),
    }
}

/// Sets up logging to standard error: `info` by default, `RUST_LOG` to change it.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The machine's host name, for alerts' `hostname`.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kaudit".to_owned())
}

/// Builds the state of a server over an open store: bootstrap (first start), rules, outputs.
/// Returns what the first start created, if this was it. Must run inside a tokio runtime.
pub async fn build_state(
    config: &Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<(AppState, OutputTasks, Option<FirstStart>)> {
    let matching = config.rule_matching;
    let setup_store = Arc::clone(&store);
    let (first, detector) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let first = bootstrap(&*setup_store).context("while preparing a new data store")?;
        let detector = match load_detector(&*setup_store, matching) {
            Ok(detector) => detector,
            Err(err) => {
                tracing::error!(
                    error = %err.message(),
                    "stored rules do not load; running kaudit's default rules only until they are fixed"
                );
                let policies: Vec<kaudit_proto::Policy> = setup_store
                    .list_policies()?
                    .iter()
                    .map(crate::api::rules::policy_dto)
                    .collect();
                Detector::build(&[], &policies, matching)
                    .map_err(|e| anyhow::anyhow!("default rules: {e}"))?
            }
        };
        Ok((first, detector))
    })
    .await??;
    let (outputs, tasks) = Outputs::start(
        &config.outputs,
        Duration::from_secs(config.dedupe_window_seconds),
        &hostname(),
    )?;
    let state = AppState::new(StateParts {
        store,
        detector,
        outputs,
        limits: BodyLimits {
            max_body_bytes: config.max_body_bytes,
            max_decompressed_bytes: config.max_decompressed_bytes,
        },
        rule_matching: matching,
    });
    Ok((state, tasks, first))
}

/// Prints what the first start created. The only time these secrets are shown.
pub fn print_first_start(first: &FirstStart, listen: &str) {
    let mut text = String::from(
        "\nkaudit: first start. The secrets below are shown only this once; only their hashes are stored.\n\n",
    );
    if let Some(token) = &first.admin_token {
        text.push_str(&format!("  admin token:  {token}\n"));
    }
    if let Some(key) = &first.intake_key {
        text.push_str(&format!(
            "  intake key:   {key}   (intake \"default\", cluster \"{}\")\n",
            first.cluster
        ));
    }
    text.push_str(&format!(
        "\nSend audit events:   curl -H 'X-Intake-Key: <intake key>' --data-binary @audit.log http://{listen}/intake/v1/events\n\
         Query alerts:        kaudit alerts --server http://{listen} --token <admin token>\n"
    ));
    println!("{text}");
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let open_config = config.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&open_config)).await??;
    let (state, output_tasks, first) = build_state(&config, Arc::clone(&store)).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("while binding {}", config.listen))?;
    let address = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    if let Some(first) = &first {
        print_first_start(first, &address);
    }
    match &config.database {
        Some(url) => {
            tracing::info!(address = %address, database = %redact_url(url), "kaudit serve listening")
        }
        None => {
            tracing::info!(address = %address, data_dir = %config.data_dir.display(), "kaudit serve listening")
        }
    }
    let retention = tokio::spawn(run_retention(Arc::clone(&store), config.retention_days));
    let app = crate::app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("while serving")?;
    retention.abort();
    let _ = retention.await;
    // Every handler has finished and the router (holding the state and the outputs' queues)
    // is dropped: the outputs deliver what they hold, within a grace period.
    tracing::info!("stopped accepting requests, draining alert outputs");
    output_tasks.join(Duration::from_secs(5)).await;
    // The last handle of the store goes off the async runtime: closing the PostgreSQL
    // client blocks on a runtime of its own, which tokio forbids inside an async context.
    let _ = tokio::task::spawn_blocking(move || drop(store)).await;
    tracing::info!("kaudit serve stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Deletes events and alerts older than `days` (0: never), at start and then hourly, in
/// chunks so intake batches never wait long behind it.
async fn run_retention(store: Arc<dyn Store>, days: u32) {
    if days == 0 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let cutoff = now_ns().saturating_sub(i64::from(days) * 86_400 * 1_000_000_000);
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.purge_before(cutoff, 5_000)).await {
            Ok(Ok(purged)) if purged.events > 0 || purged.alerts > 0 => {
                tracing::info!(
                    events = purged.events,
                    alerts = purged.alerts,
                    days,
                    "retention deleted old data"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "retention run failed, retrying in an hour"),
            Err(err) => tracing::warn!(error = %err, "retention task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_urls_are_logged_without_secrets() {
        for (url, shown) in [
            (
                "postgres://kaudit:s3cret@db:5432/kaudit",
                "postgres://kaudit:***@db:5432/kaudit",
            ),
            (
                "postgres://kaudit@db/kaudit?sslmode=disable",
                "postgres://kaudit@db/kaudit",
            ),
            ("postgresql://db/kaudit?password=s3cret", "postgresql://db/kaudit"),
            ("host=db user=kaudit password=s3cret", "(connection string)"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}
