//! Intakes, intake keys and API tokens (`/api/v1/intakes`, `/api/v1/tokens`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Read everything, and change rules, policies, intakes and tokens.
    Admin,
}

impl Role {
    /// The name as written on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?} (expected viewer or admin)")),
        }
    }
}

/// An intake: a named source of events from one cluster, with its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    /// Opaque identifier.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Cluster name stamped on every event received with its key.
    pub cluster: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Revocation time, absent while the key is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Time of the newest event received, absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    /// Events stored through this intake (duplicates not counted).
    #[serde(default)]
    pub event_count: u64,
    /// Events stored through this intake in the last hour, as counted by the running server
    /// (restarts from zero when the server restarts).
    #[serde(default)]
    pub events_last_hour: u64,
}

/// Body of `POST /api/v1/intakes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIntake {
    /// Name of the intake.
    pub name: String,
    /// Cluster name for its events.
    pub cluster: String,
}

/// Answer to `POST /api/v1/intakes`: the intake and its key, shown this once only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedIntake {
    /// The new intake.
    pub intake: Intake,
    /// The intake key; only its hash is stored.
    pub key: String,
}

/// An API token (without its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Opaque identifier.
    pub id: String,
    /// Free-form label.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Revocation time, absent while the token is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateToken {
    /// What the token may do.
    pub role: Role,
    /// Free-form label (default: empty).
    #[serde(default)]
    pub name: String,
}

/// Answer to `POST /api/v1/tokens`: the token and its secret, shown this once only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The new token.
    pub token: Token,
    /// The secret to send as `Authorization: Bearer`; only its hash is stored.
    pub key: String,
}

/// Answer to `GET /api/v1/whoami`: what the presented token is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The token's identifier.
    pub token_id: String,
    /// The token's role.
    pub role: Role,
}
