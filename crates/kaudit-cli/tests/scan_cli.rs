//! `kaudit scan` and `kaudit rules check` as a user runs them: which rules run (default pack,
//! `--rules` files, the selection flags in command-line order, minimum priority, first or all
//! matches), what is printed (text lines, Falco JSON alerts, the summary on standard error),
//! how inputs are read (files and directories in order, standard input, gzip, documents,
//! lines that are not events) and how load errors end the run (file:line:column, caret,
//! status 2).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kaudit_rules::default_rules::{DEFAULT_RULES, DEFAULT_RULES_FILE};
use kaudit_rules::{RuleSource, load};

const KAUDIT: &str = env!("CARGO_BIN_EXE_kaudit");
/// One event per default rule that fires it first (`rules/tests/fires/*.jsonl`).
const FIRES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/tests/fires");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kaudit(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(KAUDIT)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kaudit: {e}"));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .unwrap_or_else(|e| panic!("cannot write to kaudit: {e}"));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kaudit did not finish: {e}"));
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The rule of each JSON alert printed, in order.
fn alert_rules(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .map(|line| {
            let alert: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            alert["rule"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// The default rules with their tags and priorities, from the library.
fn default_rules() -> Vec<(String, Vec<String>, kaudit_model::Priority)> {
    let loaded = load(&[RuleSource::new(DEFAULT_RULES_FILE, DEFAULT_RULES)])
        .unwrap_or_else(|e| panic!("default rules: {e}"));
    loaded
        .ruleset
        .rules()
        .iter()
        .map(|r| (r.name.clone(), r.tags.clone(), r.priority))
        .collect()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

// ---------------------------------------------------------------------------------------
// Rule selection
// ---------------------------------------------------------------------------------------

/// Scanning the fixtures that fire every default rule with `flags` raises exactly the rules
/// `keep` accepts (given name, tags, priority).
fn check_selection(flags: &[&str], keep: impl Fn(&str, &[String], kaudit_model::Priority) -> bool) {
    let mut args = vec!["scan", "--json"];
    args.extend_from_slice(flags);
    args.push(FIRES);
    let run = kaudit(&args, None);
    assert_eq!(run.code, 0, "{flags:?}: {}", run.stderr);
    let got: BTreeSet<String> = alert_rules(&run).into_iter().collect();
    let want: BTreeSet<String> = default_rules()
        .into_iter()
        .filter(|(n, t, p)| keep(n, t, *p))
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(got, want, "rules alerting with {flags:?}");
}

#[test]
fn without_flags_every_default_rule_runs() {
    check_selection(&[], |_, _, _| true);
}

#[test]
fn selection_flags_apply_in_command_line_order() {
    let has = |tags: &[String], tag: &str| tags.iter().any(|t| t == tag);
    check_selection(&["--disable-rule", "*", "--enable-tag", "k8s_rbac"], |_, t, _| {
        has(t, "k8s_rbac")
    });
    check_selection(&["--enable-tag", "k8s_rbac", "--disable-rule", "*"], |_, _, _| {
        false
    });
    check_selection(&["--disable-tag", "k8s_activity"], |_, t, _| {
        !has(t, "k8s_activity")
    });
    check_selection(&["--disable-rule", "Secret*"], |n, _, _| !n.starts_with("Secret"));
    check_selection(
        &["--disable-rule", "*", "--enable-rule", "Exec Or Attach To Pod"],
        |n, _, _| n == "Exec Or Attach To Pod",
    );
    check_selection(
        &[
            "--disable-tag",
            "k8s_workload",
            "--enable-rule",
            "HostPID*",
            "--disable-tag",
            "k8s_identity",
        ],
        |n, t, _| (!has(t, "k8s_workload") || n.starts_with("HostPID")) && !has(t, "k8s_identity"),
    );
}

#[test]
fn min_priority_keeps_the_more_severe_rules() {
    use kaudit_model::Priority;
    check_selection(&["--min-priority", "warning"], |_, _, p| {
        p.at_least(Priority::Warning)
    });
    check_selection(&["--min-priority", "CRITICAL"], |_, _, p| {
        p.at_least(Priority::Critical)
    });
    check_selection(&["--min-priority", "info"], |_, _, _| true);
    let run = kaudit(&["scan", "--min-priority", "loud", FIRES], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn all_matches_reports_every_matching_rule_in_rule_order() {
    let dir = temp_dir();
    // A privileged pod with host namespaces and a hostPath on /: several rules match.
    let fixture = std::fs::read_to_string(Path::new(FIRES).join("privileged_workload_created.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    let first_line = fixture.lines().next().unwrap_or_default();
    let input = write(dir.path(), "pod.jsonl", first_line.as_bytes());
    let input = input.to_string_lossy();
    let first = alert_rules(&kaudit(&["scan", "--json", &input], None));
    assert_eq!(first, ["Privileged Workload Created"]);
    let all = alert_rules(&kaudit(&["scan", "--json", "--all-matches", &input], None));
    assert_eq!(
        all,
        [
            "Privileged Workload Created",
            "Sensitive HostPath Workload Created",
            "HostPID Workload Created",
            "Dangerous Capabilities Workload Created",
            "HostIPC Workload Created",
            "HostNetwork Workload Created",
            "Pod Created",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Rules files and load errors
// ---------------------------------------------------------------------------------------

const EXEC_RULE: &str = r#"
- rule: Exec
  desc: exec into a pod
  condition: ka.target.subresource=exec and ka.stage=ResponseStarted
  output: exec by %ka.user.name into %ka.target.name
  priority: WARNING
  source: k8s_audit
  tags: [k8s, local]
"#;

#[test]
fn rules_files_load_in_order_into_one_rule_set() {
    let dir = temp_dir();
    let base = write(dir.path(), "base.yaml", EXEC_RULE.as_bytes());
    let local = write(
        dir.path(),
        "local.yaml",
        b"- rule: Exec\n  output: shell for %ka.user.name in %ka.target.namespace/%ka.target.name\n  override:\n    output: replace\n",
    );
    let input = Path::new(FIRES).join("exec_or_attach_to_pod.jsonl");
    let run = kaudit(
        &[
            "scan",
            "--rules",
            &base.to_string_lossy(),
            "--rules",
            &local.to_string_lossy(),
            &input.to_string_lossy(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[0].ends_with(": Warning shell for alice in team-a/priv-pod"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(": Warning shell for bob in team-a/web-0"),
        "{}",
        lines[1]
    );
    assert!(
        lines[0].starts_with("2026-"),
        "text alerts start with the event time: {}",
        lines[0]
    );
}

/// A rules file that does not load stops `scan` and `rules check` with status 2 and a message
/// naming the place, with the offending line and a caret.
fn check_load_error(rules: &str, place: &str, message: &str) {
    let dir = temp_dir();
    let path = write(dir.path(), "bad.yaml", rules.as_bytes());
    let path = path.to_string_lossy();
    for args in [
        vec!["scan", "--rules", &path, FIRES],
        vec!["rules", "check", &path],
    ] {
        let run = kaudit(&args, None);
        assert_eq!(run.code, 2, "{args:?} should fail to load:\n{}", run.stderr);
        assert!(
            run.stdout.is_empty(),
            "{args:?} printed alerts or rules:\n{}",
            run.stdout
        );
        let located = format!("{path}:{place}");
        assert!(
            run.stderr.contains(&located),
            "{args:?}: no {located} in:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(message),
            "{args:?}: no '{message}' in:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.lines().any(|l| l.trim_start().contains('^')),
            "{args:?}: no caret in:\n{}",
            run.stderr
        );
    }
}

#[test]
fn load_errors_name_file_line_and_column_and_exit_2() {
    check_load_error("- rule: x\n  desc: a: b\n", "2:", "mapping values");
    check_load_error(
        &EXEC_RULE.replace("ka.target.subresource", "ka.target.subresourse"),
        "4:",
        "subresourse",
    );
    check_load_error(
        &EXEC_RULE.replace("ka.stage=ResponseStarted", "not_a_macro"),
        "4:",
        "not_a_macro",
    );
    check_load_error(
        &EXEC_RULE.replace("%ka.user.name", "%ka.user.nam"),
        "5:",
        "ka.user.nam",
    );
}

#[test]
fn an_unreadable_rules_file_exits_2() {
    let run = kaudit(&["scan", "--rules", "/nonexistent/rules.yaml", FIRES], None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/rules.yaml"), "{}", run.stderr);
}

#[test]
fn rules_check_lists_rules_with_priority_source_state_and_fields() {
    let run = kaudit(&["rules", "check"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rules = default_rules();
    for (name, _, priority) in &rules {
        let lines: Vec<&str> = run.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        let details = lines.get(at + 1).copied().unwrap_or_default();
        assert!(
            details.contains(&format!("priority: {}", priority.falco_name())),
            "{details}"
        );
        assert!(
            details.contains("source: k8s_audit") && details.contains("enabled: yes"),
            "{details}"
        );
        assert!(details.contains(&format!("{DEFAULT_RULES_FILE}:")), "{details}");
        let fields = lines[at..]
            .iter()
            .find(|l| l.trim_start().starts_with("fields:"))
            .copied()
            .unwrap_or_default();
        assert!(
            fields.contains("ka.verb") || fields.contains("ka.response.code"),
            "{name}: {fields}"
        );
    }
    assert!(
        run.stdout
            .contains(&format!("{} rules ({} enabled)", rules.len(), rules.len())),
        "{}",
        run.stdout
    );
    let dir = temp_dir();
    let file = write(dir.path(), "exec.yaml", EXEC_RULE.as_bytes());
    let run = kaudit(&["rules", "check", &file.to_string_lossy()], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("Exec\n  priority: Warning  source: k8s_audit  enabled: yes"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("fields: ka.target.subresource, ka.stage, ka.user.name, ka.target.name"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

#[test]
fn json_alerts_have_falcos_shape() {
    let run = kaudit(&["scan", "--json", FIRES], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let priorities = [
        "Emergency",
        "Alert",
        "Critical",
        "Error",
        "Warning",
        "Notice",
        "Informational",
        "Debug",
    ];
    let mut n = 0;
    for line in run.stdout.lines() {
        n += 1;
        let alert: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let keys: Vec<&str> = alert
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "hostname",
                "output",
                "output_fields",
                "priority",
                "rule",
                "source",
                "tags",
                "time"
            ]
        );
        let priority = alert["priority"].as_str().unwrap_or_default();
        assert!(priorities.contains(&priority), "{priority}");
        assert_eq!(alert["source"], "k8s_audit");
        let output = alert["output"].as_str().unwrap_or_default();
        assert!(output.contains(&format!(": {priority} ")), "{output}");
        assert!(alert["output_fields"]["evt.time"].is_u64(), "{line}");
        assert!(alert["output_fields"]["ka.verb"].is_string() || alert["output_fields"]["ka.verb"].is_null());
        assert!(
            alert["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "k8s")),
            "{line}"
        );
        let time = alert["time"].as_str().unwrap_or_default();
        assert!(time.len() == 30 && time.ends_with('Z'), "{time}");
    }
    assert!(n >= default_rules().len(), "{n} alerts");
}

#[test]
fn the_summary_counts_events_skipped_lines_and_alerts_per_rule() {
    let dir = temp_dir();
    let exec =
        std::fs::read_to_string(Path::new(FIRES).join("exec_or_attach_to_pod.jsonl")).unwrap_or_default();
    let mut lines: Vec<&str> = exec.lines().collect();
    lines.insert(1, "this is not JSON");
    lines.insert(3, r#"{"kind":"Pod","apiVersion":"v1"}"#);
    let input = write(dir.path(), "mixed.log", (lines.join("\n") + "\n").as_bytes());
    let run = kaudit(&["scan", &input.to_string_lossy()], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().count(),
        3,
        "every event after a bad line is still read:\n{}",
        run.stdout
    );
    let name = input.to_string_lossy();
    for expected in [
        "3 events read from 1 input".to_owned(),
        "2 lines or items skipped".to_owned(),
        format!("{name}:2: cannot parse JSON"),
        format!("{name}:4: data not recognized as a k8s audit event"),
        "3 alerts".to_owned(),
        "3  Exec Or Attach To Pod".to_owned(),
        "events/s".to_owned(),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "no '{expected}' in:\n{}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// An exec event into `pod`, which the default rules report with the pod's name.
fn exec_event(pod: &str) -> String {
    let fixture =
        std::fs::read_to_string(Path::new(FIRES).join("exec_or_attach_to_pod.jsonl")).unwrap_or_default();
    fixture
        .lines()
        .next()
        .unwrap_or_default()
        .replace("priv-pod", pod)
        + "\n"
}

fn pods_in_order(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter_map(|l| l.split(" pod=").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn files_are_read_in_the_order_given_and_directories_in_name_order() {
    let dir = temp_dir();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap_or_else(|e| panic!("{e}"));
    // The live file and two rotated backups, as the apiserver's log backend names them.
    write(&logs, "audit.log", exec_event("live").as_bytes());
    write(
        &logs,
        "audit-2026-11-21T08-24-44.865.log",
        exec_event("second").as_bytes(),
    );
    write(
        &logs,
        "audit-2026-11-21T08-22-32.605.log",
        exec_event("first").as_bytes(),
    );
    let a = write(dir.path(), "a.log", exec_event("a").as_bytes());
    let b = write(dir.path(), "b.log", exec_event("b").as_bytes());
    let run = kaudit(
        &[
            "scan",
            &b.to_string_lossy(),
            &logs.to_string_lossy(),
            &a.to_string_lossy(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(pods_in_order(&run), ["b", "first", "second", "live", "a"]);
}

#[test]
fn standard_input_gzip_and_documents_are_inputs_too() {
    let dir = temp_dir();
    let plain = exec_event("plain");
    let run = kaudit(&["scan"], Some(plain.as_bytes()));
    assert_eq!(pods_in_order(&run), ["plain"], "{}", run.stderr);
    let run = kaudit(&["scan", "-"], Some(exec_event("dash").as_bytes()));
    assert_eq!(pods_in_order(&run), ["dash"], "{}", run.stderr);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(exec_event("zipped").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let gz = gz.finish().unwrap_or_else(|e| panic!("{e}"));
    let path = write(dir.path(), "audit-2026-11-21T08-22-32.605.log.gz", &gz);
    let run = kaudit(&["scan", &path.to_string_lossy()], None);
    assert_eq!(pods_in_order(&run), ["zipped"], "{}", run.stderr);

    // A webhook body: a pretty-printed EventList whose items have no kind.
    let item = |pod: &str| {
        let mut event: serde_json::Value = serde_json::from_str(&exec_event(pod)).unwrap_or_default();
        if let Some(o) = event.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
        }
        event
    };
    let body = serde_json::json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": [item("one"), item("two")],
    });
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    let path = write(dir.path(), "0001.json", text.as_bytes());
    let run = kaudit(&["scan", &path.to_string_lossy()], None);
    assert_eq!(pods_in_order(&run), ["one", "two"], "{}", run.stderr);
}

#[test]
fn a_missing_input_is_reported_and_the_others_are_read() {
    let dir = temp_dir();
    let good = write(dir.path(), "good.log", exec_event("good").as_bytes());
    let run = kaudit(&["scan", "/nonexistent/audit.log", &good.to_string_lossy()], None);
    assert_eq!(run.code, 1);
    assert_eq!(pods_in_order(&run), ["good"]);
    assert!(run.stderr.contains("/nonexistent/audit.log"), "{}", run.stderr);
}

#[test]
fn threads_give_the_same_alerts_in_the_same_order() {
    let dir = temp_dir();
    let log = dir.path().join("bench.log");
    // About 14 MB: several chunks for the threads to share.
    let run = kaudit(
        &[
            "bench",
            "generate",
            "--events",
            "12000",
            "--seed",
            "7",
            "--out",
            &log.to_string_lossy(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = log.to_string_lossy();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/kaudit_rules.yaml");
    for extra in [vec![], vec!["--all-matches"], vec!["--json", "--rules", rules]] {
        let mut outputs = BTreeMap::new();
        for threads in ["1", "2", "3"] {
            let mut args = vec!["scan", "--threads", threads];
            args.extend_from_slice(&extra);
            args.push(&log);
            let run = kaudit(&args, None);
            assert_eq!(run.code, 0, "{}", run.stderr);
            let alerts = run
                .stderr
                .lines()
                .find(|l| l.ends_with(" alerts"))
                .unwrap_or_default()
                .to_owned();
            outputs.insert(threads, (run.stdout, alerts));
        }
        let (one, summary) = &outputs["1"];
        assert!(one.lines().count() > 100, "{summary}");
        for threads in ["2", "3"] {
            assert!(
                outputs[threads].0 == *one,
                "--threads {threads} {extra:?} changed the alerts"
            );
            assert_eq!(outputs[threads].1, *summary);
        }
    }
}

#[test]
fn bench_generate_is_deterministic() {
    let dir = temp_dir();
    let write_log = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let run = kaudit(
            &[
                "bench",
                "generate",
                "--events",
                "2000",
                "--seed",
                seed,
                "--out",
                &path.to_string_lossy(),
            ],
            None,
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        std::fs::read(&path).unwrap_or_default()
    };
    let a = write_log("a.log", "3");
    assert_eq!(a, write_log("b.log", "3"));
    assert_ne!(a, write_log("c.log", "4"));
    let text = String::from_utf8(a).unwrap_or_default();
    let lines = text.lines().count();
    assert_eq!(lines, 2000);
    let mean = text.len() / lines;
    assert!((1000..1500).contains(&mean), "{mean} bytes per event");
    // Every line is an audit event.
    let run = kaudit(&["scan", "--min-priority", "emergency"], Some(text.as_bytes()));
    assert!(run.stderr.contains("2000 events read"), "{}", run.stderr);
    assert!(!run.stderr.contains("skipped"), "{}", run.stderr);
}
