//! Every scalar operation, on every dtype it applies to.
