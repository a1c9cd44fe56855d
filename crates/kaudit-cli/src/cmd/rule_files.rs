//! `kaudit rule-files list|show|add|replace|remove`: the custom rule files of a running
//! server, through the API (`--server URL --token T`; changes need an admin token).
//!
//! The server loads the whole detection set with the change before keeping it: a file that
//! does not load is refused with its file, line and column and the running rules stay as
//! they were. This command prints that error and exits with 2.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kaudit_proto as proto;
use kaudit_server::client::{ApiClient, ClientError};

use super::alerts::Server;
use super::output::ListArgs;
use super::policies::path_segment;

/// `kaudit rule-files` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List the custom rule files.
    List(ListArgs<Server>),
    /// Print a rule file's YAML.
    Show {
        /// The rule file's name.
        name: String,
        /// Print JSON (name, content, update time) instead of the YAML text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Add a new rule file (refused when one of that name exists).
    Add {
        /// Name of the rule file (letters, digits, `-`, `_`, `.`).
        name: String,
        /// The YAML file to upload.
        file: PathBuf,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Replace an existing rule file.
    Replace {
        /// Name of the rule file.
        name: String,
        /// The YAML file to upload.
        file: PathBuf,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Remove a rule file (refused when other files still use its macros or lists).
    Remove {
        /// Name of the rule file.
        name: String,
        #[command(flatten)]
        server: Server,
    },
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(list) => {
            let files: Vec<proto::RuleFileSummary> =
                list.connection.client()?.get("/api/v1/rule-files", &())?;
            list.print(&files, &["NAME", "BYTES", "UPDATED"], |f| {
                vec![f.name.clone(), f.size.to_string(), f.updated_at.clone()]
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { name, json, server } => {
            let file: proto::RuleFile = server.client()?.get(&file_path(&name), &())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                print!("{}", file.content);
                if !file.content.ends_with('\n') {
                    println!();
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Add {
            name,
            file,
            json,
            server,
        } => upload(&server.client()?, &name, &file, Upload::Add, json),
        Command::Replace {
            name,
            file,
            json,
            server,
        } => upload(&server.client()?, &name, &file, Upload::Replace, json),
        Command::Remove { name, server } => {
            let client = server.client()?;
            match client.delete(&file_path(&name)) {
                Ok(()) => {
                    println!("rule file {name} removed");
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => refused_or(err),
            }
        }
    }
}

/// Whether the name must be new or must exist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Upload {
    Add,
    Replace,
}

fn upload(
    client: &ApiClient,
    name: &str,
    file: &PathBuf,
    mode: Upload,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let content = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let exists = match client.get::<proto::RuleFile>(&file_path(name), &()) {
        Ok(_) => true,
        Err(ClientError::Status { status: 404, .. }) => false,
        Err(err) => return Err(err.into()),
    };
    match (mode, exists) {
        (Upload::Add, true) => {
            eprintln!("kaudit: error: a rule file named {name} exists (use `kaudit rule-files replace`)");
            return Ok(ExitCode::from(2));
        }
        (Upload::Replace, false) => {
            eprintln!("kaudit: error: no rule file named {name} (use `kaudit rule-files add`)");
            return Ok(ExitCode::from(2));
        }
        _ => {}
    }
    match client.put_text::<proto::RuleFileSummary>(&file_path(name), content) {
        Ok(summary) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                let verb = if mode == Upload::Add { "added" } else { "replaced" };
                println!(
                    "rule file {} {verb} ({} bytes); rules reloaded",
                    summary.name, summary.size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => refused_or(err),
    }
}

/// A refusal by the server (400: bad name; 404: no such file; 422: the rules do not load,
/// with the file, line and column) is printed and exits with 2; other failures are errors.
fn refused_or(err: ClientError) -> anyhow::Result<ExitCode> {
    match err {
        ClientError::Status {
            status: 400 | 404 | 422,
            message,
        } => {
            eprintln!("kaudit: error: refused by the server: {message}");
            Ok(ExitCode::from(2))
        }
        other => Err(other.into()),
    }
}

fn file_path(name: &str) -> String {
    format!("/api/v1/rule-files/{}", path_segment(name))
}
