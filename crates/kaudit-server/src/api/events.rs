//! Events as a [`Searchable`] kind (the activity audit): `GET /api/v1/events` and its
//! `count`, `groups` and `histogram`, served by [`super::search`], and one event in full by
//! id (viewer).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use kaudit_proto as proto;
use kaudit_store::{
    EventFilter, EventGroupField, EventId, GroupCount, HistogramBucket, Page, PageRequest, Role, Store,
    StoredEvent, TimeRange, UserMatch,
};

use super::search::Searchable;
use super::{authorize, blocking, parse_time_range};
use crate::error::ApiError;
use crate::state::AppState;

/// Stored events, searched through [`super::search`].
pub struct Events;

/// `GET /api/v1/events/{id}`; the searches are [`super::search::routes`] over [`Events`].
pub fn routes() -> Router<AppState> {
    Router::new().route("/events/{id}", get(one))
}

impl Searchable for Events {
    type Query = proto::EventFilter;
    type Filter = EventFilter;
    type GroupField = EventGroupField;
    type Row = StoredEvent;
    type Item = proto::Event;

    /// `user` and `user_prefix` together are refused.
    fn filter(query: &proto::EventFilter) -> Result<EventFilter, ApiError> {
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
        Ok(EventFilter {
            time: parse_time_range(query.from.as_deref(), query.to.as_deref())?,
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

    fn page(query: &proto::EventFilter) -> (Option<&str>, Option<u32>) {
        (query.cursor.as_deref(), query.limit)
    }

    fn time(filter: &EventFilter) -> TimeRange {
        filter.time
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

    fn item(row: &StoredEvent) -> proto::Event {
        event_dto(row)
    }

    fn search(
        store: &dyn Store,
        filter: &EventFilter,
        page: PageRequest,
    ) -> kaudit_store::Result<Page<StoredEvent>> {
        store.search_events(filter, page)
    }

    fn count(store: &dyn Store, filter: &EventFilter) -> kaudit_store::Result<u64> {
        store.count_events(filter)
    }

    fn count_upto(store: &dyn Store, filter: &EventFilter, limit: u64) -> kaudit_store::Result<u64> {
        store.count_events_upto(filter, limit)
    }

    fn group(
        store: &dyn Store,
        filter: &EventFilter,
        field: EventGroupField,
        limit: u32,
    ) -> kaudit_store::Result<Vec<GroupCount>> {
        store.group_events(filter, field, limit)
    }

    fn histogram(
        store: &dyn Store,
        filter: &EventFilter,
        bucket_ns: i64,
    ) -> kaudit_store::Result<Vec<HistogramBucket>> {
        store.histogram_events(filter, bucket_ns)
    }
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
