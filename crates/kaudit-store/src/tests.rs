//! Unit tests of the backend-independent parts: cursors, key hashes, digests, dedupe keys.

use kaudit_model::{Level, Stage};

use crate::{
    Cursor, EventFields, HistogramBucket, KeyHash, PageRequest, StoreError, TimeRange, event_digest,
};

const T0: i64 = 1_714_521_600_000_000_000;

fn fields(cluster: &str, audit_id: &str) -> EventFields {
    EventFields {
        cluster: cluster.to_owned(),
        intake_id: None,
        audit_id: audit_id.to_owned(),
        stage: Stage::ResponseComplete,
        digest: event_digest("{}"),
        time_ns: T0,
        received_ns: T0,
        verb: "get".to_owned(),
        username: "alice".to_owned(),
        groups: Vec::new(),
        impersonated_user: None,
        resource: None,
        subresource: None,
        namespace: None,
        name: None,
        api_group: None,
        source_ip: None,
        user_agent: None,
        response_code: None,
        decision: None,
        request_uri: "/".to_owned(),
        level: Level::Metadata,
    }
}

fn check_cursor(text: &str, want: Option<Cursor>) {
    let got = Cursor::decode(text).ok();
    assert_eq!(got, want, "decoding {text:?}");
    if let Some(cursor) = want {
        assert_eq!(cursor.encode(), text, "encoding {cursor:?}");
    }
}

#[test]
fn cursors_round_trip_and_reject_foreign_text() {
    check_cursor("0000000000000000" /* half */, None);
    check_cursor(
        &format!("{:016x}{:016x}", T0, 42),
        Some(Cursor { time_ns: T0, id: 42 }),
    );
    check_cursor(
        &format!("{:016x}{:016x}", -5i64 as u64, 0),
        Some(Cursor { time_ns: -5, id: 0 }),
    );
    check_cursor(
        "ffffffffffffffffffffffffffffffff",
        Some(Cursor { time_ns: -1, id: -1 }),
    );
    check_cursor("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", None);
    check_cursor("0000000000000000000000000000000g", None);
    check_cursor("+000000000000000000000000000000f", None);
    check_cursor("", None);
    check_cursor("00000000000000000000000000000000é", None);
    assert!(matches!(Cursor::decode("x"), Err(StoreError::InvalidCursor)));
}

#[test]
fn key_hashes_compare_whole_and_print_short() {
    let a = KeyHash::of_secret("kaudit_intake_1");
    let b = KeyHash::of_secret("kaudit_intake_2");
    assert!(a.ct_eq(&KeyHash::of_secret("kaudit_intake_1")));
    assert!(!a.ct_eq(&b));
    let mut last_byte = a;
    last_byte.0[31] ^= 1;
    assert!(!a.ct_eq(&last_byte), "a difference in the last byte counts");
    let shown = format!("{a:?}");
    assert!(shown.starts_with("KeyHash(") && shown.len() < 24, "{shown}");
}

#[test]
fn digest_ignores_insignificant_whitespace_only() {
    let raw = r#"{"auditID":"a","verb":"get","requestURI":"/api/v1/pods?x=a b"}"#;
    let spaced = "{ \"auditID\" : \"a\",\n \"verb\":\"get\", \"requestURI\": \"/api/v1/pods?x=a b\" }";
    let changed = r#"{"auditID":"a","verb":"get","requestURI":"/api/v1/pods?x=a  b"}"#;
    assert_eq!(event_digest(raw), event_digest(spaced));
    assert_ne!(
        event_digest(raw),
        event_digest(changed),
        "whitespace inside strings is significant"
    );
}

#[test]
fn dedupe_key_covers_cluster_audit_id_stage_and_digest() {
    let base = fields("prod", "id-1");
    let key = base.dedupe_key();
    type Change = Box<dyn Fn(&mut EventFields)>;
    let variants: Vec<(&str, Change)> = vec![
        ("cluster", Box::new(|f| f.cluster = "staging".to_owned())),
        ("audit id", Box::new(|f| f.audit_id = "id-2".to_owned())),
        ("stage", Box::new(|f| f.stage = Stage::RequestReceived)),
        ("digest", Box::new(|f| f.digest[0] ^= 1)),
        // Field boundaries are part of the key: moving text between fields changes it.
        (
            "boundary",
            Box::new(|f| {
                f.cluster = "prodi".to_owned();
                f.audit_id = "d-1".to_owned();
            }),
        ),
    ];
    for (what, change) in variants {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(changed.dedupe_key(), key, "{what} must change the dedupe key");
    }
    let mut same = base.clone();
    same.verb = "delete".to_owned();
    same.received_ns += 1;
    assert_eq!(same.dedupe_key(), key, "fields outside the key do not change it");
}

#[test]
fn time_ranges_pages_and_buckets() {
    let range = TimeRange::between(10, 20);
    assert!(range.contains(10) && range.contains(19) && !range.contains(20) && !range.contains(9));
    assert!(TimeRange::default().contains(i64::MIN));
    assert!(matches!(
        PageRequest::first(0).checked_limit(),
        Err(StoreError::InvalidQuery(_))
    ));
    assert_eq!(
        PageRequest::first(u32::MAX).checked_limit().ok(),
        Some(PageRequest::MAX_LIMIT)
    );
    assert_eq!(HistogramBucket::start_of(-1, 10), -10);
    assert_eq!(HistogramBucket::start_of(25, 10), 20);
    assert!(HistogramBucket::check_width(0).is_err());
}
