//! `kaudit alerts`: search stored alerts through the API, newest first, as a table or JSON;
//! `--count` prints only the number of matches.

use std::process::ExitCode;

use kaudit_proto as proto;
use kaudit_server::client::ApiClient;

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
    /// Most alerts to print.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// One JSON alert per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Print only the number of matching alerts.
    #[arg(long)]
    count: bool,
    #[command(flatten)]
    server: Server,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let mut filter = proto::AlertFilter {
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
    if args.count {
        let count: proto::Count = client.get("/api/v1/alerts/count", &filter)?;
        println!("{}", count.count);
        return Ok(ExitCode::SUCCESS);
    }
    let mut alerts: Vec<proto::Alert> = Vec::new();
    while alerts.len() < args.limit as usize {
        filter.limit = Some((args.limit as usize - alerts.len()).min(1000) as u32);
        let page: proto::Page<proto::Alert> = client.get("/api/v1/alerts", &filter)?;
        alerts.extend(page.items);
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    if args.json {
        for alert in &alerts {
            println!("{}", serde_json::to_string(alert)?);
        }
    } else {
        let rows = alerts.iter().map(|a| {
            vec![
                a.time.clone(),
                a.priority.to_string(),
                a.cluster.clone(),
                a.rule.clone(),
                a.output.clone(),
            ]
        });
        super::intake::print_table(&["TIME", "PRIORITY", "CLUSTER", "RULE", "OUTPUT"], rows);
    }
    Ok(ExitCode::SUCCESS)
}
