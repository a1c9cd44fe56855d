//! `kaudit policy` subcommands.

use std::process::ExitCode;

/// Subcommands of `kaudit policy`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Show what is available.
    Help,
}

/// Runs the command.
pub fn run(_command: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kaudit policy is not available in this build yet")
}
