//! `kaudit agent`: the collector that runs on control-plane nodes, tailing the audit log
//! and/or receiving the apiserver webhook, and shipping events to an intake.
//!
//! This module only turns flags into a [`kaudit_agent::AgentConfig`] and calls
//! [`kaudit_agent::run`] or [`kaudit_agent::check`]; all behaviour lives in `kaudit-agent`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kaudit_agent::config::{AgentConfig, INTAKE_KEY_ENV, Overrides, Secret, StartAt};
use kaudit_agent::filter::ScopeRule;

/// Flags of `kaudit agent`. Every flag overrides the same setting of `--config`.
#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (see docs/agent.md); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Audit log file or glob to tail (repeatable), e.g. /var/log/kubernetes/apiserver/audit.log.
    #[arg(long = "file", value_name = "PATH_OR_GLOB")]
    files: Vec<String>,
    /// Where to start on files without a checkpoint: beginning (default) or end.
    #[arg(long, value_name = "WHERE")]
    start_at: Option<StartAt>,
    /// Directory for checkpoints and the spool [default: /var/lib/kaudit-agent].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Intake base URL (http://host:8080) or full endpoint URL.
    #[arg(long = "intake", value_name = "URL")]
    intake_url: Option<String>,
    /// Intake key (prefer --intake-key-file or the KAUDIT_INTAKE_KEY variable: flags show in `ps`).
    #[arg(long, value_name = "KEY", hide_default_value = true)]
    intake_key: Option<String>,
    /// File holding the intake key.
    #[arg(long, value_name = "FILE")]
    intake_key_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) for an https intake.
    #[arg(long, value_name = "FILE")]
    intake_ca: Option<PathBuf>,
    /// Serve the apiserver audit webhook on this address (e.g. 0.0.0.0:8443).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Webhook server certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Webhook server private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Require webhook client certificates signed by this CA (PEM).
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Require this bearer token (file content) on webhook requests.
    #[arg(long, value_name = "FILE")]
    webhook_token_file: Option<PathBuf>,
    /// Serve /metrics and /healthz on this address (e.g. 0.0.0.0:9808).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Audit policy applied to events before shipping (audit.k8s.io/v1 Policy file).
    #[arg(long = "policy", value_name = "FILE")]
    policy_file: Option<PathBuf>,
    /// Resource scope rule (repeatable): `apiGroups=,apps;resources=pods,pods/exec;namespaces=prod;verbs=create`.
    #[arg(long = "scope", value_name = "RULE", value_parser = ScopeRule::parse_flag)]
    scope: Vec<ScopeRule>,
    /// Cut a batch at this many events [default: 1000].
    #[arg(long, value_name = "N")]
    batch_max_events: Option<usize>,
    /// Cut a batch at this many uncompressed bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    batch_max_bytes: Option<usize>,
    /// Cut a non-empty batch after this long [default: 1000].
    #[arg(long, value_name = "MS")]
    flush_interval_ms: Option<u64>,
    /// Bound of the disk spool [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    spool_max_bytes: Option<u64>,
    /// Longest audit log line accepted; longer ones are reported and skipped [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    max_line_bytes: Option<usize>,
    /// How often to look for new data at the end of the files [default: 100].
    #[arg(long, value_name = "MS")]
    poll_interval_ms: Option<u64>,
    /// Validate the configuration, reach the intake with the key, and exit.
    #[arg(long)]
    check: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    install_logging();
    let check = args.check;
    let config_file = args.config.clone();
    let overrides = Overrides {
        files: args.files,
        start_at: args.start_at,
        state_dir: args.state_dir,
        intake_url: args.intake_url,
        intake_key: args.intake_key.map(Secret::new),
        intake_key_file: args.intake_key_file,
        intake_ca: args.intake_ca,
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        webhook_token_file: args.webhook_token_file,
        metrics_listen: args.metrics_listen,
        policy_file: args.policy_file,
        scope: args.scope,
        batch_max_events: args.batch_max_events,
        batch_max_bytes: args.batch_max_bytes,
        flush_interval_ms: args.flush_interval_ms,
        spool_max_bytes: args.spool_max_bytes,
        max_line_bytes: args.max_line_bytes,
        poll_interval_ms: args.poll_interval_ms,
    };
    let config = match AgentConfig::load(
        config_file.as_deref(),
        overrides,
        std::env::var(INTAKE_KEY_ENV).ok(),
    ) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kaudit agent: invalid configuration: {}", error_chain(&err));
            return Ok(ExitCode::from(2));
        }
    };
    if check {
        let report = kaudit_agent::check(&config).map_err(|err| anyhow::anyhow!(error_chain(&err)))?;
        for line in report.lines {
            println!("ok: {line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    kaudit_agent::run(config)
        .map_err(|err| anyhow::anyhow!(error_chain(&err)))
        .context("while running the agent")?;
    Ok(ExitCode::SUCCESS)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Logs to standard error; the level comes from `KAUDIT_LOG` (default `info`).
fn install_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAUDIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
