//! Tests of configuration layering and validation.

use super::*;

fn minimal() -> Overrides {
    Overrides {
        files: vec!["/var/log/kubernetes/apiserver/audit.log".into()],
        intake_url: Some("http://127.0.0.1:8080".into()),
        intake_key: Some(Secret::new("k-flag".into())),
        ..Overrides::default()
    }
}

/// Loads `toml` (when given) with `overrides` and returns the config or the error text.
fn load(
    toml: Option<&str>,
    overrides: Overrides,
    environment_key: Option<&str>,
) -> Result<AgentConfig, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    if let Some(text) = toml {
        std::fs::write(&path, text).expect("write");
    }
    AgentConfig::load(
        toml.map(|_| path.as_path()),
        overrides,
        environment_key.map(str::to_string),
    )
    .map_err(|err| err.to_string().replace(&dir.path().display().to_string(), "DIR"))
}

fn check_error(toml: Option<&str>, overrides: Overrides, expected: &str) {
    let err = load(toml, overrides, None).expect_err("must fail");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
}

#[test]
fn flags_alone_suffice_and_defaults_are_sane() {
    let config = load(None, minimal(), None).expect("loads");
    assert_eq!(config.intake.url, "http://127.0.0.1:8080/intake/v1/events");
    assert_eq!(config.intake.key.expose(), "k-flag");
    assert_eq!(config.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    assert_eq!(config.start_at, StartAt::Beginning);
    assert_eq!(config.batch.max_events, 1000);
    assert_eq!(config.batch.max_bytes, 1024 * 1024);
    assert_eq!(config.batch.flush_interval_ms, 1000);
    assert!(config.webhook.is_none());
}

#[test]
fn flags_override_the_file() {
    let toml = r#"
files = ["/from/file.log"]
state_dir = "state"
start_at = "end"
[intake]
url = "https://intake.example:8443/custom/path"
key = "k-file"
[batch]
max_events = 50
"#;
    let config = load(Some(toml), Overrides::default(), None).expect("loads");
    assert_eq!(config.files, vec!["/from/file.log".to_string()]);
    assert_eq!(config.intake.url, "https://intake.example:8443/custom/path");
    assert_eq!(config.intake.key.expose(), "k-file");
    assert_eq!(config.start_at, StartAt::End);
    assert_eq!(config.batch.max_events, 50);
    assert!(config.state_dir.ends_with("state") && config.state_dir.is_absolute());

    let overrides = Overrides {
        start_at: Some(StartAt::Beginning),
        batch_max_events: Some(7),
        ..minimal()
    };
    let config = load(Some(toml), overrides, None).expect("loads");
    assert_eq!(
        config.files,
        vec!["/var/log/kubernetes/apiserver/audit.log".to_string()]
    );
    assert_eq!(config.intake.key.expose(), "k-flag");
    assert_eq!(config.intake.url, "http://127.0.0.1:8080/intake/v1/events");
    assert_eq!(config.start_at, StartAt::Beginning);
    assert_eq!(config.batch.max_events, 7);
}

#[test]
fn the_intake_key_comes_from_flag_file_environment_or_config_in_that_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "k-from-file\n").expect("write");
    let with = |key: Option<&str>, file: bool| Overrides {
        intake_key: key.map(|key| Secret::new(key.into())),
        intake_key_file: file.then(|| key_file.clone()),
        ..minimal()
    };
    let toml = "[intake]\nkey = \"k-config\"\n";
    let cases = [
        (with(Some("k-flag"), true), Some("k-env"), "k-flag"),
        (with(None, true), Some("k-env"), "k-from-file"),
        (with(None, false), Some("k-env"), "k-env"),
        (with(None, false), None, "k-config"),
    ];
    for (overrides, environment, expected) in cases {
        let config = load(Some(toml), overrides, environment).expect("loads");
        assert_eq!(config.intake.key.expose(), expected);
    }
    check_error(None, with(None, false), "no intake key");
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let config = load(None, minimal(), None).expect("loads");
    let debug = format!("{config:?}");
    assert!(!debug.contains("k-flag"), "{debug}");
}

#[test]
fn mistakes_are_reported_with_their_place() {
    check_error(Some("filez = []\n"), minimal(), "agent.toml:1:1");
    check_error(Some("[batch]\nmax_events = \"x\"\n"), minimal(), "agent.toml:2:");
    check_error(Some("[batch]\nmax_events = 0\n"), minimal(), "batch.max_events");
    check_error(Some("[batch]\ngzip_level = 12\n"), minimal(), "batch.gzip_level");
    check_error(Some("[spool]\nmax_bytes = 10\n"), minimal(), "spool.max_bytes");
    check_error(
        None,
        Overrides {
            intake_url: Some("ftp://x".into()),
            ..minimal()
        },
        "intake.url",
    );
    check_error(
        None,
        Overrides {
            intake_url: None,
            ..minimal()
        },
        "no intake given",
    );
    check_error(
        None,
        Overrides {
            files: Vec::new(),
            ..minimal()
        },
        "nothing to collect",
    );
    check_error(
        None,
        Overrides {
            tls_cert: Some("c.pem".into()),
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            ..minimal()
        },
        "--tls-cert and --tls-key go together",
    );
    check_error(
        None,
        Overrides {
            tls_cert: Some("c.pem".into()),
            ..minimal()
        },
        "without an address",
    );
    check_error(
        Some("[[scope]]\nresources = [\"a/b/c\"]\n"),
        minimal(),
        "scope[0]",
    );
}

#[test]
fn the_webhook_alone_is_enough_and_reads_its_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("write");
    let overrides = Overrides {
        files: Vec::new(),
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        webhook_token_file: Some(token),
        ..minimal()
    };
    let config = load(None, overrides, None).expect("loads");
    let webhook = config.webhook.expect("webhook");
    assert_eq!(
        webhook.token.map(|token| token.expose().to_string()),
        Some("s3cret".to_string())
    );
    assert!(webhook.tls.is_none());
}
