//! `kaudit rules`: checking rules files and listing the rules they define.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kaudit_rules::RuleInfo;
use kaudit_rules::fields::Body;

use crate::cmd::scan;

/// Subcommands of `kaudit rules`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate rules files, loaded in order into one rule set as `kaudit scan --rules` does
    /// (kaudit's default rules when none is given), and list each rule with its priority,
    /// source, whether it is enabled, and the fields it reads. Exits with 2 when they do not
    /// load.
    Check(CheckArgs),
}

/// Flags of `kaudit rules check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Rules files, loaded in order into one rule set.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => check(&args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = match scan::load_rules(&args.files) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("kaudit: error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    scan::report_load_notes(&loaded);
    let rules = &loaded.ruleset;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for rule in rules.rules() {
        write_rule(&mut out, rule).context("cannot write the rule list")?;
    }
    for skipped in rules.skipped() {
        writeln!(
            out,
            "{}\n  source: {}  not evaluated: kaudit evaluates k8s_audit rules only\n",
            skipped.name, skipped.source
        )
        .context("cannot write the rule list")?;
    }
    let enabled = rules.rules().iter().filter(|r| r.enabled).count();
    let files = args.files.len().max(1);
    writeln!(
        out,
        "{} rules ({enabled} enabled) in {files} file{}: ok",
        rules.rules().len() + rules.skipped().len(),
        if files == 1 { "" } else { "s" }
    )
    .context("cannot write the rule list")?;
    out.flush().context("cannot write the rule list")?;
    Ok(ExitCode::SUCCESS)
}

fn write_rule(out: &mut impl io::Write, rule: &RuleInfo) -> io::Result<()> {
    writeln!(out, "{}", rule.name)?;
    writeln!(
        out,
        "  priority: {}  source: {}  enabled: {}  at: {}:{}:{}",
        rule.priority.falco_name(),
        rule.source,
        if rule.enabled { "yes" } else { "no" },
        rule.file,
        rule.line,
        rule.column
    )?;
    if !rule.tags.is_empty() {
        writeln!(out, "  tags: {}", rule.tags.join(", "))?;
    }
    let fields: Vec<String> = rule.fields().iter().map(|f| f.display()).collect();
    writeln!(out, "  fields: {}", fields.join(", "))?;
    if let Some(verbs) = rule.verbs() {
        writeln!(
            out,
            "  verbs: {}",
            verbs.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        )?;
    }
    if let Some(resources) = rule.resources() {
        writeln!(
            out,
            "  resources: {}",
            resources
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    let level = match rule.body() {
        Body::None => "Metadata",
        Body::Request => "Request",
        Body::Response | Body::Any => "RequestResponse",
    };
    writeln!(out, "  needs audit level: {level}")?;
    writeln!(out)
}
