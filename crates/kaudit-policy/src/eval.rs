//! Evaluating a policy on the attributes of one request, exactly as the apiserver's policy
//! checker does: the first matching rule decides, and no rule means level `None`.

use kaudit_model::Level;

use crate::policy::{Decision, GroupResources, Policy, PolicyRule};

/// The authenticated user the policy sees (the real caller, before impersonation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// `username`.
    pub name: String,
    /// `groups`.
    pub groups: Vec<String>,
}

/// The request attributes a policy is evaluated on (the apiserver's authorizer attributes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// The authenticated user; `None` when authentication failed (no user at all), which is
    /// different from a user with an empty name.
    pub user: Option<User>,
    /// The verb: a Kubernetes verb for resource requests, the lower-cased HTTP method for
    /// non-resource requests.
    pub verb: String,
    /// The URL path, without the query string.
    pub path: String,
    /// True for resource requests (`/api/...`, `/apis/...` naming a resource).
    pub resource_request: bool,
    /// The API group (`""` for the core group).
    pub api_group: String,
    /// The resource (`pods`).
    pub resource: String,
    /// The subresource (`log`, `exec`, `status`), or `""`.
    pub subresource: String,
    /// The namespace attribute (`""` for cluster-scoped requests and cluster-wide lists).
    pub namespace: String,
    /// The name attribute (`""` for create, list, watch, deletecollection).
    pub name: String,
}

impl Policy {
    /// The decision for one request: the first rule that matches gives the level, the united
    /// `omitStages` and the effective `omitManagedFields`; with no match the level is `None`.
    pub fn evaluate(&self, request: &RequestAttributes) -> Decision {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.matches(request) {
                return Decision {
                    level: rule.level,
                    omit_stages: self.omit_stages.union(rule.omit_stages),
                    omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                    rule: Some(index),
                };
            }
        }
        Decision {
            level: Level::None,
            omit_stages: self.omit_stages,
            omit_managed_fields: self.omit_managed_fields,
            rule: None,
        }
    }
}

impl PolicyRule {
    /// True when the rule matches the request (every condition holds; any element of a list
    /// may match).
    pub fn matches(&self, request: &RequestAttributes) -> bool {
        if !self.users.is_empty() {
            match &request.user {
                Some(user) if contains(&self.users, &user.name) => {}
                _ => return false,
            }
        }
        if !self.user_groups.is_empty() {
            match &request.user {
                Some(user) if user.groups.iter().any(|g| contains(&self.user_groups, g)) => {}
                _ => return false,
            }
        }
        if !self.verbs.is_empty() && !contains(&self.verbs, &request.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(request);
        }
        if !self.non_resource_urls.is_empty() {
            return !request.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|pattern| url_matches(pattern, &request.path));
        }
        true
    }

    fn matches_resource(&self, request: &RequestAttributes) -> bool {
        if !request.resource_request {
            return false;
        }
        if !self.namespaces.is_empty() && !contains(&self.namespaces, &request.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        self.resources.iter().any(|entry| entry.matches(request))
    }
}

impl GroupResources {
    /// True when this `resources` entry matches the request's group, resource, subresource
    /// and name.
    pub fn matches(&self, request: &RequestAttributes) -> bool {
        if self.group != request.api_group && self.group != "*" {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        if !self.resource_names.is_empty() && !contains(&self.resource_names, &request.name) {
            return false;
        }
        self.resources
            .iter()
            .any(|pattern| resource_matches(pattern, &request.resource, &request.subresource))
    }
}

/// One `resources` pattern against a resource and subresource: `r`, `r/s`, `*`, `*/s`, `r/*`
/// (the last also matches the bare resource `r`).
pub fn resource_matches(pattern: &str, resource: &str, subresource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let combined_matches = if subresource.is_empty() {
        pattern == resource
    } else {
        pattern.len() == resource.len() + 1 + subresource.len()
            && pattern.starts_with(resource)
            && pattern.as_bytes()[resource.len()] == b'/'
            && pattern.ends_with(subresource)
    };
    if combined_matches {
        return true;
    }
    if let Some(sub) = pattern.strip_prefix("*/") {
        return !subresource.is_empty() && sub == subresource;
    }
    if let Some(res) = pattern.strip_suffix("/*") {
        return res == resource;
    }
    false
}

/// One `nonResourceURLs` pattern against a path: `*`, an exact path, or a raw string prefix
/// when the pattern ends in `*`.
pub fn url_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" || pattern == path {
        return true;
    }
    if pattern.ends_with('*') {
        return path.starts_with(pattern.trim_end_matches('*'));
    }
    false
}

fn contains(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == value)
}

#[cfg(test)]
mod tests;
