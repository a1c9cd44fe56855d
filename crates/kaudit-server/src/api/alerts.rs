//! Alerts as a [`Searchable`] kind: `GET /api/v1/alerts` and its `count`, `groups` and
//! `histogram` (viewer), served by [`super::search`].

use kaudit_proto as proto;
use kaudit_store::{
    AlertFilter, AlertGroupField, GroupCount, HistogramBucket, Page, PageRequest, Store, StoredAlert,
    TimeRange,
};

use super::parse_time_range;
use super::search::Searchable;
use crate::error::ApiError;

/// Stored alerts, searched through [`super::search`].
pub struct Alerts;

impl Searchable for Alerts {
    type Query = proto::AlertFilter;
    type Filter = AlertFilter;
    type GroupField = AlertGroupField;
    type Row = StoredAlert;
    type Item = proto::Alert;

    fn filter(query: &proto::AlertFilter) -> Result<AlertFilter, ApiError> {
        let min_priority = query
            .min_priority
            .as_deref()
            .map(|p| {
                p.parse()
                    .map_err(|e| ApiError::BadRequest(format!("invalid min_priority: {e}")))
            })
            .transpose()?;
        Ok(AlertFilter {
            time: parse_time_range(query.from.as_deref(), query.to.as_deref())?,
            min_priority,
            rule: query.rule.clone(),
            policy: query.policy.clone(),
            cluster: query.cluster.clone(),
            namespace: query.namespace.clone(),
            user: query.user.clone(),
        })
    }

    fn page(query: &proto::AlertFilter) -> (Option<&str>, Option<u32>) {
        (query.cursor.as_deref(), query.limit)
    }

    fn time(filter: &AlertFilter) -> TimeRange {
        filter.time
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

    fn item(row: &StoredAlert) -> proto::Alert {
        alert_dto(row)
    }

    fn search(
        store: &dyn Store,
        filter: &AlertFilter,
        page: PageRequest,
    ) -> kaudit_store::Result<Page<StoredAlert>> {
        store.search_alerts(filter, page)
    }

    fn count(store: &dyn Store, filter: &AlertFilter) -> kaudit_store::Result<u64> {
        store.count_alerts(filter)
    }

    fn count_upto(store: &dyn Store, filter: &AlertFilter, limit: u64) -> kaudit_store::Result<u64> {
        store.count_alerts_upto(filter, limit)
    }

    fn group(
        store: &dyn Store,
        filter: &AlertFilter,
        field: AlertGroupField,
        limit: u32,
    ) -> kaudit_store::Result<Vec<GroupCount>> {
        store.group_alerts(filter, field, limit)
    }

    fn histogram(
        store: &dyn Store,
        filter: &AlertFilter,
        bucket_ns: i64,
    ) -> kaudit_store::Result<Vec<HistogramBucket>> {
        store.histogram_alerts(filter, bucket_ns)
    }
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
