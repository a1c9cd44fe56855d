//! Integration tests of kaudit-tail, one binary.

// Shared fixture: a temporary log directory, a state directory, draining helpers.
mod support;

// Line framing: partial lines, CRLF, empty lines, max_line_bytes, positions.
mod framing;
// Rotation, compression, pruning, copytruncate, globs, start at end.
mod rotation;
// Restarts from the state directory under each acknowledgement pattern.
mod restart;
// Replay of a real apiserver's rotated log files.
mod samples;
// Model-based property test over random file operations, polls, acks and crashes.
mod model;
