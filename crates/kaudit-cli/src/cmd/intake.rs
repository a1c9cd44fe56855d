//! `kaudit intake create|list|revoke`: intakes and their keys, against a running server
//! (`--server URL --token T`, an admin token) or offline on a data directory (`--data-dir`)
//! or a PostgreSQL database (`--database`).

use std::path::PathBuf;
use std::process::ExitCode;

use kaudit_proto as proto;
use kaudit_server::client::ApiClient;

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
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke an intake's key (by intake id).
    Revoke {
        /// The intake id (see `kaudit intake list`).
        id: String,
        #[command(flatten)]
        target: Target,
    },
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
        Command::List { json, target } => {
            let intakes: Vec<proto::Intake> = match target.open()? {
                Place::Server(client) => client.get("/api/v1/intakes", &())?,
                Place::Offline(store) => store
                    .list_intakes()?
                    .iter()
                    .map(|i| kaudit_server::admin::intake_dto(i, 0))
                    .collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&intakes)?);
            } else {
                let rows = intakes.iter().map(|i| {
                    vec![
                        i.id.clone(),
                        i.name.clone(),
                        i.cluster.clone(),
                        if i.revoked_at.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                        i.last_event_at.clone().unwrap_or_else(|| "never".into()),
                        i.event_count.to_string(),
                    ]
                });
                print_table(&["ID", "NAME", "CLUSTER", "STATE", "LAST EVENT", "EVENTS"], rows);
            }
        }
        Command::Revoke { id, target } => match target.open()? {
            Place::Server(client) => client.delete(&format!("/api/v1/intakes/{id}"))?,
            Place::Offline(store) => {
                let number: i64 = id
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid intake id {id:?}"))?;
                let now = kaudit_server::admin::now_ns();
                if !store.revoke_intake(kaudit_store::IntakeId(number), now)? {
                    anyhow::bail!("no active intake with id {id}");
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}
