//! Analyses of the tensor IR: pure functions that read a function and describe it, for the
//! passes after them (the contraction-path pass, the schedule pass) and for `einc explain`.
//! Nothing here changes the IR.
//!
//! - [`classify`]: what kind of computation each `generic` is (a contraction with its
//!   batch/m/n/k index groups, a map, a reduction, a row-softmax group), and whether its body
//!   is an N-ary product of input reads.
//! - [`attention`]: attention chains (scores, maps, row softmax, values) that the
//!   `flash-attention` pass fuses.

pub mod attention;
pub mod classify;

pub use attention::backward::{
    backward_group, backward_groups, BackwardGroup, Exit, ExitSum, Member, MemberKind,
};
pub use attention::{attention_chain, attention_chains, AttentionChain, Role};
pub use classify::{
    classify, classify_function, product_factors, Contraction, Factor, OpClass, RowSoftmax,
};
