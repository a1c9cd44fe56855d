//! The kaudit intake and API server.
//!
//! Owns: the HTTP routes (intake endpoints and the JSON API under `/api/v1`), intake-key and
//! API-token authentication, capped body reading and decompression, the
//! parse → digest → detect → store pipeline, detection policies, alert outputs, retention
//! and the `serve` entry point.
//!
//! Must never: contain SQL or rule-language parsing code, log intake keys, tokens or
//! request bodies, or acknowledge a batch before it is durably committed.

pub mod body;
pub mod error;
pub mod auth;
pub mod policy;
pub mod config;
pub mod outputs;
