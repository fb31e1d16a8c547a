//! Source text to AST: the logos lexer, the recursive-descent parser and the AST types.
//! Nothing here knows what a name means; that is `sema`'s job.

pub mod ast;
