//! Every manifest in `deploy/` parses (multi-document YAML), and the fields that matter are
//! right: the agent DaemonSet runs on control-plane nodes only, reads the audit log through a
//! read-only hostPath, keeps its state on the node, has resource limits, takes the intake key
//! from the Secret; the intake has its Service and volume; the apiserver policy loads.

use std::path::{Path, PathBuf};

use kaudit_yaml::Node;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list deploy/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            manifest_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            out.push(path);
        }
    }
}

/// Every document of every manifest, with its file.
fn documents() -> Vec<(PathBuf, Node)> {
    let mut files = Vec::new();
    manifest_files(&deploy_dir(), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no manifest in deploy/");
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        let parsed = kaudit_yaml::parse(&text).unwrap_or_else(|err| {
            panic!(
                "{}:{}: {}\n{}",
                file.display(),
                err.span,
                err.message,
                kaudit_yaml::caret(&text, err.span)
            )
        });
        for document in parsed {
            if !document.is_null() {
                documents.push((file.clone(), document));
            }
        }
    }
    documents
}

/// The node at a path of keys and sequence indexes (`"containers/0/args"`); `~1` in a key
/// stands for `/`.
fn at<'a>(node: &'a Node, path: &str) -> Option<&'a Node> {
    let mut current = node;
    for part in path.split('/') {
        current = match part.parse::<usize>() {
            Ok(index) => current.as_seq()?.get(index)?,
            // `~1` stands for a `/` inside a key, as in JSON pointers.
            Err(_) => current.get(&part.replace("~1", "/"))?,
        };
    }
    Some(current)
}

fn text<'a>(node: &'a Node, path: &str) -> &'a str {
    at(node, path)
        .and_then(|node| node.as_scalar())
        .unwrap_or_else(|| panic!("no scalar at {path}"))
}

fn seq<'a>(node: &'a Node, path: &str) -> &'a [Node] {
    at(node, path)
        .and_then(|node| node.as_seq())
        .unwrap_or_else(|| panic!("no list at {path}"))
}

fn find<'a>(documents: &'a [(PathBuf, Node)], kind: &str, name: &str) -> &'a Node {
    documents
        .iter()
        .map(|(_, node)| node)
        .find(|node| text(node, "kind") == kind && text(node, "metadata/name") == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/"))
}

fn by_name<'a>(list: &'a [Node], name: &str) -> &'a Node {
    list.iter()
        .find(|node| text(node, "name") == name)
        .unwrap_or_else(|| panic!("no entry named {name}"))
}

fn args(container: &Node) -> Vec<&str> {
    seq(container, "args")
        .iter()
        .map(|arg| arg.as_scalar().expect("scalar arg"))
        .collect()
}

fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|arg| arg.strip_prefix(&format!("--{name}=")))
}

#[test]
fn every_manifest_parses_and_names_its_kind() {
    for (file, document) in documents() {
        let kind = text(&document, "kind");
        assert!(!kind.is_empty(), "{}: no kind", file.display());
        assert!(
            at(&document, "apiVersion").is_some(),
            "{}: no apiVersion",
            file.display()
        );
    }
}

#[test]
fn the_agent_runs_on_control_plane_nodes_and_reads_the_log_read_only() {
    let documents = documents();
    let daemonset = find(&documents, "DaemonSet", "kaudit-agent");
    let pod = at(daemonset, "spec/template/spec").expect("pod spec");
    assert!(
        at(pod, "nodeSelector/node-role.kubernetes.io~1control-plane").is_some(),
        "nodeSelector node-role.kubernetes.io/control-plane"
    );
    let tolerations = seq(pod, "tolerations");
    assert!(
        tolerations.iter().any(|toleration| text(toleration, "key")
            == "node-role.kubernetes.io/control-plane"
            && text(toleration, "operator") == "Exists"
            && text(toleration, "effect") == "NoSchedule"),
        "toleration of the control-plane taint"
    );

    let volumes = seq(pod, "volumes");
    let audit_log = by_name(volumes, "audit-log");
    assert_eq!(text(audit_log, "hostPath/path"), "/var/log/kubernetes/apiserver");
    let state = by_name(volumes, "state");
    let state_path = text(state, "hostPath/path");
    let key = by_name(volumes, "intake-key");
    let secret_name = text(key, "secret/secretName");
    let secret = find(&documents, "Secret", secret_name);
    assert!(
        at(secret, "stringData/key")
            .or_else(|| at(secret, "data/key"))
            .is_some(),
        "the Secret has a key"
    );

    let container = by_name(seq(pod, "containers"), "agent");
    let mounts = seq(container, "volumeMounts");
    let log_mount = by_name(mounts, "audit-log");
    assert_eq!(
        text(log_mount, "readOnly"),
        "true",
        "the audit log is mounted read-only"
    );
    let log_dir = text(log_mount, "mountPath");
    let state_mount = text(by_name(mounts, "state"), "mountPath");
    let key_mount = by_name(mounts, "intake-key");
    assert_eq!(text(key_mount, "readOnly"), "true");

    let args = args(container);
    assert_eq!(args.first().copied(), Some("agent"));
    let file = flag(&args, "file").expect("--file");
    assert!(
        file.starts_with(&format!("{log_dir}/")),
        "--file {file} is under the mounted {log_dir}"
    );
    assert_eq!(
        flag(&args, "state-dir"),
        Some(state_mount),
        "--state-dir is the state hostPath mount"
    );
    assert_eq!(state_path, "/var/lib/kaudit-agent");
    let key_file = flag(&args, "intake-key-file").expect("--intake-key-file");
    assert!(
        key_file.starts_with(text(key_mount, "mountPath")),
        "the key file comes from the Secret"
    );
    assert!(flag(&args, "intake-key").is_none(), "no key on the command line");
    let intake = flag(&args, "intake").expect("--intake");
    let service = find(&documents, "Service", "kaudit-intake");
    let port = text(service, "spec/ports/0/port");
    assert_eq!(
        intake,
        format!(
            "http://kaudit-intake.{}.svc:{port}",
            text(service, "metadata/namespace")
        )
    );
    let metrics = flag(&args, "metrics-listen").expect("--metrics-listen");
    let metrics_port = metrics.rsplit(':').next().expect("port");
    assert_eq!(text(container, "ports/0/containerPort"), metrics_port);
    assert_eq!(text(container, "livenessProbe/httpGet/path"), "/healthz");

    for resource in ["cpu", "memory"] {
        assert!(
            at(container, &format!("resources/limits/{resource}")).is_some(),
            "limits.{resource}"
        );
        assert!(
            at(container, &format!("resources/requests/{resource}")).is_some(),
            "requests.{resource}"
        );
    }
    assert_eq!(
        text(container, "securityContext/allowPrivilegeEscalation"),
        "false"
    );
    assert_eq!(text(container, "securityContext/readOnlyRootFilesystem"), "true");
    assert_eq!(text(container, "securityContext/capabilities/drop/0"), "ALL");

    let intake = find(&documents, "Deployment", "kaudit-intake");
    let intake_container = at(intake, "spec/template/spec/containers/0").expect("intake container");
    assert_eq!(
        text(container, "image"),
        text(intake_container, "image"),
        "one image for both"
    );
    assert!(
        !text(container, "image").ends_with(":latest"),
        "a pinned image tag"
    );
}

#[test]
fn the_intake_has_its_service_volume_and_limits() {
    let documents = documents();
    let deployment = find(&documents, "Deployment", "kaudit-intake");
    let pod = at(deployment, "spec/template/spec").expect("pod spec");
    let container = by_name(seq(pod, "containers"), "intake");
    let args = args(container);
    assert_eq!(args.first().copied(), Some("serve"));
    let listen = flag(&args, "listen").expect("--listen");
    let service = find(&documents, "Service", "kaudit-intake");
    let target = text(service, "spec/ports/0/targetPort");
    let container_port = by_name(seq(container, "ports"), target);
    assert_eq!(
        listen.rsplit(':').next(),
        Some(text(container_port, "containerPort"))
    );
    assert_eq!(
        text(service, "spec/selector/app.kubernetes.io~1name"),
        text(
            deployment,
            "spec/template/metadata/labels/app.kubernetes.io~1name"
        ),
        "the Service selects the intake pods"
    );
    let data_dir = flag(&args, "data-dir").expect("--data-dir");
    let mount = by_name(seq(container, "volumeMounts"), "data");
    assert_eq!(text(mount, "mountPath"), data_dir);
    let claim = text(
        by_name(seq(pod, "volumes"), "data"),
        "persistentVolumeClaim/claimName",
    );
    find(&documents, "PersistentVolumeClaim", claim);
    assert_eq!(
        text(deployment, "spec/strategy/type"),
        "Recreate",
        "one writer on the volume at a time"
    );
    for resource in ["cpu", "memory"] {
        assert!(
            at(container, &format!("resources/limits/{resource}")).is_some(),
            "limits.{resource}"
        );
    }
}

#[test]
fn the_apiserver_side_is_a_valid_policy_and_webhook_kubeconfig() {
    let dir = deploy_dir().join("apiserver");
    let policy = std::fs::read_to_string(dir.join("audit-policy.yaml")).expect("policy");
    let loaded = kaudit_policy::load(&policy).unwrap_or_else(|err| panic!("audit-policy.yaml: {err}"));
    assert!(
        loaded.warnings.is_empty(),
        "audit-policy.yaml warnings: {:?}",
        loaded.warnings
    );
    let documents = documents();
    let kubeconfig = documents
        .iter()
        .map(|(_, node)| node)
        .find(|node| text(node, "kind") == "Config")
        .expect("the webhook kubeconfig");
    let current = text(kubeconfig, "current-context");
    let context = by_name(seq(kubeconfig, "contexts"), current);
    let cluster = by_name(seq(kubeconfig, "clusters"), text(context, "context/cluster"));
    assert!(
        text(cluster, "cluster/server").starts_with("https://"),
        "the webhook goes over TLS"
    );
    by_name(seq(kubeconfig, "users"), text(context, "context/user"));
}
