//! Alert outputs: standard output and files (Falco JSON alerts, one per line), HTTP
//! webhooks, Slack-compatible webhooks and syslog (RFC 5424 over UDP or TCP).
//!
//! Every output runs as its own task behind a bounded queue, so a slow or unreachable output
//! never slows intake: when its queue is full, alerts for it are dropped and counted (a
//! warning is logged). Alerts are sent after their batch is committed; an output is a
//! notification, the database is the record.
//!
//! Each output has a minimum priority and a deduplication window: identical alerts (same
//! rule and same message) reaching the same output within the window are counted, not
//! repeated. When the window closes, the last of them is sent once more with
//! `"repeated": N`, the number of copies that were held back.

mod format;
mod sinks;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kaudit_model::Priority;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{OutputConfig, OutputKind};

pub use format::{falco_json, text_line};

/// An alert as the outputs see it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputAlert {
    /// The event's time, ns since the epoch.
    pub time_ns: i64,
    /// Rule name.
    pub rule: String,
    /// Rule priority.
    pub priority: Priority,
    /// Policy that raised it.
    pub policy: String,
    /// Rendered output message (without the time and priority prefix).
    pub message: String,
    /// Output fields.
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Cluster of the event.
    pub cluster: String,
    /// Identical copies held back by deduplication before this one was sent (0 normally).
    pub repeated: u64,
}

/// Queue length of one output.
const QUEUE_ALERTS: usize = 10_000;

/// The running outputs.
pub struct Outputs {
    outputs: Vec<Handle>,
}

struct Handle {
    name: String,
    min_priority: Priority,
    sender: mpsc::Sender<Arc<OutputAlert>>,
    dropped: Arc<AtomicU64>,
}

/// The output tasks, to wait for at shutdown once every [`Outputs`] handle is dropped.
pub struct OutputTasks {
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl OutputTasks {
    /// Waits (at most `grace`) for the outputs to deliver what they hold; their queues close
    /// when the [`Outputs`] is dropped.
    pub async fn join(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(output = %name, "alert output still busy at shutdown, pending alerts dropped");
                task.abort();
            }
        }
    }
}

impl Outputs {
    /// No outputs.
    pub fn none() -> Outputs {
        Outputs { outputs: Vec::new() }
    }

    /// Starts one task per configured output. Must be called inside a tokio runtime.
    pub fn start(
        configs: &[OutputConfig],
        dedupe_window: Duration,
        hostname: &str,
    ) -> anyhow::Result<(Outputs, OutputTasks)> {
        let mut outputs = Vec::new();
        let mut tasks = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let min_priority = match &config.min_priority {
                Some(p) => p.parse().map_err(|e| anyhow::anyhow!("outputs[{i}]: {e}"))?,
                None => Priority::Debug,
            };
            let sink = sinks::Sink::new(&config.kind, hostname)
                .map_err(|e| anyhow::anyhow!("outputs[{i}]: {e:#}"))?;
            let name = format!("{}#{i}", kind_name(&config.kind));
            let (sender, receiver) = mpsc::channel(QUEUE_ALERTS);
            let task = tokio::spawn(run_output(name.clone(), sink, receiver, dedupe_window));
            tasks.push((name.clone(), task));
            outputs.push(Handle {
                name,
                min_priority,
                sender,
                dropped: Arc::new(AtomicU64::new(0)),
            });
        }
        Ok((Outputs { outputs }, OutputTasks { tasks }))
    }

    /// Hands alerts to every output whose minimum priority they reach. Never waits.
    pub fn send(&self, alerts: &[Arc<OutputAlert>]) {
        for output in &self.outputs {
            for alert in alerts {
                if !alert.priority.at_least(output.min_priority) {
                    continue;
                }
                if output.sender.try_send(Arc::clone(alert)).is_err() {
                    let n = output.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(output = %output.name, dropped_total = n, "alert output queue full, alerts dropped");
                    }
                }
            }
        }
    }

    /// True when no output is configured.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }
}

fn kind_name(kind: &OutputKind) -> &'static str {
    match kind {
        OutputKind::Stdout {} => "stdout",
        OutputKind::File { .. } => "file",
        OutputKind::Webhook { .. } => "webhook",
        OutputKind::Slack { .. } => "slack",
        OutputKind::Syslog { .. } => "syslog",
    }
}

/// Holds back repeats of identical alerts within a window.
struct Dedupe {
    window: Duration,
    open: HashMap<(String, String), Held>,
}

struct Held {
    opened: Instant,
    held_back: u64,
    last: Arc<OutputAlert>,
}

impl Dedupe {
    fn new(window: Duration) -> Dedupe {
        Dedupe {
            window,
            open: HashMap::new(),
        }
    }

    /// True when the alert is to be sent now; false when it is a repeat within the window.
    fn admit(&mut self, alert: &Arc<OutputAlert>, now: Instant) -> bool {
        if self.window.is_zero() {
            return true;
        }
        let key = (alert.rule.clone(), alert.message.clone());
        match self.open.get_mut(&key) {
            Some(held) if now.duration_since(held.opened) < self.window => {
                held.held_back += 1;
                held.last = Arc::clone(alert);
                false
            }
            _ => {
                self.open.insert(
                    key,
                    Held {
                        opened: now,
                        held_back: 0,
                        last: Arc::clone(alert),
                    },
                );
                true
            }
        }
    }

    /// Closes the windows that are over; returns a summary alert for each that held repeats.
    fn expire(&mut self, now: Instant) -> Vec<OutputAlert> {
        let mut summaries = Vec::new();
        let window = self.window;
        self.open.retain(|_, held| {
            if now.duration_since(held.opened) < window {
                return true;
            }
            if held.held_back > 0 {
                let mut summary = (*held.last).clone();
                summary.repeated = held.held_back;
                summaries.push(summary);
            }
            false
        });
        summaries
    }
}

async fn run_output(
    name: String,
    mut sink: sinks::Sink,
    mut receiver: mpsc::Receiver<Arc<OutputAlert>>,
    window: Duration,
) {
    let mut dedupe = Dedupe::new(window);
    let tick = if window.is_zero() {
        Duration::from_secs(3600)
    } else {
        window.min(Duration::from_secs(5))
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = receiver.recv() => {
                let Some(alert) = received else { break };
                if dedupe.admit(&alert, Instant::now()) {
                    sink.deliver(&name, &alert).await;
                }
            }
            _ = ticker.tick() => {
                for summary in dedupe.expire(Instant::now()) {
                    sink.deliver(&name, &summary).await;
                }
            }
        }
    }
    // Shutting down: flush the counts of windows still open.
    let far_future = Instant::now() + window + Duration::from_secs(1);
    for summary in dedupe.expire(far_future) {
        sink.deliver(&name, &summary).await;
    }
    sink.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, message: &str) -> Arc<OutputAlert> {
        Arc::new(OutputAlert {
            time_ns: 0,
            rule: rule.into(),
            priority: Priority::Warning,
            policy: "p".into(),
            message: message.into(),
            output_fields: serde_json::Map::new(),
            tags: vec![],
            cluster: "c".into(),
            repeated: 0,
        })
    }

    #[test]
    fn identical_alerts_are_counted_within_the_window() {
        let start = Instant::now();
        let mut dedupe = Dedupe::new(Duration::from_secs(60));
        let sent: Vec<bool> = [("r", "m"), ("r", "m"), ("r", "other"), ("r2", "m"), ("r", "m")]
            .iter()
            .map(|(r, m)| dedupe.admit(&alert(r, m), start + Duration::from_secs(1)))
            .collect();
        assert_eq!(sent, [true, false, true, true, false]);
        assert!(dedupe.expire(start + Duration::from_secs(30)).is_empty());
        let summaries = dedupe.expire(start + Duration::from_secs(62));
        assert_eq!(summaries.len(), 1);
        assert_eq!((summaries[0].rule.as_str(), summaries[0].repeated), ("r", 2));
        assert!(dedupe.admit(&alert("r", "m"), start + Duration::from_secs(63)));
    }

    #[test]
    fn a_zero_window_sends_everything() {
        let mut dedupe = Dedupe::new(Duration::ZERO);
        assert!(dedupe.admit(&alert("r", "m"), Instant::now()));
        assert!(dedupe.admit(&alert("r", "m"), Instant::now()));
    }
}
