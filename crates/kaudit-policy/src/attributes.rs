//! Recovering, from a recorded audit event, the request attributes the apiserver evaluated
//! its policy on.
//!
//! The event is not exactly what the policy saw: `requestURI` carries the query string
//! (the policy matched the path alone), and for a create the apiserver fills
//! `objectRef.name` (and a missing `objectRef.namespace`) from the request body after the
//! policy ran on the URL, where the name was empty. A list or watch with
//! `fieldSelector=metadata.name=<n>` was evaluated with name `<n>`. The Namespace object
//! itself has its own name as namespace attribute, except for list, watch and create.

use std::borrow::Cow;

use kaudit_model::AuditEvent;

use crate::eval::{RequestAttributes, User};

/// The request attributes the policy saw for the request `event` records.
///
/// A resource request is one whose event has an `objectRef`. An event whose `user` has
/// neither a name nor groups (`{}`, what a failed authentication records) has no user, so
/// rules with `users` or `userGroups` cannot match it.
pub fn request_attributes(event: &AuditEvent<'_>) -> RequestAttributes {
    let uri = event.request_uri.as_deref().unwrap_or("");
    let (raw_path, query) = match uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (uri, None),
    };
    let path = percent_decode(raw_path).into_owned();
    let verb = event.verb.as_deref().unwrap_or("").to_owned();
    let user = event.user.as_ref().and_then(|user| {
        let name = user.username.as_deref().unwrap_or("").to_owned();
        let groups: Vec<String> = user
            .groups()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        if name.is_empty() && groups.is_empty() {
            None
        } else {
            Some(User { name, groups })
        }
    });
    let Some(object) = event.object_ref.as_ref() else {
        return RequestAttributes {
            user,
            verb,
            path,
            resource_request: false,
            ..RequestAttributes::default()
        };
    };
    let text = |t: &Option<kaudit_model::Text<'_>>| t.as_deref().unwrap_or("").to_owned();
    let api_group = text(&object.api_group);
    let resource = text(&object.resource);
    let subresource = text(&object.subresource);
    let url = parse_resource_path(&path);
    let mut namespace = text(&object.namespace);
    let mut name = text(&object.name);
    match verb.as_str() {
        // A create names no object in its URL (unless it addresses a subresource of one,
        // like `serviceaccounts/<n>/token` or `pods/<n>/eviction`); the event's name, and a
        // namespace the URL did not have, came from the body afterwards.
        "create" => {
            if let Some(url) = &url {
                namespace = url.namespace.clone();
                name = url.name.clone();
            } else if subresource.is_empty() {
                name.clear();
            }
        }
        "list" | "watch" if name.is_empty() => {
            name = query.and_then(field_selector_name).unwrap_or_default();
        }
        "deletecollection" => name.clear(),
        _ => {}
    }
    // `/api/v1/namespaces/<ns>` (and its status/finalize) has the namespace attribute <ns>.
    if namespace.is_empty()
        && api_group.is_empty()
        && resource == "namespaces"
        && !name.is_empty()
        && matches!(subresource.as_str(), "" | "status" | "finalize")
    {
        namespace = name.clone();
    }
    RequestAttributes {
        user,
        verb,
        path,
        resource_request: true,
        api_group,
        resource,
        subresource,
        namespace,
        name,
    }
}

/// What the apiserver's request-info parser reads from a resource URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group (`""` under `/api`).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace attribute.
    pub namespace: String,
    /// Resource.
    pub resource: String,
    /// Name (`""` when the URL names none).
    pub name: String,
    /// Subresource.
    pub subresource: String,
}

/// Parses a URL path the way the apiserver's request-info parser does for resource
/// requests (`/api/<v>/...` and `/apis/<group>/<v>/...`, with the legacy `watch` and `proxy`
/// prefixes). `None` for a non-resource path.
pub fn parse_resource_path(path: &str) -> Option<ResourcePath> {
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if parts.len() < 3 {
        return None;
    }
    let mut info = ResourcePath::default();
    match parts[0] {
        "api" => parts.remove(0),
        "apis" => {
            if parts.len() < 4 {
                return None;
            }
            info.api_group = parts[1].to_owned();
            parts.drain(..2);
            ""
        }
        _ => return None,
    };
    info.api_version = parts.remove(0).to_owned();
    let mut proxy = false;
    if matches!(parts.first(), Some(&"watch") | Some(&"proxy")) {
        if parts.len() < 2 {
            return None;
        }
        proxy = parts[0] == "proxy";
        parts.remove(0);
    }
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        info.namespace = parts[1].to_owned();
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts.drain(..2);
        }
    }
    if let Some(resource) = parts.first() {
        info.resource = (*resource).to_owned();
    }
    if let Some(name) = parts.get(1) {
        info.name = (*name).to_owned();
    }
    if !proxy && let Some(subresource) = parts.get(2) {
        info.subresource = (*subresource).to_owned();
    }
    Some(info)
}

/// The name a list or watch selects with `fieldSelector=metadata.name=<n>` (or `==`),
/// as the apiserver derives its name attribute from the query string.
pub fn field_selector_name(query: &str) -> Option<String> {
    let selector = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key) == "fieldSelector").then(|| form_decode(value))
    })?;
    let name = split_selector_terms(&selector).into_iter().find_map(|term| {
        let (field, value) = if let Some((f, v)) = term.split_once("==") {
            (f, v)
        } else if term.contains("!=") {
            return None;
        } else {
            term.split_once('=')?
        };
        (field.trim() == "metadata.name").then(|| unescape_selector_value(value.trim()))
    })?;
    // The apiserver keeps the name only when it is a valid path segment.
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return None;
    }
    Some(name)
}

/// Splits a field selector on commas that are not escaped with a backslash.
fn split_selector_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

fn unescape_selector_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes a query-string component: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> String {
    percent_decode(&text.replace('+', " ")).into_owned()
}

/// Decodes `%XX` escapes; text whose decoded bytes are not UTF-8, or with a malformed
/// escape, is returned as written.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return Cow::Borrowed(text),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests;
