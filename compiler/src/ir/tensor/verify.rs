//! Checks the invariants documented on the tensor IR types.
