//! `kaudit policy` subcommands: validate policy files, evaluate a policy on recorded events,
//! simulate it over a recorded log, and check which detection rules it starves.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kaudit_model::read_input;
use kaudit_policy::{
    CheckOp, Condition, DetectionRule, Diagnostic, Loaded, Policy, SimulationReport, Simulator, Stats,
    Status, request_attributes,
};
use kaudit_rules::fields::{Body, FieldRef};
use kaudit_rules::{ComplexRhs, Expr, Op, RuleSource};

/// Subcommands of `kaudit policy`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Check policy files as the apiserver loads them; print errors and warnings with
    /// file:line:column.
    Validate {
        /// Treat warnings (unknown or duplicate fields, deprecated apiVersion) as errors.
        #[arg(long)]
        strict: bool,
        /// Policy files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the policy's decision for each audit event: one JSON line per event.
    Eval {
        /// Treat policy warnings as errors.
        #[arg(long)]
        strict: bool,
        /// The policy file.
        policy: PathBuf,
        /// Audit input (JSON lines, EventList or arrays; `.gz` is decompressed); standard
        /// input when none or `-`.
        events: Vec<PathBuf>,
    },
    /// Replay recorded logs through a policy: events and bytes kept and dropped per rule.
    Simulate {
        /// Treat policy warnings as errors.
        #[arg(long)]
        strict: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// How many users, resources and verbs to list per rule.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// The policy file.
        policy: PathBuf,
        /// Recorded logs, read in the order given.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
    },
    /// Report the detection rules the policy starves: events dropped, a level below what
    /// their fields need, or the stages they read omitted. Exits 1 when any is starved.
    Coverage {
        /// Treat policy warnings as errors.
        #[arg(long)]
        strict: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Rules files, loaded in order (default: kaudit's default rules).
        #[arg(long = "rules", value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// The policy file.
        policy: PathBuf,
    },
    /// Write a small policy that starves none of the rules: a base that drops health checks
    /// and the control plane's reads, plus what the rules need.
    Recommend {
        /// Rules files, loaded in order (default: kaudit's default rules).
        #[arg(long = "rules", value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// Write the policy there instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { strict, files } => validate(&files, strict),
        Command::Eval {
            strict,
            policy,
            events,
        } => eval(&policy, &events, strict),
        Command::Simulate {
            strict,
            json,
            top,
            policy,
            logs,
        } => simulate(&policy, &logs, strict, json, top),
        Command::Coverage {
            strict,
            json,
            rules,
            policy,
        } => coverage(&policy, &rules, strict, json),
        Command::Recommend { rules, out } => recommend(&rules, out.as_deref()),
    }
}

/// Exit code for input that does not load.
const INVALID: u8 = 2;

fn validate(files: &[PathBuf], strict: bool) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for path in files {
        match load_policy(path, strict) {
            Ok(Some(loaded)) => {
                let warnings = loaded.warnings.len();
                let rules = loaded.policy.rules.len();
                let suffix = if warnings > 0 {
                    format!(", {warnings} warning(s)")
                } else {
                    String::new()
                };
                writeln!(out, "{}: ok, {rules} rule(s){suffix}", path.display())?;
            }
            Ok(None) => failed = true,
            Err(err) => {
                eprintln!("kaudit: error: {err:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads and loads a policy, printing its diagnostics to standard error with file, line,
/// column and a caret. `Ok(None)` when it does not load (or has warnings under `strict`).
fn load_policy(path: &Path, strict: bool) -> anyhow::Result<Option<Loaded>> {
    let text = fs::read_to_string(path).with_context(|| format!("while reading {}", path.display()))?;
    match kaudit_policy::load(&text) {
        Ok(loaded) => {
            if strict && !loaded.warnings.is_empty() {
                if let Err(err) = loaded.into_strict() {
                    print_diagnostics(path, &text, &err.diagnostics());
                }
                return Ok(None);
            }
            print_diagnostics(path, &text, &loaded.warnings);
            Ok(Some(loaded))
        }
        Err(err) => {
            print_diagnostics(path, &text, &err.diagnostics());
            Ok(None)
        }
    }
}

fn print_diagnostics(path: &Path, text: &str, diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{}:{}: {}: {}", path.display(), d.span, d.severity, d.message);
        let snippet = kaudit_yaml::caret(text, d.span);
        if !snippet.is_empty() {
            eprintln!("{snippet}");
        }
    }
}

/// Loads the policy for eval/simulate, or the exit code to stop with.
fn policy_or_exit(path: &Path, strict: bool) -> anyhow::Result<Result<Policy, ExitCode>> {
    Ok(match load_policy(path, strict)? {
        Some(loaded) => Ok(loaded.policy),
        None => Err(ExitCode::from(INVALID)),
    })
}

/// The bytes of an input file (`-` is standard input; `.gz` is decompressed).
fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("while reading standard input")?;
        return Ok(bytes);
    }
    let file = fs::File::open(path).with_context(|| format!("while opening {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("while decompressing {}", path.display()))?;
    } else {
        io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("while reading {}", path.display()))?;
    }
    Ok(bytes)
}

fn inputs(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        paths.to_vec()
    }
}

fn eval(policy_path: &Path, events: &[PathBuf], strict: bool) -> anyhow::Result<ExitCode> {
    let policy = match policy_or_exit(policy_path, strict)? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for path in inputs(events) {
        let bytes = read_bytes(&path)?;
        let mut result = Ok(());
        read_input(
            &bytes,
            |located| {
                if result.is_err() {
                    return;
                }
                let event = &located.event;
                let decision = policy.evaluate(&request_attributes(event));
                // Keys in the documented order: auditID, stage, level, omitStages,
                // omitManagedFields, rule.
                let text = |t: Option<&str>| serde_json::Value::from(t).to_string();
                let stages: Vec<&str> = decision.omit_stages.iter().map(|s| s.as_str()).collect();
                let line = format!(
                    "{{\"auditID\":{},\"stage\":{},\"level\":\"{}\",\"omitStages\":{},\"omitManagedFields\":{},\"rule\":{}}}",
                    text(event.audit_id.as_deref()),
                    text(event.stage.as_deref()),
                    decision.level.as_str(),
                    serde_json::Value::from(stages),
                    decision.omit_managed_fields,
                    decision.rule.map_or("null".to_owned(), |r| r.to_string()),
                );
                result = writeln!(out, "{line}");
            },
            |skip| eprintln!("kaudit: {}: skipped {skip}", path.display()),
        );
        result?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn simulate(
    policy_path: &Path,
    logs: &[PathBuf],
    strict: bool,
    json: bool,
    top: usize,
) -> anyhow::Result<ExitCode> {
    let policy = match policy_or_exit(policy_path, strict)? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    let mut simulator = Simulator::new(&policy);
    for path in logs {
        let bytes = read_bytes(path)?;
        read_input(
            &bytes,
            |located| simulator.add(&located.event),
            |skip| eprintln!("kaudit: {}: skipped {skip}", path.display()),
        );
    }
    let report = simulator.finish(top);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The simulation as a readable table: one row per policy rule, then the unmatched events
/// and the total, each followed by its top users, resources and verbs.
fn write_table(out: &mut impl Write, report: &SimulationReport) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<5} {:<15} {:>8} {:>8} {:>8} {:>12} {:>12} {:>7}",
        "RULE", "LINE", "LEVEL", "EVENTS", "KEPT", "DROPPED", "BYTES-BEFORE", "BYTES-AFTER", "SAVED"
    )?;
    let mut rows: Vec<(String, String, String, &Stats)> = report
        .rules
        .iter()
        .map(|r| {
            (
                format!("#{}", r.index),
                r.line.to_string(),
                r.level.as_str().to_owned(),
                &r.stats,
            )
        })
        .collect();
    rows.push((
        "-".into(),
        "-".into(),
        "(no rule: None)".into(),
        &report.unmatched,
    ));
    for (rule, line, level, stats) in &rows {
        write_row(out, rule, line, level, stats)?;
    }
    write_row(out, "total", "", "", &report.total)?;
    let t = &report.total;
    writeln!(
        out,
        "\nkept by level: Metadata {}, Request {}, RequestResponse {}; dropped {} ({} by omitted stage)",
        t.kept_by_level.metadata,
        t.kept_by_level.request,
        t.kept_by_level.request_response,
        t.dropped,
        t.dropped_by_stage
    )?;
    if t.under_recorded > 0 {
        writeln!(
            out,
            "note: {} kept event(s) were recorded below the simulated level; their missing bodies are not counted",
            t.under_recorded
        )?;
    }
    writeln!(out, "\nvolume by rule (bytes after, bytes before):")?;
    for (rule, _, level, stats) in &rows {
        if stats.events == 0 {
            continue;
        }
        writeln!(out, "{rule} {level}")?;
        write_top(out, "users", &stats.top_users)?;
        write_top(out, "resources", &stats.top_resources)?;
        write_top(out, "verbs", &stats.top_verbs)?;
    }
    writeln!(out, "total")?;
    write_top(out, "users", &t.top_users)?;
    write_top(out, "resources", &t.top_resources)?;
    write_top(out, "verbs", &t.top_verbs)
}

fn write_row(out: &mut impl Write, rule: &str, line: &str, level: &str, s: &Stats) -> io::Result<()> {
    let saved = if s.bytes_before == 0 {
        "-".to_owned()
    } else {
        // Negative when the policy logs more than was recorded (levels only go up in name).
        format!(
            "{:.1}%",
            100.0 * (s.bytes_before as f64 - s.bytes_after as f64) / s.bytes_before as f64
        )
    };
    writeln!(
        out,
        "{rule:<6} {line:<5} {level:<15} {:>8} {:>8} {:>8} {:>12} {:>12} {saved:>7}",
        s.events, s.kept, s.dropped, s.bytes_before, s.bytes_after
    )
}

fn write_top(out: &mut impl Write, what: &str, volumes: &[kaudit_policy::Volume]) -> io::Result<()> {
    let items: Vec<String> = volumes
        .iter()
        .map(|v| {
            format!(
                "{} ({} events, {}/{} B)",
                v.name, v.events, v.bytes_after, v.bytes_before
            )
        })
        .collect();
    writeln!(out, "  {what:<10} {}", items.join(", "))
}

/// Loads the rules files (or the default rules) and describes their enabled `k8s_audit`
/// rules for the coverage analysis. `Ok(None)` when a file does not load (reported).
fn detection_rules(paths: &[PathBuf]) -> anyhow::Result<Option<Vec<DetectionRule>>> {
    let sources = if paths.is_empty() {
        vec![RuleSource::new(
            kaudit_rules::default_rules::DEFAULT_RULES_FILE,
            kaudit_rules::default_rules::DEFAULT_RULES,
        )]
    } else {
        let mut sources = Vec::new();
        for path in paths {
            let text =
                fs::read_to_string(path).with_context(|| format!("while reading {}", path.display()))?;
            sources.push(RuleSource::new(path.display().to_string(), text));
        }
        sources
    };
    let loaded = match kaudit_rules::load(&sources) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return Ok(None);
        }
    };
    Ok(Some(
        loaded
            .ruleset
            .rules()
            .iter()
            .filter(|rule| rule.enabled && rule.source == "k8s_audit")
            .map(|rule| DetectionRule {
                name: rule.name.clone(),
                condition: condition(&rule.expr),
                needs: level_of(rule.body()),
            })
            .collect(),
    ))
}

/// The audit level a field's body class needs.
fn level_of(body: Body) -> kaudit_model::Level {
    match body {
        Body::None => kaudit_model::Level::Metadata,
        Body::Request => kaudit_model::Level::Request,
        Body::Response | Body::Any => kaudit_model::Level::RequestResponse,
    }
}

/// The rules engine's expanded condition in the coverage analysis' model.
fn condition(expr: &Expr) -> Condition {
    match expr {
        Expr::And(children) => Condition::And(children.iter().map(condition).collect()),
        Expr::Or(children) => Condition::Or(children.iter().map(condition).collect()),
        Expr::Not(child) => Condition::Not(Box::new(condition(child))),
        Expr::Check { field, op, values } => Condition::Check {
            field: field.display(),
            op: check_op(*op),
            values: values.clone(),
            needs: level_of(field.body()),
        },
        Expr::Complex(check) => {
            let mut fields: Vec<&FieldRef> = vec![check.left.field()];
            if let ComplexRhs::Operand(operand) = &check.right {
                fields.push(operand.field());
            }
            let needs = fields
                .iter()
                .map(|f| level_of(f.body()))
                .max()
                .unwrap_or(kaudit_model::Level::Metadata);
            Condition::Opaque { needs }
        }
    }
}

fn check_op(op: Op) -> CheckOp {
    match op {
        Op::Eq => CheckOp::Eq,
        Op::Ne => CheckOp::Ne,
        Op::In => CheckOp::In,
        Op::Intersects => CheckOp::Intersects,
        Op::Exists => CheckOp::Exists,
        Op::StartsWith => CheckOp::StartsWith,
        Op::EndsWith => CheckOp::EndsWith,
        Op::Contains => CheckOp::Contains,
        Op::IContains => CheckOp::IContains,
        Op::Lt => CheckOp::Lt,
        Op::Le => CheckOp::Le,
        Op::Gt => CheckOp::Gt,
        Op::Ge => CheckOp::Ge,
        _ => CheckOp::Other,
    }
}

fn coverage(policy_path: &Path, rules: &[PathBuf], strict: bool, json: bool) -> anyhow::Result<ExitCode> {
    let policy = match policy_or_exit(policy_path, strict)? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    let Some(rules) = detection_rules(rules)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let report = kaudit_policy::coverage(&policy, &rules);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for rule in &report.rules {
            writeln!(out, "{}: {} (needs {})", rule.name, rule.status, rule.needs)?;
            for s in &rule.starved_by {
                let by = match (s.policy_rule, s.policy_line) {
                    (Some(index), Some(line)) if line > 0 => format!("policy rule #{index} (line {line})"),
                    (Some(index), _) => format!("policy rule #{index}"),
                    (None, _) => "no policy rule (default level None)".to_owned(),
                };
                writeln!(
                    out,
                    "  starved by {by}: {}; {} request kind(s), e.g. {}",
                    s.reason, s.requests, s.example
                )?;
            }
        }
        let count = |status: Status| report.rules.iter().filter(|r| r.status == status).count();
        writeln!(
            out,
            "\n{} rule(s): {} covered, {} partially starved, {} starved, {} never match",
            report.rules.len(),
            count(Status::Covered),
            count(Status::PartiallyStarved),
            count(Status::Starved),
            count(Status::NeverMatches)
        )?;
    }
    out.flush()?;
    let starved = report
        .rules
        .iter()
        .any(|r| matches!(r.status, Status::Starved | Status::PartiallyStarved));
    Ok(if starved {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn recommend(rules: &[PathBuf], out_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(detection) = detection_rules(rules)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let recommendation = kaudit_policy::recommend(&detection);
    let sources: Vec<String> = if rules.is_empty() {
        vec!["kaudit's default rules".to_owned()]
    } else {
        rules.iter().map(|p| p.display().to_string()).collect()
    };
    let header = format!(
        "Audit policy written by `kaudit policy recommend` for {} detection rule(s) of {}.\nIt starves none of them; check with `kaudit policy coverage`.",
        detection.len(),
        sources.join(", ")
    );
    let yaml = recommendation.to_yaml(&header);
    match out_path {
        Some(path) => fs::write(path, &yaml).with_context(|| format!("while writing {}", path.display()))?,
        None => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            out.write_all(yaml.as_bytes())?;
            out.flush()?;
        }
    }
    for problem in &recommendation.unsatisfiable {
        eprintln!("kaudit: warning: still starved: {problem}");
    }
    Ok(if recommendation.unsatisfiable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
