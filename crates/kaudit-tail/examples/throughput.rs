//! Throughput of the tailer on a large generated audit log: lines/s and MB/s for polling,
//! framing, acknowledging and checkpointing, from a plain file or from a `.gz` backup.
//!
//! Run: `cargo run --release -p kaudit-tail --example throughput -- [LINES] [LINE_BYTES] [--gz]`
//! (defaults: 1000000 lines of about 1200 bytes). The file is generated in a temporary
//! directory and read once to warm the page cache before the measured run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use kaudit_tail::{Batch, TailConfig, Tailer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut gz = false;
    for arg in args.by_ref() {
        if arg == "--gz" {
            gz = true;
        } else {
            positional.push(arg.parse::<usize>()?);
        }
    }
    let lines = positional.first().copied().unwrap_or(1_000_000);
    let line_bytes = positional.get(1).copied().unwrap_or(1200);
    let dir = tempfile::tempdir()?;
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs)?;
    let live = logs.join("audit.log");
    let target = if gz {
        logs.join("audit-2024-05-01T10-11-12.345.log")
    } else {
        live.clone()
    };
    let bytes = generate(&target, lines, line_bytes)?;
    if gz {
        compress(&target)?;
        File::create(&live)?;
    }
    // Warm the page cache.
    for entry in std::fs::read_dir(&logs)? {
        std::io::copy(&mut File::open(entry?.path())?, &mut std::io::sink())?;
    }
    let config = TailConfig::new(vec![live.display().to_string()], dir.path().join("state"));
    let mut tailer = Tailer::open(config)?;
    let mut batch = Batch::new();
    let started = Instant::now();
    let (mut delivered, mut delivered_bytes, mut batches) = (0usize, 0usize, 0usize);
    while delivered < lines {
        tailer.poll_into(&mut batch, 10_000, 16 << 20);
        delivered += batch.len();
        delivered_bytes += batch.line_bytes();
        tailer.ack_batch(&batch);
        batches += 1;
        if batches % 50 == 0 {
            tailer.checkpoint()?;
        }
    }
    tailer.checkpoint()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} lines, {:.1} MB ({} source){}: {:.3} s, {:.0} lines/s, {:.0} MB/s (line content {:.0} MB/s)",
        delivered,
        bytes as f64 / 1e6,
        if gz { "gz" } else { "plain" },
        if delivered == lines { "" } else { " MISMATCH" },
        seconds,
        delivered as f64 / seconds,
        bytes as f64 / 1e6 / seconds,
        delivered_bytes as f64 / 1e6 / seconds,
    );
    Ok(())
}

/// Writes `lines` audit-like JSON lines of about `line_bytes` bytes; returns the file size.
fn generate(path: &Path, lines: usize, line_bytes: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut written = 0u64;
    for n in 0..lines {
        let head = format!(
            concat!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","#,
                r#""auditID":"{:08x}-762a-4662-8ec5-{:012x}","stage":"ResponseComplete","#,
                r#""requestURI":"/api/v1/namespaces/default/pods?limit=500","verb":"list","#,
                r#""user":{{"username":"system:serviceaccount:kube-system:replicaset-controller"}},"#,
                r#""annotations":{{"pad":""#
            ),
            n, n
        );
        let pad = line_bytes.saturating_sub(head.len() + 4);
        out.write_all(head.as_bytes())?;
        out.write_all(&b"x".repeat(pad))?;
        out.write_all(b"\"}}\n")?;
        written += (head.len() + pad + 4) as u64;
    }
    out.flush()?;
    Ok(written)
}

fn compress(path: &Path) -> std::io::Result<()> {
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let mut encoder = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(Path::new(&gz_name))?),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut File::open(path)?, &mut encoder)?;
    encoder.finish()?.flush()?;
    std::fs::remove_file(path)
}
