//! The intake pipeline for one batch: parse → digest → detect → rows for one atomic
//! `insert_batch`.
//!
//! Everything here is CPU-bound and blocking: the intake handler runs it on the blocking
//! pool. A batch with any piece that is not a usable audit event is refused whole, naming
//! the first bad position, so a client never has to guess which part was stored.

use std::sync::Arc;

use kaudit_model::{AuditEvent, Level, Located, Skip, Stage, read_input};
use kaudit_store::{AlertFields, EventFields, Intake, NewAlert, NewEvent, event_digest};

use crate::detect::Detector;
use crate::outputs::OutputAlert;

/// Why a batch is refused (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(pub String);

/// A parsed and evaluated batch, ready for `insert_batch`.
#[derive(Debug, Default)]
pub struct PreparedBatch {
    /// One row per event, in input order.
    pub events: Vec<NewEvent>,
    /// The alerts, each naming its event's index.
    pub alerts: Vec<NewAlert>,
    /// The same alerts for the outputs, index-aligned with `alerts`.
    pub output_alerts: Vec<Arc<OutputAlert>>,
}

/// Parses a decoded body and runs detection on each event. `intake` stamps the cluster.
pub fn prepare(
    body: &[u8],
    intake: &Intake,
    detector: &Detector,
    received_ns: i64,
) -> Result<PreparedBatch, BatchError> {
    check_nesting(body)?;
    // Each event is turned into rows as the reader hands it over (no list of parsed events
    // is kept); the batch is refused afterwards if any piece was skipped.
    let mut batch = PreparedBatch {
        events: Vec::with_capacity(body.len() / 1024 + 1),
        ..PreparedBatch::default()
    };
    let mut first_skip: Option<Skip> = None;
    let mut first_refusal: Option<BatchError> = None;
    read_input(
        body,
        |item| {
            if first_refusal.is_some() {
                return;
            }
            if let Err(refusal) = add_event(&mut batch, &item, intake, detector, received_ns) {
                first_refusal = Some(refusal);
            }
        },
        |skip| {
            if first_skip.is_none() {
                first_skip = Some(skip);
            }
        },
    );
    // A skipped piece anywhere is named before an unusable event.
    if let Some(skip) = first_skip {
        return Err(BatchError(format!("{skip}; nothing of this batch was stored")));
    }
    match first_refusal {
        Some(refusal) => Err(refusal),
        None => Ok(batch),
    }
}

/// Adds one event's row and its alerts to `batch`.
fn add_event(
    batch: &mut PreparedBatch,
    item: &Located<'_>,
    intake: &Intake,
    detector: &Detector,
    received_ns: i64,
) -> Result<(), BatchError> {
    let fields = event_fields(&item.event, item.time_nanos, intake, received_ns).map_err(|reason| {
        BatchError(format!(
            "{}: {reason}; nothing of this batch was stored",
            item.position
        ))
    })?;
    let event_index = batch.events.len();
    for detection in detector.detect(item) {
        let alert = AlertFields {
            time_ns: item.time_nanos,
            rule: detection.rule,
            priority: detection.priority,
            output: detection.message,
            output_fields_json: serde_json::Value::Object(detection.output_fields.clone()).to_string(),
            tags: detection.tags,
            policy: detection.policy,
            cluster: fields.cluster.clone(),
            namespace: fields.namespace.clone(),
            username: fields.username.clone(),
            source: "k8s_audit".to_owned(),
        };
        batch.output_alerts.push(Arc::new(OutputAlert {
            time_ns: alert.time_ns,
            rule: alert.rule.clone(),
            priority: alert.priority,
            policy: alert.policy.clone(),
            message: alert.output.clone(),
            output_fields: detection.output_fields,
            tags: alert.tags.clone(),
            cluster: alert.cluster.clone(),
            repeated: 0,
        }));
        batch.alerts.push(NewAlert {
            event_index,
            fields: alert,
        });
    }
    batch.events.push(NewEvent {
        fields,
        raw_json: item.event.raw().to_owned(),
    });
    Ok(())
}

/// Deepest nesting of arrays and objects accepted, counting an `EventList` and its items:
/// serde_json's own recursion limit, far above what Kubernetes objects use.
pub const MAX_NESTING: usize = 128;

/// Refuses input nested deeper than [`MAX_NESTING`] before any parser sees it, so that no
/// recursive code downstream (parsing, field extraction, rendering) can exhaust the stack:
/// serde_json skips nested values it does not deserialize (raw `requestObject`s) without a
/// depth limit. One pass over the bytes; string contents are skipped with `memchr`, as they
/// are most of an audit event.
pub fn check_nesting(body: &[u8]) -> Result<(), BatchError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut at = 0usize;
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => {
                // Inside a string: only its end, escapes and (invalid, but counted) raw line
                // ends matter.
                loop {
                    let Some(rest) = body.get(at..) else {
                        return Ok(());
                    };
                    let Some(offset) = memchr::memchr3(b'"', b'\\', b'\n', rest) else {
                        // An unterminated string: the parser reports it.
                        return Ok(());
                    };
                    let found = rest[offset];
                    at += offset + 1;
                    match found {
                        b'\\' => at += 1,
                        b'\n' => line += 1,
                        _ => break,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(BatchError(format!(
                        "line {line}: JSON nested deeper than {MAX_NESTING} levels; nothing of this batch was stored"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            // No reset at line ends: a pretty-printed document spans lines, and a line left
            // open is an error in JSON lines anyway.
            b'\n' => line += 1,
            _ => {}
        }
    }
    Ok(())
}

/// The indexed fields of an event. The stage is part of the dedupe key, so an event
/// without a known stage is refused; a missing `level` is indexed as `Metadata` (the raw
/// event is kept as received).
pub fn event_fields(
    event: &AuditEvent<'_>,
    time_ns: i64,
    intake: &Intake,
    received_ns: i64,
) -> Result<EventFields, String> {
    let stage: Stage = match event.stage.as_deref() {
        Some(text) => text.parse().map_err(|e| format!("malformed audit event: {e}"))?,
        None => return Err("malformed audit event: no stage".to_owned()),
    };
    let level: Level = match event.level.as_deref() {
        Some(text) => text.parse().map_err(|e| format!("malformed audit event: {e}"))?,
        None => Level::Metadata,
    };
    let owned = |t: Option<&str>| t.map(str::to_owned);
    let object = event.object_ref.as_ref();
    Ok(EventFields {
        cluster: intake.cluster.clone(),
        intake_id: Some(intake.id),
        audit_id: owned(event.audit_id.as_deref()).unwrap_or_default(),
        stage,
        digest: event_digest(event.raw()),
        time_ns,
        received_ns,
        verb: owned(event.verb.as_deref()).unwrap_or_default(),
        username: owned(event.username()).unwrap_or_default(),
        groups: event
            .user
            .as_ref()
            .and_then(|u| u.groups())
            .map(|g| g.into_iter().map(|t| t.as_str().to_owned()).collect())
            .unwrap_or_default(),
        impersonated_user: owned(
            event
                .impersonated_user
                .as_ref()
                .and_then(|u| u.username.as_deref()),
        ),
        resource: owned(event.resource()),
        subresource: owned(event.subresource()),
        namespace: owned(event.namespace()),
        name: owned(event.name()),
        api_group: owned(object.and_then(|o| o.api_group.as_deref())),
        source_ip: event.source_ips().first().map(|t| t.as_str().to_owned()),
        user_agent: owned(event.user_agent.as_deref()),
        response_code: event.response_code().map(i32::from),
        decision: event.authorization_decision().map(|t| t.as_str().to_owned()),
        request_uri: owned(event.request_uri.as_deref()).unwrap_or_default(),
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::{BatchError, MAX_NESTING, check_nesting};

    /// The nesting check written plainly, byte by byte: the reference the fast one must
    /// agree with.
    fn reference(body: &[u8]) -> Result<(), BatchError> {
        let (mut depth, mut line, mut in_string, mut escaped) = (0usize, 1usize, false, false);
        for &b in body {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                } else if b == b'\n' {
                    line += 1;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(BatchError(format!(
                            "line {line}: JSON nested deeper than {MAX_NESTING} levels; nothing of this batch was stored"
                        )));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'\n' => line += 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks one body against the reference and returns the refusal's line, if any.
    fn check(body: &[u8]) -> Option<String> {
        let fast = check_nesting(body);
        assert_eq!(fast, reference(body), "{:?}", String::from_utf8_lossy(body));
        fast.err().map(|e| e.0.split(':').next().unwrap_or("").to_owned())
    }

    #[test]
    fn nesting_is_bounded_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check(deep(MAX_NESTING).as_bytes()), None);
        assert_eq!(check(deep(MAX_NESTING + 1).as_bytes()), Some("line 1".into()));
        let in_string = format!(r#"{{"a":"{}"}}"#, "[{".repeat(1000));
        assert_eq!(check(in_string.as_bytes()), None);
        let escaped_quote = format!(r#"{{"a":"x\"{}"}}"#, "[".repeat(500));
        assert_eq!(check(escaped_quote.as_bytes()), None);
        let escaped_backslash = format!(r#"{{"a":"x\\"}}{}"#, deep(MAX_NESTING + 1));
        assert_eq!(check(escaped_backslash.as_bytes()), Some("line 1".into()));
        let later_line = format!("{{\"a\":1}}\n{{\"b\":\"multi\nline\"}}\n{}", deep(200));
        assert_eq!(check(later_line.as_bytes()), Some("line 4".into()));
        for tricky in [
            &b""[..],
            b"\"",
            b"\"\\",
            b"\"abc\\\"",
            b"[\"\\\\\"]",
            b"{\"a\":\"\\\n\"}\n[",
            b"]]]]}}}}[",
        ] {
            check(tricky);
        }
    }

    #[test]
    fn fast_and_plain_checks_agree_on_random_bodies() {
        // A small deterministic generator over the bytes that matter.
        let alphabet = b"[]{}\"\\\nab :,";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for length in 0..2000 {
            let body: Vec<u8> = (0..length % 400)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly openers, so that some bodies go past the limit.
                    let pick = (state % 23) as usize;
                    if pick >= alphabet.len() {
                        b'['
                    } else {
                        alphabet[pick]
                    }
                })
                .collect();
            check(&body);
        }
    }
}
