//! The server-administration and search commands against a real `kaudit serve`: `kaudit
//! policies` and `kaudit rule-files` (table and JSON output, refusals with the server's error
//! and exit code 2), `kaudit intake` and `kaudit token` lists and revocations (offline and
//! through the API), and `kaudit events search` and `kaudit alerts` (tables, JSON lines,
//! exact and bounded counts), with the token and server given by flags or by
//! `KAUDIT_SERVER`/`KAUDIT_TOKEN`.

mod intake_support;

use std::process::Command;
use std::time::Duration;

use intake_support::{ServerProcess, kaudit_command, kaudit_ok};
use kaudit_server::client::{BodyEncoding, IntakeClient};

const RULE: &str = "- rule: Pod Deleted By Hand
  desc: a person deleted a pod
  condition: ka.verb=delete and ka.target.resource=pods and not ka.user.name startswith \"system:\"
  output: \"pod %ka.target.name deleted by %ka.user.name\"
  priority: WARNING
  source: k8s_audit
  tags: [custom]
";

/// What one command must do.
#[derive(Clone, Copy)]
struct Expect<'a> {
    code: i32,
    stdout: &'a [&'a str],
    stderr: &'a [&'a str],
}

const OK: Expect<'static> = Expect {
    code: 0,
    stdout: &[],
    stderr: &[],
};

/// Succeeds, printing each of `stdout`.
const fn prints<'a>(stdout: &'a [&'a str]) -> Expect<'a> {
    Expect {
        code: 0,
        stdout,
        stderr: &[],
    }
}

/// Exits with `code`, saying each of `stderr`.
const fn fails<'a>(code: i32, stderr: &'a [&'a str]) -> Expect<'a> {
    Expect {
        code,
        stdout: &[],
        stderr,
    }
}

/// Runs `command args...` and checks its exit code and that its outputs contain the expected
/// texts; returns standard output.
fn run(mut command: Command, args: &[&str], expect: Expect<'_>) -> String {
    let output = command.args(args).output().expect("the kaudit binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(expect.code),
        "kaudit {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for needle in expect.stdout {
        assert!(
            stdout.contains(needle),
            "kaudit {args:?}: stdout lacks {needle:?}:\n{stdout}"
        );
    }
    for needle in expect.stderr {
        assert!(
            stderr.contains(needle),
            "kaudit {args:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
    stdout
}

/// Runs `kaudit args... --data-dir DIR`, which must succeed; returns standard output, trimmed.
fn offline_ok(data_dir: &str, args: &[&str]) -> String {
    kaudit_ok(&[args, &["--data-dir", data_dir]].concat())
}

/// `kaudit` against the server, through the environment variables, with `token`.
fn against(server: &ServerProcess, token: &str) -> Command {
    let mut command = kaudit_command();
    command
        .env("KAUDIT_SERVER", &server.base)
        .env("KAUDIT_TOKEN", token);
    command
}

/// Runs `kaudit args...` against the server and checks what it does; returns standard output.
fn check(server: &ServerProcess, token: &str, args: &[&str], expect: Expect<'_>) -> String {
    run(against(server, token), args, expect)
}

/// Runs each `(token, args, expect)` in turn against the server.
fn check_all(server: &ServerProcess, steps: &[(&str, &[&str], Expect<'_>)]) {
    for (token, args, expect) in steps {
        check(server, token, args, *expect);
    }
}

#[test]
fn policies_and_rule_files_are_managed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let admin = kaudit_ok(&["token", "create", "--data-dir", &data_arg, "--role", "admin"]);
    let viewer = kaudit_ok(&["token", "create", "--data-dir", &data_arg, "--role", "viewer"]);
    let (admin, viewer) = (admin.as_str(), viewer.as_str());
    let server = ServerProcess::start(&data, &[]);
    let files = dir.path();
    let write = |name: &str, text: &str| {
        let path = files.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let good = write("good.yaml", RULE);
    let broken = write(
        "broken.yaml",
        &RULE.replace("ka.verb=delete and", "ka.verb=delete and ("),
    );
    let unknown_field = write(
        "unknown.yaml",
        &RULE.replace("ka.target.resource", "ka.target.resourcez"),
    );
    let replaced = RULE.replace("priority: WARNING", "priority: ERROR");
    let replacement = write("replacement.yaml", &replaced);

    // Policies: the defaults as a table; changing needs an admin token; unknown policies are
    // reported.
    let defaults = [
        "NAME",
        "notable-events",
        "enabled",
        "all-activity",
        "disabled",
        "files: default",
    ];
    check_all(
        &server,
        &[
            (viewer, &["policies", "list"], prints(&defaults)),
            (
                viewer,
                &["policies", "enable", "all-activity"],
                fails(1, &["403", "admin"]),
            ),
            (
                admin,
                &["policies", "enable", "no-such-policy"],
                fails(1, &["404", "no-such-policy"]),
            ),
            (
                admin,
                &["policies", "enable", "all-activity"],
                prints(&["policy all-activity enabled"]),
            ),
            (
                viewer,
                &["policies", "show", "all-activity"],
                prints(&["state:        enabled", "Kubernetes API Activity", "active"]),
            ),
            (
                admin,
                &["policies", "disable", "all-activity"],
                prints(&["policy all-activity disabled"]),
            ),
        ],
    );
    let listed = check(&server, viewer, &["policies", "list", "--json"], OK);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let shown = check(
        &server,
        viewer,
        &["policies", "show", "notable-events", "--json"],
        OK,
    );
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["policy"]["enabled"], true);
    assert!(
        shown["rules"].as_array().is_some_and(|r| r.len() > 10),
        "the default policy holds the default rules: {shown}"
    );

    // Rule files: refusals name the file, line and column and exit with 2; a broken
    // replacement leaves the running file as it was.
    check_all(
        &server,
        &[
            (
                admin,
                &["rule-files", "add", "mine", &broken],
                fails(2, &["refused", "mine:3:"]),
            ),
            (
                admin,
                &["rule-files", "add", "mine", &unknown_field],
                fails(2, &["mine:", "ka.target.resourcez"]),
            ),
            (
                admin,
                &["rule-files", "add", "bad name", &good],
                fails(2, &["invalid rule file name"]),
            ),
            (viewer, &["rule-files", "list"], prints(&["NAME"])),
            (
                admin,
                &["rule-files", "replace", "mine", &good],
                fails(2, &["no rule file named mine"]),
            ),
            (viewer, &["rule-files", "add", "mine", &good], fails(1, &["403"])),
            (
                admin,
                &["rule-files", "add", "mine", &good],
                prints(&["rule file mine added"]),
            ),
            (
                admin,
                &["rule-files", "add", "mine", &good],
                fails(2, &["exists"]),
            ),
            (
                admin,
                &["rule-files", "replace", "mine", &broken],
                fails(2, &["mine:3:"]),
            ),
            (
                viewer,
                &["rule-files", "show", "mine"],
                prints(&[
                    "- rule: Pod Deleted By Hand",
                    "ka.verb=delete and ka.target.resource=pods",
                ]),
            ),
            (
                admin,
                &["rule-files", "replace", "mine", &replacement, "--json"],
                prints(&["\"name\": \"mine\""]),
            ),
        ],
    );
    let shown = check(&server, viewer, &["rule-files", "show", "mine", "--json"], OK);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["content"], replaced.as_str());
    check_all(
        &server,
        &[
            (viewer, &["rule-files", "list", "--json"], prints(&["\"mine\""])),
            (
                admin,
                &["rule-files", "remove", "mine"],
                prints(&["rule file mine removed"]),
            ),
            (
                admin,
                &["rule-files", "remove", "mine"],
                fails(2, &["no rule file named"]),
            ),
        ],
    );
    // Flags work as well as the environment.
    let flags = ["policies", "list", "--server", &server.base, "--token", viewer];
    run(kaudit_command(), &flags, prints(&["notable-events"]));
}

/// Intakes and tokens are listed (table and JSON) and revoked offline on a data directory and
/// through the API; a revoked one shows as such and cannot be revoked again.
#[test]
fn intakes_and_tokens_are_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let offline = |args: &[&str], expect: Expect<'_>| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &data_arg]);
        run(kaudit_command(), &all, expect)
    };
    offline(
        &["intake", "create", "--name", "edge", "--cluster", "edge-eu"],
        OK,
    );
    offline(&["token", "create", "--role", "viewer", "--name", "reader"], OK);
    let admin = offline(&["token", "create", "--role", "admin"], OK);
    let admin = admin.trim();
    let id_of = |listed: &str, name: &str| {
        let listed: serde_json::Value = serde_json::from_str(listed).unwrap();
        let found = listed
            .as_array()
            .and_then(|all| all.iter().find(|i| i["name"] == name));
        found.and_then(|i| i["id"].as_str()).unwrap().to_owned()
    };

    let intake = id_of(&offline(&["intake", "list", "--json"], OK), "edge");
    offline(
        &["intake", "list"],
        prints(&["NAME", "STATE", "edge", "edge-eu", "active", "never"]),
    );
    offline(&["intake", "revoke", &intake], OK);
    offline(&["intake", "list"], prints(&["revoked"]));
    offline(
        &["intake", "revoke", &intake],
        fails(1, &["no active intake with id"]),
    );
    offline(
        &["intake", "revoke", "seven"],
        fails(1, &["invalid intake id \"seven\""]),
    );
    offline(
        &["token", "list"],
        prints(&["ROLE", "reader", "viewer", "active"]),
    );

    let server = ServerProcess::start(&data, &[]);
    let reader = id_of(&check(&server, admin, &["token", "list", "--json"], OK), "reader");
    check_all(
        &server,
        &[
            (admin, &["intake", "list"], prints(&["edge", "revoked"])),
            (admin, &["token", "revoke", &reader], OK),
            (admin, &["token", "list"], prints(&["reader", "revoked"])),
            (admin, &["token", "revoke", "987654"], fails(1, &["404"])),
        ],
    );
}

/// `kaudit events search` and `kaudit alerts`: tables, JSON lines up to `--limit`, exact
/// counts, and counts that stop at `--count-limit` and print `N+` when more match.
#[test]
fn searches_print_matches_and_exact_or_bounded_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let key = offline_ok(
        &data_arg,
        &["intake", "create", "--name", "n", "--cluster", "search"],
    );
    let admin = offline_ok(&data_arg, &["token", "create", "--role", "admin"]);
    let admin = admin.as_str();
    let server = ServerProcess::start(&data, &[]);
    // Every event raises an alert under the activity policy.
    check(&server, admin, &["policies", "enable", "all-activity"], OK);
    let now = kaudit_server::admin::now_ns();
    let body: String = (0..12)
        .map(|i| {
            let verb = if i % 3 == 0 { "delete" } else { "get" };
            let time = kaudit_model::format_rfc3339_nanos(now - 1_000_000_000 * (12 - i));
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"search-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/p{i}","verb":"{verb}","user":{{"username":"alice"}},"objectRef":{{"resource":"pods","namespace":"default","name":"p{i}","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"{time}","stageTimestamp":"{time}"}}"#
            ) + "\n"
        })
        .collect();
    let intake = IntakeClient::new(&server.base, "/intake/v1/events", &key, Duration::from_secs(30)).unwrap();
    let ack = intake.send(body.into_bytes(), BodyEncoding::Identity).unwrap();
    assert_eq!((ack.accepted, ack.alerts), (12, 12));

    // Counts: exact by default, `N+` past --count-limit, exact at or under it.
    let counts: &[(&[&str], &str)] = &[
        (&["events", "search", "--count"], "12"),
        (&["events", "search", "--count", "--count-limit", "5"], "5+"),
        (&["events", "search", "--count", "--count-limit", "12"], "12"),
        (&["events", "search", "--count", "--count-limit", "11"], "11+"),
        (
            &[
                "events",
                "search",
                "--verb",
                "delete",
                "--count",
                "--count-limit",
                "10",
            ],
            "4",
        ),
        (&["alerts", "--count"], "12"),
        (&["alerts", "--count", "--count-limit", "3"], "3+"),
        (
            &[
                "alerts",
                "--cluster",
                "elsewhere",
                "--count",
                "--count-limit",
                "3",
            ],
            "0",
        ),
    ];
    for (args, printed) in counts {
        assert_eq!(
            check(&server, admin, args, OK).trim(),
            *printed,
            "kaudit {args:?}"
        );
    }
    check_all(
        &server,
        &[
            (
                admin,
                &["events", "search", "--count-limit", "5"],
                fails(2, &["--count"]),
            ),
            (
                admin,
                &["events", "search", "--count", "--count-limit", "0"],
                fails(1, &["400", "invalid limit"]),
            ),
            (
                admin,
                &["alerts", "--count", "--count-limit", "2000000"],
                fails(1, &["invalid limit"]),
            ),
        ],
    );

    // Matches: newest first as a table, or one JSON object per line up to --limit.
    let table = check(
        &server,
        admin,
        &["events", "search", "--verb", "delete"],
        prints(&["ID", "VERB", "RESOURCE", "OBJECT", "delete", "default/p9"]),
    );
    assert_eq!(table.lines().count(), 5, "a header and four events:\n{table}");
    let lines = check(
        &server,
        admin,
        &["events", "search", "--limit", "3", "--json"],
        OK,
    );
    let found: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let audit_ids: Vec<&str> = found.iter().filter_map(|e| e["audit_id"].as_str()).collect();
    assert_eq!(audit_ids, ["search-11", "search-10", "search-9"]);
    check(
        &server,
        admin,
        &["alerts"],
        prints(&["PRIORITY", "RULE", "search"]),
    );
    let lines = check(&server, admin, &["alerts", "--limit", "2", "--json"], OK);
    assert_eq!(lines.lines().count(), 2, "{lines}");
}
