//! Storage interface for events, alerts, intakes and tokens, and the backend contract test suite.
//!
//! Owns: storage traits and query types. Must never: contain SQL.
