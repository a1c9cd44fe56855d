//! The backend contract suite: behaviour every [`Store`] must show, written once.
//!
//! A backend's tests call [`store_contract_tests!`](crate::store_contract_tests) with a
//! function that opens a fresh, empty store (its own file or schema) wrapped in a [`Harness`];
//! the macro expands to one `#[test]` per contract case. Searches, counts and groupings are
//! checked against a reference evaluation of the same filter over the rows the test inserted,
//! so every filter is checked on data where it both matches and excludes rows.

pub mod bench;
pub mod workload;

use kaudit_model::{Level, Priority, Stage};

use crate::{
    AlertFields, AlertFilter, AlertGroupField, BatchOutcome, Cursor, EventFields, EventFilter,
    EventGroupField, EventId, GroupCount, HistogramBucket, Insertion, IntakeId, KeyHash, NewAlert, NewEvent,
    NewIntake, NewToken, PageRequest, Policy, Role, RuleFile, Store, StoreError, StoredAlert, StoredEvent,
    TimeRange, UserMatch, event_digest,
};

/// A fresh store for one test, cleaned up when dropped.
pub trait Harness {
    /// The store under test.
    fn store(&self) -> &dyn Store;

    /// Brings derived structures the backend fills behind the inserts (such as a free-text
    /// index) up to date. Results must be the same before and after; the suite checks both.
    fn settle(&self) {}

    /// Makes every later insert of an event whose auditID is `audit_id` fail inside the
    /// database (a trigger), to check that a failing batch leaves nothing behind.
    fn fail_inserts_of(&self, audit_id: &str);
}

/// Expands to one `#[test]` per contract case. `$open` is a function returning
/// `Option<impl Harness>`; `None` means the backend is unavailable and the test is skipped
/// (the function prints why and decides whether that is allowed, e.g. not under CI).
#[macro_export]
macro_rules! store_contract_tests {
    ($open:path) => {
        $crate::store_contract_tests!(@cases $open;
            dedupe, atomic_batch, event_filters, alert_filters, pagination_stable_under_inserts,
            grouping_and_histograms, retention, intake_lifecycle, token_lifecycle, config_objects,
            full_event_round_trip, invalid_queries, schema_version, bounded_counts,
            issue_4_long_values, issue_4_user_prefix_at_the_greatest_character);
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(harness) = $open() {
                    $crate::testsuite::$case(&harness);
                }
            }
        )*
    };
}

/// A base time: 2024-05-01T00:00:00Z in ns.
pub const T0: i64 = 1_714_521_600_000_000_000;
const SECOND: i64 = 1_000_000_000;

/// A small deterministic generator (xorshift), so fixtures vary without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Builds an event with its raw JSON; the digest covers the raw JSON.
pub fn event(cluster: &str, audit_id: &str, time_ns: i64) -> NewEvent {
    let fields = EventFields {
        cluster: cluster.to_owned(),
        intake_id: None,
        audit_id: audit_id.to_owned(),
        stage: Stage::ResponseComplete,
        digest: [0; 32],
        time_ns,
        received_ns: time_ns + SECOND,
        verb: "get".to_owned(),
        username: "alice".to_owned(),
        groups: vec!["system:authenticated".to_owned()],
        impersonated_user: None,
        resource: Some("pods".to_owned()),
        subresource: None,
        namespace: Some("default".to_owned()),
        name: Some("web-0".to_owned()),
        api_group: None,
        source_ip: Some("10.0.0.1".to_owned()),
        user_agent: Some("kubectl/v1.30.0 (linux/amd64)".to_owned()),
        response_code: Some(200),
        decision: Some("allow".to_owned()),
        request_uri: "/api/v1/namespaces/default/pods/web-0".to_owned(),
        level: Level::Metadata,
    };
    with_raw(fields)
}

/// Recomputes the raw JSON and digest of an event after its fields changed.
pub fn with_raw(mut fields: EventFields) -> NewEvent {
    let raw_json = format!(
        "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"{}\",\"auditID\":{},\"stage\":\"{}\",\
         \"requestURI\":{},\"verb\":{},\"user\":{{\"username\":{}}},\"note\":\"caf\u{e9} \u{1F600}\"}}",
        fields.level,
        quote(&fields.audit_id),
        fields.stage,
        quote(&fields.request_uri),
        quote(&fields.verb),
        quote(&fields.username),
    );
    fields.digest = event_digest(&raw_json);
    NewEvent { fields, raw_json }
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An alert on the event at `event_index`.
pub fn alert(event: &NewEvent, event_index: usize, rule: &str, priority: Priority) -> NewAlert {
    NewAlert {
        event_index,
        fields: AlertFields {
            time_ns: event.fields.time_ns,
            rule: rule.to_owned(),
            priority,
            output: format!("{rule} by {}", event.fields.username),
            output_fields_json: format!("{{\"ka.user.name\":{}}}", quote(&event.fields.username)),
            tags: vec!["k8s".to_owned(), "mitre_discovery".to_owned()],
            policy: "notable-events".to_owned(),
            cluster: event.fields.cluster.clone(),
            namespace: event.fields.namespace.clone(),
            username: event.fields.username.clone(),
            source: "k8s_audit".to_owned(),
        },
    }
}

/// A varied fixture: `n` events over two clusters with ties in time, absent fields, users with
/// shared prefixes, and alerts on about one event in five.
pub fn fixture(n: usize, seed: u64) -> (Vec<NewEvent>, Vec<NewAlert>) {
    let mut rng = Rng(seed.max(1));
    let users = [
        "alice",
        "bob",
        "alice.admin",
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:namespace-controller",
        "system:serviceaccount:monitoring:prometheus",
        "system:node:node-1",
        "system:kube-scheduler",
    ];
    let verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
    let resources = ["pods", "secrets", "configmaps", "deployments", "leases", "nodes"];
    let namespaces = ["default", "kube-system", "monitoring", "prod"];
    let agents = [
        "kubectl/v1.30.0 (linux/amd64)",
        "kube-controller-manager/v1.29.2",
        "Go-http-client/2.0",
        "curl/8.5",
    ];
    let rules = [
        "Create Privileged Pod",
        "Attach/Exec Pod",
        "K8s Secret Get",
        "Disallowed K8s User",
    ];
    let priorities = [
        Priority::Critical,
        Priority::Warning,
        Priority::Notice,
        Priority::Error,
    ];
    let mut events = Vec::with_capacity(n);
    let mut alerts = Vec::new();
    let mut time = T0;
    for i in 0..n {
        // About one event in four shares its time with the previous one.
        if !rng.chance(25) {
            time += (1 + rng.next() % 20) as i64 * SECOND;
        }
        let cluster = if rng.chance(70) { "prod-eu" } else { "staging" };
        let mut e = event(cluster, &format!("aud-{seed}-{i:05}"), time);
        let f = &mut e.fields;
        f.username = rng.pick(&users).to_owned();
        f.groups = if f.username.starts_with("system:serviceaccount:") {
            vec![
                "system:serviceaccounts".to_owned(),
                "system:authenticated".to_owned(),
            ]
        } else if f.username.starts_with("alice") {
            vec!["system:masters".to_owned(), "system:authenticated".to_owned()]
        } else {
            vec!["system:authenticated".to_owned()]
        };
        f.verb = rng.pick(&verbs).to_owned();
        f.stage = if rng.chance(10) {
            Stage::RequestReceived
        } else {
            Stage::ResponseComplete
        };
        let cluster_scoped = rng.chance(15);
        let resource = rng.pick(&resources);
        f.resource = Some(resource.to_owned());
        f.namespace = if cluster_scoped || resource == "nodes" {
            None
        } else {
            Some(rng.pick(&namespaces).to_owned())
        };
        f.name = if f.verb == "list" || f.verb == "watch" {
            None
        } else {
            Some(format!("{resource}-{}", rng.next() % 9))
        };
        f.subresource = if resource == "pods" && rng.chance(20) {
            Some("exec".to_owned())
        } else {
            None
        };
        f.api_group = if resource == "deployments" {
            Some("apps".to_owned())
        } else {
            None
        };
        f.impersonated_user = if rng.chance(5) {
            Some("mallory".to_owned())
        } else {
            None
        };
        f.source_ip = if rng.chance(5) {
            None
        } else {
            Some(format!("10.0.{}.{}", rng.next() % 2, rng.next() % 3))
        };
        f.user_agent = if rng.chance(5) {
            None
        } else {
            Some(rng.pick(&agents).to_owned())
        };
        f.response_code = if f.stage == Stage::RequestReceived {
            None
        } else {
            Some(
                *[200, 200, 201, 403, 404, 409]
                    .get((rng.next() % 6) as usize)
                    .unwrap_or(&200),
            )
        };
        f.decision = if f.response_code == Some(403) {
            Some("forbid".to_owned())
        } else {
            Some("allow".to_owned())
        };
        let mut uri = match (&f.api_group, &f.namespace) {
            (Some(group), Some(ns)) => format!("/apis/{group}/v1/namespaces/{ns}/{resource}"),
            (Some(group), None) => format!("/apis/{group}/v1/{resource}"),
            (None, Some(ns)) => format!("/api/v1/namespaces/{ns}/{resource}"),
            (None, None) => format!("/api/v1/{resource}"),
        };
        if let Some(name) = &f.name {
            uri.push('/');
            uri.push_str(name);
        }
        if let Some(sub) = &f.subresource {
            uri.push('/');
            uri.push_str(sub);
            uri.push_str("?command=sh&container=Web");
        }
        if f.verb == "watch" {
            uri.push_str("?watch=true&timeoutSeconds=300");
        }
        f.request_uri = uri;
        f.level = if rng.chance(20) {
            Level::RequestResponse
        } else {
            Level::Metadata
        };
        let e = with_raw(e.fields);
        if rng.chance(20) {
            alerts.push(alert(
                &e,
                i,
                rng.pick(&rules),
                priorities[(rng.next() % 4) as usize],
            ));
        }
        events.push(e);
    }
    (events, alerts)
}

/// The reference meaning of an event filter.
pub fn event_matches(filter: &EventFilter, f: &EventFields) -> bool {
    let eq =
        |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
    let contains = |haystack: &str, needle: &str| {
        haystack
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    };
    filter.time.contains(f.time_ns)
        && filter.cluster.as_ref().is_none_or(|c| *c == f.cluster)
        && filter.user.as_ref().is_none_or(|u| u.matches(&f.username))
        && filter.group.as_ref().is_none_or(|g| f.groups.contains(g))
        && filter.verb.as_ref().is_none_or(|v| *v == f.verb)
        && eq(&filter.resource, &f.resource)
        && eq(&filter.subresource, &f.subresource)
        && eq(&filter.namespace, &f.namespace)
        && eq(&filter.name, &f.name)
        && eq(&filter.source_ip, &f.source_ip)
        && filter
            .user_agent_contains
            .as_ref()
            .is_none_or(|a| f.user_agent.as_deref().is_some_and(|have| contains(have, a)))
        && filter.response_code.is_none_or(|c| f.response_code == Some(c))
        && eq(&filter.decision, &f.decision)
        && filter.text.as_ref().is_none_or(|t| {
            contains(&f.request_uri, t) || f.name.as_deref().is_some_and(|name| contains(name, t))
        })
}

/// The reference meaning of an alert filter.
pub fn alert_matches(filter: &AlertFilter, a: &AlertFields) -> bool {
    filter.time.contains(a.time_ns)
        && filter.min_priority.is_none_or(|p| a.priority.at_least(p))
        && filter.rule.as_ref().is_none_or(|r| *r == a.rule)
        && filter.policy.as_ref().is_none_or(|p| *p == a.policy)
        && filter.cluster.as_ref().is_none_or(|c| *c == a.cluster)
        && filter
            .namespace
            .as_ref()
            .is_none_or(|n| a.namespace.as_ref() == Some(n))
        && filter.user.as_ref().is_none_or(|u| *u == a.username)
}

fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what} failed: {e} ({e:?})"),
    }
}

fn insert(store: &dyn Store, events: &[NewEvent], alerts: &[NewAlert]) -> BatchOutcome {
    ok(store.insert_batch(events, alerts), "insert_batch")
}

fn new_ids(outcome: &BatchOutcome) -> Vec<Option<EventId>> {
    outcome
        .events
        .iter()
        .map(|i| match i {
            Insertion::New(id) => Some(*id),
            Insertion::Duplicate => None,
        })
        .collect()
}

/// Reads every page of a search.
fn all_events(store: &dyn Store, filter: &EventFilter, limit: u32) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = ok(
            store.search_events(filter, PageRequest { limit, cursor }),
            "search_events",
        );
        assert!(page.items.len() <= limit as usize, "page longer than its limit");
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

fn all_alerts(store: &dyn Store, filter: &AlertFilter, limit: u32) -> Vec<StoredAlert> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = ok(
            store.search_alerts(filter, PageRequest { limit, cursor }),
            "search_alerts",
        );
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Newest first: (time, id) descending.
fn newest_first<T>(rows: &mut [(i64, i64, T)]) {
    rows.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
}

/// Stores the fixture and returns the stored events (with ids) and alerts, as the reference.
fn load_fixture(store: &dyn Store, n: usize, seed: u64) -> (Vec<StoredEvent>, Vec<(EventId, AlertFields)>) {
    let (events, alerts) = fixture(n, seed);
    let mut stored = Vec::new();
    let mut stored_alerts = Vec::new();
    // Several batches, as the intake would write them.
    for start in (0..events.len()).step_by(40) {
        let end = (start + 40).min(events.len());
        let batch_alerts: Vec<NewAlert> = alerts
            .iter()
            .filter(|a| (start..end).contains(&a.event_index))
            .map(|a| NewAlert {
                event_index: a.event_index - start,
                fields: a.fields.clone(),
            })
            .collect();
        let outcome = insert(store, &events[start..end], &batch_alerts);
        let ids = new_ids(&outcome);
        for (event, id) in events[start..end].iter().zip(&ids) {
            let id =
                id.unwrap_or_else(|| panic!("fixture event {} reported duplicate", event.fields.audit_id));
            stored.push(StoredEvent {
                id,
                fields: event.fields.clone(),
            });
        }
        for a in &batch_alerts {
            if let Some(Some(id)) = ids.get(a.event_index) {
                stored_alerts.push((*id, a.fields.clone()));
            }
        }
        assert_eq!(
            outcome.alerts_stored,
            batch_alerts.len(),
            "alerts stored for new events"
        );
    }
    (stored, stored_alerts)
}

/// Dedupe on (cluster, auditID, stage, digest): retries store nothing twice, alerts follow only
/// new events, intake counters count only new events.
pub fn dedupe(h: &dyn Harness) {
    let store = h.store();
    let intake = ok(
        store.create_intake(&NewIntake {
            name: "prod".to_owned(),
            cluster: "prod-eu".to_owned(),
            key_hash: KeyHash::of_secret("k1"),
            created_ns: T0,
        }),
        "create_intake",
    );
    let stamp = |mut e: NewEvent| {
        e.fields.intake_id = Some(intake.id);
        e
    };
    let a = stamp(event("prod-eu", "a", T0 + SECOND));
    let b = stamp(event("prod-eu", "b", T0 + 2 * SECOND));
    let first = insert(
        store,
        &[a.clone(), b.clone()],
        &[alert(&a, 0, "R", Priority::Warning)],
    );
    assert!(
        matches!(first.events.as_slice(), [Insertion::New(_), Insertion::New(_)]),
        "{first:?}"
    );
    assert_eq!(first.alerts_stored, 1);

    // A retried batch: nothing new, its alert dropped.
    let retry = insert(
        store,
        &[a.clone(), b.clone()],
        &[alert(&a, 0, "R", Priority::Warning)],
    );
    assert_eq!(retry.events, vec![Insertion::Duplicate, Insertion::Duplicate]);
    assert_eq!(retry.alerts_stored, 0);

    // The same auditID and stage with a different body is a different event (clients may set
    // auditID themselves); the same event from another cluster too; another stage too; and a
    // duplicate inside one batch is stored once.
    let mut other_body = a.clone();
    other_body.fields.verb = "delete".to_owned();
    let other_body = with_raw(other_body.fields);
    let mut other_cluster = a.clone();
    other_cluster.fields.cluster = "staging".to_owned();
    let mut other_stage = a.clone();
    other_stage.fields.stage = Stage::RequestReceived;
    let other_stage = with_raw(other_stage.fields);
    let c = stamp(event("prod-eu", "c", T0 + 3 * SECOND));
    let mixed = insert(
        store,
        &[
            other_body.clone(),
            other_cluster,
            other_stage,
            c.clone(),
            c.clone(),
            a.clone(),
        ],
        &[
            alert(&c, 4, "R2", Priority::Error),
            alert(&c, 3, "R3", Priority::Error),
            alert(&a, 5, "R", Priority::Error),
        ],
    );
    let kinds: Vec<bool> = mixed
        .events
        .iter()
        .map(|i| matches!(i, Insertion::New(_)))
        .collect();
    assert_eq!(kinds, vec![true, true, true, true, false, false], "{mixed:?}");
    assert_eq!(
        mixed.alerts_stored, 1,
        "only the alert of the first copy of c is stored"
    );

    // A re-indented copy of a stored event is still the same event.
    let mut reindented = b.clone();
    reindented.raw_json = reindented.raw_json.replace(",", ", ").replace(":", ": ");
    reindented.fields.digest = event_digest(&reindented.raw_json);
    assert_eq!(
        insert(store, &[reindented], &[]).events,
        vec![Insertion::Duplicate]
    );

    assert_eq!(ok(store.count_events(&EventFilter::default()), "count_events"), 6);
    assert_eq!(ok(store.count_alerts(&AlertFilter::default()), "count_alerts"), 2);
    let intake = ok(store.get_intake(intake.id), "get_intake").unwrap_or_else(|| panic!("intake vanished"));
    // a, b, other_body, other_stage, c carry the intake id (other_cluster too): 6 new.
    assert_eq!(intake.event_count, 6);
    assert_eq!(intake.last_event_ns, Some(T0 + 3 * SECOND));
}

/// A batch that fails (a bad alert position, or an error inside the database halfway through)
/// leaves nothing behind, and the store keeps working.
pub fn atomic_batch(h: &dyn Harness) {
    let store = h.store();
    let intake = ok(
        store.create_intake(&NewIntake {
            name: "i".to_owned(),
            cluster: "c".to_owned(),
            key_hash: KeyHash::of_secret("k"),
            created_ns: T0,
        }),
        "create_intake",
    );
    let events: Vec<NewEvent> = (0..5)
        .map(|i| {
            let mut e = event("c", &format!("ok-{i}"), T0 + i * SECOND);
            e.fields.intake_id = Some(intake.id);
            e
        })
        .collect();
    let bad_alert = NewAlert {
        event_index: 5,
        ..alert(&events[0], 0, "R", Priority::Warning)
    };
    match store.insert_batch(
        &events,
        &[alert(&events[0], 0, "R", Priority::Warning), bad_alert],
    ) {
        Err(StoreError::InvalidBatch { position: 1, .. }) => {}
        other => panic!("expected InvalidBatch at alert 1, got {other:?}"),
    }

    h.fail_inserts_of("boom");
    let mut with_failure = events.clone();
    with_failure.insert(3, event("c", "boom", T0 + 10 * SECOND));
    let alerts = [
        alert(&with_failure[0], 0, "R", Priority::Warning),
        alert(&with_failure[4], 4, "R", Priority::Notice),
    ];
    assert!(
        store.insert_batch(&with_failure, &alerts).is_err(),
        "a batch with a failing insert must fail"
    );

    assert_eq!(
        ok(store.count_events(&EventFilter::default()), "count_events"),
        0,
        "no event of failed batches"
    );
    assert_eq!(
        ok(store.count_alerts(&AlertFilter::default()), "count_alerts"),
        0,
        "no alert of failed batches"
    );
    let after = ok(store.get_intake(intake.id), "get_intake").unwrap_or_else(|| panic!("intake vanished"));
    assert_eq!(
        (after.event_count, after.last_event_ns),
        (0, None),
        "intake counters untouched"
    );

    // The same events are new afterwards: nothing of them was stored.
    let outcome = insert(store, &events, &[alert(&events[1], 1, "R", Priority::Warning)]);
    assert_eq!(outcome.new_count(), 5);
    assert_eq!(outcome.alerts_stored, 1);
}

fn check_event_filter(store: &dyn Store, reference: &[StoredEvent], name: &str, filter: EventFilter) {
    let mut expected: Vec<(i64, i64, ())> = reference
        .iter()
        .filter(|e| event_matches(&filter, &e.fields))
        .map(|e| (e.fields.time_ns, e.id.0, ()))
        .collect();
    newest_first(&mut expected);
    let expected: Vec<i64> = expected.into_iter().map(|(_, id, _)| id).collect();
    let got = all_events(store, &filter, 13);
    let got_ids: Vec<i64> = got.iter().map(|e| e.id.0).collect();
    assert_eq!(
        got_ids, expected,
        "filter {name}: ids (newest first) differ from the reference"
    );
    for e in &got {
        let want = reference.iter().find(|r| r.id == e.id);
        assert_eq!(Some(e), want, "filter {name}: stored fields differ");
    }
    let count = ok(store.count_events(&filter), "count_events");
    assert_eq!(count, expected.len() as u64, "filter {name}: count");
}

/// Every event filter, alone and combined, against the reference evaluation.
pub fn event_filters(h: &dyn Harness) {
    let store = h.store();
    let (mut reference, _) = load_fixture(store, 400, 7);
    let mid = reference[200].fields.time_ns;
    let late = reference[300].fields.time_ns;
    let s = |v: &str| Some(v.to_owned());
    let base = EventFilter::default;
    let cases: Vec<(&str, EventFilter)> = vec![
        ("everything", base()),
        (
            "time from",
            EventFilter {
                time: TimeRange {
                    from_ns: Some(mid),
                    to_ns: None,
                },
                ..base()
            },
        ),
        (
            "time to",
            EventFilter {
                time: TimeRange {
                    from_ns: None,
                    to_ns: Some(mid),
                },
                ..base()
            },
        ),
        (
            "time between",
            EventFilter {
                time: TimeRange::between(mid, late),
                ..base()
            },
        ),
        (
            "cluster",
            EventFilter {
                cluster: s("staging"),
                ..base()
            },
        ),
        (
            "user exact",
            EventFilter {
                user: Some(UserMatch::Exact("alice".to_owned())),
                ..base()
            },
        ),
        (
            "user exact is not prefix",
            EventFilter {
                user: Some(UserMatch::Exact("alic".to_owned())),
                ..base()
            },
        ),
        (
            "user prefix",
            EventFilter {
                user: Some(UserMatch::Prefix("alice".to_owned())),
                ..base()
            },
        ),
        (
            "user prefix service accounts",
            EventFilter {
                user: Some(UserMatch::Prefix("system:serviceaccount:kube-system:".to_owned())),
                ..base()
            },
        ),
        (
            "user prefix is case-sensitive",
            EventFilter {
                user: Some(UserMatch::Prefix("ALICE".to_owned())),
                ..base()
            },
        ),
        (
            "group",
            EventFilter {
                group: s("system:masters"),
                ..base()
            },
        ),
        (
            "group exact only",
            EventFilter {
                group: s("system:master"),
                ..base()
            },
        ),
        (
            "verb",
            EventFilter {
                verb: s("delete"),
                ..base()
            },
        ),
        (
            "resource",
            EventFilter {
                resource: s("secrets"),
                ..base()
            },
        ),
        (
            "subresource",
            EventFilter {
                subresource: s("exec"),
                ..base()
            },
        ),
        (
            "namespace",
            EventFilter {
                namespace: s("kube-system"),
                ..base()
            },
        ),
        (
            "name",
            EventFilter {
                name: s("secrets-3"),
                ..base()
            },
        ),
        (
            "source ip",
            EventFilter {
                source_ip: s("10.0.1.2"),
                ..base()
            },
        ),
        (
            "user agent substring",
            EventFilter {
                user_agent_contains: s("kubectl"),
                ..base()
            },
        ),
        (
            "user agent any case",
            EventFilter {
                user_agent_contains: s("GO-HTTP"),
                ..base()
            },
        ),
        (
            "user agent like chars are literal",
            EventFilter {
                user_agent_contains: s("_"),
                ..base()
            },
        ),
        (
            "response code",
            EventFilter {
                response_code: Some(403),
                ..base()
            },
        ),
        (
            "decision",
            EventFilter {
                decision: s("forbid"),
                ..base()
            },
        ),
        (
            "text in uri",
            EventFilter {
                text: s("watch=true"),
                ..base()
            },
        ),
        (
            "text any case",
            EventFilter {
                text: s("CONTAINER=web"),
                ..base()
            },
        ),
        (
            "text in name",
            EventFilter {
                text: s("ments-4"),
                ..base()
            },
        ),
        (
            "text short",
            EventFilter {
                text: s("v1"),
                ..base()
            },
        ),
        (
            "text percent is literal",
            EventFilter {
                text: s("%"),
                ..base()
            },
        ),
        (
            "text absent",
            EventFilter {
                text: s("no-such-thing"),
                ..base()
            },
        ),
        (
            "combined",
            EventFilter {
                time: TimeRange {
                    from_ns: Some(T0),
                    to_ns: Some(late),
                },
                cluster: s("prod-eu"),
                user: Some(UserMatch::Prefix("system:".to_owned())),
                verb: s("get"),
                ..base()
            },
        ),
        (
            "namespace and resource and code",
            EventFilter {
                namespace: s("prod"),
                resource: s("pods"),
                response_code: Some(200),
                ..base()
            },
        ),
        (
            "text and user",
            EventFilter {
                text: s("kube-system"),
                user: Some(UserMatch::Exact("bob".to_owned())),
                ..base()
            },
        ),
    ];
    // Before and after the backend's derived indexes catch up, and with only part of the rows
    // covered by them.
    for (name, filter) in &cases {
        check_event_filter(store, &reference, name, filter.clone());
    }
    h.settle();
    for (name, filter) in &cases {
        check_event_filter(store, &reference, name, filter.clone());
    }
    let (mut more, _) = load_fixture(store, 100, 8);
    reference.append(&mut more);
    for (name, filter) in cases {
        check_event_filter(store, &reference, name, filter);
    }
}

fn check_alert_filter(
    store: &dyn Store,
    reference: &[(i64, EventId, AlertFields)],
    name: &str,
    filter: AlertFilter,
) {
    let mut expected: Vec<(i64, i64, EventId)> = reference
        .iter()
        .filter(|(_, _, a)| alert_matches(&filter, a))
        .map(|(id, event, a)| (a.time_ns, *id, *event))
        .collect();
    newest_first(&mut expected);
    let got = all_alerts(store, &filter, 7);
    let got_keys: Vec<(i64, i64, EventId)> = got
        .iter()
        .map(|a| (a.fields.time_ns, a.id.0, a.event_id))
        .collect();
    assert_eq!(got_keys, expected, "alert filter {name}");
    for a in &got {
        let want = reference
            .iter()
            .find(|(id, _, _)| *id == a.id.0)
            .map(|(_, _, f)| f);
        assert_eq!(Some(&a.fields), want, "alert filter {name}: stored fields differ");
    }
    assert_eq!(
        ok(store.count_alerts(&filter), "count_alerts"),
        expected.len() as u64,
        "alert filter {name}: count"
    );
}

/// Every alert filter against the reference evaluation.
pub fn alert_filters(h: &dyn Harness) {
    let store = h.store();
    let (events, alerts) = load_fixture(store, 400, 11);
    // Alert ids are the store's; pair them with the reference through (event, rule).
    let stored = all_alerts(store, &AlertFilter::default(), 1000);
    let reference: Vec<(i64, EventId, AlertFields)> = stored
        .iter()
        .map(|a| {
            let found = alerts
                .iter()
                .find(|(event, f)| *event == a.event_id && *f == a.fields);
            assert!(found.is_some(), "stored alert {a:?} was never inserted");
            (a.id.0, a.event_id, a.fields.clone())
        })
        .collect();
    assert_eq!(reference.len(), alerts.len(), "every alert stored once");
    let mid = events[200].fields.time_ns;
    let s = |v: &str| Some(v.to_owned());
    let base = AlertFilter::default;
    let cases: Vec<(&str, AlertFilter)> = vec![
        ("everything", base()),
        (
            "time",
            AlertFilter {
                time: TimeRange {
                    from_ns: Some(mid),
                    to_ns: None,
                },
                ..base()
            },
        ),
        (
            "min priority error",
            AlertFilter {
                min_priority: Some(Priority::Error),
                ..base()
            },
        ),
        (
            "min priority critical",
            AlertFilter {
                min_priority: Some(Priority::Critical),
                ..base()
            },
        ),
        (
            "min priority debug",
            AlertFilter {
                min_priority: Some(Priority::Debug),
                ..base()
            },
        ),
        (
            "rule",
            AlertFilter {
                rule: s("Attach/Exec Pod"),
                ..base()
            },
        ),
        (
            "policy",
            AlertFilter {
                policy: s("notable-events"),
                ..base()
            },
        ),
        (
            "policy absent",
            AlertFilter {
                policy: s("all-activity"),
                ..base()
            },
        ),
        (
            "cluster",
            AlertFilter {
                cluster: s("staging"),
                ..base()
            },
        ),
        (
            "namespace",
            AlertFilter {
                namespace: s("prod"),
                ..base()
            },
        ),
        (
            "user",
            AlertFilter {
                user: s("bob"),
                ..base()
            },
        ),
        (
            "combined",
            AlertFilter {
                min_priority: Some(Priority::Warning),
                cluster: s("prod-eu"),
                rule: s("K8s Secret Get"),
                ..base()
            },
        ),
    ];
    for (name, filter) in cases {
        check_alert_filter(store, &reference, name, filter);
    }
    // Every alert links to its stored event.
    for a in stored.iter().take(20) {
        assert!(
            ok(store.get_event(a.event_id), "get_event").is_some(),
            "alert {} has no event",
            a.id.0
        );
    }
}

/// Keyset pagination: reading page by page while inserts happen returns every row that
/// existed at the start exactly once, in order, and never a row twice.
pub fn pagination_stable_under_inserts(h: &dyn Harness) {
    let store = h.store();
    let (reference, _) = load_fixture(store, 150, 3);
    let newest = reference.iter().map(|e| e.fields.time_ns).max().unwrap_or(T0);
    let mut expected: Vec<(i64, i64, ())> =
        reference.iter().map(|e| (e.fields.time_ns, e.id.0, ())).collect();
    newest_first(&mut expected);
    let expected: Vec<i64> = expected.into_iter().map(|(_, id, _)| id).collect();

    let filter = EventFilter::default();
    let mut seen: Vec<StoredEvent> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut round = 0i64;
    loop {
        let page = ok(
            store.search_events(&filter, PageRequest { limit: 9, cursor }),
            "search_events",
        );
        seen.extend(page.items.iter().cloned());
        // Between pages: newer events, events at the cursor's exact time (higher ids), and
        // late-arriving older events.
        round += 1;
        let mut extra = vec![event("late", &format!("new-{round}"), newest + round * SECOND)];
        if let Some(c) = page.next_cursor {
            extra.push(event("late", &format!("tie-{round}"), c.time_ns));
            extra.push(event("late", &format!("old-{round}"), c.time_ns - 1));
        }
        insert(store, &extra, &[]);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ids: Vec<i64> = seen.iter().map(|e| e.id.0).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a row appeared on two pages");
    let original: Vec<i64> = ids.iter().copied().filter(|id| expected.contains(id)).collect();
    assert_eq!(
        original, expected,
        "rows present at the start: each exactly once, newest first"
    );
    let keys: Vec<(i64, i64)> = seen.iter().map(|e| (e.fields.time_ns, e.id.0)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "pages are strictly newest first"
    );

    // A cursor in the encoded form works the same.
    let first = ok(
        store.search_events(&filter, PageRequest::first(5)),
        "search_events",
    );
    let encoded = first.next_cursor.map(|c| c.encode()).unwrap_or_default();
    let decoded = ok(Cursor::decode(&encoded), "Cursor::decode");
    let second = ok(
        store.search_events(
            &filter,
            PageRequest {
                limit: 5,
                cursor: Some(decoded),
            },
        ),
        "search_events",
    );
    let both: Vec<i64> = first.items.iter().chain(&second.items).map(|e| e.id.0).collect();
    let direct: Vec<i64> = ok(
        store.search_events(&filter, PageRequest::first(10)),
        "search_events",
    )
    .items
    .iter()
    .map(|e| e.id.0)
    .collect();
    assert_eq!(both, direct);
    assert!(matches!(
        Cursor::decode("not a cursor"),
        Err(StoreError::InvalidCursor)
    ));
}

fn reference_groups(keys: impl Iterator<Item = Option<String>>, limit: usize) -> Vec<GroupCount> {
    let mut counts: Vec<GroupCount> = Vec::new();
    for key in keys {
        match counts.iter_mut().find(|g| g.key == key) {
            Some(g) => g.count += 1,
            None => counts.push(GroupCount { key, count: 1 }),
        }
    }
    // Largest first; ties by key with absent first.
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    counts.truncate(limit);
    counts
}

/// Grouped counts and histograms against the reference.
pub fn grouping_and_histograms(h: &dyn Harness) {
    let store = h.store();
    let (reference, alerts) = load_fixture(store, 300, 5);
    let window = TimeRange::between(reference[50].fields.time_ns, reference[250].fields.time_ns);
    let filters = [
        EventFilter::default(),
        EventFilter {
            time: window,
            ..EventFilter::default()
        },
        EventFilter {
            time: window,
            cluster: Some("prod-eu".to_owned()),
            ..EventFilter::default()
        },
    ];
    for filter in &filters {
        check_event_groups(store, &reference, filter);
    }
    let alert_filter = AlertFilter {
        min_priority: Some(Priority::Error),
        ..AlertFilter::default()
    };
    for filter in [AlertFilter::default(), alert_filter] {
        check_alert_groups(store, &alerts, &filter);
    }
}

/// Every grouped count (limits 100 and 3) and histogram (minutes, hours, 7 seconds) of
/// `filter` against the reference.
fn check_event_groups(store: &dyn Store, reference: &[StoredEvent], filter: &EventFilter) {
    type Key = fn(&EventFields) -> Option<String>;
    let fields: [(EventGroupField, Key); 9] = [
        (EventGroupField::User, |f| Some(f.username.clone())),
        (EventGroupField::Verb, |f| Some(f.verb.clone())),
        (EventGroupField::Resource, |f| f.resource.clone()),
        (EventGroupField::Namespace, |f| f.namespace.clone()),
        (EventGroupField::SourceIp, |f| f.source_ip.clone()),
        (EventGroupField::ResponseCode, |f| {
            f.response_code.map(|c| c.to_string())
        }),
        (EventGroupField::Cluster, |f| Some(f.cluster.clone())),
        (EventGroupField::Decision, |f| f.decision.clone()),
        (EventGroupField::UserAgent, |f| f.user_agent.clone()),
    ];
    for (field, key) in &fields {
        for limit in [100usize, 3] {
            let matching = reference.iter().filter(|e| event_matches(filter, &e.fields));
            let want = reference_groups(matching.map(|e| key(&e.fields)), limit);
            let got = ok(store.group_events(filter, *field, limit as u32), "group_events");
            assert_eq!(got, want, "group by {field:?} limit {limit} over {filter:?}");
        }
    }
    for bucket in [60 * SECOND, 3600 * SECOND, 7 * SECOND] {
        let mut want: Vec<HistogramBucket> = Vec::new();
        let mut times: Vec<i64> = reference
            .iter()
            .filter(|e| event_matches(filter, &e.fields))
            .map(|e| e.fields.time_ns)
            .collect();
        times.sort_unstable();
        for t in times {
            let start = HistogramBucket::start_of(t, bucket);
            match want.last_mut() {
                Some(b) if b.start_ns == start => b.count += 1,
                _ => want.push(HistogramBucket {
                    start_ns: start,
                    count: 1,
                }),
            }
        }
        let got = ok(store.histogram_events(filter, bucket), "histogram_events");
        assert_eq!(got, want, "histogram of {bucket} ns over {filter:?}");
    }
}

/// Every grouped count and the histogram of alerts of `filter` against the reference.
fn check_alert_groups(store: &dyn Store, alerts: &[(EventId, AlertFields)], filter: &AlertFilter) {
    type AlertKey = fn(&AlertFields) -> Option<String>;
    let alert_fields: [(AlertGroupField, AlertKey); 6] = [
        (AlertGroupField::Rule, |a| Some(a.rule.clone())),
        (AlertGroupField::Priority, |a| {
            Some(a.priority.falco_name().to_owned())
        }),
        (AlertGroupField::Cluster, |a| Some(a.cluster.clone())),
        (AlertGroupField::Namespace, |a| a.namespace.clone()),
        (AlertGroupField::User, |a| Some(a.username.clone())),
        (AlertGroupField::Policy, |a| Some(a.policy.clone())),
    ];
    for (field, key) in &alert_fields {
        let matching = alerts
            .iter()
            .filter(|(_, a)| alert_matches(filter, a))
            .map(|(_, a)| a);
        let mut want = reference_groups(matching.map(key), 100);
        let got = ok(store.group_alerts(filter, *field, 100), "group_alerts");
        if *field == AlertGroupField::Priority {
            // Ties among priorities are ordered by number, not by name.
            let rank = |g: &GroupCount| {
                g.key
                    .as_deref()
                    .and_then(|k| k.parse::<Priority>().ok())
                    .map(|p| p.number())
                    .unwrap_or(9)
            };
            want.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| rank(a).cmp(&rank(b))));
        }
        assert_eq!(got, want, "alert group by {field:?} over {filter:?}");
    }
    let bucket = 120 * SECOND;
    let mut times: Vec<i64> = alerts
        .iter()
        .filter(|(_, a)| alert_matches(filter, a))
        .map(|(_, a)| a.time_ns)
        .collect();
    times.sort_unstable();
    let mut want: Vec<HistogramBucket> = Vec::new();
    for t in times {
        let start = HistogramBucket::start_of(t, bucket);
        match want.last_mut() {
            Some(b) if b.start_ns == start => b.count += 1,
            _ => want.push(HistogramBucket {
                start_ns: start,
                count: 1,
            }),
        }
    }
    assert_eq!(
        ok(store.histogram_alerts(filter, bucket), "histogram_alerts"),
        want,
        "alert histogram over {filter:?}"
    );
}

/// Retention deletes events and alerts older than the cutoff, in chunks, and nothing newer.
pub fn retention(h: &dyn Harness) {
    let store = h.store();
    let (reference, alerts) = load_fixture(store, 200, 9);
    h.settle();
    let cutoff = reference[120].fields.time_ns;
    let one = ok(store.purge_chunk(cutoff, 10), "purge_chunk");
    assert_eq!(one.events, 10, "one chunk deletes at most its size");
    let rest = ok(store.purge_before(cutoff, 7), "purge_before");
    let old_events = reference.iter().filter(|e| e.fields.time_ns < cutoff).count() as u64;
    assert_eq!(one.events + rest.events, old_events, "every old event deleted");
    let old_alerts = alerts.iter().filter(|(_, a)| a.time_ns < cutoff).count() as u64;
    assert_eq!(one.alerts + rest.alerts, old_alerts, "every old alert deleted");
    let kept: Vec<&StoredEvent> = reference.iter().filter(|e| e.fields.time_ns >= cutoff).collect();
    assert_eq!(
        ok(store.count_events(&EventFilter::default()), "count_events"),
        kept.len() as u64
    );
    assert_eq!(
        ok(store.count_alerts(&AlertFilter::default()), "count_alerts"),
        alerts.len() as u64 - old_alerts,
        "newer alerts kept"
    );
    for e in &reference {
        let found = ok(store.get_event(e.id), "get_event").is_some();
        assert_eq!(
            found,
            e.fields.time_ns >= cutoff,
            "event {} at {}",
            e.id.0,
            e.fields.time_ns
        );
    }
    // Free text no longer finds deleted events, and a purge with nothing to do does nothing.
    let text = EventFilter {
        text: Some("api".to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(ok(store.count_events(&text), "count_events"), kept.len() as u64);
    assert_eq!(
        ok(store.purge_before(cutoff, 7), "purge_before"),
        crate::Purged::default()
    );
    // Deleted events can be stored again (a replay of old data after retention).
    let again = fixture(200, 9).0;
    assert_eq!(insert(store, &again[..5], &[]).new_count(), 5);
}

/// Intakes: create, name conflicts, lookup by key hash, revoke.
pub fn intake_lifecycle(h: &dyn Harness) {
    let store = h.store();
    let new = |name: &str, key: &str| NewIntake {
        name: name.to_owned(),
        cluster: format!("{name}-cluster"),
        key_hash: KeyHash::of_secret(key),
        created_ns: T0,
    };
    let a = ok(store.create_intake(&new("a", "key-a")), "create_intake");
    assert_eq!(
        (a.name.as_str(), a.cluster.as_str(), a.event_count, a.revoked_ns),
        ("a", "a-cluster", 0, None)
    );
    let b = ok(store.create_intake(&new("b", "key-b")), "create_intake");
    assert!(matches!(
        store.create_intake(&new("a", "key-c")),
        Err(StoreError::Conflict { what: "intake", .. })
    ));

    let found = ok(
        store.find_active_intake(&KeyHash::of_secret("key-b")),
        "find_active_intake",
    );
    assert_eq!(found.as_ref().map(|i| i.id), Some(b.id));
    assert_eq!(
        ok(
            store.find_active_intake(&KeyHash::of_secret("key-x")),
            "find_active_intake"
        ),
        None
    );

    assert!(ok(store.revoke_intake(b.id, T0 + 5), "revoke_intake"));
    assert!(
        !ok(store.revoke_intake(b.id, T0 + 9), "revoke_intake"),
        "second revocation is a no-op"
    );
    assert!(
        !ok(store.revoke_intake(IntakeId(999_999), T0), "revoke_intake"),
        "unknown intake"
    );
    assert_eq!(
        ok(
            store.find_active_intake(&KeyHash::of_secret("key-b")),
            "find_active_intake"
        ),
        None
    );
    assert!(
        ok(
            store.find_active_intake(&KeyHash::of_secret("key-a")),
            "find_active_intake"
        )
        .is_some()
    );

    let listed = ok(store.list_intakes(), "list_intakes");
    let summary: Vec<(&str, Option<i64>)> = listed.iter().map(|i| (i.name.as_str(), i.revoked_ns)).collect();
    assert_eq!(summary, vec![("a", None), ("b", Some(T0 + 5))]);
    assert_eq!(ok(store.get_intake(a.id), "get_intake"), Some(a));
    assert_eq!(ok(store.get_intake(IntakeId(999_999)), "get_intake"), None);
}

/// API tokens: create, lookup by hash, roles, revoke.
pub fn token_lifecycle(h: &dyn Harness) {
    let store = h.store();
    let new = |name: &str, role: Role, key: &str| NewToken {
        name: name.to_owned(),
        role,
        key_hash: KeyHash::of_secret(key),
        created_ns: T0,
    };
    let admin = ok(
        store.create_token(&new("first-admin", Role::Admin, "t-admin")),
        "create_token",
    );
    let viewer = ok(
        store.create_token(&new("ui", Role::Viewer, "t-view")),
        "create_token",
    );
    assert!(matches!(
        store.create_token(&new("ui", Role::Admin, "t-other")),
        Err(StoreError::Conflict { what: "token", .. })
    ));
    let found = ok(
        store.find_active_token(&KeyHash::of_secret("t-view")),
        "find_active_token",
    );
    assert_eq!(found.map(|t| (t.id, t.role)), Some((viewer.id, Role::Viewer)));
    assert_eq!(
        ok(
            store.find_active_token(&KeyHash::of_secret("t-none")),
            "find_active_token"
        ),
        None
    );
    assert!(ok(store.revoke_token(admin.id, T0 + 1), "revoke_token"));
    assert!(!ok(store.revoke_token(admin.id, T0 + 2), "revoke_token"));
    assert_eq!(
        ok(
            store.find_active_token(&KeyHash::of_secret("t-admin")),
            "find_active_token"
        ),
        None
    );
    let listed = ok(store.list_tokens(), "list_tokens");
    let summary: Vec<(&str, Role, Option<i64>)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.role, t.revoked_ns))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("first-admin", Role::Admin, Some(T0 + 1)),
            ("ui", Role::Viewer, None)
        ]
    );
}

/// Rule files, policies and settings: put, replace, get, list, delete.
pub fn config_objects(h: &dyn Harness) {
    let store = h.store();
    let file = |name: &str, content: &str, t: i64| RuleFile {
        name: name.to_owned(),
        content: content.to_owned(),
        updated_ns: t,
    };
    ok(
        store.put_rule_file(&file("b.yaml", "- rule: B\n", T0)),
        "put_rule_file",
    );
    ok(
        store.put_rule_file(&file("a.yaml", "- rule: A\n", T0)),
        "put_rule_file",
    );
    ok(
        store.put_rule_file(&file("b.yaml", "- rule: B2\n", T0 + 1)),
        "put_rule_file",
    );
    let names: Vec<String> = ok(store.list_rule_files(), "list_rule_files")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["a.yaml", "b.yaml"]);
    assert_eq!(
        ok(store.get_rule_file("b.yaml"), "get_rule_file"),
        Some(file("b.yaml", "- rule: B2\n", T0 + 1))
    );
    assert!(ok(store.delete_rule_file("a.yaml"), "delete_rule_file"));
    assert!(!ok(store.delete_rule_file("a.yaml"), "delete_rule_file"));
    assert_eq!(ok(store.get_rule_file("a.yaml"), "get_rule_file"), None);

    let policy = Policy {
        name: "notable-events".to_owned(),
        enabled: true,
        scope_json: "null".to_owned(),
        rules_json: "{\"tags\":[\"k8s\"]}".to_owned(),
        builtin: true,
        updated_ns: T0,
    };
    ok(store.put_policy(&policy), "put_policy");
    let all_activity = Policy {
        name: "all-activity".to_owned(),
        enabled: false,
        builtin: true,
        ..policy.clone()
    };
    ok(store.put_policy(&all_activity), "put_policy");
    let disabled = Policy {
        enabled: false,
        updated_ns: T0 + 1,
        ..policy.clone()
    };
    ok(store.put_policy(&disabled), "put_policy");
    assert_eq!(
        ok(store.list_policies(), "list_policies"),
        vec![all_activity, disabled.clone()]
    );
    assert_eq!(
        ok(store.get_policy("notable-events"), "get_policy"),
        Some(disabled)
    );
    assert!(ok(store.delete_policy("notable-events"), "delete_policy"));
    assert_eq!(ok(store.get_policy("notable-events"), "get_policy"), None);

    ok(store.put_setting("retention_days", "30"), "put_setting");
    ok(store.put_setting("retention_days", "7"), "put_setting");
    ok(store.put_setting("a", "1"), "put_setting");
    assert_eq!(
        ok(store.get_setting("retention_days"), "get_setting"),
        Some("7".to_owned())
    );
    assert_eq!(ok(store.get_setting("missing"), "get_setting"), None);
    assert_eq!(
        ok(store.list_settings(), "list_settings"),
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("retention_days".to_owned(), "7".to_owned())
        ]
    );
}

/// One event in full: every field and the raw JSON (non-ASCII included) come back as stored.
pub fn full_event_round_trip(h: &dyn Harness) {
    let store = h.store();
    let mut e = event("c\u{e9}", "r\u{fc}nde", T0 - 5 * SECOND);
    e.fields.groups = vec![];
    e.fields.impersonated_user = Some("\u{1F600} user".to_owned());
    e.fields.response_code = None;
    e.fields.namespace = None;
    e.fields.stage = Stage::Panic;
    e.fields.level = Level::Request;
    e.fields.request_uri = "/api/v1/pods?labelSelector=a%3Db&x=\"q\"".to_owned();
    let big = "x".repeat(200_000);
    let mut e = with_raw(e.fields);
    e.raw_json = e
        .raw_json
        .replace("\"note\"", &format!("\"big\":\"{big}\",\"note\""));
    e.fields.digest = event_digest(&e.raw_json);
    let outcome = insert(store, std::slice::from_ref(&e), &[]);
    let Some(Some(id)) = new_ids(&outcome).first().copied() else {
        panic!("not stored: {outcome:?}")
    };
    let full = ok(store.get_event(id), "get_event").unwrap_or_else(|| panic!("event {id:?} not found"));
    assert_eq!(
        full.event,
        StoredEvent {
            id,
            fields: e.fields.clone()
        }
    );
    assert_eq!(full.raw_json, e.raw_json);
    assert_eq!(ok(store.get_event(EventId(id.0 + 1000)), "get_event"), None);
}

/// Out-of-range query parameters are refused, not guessed.
pub fn invalid_queries(h: &dyn Harness) {
    let store = h.store();
    insert(store, &[event("c", "x", T0)], &[]);
    let zero = PageRequest {
        limit: 0,
        cursor: None,
    };
    assert!(matches!(
        store.search_events(&EventFilter::default(), zero),
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        store.search_alerts(&AlertFilter::default(), zero),
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        store.histogram_events(&EventFilter::default(), 0),
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        store.histogram_alerts(&AlertFilter::default(), -5),
        Err(StoreError::InvalidQuery(_))
    ));
    // A huge page size is capped, not an error.
    let page = ok(
        store.search_events(&EventFilter::default(), PageRequest::first(u32::MAX)),
        "search_events",
    );
    assert_eq!(page.items.len(), 1);
    // Hostile text in filters is data, never SQL.
    let hostile = EventFilter {
        text: Some("'; DROP TABLE events; --\"".to_owned()),
        user: Some(UserMatch::Prefix("\u{10FFFF}'\"%_\\".to_owned())),
        ..EventFilter::default()
    };
    assert_eq!(ok(store.count_events(&hostile), "count_events"), 0);
    assert_eq!(ok(store.count_events(&EventFilter::default()), "count_events"), 1);
}

/// A freshly opened store is at a positive schema version.
pub fn schema_version(h: &dyn Harness) {
    let version = ok(h.store().schema_version(), "schema_version");
    assert!(version >= 1, "schema version {version}");
}

/// Checks a bounded count against the exact number `matching`: `counted(limit)` must be
/// `min(matching, limit)` below, at and above the number, at zero and at `u64::MAX`.
fn check_bounded_count(name: &str, matching: u64, counted: impl Fn(u64) -> u64) {
    let mut limits = vec![0, 1, matching, matching + 1, matching + 1000, u64::MAX];
    if matching > 1 {
        limits.extend([matching - 1, matching / 2]);
    }
    for limit in limits {
        assert_eq!(
            counted(limit),
            matching.min(limit),
            "{name}: counted up to {limit} with {matching} matching"
        );
    }
}

/// `count_events_upto` and `count_alerts_upto` answer `min(count, limit)`, for filters a
/// backend answers in different ways (no filter, an indexed column, a user prefix, free text,
/// a time range, several at once, nothing matching), before and after its derived indexes
/// catch up.
pub fn bounded_counts(h: &dyn Harness) {
    let store = h.store();
    let (events, alerts) = load_fixture(store, 300, 17);
    let mid = events[150].fields.time_ns;
    let late = events[250].fields.time_ns;
    let s = |v: &str| Some(v.to_owned());
    let event_cases: Vec<(&str, EventFilter)> = vec![
        ("everything", EventFilter::default()),
        (
            "cluster",
            EventFilter {
                cluster: s("staging"),
                ..EventFilter::default()
            },
        ),
        (
            "user prefix",
            EventFilter {
                user: Some(UserMatch::Prefix("system:serviceaccount:".to_owned())),
                ..EventFilter::default()
            },
        ),
        (
            "text",
            EventFilter {
                text: s("kube-system"),
                ..EventFilter::default()
            },
        ),
        (
            "time and verb",
            EventFilter {
                time: TimeRange::between(mid, late),
                verb: s("get"),
                ..EventFilter::default()
            },
        ),
        (
            "nothing",
            EventFilter {
                verb: s("no-such-verb"),
                ..EventFilter::default()
            },
        ),
    ];
    let alert_cases: Vec<(&str, AlertFilter)> = vec![
        ("everything", AlertFilter::default()),
        (
            "min priority",
            AlertFilter {
                min_priority: Some(Priority::Error),
                ..AlertFilter::default()
            },
        ),
        (
            "time and cluster",
            AlertFilter {
                time: TimeRange::between(mid, late),
                cluster: s("prod-eu"),
                ..AlertFilter::default()
            },
        ),
        (
            "nothing",
            AlertFilter {
                rule: s("No Such Rule"),
                ..AlertFilter::default()
            },
        ),
    ];
    let check_all = || {
        for (name, filter) in &event_cases {
            let matching = events.iter().filter(|e| event_matches(filter, &e.fields)).count() as u64;
            assert!(
                *name == "nothing" || matching > 1,
                "events {name}: the fixture should match several"
            );
            check_bounded_count(&format!("events {name}"), matching, |limit| {
                ok(store.count_events_upto(filter, limit), "count_events_upto")
            });
        }
        for (name, filter) in &alert_cases {
            let matching = alerts.iter().filter(|(_, a)| alert_matches(filter, a)).count() as u64;
            assert!(
                *name == "nothing" || matching > 1,
                "alerts {name}: the fixture should match several"
            );
            check_bounded_count(&format!("alerts {name}"), matching, |limit| {
                ok(store.count_alerts_upto(filter, limit), "count_alerts_upto")
            });
        }
    };
    check_all();
    h.settle();
    check_all();
}

/// Random text of at least `bytes` bytes that no compressor shrinks: ASCII letters, digits and
/// punctuation mixed with two-, three- and four-byte characters. (PostgreSQL stores a value of
/// a few kilobytes in an index entry only if it compresses to under 2.7 KB.)
fn incompressible(rng: &mut Rng, bytes: usize) -> String {
    let alphabet: Vec<char> =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:/_%@ \u{e9}\u{df}\u{65e5}\u{1F600}"
            .chars()
            .collect();
    let mut text = String::with_capacity(bytes + 4);
    while text.len() < bytes {
        text.push(alphabet[(rng.next() % alphabet.len() as u64) as usize]);
    }
    text
}

/// Three values of one field: a random one of 10 to 100 KB, a second one as long that shares
/// its first 2,000 characters, and its first 300 characters, as a value of its own.
fn long_values(rng: &mut Rng) -> [String; 3] {
    let bytes = 10_000 + (rng.next() % 90_001) as usize;
    let long = incompressible(rng, bytes);
    let head: String = long.chars().take(2000).collect();
    let sibling = head + &incompressible(rng, bytes);
    let short: String = long.chars().take(300).collect();
    [long, sibling, short]
}

/// `text`'s characters `from..from + n`.
fn chars(text: &str, from: usize, n: usize) -> String {
    text.chars().skip(from).take(n).collect()
}

/// Regression for issue 4 ("the server never stores half a batch and never falls over on
/// hostile input"): one event whose values are longer than an index entry can hold must not
/// fail its batch, or the sender retries that batch forever and the cluster's audit stream
/// stops. A batch of such events and alerts, among ordinary ones, commits whole; a retry
/// stores nothing twice; every filter, grouped count and histogram finds them exactly as the
/// reference does (values sharing their first thousands of characters stay apart), before and
/// after the backend's derived structures catch up, and after retention deleted some.
pub fn issue_4_long_values(h: &dyn Harness) {
    let store = h.store();
    let mut rng = Rng(4);
    let clusters = long_values(&mut rng);
    let intake = ok(
        store.create_intake(&NewIntake {
            name: "long".to_owned(),
            cluster: clusters[0].clone(),
            key_hash: KeyHash::of_secret("long"),
            created_ns: T0,
        }),
        "create_intake",
    );
    assert_eq!(
        ok(store.get_intake(intake.id), "get_intake").map(|i| i.cluster),
        Some(clusters[0].clone())
    );
    let users = long_values(&mut rng);
    let groups = long_values(&mut rng);
    let verbs = long_values(&mut rng);
    let resources = long_values(&mut rng);
    let subresources = long_values(&mut rng);
    let namespaces = long_values(&mut rng);
    let names = long_values(&mut rng);
    let source_ips = long_values(&mut rng);
    let agents = long_values(&mut rng);
    let decisions = long_values(&mut rng);
    let api_groups = long_values(&mut rng);
    let rules = long_values(&mut rng);
    let policies = long_values(&mut rng);

    // Ordinary events around the long ones, in the same batch.
    let (mut events, mut alerts) = fixture(60, 41);
    for k in 0..15 {
        let at = events[k * 4].fields.time_ns + SECOND / 2;
        let mut e = event(&pick(&mut rng, &clusters), "", at);
        let f = &mut e.fields;
        f.intake_id = (f.cluster == clusters[0]).then_some(intake.id);
        f.audit_id = incompressible(&mut rng, 10_000);
        f.username = pick(&mut rng, &users);
        f.groups = vec![pick(&mut rng, &groups), "system:authenticated".to_owned()];
        f.verb = pick(&mut rng, &verbs);
        f.resource = Some(pick(&mut rng, &resources));
        f.subresource = Some(pick(&mut rng, &subresources));
        f.namespace = Some(pick(&mut rng, &namespaces));
        f.name = Some(pick(&mut rng, &names));
        f.api_group = Some(pick(&mut rng, &api_groups));
        f.source_ip = Some(pick(&mut rng, &source_ips));
        f.user_agent = Some(pick(&mut rng, &agents));
        f.decision = Some(pick(&mut rng, &decisions));
        f.response_code = Some(if k % 3 == 0 { 403 } else { 200 });
        f.request_uri = format!("/api/v1/{}", incompressible(&mut rng, 20_000));
        f.impersonated_user = Some(pick(&mut rng, &users));
        let e = with_raw(e.fields);
        if k % 2 == 0 {
            let mut a = alert(&e, events.len(), &pick(&mut rng, &rules), priorities_of(k));
            a.fields.policy = pick(&mut rng, &policies);
            alerts.push(a);
        }
        events.push(e);
    }
    // An alert with long values on an ordinary event.
    let mut a = alert(&events[7], 7, &rules[0], Priority::Critical);
    a.fields.namespace = Some(namespaces[0].clone());
    a.fields.username = users[0].clone();
    a.fields.cluster = clusters[0].clone();
    alerts.push(a);

    let outcome = insert(store, &events, &alerts);
    let ids = new_ids(&outcome);
    assert!(ids.iter().all(Option::is_some), "every event stored: {outcome:?}");
    assert_eq!(outcome.alerts_stored, alerts.len(), "every alert stored");
    let retry = insert(store, &events, &alerts);
    assert_eq!(retry.new_count(), 0, "a retried batch stores nothing");
    assert_eq!(retry.alerts_stored, 0, "a retried batch stores no alert");
    let through_intake = events.iter().filter(|e| e.fields.intake_id.is_some()).count() as u64;
    assert_eq!(
        ok(store.get_intake(intake.id), "get_intake").map(|i| i.event_count),
        Some(through_intake)
    );

    let mut reference: Vec<StoredEvent> = events
        .iter()
        .zip(&ids)
        .filter_map(|(e, id)| {
            id.map(|id| StoredEvent {
                id,
                fields: e.fields.clone(),
            })
        })
        .collect();
    let stored_alerts = all_alerts(store, &AlertFilter::default(), 1000);
    assert_eq!(stored_alerts.len(), alerts.len());
    let mut alert_reference: Vec<(i64, EventId, AlertFields)> = stored_alerts
        .iter()
        .map(|a| (a.id.0, a.event_id, a.fields.clone()))
        .collect();
    for a in &alerts {
        let event_id = ids[a.event_index];
        assert!(
            alert_reference
                .iter()
                .any(|(_, e, f)| Some(*e) == event_id && *f == a.fields),
            "alert on event {} stored as sent",
            a.event_index
        );
    }
    let long_one = reference.len() - 1;
    let full = ok(store.get_event(reference[long_one].id), "get_event");
    assert_eq!(full.map(|f| f.event), Some(reference[long_one].clone()));

    let s = |v: &str| Some(v.to_owned());
    let exact = |v: &str| Some(UserMatch::Exact(v.to_owned()));
    let prefix = |v: String| Some(UserMatch::Prefix(v));
    let base = EventFilter::default;
    let mut cases: Vec<(String, EventFilter)> = Vec::new();
    for (which, i) in [("long", 0), ("sibling", 1), ("head", 2)] {
        let mut case = |field: &str, filter: EventFilter| cases.push((format!("{field} ({which})"), filter));
        case(
            "cluster",
            EventFilter {
                cluster: s(&clusters[i]),
                ..base()
            },
        );
        case(
            "user exact",
            EventFilter {
                user: exact(&users[i]),
                ..base()
            },
        );
        case(
            "user prefix, whole value",
            EventFilter {
                user: prefix(users[i].clone()),
                ..base()
            },
        );
        case(
            "group",
            EventFilter {
                group: s(&groups[i]),
                ..base()
            },
        );
        case(
            "verb",
            EventFilter {
                verb: s(&verbs[i]),
                ..base()
            },
        );
        case(
            "resource",
            EventFilter {
                resource: s(&resources[i]),
                ..base()
            },
        );
        case(
            "subresource",
            EventFilter {
                subresource: s(&subresources[i]),
                ..base()
            },
        );
        case(
            "namespace",
            EventFilter {
                namespace: s(&namespaces[i]),
                ..base()
            },
        );
        case(
            "name",
            EventFilter {
                name: s(&names[i]),
                ..base()
            },
        );
        case(
            "source ip",
            EventFilter {
                source_ip: s(&source_ips[i]),
                ..base()
            },
        );
        case(
            "decision",
            EventFilter {
                decision: s(&decisions[i]),
                ..base()
            },
        );
        case(
            "user agent, whole value",
            EventFilter {
                user_agent_contains: s(&agents[i]),
                ..base()
            },
        );
        case(
            "namespace and response code",
            EventFilter {
                namespace: s(&namespaces[i]),
                response_code: Some(200),
                ..base()
            },
        );
    }
    let more: Vec<(&str, EventFilter)> = vec![
        (
            "user exact, a character more",
            EventFilter {
                user: exact(&format!("{}x", users[0])),
                ..base()
            },
        ),
        (
            "user exact, a character less",
            EventFilter {
                user: exact(&chars(&users[0], 0, users[0].chars().count() - 1)),
                ..base()
            },
        ),
        (
            "user prefix of 100 characters",
            EventFilter {
                user: prefix(chars(&users[0], 0, 100)),
                ..base()
            },
        ),
        (
            "user prefix of 1,000 characters",
            EventFilter {
                user: prefix(chars(&users[0], 0, 1000)),
                ..base()
            },
        ),
        (
            "user prefix of 2,500 characters",
            EventFilter {
                user: prefix(chars(&users[0], 0, 2500)),
                ..base()
            },
        ),
        (
            "user prefix of the sibling's 2,500",
            EventFilter {
                user: prefix(chars(&users[1], 0, 2500)),
                ..base()
            },
        ),
        (
            "user agent, deep inside, any case",
            EventFilter {
                user_agent_contains: s(&chars(&agents[0], 5000, 20).to_ascii_uppercase()),
                ..base()
            },
        ),
        (
            "user agent, its start",
            EventFilter {
                user_agent_contains: s(&chars(&agents[1], 0, 30)),
                ..base()
            },
        ),
        (
            "text deep in the request uri",
            EventFilter {
                text: s(&chars(&events[62].fields.request_uri, 7000, 30).to_ascii_lowercase()),
                ..base()
            },
        ),
        (
            "text deep in the name",
            EventFilter {
                text: s(&chars(&names[1], 6000, 25)),
                ..base()
            },
        ),
        (
            "cluster, user prefix and response code",
            EventFilter {
                cluster: s(&clusters[1]),
                user: prefix(chars(&users[0], 0, 100)),
                response_code: Some(200),
                ..base()
            },
        ),
        (
            "time and cluster",
            EventFilter {
                time: TimeRange::between(events[10].fields.time_ns, events[50].fields.time_ns),
                cluster: s(&clusters[1]),
                ..base()
            },
        ),
    ];
    cases.extend(more.into_iter().map(|(name, filter)| (name.to_owned(), filter)));
    let alert_cases: Vec<(String, AlertFilter)> = [("long", 0), ("sibling", 1), ("head", 2)]
        .into_iter()
        .flat_map(|(which, i)| {
            let a = AlertFilter::default;
            [
                (
                    "rule",
                    AlertFilter {
                        rule: s(&rules[i]),
                        ..a()
                    },
                ),
                (
                    "namespace",
                    AlertFilter {
                        namespace: s(&namespaces[i]),
                        ..a()
                    },
                ),
                (
                    "user",
                    AlertFilter {
                        user: s(&users[i]),
                        ..a()
                    },
                ),
                (
                    "cluster",
                    AlertFilter {
                        cluster: s(&clusters[i]),
                        ..a()
                    },
                ),
                (
                    "policy",
                    AlertFilter {
                        policy: s(&policies[i]),
                        ..a()
                    },
                ),
                (
                    "rule and priority",
                    AlertFilter {
                        rule: s(&rules[i]),
                        min_priority: Some(Priority::Error),
                        ..a()
                    },
                ),
            ]
            .map(|(field, filter)| (format!("alert {field} ({which})"), filter))
        })
        .collect();
    let window = TimeRange::between(events[12].fields.time_ns, events[44].fields.time_ns);
    let group_filters: Vec<EventFilter> = vec![
        base(),
        EventFilter {
            time: window,
            ..base()
        },
        EventFilter {
            time: window,
            cluster: s(&clusters[0]),
            ..base()
        },
        EventFilter {
            cluster: s(&clusters[1]),
            ..base()
        },
        EventFilter {
            user: exact(&users[0]),
            ..base()
        },
    ];

    let check_all = |reference: &[StoredEvent], alert_reference: &[(i64, EventId, AlertFields)]| {
        for (name, filter) in &cases {
            check_event_filter(store, reference, name, filter.clone());
        }
        for (name, filter) in &alert_cases {
            check_alert_filter(store, alert_reference, name, filter.clone());
        }
        for filter in &group_filters {
            check_event_groups(store, reference, filter);
        }
        let alerts: Vec<(EventId, AlertFields)> =
            alert_reference.iter().map(|(_, e, f)| (*e, f.clone())).collect();
        for filter in alert_cases
            .iter()
            .map(|(_, f)| f)
            .chain([&AlertFilter::default()])
        {
            check_alert_groups(store, &alerts, filter);
        }
    };
    // Each case must find events of the long ones (or none by design).
    for (name, filter) in &cases {
        let found = reference
            .iter()
            .filter(|e| event_matches(filter, &e.fields))
            .count();
        assert!(
            found > 0 || name.contains("a character") || name.contains("(head)"),
            "case {name} matches nothing in the fixture"
        );
    }
    check_all(&reference, &alert_reference);
    h.settle();
    check_all(&reference, &alert_reference);

    // Retention deletes some of them; what is left is still found, counted and grouped.
    let cutoff = events[30].fields.time_ns;
    ok(store.purge_before(cutoff, 7), "purge_before");
    reference.retain(|e| e.fields.time_ns >= cutoff);
    alert_reference.retain(|(_, _, a)| a.time_ns >= cutoff);
    check_all(&reference, &alert_reference);
    h.settle();
    check_all(&reference, &alert_reference);
}

/// One of `values`, at random.
fn pick(rng: &mut Rng, values: &[String; 3]) -> String {
    values[(rng.next() % 3) as usize].clone()
}

/// A priority for the `k`th alert of a fixture.
fn priorities_of(k: usize) -> Priority {
    [Priority::Critical, Priority::Warning, Priority::Error][k % 3]
}

/// A user-name prefix finds every name that starts with it, whichever characters follow:
/// names continuing with U+10FFFF (the greatest character) or around the surrogate gap, and a
/// prefix that is only U+10FFFF, in searches, counts, bounded counts and grouped counts alike.
pub fn issue_4_user_prefix_at_the_greatest_character(h: &dyn Harness) {
    let store = h.store();
    let users = [
        "alice",
        "alice\u{10FFFF}",
        "alice\u{10FFFF}x",
        "alice\u{10FFFF}\u{10FFFF}",
        "alicex",
        "alicf",
        "alicd\u{10FFFF}",
        "alic",
        "\u{10FFFF}",
        "\u{10FFFF}a",
        "\u{10FFFE}\u{10FFFF}",
        "k\u{D7FF}",
        "k\u{D7FF}\u{10FFFF}",
        "k\u{E000}",
        "\u{e9}\u{10FFFF}",
        "\u{ea}",
    ];
    let events: Vec<NewEvent> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut e = event("prod", &format!("prefix-{i:02}"), T0 + i as i64);
            e.fields.username = (*user).to_owned();
            with_raw(e.fields)
        })
        .collect();
    ok(store.insert_batch(&events, &[]), "insert_batch");
    h.settle();
    for prefix in [
        "alice",
        "alice\u{10FFFF}",
        "alic",
        "\u{10FFFF}",
        "k\u{D7FF}",
        "k",
        "\u{e9}",
    ] {
        let mut expected: Vec<&str> = users.iter().copied().filter(|u| u.starts_with(prefix)).collect();
        expected.sort_unstable();
        let filter = EventFilter {
            user: Some(UserMatch::Prefix(prefix.to_owned())),
            ..EventFilter::default()
        };
        let page = ok(
            store.search_events(&filter, PageRequest::first(100)),
            "search_events",
        );
        let mut found: Vec<&str> = page.items.iter().map(|e| e.fields.username.as_str()).collect();
        found.sort_unstable();
        assert_eq!(found, expected, "search with user prefix {prefix:?}");
        let count = expected.len() as u64;
        assert_eq!(
            ok(store.count_events(&filter), "count_events"),
            count,
            "count of {prefix:?}"
        );
        check_bounded_count(prefix, count, |limit| {
            ok(store.count_events_upto(&filter, limit), "count_events_upto")
        });
        let groups = ok(
            store.group_events(&filter, EventGroupField::User, 100),
            "group_events",
        );
        let mut grouped: Vec<(Option<String>, u64)> = groups.into_iter().map(|g| (g.key, g.count)).collect();
        grouped.sort();
        let wanted: Vec<(Option<String>, u64)> =
            expected.iter().map(|u| (Some((*u).to_owned()), 1)).collect();
        assert_eq!(grouped, wanted, "users grouped under prefix {prefix:?}");
    }
}
