//! Replaying a recorded log through a policy: per policy rule and in total, how many events
//! it matches, keeps and drops, the bytes before and after applying its decisions, and who
//! and what is behind the volume.
//!
//! Bytes are counted as log lines: the event's JSON text plus one newline. A log recorded
//! at a lower level than the simulated one cannot show the bodies it did not record, nor the
//! stages its own policy omitted: such events are counted in `under_recorded`, and the
//! figures after are then a lower bound.

use std::collections::HashMap;

use kaudit_model::{AuditEvent, Level};
use serde::{Serialize, Serializer};

use crate::apply::apply_decision;
use crate::attributes::request_attributes;
use crate::eval::RequestAttributes;
use crate::policy::Policy;

/// Accumulates a simulation; feed it events with [`Simulator::add`].
pub struct Simulator<'p> {
    policy: &'p Policy,
    rules: Vec<Tally>,
    unmatched: Tally,
}

/// The result of a simulation.
#[derive(Clone, Debug, Serialize)]
pub struct SimulationReport {
    /// One entry per policy rule, in file order.
    pub rules: Vec<RuleReport>,
    /// Events no rule matched (level `None`: all dropped).
    pub unmatched: Stats,
    /// Every event.
    pub total: Stats,
}

/// One policy rule's share of the log.
#[derive(Clone, Debug, Serialize)]
pub struct RuleReport {
    /// 0-based index in the policy.
    pub index: usize,
    /// Line of the rule in the policy file (0 when the policy was built in code).
    pub line: usize,
    /// The rule's level.
    #[serde(serialize_with = "level_name")]
    pub level: Level,
    /// The events it decided.
    #[serde(flatten)]
    pub stats: Stats,
}

/// Counts and volumes for a set of events.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Events decided.
    pub events: u64,
    /// Events still written after applying the decision.
    pub kept: u64,
    /// Events no longer written: level `None` or stage omitted.
    pub dropped: u64,
    /// Of `dropped`, those dropped only because their stage is omitted.
    pub dropped_by_stage: u64,
    /// Kept events per level (`Metadata`, `Request`, `RequestResponse`).
    pub kept_by_level: KeptByLevel,
    /// Events recorded below the simulated level: their bodies were never recorded, so
    /// `bytes_after` under-counts them.
    pub under_recorded: u64,
    /// Bytes of the events as recorded (one line each, newline included).
    pub bytes_before: u64,
    /// Bytes of the events kept, after applying the decision.
    pub bytes_after: u64,
    /// The users behind the volume, largest first.
    pub top_users: Vec<Volume>,
    /// The resources (`group/resource/subresource`, or the path of a non-resource
    /// request) behind the volume, largest first.
    pub top_resources: Vec<Volume>,
    /// The verbs behind the volume, largest first.
    pub top_verbs: Vec<Volume>,
}

/// Kept events per level.
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeptByLevel {
    /// At `Metadata`.
    pub metadata: u64,
    /// At `Request`.
    pub request: u64,
    /// At `RequestResponse`.
    pub request_response: u64,
}

/// The share of one user, resource or verb.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// The user name, resource or verb.
    pub name: String,
    /// Events.
    pub events: u64,
    /// Events kept.
    pub kept: u64,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

#[derive(Default)]
struct Tally {
    stats: Stats,
    users: HashMap<String, Volume>,
    resources: HashMap<String, Volume>,
    verbs: HashMap<String, Volume>,
}

struct Outcome {
    kept: bool,
    dropped_by_stage: bool,
    level: Level,
    under_recorded: bool,
    before: u64,
    after: u64,
}

impl Tally {
    fn add(&mut self, attrs: &RequestAttributes, outcome: &Outcome) {
        let s = &mut self.stats;
        s.events += 1;
        if outcome.kept {
            s.kept += 1;
            match outcome.level {
                Level::Metadata => s.kept_by_level.metadata += 1,
                Level::Request => s.kept_by_level.request += 1,
                Level::RequestResponse => s.kept_by_level.request_response += 1,
                Level::None => {}
            }
        } else {
            s.dropped += 1;
            if outcome.dropped_by_stage {
                s.dropped_by_stage += 1;
            }
        }
        if outcome.under_recorded {
            s.under_recorded += 1;
        }
        s.bytes_before += outcome.before;
        s.bytes_after += outcome.after;
        let user = match &attrs.user {
            Some(user) => user.name.clone(),
            None => "(no user)".to_owned(),
        };
        bump(&mut self.users, user, outcome);
        bump(&mut self.resources, resource_key(attrs), outcome);
        bump(&mut self.verbs, attrs.verb.clone(), outcome);
    }

    fn merge(&mut self, other: &Tally) {
        let s = &mut self.stats;
        let o = &other.stats;
        s.events += o.events;
        s.kept += o.kept;
        s.dropped += o.dropped;
        s.dropped_by_stage += o.dropped_by_stage;
        s.kept_by_level.metadata += o.kept_by_level.metadata;
        s.kept_by_level.request += o.kept_by_level.request;
        s.kept_by_level.request_response += o.kept_by_level.request_response;
        s.under_recorded += o.under_recorded;
        s.bytes_before += o.bytes_before;
        s.bytes_after += o.bytes_after;
        for (mine, theirs) in [
            (&mut self.users, &other.users),
            (&mut self.resources, &other.resources),
            (&mut self.verbs, &other.verbs),
        ] {
            for (name, volume) in theirs {
                let entry = mine.entry(name.clone()).or_insert_with(|| Volume::new(name));
                entry.events += volume.events;
                entry.kept += volume.kept;
                entry.bytes_before += volume.bytes_before;
                entry.bytes_after += volume.bytes_after;
            }
        }
    }

    fn finish(mut self, top: usize) -> Stats {
        self.stats.top_users = largest(self.users, top);
        self.stats.top_resources = largest(self.resources, top);
        self.stats.top_verbs = largest(self.verbs, top);
        self.stats
    }
}

impl Volume {
    fn new(name: &str) -> Volume {
        Volume {
            name: name.to_owned(),
            events: 0,
            kept: 0,
            bytes_before: 0,
            bytes_after: 0,
        }
    }
}

fn bump(map: &mut HashMap<String, Volume>, key: String, outcome: &Outcome) {
    let entry = map.entry(key).or_insert_with_key(|k| Volume::new(k));
    entry.events += 1;
    entry.kept += u64::from(outcome.kept);
    entry.bytes_before += outcome.before;
    entry.bytes_after += outcome.after;
}

/// Largest first: by bytes after, then bytes before, then events, then name.
fn largest(map: HashMap<String, Volume>, top: usize) -> Vec<Volume> {
    let mut all: Vec<Volume> = map.into_values().collect();
    all.sort_by(|a, b| {
        (b.bytes_after, b.bytes_before, b.events)
            .cmp(&(a.bytes_after, a.bytes_before, a.events))
            .then(a.name.cmp(&b.name))
    });
    all.truncate(top);
    all
}

/// `group/resource/subresource` without empty parts (`pods`, `pods/exec`,
/// `apps/deployments`), or the path of a non-resource request.
fn resource_key(attrs: &RequestAttributes) -> String {
    if !attrs.resource_request {
        return attrs.path.clone();
    }
    [
        attrs.api_group.as_str(),
        attrs.resource.as_str(),
        attrs.subresource.as_str(),
    ]
    .iter()
    .filter(|p| !p.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join("/")
}

impl<'p> Simulator<'p> {
    /// A simulation of `policy`.
    pub fn new(policy: &'p Policy) -> Simulator<'p> {
        Simulator {
            policy,
            rules: policy.rules.iter().map(|_| Tally::default()).collect(),
            unmatched: Tally::default(),
        }
    }

    /// Counts one recorded event.
    pub fn add(&mut self, event: &AuditEvent<'_>) {
        let attrs = request_attributes(event);
        let decision = self.policy.evaluate(&attrs);
        let raw = event.raw();
        let before = raw.len() as u64 + 1;
        let applied = apply_decision(raw, &decision);
        let recorded: Option<Level> = event.level.as_deref().and_then(|l| l.parse().ok());
        let outcome = Outcome {
            kept: applied.is_some(),
            dropped_by_stage: decision.level != Level::None && applied.is_none(),
            level: decision.level,
            under_recorded: applied.is_some() && recorded.is_some_and(|r| r < decision.level),
            before,
            after: applied.map_or(0, |text| text.len() as u64 + 1),
        };
        let tally = match decision.rule {
            Some(index) => &mut self.rules[index],
            None => &mut self.unmatched,
        };
        tally.add(&attrs, &outcome);
    }

    /// The report, with the `top` largest users, resources and verbs of each rule and of
    /// the total.
    pub fn finish(self, top: usize) -> SimulationReport {
        let mut total = Tally::default();
        for tally in self.rules.iter().chain(std::iter::once(&self.unmatched)) {
            total.merge(tally);
        }
        let rules = self
            .rules
            .into_iter()
            .zip(&self.policy.rules)
            .enumerate()
            .map(|(index, (tally, rule))| RuleReport {
                index,
                line: rule.span.line,
                level: rule.level,
                stats: tally.finish(top),
            })
            .collect();
        SimulationReport {
            rules,
            unmatched: self.unmatched.finish(top),
            total: total.finish(top),
        }
    }
}

fn level_name<S: Serializer>(level: &Level, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(level.as_str())
}

#[cfg(test)]
mod tests;
