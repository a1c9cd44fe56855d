//! `GET /api/v1/events` (activity audit), one event by id, and `count`, `groups` and
//! `histogram` (viewer).

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use kaudit_proto as proto;
use kaudit_store::{EventGroupField, EventId, Role, StoredEvent, TimeRange, UserMatch};

use super::alerts::{bucket_nanos, groups_dto, histogram_dto};
use super::{authorize, blocking, group_limit, histogram_width, page_request, parse_query, parse_time};
use crate::error::ApiError;
use crate::state::AppState;

/// The event routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list))
        .route("/events/count", get(count))
        .route("/events/groups", get(groups))
        .route("/events/histogram", get(histogram))
        .route("/events/{id}", get(one))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Page<proto::Event>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let query: proto::EventFilter = parse_query(query.as_deref())?;
    let filter = store_filter(&query)?;
    let page = page_request(query.cursor.as_deref(), query.limit)?;
    let found = blocking(&state, move |store| Ok(store.search_events(&filter, page)?)).await?;
    Ok(Json(proto::Page {
        items: found.items.iter().map(event_dto).collect(),
        next_cursor: found.next_cursor.map(|c| c.encode()),
    }))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<proto::EventDetail>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let not_found = || ApiError::NotFound(format!("no event with id {id:?}"));
    let number: i64 = id.parse().map_err(|_| not_found())?;
    let found = blocking(&state, move |store| Ok(store.get_event(EventId(number))?)).await?;
    let full = found.ok_or_else(not_found)?;
    let mut summary = event_dto(&full.event);
    let event = match serde_json::from_str::<serde_json::Value>(&full.raw_json) {
        Ok(value) => value,
        Err(_) => serde_json::Value::String(full.raw_json.clone()),
    };
    if let Ok(parsed) = kaudit_model::AuditEvent::parse(&full.raw_json) {
        summary.source_ips = parsed
            .source_ips()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
    }
    Ok(Json(proto::EventDetail { summary, event }))
}

async fn count(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Count>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let filter = store_filter(&parse_query(query.as_deref())?)?;
    let count = blocking(&state, move |store| Ok(store.count_events(&filter)?)).await?;
    Ok(Json(proto::Count { count }))
}

async fn groups(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Groups>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let filter = store_filter(&parse_query(query.as_deref())?)?;
    let group: proto::GroupQuery = parse_query(query.as_deref())?;
    let field = group_field(&group.field)?;
    let limit = group_limit(group.limit);
    let groups = blocking(
        &state,
        move |store| Ok(store.group_events(&filter, field, limit)?),
    )
    .await?;
    Ok(Json(groups_dto(group.field, groups)))
}

async fn histogram(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Histogram>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let filter = store_filter(&parse_query(query.as_deref())?)?;
    let asked: proto::HistogramQuery = parse_query(query.as_deref())?;
    let width = histogram_width(asked.interval_seconds, filter.time.from_ns, filter.time.to_ns)?;
    let bucket_ns = bucket_nanos(width);
    let buckets = blocking(&state, move |store| {
        Ok(store.histogram_events(&filter, bucket_ns)?)
    })
    .await?;
    Ok(Json(histogram_dto(width, &buckets)))
}

/// Protocol filter → store filter. `user` and `user_prefix` together are refused.
pub fn store_filter(query: &proto::EventFilter) -> Result<kaudit_store::EventFilter, ApiError> {
    let user = match (&query.user, &query.user_prefix) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give user or user_prefix, not both".to_owned(),
            ));
        }
        (Some(user), None) => Some(UserMatch::Exact(user.clone())),
        (None, Some(prefix)) => Some(UserMatch::Prefix(prefix.clone())),
        (None, None) => None,
    };
    Ok(kaudit_store::EventFilter {
        time: TimeRange {
            from_ns: parse_time("from", query.from.as_deref())?,
            to_ns: parse_time("to", query.to.as_deref())?,
        },
        cluster: query.cluster.clone(),
        user,
        group: query.group.clone(),
        verb: query.verb.clone(),
        resource: query.resource.clone(),
        subresource: query.subresource.clone(),
        namespace: query.namespace.clone(),
        name: query.name.clone(),
        source_ip: query.source_ip.clone(),
        user_agent_contains: query.user_agent.clone(),
        response_code: query.code.map(i32::from),
        decision: query.decision.clone(),
        text: query.q.clone(),
    })
}

fn group_field(name: &str) -> Result<EventGroupField, ApiError> {
    Ok(match name {
        "user" => EventGroupField::User,
        "verb" => EventGroupField::Verb,
        "resource" => EventGroupField::Resource,
        "namespace" => EventGroupField::Namespace,
        "source_ip" => EventGroupField::SourceIp,
        "code" | "response_code" => EventGroupField::ResponseCode,
        "cluster" => EventGroupField::Cluster,
        "decision" => EventGroupField::Decision,
        "user_agent" => EventGroupField::UserAgent,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "cannot group events by {name:?} (expected user, verb, resource, namespace, source_ip, code, \
                 cluster, decision or user_agent)"
            )));
        }
    })
}

/// Stored event → protocol summary.
pub fn event_dto(event: &StoredEvent) -> proto::Event {
    let f = &event.fields;
    proto::Event {
        id: event.id.to_string(),
        cluster: f.cluster.clone(),
        time: kaudit_model::format_rfc3339_nanos(f.time_ns),
        audit_id: Some(f.audit_id.clone()),
        stage: Some(f.stage.as_str().to_owned()),
        level: Some(f.level.as_str().to_owned()),
        verb: Some(f.verb.clone()),
        user: Some(f.username.clone()),
        groups: f.groups.clone(),
        impersonated_user: f.impersonated_user.clone(),
        api_group: f.api_group.clone(),
        resource: f.resource.clone(),
        subresource: f.subresource.clone(),
        namespace: f.namespace.clone(),
        name: f.name.clone(),
        request_uri: Some(f.request_uri.clone()),
        source_ips: f.source_ip.iter().cloned().collect(),
        user_agent: f.user_agent.clone(),
        response_code: f.response_code.and_then(|c| u16::try_from(c).ok()),
        decision: f.decision.clone(),
    }
}
