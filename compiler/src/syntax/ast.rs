//! The abstract syntax tree of a `.ein` file, exactly as written (no names resolved, no
//! indices classified). Every node carries the [`Span`] it came from so that semantic analysis
//! can point at it.

use crate::diag::Span;
pub use crate::ir::tensor::schedule::{RawItem, RawValue};
use einc_runtime::DType;

/// A name with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The name as written.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A whole `.ein` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Top-level items in source order.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `dims T, D = 16, K`
    Dims(DimsDecl),
    /// `kernel name(params) -> (outputs) { statements }`
    Kernel(Kernel),
    /// `kernel name = grad(of, wrt: [A, B])` (or `jacobian(...)`, `hessian(...)`)
    Grad(GradKernel),
    /// A kernel item that did not parse (its errors are reported): its name, so that other
    /// items referring to it are not reported again.
    Broken(Ident),
}

/// `dims T, D = 16`: extents shared by every kernel in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct DimsDecl {
    /// The declared dims, in order.
    pub dims: Vec<DimDecl>,
    /// The whole declaration.
    pub span: Span,
}

/// One dim of a `dims` declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct DimDecl {
    /// The dim's name.
    pub name: Ident,
    /// `= 16`: a fixed extent, with the span of the number. `None` leaves it to the call.
    pub value: Option<(u64, Span)>,
}

/// A kernel definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// The kernel's name.
    pub name: Ident,
    /// Inputs, in declaration order.
    pub params: Vec<TensorDecl>,
    /// Outputs, in declaration order.
    pub outputs: Vec<TensorDecl>,
    /// The body.
    pub body: Vec<Stmt>,
    /// From `kernel` to the closing brace.
    pub span: Span,
}

/// `X: f32[T, D]` (a parameter or output declaration). A scalar is written `s: f32` or
/// `s: f32[]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDecl {
    /// The tensor's name.
    pub name: Ident,
    /// The element type and where it was written.
    pub dtype: (DType, Span),
    /// One entry per axis.
    pub shape: Vec<ShapeDim>,
    /// The whole declaration.
    pub span: Span,
}

/// One axis extent in a declaration.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeDim {
    /// A dim name (`T`).
    Named(Ident),
    /// A literal extent (`3`).
    Fixed(u64, Span),
}

/// `kernel attention_grad = grad(attention, wrt: [WQ, WK, WV])`, or the same with
/// `jacobian` or `hessian`.
#[derive(Clone, Debug, PartialEq)]
pub struct GradKernel {
    /// The derived kernel's name.
    pub name: Ident,
    /// Which derivative.
    pub kind: Derivative,
    /// The kernel being differentiated.
    pub of: Ident,
    /// The inputs to differentiate with respect to.
    pub wrt: Vec<Ident>,
    /// The whole item.
    pub span: Span,
}

/// The derivative a derived kernel item asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derivative {
    /// `grad`: the vector-Jacobian product (reverse mode), one seed per output.
    Grad,
    /// `jacobian`: the whole Jacobian of the one output.
    Jacobian,
    /// `hessian`: the whole Hessian of the one scalar output.
    Hessian,
}

impl Derivative {
    /// Every derivative, in the order messages list them.
    pub const ALL: [Derivative; 3] = [Derivative::Grad, Derivative::Jacobian, Derivative::Hessian];

    /// The item's keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Derivative::Grad => "grad",
            Derivative::Jacobian => "jacobian",
            Derivative::Hessian => "hessian",
        }
    }
}

/// `S[i, j] = expr` or `s = expr` (an assignment; the only statement form).
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// The tensor being defined.
    pub target: Ident,
    /// The indices on the left (empty for a scalar or a whole-tensor `einsum` result).
    pub indices: Vec<IndexExpr>,
    /// True when the left side was written with brackets (`s[] = ...` or `C[i] = ...`).
    pub bracketed: bool,
    /// The right-hand side.
    pub value: Expr,
    /// `schedule KIND(...)` after the right-hand side: how the op defining the tensor runs.
    pub schedule: Option<ScheduleAnnotation>,
    /// Extents written at indices (`i: N` in `delta[i: N, i]` or `sum[j: K](...)`), in source
    /// order. An index has one extent in a statement, so each binds it for the whole statement.
    pub extents: Vec<IndexExtent>,
    /// The whole statement (without its schedule annotation).
    pub span: Span,
}

/// `i: N` written where an index is: the index and its extent.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexExtent {
    /// The index, where the annotation is written.
    pub index: Ident,
    /// Its extent: a dim name or a literal.
    pub extent: ShapeDim,
}

/// `schedule gemm(mr = 4, kc = 128)` after a statement: a (possibly partial) schedule for the
/// op that defines the statement's tensor (`docs/schedules.md`). Checked by sema.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleAnnotation {
    /// The schedule's kind (`gemm`, `loops`, `naive`).
    pub kind: Ident,
    /// The `key = value` items, as written.
    pub items: Vec<RawItem<Span>>,
    /// The whole annotation, from `schedule` to `)`.
    pub span: Span,
}

/// One index position in an access: an index variable or a literal position.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexExpr {
    /// An index variable (`i`).
    Var(Ident),
    /// A fixed position (`0`).
    Fixed(u64, Span),
}

impl IndexExpr {
    /// Where this index was written.
    pub fn span(&self) -> Span {
        match self {
            IndexExpr::Var(id) => id.span,
            IndexExpr::Fixed(_, s) => *s,
        }
    }
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// Binary arithmetic and logic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `@`: not an operator of the language. The parser accepts it (at the binding strength of
    /// `*`) so that `sema` can reject it with the index-notation form of the product.
    MatMul,
}

impl BinOp {
    /// The operator as written in source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::MatMul => "@",
        }
    }
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `!c`
    Not,
}

/// The expression forms.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A numeric literal, kept as written (`2`, `0.5`, `1e-3`); its type comes from context.
    Number(String),
    /// `inf` (write `-inf` for negative infinity).
    Inf,
    /// A bare name: a rank-0 tensor, a dim used as a value (`sqrt(K)`), or an error.
    Name(Ident),
    /// `A[i, j]`, including the built-ins `delta[i, j]` and `eps[i, j, k]`.
    Access {
        /// The tensor (or built-in) name.
        tensor: Ident,
        /// The indices, in axis order.
        indices: Vec<IndexExpr>,
    },
    /// A prefix operator.
    Unary(UnOp, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(a, b)`: elementwise functions, casts (`f32(x)`) and `where(c, a, b)`.
    Call {
        /// The function name.
        func: Ident,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `sum[j](e)`, `max[j](e)`, `min[j](e)`, `prod[j](e)`, `softmax[j](e)`,
    /// `logsumexp[j](e)`: an operation over the listed indices.
    Reduce {
        /// The operation name.
        op: Ident,
        /// The indices it works along.
        indices: Vec<Ident>,
        /// The operand.
        body: Box<Expr>,
    },
    /// `einsum("ij,jk->ik", A, B)` with numpy's semantics.
    Einsum {
        /// The subscripts string's contents (without quotes) and the span of the literal.
        subscripts: (String, Span),
        /// The operand tensors.
        args: Vec<Ident>,
    },
    /// The right-hand side of a statement that did not parse (its errors are reported): the
    /// statement's target is known but not its value.
    Error,
}
