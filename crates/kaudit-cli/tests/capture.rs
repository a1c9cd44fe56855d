//! `kaudit scan` over a real kube-apiserver 1.26.1 capture (`shared/samples/kube-apiserver-1.26`:
//! rotated log files, the webhook bodies of the same run, and `actions.tsv` listing every
//! action taken). The alert counts per rule are pinned for the upstream Falco rules and for
//! kaudit's default rules, under first and all matching, and checked against the actions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const KAUDIT: &str = env!("CARGO_BIN_EXE_kaudit");

fn shared() -> Option<PathBuf> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    if dir.join("samples/kube-apiserver-1.26/log").is_dir() {
        return Some(dir.to_path_buf());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "missing {}",
        dir.display()
    );
    eprintln!("skipped: {} not found", dir.display());
    None
}

/// Runs `kaudit scan --json` with `flags` on `input` and returns the alert count per rule and
/// the alert lines without their time.
fn scan(flags: &[&str], input: &Path) -> (BTreeMap<String, u64>, Vec<String>) {
    let output = Command::new(KAUDIT)
        .arg("scan")
        .arg("--json")
        .args(flags)
        .arg(input)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaudit: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kaudit scan {flags:?} failed:\n{stderr}");
    assert!(
        !stderr.contains("skipped"),
        "lines of the capture were skipped:\n{stderr}"
    );
    let mut counts = BTreeMap::new();
    let mut alerts = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let alert: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let rule = alert["rule"].as_str().unwrap_or_default().to_owned();
        alerts.push(format!(
            "{rule}: {}",
            alert["output"].as_str().unwrap_or_default()
        ));
        *counts.entry(rule).or_insert(0) += 1;
    }
    (counts, alerts)
}

/// The capture scanned with `flags` gives exactly `expected` alerts per rule.
fn check_counts(shared: &Path, flags: &[&str], expected: &[(&str, u64)]) {
    let (got, _) = scan(flags, &shared.join("samples/kube-apiserver-1.26/log"));
    let want: BTreeMap<String, u64> = expected.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
    assert_eq!(got, want, "alerts per rule with {flags:?}");
}

const UPSTREAM: &str = "conformance/falco-k8saudit/rules/k8s_audit_rules.yaml";

// The capture's users: admin (system:masters, in the upstream allow list), alice, bob,
// mallory and ci-bot (not in it), a service account, anonymous and a bad token, plus the
// apiserver's own bootstrap requests at start-up (system:apiserver).

#[test]
fn upstream_rules_first_match() {
    let Some(shared) = shared() else { return };
    let rules = shared.join(UPSTREAM);
    check_counts(
        &shared,
        &["--rules", &rules.to_string_lossy()],
        &[
            // The first rule shadows every ResponseComplete event of alice (1419), bob (942),
            // ci-bot (633) and mallory (358): under first match, nothing else they do at
            // that stage is reported by name.
            ("Disallowed K8s User", 3352),
            // Exec and attach are matched at ResponseStarted, which Disallowed K8s User does
            // not look at, so they escape its shadow: alice 32 exec + 1 attach, bob 1,
            // mallory 1. actions.tsv lists 36 exec/attach commands: mallory's first exec
            // (phase 4) never reached pods/exec, kubectl stopped at the forbidden pod GET.
            ("Attach/Exec Pod", 35),
            // port-forward has no stage filter: alice's one port-forward and one pods/proxy
            // GET are logged at three stages each; the two ResponseComplete events are
            // shadowed, leaving RequestReceived and ResponseStarted of the port-forward.
            ("port-forward", 2),
            // Only admin's pod in restricted-ns (refused by PodSecurity, 403) is left:
            // alice's priv-pod is shadowed and mallory's DaemonSet is not a pod.
            ("Create Privileged Pod", 1),
            // anonymous GET /version: upstream exempts only /healthz, /livez and /readyz.
            ("Anonymous Request Allowed", 1),
            // admin's mallory-cluster-admin, and the apiserver's bootstrap cluster-admin
            // binding to system:masters; mallory's backdoor is shadowed.
            ("Attach to cluster-admin Role", 2),
            // The apiserver's bootstrap cluster-admin role.
            ("ClusterRole With Wildcard Created", 1),
            // The apiserver's bootstrap roles and admin's set-up (allowed user):
            ("System ClusterRole Modified/Deleted", 64),
            ("K8s ClusterRole Created", 4),
            ("K8s ClusterRoleBinding Created", 44),
            ("K8s ClusterRoleBinding Deleted", 3),
            ("K8s Role Created", 1),
            ("K8s RoleBinding Created", 12),
            ("Create Disallowed Namespace", 4),
            ("K8s Namespace Created", 3),
            ("K8s Namespace Deleted", 1),
            ("K8s Service Created", 1),
            ("K8s Serviceaccount Created", 5),
            ("Service Account Created in Kube Namespace", 1),
            // admin impersonating alice: the event's user is admin.
            ("K8s ConfigMap Created", 1),
        ],
    );
}

#[test]
fn upstream_rules_all_matches() {
    let Some(shared) = shared() else { return };
    let rules = shared.join(UPSTREAM);
    check_counts(
        &shared,
        &["--rules", &rules.to_string_lossy(), "--all-matches"],
        &[
            ("Disallowed K8s User", 3352),
            ("Attach/Exec Pod", 35),
            ("port-forward", 3),
            // alice's priv-pod and admin's refused pod; mallory's privileged DaemonSet in
            // kube-system goes unnoticed by every upstream pod rule (they read bare pods only).
            ("Create Privileged Pod", 2),
            ("Create Sensitive Mount Pod", 2),
            ("Create HostNetwork Pod", 2),
            ("Create HostPid Pod", 2),
            ("Create HostIPC Pod", 2),
            // kubectl debug by alice (refused) and mallory.
            ("EphemeralContainers Created", 2),
            ("Anonymous Request Allowed", 1),
            ("Attach to cluster-admin Role", 3),
            ("ClusterRole With Wildcard Created", 7),
            ("ClusterRole With Write Privileges Created", 50),
            ("ClusterRole With Pod Exec Created", 1),
            ("System ClusterRole Modified/Deleted", 64),
            ("K8s ClusterRole Created", 63),
            ("K8s ClusterRoleBinding Created", 47),
            ("K8s ClusterRoleBinding Deleted", 3),
            ("K8s Role Created", 7),
            ("K8s RoleBinding Created", 12),
            ("Create Disallowed Namespace", 4),
            ("K8s Namespace Created", 7),
            ("K8s Namespace Deleted", 1),
            ("K8s Service Created", 1),
            ("K8s Serviceaccount Created", 7),
            ("Service Account Created in Kube Namespace", 2),
            ("K8s Deployment Created", 2),
            // 300 cm-N, app-config, 5 old-N, ci-bot's and the impersonated one, and the
            // server-side dry run (upstream does not tell dry runs apart).
            ("K8s ConfigMap Created", 309),
            ("K8s ConfigMap Deleted", 300),
            ("K8s Secret Created", 31),
            ("K8s Secret Deleted", 30),
            // Upstream counts `get` only: alice's and mallory's reads of db-creds, bob's refused
            // one. The 300 refused lists of mallory's loop are not secret "gets".
            ("K8s Secret Get Successfully", 2),
            ("K8s Secret Get Unsuccessfully Tried", 1),
        ],
    );
}

/// kaudit's default rules, first match: one alert per action that matters.
const DEFAULT_FIRST: &[(&str, u64)] = &[
    // admin's mallory-cluster-admin and mallory's backdoor (to group interns). The apiserver's
    // own bootstrap binding is not reported.
    ("Binding To cluster-admin Created", 2),
    // alice's and mallory's `create clusterrolebinding ... --clusterrole=cluster-admin`,
    // refused by RBAC before the body was read (so the role is not in the event).
    ("RBAC Change Denied", 2),
    // alice's priv-pod, mallory's node-agent DaemonSet (its pod template), and admin's pod in
    // restricted-ns refused by PodSecurity admission. mallory's privileged pod in phase 4
    // never reached the pod API (kubectl stopped at a forbidden GET).
    ("Privileged Workload Created", 3),
    // alice's log-shipper DaemonSet mounting /var/log; the other hostPath workloads are
    // privileged and reported as such.
    ("Sensitive HostPath Workload Created", 1),
    // alice as admin, mallory as admin, mallory as kube-system:default: refused.
    ("Impersonation Denied", 3),
    // alice as bob (twice), admin as alice, admin as team-b:builder.
    ("Impersonation Used", 4),
    // mallory (refused, then allowed for kube-system/default) and admin (team-b/builder).
    ("Service Account Token Requested", 3),
    ("Exec Or Attach To Pod", 35),
    ("Ephemeral Container Added", 2),
    // alice's port-forward and pods/proxy, once each (at ResponseStarted).
    ("Port-Forward Or Proxy To Pod", 2),
    // mallory's `get secrets -A` while cluster-admin.
    ("Secrets Listed Cluster-Wide", 1),
    // The secret reads refused by RBAC: mallory's 300 loop attempts and 4 others, alice in
    // kube-system, bob twice, the builder service account. Refusals under impersonation and
    // of anonymous users are reported by the rules above.
    ("Secret Access Denied", 307),
    // alice's and mallory's get of db-creds.
    ("Secret Read", 2),
    // bob's three watches on endpoints.
    ("Sensitive Resource Watched", 3),
    // anonymous list of secrets and namespaces; /version and /healthz are public.
    ("Anonymous Request Denied", 2),
    // The bad token: kubectl's five discovery attempts and curl's one.
    ("Authentication Failed", 6),
    // db-creds and 30 tmp-N created, 30 deleted.
    ("Secret Modified", 61),
    // 306 creates (the server-side dry run is not reported), 305 patches (300 + 5 labels),
    // 300 deletes, 1 deletecollection, 1 update, and ci-bot's create.
    ("ConfigMap Modified", 914),
    // plain-pod (priv-pod is reported as privileged).
    ("Pod Created", 1),
    ("Pod Deleted", 1),
    // web, api, nightly, migrate; the DaemonSets are reported above.
    ("Workload Created", 4),
    ("Workload Deleted", 2),
];

#[test]
fn default_rules_first_match() {
    let Some(shared) = shared() else { return };
    check_counts(&shared, &[], DEFAULT_FIRST);
}

#[test]
fn default_rules_all_matches() {
    let Some(shared) = shared() else { return };
    check_counts(
        &shared,
        &["--all-matches"],
        &[
            ("Binding To cluster-admin Created", 2),
            ("RBAC Change Denied", 2),
            ("Privileged Workload Created", 3),
            // priv-pod (/), node-agent (/), the refused pod (/), log-shipper (/var/log).
            ("Sensitive HostPath Workload Created", 4),
            ("HostPID Workload Created", 3),
            ("HostIPC Workload Created", 2),
            ("HostNetwork Workload Created", 3),
            // SYS_ADMIN and NET_ADMIN in priv-pod and in the refused pod.
            ("Dangerous Capabilities Workload Created", 2),
            ("Impersonation Denied", 3),
            ("Impersonation Used", 4),
            ("Service Account Token Requested", 3),
            ("Exec Or Attach To Pod", 35),
            ("Ephemeral Container Added", 2),
            ("Port-Forward Or Proxy To Pod", 2),
            ("Secrets Listed Cluster-Wide", 1),
            // + alice as bob, alice as admin, mallory as admin, anonymous.
            ("Secret Access Denied", 311),
            // + mallory's cluster-wide list.
            ("Secret Read", 3),
            ("Sensitive Resource Watched", 3),
            ("Anonymous Request Denied", 2),
            ("Authentication Failed", 6),
            ("Secret Modified", 61),
            // + admin's configmap made as alice.
            ("ConfigMap Modified", 915),
            ("Pod Created", 2),
            ("Pod Deleted", 1),
            ("Workload Created", 6),
            ("Workload Deleted", 2),
        ],
    );
}

/// One line of `actions.tsv`.
struct Action {
    user: String,
    action: String,
    rc: String,
    command: String,
}

fn actions(shared: &Path) -> Vec<Action> {
    let path = shared.join("samples/kube-apiserver-1.26/actions.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (f.len() == 6).then(|| Action {
                user: f[2].to_owned(),
                action: f[3].to_owned(),
                rc: f[4].to_owned(),
                command: f[5].to_owned(),
            })
        })
        .collect()
}

/// The default rules report each action of a kind once: the alert count of `rule` equals the
/// number of actions `select` picks, plus `adjust` (explained where it is not zero).
fn check_against_actions(
    actions: &[Action],
    counts: &BTreeMap<String, u64>,
    rule: &str,
    adjust: i64,
    select: impl Fn(&Action) -> bool,
) {
    let listed = actions.iter().filter(|a| select(a)).count() as i64;
    let alerts = counts.get(rule).copied().unwrap_or(0) as i64;
    assert_eq!(
        alerts,
        listed + adjust,
        "{rule}: {alerts} alerts for {listed} actions in actions.tsv"
    );
}

#[test]
fn default_rules_agree_with_the_actions_taken() {
    let Some(shared) = shared() else { return };
    let (counts, _) = scan(&[], &shared.join("samples/kube-apiserver-1.26/log"));
    let actions = actions(&shared);
    let has = |text: &str, part: &str| text.contains(part);
    // mallory's exec in phase 4 stopped at kubectl's forbidden pod lookup: no exec request.
    check_against_actions(&actions, &counts, "Exec Or Attach To Pod", -1, |a| {
        has(&a.command, " exec ") || has(&a.command, "/attach")
    });
    check_against_actions(&actions, &counts, "Port-Forward Or Proxy To Pod", 0, |a| {
        has(&a.command, "/portforward") || has(&a.command, "/proxy")
    });
    check_against_actions(&actions, &counts, "Ephemeral Container Added", 0, |a| {
        has(&a.command, " debug ")
    });
    check_against_actions(&actions, &counts, "Service Account Token Requested", 0, |a| {
        has(&a.action, "create token")
    });
    check_against_actions(&actions, &counts, "Binding To cluster-admin Created", 0, |a| {
        has(&a.command, "--clusterrole=cluster-admin") && a.rc == "0"
    });
    check_against_actions(&actions, &counts, "RBAC Change Denied", 0, |a| {
        has(&a.command, "--clusterrole=cluster-admin") && a.rc != "0"
    });
    check_against_actions(&actions, &counts, "Impersonation Denied", 0, |a| {
        has(&a.command, "--as=") && a.rc != "0" && !has(&a.action, "impersonation ok")
    });
    // alice --as=bob listing secrets: impersonation was allowed, the listing refused.
    check_against_actions(&actions, &counts, "Impersonation Used", 0, |a| {
        has(&a.command, "--as=") && (a.rc == "0" || has(&a.action, "impersonation ok"))
    });
    check_against_actions(&actions, &counts, "Sensitive Resource Watched", 0, |a| {
        has(&a.command, "watch") && has(&a.command, "endpoints")
    });
    // mallory's privileged pod in phase 4 never reached the pod API.
    check_against_actions(&actions, &counts, "Privileged Workload Created", -1, |a| {
        a.action.to_lowercase().contains("privileged")
    });
    check_against_actions(&actions, &counts, "Secret Modified", 0, |a| {
        let what = a.action.rsplit(": ").next().unwrap_or_default();
        what.starts_with("create secret") || what.starts_with("delete secret")
    });
    check_against_actions(&actions, &counts, "Anonymous Request Denied", 0, |a| {
        a.user == "anonymous" && has(&a.action, "forbidden")
    });
    // kubectl with the bad token retried discovery five times before giving up.
    check_against_actions(&actions, &counts, "Authentication Failed", 4, |a| {
        a.user == "badtoken"
    });
    check_against_actions(&actions, &counts, "Secret Read", 0, |a| {
        has(&a.action, "get secret db-creds") && a.rc == "0"
    });
    check_against_actions(&actions, &counts, "Secrets Listed Cluster-Wide", 0, |a| {
        has(&a.action, "get secrets -A") && a.rc == "0"
    });
}

#[test]
fn webhook_bodies_and_log_files_give_the_same_alerts() {
    let Some(shared) = shared() else { return };
    let capture = shared.join("samples/kube-apiserver-1.26");
    // 166 EventList bodies hold every event of the log except 25 watches of the apiserver
    // closing at shutdown, which no default rule reports.
    let (log_counts, log_alerts) = scan(&["--all-matches"], &capture.join("log"));
    let (hook_counts, hook_alerts) = scan(&["--all-matches"], &capture.join("webhook"));
    assert_eq!(hook_counts, log_counts);
    assert!(
        hook_alerts == log_alerts,
        "the webhook bodies gave different alerts"
    );
}

#[test]
fn parallel_scans_give_the_same_alerts() {
    let Some(shared) = shared() else { return };
    let log = shared.join("samples/kube-apiserver-1.26/log");
    let (_, one) = scan(&[], &log);
    let (counts, two) = scan(&["--threads", "2"], &log);
    assert!(one == two, "--threads 2 changed the alerts");
    let want: BTreeMap<String, u64> = DEFAULT_FIRST.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
    assert_eq!(counts, want);
}
