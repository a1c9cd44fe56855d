//! [`RuleSet`]: the loaded `k8s_audit` rules in evaluation order, their selection (enabled
//! flags, minimum priority), evaluation of an event, and alerts.

use std::collections::BTreeSet;

use kaudit_model::Priority;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::eval::{Cache, Node, Slots};
use crate::expr::Expr;
use crate::fields::{self, Body, EventCtx, FieldRef, Values};
use crate::loader::CompiledRule;
use crate::output::{self, Alert, OutputSegment};
use crate::prefilter;

/// Which rules alert for one event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Matching {
    /// Only the first matching rule, in definition order (Falco's default `rule_matching:
    /// first`).
    #[default]
    First,
    /// Every matching rule, in definition order (`rule_matching: all`).
    All,
}

/// One entry of a rule selection, applied in order after loading like the entries of Falco's
/// `rules:` configuration. Rule names may contain `*` wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selection {
    /// Enable the rules whose name matches the pattern.
    EnableRule(String),
    /// Disable the rules whose name matches the pattern.
    DisableRule(String),
    /// Enable the rules that have this tag.
    EnableTag(String),
    /// Disable the rules that have this tag.
    DisableTag(String),
}

/// A rule of another source than `k8s_audit`: loaded (its lists and macros count) but not
/// evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedRule {
    /// The rule's name.
    pub name: String,
    /// Its source (`syscall`, ...).
    pub source: String,
}

/// A loaded rule, as written and as compiled.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// The rule's name.
    pub name: String,
    /// Its description.
    pub desc: String,
    /// Its priority.
    pub priority: Priority,
    /// Its tags, sorted, without duplicates.
    pub tags: Vec<String>,
    /// Its source: always `k8s_audit`.
    pub source: String,
    /// Whether it is enabled (from the files, then the selection applied with
    /// [`RuleSet::select`]).
    pub enabled: bool,
    /// The condition as written (appends included, before exceptions, lists and macros).
    pub condition: String,
    /// The condition with exceptions, lists and macros expanded, printed as Falco prints
    /// `condition_compiled`.
    pub condition_compiled: String,
    /// The output template (trimmed).
    pub output: String,
    /// The expanded condition.
    pub expr: Expr,
    /// The rules file of the rule's (latest) definition.
    pub file: String,
    /// Its line there.
    pub line: usize,
    /// Its column there.
    pub column: usize,
    fields: Vec<FieldRef>,
    verbs: Option<BTreeSet<String>>,
    resources: Option<BTreeSet<String>>,
    stages: Option<BTreeSet<String>>,
}

/// What the loader knows of a rule, to build a [`RuleInfo`].
pub(crate) struct RuleParts {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub source: String,
    pub enabled: bool,
    pub condition: String,
    pub condition_compiled: String,
    pub output: String,
    pub expr: Expr,
    pub output_fields: Vec<FieldRef>,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl RuleInfo {
    pub(crate) fn new(p: RuleParts) -> RuleInfo {
        let mut fields = p.expr.fields();
        for f in p.output_fields {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        RuleInfo {
            verbs: prefilter::allowed_values(&p.expr, &prefilter::is_verb),
            resources: prefilter::allowed_values(&p.expr, &prefilter::is_resource),
            stages: prefilter::allowed_values(&p.expr, &prefilter::is_stage),
            name: p.name,
            desc: p.desc,
            priority: p.priority,
            tags: p.tags,
            source: p.source,
            enabled: p.enabled,
            condition: p.condition,
            condition_compiled: p.condition_compiled,
            output: p.output,
            expr: p.expr,
            file: p.file,
            line: p.line,
            column: p.column,
            fields,
        }
    }

    /// Every field the rule reads, in its condition and its output, each once.
    pub fn fields(&self) -> &[FieldRef] {
        &self.fields
    }

    /// The verbs (`ka.verb`) the condition can match, when it restricts them; `None` when
    /// any verb may match. An event whose verb is outside the set never matches.
    pub fn verbs(&self) -> Option<&BTreeSet<String>> {
        self.verbs.as_ref()
    }

    /// The resources (`ka.target.resource`) the condition can match, when it restricts them.
    pub fn resources(&self) -> Option<&BTreeSet<String>> {
        self.resources.as_ref()
    }

    /// The stages (`ka.stage` or `jevt.value[/stage]`) the condition can match, when it
    /// restricts them.
    pub fn stages(&self) -> Option<&BTreeSet<String>> {
        self.stages.as_ref()
    }

    /// The audit level the rule's condition needs: the largest [`Body`] of the fields the
    /// condition reads (request body fields need `Request`, response body fields
    /// `RequestResponse`). Fields only printed in the output do not count: without them the
    /// rule still fires, and prints `<NA>`.
    pub fn body(&self) -> Body {
        self.expr
            .fields()
            .iter()
            .map(FieldRef::body)
            .max()
            .unwrap_or(Body::None)
    }
}

struct Rule {
    node: Node,
    output: Vec<OutputSegment>,
}

/// Rules indexed by the verbs they can match, and the resources each can match.
#[derive(Default)]
struct Index {
    verb_slot: usize,
    resource_slot: usize,
    /// For each verb some rule restricts to: the active rules that may match it, in order.
    by_verb: FxHashMap<Box<str>, Vec<usize>>,
    /// The active rules that do not restrict the verb, in order.
    any_verb: Vec<usize>,
    /// For each rule, the resources it may match, when restricted.
    resources: Vec<Option<FxHashSet<Box<str>>>>,
}

/// The loaded `k8s_audit` rules, ready to evaluate events. `Send + Sync`: share it behind an
/// `Arc` to evaluate from several threads.
pub struct RuleSet {
    infos: Vec<RuleInfo>,
    rules: Vec<Rule>,
    skipped: Vec<SkippedRule>,
    slots: Slots,
    min_priority: Priority,
    index: Index,
    evt_time: Option<FieldRef>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.infos.len())
            .field("min_priority", &self.min_priority)
            .finish()
    }
}

impl RuleSet {
    pub(crate) fn new(compiled: Vec<CompiledRule>, skipped: Vec<SkippedRule>) -> RuleSet {
        let mut slots = Slots::default();
        let mut infos = Vec::with_capacity(compiled.len());
        let mut rules = Vec::with_capacity(compiled.len());
        for c in compiled {
            let node = crate::eval::compile(&c.info.expr, &mut slots);
            rules.push(Rule {
                node,
                output: c.output,
            });
            infos.push(c.info);
        }
        let evt_time = fields::resolve("evt.time", None).ok();
        let mut set = RuleSet {
            infos,
            rules,
            skipped,
            slots,
            min_priority: Priority::Debug,
            index: Index::default(),
            evt_time,
        };
        set.rebuild_index();
        set
    }

    /// The rules, in evaluation order (the order of first definition).
    pub fn rules(&self) -> &[RuleInfo] {
        &self.infos
    }

    /// The rules of other sources that were loaded but are not evaluated.
    pub fn skipped(&self) -> &[SkippedRule] {
        &self.skipped
    }

    /// Applies selection entries in order, on top of the current enabled flags.
    pub fn select(&mut self, selections: &[Selection]) {
        for s in selections {
            match s {
                Selection::EnableRule(p) | Selection::DisableRule(p) => {
                    let on = matches!(s, Selection::EnableRule(_));
                    for r in &mut self.infos {
                        if wildcard_match(p.as_bytes(), r.name.as_bytes()) {
                            r.enabled = on;
                        }
                    }
                }
                Selection::EnableTag(t) | Selection::DisableTag(t) => {
                    let on = matches!(s, Selection::EnableTag(_));
                    for r in &mut self.infos {
                        if r.tags.iter().any(|x| x == t) {
                            r.enabled = on;
                        }
                    }
                }
            }
        }
        self.rebuild_index();
    }

    /// Only rules at least as severe as `priority` are evaluated (default: `Debug`, all).
    pub fn set_min_priority(&mut self, priority: Priority) {
        self.min_priority = priority;
        self.rebuild_index();
    }

    /// The minimum priority of evaluated rules.
    pub fn min_priority(&self) -> Priority {
        self.min_priority
    }

    /// Whether rule `i` is evaluated: enabled and severe enough.
    pub fn is_active(&self, i: usize) -> bool {
        self.infos
            .get(i)
            .is_some_and(|r| r.enabled && r.priority.at_least(self.min_priority))
    }

    fn rebuild_index(&mut self) {
        let verb = fields::resolve("ka.verb", None).ok();
        let resource = fields::resolve("ka.target.resource", None).ok();
        let (Some(verb), Some(resource)) = (verb, resource) else {
            return;
        };
        let mut index = Index {
            verb_slot: self.slots.slot(&verb),
            resource_slot: self.slots.slot(&resource),
            ..Index::default()
        };
        let active: Vec<usize> = (0..self.infos.len()).filter(|&i| self.is_active(i)).collect();
        let mut verbs: BTreeSet<&str> = BTreeSet::new();
        for &i in &active {
            match self.infos[i].verbs() {
                Some(v) => verbs.extend(v.iter().map(String::as_str)),
                None => index.any_verb.push(i),
            }
        }
        for v in verbs {
            let list = active
                .iter()
                .copied()
                .filter(|&i| self.infos[i].verbs().is_none_or(|set| set.contains(v)))
                .collect();
            index.by_verb.insert(v.into(), list);
        }
        index.resources = self
            .infos
            .iter()
            .map(|r| {
                r.resources()
                    .map(|set| set.iter().map(|s| s.as_str().into()).collect())
            })
            .collect();
        self.index = index;
    }

    /// Evaluates one event: fills `out` (cleared first) with the indexes of the matching
    /// active rules in definition order, only the first one under [`Matching::First`].
    pub fn evaluate<'e>(&self, ctx: &'e EventCtx<'e>, matching: Matching, out: &mut Vec<usize>) {
        out.clear();
        let mut cache = Cache::new(ctx, self.slots.refs.len());
        let candidates = match cache.get(self.index.verb_slot, &self.slots) {
            Values::One(v) => self.index.by_verb.get(&**v).unwrap_or(&self.index.any_verb),
            _ => &self.index.any_verb,
        };
        for &i in candidates {
            if let Some(Some(resources)) = self.index.resources.get(i) {
                let ok = match cache.get(self.index.resource_slot, &self.slots) {
                    Values::One(r) => resources.contains(&**r),
                    _ => false,
                };
                if !ok {
                    continue;
                }
            }
            if self.rules[i].node.eval(&mut cache, &self.slots) {
                out.push(i);
                if matching == Matching::First {
                    return;
                }
            }
        }
    }

    /// Evaluates every active rule on the event, without the verb index (to check that the
    /// index never changes a result).
    #[cfg(test)]
    pub(crate) fn evaluate_without_index<'e>(&self, ctx: &'e EventCtx<'e>) -> Vec<usize> {
        let mut cache = Cache::new(ctx, self.slots.refs.len());
        (0..self.rules.len())
            .filter(|&i| self.is_active(i) && self.rules[i].node.eval(&mut cache, &self.slots))
            .collect()
    }

    /// The alert of rule `rule_index` for an event it matched: the rendered output and its
    /// fields. `None` when there is no such rule.
    pub fn alert<'e>(&self, rule_index: usize, ctx: &'e EventCtx<'e>) -> Option<Alert> {
        let info = self.infos.get(rule_index)?;
        let rule = self.rules.get(rule_index)?;
        let message = output::render(&rule.output, ctx);
        let mut output_fields = output::output_fields(&rule.output, ctx);
        let evt_time = match &self.evt_time {
            Some(f) => {
                if !output_fields.iter().any(|(k, _)| k == "evt.time") {
                    output_fields.push(("evt.time".to_owned(), f.output_json(ctx)));
                }
                f.output_text(ctx).map(|c| c.into_owned()).unwrap_or_default()
            }
            None => String::new(),
        };
        Some(Alert {
            rule: info.name.clone(),
            rule_index,
            priority: info.priority,
            source: info.source.clone(),
            tags: info.tags.clone(),
            time_nanos: ctx.time_nanos(),
            evt_time,
            message,
            output_fields,
        })
    }
}

/// Matches a rule name against a pattern where `*` stands for any text.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            p += 1;
            star = Some((p, n));
        } else if p < pattern.len() && n < name.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if p == pattern.len() && n == name.len() {
            return true;
        } else if let Some((sp, sn)) = star.filter(|&(_, sn)| sn < name.len()) {
            p = sp;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
}
