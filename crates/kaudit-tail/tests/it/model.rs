//! Model-based property test: random sequences of writes shaped like the apiserver's
//! (whole and partial lines, rename-and-create rotation, gzip of backups with a partial
//! `.gz` beside its twin, pruning, copytruncate) interleaved with polls, acks, checkpoints,
//! crashes and clean restarts, checked against a model of what was written.
//!
//! Checked on every delivered line: it is a whole line that was written, with the file's
//! fingerprint and offset; per file and per tailer lifetime, lines come in order without
//! gaps, and the first one after a (re)start is exactly the first line not acknowledged
//! before the last checkpoint (exactly once for what was acknowledged and checkpointed,
//! at-least-once otherwise); within a family older files come before newer ones.
//! Checked on every loss report: it concerns a file really deleted or truncated, at a line
//! boundary, with an amount that does not exceed (or, when exact, equals) what was left.
//! Checked at the end: every line of every intact file was acknowledged; a damaged file
//! with lines never acknowledged was reported whenever the tailer could know about it.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};

use kaudit_tail::{Fingerprint, Loss, LostBytes, Position, TailEvent, Tailer};
use proptest::prelude::*;

use crate::support::{Fixture, append, gz_path, gzip_to};

const FINGERPRINT_MAX_BYTES: usize = 1024;

#[derive(Clone, Debug)]
enum Op {
    /// Write `lines` whole lines (completing a pending partial one first), then optionally
    /// the first half of one more.
    Append { lines: u8, partial: bool },
    /// Rename the live file to a timestamped backup and create a new one.
    Rotate,
    /// Compress the oldest uncompressed backup: completely (then delete the plain file), or
    /// leave a cut `.gz` beside it as an interrupted compression would.
    Compress { partial: bool },
    /// Delete the oldest backup (maxbackup).
    Prune,
    /// Truncate the live file in place.
    CopyTruncate,
    /// Poll up to `max_lines` lines.
    Poll { max_lines: u8 },
    /// Acknowledge the oldest `count` delivered lines.
    Ack { count: u8 },
    /// Persist the checkpoint.
    Checkpoint,
    /// Drop the tailer without a checkpoint and open a new one.
    Crash,
    /// Checkpoint, drop and reopen.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, any::<bool>()).prop_map(|(lines, partial)| Op::Append { lines, partial }),
        2 => Just(Op::Rotate),
        1 => any::<bool>().prop_map(|partial| Op::Compress { partial }),
        1 => Just(Op::Prune),
        1 => Just(Op::CopyTruncate),
        5 => (1u8..20).prop_map(|max_lines| Op::Poll { max_lines }),
        3 => (1u8..30).prop_map(|count| Op::Ack { count }),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn tailer_matches_the_model(
        ops in prop::collection::vec(op(), 1..80),
        read_chunk_bytes in prop::sample::select(vec![7usize, 64, 1 << 20]),
    ) {
        let mut harness = Harness::new(read_chunk_bytes);
        for op in &ops {
            harness.apply(op);
        }
        harness.finish();
    }
}

/// Where a model file is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Live,
    Backup { stamp: String, plain: bool, gz: bool },
    Gone,
}

/// One file the writer created (a new inode, or new content after a truncation).
#[derive(Debug)]
struct ModelFile {
    /// Complete lines, without newline.
    lines: Vec<String>,
    /// Offset of each complete line.
    offsets: Vec<u64>,
    /// Bytes of complete lines.
    complete_bytes: u64,
    /// A line whose first `written` bytes are on disk.
    partial: Option<(String, usize)>,
    place: Place,
    /// The current tailer has seen the file (and holds it open until read).
    held: bool,
    /// The current tailer knows the file's fingerprint.
    known: bool,
    /// The last checkpoint holds the file.
    durably_known: bool,
    /// Deleted or truncated.
    damaged: bool,
    /// Unread lines of the damaged file must be reported.
    loss_required: bool,
    /// Lines acknowledged (a prefix), in the current tailer's view.
    acked: usize,
    /// Most lines ever acknowledged: those shipped.
    shipped: usize,
    /// Lines acknowledged at the last checkpoint.
    durable: usize,
    /// Next line expected from the current tailer, once it delivered one.
    next_expected: Option<usize>,
}

impl ModelFile {
    fn new(place: Place) -> ModelFile {
        ModelFile {
            lines: Vec::new(),
            offsets: Vec::new(),
            complete_bytes: 0,
            partial: None,
            place,
            held: false,
            known: false,
            durably_known: false,
            damaged: false,
            loss_required: false,
            acked: 0,
            shipped: 0,
            durable: 0,
            next_expected: None,
        }
    }

    fn fingerprint(&self) -> Option<Fingerprint> {
        let first = format!("{}\n", self.lines.first()?);
        Fingerprint::of_file_start(first.as_bytes(), FINGERPRINT_MAX_BYTES)
    }
}

struct Harness {
    fixture: Fixture,
    read_chunk_bytes: usize,
    tailer: Option<Tailer>,
    files: Vec<ModelFile>,
    live: usize,
    /// Backups in rotation order.
    backups: Vec<usize>,
    stamps: u32,
    unacked: VecDeque<(Position, usize, usize)>,
    /// Newest file delivered from by the current tailer.
    newest_delivered: usize,
    losses: Vec<Loss>,
}

impl Harness {
    fn new(read_chunk_bytes: usize) -> Harness {
        let fixture = Fixture::new();
        File::create(fixture.live()).expect("create live file");
        let mut harness = Harness {
            fixture,
            read_chunk_bytes,
            tailer: None,
            files: vec![ModelFile::new(Place::Live)],
            live: 0,
            backups: Vec::new(),
            stamps: 0,
            unacked: VecDeque::new(),
            newest_delivered: 0,
            losses: Vec::new(),
        };
        harness.start();
        harness
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append { lines, partial } => self.append(lines, partial),
            Op::Rotate => self.rotate(),
            Op::Compress { partial } => self.compress(partial),
            Op::Prune => self.prune(),
            Op::CopyTruncate => self.copytruncate(),
            Op::Poll { max_lines } => {
                self.poll(usize::from(max_lines));
            }
            Op::Ack { count } => self.ack(usize::from(count)),
            Op::Checkpoint => self.checkpoint(),
            Op::Crash => self.crash(),
            Op::Restart => {
                self.checkpoint();
                self.crash();
            }
        }
    }

    // ----- the writer ------------------------------------------------------------------

    fn line_text(id: usize, n: usize) -> String {
        format!("f{id:03}-{n:05}-{}", "x".repeat((id * 7 + n * 13) % 29))
    }

    fn append(&mut self, lines: u8, partial: bool) {
        self.complete_partial();
        let id = self.live;
        let mut text = String::new();
        for _ in 0..lines {
            let line = Self::line_text(id, self.files[id].lines.len());
            text.push_str(&line);
            text.push('\n');
            self.push_line(id, line);
        }
        if partial {
            let line = Self::line_text(id, self.files[id].lines.len());
            let written = line.len().div_ceil(2);
            text.push_str(&line[..written]);
            self.files[id].partial = Some((line, written));
        }
        append(&self.fixture.live(), &text);
    }

    fn complete_partial(&mut self) {
        let id = self.live;
        if let Some((line, written)) = self.files[id].partial.take() {
            append(&self.fixture.live(), &format!("{}\n", &line[written..]));
            self.push_line(id, line);
        }
    }

    fn push_line(&mut self, id: usize, line: String) {
        let file = &mut self.files[id];
        file.offsets.push(file.complete_bytes);
        file.complete_bytes += line.len() as u64 + 1;
        file.lines.push(line);
    }

    fn rotate(&mut self) {
        self.complete_partial();
        self.stamps += 1;
        let stamp = format!(
            "2024-05-01T10-{:02}-{:02}.000",
            self.stamps / 60,
            self.stamps % 60
        );
        fs::rename(self.fixture.live(), self.fixture.backup(&stamp)).expect("rename live file");
        File::create(self.fixture.live()).expect("create live file");
        let old = self.live;
        self.files[old].place = Place::Backup {
            stamp,
            plain: true,
            gz: false,
        };
        self.backups.push(old);
        self.files.push(ModelFile::new(Place::Live));
        self.live = self.files.len() - 1;
    }

    fn compress(&mut self, partial: bool) {
        let Some(&id) = self
            .backups
            .iter()
            .find(|&&id| matches!(self.files[id].place, Place::Backup { plain: true, .. }))
        else {
            return;
        };
        let Place::Backup { stamp, .. } = self.files[id].place.clone() else {
            return;
        };
        let plain = self.fixture.backup(&stamp);
        let gz = gzip_to(&plain, &gz_path(&plain));
        if partial {
            let whole = fs::read(&gz).expect("read gz");
            fs::write(&gz, &whole[..whole.len() / 2]).expect("cut gz");
        } else {
            fs::remove_file(&plain).expect("remove compressed plain file");
            self.files[id].place = Place::Backup {
                stamp,
                plain: false,
                gz: true,
            };
        }
    }

    fn prune(&mut self) {
        if self.backups.is_empty() {
            return;
        }
        let id = self.backups.remove(0);
        let Place::Backup { stamp, .. } = self.files[id].place.clone() else {
            return;
        };
        let plain = self.fixture.backup(&stamp);
        for path in [gz_path(&plain), plain] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("prune {}: {err}", path.display()),
            }
        }
        let file = &mut self.files[id];
        file.place = Place::Gone;
        file.damaged = true;
        if !file.held {
            // Unreachable now: the tailer can only tell if it knew the file.
            file.loss_required = file.known;
        }
    }

    fn copytruncate(&mut self) {
        self.complete_partial();
        OpenOptions::new()
            .write(true)
            .open(self.fixture.live())
            .and_then(|file| file.set_len(0))
            .expect("truncate live file");
        let old = self.live;
        let held = self.files[old].held;
        let file = &mut self.files[old];
        file.place = Place::Gone;
        file.damaged = true;
        file.loss_required = file.known;
        let mut new = ModelFile::new(Place::Live);
        // Same inode: an open descriptor now reads the new content.
        new.held = held;
        self.files.push(new);
        self.live = self.files.len() - 1;
    }

    // ----- the reader ------------------------------------------------------------------

    fn config(&self) -> kaudit_tail::TailConfig {
        let mut config = self.fixture.config();
        config.read_chunk_bytes = self.read_chunk_bytes;
        config.fingerprint_max_bytes = FINGERPRINT_MAX_BYTES;
        config
    }

    fn start(&mut self) {
        self.tailer = Some(Tailer::open(self.config()).expect("open tailer"));
        self.newest_delivered = 0;
        self.discovered();
    }

    /// A scan saw every file on disk: the tailer holds them and knows those with a line.
    fn discovered(&mut self) {
        for file in &mut self.files {
            if file.place != Place::Gone {
                file.held = true;
                if !file.lines.is_empty() {
                    file.known = true;
                }
            }
        }
    }

    fn tailer(&mut self) -> &mut Tailer {
        self.tailer.as_mut().expect("a tailer is open between operations")
    }

    /// Polls once; returns the number of lines delivered.
    fn poll(&mut self, max_lines: usize) -> usize {
        let mut batch = self.tailer().poll(max_lines, usize::MAX);
        self.discovered();
        for event in batch.take_events() {
            match event {
                TailEvent::Loss(loss) => self.check_loss(loss),
                TailEvent::Opened { .. } | TailEvent::Finished { .. } => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
        for line in batch.lines() {
            self.check_line(line.bytes, line.position);
        }
        batch.len()
    }

    fn check_line(&mut self, bytes: &[u8], position: Position) {
        let text = std::str::from_utf8(bytes).expect("lines written are UTF-8");
        let parse = || -> Option<(usize, usize)> {
            let mut parts = text.split('-');
            let id = parts.next()?.strip_prefix('f')?.parse().ok()?;
            let n = parts.next()?.parse().ok()?;
            Some((id, n))
        };
        let (id, n) = parse().unwrap_or_else(|| panic!("delivered a line never written whole: {text:?}"));
        let file = &mut self.files[id];
        assert_eq!(
            file.lines.get(n).map(String::as_str),
            Some(text),
            "line {n} of file {id}"
        );
        assert_eq!(
            Some(position.fingerprint()),
            file.fingerprint(),
            "fingerprint of file {id}"
        );
        assert_eq!(
            position.offset(),
            file.offsets[n],
            "offset of line {n} of file {id}"
        );
        let expected = file.next_expected.unwrap_or(file.durable);
        assert_eq!(n, expected, "file {id}: expected line {expected}, got {n}");
        file.next_expected = Some(n + 1);
        assert!(
            id >= self.newest_delivered,
            "file {id} delivered after newer file {}",
            self.newest_delivered
        );
        self.newest_delivered = id;
        self.unacked.push_back((position, id, n));
    }

    fn check_loss(&mut self, loss: Loss) {
        let Some(id) = self
            .files
            .iter()
            .position(|file| file.fingerprint() == Some(loss.fingerprint))
        else {
            panic!("loss reported for an unknown file: {loss:?}");
        };
        let file = &self.files[id];
        assert!(file.damaged, "loss reported for intact file {id}: {loss:?}");
        assert!(
            loss.offset == file.complete_bytes || file.offsets.contains(&loss.offset),
            "loss of file {id} not at a line boundary: {loss:?}"
        );
        let (LostBytes::Exactly(bytes) | LostBytes::AtLeast(bytes)) = loss.lost;
        let end = loss.offset + bytes;
        assert!(
            end <= file.complete_bytes,
            "loss of file {id} overstated: {loss:?}"
        );
        if let LostBytes::Exactly(_) = loss.lost {
            assert!(
                end == file.complete_bytes || file.offsets.contains(&end),
                "exact loss of file {id} does not end at a line boundary: {loss:?}"
            );
        }
        self.losses.push(loss);
    }

    fn ack(&mut self, count: usize) {
        let mut last = None;
        for _ in 0..count {
            let Some((position, id, n)) = self.unacked.pop_front() else {
                break;
            };
            let file = &mut self.files[id];
            assert_eq!(file.acked, n, "acks of file {id} in order");
            file.acked = n + 1;
            file.shipped = file.shipped.max(n + 1);
            last = Some(position);
        }
        if let Some(position) = last {
            self.tailer().ack(position);
        }
    }

    fn checkpoint(&mut self) {
        self.tailer().checkpoint().expect("checkpoint");
        for file in &mut self.files {
            file.durable = file.acked;
            file.durably_known = file.known;
        }
    }

    fn crash(&mut self) {
        self.tailer = None;
        self.unacked.clear();
        for file in &mut self.files {
            file.acked = file.durable;
            file.known = file.durably_known;
            file.held = false;
            file.next_expected = None;
            if file.damaged {
                // What the old tailer held, had yet to notice, or delivered without an ack
                // is unreachable now; the next tailer knows only checkpointed files.
                file.loss_required = file.durably_known;
            }
        }
        self.start();
    }

    /// Stops writing, drains and acknowledges everything, checks the end state, then checks
    /// that a clean restart delivers nothing again.
    fn finish(&mut self) {
        self.complete_partial();
        let mut idle = 0;
        while idle < 2 {
            let delivered = self.poll(50);
            self.ack(usize::MAX);
            self.checkpoint();
            idle = if delivered == 0 { idle + 1 } else { 0 };
        }
        for id in 0..self.files.len() {
            let file = &self.files[id];
            if file.shipped == file.lines.len() {
                continue;
            }
            assert!(
                file.damaged,
                "file {id} is intact but lines {}.. were never acknowledged",
                file.shipped
            );
            if file.loss_required {
                // Every line never acknowledged lies in a reported range.
                let fingerprint = file.fingerprint();
                for n in file.shipped..file.lines.len() {
                    let offset = file.offsets[n];
                    let covered = self.losses.iter().any(|loss| {
                        let end = match loss.lost {
                            LostBytes::Exactly(bytes) => loss.offset + bytes,
                            LostBytes::AtLeast(_) => u64::MAX,
                        };
                        Some(loss.fingerprint) == fingerprint && (loss.offset..end).contains(&offset)
                    });
                    assert!(
                        covered,
                        "file {id}: line {n} lost without a report (losses {:?})",
                        self.losses
                    );
                }
            }
        }
        self.checkpoint();
        self.crash();
        assert_eq!(self.poll(1000), 0, "lines delivered again after a clean restart");
        assert_eq!(self.poll(1000), 0, "lines delivered again after a clean restart");
    }
}
