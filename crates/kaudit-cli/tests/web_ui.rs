//! The web UI in a real browser: `kaudit serve` on a temporary data directory, the real
//! webhook capture ingested, then headless Chromium (driven through ChromeDriver) signs in,
//! sees and filters the alerts, searches the activity audit, opens an event, disables a policy
//! and sees its alerts stop for new events, and uploads a rule file with an error.
//!
//! Screenshots of each page are saved under `$CARGO_TARGET_TMPDIR/ui-screenshots/`.
//! Needs Debian's `chromium` and `chromium-driver`; without them the test is skipped, except
//! under `CI=true`, where it fails.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");
const DEADLINE: Duration = Duration::from_secs(60);

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn kaudit(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kaudit"))
        .args(args)
        .output()
        .expect("run kaudit");
    assert!(
        out.status.success(),
        "kaudit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_owned()
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

/// Runs a blocking call off the async runtime's thread (the blocking HTTP client may not run
/// inside it).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("blocking call panicked"))
}

impl Api {
    fn post_events(&self, path: &str, key: &str, body: Vec<u8>) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("post events");
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        assert!(status.is_success(), "{path}: {status}: {text}");
        serde_json::from_str(&text).expect("json ack")
    }

    fn get(&self, path: &str, token: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .expect("get");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().expect("json")
    }
}

async fn wait_js(client: &Client, what: &str, script: &str) {
    let start = Instant::now();
    loop {
        if let Ok(Value::Bool(true)) = client.execute(script, vec![]).await {
            return;
        }
        if start.elapsed() > DEADLINE {
            let shown = client
                .execute(
                    "return location.hash + '\\n' + document.body.innerText.slice(0, 3000)",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!(
                "timed out waiting in the browser for {what}; the page shows:\n{}",
                shown.as_str().unwrap_or("")
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn rows_text(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for row in client
        .find_all(Locator::Css("#main tbody tr"))
        .await
        .expect("rows")
    {
        out.push(row.text().await.unwrap_or_default());
    }
    out
}

/// A copy of a stored event that raised an alert, made new: fresh auditID and times.
fn fresh_copy(event: &Value, id: &str) -> Vec<u8> {
    let mut event = event.clone();
    let now = chrono_like_now();
    event["auditID"] = json!(id);
    event["requestReceivedTimestamp"] = json!(now);
    event["stageTimestamp"] = json!(now);
    serde_json::to_vec(&event).expect("serialize event")
}

fn chrono_like_now() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    kaudit_model::format_rfc3339_nanos(nanos)
}

#[test]
fn web_ui_end_to_end() {
    let (Some(chromium), Some(chromedriver)) =
        (which(&["chromium", "chromium-browser"]), which(&["chromedriver"]))
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs chromium and chromium-driver installed"
        );
        eprintln!("skipping the web UI test: chromium or chromedriver is not installed");
        return;
    };
    let webhook_dir = Path::new(SHARED).join("samples/kube-apiserver-1.26/webhook");
    if !webhook_dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "missing {}",
            webhook_dir.display()
        );
        eprintln!("skipping the web UI test: {} is missing", webhook_dir.display());
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("utf-8 path");

    // Credentials made offline, before the server starts, as a setup script would.
    let admin = kaudit(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "ui-test",
        "--data-dir",
        data_dir,
    ]);
    let key = kaudit(&[
        "intake",
        "create",
        "--name",
        "capture",
        "--cluster",
        "lab",
        "--data-dir",
        data_dir,
    ]);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_kaudit"))
            .args([
                "serve",
                "--data-dir",
                data_dir,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kaudit serve"),
    );
    let api = Api {
        base: base.clone(),
        http: reqwest::blocking::Client::new(),
    };
    wait_until("the server's /healthz", || {
        api.http
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });

    let mut bodies: Vec<PathBuf> = std::fs::read_dir(&webhook_dir)
        .expect("webhook dir")
        .map(|e| e.expect("entry").path())
        .collect();
    bodies.sort();
    let mut stored = 0;
    for body in &bodies {
        let ack = api.post_events("/k8s-audit", &key, std::fs::read(body).expect("read body"));
        stored += ack["accepted"].as_u64().unwrap_or(0);
    }
    assert_eq!(stored, 5073, "every event of the capture is stored once");

    let driver_port = free_port();
    let mut driver = KillOnDrop(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    if let Some(out) = driver.0.stdout.take() {
        // Drain ChromeDriver's output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    }
    let profile = tempfile::tempdir().expect("chromium profile dir");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1366,900",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let start = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{driver_port}")).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(start.elapsed() < DEADLINE, "chromedriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };

        // Sign in.
        client.goto(&format!("{base}/")).await.expect("open the UI");
        wait_js(&client, "the sign-in form", "return !document.getElementById('signin').hidden").await;
        screenshot(&client, &shots, "01-sign-in").await;
        client.find(Locator::Css("#signin-token")).await.expect("token input").send_keys("not-a-token").await.expect("type");
        client.find(Locator::Css("#signin-form button[type=submit]")).await.expect("submit").click().await.expect("click");
        wait_js(&client, "the refusal of a bad token", "return !document.getElementById('signin-error').hidden").await;
        client.execute("document.getElementById('signin-token').value = ''", vec![]).await.expect("clear");
        client.find(Locator::Css("#signin-token")).await.expect("token input").send_keys(&admin).await.expect("type");
        client.find(Locator::Css("#signin-form button[type=submit]")).await.expect("submit").click().await.expect("click");

        // Events feed: the alerts of the capture are there.
        wait_js(&client, "alerts in the feed", "return document.querySelectorAll('#main tbody tr .prio').length > 0").await;
        let whoami = client.find(Locator::Css("#whoami")).await.expect("whoami").text().await.expect("text");
        assert_eq!(whoami, "admin");
        screenshot(&client, &shots, "02-events-feed").await;

        // Filter the feed to Warning and above.
        client.goto(&format!("{base}/#/feed?window=all&min_priority=warning")).await.expect("filtered feed");
        wait_js(&client, "the filtered feed", "return document.querySelectorAll('#main tbody tr .prio').length > 0 && location.hash.includes('min_priority=warning')").await;
        for row in rows_text(&client).await {
            assert!(
                ["Emergency", "Alert", "Critical", "Error", "Warning"].iter().any(|p| row.contains(p)),
                "row below Warning in a Warning filter: {row}"
            );
        }
        screenshot(&client, &shots, "03-events-feed-filtered").await;

        // Activity audit: search for a user through the form.
        client.goto(&format!("{base}/#/activity?window=all")).await.expect("activity");
        wait_js(&client, "the activity form", "return !!document.querySelector('#main form input[name=user]')").await;
        client.find(Locator::Css("#main form input[name=user]")).await.expect("user field").send_keys("alice").await.expect("type");
        client.find(Locator::Css("#main form button[type=submit]")).await.expect("search").click().await.expect("click");
        wait_js(&client, "results for alice", "return location.hash.includes('user=alice') && document.querySelectorAll('#main tbody tr').length > 0").await;
        let rows = rows_text(&client).await;
        assert!(rows.iter().all(|r| r.contains("alice")), "every row is alice's: {rows:?}");
        screenshot(&client, &shots, "04-activity-audit").await;

        // Open one event.
        client.find(Locator::Css("#main tbody tr")).await.expect("first row").click().await.expect("open event");
        wait_js(&client, "the event panel", "return !document.getElementById('panel').hidden && document.querySelector('#panel pre') !== null && document.querySelector('#panel-body').textContent.includes('alice')").await;
        screenshot(&client, &shots, "05-event").await;
        client.find(Locator::Css("#panel-close")).await.expect("close").click().await.expect("close panel");

        // Overview and intakes render with data.
        client.goto(&format!("{base}/#/overview?window=all")).await.expect("overview");
        wait_js(&client, "the overview chart", "return document.querySelector('svg.chart') !== null && document.querySelectorAll('.bar').length > 0").await;
        screenshot(&client, &shots, "06-overview").await;
        client.goto(&format!("{base}/#/intakes")).await.expect("intakes");
        wait_js(&client, "the intakes table", "return document.querySelector('#main tbody') !== null && document.querySelector('#main tbody').textContent.includes('lab')").await;
        screenshot(&client, &shots, "07-intakes").await;

        // An event that raises an alert now, as a control before disabling its policy.
        let alerts = off_runtime(|| api.get("/api/v1/alerts?limit=1&policy=notable-events", &admin));
        let first = &alerts["items"][0];
        let event = off_runtime(|| api.get(&format!("/api/v1/events/{}", first["event_id"].as_str().expect("event id")), &admin));
        let ack = off_runtime(|| api.post_events("/intake/v1/events", &key, fresh_copy(&event["event"], "ui-test-before")));
        assert!(ack["alerts"].as_u64().unwrap_or(0) >= 1, "control event raises an alert: {ack}");

        // Disable the policy in the browser.
        client.goto(&format!("{base}/#/rules?tab=policies")).await.expect("policies");
        wait_js(&client, "the policies table", "return document.querySelector('input[aria-label=\"Enable policy notable-events\"]') !== null").await;
        client.find(Locator::Css("input[aria-label=\"Enable policy notable-events\"]")).await.expect("toggle").click().await.expect("click");
        wait_js(&client, "the confirmation", "return !document.getElementById('toast').hidden && document.getElementById('toast').textContent.includes('disabled')").await;
        screenshot(&client, &shots, "08-policies").await;
        let policies = off_runtime(|| api.get("/api/v1/policies", &admin));
        let notable = policies.as_array().expect("policies").iter().find(|p| p["name"] == "notable-events").expect("notable-events");
        assert_eq!(notable["enabled"], false);
        let ack = off_runtime(|| api.post_events("/intake/v1/events", &key, fresh_copy(&event["event"], "ui-test-after")));
        assert_eq!(ack["accepted"], 1);
        assert_eq!(ack["alerts"], 0, "no alert once the policy is disabled: {ack}");

        // Upload a custom rule file with an error: the error shows with its line.
        client.goto(&format!("{base}/#/rules?tab=files&new=1")).await.expect("rule files");
        wait_js(&client, "the rule editor", "return document.querySelector('.editor textarea') !== null").await;
        let bad = "- rule: Broken rule\n  desc: a condition that does not parse\n  condition: ka.verb = create and (\n  output: broken\n  priority: WARNING\n  source: k8s_audit\n";
        client
            .execute(
                "const t = document.querySelector('.editor textarea'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));",
                vec![json!(bad)],
            )
            .await
            .expect("fill editor");
        let save = client.find(Locator::XPath("//button[contains(., 'Save and reload rules')]")).await.expect("save");
        save.click().await.expect("save click");
        wait_js(&client, "the rule error", "return document.querySelector('.editor + div .error') !== null").await;
        let error = client.find(Locator::Css(".editor + div .error")).await.expect("error").text().await.expect("text");
        assert!(error.contains("Line 3"), "the error names the line of the bad condition: {error}");
        screenshot(&client, &shots, "09-rule-file-error").await;
        let files = off_runtime(|| api.get("/api/v1/rule-files", &admin));
        assert_eq!(files.as_array().map(Vec::len), Some(0), "the refused file is not stored");

        client.close().await.expect("close browser");
    });
    eprintln!("screenshots in {}", shots.display());
}
