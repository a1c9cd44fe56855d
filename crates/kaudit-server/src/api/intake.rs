//! The intake endpoints: `POST /intake/v1/events` and `POST /k8s-audit` (the apiserver's
//! webhook backend). Both take the same bodies and answer the same way:
//!
//! * 401 without a valid intake key (`X-Intake-Key` or `Authorization: Bearer`), checked
//!   before the body is read;
//! * 413 over the body or decompressed-size limit, 415 for an unknown `Content-Encoding`;
//! * 400 naming the first position that is not a usable audit event; nothing is stored;
//! * 200 with an [`IntakeAck`](kaudit_proto::IntakeAck) only after the whole batch is
//!   committed. Retries store nothing twice (the store deduplicates).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use kaudit_proto::IntakeAck;
use kaudit_store::{Insertion, Intake, KeyHash};

use super::blocking;
use crate::body::{Encoding, decode, read_capped};
use crate::error::ApiError;
use crate::pipeline::prepare;
use crate::state::AppState;

/// The intake routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/intake/v1/events", post(receive))
        .route("/k8s-audit", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IntakeAck>, ApiError> {
    let intake = authenticate(&state, &headers).await?;
    let encoding = Encoding::from_headers(&headers)?;
    let limits = state.limits();
    let raw = read_capped(&headers, body, limits.max_body_bytes).await?;
    let _batch_slot = state.batch_slot().await.ok_or(ApiError::Unavailable)?;
    let cpu_slot = state.cpu_slot().await.ok_or(ApiError::Unavailable)?;
    let detector = state.detector();
    let store = state.store();
    let intake_for_batch = intake.clone();
    let (prepared, outcome) = tokio::task::spawn_blocking(move || {
        let decoded = decode(encoding, raw, limits.max_decompressed_bytes)?;
        let mut prepared = prepare(&decoded, &intake_for_batch, &detector, crate::admin::now_ns())
            .map_err(|e| ApiError::BadRequest(e.0))?;
        drop(decoded);
        // The store compresses the batch on this thread, then waits for its commit: the next
        // batch may start parsing meanwhile.
        drop(cpu_slot);
        let events = std::mem::take(&mut prepared.events);
        let outcome = store.insert_batch_owned(events, &prepared.alerts)?;
        Ok::<_, ApiError>((prepared, outcome))
    })
    .await??;
    let accepted = outcome.new_count() as u64;
    let duplicates = outcome.events.len() as u64 - accepted;
    state.record_events(intake.id, accepted);
    // Alerts of duplicate events were not stored: do not notify them again.
    let fresh: Vec<_> = prepared
        .alerts
        .iter()
        .zip(&prepared.output_alerts)
        .filter(|(alert, _)| matches!(outcome.events.get(alert.event_index), Some(Insertion::New(_))))
        .map(|(_, output)| std::sync::Arc::clone(output))
        .collect();
    state.outputs().send(&fresh);
    tracing::debug!(intake = %intake.name, accepted, duplicates, alerts = fresh.len(), "batch committed");
    Ok(Json(IntakeAck {
        accepted,
        duplicates,
        alerts: outcome.alerts_stored as u64,
    }))
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Intake, ApiError> {
    let key = crate::auth::intake_key(headers).ok_or(ApiError::Unauthorized)?;
    let hash = KeyHash::of_secret(key);
    if let Some(intake) = state.cached_intake(&hash) {
        return Ok(intake);
    }
    let found = blocking(state, move |store| Ok(store.find_active_intake(&hash)?)).await?;
    let intake = found.ok_or(ApiError::Unauthorized)?;
    state.cache_intake(hash, intake.clone());
    Ok(intake)
}
