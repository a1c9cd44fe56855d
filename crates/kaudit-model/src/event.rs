//! [`AuditEvent`]: one audit event, borrowed from the buffer it was read from.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::json;
use crate::time::{TimeError, parse_rfc3339_nanos};

/// The text of a JSON leaf as the k8saudit plugin renders it (see [`json::render`]):
/// borrowed from the input unless the JSON string had escapes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    /// Renders raw JSON text.
    pub fn from_raw(raw: &'a str) -> Text<'a> {
        Text(json::render(raw))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as a `Cow`.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }

    /// A copy that no longer borrows the input.
    pub fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

/// One audit event. Every field the apiserver writes is available; a field absent from the
/// event is `None`. A field of an unexpected JSON type is not an error: its value renders as
/// compact JSON text, as in Falco. Unknown fields are kept in [`AuditEvent::raw`].
#[derive(Clone, Debug)]
pub struct AuditEvent<'a> {
    raw: &'a str,
    /// `kind` (`Event` in log lines; absent on webhook `EventList` items).
    pub kind: Option<Text<'a>>,
    /// `apiVersion`.
    pub api_version: Option<Text<'a>>,
    /// `level`: the policy level the event was recorded at.
    pub level: Option<Text<'a>>,
    /// `auditID`: shared by every stage of one request; client-controlled.
    pub audit_id: Option<Text<'a>>,
    /// `stage`.
    pub stage: Option<Text<'a>>,
    /// `requestURI`: path and raw query.
    pub request_uri: Option<Text<'a>>,
    /// `verb`.
    pub verb: Option<Text<'a>>,
    /// `user`: the authenticated identity (`None` when absent or not an object).
    pub user: Option<UserInfo<'a>>,
    /// `impersonatedUser`.
    pub impersonated_user: Option<UserInfo<'a>>,
    /// `userAgent`.
    pub user_agent: Option<Text<'a>>,
    /// `objectRef`: present for resource requests only.
    pub object_ref: Option<ObjectRef<'a>>,
    /// `responseStatus`: absent at `RequestReceived`.
    pub response_status: Option<ResponseStatus<'a>>,
    /// `requestReceivedTimestamp`.
    pub request_received_timestamp: Option<Text<'a>>,
    /// `stageTimestamp`.
    pub stage_timestamp: Option<Text<'a>>,
    source_ips: Option<&'a str>,
    request_object: Option<&'a str>,
    response_object: Option<&'a str>,
    annotations: Option<&'a str>,
    /// Whether `stageTimestamp` was a JSON string: only a string is a time, while `Text`
    /// renders a number as its digits.
    stage_timestamp_is_string: bool,
}

/// An identity (`user` or `impersonatedUser`).
#[derive(Clone, Debug, Default)]
pub struct UserInfo<'a> {
    /// `username`.
    pub username: Option<Text<'a>>,
    /// `uid`.
    pub uid: Option<Text<'a>>,
    groups: Option<&'a str>,
    extra: Option<&'a str>,
}

/// `objectRef`: what a resource request addressed.
#[derive(Clone, Debug, Default)]
pub struct ObjectRef<'a> {
    /// `resource` (plural, lowercase: `pods`).
    pub resource: Option<Text<'a>>,
    /// `namespace`.
    pub namespace: Option<Text<'a>>,
    /// `name`.
    pub name: Option<Text<'a>>,
    /// `uid`.
    pub uid: Option<Text<'a>>,
    /// `apiGroup` (absent for the core group).
    pub api_group: Option<Text<'a>>,
    /// `apiVersion`.
    pub api_version: Option<Text<'a>>,
    /// `resourceVersion`.
    pub resource_version: Option<Text<'a>>,
    /// `subresource` (`exec`, `log`, `scale`, ...).
    pub subresource: Option<Text<'a>>,
}

/// `responseStatus`: the HTTP outcome.
#[derive(Clone, Debug, Default)]
pub struct ResponseStatus<'a> {
    /// `code` as text (`"201"`).
    pub code: Option<Text<'a>>,
    /// `status` (`Success`, `Failure`).
    pub status: Option<Text<'a>>,
    /// `message`.
    pub message: Option<Text<'a>>,
    /// `reason` (`Forbidden`, `NotFound`, ...).
    pub reason: Option<Text<'a>>,
}

/// Why a JSON object could not be read as an audit event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The text is not a JSON object with the members of an event.
    #[error("{0}")]
    Json(String),
    /// `stageTimestamp` is missing or not a string.
    #[error("can't read stageTimestamp")]
    MissingStageTimestamp,
    /// `stageTimestamp` is a string but not RFC 3339.
    #[error(transparent)]
    BadStageTimestamp(#[from] TimeError),
}

impl<'a> AuditEvent<'a> {
    /// Reads one event from the raw text of a JSON object. The event borrows `raw`.
    pub fn parse(raw: &'a str) -> Result<AuditEvent<'a>, EventError> {
        let r: RawEvent<'a> = serde_json::from_str(raw).map_err(|e| EventError::Json(e.to_string()))?;
        Ok(AuditEvent::from_members(raw, r))
    }

    /// Builds the event from the members of its one parse (input framing parses an object
    /// once, then decides from the same members whether it is an event or an `EventList`).
    pub(crate) fn from_members(raw: &'a str, r: RawEvent<'a>) -> AuditEvent<'a> {
        let text = |v: Option<&'a RawValue>| v.map(|v| Text::from_raw(v.get()));
        AuditEvent {
            raw: raw.trim_matches(json::is_json_space),
            kind: text(r.kind),
            api_version: text(r.api_version),
            level: text(r.level),
            audit_id: text(r.audit_id),
            stage: text(r.stage),
            request_uri: text(r.request_uri),
            verb: text(r.verb),
            user: r.user.and_then(|v| UserInfo::parse(v.get())),
            impersonated_user: r.impersonated_user.and_then(|v| UserInfo::parse(v.get())),
            user_agent: text(r.user_agent),
            object_ref: r.object_ref.and_then(|v| ObjectRef::parse(v.get())),
            response_status: r.response_status.and_then(|v| ResponseStatus::parse(v.get())),
            request_received_timestamp: text(r.request_received_timestamp),
            stage_timestamp: text(r.stage_timestamp),
            source_ips: r.source_ips.map(RawValue::get),
            request_object: r.request_object.map(RawValue::get),
            response_object: r.response_object.map(RawValue::get),
            annotations: r.annotations.map(RawValue::get),
            stage_timestamp_is_string: r
                .stage_timestamp
                .is_some_and(|v| json::kind(v.get()) == Some(json::Kind::String)),
        }
    }

    /// The event's JSON text as read (leading and trailing blanks removed).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The event's time: `stageTimestamp` in nanoseconds since the epoch. Events are
    /// ordered and displayed by it, as in Falco.
    pub fn stage_time_nanos(&self) -> Result<i64, EventError> {
        match self.stage_timestamp_raw() {
            Some(s) => Ok(parse_rfc3339_nanos(s)?),
            None => Err(EventError::MissingStageTimestamp),
        }
    }

    fn stage_timestamp_raw(&self) -> Option<&str> {
        if !self.stage_timestamp_is_string {
            return None;
        }
        self.stage_timestamp.as_deref()
    }

    /// `requestReceivedTimestamp` in nanoseconds since the epoch, when present and valid.
    pub fn request_received_nanos(&self) -> Option<i64> {
        parse_rfc3339_nanos(self.request_received_timestamp.as_deref()?).ok()
    }

    /// The raw JSON text of `requestObject`, if present.
    pub fn request_object_raw(&self) -> Option<&'a str> {
        self.request_object
    }

    /// The raw JSON text of `responseObject`, if present.
    pub fn response_object_raw(&self) -> Option<&'a str> {
        self.response_object
    }

    /// The raw JSON text of `sourceIPs`, if present.
    pub fn source_ips_raw(&self) -> Option<&'a str> {
        self.source_ips
    }

    /// `sourceIPs` as text; empty when absent or not an array.
    pub fn source_ips(&self) -> Vec<Text<'a>> {
        self.source_ips
            .and_then(json::elements)
            .map(|items| items.into_iter().map(Text::from_raw).collect())
            .unwrap_or_default()
    }

    /// The raw JSON text of `annotations`, if present.
    pub fn annotations_raw(&self) -> Option<&'a str> {
        self.annotations
    }

    /// The value of one annotation.
    pub fn annotation(&self, key: &str) -> Option<Text<'a>> {
        json::member(self.annotations?, key).map(Text::from_raw)
    }

    /// Every annotation, in document order.
    pub fn annotations(&self) -> Vec<(Cow<'a, str>, Text<'a>)> {
        self.annotations
            .and_then(json::members)
            .map(|m| m.into_iter().map(|(k, v)| (k, Text::from_raw(v))).collect())
            .unwrap_or_default()
    }

    /// The raw JSON text at a JSON pointer into the whole event (see [`json::pointer`]).
    pub fn pointer(&self, pointer: &str) -> Option<&'a str> {
        json::pointer(self.raw, pointer)
    }

    /// The raw JSON text of a top-level member, including members the model does not name.
    pub fn member(&self, key: &str) -> Option<&'a str> {
        json::member(self.raw, key)
    }

    /// `user.username`, the most used attribute.
    pub fn username(&self) -> Option<&str> {
        self.user.as_ref()?.username.as_deref()
    }

    /// `objectRef.resource`.
    pub fn resource(&self) -> Option<&str> {
        self.object_ref.as_ref()?.resource.as_deref()
    }

    /// `objectRef.subresource`.
    pub fn subresource(&self) -> Option<&str> {
        self.object_ref.as_ref()?.subresource.as_deref()
    }

    /// `objectRef.namespace`.
    pub fn namespace(&self) -> Option<&str> {
        self.object_ref.as_ref()?.namespace.as_deref()
    }

    /// `objectRef.name`.
    pub fn name(&self) -> Option<&str> {
        self.object_ref.as_ref()?.name.as_deref()
    }

    /// `responseStatus.code` as a number, when it is one.
    pub fn response_code(&self) -> Option<u16> {
        self.response_status.as_ref()?.code.as_deref()?.parse().ok()
    }

    /// The authorization decision annotation (`allow` / `forbid`).
    pub fn authorization_decision(&self) -> Option<Text<'a>> {
        self.annotation("authorization.k8s.io/decision")
    }
}

impl<'a> UserInfo<'a> {
    fn parse(raw: &'a str) -> Option<UserInfo<'a>> {
        // serde also reads a struct from a JSON array; only an object is one here.
        if json::kind(raw) != Some(json::Kind::Object) {
            return None;
        }
        let r: RawUser<'a> = serde_json::from_str(raw).ok()?;
        let text = |v: Option<&'a RawValue>| v.map(|v| Text::from_raw(v.get()));
        Some(UserInfo {
            username: text(r.username),
            uid: text(r.uid),
            groups: r.groups.map(RawValue::get),
            extra: r.extra.map(RawValue::get),
        })
    }

    /// `groups`; `None` when absent or not an array (Falco then has no value).
    pub fn groups(&self) -> Option<Vec<Text<'a>>> {
        let items = json::elements(self.groups?)?;
        Some(items.into_iter().map(Text::from_raw).collect())
    }

    /// The raw JSON text of `groups`, if present.
    pub fn groups_raw(&self) -> Option<&'a str> {
        self.groups
    }

    /// The raw JSON text of `extra`, if present.
    pub fn extra_raw(&self) -> Option<&'a str> {
        self.extra
    }
}

impl<'a> ObjectRef<'a> {
    fn parse(raw: &'a str) -> Option<ObjectRef<'a>> {
        // serde also reads a struct from a JSON array; only an object is one here.
        if json::kind(raw) != Some(json::Kind::Object) {
            return None;
        }
        let r: RawObjectRef<'a> = serde_json::from_str(raw).ok()?;
        let text = |v: Option<&'a RawValue>| v.map(|v| Text::from_raw(v.get()));
        Some(ObjectRef {
            resource: text(r.resource),
            namespace: text(r.namespace),
            name: text(r.name),
            uid: text(r.uid),
            api_group: text(r.api_group),
            api_version: text(r.api_version),
            resource_version: text(r.resource_version),
            subresource: text(r.subresource),
        })
    }
}

impl<'a> ResponseStatus<'a> {
    fn parse(raw: &'a str) -> Option<ResponseStatus<'a>> {
        // serde also reads a struct from a JSON array; only an object is one here.
        if json::kind(raw) != Some(json::Kind::Object) {
            return None;
        }
        let r: RawStatus<'a> = serde_json::from_str(raw).ok()?;
        let text = |v: Option<&'a RawValue>| v.map(|v| Text::from_raw(v.get()));
        Some(ResponseStatus {
            code: text(r.code),
            status: text(r.status),
            message: text(r.message),
            reason: text(r.reason),
        })
    }
}

/// Keeps a JSON `null` as the raw text `null` instead of turning it into `None`: the
/// k8saudit plugin sees a member whose value is null as present.
fn keep_null<'de, D: Deserializer<'de>>(de: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(de).map(Some)
}

/// The top-level members of an object, each as raw JSON text: one parse serves both the
/// framing decision (kind, items, auditID) and the event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawEvent<'a> {
    /// `items`, read only to recognise an `EventList`.
    #[serde(borrow, default)]
    pub(crate) items: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    pub(crate) kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    api_version: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    level: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null", rename = "auditID")]
    pub(crate) audit_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    stage: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null", rename = "requestURI")]
    request_uri: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    verb: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    user: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    impersonated_user: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null", rename = "sourceIPs")]
    source_ips: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    user_agent: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    object_ref: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    response_status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    request_object: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    response_object: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    request_received_timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    stage_timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    annotations: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawUser<'a> {
    #[serde(borrow, default, deserialize_with = "keep_null")]
    username: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    uid: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    groups: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    extra: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObjectRef<'a> {
    #[serde(borrow, default, deserialize_with = "keep_null")]
    resource: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    namespace: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    name: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    uid: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    api_group: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    api_version: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    resource_version: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    subresource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawStatus<'a> {
    #[serde(borrow, default, deserialize_with = "keep_null")]
    code: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    message: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "keep_null")]
    reason: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_CREATE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods?fieldManager=kubectl\u0026x=1","verb":"create","user":{"username":"alice","groups":["devs","system:authenticated"]},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl","objectRef":{"resource":"pods","namespace":"default","name":"nginx","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Pod","spec":{"containers":[{"name":"nginx","image":"nginx"}]}},"requestReceivedTimestamp":"2024-05-01T10:11:12.123456Z","stageTimestamp":"2024-05-01T10:11:12.223456Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""},"futureField":{"x":1}}"#;

    #[test]
    fn reads_every_field() {
        let e = AuditEvent::parse(POD_CREATE).unwrap();
        assert_eq!(e.verb.as_deref(), Some("create"));
        assert_eq!(
            e.request_uri.as_deref(),
            Some("/api/v1/namespaces/default/pods?fieldManager=kubectl&x=1")
        );
        assert_eq!(e.username(), Some("alice"));
        assert_eq!(e.user.as_ref().unwrap().groups().unwrap().len(), 2);
        assert_eq!(e.resource(), Some("pods"));
        assert_eq!(e.response_code(), Some(201));
        assert_eq!(e.response_status.as_ref().unwrap().code.as_deref(), Some("201"));
        assert_eq!(e.authorization_decision().as_deref(), Some("allow"));
        assert_eq!(e.annotation("authorization.k8s.io/reason").as_deref(), Some(""));
        assert_eq!(e.source_ips()[0], "10.0.0.1");
        assert_eq!(
            e.pointer("/requestObject/spec/containers/0/image"),
            Some(r#""nginx""#)
        );
        assert_eq!(e.member("futureField"), Some(r#"{"x":1}"#));
        assert_eq!(e.stage_time_nanos().unwrap(), 1_714_558_272_223_456_000);
    }

    #[test]
    fn odd_types_render_as_json_text() {
        let e = AuditEvent::parse(
            r#"{"auditID":"x","verb":5,"user":"not-an-object","objectRef":{"name":null},"impersonatedUser":["alice"],"responseStatus":[201],"stageTimestamp":7}"#,
        )
        .unwrap();
        assert!(e.impersonated_user.is_none());
        assert!(e.response_status.is_none());
        assert_eq!(e.verb.as_deref(), Some("5"));
        assert!(e.user.is_none());
        assert_eq!(e.name(), Some("null"));
        assert_eq!(e.stage_time_nanos(), Err(EventError::MissingStageTimestamp));
    }
}
