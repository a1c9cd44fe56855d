//! `kaudit events search|get`: the activity audit through the API.

use std::process::ExitCode;

use kaudit_proto as proto;

use super::alerts::{Results, SearchFilter, Server, Window};

/// `kaudit events` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Search stored events, newest first.
    Search(Box<SearchArgs>),
    /// Print one stored event in full (JSON).
    Get {
        /// The event id.
        id: String,
        #[command(flatten)]
        server: Server,
    },
}

/// Flags of `kaudit events search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    window: Window,
    /// Cluster name.
    #[arg(long)]
    cluster: Option<String>,
    /// User name, exact.
    #[arg(long, conflicts_with = "user_prefix")]
    user: Option<String>,
    /// User name prefix.
    #[arg(long)]
    user_prefix: Option<String>,
    /// One of the user's groups.
    #[arg(long)]
    group: Option<String>,
    /// Verb.
    #[arg(long)]
    verb: Option<String>,
    /// Resource.
    #[arg(long)]
    resource: Option<String>,
    /// Subresource.
    #[arg(long)]
    subresource: Option<String>,
    /// Namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Object name.
    #[arg(long)]
    name: Option<String>,
    /// First source IP.
    #[arg(long)]
    source_ip: Option<String>,
    /// Substring of the user agent.
    #[arg(long)]
    user_agent: Option<String>,
    /// Response code.
    #[arg(long)]
    code: Option<u16>,
    /// Authorization decision (allow, forbid).
    #[arg(long)]
    decision: Option<String>,
    /// Text in the request URI or the object name.
    #[arg(long)]
    text: Option<String>,
    #[command(flatten)]
    results: Results,
    #[command(flatten)]
    server: Server,
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Search(args) => search(*args),
        Command::Get { id, server } => {
            let client = server.client()?;
            let event: proto::EventDetail = client.get(&format!("/api/v1/events/{id}"), &())?;
            println!("{}", serde_json::to_string_pretty(&event)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let filter = proto::EventFilter {
        from: args.window.from()?,
        to: args.window.to.clone(),
        cluster: args.cluster,
        user: args.user,
        user_prefix: args.user_prefix,
        group: args.group,
        verb: args.verb,
        resource: args.resource,
        subresource: args.subresource,
        namespace: args.namespace,
        name: args.name,
        source_ip: args.source_ip,
        user_agent: args.user_agent,
        code: args.code,
        decision: args.decision,
        q: args.text,
        ..proto::EventFilter::default()
    };
    args.results.search(&client, filter)
}

impl SearchFilter for proto::EventFilter {
    type Item = proto::Event;
    const PATH: &str = "/api/v1/events";
    const HEADER: &[&str] = &[
        "ID", "TIME", "CLUSTER", "USER", "VERB", "RESOURCE", "OBJECT", "CODE",
    ];

    fn set_page(&mut self, cursor: Option<String>, limit: Option<u32>) {
        self.cursor = cursor;
        self.limit = limit;
    }

    fn row(e: &proto::Event) -> Vec<String> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let object = match (&e.namespace, &e.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.clone(),
            _ => String::new(),
        };
        let resource = match &e.subresource {
            Some(sub) => format!("{}/{sub}", text(&e.resource)),
            None => text(&e.resource),
        };
        vec![
            e.id.clone(),
            e.time.clone(),
            e.cluster.clone(),
            text(&e.user),
            text(&e.verb),
            resource,
            object,
            e.response_code.map(|c| c.to_string()).unwrap_or_default(),
        ]
    }
}
