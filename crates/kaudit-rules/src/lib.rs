//! The Falco rules language for Kubernetes audit events: loading, compiling, evaluating.
//!
//! Owns: rule files, fields, compiled conditions, output formatting. Must never: do I/O or panic on input.

pub mod fields;

pub mod default_rules;
