//! Applying decisions to raw events: what is dropped, stripped and kept byte for byte.

use kaudit_model::{Level, Stage};

use crate::policy::StageSet;

use super::*;

fn decision(level: Level, omit: &[Stage], managed: bool) -> Decision {
    Decision {
        level,
        omit_stages: omit.iter().copied().collect(),
        omit_managed_fields: managed,
        rule: Some(0),
    }
}

/// Applies `decision` to `raw` and compares with `expected` (`None` = dropped).
fn check(raw: &str, decision: Decision, expected: Option<&str>) {
    assert_eq!(apply_decision(raw, &decision).as_deref(), expected, "{raw}");
}

const CREATE: &str = r#"{"kind":"Event","level":"RequestResponse","stage":"ResponseComplete","verb":"create","requestObject":{"kind":"Pod","metadata":{"name":"p","managedFields":[{"manager":"kubectl"}]},"spec":{"x":1.50}},"responseObject":{"kind":"Pod","metadata":{"name":"p","managedFields":[{"manager":"kubectl"}],"uid":"u"}},"stageTimestamp":"t"}"#;

#[test]
fn levels_strip_bodies() {
    check(CREATE, decision(Level::None, &[], false), None);
    check(
        CREATE,
        decision(Level::Metadata, &[], false),
        Some(
            r#"{"kind":"Event","level":"Metadata","stage":"ResponseComplete","verb":"create","stageTimestamp":"t"}"#,
        ),
    );
    check(
        CREATE,
        decision(Level::Request, &[], false),
        Some(
            r#"{"kind":"Event","level":"Request","stage":"ResponseComplete","verb":"create","requestObject":{"kind":"Pod","metadata":{"name":"p","managedFields":[{"manager":"kubectl"}]},"spec":{"x":1.50}},"stageTimestamp":"t"}"#,
        ),
    );
    check(CREATE, decision(Level::RequestResponse, &[], false), Some(CREATE));
}

#[test]
fn omitted_stages_drop_the_event() {
    check(
        CREATE,
        decision(Level::RequestResponse, &[Stage::ResponseComplete], false),
        None,
    );
    assert!(
        apply_decision(
            CREATE,
            &decision(Level::Metadata, &[Stage::RequestReceived], false)
        )
        .is_some()
    );
}

#[test]
fn managed_fields_are_stripped_from_objects_lists_and_tables() {
    check(
        CREATE,
        decision(Level::RequestResponse, &[], true),
        Some(
            r#"{"kind":"Event","level":"RequestResponse","stage":"ResponseComplete","verb":"create","requestObject":{"kind":"Pod","metadata":{"name":"p"},"spec":{"x":1.50}},"responseObject":{"kind":"Pod","metadata":{"name":"p","uid":"u"}},"stageTimestamp":"t"}"#,
        ),
    );
    let list = r#"{"level":"RequestResponse","verb":"list","responseObject":{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"managedFields":[],"name":"a"}},{"metadata":{"name":"b"}},{"metadata":{"name":"c" , "managedFields" : [ ] }}]}}"#;
    check(
        list,
        decision(Level::RequestResponse, &[], true),
        Some(
            r#"{"level":"RequestResponse","verb":"list","responseObject":{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}},{"metadata":{"name":"c"  }}]}}"#,
        ),
    );
    let table = r#"{"level":"RequestResponse","verb":"list","responseObject":{"kind":"Table","rows":[{"cells":["a"],"object":{"kind":"PartialObjectMetadata","metadata":{"name":"a","managedFields":[{"m":1}]}}}]}}"#;
    check(
        table,
        decision(Level::RequestResponse, &[], true),
        Some(
            r#"{"level":"RequestResponse","verb":"list","responseObject":{"kind":"Table","rows":[{"cells":["a"],"object":{"kind":"PartialObjectMetadata","metadata":{"name":"a"}}}]}}"#,
        ),
    );
}

#[test]
fn patch_documents_keep_managed_fields() {
    let patch = r#"{"level":"Request","verb":"patch","requestObject":{"metadata":{"managedFields":[{"m":1}]}},"responseObject":{"metadata":{"managedFields":[],"name":"x"}}}"#;
    check(
        patch,
        decision(Level::RequestResponse, &[], true),
        Some(
            r#"{"level":"RequestResponse","verb":"patch","requestObject":{"metadata":{"managedFields":[{"m":1}]}},"responseObject":{"metadata":{"name":"x"}}}"#,
        ),
    );
}

#[test]
fn everything_else_is_kept_byte_for_byte() {
    let raw = "{ \"z\" : 1e3 , \"level\" : \"Request\", \"requestObject\" : {\"a\":\"\\u0026\"} , \"key\\\"q\":[1,2.0] }";
    check(raw, decision(Level::Request, &[], false), Some(raw));
    check(
        raw,
        decision(Level::Metadata, &[], false),
        Some("{ \"z\" : 1e3 , \"level\" : \"Metadata\" , \"key\\\"q\":[1,2.0] }"),
    );
    // The first member removed takes the following comma.
    check(
        r#"{"requestObject":{},"level":"Request"}"#,
        decision(Level::Metadata, &[], false),
        Some(r#"{"level":"Metadata"}"#),
    );
    // An event without `level` gets one.
    check(
        r#"{"stage":"Panic"}"#,
        decision(Level::Metadata, &[], false),
        Some(r#"{"level":"Metadata","stage":"Panic"}"#),
    );
    // Not an object: kept as is.
    check("[1]", decision(Level::Metadata, &[], false), Some("[1]"));
}

#[test]
fn stage_sets() {
    let set: StageSet = [Stage::Panic, Stage::RequestReceived].into_iter().collect();
    assert_eq!(set.to_string(), "[RequestReceived, Panic]");
    assert!(set.contains(Stage::Panic) && !set.contains(Stage::ResponseComplete));
}
