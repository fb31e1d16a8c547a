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
