//! `kaudit serve`: the intake, detection and API server (`kaudit_server::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Flags of `kaudit serve`. Flags override the config file, which overrides the defaults.
#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (see docs/intake-protocol.md for the keys).
    #[arg(long, env = "KAUDIT_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the SQLite database and server state [default: ./kaudit-data].
    #[arg(long, env = "KAUDIT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KAUDIT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Store events in PostgreSQL instead of SQLite (`postgres://user@host/db`).
    #[arg(long, env = "KAUDIT_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// With `--database`: the PostgreSQL schema for kaudit's tables (created if missing).
    #[arg(long, env = "KAUDIT_DATABASE_SCHEMA", requires = "database")]
    database_schema: Option<String>,
    /// Delete events and alerts older than this many days (0: keep everything) [default: 30].
    #[arg(long)]
    retention_days: Option<u32>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = kaudit_server::config::Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(database) = args.database {
        config.database = Some(database);
    }
    if let Some(schema) = args.database_schema {
        config.database_schema = Some(schema);
    }
    if let Some(days) = args.retention_days {
        config.retention_days = days;
    }
    kaudit_server::serve::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kaudit-serve")
        .build()
        .context("while starting the async runtime")?;
    runtime.block_on(kaudit_server::serve(config))?;
    Ok(ExitCode::SUCCESS)
}
