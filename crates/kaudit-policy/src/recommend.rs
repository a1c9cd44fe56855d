//! Writing a small policy that starves none of a set of detection rules.
//!
//! It starts from a base that drops what no detection reads and what costs the most
//! (health checks, metrics, OpenAPI downloads, the control plane's own reads and lease
//! heartbeats), keeps secrets, configmaps, token reviews and token requests at `Metadata`,
//! everything else at `Metadata`, and omits `RequestReceived`. Then, for every rule the base
//! starves, it adds a rule in front that gives exactly the requests the rule is starved of
//! the level it needs (the highest levels first, so a lower one never shadows them), merges
//! such rules where that does not widen them, drops those that turn out unnecessary, and
//! checks the result with the coverage analysis.

use std::collections::BTreeSet;

use kaudit_model::{Level, Stage};

use crate::coverage::{
    DetectionRule, OTHER, Probe, STANDARD_VERBS, Status, Target, coverage, starved_probes,
};
use crate::policy::{GroupResources, Policy, PolicyRule, StageSet};

/// A recommended policy.
#[derive(Clone, Debug)]
pub struct Recommendation {
    /// The policy.
    pub policy: Policy,
    /// One comment per policy rule, saying why it is there.
    pub comments: Vec<String>,
    /// Detection rules that no policy can feed, with the reason (empty when every rule is
    /// covered or never matches).
    pub unsatisfiable: Vec<String>,
}

impl Recommendation {
    /// The policy as a YAML file, with a header and a comment on each rule.
    pub fn to_yaml(&self, header: &str) -> String {
        render_policy(&self.policy, &self.comments, header)
    }
}

/// The smallest policy this module finds that starves none of `rules`.
pub fn recommend(rules: &[DetectionRule]) -> Recommendation {
    let (base, base_comments) = base_policy();
    // Only the rules the base starves can be starved by any policy built here: the rules
    // added in front give at least Metadata and keep every stage the base keeps.
    let rules: Vec<&DetectionRule> = rules
        .iter()
        .filter(|rule| !starved_probes(&base, rule).is_empty())
        .collect();
    // Rules that read RequestReceived events only force that stage back on.
    let mut needs_request_received = false;
    let mut added: Vec<(PolicyRule, String)> = Vec::new();
    for round in 0..4 {
        let current = assemble(&base, &added, needs_request_received);
        let mut progress = false;
        for rule in &rules {
            let starved = starved_probes(&current, rule);
            if starved.is_empty() {
                continue;
            }
            progress = true;
            if starved.iter().all(|(_, wanted)| {
                wanted
                    .difference(StageSet::EMPTY.with(Stage::RequestReceived))
                    .is_empty()
            }) {
                needs_request_received = true;
            }
            let level = rule.needs.max(Level::Metadata);
            let comment = format!("needed by \"{}\" ({})", rule.name, level);
            if round < 3 {
                for new_rule in rules_for(&starved, level) {
                    added.push((new_rule, comment.clone()));
                }
            } else {
                // Last resort: everything at the level the rule needs.
                added.push((PolicyRule::new(level), comment));
            }
        }
        if !progress {
            break;
        }
    }
    added = merge(added);
    // Drop the added rules that are not needed, largest level first.
    let mut i = 0;
    while i < added.len() {
        let mut without = added.clone();
        without.remove(i);
        if all_covered(&assemble(&base, &without, needs_request_received), &rules) {
            added = without;
        } else {
            i += 1;
        }
    }
    let policy = assemble(&base, &added, needs_request_received);
    let mut comments: Vec<String> = sorted(&added).into_iter().map(|(_, c)| c).collect();
    comments.extend(base_comments);
    let report = coverage(&policy, &rules.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
    let unsatisfiable = report
        .rules
        .iter()
        .filter(|r| matches!(r.status, Status::Starved | Status::PartiallyStarved))
        .map(|r| format!("{}: {}", r.name, r.status))
        .collect();
    Recommendation {
        policy,
        comments,
        unsatisfiable,
    }
}

fn all_covered(policy: &Policy, rules: &[&DetectionRule]) -> bool {
    rules.iter().all(|rule| starved_probes(policy, rule).is_empty())
}

/// The added rules (highest level first, in order of addition) followed by the base.
fn assemble(base: &Policy, added: &[(PolicyRule, String)], keep_request_received: bool) -> Policy {
    let mut rules: Vec<PolicyRule> = sorted(added).into_iter().map(|(r, _)| r).collect();
    rules.extend(base.rules.iter().cloned());
    let mut policy = Policy {
        rules,
        omit_stages: base.omit_stages,
        omit_managed_fields: base.omit_managed_fields,
    };
    if keep_request_received {
        // Omit RequestReceived per rule, except on the added rules that need it.
        policy.omit_stages = StageSet::EMPTY;
        let added_count = added.len();
        for (i, rule) in policy.rules.iter_mut().enumerate() {
            if i >= added_count {
                rule.omit_stages.insert(Stage::RequestReceived);
            }
        }
    }
    policy
}

fn sorted(added: &[(PolicyRule, String)]) -> Vec<(PolicyRule, String)> {
    let mut list = added.to_vec();
    list.sort_by_key(|entry| std::cmp::Reverse(entry.0.level));
    list
}

/// Merges added rules of the same level that differ only in their resources (same verbs)
/// or only in their verbs (same resources): neither widens the other.
fn merge(added: Vec<(PolicyRule, String)>) -> Vec<(PolicyRule, String)> {
    let mut out: Vec<(PolicyRule, String)> = Vec::new();
    'next: for (rule, comment) in added {
        for (existing, existing_comment) in out.iter_mut() {
            let same_frame = existing.level == rule.level
                && existing.users == rule.users
                && existing.user_groups == rule.user_groups
                && existing.namespaces == rule.namespaces
                && existing.non_resource_urls.is_empty() == rule.non_resource_urls.is_empty()
                && existing.resources.is_empty() == rule.resources.is_empty();
            if !same_frame {
                continue;
            }
            if existing.verbs == rule.verbs {
                union_into(&mut existing.non_resource_urls, &rule.non_resource_urls);
                for entry in &rule.resources {
                    add_resources(&mut existing.resources, entry);
                }
                append_comment(existing_comment, &comment);
                continue 'next;
            }
            if existing.resources == rule.resources && existing.non_resource_urls == rule.non_resource_urls {
                if existing.verbs.is_empty() || rule.verbs.is_empty() {
                    existing.verbs.clear();
                } else {
                    union_into(&mut existing.verbs, &rule.verbs);
                }
                append_comment(existing_comment, &comment);
                continue 'next;
            }
        }
        out.push((rule, comment));
    }
    out
}

fn append_comment(existing: &mut String, comment: &str) {
    if let Some(name) = comment.strip_prefix("needed by ")
        && !existing.contains(name)
    {
        existing.push_str(", ");
        existing.push_str(name);
    }
}

fn union_into(list: &mut Vec<String>, more: &[String]) {
    for item in more {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

fn add_resources(entries: &mut Vec<GroupResources>, entry: &GroupResources) {
    if let Some(existing) = entries
        .iter_mut()
        .find(|e| e.group == entry.group && e.resource_names == entry.resource_names)
    {
        if existing.resources.is_empty() || entry.resources.is_empty() {
            existing.resources.clear();
        } else {
            union_into(&mut existing.resources, &entry.resources);
        }
    } else {
        entries.push(entry.clone());
    }
}

/// Policy rules that give every starved probe `level`, each as narrow as the probes allow:
/// separate rules for resource and non-resource requests, and for requests by named users,
/// by members of named groups, and by anyone.
fn rules_for(starved: &[(Probe, StageSet)], level: Level) -> Vec<PolicyRule> {
    let mut buckets: Vec<((bool, u8), Vec<&Probe>)> = Vec::new();
    for (probe, _) in starved {
        let is_resource = matches!(probe.target, Some(Target::Resource { .. }));
        let who = match (&probe.user, &probe.group) {
            (Some(Some(name)), _) if !name.contains(OTHER) => 0,
            (Some(Some(_)), Some(Some(group))) if !group.contains(OTHER) => 1,
            _ => 2,
        };
        match buckets.iter_mut().find(|(key, _)| *key == (is_resource, who)) {
            Some((_, list)) => list.push(probe),
            None => buckets.push(((is_resource, who), vec![probe])),
        }
    }
    buckets.sort_by_key(|(key, _)| *key);
    buckets
        .into_iter()
        .map(|((is_resource, who), probes)| rule_for(&probes, level, is_resource, who))
        .collect()
}

fn rule_for(probes: &[&Probe], level: Level, is_resource: bool, who: u8) -> PolicyRule {
    let mut rule = PolicyRule::new(level);
    rule.verbs = narrow(probes.iter().map(|p| p.verb.clone().unwrap_or_default()));
    if rule.verbs.iter().any(String::is_empty)
        || STANDARD_VERBS.iter().all(|v| rule.verbs.iter().any(|x| x == v))
    {
        rule.verbs.clear();
    }
    match who {
        0 => rule.users = narrow(probes.iter().filter_map(|p| p.user.clone().flatten())),
        1 => rule.user_groups = narrow(probes.iter().filter_map(|p| p.group.clone().flatten())),
        _ => {}
    }
    if is_resource {
        let namespaces: Vec<String> = probes
            .iter()
            .map(|p| p.namespace.clone().unwrap_or_default())
            .collect();
        if namespaces.iter().all(|n| !n.is_empty()) {
            rule.namespaces = narrow(namespaces.into_iter());
        }
        let mut entries: Vec<GroupResources> = Vec::new();
        let mut any_group = false;
        for probe in probes {
            let Some(Target::Resource {
                group,
                resource,
                subresource,
            }) = &probe.target
            else {
                continue;
            };
            if group.contains(OTHER) {
                any_group = true;
                break;
            }
            let pattern = if resource.contains(OTHER) {
                None
            } else if subresource.is_empty() {
                Some(resource.clone())
            } else if subresource.contains(OTHER) {
                Some(format!("{resource}/*"))
            } else {
                Some(format!("{resource}/{subresource}"))
            };
            let entry = GroupResources {
                group: group.clone(),
                resources: pattern.into_iter().collect(),
                resource_names: Vec::new(),
            };
            add_resources(&mut entries, &entry);
        }
        if !any_group {
            for entry in &mut entries {
                simplify_patterns(&mut entry.resources);
            }
            rule.resources = entries;
        }
    } else {
        let urls = narrow(probes.iter().map(|p| match &p.target {
            Some(Target::NonResource { uri }) => {
                let path = uri.split('?').next().unwrap_or("");
                match path.find(OTHER) {
                    Some(at) => format!("{}*", &path[..at]),
                    None => path.to_owned(),
                }
            }
            _ => "*".to_owned(),
        }));
        rule.non_resource_urls = if urls.iter().any(|u| u == "/*" || u == "*") {
            vec!["*".to_owned()]
        } else {
            // Drop the paths another pattern of the list already covers.
            urls.iter()
                .filter(|u| {
                    !urls
                        .iter()
                        .any(|p| p != *u && p.ends_with('*') && crate::eval::url_matches(p, u))
                })
                .cloned()
                .collect()
        };
    }
    rule
}

/// `r/*` covers `r` and every `r/s`: keep only it.
fn simplify_patterns(patterns: &mut Vec<String>) {
    let wildcards: Vec<String> = patterns
        .iter()
        .filter_map(|p| p.strip_suffix("/*").map(str::to_owned))
        .collect();
    patterns.retain(|p| {
        let (resource, sub) = p.split_once('/').unwrap_or((p, ""));
        sub == "*" || !wildcards.iter().any(|w| w == resource)
    });
}

/// The distinct values, in order of first appearance; any "other" value makes the list
/// empty (no constraint).
fn narrow(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for value in values {
        if value.contains(OTHER) {
            return Vec::new();
        }
        if seen.insert(value.clone()) {
            out.push(value);
        }
    }
    out
}

/// The base policy and a comment per rule.
pub fn base_policy() -> (Policy, Vec<String>) {
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut rules = Vec::new();
    let mut comments = Vec::new();
    let mut push = |rule: PolicyRule, comment: &str| {
        rules.push(rule);
        comments.push(comment.to_owned());
    };
    // The None rules name the callers they drop: every authenticated user is in
    // system:authenticated (the apiserver's loopback user only in system:masters),
    // anonymous ones in system:unauthenticated; a failed authentication has no user and so
    // still reaches the catch-all rule.
    let callers = strings(&["system:authenticated", "system:unauthenticated", "system:masters"]);
    let mut health = PolicyRule::new(Level::None);
    health.user_groups = callers;
    health.non_resource_urls = strings(&["/healthz*", "/livez*", "/readyz*", "/metrics", "/openapi*"]);
    push(
        health,
        "health checks, metrics scrapes and OpenAPI downloads: high volume, no security value",
    );
    let control_plane = strings(&[
        "system:apiserver",
        "system:kube-controller-manager",
        "system:kube-scheduler",
    ]);
    let lease = vec![GroupResources {
        group: "coordination.k8s.io".into(),
        resources: strings(&["leases"]),
        resource_names: Vec::new(),
    }];
    let mut leases = PolicyRule::new(Level::None);
    leases.users = control_plane;
    leases.verbs = strings(&["get", "update"]);
    leases.namespaces = strings(&["kube-system"]);
    leases.resources = lease.clone();
    push(leases, "the control plane's leader-election heartbeats");
    let mut node_leases = PolicyRule::new(Level::None);
    node_leases.user_groups = strings(&["system:nodes"]);
    node_leases.verbs = strings(&["get", "update"]);
    node_leases.namespaces = strings(&["kube-node-lease"]);
    node_leases.resources = lease;
    push(node_leases, "kubelets' heartbeats");
    let mut apiserver = PolicyRule::new(Level::None);
    apiserver.users = strings(&[
        "system:apiserver",
        "system:kube-proxy",
        "system:kube-scheduler",
        "system:kube-controller-manager",
    ]);
    apiserver.verbs = strings(&["get", "list", "watch"]);
    push(apiserver, "the control plane's own reads and watches");
    let mut nodes = PolicyRule::new(Level::None);
    nodes.user_groups = strings(&["system:nodes"]);
    nodes.verbs = strings(&["get", "list", "watch"]);
    push(nodes, "kubelets' reads and watches");
    let mut sensitive = PolicyRule::new(Level::Metadata);
    sensitive.resources = vec![
        GroupResources {
            group: String::new(),
            resources: strings(&["secrets", "configmaps", "serviceaccounts/token"]),
            resource_names: Vec::new(),
        },
        GroupResources {
            group: "authentication.k8s.io".into(),
            resources: strings(&["tokenreviews"]),
            resource_names: Vec::new(),
        },
    ];
    push(
        sensitive,
        "secrets, configmaps, token reviews and token requests: never their bodies",
    );
    push(PolicyRule::new(Level::Metadata), "everything else: metadata");
    let policy = Policy {
        rules,
        omit_stages: StageSet::EMPTY.with(Stage::RequestReceived),
        omit_managed_fields: true,
    };
    (policy, comments)
}

/// A policy as YAML (strings always double-quoted), with `header` as leading comment lines
/// and `comments[i]` above rule `i`.
pub fn render_policy(policy: &Policy, comments: &[String], header: &str) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let list = |items: &[String]| format!("[{}]", items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "));
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
    }
    out.push_str("apiVersion: audit.k8s.io/v1\nkind: Policy\n");
    if !policy.omit_stages.is_empty() {
        let stages: Vec<String> = policy.omit_stages.iter().map(|s| s.as_str().to_owned()).collect();
        out.push_str(&format!("omitStages: {}\n", list(&stages)));
    }
    if policy.omit_managed_fields {
        out.push_str("omitManagedFields: true\n");
    }
    out.push_str("rules:\n");
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(comment) = comments.get(i) {
            out.push_str(&format!("  # {comment}\n"));
        }
        out.push_str(&format!("  - level: {}\n", rule.level));
        let field = |out: &mut String, name: &str, items: &[String]| {
            if !items.is_empty() {
                out.push_str(&format!("    {name}: {}\n", list(items)));
            }
        };
        field(&mut out, "users", &rule.users);
        field(&mut out, "userGroups", &rule.user_groups);
        field(&mut out, "verbs", &rule.verbs);
        field(&mut out, "namespaces", &rule.namespaces);
        field(&mut out, "nonResourceURLs", &rule.non_resource_urls);
        if !rule.resources.is_empty() {
            out.push_str("    resources:\n");
            for entry in &rule.resources {
                out.push_str(&format!("      - group: {}\n", q(&entry.group)));
                if !entry.resources.is_empty() {
                    out.push_str(&format!("        resources: {}\n", list(&entry.resources)));
                }
                if !entry.resource_names.is_empty() {
                    out.push_str(&format!(
                        "        resourceNames: {}\n",
                        list(&entry.resource_names)
                    ));
                }
            }
        }
        if !rule.omit_stages.is_empty() {
            let stages: Vec<String> = rule.omit_stages.iter().map(|s| s.as_str().to_owned()).collect();
            out.push_str(&format!("    omitStages: {}\n", list(&stages)));
        }
        if let Some(value) = rule.omit_managed_fields {
            out.push_str(&format!("    omitManagedFields: {value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
