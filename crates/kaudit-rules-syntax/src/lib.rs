//! Lexer, parser and AST (with spans) for Falco condition expressions and output templates.
//!
//! Owns: the condition grammar. Must never: know Kubernetes field names or the event model.
