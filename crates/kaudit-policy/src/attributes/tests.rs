//! Recovering the policy's request attributes from recorded events.

use kaudit_model::AuditEvent;

use super::*;

/// Builds an event from its verb, requestURI, objectRef JSON (or `""` for none) and user
/// JSON, and checks the attributes as `user|verb|path|resource?|group|resource|sub|ns|name`.
fn check(verb: &str, uri: &str, object_ref: &str, user: &str, expected: &str) {
    let object = if object_ref.is_empty() {
        String::new()
    } else {
        format!(",\"objectRef\":{object_ref}")
    };
    let raw = format!(
        r#"{{"kind":"Event","auditID":"x","stage":"ResponseComplete","verb":"{verb}","requestURI":"{uri}","user":{user}{object},"stageTimestamp":"2024-01-01T00:00:00Z"}}"#
    );
    let event = AuditEvent::parse(&raw).expect("test event parses");
    let a = request_attributes(&event);
    let user = match &a.user {
        None => "!".to_owned(),
        Some(u) => format!("{}[{}]", u.name, u.groups.join(",")),
    };
    let got = format!(
        "{user}|{}|{}|{}|{}|{}|{}|{}|{}",
        a.verb, a.path, a.resource_request, a.api_group, a.resource, a.subresource, a.namespace, a.name
    );
    assert_eq!(got, expected, "{raw}");
}

const ALICE: &str = r#"{"username":"alice","groups":["dev","system:authenticated"]}"#;

#[test]
fn attributes_from_events() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // Path without the query; non-resource request when there is no objectRef.
        (
            "get",
            "/healthz?verbose=1",
            "",
            ALICE,
            "alice[dev,system:authenticated]|get|/healthz|false|||||",
        ),
        // Failed authentication: `{}` is no user at all.
        ("get", "/api", "", "{}", "!|get|/api|false|||||"),
        // Get: everything from objectRef.
        (
            "get",
            "/api/v1/namespaces/a/pods/p",
            r#"{"resource":"pods","namespace":"a","name":"p","apiVersion":"v1"}"#,
            ALICE,
            "alice[dev,system:authenticated]|get|/api/v1/namespaces/a/pods/p|true||pods||a|p",
        ),
        // Create: the name came from the body; the policy saw none.
        (
            "create",
            "/apis/apps/v1/namespaces/a/deployments",
            r#"{"resource":"deployments","namespace":"a","name":"d","apiGroup":"apps"}"#,
            ALICE,
            "alice[dev,system:authenticated]|create|/apis/apps/v1/namespaces/a/deployments|true|apps|deployments||a|",
        ),
        // Create of a namespace: no name and no namespace.
        (
            "create",
            "/api/v1/namespaces",
            r#"{"resource":"namespaces","name":"team-x","apiVersion":"v1"}"#,
            ALICE,
            "alice[dev,system:authenticated]|create|/api/v1/namespaces|true||namespaces|||",
        ),
        // Create through a cluster-wide URL: the body's namespace was not what the policy saw.
        (
            "create",
            "/api/v1/pods",
            r#"{"resource":"pods","namespace":"a","name":"p"}"#,
            ALICE,
            "alice[dev,system:authenticated]|create|/api/v1/pods|true||pods|||",
        ),
        // Create on a subresource keeps the name from the URL.
        (
            "create",
            "/api/v1/namespaces/b/serviceaccounts/builder/token",
            r#"{"resource":"serviceaccounts","namespace":"b","name":"builder","subresource":"token"}"#,
            ALICE,
            "alice[dev,system:authenticated]|create|/api/v1/namespaces/b/serviceaccounts/builder/token|true||serviceaccounts|token|b|builder",
        ),
        // The Namespace object: namespace attribute = its name.
        (
            "get",
            "/api/v1/namespaces/foo",
            r#"{"resource":"namespaces","name":"foo"}"#,
            ALICE,
            "alice[dev,system:authenticated]|get|/api/v1/namespaces/foo|true||namespaces||foo|foo",
        ),
        (
            "update",
            "/api/v1/namespaces/foo/finalize",
            r#"{"resource":"namespaces","name":"foo","subresource":"finalize"}"#,
            ALICE,
            "alice[dev,system:authenticated]|update|/api/v1/namespaces/foo/finalize|true||namespaces|finalize|foo|foo",
        ),
        // List with a fieldSelector on metadata.name gets that name.
        (
            "list",
            "/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%3Dextension-apiserver-authentication\\u0026limit=500",
            r#"{"resource":"configmaps","namespace":"kube-system"}"#,
            ALICE,
            "alice[dev,system:authenticated]|list|/api/v1/namespaces/kube-system/configmaps|true||configmaps||kube-system|extension-apiserver-authentication",
        ),
        (
            "watch",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1%2Cmetadata.name%3D%3Dp\\u0026watch=true",
            r#"{"resource":"pods"}"#,
            ALICE,
            "alice[dev,system:authenticated]|watch|/api/v1/pods|true||pods|||p",
        ),
        (
            "list",
            "/api/v1/pods?fieldSelector=metadata.name!%3Dp",
            r#"{"resource":"pods"}"#,
            ALICE,
            "alice[dev,system:authenticated]|list|/api/v1/pods|true||pods|||",
        ),
        // Percent-encoded paths are matched decoded.
        (
            "get",
            "/version%2F",
            "",
            ALICE,
            "alice[dev,system:authenticated]|get|/version/|false|||||",
        ),
    ];
    for (verb, uri, object_ref, user, expected) in cases {
        check(verb, uri, object_ref, user, expected);
    }
}

#[test]
fn resource_paths_parse_like_the_apiserver() {
    type Parsed<'a> = Option<(&'a str, &'a str, &'a str, &'a str, &'a str)>;
    let cases: &[(&str, Parsed)] = &[
        (
            "/api/v1/namespaces/a/pods/p/log",
            Some(("", "a", "pods", "p", "log")),
        ),
        (
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            Some(("apps", "a", "deployments", "d", "scale")),
        ),
        (
            "/api/v1/namespaces/foo",
            Some(("", "foo", "namespaces", "foo", "")),
        ),
        (
            "/api/v1/namespaces/foo/status",
            Some(("", "foo", "namespaces", "foo", "status")),
        ),
        ("/api/v1/namespaces", Some(("", "", "namespaces", "", ""))),
        (
            "/api/v1/nodes/n1/proxy/metrics",
            Some(("", "", "nodes", "n1", "proxy")),
        ),
        (
            "/api/v1/proxy/namespaces/a/pods/p/x",
            Some(("", "a", "pods", "p", "")),
        ),
        ("/api/v1/watch/namespaces/a/pods", Some(("", "a", "pods", "", ""))),
        ("/apis/apps/v1", None),
        ("/api/v1", None),
        ("/healthz", None),
    ];
    for (path, expected) in cases {
        let got =
            parse_resource_path(path).map(|r| (r.api_group, r.namespace, r.resource, r.name, r.subresource));
        let expected =
            expected.map(|(g, n, r, name, s)| (g.into(), n.into(), r.into(), name.into(), s.into()));
        assert_eq!(got, expected, "{path}");
    }
}
