//! The kaudit intake and API server.
//!
//! Owns: the HTTP routes (intake endpoints and the JSON API under `/api/v1`), intake-key and
//! API-token authentication, capped body reading and decompression, the
//! parse → digest → detect → store pipeline, detection policies, alert outputs, retention
//! and the `serve` entry point.
//!
//! Must never: contain SQL or rule-language parsing code, log intake keys, tokens or
//! request bodies, or acknowledge a batch before it is durably committed.
//!
//! Brief overview:
//! * [`app`] builds the axum `Router` over an [`AppState`]; tests drive it with `oneshot`.
//! * [`serve()`] is what `kaudit serve` runs: open the store, bootstrap, listen, shut down
//!   gracefully on SIGINT/SIGTERM.
//! * [`pipeline::prepare`] turns a body into stored rows and alerts; [`detect::Detector`] is
//!   the active rules and policies, swapped atomically when they change.

pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod client;
pub mod config;
pub mod detect;
pub mod engine;
pub mod error;
pub mod outputs;
pub mod pipeline;
pub mod policy;
pub mod serve;
pub mod state;

pub use serve::{open_store, serve};
pub use state::AppState;

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> axum::Router {
    api::router(state)
}
