//! Benchmark of the PostgreSQL store: batch insert throughput and search latency.
//!
//! ```text
//! cargo bench -p kaudit-store-postgres --bench store -- insert events=200000 clients=4 schema=kaudit_bench fresh=1
//! cargo bench -p kaudit-store-postgres --bench store -- search iterations=40 schema=kaudit_bench
//! ```
//! `url=...` selects the server (default: 127.0.0.1:5432, user postgres, database test);
//! `fresh=1` drops the schema first.

use std::sync::Arc;

use kaudit_store::testsuite::bench::{self, Args};
use kaudit_store_postgres::{PgConfig, PgStore};

fn main() {
    let args = Args::from_env();
    let url = args.text("url", "host=127.0.0.1 port=5432 user=postgres dbname=test");
    let schema = args.text("schema", "kaudit_bench");
    if args.number("fresh", 0) == 1 {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(mut client) => {
                if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")) {
                    eprintln!("cannot drop schema {schema}: {e}");
                }
            }
            Err(e) => eprintln!("cannot connect to {url}: {e}"),
        }
    }
    let config = PgConfig {
        schema: Some(schema.clone()),
        pool_size: 8,
        ..PgConfig::new(url.clone())
    };
    let store = match PgStore::connect(config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open the store at {url} schema {schema}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "postgres store at {url}, schema {schema}, trigram index: {}",
        store.has_trigram_index()
    );
    bench::run(Arc::new(store), &args);
}
