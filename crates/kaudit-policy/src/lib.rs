//! Kubernetes audit Policy (`audit.k8s.io/v1`): loading, validation and evaluation exactly
//! as the apiserver does, applying a decision to recorded events, simulating a policy over
//! a recorded log, and checking which detection rules a policy starves.
//!
//! Owns: policy files and the decisions they make. Must never: do I/O (callers pass text
//! and bytes), panic on any input, or depend on the detection-rules engine (the coverage
//! analysis takes rules through its own small condition model, so the agent can link this
//! crate without the engine).
//!
//! Brief overview:
//! * [`load`] reads YAML or JSON into a [`Policy`] plus warnings ([`Loaded`]); every
//!   error and warning carries `line:column` ([`Diagnostic`]).
//! * [`Policy::evaluate`] gives the [`Decision`] for one request's [`RequestAttributes`];
//!   [`request_attributes`] recovers those attributes from a recorded event.
//! * [`apply_decision`] rewrites a recorded event as the decision would have written it.
//! * [`Simulator`] replays a log through a policy and counts events and bytes per rule.
//! * [`coverage`] finds the detection rules a policy starves, and [`recommend`] writes a
//!   small policy that starves none of them.

mod apply;
mod attributes;
mod coverage;
mod error;
mod eval;
mod load;
mod policy;
mod recommend;
mod simulate;

pub use apply::{apply_decision, strip_managed_fields};
pub use attributes::{ResourcePath, field_selector_name, parse_resource_path, request_attributes};
pub use coverage::{
    CheckOp, Condition, CoverageReport, DetectionRule, Reason, RuleCoverage, Starvation, Status, coverage,
    rule_coverage,
};
pub use error::{Diagnostic, PolicyError, Severity};
pub use eval::{RequestAttributes, User, resource_matches, url_matches};
pub use load::{API_VERSION, Loaded, load};
pub use policy::{Decision, GroupResources, Policy, PolicyRule, StageSet};
pub use recommend::{Recommendation, base_policy, recommend, render_policy};
pub use simulate::{KeptByLevel, RuleReport, SimulationReport, Simulator, Stats, Volume};
