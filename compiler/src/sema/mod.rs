//! Semantic analysis: names, dims, free and dummy indices, shapes and dtypes; lowers a checked
//! program (or a numpy subscripts string) to tensor IR.

pub mod einsum;
