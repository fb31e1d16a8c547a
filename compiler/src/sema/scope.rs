//! Name tables: the file's dims and, per kernel, its tensors (parameters, outputs, locals)
//! with their types, IR values and definition state.

use super::types::{Ext, Ty};
use crate::diag::Span;
use crate::ir::tensor::{DimDef, Extent, ValueId};
use std::collections::HashMap;

/// One declared dim.
pub(crate) struct DimEntry {
    /// The dim's name.
    pub name: String,
    /// Where it was declared.
    pub span: Span,
    /// Its fixed extent, if any.
    pub value: Option<u64>,
}

/// The file's dims, in declaration order.
#[derive(Default)]
pub(crate) struct Dims {
    entries: Vec<DimEntry>,
}

impl Dims {
    /// The dim with this name.
    pub fn get(&self, name: &str) -> Option<&DimEntry> {
        self.entries.iter().find(|d| d.name == name)
    }

    /// The dims' names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|d| d.name.as_str())
    }

    /// Adds a dim (the caller has checked that the name is new).
    pub fn add(&mut self, entry: DimEntry) {
        self.entries.push(entry);
    }

    /// The extent a shape entry naming this dim stands for.
    pub fn ext(&self, name: &str) -> Option<Ext> {
        let d = self.get(name)?;
        Some(match d.value {
            Some(v) => Ext {
                norm: Extent::Fixed(v),
                shown: format!("{name} (= {v})"),
            },
            None => Ext {
                norm: Extent::Dim(name.to_string()),
                shown: name.to_string(),
            },
        })
    }

    /// The module's dim definitions.
    pub fn defs(&self) -> Vec<DimDef> {
        self.entries
            .iter()
            .map(|d| DimDef {
                name: d.name.clone(),
                value: d.value,
            })
            .collect()
    }
}

/// What a tensor name is in a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// An input.
    Param,
    /// An output.
    Output,
    /// Defined by a statement.
    Local,
}

/// A tensor of a kernel.
pub(crate) struct Sym {
    /// Its role.
    pub role: Role,
    /// Where it was declared or defined.
    pub decl: Span,
    /// Its type once known (declared, or inferred by its definition).
    pub ty: Option<Ty>,
    /// Its IR value once defined.
    pub value: Option<ValueId>,
    /// Its definition failed: uses are not reported again.
    pub poisoned: bool,
}

/// The result of looking a name up.
pub(crate) enum Lookup<'a> {
    /// A defined tensor.
    Tensor {
        /// Its IR value.
        value: ValueId,
        /// Its type.
        ty: &'a Ty,
        /// Where it was declared or defined.
        decl: Span,
    },
    /// A tensor whose definition failed (already reported).
    Poisoned,
    /// A dim.
    Dim,
    /// A tensor defined by this or a later statement.
    Later {
        /// That definition.
        def: Span,
    },
    /// An output that no statement assigns.
    Unassigned {
        /// Its declaration.
        decl: Span,
    },
    /// `delta` or `eps`.
    Builtin,
    /// Nothing by that name.
    Unknown,
}

/// The names visible in one kernel.
pub(crate) struct Scope<'d> {
    dims: &'d Dims,
    /// Parameters, outputs and locals defined so far.
    pub tensors: HashMap<String, Sym>,
    /// For each statement target, the index and span of its first definition.
    defs: HashMap<String, (usize, Span)>,
    /// The statement being checked.
    pub current: usize,
}

impl<'d> Scope<'d> {
    /// An empty scope over the file's dims; `defs` gives each statement target's first
    /// definition (statement index and span).
    pub fn new(dims: &'d Dims, defs: HashMap<String, (usize, Span)>) -> Scope<'d> {
        Scope {
            dims,
            tensors: HashMap::new(),
            defs,
            current: 0,
        }
    }

    /// What `name` denotes at the current statement.
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let later = self
            .defs
            .get(name)
            .filter(|(k, _)| *k >= self.current)
            .map(|&(_, def)| Lookup::Later { def });
        if let Some(sym) = self.tensors.get(name) {
            if sym.poisoned {
                return Lookup::Poisoned;
            }
            if let (Some(value), Some(ty)) = (sym.value, &sym.ty) {
                return Lookup::Tensor {
                    value,
                    ty,
                    decl: sym.decl,
                };
            }
            return later.unwrap_or(Lookup::Unassigned { decl: sym.decl });
        }
        if let Some(l) = later {
            return l;
        }
        if self.dims.get(name).is_some() {
            return Lookup::Dim;
        }
        if name == "delta" || name == "eps" {
            return Lookup::Builtin;
        }
        Lookup::Unknown
    }

    /// Every tensor and dim name visible here (for "did you mean" hints).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.extend(self.dims.names());
        names
    }

    /// True when `name` denotes nothing (so in a condition it is an index variable).
    pub fn is_unknown(&self, name: &str) -> bool {
        matches!(self.lookup(name), Lookup::Unknown)
    }
}
