//! Kernel bodies compiled on worker threads while the calling thread builds the rest of the
//! module.
//!
//! Cranelift compiles each function from its own `Context` with a shared, immutable target
//! description; only defining the machine code needs the module. The bodies are most of a
//! module's compile time (for `examples/attention.ein`, 23 of 32 ms: docs/performance.md), so
//! each is handed to a scoped thread as soon as it is built and verified, up to one thread per
//! core; beyond that the calling thread compiles it itself. The calling thread meanwhile builds
//! and compiles the entry points, error functions and micro-kernels; [`Workers::define_all`]
//! then waits for the bodies and defines them in the order they were built, so the module is
//! the same whatever the threads' timing. CPU time is unchanged (a little more for the
//! threads); wall time drops when cores are free.

use super::CodegenError;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_module::{FuncId, Module};
use std::thread::{Scope, ScopedJoinHandle};

#[cfg(test)]
thread_local! {
    /// Tests: the number of cores to assume on this thread, instead of the machine's.
    static THREADS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Tests: runs `f` as if the machine had `cores` cores (0 or 1: no worker threads).
#[cfg(test)]
pub(crate) fn with_cores<T>(cores: usize, f: impl FnOnce() -> T) -> T {
    THREADS.set(Some(cores));
    let result = f();
    THREADS.set(None);
    result
}

/// A body being compiled, or compiled (a compiled context is large: boxed).
enum Job<'scope> {
    Running(ScopedJoinHandle<'scope, Result<Box<Context>, String>>),
    Done(Result<Box<Context>, String>),
}

/// The bodies of one module, compiled on up to `limit` threads of `scope`.
pub(crate) struct Workers<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    /// The module's target (a copy: the module itself stays with the calling thread).
    isa: &'env dyn TargetIsa,
    limit: usize,
    jobs: Vec<(FuncId, String, Job<'scope>)>,
}

/// Compiles `func` for `isa`; the error is Cranelift's message.
fn compile(isa: &dyn TargetIsa, func: Function) -> Result<Box<Context>, String> {
    let mut ctx = Box::new(Context::for_function(func));
    ctx.compile(isa, &mut ControlPlane::default())
        .map_err(|e| format!("{:?}", e.inner))?;
    Ok(ctx)
}

impl<'scope, 'env> Workers<'scope, 'env> {
    /// Workers compiling for `isa` on threads of `scope`: one per core, none on a single core.
    pub(crate) fn new(scope: &'scope Scope<'scope, 'env>, isa: &'env dyn TargetIsa) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(test)]
        let cores = THREADS.get().unwrap_or(cores);
        Workers {
            scope,
            isa,
            limit: if cores > 1 { cores } else { 0 },
            jobs: Vec::new(),
        }
    }

    /// Compiles `func` (built and verified), the body `id` called `name`: on a new thread if
    /// fewer than `limit` are still running, else now.
    pub(crate) fn compile(&mut self, id: FuncId, name: String, func: Function) {
        let running = self
            .jobs
            .iter()
            .filter(|(_, _, j)| matches!(j, Job::Running(h) if !h.is_finished()))
            .count();
        let isa = self.isa;
        let job = if running < self.limit {
            // The thread takes the function; if no thread can be made, it comes back here.
            let (send, keep) = std::sync::mpsc::sync_channel::<Function>(1);
            let spawned = std::thread::Builder::new()
                .name("einc-compile".into())
                .spawn_scoped(self.scope, move || {
                    let func = keep.recv().map_err(|e| e.to_string())?;
                    compile(isa, func)
                });
            match spawned {
                Ok(handle) => match send.send(func) {
                    Ok(()) => Job::Running(handle),
                    Err(returned) => Job::Done(compile(isa, returned.0)),
                },
                Err(_) => Job::Done(compile(isa, func)),
            }
        } else {
            Job::Done(compile(isa, func))
        };
        self.jobs.push((id, name, job));
    }

    /// Waits for every body and defines them in `module`, in the order they were built.
    pub(crate) fn define_all<M: Module>(self, module: &mut M) -> Result<(), CodegenError> {
        for (id, name, job) in self.jobs {
            let compiled = match job {
                Job::Done(result) => result,
                Job::Running(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            };
            let ctx = compiled.map_err(|message| CodegenError::Cranelift {
                function: name.clone(),
                message,
            })?;
            super::define_compiled(module, self.isa, &ctx, id, &name)?;
        }
        Ok(())
    }
}
