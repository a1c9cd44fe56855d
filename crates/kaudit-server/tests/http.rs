//! HTTP behaviour through the router (`app(state).oneshot(request)`) over a SQLite store in a
//! temporary directory: intake, deduplication of retries, refusal of bad and hostile
//! batches, credentials and roles, policies, rule files, counts bounded by `limit`, and the
//! replay of a real apiserver's webhook bodies.

use std::io::Write;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kaudit_server::config::Config;
use kaudit_server::{AppState, admin, app};
use kaudit_store::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Server {
    state: AppState,
    intake_key: String,
    admin: String,
    viewer: String,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let store = kaudit_server::serve::open_sqlite(&config.data_dir).unwrap();
    let (state, _tasks, first) = kaudit_server::serve::build_state(&config, store.clone())
        .await
        .unwrap();
    assert!(first.is_some(), "a new data directory is bootstrapped");
    let (_, intake_key) = admin::create_intake(&*store, "test", "prod").unwrap();
    let (_, admin_token) = admin::create_token(&*store, Role::Admin, "").unwrap();
    let (_, viewer) = admin::create_token(&*store, Role::Viewer, "").unwrap();
    Server {
        state,
        intake_key,
        admin: admin_token,
        viewer,
        _dir: dir,
    }
}

/// Sends a request; returns the status and the JSON body (Null when empty).
async fn call(s: &Server, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(s.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, body)
}

fn intake(s: &Server, path: &str, body: impl Into<Body>, encoding: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(path).header("authorization", format!("Bearer {}", s.intake_key));
    if let Some(e) = encoding {
        builder = builder.header("content-encoding", e);
    }
    builder.body(body.into()).unwrap()
}

fn get(token: &str, uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn send_json(method: &str, token: &str, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn event(id: &str, verb: &str, resource: &str, extra: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/{resource}/x","verb":"{verb}","user":{{"username":"alice","groups":["system:authenticated"]}},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl/v1.27","objectRef":{{"resource":"{resource}","namespace":"default","name":"x","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-01T10:00:00.000000Z","stageTimestamp":"2024-05-01T10:00:00.100000Z"{extra}}}"#
    )
}

async fn count(s: &Server, what: &str, query: &str) -> u64 {
    let (status, body) = call(s, get(&s.viewer, &format!("/api/v1/{what}/count?{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["count"].as_u64().unwrap()
}

fn shared() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    if path.join("samples/kube-apiserver-1.26/webhook").is_dir() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "shared/ samples missing under CI"
    );
    eprintln!("notice: ../shared samples not found, skipping");
    None
}

#[tokio::test]
async fn replaying_the_real_webhook_bodies_stores_every_event_once() {
    let Some(shared) = shared() else { return };
    let s = server().await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared.join("samples/kube-apiserver-1.26/webhook"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 166);
    let mut first = (0, 0, 0);
    for round in 0..2 {
        let (mut accepted, mut duplicates, mut alerts) = (0, 0, 0);
        for file in &files {
            let (status, ack) = call(&s, intake(&s, "/k8s-audit", std::fs::read(file).unwrap(), None)).await;
            assert_eq!(status, StatusCode::OK, "{}: {ack}", file.display());
            accepted += ack["accepted"].as_u64().unwrap();
            duplicates += ack["duplicates"].as_u64().unwrap();
            alerts += ack["alerts"].as_u64().unwrap();
        }
        if round == 0 {
            first = (accepted, duplicates, alerts);
        } else {
            assert_eq!((accepted, alerts), (0, 0), "a replay stores nothing twice");
            assert_eq!(duplicates, first.0 + first.1);
        }
    }
    // Every event of the capture is distinct.
    assert_eq!(first, (5073, 0, first.2));
    assert_eq!(count(&s, "events", "").await, 5073);
    assert_eq!(count(&s, "events", "cluster=prod").await, 5073);
    assert!(first.2 > 0, "the default rules raise alerts on the capture");
    assert_eq!(count(&s, "alerts", "").await, first.2);
    assert_eq!(count(&s, "alerts", "policy=notable-events").await, first.2);
    // The capture's users and actions are searchable.
    assert!(count(&s, "events", "user=mallory").await > 0);
    assert!(count(&s, "events", "user_prefix=system:serviceaccount:").await > 0);
    assert!(count(&s, "events", "subresource=exec").await > 0);
    assert!(count(&s, "events", "decision=forbid").await > 0);
    assert!(count(&s, "alerts", "user=mallory").await > 0);
    let (_, rules) = call(&s, get(&s.viewer, "/api/v1/alerts/groups?field=rule&limit=100")).await;
    let fired: Vec<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["value"].as_str())
        .collect();
    assert!(fired.len() >= 3, "several distinct rules fire: {fired:?}");
    // Pages chain without repeating.
    let (_, page1) = call(&s, get(&s.viewer, "/api/v1/events?limit=3")).await;
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = call(
        &s,
        get(&s.viewer, &format!("/api/v1/events?limit=3&cursor={cursor}")),
    )
    .await;
    assert_ne!(page1["items"][2]["id"], page2["items"][0]["id"]);
    let id = page2["items"][0]["id"].as_str().unwrap();
    let (status, detail) = call(&s, get(&s.viewer, &format!("/api/v1/events/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(detail["event"]["auditID"].is_string());
}

#[tokio::test]
async fn every_body_shape_and_encoding_is_accepted() {
    let s = server().await;
    let lines = format!(
        "{}\n{}\n",
        event("l1", "get", "pods", ""),
        event("l2", "get", "pods", "")
    );
    let array = format!(
        "[{},{}]",
        event("a1", "get", "pods", ""),
        event("a2", "get", "pods", "")
    );
    let list = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{}]}}"#,
        event("e1", "get", "pods", "")
    );
    let single = event("s1", "get", "pods", "");
    for (body, n) in [(lines, 2), (array, 2), (list, 1), (single, 1)] {
        let (status, ack) = call(&s, intake(&s, "/intake/v1/events", body, None)).await;
        assert_eq!(
            (status, ack["accepted"].as_u64()),
            (StatusCode::OK, Some(n)),
            "{ack}"
        );
    }
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(event("g1", "get", "pods", "").as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let (status, ack) = call(&s, intake(&s, "/intake/v1/events", gz, Some("gzip"))).await;
    assert_eq!((status, ack["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    let zst = zstd::encode_all(event("z1", "get", "pods", "").as_bytes(), 3).unwrap();
    let (status, ack) = call(&s, intake(&s, "/intake/v1/events", zst, Some("zstd"))).await;
    assert_eq!((status, ack["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    let (status, _) = call(&s, intake(&s, "/intake/v1/events", "{}", Some("br"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let x_key = Request::post("/intake/v1/events")
        .header("x-intake-key", &s.intake_key)
        .body(Body::from(event("k1", "get", "pods", "")))
        .unwrap();
    assert_eq!(call(&s, x_key).await.0, StatusCode::OK);
    assert_eq!(count(&s, "events", "").await, 9);
}

/// Sends a body and checks that it is refused with `status`, the error naming `needle`, and
/// that nothing more is stored.
async fn check_refused(s: &Server, body: Vec<u8>, encoding: Option<&str>, status: StatusCode, needle: &str) {
    let before = count(s, "events", "").await;
    let (got, answer) = call(s, intake(s, "/intake/v1/events", body, encoding)).await;
    assert_eq!(got, status, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "{error:?} should contain {needle:?}");
    assert_eq!(
        count(s, "events", "").await,
        before,
        "nothing of a refused batch is stored"
    );
}

#[tokio::test]
async fn bad_and_hostile_batches_are_refused_whole() {
    let s = server().await;
    let good = event("ok", "get", "pods", "");
    let bad_middle = format!("{good}\n{}\nnot json\n", event("ok2", "get", "pods", ""));
    check_refused(
        &s,
        bad_middle.into_bytes(),
        None,
        StatusCode::BAD_REQUEST,
        "line 3",
    )
    .await;
    let list =
        format!(r#"{{"kind":"EventList","items":[{good},{{"auditID":"x","stage":"ResponseComplete"}}]}}"#);
    check_refused(&s, list.into_bytes(), None, StatusCode::BAD_REQUEST, "item 1").await;
    let no_stage = good.replace(r#""stage":"ResponseComplete","#, "");
    check_refused(&s, no_stage.into_bytes(), None, StatusCode::BAD_REQUEST, "stage").await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    check_refused(&s, deep.into_bytes(), None, StatusCode::BAD_REQUEST, "line 1").await;
    let deep_object = format!(
        r#"{{"auditID":"d","x":{}1{}}}"#,
        r#"{"a":"#.repeat(50_000),
        "}".repeat(50_000)
    );
    check_refused(
        &s,
        deep_object.into_bytes(),
        None,
        StatusCode::BAD_REQUEST,
        "line 1",
    )
    .await;
    let mut invalid_utf8 = good.clone().into_bytes();
    invalid_utf8.extend_from_slice(b"\n{\"auditID\":\"\xff\xfe\"}\n");
    check_refused(&s, invalid_utf8, None, StatusCode::BAD_REQUEST, "UTF-8").await;
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..200 {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    };
    check_refused(&s, bomb, Some("gzip"), StatusCode::PAYLOAD_TOO_LARGE, "limit").await;
    check_refused(
        &s,
        vec![b' '; 17 << 20],
        None,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit",
    )
    .await;
    check_refused(
        &s,
        b"\x1f\x8bgarbage".to_vec(),
        Some("gzip"),
        StatusCode::BAD_REQUEST,
        "gzip",
    )
    .await;
    // A huge string inside a valid event is stored like any other value.
    let huge = event(
        "huge",
        "get",
        "pods",
        &format!(r#","annotations":{{"big":"{}"}}"#, "a".repeat(5 << 20)),
    );
    assert_eq!(
        call(&s, intake(&s, "/intake/v1/events", huge, None)).await.0,
        StatusCode::OK
    );
    // The server still serves.
    assert_eq!(
        call(&s, Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s, intake(&s, "/intake/v1/events", good, None)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn credentials_and_roles() {
    let s = server().await;
    let no_key = Request::post("/k8s-audit").body(Body::from("{}")).unwrap();
    assert_eq!(call(&s, no_key).await.0, StatusCode::UNAUTHORIZED);
    let wrong = Request::post("/k8s-audit")
        .header("x-intake-key", "kaudit_ik_nope")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(call(&s, wrong).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&s, Request::get("/api/v1/alerts").body(Body::empty()).unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&s, get(&s.intake_key, "/api/v1/alerts")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&s, get(&s.viewer, "/api/v1/alerts")).await.0, StatusCode::OK);
    let (status, me) = call(&s, get(&s.viewer, "/api/v1/whoami")).await;
    assert_eq!((status, me["role"].as_str()), (StatusCode::OK, Some("viewer")));
    let create = json!({"name": "edge", "cluster": "staging"});
    let (status, body) = call(
        &s,
        send_json("POST", &s.viewer, "/api/v1/intakes", create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, created) = call(&s, send_json("POST", &s.admin, "/api/v1/intakes", create)).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["intake"]["id"].as_str().unwrap().to_owned();
    let with_key = |body: String| {
        Request::post("/k8s-audit")
            .header("x-intake-key", &key)
            .body(Body::from(body))
            .unwrap()
    };
    assert_eq!(
        call(&s, with_key(event("st", "get", "pods", ""))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        count(&s, "events", "cluster=staging").await,
        1,
        "events carry their intake's cluster"
    );
    let (_, intakes) = call(&s, get(&s.viewer, "/api/v1/intakes")).await;
    let edge = intakes
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "edge")
        .unwrap();
    assert_eq!(
        (edge["event_count"].as_u64(), edge["events_last_hour"].as_u64()),
        (Some(1), Some(1))
    );
    let revoke = Request::delete(format!("/api/v1/intakes/{id}"))
        .header("authorization", format!("Bearer {}", s.admin));
    assert_eq!(
        call(&s, revoke.body(Body::empty()).unwrap()).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&s, with_key(event("st2", "get", "pods", ""))).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = call(&s, get(&s.viewer, "/api/v1/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn policies_decide_which_rules_alert() {
    let s = server().await;
    let rule = "- rule: Pod Deleted\n  desc: d\n  condition: ka.verb=delete and ka.target.resource=pods\n  output: \"pod %ka.target.name deleted by %ka.user.name\"\n  priority: WARNING\n  source: k8s_audit\n  tags: [custom]\n";
    let put = |token: &str, name: &str, content: &str| {
        Request::put(format!("/api/v1/rule-files/{name}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(content.to_owned()))
            .unwrap()
    };
    let broken = rule.replace("ka.verb=delete", "ka.verb=delete and (");
    let (status, body) = call(&s, put(&s.admin, "mine", &broken)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("mine:"),
        "the error names the file and position: {body}"
    );
    assert_eq!(
        call(&s, put(&s.viewer, "mine", rule)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&s, put(&s.admin, "mine", rule)).await.0, StatusCode::OK);
    let (_, rules) = call(&s, get(&s.viewer, "/api/v1/rules")).await;
    let mine = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == "mine")
        .unwrap()
        .clone();
    assert_eq!(
        (mine["file"].as_str(), mine["active"].as_bool()),
        (Some("mine"), Some(false))
    );
    // A policy over the custom rule's tag, scoped to DELETE on pods in namespaces.
    let policy = json!({"name": "deletions", "enabled": true, "rules": {"tags": ["custom"]},
        "scope": [{"apiGroups": [""], "apiVersions": ["*"], "operations": ["DELETE"], "resources": ["pods"], "scope": "Namespaced"}]});
    let (status, body) = call(
        &s,
        send_json("PUT", &s.admin, "/api/v1/policies/deletions", policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, ack) = call(
        &s,
        intake(&s, "/intake/v1/events", event("d1", "delete", "pods", ""), None),
    )
    .await;
    assert_eq!(ack["accepted"], 1);
    assert_eq!(
        count(&s, "alerts", "policy=deletions&rule=Pod%20Deleted").await,
        1
    );
    let (_, page) = call(&s, get(&s.viewer, "/api/v1/alerts?policy=deletions")).await;
    assert_eq!(page["items"][0]["output"], "pod x deleted by alice");
    assert_eq!(page["items"][0]["cluster"], "prod");
    // Disabled: no more alerts for new events.
    let (status, _) = call(
        &s,
        send_json(
            "PATCH",
            &s.admin,
            "/api/v1/policies/deletions",
            json!({"enabled": false}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    call(
        &s,
        intake(&s, "/intake/v1/events", event("d2", "delete", "pods", ""), None),
    )
    .await;
    assert_eq!(count(&s, "alerts", "policy=deletions").await, 1);
    // The default policies exist; built-in ones cannot be deleted; bad scopes are refused.
    let (_, policies) = call(&s, get(&s.viewer, "/api/v1/policies")).await;
    let names: Vec<&str> = policies
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"notable-events") && names.contains(&"all-activity"),
        "{names:?}"
    );
    let delete = Request::delete("/api/v1/policies/notable-events")
        .header("authorization", format!("Bearer {}", s.admin));
    assert_eq!(
        call(&s, delete.body(Body::empty()).unwrap()).await.0,
        StatusCode::BAD_REQUEST
    );
    let bad = json!({"name": "x", "enabled": true, "rules": {}, "scope": [{"apiGroups": [], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]});
    let (status, body) = call(&s, send_json("PUT", &s.admin, "/api/v1/policies/x", bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("scope[0].apiGroups"));
    // all-activity on: every new event alerts under it.
    call(
        &s,
        send_json(
            "PATCH",
            &s.admin,
            "/api/v1/policies/all-activity",
            json!({"enabled": true}),
        ),
    )
    .await;
    call(
        &s,
        intake(
            &s,
            "/intake/v1/events",
            event("g9", "get", "configmaps", ""),
            None,
        ),
    )
    .await;
    assert_eq!(count(&s, "alerts", "policy=all-activity").await, 1);
    // Removing the file removes its rule.
    let delete =
        Request::delete("/api/v1/rule-files/mine").header("authorization", format!("Bearer {}", s.admin));
    assert_eq!(
        call(&s, delete.body(Body::empty()).unwrap()).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, rules) = call(&s, get(&s.viewer, "/api/v1/rules")).await;
    assert!(!rules.as_array().unwrap().iter().any(|r| r["file"] == "mine"));
}

/// `GET .../count?limit=N` stops counting past N and says whether the count is exact; without
/// `limit` it is exact; a `limit` that is not a whole number from 1 to 1,000,000 is refused
/// with a message that quotes it.
#[tokio::test]
async fn counts_stop_at_their_limit_and_say_whether_they_are_exact() {
    let s = server().await;
    let activity = send_json(
        "PATCH",
        &s.admin,
        "/api/v1/policies/all-activity",
        json!({"enabled": true}),
    );
    assert_eq!(call(&s, activity).await.0, StatusCode::OK);
    let lines: Vec<String> = (0..5)
        .map(|i| {
            event(
                &format!("c{i}"),
                if i == 0 { "delete" } else { "get" },
                "pods",
                "",
            )
        })
        .collect();
    let (status, ack) = call(&s, intake(&s, "/intake/v1/events", lines.join("\n"), None)).await;
    assert_eq!(
        (status, ack["alerts"].as_u64()),
        (StatusCode::OK, Some(5)),
        "{ack}"
    );

    for (what, query, count, exact) in [
        ("events", "", 5, true),
        ("events", "limit=", 5, true),
        ("events", "limit=6", 5, true),
        ("events", "limit=5", 5, true),
        ("events", "limit=4", 4, false),
        ("events", "limit=1", 1, false),
        ("events", "limit=1000000", 5, true),
        ("events", "verb=delete&limit=1", 1, true),
        ("events", "verb=get&limit=3", 3, false),
        ("events", "verb=patch&limit=3", 0, true),
        ("alerts", "", 5, true),
        ("alerts", "limit=2", 2, false),
        ("alerts", "limit=5", 5, true),
        ("alerts", "cluster=elsewhere&limit=5", 0, true),
    ] {
        let (status, body) = call(&s, get(&s.viewer, &format!("/api/v1/{what}/count?{query}"))).await;
        assert_eq!(status, StatusCode::OK, "{what}?{query}: {body}");
        assert_eq!(body, json!({"count": count, "exact": exact}), "{what}?{query}");
    }
    for what in ["events", "alerts"] {
        for limit in ["0", "-1", "abc", "1.5", "1000001", "99999999999999999999"] {
            let uri = format!("/api/v1/{what}/count?limit={limit}");
            let (status, body) = call(&s, get(&s.viewer, &uri)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(&format!("invalid limit \"{limit}\"")) && error.contains("1 to 1000000"),
                "{uri}: {error:?}"
            );
        }
    }
}
