//! Shared helpers of the `intake_*` tests: running the `kaudit` binary with a clean
//! environment, and a `kaudit serve` process that can be killed with SIGKILL and restarted
//! on the same data directory and port, waited for through `GET /healthz`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kaudit_server::client::ApiClient;

/// The `kaudit` binary under test.
pub const KAUDIT: &str = env!("CARGO_BIN_EXE_kaudit");

/// Longest wait for any observable condition (a server becoming healthy, acknowledgements
/// arriving); far beyond what a healthy run needs, so only a hang reaches it.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// A `kaudit` command with no `KAUDIT_*` variable inherited from the caller's environment.
pub fn kaudit_command() -> Command {
    let mut command = Command::new(KAUDIT);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KAUDIT_") {
            command.env_remove(&name);
        }
    }
    command.env("RUST_LOG", "info");
    command
}

/// Runs `kaudit args...` to completion.
pub fn kaudit(args: &[&str]) -> Output {
    kaudit_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the kaudit binary runs")
}

/// Runs `kaudit args...`, which must succeed; returns its standard output, trimmed.
pub fn kaudit_ok(args: &[&str]) -> String {
    let output = kaudit(args);
    assert!(
        output.status.success(),
        "kaudit {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Calls `check` until it returns true; panics naming `what` after [`DEADLINE`].
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `kaudit serve`.
pub struct ServerProcess {
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// How many times it was started.
    pub starts: u32,
}

impl ServerProcess {
    /// Starts `kaudit serve --data-dir DIR --listen 127.0.0.1:PORT extra...` on a free port and
    /// waits until it answers `GET /healthz`. Its log goes to `DIR/../serve-N.log`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        let port = free_port();
        let mut args = vec![
            "serve".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let log = data_dir.with_extension("serve-log");
        let mut server = ServerProcess {
            child: None,
            args,
            log,
            base: format!("http://127.0.0.1:{port}"),
            starts: 0,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log");
        let child = kaudit_command()
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn kaudit serve");
        self.child = Some(child);
        let health = ApiClient::new(&self.base, None).expect("an HTTP client");
        wait_until("kaudit serve to answer /healthz", || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("kaudit serve exited with {status}:\n{}", self.log_text());
            }
            health.get::<serde_json::Value>("/healthz", &()).is_ok()
        });
    }

    /// SIGKILL, and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL kaudit serve");
            child.wait().expect("reap kaudit serve");
        }
    }

    /// Starts it again with the same flags (same data directory and port).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Everything the server printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
