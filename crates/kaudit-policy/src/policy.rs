//! The loaded policy ([`Policy`], [`PolicyRule`], [`GroupResources`]) and what evaluating it
//! returns ([`Decision`], [`StageSet`]).

use std::fmt;

use kaudit_model::{Level, Stage};
use kaudit_yaml::Span;

/// An `audit.k8s.io/v1` Policy, validated. Build one with [`crate::load`].
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The rules, in file order; the first matching rule decides.
    pub rules: Vec<PolicyRule>,
    /// Policy-level `omitStages`.
    pub omit_stages: StageSet,
    /// Policy-level `omitManagedFields` (default false).
    pub omit_managed_fields: bool,
}

/// One rule of a policy. Empty lists mean "no constraint", as in the apiserver.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRule {
    /// `level`.
    pub level: Level,
    /// `users`: authenticated user names.
    pub users: Vec<String>,
    /// `userGroups`: any of these groups.
    pub user_groups: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `resources`.
    pub resources: Vec<GroupResources>,
    /// `namespaces` (`""` = requests whose namespace attribute is empty).
    pub namespaces: Vec<String>,
    /// `nonResourceURLs`: exact paths, `*`, or prefixes ending in `*`.
    pub non_resource_urls: Vec<String>,
    /// The rule's own `omitStages` (without the policy-level ones).
    pub omit_stages: StageSet,
    /// `omitManagedFields`: `None` when the rule does not set it.
    pub omit_managed_fields: Option<bool>,
    /// Where the rule starts in the policy file (line 0 when built in code).
    pub span: Span,
}

/// One entry of a rule's `resources`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupResources {
    /// `group`: `""` (or unset) is the core group; `"*"` any group.
    pub group: String,
    /// `resources`: patterns `r`, `r/s`, `*`, `*/s`, `r/*`; empty = every resource of the group.
    pub resources: Vec<String>,
    /// `resourceNames`: empty = any name.
    pub resource_names: Vec<String>,
}

impl PolicyRule {
    /// A rule with only a level: it matches every request.
    pub fn new(level: Level) -> PolicyRule {
        PolicyRule {
            level,
            users: Vec::new(),
            user_groups: Vec::new(),
            verbs: Vec::new(),
            resources: Vec::new(),
            namespaces: Vec::new(),
            non_resource_urls: Vec::new(),
            omit_stages: StageSet::EMPTY,
            omit_managed_fields: None,
            span: Span::default(),
        }
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            rules: Vec::new(),
            omit_stages: StageSet::EMPTY,
            omit_managed_fields: false,
        }
    }
}

/// A set of [`Stage`]s (the effective `omitStages`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u8);

impl StageSet {
    /// No stage.
    pub const EMPTY: StageSet = StageSet(0);

    fn bit(stage: Stage) -> u8 {
        match stage {
            Stage::RequestReceived => 1,
            Stage::ResponseStarted => 2,
            Stage::ResponseComplete => 4,
            Stage::Panic => 8,
        }
    }

    /// Every stage.
    pub const ALL: StageSet = StageSet(15);

    /// The set with `stage` added.
    pub fn with(self, stage: Stage) -> StageSet {
        StageSet(self.0 | StageSet::bit(stage))
    }

    /// Adds a stage.
    pub fn insert(&mut self, stage: Stage) {
        self.0 |= StageSet::bit(stage);
    }

    /// True when `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & StageSet::bit(stage) != 0
    }

    /// Set union.
    pub fn union(self, other: StageSet) -> StageSet {
        StageSet(self.0 | other.0)
    }

    /// Set intersection.
    pub fn intersection(self, other: StageSet) -> StageSet {
        StageSet(self.0 & other.0)
    }

    /// The stages of `self` not in `other`.
    pub fn difference(self, other: StageSet) -> StageSet {
        StageSet(self.0 & !other.0)
    }

    /// True when the set has no stage.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages, in request order (`RequestReceived` first).
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> StageSet {
        iter.into_iter().fold(StageSet::EMPTY, StageSet::with)
    }
}

impl fmt::Debug for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Stage::as_str).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

/// What the policy decides for one request, as the apiserver's policy checker returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The level: `None` means no event at all.
    pub level: Level,
    /// The effective `omitStages`: the policy's and the matched rule's, united.
    pub omit_stages: StageSet,
    /// The effective `omitManagedFields`: the rule's value if set, else the policy's.
    pub omit_managed_fields: bool,
    /// Index (0-based, file order) of the rule that matched; `None` when no rule matched.
    pub rule: Option<usize>,
}

impl Decision {
    /// True when an event of `stage` is written under this decision: level above `None` and
    /// the stage not omitted.
    pub fn emits(&self, stage: Stage) -> bool {
        self.level != Level::None && !self.omit_stages.contains(stage)
    }
}
