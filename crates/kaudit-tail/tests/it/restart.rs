//! Restarts from the state directory: delivery resumes exactly after the last line
//! acknowledged before the last checkpoint, whatever happened to the files meanwhile.

use kaudit_tail::{LossCause, LostBytes, StartAt, TailError, Tailer};

use crate::support::{AckMode, Fixture, drain, expected, lines};

/// Writes 10 lines, delivers them in batches of 4 and acknowledges the first `acked`
/// (checkpointing), drops the tailer, optionally rotates (with gzip) and writes 5 more,
/// reopens: the second tailer must deliver exactly lines `acked..15`.
fn check_resume(acked: usize, rotate: bool, gzip: bool) {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..10));
    let mut tailer = fixture.open();
    let mut delivered = Vec::new();
    while delivered.len() < 10 {
        let batch = tailer.poll(4, usize::MAX);
        delivered.extend(batch.lines().map(|line| line.position));
        assert!(!batch.is_empty(), "lines were written");
    }
    if acked > 0 {
        tailer.ack(delivered[acked - 1]);
    }
    tailer.checkpoint().expect("checkpoint");
    drop(tailer);
    if rotate {
        let backup = fixture.rotate("2024-05-01T10-11-12.345");
        if gzip {
            fixture.gzip(&backup);
        }
    }
    fixture.append(&lines("a", 10..15));
    let mut tailer = fixture.open();
    let drained = drain(&mut tailer, 3, AckMode::EachBatch);
    assert_eq!(
        drained.lines,
        expected("a", acked..15),
        "acked {acked} rotate {rotate} gzip {gzip}"
    );
    assert_eq!(drained.notable_events(), Vec::<String>::new());
}

#[test]
fn restart_resumes_exactly_after_the_last_checkpointed_ack() {
    for acked in [0, 1, 4, 7, 10] {
        for (rotate, gzip) in [(false, false), (true, false), (true, true)] {
            check_resume(acked, rotate, gzip);
        }
    }
}

#[test]
fn acks_without_checkpoint_are_not_durable() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..5));
    let mut tailer = fixture.open();
    let batch = tailer.poll(100, usize::MAX);
    tailer.ack_batch(&batch);
    drop(tailer); // A crash: no checkpoint after the ack.
    let mut tailer = fixture.open();
    assert_eq!(
        drain(&mut tailer, 100, AckMode::EachBatch).lines,
        expected("a", 0..5)
    );
}

#[test]
fn catch_up_reads_backups_that_appeared_meanwhile_in_rotation_order() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..3));
    let mut tailer = fixture.open();
    drain(&mut tailer, 2, AckMode::EachBatch);
    drop(tailer);
    // While no tailer runs: three rotations, the older two compressed.
    fixture.append(&lines("a", 3..5));
    let first = fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..4));
    let second = fixture.rotate("2024-05-01T10-00-01.000");
    fixture.append(&lines("c", 0..4));
    fixture.rotate("2024-05-01T10-00-02.000");
    fixture.append(&lines("d", 0..2));
    fixture.gzip(&first);
    fixture.gzip(&second);
    let mut tailer = fixture.open();
    let drained = drain(&mut tailer, 3, AckMode::EachBatch);
    let mut want = expected("a", 3..5);
    want.extend(expected("b", 0..4));
    want.extend(expected("c", 0..4));
    want.extend(expected("d", 0..2));
    assert_eq!(drained.lines, want);
    assert_eq!(drained.notable_events(), Vec::<String>::new());
}

#[test]
fn a_backup_pruned_while_stopped_is_reported_lost_exactly() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..4));
    let mut tailer = fixture.open();
    let batch = tailer.poll(1, usize::MAX);
    tailer.ack_batch(&batch);
    // Rotation seen while running: the backup's final size is known.
    let backup = fixture.rotate("2024-05-01T10-00-00.000");
    let _ = tailer.poll(0, 0);
    tailer.checkpoint().expect("checkpoint");
    drop(tailer);
    std::fs::remove_file(&backup).expect("prune backup");
    fixture.append(&lines("b", 0..2));
    let mut tailer = fixture.open();
    let drained = drain(&mut tailer, 10, AckMode::EachBatch);
    assert_eq!(drained.lines, expected("b", 0..2));
    let losses = drained.losses();
    assert_eq!(losses.len(), 1, "{losses:?}");
    // "a-0\n" was acknowledged; "a-1\n".."a-3\n" (12 bytes) are lost.
    assert_eq!(
        (losses[0].offset, losses[0].lost, losses[0].cause),
        (4, LostBytes::Exactly(12), LossCause::Deleted)
    );
}

#[test]
fn start_at_end_skips_existing_content_only_on_first_start() {
    let fixture = Fixture::new();
    fixture.append(&lines("old", 0..2));
    fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("live", 0..2));
    fixture.append("partial");
    let mut config = fixture.config();
    config.start_at = StartAt::End;
    let mut tailer = Tailer::open(config.clone()).expect("open tailer");
    fixture.append(" line\n");
    assert_eq!(drain(&mut tailer, 10, AckMode::EachBatch).lines, ["partial line"]);
    fixture.append(&lines("new", 0..2));
    drop(tailer);
    // Not a first start any more: the new lines are read.
    let mut tailer = Tailer::open(config).expect("reopen tailer");
    assert_eq!(
        drain(&mut tailer, 10, AckMode::EachBatch).lines,
        expected("new", 0..2)
    );
}

#[test]
fn a_second_tailer_on_the_same_state_dir_is_refused() {
    let fixture = Fixture::new();
    let _first = fixture.open();
    match Tailer::open(fixture.config()) {
        Err(TailError::StateDirLocked { path }) => assert_eq!(path, fixture.state),
        other => panic!("expected a lock error, got {other:?}"),
    }
}

#[test]
fn checkpoints_of_deleted_files_are_forgotten() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.forget_after = std::time::Duration::ZERO;
    fixture.append(&lines("a", 0..2));
    let mut tailer = Tailer::open(config.clone()).expect("open tailer");
    drain(&mut tailer, 10, AckMode::EachBatch);
    let backup = fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..2));
    drain(&mut tailer, 10, AckMode::EachBatch);
    assert_eq!(tailer.files().len(), 2);
    std::fs::remove_file(backup).expect("prune backup");
    let drained = drain(&mut tailer, 10, AckMode::EachBatch);
    assert_eq!(
        drained.notable_events(),
        Vec::<String>::new(),
        "the backup was read to its end"
    );
    tailer.checkpoint().expect("checkpoint");
    let files = tailer.files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, fixture.live());
    let stored = std::fs::read_to_string(fixture.state.join("checkpoints.json")).expect("checkpoint file");
    assert_eq!(stored.matches("\"fingerprint\"").count(), 1, "{stored}");
}
