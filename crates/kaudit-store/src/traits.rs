//! The storage traits, split by capability, and the umbrella [`Store`].
//!
//! All methods block (see the crate doc for how async code calls them).

use crate::{
    AlertFilter, AlertGroupField, ApiToken, BatchOutcome, EventFilter, EventGroupField, EventId, FullEvent,
    GroupCount, HistogramBucket, Intake, IntakeId, KeyHash, NewAlert, NewEvent, NewIntake, NewToken, Page,
    PageRequest, Policy, Purged, Result, RuleFile, StoredAlert, StoredEvent, TokenId,
};

/// Writing events and their alerts.
pub trait EventWriter: Send + Sync {
    /// Stores a batch in one transaction, all or nothing, and returns only after it is
    /// committed with the store's configured durability.
    ///
    /// Each event is stored unless an event with the same dedupe key
    /// ([`crate::EventFields::dedupe_key`]) is already stored or appears earlier in the batch;
    /// the outcome tells, per position, which events were new. An alert is stored only when its
    /// event (`event_index`) was new. The intakes named by the new events get their event count
    /// and last event time updated in the same transaction.
    ///
    /// Errors: [`crate::StoreError::InvalidBatch`] when an alert's `event_index` is out of
    /// range (nothing stored); any other error also means nothing of the batch was stored.
    fn insert_batch(&self, events: &[NewEvent], alerts: &[NewAlert]) -> Result<BatchOutcome>;

    /// [`EventWriter::insert_batch`] for a caller that has no further use for the rows: a
    /// backend that hands them to another thread moves them instead of copying every string.
    fn insert_batch_owned(&self, events: Vec<NewEvent>, alerts: &[NewAlert]) -> Result<BatchOutcome> {
        self.insert_batch(&events, alerts)
    }
}

/// Activity-audit search over stored events.
pub trait EventQuery: Send + Sync {
    /// Matching events, newest first (by event time, then id), one page.
    fn search_events(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>>;

    /// Number of matching events.
    fn count_events(&self, filter: &EventFilter) -> Result<u64>;

    /// Number of matching events, counting no further than `limit`: `min(count, limit)`.
    /// Asking for one more than a display threshold tells "more than N" from "exactly N"
    /// while a backend stops reading rows at `limit`, so that counting a common filter over a
    /// large store stays as fast as showing its first page. The default counts everything.
    fn count_events_upto(&self, filter: &EventFilter, limit: u64) -> Result<u64> {
        Ok(self.count_events(filter)?.min(limit))
    }

    /// One event in full, with its raw JSON; `None` when no such id is stored.
    fn get_event(&self, id: EventId) -> Result<Option<FullEvent>>;

    /// Matching events counted by the value of `field`, largest groups first (ties by key),
    /// at most `limit` groups.
    fn group_events(
        &self,
        filter: &EventFilter,
        field: EventGroupField,
        limit: u32,
    ) -> Result<Vec<GroupCount>>;

    /// Matching events counted per time bucket of `bucket_ns` nanoseconds, oldest bucket first;
    /// only non-empty buckets are returned.
    fn histogram_events(&self, filter: &EventFilter, bucket_ns: i64) -> Result<Vec<HistogramBucket>>;
}

/// Search over stored alerts.
pub trait AlertQuery: Send + Sync {
    /// Matching alerts, newest first (by alert time, then id), one page.
    fn search_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<StoredAlert>>;

    /// Number of matching alerts.
    fn count_alerts(&self, filter: &AlertFilter) -> Result<u64>;

    /// Number of matching alerts, counting no further than `limit` (see
    /// [`EventQuery::count_events_upto`]).
    fn count_alerts_upto(&self, filter: &AlertFilter, limit: u64) -> Result<u64> {
        Ok(self.count_alerts(filter)?.min(limit))
    }

    /// Matching alerts counted by `field`, largest groups first (ties by key), at most `limit`.
    fn group_alerts(
        &self,
        filter: &AlertFilter,
        field: AlertGroupField,
        limit: u32,
    ) -> Result<Vec<GroupCount>>;

    /// Matching alerts per time bucket, oldest first, non-empty buckets only.
    fn histogram_alerts(&self, filter: &AlertFilter, bucket_ns: i64) -> Result<Vec<HistogramBucket>>;
}

/// Intakes: one key each, hashed.
pub trait IntakeStore: Send + Sync {
    /// Creates an intake. [`crate::StoreError::Conflict`] when the name is taken.
    fn create_intake(&self, intake: &NewIntake) -> Result<Intake>;

    /// Every intake, revoked ones included, by id.
    fn list_intakes(&self) -> Result<Vec<Intake>>;

    /// One intake by id.
    fn get_intake(&self, id: IntakeId) -> Result<Option<Intake>>;

    /// The non-revoked intake whose key hashes to `key_hash` (compared in constant time after
    /// the lookup), or `None`: the intake endpoints answer 401 then.
    fn find_active_intake(&self, key_hash: &KeyHash) -> Result<Option<Intake>>;

    /// Revokes an intake at `now_ns`; false when there is no such intake or it was already
    /// revoked (the first revocation time is kept).
    fn revoke_intake(&self, id: IntakeId, now_ns: i64) -> Result<bool>;
}

/// API tokens: hashed secrets with a role.
pub trait TokenStore: Send + Sync {
    /// Creates a token. [`crate::StoreError::Conflict`] when the name is taken.
    fn create_token(&self, token: &NewToken) -> Result<ApiToken>;

    /// Every token, revoked ones included, by id.
    fn list_tokens(&self) -> Result<Vec<ApiToken>>;

    /// The non-revoked token whose secret hashes to `key_hash`, or `None`.
    fn find_active_token(&self, key_hash: &KeyHash) -> Result<Option<ApiToken>>;

    /// Revokes a token; false when there is no such token or it was already revoked.
    fn revoke_token(&self, id: TokenId, now_ns: i64) -> Result<bool>;
}

/// Custom rule files, detection policies and settings.
pub trait ConfigStore: Send + Sync {
    /// Adds or replaces a rule file by name.
    fn put_rule_file(&self, file: &RuleFile) -> Result<()>;
    /// Every rule file, by name.
    fn list_rule_files(&self) -> Result<Vec<RuleFile>>;
    /// One rule file.
    fn get_rule_file(&self, name: &str) -> Result<Option<RuleFile>>;
    /// Removes a rule file; false when there was none.
    fn delete_rule_file(&self, name: &str) -> Result<bool>;

    /// Adds or replaces a policy by name.
    fn put_policy(&self, policy: &Policy) -> Result<()>;
    /// Every policy, by name.
    fn list_policies(&self) -> Result<Vec<Policy>>;
    /// One policy.
    fn get_policy(&self, name: &str) -> Result<Option<Policy>>;
    /// Removes a policy; false when there was none.
    fn delete_policy(&self, name: &str) -> Result<bool>;

    /// Sets a setting.
    fn put_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Reads a setting.
    fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Every setting, by key.
    fn list_settings(&self) -> Result<Vec<(String, String)>>;
}

/// Deleting old events and alerts.
pub trait Retention: Send + Sync {
    /// Deletes, in one short transaction, at most `max_events` events with time before
    /// `cutoff_ns` together with their alerts, and at most `max_events` further alerts with time
    /// before `cutoff_ns`. Intake batches queue behind at most one chunk.
    fn purge_chunk(&self, cutoff_ns: i64, max_events: u32) -> Result<Purged>;

    /// Deletes everything older than `cutoff_ns` chunk by chunk, letting writers in between
    /// chunks; returns the totals.
    fn purge_before(&self, cutoff_ns: i64, max_events_per_chunk: u32) -> Result<Purged> {
        let chunk = max_events_per_chunk.max(1);
        let mut total = Purged::default();
        loop {
            let done = self.purge_chunk(cutoff_ns, chunk)?;
            total += done;
            if done.events < u64::from(chunk) && done.alerts < u64::from(chunk) {
                return Ok(total);
            }
        }
    }
}

/// The schema version (migrations run when a backend opens its database).
pub trait Migrator: Send + Sync {
    /// The schema version the database is at.
    fn schema_version(&self) -> Result<i64>;
}

/// Everything a backend provides; the server holds an `Arc<dyn Store>`.
pub trait Store:
    EventWriter + EventQuery + AlertQuery + IntakeStore + TokenStore + ConfigStore + Retention + Migrator
{
}

impl<T> Store for T where
    T: EventWriter + EventQuery + AlertQuery + IntakeStore + TokenStore + ConfigStore + Retention + Migrator
{
}
