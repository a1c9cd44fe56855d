//! Unit tests of field extraction: one data-driven table per field family, each row an event,
//! a field as written in a rule and the expected values, checked through [`check`].
//!
//! Expected values are written as: `<NA>` for no value, the text for a single value,
//! `["a", "b"]` for a list, `#n` for a number.

use std::path::PathBuf;

use kaudit_model::{AuditEvent, Located, Position};

use super::*;

/// A minimal event with an auditID, a stageTimestamp of 2026-11-21T09:00:00.04Z and `body`
/// as further members.
fn ev(body: &str) -> String {
    let sep = if body.is_empty() { "" } else { "," };
    format!(
        r#"{{"kind":"Event","auditID":"a1","stage":"ResponseComplete","stageTimestamp":"2026-11-21T09:00:00.04Z"{sep}{body}}}"#
    )
}

/// A pod-create event whose `requestObject.spec` is `spec`.
fn pod(spec: &str) -> String {
    ev(&format!(
        r#""verb":"create","objectRef":{{"resource":"pods","namespace":"default"}},"requestObject":{{"kind":"Pod","spec":{spec}}}"#
    ))
}

fn located(raw: &str) -> Located<'_> {
    let event = AuditEvent::parse(raw).expect("test events are JSON objects");
    let time_nanos = event.stage_time_nanos().unwrap_or(0);
    Located {
        position: Position::default(),
        event,
        time_nanos,
    }
}

/// Splits `name[arg]` as written in a rule.
fn split_field(written: &str) -> (&str, Option<&str>) {
    match written.split_once('[') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(']').unwrap_or(rest))),
        None => (written, None),
    }
}

fn show(values: &Values<'_>) -> String {
    match values {
        Values::None => "<NA>".to_owned(),
        Values::One(v) => v.to_string(),
        Values::Many(v) => format!("{:?}", v.iter().map(|s| &**s).collect::<Vec<_>>()),
        Values::Number(n) => format!("#{n}"),
    }
}

/// Extracts `field` (as written, with its argument) from `event` and compares the values.
fn check(event: &str, field: &str, expect: &str) {
    let loc = located(event);
    let ctx = EventCtx::new(&loc, 7)
        .with_hostname("node-1")
        .with_first_time_nanos(1_795_251_599_000_000_000);
    let (name, arg) = split_field(field);
    let field_ref = resolve(name, arg).unwrap_or_else(|e| panic!("{field}: {e}"));
    let got = show(&field_ref.extract(&ctx));
    assert_eq!(got, expect, "{field} on {event}");
    if field_ref.info().list {
        assert!(
            !matches!(field_ref.extract(&ctx), Values::One(_)),
            "{field} is a list field"
        );
    }
}

fn check_all(event: &str, rows: &[(&str, &str)]) {
    for (field, expect) in rows {
        check(event, field, expect);
    }
}

#[test]
fn evt_fields() {
    check_all(
        &ev(""),
        &[
            ("evt.num", "#7"),
            ("evt.time", "09:00:00.040000000"),
            ("evt.time.s", "09:00:00"),
            ("evt.time.iso8601", "2026-11-21T09:00:00.040000000+0000"),
            ("evt.datetime", "2026-11-21 09:00:00.040000000"),
            ("evt.datetime.s", "2026-11-21 09:00:00"),
            ("evt.rawtime", "#1795251600040000000"),
            ("evt.rawtime.s", "#1795251600"),
            ("evt.rawtime.ns", "#40000000"),
            ("evt.reltime", "#1040000000"),
            ("evt.reltime.s", "#1"),
            ("evt.reltime.ns", "#40000000"),
            ("evt.pluginname", "k8saudit"),
            ("evt.source", "k8s_audit"),
            ("evt.is_async", "false"),
            ("evt.asynctype", "<NA>"),
            ("evt.hostname", "node-1"),
            (
                "evt.plugininfo",
                r#"{"kind":"Event","auditID":"a1","stage":"ResponseComplete","stageTimestamp":"2026-11-21T09:00:00.04Z"}"#,
            ),
            ("json.rawtime", "1795251600040000000"),
            ("jevt.rawtime", "1795251600040000000"),
        ],
    );
}

#[test]
fn metadata_fields() {
    let event = ev(
        r#""verb":"get","requestURI":"/api/v1/namespaces/ns1/secrets/s?x=1","userAgent":"kubectl/v1.30",
        "user":{"username":"alice","groups":["devs","system:authenticated"]},
        "impersonatedUser":{"username":"bob"},
        "objectRef":{"resource":"secrets","namespace":"ns1","name":"s","subresource":""},
        "responseStatus":{"metadata":{},"code":403,"reason":"Forbidden"},
        "annotations":{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":"",
            "authentication.openshift.io/decision":"allow","authentication.openshift.io/username":"ocp",
            "validation.policy.admission.k8s.io/validation_failure":"[{\"message\":\"m\"}]",
            "pod-security.kubernetes.io/audit-violations":"would violate","cluster_name":"prod"}"#,
    );
    check_all(
        &event,
        &[
            ("ka.auditid", "a1"),
            ("ka.stage", "ResponseComplete"),
            ("ka.verb", "get"),
            ("ka.uri", "/api/v1/namespaces/ns1/secrets/s?x=1"),
            ("ka.useragent", "kubectl/v1.30"),
            ("ka.user.name", "alice"),
            ("ka.user.groups", r#"["devs", "system:authenticated"]"#),
            ("ka.impuser.name", "bob"),
            ("ka.target.resource", "secrets"),
            ("ka.target.namespace", "ns1"),
            ("ka.target.name", "s"),
            ("ka.req.configmap.name", "s"),
            ("ka.target.subresource", ""),
            ("ka.response.code", "403"),
            ("ka.response.reason", "Forbidden"),
            ("ka.auth.decision", "forbid"),
            ("ka.auth.reason", ""),
            ("ka.auth.openshift.decision", "allow"),
            ("ka.auth.openshift.username", "ocp"),
            ("ka.validations.admission.policy.failure", r#"[{"message":"m"}]"#),
            ("ka.security.pod.violations", "would violate"),
            ("ka.cluster.name", "prod"),
        ],
    );
    // Missing members have no value; an empty string is a value.
    check_all(
        &ev(r#""user":{"username":"x","groups":"devs"},"objectRef":{"resource":"namespaces","name":"foo"}"#),
        &[
            ("ka.target.namespace", "<NA>"),
            ("ka.target.subresource", "<NA>"),
            ("ka.user.groups", "<NA>"),
            ("ka.impuser.name", "<NA>"),
            ("ka.response.code", "<NA>"),
            ("ka.auth.decision", "<NA>"),
            ("ka.verb", "<NA>"),
            ("ka.uri.param[x]", "<NA>"),
        ],
    );
    // Non-string JSON renders as compact JSON text; an empty list is no value.
    check_all(
        &ev(r#""verb":5,"user":{"username":null,"groups":[]},"objectRef":{"name":{"a": [1, 2.50]}}"#),
        &[
            ("ka.verb", "5"),
            ("ka.user.name", "null"),
            ("ka.user.groups", "<NA>"),
            ("ka.target.name", r#"{"a":[1,2.50]}"#),
        ],
    );
}

#[test]
fn ka_fields_need_an_audit_id() {
    let no_id = r#"{"kind":"Event","stage":"ResponseComplete","verb":"create","stageTimestamp":"2026-11-21T09:00:00Z",
        "user":{"username":"alice"},"requestObject":{"spec":{"hostNetwork":true}},"annotations":{"cluster_name":"c"}}"#;
    check_all(
        no_id,
        &[
            ("ka.verb", "<NA>"),
            ("ka.user.name", "<NA>"),
            ("ka.stage", "<NA>"),
            ("ka.req.pod.host_network", "<NA>"),
            ("ka.cluster.name", "<NA>"),
            ("ka.req.binding.subject.has_name[x]", "<NA>"),
            ("jevt.value[/verb]", "create"),
            ("json.value[/requestObject/spec/hostNetwork]", "true"),
            ("evt.source", "k8s_audit"),
        ],
    );
    // A null auditID still counts as present.
    check(
        &ev(r#""auditID":null,"verb":"get""#).replacen(r#""auditID":"a1","#, "", 1),
        "ka.verb",
        "get",
    );
}

#[test]
fn target_pod_name_only_for_pods_without_subresource() {
    let resp = r#""responseObject":{"kind":"Pod","metadata":{"name":"web-1"}}"#;
    for (object_ref, expect) in [
        (r#"{"resource":"pods","name":"web-1"}"#, "web-1"),
        (r#"{"resource":"pods","subresource":""}"#, "web-1"),
        (r#"{"resource":"pods","subresource":"exec"}"#, "<NA>"),
        (r#"{"resource":"deployments"}"#, "<NA>"),
    ] {
        let event = ev(&format!(r#""objectRef":{object_ref},{resp}"#));
        check(&event, "ka.target.pod.name", expect);
        check(&event, "ka.resp.name", "web-1");
    }
}

#[test]
fn container_fields() {
    let spec = r#"{"securityContext":{"runAsUser":1000,"fsGroup":2000,"supplementalGroups":[1,2]},"runAsUser":7,
        "hostNetwork":true,"hostPID":false,
        "containers":[
          {"name":"web","image":"nginx:1.25","command":["nginx","-g","daemon off;"],
           "securityContext":{"privileged":true,"runAsUser":0,"procMount":"Unmasked","allowPrivilegeEscalation":false,
             "capabilities":{"add":["NET_ADMIN","SYS_TIME"]}},
           "ports":[{"containerPort":80},{"containerPort":443,"hostPort":8443},{"name":"x"}]},
          {"name":"side","image":"reg.example.com:5000/team/side@sha256:abc","args":["--v",2],"runAsUser":42,
           "securityContext":{"readOnlyRootFilesystem":true,"capabilities":{"add":[]}}}],
        "initContainers":[{"name":"init","image":"busybox","securityContext":{"privileged":true,"runAsGroup":3}}],
        "ephemeralContainers":[{"name":"dbg","image":"alpine@sha256:def","command":["sh"],
           "securityContext":{"capabilities":{"add":["SYS_PTRACE"]}}}]}"#;
    let event = pod(spec);
    check_all(
        &event,
        &[
            ("ka.req.pod.containers.name", r#"["web", "side"]"#),
            ("ka.req.pod.containers.name[1]", r#"["side"]"#),
            ("ka.req.pod.containers.name[2]", "<NA>"),
            (
                "ka.req.pod.containers.image",
                r#"["nginx:1.25", "reg.example.com:5000/team/side@sha256:abc"]"#,
            ),
            (
                "ka.req.pod.containers.image.repository",
                r#"["nginx", "reg.example.com"]"#,
            ),
            ("ka.req.pod.containers.image.repository[0]", r#"["nginx"]"#),
            ("ka.req.container.image", "nginx:1.25"),
            ("ka.req.container.image.repository", "nginx"),
            ("ka.req.pod.containers.command", r#"["nginx -g daemon off;"]"#),
            ("ka.req.pod.containers.args", r#"["--v 2"]"#),
            ("ka.req.pod.containers.args[0]", "<NA>"),
            ("ka.req.pod.containers.privileged", r#"["true"]"#),
            ("ka.req.pod.containers.privileged[1]", "<NA>"),
            ("ka.req.container.privileged", "true"),
            ("ka.req.pod.containers.allow_privilege_escalation", r#"["false"]"#),
            ("ka.req.pod.containers.read_only_fs", r#"["true"]"#),
            ("ka.req.pod.containers.run_as_user", r#"["0"]"#),
            ("ka.req.pod.containers.run_as_group", "<NA>"),
            ("ka.req.pod.containers.proc_mount", r#"["Unmasked"]"#),
            // One value per container: the whole add array.
            (
                "ka.req.pod.containers.add_capabilities",
                r#"["[\"NET_ADMIN\",\"SYS_TIME\"]", "[]"]"#,
            ),
            ("ka.req.pod.containers.add_capabilities[1]", r#"["[]"]"#),
            ("ka.req.pod.containers.host_port", r#"["80", "8443"]"#),
            ("ka.req.pod.containers.host_port[1]", "<NA>"),
            ("ka.req.pod.host_network", "true"),
            ("ka.req.container.host_network", "true"),
            ("ka.req.pod.host_pid", "false"),
            ("ka.req.pod.host_ipc", "<NA>"),
            ("ka.req.pod.run_as_user", "1000"),
            ("ka.req.pod.run_as_group", "<NA>"),
            ("ka.req.pod.fs_group", "2000"),
            ("ka.req.pod.supplemental_groups", r#"["1", "2"]"#),
            ("ka.req.pod.initContainers.name", r#"["init"]"#),
            ("ka.req.pod.initContainers.image.repository", r#"["busybox"]"#),
            ("ka.req.pod.initContainers.privileged", r#"["true"]"#),
            ("ka.req.pod.initContainers.run_as_group", r#"["3"]"#),
            ("ka.req.pod.initContainers.command", "<NA>"),
            ("ka.req.pod.initContainers.host_port", "<NA>"),
            ("ka.req.pod.ephemeralContainers.name", r#"["dbg"]"#),
            ("ka.req.pod.ephemeralContainers.image.repository", r#"["alpine"]"#),
            ("ka.req.pod.ephemeralContainers.command", r#"["sh"]"#),
            ("ka.req.pod.ephemeralContainers.privileged", "<NA>"),
            (
                "ka.req.pod.ephemeralContainers.add_capabilities",
                r#"["[\"SYS_PTRACE\"]"]"#,
            ),
        ],
    );
}

#[test]
fn effective_run_as_reads_the_wrong_paths() {
    // runAsUser under securityContext is ignored; runAsUser directly under the container or
    // the spec is used, "0" otherwise.
    check_all(
        &pod(
            r#"{"securityContext":{"runAsUser":1000},"containers":[{"name":"a","securityContext":{"runAsUser":5}}]}"#,
        ),
        &[
            ("ka.req.pod.containers.eff_run_as_user", r#"["0"]"#),
            ("ka.req.pod.containers.eff_run_as_group", r#"["0"]"#),
        ],
    );
    check_all(
        &pod(
            r#"{"runAsUser":7,"containers":[{"name":"a","runAsUser":42},{"name":"b"}],"initContainers":[{"name":"i"}]}"#,
        ),
        &[
            ("ka.req.pod.containers.eff_run_as_user", r#"["42", "7"]"#),
            ("ka.req.pod.containers.eff_run_as_user[0]", r#"["42"]"#),
            // With an index the default is not applied: the container's member is required.
            ("ka.req.pod.containers.eff_run_as_user[1]", "<NA>"),
            ("ka.req.pod.initContainers.eff_run_as_user", r#"["7"]"#),
            ("ka.req.pod.ephemeralContainers.eff_run_as_user", "<NA>"),
        ],
    );
}

#[test]
fn container_edge_cases() {
    check_all(
        &pod(r#"{"containers":[{"name":"a","image":"x"},{"image":"y"}]}"#),
        &[
            // One container without a name or image: no value at all.
            ("ka.req.pod.containers.name", "<NA>"),
            ("ka.req.pod.containers.name[0]", r#"["a"]"#),
            ("ka.req.pod.containers.image", r#"["x", "y"]"#),
            ("ka.req.container.privileged", "false"),
            ("ka.req.pod.containers.privileged", "<NA>"),
        ],
    );
    check_all(
        &pod(r#"{"containers":[]}"#),
        &[
            ("ka.req.pod.containers.image", "<NA>"),
            ("ka.req.container.image", "<NA>"),
            ("ka.req.container.privileged", "false"),
        ],
    );
    check_all(
        &pod(r#"{"containers":[{"image":"a","ports":{"containerPort":1}}]}"#),
        // ports must be an array.
        &[("ka.req.pod.containers.host_port", "<NA>")],
    );
    check_all(
        &pod(r#"{"containers":{"name":"solo","image":"img:1"}}"#),
        // A containers object (not an array) is read as a single container.
        &[
            ("ka.req.pod.containers.name", r#"["solo"]"#),
            ("ka.req.container.image", "img:1"),
        ],
    );
    check_all(
        &pod(r#"{"containers":[{"image":"a:1","securityContext":{"privileged":"yes"}},[{"image":"b"}]]}"#),
        &[
            ("ka.req.pod.containers.image", r#"["a:1", "b"]"#),
            ("ka.req.pod.containers.privileged", r#"["yes"]"#),
            ("ka.req.container.privileged", "false"),
        ],
    );
    // No request body at all.
    check_all(
        &ev(r#""verb":"delete""#),
        &[
            ("ka.req.pod.containers.image", "<NA>"),
            ("ka.req.container.privileged", "<NA>"),
            ("ka.req.pod.host_network", "<NA>"),
            ("ka.req.pod.containers.eff_run_as_user", "<NA>"),
        ],
    );
    // A requestObject that is an array is walked into, as the plugin does.
    check(
        &ev(
            r#""requestObject":[{"spec":{"containers":[{"image":"p"}]}},{"spec":{"containers":[{"image":"q"}]}}]"#,
        ),
        "ka.req.pod.containers.image",
        r#"["p", "q"]"#,
    );
}

#[test]
fn image_repository_cut() {
    for (image, repository) in [
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("docker.io/library/nginx:latest", "docker.io/library/nginx"),
        ("falcosecurity/falco@sha256:0123", "falcosecurity/falco"),
        ("reg:5000/team/app:1", "reg"),
        ("reg/app@sha256:x:y", "reg/app"),
        ("", ""),
    ] {
        let event = pod(&format!(r#"{{"containers":[{{"image":"{image}"}}]}}"#));
        check(
            &event,
            "ka.req.pod.containers.image.repository",
            &format!(r#"["{repository}"]"#),
        );
        check(&event, "ka.req.container.image.repository", repository);
    }
}

#[test]
fn volume_fields() {
    let event = pod(r#"{"volumes":[
        {"name":"etc","hostPath":{"path":"/etc","type":""}},
        {"name":"cfg","configMap":{"name":"c"}},
        {"name":"run","hostPath":{"path":"/var/run/docker.sock"}},
        {"name":"fv","flexVolume":{"driver":"k8s/lvm"},"readOnly":true}]}"#);
    check_all(
        &event,
        &[
            (
                "ka.req.pod.volumes.hostpath",
                r#"["/etc", "/var/run/docker.sock"]"#,
            ),
            ("ka.req.pod.volumes.hostpath[2]", r#"["/var/run/docker.sock"]"#),
            ("ka.req.pod.volumes.hostpath[1]", "<NA>"),
            ("ka.req.pod.volumes.flexvolume_driver", r#"["k8s/lvm"]"#),
            (
                "ka.req.pod.volumes.volume_type",
                r#"["hostPath", "configMap", "hostPath", "flexVolume", "readOnly"]"#,
            ),
            (
                "ka.req.pod.volumes.volume_type[3]",
                r#"["flexVolume", "readOnly"]"#,
            ),
            ("ka.req.pod.volumes.volume_type[9]", "<NA>"),
            // The deprecated field reads every volume's hostPath.path strictly: one volume
            // without it (the configMap here) leaves the field without a value.
            ("ka.req.volume.hostpath[/etc]", "<NA>"),
            ("ka.req.volume.hostpath[*]", "<NA>"),
        ],
    );
    check_all(
        &pod(
            r#"{"volumes":[{"name":"cfg","configMap":{"name":"c"}},{"name":"etc","hostPath":{"path":"/etc"}}]}"#,
        ),
        &[
            ("ka.req.volume.hostpath[/etc]", "<NA>"),
            ("ka.req.pod.volumes.hostpath", r#"["/etc"]"#),
        ],
    );
    check_all(
        &pod(
            r#"{"volumes":[{"name":"etc","hostPath":{"path":"/etc"}},{"name":"sock","hostPath":{"path":"/var/run/docker.sock"}}]}"#,
        ),
        &[
            ("ka.req.volume.hostpath[/etc]", "true"),
            ("ka.req.volume.hostpath[/et*]", "true"),
            ("ka.req.volume.hostpath[/*]", "true"),
            ("ka.req.volume.hostpath[*]", "true"),
            ("ka.req.volume.hostpath[/etc/]", "false"),
            ("ka.req.volume.hostpath[/et]", "false"),
            ("ka.req.volume.hostpath[/var/run/docker.sock]", "true"),
            ("ka.req.volume.hostpath[/var/run/docker]", "false"),
        ],
    );
    check_all(
        &pod(r#"{"containers":[]}"#),
        &[
            ("ka.req.volume.hostpath[/etc]", "<NA>"),
            ("ka.req.pod.volumes.hostpath", "<NA>"),
            ("ka.req.pod.volumes.volume_type", "<NA>"),
        ],
    );
    check_all(
        &pod(r#"{"volumes":[]}"#),
        &[
            ("ka.req.volume.hostpath[/etc]", "<NA>"),
            ("ka.req.pod.volumes.volume_type", "<NA>"),
        ],
    );
    check(
        &pod(r#"{"volumes":[{"name":"n"},"text",{"name":"m","emptyDir":{}}]}"#),
        "ka.req.pod.volumes.volume_type",
        r#"["emptyDir"]"#,
    );
}

#[test]
fn service_ports_is_one_value() {
    let event = ev(r#""requestObject":{"kind":"Service","spec":{"type":"NodePort",
        "ports":[{"nodePort":30080,"port":80,"protocol":"TCP"},{"port":443}]}}"#);
    let whole = r#"["[{\"nodePort\":30080,\"port\":80,\"protocol\":\"TCP\"},{\"port\":443}]"]"#;
    check_all(
        &event,
        &[
            ("ka.req.service.type", "NodePort"),
            ("ka.req.service.ports", whole),
            ("ka.req.service.ports[1]", whole),
            ("ka.req.service.ports[7]", whole),
        ],
    );
    check(
        &ev(r#""requestObject":{"spec":{"type":"ClusterIP"}}"#),
        "ka.req.service.ports",
        "<NA>",
    );
}

#[test]
fn role_fields() {
    let event = ev(r#""requestObject":{"kind":"ClusterRole","rules":[
        {"apiGroups":[""],"resources":["pods","pods/exec"],"verbs":["get","*"]},
        {"nonResourceURLs":["/healthz"],"verbs":["get"],"sourceIPs":["10.0.0.1"]},
        {"apiGroups":"apps","verbs":["list"]}]},"sourceIPs":["192.168.0.1"]"#);
    check_all(
        &event,
        &[
            (
                "ka.req.role.rules",
                r#"["{\"apiGroups\":[\"\"],\"resources\":[\"pods\",\"pods/exec\"],\"verbs\":[\"get\",\"*\"]}", "{\"nonResourceURLs\":[\"/healthz\"],\"verbs\":[\"get\"],\"sourceIPs\":[\"10.0.0.1\"]}", "{\"apiGroups\":\"apps\",\"verbs\":[\"list\"]}"]"#,
            ),
            ("ka.req.role.rules.verbs", r#"["get", "*", "get", "list"]"#),
            ("ka.req.role.rules.verbs[1]", r#"["get"]"#),
            ("ka.req.role.rules.verbs[3]", "<NA>"),
            ("ka.req.role.rules.resources", r#"["pods", "pods/exec"]"#),
            ("ka.req.role.rules.resources[1]", "<NA>"),
            ("ka.req.role.rules.apiGroups", r#"[""]"#),
            ("ka.req.role.rules.apiGroups[2]", "<NA>"),
            ("ka.req.role.rules.nonResourceURLs", r#"["/healthz"]"#),
            // Upstream reads requestObject.rules[].sourceIPs, not the event's sourceIPs.
            ("ka.sourceips", r#"["10.0.0.1"]"#),
            ("ka.sourceips[0]", "<NA>"),
            ("jevt.value[/sourceIPs/0]", "192.168.0.1"),
        ],
    );
    check(&ev(r#""sourceIPs":["192.168.0.1"]"#), "ka.sourceips", "<NA>");
    check(
        &ev(r#""requestObject":{"rules":[]}"#),
        "ka.req.role.rules",
        "<NA>",
    );
    check(
        &ev(r#""requestObject":{"rules":{"verbs":["x"]}}"#),
        "ka.req.role.rules.verbs",
        r#"["x"]"#,
    );
    check(
        &ev(r#""requestObject":{"rules":{"verbs":["x"]}}"#),
        "ka.req.role.rules",
        "<NA>",
    );
}

#[test]
fn binding_fields() {
    let event = ev(
        r#""requestObject":{"kind":"ClusterRoleBinding","roleRef":{"kind":"ClusterRole","name":"cluster-admin"},
        "subjects":[{"kind":"User","name":"alice"},{"kind":"ServiceAccount","name":"sa1","namespace":"ns1"},
            {"kind":"ServiceAccount","name":"sa2"},{"kind":"Group","name":"devs"},{"kind":"User"},"odd"]}"#,
    );
    check_all(
        &event,
        &[
            ("ka.req.binding.role", "cluster-admin"),
            (
                "ka.req.binding.subjects",
                r#"["{\"kind\":\"User\",\"name\":\"alice\"}", "{\"kind\":\"ServiceAccount\",\"name\":\"sa1\",\"namespace\":\"ns1\"}", "{\"kind\":\"ServiceAccount\",\"name\":\"sa2\"}", "{\"kind\":\"Group\",\"name\":\"devs\"}", "{\"kind\":\"User\"}", "odd"]"#,
            ),
            ("ka.req.binding.subjects.user_names", r#"["alice"]"#),
            (
                "ka.req.binding.subjects.serviceaccount_names",
                r#"["sa1", "sa2"]"#,
            ),
            (
                "ka.req.binding.subjects.serviceaccount_ns_names",
                r#"["ns1:sa1"]"#,
            ),
            ("ka.req.binding.subjects.group_names", r#"["devs"]"#),
            // Documented as N/A upstream, but the plugin always returns "true".
            ("ka.req.binding.subject.has_name[cluster-admin]", "true"),
            ("ka.req.binding.subject.has_name[nobody]", "true"),
        ],
    );
    check_all(
        &ev(r#""requestObject":{"subjects":[{"kind":"Group","name":"g"}]}"#),
        &[
            ("ka.req.binding.subjects.user_names", "<NA>"),
            ("ka.req.binding.role", "<NA>"),
            ("ka.req.binding.subject.has_name[x]", "true"),
        ],
    );
}

#[test]
fn configmap_obj_is_compact_json_text() {
    let event = ev(
        r#""requestObject":{"kind":"ConfigMap","data":{ "access.properties" : "aws_access_key_id = X\nk=v", "n": 1.0 }}"#,
    );
    check(
        &event,
        "ka.req.configmap.obj",
        r#"{"access.properties":"aws_access_key_id = X\nk=v","n":1.0}"#,
    );
    check(
        &ev(r#""requestObject":{"kind":"ConfigMap"}"#),
        "ka.req.configmap.obj",
        "<NA>",
    );
}

#[test]
fn uri_param() {
    let exec = ev(
        r#""requestURI":"/api/v1/namespaces/default/pods/p/exec?command=bash&command=-c&command=echo%20hi&container=c%2Bd&stdin=true&tty=a+b""#,
    );
    check_all(
        &exec,
        &[
            ("ka.uri.param[command]", "bash"),
            ("ka.uri.param[container]", "c+d"),
            ("ka.uri.param[tty]", "a b"),
            ("ka.uri.param[stdout]", "<NA>"),
        ],
    );
    check(
        &ev(r#""requestURI":"/api/v1/pods?watch=1&bad=%zz""#),
        "ka.uri.param[watch]",
        "<NA>",
    );
    check(
        &ev(r#""requestURI":"/api/v1/pods?watch=1;x=2""#),
        "ka.uri.param[watch]",
        "<NA>",
    );
    check(
        &ev(r#""requestURI":"/api/v1/pods?labelSelector=app%3Dweb\u0026watch=true""#),
        "ka.uri.param[labelSelector]",
        "app=web",
    );
    check(&ev(r#""requestURI":"/healthz""#), "ka.uri.param[verbose]", "<NA>");
}

#[test]
fn json_value_pointers() {
    let event = ev(
        r#""annotations":{"authorization.k8s.io/decision":"allow"},"a/~b":"slash-tilde","a~1":"lit",
        "requestObject":{"spec":{"replicas":3,"paused":false,"x":null,"tls":[{"hosts":["h"]}],"e":{},"s":"q\"uote"}},
        "":"empty-key","n":[10,20]"#,
    );
    check_all(
        &event,
        &[
            ("jevt.value[/annotations/authorization.k8s.io~1decision]", "allow"),
            ("json.value[annotations/authorization.k8s.io~1decision]", "allow"),
            ("jevt.value[/a~1~0b]", "slash-tilde"),
            // ~1 is replaced before ~0: ~01 is the text "~1".
            ("jevt.value[/a~01]", "lit"),
            ("jevt.value[/requestObject/spec/replicas]", "3"),
            ("jevt.value[/requestObject/spec/paused]", "false"),
            // A JSON null exists, with the text "null".
            ("jevt.value[/requestObject/spec/x]", "null"),
            ("jevt.value[/requestObject/spec/missing]", "<NA>"),
            ("jevt.value[/requestObject/spec/tls]", r#"[{"hosts":["h"]}]"#),
            ("jevt.value[/requestObject/spec/tls/0/hosts/0]", "h"),
            ("jevt.value[/requestObject/spec/tls/1]", "<NA>"),
            ("jevt.value[/requestObject/spec/e]", "{}"),
            ("jevt.value[/requestObject/spec/s]", "q\"uote"),
            ("jevt.value[/n/01]", "20"),
            ("jevt.value[/n/+1]", "20"),
            ("jevt.value[/n/-1]", "<NA>"),
            ("jevt.value[/n/x]", "<NA>"),
            ("jevt.value[/stage]", "ResponseComplete"),
            ("jevt.value[/auditID/0]", "<NA>"),
            // "/" is one empty segment: the member named "".
            ("jevt.value[/]", "empty-key"),
            ("jevt.value[/requestObject/spec/replicas/]", "<NA>"),
        ],
    );
    check(
        &ev(r#""x":1"#),
        "jevt.value[]",
        r#"{"kind":"Event","auditID":"a1","stage":"ResponseComplete","stageTimestamp":"2026-11-21T09:00:00.04Z","x":1}"#,
    );
    check(
        &ev(r#""x" : [ 1 , 2 ]"#),
        "json.value[]",
        r#"{"kind":"Event","auditID":"a1","stage":"ResponseComplete","stageTimestamp":"2026-11-21T09:00:00.04Z","x":[1,2]}"#,
    );
    check(
        &ev(r#""x":{"y":[]}"#),
        "jevt.obj",
        "{\n  \"kind\": \"Event\",\n  \"auditID\": \"a1\",\n  \"stage\": \"ResponseComplete\",\n  \"stageTimestamp\": \"2026-11-21T09:00:00.04Z\",\n  \"x\": {\n    \"y\": []\n  }\n}",
    );
}

#[test]
fn resolve_checks_arguments() {
    let err = |name: &str, arg: Option<&str>| resolve(name, arg).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        err("ka.nope", None),
        "filter_check called with nonexistent field ka.nope"
    );
    assert_eq!(
        err("ka.verb", Some("x")),
        "field ka.verb does not allow nor require an argument but one is provided: x"
    );
    assert_eq!(
        err("jevt.value", None),
        "field jevt.value requires an argument but none provided"
    );
    assert_eq!(
        err("ka.uri.param", None),
        "field ka.uri.param requires an argument but none provided"
    );
    assert_eq!(
        err("ka.req.pod.containers.image", Some("01")),
        "field ka.req.pod.containers.image has an invalid index argument starting with 0: 01"
    );
    assert_eq!(
        err("ka.req.pod.containers.image", Some("x")),
        "field ka.req.pod.containers.image has an invalid index argument not composed only by digits: x"
    );
    assert_eq!(
        err("ka.req.pod.containers.image", Some("99999999999999999999")),
        "field ka.req.pod.containers.image has an invalid index argument not representable on 64 bit: 99999999999999999999"
    );
    assert!(matches!(
        resolve("ka.sourceips", Some("")),
        Err(FieldError::BadIndex {
            problem: IndexProblem::LeadingZero,
            ..
        })
    ));
    assert!(resolve("ka.req.pod.containers.image", Some("0")).is_ok());
    assert!(resolve("ka.req.pod.containers.image", Some("10")).is_ok());
    assert!(resolve("ka.req.pod.containers.image", None).is_ok());
    assert!(lookup("ka.req.pod.containers.image[0]").is_none());
}

#[test]
fn field_refs_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FieldRef>();
    assert_send_sync::<FieldInfo>();
}

#[test]
fn display_and_body() {
    for (name, arg, display, body) in [
        ("ka.verb", None, "ka.verb", Body::None),
        (
            "ka.uri.param",
            Some("command"),
            "ka.uri.param[command]",
            Body::None,
        ),
        (
            "ka.req.pod.containers.image",
            Some("3"),
            "ka.req.pod.containers.image[3]",
            Body::Request,
        ),
        ("ka.resp.name", None, "ka.resp.name", Body::Response),
        (
            "jevt.value",
            Some("/requestObject/spec"),
            "jevt.value[/requestObject/spec]",
            Body::Request,
        ),
        (
            "json.value",
            Some("responseObject/metadata"),
            "json.value[responseObject/metadata]",
            Body::Response,
        ),
        (
            "jevt.value",
            Some("/annotations/x"),
            "jevt.value[/annotations/x]",
            Body::None,
        ),
        ("jevt.value", Some(""), "jevt.value[]", Body::Response),
        ("jevt.obj", None, "jevt.obj", Body::Response),
        ("jevt.rawtime", None, "jevt.rawtime", Body::None),
        ("evt.time", None, "evt.time", Body::None),
    ] {
        let f = resolve(name, arg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((f.display().as_str(), f.body()), (display, body), "{name}");
    }
}

#[test]
fn output_forms() {
    let event = pod(
        r#"{"containers":[{"name":"","image":"a"},{"name":"*","image":"b"}],"volumes":[{"name":"","hostPath":{"path":""}},{"hostPath":{"path":"x"}},{"hostPath":{"path":""}}]}"#,
    );
    let loc = located(&event);
    let ctx = EventCtx::new(&loc, 3);
    let text = |field: &str, arg: Option<&str>| {
        resolve(field, arg)
            .expect("known field")
            .output_text(&ctx)
            .map(|v| v.into_owned())
    };
    let json = |field: &str, arg: Option<&str>| {
        resolve(field, arg)
            .expect("known field")
            .output_json(&ctx)
            .to_string()
    };
    assert_eq!(
        text("ka.req.pod.containers.image", None).as_deref(),
        Some("(a,b)")
    );
    assert_eq!(
        text("ka.req.pod.containers.image", Some("0")).as_deref(),
        Some("(a)")
    );
    // The comma is only written after a non-empty text.
    assert_eq!(text("ka.req.pod.containers.name", None).as_deref(), Some("(*)"));
    assert_eq!(text("ka.req.pod.volumes.hostpath", None).as_deref(), Some("(x,)"));
    assert_eq!(json("ka.req.pod.volumes.hostpath", None), r#"["","x",""]"#);
    assert_eq!(text("ka.target.name", None), None);
    assert_eq!(json("ka.target.name", None), "null");
    assert_eq!(text("ka.verb", None).as_deref(), Some("create"));
    assert_eq!(json("ka.verb", None), r#""create""#);
    assert_eq!(text("evt.num", None).as_deref(), Some("3"));
    assert_eq!(json("evt.num", None), "3");
    assert_eq!(text("evt.rawtime.ns", None).as_deref(), Some("040000000"));
    assert_eq!(json("evt.rawtime.ns", None), "40000000");
    assert_eq!(text("evt.time", None).as_deref(), Some("09:00:00.040000000"));
    assert_eq!(json("evt.time", None), "1795251600040000000");
    assert_eq!(json("evt.datetime", None), "1795251600040000000");
    assert_eq!(json("evt.rawtime", None), "1795251600040000000");
    assert_eq!(text("evt.is_async", None).as_deref(), Some("false"));
    assert_eq!(json("evt.is_async", None), "false");
    assert_eq!(json("evt.hostname", None), "null");
    assert_eq!(json("jevt.rawtime", None), r#""1795251600040000000""#);

    let long: Vec<String> = (0..300).map(|i| format!(r#"{{"image":"img{i}"}}"#)).collect();
    let event = pod(&format!(r#"{{"containers":[{}]}}"#, long.join(",")));
    let loc = located(&event);
    let ctx = EventCtx::new(&loc, 1);
    let listed = resolve("ka.req.pod.containers.image", None)
        .expect("known field")
        .output_text(&ctx);
    assert_eq!(listed.map(|t| t.len()), Some(1023));
}

#[test]
fn values_borrow_from_the_event() {
    let event = pod(r#"{"containers":[{"name":"web","image":"nginx:1"}]}"#);
    let loc = located(&event);
    let ctx = EventCtx::new(&loc, 1);
    for (field, arg) in [
        ("ka.verb", None),
        ("ka.req.pod.containers.image", None),
        ("ka.req.pod.containers.image.repository", None),
        ("jevt.value", Some("/requestObject/spec/containers/0/name")),
        ("jevt.value", Some("/verb")),
    ] {
        let values = resolve(field, arg).expect("known field").extract(&ctx);
        let borrowed = match &values {
            Values::One(v) => matches!(v, Cow::Borrowed(_)),
            Values::Many(v) => v.iter().all(|v| matches!(v, Cow::Borrowed(_))),
            _ => false,
        };
        assert!(borrowed, "{field}: {values:?}");
    }
}

/// `shared/` beside the project, or `None` (with a notice) when it is absent outside CI.
fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "shared corpus missing at {}",
        dir.display()
    );
    eprintln!("skipping: shared corpus not found at {}", dir.display());
    None
}

/// Field values of the events in `shared/samples/falco-k8s-audit`, as the upstream rules'
/// outputs print them.
#[test]
fn sample_events() {
    let Some(shared) = shared_dir() else { return };
    let samples = shared.join("samples/falco-k8s-audit");
    let rows: &[(&str, &str, &str)] = &[
        (
            "create_nginx_pod_privileged.json",
            "ka.req.pod.containers.privileged",
            r#"["true"]"#,
        ),
        (
            "create_nginx_pod_privileged.json",
            "ka.req.pod.containers.image.repository",
            r#"["nginx"]"#,
        ),
        (
            "create_nginx_pod_privileged.json",
            "ka.req.pod.initContainers.privileged",
            "<NA>",
        ),
        (
            "create_nginx_pod_privileged.json",
            "ka.target.pod.name",
            "nginx-deployment-5cdcc99dbf-rgw6z",
        ),
        (
            "create_nginx_pod_privileged_2nd_container.json",
            "ka.req.pod.containers.privileged",
            r#"["false", "true"]"#,
        ),
        (
            "create_nginx_pod_unprivileged.json",
            "ka.req.pod.containers.privileged",
            "<NA>",
        ),
        (
            "create_nginx_pod_hostnetwork.json",
            "ka.req.pod.host_network",
            "true",
        ),
        (
            "create_nginx_pod_sensitive_mount.json",
            "ka.req.pod.volumes.hostpath",
            r#"["/etc"]"#,
        ),
        (
            "create_nginx_pod_sensitive_mount.json",
            "jevt.value[/requestObject/spec/volumes]",
            r#"[{"hostPath":{"path":"/etc","type":""},"name":"etc"}]"#,
        ),
        (
            "create_nginx_pod_sensitive_mount_2nd_container.json",
            "ka.req.volume.hostpath[/etc]",
            "true",
        ),
        (
            "create_nginx_pod_sensitive_mount_2nd_container.json",
            "ka.req.container.image",
            "nginx",
        ),
        (
            "create_nginx_pod_sensitive_mount_2nd_container.json",
            "ka.req.pod.containers.image",
            r#"["nginx", "mysql:latest"]"#,
        ),
        (
            "create_nginx_pod_unsensitive_mount.json",
            "ka.req.pod.volumes.hostpath",
            "<NA>",
        ),
        (
            "create_nginx_service_nodeport.json",
            "ka.req.service.ports",
            r#"["[{\"nodePort\":30080,\"port\":80,\"protocol\":\"TCP\",\"targetPort\":80}]"]"#,
        ),
        (
            "create_nginx_service_nodeport.json",
            "ka.req.service.type",
            "NodePort",
        ),
        ("exec_pod.json", "ka.uri.param[command]", "bash"),
        ("exec_pod.json", "ka.target.subresource", "exec"),
        ("exec_pod.json", "ka.target.pod.name", "<NA>"),
        (
            "attach_cluster_admin_role.json",
            "ka.req.binding.role",
            "cluster-admin",
        ),
        (
            "attach_cluster_admin_role.json",
            "ka.req.binding.subjects.user_names",
            r#"["minikube"]"#,
        ),
        (
            "create_cluster_role_wildcard_verbs.json",
            "ka.req.role.rules.verbs",
            r#"["*", "get"]"#,
        ),
        (
            "create_cluster_role_wildcard_verbs.json",
            "ka.req.role.rules.resources",
            r#"["pods"]"#,
        ),
        ("create_cluster_role_wildcard_verbs.json", "ka.sourceips", "<NA>"),
        ("create_cluster_role_wildcard_verbs.json", "ka.auth.reason", ""),
        (
            "anonymous_creates_namespace_foo.json",
            "ka.user.name",
            "system:anonymous",
        ),
        (
            "create_configmap_sensitive_values.json",
            "ka.target.resource",
            "configmaps",
        ),
        (
            "create_configmap_sensitive_values.json",
            "ka.response.code",
            "201",
        ),
    ];
    for (file, field, expect) in rows {
        let path = samples.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("{file} is empty"));
        check(first, field, expect);
    }
}

/// Every field extracts without panicking from every sample event, with and without an index.
#[test]
fn every_field_on_every_sample() {
    let Some(shared) = shared_dir() else { return };
    let samples = shared.join("samples/falco-k8s-audit");
    let Ok(dir) = std::fs::read_dir(&samples) else {
        return;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
            let Ok(event) = AuditEvent::parse(line) else {
                continue;
            };
            let loc = Located {
                position: Position::default(),
                event,
                time_nanos: 0,
            };
            let ctx = EventCtx::new(&loc, 1);
            for info in catalogue() {
                let args: &[Option<&str>] = match info.arg {
                    ArgSpec::None => &[None],
                    ArgSpec::OptionalIndex => &[None, Some("0"), Some("1")],
                    ArgSpec::RequiredKey => &[Some("/requestObject/spec"), Some(""), Some("/etc*")],
                };
                for arg in args {
                    let f = resolve(info.name, *arg).unwrap_or_else(|e| panic!("{}: {e}", info.name));
                    let values = f.extract(&ctx);
                    assert!(
                        !matches!(&values, Values::Many(v) if v.is_empty()),
                        "{}",
                        info.name
                    );
                    assert_eq!(
                        info.kind == ValueKind::Number,
                        matches!(values, Values::Number(_)),
                        "{}",
                        info.name
                    );
                    n += 1;
                }
            }
        }
    }
    assert!(n > 0);
}
