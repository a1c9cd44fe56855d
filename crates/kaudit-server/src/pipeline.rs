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
/// Input nested deeper than [`kaudit_model::MAX_NESTING`] levels is refused like any other
/// unreadable piece: the reader skips it before any parser sees it.
pub fn prepare(
    body: &[u8],
    intake: &Intake,
    detector: &Detector,
    received_ns: i64,
) -> Result<PreparedBatch, BatchError> {
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
