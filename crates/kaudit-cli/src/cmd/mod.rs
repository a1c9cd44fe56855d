//! One module per command family. Each exposes its clap `Args` (or `Command`) and a `run`
//! returning the process exit code: 0 success, 1 findings or runtime failure, 2 invalid
//! input such as a rules or policy file that does not load.

pub mod agent;
pub mod alerts;
pub mod bench;
pub mod bench_intake;
pub mod events;
pub mod intake;
pub mod output;
pub mod policies;
pub mod policy;
pub mod rule_files;
pub mod rules;
pub mod scan;
pub mod serve;
pub mod token;
