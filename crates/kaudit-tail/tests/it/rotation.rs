//! Rotation like lumberjack (rename and create, compression, pruning), copytruncate and
//! globs, while the tailer runs.

use std::fs::{self, OpenOptions};

use kaudit_tail::{LossCause, LostBytes, TailConfig, Tailer};

use crate::support::{AckMode, Fixture, append, drain, expected, gz_path, gzip_to, lines};

/// Drains and returns the lines and the notable events.
fn drain_all(tailer: &mut Tailer) -> (Vec<String>, Vec<String>) {
    let drained = drain(tailer, 3, AckMode::EachBatch);
    (drained.lines.clone(), drained.notable_events())
}

#[test]
fn rotation_reads_the_old_file_to_its_end_before_the_new_one() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..3));
    let mut tailer = fixture.open();
    assert_eq!(drain_all(&mut tailer).0, expected("a", 0..3));
    // Written after the last poll, then rotated away before the next one.
    fixture.append(&lines("a", 3..5));
    fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..2));
    let backup = fixture.rotate("2024-05-01T10-00-01.000");
    fixture.append(&lines("c", 0..2));
    fixture.gzip(&backup);
    let mut want = expected("a", 3..5);
    want.extend(expected("b", 0..2));
    want.extend(expected("c", 0..2));
    assert_eq!(drain_all(&mut tailer), (want, vec![]));
}

#[test]
fn files_seen_once_are_read_completely_even_if_pruned_afterwards() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..4));
    let first = fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..4));
    let second = fixture.rotate("2024-05-01T10-00-01.000");
    fixture.append(&lines("c", 0..4));
    let mut tailer = fixture.open();
    let batch = tailer.poll(1, usize::MAX);
    assert_eq!(batch.len(), 1);
    tailer.ack_batch(&batch);
    fs::remove_file(first).expect("prune first backup");
    fixture.gzip(&second);
    fs::remove_file(gz_path(&second)).expect("prune second backup");
    let mut want = expected("a", 1..4);
    want.extend(expected("b", 0..4));
    want.extend(expected("c", 0..4));
    assert_eq!(drain_all(&mut tailer), (want, vec![]));
}

#[test]
fn a_partial_gz_beside_its_plain_twin_is_ignored() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..3));
    let mut tailer = fixture.open();
    drain_all(&mut tailer);
    drop(tailer);
    fixture.append(&lines("a", 3..6));
    let backup = fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..2));
    // Compression in progress: a cut `.gz` next to the complete plain file.
    let gz = gzip_to(&backup, &gz_path(&backup));
    let whole = fs::read(&gz).expect("read gz");
    fs::write(&gz, &whole[..whole.len() / 2]).expect("cut gz");
    let mut tailer = fixture.open();
    let mut want = expected("a", 3..6);
    want.extend(expected("b", 0..2));
    assert_eq!(drain_all(&mut tailer), (want, vec![]));
    // Compression completes: same content, nothing new.
    fs::write(&gz, &whole).expect("complete gz");
    fs::remove_file(&backup).expect("remove plain twin");
    assert_eq!(drain_all(&mut tailer), (vec![], vec![]));
    drop(tailer);
    let mut tailer = fixture.open();
    assert_eq!(drain_all(&mut tailer), (vec![], vec![]));
}

#[test]
fn a_corrupt_gz_is_read_as_far_as_it_decodes_then_reported() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..1));
    let mut tailer = fixture.open();
    drain_all(&mut tailer);
    drop(tailer);
    fixture.append(&lines("a", 1..5000));
    let backup = fixture.rotate("2024-05-01T10-00-00.000");
    let gz = fixture.gzip(&backup);
    let whole = fs::read(&gz).expect("read gz");
    fs::write(&gz, &whole[..whole.len() / 2]).expect("cut gz");
    let mut tailer = fixture.open();
    let drained = drain(&mut tailer, 100, AckMode::EachBatch);
    let count = drained.lines.len();
    assert!(count > 0 && count < 4999, "{count} lines decoded");
    assert_eq!(drained.lines, expected("a", 1..1 + count));
    let losses = drained.losses();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert_eq!(losses[0].cause, LossCause::Unreadable);
    assert_eq!(losses[0].offset, drained.positions[count - 1].end());
}

#[test]
fn copytruncate_restarts_at_zero_and_reports_possible_loss() {
    for new_lines in [2, 10] {
        let fixture = Fixture::new();
        fixture.append(&lines("a", 0..3));
        let mut tailer = fixture.open();
        assert_eq!(drain_all(&mut tailer).0, expected("a", 0..3));
        fixture.append(&lines("a", 3..4));
        OpenOptions::new()
            .write(true)
            .open(fixture.live())
            .expect("open")
            .set_len(0)
            .expect("truncate");
        fixture.append(&lines("b", 0..new_lines));
        let (got, events) = drain_all(&mut tailer);
        assert_eq!(got, expected("b", 0..new_lines), "{new_lines} new lines");
        // 12 bytes of "a-0\n".."a-2\n" were read; what followed is unknown.
        assert_eq!(
            events,
            [format!("loss Truncated at 12 {:?}", LostBytes::AtLeast(0))]
        );
    }
}

#[test]
fn an_unterminated_last_line_of_a_rotated_file_is_reported() {
    let fixture = Fixture::new();
    fixture.append("a\nfrag");
    let mut tailer = fixture.open();
    assert_eq!(drain_all(&mut tailer).0, ["a"]);
    fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append("b\n");
    assert_eq!(
        drain_all(&mut tailer),
        (vec!["b".to_owned()], vec!["unterminated at 2 (4)".to_owned()])
    );
}

#[test]
fn a_glob_follows_each_family_in_its_own_order() {
    let fixture = Fixture::new();
    let other = fixture.logs.join("other.log");
    fixture.append(&lines("a", 0..2));
    fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..2));
    append(&other, &lines("x", 0..3));
    append(&fixture.logs.join("ignored.txt"), &lines("i", 0..3));
    let mut config = TailConfig::new(
        vec![fixture.logs.join("*.log").display().to_string()],
        fixture.state.clone(),
    );
    config.scan_interval = std::time::Duration::ZERO;
    let mut tailer = Tailer::open(config).expect("open tailer");
    let (got, events) = drain_all(&mut tailer);
    assert_eq!(events, Vec::<String>::new());
    let audit: Vec<String> = got
        .iter()
        .filter(|line| !line.starts_with('x'))
        .cloned()
        .collect();
    let mut want = expected("a", 0..2);
    want.extend(expected("b", 0..2));
    assert_eq!(audit, want);
    let others: Vec<String> = got.iter().filter(|line| line.starts_with('x')).cloned().collect();
    assert_eq!(others, expected("x", 0..3));
    // A file matching the glob later is picked up from its beginning.
    append(&fixture.logs.join("late.log"), &lines("late", 0..2));
    assert_eq!(drain_all(&mut tailer).0, expected("late", 0..2));
}

#[test]
fn a_file_truncated_before_its_turn_is_noticed_and_its_new_content_read() {
    let fixture = Fixture::new();
    fixture.append(&lines("a", 0..3));
    fixture.rotate("2024-05-01T10-00-00.000");
    fixture.append(&lines("b", 0..2));
    let mut tailer = fixture.open();
    // The backup is read first; the live file waits its turn, identified but unread.
    let batch = tailer.poll(1, usize::MAX);
    assert_eq!(batch.len(), 1);
    tailer.ack_batch(&batch);
    OpenOptions::new()
        .write(true)
        .open(fixture.live())
        .expect("open")
        .set_len(0)
        .expect("truncate");
    fixture.append(&lines("c", 0..2));
    let (got, events) = drain_all(&mut tailer);
    let mut want = expected("a", 1..3);
    want.extend(expected("c", 0..2));
    assert_eq!(got, want);
    assert_eq!(
        events,
        [format!("loss Truncated at 0 {:?}", LostBytes::AtLeast(8))]
    );
}
