//! [`Detector`]: a rule set and a matching mode, turning located audit events into alerts
//! without the caller handling field contexts.

use kaudit_model::Located;

use crate::fields::EventCtx;
use crate::output::Alert;
use crate::ruleset::{Matching, RuleSet};

/// Evaluates events against a rule set. `Send + Sync`: share it behind an `Arc`.
#[derive(Debug)]
pub struct Detector {
    rules: RuleSet,
    matching: Matching,
    hostname: Option<String>,
}

impl Detector {
    /// A detector for `rules` with the given matching mode.
    pub fn new(rules: RuleSet, matching: Matching) -> Detector {
        Detector {
            rules,
            matching,
            hostname: None,
        }
    }

    /// Sets the value of the `evt.hostname` field (none by default).
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Detector {
        self.hostname = Some(hostname.into());
        self
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The matching mode.
    pub fn matching(&self) -> Matching {
        self.matching
    }

    /// The alerts for one event, the `evt_num`-th of its input (counting from 1), in rule
    /// order.
    pub fn detect(&self, located: &Located<'_>, evt_num: u64) -> Vec<Alert> {
        let mut ctx = EventCtx::new(located, evt_num);
        if let Some(h) = &self.hostname {
            ctx = ctx.with_hostname(h);
        }
        let mut matched = Vec::new();
        self.rules.evaluate(&ctx, self.matching, &mut matched);
        matched
            .iter()
            .filter_map(|&i| self.rules.alert(i, &ctx))
            .collect()
    }

    /// The alerts for one event whose field context the caller built (to set
    /// [`EventCtx::with_first_time_nanos`], for instance). The hostname set with
    /// [`Detector::with_hostname`] is not applied: set it on the context.
    pub fn detect_ctx<'e>(&self, ctx: &'e EventCtx<'e>) -> Vec<Alert> {
        let mut matched = Vec::new();
        self.rules.evaluate(ctx, self.matching, &mut matched);
        matched.iter().filter_map(|&i| self.rules.alert(i, ctx)).collect()
    }

    /// The indexes of the rules matching one event, without rendering alerts.
    pub fn matches(&self, located: &Located<'_>, evt_num: u64) -> Vec<usize> {
        let ctx = EventCtx::new(located, evt_num);
        let mut matched = Vec::new();
        self.rules.evaluate(&ctx, self.matching, &mut matched);
        matched
    }
}
