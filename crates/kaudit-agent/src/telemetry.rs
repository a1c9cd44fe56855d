//! Every metric the agent exports, defined in one place, and their Prometheus text rendering.
//!
//! Counters end in `_total`; labels have bounded values (`reason` is one of a fixed set).
//! The same numbers back the `--check`-free health endpoint and the tests, which wait on
//! them instead of sleeping.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Metric names, so that no other module spells them.
pub mod names {
    /// Lines read from the audit log files.
    pub const LINES_READ: &str = "kaudit_agent_lines_read_total";
    /// Bytes read from the audit log files.
    pub const BYTES_READ: &str = "kaudit_agent_bytes_read_total";
    /// Lines longer than `max_line_bytes`, reported and skipped.
    pub const LINES_TOO_LONG: &str = "kaudit_agent_lines_too_long_total";
    /// Events received from the apiserver webhook and stored in the spool.
    pub const WEBHOOK_EVENTS: &str = "kaudit_agent_webhook_events_total";
    /// Webhook requests refused (auth, malformed body, spool failure).
    pub const WEBHOOK_REJECTED: &str = "kaudit_agent_webhook_rejected_total";
    /// Events cut by the scope or the policy.
    pub const EVENTS_FILTERED: &str = "kaudit_agent_events_filtered_total";
    /// Events the intake acknowledged.
    pub const EVENTS_SHIPPED: &str = "kaudit_agent_events_shipped_total";
    /// Batches the intake acknowledged.
    pub const BATCHES_SHIPPED: &str = "kaudit_agent_batches_shipped_total";
    /// Uncompressed bytes of acknowledged batches.
    pub const BYTES_SHIPPED: &str = "kaudit_agent_bytes_shipped_total";
    /// Compressed bytes sent on the wire for acknowledged batches.
    pub const BYTES_SENT: &str = "kaudit_agent_bytes_sent_total";
    /// Failed delivery attempts that will be retried.
    pub const RETRIES: &str = "kaudit_agent_retries_total";
    /// Events dropped by the agent, by reason (`spool_full`, `rejected`).
    pub const DROPPED: &str = "kaudit_agent_dropped_events_total";
    /// Loss reports of the tail: files pruned, truncated or corrupt before being read to
    /// their end.
    pub const LOST_FILES: &str = "kaudit_agent_lost_files_total";
    /// Bytes of audit log lost before the agent could read them.
    pub const LOST_BYTES: &str = "kaudit_agent_lost_bytes_total";
    /// Bytes in the spool.
    pub const SPOOL_BYTES: &str = "kaudit_agent_spool_bytes";
    /// Events in the spool, not yet acknowledged.
    pub const SPOOL_EVENTS: &str = "kaudit_agent_spool_events";
    /// Bytes written to the audit log files and not yet acknowledged by the intake.
    pub const LAG_BYTES: &str = "kaudit_agent_lag_bytes";
    /// Seconds between now and the `stageTimestamp` of the newest acknowledged event.
    pub const LAG_SECONDS: &str = "kaudit_agent_lag_seconds";
    /// 1 while the last delivery attempt succeeded, 0 while the intake is failing.
    pub const INTAKE_UP: &str = "kaudit_agent_intake_up";
}

/// The agent's counters and gauges, shared by every component.
#[derive(Debug, Default)]
pub struct Metrics {
    /// See [`names::LINES_READ`].
    pub lines_read: AtomicU64,
    /// See [`names::BYTES_READ`].
    pub bytes_read: AtomicU64,
    /// See [`names::LINES_TOO_LONG`].
    pub lines_too_long: AtomicU64,
    /// See [`names::WEBHOOK_EVENTS`].
    pub webhook_events: AtomicU64,
    /// See [`names::WEBHOOK_REJECTED`].
    pub webhook_rejected: AtomicU64,
    /// See [`names::EVENTS_FILTERED`].
    pub events_filtered: AtomicU64,
    /// See [`names::EVENTS_SHIPPED`].
    pub events_shipped: AtomicU64,
    /// See [`names::BATCHES_SHIPPED`].
    pub batches_shipped: AtomicU64,
    /// See [`names::BYTES_SHIPPED`].
    pub bytes_shipped: AtomicU64,
    /// See [`names::BYTES_SENT`].
    pub bytes_sent: AtomicU64,
    /// See [`names::RETRIES`].
    pub retries: AtomicU64,
    /// [`names::DROPPED`] with `reason="spool_full"`.
    pub dropped_spool_full: AtomicU64,
    /// [`names::DROPPED`] with `reason="rejected"`: batches the intake refused as invalid.
    pub dropped_rejected: AtomicU64,
    /// See [`names::LOST_FILES`].
    pub lost_files: AtomicU64,
    /// See [`names::LOST_BYTES`].
    pub lost_bytes: AtomicU64,
    /// See [`names::SPOOL_BYTES`].
    pub spool_bytes: AtomicU64,
    /// See [`names::SPOOL_EVENTS`].
    pub spool_events: AtomicU64,
    /// See [`names::LAG_BYTES`].
    pub lag_bytes: AtomicU64,
    /// Nanoseconds since the epoch of the newest acknowledged event's `stageTimestamp`.
    pub newest_shipped_nanos: AtomicI64,
    /// See [`names::INTAKE_UP`].
    pub intake_up: AtomicBool,
    /// False once a component stopped; `/healthz` then answers 503.
    pub healthy: AtomicBool,
}

impl Metrics {
    /// Fresh metrics of a healthy agent.
    pub fn new() -> Metrics {
        let metrics = Metrics::default();
        metrics.healthy.store(true, Ordering::Relaxed);
        metrics
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter or gauge.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Seconds between `now_nanos` and the newest acknowledged event, 0 before the first.
    pub fn lag_seconds(&self, now_nanos: i64) -> f64 {
        let newest = self.newest_shipped_nanos.load(Ordering::Relaxed);
        if newest <= 0 {
            0.0
        } else {
            (now_nanos.saturating_sub(newest)).max(0) as f64 / 1e9
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, now_nanos: i64) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 13] = [
            (
                names::LINES_READ,
                "Lines read from the audit log files.",
                &self.lines_read,
            ),
            (
                names::BYTES_READ,
                "Bytes read from the audit log files.",
                &self.bytes_read,
            ),
            (
                names::LINES_TOO_LONG,
                "Lines over max_line_bytes, reported and skipped.",
                &self.lines_too_long,
            ),
            (
                names::WEBHOOK_EVENTS,
                "Events received on the webhook and spooled.",
                &self.webhook_events,
            ),
            (
                names::WEBHOOK_REJECTED,
                "Webhook requests refused.",
                &self.webhook_rejected,
            ),
            (
                names::EVENTS_FILTERED,
                "Events cut by the scope or the policy.",
                &self.events_filtered,
            ),
            (
                names::EVENTS_SHIPPED,
                "Events acknowledged by the intake.",
                &self.events_shipped,
            ),
            (
                names::BATCHES_SHIPPED,
                "Batches acknowledged by the intake.",
                &self.batches_shipped,
            ),
            (
                names::BYTES_SHIPPED,
                "Uncompressed bytes acknowledged by the intake.",
                &self.bytes_shipped,
            ),
            (
                names::BYTES_SENT,
                "Compressed bytes of acknowledged batches.",
                &self.bytes_sent,
            ),
            (
                names::RETRIES,
                "Delivery attempts that failed and are retried.",
                &self.retries,
            ),
            (
                names::LOST_FILES,
                "Files pruned, truncated or corrupt before being read.",
                &self.lost_files,
            ),
            (
                names::LOST_BYTES,
                "Bytes pruned or truncated away before being read.",
                &self.lost_bytes,
            ),
        ];
        for (name, help, value) in counters {
            metric(
                &mut out,
                name,
                help,
                "counter",
                &[("", Metrics::get(value).to_string())],
            );
        }
        metric(
            &mut out,
            names::DROPPED,
            "Events dropped by the agent.",
            "counter",
            &[
                (
                    "reason=\"spool_full\"",
                    Metrics::get(&self.dropped_spool_full).to_string(),
                ),
                (
                    "reason=\"rejected\"",
                    Metrics::get(&self.dropped_rejected).to_string(),
                ),
            ],
        );
        let gauges: [(&str, &str, String); 5] = [
            (
                names::SPOOL_BYTES,
                "Bytes in the spool.",
                Metrics::get(&self.spool_bytes).to_string(),
            ),
            (
                names::SPOOL_EVENTS,
                "Events in the spool.",
                Metrics::get(&self.spool_events).to_string(),
            ),
            (
                names::LAG_BYTES,
                "Log bytes not yet acknowledged.",
                Metrics::get(&self.lag_bytes).to_string(),
            ),
            (
                names::LAG_SECONDS,
                "Age of the newest acknowledged event.",
                format!("{:.3}", self.lag_seconds(now_nanos)),
            ),
            (
                names::INTAKE_UP,
                "1 while deliveries succeed.",
                u8::from(self.intake_up.load(Ordering::Relaxed)).to_string(),
            ),
        ];
        for (name, help, value) in gauges {
            metric(&mut out, name, help, "gauge", &[("", value)]);
        }
        out
    }
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(&str, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}
