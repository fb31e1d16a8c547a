//! Source text to AST: the logos lexer, the recursive-descent parser and the AST types, and the
//! printer that turns an AST back into canonical source. Nothing here knows what a name means;
//! that is `sema`'s job.

pub mod ast;
mod lexer;
mod parser;
mod printer;

#[cfg(test)]
mod tests;

pub use parser::{parse, MAX_NESTING};
pub use printer::{print_expr, print_program};

/// Names the language reserves: never available for dims, tensors or kernels. `sema` rejects
/// them as names, and code that generates source (the `.ein` printer of derived kernels)
/// avoids them.
pub const RESERVED: &[&str] = &[
    "delta",
    "eps",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "tanh",
    "sigmoid",
    "relu",
    "abs",
    "neg",
    "max",
    "min",
    "pow",
    "where",
    "f32",
    "f64",
    "i32",
    "i64",
    "sum",
    "prod",
    "softmax",
    "logsumexp",
    "einsum",
    "inf",
    "grad",
];
