//! The HTTP routes: `GET /healthz`, the intake endpoints, the JSON API under `/api/v1`, and
//! the web UI's embedded assets at `/`. Routes sit next to their handlers, one module per
//! area (alerts and events share the search handlers of [`search`]); this module merges them
//! and holds the shared helpers (credentials, query strings, JSON bodies, running store calls
//! off the async runtime).

pub mod admin;
pub mod alerts;
pub mod events;
pub mod intake;
pub mod rules;
pub mod search;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kaudit_store::{ApiToken, KeyHash, Role, Store};
use serde::de::DeserializeOwned;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::state::AppState;

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(search::routes::<alerts::Alerts>("/alerts"))
        .merge(search::routes::<events::Events>("/events"))
        .merge(events::routes())
        .merge(admin::routes())
        .merge(rules::routes())
        .fallback(|| async { ApiError::NotFound("no such API endpoint".to_owned()) });
    Router::new()
        .route("/healthz", get(healthz))
        .merge(intake::routes())
        .nest("/api/v1", api)
        .fallback(ui_asset)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Serves the web UI's embedded files; unknown paths get `index.html`'s 404 in JSON.
async fn ui_asset(uri: Uri) -> Response {
    match kaudit_ui::asset(uri.path()) {
        Some(asset) => {
            let mut response = (StatusCode::OK, asset.body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(kaudit_ui::CONTENT_SECURITY_POLICY),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => ApiError::NotFound("not found".to_owned()).into_response(),
    }
}

/// Runs a blocking store call on the blocking pool.
pub async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
{
    let store = state.store();
    tokio::task::spawn_blocking(move || f(&*store)).await?
}

/// The API token of the request, checked against `need`: 401 without a valid token, 403
/// when a viewer token asks for an admin action.
pub async fn authorize(state: &AppState, headers: &HeaderMap, need: Role) -> Result<ApiToken, ApiError> {
    let secret = bearer(headers).ok_or(ApiError::Unauthorized)?;
    let hash = KeyHash::of_secret(secret);
    let token = match state.cached_token(&hash) {
        Some(token) => token,
        None => {
            let found = blocking(state, move |store| Ok(store.find_active_token(&hash)?)).await?;
            let token = found.ok_or(ApiError::Unauthorized)?;
            state.cache_token(hash, token.clone());
            token
        }
    };
    if need == Role::Admin && token.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok(token)
}

/// Parses a query string; empty values count as absent (`?user=&verb=get`).
pub fn parse_query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    let raw = raw.unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let kept: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let cleaned = serde_urlencoded::to_string(&kept).map_err(ApiError::internal)?;
    serde_urlencoded::from_str(&cleaned)
        .map_err(|e| ApiError::BadRequest(format!("invalid query parameter: {e}")))
}

/// Parses a JSON request body.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// An RFC 3339 time parameter in nanoseconds.
pub fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            kaudit_model::parse_rfc3339_nanos(v)
                .map_err(|e| ApiError::BadRequest(format!("invalid {name} {v:?}: {e} (expected RFC 3339)")))
        })
        .transpose()
}

/// The time range of `from` and `to` RFC 3339 parameters.
pub fn parse_time_range(from: Option<&str>, to: Option<&str>) -> Result<kaudit_store::TimeRange, ApiError> {
    Ok(kaudit_store::TimeRange {
        from_ns: parse_time("from", from)?,
        to_ns: parse_time("to", to)?,
    })
}

/// A page request from `cursor` and `limit` (default 100, at most 1000).
pub fn page_request(cursor: Option<&str>, limit: Option<u32>) -> Result<kaudit_store::PageRequest, ApiError> {
    let cursor = cursor.map(kaudit_store::Cursor::decode).transpose()?;
    let limit = limit.unwrap_or(100);
    if limit == 0 {
        return Err(ApiError::BadRequest("limit must be at least 1".to_owned()));
    }
    Ok(kaudit_store::PageRequest {
        limit: limit.min(1000),
        cursor,
    })
}

/// The width of histogram buckets: asked for, or about 60 buckets over the range (whole
/// minutes above one minute), or an hour; never so narrow that the range holds more than
/// 2000 buckets.
pub fn histogram_width(
    asked_seconds: Option<u64>,
    from_ns: Option<i64>,
    to_ns: Option<i64>,
) -> Result<u64, ApiError> {
    let span_seconds = match (from_ns, to_ns) {
        (Some(from), Some(to)) if to > from => Some(((to - from) / 1_000_000_000).max(1) as u64),
        (Some(from), None) => Some(((crate::admin::now_ns() - from) / 1_000_000_000).max(1) as u64),
        _ => None,
    };
    let width = match asked_seconds {
        Some(0) => {
            return Err(ApiError::BadRequest(
                "interval_seconds must be at least 1".to_owned(),
            ));
        }
        Some(w) => w,
        None => span_seconds.map_or(3600, |s| s.div_ceil(60).max(1)),
    };
    let width = match span_seconds {
        Some(span) => width.max(span.div_ceil(2000)),
        None => width,
    };
    // A width of its own choosing above a minute is a whole number of minutes, which the
    // stores answer from per-minute counts instead of reading every event.
    Ok(if asked_seconds.is_none() && width > 60 {
        width.div_ceil(60) * 60
    } else {
        width
    })
}

/// A group limit: default 10, at most 1000.
pub fn group_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(10).clamp(1, 1000)
}

#[cfg(test)]
mod tests {
    use super::histogram_width;

    const HOUR_NS: i64 = 3_600_000_000_000;

    #[test]
    fn histogram_widths_chosen_by_the_server_are_whole_minutes() {
        // About 60 buckets over the range, rounded up to whole minutes.
        assert_eq!(
            histogram_width(None, Some(0), Some(3 * HOUR_NS + 17 * 60_000_000_000)).unwrap(),
            240
        );
        assert_eq!(histogram_width(None, Some(0), Some(24 * HOUR_NS)).unwrap(), 1440);
        // Short ranges keep their sub-minute buckets.
        assert_eq!(histogram_width(None, Some(0), Some(HOUR_NS / 4)).unwrap(), 15);
        // Asked widths are kept, unless the range would hold more than 2000 buckets.
        assert_eq!(histogram_width(Some(7), Some(0), Some(HOUR_NS)).unwrap(), 7);
        assert_eq!(histogram_width(Some(1), Some(0), Some(24 * HOUR_NS)).unwrap(), 44);
        assert_eq!(histogram_width(None, None, None).unwrap(), 3600);
        assert!(histogram_width(Some(0), None, None).is_err());
    }
}
