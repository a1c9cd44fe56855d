//! [`EventCtx`]: one event as the fields see it, with lazily filled caches of what several
//! fields read (the pod spec, its container and volume arrays, RBAC rules and subjects, the
//! compact event text). A context lives for the evaluation of one event and is not shared
//! between threads.

use std::borrow::Cow;
use std::cell::OnceCell;

use kaudit_model::json::{self, Kind};
use kaudit_model::{AuditEvent, Located};

/// An array (or other value) of the request body that several fields walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReqList {
    /// `requestObject.spec.containers`
    Containers,
    /// `requestObject.spec.initContainers`
    InitContainers,
    /// `requestObject.spec.ephemeralContainers`
    EphemeralContainers,
    /// `requestObject.spec.volumes`
    Volumes,
    /// `requestObject.rules`
    Rules,
    /// `requestObject.subjects`
    Subjects,
}

impl ReqList {
    const COUNT: usize = 6;

    /// The path from the event root.
    pub(super) fn path(self) -> &'static [&'static str] {
        match self {
            ReqList::Containers => &["requestObject", "spec", "containers"],
            ReqList::InitContainers => &["requestObject", "spec", "initContainers"],
            ReqList::EphemeralContainers => &["requestObject", "spec", "ephemeralContainers"],
            ReqList::Volumes => &["requestObject", "spec", "volumes"],
            ReqList::Rules => &["requestObject", "rules"],
            ReqList::Subjects => &["requestObject", "subjects"],
        }
    }
}

/// Where a path from the event root leads, for the paths the caches cover.
#[derive(Clone, Debug)]
pub(super) enum Reach<'e> {
    /// A member on the way is missing (or not an object): the path leads nowhere.
    Absent,
    /// An array sits on the way (a `requestObject` or `spec` that is an array): the k8saudit
    /// plugin would walk into its elements, so the caller must take the general path.
    Irregular,
    /// The raw JSON text at the end of the path.
    Value(&'e str),
}

/// A cached list: its raw text, and its elements when it is an array.
#[derive(Clone, Debug)]
pub(super) enum ListReach<'e> {
    /// See [`Reach::Absent`].
    Absent,
    /// See [`Reach::Irregular`].
    Irregular,
    /// The value at the end of the path, with its elements if it is an array.
    Value {
        raw: &'e str,
        items: Option<Vec<&'e str>>,
    },
}

/// One event being evaluated: the event itself, its number in the input, and caches shared by
/// the fields extracted from it.
///
/// Build one per event with [`EventCtx::new`] and pass `&ctx` to every
/// [`FieldRef::extract`](super::FieldRef::extract) for that event. Optional settings:
/// [`EventCtx::with_hostname`] (for `evt.hostname`) and [`EventCtx::with_first_time_nanos`]
/// (for `evt.reltime*`).
pub struct EventCtx<'e> {
    located: &'e Located<'e>,
    evt_num: u64,
    hostname: Option<&'e str>,
    first_time_nanos: Option<i64>,
    request_members: OnceCell<Option<Members<'e>>>,
    spec_members: OnceCell<Option<Members<'e>>>,
    annotation_members: OnceCell<Option<Members<'e>>>,
    spec: OnceCell<Reach<'e>>,
    lists: [OnceCell<ListReach<'e>>; ReqList::COUNT],
    compact: OnceCell<Cow<'e, str>>,
}

/// The members of an object, read in one pass so that several lookups do not each scan it.
type Members<'e> = Vec<(Cow<'e, str>, &'e str)>;

/// The first member named `key` (fastjson keeps the first of duplicate keys).
fn find<'e>(members: Option<&Members<'e>>, key: &str) -> Option<&'e str> {
    members?.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

impl<'e> EventCtx<'e> {
    /// A context for `located`, the `evt_num`-th event of the input (counting from 1, as
    /// `evt.num`). Cheap: nothing is read until a field asks.
    pub fn new(located: &'e Located<'e>, evt_num: u64) -> Self {
        EventCtx {
            located,
            evt_num,
            hostname: None,
            first_time_nanos: None,
            request_members: OnceCell::new(),
            spec_members: OnceCell::new(),
            annotation_members: OnceCell::new(),
            spec: OnceCell::new(),
            lists: Default::default(),
            compact: OnceCell::new(),
        }
    }

    /// Sets the value of `evt.hostname` (Falco uses the machine's host name, or the
    /// `FALCO_HOSTNAME` environment variable). Without it, `evt.hostname` has no value: this
    /// crate does no I/O, so the caller looks the name up once.
    pub fn with_hostname(mut self, hostname: &'e str) -> Self {
        self.hostname = Some(hostname);
        self
    }

    /// Sets the time of the first event of the input, from which `evt.reltime*` count.
    /// Without it, this event counts as the first (`evt.reltime` is 0).
    pub fn with_first_time_nanos(mut self, nanos: i64) -> Self {
        self.first_time_nanos = Some(nanos);
        self
    }

    /// The event time: `stageTimestamp` in nanoseconds since the Unix epoch.
    pub fn time_nanos(&self) -> i64 {
        self.located.time_nanos
    }

    /// The event.
    pub fn event(&self) -> &'e AuditEvent<'e> {
        &self.located.event
    }

    /// The event's number in the input (1-based).
    pub fn evt_num(&self) -> u64 {
        self.evt_num
    }

    pub(super) fn hostname(&self) -> Option<&'e str> {
        self.hostname
    }

    pub(super) fn first_time_nanos(&self) -> i64 {
        self.first_time_nanos.unwrap_or(self.located.time_nanos)
    }

    /// Whether the event has a top-level `auditID` member (of any JSON type): without it the
    /// k8saudit plugin gives no `ka.*` field a value.
    pub(super) fn has_audit_id(&self) -> bool {
        self.located.event.audit_id.is_some()
    }

    /// The event as compact JSON: what the k8saudit plugin hands to Falco as the event
    /// payload (`json.value[""]`, `evt.plugininfo`).
    pub(super) fn compact(&'e self) -> &'e str {
        self.compact
            .get_or_init(|| json::minify(self.located.event.raw()))
    }

    /// The member `key` of `requestObject`, when it is an object.
    pub(super) fn request_member(&self, key: &str) -> Option<&'e str> {
        let members = self.request_members.get_or_init(|| match self.request_object() {
            Reach::Value(ro) => json::members(ro),
            Reach::Absent | Reach::Irregular => None,
        });
        find(members.as_ref(), key)
    }

    /// The member `key` of `requestObject.spec`, when both are objects.
    pub(super) fn spec_member(&self, key: &str) -> Option<&'e str> {
        let members = self.spec_members.get_or_init(|| match self.spec() {
            Reach::Value(spec) => json::members(spec),
            Reach::Absent | Reach::Irregular => None,
        });
        find(members.as_ref(), key)
    }

    /// The annotation `key`, when `annotations` is an object.
    pub(super) fn annotation(&self, key: &str) -> Option<&'e str> {
        let members = self
            .annotation_members
            .get_or_init(|| self.located.event.annotations_raw().and_then(json::members));
        find(members.as_ref(), key)
    }

    /// Where `requestObject.spec` leads.
    pub(super) fn spec(&self) -> Reach<'e> {
        self.spec
            .get_or_init(|| match self.request_object() {
                Reach::Value(_) => match self.request_member("spec") {
                    Some(spec) if json::kind(spec) == Some(Kind::Array) => Reach::Irregular,
                    Some(spec) => Reach::Value(spec),
                    None => Reach::Absent,
                },
                other => other,
            })
            .clone()
    }

    /// Where `requestObject` leads; a non-object, non-array body leads nowhere further.
    pub(super) fn request_object(&self) -> Reach<'e> {
        match self.located.event.request_object_raw() {
            None => Reach::Absent,
            Some(ro) => match json::kind(ro) {
                Some(Kind::Object) => Reach::Value(ro),
                Some(Kind::Array) => Reach::Irregular,
                _ => Reach::Absent,
            },
        }
    }

    /// Where one of the cached request lists leads, with its elements.
    pub(super) fn list(&'e self, list: ReqList) -> &'e ListReach<'e> {
        let cell = &self.lists[list as usize];
        cell.get_or_init(|| {
            let parent = match list {
                ReqList::Rules | ReqList::Subjects => self.request_object(),
                _ => self.spec(),
            };
            let key = list.path()[list.path().len() - 1];
            match parent {
                Reach::Absent => ListReach::Absent,
                Reach::Irregular => ListReach::Irregular,
                Reach::Value(parent) => match json::member(parent, key) {
                    None => ListReach::Absent,
                    Some(raw) => ListReach::Value {
                        raw,
                        items: json::elements(raw),
                    },
                },
            }
        })
    }
}
