//! Kubernetes audit Policy (audit.k8s.io/v1): loading, validation and evaluation as the apiserver does.
//!
//! Owns: policy files and levels. Must never: do network I/O.
