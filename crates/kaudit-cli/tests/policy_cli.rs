//! `kaudit policy ...` end to end: exit codes, diagnostics with file:line:column, the eval
//! line format, and the simulate report on the real kube-apiserver capture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `kaudit <args>` with `stdin` as standard input.
fn kaudit(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaudit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kaudit runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    let out = child.wait_with_output().expect("kaudit finishes");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path.to_string_lossy().into_owned()
}

/// The capture, or `None` with a notice when shared/ is missing outside CI.
fn capture() -> Option<PathBuf> {
    let dir = Path::new(SHARED).join("samples/kube-apiserver-1.26");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("notice: {} not found; skipping", dir.display());
    None
}

const GOOD: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: None\n  nonResourceURLs: [\"/healthz*\"]\n- level: RequestResponse\n  users: [alice]\n  omitManagedFields: true\n- level: Metadata\n";

#[test]
fn validate_exit_codes_and_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", GOOD);
    let warned = write(
        dir.path(),
        "warned.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verb: [get]\n",
    );
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: metadata\n",
    );
    // (args, exit code, stdout contains, stderr contains)
    let cases: Vec<(Vec<&str>, i32, String, String)> = vec![
        (
            vec!["validate", &good],
            0,
            format!("{good}: ok, 3 rule(s)"),
            String::new(),
        ),
        (
            vec!["validate", &warned],
            0,
            "1 rule(s), 1 warning(s)".into(),
            format!("{warned}:5:3: warning: unknown field \"rules[0].verb\""),
        ),
        (
            vec!["validate", "--strict", &warned],
            2,
            String::new(),
            format!("{warned}:5:3: error: unknown field"),
        ),
        (
            vec!["validate", &good, &bad],
            2,
            "good.yaml: ok".into(),
            format!("{bad}:4:10: error: rules[0].level: Unsupported value: \"metadata\""),
        ),
        (vec!["eval", &bad], 2, String::new(), "Unsupported value".into()),
    ];
    for (args, code, stdout, stderr) in cases {
        let mut full = vec!["policy"];
        full.extend(&args);
        let run = kaudit(&full, "");
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stdout.contains(&stdout), "{args:?} stdout: {}", run.stdout);
        assert!(run.stderr.contains(&stderr), "{args:?} stderr: {}", run.stderr);
    }
}

#[test]
fn eval_prints_one_decision_line_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write(dir.path(), "p.yaml", GOOD);
    let events = concat!(
        r#"{"kind":"Event","auditID":"a1","stage":"ResponseComplete","requestURI":"/healthz?x=1","verb":"get","user":{"username":"alice"},"stageTimestamp":"2024-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"kind":"Event","auditID":"a2","stage":"RequestReceived","requestURI":"/api/v1/namespaces/a/pods","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"pods","namespace":"a","name":"p"},"stageTimestamp":"2024-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"kind":"Event","auditID":"a3","stage":"ResponseStarted","requestURI":"/api","verb":"get","user":{},"stageTimestamp":"2024-01-01T00:00:00Z"}"#,
        "\n",
        "not json\n",
    );
    let run = kaudit(&["policy", "eval", &policy], events);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = [
        r#"{"auditID":"a1","stage":"ResponseComplete","level":"None","omitStages":["RequestReceived"],"omitManagedFields":false,"rule":0}"#,
        r#"{"auditID":"a2","stage":"RequestReceived","level":"RequestResponse","omitStages":["RequestReceived"],"omitManagedFields":true,"rule":1}"#,
        r#"{"auditID":"a3","stage":"ResponseStarted","level":"Metadata","omitStages":["RequestReceived"],"omitManagedFields":false,"rule":2}"#,
    ];
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected);
    assert!(run.stderr.contains("-: skipped line 4"), "{}", run.stderr);
}

#[test]
fn eval_on_the_capture_gives_the_recorded_levels() {
    let Some(dir) = capture() else { return };
    let policy = dir.join("config/audit-policy.yaml");
    let log = dir.join("log/audit.log");
    let run = kaudit(
        &[
            "policy",
            "eval",
            &policy.to_string_lossy(),
            &log.to_string_lossy(),
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let recorded: Vec<String> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["level"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let evaluated: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["level"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(evaluated.len(), 478);
    assert_eq!(evaluated, recorded);
}

#[test]
fn simulate_report_on_the_capture() {
    let Some(dir) = capture() else { return };
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("log dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    logs.sort();
    let policy = dir
        .join("config/audit-policy.yaml")
        .to_string_lossy()
        .into_owned();
    let mut args = vec![
        "policy".to_owned(),
        "simulate".into(),
        "--json".into(),
        policy.clone(),
    ];
    args.extend(logs.iter().map(|p| p.to_string_lossy().into_owned()));
    let run = kaudit(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json report");
    // The policy in force reproduces the log exactly: nothing dropped, no byte changed.
    let total = &report["total"];
    assert_eq!(total["events"], 5098);
    assert_eq!(total["kept"], 5098);
    assert_eq!(total["dropped"], 0);
    assert_eq!(total["bytes_before"], total["bytes_after"]);
    assert_eq!(total["bytes_before"], 4_606_931);
    let events: Vec<u64> = report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["events"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(events, [0, 0, 663, 1911, 111, 268, 321, 93, 1731]);
    assert_eq!(total["kept_by_level"]["RequestResponse"], 700);
    assert_eq!(report["rules"][3]["top_resources"][0]["name"], "configmaps");

    // A Metadata-only policy dropping health checks: bodies go, nothing is under-recorded.
    let tmp = tempfile::tempdir().expect("tempdir");
    let metadata = write(
        tmp.path(),
        "m.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: None\n  nonResourceURLs: [\"/healthz*\", /version]\n- level: Metadata\n",
    );
    args[3] = metadata;
    let run = kaudit(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json report");
    assert_eq!(report["rules"][0]["events"], 608);
    assert_eq!(report["rules"][0]["dropped"], 608);
    assert_eq!(report["total"]["under_recorded"], 0);
    assert_eq!(
        report["total"]["kept_by_level"]["Metadata"],
        report["total"]["kept"]
    );
    let rr_received = report["rules"][1]["dropped_by_stage"].as_u64().unwrap_or(0);
    assert!(
        rr_received > 0,
        "RequestReceived events of the rules that kept them are dropped"
    );
    assert!(report["total"]["bytes_after"].as_u64() < Some(4_000_000));

    // The table names every rule and the total.
    args.retain(|a| a != "--json");
    let run = kaudit(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    assert!(run.stdout.starts_with("RULE   LINE  LEVEL"), "{}", run.stdout);
    assert!(run.stdout.contains("\ntotal "), "{}", run.stdout);
}

/// Runs `kaudit policy coverage --json` and returns (exit code, rule name -> (status,
/// [(policy rule, reason kind)])).
/// (policy rule index, reason kind) of one starvation.
type StarvedBy = (Option<u64>, String);

/// (rule name, status, starvations) of one detection rule.
type Verdict = (String, String, Vec<StarvedBy>);

fn coverage_of(policy: &str, rules: &[&str]) -> (i32, Vec<Verdict>) {
    let mut args = vec!["policy", "coverage", "--json"];
    for r in rules {
        args.push("--rules");
        args.push(r);
    }
    args.push(policy);
    let run = kaudit(&args, "");
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
    let rules = report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let by = r["starved_by"]
                .as_array()
                .expect("starved_by")
                .iter()
                .map(|s| {
                    (
                        s["policy_rule"].as_u64(),
                        s["reason"]["kind"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["status"].as_str().unwrap_or("").to_owned(),
                by,
            )
        })
        .collect();
    (run.code, rules)
}

fn upstream_rules() -> Option<String> {
    let path = Path::new(SHARED).join("conformance/falco-k8saudit/rules/k8s_audit_rules.yaml");
    if path.is_file() {
        return Some(path.to_string_lossy().into_owned());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        path.display()
    );
    eprintln!("notice: {} not found; skipping", path.display());
    None
}

#[test]
fn coverage_of_the_capture_policy() {
    let Some(dir) = capture() else { return };
    let policy = dir
        .join("config/audit-policy.yaml")
        .to_string_lossy()
        .into_owned();
    // kaudit's default rules.
    let (code, rules) = coverage_of(&policy, &[]);
    assert_eq!(code, 1, "starved rules are findings");
    let not_covered: Vec<(&str, &str, &[StarvedBy])> = rules
        .iter()
        .filter(|(_, status, _)| status != "covered")
        .map(|(n, s, b)| (n.as_str(), s.as_str(), b.as_slice()))
        .collect();
    let none = |i: u64| (Some(i), "level_none".to_owned());
    let low = |i: u64| (Some(i), "level_too_low".to_owned());
    assert_eq!(
        not_covered,
        vec![
            // /livez* and /readyz* (policy rule 2 in the file, index 1) are dropped for everyone.
            ("Anonymous Request Allowed", "partially_starved", &[none(1)][..]),
            // Secrets are pinned at Metadata (index 3): the token secret's body is not logged.
            (
                "Service Account Token Secret Created",
                "partially_starved",
                &[low(3)][..]
            ),
            ("Anonymous Request Denied", "partially_starved", &[none(1)][..]),
            ("Authentication Failed", "partially_starved", &[none(1)][..]),
        ]
    );
    assert_eq!(rules.len(), 35);

    // Falco's upstream rules.
    let Some(upstream) = upstream_rules() else { return };
    let (_, rules) = coverage_of(&policy, &[&upstream]);
    let count = |status: &str| rules.iter().filter(|(_, s, _)| s == status).count();
    assert_eq!(
        (
            rules.len(),
            count("covered"),
            count("partially_starved"),
            count("never_matches")
        ),
        (48, 40, 3, 5)
    );
    let configmap = rules
        .iter()
        .find(|(n, _, _)| n == "Create/Modify Configmap With Private Credentials")
        .expect("rule");
    assert_eq!(
        (configmap.1.as_str(), configmap.2.clone()),
        ("partially_starved", vec![low(3)])
    );

    // A Metadata catch-all starves every body rule of the upstream file.
    let tmp = tempfile::tempdir().expect("tempdir");
    let metadata = write(
        tmp.path(),
        "m.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    );
    let (_, rules) = coverage_of(&metadata, &[&upstream]);
    let starved: Vec<&str> = rules
        .iter()
        .filter(|(_, s, _)| s == "starved")
        .map(|(n, _, _)| n.as_str())
        .collect();
    assert!(
        starved.contains(&"Create Privileged Pod") && starved.contains(&"Attach to cluster-admin Role"),
        "{starved:?}"
    );
}

#[test]
fn recommended_policies_starve_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sets: Vec<Vec<String>> = vec![Vec::new()];
    if let Some(upstream) = upstream_rules() {
        sets.push(vec![upstream]);
    }
    for (i, rules) in sets.iter().enumerate() {
        let out = tmp
            .path()
            .join(format!("recommended-{i}.yaml"))
            .to_string_lossy()
            .into_owned();
        let mut args = vec!["policy", "recommend", "--out", &out];
        for r in rules {
            args.push("--rules");
            args.push(r);
        }
        let run = kaudit(&args, "");
        assert_eq!(run.code, 0, "{}", run.stderr);
        let text = std::fs::read_to_string(&out).expect("written");
        // The base: health checks dropped, secrets pinned at Metadata, RequestReceived omitted.
        assert!(
            text.contains(
                "nonResourceURLs: [\"/healthz*\", \"/livez*\", \"/readyz*\", \"/metrics\", \"/openapi*\"]"
            ),
            "{text}"
        );
        assert!(text.contains("omitStages: [\"RequestReceived\"]"), "{text}");
        assert!(
            text.contains("resources: [\"secrets\", \"configmaps\", \"serviceaccounts/token\"]"),
            "{text}"
        );
        let run = kaudit(&["policy", "validate", "--strict", &out], "");
        assert_eq!(run.code, 0, "{}", run.stderr);
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let (code, report) = coverage_of(&out, &refs);
        let bad: Vec<_> = report
            .iter()
            .filter(|(_, s, _)| s == "starved" || s == "partially_starved")
            .collect();
        assert!(bad.is_empty(), "{bad:?}\n{text}");
        assert_eq!(code, 0);
    }
}
