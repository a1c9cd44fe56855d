//! Tailing the kube-apiserver audit log across rotations, with crash-safe checkpoints.
//!
//! Owns: files, fingerprints, checkpoints. Must never: know HTTP, batching or the event schema.
