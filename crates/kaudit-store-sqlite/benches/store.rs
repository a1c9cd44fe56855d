//! Benchmark of the SQLite store: batch insert throughput and search latency.
//!
//! ```text
//! cargo bench -p kaudit-store-sqlite --bench store -- insert events=1000000 clients=4 db=/tmp/k.db
//! cargo bench -p kaudit-store-sqlite --bench store -- load events=10000000 db=/tmp/big.db
//! cargo bench -p kaudit-store-sqlite --bench store -- search iterations=40 db=/tmp/big.db
//! ```
//! `durability=normal` switches to `synchronous=NORMAL`; `fresh=1` deletes the database first.

use std::sync::Arc;

use kaudit_store::testsuite::bench::{self, Args};
use kaudit_store_sqlite::{Durability, SqliteConfig, SqliteStore};

fn main() {
    let args = Args::from_env();
    let path = args.text("db", "/tmp/kaudit-bench.db");
    if args.number("fresh", 0) == 1 {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    let durability = match args.text("durability", "full").as_str() {
        "normal" => Durability::Normal,
        _ => Durability::Full,
    };
    if args.mode == "sql" {
        // Diagnosis: time one statement (`sql=...`) on the database, e.g. under EXPLAIN QUERY PLAN.
        run_sql(&path, &args.text("sql", "SELECT 1"));
        return;
    }
    let defaults = SqliteConfig::default();
    let config = SqliteConfig {
        durability,
        cache_kib: u32::try_from(args.number("cache_kib", u64::from(defaults.cache_kib)))
            .unwrap_or(defaults.cache_kib),
        ..defaults
    };
    let store = match SqliteStore::open(&path, config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    println!("sqlite store at {path}, durability {durability:?}");
    bench::run(Arc::new(store), &args);
}

fn run_sql(path: &str, sql: &str) {
    let conn = match rusqlite::Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => return eprintln!("cannot open {path}: {e}"),
    };
    let start = std::time::Instant::now();
    let mut statement = match conn.prepare(sql) {
        Ok(statement) => statement,
        Err(e) => return eprintln!("cannot prepare: {e}"),
    };
    let columns = statement.column_count();
    let rows = statement.query_map([], |row| {
        Ok((0..columns)
            .map(|i| format!("{:?}", row.get_ref(i).map(|v| v.data_type())))
            .collect::<Vec<_>>()
            .len())
    });
    let mut n = 0;
    if let Ok(rows) = rows {
        for row in rows {
            if row.is_ok() {
                n += 1;
            }
        }
    }
    println!("{n} rows in {:.2} ms", start.elapsed().as_secs_f64() * 1000.0);
}
