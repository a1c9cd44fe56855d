//! `GET /api/v1/alerts` and its `count`, `groups` and `histogram` (viewer).

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use kaudit_proto as proto;
use kaudit_store::{AlertGroupField, GroupCount, HistogramBucket, Role, StoredAlert, TimeRange};

use super::{authorize, blocking, group_limit, histogram_width, page_request, parse_query, parse_time};
use crate::error::ApiError;
use crate::state::AppState;

/// The alert routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/count", get(count))
        .route("/alerts/groups", get(groups))
        .route("/alerts/histogram", get(histogram))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Page<proto::Alert>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let query: proto::AlertFilter = parse_query(query.as_deref())?;
    let filter = store_filter(&query)?;
    let page = page_request(query.cursor.as_deref(), query.limit)?;
    let found = blocking(&state, move |store| Ok(store.search_alerts(&filter, page)?)).await?;
    Ok(Json(proto::Page {
        items: found.items.iter().map(alert_dto).collect(),
        next_cursor: found.next_cursor.map(|c| c.encode()),
    }))
}

async fn count(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Count>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let filter = store_filter(&parse_query(query.as_deref())?)?;
    let count = blocking(&state, move |store| Ok(store.count_alerts(&filter)?)).await?;
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
        move |store| Ok(store.group_alerts(&filter, field, limit)?),
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
        Ok(store.histogram_alerts(&filter, bucket_ns)?)
    })
    .await?;
    Ok(Json(histogram_dto(width, &buckets)))
}

/// Protocol filter → store filter.
pub fn store_filter(query: &proto::AlertFilter) -> Result<kaudit_store::AlertFilter, ApiError> {
    let min_priority = query
        .min_priority
        .as_deref()
        .map(|p| {
            p.parse()
                .map_err(|e| ApiError::BadRequest(format!("invalid min_priority: {e}")))
        })
        .transpose()?;
    Ok(kaudit_store::AlertFilter {
        time: TimeRange {
            from_ns: parse_time("from", query.from.as_deref())?,
            to_ns: parse_time("to", query.to.as_deref())?,
        },
        min_priority,
        rule: query.rule.clone(),
        policy: query.policy.clone(),
        cluster: query.cluster.clone(),
        namespace: query.namespace.clone(),
        user: query.user.clone(),
    })
}

fn group_field(name: &str) -> Result<AlertGroupField, ApiError> {
    Ok(match name {
        "rule" => AlertGroupField::Rule,
        "priority" => AlertGroupField::Priority,
        "cluster" => AlertGroupField::Cluster,
        "namespace" => AlertGroupField::Namespace,
        "user" => AlertGroupField::User,
        "policy" => AlertGroupField::Policy,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "cannot group alerts by {name:?} (expected rule, priority, policy, cluster, namespace or user)"
            )));
        }
    })
}

/// Stored alert → protocol alert.
pub fn alert_dto(alert: &StoredAlert) -> proto::Alert {
    let fields = &alert.fields;
    let output_fields = match serde_json::from_str(&fields.output_fields_json) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    proto::Alert {
        id: alert.id.to_string(),
        time: kaudit_model::format_rfc3339_nanos(fields.time_ns),
        rule: fields.rule.clone(),
        priority: fields.priority.into(),
        policy: fields.policy.clone(),
        source: fields.source.clone(),
        tags: fields.tags.clone(),
        output: fields.output.clone(),
        output_fields,
        cluster: fields.cluster.clone(),
        event_id: alert.event_id.to_string(),
        audit_id: None,
        user: (!fields.username.is_empty()).then(|| fields.username.clone()),
        namespace: fields.namespace.clone(),
    }
}

/// Store groups → protocol groups, for alerts and events alike.
pub fn groups_dto(field: String, groups: Vec<GroupCount>) -> proto::Groups {
    proto::Groups {
        field,
        groups: groups
            .into_iter()
            .map(|g| proto::GroupCount {
                value: g.key,
                count: g.count,
            })
            .collect(),
    }
}

/// A histogram bucket width in seconds as nanoseconds, saturating instead of overflowing.
pub fn bucket_nanos(width_seconds: u64) -> i64 {
    i64::try_from(width_seconds)
        .unwrap_or(i64::MAX / 1_000_000_000)
        .saturating_mul(1_000_000_000)
}

/// Store buckets → protocol histogram.
pub fn histogram_dto(width: u64, buckets: &[HistogramBucket]) -> proto::Histogram {
    proto::Histogram {
        interval_seconds: width,
        buckets: buckets
            .iter()
            .map(|b| proto::Bucket {
                start: kaudit_model::format_rfc3339_nanos(b.start_ns),
                count: b.count,
            })
            .collect(),
    }
}
