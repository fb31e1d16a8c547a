//! `einc explain SUBSCRIPTS [--shapes 3x4,4x5]` and `einc explain FILE --kernel K`.
//!
//! For a subscripts string: a table of the indices (free or dummy, extent, the operand axes
//! that carry each), then the operand and result shapes, the multiply-add count and any notes.
//! Without `--shapes` every extent is symbolic, named after its label.
//!
//! For a kernel of a `.ein` file: the same table for every operation the kernel lowers to (one
//! per statement, more for softmax and nested sums), read off the checked tensor IR, so what
//! it shows is exactly what runs.

use super::eval::show_einsum_error;
use crate::ir::tensor::{
    AxisMap, Extent, Function, IndexId, OpKind, ReduceKind, TensorType, ValueId,
};
use crate::sema::einsum::{self, show_extent, show_shape, EinsumPlan};
use einc_runtime::DType;
use std::process::ExitCode;

/// Arguments of `einc explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A subscripts string, or a .ein file.
    #[arg(allow_hyphen_values = true)]
    pub target: String,
    /// Operand shapes for a subscripts string: `3x4,4x5` (an empty entry is a scalar).
    #[arg(long, allow_hyphen_values = true)]
    pub shapes: Option<String>,
    /// The kernel to explain when TARGET is a file.
    #[arg(long)]
    pub kernel: Option<String>,
}

/// Runs `einc explain`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let explained = if args.target.ends_with(".ein") || args.kernel.is_some() {
        let Some(kernel) = &args.kernel else {
            return super::fail(format!(
                "explain {}: name the kernel to explain with --kernel",
                args.target
            ));
        };
        if args.shapes.is_some() {
            return super::fail(
                "--shapes applies to subscripts; a kernel's shapes come from its declaration",
            );
        }
        let module = match super::load_module(std::path::Path::new(&args.target), color) {
            Ok(module) => module,
            Err(status) => return status,
        };
        match module.func(kernel) {
            Some(func) => Ok(explain_function(func)),
            None => Err(super::unknown_kernel(&module, kernel)),
        }
    } else {
        explain_subscripts(&args.target, args.shapes.as_deref())
    };
    match explained {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => super::fail(message),
    }
}

/// The explanation of `subscripts` applied to operands of `shapes` (symbolic when `None`).
fn explain_subscripts(subscripts: &str, shapes: Option<&str>) -> Result<String, String> {
    // Only extents matter here; the dtype is arbitrary.
    let dtype = DType::F64;
    let operands = match shapes {
        Some(text) => parse_shapes(text, dtype)?,
        None => einsum::symbolic_operands(subscripts, dtype)
            .map_err(|e| show_einsum_error(&e, subscripts))?,
    };
    let plan =
        einsum::analyze(subscripts, &operands).map_err(|e| show_einsum_error(&e, subscripts))?;
    Ok(render(&plan, shapes.is_none()))
}

/// Parses `3x4,4x5` into one type per operand; an empty entry is a scalar, and a name instead
/// of a number is a symbolic extent (`Tx64`).
fn parse_shapes(text: &str, dtype: DType) -> Result<Vec<TensorType>, String> {
    text.split(',')
        .map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return Ok(Vec::new());
            }
            entry
                .split('x')
                .map(|n| {
                    let n = n.trim();
                    if let Ok(v) = n.parse::<u64>() {
                        Ok(Extent::Fixed(v))
                    } else if n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        Ok(Extent::Dim(n.to_string()))
                    } else {
                        Err(format!(
                            "--shapes: {n:?} in {entry:?} is not an extent (write shapes like \
                             `3x4,4x5`; an empty entry is a scalar)"
                        ))
                    }
                })
                .collect::<Result<Vec<Extent>, String>>()
        })
        .map(|shape| shape.map(|shape| TensorType { dtype, shape }))
        .collect()
}

/// Lays out rows as columns separated by two spaces, each as wide as its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn render(plan: &EinsumPlan, symbolic: bool) -> String {
    let mut rows = vec![vec![
        "index".to_string(),
        "role".to_string(),
        "extent".to_string(),
        "operand axes".to_string(),
    ]];
    for l in &plan.labels {
        let axes: Vec<String> = l
            .occurrences
            .iter()
            .map(|o| {
                let bcast = if o.broadcast {
                    " (size 1, broadcast)"
                } else {
                    ""
                };
                format!("#{}[{}]{bcast}", o.operand, o.axis)
            })
            .collect();
        rows.push(vec![
            l.kind.index_name(),
            if l.summed { "dummy (summed)" } else { "free" }.to_string(),
            show_extent(&l.extent),
            axes.join(", "),
        ]);
    }
    let mut out = format!(
        "einsum {:?} ({} output)\n\n",
        plan.subscripts,
        if plan.explicit {
            "explicit"
        } else {
            "implicit"
        }
    );
    if plan.labels.is_empty() {
        out.push_str("no indices\n");
    } else {
        out.push_str(&table(&rows));
    }
    out.push('\n');
    let mut facts: Vec<Vec<String>> = plan
        .operands
        .iter()
        .enumerate()
        .map(|(i, t)| vec![format!("operand #{i}:"), show_shape(&t.shape)])
        .collect();
    facts.push(vec!["result:".to_string(), show_shape(&plan.result.shape)]);
    facts.push(vec![
        "multiply-adds:".to_string(),
        plan.multiply_adds_display(),
    ]);
    out.push_str(&table(&facts));
    if symbolic {
        out.push_str(
            "\nextents are symbolic, named after their labels (`...` covers no axes); \
             pass --shapes 3x4,4x5 for numbers\n",
        );
    }
    for n in &plan.notes {
        out.push_str(&format!("note: {}\n", n.message));
    }
    out
}

/// The explanation of every operation of a kernel, in execution order.
fn explain_function(func: &Function) -> String {
    let name = |v: ValueId| {
        func.values
            .get(v.0 as usize)
            .map_or("?", |d| d.name.as_str())
    };
    let mut out = format!("kernel {}\n", func.name);
    for op in &func.ops {
        let OpKind::Generic(g) = &op.kind;
        let index_name = |i: &IndexId| g.indices.get(i.0 as usize).map_or("?", |d| d.name.as_str());
        let role = |id: IndexId| -> String {
            match &g.reduce {
                Some(r) if r.over.contains(&id) => match r.kind {
                    ReduceKind::Add => "dummy (summed)".to_string(),
                    ReduceKind::Mul => "reduced (product)".to_string(),
                    ReduceKind::Max => "reduced (max)".to_string(),
                    ReduceKind::Min => "reduced (min)".to_string(),
                },
                _ => "free".to_string(),
            }
        };
        let mut rows = vec![vec![
            "index".to_string(),
            "role".to_string(),
            "extent".to_string(),
            "operand axes".to_string(),
        ]];
        for (n, def) in g.indices.iter().enumerate() {
            let id = IndexId(u32::try_from(n).unwrap_or(u32::MAX));
            let axes: Vec<String> = g
                .inputs
                .iter()
                .flat_map(|input| {
                    input
                        .map
                        .iter()
                        .enumerate()
                        .filter(move |&(_, m)| *m == AxisMap::Index(id))
                        .map(move |(axis, _)| format!("{}[{axis}]", name(input.value)))
                })
                .collect();
            rows.push(vec![
                def.name.clone(),
                role(id),
                show_extent(&def.extent),
                if axes.is_empty() {
                    "(none)".to_string()
                } else {
                    axes.join(", ")
                },
            ]);
        }
        let result = name(op.result);
        let out_indices: Vec<&str> = g.output.iter().map(index_name).collect();
        out.push_str(&format!("\n%{result}[{}]\n", out_indices.join(", ")));
        out.push_str(&table(&rows));
        let points: Vec<String> = g.indices.iter().map(|d| show_extent(&d.extent)).collect();
        let count = if points.is_empty() {
            "1".to_string()
        } else {
            points.join("*")
        };
        let what = match &g.reduce {
            Some(r) if r.kind == ReduceKind::Add => "multiply-adds",
            _ => "points",
        };
        out.push_str(&table(&[
            vec![
                "result:".to_string(),
                format!("{} {}", g.dtype, show_shape(&g.result_shape())),
            ],
            vec![format!("{what}:"), count],
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_table_with_shapes() {
        let text = explain_subscripts("ij,jk->ik", Some("3x4,4x5")).unwrap();
        let want = "\
einsum \"ij,jk->ik\" (explicit output)

index  role            extent  operand axes
i      free            3       #0[0]
k      free            5       #1[1]
j      dummy (summed)  4       #0[1], #1[0]

operand #0:     [3, 4]
operand #1:     [4, 5]
result:         [3, 5]
multiply-adds:  60
";
        assert_eq!(text, want);
    }

    #[test]
    fn symbolic_extents_are_named_after_labels() {
        let text = explain_subscripts("ij,jk->ij", None).unwrap();
        assert!(text.contains("multiply-adds:  i*j*k\n"), "{text}");
        assert!(text.contains("result:         [i, j]\n"), "{text}");
        assert!(
            text.contains("note: `k` is summed but appears in only one operand"),
            "{text}"
        );
    }

    #[test]
    fn broadcast_axes_and_scalars_are_shown() {
        let text = explain_subscripts("ij,ij->j", Some("7x2,1x2")).unwrap();
        assert!(
            text.contains("i      dummy (summed)  7       #0[0], #1[0] (size 1, broadcast)\n"),
            "{text}"
        );
        let text = explain_subscripts(",i->i", Some(",5")).unwrap();
        assert!(text.contains("operand #0:     []\n"), "{text}");
    }

    #[test]
    fn errors_show_the_subscripts_with_a_caret() {
        let err = explain_subscripts("ij,jk->iki", Some("2x3,3x4")).unwrap_err();
        assert_eq!(
            err,
            "output label `i` appears more than once\n  | ij,jk->iki\n  |          ^"
        );
        let err = explain_subscripts("ij", Some("2xq-1")).unwrap_err();
        assert!(err.starts_with("--shapes: \"q-1\""), "{err}");
    }
}
