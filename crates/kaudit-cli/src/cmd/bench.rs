//! `kaudit bench`: writing a large, deterministic, realistic audit log to time `kaudit scan`
//! against.
//!
//! The log imitates a busy cluster recorded at the `Metadata` level in the kube-apiserver
//! 1.29 shape: 95% control-plane traffic (kubelet lease renewals and node status patches,
//! controllers and operators reading configmaps and pods, event writes, endpoint slice
//! updates) with `userAgent`, service-account credential ids in `user.extra` and latency
//! annotations on slow requests; 5% suspicious requests (privileged and host-level pods,
//! exec and attach, cluster-admin bindings, wildcard roles, secrets read by people,
//! anonymous access, impersonation) with request bodies where the apiserver would log them.
//! Events average about 1.2 KB. The same seed always gives the same bytes.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Subcommands of `kaudit bench`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a deterministic, realistic JSON-lines audit log (about 1.2 KB per event, 5%
    /// suspicious) for timing `kaudit scan`.
    Generate(GenerateArgs),
    /// Measure intake throughput and batch latency (durable commit, detection on) against a
    /// server, or one it starts on a temporary data directory (`--spawn`).
    Intake(Box<super::bench_intake::IntakeArgs>),
    /// Measure activity-search latency of typical filters through a server's API.
    Search(super::bench_intake::SearchArgs),
}

/// Flags of `kaudit bench generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Number of events to write.
    #[arg(long)]
    events: u64,
    /// File to write (`-` for standard output).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator: the same seed and count always give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate(args) => generate(&args),
        Command::Intake(args) => super::bench_intake::run_intake(*args),
        Command::Search(args) => super::bench_intake::run_search(args),
    }
}

/// Calls `on_event` with each of `n` generated events (one JSON object, no line end): the
/// events `kaudit bench generate --seed SEED` writes, in the same order.
pub fn generate_events(seed: u64, n: u64, mut on_event: impl FnMut(&str)) {
    let mut generator = Generator::new(seed);
    let mut line = String::with_capacity(8192);
    for _ in 0..n {
        line.clear();
        generator.next_event(&mut line);
        on_event(&line);
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let sink: Box<dyn std::io::Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let file =
            File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        Box::new(file)
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut generator = Generator::new(args.seed);
    let mut line = String::with_capacity(8192);
    let mut bytes: u64 = 0;
    for _ in 0..args.events {
        line.clear();
        generator.next_event(&mut line);
        line.push('\n');
        out.write_all(line.as_bytes()).context("cannot write the log")?;
        bytes += line.len() as u64;
    }
    out.flush().context("cannot write the log")?;
    let mean = bytes.checked_div(args.events).unwrap_or(0);
    eprintln!(
        "kaudit bench: wrote {} events, {} bytes ({} bytes per event, {} suspicious) to {}",
        args.events,
        bytes,
        mean,
        generator.suspicious,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// SplitMix64: tiny, fast and fully determined by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const KUBELET_UA: &str = "kubelet/v1.29.4 (linux/amd64) kubernetes/55019c8";
const KCM_UA: &str = "kube-controller-manager/v1.29.4 (linux/amd64) kubernetes/55019c8";
const KUBECTL_UA: &str = "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8";
const NODE_GROUPS: &[&str] = &["system:nodes", "system:authenticated"];
const NAMESPACES: &[&str] = &[
    "payments",
    "checkout",
    "search",
    "monitoring",
    "ingress-nginx",
    "team-a",
    "team-b",
];
const OPERATORS: &[(&str, &str, &str)] = &[
    (
        "monitoring",
        "prometheus-operator",
        "prometheus-operator/v0.72.0 (linux/amd64)",
    ),
    (
        "ingress-nginx",
        "ingress-nginx",
        "nginx-ingress-controller/v1.10.0 (linux/amd64) ingress-nginx/71f78d49f0a496c31d4c19f095469f3f23900f8a",
    ),
    (
        "cert-manager",
        "cert-manager",
        "cert-manager-controller/v1.14.4 (linux/amd64) cert-manager/9d2dc2f6b4cb2a4e8e4b5b5c3f7f0b3c0a2d1e4f",
    ),
    (
        "argocd",
        "argocd-application-controller",
        "argocd-application-controller/v2.10.5 (linux/amd64)",
    ),
    (
        "kube-system",
        "coredns",
        "coredns/v1.11.1 (linux/amd64) kubernetes/4c0a5b1",
    ),
];
const HUMANS: &[(&str, &[&str])] = &[
    ("alice@example.com", &["developers", "system:authenticated"]),
    ("mallory@example.com", &["interns", "system:authenticated"]),
    ("ci-bot", &["ci", "system:authenticated"]),
];

/// What one generated event needs; rendered in the apiserver's field order.
struct Event<'a> {
    level: &'a str,
    stage: &'a str,
    uri: String,
    verb: &'a str,
    user: User<'a>,
    impersonated: Option<(&'a str, &'a [&'a str])>,
    user_agent: &'a str,
    object: Option<ObjectRef<'a>>,
    code: u16,
    request_object: Option<String>,
    decision: &'a str,
    reason: String,
    extra_annotations: Vec<(&'a str, String)>,
}

struct User<'a> {
    name: String,
    uid: String,
    groups: &'a [&'a str],
    /// Service-account token claims, as the apiserver records them in `user.extra`.
    pod: Option<(String, String, String)>,
    /// The EC2 instance id of a node authenticated by the AWS IAM authenticator (EKS).
    instance: Option<String>,
}

struct ObjectRef<'a> {
    resource: &'a str,
    namespace: Option<&'a str>,
    name: Option<String>,
    api_group: Option<&'a str>,
    api_version: &'a str,
    subresource: Option<&'a str>,
}

struct Generator {
    rng: Rng,
    /// Current time, nanoseconds since the epoch.
    now_nanos: i64,
    suspicious: u64,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        // 2026-01-05T08:00:00Z: the log starts at a fixed instant so that it is reproducible.
        Generator {
            rng: Rng(seed),
            now_nanos: 1_767_600_000_000_000_000,
            suspicious: 0,
        }
    }

    fn next_event(&mut self, out: &mut String) {
        // About 400 events per second: a busy cluster.
        self.now_nanos += 1_000_000 + self.rng.below(4_000_000) as i64;
        let roll = self.rng.below(1000);
        let event = if roll < 50 {
            self.suspicious += 1;
            self.suspicious_event()
        } else {
            self.benign_event(roll)
        };
        self.render(&event, out);
    }

    fn uuid(&mut self) -> String {
        let a = self.rng.next();
        let b = self.rng.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn node(&mut self) -> String {
        format!(
            "ip-10-0-{}-{}.eu-west-1.compute.internal",
            self.rng.below(8),
            10 + self.rng.below(200)
        )
    }

    fn node_user(&mut self) -> (User<'static>, String) {
        let node = self.node();
        let instance = format!("i-0{:016x}", self.rng.next() >> 4);
        let user = User {
            name: format!("system:node:{node}"),
            uid: "aws-iam-authenticator:123456789012:AROAXN7KQ2EXAMPLE3NODE".into(),
            groups: NODE_GROUPS,
            pod: None,
            instance: Some(instance),
        };
        (user, node)
    }

    fn service_account(&mut self, namespace: &str, name: &str) -> User<'static> {
        let node = self.node();
        let pod = format!(
            "{name}-{:x}-{:05x}",
            self.rng.below(1 << 40),
            self.rng.below(1 << 20)
        );
        let credential = self.uuid();
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: self.uuid(),
            groups: &["system:serviceaccounts", "system:authenticated"],
            pod: Some((credential, node, pod)),
            instance: None,
        }
    }

    fn controller(&mut self, name: &str) -> User<'static> {
        User {
            name: format!("system:serviceaccount:kube-system:{name}"),
            uid: self.uuid(),
            groups: &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
            pod: None,
            instance: None,
        }
    }

    fn rbac_reason(&mut self, binding: &str, role: &str, subject: &str) -> String {
        format!("RBAC: allowed by ClusterRoleBinding \"{binding}\" of ClusterRole \"{role}\" to {subject}")
    }

    fn benign_event(&mut self, roll: u64) -> Event<'static> {
        match roll {
            // Kubelet lease renewals: the bulk of a quiet cluster's audit log.
            50..=349 => {
                let (user, node) = self.node_user();
                Event {
                    level: "Metadata",
                    stage: "ResponseComplete",
                    uri: format!(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}?timeout=10s"
                    ),
                    verb: "update",
                    user,
                    impersonated: None,
                    user_agent: KUBELET_UA,
                    object: Some(ObjectRef {
                        resource: "leases",
                        namespace: Some("kube-node-lease"),
                        name: Some(node),
                        api_group: Some("coordination.k8s.io"),
                        api_version: "v1",
                        subresource: None,
                    }),
                    code: 200,
                    request_object: None,
                    decision: "allow",
                    reason: String::new(),
                    extra_annotations: Vec::new(),
                }
            }
            // Node status patches.
            350..=479 => {
                let (user, node) = self.node_user();
                Event {
                    level: "Metadata",
                    stage: "ResponseComplete",
                    uri: format!("/api/v1/nodes/{node}/status?timeout=10s"),
                    verb: "patch",
                    user,
                    impersonated: None,
                    user_agent: KUBELET_UA,
                    object: Some(ObjectRef {
                        resource: "nodes",
                        namespace: None,
                        name: Some(node),
                        api_group: None,
                        api_version: "v1",
                        subresource: Some("status"),
                    }),
                    code: 200,
                    request_object: None,
                    decision: "allow",
                    reason: String::new(),
                    extra_annotations: Vec::new(),
                }
            }
            // Operators reading configmaps.
            480..=629 => {
                let (namespace, sa, agent) = OPERATORS[self.rng.below(OPERATORS.len() as u64) as usize];
                let target = self.rng.pick(NAMESPACES);
                let user = self.service_account(namespace, sa);
                let verb = self.rng.pick(&["get", "get", "list", "watch"]);
                let name = (verb == "get").then(|| {
                    format!(
                        "{}-config",
                        self.rng.pick(&["app", "proxy", "rules", "dashboards"])
                    )
                });
                let uri = match (&name, verb) {
                    (Some(name), _) => format!("/api/v1/namespaces/{target}/configmaps/{name}"),
                    (None, "watch") => format!(
                        "/api/v1/namespaces/{target}/configmaps?allowWatchBookmarks=true&resourceVersion={}&timeout=7m{}s&timeoutSeconds={}&watch=true",
                        self.rng.below(90_000_000),
                        self.rng.below(60),
                        420 + self.rng.below(60)
                    ),
                    (None, _) => {
                        format!("/api/v1/namespaces/{target}/configmaps?limit=500&resourceVersion=0")
                    }
                };
                let reason = self.rbac_reason(sa, sa, &format!("ServiceAccount \"{sa}/{namespace}\""));
                Event {
                    level: "Metadata",
                    stage: if verb == "watch" {
                        "ResponseStarted"
                    } else {
                        "ResponseComplete"
                    },
                    uri,
                    verb,
                    user,
                    impersonated: None,
                    user_agent: agent,
                    object: Some(ObjectRef {
                        resource: "configmaps",
                        namespace: Some(target),
                        name,
                        api_group: None,
                        api_version: "v1",
                        subresource: None,
                    }),
                    code: 200,
                    request_object: None,
                    decision: "allow",
                    reason,
                    extra_annotations: Vec::new(),
                }
            }
            // Pods read by kubelets, the scheduler and controllers.
            630..=809 => {
                let target = self.rng.pick(NAMESPACES);
                let which = self.rng.below(3);
                let (user, agent, verb) = match which {
                    0 => (self.node_user().0, KUBELET_UA, "get"),
                    1 => (
                        User {
                            name: "system:kube-scheduler".into(),
                            uid: String::new(),
                            groups: &["system:authenticated"],
                            pod: None,
                            instance: None,
                        },
                        "kube-scheduler/v1.29.4 (linux/amd64) kubernetes/55019c8/scheduler",
                        "list",
                    ),
                    _ => (self.controller("replicaset-controller"), KCM_UA, "watch"),
                };
                let pod = format!(
                    "web-{:x}-{:05x}",
                    self.rng.below(1 << 36),
                    self.rng.below(1 << 20)
                );
                let (uri, name, stage) = match verb {
                    "get" => (
                        format!("/api/v1/namespaces/{target}/pods/{pod}"),
                        Some(pod),
                        "ResponseComplete",
                    ),
                    "list" => (
                        format!("/api/v1/namespaces/{target}/pods?limit=500&resourceVersion=0"),
                        None,
                        "ResponseComplete",
                    ),
                    _ => (
                        format!(
                            "/api/v1/pods?allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}&watch=true",
                            self.rng.below(90_000_000),
                            300 + self.rng.below(300)
                        ),
                        None,
                        "ResponseStarted",
                    ),
                };
                Event {
                    level: "Metadata",
                    stage,
                    uri,
                    verb,
                    user,
                    impersonated: None,
                    user_agent: agent,
                    object: Some(ObjectRef {
                        resource: "pods",
                        namespace: (verb != "watch").then_some(target),
                        name,
                        api_group: None,
                        api_version: "v1",
                        subresource: None,
                    }),
                    code: 200,
                    request_object: None,
                    decision: "allow",
                    reason: String::new(),
                    extra_annotations: Vec::new(),
                }
            }
            // Events written by kubelets and controllers.
            810..=909 => {
                let target = self.rng.pick(NAMESPACES);
                let (user, agent) = if self.rng.below(2) == 0 {
                    (self.node_user().0, KUBELET_UA)
                } else {
                    (self.controller("deployment-controller"), KCM_UA)
                };
                let name = format!(
                    "web-{:x}.{:x}",
                    self.rng.below(1 << 36),
                    self.rng.next() & 0xffff_ffff_ffff
                );
                Event {
                    level: "Metadata",
                    stage: "ResponseComplete",
                    uri: format!("/apis/events.k8s.io/v1/namespaces/{target}/events"),
                    verb: "create",
                    user,
                    impersonated: None,
                    user_agent: agent,
                    object: Some(ObjectRef {
                        resource: "events",
                        namespace: Some(target),
                        name: Some(name),
                        api_group: Some("events.k8s.io"),
                        api_version: "v1",
                        subresource: None,
                    }),
                    code: 201,
                    request_object: None,
                    decision: "allow",
                    reason: String::new(),
                    extra_annotations: Vec::new(),
                }
            }
            // Endpoint slices kept current by their controller.
            910..=969 => {
                let target = self.rng.pick(NAMESPACES);
                let service = self.rng.pick(&["web", "api", "db", "cache", "search"]);
                let name = format!("{service}-{:05x}", self.rng.below(1 << 20));
                let user = self.controller("endpointslice-controller");
                let reason = self.rbac_reason(
                    "system:controller:endpointslice-controller",
                    "system:controller:endpointslice-controller",
                    "ServiceAccount \"endpointslice-controller/kube-system\"",
                );
                Event {
                    level: "Metadata",
                    stage: "ResponseComplete",
                    uri: format!("/apis/discovery.k8s.io/v1/namespaces/{target}/endpointslices/{name}"),
                    verb: "update",
                    user,
                    impersonated: None,
                    user_agent: KCM_UA,
                    object: Some(ObjectRef {
                        resource: "endpointslices",
                        namespace: Some(target),
                        name: Some(name),
                        api_group: Some("discovery.k8s.io"),
                        api_version: "v1",
                        subresource: None,
                    }),
                    code: 200,
                    request_object: None,
                    decision: "allow",
                    reason,
                    extra_annotations: Vec::new(),
                }
            }
            // Kubelets reading the secrets and configmaps their pods mount.
            _ => {
                let target = self.rng.pick(NAMESPACES);
                let (user, _) = self.node_user();
                let resource = self.rng.pick(&["secrets", "configmaps"]);
                let name = format!(
                    "{}-{:05x}",
                    self.rng.pick(&["app", "tls", "registry", "db"]),
                    self.rng.below(1 << 20)
                );
                Event {
                    level: "Metadata",
                    stage: "ResponseStarted",
                    uri: format!(
                        "/api/v1/namespaces/{target}/{resource}?allowWatchBookmarks=true&fieldSelector=metadata.name%3D{name}&resourceVersion={}&timeout=6m{}s&timeoutSeconds={}&watch=true",
                        self.rng.below(90_000_000),
                        self.rng.below(60),
                        360 + self.rng.below(60)
                    ),
                    verb: "watch",
                    user,
                    impersonated: None,
                    user_agent: KUBELET_UA,
                    object: Some(ObjectRef {
                        resource,
                        namespace: Some(target),
                        name: Some(name),
                        api_group: None,
                        api_version: "v1",
                        subresource: None,
                    }),
                    code: 200,
                    request_object: None,
                    decision: "allow",
                    reason: String::new(),
                    extra_annotations: Vec::new(),
                }
            }
        }
    }

    fn human(&mut self) -> (User<'static>, &'static str) {
        let (name, groups) = HUMANS[self.rng.below(HUMANS.len() as u64) as usize];
        (
            User {
                name: name.into(),
                uid: String::new(),
                groups,
                pod: None,
                instance: None,
            },
            name,
        )
    }

    fn suspicious_event(&mut self) -> Event<'static> {
        let (user, who) = self.human();
        let target = self.rng.pick(NAMESPACES);
        let pod = format!(
            "{}-{:05x}",
            self.rng.pick(&["debug", "tools", "shell", "agent"]),
            self.rng.below(1 << 20)
        );
        let reason = format!(
            "RBAC: allowed by RoleBinding \"edit/{target}\" of ClusterRole \"edit\" to User \"{who}\""
        );
        let object = |resource, namespace, name, api_group, subresource| {
            Some(ObjectRef {
                resource,
                namespace,
                name,
                api_group,
                api_version: "v1",
                subresource,
            })
        };
        let mut event = Event {
            level: "Metadata",
            stage: "ResponseComplete",
            uri: String::new(),
            verb: "create",
            user,
            impersonated: None,
            user_agent: KUBECTL_UA,
            object: None,
            code: 201,
            request_object: None,
            decision: "allow",
            reason,
            extra_annotations: Vec::new(),
        };
        match self.rng.below(12) {
            0..=2 => {
                // A pod that wants the node: privileged, host namespaces or host paths.
                let variant = self.rng.below(3);
                let (security, host, volume) = match variant {
                    0 => (r#","securityContext":{"privileged":true}"#, "", ""),
                    1 => ("", r#","hostNetwork":true,"hostPID":true"#, ""),
                    _ => (
                        "",
                        "",
                        r#""volumes":[{"name":"host","hostPath":{"path":"/etc","type":""}}],"#,
                    ),
                };
                event.level = "Request";
                event.uri = format!(
                    "/api/v1/namespaces/{target}/pods?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
                );
                event.object = object("pods", Some(target), Some(pod.clone()), None, None);
                event.request_object = Some(format!(
                    r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{pod}","namespace":"{target}","creationTimestamp":null,"labels":{{"app":"tools"}}}},"spec":{{{volume}"containers":[{{"name":"tools","image":"docker.io/library/busybox:1.36","command":["sleep","infinity"],"resources":{{}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"{security}}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst"{host},"securityContext":{{}},"schedulerName":"default-scheduler"}},"status":{{}}}}"#
                ));
            }
            3 | 4 => {
                // Exec or attach into a pod.
                let sub = self.rng.pick(&["exec", "exec", "attach"]);
                event.level = "Request";
                event.stage = "ResponseStarted";
                event.code = 101;
                event.uri = format!(
                    "/api/v1/namespaces/{target}/pods/{pod}/{sub}?command=sh&container=tools&stdin=true&stdout=true&tty=true"
                );
                event.object = object("pods", Some(target), Some(pod.clone()), None, Some(sub));
            }
            5 => {
                // A binding to cluster-admin.
                let name = format!("tmp-admin-{:05x}", self.rng.below(1 << 20));
                event.level = "RequestResponse";
                event.uri = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict".into();
                event.object = Some(ObjectRef {
                    resource: "clusterrolebindings",
                    namespace: None,
                    name: Some(name.clone()),
                    api_group: Some("rbac.authorization.k8s.io"),
                    api_version: "v1",
                    subresource: None,
                });
                event.request_object = Some(format!(
                    r#"{{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{{"name":"{name}","creationTimestamp":null}},"subjects":[{{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"{who}"}}],"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"}}}}"#
                ));
            }
            6 => {
                // A cluster role with wildcards.
                let name = format!("ops-{:05x}", self.rng.below(1 << 20));
                event.level = "RequestResponse";
                event.uri = "/apis/rbac.authorization.k8s.io/v1/clusterroles?fieldManager=kubectl-create&fieldValidation=Strict".into();
                event.object = Some(ObjectRef {
                    resource: "clusterroles",
                    namespace: None,
                    name: Some(name.clone()),
                    api_group: Some("rbac.authorization.k8s.io"),
                    api_version: "v1",
                    subresource: None,
                });
                event.request_object = Some(format!(
                    r#"{{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{{"name":"{name}","creationTimestamp":null}},"rules":[{{"verbs":["*"],"apiGroups":["*"],"resources":["*"]}}]}}"#
                ));
            }
            7 | 8 => {
                // People reading secrets.
                let name = format!(
                    "{}-credentials",
                    self.rng.pick(&["db", "stripe", "registry", "s3"])
                );
                event.verb = "get";
                event.code = 200;
                event.uri = format!("/api/v1/namespaces/{target}/secrets/{name}");
                event.object = object("secrets", Some(target), Some(name), None, None);
            }
            9 => {
                // Anonymous access.
                event.user = User {
                    name: "system:anonymous".into(),
                    uid: String::new(),
                    groups: &["system:unauthenticated"],
                    pod: None,
                    instance: None,
                };
                event.user_agent = "curl/8.5.0";
                event.verb = "list";
                event.code = 403;
                event.decision = "forbid";
                event.reason = String::new();
                event.uri = "/api/v1/secrets".into();
                event.object = object("secrets", None, None, None, None);
            }
            10 => {
                // Impersonation of a system identity.
                event.impersonated = Some((
                    "system:serviceaccount:kube-system:default",
                    &["system:serviceaccounts", "system:authenticated"],
                ));
                event.verb = "list";
                event.code = 200;
                event.uri = "/api/v1/pods?limit=500".into();
                event.object = object("pods", None, None, None, None);
            }
            _ => {
                // A configmap holding credentials, created by hand.
                let name = format!("app-settings-{:04x}", self.rng.below(1 << 16));
                event.level = "Request";
                event.uri = format!(
                    "/api/v1/namespaces/{target}/configmaps?fieldManager=kubectl-create&fieldValidation=Strict"
                );
                event.object = object("configmaps", Some(target), Some(name.clone()), None, None);
                event.request_object = Some(format!(
                    r#"{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{target}","creationTimestamp":null}},"data":{{"aws_access_key_id":"AKIA{:016X}","aws_secret_access_key":"{:032x}","region":"eu-west-1"}}}}"#,
                    self.rng.next(),
                    self.rng.next()
                ));
            }
        }
        event
    }

    fn render(&mut self, event: &Event<'_>, out: &mut String) {
        let audit_id = self.uuid();
        let received = self.now_nanos - 200_000 - self.rng.below(3_000_000) as i64;
        let slow = self.rng.below(40) == 0;
        out.push_str(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":""#);
        out.push_str(event.level);
        let _ = write!(
            out,
            r#"","auditID":"{audit_id}","stage":"{}","requestURI":"#,
            event.stage
        );
        push_json_string(out, &event.uri);
        let _ = write!(out, r#","verb":"{}","user":{{"username":"#, event.verb);
        push_json_string(out, &event.user.name);
        if !event.user.uid.is_empty() {
            let _ = write!(out, r#","uid":"{}""#, event.user.uid);
        }
        push_groups(out, event.user.groups);
        if let Some((credential, node, pod)) = &event.user.pod {
            let _ = write!(
                out,
                r#","extra":{{"authentication.kubernetes.io/credential-id":["JTI={credential}"],"authentication.kubernetes.io/node-name":["{node}"],"authentication.kubernetes.io/node-uid":["{}"],"authentication.kubernetes.io/pod-name":["{pod}"],"authentication.kubernetes.io/pod-uid":["{}"]}}"#,
                self.uuid(),
                self.uuid()
            );
        }
        if let Some(instance) = &event.user.instance {
            let _ = write!(
                out,
                r#","extra":{{"accessKeyId":["ASIAXN7KQ2{:010X}"],"arn":["arn:aws:sts::123456789012:assumed-role/eks-node-group-role/{instance}"],"canonicalArn":["arn:aws:iam::123456789012:role/eks-node-group-role"],"principalId":["AROAXN7KQ2EXAMPLE3NODE"],"sessionName":["{instance}"],"sigs.k8s.io/aws-iam-authenticator/principalId":["AROAXN7KQ2EXAMPLE3NODE"]}}"#,
                self.rng.next() >> 24
            );
        }
        out.push('}');
        if let Some((name, groups)) = event.impersonated {
            out.push_str(r#","impersonatedUser":{"username":"#);
            push_json_string(out, name);
            push_groups(out, groups);
            out.push('}');
        }
        let _ = write!(
            out,
            r#","sourceIPs":["10.0.{}.{}"],"userAgent":"#,
            self.rng.below(8),
            10 + self.rng.below(200)
        );
        push_json_string(out, event.user_agent);
        if let Some(object) = &event.object {
            let _ = write!(out, r#","objectRef":{{"resource":"{}""#, object.resource);
            if let Some(namespace) = object.namespace {
                let _ = write!(out, r#","namespace":"{namespace}""#);
            }
            if let Some(name) = &object.name {
                out.push_str(r#","name":"#);
                push_json_string(out, name);
            }
            if let Some(group) = object.api_group {
                let _ = write!(out, r#","apiGroup":"{group}""#);
            }
            let _ = write!(out, r#","apiVersion":"{}""#, object.api_version);
            if let Some(sub) = object.subresource {
                let _ = write!(out, r#","subresource":"{sub}""#);
            }
            out.push('}');
        }
        if event.code >= 400 {
            let _ = write!(
                out,
                r#","responseStatus":{{"metadata":{{}},"status":"Failure","message":"forbidden","reason":"Forbidden","details":{{}},"code":{}}}"#,
                event.code
            );
        } else {
            let _ = write!(
                out,
                r#","responseStatus":{{"metadata":{{}},"code":{}}}"#,
                event.code
            );
        }
        if let Some(body) = &event.request_object {
            out.push_str(r#","requestObject":"#);
            out.push_str(body);
        }
        out.push_str(r#","requestReceivedTimestamp":""#);
        push_time(out, received);
        out.push_str(r#"","stageTimestamp":""#);
        push_time(out, self.now_nanos);
        let _ = write!(
            out,
            r#"","annotations":{{"authorization.k8s.io/decision":"{}","authorization.k8s.io/reason":"#,
            event.decision
        );
        push_json_string(out, &event.reason);
        if slow {
            let total = 500 + self.rng.below(1500);
            let _ = write!(
                out,
                r#","apiserver.latency.k8s.io/etcd":"{}.{}ms","apiserver.latency.k8s.io/response-write":"{}.{}µs","apiserver.latency.k8s.io/serialize-response-object":"{}.{}µs","apiserver.latency.k8s.io/total":"{total}.{}ms","apiserver.latency.k8s.io/transform-response-object":"{}ns""#,
                total - 20,
                self.rng.below(1000),
                self.rng.below(900) + 10,
                self.rng.below(1000),
                self.rng.below(900) + 10,
                self.rng.below(1000),
                self.rng.below(1000),
                self.rng.below(9000) + 500
            );
        }
        for (key, value) in &event.extra_annotations {
            out.push(',');
            push_json_string(out, key);
            out.push(':');
            push_json_string(out, value);
        }
        out.push_str("}}");
    }
}

fn push_groups(out: &mut String, groups: &[&str]) {
    out.push_str(r#","groups":["#);
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, group);
    }
    out.push(']');
}

/// Appends `text` as a JSON string, escaped as Go's encoder does (`&`, `<`, `>` as `\u00XX`).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '&' | '<' | '>' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends an RFC 3339 UTC time with microseconds, as the apiserver writes it.
fn push_time(out: &mut String, nanos: i64) {
    let text = kaudit_model::format_rfc3339_nanos(nanos);
    // `...SS.nnnnnnnnnZ`: keep six fractional digits.
    match text.len().checked_sub(4) {
        Some(cut) if text.is_char_boundary(cut) => {
            out.push_str(&text[..cut]);
            out.push('Z');
        }
        _ => out.push_str(&text),
    }
}
