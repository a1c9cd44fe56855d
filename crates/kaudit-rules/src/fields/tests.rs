//! Unit tests of field extraction, one data-driven table per field family.
