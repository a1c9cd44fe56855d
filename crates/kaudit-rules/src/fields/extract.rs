//! Extraction: the value of each [`Recipe`] for one event, following the k8saudit 0.18.0 and
//! json 0.7.4 plugins (and Falco's own `evt.*` fields) including their quirks. Each quirk is
//! described in the catalogue entry of the field that has it.
//!
//! Values are borrowed from the event text whenever the JSON has no escapes to decode.

use std::borrow::Cow;

use kaudit_model::json::{self, Kind};
use kaudit_model::{AuditEvent, Text};

use super::catalogue::{ContainerAttr, ContainerList, Recipe};
use super::ctx::{EventCtx, ListReach, Reach, ReqList};
use super::walk::{Missing, fan_out, get, get_path, walk, walk_in_element};
use super::{Arg, Values, indent, time, uri};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The values of `recipe` with argument `arg` for the event of `ctx`.
pub(super) fn extract<'e>(recipe: Recipe, arg: &Arg, ctx: &'e EventCtx<'e>) -> Values<'e> {
    use Recipe as R;
    let index = match arg {
        Arg::Index(i) => Some(*i),
        // The plugin receives index 0 with a key argument, and some fields use it as an
        // index (see `VolumeHasHostPath`).
        Arg::Key(_) | Arg::Pointer { .. } => Some(0),
        Arg::None => None,
    };
    match recipe {
        R::EvtNum => Values::Number(ctx.evt_num() as i64),
        R::EvtTime => owned(time::time(ctx.time_nanos())),
        R::EvtTimeS => owned(time::time_s(ctx.time_nanos())),
        R::EvtTimeIso8601 => owned(time::iso8601(ctx.time_nanos())),
        R::EvtDatetime => owned(time::datetime(ctx.time_nanos())),
        R::EvtDatetimeS => owned(time::datetime_s(ctx.time_nanos())),
        R::EvtRawtime => Values::Number(ctx.time_nanos()),
        R::EvtRawtimeS => Values::Number(((ctx.time_nanos() as u64) / NANOS_PER_SECOND) as i64),
        R::EvtRawtimeNs => Values::Number(((ctx.time_nanos() as u64) % NANOS_PER_SECOND) as i64),
        R::EvtReltime => Values::Number(reltime(ctx) as i64),
        R::EvtReltimeS => Values::Number((reltime(ctx) / NANOS_PER_SECOND) as i64),
        R::EvtReltimeNs => Values::Number((reltime(ctx) % NANOS_PER_SECOND) as i64),
        R::EvtPluginName => Values::One(Cow::Borrowed("k8saudit")),
        R::EvtPluginInfo => Values::One(Cow::Borrowed(ctx.compact())),
        R::EvtSource => Values::One(Cow::Borrowed("k8s_audit")),
        R::EvtIsAsync => Values::One(Cow::Borrowed("false")),
        R::EvtAsyncType => Values::None,
        R::EvtHostname => Values::single(ctx.hostname().map(Cow::Borrowed)),
        R::JsonValue => json_value(arg, ctx),
        R::JsonObj => owned(indent::indent(ctx.event().raw())),
        R::JsonRawtime => owned(time::raw(ctx.time_nanos())),
        _ if !ctx.has_audit_id() => Values::None,
        _ => extract_ka(recipe, arg, index, ctx),
    }
}

fn owned<'e>(text: String) -> Values<'e> {
    Values::One(Cow::Owned(text))
}

/// Nanoseconds since the first event, as Falco's unsigned subtraction gives them.
fn reltime(ctx: &EventCtx<'_>) -> u64 {
    (ctx.time_nanos() as u64).wrapping_sub(ctx.first_time_nanos() as u64)
}

/// The k8saudit plugin's fields, for an event that has an `auditID`.
fn extract_ka<'e>(recipe: Recipe, arg: &Arg, index: Option<u64>, ctx: &'e EventCtx<'e>) -> Values<'e> {
    use Recipe as R;
    let event = ctx.event();
    let text = |t: Option<&'e Text<'e>>| Values::single(t.map(|t| Cow::Borrowed(t.as_str())));
    let object_ref = event.object_ref.as_ref();
    let status = event.response_status.as_ref();
    match recipe {
        R::AuditId => text(event.audit_id.as_ref()),
        R::Stage => text(event.stage.as_ref()),
        R::Annotation(key) => rendered(ctx.annotation(key)),
        R::UserName => text(event.user.as_ref().and_then(|u| u.username.as_ref())),
        R::UserGroups => match event.user.as_ref().and_then(|u| u.groups()) {
            Some(groups) => Values::list(groups.into_iter().map(Text::into_cow).collect()),
            None => Values::None,
        },
        R::ImpersonatedUserName => text(event.impersonated_user.as_ref().and_then(|u| u.username.as_ref())),
        R::Verb => text(event.verb.as_ref()),
        R::Uri => text(event.request_uri.as_ref()),
        R::UriParam => match (event.request_uri.as_ref(), arg) {
            (Some(uri), Arg::Key(name)) => Values::single(uri::query_param(uri.as_str(), name)),
            _ => Values::None,
        },
        R::TargetName => text(object_ref.and_then(|o| o.name.as_ref())),
        R::TargetNamespace => text(object_ref.and_then(|o| o.namespace.as_ref())),
        R::TargetResource => text(object_ref.and_then(|o| o.resource.as_ref())),
        R::TargetSubresource => text(object_ref.and_then(|o| o.subresource.as_ref())),
        R::TargetPodName => target_pod_name(event),
        R::ResponseName => rendered(
            event
                .response_object_raw()
                .and_then(|r| get_path(r, &["metadata", "name"])),
        ),
        R::ResponseCode => text(status.and_then(|s| s.code.as_ref())),
        R::ResponseReason => text(status.and_then(|s| s.reason.as_ref())),
        R::UserAgent => text(event.user_agent.as_ref()),
        R::SubjectHasName => Values::One(Cow::Borrowed("true")),
        R::BindingSubjects => rendered_items(ctx, ReqList::Subjects),
        R::SubjectNames(kind) => subjects(ctx, kind, false),
        R::SubjectServiceAccountNsNames => subjects(ctx, "ServiceAccount", true),
        R::BindingRole => rendered(request_path(ctx, &["roleRef", "name"])),
        R::ConfigmapObj => rendered(request_path(ctx, &["data"])),
        R::RoleRules => rendered_items(ctx, ReqList::Rules),
        R::RulesField(key) => rules_field(ctx, index, key),
        R::SpecMember(key) => rendered(spec_path(ctx, &[key])),
        R::PodSecurity(key) => rendered(spec_path(ctx, &["securityContext", key])),
        R::SupplementalGroups => match spec_path(ctx, &["securityContext", "supplementalGroups"]) {
            Some(raw) => match json::elements(raw) {
                Some(items) => Values::list(items.into_iter().map(json::render).collect()),
                None => Values::None,
            },
            None => Values::None,
        },
        R::ServicePorts => service_ports(ctx, index),
        R::Container(list, attr) => container(ctx, list, attr, index),
        R::FirstContainerImage => first_container(ctx, false),
        R::FirstContainerRepository => first_container(ctx, true),
        R::AnyContainerPrivileged => any_privileged(ctx),
        R::VolumeHostPaths => skip_missing(walk_list(ctx, ReqList::Volumes, index, &["hostPath", "path"])),
        R::VolumeHasHostPath => volume_has_host_path(ctx, arg, index),
        R::FlexVolumeDrivers => {
            skip_missing(walk_list(ctx, ReqList::Volumes, index, &["flexVolume", "driver"]))
        }
        R::VolumeTypes => volume_types(ctx, index),
        // Handled in `extract`.
        R::EvtNum
        | R::EvtTime
        | R::EvtTimeS
        | R::EvtTimeIso8601
        | R::EvtDatetime
        | R::EvtDatetimeS
        | R::EvtRawtime
        | R::EvtRawtimeS
        | R::EvtRawtimeNs
        | R::EvtReltime
        | R::EvtReltimeS
        | R::EvtReltimeNs
        | R::EvtPluginName
        | R::EvtPluginInfo
        | R::EvtSource
        | R::EvtIsAsync
        | R::EvtAsyncType
        | R::EvtHostname
        | R::JsonValue
        | R::JsonObj
        | R::JsonRawtime => Values::None,
    }
}

/// A raw JSON value as the plugins render it (string text, or compact JSON).
fn rendered(raw: Option<&str>) -> Values<'_> {
    Values::single(raw.map(json::render))
}

/// `requestObject.<keys>` with fastjson's `Get` (an array on the way leads nowhere).
fn request_path<'e>(ctx: &EventCtx<'e>, keys: &[&str]) -> Option<&'e str> {
    let (first, rest) = keys.split_first()?;
    get_path(ctx.request_member(first)?, rest)
}

/// `requestObject.spec.<keys>` with fastjson's `Get`.
fn spec_path<'e>(ctx: &EventCtx<'e>, keys: &[&str]) -> Option<&'e str> {
    let (first, rest) = keys.split_first()?;
    get_path(ctx.spec_member(first)?, rest)
}

/// `responseObject.metadata.name` for requests on pods themselves.
fn target_pod_name<'e>(event: &'e AuditEvent<'e>) -> Values<'e> {
    let Some(object_ref) = event.object_ref.as_ref() else {
        return Values::None;
    };
    let is_pods = object_ref.resource.as_deref() == Some("pods");
    let no_subresource = object_ref.subresource.as_deref().is_none_or(str::is_empty);
    if !(is_pods && no_subresource) {
        return Values::None;
    }
    rendered(
        event
            .response_object_raw()
            .and_then(|r| get_path(r, &["metadata", "name"])),
    )
}

/// A list field that is the elements of one array (`extractFromKeys` on a list field): no
/// value unless the member is an array.
fn rendered_items<'e>(ctx: &'e EventCtx<'e>, list: ReqList) -> Values<'e> {
    match ctx.list(list) {
        ListReach::Value {
            items: Some(items), ..
        } => Values::list(items.iter().copied().map(json::render).collect()),
        _ => Values::None,
    }
}

/// The subjects of one kind: their `name`, or `namespace:name` for `with_namespace`.
fn subjects<'e>(ctx: &'e EventCtx<'e>, kind: &str, with_namespace: bool) -> Values<'e> {
    let ListReach::Value {
        items: Some(items), ..
    } = ctx.list(ReqList::Subjects)
    else {
        return Values::None;
    };
    let mut out = Vec::new();
    for subject in items {
        if json::kind(subject) != Some(Kind::Object) {
            continue;
        }
        if json::member(subject, "kind").map(json::render).as_deref() != Some(kind) {
            continue;
        }
        let Some(name) = json::member(subject, "name") else {
            continue;
        };
        if with_namespace {
            let Some(namespace) = json::member(subject, "namespace") else {
                continue;
            };
            out.push(Cow::Owned(format!(
                "{}:{}",
                json::render(namespace),
                json::render(name)
            )));
        } else {
            out.push(json::render(name));
        }
    }
    Values::list(out)
}

/// The plugin's recursive walk over one of the cached request lists, then `rest`.
fn walk_list<'e>(
    ctx: &'e EventCtx<'e>,
    list: ReqList,
    index: Option<u64>,
    rest: &[&str],
) -> Result<Vec<Option<&'e str>>, Missing> {
    let mut out = Vec::new();
    match ctx.list(list) {
        ListReach::Absent => return Err(Missing),
        ListReach::Irregular => {
            let keys: Vec<&str> = list.path().iter().chain(rest).copied().collect();
            walk(ctx.event().raw(), index, &keys, &mut out)?;
        }
        ListReach::Value { raw, items } => match (rest.is_empty(), items, index) {
            (true, _, _) => out.push(Some(*raw)),
            (false, Some(items), None) => fan_out(items.iter().copied(), rest, &mut out),
            (false, Some(items), Some(i)) => {
                let item = usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .ok_or(Missing)?;
                walk_in_element(item, index, rest, &mut out)?;
            }
            (false, None, _) => walk_in_element(raw, index, rest, &mut out)?,
        },
    }
    Ok(out)
}

/// `arrayAsStringsSkipNil`: every value reached, rendered; missing entries dropped.
fn skip_missing(found: Result<Vec<Option<&str>>, Missing>) -> Values<'_> {
    match found {
        Ok(found) => Values::list(found.into_iter().flatten().map(json::render).collect()),
        Err(Missing) => Values::None,
    }
}

/// `arrayAsStrings`: every value reached, rendered; a missing entry means no value at all.
fn all_present(found: Result<Vec<Option<&str>>, Missing>) -> Option<Vec<Cow<'_, str>>> {
    found.ok()?.into_iter().map(|v| v.map(json::render)).collect()
}

/// `requestObject.rules[].<key>[]`, flattened; entries that are not arrays contribute nothing.
fn rules_field<'e>(ctx: &'e EventCtx<'e>, index: Option<u64>, key: &str) -> Values<'e> {
    let Ok(found) = walk_list(ctx, ReqList::Rules, index, &[key]) else {
        return Values::None;
    };
    let mut out = Vec::new();
    for raw in found.into_iter().flatten() {
        if let Some(items) = json::elements(raw) {
            out.extend(items.into_iter().map(json::render));
        }
    }
    Values::list(out)
}

/// `requestObject.spec.ports` through the recursive walk: one value, the whole array.
fn service_ports<'e>(ctx: &'e EventCtx<'e>, index: Option<u64>) -> Values<'e> {
    let mut out = Vec::new();
    let found = match ctx.spec() {
        Reach::Absent => Err(Missing),
        Reach::Irregular => walk(
            ctx.event().raw(),
            index,
            &["requestObject", "spec", "ports"],
            &mut out,
        ),
        Reach::Value(_) => ctx
            .spec_member("ports")
            .ok_or(Missing)
            .map(|ports| out.push(Some(ports))),
    };
    skip_missing(found.map(|()| out))
}

fn container_list(list: ContainerList) -> ReqList {
    match list {
        ContainerList::Containers => ReqList::Containers,
        ContainerList::InitContainers => ReqList::InitContainers,
        ContainerList::EphemeralContainers => ReqList::EphemeralContainers,
    }
}

/// The per-container fields.
fn container<'e>(
    ctx: &'e EventCtx<'e>,
    list: ContainerList,
    attr: ContainerAttr,
    index: Option<u64>,
) -> Values<'e> {
    let list = container_list(list);
    match attr {
        ContainerAttr::Name => Values::single_list(all_present(walk_list(ctx, list, index, &["name"]))),
        ContainerAttr::Image => Values::single_list(all_present(walk_list(ctx, list, index, &["image"]))),
        ContainerAttr::Repository => match all_present(walk_list(ctx, list, index, &["image"])) {
            Some(images) => Values::list(images.into_iter().map(repository).collect()),
            None => Values::None,
        },
        ContainerAttr::Command => joined(walk_list(ctx, list, index, &["command"])),
        ContainerAttr::Args => joined(walk_list(ctx, list, index, &["args"])),
        ContainerAttr::Security(key) => skip_missing(walk_list(ctx, list, index, &["securityContext", key])),
        ContainerAttr::AddCapabilities => skip_missing(walk_list(
            ctx,
            list,
            index,
            &["securityContext", "capabilities", "add"],
        )),
        ContainerAttr::EffectiveRunAs(key) => {
            let Ok(found) = walk_list(ctx, list, index, &[key]) else {
                return Values::None;
            };
            let pod_default = spec_path(ctx, &[key]).map_or(Cow::Borrowed("0"), json::render);
            Values::list(
                found
                    .into_iter()
                    .map(|v| v.map_or_else(|| pod_default.clone(), json::render))
                    .collect(),
            )
        }
        ContainerAttr::HostPort => host_ports(walk_list(ctx, list, index, &["ports"])),
    }
}

/// The repository part of an image: cut at the first `:`, then at the first `@` (so a
/// registry with a port, `reg:5000/x`, gives `reg`).
fn repository(image: Cow<'_, str>) -> Cow<'_, str> {
    let cut = |s: &str| -> usize {
        let before_colon = s.find(':').unwrap_or(s.len());
        s[..before_colon].find('@').unwrap_or(before_colon)
    };
    match image {
        Cow::Borrowed(s) => Cow::Borrowed(&s[..cut(s)]),
        Cow::Owned(mut s) => {
            s.truncate(cut(&s));
            Cow::Owned(s)
        }
    }
}

/// Per container that has an array there: its elements joined with single spaces.
fn joined(found: Result<Vec<Option<&str>>, Missing>) -> Values<'_> {
    let Ok(found) = found else { return Values::None };
    let mut out = Vec::new();
    for raw in found.into_iter().flatten() {
        let Some(items) = json::elements(raw) else {
            continue;
        };
        let parts: Vec<Cow<'_, str>> = items.into_iter().map(json::render).collect();
        out.push(Cow::Owned(parts.join(" ")));
    }
    Values::list(out)
}

/// Per port entry: `hostPort`, else `containerPort`; a `ports` that is not an array means no
/// value at all.
fn host_ports(found: Result<Vec<Option<&str>>, Missing>) -> Values<'_> {
    let Ok(found) = found else { return Values::None };
    let mut out = Vec::new();
    for ports in found.into_iter().flatten() {
        let Some(ports) = json::elements(ports) else {
            return Values::None;
        };
        for port in ports {
            if let Some(p) = get(port, "hostPort").or_else(|| get(port, "containerPort")) {
                out.push(json::render(p));
            }
        }
    }
    Values::list(out)
}

/// `ka.req.container.image` / `.repository`: the first container only.
fn first_container<'e>(ctx: &'e EventCtx<'e>, repository_only: bool) -> Values<'e> {
    let images = all_present(walk_list(ctx, ReqList::Containers, Some(0), &["image"]));
    match images.and_then(|i| i.into_iter().next()) {
        Some(image) if repository_only => Values::One(repository(image)),
        Some(image) => Values::One(image),
        None => Values::None,
    }
}

/// `ka.req.container.privileged`: `true` if any container sets privileged to JSON `true`.
fn any_privileged<'e>(ctx: &'e EventCtx<'e>) -> Values<'e> {
    let Ok(found) = walk_list(ctx, ReqList::Containers, None, &["securityContext", "privileged"]) else {
        return Values::None;
    };
    let any = found.into_iter().flatten().any(|raw| raw.trim() == "true");
    Values::One(Cow::Borrowed(if any { "true" } else { "false" }))
}

/// `ka.req.volume.hostpath[path]`: every volume's `hostPath.path` is read (the key argument
/// is not an index). As in the k8saudit plugin, the values are read strictly: a volume
/// without a `hostPath.path` makes the field have no value, and so does a missing or empty
/// `volumes` array (the plugin's JSON library reads `[]` as no array). Otherwise `true` if a path equals the argument or, for an argument ending in `*`,
/// starts with the argument without the `*`; else `false`.
fn volume_has_host_path<'e>(ctx: &'e EventCtx<'e>, arg: &Arg, _index: Option<u64>) -> Values<'e> {
    let Arg::Key(wanted) = arg else {
        return Values::None;
    };
    let Some(paths) = all_present(walk_list(ctx, ReqList::Volumes, None, &["hostPath", "path"])) else {
        return Values::None;
    };
    if paths.is_empty() {
        return Values::None;
    }
    let prefix = wanted.strip_suffix('*');
    let hit = paths
        .iter()
        .any(|path| prefix.is_some_and(|p| path.starts_with(p)) || **path == **wanted);
    Values::One(Cow::Borrowed(if hit { "true" } else { "false" }))
}

/// Every key but `name` of each volume that is an object.
fn volume_types<'e>(ctx: &'e EventCtx<'e>, index: Option<u64>) -> Values<'e> {
    let Ok(found) = walk_list(ctx, ReqList::Volumes, index, &[""]) else {
        return Values::None;
    };
    let mut out = Vec::new();
    for volume in found.into_iter().flatten() {
        if let Some(members) = json::members(volume) {
            out.extend(
                members
                    .into_iter()
                    .map(|(key, _)| key)
                    .filter(|key| key != "name"),
            );
        }
    }
    Values::list(out)
}

/// `json.value[pointer]`: fastjson's `Get` along the pointer's segments, from the event root.
fn json_value<'e>(arg: &Arg, ctx: &'e EventCtx<'e>) -> Values<'e> {
    let Arg::Pointer { segments, .. } = arg else {
        return Values::None;
    };
    let Some(segments) = segments else {
        return Values::One(Cow::Borrowed(ctx.compact()));
    };
    let event = ctx.event();
    let Some((first, rest)) = segments.split_first() else {
        return Values::None;
    };
    if let (true, Some(text)) = (rest.is_empty(), top_level_text(event, first)) {
        return Values::One(Cow::Borrowed(text.as_str()));
    }
    let start = match &**first {
        "requestObject" => event.request_object_raw(),
        "responseObject" => event.response_object_raw(),
        "annotations" => event.annotations_raw(),
        "sourceIPs" => event.source_ips_raw(),
        key => event.member(key),
    };
    let found = start.and_then(|v| rest.iter().try_fold(v, |v, key| get(v, key)));
    rendered(found)
}

/// Top-level members the model already holds rendered (the rendering is the json plugin's:
/// string text, or compact JSON for other values).
fn top_level_text<'e>(event: &'e AuditEvent<'e>, key: &str) -> Option<&'e Text<'e>> {
    match key {
        "kind" => event.kind.as_ref(),
        "apiVersion" => event.api_version.as_ref(),
        "level" => event.level.as_ref(),
        "auditID" => event.audit_id.as_ref(),
        "stage" => event.stage.as_ref(),
        "requestURI" => event.request_uri.as_ref(),
        "verb" => event.verb.as_ref(),
        "userAgent" => event.user_agent.as_ref(),
        "requestReceivedTimestamp" => event.request_received_timestamp.as_ref(),
        "stageTimestamp" => event.stage_timestamp.as_ref(),
        _ => None,
    }
}

impl<'e> Values<'e> {
    /// A list field's values when all were present, else no value.
    fn single_list(values: Option<Vec<Cow<'e, str>>>) -> Values<'e> {
        values.map_or(Values::None, Values::list)
    }
}
