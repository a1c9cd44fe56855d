//! `kaudit token create|list|revoke`: API tokens, against a running server (admin token) or
//! offline on a data directory or a PostgreSQL database.

use std::process::ExitCode;

use kaudit_proto as proto;

use super::intake::{Place, Target, print_table};

/// `kaudit token` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create an API token and print it (alone, on standard output).
    Create {
        /// `viewer` (read) or `admin` (read, and change rules, policies, intakes, tokens).
        #[arg(long)]
        role: proto::Role,
        /// A label for the token (default: generated).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List tokens (without their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token (by id).
    Revoke {
        /// The token id (see `kaudit token list`).
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create { role, name, target } => {
            let key = match target.open()? {
                Place::Server(client) => {
                    let created: proto::CreatedToken =
                        client.post("/api/v1/tokens", &proto::CreateToken { role, name })?;
                    created.key
                }
                Place::Offline(store) => {
                    kaudit_server::admin::create_token(&*store, kaudit_server::admin::role_row(role), &name)?
                        .1
                }
            };
            println!("{key}");
        }
        Command::List { json, target } => {
            let tokens: Vec<proto::Token> = match target.open()? {
                Place::Server(client) => client.get("/api/v1/tokens", &())?,
                Place::Offline(store) => store
                    .list_tokens()?
                    .iter()
                    .map(kaudit_server::admin::token_dto)
                    .collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                let rows = tokens.iter().map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.role.to_string(),
                        if t.revoked_at.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                        t.created_at.clone(),
                    ]
                });
                print_table(&["ID", "NAME", "ROLE", "STATE", "CREATED"], rows);
            }
        }
        Command::Revoke { id, target } => match target.open()? {
            Place::Server(client) => client.delete(&format!("/api/v1/tokens/{id}"))?,
            Place::Offline(store) => {
                let number: i64 = id
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid token id {id:?}"))?;
                if !store.revoke_token(kaudit_store::TokenId(number), kaudit_server::admin::now_ns())? {
                    anyhow::bail!("no active token with id {id}");
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
