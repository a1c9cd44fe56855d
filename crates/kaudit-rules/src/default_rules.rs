//! kaudit's own default rule pack (`rules/kaudit_rules.yaml` in the repository), compiled into
//! the crate so that `kaudit scan` has rules without any file. `rules/README.md` describes the
//! rules, their tags and how to tune them.

/// The name the default pack goes by in errors, warnings and alerts.
pub const DEFAULT_RULES_FILE: &str = "kaudit_rules.yaml";

/// The text of the default pack: Falco rules language, every rule `source: k8s_audit`.
pub const DEFAULT_RULES: &str = include_str!("../../../rules/kaudit_rules.yaml");
