//! The agent DaemonSet in `deploy/` passes flags the `kaudit agent` command accepts: run with
//! the manifest's arguments (paths moved into a temporary folder) and `--check`, the command
//! gets past flag parsing and configuration validation and fails only on reaching the
//! in-cluster intake address, which does not exist here.

use std::path::Path;
use std::process::Command;

/// The `args` of the agent container, from the manifest text.
fn daemonset_args() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agent-daemonset.yaml");
    let text = std::fs::read_to_string(&path).expect("read the DaemonSet");
    let mut lines = text.lines().skip_while(|line| line.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for line in lines.by_ref() {
        let Some(arg) = line.trim().strip_prefix("- ") else {
            break;
        };
        args.push(arg.trim_matches('"').to_string());
    }
    assert!(args.len() > 3, "no args found in {}", path.display());
    args
}

#[test]
fn the_daemonset_flags_are_flags_of_kaudit_agent() {
    let work = tempfile::tempdir().expect("tempdir");
    let key = work.path().join("key");
    std::fs::write(&key, "some-key\n").expect("key");
    let mut args = daemonset_args();
    assert_eq!(args.first().map(String::as_str), Some("agent"));
    for arg in &mut args {
        let Some((name, _)) = arg.split_once('=') else {
            continue;
        };
        let moved = match name {
            "--file" => work.path().join("audit.log"),
            "--state-dir" => work.path().join("state"),
            "--intake-key-file" => key.clone(),
            _ => continue,
        };
        *arg = format!("{name}={}", moved.display());
    }
    let output = Command::new(env!("CARGO_BIN_EXE_kaudit"))
        .args(&args)
        .arg("--check")
        .env("KAUDIT_LOG", "error")
        .output()
        .expect("run kaudit agent --check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(2),
        "flags or configuration refused: {stderr}"
    );
    assert!(
        stderr.contains("intake check failed"),
        "unexpected outcome: {stderr}"
    );
}
