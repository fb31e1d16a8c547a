//! Reads the text written by [`super::printer`] back into a [`super::Module`].
//!
//! The parser resolves names (values, buffers, dims) and checks what it must to build the data
//! structure: undefined, duplicate and out-of-scope names, a loop's result count against its
//! carried values, and type annotations that must say a vector (`splat`) or a dtype (`cast`).
//! Every other invariant (operand types, lanes, layouts, strides) is the verifier's, so that a
//! test can parse a module that breaks exactly one rule.
//!
//! Ids follow the text: buffers in declaration order (parameters, then `buffer` lines), values
//! in order of their first appearance (a loop's results, then its induction variable, then its
//! carried arguments, then its body). The parser never panics and nests loops at most
//! [`MAX_DEPTH`] deep. Tokens and the shared pieces of syntax (names, dtypes, extents,
//! literals) come from the tensor IR's parser, so both levels read them identically.

use super::printer::{fact_name, index_op_name, kind_name, INDEX_OPS};
use super::{
    BinaryFn, Block, BufferDef, BufferId, BufferKind, Carried, CmpOp, Coord, DimDef, For, Function,
    Inst, Layout, Module, Op, ReduceKind, StrideFact, TileOperand, Type, Ukernel, UkernelShape,
    UnaryFn, ValueId,
};
use crate::ir::tensor::parser::lexer::Tok;
use crate::ir::tensor::parser::{IrParseError, PResult, Parser};
use crate::ir::tensor::printer::name;
use std::collections::HashMap;

/// A syntax or name error in loop IR text; its `Display` is `line:col: message`. The same
/// type as the tensor IR's, so tools reading either level report errors alike.
pub type LoopParseError = IrParseError;

/// How deeply loops may nest; deeper input is rejected with an error rather than risking the
/// stack.
pub const MAX_DEPTH: usize = 100;

/// Parses a module in the loop IR text format of `docs/ir.md`.
pub fn parse_module(text: &str) -> Result<Module, LoopParseError> {
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
        let f = FnParser::new(&mut p, &m.dims).func()?;
        if m.funcs.iter().any(|g| g.name == f.name) {
            return p.err_at(off, format!("function @{} is defined twice", name(&f.name)));
        }
        m.funcs.push(f);
    }
    Ok(m)
}

/// The state of one function being read.
struct FnParser<'p, 't> {
    p: &'p mut Parser<'t>,
    dims: &'p [DimDef],
    f: Function,
    /// Every value defined so far, by name.
    values: HashMap<String, ValueId>,
    /// Whether each value (by id) is visible at the current position.
    visible: Vec<bool>,
    buffers: HashMap<String, BufferId>,
    /// Whether each buffer (by id) is visible at the current position (a scoped buffer only
    /// after its declaration, in its block).
    buffer_visible: Vec<bool>,
}

/// How a block ends: the function body at `}`, a loop body at `yield` or `}`.
#[derive(PartialEq)]
enum BlockKind {
    Function,
    Loop,
}

impl<'p, 't> FnParser<'p, 't> {
    fn new(p: &'p mut Parser<'t>, dims: &'p [DimDef]) -> Self {
        FnParser {
            p,
            dims,
            f: Function::new(String::new()),
            values: HashMap::new(),
            visible: Vec::new(),
            buffers: HashMap::new(),
            buffer_visible: Vec::new(),
        }
    }

    fn func(mut self) -> PResult<Function> {
        self.p.expect_kw("func")?;
        self.f.name = match self.p.peek() {
            Tok::Func(s) => s.clone(),
            _ => return self.p.unexpected("a function name `@name`"),
        };
        self.p.bump();
        self.p.expect('(')?;
        let params = self
            .p
            .list(')', |p| buffer_decl(p, self.dims, Decl::Param))?;
        for (b, off) in params {
            let id = self.add_buffer(b, off)?;
            self.f.params.push(id);
        }
        if self.p.is_kw("variant") {
            self.p.bump();
            self.p.expect_kw("of")?;
            let Tok::Func(general) = self.p.peek().clone() else {
                return self.p.unexpected("the general function `@name`");
            };
            self.p.bump();
            self.f.variant_of = Some(general);
        }
        self.p.expect('{')?;
        while self.p.is_kw("buffer") {
            self.p.bump();
            let (b, off) = buffer_decl(self.p, self.dims, Decl::Temp)?;
            self.add_buffer(b, off)?;
        }
        self.f.body = self.block(BlockKind::Function, 0)?.0;
        self.p.expect('}')?;
        Ok(self.f)
    }

    fn add_buffer(&mut self, b: BufferDef, off: usize) -> PResult<BufferId> {
        if self.buffers.contains_key(&b.name) {
            return self
                .p
                .err_at(off, format!("buffer %{} is declared twice", name(&b.name)));
        }
        let n = b.name.clone();
        let id = self.f.add_buffer(b);
        self.buffers.insert(n, id);
        self.buffer_visible.push(true);
        Ok(id)
    }

    /// Adds a value (not yet visible) and returns its id.
    fn define(&mut self, v: String, off: usize, ty: Type) -> PResult<ValueId> {
        if self.values.contains_key(&v) {
            return self
                .p
                .err_at(off, format!("value %{} is defined twice", name(&v)));
        }
        let id = self.f.add_value(v.clone(), ty);
        self.values.insert(v, id);
        self.visible.push(false);
        Ok(id)
    }

    fn show(&mut self, id: ValueId, shown: bool) {
        if let Some(slot) = self.visible.get_mut(id.0 as usize) {
            *slot = shown;
        }
    }

    /// A value operand: defined and visible here.
    fn operand(&mut self) -> PResult<ValueId> {
        let (v, off) = self.p.value_name()?;
        match self.values.get(&v) {
            None => self.p.err_at(off, format!("undefined value %{}", name(&v))),
            Some(&id) if self.visible.get(id.0 as usize) == Some(&true) => Ok(id),
            Some(_) => self.p.err_at(
                off,
                format!(
                    "value %{} is not visible here: it is defined later, inside a loop body that \
                     has ended, or is the result of the loop being read",
                    name(&v)
                ),
            ),
        }
    }

    /// `n` operands separated by commas.
    fn operands<const N: usize>(&mut self) -> PResult<[ValueId; N]> {
        let mut out = [ValueId(0); N];
        for (k, slot) in out.iter_mut().enumerate() {
            if k > 0 {
                self.p.expect(',')?;
            }
            *slot = self.operand()?;
        }
        Ok(out)
    }

    fn buffer(&mut self) -> PResult<BufferId> {
        let (b, off) = self.p.value_name()?;
        match self.buffers.get(&b) {
            None => self
                .p
                .err_at(off, format!("undefined buffer %{}", name(&b))),
            Some(&id) if self.buffer_visible.get(id.0 as usize) == Some(&true) => Ok(id),
            Some(_) => self.p.err_at(
                off,
                format!(
                    "scoped buffer %{} is not visible here: its block has ended",
                    name(&b)
                ),
            ),
        }
    }

    /// `%B[%i, %j]`.
    fn access(&mut self) -> PResult<(BufferId, Vec<ValueId>)> {
        let buffer = self.buffer()?;
        self.p.expect('[')?;
        let index = self.p_list(']')?;
        Ok((buffer, index))
    }

    /// Operands separated by commas up to `close`.
    fn p_list(&mut self, close: char) -> PResult<Vec<ValueId>> {
        let mut out = Vec::new();
        if self.p.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.operand()?);
            if !self.p.eat(',') {
                break;
            }
        }
        self.p.expect(close)?;
        Ok(out)
    }

    /// The instructions of a block up to its `}`, and the values a loop body yields.
    fn block(&mut self, kind: BlockKind, depth: usize) -> PResult<(Block, Vec<ValueId>)> {
        let first_value = self.f.values.len();
        let first_buffer = self.f.buffers.len();
        let mut insts = Vec::new();
        loop {
            if self.p.peek() == &Tok::Punct('}')
                || (kind == BlockKind::Loop && self.p.is_kw("yield"))
            {
                break;
            }
            if self.p.is_kw("store") {
                self.p.bump();
                let value = self.operand()?;
                if self.p.is_kw("at") {
                    self.p.bump();
                    let ptr = self.operand()?;
                    insts.push(Inst::StoreAt { ptr, value });
                    continue;
                }
                self.p.expect(',')?;
                let (buffer, index) = self.access()?;
                insts.push(Inst::Store {
                    buffer,
                    index,
                    value,
                });
            } else if self.p.is_kw("for") {
                insts.push(self.for_loop(Vec::new(), depth)?);
            } else if self.p.is_kw("scoped") {
                self.p.bump();
                let (b, off) = buffer_decl(self.p, self.dims, Decl::Scoped)?;
                insts.push(Inst::Scoped(self.add_buffer(b, off)?));
            } else if self.p.is_kw("ukernel") {
                insts.push(Inst::Ukernel(Box::new(self.ukernel()?)));
            } else if matches!(self.p.peek(), Tok::Value(_)) {
                let mut results = vec![self.p.value_name()?];
                while self.p.eat(',') {
                    results.push(self.p.value_name()?);
                }
                self.p.expect('=')?;
                if self.p.is_kw("for") {
                    insts.push(self.for_loop(results, depth)?);
                } else {
                    let mut results = results.into_iter();
                    let (Some((v, off)), None) = (results.next(), results.next()) else {
                        return self
                            .p
                            .unexpected("`for` (only a loop defines several values)");
                    };
                    let (op, ty) = self.op()?;
                    // Defined only after the op is read, so an op cannot use its own result.
                    let result = self.define(v, off, ty)?;
                    self.show(result, true);
                    insts.push(Inst::Assign { result, op });
                }
            } else {
                let what = if kind == BlockKind::Loop {
                    "an instruction, `yield` or `}`"
                } else {
                    "an instruction or `}`"
                };
                return self.p.unexpected(what);
            }
        }
        let yields = if self.p.is_kw("yield") {
            self.p.bump();
            let mut ys = vec![self.operand()?];
            while self.p.eat(',') {
                ys.push(self.operand()?);
            }
            ys
        } else {
            Vec::new()
        };
        // Values and scoped buffers declared in this block go out of scope with it.
        for slot in self.visible.iter_mut().skip(first_value) {
            *slot = false;
        }
        for slot in self.buffer_visible.iter_mut().skip(first_buffer) {
            *slot = false;
        }
        Ok((Block { insts }, yields))
    }

    fn for_loop(&mut self, results: Vec<(String, usize)>, depth: usize) -> PResult<Inst> {
        let off = self.p.offset();
        if depth >= MAX_DEPTH {
            return self.p.err_at(
                off,
                format!("loops nested more than {MAX_DEPTH} levels deep"),
            );
        }
        self.p.expect_kw("for")?;
        let var = self.p.value_name()?;
        self.p.expect('=')?;
        let lower = self.operand()?;
        self.p.expect_kw("to")?;
        let upper = self.operand()?;
        self.p.expect_kw("step")?;
        let step = self.p.uint("a step (a positive number)")?;
        let parallel = self.p.is_kw("parallel");
        if parallel {
            self.p.bump();
        }
        let unroll = if self.p.is_kw("unroll") {
            self.p.bump();
            let uoff = self.p.offset();
            let n = self.p.uint("an unroll factor")?;
            Some(
                u32::try_from(n)
                    .or_else(|_| self.p.err_at(uoff, "the unroll factor is too large"))?,
            )
        } else {
            None
        };
        let mut iter = Vec::new();
        if self.p.is_kw("iter") {
            self.p.bump();
            self.p.expect('(')?;
            loop {
                let arg = self.p.value_name()?;
                self.p.expect('=')?;
                iter.push((arg, self.operand()?));
                if !self.p.eat(',') {
                    break;
                }
            }
            self.p.expect(')')?;
        }
        if results.len() != iter.len() {
            return self.p.err_at(
                off,
                format!(
                    "the loop defines {} result(s) but carries {} value(s)",
                    results.len(),
                    iter.len()
                ),
            );
        }
        let init_ty = |s: &Self, id: ValueId| s.f.value(id).map_or(Type::Index, |v| v.ty);
        let mut result_ids = Vec::new();
        for ((r, roff), (_, init)) in results.into_iter().zip(&iter) {
            let ty = init_ty(self, *init);
            result_ids.push(self.define(r, roff, ty)?);
        }
        let var = self.define(var.0, var.1, Type::Index)?;
        self.show(var, true);
        let mut carried = Vec::new();
        for (((a, aoff), init), result) in iter.into_iter().zip(result_ids) {
            let ty = init_ty(self, init);
            let arg = self.define(a, aoff, ty)?;
            self.show(arg, true);
            carried.push(Carried { arg, init, result });
        }
        self.p.expect('{')?;
        let (body, yields) = self.block(BlockKind::Loop, depth + 1)?;
        self.p.expect('}')?;
        self.show(var, false);
        for c in &carried {
            self.show(c.arg, false);
            self.show(c.result, true);
        }
        Ok(Inst::For(Box::new(For {
            var,
            lower,
            upper,
            step,
            parallel,
            unroll,
            carried,
            body,
            yields,
        })))
    }

    /// `ukernel @gemm.f32.4x8 kc %kc, tile %mr x %nr, a OPERAND, b OPERAND, c OPERAND,
    /// init %v [, scale %s | , divide %s] [, bias OPERAND] [, relu]`.
    fn ukernel(&mut self) -> PResult<Ukernel> {
        self.p.expect_kw("ukernel")?;
        let off = self.p.offset();
        let shape = match self.p.bump() {
            Tok::Func(n) => match UkernelShape::parse(&n) {
                Some(s) => s,
                None => {
                    return self.p.err_at(
                        off,
                        format!(
                            "unknown micro-kernel @{}: expected @gemm.<dtype>.<MR>x<NR>, as in \
                             @gemm.f32.4x8",
                            name(&n)
                        ),
                    )
                }
            },
            _ => {
                return self
                    .p
                    .err_at(off, "expected a micro-kernel `@gemm.f32.4x8`")
            }
        };
        self.p.expect_kw("kc")?;
        let kc = self.operand()?;
        self.p.expect(',')?;
        self.p.expect_kw("tile")?;
        let mr = self.operand()?;
        self.p.expect_kw("x")?;
        let nr = self.operand()?;
        self.p.expect(',')?;
        self.p.expect_kw("a")?;
        let a = self.tile_operand()?;
        self.p.expect(',')?;
        self.p.expect_kw("b")?;
        let b = self.tile_operand()?;
        self.p.expect(',')?;
        self.p.expect_kw("c")?;
        let c = self.tile_operand()?;
        self.p.expect(',')?;
        self.p.expect_kw("init")?;
        let init = self.operand()?;
        let mut u = Ukernel::plain(shape, [kc, mr, nr], a, b, c, init);
        if self.p.eat(',') {
            if self.p.is_kw("scale") || self.p.is_kw("divide") {
                u.divide = self.p.is_kw("divide");
                self.p.bump();
                u.scale = Some(self.operand()?);
                if !self.p.eat(',') {
                    return Ok(u);
                }
            }
            if self.p.is_kw("bias") {
                self.p.bump();
                u.bias = Some(self.tile_operand()?);
                if !self.p.eat(',') {
                    return Ok(u);
                }
            }
            if !self.p.is_kw("relu") {
                return self
                    .p
                    .unexpected("`scale` or `divide`, `bias` or `relu` (in that order)");
            }
            self.p.bump();
            u.relu = true;
        }
        Ok(u)
    }

    /// `%A[%i, %c0] (m: 0, k: [1, 2])`.
    fn tile_operand(&mut self) -> PResult<TileOperand> {
        let (buffer, start) = self.access()?;
        self.p.expect('(')?;
        let axes = self.p.list(')', |p| {
            let (c, coff) = p.name("a coordinate `m`, `n`, `k` or `mt`")?;
            let Some(c) = [Coord::M, Coord::N, Coord::K, Coord::MTile]
                .into_iter()
                .find(|x| x.name() == c)
            else {
                return p.err_at(
                    coff,
                    format!("unknown coordinate `{c}`: expected m, n, k or mt"),
                );
            };
            p.expect(':')?;
            Ok((c, axis_list(p)?))
        })?;
        Ok(TileOperand {
            buffer,
            start,
            axes,
        })
    }

    /// `: type` after an op.
    fn annotation(&mut self) -> PResult<(Type, usize)> {
        self.p.expect(':')?;
        let off = self.p.offset();
        Ok((value_type(self.p)?, off))
    }

    /// An op and its result's type.
    fn op(&mut self) -> PResult<(Op, Type)> {
        let off = self.p.offset();
        let Tok::Ident(word) = self.p.peek().clone() else {
            return self.p.unexpected("an operation");
        };
        self.p.bump();
        let w = word.as_str();
        if let Some(o) = INDEX_OPS.into_iter().find(|&o| index_op_name(o) == w) {
            let [a, b] = self.operands()?;
            return Ok((Op::IndexArith(o, a, b), Type::Index));
        }
        if let Some(u) = UnaryFn::ALL.into_iter().find(|&u| u.name() == w) {
            let [x] = self.operands()?;
            return Ok((Op::Unary(u, x), self.annotation()?.0));
        }
        if let Some(b) = BinaryFn::ALL.into_iter().find(|&b| b.name() == w) {
            let [x, y] = self.operands()?;
            return Ok((Op::Binary(b, x, y), self.annotation()?.0));
        }
        match w {
            "index" => {
                let negative = self.p.eat('-');
                let noff = self.p.offset();
                let n = self.p.uint("an integer")?;
                let v = if negative {
                    0i64.checked_sub_unsigned(n)
                } else {
                    i64::try_from(n).ok()
                };
                match v {
                    Some(v) => Ok((Op::IndexConst(v), Type::Index)),
                    None => self
                        .p
                        .err_at(noff, "the index constant does not fit in i64"),
                }
            }
            "dim" => {
                let (d, doff) = self.p.name("a dim name")?;
                if !self.dims.iter().any(|x| x.name == d) {
                    return self.p.err_at(doff, format!("undefined dim `{}`", name(&d)));
                }
                Ok((Op::Dim(d), Type::Index))
            }
            "const" => {
                let s = self.p.literal()?;
                Ok((Op::Const(s), Type::Scalar(s.dtype())))
            }
            "splat" => {
                let [x] = self.operands()?;
                match self.annotation()? {
                    (ty @ Type::Vector(_, lanes), _) => Ok((Op::Splat(x, lanes), ty)),
                    (_, toff) => self.p.err_at(toff, "a splat's type must be a vector"),
                }
            }
            "fma" => {
                let [a, b, c] = self.operands()?;
                Ok((Op::Fma(a, b, c), self.annotation()?.0))
            }
            "cmp" => {
                let (c, coff) = self.p.name("a comparison")?;
                let Some(c) = CmpOp::ALL.into_iter().find(|&x| x.name() == c) else {
                    return self.p.err_at(
                        coff,
                        format!("unknown comparison `{c}`: expected lt, le, gt, ge, eq or ne"),
                    );
                };
                let [x, y] = self.operands()?;
                Ok((Op::Cmp(c, x, y), Type::Bool))
            }
            "and" => {
                let [x, y] = self.operands()?;
                Ok((Op::And(x, y), Type::Bool))
            }
            "or" => {
                let [x, y] = self.operands()?;
                Ok((Op::Or(x, y), Type::Bool))
            }
            "not" => {
                let [x] = self.operands()?;
                Ok((Op::Not(x), Type::Bool))
            }
            "select" => {
                let [c, x, y] = self.operands()?;
                Ok((Op::Select(c, x, y), self.annotation()?.0))
            }
            "cast" => {
                let [x] = self.operands()?;
                let (ty, toff) = self.annotation()?;
                match ty.dtype() {
                    Some(d) => Ok((Op::Cast(d, x), ty)),
                    None => self
                        .p
                        .err_at(toff, "a cast's type must be a dtype or a vector of one"),
                }
            }
            "load" if self.p.is_kw("at") => {
                self.p.bump();
                let ptr = self.operand()?;
                let (ty, _) = self.annotation()?;
                let lanes = match ty {
                    Type::Vector(_, n) => n,
                    _ => 1,
                };
                Ok((Op::LoadAt { ptr, lanes }, ty))
            }
            "addr" => {
                let (buffer, index) = self.access()?;
                Ok((Op::Addr { buffer, index }, Type::Ptr))
            }
            "advance" => {
                let ptr = self.operand()?;
                self.p.expect_kw("by")?;
                let by = self.operand()?;
                self.p.expect_kw("along")?;
                let axes = axis_list(self.p)?;
                Ok((Op::Advance { ptr, by, axes }, Type::Ptr))
            }
            "load" => {
                let (buffer, index) = self.access()?;
                let (ty, _) = self.annotation()?;
                let lanes = match ty {
                    Type::Vector(_, n) => n,
                    _ => 1,
                };
                Ok((
                    Op::Load {
                        buffer,
                        index,
                        lanes,
                    },
                    ty,
                ))
            }
            "reduce_lanes" => {
                let (k, koff) = self.p.name("a reduction kind")?;
                let Some(k) = ReduceKind::ALL.into_iter().find(|&x| x.name() == k) else {
                    return self.p.err_at(
                        koff,
                        format!("unknown reduction `{k}`: expected add, mul, max or min"),
                    );
                };
                let [x] = self.operands()?;
                Ok((Op::ReduceLanes(k, x), self.annotation()?.0))
            }
            _ => self.p.err_at(off, format!("unknown operation `{w}`")),
        }
    }
}

/// `index`, `bool`, a dtype, or `vector<NxD>`.
fn value_type(p: &mut Parser) -> PResult<Type> {
    if p.is_kw("index") {
        p.bump();
        return Ok(Type::Index);
    }
    if p.is_kw("bool") {
        p.bump();
        return Ok(Type::Bool);
    }
    if p.is_kw("ptr") {
        p.bump();
        return Ok(Type::Ptr);
    }
    if !p.is_kw("vector") {
        return Ok(Type::Scalar(p.dtype()?));
    }
    p.bump();
    p.expect('<')?;
    let off = p.offset();
    let lanes = p.uint("a lane count")?;
    let lanes = u32::try_from(lanes).or_else(|_| p.err_at(off, "too many lanes"))?;
    let doff = p.offset();
    // `4xf32` lexes as the number 4 and the name `xf32`.
    let dtype = match p.bump() {
        Tok::Ident(w) => w.strip_prefix('x').and_then(einc_runtime::DType::from_name),
        _ => None,
    };
    let Some(dtype) = dtype else {
        return p.err_at(doff, "expected `x` and a dtype, as in `vector<4xf32>`");
    };
    p.expect('>')?;
    Ok(Type::Vector(dtype, lanes))
}

/// A list of axes: `1`, or `[0, 1]` (possibly empty).
fn axis_list(p: &mut Parser) -> PResult<Vec<u32>> {
    let axis = |p: &mut Parser| -> PResult<u32> {
        let aoff = p.offset();
        let n = p.uint("an axis number")?;
        u32::try_from(n).or_else(|_| p.err_at(aoff, "the axis number is too large"))
    };
    if p.eat('[') {
        p.list(']', axis)
    } else {
        Ok(vec![axis(p)?])
    }
}

/// Where a buffer is declared.
#[derive(Clone, Copy, PartialEq)]
enum Decl {
    /// In the signature: the kind (`in` or `out`) is required.
    Param,
    /// On a `buffer` line: the kind is optional and defaults to `temp`.
    Temp,
    /// By a `scoped` instruction: no kind is written.
    Scoped,
}

/// `%X: in f32[T, D] strided` or `%t: f32[4, 8] contiguous align 64`.
fn buffer_decl(p: &mut Parser, dims: &[DimDef], decl: Decl) -> PResult<(BufferDef, usize)> {
    let (n, off) = p.value_name()?;
    p.expect(':')?;
    let kinds = [BufferKind::Input, BufferKind::Output, BufferKind::Temp];
    let written = kinds.into_iter().find(|&k| p.is_kw(kind_name(k)));
    let kind = match (written, decl) {
        (Some(_), Decl::Scoped) => {
            return p.unexpected("a dtype (a scoped buffer's declaration names no kind)")
        }
        (Some(k), _) => {
            p.bump();
            k
        }
        (None, Decl::Param) => return p.unexpected("`in` or `out`"),
        (None, Decl::Temp) => BufferKind::Temp,
        (None, Decl::Scoped) => BufferKind::Scoped,
    };
    let dtype = p.dtype()?;
    p.expect('[')?;
    let shape = p.list(']', |p| p.extent(dims))?;
    let layout = layout(p)?;
    let align = if p.is_kw("align") {
        p.bump();
        let aoff = p.offset();
        let a = p.uint("an alignment in bytes")?;
        Some(u32::try_from(a).or_else(|_| p.err_at(aoff, "the alignment is too large"))?)
    } else {
        None
    };
    Ok((
        BufferDef {
            name: n,
            dtype,
            shape,
            layout,
            kind,
            align,
        },
        off,
    ))
}

/// `contiguous`, `strided` or `strides[_, c, 1]`.
fn layout(p: &mut Parser) -> PResult<Layout> {
    if p.is_kw("contiguous") {
        p.bump();
        return Ok(Layout::Contiguous);
    }
    if p.is_kw("strided") {
        p.bump();
        return Ok(Layout::Strided);
    }
    if !p.is_kw("strides") {
        return p.unexpected("a layout: `contiguous`, `strided` or `strides[...]`");
    }
    p.bump();
    p.expect('[')?;
    let facts = p.list(']', |p| {
        let facts = [StrideFact::Runtime, StrideFact::Unit, StrideFact::COrder];
        let fact = facts.into_iter().find(|&f| match p.peek() {
            Tok::Ident(w) | Tok::Int(w) => w == fact_name(f),
            _ => false,
        });
        match fact {
            Some(f) => {
                p.bump();
                Ok(f)
            }
            None => p.unexpected("a stride fact: `_` (run time), `1` (unit) or `c` (C order)"),
        }
    })?;
    Ok(Layout::Axes(facts))
}

#[cfg(test)]
mod tests;
