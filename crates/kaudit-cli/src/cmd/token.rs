//! `kaudit token create|list|revoke`: API tokens, against a running server (admin token) or
//! offline on a data directory or a PostgreSQL database.

use std::process::ExitCode;

use kaudit_proto as proto;

use super::intake::{Place, RevokeArgs, Target, revocation_state};
use super::output::ListArgs;

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
    List(ListArgs<Target>),
    /// Revoke a token (by id).
    Revoke(RevokeArgs),
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
        Command::List(list) => {
            let tokens: Vec<proto::Token> = match list.connection.open()? {
                Place::Server(client) => client.get("/api/v1/tokens", &())?,
                Place::Offline(store) => store
                    .list_tokens()?
                    .iter()
                    .map(kaudit_server::admin::token_dto)
                    .collect(),
            };
            list.print(&tokens, &["ID", "NAME", "ROLE", "STATE", "CREATED"], |t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.role.to_string(),
                    revocation_state(t.revoked_at.as_deref()),
                    t.created_at.clone(),
                ]
            })?;
        }
        Command::Revoke(revoke) => revoke.revoke("token", "/api/v1/tokens", |store, id, now_ns| {
            store.revoke_token(kaudit_store::TokenId(id), now_ns)
        })?,
    }
    Ok(ExitCode::SUCCESS)
}
