//! The Falco rules language for Kubernetes audit events: loading rules files, compiling their
//! conditions and outputs, evaluating events, and producing alerts, exactly as Falco 0.44.1
//! (engine 0.62.0) with the k8saudit 0.18.0 and json 0.7.4 plugins does
//! (`shared/reference/falco-rules.md` is the specification).
//!
//! Owns: rules files (lists, macros, rules, exceptions, overrides, requirements), the field
//! catalogue and extraction ([`fields`]), compiled conditions, rule selection, output
//! formatting and the alert shape. Must never: do I/O, depend on an async runtime, or panic on
//! any rules file or event (the loader and the condition parser are fuzzed).
//!
//! # Overview
//!
//! ```no_run
//! use kaudit_rules::{load, Detector, Matching, RuleSource, Selection};
//!
//! let text = std::fs::read_to_string("k8s_audit_rules.yaml").unwrap();
//! let loaded = load(&[RuleSource::new("k8s_audit_rules.yaml", text)])?;
//! for w in &loaded.warnings {
//!     eprintln!("warning: {w}");
//! }
//! let mut rules = loaded.ruleset;
//! rules.select(&[Selection::DisableRule("*".into()), Selection::EnableTag("k8s".into())]);
//! rules.set_min_priority(kaudit_model::Priority::Notice);
//! let detector = Detector::new(rules, Matching::First);
//! let input = std::fs::read("audit.log").unwrap();
//! let mut n = 0;
//! kaudit_model::read_input(&input, |ev| {
//!     n += 1;
//!     for alert in detector.detect(&ev, n) {
//!         println!("{}", alert.to_falco_json("my-host"));
//!     }
//! }, |skip| eprintln!("{skip}"));
//! # Ok::<(), kaudit_rules::LoadError>(())
//! ```
//!
//! * [`load`] reads [`RuleSource`]s in order into one collection and returns a [`Loaded`]
//!   ([`RuleSet`] and [`Warning`]s) or a [`LoadError`] naming file, line and column with a
//!   caret snippet. Rules of other sources than `k8s_audit` (the syscall rules of
//!   `falco_rules.yaml`) are parsed but not evaluated; their lists and macros still count.
//! * [`RuleSet::rules`] describes each rule ([`RuleInfo`]): name, description, priority,
//!   tags, condition as written and as compiled (Falco's `condition_compiled`), output, the
//!   expanded condition as an [`Expr`] tree for static analysis, the fields it reads, and
//!   the verbs, resources and stages it can match.
//! * [`RuleSet::select`] applies [`Selection`]s (enable/disable by name pattern or tag) and
//!   [`RuleSet::set_min_priority`] the minimum priority.
//! * [`RuleSet::evaluate`] finds the matching rules for one event ([`fields::EventCtx`]),
//!   under [`Matching::First`] (Falco's default) or [`Matching::All`]; [`RuleSet::alert`]
//!   renders the [`Alert`]. [`Detector`] does both from a [`kaudit_model::Located`] event and
//!   is `Send + Sync`.
//! * [`Alert::to_falco_json`] gives Falco's JSON alert; [`Alert::output`] its text line.
//!
//! Speed: fields are resolved once at load; per event each field is extracted at most once;
//! rules are indexed by the verbs they can match and skipped by resource before their
//! condition is evaluated.

pub mod default_rules;
mod detector;
mod error;
mod eval;
mod expr;
pub mod fields;
mod getopt;
mod glob;
mod loader;
mod output;
mod prefilter;
mod ruleset;

pub use detector::Detector;
pub use error::{LoadError, LoadErrorKind, Warning};
pub use expr::{ComplexCheck, ComplexRhs, Expr, Modifier, Op, Operand, Transformer};
pub use loader::{Loaded, RuleSource, load};
pub use output::Alert;
pub use ruleset::{Matching, RuleInfo, RuleSet, Selection, SkippedRule};

#[cfg(test)]
mod tests;
