//! ABI misuse.
