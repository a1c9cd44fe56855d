//! A realistic generated workload for benchmarks: control-plane-heavy traffic of about 1.2 KB
//! per raw event (service-account tokens with credential extras, latency annotations), a few
//! hundred users, tens of namespaces, thousands of object names, and alerts on 5% of events.

use kaudit_model::{Level, Priority, Stage};

use crate::{AlertFields, EventFields, NewAlert, NewEvent, event_digest};

use super::Rng;

/// Cluster names used by the workload.
pub const CLUSTERS: [&str; 3] = ["prod-eu", "prod-us", "staging"];
/// Verbs, weighted by repetition like real traffic.
pub const VERBS: [&str; 20] = [
    "get", "get", "get", "get", "get", "get", "get", "list", "list", "list", "watch", "watch", "update",
    "update", "update", "patch", "patch", "create", "create", "delete",
];
/// Resources, weighted.
pub const RESOURCES: [&str; 16] = [
    "leases",
    "leases",
    "leases",
    "configmaps",
    "configmaps",
    "pods",
    "pods",
    "pods",
    "secrets",
    "endpoints",
    "events",
    "nodes",
    "deployments",
    "replicasets",
    "serviceaccounts",
    "roles",
];
/// Rules for generated alerts.
pub const RULES: [&str; 6] = [
    "Disallowed K8s User",
    "Create Privileged Pod",
    "Attach/Exec Pod",
    "K8s Secret Get",
    "Create HostNetwork Pod",
    "ClusterRole With Wildcard Created",
];
const AGENTS: [&str; 8] = [
    "kube-controller-manager/v1.29.2 (linux/amd64) kubernetes/4b8e819/leader-election",
    "kube-scheduler/v1.29.2 (linux/amd64) kubernetes/4b8e819/leader-election",
    "kubelet/v1.29.2 (linux/amd64) kubernetes/4b8e819",
    "kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b",
    "Go-http-client/2.0",
    "argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
    "prometheus/2.51.0",
    "curl/8.5.0",
];

/// Number of distinct user names.
pub const USERS: u64 = 300;
/// Number of distinct namespaces.
pub const NAMESPACES: u64 = 40;

/// The user name with index `i`.
pub fn user(i: u64) -> String {
    match i % 10 {
        0 => format!("user{}@example.com", i / 10),
        1 => format!("system:node:node-{}", i / 10),
        _ => format!("system:serviceaccount:{}:sa-{}", namespace(i % NAMESPACES), i),
    }
}

/// The namespace with index `i`.
pub fn namespace(i: u64) -> String {
    match i {
        0 => "kube-system".to_owned(),
        1 => "default".to_owned(),
        2 => "monitoring".to_owned(),
        _ => format!("team-{i}"),
    }
}

/// The object name with index `i`.
pub fn object_name(resource: &str, i: u64) -> String {
    format!(
        "{}-{:x}-{}",
        resource.trim_end_matches('s'),
        i.wrapping_mul(0x9e37_79b9) % 0xfffff,
        i % 7
    )
}

/// A stream of batches with increasing event times.
pub struct Workload {
    rng: Rng,
    seed: u64,
    /// Next event's time, ns.
    pub time_ns: i64,
    /// Time step between events, ns.
    pub step_ns: i64,
    counter: u64,
}

impl Workload {
    /// Events start at `start_ns`, `step_ns` apart on average.
    pub fn new(seed: u64, start_ns: i64, step_ns: i64) -> Workload {
        Workload {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            seed,
            time_ns: start_ns,
            step_ns,
            counter: 0,
        }
    }

    /// The next `n` events and their alerts (about 5%).
    pub fn batch(&mut self, n: usize) -> (Vec<NewEvent>, Vec<NewAlert>) {
        let mut events = Vec::with_capacity(n);
        let mut alerts = Vec::new();
        for i in 0..n {
            let event = self.event();
            if self.rng.chance(5) {
                let rule = self.rng.pick(&RULES);
                let priority = Priority::ALL[(self.rng.next() % 6) as usize];
                let f = &event.fields;
                alerts.push(NewAlert {
                    event_index: i,
                    fields: AlertFields {
                        time_ns: f.time_ns,
                        rule: rule.to_owned(),
                        priority,
                        output: format!(
                            "{rule} (user={} verb={} resource={} ns={} name={})",
                            f.username,
                            f.verb,
                            f.resource.as_deref().unwrap_or("<NA>"),
                            f.namespace.as_deref().unwrap_or("<NA>"),
                            f.name.as_deref().unwrap_or("<NA>")
                        ),
                        output_fields_json: format!(
                            "{{\"ka.user.name\":\"{}\",\"ka.verb\":\"{}\",\"ka.target.resource\":\"{}\"}}",
                            f.username,
                            f.verb,
                            f.resource.as_deref().unwrap_or("")
                        ),
                        tags: vec!["k8s".to_owned(), "NIST_800-53_AC-6".to_owned()],
                        policy: "notable-events".to_owned(),
                        cluster: f.cluster.clone(),
                        namespace: f.namespace.clone(),
                        username: f.username.clone(),
                        source: "k8s_audit".to_owned(),
                    },
                });
            }
            events.push(event);
        }
        (events, alerts)
    }

    fn event(&mut self) -> NewEvent {
        let rng = &mut self.rng;
        self.counter += 1;
        self.time_ns += 1 + (rng.next() % (2 * self.step_ns.max(1) as u64)) as i64;
        let time_ns = self.time_ns;
        let user_index = (rng.next() % USERS).min(rng.next() % USERS);
        let username = user(user_index);
        let cluster = CLUSTERS[(user_index % 3) as usize];
        let verb = rng.pick(&VERBS);
        let resource = rng.pick(&RESOURCES);
        let cluster_scoped = resource == "nodes";
        let namespace = if cluster_scoped {
            None
        } else {
            Some(namespace(rng.next() % NAMESPACES))
        };
        let collection = verb == "list" || verb == "watch" || verb == "create";
        let name = if collection {
            None
        } else {
            Some(object_name(resource, rng.next() % 20_000))
        };
        let subresource = if resource == "pods" && rng.chance(3) {
            Some("exec".to_owned())
        } else {
            None
        };
        let code: i32 = if rng.chance(3) {
            403
        } else if rng.chance(2) {
            404
        } else if verb == "create" {
            201
        } else {
            200
        };
        let decision = if code == 403 { "forbid" } else { "allow" };
        let agent = AGENTS[(user_index % AGENTS.len() as u64) as usize];
        let source_ip = format!(
            "10.{}.{}.{}",
            user_index % 4,
            (user_index / 4) % 16,
            2 + user_index % 50
        );
        let api_group = match resource {
            "leases" => Some("coordination.k8s.io"),
            "deployments" | "replicasets" => Some("apps"),
            "roles" => Some("rbac.authorization.k8s.io"),
            _ => None,
        };
        let mut uri = match api_group {
            Some(group) => format!("/apis/{group}/v1"),
            None => "/api/v1".to_owned(),
        };
        if let Some(ns) = &namespace {
            uri.push_str("/namespaces/");
            uri.push_str(ns);
        }
        uri.push('/');
        uri.push_str(resource);
        if let Some(name) = &name {
            uri.push('/');
            uri.push_str(name);
        }
        if let Some(sub) = &subresource {
            uri.push('/');
            uri.push_str(sub);
            uri.push_str("?command=sh&stdin=true&tty=true");
        }
        if verb == "watch" {
            uri.push_str(&format!(
                "?allowWatchBookmarks=true&resourceVersion={}&watch=true",
                100_000 + self.counter
            ));
        }
        let groups: Vec<String> = if username.starts_with("system:serviceaccount:") {
            vec![
                "system:serviceaccounts".to_owned(),
                format!(
                    "system:serviceaccounts:{}",
                    self::namespace(user_index % NAMESPACES)
                ),
                "system:authenticated".to_owned(),
            ]
        } else if username.starts_with("system:node:") {
            vec!["system:nodes".to_owned(), "system:authenticated".to_owned()]
        } else {
            vec!["developers".to_owned(), "system:authenticated".to_owned()]
        };
        let audit_id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            rng.next() as u32,
            rng.next() as u16,
            rng.next() % 0xfff,
            rng.next() % 0xfff,
            rng.next() % 0xffff_ffff_ffff
        );
        let stamp = kaudit_model::format_rfc3339_nanos(time_ns);
        let received = kaudit_model::format_rfc3339_nanos(time_ns - 1_500_000);
        let object_ref = format!(
            "{{\"resource\":\"{resource}\"{}{}{}{},\"apiVersion\":\"v1\"}}",
            namespace
                .as_ref()
                .map(|n| format!(",\"namespace\":\"{n}\""))
                .unwrap_or_default(),
            name.as_ref()
                .map(|n| format!(",\"name\":\"{n}\""))
                .unwrap_or_default(),
            api_group
                .map(|g| format!(",\"apiGroup\":\"{g}\""))
                .unwrap_or_default(),
            subresource
                .as_ref()
                .map(|s| format!(",\"subresource\":\"{s}\""))
                .unwrap_or_default(),
        );
        let groups_json = groups
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(",");
        let raw_json = format!(
            "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":\"{audit_id}\",\
             \"stage\":\"ResponseComplete\",\"requestURI\":\"{uri}\",\"verb\":\"{verb}\",\"user\":{{\"username\":\"{username}\",\
             \"uid\":\"{uid:08x}-5c1e-4a7b-9d3e-{seed:012x}\",\"groups\":[{groups_json}],\"extra\":{{\
             \"authentication.kubernetes.io/credential-id\":[\"JTI={jti:08x}-0d5c-4f3e-8a61-2b9c47d1e0f3\"],\
             \"authentication.kubernetes.io/node-name\":[\"node-{node}\"],\
             \"authentication.kubernetes.io/node-uid\":[\"{node:08x}-1f2e-4d3c-b4a5-968778695a4b\"],\
             \"authentication.kubernetes.io/pod-name\":[\"{pod}\"],\
             \"authentication.kubernetes.io/pod-uid\":[\"{uid:08x}-77aa-4bcd-8e9f-0a1b2c3d4e5f\"]}}}},\
             \"sourceIPs\":[\"{source_ip}\"],\"userAgent\":\"{agent}\",\"objectRef\":{object_ref},\
             \"responseStatus\":{{\"metadata\":{{}},\"code\":{code}}},\"requestReceivedTimestamp\":\"{received}\",\
             \"stageTimestamp\":\"{stamp}\",\"annotations\":{{\"authorization.k8s.io/decision\":\"{decision}\",\
             \"authorization.k8s.io/reason\":\"RBAC: allowed by ClusterRoleBinding \\\"system:controller:{pod}\\\" of \
             ClusterRole \\\"system:controller:{pod}\\\" to ServiceAccount \\\"{pod}/kube-system\\\"\",\
             \"apiserver.latency.k8s.io/etcd\":\"{lat}.{lat2}ms\",\"apiserver.latency.k8s.io/total\":\"{lat}.{lat3}ms\",\
             \"apiserver.latency.k8s.io/serialize-response-object\":\"{lat2}µs\"}}}}",
            uid = user_index * 7919,
            seed = self.seed,
            jti = rng.next() as u32,
            node = user_index % 20,
            pod = format!("sa-{user_index}-7d9f8b6c4-x2k9p"),
            lat = 1 + rng.next() % 30,
            lat2 = rng.next() % 1000,
            lat3 = rng.next() % 1000,
        );
        let fields = EventFields {
            cluster: cluster.to_owned(),
            intake_id: None,
            audit_id,
            stage: Stage::ResponseComplete,
            digest: event_digest(&raw_json),
            time_ns,
            received_ns: time_ns + 2_000_000,
            verb: verb.to_owned(),
            username,
            groups,
            impersonated_user: None,
            resource: Some(resource.to_owned()),
            subresource,
            namespace,
            name,
            api_group: api_group.map(str::to_owned),
            source_ip: Some(source_ip),
            user_agent: Some(agent.to_owned()),
            response_code: Some(code),
            decision: Some(decision.to_owned()),
            request_uri: uri,
            level: Level::Metadata,
        };
        NewEvent { fields, raw_json }
    }
}
