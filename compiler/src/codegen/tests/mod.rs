//! Tests of code generation: loop IR built in Rust, JIT-compiled and called through the C ABI,
//! with results compared against values computed by explicit Rust loops.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod abi;
mod call_speed;
mod examples;
mod kernels;
mod last_error;
mod lazy;
mod ops;
mod scratch;
mod tiles;
mod ukernel_speed;
mod workers;

use crate::codegen::{jit_compile, JitKernel};
use crate::ir::loops::{
    Block, BufferDef, BufferId, BufferKind, Carried, DimDef, Extent, For, Function, Inst, Layout,
    Module, Op, Type, ValueId,
};
use einc_runtime::abi::Tensor;
use einc_runtime::DType;
use std::ffi::c_void;

/// Builds a loop-IR function: buffers, values, and nested blocks.
pub(crate) struct Builder {
    pub f: Function,
    /// Instructions of the blocks being built, innermost last.
    stack: Vec<Vec<Inst>>,
}

impl Builder {
    pub fn new(name: &str) -> Builder {
        Builder {
            f: Function {
                variant_of: None,
                name: name.into(),
                buffers: Vec::new(),
                params: Vec::new(),
                values: Vec::new(),
                body: Block::default(),
            },
            stack: vec![Vec::new()],
        }
    }

    /// Adds a buffer; inputs and outputs become parameters in the order they are added.
    pub fn buffer(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[Extent],
        layout: Layout,
        kind: BufferKind,
    ) -> BufferId {
        let id = self.f.add_buffer(BufferDef {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            layout,
            kind,
            align: None,
        });
        if kind != BufferKind::Temp {
            self.f.params.push(id);
        }
        id
    }

    pub fn input(&mut self, name: &str, dtype: DType, shape: &[Extent]) -> BufferId {
        self.buffer(name, dtype, shape, Layout::Strided, BufferKind::Input)
    }

    pub fn output(&mut self, name: &str, dtype: DType, shape: &[Extent]) -> BufferId {
        self.buffer(name, dtype, shape, Layout::Strided, BufferKind::Output)
    }

    pub fn assign(&mut self, ty: Type, op: Op) -> ValueId {
        let name = format!("v{}", self.f.values.len());
        let result = self.f.add_value(name, ty);
        self.push(Inst::Assign { result, op });
        result
    }

    fn push(&mut self, inst: Inst) {
        self.stack.last_mut().unwrap().push(inst);
    }

    pub fn index(&mut self, n: i64) -> ValueId {
        self.assign(Type::Index, Op::IndexConst(n))
    }

    pub fn dim(&mut self, name: &str) -> ValueId {
        self.assign(Type::Index, Op::Dim(name.into()))
    }

    pub fn load(&mut self, buffer: BufferId, index: &[ValueId], lanes: u32) -> ValueId {
        let dtype = self.f.buffer(buffer).unwrap().dtype;
        let ty = if lanes == 1 {
            Type::Scalar(dtype)
        } else {
            Type::Vector(dtype, lanes)
        };
        self.assign(
            ty,
            Op::Load {
                buffer,
                index: index.to_vec(),
                lanes,
            },
        )
    }

    pub fn store(&mut self, buffer: BufferId, index: &[ValueId], value: ValueId) {
        self.push(Inst::Store {
            buffer,
            index: index.to_vec(),
            value,
        });
    }

    /// `for var = lower to upper step step iter(inits)`: `body` gets the induction variable and
    /// the carried values and returns the yielded ones; returns the loop's results.
    pub fn for_loop(
        &mut self,
        lower: ValueId,
        upper: ValueId,
        step: u64,
        inits: &[ValueId],
        body: impl FnOnce(&mut Builder, ValueId, &[ValueId]) -> Vec<ValueId>,
    ) -> Vec<ValueId> {
        let var = self
            .f
            .add_value(format!("i{}", self.f.values.len()), Type::Index);
        let carried: Vec<Carried> = inits
            .iter()
            .map(|&init| {
                let ty = self.f.value(init).unwrap().ty;
                let arg = self.f.add_value(format!("a{}", self.f.values.len()), ty);
                let result = self.f.add_value(format!("r{}", self.f.values.len()), ty);
                Carried { arg, init, result }
            })
            .collect();
        let args: Vec<ValueId> = carried.iter().map(|c| c.arg).collect();
        self.stack.push(Vec::new());
        let yields = body(self, var, &args);
        let insts = self.stack.pop().unwrap();
        let results = carried.iter().map(|c| c.result).collect();
        self.push(Inst::For(Box::new(For {
            var,
            lower,
            upper,
            step,
            parallel: false,
            unroll: None,
            carried,
            body: Block { insts },
            yields,
        })));
        results
    }

    pub fn finish(mut self) -> Function {
        self.f.body = Block {
            insts: self.stack.pop().unwrap(),
        };
        self.f
    }
}

/// A module with the given symbolic dims and functions.
pub(crate) fn module(dims: &[&str], funcs: Vec<Function>) -> Module {
    Module {
        dims: dims
            .iter()
            .map(|d| DimDef {
                name: (*d).into(),
                value: None,
            })
            .collect(),
        funcs,
    }
}

pub(crate) fn sym(name: &str) -> Extent {
    Extent::Dim(name.into())
}

pub(crate) fn jit_one(m: &Module) -> JitKernel {
    let program = jit_compile(m).unwrap_or_else(|e| panic!("{e}"));
    let name = m.funcs[0].name.clone();
    program.kernel(&name).unwrap()
}

/// An argument as the caller owns it: data (as raw bytes of elements), shape and strides.
pub(crate) struct Arg {
    pub data: *mut c_void,
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
}

impl Arg {
    /// A C-order argument over `data`.
    pub fn new<T>(data: &mut [T], dtype: DType, shape: &[i64]) -> Arg {
        let mut strides = vec![1i64; shape.len()];
        for k in (0..shape.len().saturating_sub(1)).rev() {
            strides[k] = strides[k + 1] * shape[k + 1];
        }
        Arg {
            data: data.as_mut_ptr().cast(),
            dtype,
            shape: shape.to_vec(),
            strides,
        }
    }

    pub fn strided<T>(data: &mut [T], dtype: DType, shape: &[i64], strides: &[i64]) -> Arg {
        Arg {
            data: data.as_mut_ptr().cast(),
            dtype,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        }
    }

    pub fn tensor(&self) -> Tensor {
        Tensor {
            data: self.data,
            dtype: self.dtype.code(),
            rank: self.shape.len() as i32,
            shape: self.shape.as_ptr(),
            strides: self.strides.as_ptr(),
        }
    }
}

/// Calls a kernel with descriptors of `args` and returns its status.
pub(crate) fn call(k: &JitKernel, args: &[Arg]) -> i32 {
    let descs: Vec<Tensor> = args.iter().map(Arg::tensor).collect();
    call_raw(k, &descs)
}

pub(crate) fn call_raw(k: &JitKernel, descs: &[Tensor]) -> i32 {
    // SAFETY: every descriptor points at live memory owned by the test.
    unsafe { (k.entry())(descs.as_ptr(), descs.len() as i64) }
}
