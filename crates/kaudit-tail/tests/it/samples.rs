//! Replay of a real kube-apiserver 1.26 audit log directory (four rotated backups and the
//! live file, 5098 lines): every line arrives once, in rotation order, plain or compressed.

use std::fs;
use std::path::{Path, PathBuf};

use kaudit_tail::{TailConfig, Tailer};

use crate::support::{AckMode, drain, gzip_to};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/samples/kube-apiserver-1.26/log"
);

/// The sample directory, or `None` (with a notice) when it is absent outside CI.
fn sample_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(SAMPLE);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "sample directory {SAMPLE} is missing"
    );
    eprintln!("skipping: sample directory {SAMPLE} is missing");
    None
}

/// The sample's lines in name order (backups by timestamp, then `audit.log`).
fn expected_lines(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list sample")
        .map(|entry| {
            entry
                .expect("sample entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "audit.log")
        .collect();
    names.sort();
    names.push("audit.log".to_owned());
    let mut lines = Vec::new();
    for name in names {
        let text = fs::read_to_string(dir.join(name)).expect("read sample file");
        lines.extend(text.lines().filter(|line| !line.is_empty()).map(str::to_owned));
    }
    lines
}

/// Tails `include` (in `log_dir`) to the end and compares with the sample's lines.
fn check_replay(sample: &Path, include: String, max_lines: usize) {
    let state = tempfile::tempdir().expect("state dir");
    let config = TailConfig::new(vec![include.clone()], state.path().to_path_buf());
    let mut tailer = Tailer::open(config).expect("open tailer");
    let drained = drain(&mut tailer, max_lines, AckMode::EachBatch);
    let expected = expected_lines(sample);
    assert_eq!(expected.len(), 5098);
    assert_eq!(drained.lines.len(), expected.len(), "line count for {include}");
    assert!(drained.lines == expected, "lines differ for {include}");
    assert_eq!(drained.notable_events(), Vec::<String>::new(), "{include}");
    // Restarting finds nothing new.
    drop(tailer);
    let mut again = Tailer::open(TailConfig::new(vec![include.clone()], state.path().to_path_buf()))
        .expect("reopen tailer");
    let drained = drain(&mut again, max_lines, AckMode::EachBatch);
    assert_eq!(
        drained.lines.len(),
        0,
        "lines delivered again after a restart for {include}"
    );
}

#[test]
fn replay_of_real_rotated_files_delivers_every_line_once_in_order() {
    let Some(dir) = sample_dir() else {
        return;
    };
    check_replay(&dir, dir.join("audit.log").display().to_string(), 1000);
    check_replay(&dir, dir.join("*.log").display().to_string(), 7);
}

#[test]
fn replay_with_compressed_backups_delivers_every_line_once_in_order() {
    let Some(dir) = sample_dir() else {
        return;
    };
    let copy = tempfile::tempdir().expect("copy dir");
    for entry in fs::read_dir(&dir).expect("list sample") {
        let path = entry.expect("sample entry").path();
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        if name == "audit.log" {
            fs::copy(&path, copy.path().join(&name)).expect("copy live file");
        } else {
            gzip_to(&path, &copy.path().join(format!("{name}.gz")));
        }
    }
    check_replay(&dir, copy.path().join("audit.log").display().to_string(), 500);
}
