//! Load errors and warnings, each with the place in the policy file.

use std::fmt;

use kaudit_yaml::Span;

/// How bad a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The apiserver refuses the policy.
    Error,
    /// The apiserver accepts the policy, probably not as the author meant it (an error
    /// under `--strict`).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a policy file, at a line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where the problem is (the node it concerns; the enclosing rule for a missing field).
    pub span: Span,
    /// What it is, starting with the field path (`rules[2].level: ...`) when there is one.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
        }
    }

    pub(crate) fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.span, self.severity, self.message)
    }
}

/// Why a policy file does not load.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not YAML (nor JSON).
    #[error("{span}: {message}")]
    Syntax {
        /// Where the parser stopped.
        span: Span,
        /// The parser's message.
        message: String,
    },
    /// The document is read but the apiserver would refuse it (or, after
    /// [`crate::Loaded::into_strict`], it has warnings). At least one error, and the
    /// warnings that may explain it, in file order.
    #[error("{}", join(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// Every problem with its place: one for a syntax error, all of them otherwise.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            PolicyError::Syntax { span, message } => vec![Diagnostic::new(*span, message.clone())],
            PolicyError::Invalid(list) => list.clone(),
        }
    }
}

fn join(list: &[Diagnostic]) -> String {
    list.iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
