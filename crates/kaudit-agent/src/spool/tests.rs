//! Tests of the spool: order, acknowledgement, bounds and crash recovery.

use super::*;

fn config(max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes,
        segment_bytes,
        fsync: crate::config::FsyncPolicy::Always,
    }
}

fn record(tag: u64, events: u32, body_len: usize) -> Record {
    Record {
        origin: Origin::Tail { run_id: 7, seq: tag },
        events,
        raw_bytes: body_len as u32 * 4,
        newest_nanos: tag as i64,
        body: bytes::Bytes::from(vec![(tag % 251) as u8; body_len]),
    }
}

/// Takes every pending record in order, acknowledging each, and returns their tags.
fn drain(spool: &mut Spool) -> Vec<u64> {
    let mut tags = Vec::new();
    while let Some((id, record)) = spool.peek().expect("peek") {
        match record.origin {
            Origin::Tail { seq, .. } => tags.push(seq),
            Origin::Webhook => tags.push(u64::MAX),
        }
        spool.commit(id).expect("commit");
    }
    tags
}

/// Appends `tags`, reopens the spool (as after a restart) and checks what remains pending.
fn check_roundtrip(segment_bytes: u64, tags: &[u64], acknowledged: usize, expected_pending: &[u64]) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut spool = Spool::open(dir.path(), config(64 * 1024 * 1024, segment_bytes)).expect("open");
        for &tag in tags {
            spool
                .append(&record(tag, 3, 100), Durability::Sync)
                .expect("append");
        }
        for _ in 0..acknowledged {
            let (id, _) = spool.peek().expect("peek").expect("a record");
            spool.commit(id).expect("commit");
        }
    }
    let mut spool = Spool::open(dir.path(), config(64 * 1024 * 1024, segment_bytes)).expect("reopen");
    assert_eq!(spool.pending_events(), expected_pending.len() as u64 * 3);
    assert_eq!(drain(&mut spool), expected_pending);
    assert!(spool.is_empty());
}

#[test]
fn records_come_back_in_order_across_restarts_and_segments() {
    check_roundtrip(1 << 20, &[1, 2, 3], 0, &[1, 2, 3]);
    check_roundtrip(1 << 20, &[1, 2, 3], 2, &[3]);
    check_roundtrip(1 << 20, &[1, 2, 3], 3, &[]);
    // Small segments: one record each.
    check_roundtrip(150, &[1, 2, 3, 4, 5], 0, &[1, 2, 3, 4, 5]);
    check_roundtrip(150, &[1, 2, 3, 4, 5], 3, &[4, 5]);
}

#[test]
fn the_record_round_trips_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), config(1 << 20, 1 << 20)).expect("open");
    let webhook = Record {
        origin: Origin::Webhook,
        events: 42,
        raw_bytes: 9000,
        newest_nanos: -5,
        body: bytes::Bytes::from_static(b"body"),
    };
    spool.append(&webhook, Durability::Buffered).expect("append");
    let (_, back) = spool.peek().expect("peek").expect("record");
    assert_eq!(back, webhook);
}

#[test]
fn a_torn_last_record_is_cut_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut spool = Spool::open(dir.path(), config(1 << 20, 1 << 20)).expect("open");
        for tag in 1..=3 {
            spool
                .append(&record(tag, 1, 50), Durability::Sync)
                .expect("append");
        }
    }
    let segment = fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .expect("a segment");
    let len = fs::metadata(&segment).expect("stat").len();
    // A crash in the middle of the third append.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open")
        .set_len(len - 20)
        .expect("cut");
    let mut spool = Spool::open(dir.path(), config(1 << 20, 1 << 20)).expect("reopen");
    assert_eq!(drain(&mut spool), vec![1, 2]);
    // Appends go on after recovery.
    spool.append(&record(4, 1, 50), Durability::Sync).expect("append");
    assert_eq!(drain(&mut spool), vec![4]);
}

#[test]
fn a_full_spool_drops_the_oldest_segments_and_counts_their_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Each record is 12 + 33 + 1000 bytes; two per segment; the spool holds about four.
    let mut spool = Spool::open(dir.path(), config(4300, 2100)).expect("open");
    let mut dropped = Dropped::default();
    for tag in 1..=8 {
        let outcome = spool
            .append(&record(tag, 10, 1000), Durability::Buffered)
            .expect("append");
        dropped.events += outcome.events;
        dropped.segments += outcome.segments;
    }
    assert!(spool.bytes() <= 4300, "spool over its bound: {}", spool.bytes());
    let remaining = drain(&mut spool);
    assert_eq!(dropped.events, (8 - remaining.len() as u64) * 10);
    assert_eq!(remaining, ((9 - remaining.len() as u64)..=8).collect::<Vec<_>>());
    assert!(dropped.segments >= 2);
}

#[test]
fn a_commit_of_a_record_dropped_meanwhile_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), config(4300, 2100)).expect("open");
    spool
        .append(&record(1, 1, 1000), Durability::Buffered)
        .expect("append");
    let (stale, _) = spool.peek().expect("peek").expect("record");
    for tag in 2..=8 {
        spool
            .append(&record(tag, 1, 1000), Durability::Buffered)
            .expect("append");
    }
    spool.commit(stale).expect("commit");
    let remaining = drain(&mut spool);
    assert_eq!(remaining.last(), Some(&8));
    assert!(!remaining.contains(&1));
}

#[test]
fn a_record_larger_than_the_spool_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), config(2000, 2000)).expect("open");
    let err = spool
        .append(&record(1, 1, 5000), Durability::Buffered)
        .expect_err("too large");
    assert!(matches!(err, SpoolError::TooLarge { .. }), "{err}");
    assert!(spool.is_empty());
}

#[test]
fn acknowledged_segments_are_removed_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), config(1 << 20, 150)).expect("open");
    for tag in 1..=4 {
        spool
            .append(&record(tag, 1, 100), Durability::Buffered)
            .expect("append");
    }
    drain(&mut spool);
    let segments = fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "seg"))
        .count();
    assert_eq!(segments, 0);
    assert_eq!(spool.bytes(), 0);
}
