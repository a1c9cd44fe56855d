//! The agent's error type: configuration, files, the spool, the network.

use std::path::PathBuf;

/// Everything that can stop the agent or fail a check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A configuration value is invalid; `place` is `file:line:column` or the setting's name.
    #[error("{place}: {message}")]
    Config {
        /// Where: the file position or the setting's name.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// A file named by the configuration cannot be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The spool failed.
    #[error("spool")]
    Spool(#[from] crate::spool::SpoolError),
    /// TLS material cannot be used.
    #[error("tls: {0}")]
    Tls(String),
    /// A listening socket cannot be opened.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The audit policy does not load.
    #[error("policy {path}: {message}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// The loader's diagnostic (with line and column).
        message: String,
    },
    /// The tail source failed.
    #[error("tail: {0}")]
    Tail(String),
    /// The intake did not accept the check request.
    #[error("intake check failed: {0}")]
    Intake(String),
    /// Other I/O: threads, the runtime, the state directory.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
