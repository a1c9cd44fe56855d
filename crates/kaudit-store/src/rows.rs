//! Plain owned rows: what the server writes and what queries return.

use kaudit_model::{Level, Priority, Stage};
use sha2::{Digest, Sha256};

use crate::KeyHash;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A stored event's id, assigned by the store, increasing in insertion order.
    EventId
);
id_type!(
    /// A stored alert's id, assigned by the store.
    AlertId
);
id_type!(
    /// An intake's id (one intake key, one cluster name).
    IntakeId
);
id_type!(
    /// An API token's id.
    TokenId
);

/// The fields of an audit event that the store indexes and returns in search results.
///
/// Optional fields are `None` when the event does not carry them; an empty string is stored
/// as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFields {
    /// Cluster name of the intake that delivered the event.
    pub cluster: String,
    /// The intake that delivered it (`None` for imports without an intake).
    pub intake_id: Option<IntakeId>,
    /// `auditID`.
    pub audit_id: String,
    /// `stage`.
    pub stage: Stage,
    /// Digest of the raw event (see [`event_digest`]); part of the dedupe key.
    pub digest: [u8; 32],
    /// `stageTimestamp` in ns since the epoch (falling back to `requestReceivedTimestamp`): the
    /// time searches sort and filter on. It must be read from the event itself, never from the
    /// arrival time: backends may key the dedupe index by it, so two copies of one event must
    /// carry the same value.
    pub time_ns: i64,
    /// When the intake received the event, in ns since the epoch.
    pub received_ns: i64,
    /// `verb`.
    pub verb: String,
    /// `user.username`.
    pub username: String,
    /// `user.groups`, in order.
    pub groups: Vec<String>,
    /// `impersonatedUser.username`.
    pub impersonated_user: Option<String>,
    /// `objectRef.resource`.
    pub resource: Option<String>,
    /// `objectRef.subresource`.
    pub subresource: Option<String>,
    /// `objectRef.namespace`.
    pub namespace: Option<String>,
    /// `objectRef.name`.
    pub name: Option<String>,
    /// `objectRef.apiGroup` (`None` or empty for the core group).
    pub api_group: Option<String>,
    /// The first of `sourceIPs`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
    /// `responseStatus.code`.
    pub response_code: Option<i32>,
    /// The `authorization.k8s.io/decision` annotation (`allow`, `forbid`).
    pub decision: Option<String>,
    /// `requestURI`.
    pub request_uri: String,
    /// `level`.
    pub level: Level,
}

impl EventFields {
    /// The dedupe key: the first 128 bits of SHA-256 over cluster, auditID, stage and digest.
    /// Two events with the same key are the same event; a collision needs 2^64 distinct events.
    pub fn dedupe_key(&self) -> [u8; 16] {
        let mut hasher = Sha256::new();
        for part in [
            self.cluster.as_bytes(),
            self.audit_id.as_bytes(),
            self.stage.as_str().as_bytes(),
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.update(self.digest);
        let full = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&full[..16]);
        key
    }
}

/// The digest stored with every event: SHA-256 of the event's JSON text with insignificant
/// whitespace removed, so that a re-indented copy of the same event is still a duplicate.
pub fn event_digest(raw_json: &str) -> [u8; 32] {
    let minified = kaudit_model::json::minify(raw_json);
    Sha256::digest(minified.as_bytes()).into()
}

/// An event to store: its fields and its raw JSON text (the store compresses it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Indexed fields.
    pub fields: EventFields,
    /// The event as received, one JSON object.
    pub raw_json: String,
}

/// An alert to store with the event at `event_index` in the same batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    /// Position of the triggering event in the batch's event list.
    pub event_index: usize,
    /// The alert itself.
    pub fields: AlertFields,
}

/// What an alert says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertFields {
    /// Time of the alert (normally the event's time), ns since the epoch.
    pub time_ns: i64,
    /// Rule name.
    pub rule: String,
    /// Rule priority.
    pub priority: Priority,
    /// Rendered output text.
    pub output: String,
    /// Output fields as a JSON object text (`{"ka.user.name":"alice",...}`).
    pub output_fields_json: String,
    /// Rule tags.
    pub tags: Vec<String>,
    /// Detection policy that enabled the rule.
    pub policy: String,
    /// Cluster of the event.
    pub cluster: String,
    /// Namespace of the event's object.
    pub namespace: Option<String>,
    /// User of the event.
    pub username: String,
    /// Rule source (`k8s_audit`).
    pub source: String,
}

/// One position's result in [`BatchOutcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insertion {
    /// Newly stored with this id.
    New(EventId),
    /// Already stored (by an earlier batch or earlier in this batch); nothing written.
    Duplicate,
}

/// What [`crate::EventWriter::insert_batch`] did, committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// One entry per event of the batch, in batch order.
    pub events: Vec<Insertion>,
    /// Alerts stored (alerts of duplicate events are dropped).
    pub alerts_stored: usize,
}

impl BatchOutcome {
    /// Number of events newly stored.
    pub fn new_count(&self) -> usize {
        self.events
            .iter()
            .filter(|i| matches!(i, Insertion::New(_)))
            .count()
    }
}

/// An event as returned by searches (without its raw JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Store id.
    pub id: EventId,
    /// Indexed fields.
    pub fields: EventFields,
}

/// One event in full, with its raw JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullEvent {
    /// The stored fields.
    pub event: StoredEvent,
    /// The event as received.
    pub raw_json: String,
}

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAlert {
    /// Store id.
    pub id: AlertId,
    /// The event that triggered it.
    pub event_id: EventId,
    /// What the alert says.
    pub fields: AlertFields,
}

/// An intake to create. The key itself is never stored, only its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIntake {
    /// Unique name.
    pub name: String,
    /// Cluster name stamped on every event received with this key.
    pub cluster: String,
    /// Hash of the intake key.
    pub key_hash: KeyHash,
    /// Creation time, ns since the epoch.
    pub created_ns: i64,
}

/// A stored intake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intake {
    /// Store id.
    pub id: IntakeId,
    /// Unique name.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// Hash of the intake key.
    pub key_hash: KeyHash,
    /// Creation time, ns.
    pub created_ns: i64,
    /// Revocation time, ns; a revoked intake authenticates nothing.
    pub revoked_ns: Option<i64>,
    /// Time of the newest event stored through it, ns.
    pub last_event_ns: Option<i64>,
    /// Number of events stored through it (duplicates not counted).
    pub event_count: u64,
}

/// The role of an API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// Read and administer rules, policies, intakes and tokens.
    Admin,
}

impl Role {
    /// `viewer` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer` or `admin`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A token to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Unique name.
    pub name: String,
    /// Access role.
    pub role: Role,
    /// Hash of the token secret.
    pub key_hash: KeyHash,
    /// Creation time, ns.
    pub created_ns: i64,
}

/// A stored API token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    /// Store id.
    pub id: TokenId,
    /// Unique name.
    pub name: String,
    /// Access role.
    pub role: Role,
    /// Hash of the secret.
    pub key_hash: KeyHash,
    /// Creation time, ns.
    pub created_ns: i64,
    /// Revocation time, ns.
    pub revoked_ns: Option<i64>,
}

/// A custom rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFile {
    /// Unique file name.
    pub name: String,
    /// YAML text.
    pub content: String,
    /// Last update, ns.
    pub updated_ns: i64,
}

/// A detection policy: a named, scoped group of rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// Whether its rules run.
    pub enabled: bool,
    /// Scope as JSON text (admission-webhook style rule list), `null` for everything.
    pub scope_json: String,
    /// Selected rules (names and tags) as JSON text.
    pub rules_json: String,
    /// Shipped with kaudit (not deletable by users; the server enforces that).
    pub builtin: bool,
    /// Last update, ns.
    pub updated_ns: i64,
}

/// What one retention chunk deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Events deleted.
    pub events: u64,
    /// Alerts deleted.
    pub alerts: u64,
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Purged) {
        self.events += other.events;
        self.alerts += other.alerts;
    }
}
