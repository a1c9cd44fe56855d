//! The optional audit policy applied by the agent (`--policy`): each event is re-decided as
//! the apiserver would under that policy, and reduced (bodies stripped, stage omitted, or
//! dropped at level `None`) before shipping. Evaluation belongs to `kaudit-policy`; this
//! module only loads the file and adapts the result.

use std::borrow::Cow;
use std::path::Path;

use kaudit_model::AuditEvent;

use crate::error::AgentError;

/// A policy loaded from a file.
pub struct LoadedPolicy {
    policy: kaudit_policy::Policy,
}

impl LoadedPolicy {
    /// Reads and validates the policy file; warnings (unknown fields and the like) are
    /// logged, errors name `file:line:column`.
    pub fn load(path: &Path) -> Result<LoadedPolicy, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let loaded = kaudit_policy::load(&text).map_err(|err| AgentError::Policy {
            path: path.to_path_buf(),
            message: err
                .diagnostics()
                .iter()
                .map(|diagnostic| format!("{}:{diagnostic}", path.display()))
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        for warning in &loaded.warnings {
            tracing::warn!(place = %format!("{}:{}", path.display(), warning.span), message = %warning.message, "audit policy warning");
        }
        Ok(LoadedPolicy {
            policy: loaded.policy,
        })
    }

    /// The event as the policy would have recorded it, `None` when it would not exist.
    pub fn apply<'a>(&self, event: &AuditEvent<'_>, raw: &'a str) -> Option<Cow<'a, str>> {
        let attributes = kaudit_policy::request_attributes(event);
        let decision = self.policy.evaluate(&attributes);
        kaudit_policy::apply_decision(raw, &decision).map(Cow::Owned)
    }
}
