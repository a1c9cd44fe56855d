//! The server-administration commands against a real `kaudit serve`: `kaudit policies` and
//! `kaudit rule-files` (table and JSON output, refusals with the server's error and exit
//! code 2), with the token and server given by flags or by `KAUDIT_SERVER`/`KAUDIT_TOKEN`.

mod intake_support;

use intake_support::{ServerProcess, kaudit_command, kaudit_ok};

const RULE: &str = "- rule: Pod Deleted By Hand
  desc: a person deleted a pod
  condition: ka.verb=delete and ka.target.resource=pods and not ka.user.name startswith \"system:\"
  output: \"pod %ka.target.name deleted by %ka.user.name\"
  priority: WARNING
  source: k8s_audit
  tags: [custom]
";

/// What one command must do.
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

/// Runs `kaudit args...` against the server (through the environment variables) and checks
/// its exit code and that its outputs contain the expected texts; returns standard output.
fn check(server: &ServerProcess, token: &str, args: &[&str], expect: Expect<'_>) -> String {
    let output = kaudit_command()
        .args(args)
        .env("KAUDIT_SERVER", &server.base)
        .env("KAUDIT_TOKEN", token)
        .output()
        .expect("the kaudit binary runs");
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

#[test]
fn policies_and_rule_files_are_managed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let admin = kaudit_ok(&["token", "create", "--data-dir", &data_arg, "--role", "admin"]);
    let viewer = kaudit_ok(&["token", "create", "--data-dir", &data_arg, "--role", "viewer"]);
    let server = ServerProcess::start(&data, &[]);
    let files = dir.path();
    let good = files.join("good.yaml");
    std::fs::write(&good, RULE).unwrap();
    let broken = files.join("broken.yaml");
    std::fs::write(
        &broken,
        RULE.replace("ka.verb=delete and", "ka.verb=delete and ("),
    )
    .unwrap();
    let unknown_field = files.join("unknown.yaml");
    std::fs::write(
        &unknown_field,
        RULE.replace("ka.target.resource", "ka.target.resourcez"),
    )
    .unwrap();
    let (good, broken, unknown_field) = (
        good.display().to_string(),
        broken.display().to_string(),
        unknown_field.display().to_string(),
    );

    // Policies: the defaults, as a table and as JSON.
    check(
        &server,
        &viewer,
        &["policies", "list"],
        Expect {
            stdout: &[
                "NAME",
                "notable-events",
                "enabled",
                "all-activity",
                "disabled",
                "files: default",
            ],
            ..OK
        },
    );
    let listed = check(&server, &viewer, &["policies", "list", "--json"], OK);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // Changing needs an admin token; unknown policies are reported.
    check(
        &server,
        &viewer,
        &["policies", "enable", "all-activity"],
        Expect {
            code: 1,
            stderr: &["403", "admin"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["policies", "enable", "no-such-policy"],
        Expect {
            code: 1,
            stderr: &["404", "no-such-policy"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["policies", "enable", "all-activity"],
        Expect {
            stdout: &["policy all-activity enabled"],
            ..OK
        },
    );
    check(
        &server,
        &viewer,
        &["policies", "show", "all-activity"],
        Expect {
            stdout: &["state:        enabled", "Kubernetes API Activity", "active"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["policies", "disable", "all-activity"],
        Expect {
            stdout: &["policy all-activity disabled"],
            ..OK
        },
    );
    let shown = check(
        &server,
        &viewer,
        &["policies", "show", "notable-events", "--json"],
        OK,
    );
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["policy"]["enabled"], true);
    assert!(
        shown["rules"].as_array().is_some_and(|r| r.len() > 10),
        "the default policy holds the default rules: {shown}"
    );

    // Rule files: refusals name the file, line and column and exit with 2.
    check(
        &server,
        &admin,
        &["rule-files", "add", "mine", &broken],
        Expect {
            code: 2,
            stderr: &["refused", "mine:3:"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "add", "mine", &unknown_field],
        Expect {
            code: 2,
            stderr: &["mine:", "ka.target.resourcez"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "add", "bad name", &good],
        Expect {
            code: 2,
            stderr: &["invalid rule file name"],
            ..OK
        },
    );
    check(
        &server,
        &viewer,
        &["rule-files", "list"],
        Expect {
            stdout: &["NAME"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "replace", "mine", &good],
        Expect {
            code: 2,
            stderr: &["no rule file named mine"],
            ..OK
        },
    );
    check(
        &server,
        &viewer,
        &["rule-files", "add", "mine", &good],
        Expect {
            code: 1,
            stderr: &["403"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "add", "mine", &good],
        Expect {
            stdout: &["rule file mine added"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "add", "mine", &good],
        Expect {
            code: 2,
            stderr: &["exists"],
            ..OK
        },
    );
    // A broken replacement leaves the running file as it was.
    check(
        &server,
        &admin,
        &["rule-files", "replace", "mine", &broken],
        Expect {
            code: 2,
            stderr: &["mine:3:"],
            ..OK
        },
    );
    check(
        &server,
        &viewer,
        &["rule-files", "show", "mine"],
        Expect {
            stdout: &[
                "- rule: Pod Deleted By Hand",
                "ka.verb=delete and ka.target.resource=pods",
            ],
            ..OK
        },
    );
    let replaced = RULE.replace("priority: WARNING", "priority: ERROR");
    let replacement = files.join("replacement.yaml");
    std::fs::write(&replacement, &replaced).unwrap();
    check(
        &server,
        &admin,
        &[
            "rule-files",
            "replace",
            "mine",
            &replacement.display().to_string(),
            "--json",
        ],
        Expect {
            stdout: &["\"name\": \"mine\""],
            ..OK
        },
    );
    let shown = check(&server, &viewer, &["rule-files", "show", "mine", "--json"], OK);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["content"], replaced.as_str());
    check(
        &server,
        &viewer,
        &["rule-files", "list", "--json"],
        Expect {
            stdout: &["\"mine\""],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "remove", "mine"],
        Expect {
            stdout: &["rule file mine removed"],
            ..OK
        },
    );
    check(
        &server,
        &admin,
        &["rule-files", "remove", "mine"],
        Expect {
            code: 2,
            stderr: &["no rule file named"],
            ..OK
        },
    );
    // Flags work as well as the environment.
    let output = kaudit_command()
        .args(["policies", "list", "--server", &server.base, "--token", &viewer])
        .output()
        .unwrap();
    assert!(output.status.success());
}
