//! What every attention nest builds with: instructions appended to the open block, loops
//! whose bodies a closure builds, buffers, and micro-kernel calls. The forward nest
//! (`super`) and the backward one (`backward`) implement the accessors; the rest is shared.

use super::super::{FnLowerer, LowerError};
use crate::ir::loops::{
    Block, BufferDef, BufferId, BufferKind, Carried, Coord, For, IndexOp, Inst, Layout, Op,
    TileOperand, Type, Ukernel, UkernelShape, ValueId,
};
use crate::ir::tensor::Extent;
use einc_runtime::{DType, Scalar};

/// The micro-kernel shape of an `mr x nr` tile of `dtype`; an error when `nr` is not a
/// whole number of vectors.
pub(super) fn tile_shape(
    fl: &FnLowerer,
    dtype: DType,
    (mr, nr): (u64, u64),
) -> Result<UkernelShape, LowerError> {
    let lanes = 16 / dtype.size_bytes() as u64;
    if nr % lanes != 0 {
        return Err(fl.error("nr is not a multiple of the vector lanes"));
    }
    Ok(UkernelShape {
        dtype,
        mr: u32::try_from(mr).map_err(|_| fl.error("mr is too large"))?,
        nr: u32::try_from(nr).map_err(|_| fl.error("nr is too large"))?,
    })
}

/// Implements [`Emit`] for a nest type with the fields `fl`, `cur`, `outer`, `dtype` and
/// `shape` and the lifetimes `<'_, '_, 'm>`.
macro_rules! impl_emit {
    ($nest:ident) => {
        impl<'m> Emit<'m> for $nest<'_, '_, 'm> {
            fn parts(&mut self) -> (&mut FnLowerer<'m>, &mut Vec<Inst>) {
                (self.fl, &mut self.cur)
            }

            fn cur(&mut self) -> &mut Vec<Inst> {
                &mut self.cur
            }

            fn outer(&mut self) -> &mut Vec<Vec<Inst>> {
                &mut self.outer
            }

            fn dtype(&self) -> DType {
                self.dtype
            }

            fn shape(&self) -> UkernelShape {
                self.shape
            }
        }
    };
}
pub(super) use impl_emit;

/// A nest under construction: the open block (`parts().1`), the blocks around it, the dtype
/// of its floats and the micro-kernel shape of its tiles.
pub(super) trait Emit<'m> {
    /// The function's lowerer and the open block.
    fn parts(&mut self) -> (&mut FnLowerer<'m>, &mut Vec<Inst>);
    /// The open block.
    fn cur(&mut self) -> &mut Vec<Inst>;
    /// The enclosing blocks, innermost last.
    fn outer(&mut self) -> &mut Vec<Vec<Inst>>;
    /// The nest's float dtype.
    fn dtype(&self) -> DType;
    /// The micro-kernel shape of its tiles.
    fn shape(&self) -> UkernelShape;

    /// The function's lowerer.
    fn fl(&mut self) -> &mut FnLowerer<'m> {
        self.parts().0
    }

    fn emit(&mut self, prefix: &str, op: Op, ty: Type) -> ValueId {
        let (fl, cur) = self.parts();
        fl.assign(cur, prefix, op, ty)
    }

    fn index(&mut self, f: IndexOp, a: ValueId, b: ValueId) -> ValueId {
        self.emit("x", Op::IndexArith(f, a, b), Type::Index)
    }

    fn konst(&mut self, n: u64) -> Result<ValueId, LowerError> {
        self.fl().index_const_u64(n)
    }

    fn scalar(&mut self, x: f64) -> ValueId {
        let dtype = self.dtype();
        self.fl().scalar_const(Scalar::F64(x).cast(dtype))
    }

    fn float(&mut self, op: Op) -> ValueId {
        let ty = Type::Scalar(self.dtype());
        self.emit("v", op, ty)
    }

    fn load(&mut self, buffer: BufferId, index: Vec<ValueId>) -> ValueId {
        let ty = Type::Scalar(self.dtype());
        self.emit(
            "ld",
            Op::Load {
                buffer,
                index,
                lanes: 1,
            },
            ty,
        )
    }

    /// `lanes` consecutive elements along the last axis of a contiguous buffer.
    fn vload(&mut self, buffer: BufferId, index: Vec<ValueId>, lanes: u32) -> ValueId {
        let ty = Type::Vector(self.dtype(), lanes);
        self.emit(
            "ld",
            Op::Load {
                buffer,
                index,
                lanes,
            },
            ty,
        )
    }

    fn store(&mut self, buffer: BufferId, index: Vec<ValueId>, value: ValueId) {
        self.cur().push(Inst::Store {
            buffer,
            index,
            value,
        });
    }

    /// `min(step, upper - at)`: the size of the block starting at `at`.
    fn block_size(
        &mut self,
        at: ValueId,
        upper: ValueId,
        step: u64,
    ) -> Result<ValueId, LowerError> {
        let step = self.konst(step)?;
        let left = self.index(IndexOp::Sub, upper, at);
        Ok(self.index(IndexOp::Min, step, left))
    }

    /// `n` rounded down to a multiple of `to`.
    fn round_down(&mut self, n: ValueId, to: u64) -> Result<ValueId, LowerError> {
        let to = self.konst(to)?;
        let q = self.index(IndexOp::Div, n, to);
        Ok(self.index(IndexOp::Mul, q, to))
    }

    /// `n` rounded up to a multiple of `to`.
    fn round_up(&mut self, n: ValueId, to: u64) -> Result<ValueId, LowerError> {
        let (below, to) = (self.konst(to - 1)?, self.konst(to)?);
        let up = self.index(IndexOp::Add, n, below);
        let q = self.index(IndexOp::Div, up, to);
        Ok(self.index(IndexOp::Mul, q, to))
    }

    /// A loop `for var = lower to upper step step` whose body `body` builds, with the values
    /// `init` carried (`body` returns their next values); returns the loop's results.
    fn looped(
        &mut self,
        name: &str,
        (lower, upper, step): (ValueId, ValueId, u64),
        parallel: bool,
        init: &[ValueId],
        body: impl FnOnce(&mut Self, ValueId, &[ValueId]) -> Result<Vec<ValueId>, LowerError>,
    ) -> Result<Vec<ValueId>, LowerError>
    where
        Self: Sized,
    {
        let var = self.fl().named_value(name, Type::Index);
        let mut carried = Vec::new();
        for &i in init {
            let ty = self.fl().type_of(i)?;
            carried.push(Carried {
                arg: self.fl().new_value("acc", ty),
                init: i,
                result: self.fl().new_value("red", ty),
            });
        }
        let args: Vec<ValueId> = carried.iter().map(|c| c.arg).collect();
        let cur = std::mem::take(self.cur());
        self.outer().push(cur);
        let yields = body(self, var, &args);
        let outer = self.outer().pop().unwrap_or_default();
        let insts = std::mem::replace(self.cur(), outer);
        let yields = yields?;
        let results = carried.iter().map(|c| c.result).collect();
        self.cur().push(Inst::For(Box::new(For {
            var,
            lower,
            upper,
            step,
            parallel,
            unroll: None,
            carried,
            body: Block { insts },
            yields,
        })));
        Ok(results)
    }

    /// A loop without carried values.
    fn each(
        &mut self,
        name: &str,
        range: (ValueId, ValueId, u64),
        parallel: bool,
        body: impl FnOnce(&mut Self, ValueId) -> Result<(), LowerError>,
    ) -> Result<(), LowerError>
    where
        Self: Sized,
    {
        self.looped(name, range, parallel, &[], |n, var, _| {
            body(n, var)?;
            Ok(Vec::new())
        })?;
        Ok(())
    }

    /// A scoped buffer of fixed extents, declared in the current block.
    fn scoped(&mut self, name: &str, shape: &[u64]) -> BufferId {
        let def = BufferDef {
            name: self.fl().names.fresh(name),
            dtype: self.dtype(),
            shape: shape.iter().map(|&n| Extent::Fixed(n)).collect(),
            layout: Layout::Contiguous,
            kind: BufferKind::Scoped,
            align: Some(64),
        };
        let b = self.fl().out.add_buffer(def);
        self.cur().push(Inst::Scoped(b));
        b
    }

    /// A tile operand of a scoped two-axis block: `(first, second)` coordinates along axes 0
    /// and 1.
    fn block_tile(&self, buffer: BufferId, start: [ValueId; 2], coords: [Coord; 2]) -> TileOperand {
        TileOperand {
            buffer,
            start: start.to_vec(),
            axes: vec![(coords[0], vec![0]), (coords[1], vec![1])],
        }
    }

    fn ukernel(
        &mut self,
        kc: ValueId,
        (mr, nr): (ValueId, ValueId),
        (a, b, c): (TileOperand, TileOperand, TileOperand),
        init: ValueId,
    ) {
        let call = Ukernel::plain(self.shape(), [kc, mr, nr], a, b, c, init);
        self.cur().push(Inst::Ukernel(Box::new(call)));
    }

    /// A temporary of the function.
    fn temp(&mut self, name: &str, shape: Vec<Extent>) -> BufferId {
        let def = BufferDef {
            name: self.fl().names.fresh(name),
            dtype: self.dtype(),
            shape,
            layout: Layout::Contiguous,
            kind: BufferKind::Temp,
            align: None,
        };
        self.fl().out.add_buffer(def)
    }
}
