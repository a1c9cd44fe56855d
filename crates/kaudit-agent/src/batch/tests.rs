//! Tests of batch cutting and of the timestamp probe.

use super::*;

fn config(max_events: usize, max_bytes: usize) -> BatchConfig {
    BatchConfig {
        max_events,
        max_bytes,
        flush_interval_ms: 60_000,
        gzip_level: 1,
    }
}

/// Pushes `lines` and returns the number of events in each batch cut when full.
fn check_cuts(max_events: usize, max_bytes: usize, lines: &[&str], expected: &[u32]) {
    let mut builder = BatchBuilder::new(&config(max_events, max_bytes));
    let mut cuts = Vec::new();
    for line in lines {
        builder.push(line.as_bytes());
        if builder.is_full() {
            cuts.push(builder.take().expect("batch").events);
        }
    }
    if let Some(rest) = builder.take() {
        cuts.push(rest.events);
    }
    assert_eq!(cuts, expected);
}

#[test]
fn batches_are_cut_by_count_and_by_size() {
    check_cuts(2, 1 << 20, &["{}", "{}", "{}", "{}", "{}"], &[2, 2, 1]);
    check_cuts(100, 10, &["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"], &[2, 1]);
    check_cuts(100, 1 << 20, &[], &[]);
}

#[test]
fn the_body_is_the_lines_as_given_and_gzip_round_trips() {
    let mut builder = BatchBuilder::new(&config(10, 1 << 20));
    builder.push(br#"{"auditID":"a","stageTimestamp":"2024-05-01T10:11:12.123456Z"}"#);
    builder.push(br#"{"auditID":"b","stageTimestamp":"2024-05-01T10:11:13.000001Z"}"#);
    let batch = builder.take().expect("batch");
    assert_eq!(
        batch.body,
        b"{\"auditID\":\"a\",\"stageTimestamp\":\"2024-05-01T10:11:12.123456Z\"}\n\
{\"auditID\":\"b\",\"stageTimestamp\":\"2024-05-01T10:11:13.000001Z\"}\n"
    );
    assert_eq!(
        batch.newest_nanos,
        kaudit_model::parse_rfc3339_nanos("2024-05-01T10:11:13.000001Z").expect("time")
    );
    let compressed = gzip(&batch.body, 1);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut back)
        .expect("gunzip");
    assert_eq!(back, batch.body);
}

#[test]
fn stage_timestamp_probe_tolerates_odd_lines() {
    let cases: [(&[u8], Option<&str>); 4] = [
        (
            br#"{"stageTimestamp":"2024-05-01T10:11:12.5Z"}"#,
            Some("2024-05-01T10:11:12.5Z"),
        ),
        (br#"{"stageTimestamp":null}"#, None),
        (br#"{"stageTimestamp":"not a time"}"#, None),
        (b"garbage", None),
    ];
    for (line, expected) in cases {
        let expected = expected.map(|text| kaudit_model::parse_rfc3339_nanos(text).expect("time"));
        assert_eq!(
            stage_timestamp_nanos(line),
            expected,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}
