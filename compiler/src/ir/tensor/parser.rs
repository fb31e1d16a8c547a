//! Reads the text written by [`super::printer`] back into a [`super::Module`].
//!
//! The parser resolves names (values, indices, dims, inputs `%n`) and checks what it must to
//! build the data structure or cannot store in it: undefined and duplicate names, the number
//! of arguments of each body function, the number of map entries against the input's rank, and
//! each output's declared type (which the IR does not store). Every other invariant is the
//! verifier's, so that a test can parse a module that breaks exactly one rule.
//!
//! Value ids follow definition order (parameters, then op results) and index ids follow each
//! iteration-space list. The parser never panics and nests at most [`MAX_DEPTH`] levels deep.

pub(crate) mod lexer;
#[cfg(test)]
mod tests;

use super::printer::{name, print_type};
use super::schedule::{self, RawItem, RawValue, Schedule};
use super::{
    AxisMap, BinaryFn, CmpOp, Cond, DimDef, Expr, Extent, Function, Generic, IndexDef, IndexId,
    Input, Module, Op, OpKind, Reduce, ReduceKind, ResultDef, TensorType, UnaryFn, ValueId,
};
use einc_runtime::{DType, Scalar};
use lexer::{Tok, Token};
use std::collections::HashMap;
use std::fmt;

/// How deeply body expressions and conditions may nest; deeper input is rejected with an error
/// rather than risking the stack.
pub const MAX_DEPTH: usize = 200;

/// A syntax or name error in IR text, at a 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// Byte offset in the text (for building a [`crate::diag::Span`]).
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl IrParseError {
    /// An error at byte `offset` of `text`, with its line and column computed.
    pub(crate) fn at(text: &str, offset: usize, message: impl Into<String>) -> IrParseError {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        IrParseError {
            line: before.matches('\n').count() + 1,
            col: before.get(line_start..).unwrap_or("").chars().count() + 1,
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for IrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for IrParseError {}

/// Parses a module in the text format of `docs/ir.md`.
pub fn parse_module(text: &str) -> Result<Module, IrParseError> {
    let mut p = Parser::new(text)?;
    let mut m = Module {
        dims: p.dims()?,
        funcs: Vec::new(),
    };
    while p.peek() != &Tok::Eof {
        if !p.is_kw("func") {
            return p.unexpected("`func` or the end of the module");
        }
        let off = p.offset();
        let f = p.func(&m)?;
        if m.funcs.iter().any(|g| g.name == f.name) {
            return p.err_at(off, format!("function @{} is defined twice", name(&f.name)));
        }
        m.funcs.push(f);
    }
    Ok(m)
}

/// A cursor over the tokens of IR text, with the helpers both IR levels' parsers share (the
/// loop IR's parser reads names, dtypes, extents and literals with these).
pub(crate) struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
}

/// Names visible in a body.
struct BodyCx<'a> {
    m: &'a Module,
    indices: &'a HashMap<String, IndexId>,
    inputs: usize,
}

pub(crate) type PResult<T> = Result<T, IrParseError>;

const EOF: Tok = Tok::Eof;

impl<'a> Parser<'a> {
    /// Splits `text` into tokens and starts at the first.
    pub(crate) fn new(text: &'a str) -> PResult<Parser<'a>> {
        Ok(Parser {
            text,
            toks: lexer::lex(text)?,
            pos: 0,
        })
    }

    /// The dims line `dims A, B = 4`, if there is one.
    pub(crate) fn dims(&mut self) -> PResult<Vec<DimDef>> {
        let mut dims: Vec<DimDef> = Vec::new();
        if self.is_kw("dims") {
            self.bump();
            loop {
                let (dim, off) = self.name("a dim name")?;
                if dims.iter().any(|d| d.name == dim) {
                    return self.err_at(off, format!("dim `{}` is declared twice", name(&dim)));
                }
                let value = if self.eat('=') {
                    Some(self.uint("a dim value")?)
                } else {
                    None
                };
                dims.push(DimDef { name: dim, value });
                if !self.eat(',') {
                    break;
                }
            }
        }
        Ok(dims)
    }

    pub(crate) fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&EOF, |t| &t.tok)
    }

    pub(crate) fn peek2(&self) -> &Tok {
        self.toks.get(self.pos + 1).map_or(&EOF, |t| &t.tok)
    }

    pub(crate) fn offset(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(self.text.len(), |t| t.offset)
    }

    pub(crate) fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    pub(crate) fn err_at<T>(&self, offset: usize, message: impl Into<String>) -> PResult<T> {
        Err(IrParseError::at(self.text, offset, message))
    }

    pub(crate) fn unexpected<T>(&self, expected: &str) -> PResult<T> {
        self.err_at(
            self.offset(),
            format!("expected {expected}, found {}", describe(self.peek())),
        )
    }

    pub(crate) fn eat(&mut self, c: char) -> bool {
        if self.peek() == &Tok::Punct(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, c: char) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.unexpected(&format!("`{c}`"))
        }
    }

    fn expect_arrow(&mut self) -> PResult<()> {
        if self.peek() == &Tok::Arrow {
            self.bump();
            Ok(())
        } else {
            self.unexpected("`->`")
        }
    }

    pub(crate) fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w == kw)
    }

    pub(crate) fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.is_kw(kw) {
            self.bump();
            Ok(())
        } else {
            self.unexpected(&format!("`{kw}`"))
        }
    }

    /// A bare or quoted name, and where it is.
    pub(crate) fn name(&mut self, what: &str) -> PResult<(String, usize)> {
        let off = self.offset();
        match self.peek() {
            Tok::Ident(s) | Tok::Quoted(s) => {
                let s = s.clone();
                self.bump();
                Ok((s, off))
            }
            _ => self.unexpected(what),
        }
    }

    pub(crate) fn value_name(&mut self) -> PResult<(String, usize)> {
        let off = self.offset();
        match self.peek() {
            Tok::Value(s) => {
                let s = s.clone();
                self.bump();
                Ok((s, off))
            }
            _ => self.unexpected("a value name `%name`"),
        }
    }

    pub(crate) fn uint(&mut self, what: &str) -> PResult<u64> {
        let off = self.offset();
        match self.peek() {
            Tok::Int(s) => {
                let s = s.clone();
                self.bump();
                s.parse()
                    .or_else(|_| self.err_at(off, format!("`{s}` does not fit in 64 bits")))
            }
            _ => self.unexpected(what),
        }
    }

    pub(crate) fn dtype(&mut self) -> PResult<DType> {
        let (n, off) = self.name("a dtype")?;
        DType::from_name(&n).map_or_else(
            || {
                self.err_at(
                    off,
                    format!("unknown dtype `{n}`: expected f32, f64, i32 or i64"),
                )
            },
            Ok,
        )
    }

    /// A number or the name of one of `dims`.
    pub(crate) fn extent(&mut self, dims: &[DimDef]) -> PResult<Extent> {
        if matches!(self.peek(), Tok::Int(_)) {
            return Ok(Extent::Fixed(self.uint("an extent")?));
        }
        let (d, off) = self.name("an extent (a number or a dim name)")?;
        if dims.iter().any(|x| x.name == d) {
            Ok(Extent::Dim(d))
        } else {
            self.err_at(off, format!("undefined dim `{}`", name(&d)))
        }
    }

    /// `dtype` or `dtype[e, ...]`.
    fn ty(&mut self, m: &Module) -> PResult<TensorType> {
        let dtype = self.dtype()?;
        let mut shape = Vec::new();
        if self.eat('[') {
            loop {
                shape.push(self.extent(&m.dims)?);
                if !self.eat(',') {
                    break;
                }
            }
            self.expect(']')?;
        }
        Ok(TensorType { dtype, shape })
    }

    /// A comma-separated list closed by `close`, possibly empty.
    pub(crate) fn list<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if !self.eat(',') {
                break;
            }
        }
        self.expect(close)?;
        Ok(out)
    }

    fn func(&mut self, m: &Module) -> PResult<Function> {
        self.expect_kw("func")?;
        let fname = match self.peek() {
            Tok::Func(s) => s.clone(),
            _ => return self.unexpected("a function name `@name`"),
        };
        self.bump();
        let mut f = Function {
            name: fname,
            values: Vec::new(),
            params: Vec::new(),
            ops: Vec::new(),
            results: Vec::new(),
        };
        let mut names = HashMap::new();
        self.expect('(')?;
        let params = self.list(')', |p| {
            let (v, off) = p.value_name()?;
            p.expect(':')?;
            let ty = p.ty(m)?;
            Ok((v, off, ty))
        })?;
        for (v, off, ty) in params {
            let id = self.define(&mut f, &mut names, v, off, ty)?;
            f.params.push(id);
        }
        self.expect_arrow()?;
        self.expect('(')?;
        let sig = self.list(')', |p| {
            let (r, off) = p.name("an output name")?;
            p.expect(':')?;
            Ok((r, off, p.ty(m)?))
        })?;
        for (n, (r, off, _)) in sig.iter().enumerate() {
            if sig.iter().take(n).any(|(q, _, _)| q == r) {
                return self.err_at(*off, format!("output `{}` is declared twice", name(r)));
            }
        }
        self.expect('{')?;
        while !self.is_kw("return") {
            if !matches!(self.peek(), Tok::Value(_)) {
                return self.unexpected("an op `%name = generic ...` or `return`");
            }
            self.op(m, &mut f, &mut names)?;
        }
        self.bump();
        if matches!(self.peek(), Tok::Ident(_) | Tok::Quoted(_)) {
            loop {
                let (r, off) = self.name("an output name")?;
                let Some((want, _, want_ty)) = sig.get(f.results.len()) else {
                    return self.err_at(
                        off,
                        format!(
                            "`return` lists more outputs than the {} of the signature",
                            sig.len()
                        ),
                    );
                };
                if &r != want {
                    return self.err_at(
                        off,
                        format!(
                            "`return` names output `{}` where the signature has `{}`",
                            name(&r),
                            name(want)
                        ),
                    );
                }
                self.expect('=')?;
                let (v, voff) = self.value_name()?;
                let value = self.lookup(&names, &v, voff)?;
                let ty = &f.value(value).ty;
                if ty != want_ty {
                    return self.err_at(
                        voff,
                        format!(
                            "%{} has type {} but output `{}` is declared {}",
                            name(&v),
                            print_type(ty),
                            name(&r),
                            print_type(want_ty)
                        ),
                    );
                }
                f.results.push(ResultDef { name: r, value });
                if !self.eat(',') {
                    break;
                }
            }
        }
        if let Some((missing, _, _)) = sig.get(f.results.len()) {
            return self.err_at(
                self.offset(),
                format!("`return` is missing output `{}`", name(missing)),
            );
        }
        self.expect('}')?;
        Ok(f)
    }

    fn define(
        &self,
        f: &mut Function,
        names: &mut HashMap<String, ValueId>,
        v: String,
        off: usize,
        ty: TensorType,
    ) -> PResult<ValueId> {
        if names.contains_key(&v) {
            return self.err_at(off, format!("value %{} is defined twice", name(&v)));
        }
        let id = f.add_value(v.clone(), ty);
        names.insert(v, id);
        Ok(id)
    }

    fn lookup(&self, names: &HashMap<String, ValueId>, v: &str, off: usize) -> PResult<ValueId> {
        names.get(v).copied().map_or_else(
            || self.err_at(off, format!("undefined value %{}", name(v))),
            Ok,
        )
    }

    fn op(
        &mut self,
        m: &Module,
        f: &mut Function,
        names: &mut HashMap<String, ValueId>,
    ) -> PResult<()> {
        let (v, off) = self.value_name()?;
        self.expect('=')?;
        self.expect_kw("generic")?;
        let g = self.generic(m, f, names)?;
        let ty = TensorType {
            dtype: g.dtype,
            shape: g.result_shape(),
        };
        // Defined only after the op is read, so an op cannot use its own result.
        let result = self.define(f, names, v, off, ty)?;
        f.ops.push(Op {
            result,
            kind: OpKind::Generic(g),
        });
        Ok(())
    }

    fn generic(
        &mut self,
        m: &Module,
        f: &Function,
        names: &HashMap<String, ValueId>,
    ) -> PResult<Generic> {
        self.expect('(')?;
        let decls = self.list(')', |p| {
            let (i, off) = p.name("an index name")?;
            p.expect(':')?;
            Ok((i, off, p.extent(&m.dims)?))
        })?;
        let mut indices = Vec::new();
        let mut index_ids = HashMap::new();
        for (i, off, extent) in decls {
            let id = IndexId(u32::try_from(indices.len()).unwrap_or(u32::MAX));
            if index_ids.insert(i.clone(), id).is_some() {
                return self.err_at(off, format!("index `{}` is declared twice", name(&i)));
            }
            indices.push(IndexDef { name: i, extent });
        }
        self.expect_kw("ins")?;
        self.expect('(')?;
        let inputs = self.list(')', |p| {
            let (v, off) = p.value_name()?;
            let value = p.lookup(names, &v, off)?;
            p.expect('[')?;
            let map = p.list(']', |p| match p.peek() {
                Tok::Int(_) => Ok(AxisMap::Fixed(p.uint("a position")?)),
                _ => Ok(AxisMap::Index(p.index(&index_ids)?)),
            })?;
            let rank = f.value(value).ty.shape.len();
            if map.len() != rank {
                return p.err_at(
                    off,
                    format!(
                        "%{} has rank {rank} but its map has {} entries",
                        name(&v),
                        map.len()
                    ),
                );
            }
            Ok(Input { value, map })
        })?;
        self.expect_arrow()?;
        self.expect('[')?;
        let output = self.list(']', |p| p.index(&index_ids))?;
        let reduce = if self.is_kw("reduce") {
            self.bump();
            let (k, off) = self.name("a reduction kind")?;
            let Some(kind) = ReduceKind::ALL.into_iter().find(|&r| r.name() == k) else {
                return self.err_at(
                    off,
                    format!("unknown reduction `{k}`: expected add, mul, max or min"),
                );
            };
            self.expect_kw("over")?;
            self.expect('(')?;
            let over = self.list(')', |p| p.index(&index_ids))?;
            Some(Reduce { kind, over })
        } else {
            None
        };
        self.expect('{')?;
        let cx = BodyCx {
            m,
            indices: &index_ids,
            inputs: inputs.len(),
        };
        let body = self.expr(&cx, 0)?;
        self.expect('}')?;
        self.expect(':')?;
        let dtype = self.dtype()?;
        let schedule = if self.is_kw("schedule") {
            Some(self.schedule(&index_ids)?)
        } else {
            None
        };
        Ok(Generic {
            indices,
            inputs,
            output,
            reduce,
            body,
            dtype,
            schedule,
        })
    }

    /// `schedule KIND(key=value, ...)` after an op whose indices are `ids`.
    fn schedule(&mut self, ids: &HashMap<String, IndexId>) -> PResult<Schedule> {
        self.expect_kw("schedule")?;
        let (kind, kind_at) = self.name("a schedule kind")?;
        self.expect('(')?;
        let items = self.list(')', |p| {
            let (key, key_at) = p.name("a schedule key")?;
            p.expect('=')?;
            let value_at = p.offset();
            let value = match p.peek() {
                Tok::Int(_) => RawValue::Int(p.uint("a number")?),
                Tok::Punct('[') => {
                    p.bump();
                    RawValue::List(p.list(']', |p| {
                        let (n, at) = p.name("an index name")?;
                        let factor = if p.eat(':') {
                            Some(p.uint("a factor")?)
                        } else {
                            None
                        };
                        Ok((n, factor, at))
                    })?)
                }
                _ => RawValue::Name(p.name("a number, a name or a list `[...]`")?.0),
            };
            Ok(RawItem {
                key,
                key_at,
                value,
                value_at,
            })
        })?;
        schedule::build(&kind, kind_at, &items, |n| ids.get(n).copied()).or_else(|errors| {
            let (at, message) = errors
                .into_iter()
                .next()
                .unwrap_or((kind_at, String::new()));
            self.err_at(at, message)
        })
    }

    fn index(&mut self, ids: &HashMap<String, IndexId>) -> PResult<IndexId> {
        let (i, off) = self.name("an index name")?;
        ids.get(&i).copied().map_or_else(
            || self.err_at(off, format!("undefined index `{}`", name(&i))),
            Ok,
        )
    }

    fn check_depth(&self, depth: usize) -> PResult<()> {
        if depth > MAX_DEPTH {
            self.err_at(
                self.offset(),
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            )
        } else {
            Ok(())
        }
    }

    /// Arguments `(a, b, ...)` of the function `f` (at `off`), which takes exactly `n`.
    fn args<T>(
        &mut self,
        f: &str,
        off: usize,
        n: usize,
        item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.expect('(')?;
        let args = self.list(')', item)?;
        if args.len() != n {
            let plural = if n == 1 { "" } else { "s" };
            return self.err_at(
                off,
                format!("`{f}` takes {n} argument{plural}, found {}", args.len()),
            );
        }
        Ok(args)
    }

    /// `<dtype>` after `cast`, `delta` or `eps`.
    fn type_arg(&mut self) -> PResult<DType> {
        self.expect('<')?;
        let t = self.dtype()?;
        self.expect('>')?;
        Ok(t)
    }

    fn expr(&mut self, cx: &BodyCx, depth: usize) -> PResult<Expr> {
        self.check_depth(depth)?;
        let off = self.offset();
        let word = match self.peek() {
            Tok::Input(n) => {
                let n = *n;
                self.bump();
                if n as usize >= cx.inputs {
                    return self.err_at(
                        off,
                        format!("input %{n} does not exist: the op has {} inputs", cx.inputs),
                    );
                }
                return Ok(Expr::Input(n));
            }
            Tok::Punct('-') | Tok::Int(_) | Tok::Float(_) => return Ok(Expr::Lit(self.literal()?)),
            Tok::Ident(w)
                if (w == "inf" || w == "nan")
                    && matches!(self.peek2(), Tok::Punct(':') | Tok::Punct('(')) =>
            {
                return Ok(Expr::Lit(self.literal()?))
            }
            Tok::Quoted(_) => return Ok(Expr::Index(self.index(cx.indices)?)),
            Tok::Ident(w) => w.clone(),
            _ => return self.unexpected("an expression"),
        };
        if !matches!(self.peek2(), Tok::Punct('(') | Tok::Punct('<')) {
            return Ok(Expr::Index(self.index(cx.indices)?));
        }
        self.bump();
        let sub = |p: &mut Self| p.expr(cx, depth + 1);
        if let Some(u) = UnaryFn::ALL.into_iter().find(|&u| u.name() == word) {
            let [a] = self.fixed_args(&word, off, sub)?;
            return Ok(Expr::Unary(u, Box::new(a)));
        }
        if let Some(b) = BinaryFn::ALL.into_iter().find(|&b| b.name() == word) {
            let [x, y] = self.fixed_args(&word, off, sub)?;
            return Ok(Expr::Binary(b, Box::new(x), Box::new(y)));
        }
        match word.as_str() {
            "select" => {
                self.expect('(')?;
                let c = self.cond(cx, depth + 1)?;
                self.expect(',')?;
                let x = self.expr(cx, depth + 1)?;
                self.expect(',')?;
                let y = self.expr(cx, depth + 1)?;
                self.expect(')')?;
                Ok(Expr::Select(Box::new(c), Box::new(x), Box::new(y)))
            }
            "cast" => {
                let t = self.type_arg()?;
                let [a] = self.fixed_args(&word, off, sub)?;
                Ok(Expr::Cast(t, Box::new(a)))
            }
            "delta" | "eps" => {
                let t = self.type_arg()?;
                self.expect('(')?;
                let ids = self.list(')', |p| p.index(cx.indices))?;
                Ok(if word == "delta" {
                    Expr::Delta(ids, t)
                } else {
                    Expr::Eps(ids, t)
                })
            }
            "dim" => {
                self.expect('(')?;
                let (d, doff) = self.name("a dim name")?;
                self.expect(')')?;
                if !cx.m.dims.iter().any(|x| x.name == d) {
                    return self.err_at(doff, format!("undefined dim `{}`", name(&d)));
                }
                self.expect(':')?;
                Ok(Expr::DimValue(d, self.dtype()?))
            }
            w if CmpOp::ALL.into_iter().any(|c| c.name() == w)
                || ["and", "or", "not"].contains(&w) =>
            {
                self.err_at(
                    off,
                    format!("`{w}` is a condition, allowed only as the first argument of `select`"),
                )
            }
            w => self.err_at(off, format!("unknown function `{w}`")),
        }
    }

    fn fixed_args<T, const N: usize>(
        &mut self,
        f: &str,
        off: usize,
        item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<[T; N]> {
        let args = self.args(f, off, N, item)?;
        // `args` checked the count, so the conversion cannot fail.
        args.try_into()
            .or_else(|_| self.err_at(off, format!("`{f}` takes {N} arguments")))
    }

    fn cond(&mut self, cx: &BodyCx, depth: usize) -> PResult<Cond> {
        self.check_depth(depth)?;
        let off = self.offset();
        let Tok::Ident(word) = self.peek().clone() else {
            return self.unexpected("a condition (lt, le, gt, ge, eq, ne, and, or, not)");
        };
        let sub = |p: &mut Self| p.cond(cx, depth + 1);
        if let Some(c) = CmpOp::ALL.into_iter().find(|&c| c.name() == word) {
            self.bump();
            let [x, y] = self.fixed_args(&word, off, |p| p.expr(cx, depth + 1))?;
            return Ok(Cond::Cmp(c, Box::new(x), Box::new(y)));
        }
        match word.as_str() {
            "and" | "or" => {
                self.bump();
                let [x, y] = self.fixed_args(&word, off, sub)?;
                Ok(if word == "and" {
                    Cond::And(Box::new(x), Box::new(y))
                } else {
                    Cond::Or(Box::new(x), Box::new(y))
                })
            }
            "not" => {
                self.bump();
                let [x] = self.fixed_args(&word, off, sub)?;
                Ok(Cond::Not(Box::new(x)))
            }
            _ => self.unexpected("a condition (lt, le, gt, ge, eq, ne, and, or, not)"),
        }
    }

    /// A literal: `-`? (digits | decimal | `inf` | `nan` | `nan(0x...)`) `:` dtype.
    pub(crate) fn literal(&mut self) -> PResult<Scalar> {
        let off = self.offset();
        let negative = self.eat('-');
        let num = self.bump();
        let payload = if num == Tok::Ident("nan".into()) && self.eat('(') {
            let hoff = self.offset();
            let Tok::Hex(h) = self.bump() else {
                return self.err_at(hoff, "expected a NaN bit pattern `0x...`");
            };
            self.expect(')')?;
            Some((h, hoff))
        } else {
            None
        };
        self.expect(':')?;
        let dtype = self.dtype()?;
        let sign = if negative { "-" } else { "" };
        let bad = |what: &str| {
            self.err_at(
                off,
                format!("{what} is not a literal of type {}", dtype.name()),
            )
        };
        let s = match (&num, dtype) {
            (Tok::Int(t), DType::I32) => match format!("{sign}{t}").parse() {
                Ok(v) => Scalar::I32(v),
                Err(_) => return bad(&format!("`{sign}{t}` (out of range)")),
            },
            (Tok::Int(t), DType::I64) => match format!("{sign}{t}").parse() {
                Ok(v) => Scalar::I64(v),
                Err(_) => return bad(&format!("`{sign}{t}` (out of range)")),
            },
            (Tok::Int(t) | Tok::Float(t), DType::F32) => match format!("{sign}{t}").parse() {
                Ok(v) => Scalar::F32(v),
                Err(_) => return bad(&format!("`{sign}{t}`")),
            },
            (Tok::Int(t) | Tok::Float(t), DType::F64) => match format!("{sign}{t}").parse() {
                Ok(v) => Scalar::F64(v),
                Err(_) => return bad(&format!("`{sign}{t}`")),
            },
            (Tok::Ident(w), DType::F32 | DType::F64) if w == "inf" => {
                let v = if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                };
                Scalar::F64(v).cast(dtype)
            }
            (Tok::Ident(w), DType::F32 | DType::F64) if w == "nan" => {
                if negative {
                    return self.err_at(
                        off,
                        "a NaN's sign is part of its bit pattern: write `nan(0x...)`",
                    );
                }
                match (payload, dtype) {
                    (None, DType::F32) => Scalar::F32(f32::NAN),
                    (None, _) => Scalar::F64(f64::NAN),
                    (Some((h, hoff)), DType::F32) => {
                        match u32::from_str_radix(&h, 16).map(f32::from_bits) {
                            Ok(v) if v.is_nan() => Scalar::F32(v),
                            _ => return self.err_at(hoff, format!("0x{h} is not an f32 NaN")),
                        }
                    }
                    (Some((h, hoff)), _) => match u64::from_str_radix(&h, 16).map(f64::from_bits) {
                        Ok(v) if v.is_nan() => Scalar::F64(v),
                        _ => return self.err_at(hoff, format!("0x{h} is not an f64 NaN")),
                    },
                }
            }
            (t, _) => return bad(&describe(t)),
        };
        Ok(s)
    }
}

/// A token as a message quotes it.
fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Int(s) | Tok::Float(s) => format!("`{s}`"),
        Tok::Quoted(s) => format!("`{}`", name(s)),
        Tok::Value(s) => format!("`%{}`", name(s)),
        Tok::Input(n) => format!("`%{n}`"),
        Tok::Func(s) => format!("`@{}`", name(s)),
        Tok::Hex(s) => format!("`0x{s}`"),
        Tok::Arrow => "`->`".to_string(),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Eof => "the end of the text".to_string(),
    }
}
