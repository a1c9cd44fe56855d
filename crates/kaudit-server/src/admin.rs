//! Administration shared by the API and the CLI's offline mode (`--data-dir`): intakes and
//! their keys, API tokens, first-start bootstrap, and conversions of stored rows to the
//! protocol types.

use kaudit_proto as proto;
use kaudit_store::{ApiToken, Intake, KeyHash, NewIntake, NewToken, Role, Store, StoreError};

use crate::auth::{API_TOKEN_PREFIX, INTAKE_KEY_PREFIX, generate_secret};
use crate::policy::default_policies;

/// Why an administrative action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A name or cluster that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No random source.
    #[error(transparent)]
    Random(#[from] crate::auth::RandomError),
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn check_label(what: &str, value: &str) -> Result<(), AdminError> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && value.chars().all(|c| !c.is_control())
        && value.trim() == value;
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid {what} {value:?}: 1-200 characters, no control characters, no leading or trailing blanks"
        )))
    }
}

/// Creates an intake; returns it with its key, which is not stored and cannot be shown again.
pub fn create_intake(store: &dyn Store, name: &str, cluster: &str) -> Result<(Intake, String), AdminError> {
    check_label("intake name", name)?;
    check_label("cluster name", cluster)?;
    let key = generate_secret(INTAKE_KEY_PREFIX)?;
    let intake = store.create_intake(&NewIntake {
        name: name.to_owned(),
        cluster: cluster.to_owned(),
        key_hash: KeyHash::of_secret(&key),
        created_ns: now_ns(),
    })?;
    Ok((intake, key))
}

/// Creates an API token; returns it with its secret. An empty name gets a generated one.
pub fn create_token(store: &dyn Store, role: Role, name: &str) -> Result<(ApiToken, String), AdminError> {
    let secret = generate_secret(API_TOKEN_PREFIX)?;
    let name = if name.is_empty() {
        // The secret's random tail makes a unique enough label; it reveals only 6 of 64 digits.
        format!(
            "{}-{}",
            role.as_str(),
            &secret[API_TOKEN_PREFIX.len()..API_TOKEN_PREFIX.len() + 6]
        )
    } else {
        check_label("token name", name)?;
        name.to_owned()
    };
    let token = store.create_token(&NewToken {
        name,
        role,
        key_hash: KeyHash::of_secret(&secret),
        created_ns: now_ns(),
    })?;
    Ok((token, secret))
}

/// What the first start created, to print once. A secret is absent when the data directory
/// already had one of its kind (created offline with `kaudit token create` or `kaudit intake
/// create` before the first start).
pub struct FirstStart {
    /// The admin token, when none existed.
    pub admin_token: Option<String>,
    /// The key of the `default` intake (cluster `default`), when no intake existed.
    pub intake_key: Option<String>,
    /// The cluster name of the `default` intake.
    pub cluster: String,
}

/// Setting recording that the first start happened.
const BOOTSTRAPPED: &str = "bootstrapped_ns";

/// On a store that was never started: creates the default policies, an admin token unless an
/// active one exists, and a `default` intake (cluster `default`) unless an intake exists, and
/// records that this happened. Returns what it created (`None` when nothing), so that every
/// created secret is shown once. Later starts only add default policies that are missing.
pub fn bootstrap(store: &dyn Store) -> Result<Option<FirstStart>, AdminError> {
    for policy in default_policies() {
        if store.get_policy(&policy.name)?.is_none() {
            store.put_policy(&crate::api::rules::policy_row(&policy))?;
        }
    }
    if store.get_setting(BOOTSTRAPPED)?.is_some() {
        return Ok(None);
    }
    let has_admin = store
        .list_tokens()?
        .iter()
        .any(|t| t.role == Role::Admin && t.revoked_ns.is_none());
    let admin_token = if has_admin {
        None
    } else {
        Some(create_token(store, Role::Admin, "first-admin")?.1)
    };
    let has_intake = !store.list_intakes()?.is_empty();
    let intake_key = if has_intake {
        None
    } else {
        Some(create_intake(store, "default", "default")?.1)
    };
    store.put_setting(BOOTSTRAPPED, &now_ns().to_string())?;
    if admin_token.is_none() && intake_key.is_none() {
        return Ok(None);
    }
    Ok(Some(FirstStart {
        admin_token,
        intake_key,
        cluster: "default".to_owned(),
    }))
}

/// The protocol form of an intake.
pub fn intake_dto(intake: &Intake, events_last_hour: u64) -> proto::Intake {
    proto::Intake {
        id: intake.id.to_string(),
        name: intake.name.clone(),
        cluster: intake.cluster.clone(),
        created_at: kaudit_model::format_rfc3339_nanos(intake.created_ns),
        revoked_at: intake.revoked_ns.map(kaudit_model::format_rfc3339_nanos),
        last_event_at: intake.last_event_ns.map(kaudit_model::format_rfc3339_nanos),
        event_count: intake.event_count,
        events_last_hour,
    }
}

/// The protocol form of a token (without its secret).
pub fn token_dto(token: &ApiToken) -> proto::Token {
    proto::Token {
        id: token.id.to_string(),
        name: token.name.clone(),
        role: role_dto(token.role),
        created_at: kaudit_model::format_rfc3339_nanos(token.created_ns),
        revoked_at: token.revoked_ns.map(kaudit_model::format_rfc3339_nanos),
    }
}

/// Store role → protocol role.
pub fn role_dto(role: Role) -> proto::Role {
    match role {
        Role::Viewer => proto::Role::Viewer,
        Role::Admin => proto::Role::Admin,
    }
}

/// Protocol role → store role.
pub fn role_row(role: proto::Role) -> Role {
    match role {
        proto::Role::Viewer => Role::Viewer,
        proto::Role::Admin => Role::Admin,
    }
}
