//! `kaudit intake create|list|revoke`: intakes and their keys, against a running server
//! (`--server URL --token T`, an admin token) or offline on a data directory (`--data-dir`)
//! or a PostgreSQL database (`--database`).

use std::path::PathBuf;
use std::process::ExitCode;

use kaudit_proto as proto;
use kaudit_server::client::ApiClient;

use super::output::ListArgs;

/// Where the command acts: a running server or a data directory.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// URL of a running kaudit server.
    #[arg(long, env = "KAUDIT_SERVER", global = true)]
    pub server: Option<String>,
    /// API token (admin for changes).
    #[arg(long, env = "KAUDIT_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Act offline on this data directory (SQLite) instead of a server.
    #[arg(long, global = true, conflicts_with = "server")]
    pub data_dir: Option<PathBuf>,
    /// Act offline on this PostgreSQL database (`postgres://...`) instead of a server.
    #[arg(long, global = true, conflicts_with_all = ["server", "data_dir"])]
    pub database: Option<String>,
    /// With `--database`: the PostgreSQL schema of kaudit's tables.
    #[arg(long, global = true)]
    pub database_schema: Option<String>,
}

/// Where a command runs, resolved.
pub enum Place {
    /// Through the API.
    Server(ApiClient),
    /// On the store of a data directory.
    Offline(std::sync::Arc<dyn kaudit_store::Store>),
}

impl Target {
    /// Opens the client or the store.
    pub fn open(&self) -> anyhow::Result<Place> {
        if let Some(dir) = &self.data_dir {
            return Ok(Place::Offline(kaudit_server::serve::open_sqlite(dir)?));
        }
        if let Some(url) = &self.database {
            let store = kaudit_server::serve::open_postgres(url, self.database_schema.as_deref())?;
            return Ok(Place::Offline(store));
        }
        match &self.server {
            Some(url) => Ok(Place::Server(ApiClient::new(url, self.token.clone())?)),
            None => anyhow::bail!("give --server URL (with --token), --data-dir DIR or --database URL"),
        }
    }
}

/// `kaudit intake` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create an intake and print its new key (alone, on standard output).
    Create {
        /// Name of the intake.
        #[arg(long)]
        name: String,
        /// Cluster name stamped on every event received with the key.
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        target: Target,
    },
    /// List intakes.
    List(ListArgs<Target>),
    /// Revoke an intake's key (by intake id).
    Revoke(RevokeArgs),
}

/// Flags of a `revoke` subcommand.
#[derive(clap::Args)]
pub struct RevokeArgs {
    /// The id, as the `list` subcommand prints it.
    pub id: String,
    #[command(flatten)]
    pub target: Target,
}

impl RevokeArgs {
    /// Revokes through the API (`DELETE {api_path}/{id}`) or offline with
    /// `revoke(store, id, now_ns)`, which answers false when nothing active has that id;
    /// `what` names the kind of object in errors.
    pub fn revoke(
        self,
        what: &str,
        api_path: &str,
        revoke: impl FnOnce(&dyn kaudit_store::Store, i64, i64) -> kaudit_store::Result<bool>,
    ) -> anyhow::Result<()> {
        let id = self.id;
        match self.target.open()? {
            Place::Server(client) => client.delete(&format!("{api_path}/{id}"))?,
            Place::Offline(store) => {
                let number: i64 = id
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid {what} id {id:?}"))?;
                if !revoke(&*store, number, kaudit_server::admin::now_ns())? {
                    anyhow::bail!("no active {what} with id {id}");
                }
            }
        }
        Ok(())
    }
}

/// The STATE column of intakes and tokens.
pub fn revocation_state(revoked_at: Option<&str>) -> String {
    match revoked_at {
        Some(_) => "revoked".to_owned(),
        None => "active".to_owned(),
    }
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create {
            name,
            cluster,
            target,
        } => {
            let key = match target.open()? {
                Place::Server(client) => {
                    let created: proto::CreatedIntake =
                        client.post("/api/v1/intakes", &proto::CreateIntake { name, cluster })?;
                    created.key
                }
                Place::Offline(store) => kaudit_server::admin::create_intake(&*store, &name, &cluster)?.1,
            };
            println!("{key}");
        }
        Command::List(list) => {
            let intakes: Vec<proto::Intake> = match list.connection.open()? {
                Place::Server(client) => client.get("/api/v1/intakes", &())?,
                Place::Offline(store) => store
                    .list_intakes()?
                    .iter()
                    .map(|i| kaudit_server::admin::intake_dto(i, 0))
                    .collect(),
            };
            list.print(
                &intakes,
                &["ID", "NAME", "CLUSTER", "STATE", "LAST EVENT", "EVENTS"],
                |i| {
                    vec![
                        i.id.clone(),
                        i.name.clone(),
                        i.cluster.clone(),
                        revocation_state(i.revoked_at.as_deref()),
                        i.last_event_at.clone().unwrap_or_else(|| "never".into()),
                        i.event_count.to_string(),
                    ]
                },
            )?;
        }
        Command::Revoke(revoke) => revoke.revoke("intake", "/api/v1/intakes", |store, id, now_ns| {
            store.revoke_intake(kaudit_store::IntakeId(id), now_ns)
        })?,
    }
    Ok(ExitCode::SUCCESS)
}
