//! `kaudit scan`: run detection rules over audit input.

use std::process::ExitCode;

/// Flags of `kaudit scan`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kaudit scan is not available in this build yet")
}
