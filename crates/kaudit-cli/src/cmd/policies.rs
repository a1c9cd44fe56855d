//! `kaudit policies list|show|enable|disable`: the detection policies of a running server,
//! through the API (`--server URL --token T`; changes need an admin token).

use std::process::ExitCode;

use kaudit_proto as proto;

use super::alerts::Server;
use super::output::{ListArgs, print_table};

/// `kaudit policies` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List the policies.
    List(ListArgs<Server>),
    /// Show one policy: its rule selection, its scope and the rules it holds.
    Show {
        /// The policy's name.
        name: String,
        /// Print JSON (the policy and its rules) instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Enable a policy: its rules raise alerts on new events.
    Enable {
        /// The policy's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Disable a policy: its rules stop raising alerts (unless another enabled policy holds
    /// them).
    Disable {
        /// The policy's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(list) => {
            let policies: Vec<proto::Policy> = list.connection.client()?.get("/api/v1/policies", &())?;
            list.print(
                &policies,
                &["NAME", "STATE", "KIND", "RULES", "SCOPE", "DESCRIPTION"],
                |p| {
                    vec![
                        p.name.clone(),
                        if p.enabled { "enabled" } else { "disabled" }.to_owned(),
                        if p.builtin { "built-in" } else { "custom" }.to_owned(),
                        selection_text(&p.rules),
                        scope_summary(&p.scope),
                        p.description.clone(),
                    ]
                },
            )?;
        }
        Command::Show { name, json, server } => {
            let client = server.client()?;
            let policy: proto::Policy = client.get(&policy_path(&name), &())?;
            let rules: Vec<proto::RuleInfo> = client.get("/api/v1/rules", &())?;
            let held: Vec<&proto::RuleInfo> = rules
                .iter()
                .filter(|r| r.policies.contains(&policy.name))
                .collect();
            if json {
                let value = serde_json::json!({ "policy": policy, "rules": held });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_policy(&policy, &held);
            }
        }
        Command::Enable { name, server } => set_enabled(&server, &name, true)?,
        Command::Disable { name, server } => set_enabled(&server, &name, false)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The API path of a policy (names are letters, digits, `-`, `_` and `.`, so they need no
/// escaping; anything else is refused by the server with 404 or 400).
fn policy_path(name: &str) -> String {
    format!("/api/v1/policies/{}", path_segment(name))
}

/// Percent-encodes what is not an unreserved URL character.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn set_enabled(server: &Server, name: &str, enabled: bool) -> anyhow::Result<()> {
    let patch = proto::PolicyPatch {
        enabled: Some(enabled),
        ..proto::PolicyPatch::default()
    };
    let policy: proto::Policy = server.client()?.patch(&policy_path(name), &patch)?;
    println!(
        "policy {} {}",
        policy.name,
        if policy.enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// `files: default; tags: a, b; names: x*`.
fn selection_text(rules: &proto::PolicyRules) -> String {
    let mut parts = Vec::new();
    for (what, items) in [
        ("files", &rules.files),
        ("tags", &rules.tags),
        ("names", &rules.names),
    ] {
        if !items.is_empty() {
            parts.push(format!("{what}: {}", items.join(", ")));
        }
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

fn scope_summary(scope: &[proto::ScopeRule]) -> String {
    match scope.len() {
        0 => "every request".to_owned(),
        1 => "1 entry".to_owned(),
        n => format!("{n} entries"),
    }
}

fn scope_entry_text(entry: &proto::ScopeRule) -> String {
    let list = |items: &[String]| {
        let shown: Vec<String> = items
            .iter()
            .map(|i| {
                if i.is_empty() {
                    "\"\"".to_owned()
                } else {
                    i.clone()
                }
            })
            .collect();
        format!("[{}]", shown.join(", "))
    };
    let scope = match entry.scope.unwrap_or_default() {
        proto::ScopeKind::Cluster => "Cluster",
        proto::ScopeKind::Namespaced => "Namespaced",
        proto::ScopeKind::Any => "*",
    };
    format!(
        "apiGroups {} apiVersions {} operations {} resources {} scope {scope}",
        list(&entry.api_groups),
        list(&entry.api_versions),
        list(&entry.operations),
        list(&entry.resources)
    )
}

fn print_policy(policy: &proto::Policy, held: &[&proto::RuleInfo]) {
    println!("name:         {}", policy.name);
    println!(
        "state:        {}",
        if policy.enabled { "enabled" } else { "disabled" }
    );
    println!(
        "kind:         {}",
        if policy.builtin { "built-in" } else { "custom" }
    );
    if !policy.description.is_empty() {
        println!("description:  {}", policy.description);
    }
    println!("rules:        {}", selection_text(&policy.rules));
    if policy.scope.is_empty() {
        println!("scope:        every request");
    } else {
        println!("scope:");
        for entry in &policy.scope {
            println!("  - {}", scope_entry_text(entry));
        }
    }
    println!();
    let rows = held.iter().map(|r| {
        vec![
            r.name.clone(),
            r.priority.to_string(),
            r.file.clone(),
            if r.active {
                "active"
            } else if r.enabled {
                "inactive"
            } else {
                "disabled"
            }
            .to_owned(),
        ]
    });
    print_table(&["RULE", "PRIORITY", "FILE", "STATE"], rows);
}
