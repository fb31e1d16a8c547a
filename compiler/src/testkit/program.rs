//! Random well-typed `.ein` programs, for the differential tests and the structure-aware fuzz
//! target (one generator for both).
//!
//! A program is one kernel `k` of one to four statements. Each statement is one of:
//! - an **index statement** `t[i0, i1] = ...`: a sum of product terms of one to six factors.
//!   Factors are accesses (with diagonals `A[i, i]`, fixed positions `A[2, i]` and reused
//!   inputs or earlier locals), literals, dims used as values, `delta` and `eps`, and nested
//!   calls: elementwise functions, explicit reductions (`sum max min prod logsumexp`), `where`
//!   masks on index comparisons, casts from another dtype and parenthesised sums. Indices
//!   repeated in a term and not on the left are summed (Einstein's rule);
//! - a **softmax** `t[i, j] = softmax[j](...)` or `logsumexp[j](...)`;
//! - a **GEMM with an epilogue** `t[i, j] = relu(A[i, k] * B[k, j] / 2 + b[j])`: a matrix
//!   product (operands and result in any order of their axes, a batch index now and then)
//!   under some of a scale or divisor, a bias along one of its indices, `relu`, and a cast to
//!   the other float dtype, the shapes the GEMM lowering fuses into its store of C;
//! - an **einsum** `t = einsum("...", A, B, ...)` of one to six operands with repeated labels,
//!   size-1 broadcasting, `...` over broadcast dims, implicit or explicit output and numpy's
//!   type promotion.
//!
//! Dims are symbolic (`dims D0`), fixed (`dims D0 = 5`) or literal extents, with extents drawn
//! from 0, 1, primes and sizes around vector and tile boundaries; the total iteration space is
//! kept under [`Config::max_points`] by shrinking extents. Every statement's result is read by
//! a later one or is an output, so everything computed is checked.
//!
//! Validity is by construction: an index that escapes a nested expression is always protected
//! (on the left, or reduced by an enclosing explicit reduction), indices summed by a term are
//! fresh and occur at least twice in its accesses, and reduction indices are fresh. A program
//! that sema rejects is a bug here or in sema, and the tests report it.
//!
//! Floating-point programs are kept numerically tame so that the comparison tolerance can be
//! tight: logarithms, square roots and divisors see `abs(x) + 1`; value comparisons read only
//! input elements (never rounded results); float-to-integer casts read only inputs.

use super::choices::Choices;
use einc_runtime::DType;
use std::fmt::Write as _;

/// Size limits of the generated programs.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The largest number of statements (at least 1).
    pub max_stmts: usize,
    /// Upper bound on the iteration points of all statements together, at the call's
    /// extents (extents are shrunk until it holds, except dims whose extent is fixed by
    /// `eps`, broadcasting or fixed positions).
    pub max_points: u64,
    /// Nesting depth of calls and reductions inside a statement.
    pub max_depth: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_stmts: 4,
            max_points: 20_000,
            max_depth: 2,
        }
    }
}

/// A generated program and the extents to call it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The `.ein` source: `dims` lines and one kernel named [`KERNEL`].
    pub source: String,
    /// The value of every symbolic dim for the call, in declaration order.
    pub dims: Vec<(String, u64)>,
}

/// The name of the generated kernel.
pub const KERNEL: &str = "k";

/// Extents to draw from: 0, 1, small sizes, primes, and sizes around the 4- and 8-lane
/// vector widths and 16/32/64/128 tiles.
const SMALL: &[u64] = &[1, 2, 3, 4, 5];
const BOUNDARY: &[u64] = &[7, 8, 9, 11, 13, 15, 16, 17];
const LARGE: &[u64] = &[31, 32, 33, 63, 64, 65, 127, 128, 129];

/// A program made from `choices`.
pub fn generate(choices: &mut Choices<'_>, config: &Config) -> Generated {
    let mut g = Gen {
        c: choices,
        config: *config,
        dims: Vec::new(),
        tensors: Vec::new(),
        stmts: Vec::new(),
        labels: 0,
    };
    let n = 1 + g.c.below(config.max_stmts.max(1));
    for _ in 0..n {
        g.statement();
    }
    g.fit_budget();
    g.render()
}

/// How a dim is written in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spelling {
    /// `dims D0`: bound by the call.
    Symbolic,
    /// `dims D0 = 5`.
    Fixed,
    /// The number itself in each declaration.
    Literal,
}

#[derive(Clone, Debug)]
struct Dim {
    extent: u64,
    spelling: Spelling,
    /// Extents below this break a fixed position.
    min: u64,
    /// The extent may not change (`eps` dims, the size-1 broadcast dim).
    exact: bool,
    /// The rank of the `eps` that uses this dim, or 1 for the broadcast dim.
    special: Option<u64>,
}

#[derive(Clone, Debug)]
struct Tensor {
    dtype: DType,
    dims: Vec<usize>,
    /// The statement defining it, or `None` for an input.
    def: Option<usize>,
}

/// An index variable of one statement.
#[derive(Clone, Debug)]
struct Ix {
    name: String,
    dim: usize,
}

#[derive(Clone, Debug)]
enum Axis {
    Var(usize),
    Pos(u64),
}

/// A sum of terms, each negated or not.
#[derive(Clone, Debug)]
struct Sum(Vec<(bool, Term)>);

/// Factors joined by `*` (`false`) or `/` (`true`); the first is never a divisor.
#[derive(Clone, Debug)]
struct Term(Vec<(bool, Factor)>);

#[derive(Clone, Debug)]
enum Factor {
    /// A tensor access, cast to a dtype when it is not the context's.
    Access {
        tensor: usize,
        axes: Vec<Axis>,
        cast: Option<DType>,
    },
    Delta(Vec<usize>),
    Eps(Vec<usize>),
    Lit(String),
    /// A dim used as a value (`sqrt(D)` in a float context).
    DimValue(usize, bool),
    /// `f(args)`, where `abs1` args are written `abs(x) + 1`.
    Call {
        f: &'static str,
        args: Vec<Sum>,
        abs1: bool,
        extra: Option<String>,
    },
    Where(Cond, Box<Sum>, Box<Sum>),
    Reduce(&'static str, Vec<usize>, Box<Sum>),
    Cast(DType, Box<Sum>),
    Paren(Box<Sum>),
}

#[derive(Clone, Debug)]
enum Cond {
    Idx(&'static str, usize, usize),
    IdxLit(&'static str, usize, u64),
    /// An input element compared with 0.
    Value(&'static str, Box<Factor>),
    And(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

#[derive(Clone, Debug)]
enum Rhs {
    Sum(Sum),
    Softmax(usize, Sum),
    Einsum(String, Vec<usize>),
}

#[derive(Clone, Debug)]
struct Stmt {
    /// The tensor it defines.
    tensor: usize,
    ixs: Vec<Ix>,
    lhs: Vec<usize>,
    rhs: Rhs,
    /// Iteration points at the current extents: the product of these dims' extents.
    space: Vec<usize>,
}

struct Gen<'c, 'b> {
    c: &'c mut Choices<'b>,
    config: Config,
    dims: Vec<Dim>,
    tensors: Vec<Tensor>,
    stmts: Vec<Stmt>,
    /// Einsum labels handed out in the current statement.
    labels: usize,
}

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::I64];

/// State of the statement being generated.
#[derive(Default)]
struct StmtCx {
    ixs: Vec<Ix>,
    /// Every dim the statement iterates over (for the cost estimate).
    space: Vec<usize>,
    counter: usize,
}

/// A statement as drafted, before it joins the program.
struct Draft {
    ixs: Vec<Ix>,
    lhs: Vec<usize>,
    rhs: Rhs,
    /// Every dim the statement iterates over (for the cost estimate).
    space: Vec<usize>,
    dtype: DType,
    /// The dims of the tensor it defines.
    dims: Vec<usize>,
}

impl StmtCx {
    /// The statement `lhs = rhs` over this context's indices.
    fn finish(self, lhs: Vec<usize>, rhs: Rhs, dtype: DType) -> Draft {
        let dims = lhs.iter().map(|&i| self.ixs[i].dim).collect();
        Draft {
            ixs: self.ixs,
            lhs,
            rhs,
            space: self.space,
            dtype,
            dims,
        }
    }

    fn fresh(&mut self, prefix: &str, dim: usize) -> usize {
        self.counter += 1;
        self.ixs.push(Ix {
            name: format!("{prefix}{}", self.counter),
            dim,
        });
        self.space.push(dim);
        self.ixs.len() - 1
    }
}

impl Gen<'_, '_> {
    // ----- dims and tensors ------------------------------------------------------------

    fn new_dim(&mut self) -> usize {
        let extent = match self.c.below(100) {
            0..=4 => 0,
            5..=54 => *self.c.pick(SMALL),
            55..=84 => *self.c.pick(BOUNDARY),
            _ => *self.c.pick(LARGE),
        };
        let spelling = *self
            .c
            .pick(&[Spelling::Symbolic, Spelling::Fixed, Spelling::Literal]);
        self.dims.push(Dim {
            extent,
            spelling,
            min: 0,
            exact: false,
            special: None,
        });
        self.dims.len() - 1
    }

    /// An existing dim (most of the time) or a new one.
    fn some_dim(&mut self) -> usize {
        let ordinary: Vec<usize> = (0..self.dims.len())
            .filter(|&d| self.dims[d].special.is_none())
            .collect();
        if !ordinary.is_empty() && !self.c.chance(30) {
            return *self.c.pick(&ordinary);
        }
        self.new_dim()
    }

    /// The dim of extent `n` used by `eps` of rank `n` (`n = 1`: the size-1 broadcast dim).
    fn special_dim(&mut self, n: u64) -> usize {
        if let Some(d) = self.dims.iter().position(|d| d.special == Some(n)) {
            return d;
        }
        let spelling = if self.c.chance(50) {
            Spelling::Fixed
        } else {
            Spelling::Literal
        };
        self.dims.push(Dim {
            extent: n,
            spelling,
            min: n,
            exact: true,
            special: Some(n),
        });
        self.dims.len() - 1
    }

    fn new_input(&mut self, dtype: DType, dims: Vec<usize>) -> usize {
        self.tensors.push(Tensor {
            dtype,
            dims,
            def: None,
        });
        self.tensors.len() - 1
    }

    fn dtype(&mut self) -> DType {
        match self.c.below(10) {
            0..=3 => DType::F32,
            4..=5 => DType::F64,
            6..=7 => DType::I32,
            _ => DType::I64,
        }
    }

    // ----- statements ------------------------------------------------------------------

    fn statement(&mut self) {
        let n = self.stmts.len();
        let dtype = self.dtype();
        let form = self.c.below(100);
        let stmt = if form < 25 {
            self.einsum_statement()
        } else if form < 35 && dtype.is_float() {
            self.softmax_statement(dtype)
        } else if form < 43 && dtype.is_float() {
            self.gemm_statement(dtype)
        } else {
            self.index_statement(dtype)
        };
        let Draft {
            ixs,
            lhs,
            rhs,
            space,
            dtype,
            dims,
        } = stmt;
        self.tensors.push(Tensor {
            dtype,
            dims,
            def: Some(n),
        });
        self.stmts.push(Stmt {
            tensor: self.tensors.len() - 1,
            ixs,
            lhs,
            rhs,
            space,
        });
    }

    /// The left side: up to three indices (over existing dims mostly).
    fn lhs(&mut self, cx: &mut StmtCx, at_least: usize) -> Vec<usize> {
        let k = at_least + self.c.below(4 - at_least);
        (0..k)
            .map(|_| {
                let d = if self.c.chance(5) {
                    let n = 2 + self.c.below(2) as u64;
                    self.special_dim(n)
                } else {
                    self.some_dim()
                };
                cx.fresh("i", d)
            })
            .collect()
    }

    fn index_statement(&mut self, dtype: DType) -> Draft {
        let mut cx = StmtCx::default();
        let locals: Vec<usize> = (0..self.tensors.len())
            .filter(|&t| self.tensors[t].def.is_some())
            .collect();
        let (lhs, seed, dtype) = if !locals.is_empty() && self.c.chance(60) {
            // Read an earlier local (transposed, contracted or elementwise), so that
            // statements feed each other.
            let t = locals[locals.len() - 1 - self.c.below(locals.len())];
            let mut lhs = Vec::new();
            let mut axes = Vec::new();
            for &d in &self.tensors[t].dims.clone() {
                let ix = if self.c.chance(70) {
                    let i = cx.fresh("i", d);
                    lhs.push(i);
                    i
                } else {
                    cx.fresh("s", d)
                };
                axes.push(ix);
            }
            for i in (1..lhs.len()).rev() {
                let j = self.c.below(i + 1);
                lhs.swap(i, j);
            }
            if lhs.len() < 3 && self.c.chance(30) {
                let d = self.some_dim();
                lhs.push(cx.fresh("i", d));
            }
            let own = self.tensors[t].dtype;
            let dtype = if self.c.chance(80) || (own.is_float() && !dtype.is_float()) {
                own
            } else {
                dtype
            };
            (lhs, Some((t, axes)), dtype)
        } else {
            (self.lhs(&mut cx, 0), None, dtype)
        };
        let mut sum = self.sum(&mut cx, dtype, &lhs, self.config.max_depth);
        if let Some((t, axes)) = seed {
            // The seed's summed indices need a second occurrence: a new input reading them.
            let summed: Vec<usize> = axes.iter().copied().filter(|a| !lhs.contains(a)).collect();
            let own = self.tensors[t].dtype;
            let seed = Factor::Access {
                tensor: t,
                axes: axes.into_iter().map(Axis::Var).collect(),
                cast: (own != dtype).then_some(dtype),
            };
            let term = &mut sum.0[0].1 .0;
            term.insert(0, (false, seed));
            if !summed.is_empty() {
                let partner = self.access(&mut cx, dtype, summed);
                term.insert(1, (false, partner));
            }
        }
        cx.finish(lhs, Rhs::Sum(sum), dtype)
    }

    /// `t[i, j] = cast(relu(A[i, k] * B[k, j] * s + b[j]))` with each part of the epilogue
    /// present or not (see the module documentation); `dtype` is the product's.
    fn gemm_statement(&mut self, dtype: DType) -> Draft {
        let mut cx = StmtCx::default();
        let (di, dj, dk) = (self.some_dim(), self.some_dim(), self.some_dim());
        let i = cx.fresh("i", di);
        let j = cx.fresh("i", dj);
        let k = cx.fresh("s", dk);
        let batch = self.c.chance(20).then(|| {
            let d = self.some_dim();
            cx.fresh("i", d)
        });
        let ordered = |c: &mut Choices<'_>, mut v: Vec<usize>| {
            for n in (1..v.len()).rev() {
                v.swap(n, c.below(n + 1));
            }
            v
        };
        let with_batch = |v: Vec<usize>| batch.into_iter().chain(v).collect::<Vec<usize>>();
        let a_ixs = ordered(self.c, with_batch(vec![i, k]));
        let b_ixs = ordered(self.c, with_batch(vec![k, j]));
        let lhs = ordered(self.c, with_batch(vec![i, j]));
        let a = self.access(&mut cx, dtype, a_ixs);
        let b = self.access(&mut cx, dtype, b_ixs);
        let mut product = vec![(false, a), (false, b)];
        match self.c.below(4) {
            0 => product.push((false, Factor::Lit((*self.c.pick(&["0.5", "3"])).into()))),
            1 => product.push((true, Factor::Lit((*self.c.pick(&["2", "3"])).into()))),
            _ => {}
        }
        let mut sum = Sum(vec![(false, Term(product))]);
        if self.c.chance(50) {
            let along = *self.c.pick(&[i, j]);
            let bias = self.access(&mut cx, dtype, vec![along]);
            sum.0.push((false, Term(vec![(false, bias)])));
        }
        let one = |f: Factor| Sum(vec![(false, Term(vec![(false, f)]))]);
        if self.c.chance(50) {
            sum = one(Factor::Call {
                f: "relu",
                args: vec![sum],
                abs1: false,
                extra: None,
            });
        }
        let mut result = dtype;
        if self.c.chance(25) {
            result = if dtype == DType::F32 {
                DType::F64
            } else {
                DType::F32
            };
            sum = one(Factor::Cast(result, Box::new(sum)));
        }
        cx.finish(lhs, Rhs::Sum(sum), result)
    }

    fn softmax_statement(&mut self, dtype: DType) -> Draft {
        let mut cx = StmtCx::default();
        let lhs = self.lhs(&mut cx, 1);
        let depth = self.config.max_depth.saturating_sub(1);
        let rhs = if self.c.chance(60) {
            let j = lhs[self.c.below(lhs.len())];
            Rhs::Softmax(j, self.sum(&mut cx, dtype, &lhs, depth))
        } else {
            let d = self.some_dim();
            let j = cx.fresh("r", d);
            let mut want = lhs.clone();
            want.push(j);
            let body = self.sum(&mut cx, dtype, &want, depth);
            Rhs::Sum(Sum(vec![(
                false,
                Term(vec![(
                    false,
                    Factor::Reduce("logsumexp", vec![j], Box::new(body)),
                )]),
            )]))
        };
        cx.finish(lhs, rhs, dtype)
    }

    // ----- expressions -----------------------------------------------------------------

    /// A sum whose escaping indices are exactly `want` (all protected in the context).
    fn sum(&mut self, cx: &mut StmtCx, dtype: DType, want: &[usize], depth: usize) -> Sum {
        let nterms = if depth > 0 && self.c.chance(25) { 2 } else { 1 };
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); nterms];
        for &w in want {
            let t = self.c.below(nterms);
            parts[t].push(w);
            for (u, part) in parts.iter_mut().enumerate() {
                if u != t && self.c.chance(50) {
                    part.push(w);
                }
            }
        }
        Sum(parts
            .iter()
            .map(|p| {
                let minus = self.c.chance(15);
                (minus, self.term(cx, dtype, p, depth))
            })
            .collect())
    }

    /// A product term whose escaping indices are exactly `want`, summing fresh indices.
    fn term(&mut self, cx: &mut StmtCx, dtype: DType, want: &[usize], depth: usize) -> Term {
        let naccess = match self.c.below(20) {
            0..=7 => 1,
            8..=13 => 2,
            14..=16 => 3,
            17 => 4,
            18 => 5,
            _ => 6,
        };
        let mut factors: Vec<(bool, Factor)> = Vec::new();
        // Index occurrences to place in accesses.
        let mut occurrences: Vec<usize> = Vec::new();
        // Nested factors take some of the wanted indices.
        let mut direct: Vec<usize> = Vec::new();
        let mut nested: Vec<Vec<usize>> = Vec::new();
        let nnested = if depth > 0 && self.c.chance(35) {
            1 + usize::from(self.c.chance(20))
        } else {
            0
        };
        nested.resize(nnested, Vec::new());
        for &w in want {
            if nnested > 0 && self.c.chance(50) {
                let k = self.c.below(nnested);
                nested[k].push(w);
                if self.c.chance(20) {
                    direct.push(w);
                }
            } else {
                direct.push(w);
            }
        }
        occurrences.extend(&direct);
        // Summed indices: fresh, at least two occurrences each.
        let nsummed = if naccess >= 2 {
            self.c.below(3)
        } else {
            usize::from(self.c.chance(15))
        };
        for _ in 0..nsummed {
            let d = self.some_dim();
            let s = cx.fresh("s", d);
            occurrences.push(s);
            occurrences.push(s);
        }
        // Extra occurrences of wanted (protected) indices: Hadamard products and diagonals.
        for &w in &direct {
            if self.c.chance(15) {
                occurrences.push(w);
            }
        }
        // delta[u, s] with s summed: s also occurs in an access.
        let mut partners: Vec<usize> = occurrences.clone();
        partners.dedup();
        if !partners.is_empty() && self.c.chance(8) {
            let u = partners[self.c.below(partners.len())];
            let s = cx.fresh("s", cx.ixs[u].dim);
            occurrences.push(s);
            factors.push((false, Factor::Delta(vec![u, s])));
        }
        // eps over fresh summed indices (and wanted indices of the right extent).
        if self.c.chance(6) {
            let ranks = if self.c.chance(20) { 3 } else { 2 };
            let n = 2 + self.c.below(ranks) as u64;
            let d = self.special_dim(n);
            let mut ids = Vec::new();
            for &w in want {
                if cx.ixs[w].dim == d && (ids.len() as u64) < n - 1 && !ids.contains(&w) {
                    ids.push(w);
                }
            }
            while (ids.len() as u64) < n {
                let s = cx.fresh("s", d);
                occurrences.push(s);
                ids.push(s);
            }
            factors.push((false, Factor::Eps(ids)));
        }
        // Accesses: each occurrence goes to one of them.
        let mut slots: Vec<Vec<usize>> = vec![Vec::new(); naccess];
        for &o in &occurrences {
            let k = self.c.below(naccess);
            slots[k].push(o);
        }
        // Empty slots would be scalar inputs: keep few of them.
        let any = slots.iter().any(|s| !s.is_empty());
        slots.retain(|s| !s.is_empty() || !any || self.c.chance(15));
        for slot in slots {
            let f = self.access(cx, dtype, slot);
            factors.push((false, f));
        }
        for part in nested {
            let f = self.nested(cx, dtype, &part, depth - 1);
            factors.push((false, f));
        }
        if self.c.chance(10) {
            let lit = if dtype.is_float() {
                self.c.pick(&["2", "0.5", "1.5", "3"])
            } else {
                self.c.pick(&["2", "3", "1"])
            };
            factors.push((false, Factor::Lit((*lit).to_string())));
        }
        if self.c.chance(5) && !cx.space.is_empty() {
            let d = cx.space[self.c.below(cx.space.len())];
            factors.push((false, Factor::DimValue(d, dtype.is_float())));
        }
        // Shuffle (the order matters for nothing but the text), then maybe divide.
        for i in (1..factors.len()).rev() {
            let j = self.c.below(i + 1);
            factors.swap(i, j);
        }
        if self.c.chance(10) {
            let divisor = self.divisor(cx, dtype, depth);
            factors.push((true, divisor));
        }
        Term(factors)
    }

    /// A divisor: any factor for integers (division by 0 is defined), `abs(x) + 1` or a
    /// literal for floats.
    fn divisor(&mut self, cx: &mut StmtCx, dtype: DType, depth: usize) -> Factor {
        if !dtype.is_float() {
            return self.access(cx, dtype, Vec::new());
        }
        if depth > 0 && self.c.chance(50) {
            let body = self.sum(cx, dtype, &[], depth - 1);
            return Factor::Call {
                f: "abs1",
                args: vec![body],
                abs1: true,
                extra: None,
            };
        }
        Factor::Lit((*self.c.pick(&["2", "4", "0.5"])).to_string())
    }

    /// An access reading the indices `ixs` (in order; repeats read a diagonal).
    fn access(&mut self, cx: &mut StmtCx, dtype: DType, ixs: Vec<usize>) -> Factor {
        let mut axes: Vec<Axis> = ixs.iter().map(|&i| Axis::Var(i)).collect();
        let want: Vec<usize> = ixs.iter().map(|&i| cx.ixs[i].dim).collect();
        // A cast is a call, whose argument is analysed on its own: a repeated index would be
        // summed inside it. So only accesses without repeats are cast.
        let castable = (1..ixs.len()).all(|k| !ixs[..k].contains(&ixs[k]));
        // Reuse a tensor of matching dims: earlier locals first.
        if self.c.chance(60) {
            // Never a rounded float result cast to an integer (it could truncate either way).
            let candidates: Vec<usize> = (0..self.tensors.len())
                .filter(|&t| {
                    let tt = &self.tensors[t];
                    tt.dims == want
                        && (tt.dtype == dtype
                            || castable
                                && !(tt.dtype.is_float() && !dtype.is_float() && tt.def.is_some()))
                })
                .collect();
            if !candidates.is_empty() {
                let t = candidates[candidates.len() - 1 - self.c.below(candidates.len())];
                let cast = (self.tensors[t].dtype != dtype).then_some(dtype);
                return Factor::Access {
                    tensor: t,
                    axes,
                    cast,
                };
            }
        }
        let mut dims = want;
        // A fixed position on an extra axis now and then.
        if dims.len() < 4 && self.c.chance(10) {
            let d = self.some_dim();
            if !self.dims[d].exact {
                let p = self.c.below(3) as u64;
                let dim = &mut self.dims[d];
                dim.min = dim.min.max(p + 1);
                dim.extent = dim.extent.max(p + 1);
                let at = self.c.below(dims.len() + 1);
                dims.insert(at, d);
                axes.insert(at, Axis::Pos(p));
            }
        }
        let input_dtype = if castable && self.c.chance(10) {
            // Read another dtype through a cast (integers into floats, or inputs anywhere).
            *self.c.pick(&DTYPES)
        } else {
            dtype
        };
        let tensor = self.new_input(input_dtype, dims);
        Factor::Access {
            tensor,
            axes,
            cast: (input_dtype != dtype).then_some(dtype),
        }
    }

    /// A nested factor whose escaping indices are exactly `want`.
    fn nested(&mut self, cx: &mut StmtCx, dtype: DType, want: &[usize], depth: usize) -> Factor {
        let float = dtype.is_float();
        match self.c.below(8) {
            0 | 1 => {
                let fs: &[&'static str] = if float {
                    &[
                        "exp", "tanh", "sigmoid", "relu", "abs", "neg", "log", "sqrt", "rsqrt",
                    ]
                } else {
                    &["relu", "abs", "neg"]
                };
                let f = *self.c.pick(fs);
                let body = self.sum(cx, dtype, want, depth);
                Factor::Call {
                    f,
                    args: vec![body],
                    abs1: matches!(f, "log" | "sqrt" | "rsqrt"),
                    extra: None,
                }
            }
            2 => {
                let f = if float && self.c.chance(30) {
                    "pow"
                } else {
                    *self.c.pick(&["max", "min"])
                };
                if f == "pow" {
                    let body = self.sum(cx, dtype, want, depth);
                    let e = *self.c.pick(&["2", "0.5", "1.5", "3"]);
                    return Factor::Call {
                        f,
                        args: vec![body],
                        abs1: true,
                        extra: Some(e.to_string()),
                    };
                }
                let (a, b) = self.split(want);
                let a = self.sum(cx, dtype, &a, depth);
                let b = self.sum(cx, dtype, &b, depth);
                Factor::Call {
                    f,
                    args: vec![a, b],
                    abs1: false,
                    extra: None,
                }
            }
            3 | 4 => {
                let ops: &[&'static str] = if float {
                    &["sum", "sum", "max", "min", "prod", "logsumexp"]
                } else {
                    &["sum", "sum", "max", "min", "prod"]
                };
                let op = *self.c.pick(ops);
                let n = 1 + usize::from(self.c.chance(25));
                let mut inner = want.to_vec();
                let mut over = Vec::new();
                for _ in 0..n {
                    let d = self.some_dim();
                    let r = cx.fresh("r", d);
                    over.push(r);
                    inner.push(r);
                }
                let body = self.sum(cx, dtype, &inner, depth);
                Factor::Reduce(op, over, Box::new(body))
            }
            5 => {
                let cond = self.cond(cx, want);
                let a = self.sum(cx, dtype, want, depth);
                let b = if self.c.chance(50) {
                    let lit = if float && self.c.chance(50) {
                        "-inf"
                    } else {
                        "0"
                    };
                    Sum(vec![(false, Term(vec![(false, Factor::Lit(lit.into()))]))])
                } else {
                    let (sub, _) = self.split(want);
                    self.sum(cx, dtype, &sub, depth)
                };
                Factor::Where(cond, Box::new(a), Box::new(b))
            }
            6 => {
                // A computation in another dtype, cast to this one (never float to integer:
                // a rounded result could truncate either way).
                let from = *self.c.pick(&DTYPES);
                let from = if !float && from.is_float() {
                    dtype
                } else {
                    from
                };
                let body = self.sum(cx, from, want, depth);
                if from == dtype {
                    Factor::Paren(Box::new(body))
                } else {
                    Factor::Cast(dtype, Box::new(body))
                }
            }
            _ => {
                let mut s = self.sum(cx, dtype, want, depth);
                if s.0.len() < 2 {
                    let t = self.term(cx, dtype, &[], depth);
                    s.0.push((self.c.chance(50), t));
                }
                Factor::Paren(Box::new(s))
            }
        }
    }

    /// Two subsets of `want` whose union is `want`.
    fn split(&mut self, want: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for &w in want {
            match self.c.below(3) {
                0 => a.push(w),
                1 => b.push(w),
                _ => {
                    a.push(w);
                    b.push(w);
                }
            }
        }
        (a, b)
    }

    /// A `where` condition on the wanted indices (or an input element when there are none).
    fn cond(&mut self, cx: &mut StmtCx, want: &[usize]) -> Cond {
        let ops = ["<", "<=", ">", ">=", "==", "!="];
        let c = if want.is_empty() || self.c.chance(20) {
            let dtype = *self.c.pick(&DTYPES);
            let ixs = if want.is_empty() {
                Vec::new()
            } else {
                vec![want[self.c.below(want.len())]]
            };
            let dims = ixs.iter().map(|&i| cx.ixs[i].dim).collect();
            let tensor = self.new_input(dtype, dims);
            let access = Factor::Access {
                tensor,
                axes: ixs.into_iter().map(Axis::Var).collect(),
                cast: None,
            };
            Cond::Value(ops[self.c.below(ops.len())], Box::new(access))
        } else if want.len() >= 2 || self.c.chance(50) {
            let a = want[self.c.below(want.len())];
            let b = want[self.c.below(want.len())];
            Cond::Idx(ops[self.c.below(ops.len())], a, b)
        } else {
            let a = want[self.c.below(want.len())];
            Cond::IdxLit(ops[self.c.below(ops.len())], a, self.c.below(4) as u64)
        };
        match self.c.below(10) {
            0 => Cond::Not(Box::new(c)),
            1 => {
                let d = self.cond(cx, want);
                Cond::And(Box::new(c), Box::new(d))
            }
            _ => c,
        }
    }

    // ----- einsum ----------------------------------------------------------------------

    fn label(&mut self) -> char {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let l = LETTERS[self.labels % LETTERS.len()];
        self.labels += 1;
        char::from(l)
    }

    fn einsum_statement(&mut self) -> Draft {
        self.labels = 0;
        let one = self.special_dim(1);
        let nops = match self.c.below(20) {
            0..=3 => 1,
            4..=11 => 2,
            12..=15 => 3,
            16..=17 => 4,
            18 => 5,
            _ => 6,
        };
        // Labels and their dims; `...` dims (right-aligned).
        let mut labels: Vec<(char, usize)> = Vec::new();
        let ell: Vec<usize> = if self.c.chance(25) {
            (0..1 + self.c.below(2)).map(|_| self.some_dim()).collect()
        } else {
            Vec::new()
        };
        let mut terms: Vec<String> = Vec::new();
        let mut operands: Vec<usize> = Vec::new();
        // Per label: whether some occurrence has the label's real dim.
        let mut counts: Vec<usize> = Vec::new();
        let mut full: Vec<bool> = Vec::new();
        // Per `...` position from the right: whether some operand has the real dim.
        let mut ell_full = vec![false; ell.len()];
        let mut ell_used = 0;
        let mut any_ellipsis = false;
        for _ in 0..nops {
            let reuse: Vec<usize> = (0..self.tensors.len())
                .filter(|&t| self.tensors[t].dims.len() <= 4)
                .collect();
            let mut text = String::new();
            if !reuse.is_empty() && self.c.chance(30) {
                let t = reuse[reuse.len() - 1 - self.c.below(reuse.len())];
                let dims = self.tensors[t].dims.clone();
                for d in dims {
                    let same: Vec<usize> =
                        (0..labels.len()).filter(|&l| labels[l].1 == d).collect();
                    let l = if !same.is_empty() && self.c.chance(60) {
                        same[self.c.below(same.len())]
                    } else {
                        let c = self.label();
                        labels.push((c, d));
                        counts.push(0);
                        full.push(false);
                        labels.len() - 1
                    };
                    counts[l] += 1;
                    full[l] = true;
                    text.push(labels[l].0);
                }
                terms.push(text);
                operands.push(t);
                continue;
            }
            let rank = self.c.below(4);
            let mut dims = Vec::new();
            let mut mine: Vec<usize> = Vec::new();
            for _ in 0..rank {
                let pick =
                    (!labels.is_empty() && self.c.chance(50)).then(|| self.c.below(labels.len()));
                // A label this operand holds broadcast (size 1) is not repeated in it.
                let pick = pick.filter(|&l| {
                    mine.iter()
                        .zip(&dims)
                        .all(|(&m, &d): (&usize, &usize)| m != l || d == labels[l].1)
                });
                let l = if let Some(l) = pick {
                    l
                } else {
                    let d = self.some_dim();
                    let c = self.label();
                    labels.push((c, d));
                    counts.push(0);
                    full.push(false);
                    labels.len() - 1
                };
                counts[l] += 1;
                let repeated = mine.contains(&l);
                mine.push(l);
                let d = labels[l].1;
                // Size-1 broadcasting, never on a label this operand repeats.
                let d = if !repeated && d != one && self.c.chance(10) {
                    one
                } else {
                    d
                };
                // A repeated label must have one size within the operand.
                let d = if repeated {
                    dims[mine.iter().position(|&m| m == l).unwrap_or(0)]
                } else {
                    d
                };
                full[l] |= d == labels[l].1;
                dims.push(d);
                text.push(labels[l].0);
            }
            if !ell.is_empty() && self.c.chance(70) {
                let covered = self.c.below(ell.len() + 1);
                let at = self.c.below(text.len() + 1);
                let mut ell_dims = Vec::new();
                for k in ell.len() - covered..ell.len() {
                    let real = !self.c.chance(15);
                    ell_full[k] |= real;
                    ell_dims.push(if real { ell[k] } else { one });
                }
                ell_used = ell_used.max(covered);
                any_ellipsis = true;
                let mut t = text[..at].to_string();
                t.push_str("...");
                t.push_str(&text[at..]);
                text = t;
                let pos = text[..at].chars().count();
                for (k, d) in ell_dims.into_iter().enumerate() {
                    dims.insert(pos + k, d);
                }
            }
            let dtype = self.dtype();
            let t = self.new_input(dtype, dims);
            terms.push(text);
            operands.push(t);
        }
        let ell_dims: Vec<usize> = (ell.len() - ell_used..ell.len())
            .map(|k| if ell_full[k] { ell[k] } else { one })
            .collect();
        let label_dim = |l: usize| if full[l] { labels[l].1 } else { one };
        let mut subscripts = terms.join(",");
        let mut out_dims = Vec::new();
        if self.c.chance(70) {
            let mut pool: Vec<usize> = (0..labels.len()).collect();
            let mut out: Vec<usize> = Vec::new();
            while !pool.is_empty() && self.c.chance(60) {
                out.push(pool.remove(self.c.below(pool.len())));
            }
            let mut text: String = out.iter().map(|&l| labels[l].0).collect();
            let mut dims: Vec<usize> = out.iter().map(|&l| label_dim(l)).collect();
            if ell_used > 0 || (any_ellipsis && self.c.chance(30)) {
                let at = self.c.below(out.len() + 1);
                text.insert_str(at, "...");
                for (k, &d) in ell_dims.iter().enumerate() {
                    dims.insert(at + k, d);
                }
            }
            subscripts.push_str("->");
            subscripts.push_str(&text);
            out_dims = dims;
        } else {
            out_dims.extend(&ell_dims);
            let mut once: Vec<usize> = (0..labels.len()).filter(|&l| counts[l] == 1).collect();
            once.sort_by_key(|&l| labels[l].0 as u32);
            out_dims.extend(once.iter().map(|&l| label_dim(l)));
        }
        // Stray spaces, never inside `...` or `->`.
        let chars: Vec<char> = subscripts.chars().collect();
        let mut spaced = String::new();
        for (i, &ch) in chars.iter().enumerate() {
            let inside =
                i > 0 && ((chars[i - 1] == '.' && ch == '.') || (chars[i - 1] == '-' && ch == '>'));
            if !inside && self.c.chance(5) {
                spaced.push(' ');
            }
            spaced.push(ch);
        }
        let dtype = operands
            .iter()
            .map(|&t| self.tensors[t].dtype)
            .reduce(DType::promote)
            .unwrap_or(DType::F32);
        let mut space: Vec<usize> = labels.iter().map(|l| l.1).collect();
        space.extend(&ell);
        Draft {
            ixs: Vec::new(),
            lhs: Vec::new(),
            rhs: Rhs::Einsum(spaced, operands),
            space,
            dtype,
            dims: out_dims,
        }
    }

    // ----- size ------------------------------------------------------------------------

    fn points(&self) -> u64 {
        self.stmts
            .iter()
            .map(|s| {
                s.space
                    .iter()
                    .fold(1u64, |n, &d| n.saturating_mul(self.dims[d].extent.max(1)))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Shrinks the largest adjustable extent until the program fits the point budget.
    fn fit_budget(&mut self) {
        while self.points() > self.config.max_points {
            let Some(d) = (0..self.dims.len())
                .filter(|&d| !self.dims[d].exact && self.dims[d].extent > self.dims[d].min.max(1))
                .max_by_key(|&d| self.dims[d].extent)
            else {
                return;
            };
            let dim = &mut self.dims[d];
            let smaller = SMALL
                .iter()
                .chain(BOUNDARY)
                .chain(LARGE)
                .copied()
                .filter(|&e| e < dim.extent && e >= dim.min)
                .max()
                .unwrap_or(dim.min);
            dim.extent = smaller.max(dim.min);
        }
    }

    // ----- text ------------------------------------------------------------------------

    fn dim_text(&self, d: usize) -> String {
        match self.dims[d].spelling {
            Spelling::Literal => self.dims[d].extent.to_string(),
            _ => format!("D{d}"),
        }
    }

    fn type_text(&self, dtype: DType, dims: &[usize]) -> String {
        if dims.is_empty() {
            return dtype.name().to_string();
        }
        let ds: Vec<String> = dims.iter().map(|&d| self.dim_text(d)).collect();
        format!("{}[{}]", dtype.name(), ds.join(", "))
    }

    fn render(&self) -> Generated {
        let mut read = vec![false; self.tensors.len()];
        for s in &self.stmts {
            self.visit_reads(s, &mut |t| read[t] = true);
        }
        let name = |t: usize| -> String {
            let tt = &self.tensors[t];
            match tt.def {
                None => format!("A{t}"),
                Some(n) if read[t] => format!("t{n}"),
                Some(n) => format!("o{n}"),
            }
        };
        let mut src = String::new();
        let declared: Vec<String> = (0..self.dims.len())
            .filter_map(|d| match self.dims[d].spelling {
                Spelling::Symbolic => Some(format!("D{d}")),
                Spelling::Fixed => Some(format!("D{d} = {}", self.dims[d].extent)),
                Spelling::Literal => None,
            })
            .collect();
        if !declared.is_empty() {
            let _ = writeln!(src, "dims {}", declared.join(", "));
        }
        let declare = |t: usize| {
            let tensor = &self.tensors[t];
            format!(
                "{}: {}",
                name(t),
                self.type_text(tensor.dtype, &tensor.dims)
            )
        };
        let params: Vec<String> = (0..self.tensors.len())
            .filter(|&t| self.tensors[t].def.is_none())
            .map(declare)
            .collect();
        let outputs: Vec<String> = (0..self.tensors.len())
            .filter(|&t| self.tensors[t].def.is_some() && !read[t])
            .map(declare)
            .collect();
        let _ = writeln!(
            src,
            "kernel {KERNEL}({}) -> ({}) {{",
            params.join(", "),
            outputs.join(", ")
        );
        for s in &self.stmts {
            let target = name(s.tensor);
            let lhs: Vec<&str> = s.lhs.iter().map(|&i| s.ixs[i].name.as_str()).collect();
            let lhs = if lhs.is_empty() {
                target
            } else {
                format!("{target}[{}]", lhs.join(", "))
            };
            let rhs = match &s.rhs {
                Rhs::Sum(sum) => self.sum_text(s, sum, &name),
                Rhs::Softmax(j, sum) => {
                    format!(
                        "softmax[{}]({})",
                        s.ixs[*j].name,
                        self.sum_text(s, sum, &name)
                    )
                }
                Rhs::Einsum(subscripts, ops) => {
                    let args: Vec<String> = ops.iter().map(|&t| name(t)).collect();
                    format!("einsum(\"{subscripts}\", {})", args.join(", "))
                }
            };
            let _ = writeln!(src, "    {lhs} = {rhs}");
        }
        src.push_str("}\n");
        let dims = (0..self.dims.len())
            .filter(|&d| self.dims[d].spelling == Spelling::Symbolic)
            .map(|d| (format!("D{d}"), self.dims[d].extent))
            .collect();
        Generated { source: src, dims }
    }

    fn visit_reads(&self, s: &Stmt, f: &mut dyn FnMut(usize)) {
        fn sum(x: &Sum, f: &mut dyn FnMut(usize)) {
            for (_, t) in &x.0 {
                for (_, fa) in &t.0 {
                    factor(fa, f);
                }
            }
        }
        fn factor(x: &Factor, f: &mut dyn FnMut(usize)) {
            match x {
                Factor::Access { tensor, .. } => f(*tensor),
                Factor::Call { args, .. } => args.iter().for_each(|a| sum(a, f)),
                Factor::Where(c, a, b) => {
                    cond(c, f);
                    sum(a, f);
                    sum(b, f);
                }
                Factor::Reduce(_, _, b) | Factor::Cast(_, b) | Factor::Paren(b) => sum(b, f),
                Factor::Delta(_) | Factor::Eps(_) | Factor::Lit(_) | Factor::DimValue(..) => {}
            }
        }
        fn cond(c: &Cond, f: &mut dyn FnMut(usize)) {
            match c {
                Cond::Value(_, a) => factor(a, f),
                Cond::And(a, b) => {
                    cond(a, f);
                    cond(b, f);
                }
                Cond::Not(a) => cond(a, f),
                Cond::Idx(..) | Cond::IdxLit(..) => {}
            }
        }
        match &s.rhs {
            Rhs::Sum(x) | Rhs::Softmax(_, x) => sum(x, f),
            Rhs::Einsum(_, ops) => ops.iter().for_each(|&t| f(t)),
        }
    }

    fn sum_text(&self, s: &Stmt, x: &Sum, name: &dyn Fn(usize) -> String) -> String {
        let mut out = String::new();
        for (k, (minus, t)) in x.0.iter().enumerate() {
            match (k, minus) {
                (0, true) => out.push('-'),
                (0, false) => {}
                (_, true) => out.push_str(" - "),
                (_, false) => out.push_str(" + "),
            }
            for (n, (div, f)) in t.0.iter().enumerate() {
                if n > 0 {
                    out.push_str(if *div { " / " } else { " * " });
                }
                out.push_str(&self.factor_text(s, f, name));
            }
        }
        out
    }

    fn factor_text(&self, s: &Stmt, f: &Factor, name: &dyn Fn(usize) -> String) -> String {
        let ix = |i: usize| s.ixs[i].name.clone();
        let list = |v: &[usize]| v.iter().map(|&i| ix(i)).collect::<Vec<_>>().join(", ");
        match f {
            Factor::Access { tensor, axes, cast } => {
                let mut t = name(*tensor);
                if !axes.is_empty() {
                    let a: Vec<String> = axes
                        .iter()
                        .map(|a| match a {
                            Axis::Var(i) => ix(*i),
                            Axis::Pos(p) => p.to_string(),
                        })
                        .collect();
                    t = format!("{t}[{}]", a.join(", "));
                }
                match cast {
                    Some(d) => format!("{}({t})", d.name()),
                    None => t,
                }
            }
            Factor::Delta(v) => format!("delta[{}]", list(v)),
            Factor::Eps(v) => format!("eps[{}]", list(v)),
            Factor::Lit(l) => l.clone(),
            Factor::DimValue(d, float) => {
                let n = format!("D{d}");
                let n = if self.dims[*d].spelling == Spelling::Literal {
                    self.dims[*d].extent.to_string()
                } else {
                    n
                };
                if *float {
                    format!("sqrt({n})")
                } else {
                    n
                }
            }
            Factor::Call {
                f,
                args,
                abs1,
                extra,
            } => {
                let mut a: Vec<String> = args
                    .iter()
                    .map(|x| {
                        let t = self.sum_text(s, x, name);
                        if *abs1 {
                            format!("abs({t}) + 1")
                        } else {
                            t
                        }
                    })
                    .collect();
                if let Some(e) = extra {
                    a.push(e.clone());
                }
                if *f == "abs1" {
                    format!("({})", a.join(", "))
                } else {
                    format!("{f}({})", a.join(", "))
                }
            }
            Factor::Where(c, a, b) => format!(
                "where({}, {}, {})",
                self.cond_text(s, c, name),
                self.sum_text(s, a, name),
                self.sum_text(s, b, name)
            ),
            Factor::Reduce(op, over, b) => {
                format!("{op}[{}]({})", list(over), self.sum_text(s, b, name))
            }
            Factor::Cast(d, b) => format!("{}({})", d.name(), self.sum_text(s, b, name)),
            Factor::Paren(b) => format!("({})", self.sum_text(s, b, name)),
        }
    }

    fn cond_text(&self, s: &Stmt, c: &Cond, name: &dyn Fn(usize) -> String) -> String {
        match c {
            Cond::Idx(op, a, b) => format!("{} {op} {}", s.ixs[*a].name, s.ixs[*b].name),
            Cond::IdxLit(op, a, n) => format!("{} {op} {n}", s.ixs[*a].name),
            Cond::Value(op, a) => format!("{} {op} 0", self.factor_text(s, a, name)),
            Cond::And(a, b) => format!(
                "{} && {}",
                self.cond_text(s, a, name),
                self.cond_text(s, b, name)
            ),
            Cond::Not(a) => format!("!({})", self.cond_text(s, a, name)),
        }
    }
}
