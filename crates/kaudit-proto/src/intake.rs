//! The intake's answer to a batch (`POST /intake/v1/events`, `POST /k8s-audit`).

use serde::{Deserialize, Serialize};

/// Sent with a 2xx status once the whole batch is durably committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeAck {
    /// Events of the batch that were new and are now stored.
    pub accepted: u64,
    /// Events of the batch already stored by an earlier delivery (retries), not stored again.
    pub duplicates: u64,
    /// Alerts raised by the new events.
    pub alerts: u64,
}
