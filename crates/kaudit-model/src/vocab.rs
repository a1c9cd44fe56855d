//! Names shared by every part of the pipeline: alert priorities, audit levels and stages.

use std::fmt;
use std::str::FromStr;

/// A word that is not one of the accepted spellings of a [`Priority`], [`Level`] or
/// [`Stage`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?} (expected one of: {expected})")]
pub struct ParseVocabError {
    /// What was being parsed ("priority", "level", "stage").
    pub what: &'static str,
    /// The word as written.
    pub word: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}

/// A Falco rule priority. Ordered from most to least severe, as Falco numbers them
/// (`Emergency` is 0, `Debug` is 7), so `a < b` means `a` is more severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// 0
    Emergency,
    /// 1
    Alert,
    /// 2
    Critical,
    /// 3
    Error,
    /// 4
    Warning,
    /// 5
    Notice,
    /// 6
    Informational,
    /// 7
    Debug,
}

impl Priority {
    /// Every priority, most severe first.
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// The name Falco prints in alerts: `Emergency`, ..., `Informational`, `Debug`.
    pub fn falco_name(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }

    /// Falco's number for the priority: 0 (Emergency) to 7 (Debug).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The priority with Falco's number `n`.
    pub fn from_number(n: u8) -> Option<Priority> {
        Priority::ALL.get(usize::from(n)).copied()
    }

    /// True when `self` is at least as severe as `threshold`.
    pub fn at_least(self, threshold: Priority) -> bool {
        self <= threshold
    }
}

impl FromStr for Priority {
    type Err = ParseVocabError;

    /// Case-insensitive, as in Falco rules files; `info` is accepted for `informational`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = match s.to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => {
                return Err(ParseVocabError {
                    what: "priority",
                    word: s.to_owned(),
                    expected: "emergency, alert, critical, error, warning, notice, informational, info, debug",
                });
            }
        };
        Ok(p)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.falco_name())
    }
}

/// An audit level. Ordered `None < Metadata < Request < RequestResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No event at all.
    None,
    /// Metadata only, no bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, request and response bodies.
    RequestResponse,
}

impl Level {
    /// The name as written in policies and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

impl FromStr for Level {
    type Err = ParseVocabError;

    /// Case-sensitive, as the apiserver reads policies.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "None" => Ok(Level::None),
            "Metadata" => Ok(Level::Metadata),
            "Request" => Ok(Level::Request),
            "RequestResponse" => Ok(Level::RequestResponse),
            _ => Err(ParseVocabError {
                what: "level",
                word: s.to_owned(),
                expected: "None, Metadata, Request, RequestResponse",
            }),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An audit stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// As soon as the request is received, before it is handled.
    RequestReceived,
    /// Long-running requests, once the response headers are sent.
    ResponseStarted,
    /// The response body is complete.
    ResponseComplete,
    /// The handler panicked.
    Panic,
}

impl Stage {
    /// Every stage, in the order a request goes through them.
    pub const ALL: [Stage; 4] = [
        Stage::RequestReceived,
        Stage::ResponseStarted,
        Stage::ResponseComplete,
        Stage::Panic,
    ];

    /// The name as written in policies and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

impl FromStr for Stage {
    type Err = ParseVocabError;

    /// Case-sensitive, as the apiserver reads policies.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RequestReceived" => Ok(Stage::RequestReceived),
            "ResponseStarted" => Ok(Stage::ResponseStarted),
            "ResponseComplete" => Ok(Stage::ResponseComplete),
            "Panic" => Ok(Stage::Panic),
            _ => Err(ParseVocabError {
                what: "stage",
                word: s.to_owned(),
                expected: "RequestReceived, ResponseStarted, ResponseComplete, Panic",
            }),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
