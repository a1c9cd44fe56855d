//! The read side that alerts and events share: a list newest first with cursor pages, and its
//! `count`, `groups` and `histogram`, written once over [`Searchable`]. Each kind says how
//! its query parameters become a store filter, which store calls answer and how a stored row
//! goes on the wire; the handlers here do the rest (token, parsing, limits, running the store
//! call off the async runtime).

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use kaudit_proto as proto;
use kaudit_store::{GroupCount, HistogramBucket, Page, PageRequest, Role, Store, TimeRange};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{authorize, blocking, group_limit, histogram_width, page_request, parse_query};
use crate::error::ApiError;
use crate::state::AppState;

/// The largest `limit` a count accepts: a bounded count exists to stay quick, and counting
/// a million rows is already seconds on a large store.
pub const MAX_COUNT_LIMIT: u64 = 1_000_000;

/// A kind of stored record searchable through the API (alerts, events).
pub trait Searchable: Send + Sync + 'static {
    /// Query parameters of the list and its `count`, `groups` and `histogram`.
    type Query: DeserializeOwned + Send;
    /// The store's filter.
    type Filter: Send + 'static;
    /// A field the store can group by.
    type GroupField: Send + 'static;
    /// A stored row.
    type Row: Send + 'static;
    /// A row on the wire.
    type Item: Serialize;

    /// Protocol filter → store filter; 400 for values that do not parse.
    fn filter(query: &Self::Query) -> Result<Self::Filter, ApiError>;
    /// The `cursor` and `limit` of a list request.
    fn page(query: &Self::Query) -> (Option<&str>, Option<u32>);
    /// The filter's time range.
    fn time(filter: &Self::Filter) -> TimeRange;
    /// A `field` parameter of `groups`; 400 naming the accepted fields otherwise.
    fn group_field(name: &str) -> Result<Self::GroupField, ApiError>;
    /// Stored row → protocol item.
    fn item(row: &Self::Row) -> Self::Item;

    /// One page of matching rows, newest first.
    fn search(
        store: &dyn Store,
        filter: &Self::Filter,
        page: PageRequest,
    ) -> kaudit_store::Result<Page<Self::Row>>;
    /// The exact number of matches.
    fn count(store: &dyn Store, filter: &Self::Filter) -> kaudit_store::Result<u64>;
    /// The number of matches, counting no further than `limit`.
    fn count_upto(store: &dyn Store, filter: &Self::Filter, limit: u64) -> kaudit_store::Result<u64>;
    /// Matches counted by a field, largest groups first.
    fn group(
        store: &dyn Store,
        filter: &Self::Filter,
        field: Self::GroupField,
        limit: u32,
    ) -> kaudit_store::Result<Vec<GroupCount>>;
    /// Matches counted per time bucket, oldest first.
    fn histogram(
        store: &dyn Store,
        filter: &Self::Filter,
        bucket_ns: i64,
    ) -> kaudit_store::Result<Vec<HistogramBucket>>;
}

/// `GET {base}`, `{base}/count`, `{base}/groups` and `{base}/histogram` for one kind (viewer).
pub fn routes<S: Searchable>(base: &str) -> Router<AppState> {
    Router::new()
        .route(base, get(list::<S>))
        .route(&format!("{base}/count"), get(count::<S>))
        .route(&format!("{base}/groups"), get(groups::<S>))
        .route(&format!("{base}/histogram"), get(histogram::<S>))
}

async fn list<S: Searchable>(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Page<S::Item>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let query: S::Query = parse_query(query.as_deref())?;
    let filter = S::filter(&query)?;
    let (cursor, limit) = S::page(&query);
    let page = page_request(cursor, limit)?;
    let found = blocking(&state, move |store| Ok(S::search(store, &filter, page)?)).await?;
    Ok(Json(proto::Page {
        items: found.items.iter().map(S::item).collect(),
        next_cursor: found.next_cursor.map(|c| c.encode()),
    }))
}

/// Exact without `limit`; with it, the store is asked for one more than `limit`, which tells
/// "exactly `limit`" from "more than `limit`" without counting the rest.
async fn count<S: Searchable>(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Count>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    // Before the filter, whose `limit` is a page size that would refuse large or malformed
    // values with a less helpful message.
    let limit = count_limit(query.as_deref())?;
    let filter = S::filter(&parse_query(query.as_deref())?)?;
    let counted = blocking(&state, move |store| {
        Ok(match limit {
            None => proto::Count {
                count: S::count(store, &filter)?,
                exact: true,
            },
            Some(limit) => {
                let found = S::count_upto(store, &filter, limit + 1)?;
                proto::Count {
                    count: found.min(limit),
                    exact: found <= limit,
                }
            }
        })
    })
    .await?;
    Ok(Json(counted))
}

async fn groups<S: Searchable>(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Groups>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let filter = S::filter(&parse_query(query.as_deref())?)?;
    let asked: proto::GroupQuery = parse_query(query.as_deref())?;
    let field = S::group_field(&asked.field)?;
    let limit = group_limit(asked.limit);
    let groups = blocking(&state, move |store| Ok(S::group(store, &filter, field, limit)?)).await?;
    Ok(Json(groups_dto(asked.field, groups)))
}

async fn histogram<S: Searchable>(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<proto::Histogram>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let filter = S::filter(&parse_query(query.as_deref())?)?;
    let asked: proto::HistogramQuery = parse_query(query.as_deref())?;
    let time = S::time(&filter);
    let width = histogram_width(asked.interval_seconds, time.from_ns, time.to_ns)?;
    let bucket_ns = bucket_nanos(width);
    let buckets = blocking(&state, move |store| Ok(S::histogram(store, &filter, bucket_ns)?)).await?;
    Ok(Json(histogram_dto(width, &buckets)))
}

/// The `limit` of a count, read as text so that the refusal can quote it.
#[derive(serde::Deserialize)]
struct CountLimit {
    limit: Option<String>,
}

/// A count's optional `limit`: a whole number from 1 to [`MAX_COUNT_LIMIT`].
fn count_limit(raw_query: Option<&str>) -> Result<Option<u64>, ApiError> {
    let asked: CountLimit = parse_query(raw_query)?;
    let Some(text) = asked.limit else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(limit) if (1..=MAX_COUNT_LIMIT).contains(&limit) => Ok(Some(limit)),
        _ => Err(ApiError::BadRequest(format!(
            "invalid limit {text:?} (expected a whole number from 1 to {MAX_COUNT_LIMIT})"
        ))),
    }
}

/// Store groups → protocol groups.
fn groups_dto(field: String, groups: Vec<GroupCount>) -> proto::Groups {
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
fn bucket_nanos(width_seconds: u64) -> i64 {
    i64::try_from(width_seconds)
        .unwrap_or(i64::MAX / 1_000_000_000)
        .saturating_mul(1_000_000_000)
}

/// Store buckets → protocol histogram.
fn histogram_dto(width: u64, buckets: &[HistogramBucket]) -> proto::Histogram {
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
