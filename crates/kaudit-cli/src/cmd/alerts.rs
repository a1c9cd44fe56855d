//! `kaudit alerts`: search stored alerts through the API, newest first, as a table or JSON;
//! `--count` prints only the number of matches (`--count-limit N`: `N+` when more match).
//! Also the connection, time-window and result flags that `kaudit events search` shares.

use std::process::ExitCode;

use kaudit_proto as proto;
use kaudit_server::client::ApiClient;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::output::print_table;

/// Connection to a running server.
#[derive(clap::Args, Clone)]
pub struct Server {
    /// URL of the kaudit server.
    #[arg(long, env = "KAUDIT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token (viewer or admin).
    #[arg(long, env = "KAUDIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Server {
    /// The client.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        if self.token.is_none() {
            anyhow::bail!("give --token (or set KAUDIT_TOKEN): the API needs a viewer or admin token");
        }
        Ok(ApiClient::new(&self.server, self.token.clone())?)
    }
}

/// Time window flags shared by `alerts` and `events search`.
#[derive(clap::Args, Clone)]
pub struct Window {
    /// Only the last DURATION (`30s`, `15m`, `2h`, `7d`).
    #[arg(long, conflicts_with = "from")]
    pub since: Option<String>,
    /// From this RFC 3339 time.
    #[arg(long)]
    pub from: Option<String>,
    /// Until this RFC 3339 time (exclusive).
    #[arg(long)]
    pub to: Option<String>,
}

impl Window {
    /// The `from` bound, from `--since` or `--from`.
    pub fn from(&self) -> anyhow::Result<Option<String>> {
        match &self.since {
            Some(text) => {
                let seconds = parse_duration(text)?;
                let now = kaudit_server::admin::now_ns();
                Ok(Some(kaudit_model::format_rfc3339_nanos(
                    now - seconds * 1_000_000_000,
                )))
            }
            None => Ok(self.from.clone()),
        }
    }
}

/// `30s`, `15m`, `2h`, `7d` in seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {text:?} (e.g. 30s, 15m, 2h, 7d)"))?;
    let factor = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("invalid duration unit in {text:?} (s, m, h or d)"),
    };
    Ok(n.saturating_mul(factor))
}

/// Result flags shared by `alerts` and `events search`: how many to print and how, or only
/// how many match.
#[derive(clap::Args)]
pub struct Results {
    /// Most matches to print.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Print only the number of matches (exact: on a large store this can take seconds).
    #[arg(long)]
    count: bool,
    /// With --count: stop counting past N and print `N+` when more match.
    #[arg(long, value_name = "N", requires = "count")]
    count_limit: Option<u32>,
}

/// A search of the API, by its filter type (`AlertFilter`, `EventFilter`): where it goes,
/// what it finds and how the table shows it.
pub trait SearchFilter: Serialize {
    /// What the search finds.
    type Item: Serialize + DeserializeOwned;
    /// The API path (`{PATH}/count` counts).
    const PATH: &str;
    /// The table's header.
    const HEADER: &[&str];
    /// Sets `cursor` and `limit` (a page size; on `.../count`, where the count stops).
    fn set_page(&mut self, cursor: Option<String>, limit: Option<u32>);
    /// A table row under [`SearchFilter::HEADER`].
    fn row(item: &Self::Item) -> Vec<String>;
}

impl SearchFilter for proto::AlertFilter {
    type Item = proto::Alert;
    const PATH: &str = "/api/v1/alerts";
    const HEADER: &[&str] = &["TIME", "PRIORITY", "CLUSTER", "RULE", "OUTPUT"];

    fn set_page(&mut self, cursor: Option<String>, limit: Option<u32>) {
        self.cursor = cursor;
        self.limit = limit;
    }

    fn row(a: &proto::Alert) -> Vec<String> {
        vec![
            a.time.clone(),
            a.priority.to_string(),
            a.cluster.clone(),
            a.rule.clone(),
            a.output.clone(),
        ]
    }
}

impl Results {
    /// Runs the search of `filter` and prints the matches newest first, fetching pages of at
    /// most 1000 until `--limit`; with `--count`, prints only the number of matches.
    pub fn search<F: SearchFilter>(&self, client: &ApiClient, mut filter: F) -> anyhow::Result<ExitCode> {
        if self.count {
            filter.set_page(None, self.count_limit);
            let counted: proto::Count = client.get(&format!("{}/count", F::PATH), &filter)?;
            let more = if counted.exact { "" } else { "+" };
            println!("{}{more}", counted.count);
            return Ok(ExitCode::SUCCESS);
        }
        let wanted = self.limit as usize;
        let mut found: Vec<F::Item> = Vec::new();
        let mut cursor = None;
        while found.len() < wanted {
            filter.set_page(cursor, Some((wanted - found.len()).min(1000) as u32));
            let page: proto::Page<F::Item> = client.get(F::PATH, &filter)?;
            found.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if self.json {
            for item in &found {
                println!("{}", serde_json::to_string(item)?);
            }
        } else {
            print_table(F::HEADER, found.iter().map(F::row));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Flags of `kaudit alerts`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    window: Window,
    /// Only alerts at least this severe (`warning` keeps Warning and above).
    #[arg(long)]
    min_priority: Option<String>,
    /// Rule name.
    #[arg(long)]
    rule: Option<String>,
    /// Policy name.
    #[arg(long)]
    policy: Option<String>,
    /// Cluster name.
    #[arg(long)]
    cluster: Option<String>,
    /// Namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// User name.
    #[arg(long)]
    user: Option<String>,
    #[command(flatten)]
    results: Results,
    #[command(flatten)]
    server: Server,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let filter = proto::AlertFilter {
        from: args.window.from()?,
        to: args.window.to.clone(),
        min_priority: args.min_priority,
        rule: args.rule,
        policy: args.policy,
        cluster: args.cluster,
        namespace: args.namespace,
        user: args.user,
        cursor: None,
        limit: None,
    };
    args.results.search(&client, filter)
}
