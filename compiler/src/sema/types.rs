//! The checked form of a statement's right-hand side: an expression tree whose nodes know their
//! dtype and the indices that escape them, produced by [`super::expr`] and consumed by
//! [`super::lower`]. Also the extent and tensor-type values sema works with.

use crate::diag::Span;
use crate::ir::tensor::{BinaryFn, CmpOp, Extent, ReduceKind, TensorType, UnaryFn, ValueId};
use einc_runtime::{DType, Scalar};

/// An extent as sema sees it: the value compared (fixed dims resolved to their number) and the
/// text shown to the user (`D`, `3`, `N (= 3)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ext {
    /// What equality is decided on; also what goes into the IR.
    pub norm: Extent,
    /// How a message names it.
    pub shown: String,
}

impl Ext {
    /// A literal extent.
    pub fn fixed(n: u64) -> Ext {
        Ext {
            norm: Extent::Fixed(n),
            shown: n.to_string(),
        }
    }

    /// True when the extent was written as a number (not through a dim name).
    pub fn is_literal(&self) -> bool {
        matches!(self.norm, Extent::Fixed(n) if self.shown == n.to_string())
    }

    /// The number of values, when known before the call.
    pub fn value(&self) -> Option<u64> {
        match self.norm {
            Extent::Fixed(n) => Some(n),
            Extent::Dim(_) => None,
        }
    }
}

/// A tensor's dtype and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ty {
    /// Element type.
    pub dtype: DType,
    /// One extent per axis.
    pub shape: Vec<Ext>,
}

impl Ty {
    /// The IR type.
    pub fn ir(&self) -> TensorType {
        TensorType {
            dtype: self.dtype,
            shape: self.shape.iter().map(|e| e.norm.clone()).collect(),
        }
    }
}

/// An index name with the place it was (first) written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Idx {
    /// The index name.
    pub name: String,
    /// A place where it occurs.
    pub span: Span,
}

/// What addresses one axis of an access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Axis {
    /// An index variable.
    Var(String),
    /// A literal position.
    Fixed(u64),
}

/// A checked expression node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TExpr {
    /// What it computes.
    pub kind: TKind,
    /// Its dtype; `None` while it still adopts the dtype of its context (literals, dims used as
    /// values, `delta`/`eps`, and expressions built only from those). Every node has `Some`
    /// after dtype settlement.
    pub dtype: Option<DType>,
    /// The indices free in this node, in order of first occurrence.
    pub escapes: Vec<Idx>,
    /// Where it was written.
    pub span: Span,
}

impl TExpr {
    /// The names of the escaping indices.
    pub fn escape_names(&self) -> Vec<String> {
        self.escapes.iter().map(|i| i.name.clone()).collect()
    }
}

/// The forms of a checked expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TKind {
    /// An element of a tensor (rank 0: the tensor's only element).
    Access {
        /// The tensor read.
        value: ValueId,
        /// One entry per axis.
        axes: Vec<Axis>,
    },
    /// Kronecker delta of the indices.
    Delta(Vec<String>),
    /// Levi-Civita symbol of the indices.
    Eps(Vec<String>),
    /// A numeric literal as written; replaced by [`TKind::Lit`] when its dtype is settled.
    Number(String),
    /// `inf`; replaced by [`TKind::Lit`] when its dtype is settled.
    Inf,
    /// A constant of a settled dtype.
    Lit(Scalar),
    /// A dim's extent used as a value.
    DimValue(String),
    /// An index variable's value (only inside `where` conditions).
    IndexVar(String),
    /// A unary function.
    Unary(UnaryFn, Box<TExpr>),
    /// A binary function.
    Binary(BinaryFn, Box<TExpr>, Box<TExpr>),
    /// `where(cond, a, b)`.
    Select(Box<TCond>, Box<TExpr>, Box<TExpr>),
    /// A conversion.
    Cast(DType, Box<TExpr>),
    /// A reduction over `over`: an implicit Einstein sum or an explicit `sum/max/min/prod`.
    Reduce {
        /// How values combine.
        kind: ReduceKind,
        /// The indices removed.
        over: Vec<String>,
        /// The operand.
        body: Box<TExpr>,
    },
    /// `softmax[along](body)`: keeps the indices, normalised along `along`.
    Softmax {
        /// The normalised indices.
        along: Vec<String>,
        /// The operand.
        body: Box<TExpr>,
    },
    /// `log(softmax[along](body))`, computed as `body - logsumexp[along](body)`: keeps the
    /// indices, and stays finite where the softmax underflows to 0.
    LogSoftmax {
        /// The normalised indices.
        along: Vec<String>,
        /// The operand.
        body: Box<TExpr>,
    },
    /// `logsumexp[along](body)`: removes `along`.
    LogSumExp {
        /// The removed indices.
        along: Vec<String>,
        /// The operand.
        body: Box<TExpr>,
    },
}

/// A checked `where` condition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TCond {
    /// A comparison of two values of one dtype.
    Cmp(CmpOp, Box<TExpr>, Box<TExpr>),
    /// Both hold.
    And(Box<TCond>, Box<TCond>),
    /// Either holds.
    Or(Box<TCond>, Box<TCond>),
    /// Does not hold.
    Not(Box<TCond>),
}
