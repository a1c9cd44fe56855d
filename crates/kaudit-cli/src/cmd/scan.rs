//! `kaudit scan`: run detection rules over audit input, print the alerts, summarize the run.
//!
//! Inputs are read in chunks cut at line ends (a few MiB each), so memory stays bounded on
//! JSON-lines logs of any size; a pretty-printed JSON document (an `EventList` body, an array)
//! is read whole, since it cannot be cut at lines. Gzip-compressed files (`.gz`, as the
//! apiserver writes rotated logs with `--audit-log-compress`) are decompressed on the fly.
//! With `--threads N` chunks are evaluated in parallel and their alerts are written in input
//! order; at most a fixed number of chunks is in flight, so memory stays bounded there too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal as _, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{ArgMatches, FromArgMatches};
use kaudit_model::{Located, Position, Priority, Skip};
use kaudit_rules::default_rules::{DEFAULT_RULES, DEFAULT_RULES_FILE};
use kaudit_rules::fields::EventCtx;
use kaudit_rules::{Loaded, Matching, RuleSet, RuleSource, Selection, load};

/// Flags of `kaudit scan`.
pub struct Args {
    flags: Flags,
    /// The four selection flags, in the order they were given on the command line.
    selections: Vec<Selection>,
}

#[derive(clap::Args)]
struct Flags {
    /// Rules file to load instead of kaudit's default rules; repeat to load several files, in
    /// order, into one rule set.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Alert for every matching rule of an event, not only the first in rule order (Falco's
    /// `rule_matching: all`).
    #[arg(long)]
    all_matches: bool,
    /// Evaluate only the rules at least this severe: emergency, alert, critical, error,
    /// warning, notice, informational (info) or debug.
    #[arg(long, value_name = "PRIORITY", value_parser = parse_priority)]
    min_priority: Option<Priority>,
    /// Disable the rules whose name matches (`*` is a wildcard). The selection flags may
    /// repeat and apply in the order given, like Falco's `rules:` configuration.
    #[arg(long, value_name = "NAME")]
    disable_rule: Vec<String>,
    /// Enable the rules whose name matches (`*` is a wildcard).
    #[arg(long, value_name = "NAME")]
    enable_rule: Vec<String>,
    /// Disable the rules that have this tag.
    #[arg(long, value_name = "TAG")]
    disable_tag: Vec<String>,
    /// Enable the rules that have this tag.
    #[arg(long, value_name = "TAG")]
    enable_tag: Vec<String>,
    /// Print each alert as one line of JSON in Falco's JSON alert shape.
    #[arg(long)]
    json: bool,
    /// Evaluate on this many threads (0: one per CPU); alerts keep the input order.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// Audit logs to read, in order: files, directories (their files in name order, so a
    /// rotated log reads its backups before the live file) or `-` for standard input.
    /// Standard input when none is given.
    #[arg(value_name = "FILE")]
    inputs: Vec<PathBuf>,
}

impl FromArgMatches for Args {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = Flags::from_arg_matches(matches)?;
        Ok(Args {
            flags,
            selections: ordered_selections(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.flags.update_from_arg_matches(matches)?;
        self.selections = ordered_selections(matches);
        Ok(())
    }
}

impl clap::Args for Args {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        <Flags as clap::Args>::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        <Flags as clap::Args>::augment_args_for_update(cmd)
    }
}

/// clap keeps one vector per flag; their command-line indexes give back the order in which
/// `--disable-rule`, `--enable-rule`, `--disable-tag` and `--enable-tag` were written.
fn ordered_selections(matches: &ArgMatches) -> Vec<Selection> {
    type MakeSelection = fn(String) -> Selection;
    let kinds: [(&str, MakeSelection); 4] = [
        ("disable_rule", Selection::DisableRule),
        ("enable_rule", Selection::EnableRule),
        ("disable_tag", Selection::DisableTag),
        ("enable_tag", Selection::EnableTag),
    ];
    let mut all: Vec<(usize, Selection)> = Vec::new();
    for (id, make) in kinds {
        let values = matches.try_get_many::<String>(id).ok().flatten();
        let indices = matches.indices_of(id);
        if let (Some(values), Some(indices)) = (values, indices) {
            all.extend(indices.zip(values).map(|(i, v)| (i, make(v.clone()))));
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

fn parse_priority(text: &str) -> Result<Priority, String> {
    text.parse().map_err(|_| {
        format!("unknown priority '{text}': expected emergency, alert, critical, error, warning, notice, informational or debug")
    })
}

/// Loads `paths` in order into one rule set, or kaudit's default rules when there are none.
/// The error is the message to print: it names the file, line and column, with a caret.
pub(crate) fn load_rules(paths: &[PathBuf]) -> Result<Loaded, String> {
    let sources = if paths.is_empty() {
        vec![RuleSource::new(DEFAULT_RULES_FILE, DEFAULT_RULES)]
    } else {
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read rules file {}: {e}", path.display()))?;
            sources.push(RuleSource::new(path.display().to_string(), text));
        }
        sources
    };
    load(&sources).map_err(|e| e.to_string())
}

/// Prints load warnings, and says once that rules of other sources are not evaluated.
pub(crate) fn report_load_notes(loaded: &Loaded) {
    for warning in &loaded.warnings {
        eprintln!("kaudit: warning: {warning}");
    }
    let skipped = loaded.ruleset.skipped();
    if !skipped.is_empty() {
        let mut sources: Vec<&str> = skipped.iter().map(|s| s.source.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        eprintln!(
            "kaudit: note: {} rules of source {} are loaded (their lists and macros count) but not \
             evaluated: kaudit evaluates k8s_audit rules only",
            skipped.len(),
            sources.join(", ")
        );
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { flags, selections } = args;
    let loaded = match load_rules(&flags.rules) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("kaudit: error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    report_load_notes(&loaded);
    let mut rules = loaded.ruleset;
    rules.select(&selections);
    if let Some(priority) = flags.min_priority {
        rules.set_min_priority(priority);
    }

    let mut problems = Vec::new();
    let inputs = expand_inputs(&flags.inputs, &mut problems);
    let mut threads = match flags.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // evt.num and evt.reltime count from the start of the whole input: only a sequential
    // scan knows them.
    let needs_sequence = (0..rules.rules().len()).filter(|&i| rules.is_active(i)).any(|i| {
        rules.rules()[i].fields().iter().any(|f| {
            let name = f.info().name;
            name == "evt.num" || name.starts_with("evt.reltime")
        })
    });
    if needs_sequence && threads > 1 {
        eprintln!(
            "kaudit: note: the rules read evt.num or evt.reltime, which need one sequential pass: --threads ignored"
        );
        threads = 1;
    }

    let scan = Scan {
        rules,
        matching: if flags.all_matches {
            Matching::All
        } else {
            Matching::First
        },
        json: flags.json,
        hostname: hostname(),
    };
    let total_bytes: u64 = inputs.iter().filter_map(|i| i.size).sum();
    let progress = Progress::new(total_bytes);
    let started = Instant::now();
    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    let mut summary = Summary::new(scan.rules.rules().len());
    let read_problems = if threads <= 1 {
        scan_sequential(&scan, &inputs, &mut out, &mut summary, &progress)?
    } else {
        scan_parallel(&scan, &inputs, threads, &mut out, &mut summary, &progress)?
    };
    out.flush().context("cannot write alerts")?;
    progress.finish();
    problems.extend(read_problems);
    summary.print(&scan.rules, &inputs, started.elapsed());
    for problem in &problems {
        eprintln!("kaudit: error: {problem}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What every chunk is evaluated with; shared by the worker threads.
struct Scan {
    rules: RuleSet,
    matching: Matching,
    json: bool,
    hostname: String,
}

/// The machine's host name, for `evt.hostname` and the JSON alerts' `hostname`, as Falco
/// reports it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// One input to read: a file or standard input.
struct Input {
    /// `None` for standard input.
    path: Option<PathBuf>,
    /// How it is named in messages.
    name: String,
    /// Its size when it is a regular file, for the progress bar.
    size: Option<u64>,
}

/// Turns the command-line inputs into files in reading order; directories give their regular,
/// non-hidden files in name order. Paths that cannot be read are reported in `problems`.
fn expand_inputs(given: &[PathBuf], problems: &mut Vec<String>) -> Vec<Input> {
    let stdin = || Input {
        path: None,
        name: "<stdin>".to_owned(),
        size: None,
    };
    if given.is_empty() {
        return vec![stdin()];
    }
    let mut inputs = Vec::new();
    for path in given {
        if path.as_os_str() == "-" {
            inputs.push(stdin());
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut files: Vec<(PathBuf, u64)> = entries
                        .filter_map(Result::ok)
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .filter_map(|e| {
                            let meta = std::fs::metadata(e.path()).ok()?;
                            meta.is_file().then(|| (e.path(), meta.len()))
                        })
                        .collect();
                    files.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
                    for (file, size) in files {
                        inputs.push(Input {
                            name: file.display().to_string(),
                            path: Some(file),
                            size: Some(size),
                        });
                    }
                }
                Err(e) => problems.push(format!("cannot read directory {}: {e}", path.display())),
            },
            Ok(meta) => inputs.push(Input {
                name: path.display().to_string(),
                path: Some(path.clone()),
                size: meta.is_file().then_some(meta.len()),
            }),
            Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
        }
    }
    inputs
}

/// Counts the bytes read from the underlying files, for the progress bar.
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open(input: &Input, bytes: &Arc<AtomicU64>) -> io::Result<Box<dyn Read + Send>> {
    let Some(path) = &input.path else {
        return Ok(Box::new(io::stdin()));
    };
    let file = Counting {
        inner: File::open(path)?,
        bytes: Arc::clone(bytes),
    };
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(1 << 16, file),
        )))
    } else {
        Ok(Box::new(file))
    }
}

/// Chunks of this size (or a little more, to end at a line end) are read and evaluated at
/// once; a line longer than this makes its chunk longer.
const CHUNK_BYTES: usize = 4 << 20;

/// A piece of one input holding whole lines (or the whole input, for a JSON document).
struct Chunk {
    /// Index of the input in the input list.
    input: usize,
    data: Vec<u8>,
    /// Line number of the first line of `data`.
    first_line: usize,
    /// The input is one JSON document read whole, not JSON lines.
    document: bool,
}

/// Cuts an input into chunks at line ends.
struct Chunker {
    reader: Box<dyn Read + Send>,
    /// Aimed size of a chunk.
    chunk_bytes: usize,
    input: usize,
    carry: Vec<u8>,
    next_line: usize,
    eof: bool,
    first: bool,
}

impl Chunker {
    fn new(reader: Box<dyn Read + Send>, input: usize, chunk_bytes: usize) -> Chunker {
        Chunker {
            reader,
            chunk_bytes,
            input,
            carry: Vec::new(),
            next_line: 1,
            eof: false,
            first: true,
        }
    }

    /// Reads until `buf` holds at least `want` bytes or the input ends. (`read_to_end` fills
    /// the spare capacity without zeroing it first.)
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
        while buf.len() < want && !self.eof {
            let missing = (want - buf.len()) as u64;
            if (&mut self.reader).take(missing).read_to_end(buf)? == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.reserve(self.chunk_bytes);
        self.fill(&mut buf, self.chunk_bytes)?;
        loop {
            if self.eof {
                break;
            }
            if let Some(end) = memchr::memrchr(b'\n', &buf) {
                self.carry = buf.split_off(end + 1);
                break;
            }
            let want = buf.len() + self.chunk_bytes;
            self.fill(&mut buf, want)?;
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let mut document = false;
        if std::mem::take(&mut self.first) && is_document(&buf) {
            // A pretty-printed document cannot be cut at lines: read all of it.
            buf.append(&mut self.carry);
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest)?;
            buf.append(&mut rest);
            self.eof = true;
            document = true;
        }
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &buf).count();
        Ok(Some(Chunk {
            input: self.input,
            data: buf,
            first_line,
            document,
        }))
    }
}

/// True when the first line that is not blank starts a JSON value that does not end on that
/// line: the input is a pretty-printed document rather than JSON lines (the test
/// `read_input` makes on a whole input).
fn is_document(data: &[u8]) -> bool {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let first = data
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty());
    first.is_some_and(is_unfinished_value)
}

/// A line starting like a JSON object or array whose value runs past the end of the line.
fn is_unfinished_value(line: &[u8]) -> bool {
    matches!(line.first(), Some(b'{' | b'['))
        && serde_json::from_slice::<serde_json::Value>(line).is_err_and(|e| e.is_eof())
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// At most this many lines that are not events are quoted in the summary.
const QUOTED_SKIPS: usize = 5;

/// What one chunk produced.
struct ChunkResult {
    /// The alerts, rendered.
    out: Vec<u8>,
    events: u64,
    skipped: u64,
    /// The first few skipped lines: position and reason.
    first_skips: Vec<(Position, String)>,
    /// Alerts per rule index.
    alerts: Vec<u64>,
}

/// The numbering state of a sequential scan: `evt.num` and the first event's time.
#[derive(Default)]
struct Sequence {
    events: u64,
    first_time: Option<i64>,
}

fn evaluate_chunk(scan: &Scan, chunk: &Chunk, sequence: &mut Sequence) -> ChunkResult {
    let mut result = ChunkResult {
        out: Vec::new(),
        events: 0,
        skipped: 0,
        first_skips: Vec::new(),
        alerts: vec![0; scan.rules.rules().len()],
    };
    let mut matched = Vec::new();
    let mut skips = Vec::new();
    let on_event = |located: Located<'_>| {
        sequence.events += 1;
        result.events += 1;
        let first = *sequence.first_time.get_or_insert(located.time_nanos);
        let ctx = EventCtx::new(&located, sequence.events)
            .with_hostname(&scan.hostname)
            .with_first_time_nanos(first);
        scan.rules.evaluate(&ctx, scan.matching, &mut matched);
        for &i in &matched {
            if let Some(alert) = scan.rules.alert(i, &ctx) {
                if let Some(n) = result.alerts.get_mut(i) {
                    *n += 1;
                }
                render_alert(&alert, scan, &mut result.out);
            }
        }
    };
    read_chunk(chunk, on_event, |skip| skips.push(skip));
    for skip in skips {
        result.skipped += 1;
        if result.first_skips.len() < QUOTED_SKIPS {
            let line = chunk.first_line + skip.position.line.saturating_sub(1);
            result.first_skips.push((
                Position {
                    line,
                    ..skip.position
                },
                skip.reason.to_string(),
            ));
        }
    }
    result
}

/// Reads the events and skipped pieces of a chunk, as reading the whole input at once would:
/// a document is read as such; JSON lines are read as lines even when the chunk starts with a
/// line that opens a JSON value without closing it (that line is just skipped).
fn read_chunk<'c>(chunk: &'c Chunk, on_event: impl FnMut(Located<'c>), on_skip: impl FnMut(Skip)) {
    if chunk.document {
        kaudit_model::read_input(&chunk.data, on_event, on_skip);
    } else {
        kaudit_model::read_json_lines(&chunk.data, on_event, on_skip);
    }
}

fn render_alert(alert: &kaudit_rules::Alert, scan: &Scan, out: &mut Vec<u8>) {
    if scan.json {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &alert.to_falco_json(&scan.hostname));
        out.push(b'\n');
    } else {
        let time = kaudit_model::format_rfc3339_nanos(alert.time_nanos);
        let _ = writeln!(out, "{time}: {} {}", alert.priority.falco_name(), alert.message);
    }
}

fn scan_sequential(
    scan: &Scan,
    inputs: &[Input],
    out: &mut impl Write,
    summary: &mut Summary,
    progress: &Progress,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut sequence = Sequence::default();
    for (index, input) in inputs.iter().enumerate() {
        let reader = match open(input, &progress.bytes) {
            Ok(reader) => reader,
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", input.name));
                continue;
            }
        };
        let mut chunker = Chunker::new(reader, index, CHUNK_BYTES);
        loop {
            match chunker.next_chunk() {
                Ok(Some(chunk)) => {
                    let result = evaluate_chunk(scan, &chunk, &mut sequence);
                    out.write_all(&result.out).context("cannot write alerts")?;
                    summary.add(chunk.input, result);
                    progress.tick();
                }
                Ok(None) => break,
                Err(e) => {
                    problems.push(format!("cannot read {}: {e}", input.name));
                    break;
                }
            }
        }
    }
    Ok(problems)
}

fn scan_parallel(
    scan: &Scan,
    inputs: &[Input],
    threads: usize,
    out: &mut impl Write,
    summary: &mut Summary,
    progress: &Progress,
) -> anyhow::Result<Vec<String>> {
    // Chunks in flight (read, queued, being evaluated or waiting for their turn to be
    // written) are limited: this bounds memory whatever the speed of each stage.
    let in_flight = 2 * threads + 2;
    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Chunk)>(threads);
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel::<(u64, usize, ChunkResult)>();
        let (token_tx, token_rx) = mpsc::sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            let _ = token_tx.send(());
        }
        let bytes = Arc::clone(&progress.bytes);
        let reader = s.spawn(move || {
            let mut problems = Vec::new();
            let mut seq = 0u64;
            'inputs: for (index, input) in inputs.iter().enumerate() {
                let mut chunker = match open(input, &bytes) {
                    Ok(reader) => Chunker::new(reader, index, CHUNK_BYTES),
                    Err(e) => {
                        problems.push(format!("cannot read {}: {e}", input.name));
                        continue;
                    }
                };
                loop {
                    match chunker.next_chunk() {
                        Ok(Some(chunk)) => {
                            // A chunk goes out only with a token, given back once written.
                            if token_rx.recv().is_err() || work_tx.send((seq, chunk)).is_err() {
                                break 'inputs;
                            }
                            seq += 1;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            problems.push(format!("cannot read {}: {e}", input.name));
                            break;
                        }
                    }
                }
            }
            problems
        });
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || {
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, chunk)) = job else { break };
                    // Parallel scans never read evt.num or evt.reltime (see `run`).
                    let result = evaluate_chunk(scan, &chunk, &mut Sequence::default());
                    if done_tx.send((seq, chunk.input, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut next = 0u64;
        let mut waiting: BTreeMap<u64, (usize, ChunkResult)> = BTreeMap::new();
        let mut write_result: anyhow::Result<()> = Ok(());
        for (seq, input, result) in done_rx {
            waiting.insert(seq, (input, result));
            while let Some((input, result)) = waiting.remove(&next) {
                if write_result.is_ok() {
                    write_result = out.write_all(&result.out).context("cannot write alerts");
                }
                summary.add(input, result);
                progress.tick();
                next += 1;
                let _ = token_tx.send(());
            }
            if write_result.is_err() {
                break;
            }
        }
        // Dropping the token sender stops the reader, which stops the workers.
        drop(token_tx);
        let problems = reader
            .join()
            .unwrap_or_else(|_| vec!["the input reader failed".to_owned()]);
        write_result.map(|()| problems)
    })
}

// ---------------------------------------------------------------------------------------
// Progress and summary
// ---------------------------------------------------------------------------------------

/// Inputs smaller than this finish too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// A progress bar over the bytes read, shown only on a terminal and for large inputs.
struct Progress {
    bytes: Arc<AtomicU64>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total_bytes: u64) -> Progress {
        let bar = (io::stderr().is_terminal() && total_bytes >= PROGRESS_MIN_BYTES).then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bytes: Arc::new(AtomicU64::new(0)),
            bar,
        }
    }

    fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes.load(Ordering::Relaxed));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Counts of the whole scan, for the report on standard error.
struct Summary {
    events: u64,
    skipped: u64,
    first_skips: Vec<(usize, Position, String)>,
    alerts: Vec<u64>,
}

impl Summary {
    fn new(rules: usize) -> Summary {
        Summary {
            events: 0,
            skipped: 0,
            first_skips: Vec::new(),
            alerts: vec![0; rules],
        }
    }

    fn add(&mut self, input: usize, result: ChunkResult) {
        self.events += result.events;
        self.skipped += result.skipped;
        for (position, reason) in result.first_skips {
            if self.first_skips.len() < QUOTED_SKIPS {
                self.first_skips.push((input, position, reason));
            }
        }
        for (total, n) in self.alerts.iter_mut().zip(result.alerts) {
            *total += n;
        }
    }

    fn print(&self, rules: &RuleSet, inputs: &[Input], elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.events as f64 / seconds
        } else {
            0.0
        };
        let files = inputs.len();
        eprintln!(
            "kaudit: {} events read from {files} input{} in {seconds:.2} s ({rate:.0} events/s)",
            self.events,
            if files == 1 { "" } else { "s" },
        );
        if self.skipped > 0 {
            eprintln!(
                "kaudit: {} lines or items skipped (not audit events):",
                self.skipped
            );
            for (input, position, reason) in &self.first_skips {
                let name = inputs.get(*input).map_or("<input>", |i| i.name.as_str());
                match position.item {
                    Some(item) => eprintln!("  {name}:{} (item {item}): {reason}", position.line),
                    None => eprintln!("  {name}:{}: {reason}", position.line),
                }
            }
            if self.skipped > self.first_skips.len() as u64 {
                eprintln!("  ...");
            }
        }
        let total: u64 = self.alerts.iter().sum();
        eprintln!("kaudit: {total} alert{}", if total == 1 { "" } else { "s" });
        for (i, n) in self.alerts.iter().enumerate() {
            if *n > 0
                && let Some(rule) = rules.rules().get(i)
            {
                eprintln!("  {n:>8}  {}", rule.name);
            }
        }
    }
}

#[cfg(test)]
mod tests;
