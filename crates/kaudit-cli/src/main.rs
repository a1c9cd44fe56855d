//! The `kaudit` command: definitions of the command line and the glue that hands each
//! subcommand to the crate that does the work.
//!
//! Must never: contain engine, storage or HTTP logic of its own; each `cmd` module only
//! turns flags into calls and results into output and exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc rather than the system allocator: the intake allocates and frees a batch's worth of
/// rows and buffers per request on several threads at once, and the request bodies (hundreds of
/// KiB) would otherwise be fresh zeroed pages from the kernel each time (glibc maps and unmaps
/// blocks that large). The `override` feature also routes C's `malloc` to it, so SQLite's page
/// cache and zstd's buffers stop growing and trimming glibc's per-thread heaps (`mprotect` and
/// page faults on the writer thread). Measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kubernetes audit-log security pipeline: policy, collection, intake, detection, search.
#[derive(Parser)]
#[command(name = "kaudit", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collect audit events (log files, apiserver webhook) and ship them to an intake.
    Agent(Box<cmd::agent::Args>),
    /// Run detection rules over audit log files and print the alerts.
    Scan(cmd::scan::Args),
    /// Validate rule files and list their rules.
    #[command(subcommand)]
    Rules(cmd::rules::Command),
    /// Validate, evaluate and simulate audit policies; check what detections they starve.
    #[command(subcommand)]
    Policy(cmd::policy::Command),
    /// Run the intake, detection and API server.
    Serve(cmd::serve::Args),
    /// Create, list and revoke intakes and their keys.
    #[command(subcommand)]
    Intake(cmd::intake::Command),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(cmd::token::Command),
    /// Search stored alerts on a server.
    Alerts(Box<cmd::alerts::Args>),
    /// List, show, enable and disable detection policies on a server.
    #[command(subcommand)]
    Policies(cmd::policies::Command),
    /// List, show, add, replace and remove custom rule files on a server.
    #[command(subcommand)]
    RuleFiles(cmd::rule_files::Command),
    /// Search stored audit events on a server (activity audit).
    #[command(subcommand)]
    Events(cmd::events::Command),
    /// Generate a large realistic audit log to time `kaudit scan` on.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => cmd::agent::run(*args),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Rules(command) => cmd::rules::run(command),
        Command::Policy(command) => cmd::policy::run(command),
        Command::Bench(command) => cmd::bench::run(command),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Intake(command) => cmd::intake::run(command),
        Command::Token(command) => cmd::token::run(command),
        Command::Alerts(args) => cmd::alerts::run(*args),
        Command::Events(command) => cmd::events::run(command),
        Command::Policies(command) => cmd::policies::run(command),
        Command::RuleFiles(command) => cmd::rule_files::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("kaudit: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Output cut short by a closed pipe (`kaudit scan ... | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
